//! `Resize` (opsets 10 on) and the older `Upsample` (opsets 7 to 9).
//!
//! Every mode (`nearest` with each `nearest_mode`, `linear`, `cubic` with `cubic_coeff_a`
//! and `exclude_outside`, `antialias`), every `coordinate_transformation_mode` (including
//! `tf_crop_and_resize` with `roi` and `extrapolation_value`, and opset 19's
//! `half_pixel_symmetric`), `axes` and `keep_aspect_ratio_policy` (opset 18).
//!
//! The N-linear and N-cubic interpolations are tensor products of 1-D ones, so each
//! resized axis is resampled in turn; output positions whose coordinate falls outside
//! the input on any axis (only possible with `tf_crop_and_resize`) get
//! `extrapolation_value`, as in the ONNX reference implementation.
//!
//! Opset 10 and `Upsample` have no coordinate attributes: they follow ONNX Runtime, which
//! maps coordinates asymmetrically (`x / scale`) and picks the nearest pixel by flooring
//! when upsampling and by ceiling when downsampling.

use ndarray::{ArrayD, Axis, IxDyn, Zip};

use crate::broadcast::PARALLEL_ELEMENTS;
use crate::elem::Numeric;
use crate::error::{OpError, OpResult};
use crate::ops::{normalize_axes, to_usize};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Resize", 10..=MAX_ONNX_OPSET, build_resize);
    reg.insert(ONNX, "Upsample", 7..=9, build_upsample);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coordinates {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Opset 10 and `Upsample` (ONNX Runtime): floor when upsampling, ceil when downsampling.
    Simple,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Where the scales or sizes come from, by opset.
#[derive(Clone, Debug, PartialEq)]
enum Inputs10 {
    /// `Upsample` 7 and 8: a `scales` attribute.
    ScalesAttribute(Vec<f32>),
    /// `Upsample` 9 and `Resize` 10: `scales` is input 1.
    ScalesInput,
    /// `Resize` 11 on: `roi`, `scales`, `sizes` are inputs 1 to 3.
    RoiScalesSizes,
}

#[derive(Debug)]
struct Resize {
    inputs: Inputs10,
    mode: Mode,
    coordinates: Coordinates,
    nearest: Nearest,
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f64,
    antialias: bool,
    axes: Option<Vec<i64>>,
    policy: AspectPolicy,
}

fn parse_mode(text: &str) -> OpResult<Mode> {
    match text {
        "nearest" => Ok(Mode::Nearest),
        "linear" | "bilinear" => Ok(Mode::Linear),
        "cubic" => Ok(Mode::Cubic),
        other => Err(OpError::attr("mode", format!("unknown mode '{other}'"))),
    }
}

fn build_upsample(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let mode = parse_mode(&ctx.string("mode", "nearest")?)?;
    if mode == Mode::Cubic {
        return Err(OpError::attr("mode", "Upsample has no cubic mode"));
    }
    let inputs = if ctx.opset < 9 {
        Inputs10::ScalesAttribute(
            ctx.floats("scales")?
                .ok_or_else(|| OpError::attr("scales", "is required"))?,
        )
    } else {
        Inputs10::ScalesInput
    };
    Ok(Box::new(legacy(inputs, mode)))
}

/// The fixed behavior of `Upsample` and `Resize` 10.
fn legacy(inputs: Inputs10, mode: Mode) -> Resize {
    Resize {
        inputs,
        mode,
        coordinates: Coordinates::Asymmetric,
        nearest: Nearest::Simple,
        cubic_a: -0.75,
        exclude_outside: false,
        extrapolation: 0.0,
        antialias: false,
        axes: None,
        policy: AspectPolicy::Stretch,
    }
}

fn build_resize(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let mode = parse_mode(&ctx.string("mode", "nearest")?)?;
    if ctx.opset < 11 {
        if mode == Mode::Cubic {
            return Err(OpError::attr("mode", "cubic needs opset 11"));
        }
        return Ok(Box::new(legacy(Inputs10::ScalesInput, mode)));
    }
    let coordinates = match ctx
        .string("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => Coordinates::HalfPixel,
        "half_pixel_symmetric" if ctx.opset >= 19 => Coordinates::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
        "align_corners" => Coordinates::AlignCorners,
        "asymmetric" => Coordinates::Asymmetric,
        "tf_half_pixel_for_nn" if ctx.opset < 13 || mode == Mode::Nearest => {
            Coordinates::TfHalfPixelForNn
        }
        "tf_crop_and_resize" => Coordinates::TfCropAndResize,
        other => {
            return Err(OpError::attr(
                "coordinate_transformation_mode",
                format!("'{other}' is not supported at opset {}", ctx.opset),
            ));
        }
    };
    let nearest = match ctx.string("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => {
            return Err(OpError::attr(
                "nearest_mode",
                format!("unknown value '{other}'"),
            ));
        }
    };
    let (antialias, axes, policy) = if ctx.opset >= 18 {
        let policy = match ctx.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
            "stretch" => AspectPolicy::Stretch,
            "not_larger" => AspectPolicy::NotLarger,
            "not_smaller" => AspectPolicy::NotSmaller,
            other => {
                return Err(OpError::attr(
                    "keep_aspect_ratio_policy",
                    format!("unknown value '{other}'"),
                ));
            }
        };
        (ctx.int("antialias", 0)? != 0, ctx.ints("axes")?, policy)
    } else {
        (false, None, AspectPolicy::Stretch)
    };
    Ok(Box::new(Resize {
        inputs: Inputs10::RoiScalesSizes,
        mode,
        coordinates,
        nearest,
        cubic_a: f64::from(ctx.float("cubic_coeff_a", -0.75)?),
        exclude_outside: ctx.int("exclude_outside", 0)? != 0,
        extrapolation: f64::from(ctx.float("extrapolation_value", 0.0)?),
        antialias,
        axes,
        policy,
    }))
}

