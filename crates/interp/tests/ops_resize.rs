//! `Resize` against a plain reference written here that follows the ONNX reference
//! algorithm directly: per output point, recursive N-D interpolation over the n nearest
//! input positions of an edge-padded axis (a different structure from the kernel's
//! separable tap tables). Plus values from the ONNX operator documentation.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::*;
use transfuse_interp::Value;
use transfuse_ir::Node;

#[derive(Clone, Copy, Debug)]
struct Settings {
    mode: &'static str,
    coordinates: &'static str,
    nearest: &'static str,
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f64,
    antialias: bool,
}

impl Settings {
    fn new(mode: &'static str, coordinates: &'static str) -> Settings {
        Settings {
            mode,
            coordinates,
            nearest: "round_prefer_floor",
            cubic_a: -0.75,
            exclude_outside: false,
            extrapolation: 0.0,
            antialias: false,
        }
    }

    fn node(&self) -> Node {
        let mut node = op("Resize", &[], &[])
            .with_attr("mode", string(self.mode))
            .with_attr("coordinate_transformation_mode", string(self.coordinates))
            .with_attr("nearest_mode", string(self.nearest))
            .with_attr("cubic_coeff_a", float(self.cubic_a as f32))
            .with_attr("exclude_outside", int(i64::from(self.exclude_outside)))
            .with_attr("extrapolation_value", float(self.extrapolation as f32));
        if self.antialias {
            node = node.with_attr("antialias", int(1));
        }
        node
    }
}

/// Coefficients for a fractional position `ratio` (1 for integer positions, as in the
/// ONNX reference) and a scale.
fn coefficients(s: &Settings, ratio: f64, scale: f64) -> Vec<f64> {
    let cubic = |x: f64, a: f64| {
        let x = x.abs();
        if x <= 1.0 {
            (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
        } else if x < 2.0 {
            a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    };
    match s.mode {
        "nearest" => {
            let integer = ratio == 1.0;
            match s.nearest {
                _ if integer => vec![0.0, 1.0],
                "round_prefer_floor" => vec![
                    f64::from(u8::from(ratio <= 0.5)),
                    f64::from(u8::from(ratio > 0.5)),
                ],
                "round_prefer_ceil" => vec![
                    f64::from(u8::from(ratio < 0.5)),
                    f64::from(u8::from(ratio >= 0.5)),
                ],
                "floor" => vec![1.0, 0.0],
                "ceil" => vec![0.0, 1.0],
                other => panic!("{other}"),
            }
        }
        "linear" if s.antialias => {
            let sc = scale.min(1.0);
            let start = (-1.0 / sc).floor() as i64 + 1;
            let footprint = 2 - 2 * start;
            let c: Vec<f64> = (start..start + footprint)
                .map(|i| (1.0 - ((i as f64 - ratio) * sc).abs()).clamp(0.0, 1.0))
                .collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|v| v / sum).collect()
        }
        "linear" => vec![1.0 - ratio, ratio],
        "cubic" if s.antialias => {
            let sc = scale.min(1.0);
            let start = (-2.0 / sc).floor() as i64 + 1;
            let end = 2 - start;
            let c: Vec<f64> = (start..end)
                .map(|i| cubic((i as f64 - ratio) * sc, s.cubic_a))
                .collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|v| v / sum).collect()
        }
        "cubic" => [1.0 + ratio, ratio, 1.0 - ratio, 2.0 - ratio]
            .iter()
            .map(|&d| cubic(d, s.cubic_a))
            .collect(),
        other => panic!("{other}"),
    }
}

/// Interpolates one axis of `data` at original coordinate `x`.
fn interpolate_1d(s: &Settings, data: &[f64], x: f64, scale: f64) -> f64 {
    let len = data.len() as i64;
    if s.coordinates == "tf_crop_and_resize" && (x < 0.0 || x > (len - 1) as f64) {
        return s.extrapolation;
    }
    let x_int = x.floor();
    let ratio = if x == x_int { 1.0 } else { x - x_int };
    let mut coeffs = coefficients(s, ratio, scale);
    let n = coeffs.len() as i64;
    // The n positions nearest to x (ties to the lower index), in ascending order.
    let mut candidates: Vec<i64> = (-n - 2 + x_int as i64..=x_int as i64 + n + 2).collect();
    candidates.sort_by(|&a, &b| {
        ((a as f64 - x).abs(), a)
            .partial_cmp(&((b as f64 - x).abs(), b))
            .unwrap()
    });
    let mut idx: Vec<i64> = candidates.into_iter().take(n as usize).collect();
    idx.sort_unstable();
    if s.exclude_outside {
        for (c, &i) in coeffs.iter_mut().zip(&idx) {
            if i < 0 || i >= len {
                *c = 0.0;
            }
        }
        let sum: f64 = coeffs.iter().sum();
        coeffs.iter_mut().for_each(|c| *c /= sum);
    }
    coeffs
        .iter()
        .zip(&idx)
        .map(|(c, &i)| c * data[i.clamp(0, len - 1) as usize])
        .sum()
}

