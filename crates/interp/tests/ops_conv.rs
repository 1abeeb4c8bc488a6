//! `Conv` and `ConvTranspose` against plain-loop references written here (direct sums
//! over the definitions, nothing shared with the im2col/col2im kernels).
#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_arguments)]

mod common;
use common::*;
use transfuse_interp::Value;

/// 2-D geometry: (stride, dilation, pad_begin, pad_end) per axis.
#[derive(Clone, Copy, Debug)]
struct Axis2 {
    stride: usize,
    dilation: usize,
    begin: usize,
    end: usize,
}

/// Direct convolution: out[n, m, oy, ox] = b[m] + Σ x[n, g·cg + c, iy, ix] · w[m, c, ky, kx],
/// accumulated in f64.
fn conv_reference(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    bias: Option<&[f32]>,
    ay: Axis2,
    ax: Axis2,
    group: usize,
) -> (Vec<f32>, Vec<usize>) {
    let [n, c, h, wd] = xs;
    let [m, cg, kh, kw] = ws;
    assert_eq!(cg * group, c);
    let mg = m / group;
    let oh = (h + ay.begin + ay.end - ((kh - 1) * ay.dilation + 1)) / ay.stride + 1;
    let ow = (wd + ax.begin + ax.end - ((kw - 1) * ax.dilation + 1)) / ax.stride + 1;
    let mut out = vec![0f32; n * m * oh * ow];
    for b in 0..n {
        for mo in 0..m {
            let g = mo / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |bv| f64::from(bv[mo]));
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy =
                                    (oy * ay.stride + ky * ay.dilation) as i64 - ay.begin as i64;
                                let ix =
                                    (ox * ax.stride + kx * ax.dilation) as i64 - ax.begin as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x[((b * c + g * cg + ci) * h + iy as usize) * wd + ix as usize];
                                let wv = w[((mo * cg + ci) * kh + ky) * kw + kx];
                                acc += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    out[((b * m + mo) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    (out, vec![n, m, oh, ow])
}

/// Direct transposed convolution: every input pixel scatters x · w into the output.
fn conv_transpose_reference(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    ws: [usize; 4],
    bias: Option<&[f32]>,
    ay: Axis2,
    ax: Axis2,
    out_pad: [usize; 2],
    group: usize,
) -> (Vec<f32>, Vec<usize>) {
    let [n, c, h, wd] = xs;
    let [wc, mg, kh, kw] = ws;
    assert_eq!(wc, c);
    let cg = c / group;
    let m = mg * group;
    let oh = ay.stride * (h - 1) + out_pad[0] + (kh - 1) * ay.dilation + 1 - ay.begin - ay.end;
    let ow = ax.stride * (wd - 1) + out_pad[1] + (kw - 1) * ax.dilation + 1 - ax.begin - ax.end;
    let mut out = vec![0f32; n * m * oh * ow];
    for b in 0..n {
        for ci in 0..c {
            let g = ci / cg;
            for iy in 0..h {
                for ix in 0..wd {
                    let xv = x[((b * c + ci) * h + iy) * wd + ix];
                    for mo in 0..mg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy =
                                    (iy * ay.stride + ky * ay.dilation) as i64 - ay.begin as i64;
                                let ox =
                                    (ix * ax.stride + kx * ax.dilation) as i64 - ax.begin as i64;
                                if oy < 0 || ox < 0 || oy >= oh as i64 || ox >= ow as i64 {
                                    continue;
                                }
                                let wv = w[((ci * mg + mo) * kh + ky) * kw + kx];
                                out[((b * m + g * mg + mo) * oh + oy as usize) * ow
                                    + ox as usize] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(bv) = bias {
        for b in 0..n {
            for mo in 0..m {
                for p in 0..oh * ow {
                    out[(b * m + mo) * oh * ow + p] += bv[mo];
                }
            }
        }
    }
    (out, vec![n, m, oh, ow])
}

fn axis(stride: usize, dilation: usize, begin: usize, end: usize) -> Axis2 {
    Axis2 {
        stride,
        dilation,
        begin,
        end,
    }
}

fn value(shape: &[usize], seed: u64) -> (Value, Vec<f32>) {
    let data = pseudo_random(shape.iter().product(), seed);
    (f32s(shape, &data), data)
}

#[test]
fn conv_matches_direct_sum_across_geometries() {
    // (x shape, w shape, group, y axis, x axis, bias)
    let cases = [
        (
            [1, 3, 8, 8],
            [4, 3, 3, 3],
            1,
            axis(1, 1, 0, 0),
            axis(1, 1, 0, 0),
            false,
        ),
        (
            [2, 3, 9, 7],
            [6, 3, 3, 2],
            1,
            axis(2, 1, 1, 0),
            axis(1, 2, 2, 1),
            true,
        ),
        (
            [1, 4, 10, 10],
            [6, 2, 3, 3],
            2,
            axis(3, 2, 2, 2),
            axis(2, 1, 1, 1),
            true,
        ),
        (
            [1, 6, 7, 7],
            [6, 1, 3, 3],
            6,
            axis(1, 1, 1, 1),
            axis(1, 1, 1, 1),
            true,
        ),
        (
            [1, 3, 32, 32],
            [8, 3, 16, 16],
            1,
            axis(16, 1, 0, 0),
            axis(16, 1, 0, 0),
            true,
        ),
    ];
    for (i, (xs, ws, group, ay, ax, with_bias)) in cases.into_iter().enumerate() {
        let (x, xd) = value(&xs, 10 + i as u64);
        let (w, wd) = value(&ws, 20 + i as u64);
        let (b, bd) = value(&[ws[0]], 30 + i as u64);
        let node = op("Conv", &[], &[])
            .with_attr("group", int(group as i64))
            .with_attr("strides", ints(&[ay.stride as i64, ax.stride as i64]))
            .with_attr("dilations", ints(&[ay.dilation as i64, ax.dilation as i64]))
            .with_attr(
                "pads",
                ints(&[
                    ay.begin as i64,
                    ax.begin as i64,
                    ay.end as i64,
                    ax.end as i64,
                ]),
            );
        let inputs = if with_bias { vec![x, w, b] } else { vec![x, w] };
        let got = run1(11, node, inputs);
        let (want, shape) = conv_reference(
            &xd,
            xs,
            &wd,
            ws,
            with_bias.then_some(&bd[..]),
            ay,
            ax,
            group,
        );
        // f32 rounding of a K-term dot product grows like sqrt(K).
        let terms = (ws[1] * ws[2] * ws[3]) as f64;
        assert_close(&got, &f32s(&shape, &want), 2e-6 * terms.sqrt());
    }
}

#[test]
fn conv_auto_pad_same_and_valid() {
    let xs = [1, 2, 7, 6];
    let ws = [3, 2, 3, 2];
    let (x, xd) = value(&xs, 1);
    let (w, wd) = value(&ws, 2);
    let node = |pad: &str| {
        op("Conv", &[], &[])
            .with_attr("auto_pad", string(pad))
            .with_attr("strides", ints(&[2, 1]))
    };
    // SAME: output = ceil(in / stride); total pad: rows (3-1)*2+3-7 = 2, cols 5+2-6 = 1.
    let upper = run1(11, node("SAME_UPPER"), vec![x.clone(), w.clone()]);
    let (want, shape) = conv_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(2, 1, 1, 1),
        axis(1, 1, 0, 1),
        1,
    );
    assert_eq!(shape, vec![1, 3, 4, 6]);
    assert_close(&upper, &f32s(&shape, &want), 1e-5);
    let lower = run1(11, node("SAME_LOWER"), vec![x.clone(), w.clone()]);
    let (want, shape) = conv_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(2, 1, 1, 1),
        axis(1, 1, 1, 0),
        1,
    );
    assert_close(&lower, &f32s(&shape, &want), 1e-5);
    let valid = run1(11, node("VALID"), vec![x, w]);
    let (want, shape) = conv_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(2, 1, 0, 0),
        axis(1, 1, 0, 0),
        1,
    );
    assert_close(&valid, &f32s(&shape, &want), 1e-5);
}

#[test]
fn conv_1d_and_3d() {
    // 1-D as a 2-D conv with a unit height.
    let (x, xd) = value(&[1, 2, 9], 3);
    let (w, wd) = value(&[3, 2, 3], 4);
    let got = run1(
        11,
        op("Conv", &[], &[])
            .with_attr("strides", ints(&[2]))
            .with_attr("pads", ints(&[1, 1])),
        vec![x, w],
    );
    let (want, shape) = conv_reference(
        &xd,
        [1, 2, 1, 9],
        &wd,
        [3, 2, 1, 3],
        None,
        axis(1, 1, 0, 0),
        axis(2, 1, 1, 1),
        1,
    );
    assert_close(&got, &f32s(&[shape[0], shape[1], shape[3]], &want), 1e-5);
    // 3-D with a 1x1x1 kernel is a per-voxel channel mix.
    let (x, xd) = value(&[1, 2, 2, 2, 2], 5);
    let (w, wd) = value(&[3, 2, 1, 1, 1], 6);
    let got = run1(11, op("Conv", &[], &[]), vec![x, w]);
    let mut want = vec![0f32; 24];
    for m in 0..3 {
        for p in 0..8 {
            want[m * 8 + p] = wd[m * 2] * xd[p] + wd[m * 2 + 1] * xd[8 + p];
        }
    }
    assert_close(&got, &f32s(&[1, 3, 2, 2, 2], &want), 1e-6);
}

#[test]
fn conv_transpose_matches_scatter_reference() {
    // (x shape, w shape [C, M/g, kh, kw], group, y axis, x axis, output_padding, bias)
    let cases = [
        (
            [1, 2, 3, 3],
            [2, 3, 3, 3],
            1,
            axis(1, 1, 0, 0),
            axis(1, 1, 0, 0),
            [0, 0],
            false,
        ),
        (
            [1, 2, 3, 4],
            [2, 2, 3, 3],
            1,
            axis(2, 1, 0, 0),
            axis(3, 1, 0, 0),
            [1, 2],
            true,
        ),
        (
            [2, 4, 3, 3],
            [4, 1, 2, 3],
            2,
            axis(2, 2, 1, 0),
            axis(1, 1, 1, 1),
            [0, 0],
            true,
        ),
        (
            [1, 3, 4, 2],
            [3, 2, 3, 2],
            3,
            axis(3, 1, 1, 2),
            axis(2, 2, 0, 1),
            [2, 1],
            true,
        ),
    ];
    for (i, (xs, ws, group, ay, ax, out_pad, with_bias)) in cases.into_iter().enumerate() {
        let (x, xd) = value(&xs, 40 + i as u64);
        let (w, wd) = value(&ws, 50 + i as u64);
        let (b, bd) = value(&[ws[1] * group], 60 + i as u64);
        let node = op("ConvTranspose", &[], &[])
            .with_attr("group", int(group as i64))
            .with_attr("strides", ints(&[ay.stride as i64, ax.stride as i64]))
            .with_attr("dilations", ints(&[ay.dilation as i64, ax.dilation as i64]))
            .with_attr(
                "pads",
                ints(&[
                    ay.begin as i64,
                    ax.begin as i64,
                    ay.end as i64,
                    ax.end as i64,
                ]),
            )
            .with_attr(
                "output_padding",
                ints(&[out_pad[0] as i64, out_pad[1] as i64]),
            );
        let inputs = if with_bias { vec![x, w, b] } else { vec![x, w] };
        let got = run1(11, node, inputs);
        let (want, shape) = conv_transpose_reference(
            &xd,
            xs,
            &wd,
            ws,
            with_bias.then_some(&bd[..]),
            ay,
            ax,
            out_pad,
            group,
        );
        assert_close(&got, &f32s(&shape, &want), 1e-5);
    }
}

#[test]
fn conv_transpose_output_shape_and_auto_pad() {
    let xs = [1, 1, 3, 3];
    let ws = [1, 2, 3, 3];
    let (x, xd) = value(&xs, 70);
    let (w, wd) = value(&ws, 71);
    let strides = ints(&[3, 2]);
    // output_shape [10, 8] pads nothing at the start (total padding -1 on each axis), which
    // equals output_padding [1, 1].
    let by_shape = run1(
        11,
        op("ConvTranspose", &[], &[])
            .with_attr("strides", strides.clone())
            .with_attr("output_shape", ints(&[10, 8])),
        vec![x.clone(), w.clone()],
    );
    let by_padding = run1(
        11,
        op("ConvTranspose", &[], &[])
            .with_attr("strides", strides.clone())
            .with_attr("output_padding", ints(&[1, 1])),
        vec![x.clone(), w.clone()],
    );
    assert_eq!(by_shape.shape(), &[1, 2, 10, 8]);
    assert_exact(&by_shape, &by_padding);
    let (want, shape) = conv_transpose_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(3, 1, 0, 0),
        axis(2, 1, 0, 0),
        [1, 1],
        1,
    );
    assert_close(&by_shape, &f32s(&shape, &want), 1e-5);

    // SAME_UPPER / SAME_LOWER: output = input * stride; full sizes 9 x 7 cropped to 9 x 6,
    // the odd unit of padding at the end (UPPER) or the start (LOWER).
    let same = |mode: &str| {
        op("ConvTranspose", &[], &[])
            .with_attr("strides", strides.clone())
            .with_attr("auto_pad", string(mode))
    };
    let upper = run1(11, same("SAME_UPPER"), vec![x.clone(), w.clone()]);
    let (want, shape) = conv_transpose_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(3, 1, 0, 0),
        axis(2, 1, 0, 1),
        [0, 0],
        1,
    );
    assert_eq!(shape, vec![1, 2, 9, 6]);
    assert_close(&upper, &f32s(&shape, &want), 1e-5);
    let lower = run1(11, same("SAME_LOWER"), vec![x, w]);
    let (want, shape) = conv_transpose_reference(
        &xd,
        xs,
        &wd,
        ws,
        None,
        axis(3, 1, 0, 0),
        axis(2, 1, 1, 0),
        [0, 0],
        1,
    );
    assert_close(&lower, &f32s(&shape, &want), 1e-5);
}

#[test]
fn conv_transpose_small_hand_checked() {
    // 1 channel, 2x2 input, 2x2 ones kernel, stride 2: each pixel becomes a 2x2 block.
    let x = f32s(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let w = f32s(&[1, 1, 2, 2], &[1., 1., 1., 1.]);
    let y = run1(
        11,
        op("ConvTranspose", &[], &[]).with_attr("strides", ints(&[2, 2])),
        vec![x.clone(), w.clone()],
    );
    let want = f32s(
        &[1, 1, 4, 4],
        &[
            1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.,
        ],
    );
    assert_exact(&y, &want);
    // Stride 1: overlapping blocks add up.
    let y = run1(11, op("ConvTranspose", &[], &[]), vec![x, w]);
    assert_exact(
        &y,
        &f32s(&[1, 1, 3, 3], &[1., 3., 2., 4., 10., 6., 3., 7., 4.]),
    );
}

#[test]
fn conv_rejects_bad_channels() {
    let x = f32s(&[1, 3, 4, 4], &[0.0; 48]);
    let w = f32s(&[2, 2, 3, 3], &[0.0; 36]);
    let err = run_op(11, op("Conv", &[], &[]), vec![Some(x), Some(w)], 1).unwrap_err();
    assert!(err.to_string().contains("channels"), "{err}");
}
