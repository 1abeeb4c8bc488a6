//! Normalizations: ONNX `LayerNormalization`, `BatchNormalization` (inference),
//! `InstanceNormalization`, and ONNX Runtime's `SkipLayerNormalization`, and the RMS forms
//! `SimplifiedLayerNormalization` (ONNX domain, as ONNX Runtime registers it), ONNX's
//! `RMSNormalization` (opset 23) and
//! `SkipSimplifiedLayerNormalization` (`com.microsoft`).
//!
//! Statistics are accumulated in `f64` and use two passes (mean, then squared deviations),
//! so results are at least as accurate as ONNX Runtime's one-pass `E[x²] - E[x]²`.

use ndarray::{ArrayD, Axis, IxDyn};
use rayon::prelude::*;

use crate::broadcast::{PARALLEL_ELEMENTS, view_as};
use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::ops::normalize_axis;
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, MS, ONNX, Registry};
use crate::value::{Value, ValueElem, typed};

pub(crate) fn register(reg: &mut Registry) {
    // Below opset 17 this name is ONNX Runtime's contrib schema (registered in the ONNX
    // domain), which the ONNX op later adopted unchanged.
    reg.insert(
        ONNX,
        "LayerNormalization",
        1..=MAX_ONNX_OPSET,
        build_layer_norm,
    );
    reg.insert(
        ONNX,
        "BatchNormalization",
        7..=MAX_ONNX_OPSET,
        build_batch_norm,
    );
    reg.insert(
        ONNX,
        "InstanceNormalization",
        6..=MAX_ONNX_OPSET,
        build_instance_norm,
    );
    reg.insert(MS, "SkipLayerNormalization", 1..=1, build_skip_layer_norm);
    // ONNX Runtime registers this contrib op in the ONNX domain at version 1.
    reg.insert(
        ONNX,
        "SimplifiedLayerNormalization",
        1..=MAX_ONNX_OPSET,
        build_rms_norm,
    );
    // ONNX's own RMS norm (opset 23): the same computation with one output; `stash_type`
    // is not read, the statistics are in f64.
    reg.insert(
        ONNX,
        "RMSNormalization",
        23..=MAX_ONNX_OPSET,
        build_rms_norm,
    );
    reg.insert(
        MS,
        "SkipSimplifiedLayerNormalization",
        1..=1,
        build_skip_rms_norm,
    );
}

/// Normalizes each contiguous row of `data` in place by its root mean square:
/// `x / sqrt(mean(x^2) + eps) * scale`. Returns each row's `1 / sqrt(mean(x^2) + eps)`.
fn rms_normalize_rows<T: Float>(data: &mut [T], row_len: usize, scale: &[T], eps: f64) -> Vec<f64> {
    if row_len == 0 {
        return Vec::new();
    }
    let f = |row: &mut [T]| {
        let n = row.len().max(1) as f64;
        let ms = row.iter().map(|&x| x.as_f64().powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (ms + eps).sqrt();
        let i = T::of_f64(inv);
        for (x, &s) in row.iter_mut().zip(scale) {
            *x = *x * i * s;
        }
        inv
    };
    if data.len() >= PARALLEL_ELEMENTS {
        data.par_chunks_mut(row_len).map(f).collect()
    } else {
        data.chunks_mut(row_len).map(f).collect()
    }
}

/// Statistics of one row: its mean and `1 / sqrt(var + epsilon)`.
fn row_stats<T: Float>(row: &[T], epsilon: f64) -> (f64, f64) {
    let n = row.len().max(1) as f64;
    let mean = row.iter().map(|&x| x.as_f64()).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&x| (x.as_f64() - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

/// Normalizes each contiguous row of `data` in place: `(x - mean) * inv_std * scale + bias`.
/// Returns each row's (mean, inv_std).
fn normalize_rows<T: Float>(
    data: &mut [T],
    row_len: usize,
    scale: &[T],
    bias: Option<&[T]>,
    eps: f64,
) -> Vec<(f64, f64)> {
    if row_len == 0 {
        return Vec::new();
    }
    let f = |row: &mut [T]| {
        let (mean, inv) = row_stats(row, eps);
        let (m, i) = (T::of_f64(mean), T::of_f64(inv));
        match bias {
            Some(b) => {
                for ((x, &s), &b) in row.iter_mut().zip(scale).zip(b) {
                    *x = (*x - m) * i * s + b;
                }
            }
            None => {
                for (x, &s) in row.iter_mut().zip(scale) {
                    *x = (*x - m) * i * s;
                }
            }
        }
        (mean, inv)
    };
    if data.len() >= PARALLEL_ELEMENTS {
        data.par_chunks_mut(row_len).map(f).collect()
    } else {
        data.chunks_mut(row_len).map(f).collect()
    }
}

/// `v` broadcast to `shape` and flattened (row-major).
fn flat_broadcast<T: ValueElem>(v: &Value, shape: &[usize], what: &str) -> OpResult<Vec<T>> {
    let a = typed::<T>(v, what)?;
    Ok(view_as(a, shape)?.iter().copied().collect())
}

/// `x` in standard layout (moved, or copied when it is not).
fn standard<T: Clone>(a: ArrayD<T>) -> ArrayD<T> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

#[derive(Debug)]
struct LayerNorm {
    axis: i64,
    epsilon: f64,
}

fn build_layer_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(LayerNorm {
        axis: ctx.int("axis", -1)?,
        epsilon: f64::from(ctx.float("epsilon", 1e-5)?),
    }))
}

impl Kernel for LayerNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "X")?, T => self.apply::<T>(inputs), "LayerNormalization needs float input")
    }
}