/// Original coordinate of output position `o` on one axis.
fn coordinate(
    s: &Settings,
    o: usize,
    len_in: usize,
    len_out: usize,
    scale: f64,
    roi: (f64, f64),
) -> f64 {
    let (o, li, lo) = (o as f64, len_in as f64, len_out as f64);
    match s.coordinates {
        "half_pixel" => (o + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => {
            let adj = lo / (scale * li);
            li / 2.0 * (1.0 - adj) + (o + 0.5) / scale - 0.5
        }
        "pytorch_half_pixel" => {
            if len_out > 1 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        "align_corners" => {
            if len_out == 1 {
                0.0
            } else {
                o * (li - 1.0) / (lo - 1.0)
            }
        }
        "asymmetric" => o / scale,
        "tf_half_pixel_for_nn" => (o + 0.5) / scale,
        "tf_crop_and_resize" => {
            if len_out > 1 {
                roi.0 * (li - 1.0) + o * (roi.1 - roi.0) * (li - 1.0) / (lo - 1.0)
            } else {
                0.5 * (roi.0 + roi.1) * (li - 1.0)
            }
        }
        other => panic!("{other}"),
    }
}

/// Reference resize of a 2-D image (the last two axes of [1, 1, H, W]).
fn reference_2d(
    s: &Settings,
    data: &[f64],
    h: usize,
    w: usize,
    out: (usize, usize),
    scales: (f64, f64),
    roi: [f64; 4],
) -> Vec<f64> {
    let mut result = Vec::with_capacity(out.0 * out.1);
    for oy in 0..out.0 {
        let y = coordinate(s, oy, h, out.0, scales.0, (roi[0], roi[2]));
        for ox in 0..out.1 {
            let x = coordinate(s, ox, w, out.1, scales.1, (roi[1], roi[3]));
            // Interpolate each row at x, then the column of results at y.
            let column: Vec<f64> = (0..h)
                .map(|r| interpolate_1d(s, &data[r * w..(r + 1) * w], x, scales.1))
                .collect();
            result.push(interpolate_1d(s, &column, y, scales.0));
        }
    }
    result
}

fn image(h: usize, w: usize, seed: u64) -> (Value, Vec<f64>) {
    let data = pseudo_random(h * w, seed);
    (
        f32s(&[1, 1, h, w], &data),
        data.iter().map(|&v| f64::from(v)).collect(),
    )
}

/// Runs Resize with scales on [1, 1, h, w] and compares with the reference.
fn check_scales(s: Settings, h: usize, w: usize, scales: (f32, f32), opset: i64) {
    let (x, data) = image(h, w, (h * 31 + w) as u64);
    let scale_value = f32s(&[4], &[1.0, 1.0, scales.0, scales.1]);
    let got = run_op(opset, s.node(), vec![Some(x), None, Some(scale_value)], 1)
        .unwrap()
        .remove(0);
    let out = (
        (h as f32 * scales.0).floor() as usize,
        (w as f32 * scales.1).floor() as usize,
    );
    let want = reference_2d(
        &s,
        &data,
        h,
        w,
        out,
        (f64::from(scales.0), f64::from(scales.1)),
        [0.0, 0.0, 1.0, 1.0],
    );
    let want = f64s(&[1, 1, out.0, out.1], &want);
    let d = max_abs_diff(&got, &want);
    assert!(
        d <= 1e-5,
        "{s:?} scales {scales:?} on {h}x{w}: differs by {d:e}\n got {:?}\nwant {:?}",
        got.to_f64_vec(),
        want.to_f64_vec()
    );
}

#[test]
fn nearest_every_rounding_and_coordinate_mode() {
    for nearest in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
        for coordinates in [
            "half_pixel",
            "asymmetric",
            "align_corners",
            "pytorch_half_pixel",
            "tf_half_pixel_for_nn",
        ] {
            let s = Settings {
                nearest,
                ..Settings::new("nearest", coordinates)
            };
            check_scales(s, 4, 5, (2.0, 3.0), 13);
            check_scales(s, 7, 6, (0.5, 0.75), 13);
            check_scales(s, 3, 4, (1.7, 0.6), 13);
        }
    }
}

#[test]
fn linear_every_coordinate_mode() {
    for coordinates in [
        "half_pixel",
        "asymmetric",
        "align_corners",
        "pytorch_half_pixel",
    ] {
        let s = Settings::new("linear", coordinates);
        check_scales(s, 4, 5, (2.0, 1.5), 13);
        check_scales(s, 6, 8, (0.5, 0.6), 13);
        check_scales(s, 5, 1, (3.0, 1.0), 13);
    }
    let s = Settings::new("linear", "half_pixel_symmetric");
    check_scales(s, 4, 5, (2.0, 1.5), 19);
    check_scales(s, 6, 8, (0.5, 0.6), 19);
}

#[test]
fn cubic_with_coefficient_and_exclude_outside() {
    for coordinates in [
        "half_pixel",
        "align_corners",
        "asymmetric",
        "pytorch_half_pixel",
    ] {
        check_scales(Settings::new("cubic", coordinates), 4, 4, (2.0, 2.5), 13);
        check_scales(Settings::new("cubic", coordinates), 8, 6, (0.5, 0.8), 13);
    }
    let s = Settings {
        exclude_outside: true,
        cubic_a: -0.5,
        ..Settings::new("cubic", "half_pixel")
    };
    check_scales(s, 4, 5, (2.0, 1.3), 13);
    check_scales(s, 9, 7, (0.4, 0.6), 13);
}

#[test]
fn antialias_downscale_from_opset_18() {
    for mode in ["linear", "cubic"] {
        let s = Settings {
            antialias: true,
            ..Settings::new(mode, "half_pixel")
        };
        check_scales(s, 8, 9, (0.5, 0.4), 18);
        check_scales(s, 6, 6, (0.6, 1.5), 18);
        let s = Settings {
            antialias: true,
            exclude_outside: true,
            ..Settings::new(mode, "pytorch_half_pixel")
        };
        check_scales(s, 10, 7, (0.3, 0.5), 18);
    }
}

#[test]
fn tf_crop_and_resize_with_roi_and_extrapolation() {
    for mode in ["nearest", "linear", "cubic"] {
        let s = Settings {
            extrapolation: 10.0,
            ..Settings::new(mode, "tf_crop_and_resize")
        };
        let (x, data) = image(4, 4, 99);
        // roi over all four axes: batch/channel untouched, H from 0.4 to 0.6+, W beyond the edge.
        let roi = [0.0, 0.0, 0.4, 0.6, 1.0, 1.0, 0.6, 1.2];
        let sizes = i64s(&[4], &[1, 1, 3, 3]);
        let got = run_op(
            13,
            s.node(),
            vec![
                Some(x),
                Some(f32s(&[8], &roi.map(|v| v as f32))),
                None,
                Some(sizes),
            ],
            1,
        )
        .unwrap()
        .remove(0);
        let roi32 = roi.map(|v| f64::from(v as f32));
        let want = reference_2d(
            &s,
            &data,
            4,
            4,
            (3, 3),
            (0.75, 0.75),
            [roi32[2], roi32[3], roi32[6], roi32[7]],
        );
        assert_close(&got, &f64s(&[1, 1, 3, 3], &want), 1e-5);
        assert!(
            got.to_f64_vec().contains(&10.0),
            "{mode}: some positions extrapolate"
        );
    }
}

#[test]
fn onnx_documentation_examples() {
    let x = f32s(&[1, 1, 2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let scales = f32s(&[4], &[1., 1., 0.6, 0.6]);
    let linear = Settings::new("linear", "half_pixel");
    let y = run_op(
        13,
        linear.node(),
        vec![Some(x.clone()), None, Some(scales.clone())],
        1,
    )
    .unwrap();
    assert_close(&y[0], &f32s(&[1, 1, 1, 2], &[2.666_666_5, 4.333_333]), 1e-5);
    // align_corners with the spec's length_resized = the output dim (2): x = 1 maps to 3.
    // ONNX's reference implementation divides by the unrounded 4 · 0.6 = 2.4 instead and
    // documents 3.142857; ONNX Runtime, like this interpreter, gives 4.
    let corners = Settings::new("linear", "align_corners");
    let y = run_op(13, corners.node(), vec![Some(x), None, Some(scales)], 1).unwrap();
    assert_close(&y[0], &f32s(&[1, 1, 1, 2], &[1.0, 4.0]), 1e-5);

    let x = f32s(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let y = run_op(
        13,
        Settings::new("nearest", "half_pixel").node(),
        vec![Some(x), None, Some(f32s(&[4], &[1., 1., 2., 3.]))],
        1,
    )
    .unwrap();
    let want = f32s(
        &[1, 1, 4, 6],
        &[
            1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2., 3., 3., 3., 4., 4., 4., 3., 3., 3., 4.,
            4., 4.,
        ],
    );
    assert_exact(&y[0], &want);

    let x = f32s(
        &[1, 1, 4, 4],
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
    );
    let y = run_op(
        13,
        Settings::new("cubic", "half_pixel").node(),
        vec![Some(x), None, Some(f32s(&[4], &[1., 1., 2., 2.]))],
        1,
    )
    .unwrap();
    let first_row = &y[0].to_f64_vec()[..8];
    let want = [
        0.472_656_25,
        0.769_531_25,
        1.246_093_75,
        1.875,
        2.281_25,
        2.910_156_25,
        3.386_718_75,
        3.683_593_75,
    ];
    for (g, w) in first_row.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{first_row:?}");
    }
}

#[test]
fn sizes_axes_and_aspect_policy_from_opset_18() {
    let (x, _) = image(4, 6, 5);
    let node = |policy: &str| {
        Settings::new("nearest", "asymmetric")
            .node()
            .with_attr("keep_aspect_ratio_policy", string(policy))
            .with_attr("axes", ints(&[2, 3]))
    };
    // Target 2 x 2: not_larger scales both axes by min(2/4, 2/6) = 1/3 -> 1 x 2 (round(4/3), round(6/3)).
    let y = run_op(
        18,
        node("not_larger"),
        vec![Some(x.clone()), None, None, Some(i64s(&[2], &[2, 2]))],
        1,
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 1, 1, 2]);
    // not_smaller: max(1/2, 1/3) = 1/2 -> 2 x 3.
    let y = run_op(
        18,
        node("not_smaller"),
        vec![Some(x.clone()), None, None, Some(i64s(&[2], &[2, 2]))],
        1,
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 1, 2, 3]);
    let y = run_op(
        18,
        node("stretch"),
        vec![Some(x), None, None, Some(i64s(&[2], &[3, 12]))],
        1,
    )
    .unwrap();
    assert_eq!(y[0].shape(), &[1, 1, 3, 12]);
}

#[test]
fn opset_10_floors_up_and_ceils_down() {
    // Asymmetric coordinates; nearest floors when upsampling and ceils when downsampling.
    let x = f32s(&[1, 1, 1, 4], &[1., 2., 3., 4.]);
    let node = op("Resize", &[], &[]).with_attr("mode", string("nearest"));
    let y = run1(
        10,
        node.clone(),
        vec![x.clone(), f32s(&[4], &[1., 1., 1., 0.6])],
    );
    // x_out = 0 -> 0, 1 -> 1/0.6 = 1.67 -> ceil 2.
    assert_exact(&y, &f32s(&[1, 1, 1, 2], &[1., 3.]));
    let y = run1(10, node, vec![x, f32s(&[4], &[1., 1., 1., 1.5])]);
    // x_out = 0..6 -> floor(x / 1.5) = 0, 0, 1, 2, 2, 3.
    assert_exact(&y, &f32s(&[1, 1, 1, 6], &[1., 1., 2., 3., 3., 4.]));
    let y = run1(
        9,
        op("Upsample", &[], &[]).with_attr("mode", string("linear")),
        vec![
            f32s(&[1, 1, 1, 2], &[1., 3.]),
            f32s(&[4], &[1., 1., 1., 2.]),
        ],
    );
    assert_exact(&y, &f32s(&[1, 1, 1, 4], &[1., 2., 3., 3.]));
}

#[test]
fn scales_and_sizes_together_are_an_error() {
    let (x, _) = image(2, 2, 1);
    let err = run_op(
        13,
        Settings::new("nearest", "half_pixel").node(),
        vec![
            Some(x),
            None,
            Some(f32s(&[4], &[1., 1., 2., 2.])),
            Some(i64s(&[4], &[1, 1, 4, 4])),
        ],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");
}