/// A present, non-empty input (opsets 11 and 12 pass empty tensors for unused inputs).
fn non_empty<'v>(inputs: &'v Inputs<'_>, i: usize) -> Option<&'v Value> {
    inputs.get(i).filter(|v| !v.is_empty())
}

/// Float contents of a scales/roi input.
fn floats(v: &Value, what: &str) -> OpResult<Vec<f64>> {
    match v {
        Value::F32(a) => Ok(a.iter().map(|&x| f64::from(x)).collect()),
        Value::F64(a) => Ok(a.iter().copied().collect()),
        other => Err(OpError::dtype(format!(
            "{what} must be float, got {}",
            other.dtype()
        ))),
    }
}

/// The plan for one axis: per output position, the taps (input index, weight), and whether
/// the position is outside the input (extrapolated).
#[derive(Debug)]
struct AxisPlan {
    taps: Vec<Vec<(usize, f64)>>,
    outside: Vec<bool>,
}

impl Kernel for Resize {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.req(0, "X")?;
        let in_shape = x.shape().to_vec();
        let rank = in_shape.len();
        let axes: Vec<usize> = match &self.axes {
            Some(a) => normalize_axes(a, rank)?,
            None => (0..rank).collect(),
        };
        let (scales, sizes, roi) = match &self.inputs {
            Inputs10::ScalesAttribute(s) => {
                (Some(s.iter().map(|&v| f64::from(v)).collect()), None, None)
            }
            Inputs10::ScalesInput => (
                Some(floats(inputs.req(1, "scales")?, "scales")?),
                None,
                None,
            ),
            Inputs10::RoiScalesSizes => (
                non_empty(inputs, 2)
                    .map(|v| floats(v, "scales"))
                    .transpose()?,
                non_empty(inputs, 3)
                    .map(|v| v.to_i64s("sizes"))
                    .transpose()?,
                non_empty(inputs, 1).map(|v| floats(v, "roi")).transpose()?,
            ),
        };
        let (out_shape, scale) = self.output_shape(&in_shape, &axes, scales, sizes)?;
        crate::ops::check_size(&out_shape)?;
        // roi: [starts..., ends...] over `axes`; default [0, 1] per axis.
        let mut roi_start = vec![0.0; rank];
        let mut roi_end = vec![1.0; rank];
        if self.coordinates == Coordinates::TfCropAndResize
            && let Some(r) = roi
        {
            if r.len() != 2 * axes.len() {
                return Err(OpError::shape(format!(
                    "roi has {} values for {} axes",
                    r.len(),
                    axes.len()
                )));
            }
            for (k, &a) in axes.iter().enumerate() {
                roi_start[a] = r[k];
                roi_end[a] = r[k + axes.len()];
            }
        }
        let plans: Vec<Option<AxisPlan>> = (0..rank)
            .map(|d| {
                let identity = in_shape[d] == out_shape[d]
                    && scale[d] == 1.0
                    && self.coordinates != Coordinates::TfCropAndResize;
                if identity {
                    None
                } else {
                    Some(self.plan_axis(
                        in_shape[d],
                        out_shape[d],
                        scale[d],
                        roi_start[d],
                        roi_end[d],
                    ))
                }
            })
            .collect();
        if (0..rank).any(|d| plans[d].is_some() && in_shape[d] == 0 && out_shape[d] > 0) {
            return Err(OpError::shape("cannot resize an empty axis"));
        }
        let extrapolation = self.extrapolation;
        let x = inputs.take(0, "X")?;
        let out = match x {
            Value::F32(a) => Value::F32(resample(a, &plans, extrapolation)?),
            Value::F64(a) => Value::F64(resample(a, &plans, extrapolation)?),
            Value::I64(a) if self.mode == Mode::Nearest => {
                Value::I64(resample(a, &plans, extrapolation)?)
            }
            Value::I32(a) if self.mode == Mode::Nearest => {
                Value::I32(resample(a, &plans, extrapolation)?)
            }
            other => {
                return Err(OpError::dtype(format!(
                    "Resize {:?} of {}",
                    self.mode,
                    other.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

impl Resize {
    /// Output dims and the per-axis scale used by the coordinate transforms.
    fn output_shape(
        &self,
        in_shape: &[usize],
        axes: &[usize],
        scales: Option<Vec<f64>>,
        sizes: Option<Vec<i64>>,
    ) -> OpResult<(Vec<usize>, Vec<f64>)> {
        let rank = in_shape.len();
        let mut out = in_shape.to_vec();
        let mut scale = vec![1.0; rank];
        match (scales, sizes) {
            (Some(_), Some(_)) => {
                return Err(OpError::invalid("Resize takes scales or sizes, not both"));
            }
            (None, None) => return Err(OpError::invalid("Resize needs scales or sizes")),
            (Some(s), None) => {
                if s.len() != axes.len() {
                    return Err(OpError::shape(format!(
                        "{} scales for {} axes",
                        s.len(),
                        axes.len()
                    )));
                }
                for (&a, &sv) in axes.iter().zip(&s) {
                    if sv.is_nan() || sv <= 0.0 {
                        return Err(OpError::invalid(format!("scale {sv} must be positive")));
                    }
                    // Single-precision product, as ONNX Runtime computes it.
                    let product = (sv as f32) * (in_shape[a] as f32);
                    out[a] = product.floor() as usize;
                    scale[a] = f64::from(sv as f32);
                }
            }
            (None, Some(z)) => {
                if z.len() != axes.len() {
                    return Err(OpError::shape(format!(
                        "{} sizes for {} axes",
                        z.len(),
                        axes.len()
                    )));
                }
                let z: Vec<usize> = z
                    .iter()
                    .map(|&v| to_usize(v, "sizes"))
                    .collect::<OpResult<_>>()?;
                let ratio = |a: usize, size: usize| f64::from(size as f32 / in_shape[a] as f32);
                match self.policy {
                    AspectPolicy::Stretch => {
                        for (&a, &size) in axes.iter().zip(&z) {
                            out[a] = size;
                            scale[a] = ratio(a, size);
                        }
                    }
                    AspectPolicy::NotLarger | AspectPolicy::NotSmaller => {
                        let ratios = axes.iter().zip(&z).map(|(&a, &size)| ratio(a, size));
                        let common = if self.policy == AspectPolicy::NotLarger {
                            ratios.fold(f64::INFINITY, f64::min)
                        } else {
                            ratios.fold(0.0, f64::max)
                        };
                        for &a in axes {
                            out[a] = (common * in_shape[a] as f64 + 0.5).floor() as usize;
                            scale[a] = common;
                        }
                    }
                }
            }
        }
        Ok((out, scale))
    }

    /// The input coordinate of output position `x` on one axis.
    fn source_coordinate(
        &self,
        x: usize,
        len_in: usize,
        len_out: usize,
        scale: f64,
        start: f64,
        end: f64,
    ) -> f64 {
        let (x, li, lo) = (x as f64, len_in as f64, len_out as f64);
        match self.coordinates {
            Coordinates::HalfPixel => (x + 0.5) / scale - 0.5,
            Coordinates::HalfPixelSymmetric => {
                let adjustment = lo / (scale * li);
                let center = li / 2.0;
                center * (1.0 - adjustment) + (x + 0.5) / scale - 0.5
            }
            Coordinates::PytorchHalfPixel => {
                if len_out > 1 {
                    (x + 0.5) / scale - 0.5
                } else {
                    0.0
                }
            }
            Coordinates::AlignCorners => {
                if len_out == 1 {
                    0.0
                } else {
                    x * (li - 1.0) / (lo - 1.0)
                }
            }
            Coordinates::Asymmetric => x / scale,
            Coordinates::TfHalfPixelForNn => (x + 0.5) / scale,
            Coordinates::TfCropAndResize => {
                if len_out > 1 {
                    start * (li - 1.0) + x * (end - start) * (li - 1.0) / (lo - 1.0)
                } else {
                    0.5 * (start + end) * (li - 1.0)
                }
            }
        }
    }

    fn plan_axis(
        &self,
        len_in: usize,
        len_out: usize,
        scale: f64,
        start: f64,
        end: f64,
    ) -> AxisPlan {
        let mut taps = Vec::with_capacity(len_out);
        let mut outside = Vec::with_capacity(len_out);
        let last = len_in.saturating_sub(1) as f64;
        for o in 0..len_out {
            let x = self.source_coordinate(o, len_in, len_out, scale, start, end);
            let out_of_range =
                self.coordinates == Coordinates::TfCropAndResize && (x < 0.0 || x > last);
            outside.push(out_of_range);
            if out_of_range || len_in == 0 {
                taps.push(Vec::new());
                continue;
            }
            taps.push(self.taps_at(x, len_in, scale));
        }
        AxisPlan { taps, outside }
    }

    /// The (clamped index, weight) taps of coordinate `x`, zero weights dropped.
    fn taps_at(&self, x: f64, len_in: usize, scale: f64) -> Vec<(usize, f64)> {
        let clamp = |i: i64| i.clamp(0, len_in as i64 - 1) as usize;
        let x0 = x.floor();
        let t = x - x0;
        let base = x0 as i64;
        if self.mode == Mode::Nearest {
            let pick = match self.nearest {
                Nearest::RoundPreferFloor => {
                    if t <= 0.5 {
                        base
                    } else {
                        base + 1
                    }
                }
                Nearest::RoundPreferCeil => {
                    if t < 0.5 {
                        base
                    } else {
                        base + 1
                    }
                }
                Nearest::Floor => base,
                Nearest::Ceil => x.ceil() as i64,
                Nearest::Simple => {
                    if scale < 1.0 {
                        x.ceil() as i64
                    } else {
                        base
                    }
                }
            };
            return vec![(clamp(pick), 1.0)];
        }
        // Tap offsets relative to x0 and the kernel, stretched by 1/scale when antialiasing
        // a downscale.
        let s = if self.antialias { scale.min(1.0) } else { 1.0 };
        let (first, last, cubic) = match self.mode {
            Mode::Linear => {
                let first = if self.antialias {
                    (-1.0 / s).floor() as i64 + 1
                } else {
                    0
                };
                (first, 1 - first, false)
            }
            _ => {
                let first = if self.antialias {
                    (-2.0 / s).floor() as i64 + 1
                } else {
                    -1
                };
                (first, 1 - first, true)
            }
        };
        let a = self.cubic_a;
        let kernel = |d: f64| -> f64 {
            let d = d.abs();
            if cubic {
                if d <= 1.0 {
                    ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
                } else if d < 2.0 {
                    ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
                } else {
                    0.0
                }
            } else {
                (1.0 - d).max(0.0)
            }
        };
        let mut raw: Vec<(i64, f64)> = (first..=last)
            .map(|i| (base + i, kernel((i as f64 - t) * s)))
            .collect();
        if self.antialias {
            let total: f64 = raw.iter().map(|&(_, w)| w).sum();
            if total != 0.0 {
                raw.iter_mut().for_each(|(_, w)| *w /= total);
            }
        }
        if self.exclude_outside {
            for (i, w) in raw.iter_mut() {
                if *i < 0 || *i >= len_in as i64 {
                    *w = 0.0;
                }
            }
            let total: f64 = raw.iter().map(|&(_, w)| w).sum();
            if total != 0.0 {
                raw.iter_mut().for_each(|(_, w)| *w /= total);
            }
        }
        raw.into_iter()
            .filter(|&(_, w)| w != 0.0)
            .map(|(i, w)| (clamp(i), w))
            .collect()
    }
}

/// Resamples every planned axis in turn, then writes the extrapolation value where any
/// axis was out of range.
fn resample<T: Numeric>(
    a: ArrayD<T>,
    plans: &[Option<AxisPlan>],
    extrapolation: f64,
) -> OpResult<ArrayD<T>> {
    let mut current = a;
    for (axis, plan) in plans.iter().enumerate() {
        let Some(plan) = plan else {
            continue;
        };
        let mut shape = current.shape().to_vec();
        shape[axis] = plan.taps.len();
        let mut out = ArrayD::<T>::from_elem(IxDyn(&shape), T::ZERO);
        let fill = |mut dst: ndarray::ArrayViewMut1<'_, T>, src: ndarray::ArrayView1<'_, T>| {
            for (o, taps) in plan.taps.iter().enumerate() {
                let mut acc = 0.0f64;
                for &(i, w) in taps {
                    acc += w * src.get(i).map_or(0.0, |v| v.as_f64());
                }
                if let Some(slot) = dst.get_mut(o) {
                    *slot = if taps.len() == 1 && taps[0].1 == 1.0 {
                        src.get(taps[0].0).copied().unwrap_or(T::ZERO)
                    } else {
                        T::of_f64(acc)
                    };
                }
            }
        };
        let zip = Zip::from(out.lanes_mut(Axis(axis))).and(current.lanes(Axis(axis)));
        if shape.iter().product::<usize>() >= PARALLEL_ELEMENTS {
            zip.par_for_each(fill);
        } else {
            zip.for_each(fill);
        }
        current = out;
    }
    if plans.iter().flatten().any(|p| p.outside.iter().any(|&o| o)) {
        let value = T::of_f64(extrapolation);
        for (ix, v) in current.indexed_iter_mut() {
            let outside = plans.iter().enumerate().any(|(d, p)| {
                p.as_ref()
                    .is_some_and(|p| p.outside.get(ix[d]).copied().unwrap_or(false))
            });
            if outside {
                *v = value;
            }
        }
    }
    Ok(current)
}