impl LayerNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "X")?.shape().to_vec();
        let axis = normalize_axis(self.axis, shape.len())?;
        let norm_shape = &shape[axis..];
        let scale = flat_broadcast::<T>(inputs.req(1, "Scale")?, norm_shape, "Scale")?;
        let bias = inputs
            .get(2)
            .map(|b| flat_broadcast::<T>(b, norm_shape, "B"))
            .transpose()?;
        let mut x = standard(crate::value::typed_owned::<T>(inputs.take(0, "X")?, "X")?);
        let row_len: usize = norm_shape.iter().product();
        let stats = match x.as_slice_mut() {
            Some(data) => normalize_rows(data, row_len, &scale, bias.as_deref(), self.epsilon),
            None => return Err(OpError::shape("LayerNormalization input not contiguous")),
        };
        let stat_shape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if i < axis { d } else { 1 })
            .collect();
        let (mean, inv): (Vec<T>, Vec<T>) = stats
            .iter()
            .map(|&(m, i)| (T::of_f64(m), T::of_f64(i)))
            .unzip();
        let mean = ArrayD::from_shape_vec(IxDyn(&stat_shape), mean)
            .map_err(|e| OpError::shape(e.to_string()))?;
        let inv = ArrayD::from_shape_vec(IxDyn(&stat_shape), inv)
            .map_err(|e| OpError::shape(e.to_string()))?;
        Ok(vec![T::wrap(x), T::wrap(mean), T::wrap(inv)])
    }
}

/// ONNX Runtime's `SimplifiedLayerNormalization` (RMSNorm): `x / sqrt(mean(x^2) + eps) *
/// scale` over the axes from `axis` on. Outputs: the normalized value and the per-row
/// `1 / sqrt(mean(x^2) + eps)` (shape of the input with the normalized dims 1).
#[derive(Debug)]
struct RmsNorm {
    axis: i64,
    epsilon: f64,
}

fn build_rms_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(RmsNorm {
        axis: ctx.int("axis", -1)?,
        epsilon: f64::from(ctx.float("epsilon", 1e-5)?),
    }))
}

impl Kernel for RmsNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        match inputs.req(0, "X")? {
            Value::F32(_) => self.apply::<f32>(inputs),
            Value::F64(_) => self.apply::<f64>(inputs),
            other => Err(OpError::dtype(format!(
                "SimplifiedLayerNormalization needs float input, got {}",
                other.dtype()
            ))),
        }
    }
}

impl RmsNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "X")?.shape().to_vec();
        let axis = normalize_axis(self.axis, shape.len())?;
        let norm_shape = &shape[axis..];
        let scale = flat_broadcast::<T>(inputs.req(1, "scale")?, norm_shape, "scale")?;
        let mut x = standard(crate::value::typed_owned::<T>(inputs.take(0, "X")?, "X")?);
        let row_len: usize = norm_shape.iter().product();
        let inv = match x.as_slice_mut() {
            Some(data) => rms_normalize_rows(data, row_len, &scale, self.epsilon),
            None => {
                return Err(OpError::shape(
                    "SimplifiedLayerNormalization input not contiguous",
                ));
            }
        };
        let stat_shape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if i < axis { d } else { 1 })
            .collect();
        let inv =
            ArrayD::from_shape_vec(IxDyn(&stat_shape), inv.into_iter().map(T::of_f64).collect())
                .map_err(|e| OpError::shape(e.to_string()))?;
        Ok(vec![T::wrap(x), T::wrap(inv)])
    }
}

/// ONNX Runtime's `SkipLayerNormalization`: `LN(input + skip + bias)` over the last axis.
///
/// Outputs: the normalized value, the per-row mean and inverse standard deviation (shape
/// of the input with the last dim 1; ONNX Runtime's CPU kernel leaves these unset), and
/// `input + skip + bias` before normalization. `skip` may have fewer leading dims than
/// the input (it repeats, as in ONNX Runtime: `[B,S,H]`, `[1,S,H]` or `[S,H]`).
///
/// With `simplified` it is `SkipSimplifiedLayerNormalization`: RMSNorm of the sum, inputs
/// `(input, skip, gamma, bias)` (no beta); output 1 (mean) is not defined there and is
/// returned as zeros.
#[derive(Debug)]
struct SkipLayerNorm {
    epsilon: f64,
    simplified: bool,
}

fn build_skip_layer_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(SkipLayerNorm {
        epsilon: f64::from(ctx.float("epsilon", 1e-12)?),
        simplified: false,
    }))
}

fn build_skip_rms_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(SkipLayerNorm {
        epsilon: f64::from(ctx.float("epsilon", 1e-12)?),
        simplified: true,
    }))
}

impl Kernel for SkipLayerNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "input")?, T => self.apply::<T>(inputs), "SkipLayerNormalization needs float input")
    }
}

impl SkipLayerNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "input")?.shape().to_vec();
        let hidden = *shape
            .last()
            .ok_or_else(|| OpError::shape("input must have at least one dim"))?;
        if shape.len() < 2 {
            return Err(OpError::shape(format!(
                "input must be 2-D or 3-D, got {shape:?}"
            )));
        }
        let vector = |i: usize, name: &'static str| -> OpResult<Option<Vec<T>>> {
            match inputs.get(i) {
                None => Ok(None),
                Some(v) if v.shape() == [hidden] => {
                    Ok(Some(typed::<T>(v, name)?.iter().copied().collect()))
                }
                Some(v) => Err(OpError::shape(format!(
                    "{name} must be [{hidden}], got {:?}",
                    v.shape()
                ))),
            }
        };
        let gamma = vector(2, "gamma")?.ok_or(OpError::MissingInput {
            index: 2,
            name: "gamma",
        })?;
        let (beta, bias) = if self.simplified {
            (None, vector(3, "bias")?)
        } else {
            (vector(3, "beta")?, vector(4, "bias")?)
        };
        let skip_value = inputs.req(1, "skip")?;
        let skip = typed::<T>(skip_value, "skip")?;
        let skip_shape = skip.shape();
        let fits = skip_shape.last() == Some(&hidden)
            && skip_shape.len() <= shape.len()
            && shape.ends_with(
                skip_shape
                    .iter()
                    .skip_while(|&&d| d == 1)
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice(),
            );
        if !fits {
            return Err(OpError::shape(format!(
                "skip {skip_shape:?} does not fit input {shape:?}"
            )));
        }
        let skip_flat: Vec<T> = skip.iter().copied().collect();
        let mut x = standard(crate::value::typed_owned::<T>(
            inputs.take(0, "input")?,
            "input",
        )?);
        let data = x
            .as_slice_mut()
            .ok_or_else(|| OpError::shape("input not contiguous"))?;
        // input + skip (repeating) + bias.
        let period = skip_flat.len().max(1);
        for (chunk, _) in data.chunks_mut(period).zip(0..) {
            for (v, &s) in chunk.iter_mut().zip(&skip_flat) {
                *v = *v + s;
            }
        }
        if let Some(b) = &bias {
            for row in data.chunks_mut(hidden) {
                for (v, &b) in row.iter_mut().zip(b) {
                    *v = *v + b;
                }
            }
        }
        let sum = T::wrap(x.clone());
        let data = x
            .as_slice_mut()
            .ok_or_else(|| OpError::shape("input not contiguous"))?;
        let stats = if self.simplified {
            rms_normalize_rows(data, hidden, &gamma, self.epsilon)
                .into_iter()
                .map(|inv| (0.0, inv))
                .collect()
        } else {
            normalize_rows(data, hidden, &gamma, beta.as_deref(), self.epsilon)
        };
        let mut stat_shape = shape.clone();
        if let Some(last) = stat_shape.last_mut() {
            *last = 1;
        }
        let (mean, inv): (Vec<T>, Vec<T>) = stats
            .iter()
            .map(|&(m, i)| (T::of_f64(m), T::of_f64(i)))
            .unzip();
        let mean = ArrayD::from_shape_vec(IxDyn(&stat_shape), mean)
            .map_err(|e| OpError::shape(e.to_string()))?;
        let inv = ArrayD::from_shape_vec(IxDyn(&stat_shape), inv)
            .map_err(|e| OpError::shape(e.to_string()))?;
        Ok(vec![T::wrap(x), T::wrap(mean), T::wrap(inv), sum])
    }
}

/// Inference-mode `BatchNormalization` over axis 1 with running statistics.
#[derive(Debug)]
struct BatchNorm {
    epsilon: f64,
}

fn build_batch_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.opset < 9 && ctx.int("spatial", 1)? == 0 {
        return Err(OpError::unsupported("BatchNormalization with spatial = 0"));
    }
    if ctx.opset >= 14 && ctx.int("training_mode", 0)? != 0 {
        return Err(OpError::unsupported("BatchNormalization in training mode"));
    }
    if ctx.node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(OpError::unsupported(
            "BatchNormalization training outputs (running mean/var)",
        ));
    }
    Ok(Box::new(BatchNorm {
        epsilon: f64::from(ctx.float("epsilon", 1e-5)?),
    }))
}

impl Kernel for BatchNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "X")?, T => self.apply::<T>(inputs), "BatchNormalization needs float input")
    }
}

impl BatchNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "X")?.shape().to_vec();
        let c = *shape
            .get(1)
            .ok_or_else(|| OpError::shape("X must have a channel axis"))?;
        let per_channel = |i: usize, name: &'static str| -> OpResult<Vec<f64>> {
            let v = inputs.req(i, name)?;
            if v.shape() != [c] {
                return Err(OpError::shape(format!(
                    "{name} must be [{c}], got {:?}",
                    v.shape()
                )));
            }
            Ok(typed::<T>(v, name)?.iter().map(|&x| x.as_f64()).collect())
        };
        let (scale, bias, mean, var) = (
            per_channel(1, "scale")?,
            per_channel(2, "B")?,
            per_channel(3, "input_mean")?,
            per_channel(4, "input_var")?,
        );
        let mut x = crate::value::typed_owned::<T>(inputs.take(0, "X")?, "X")?;
        for mut image in x.axis_iter_mut(Axis(0)) {
            for (ch, mut plane) in image.axis_iter_mut(Axis(0)).enumerate() {
                let k = scale.get(ch).copied().unwrap_or(1.0)
                    / (var.get(ch).copied().unwrap_or(1.0) + self.epsilon).sqrt();
                let shift =
                    bias.get(ch).copied().unwrap_or(0.0) - mean.get(ch).copied().unwrap_or(0.0) * k;
                let (k, shift) = (T::of_f64(k), T::of_f64(shift));
                plane.mapv_inplace(|v| v * k + shift);
            }
        }
        Ok(vec![T::wrap(x)])
    }
}

/// `InstanceNormalization`: per sample and channel, normalize over the spatial dims.
#[derive(Debug)]
struct InstanceNorm {
    epsilon: f64,
}

fn build_instance_norm(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(InstanceNorm {
        epsilon: f64::from(ctx.float("epsilon", 1e-5)?),
    }))
}

impl Kernel for InstanceNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "input")?, T => self.apply::<T>(inputs), "InstanceNormalization needs float input")
    }
}

impl InstanceNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "input")?.shape().to_vec();
        if shape.len() < 3 {
            return Err(OpError::shape(format!(
                "input must be [N, C, ...], got {shape:?}"
            )));
        }
        let c = shape[1];
        let scale = flat_broadcast::<T>(inputs.req(1, "scale")?, &[c], "scale")?;
        let bias = flat_broadcast::<T>(inputs.req(2, "B")?, &[c], "B")?;
        let mut x = standard(crate::value::typed_owned::<T>(
            inputs.take(0, "input")?,
            "input",
        )?);
        let plane: usize = shape[2..].iter().product();
        let data = x
            .as_slice_mut()
            .ok_or_else(|| OpError::shape("input not contiguous"))?;
        if plane > 0 {
            for (i, row) in data.chunks_mut(plane).enumerate() {
                let ch = i % c.max(1);
                let (s, b) = (
                    scale.get(ch).copied().unwrap_or(T::ONE),
                    bias.get(ch).copied().unwrap_or(T::ZERO),
                );
                let (mean, inv) = row_stats(row, self.epsilon);
                let (m, iv) = (T::of_f64(mean), T::of_f64(inv));
                for v in row.iter_mut() {
                    *v = (*v - m) * iv * s + b;
                }
            }
        }
        Ok(vec![T::wrap(x)])
    }
}
