//! Ops that move elements: `Transpose`, `Concat`, `Split`, `Slice`, `Expand`, `Tile`, `Pad`.

use ndarray::{ArrayD, Axis, IxDyn, Slice, concatenate};

use crate::error::{OpError, OpResult};
use crate::ops::generator::shape_from;
use crate::ops::{check_size, normalize_axes, normalize_axis, to_usize};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, map_value, try_map_value};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Transpose", 1..=MAX_ONNX_OPSET, build_transpose);
    reg.insert(ONNX, "Concat", 4..=MAX_ONNX_OPSET, build_concat);
    reg.insert(ONNX, "Split", 2..=MAX_ONNX_OPSET, build_split);
    reg.insert(ONNX, "Slice", 1..=MAX_ONNX_OPSET, build_slice);
    reg.insert(ONNX, "Expand", 8..=MAX_ONNX_OPSET, |_| Ok(Box::new(Expand)));
    reg.insert(ONNX, "Tile", 6..=MAX_ONNX_OPSET, |_| Ok(Box::new(Tile)));
    reg.insert(ONNX, "Pad", 2..=MAX_ONNX_OPSET, build_pad);
}

#[derive(Debug)]
struct Transpose {
    perm: Option<Vec<i64>>,
}

fn build_transpose(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Transpose {
        perm: ctx.ints("perm")?,
    }))
}

impl Kernel for Transpose {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let rank = inputs.req(0, "data")?.rank();
        let perm: Vec<usize> = match &self.perm {
            Some(p) => {
                let p = normalize_axes(p, rank)?;
                if p.len() != rank {
                    return Err(OpError::attr(
                        "perm",
                        format!("{p:?} is not a permutation of {rank} axes"),
                    ));
                }
                p
            }
            None => (0..rank).rev().collect(),
        };
        let x = inputs.take(0, "data")?;
        // A permuted view of the same buffer: no copy; consumers accept any layout.
        Ok(vec![map_value!(x, a => a.permuted_axes(IxDyn(&perm)))])
    }
}

#[derive(Debug)]
struct Concat {
    axis: i64,
}

fn build_concat(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let axis = ctx
        .opt_int("axis")?
        .ok_or_else(|| OpError::attr("axis", "is required"))?;
    Ok(Box::new(Concat { axis }))
}

impl Kernel for Concat {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let values: Vec<&Value> = (0..inputs.len()).filter_map(|i| inputs.get(i)).collect();
        let first = values.first().ok_or(OpError::MissingInput {
            index: 0,
            name: "inputs",
        })?;
        let axis = Axis(normalize_axis(self.axis, first.rank())?);
        fn join<'v, T: Clone + 'v>(
            axis: Axis,
            values: &[&'v Value],
            get: impl Fn(&'v Value) -> Option<&'v ArrayD<T>>,
        ) -> OpResult<ArrayD<T>> {
            let views = values
                .iter()
                .map(|v| {
                    get(v)
                        .map(|a| a.view())
                        .ok_or_else(|| OpError::dtype("Concat inputs differ in type"))
                })
                .collect::<OpResult<Vec<_>>>()?;
            concatenate(axis, &views).map_err(|e| OpError::shape(format!("Concat: {e}")))
        }
        let out = match first {
            Value::F32(_) => Value::F32(join(axis, &values, |v| {
                if let Value::F32(a) = v { Some(a) } else { None }
            })?),
            Value::F64(_) => Value::F64(join(axis, &values, |v| {
                if let Value::F64(a) = v { Some(a) } else { None }
            })?),
            Value::I64(_) => Value::I64(join(axis, &values, |v| {
                if let Value::I64(a) = v { Some(a) } else { None }
            })?),
            Value::I32(_) => Value::I32(join(axis, &values, |v| {
                if let Value::I32(a) = v { Some(a) } else { None }
            })?),
            Value::Bool(_) => Value::Bool(join(axis, &values, |v| {
                if let Value::Bool(a) = v {
                    Some(a)
                } else {
                    None
                }
            })?),

            Value::F16(_) => Value::F16(join(axis, &values, |v| {
                if let Value::F16(a) = v { Some(a) } else { None }
            })?),
        };
        Ok(vec![out])
    }
}

#[derive(Debug)]
struct Split {
    axis: i64,
    outputs: usize,
    /// Lengths from the `split` attribute (opsets before 13).
    lengths: Option<Vec<i64>>,
    /// The `num_outputs` attribute (opset 18).
    num_outputs: Option<usize>,
}

fn build_split(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let lengths = if ctx.opset < 13 {
        ctx.ints("split")?
    } else {
        ctx.reject("split", "is an input from opset 13")?;
        None
    };
    let num_outputs = if ctx.opset >= 18 {
        ctx.opt_int("num_outputs")?
            .map(|n| to_usize(n, "num_outputs"))
            .transpose()?
    } else {
        None
    };
    Ok(Box::new(Split {
        axis: ctx.int("axis", 0)?,
        outputs: ctx.node.outputs.len(),
        lengths,
        num_outputs,
    }))
}

impl Kernel for Split {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.req(0, "input")?;
        let axis = normalize_axis(self.axis, x.rank())?;
        let dim = x.shape().get(axis).copied().unwrap_or(0);
        let lengths: Vec<usize> = match (&self.lengths, inputs.get(1), self.num_outputs) {
            (Some(l), _, _) => l
                .iter()
                .map(|&d| to_usize(d, "split"))
                .collect::<OpResult<_>>()?,
            (None, Some(v), _) => v
                .to_i64s("split")?
                .into_iter()
                .map(|d| to_usize(d, "split"))
                .collect::<OpResult<_>>()?,
            (None, None, Some(n)) => {
                // Opset 18: chunks of ceil(dim / n), the last one smaller.
                let chunk = dim.div_ceil(n.max(1));
                (0..n)
                    .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                    .collect()
            }
            (None, None, None) => {
                let n = self.outputs.max(1);
                if dim % n != 0 {
                    return Err(OpError::shape(format!(
                        "cannot split {dim} into {n} equal parts"
                    )));
                }
                vec![dim / n; n]
            }
        };
        if lengths.iter().sum::<usize>() != dim {
            return Err(OpError::shape(format!(
                "split lengths {lengths:?} do not add up to {dim}"
            )));
        }
        if lengths.len() < self.outputs {
            return Err(OpError::shape(format!(
                "{} split lengths for {} outputs",
                lengths.len(),
                self.outputs
            )));
        }
        let mut out = Vec::with_capacity(lengths.len());
        let mut start = 0usize;
        for len in lengths {
            let piece = Slice::from(start as isize..(start + len) as isize);
            out.push(map_value!(x, a => a.slice_axis(Axis(axis), piece).to_owned()));
            start += len;
        }
        Ok(out)
    }
}

/// `starts`, `ends` and optional `axes` attributes.
type SliceAttributes = (Vec<i64>, Vec<i64>, Option<Vec<i64>>);

#[derive(Debug)]
struct SliceOp {
    /// `starts`, `ends`, `axes` attributes of opsets before 10.
    attributes: Option<SliceAttributes>,
}

fn build_slice(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.opset >= 10 {
        for name in ["starts", "ends", "axes"] {
            ctx.reject(name, "is an input from opset 10")?;
        }
        return Ok(Box::new(SliceOp { attributes: None }));
    }
    let starts = ctx
        .ints("starts")?
        .ok_or_else(|| OpError::attr("starts", "is required"))?;
    let ends = ctx
        .ints("ends")?
        .ok_or_else(|| OpError::attr("ends", "is required"))?;
    Ok(Box::new(SliceOp {
        attributes: Some((starts, ends, ctx.ints("axes")?)),
    }))
}

impl Kernel for SliceOp {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (starts, ends, axes, steps) = match &self.attributes {
            Some((s, e, a)) => (s.clone(), e.clone(), a.clone(), None),
            None => (
                inputs.req(1, "starts")?.to_i64s("starts")?,
                inputs.req(2, "ends")?.to_i64s("ends")?,
                inputs.get(3).map(|v| v.to_i64s("axes")).transpose()?,
                inputs.get(4).map(|v| v.to_i64s("steps")).transpose()?,
            ),
        };
        let shape = inputs.req(0, "data")?.shape().to_vec();
        let rank = shape.len();
        let axes = match axes {
            Some(a) => normalize_axes(&a, rank)?,
            None => (0..starts.len()).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(OpError::shape(
                "Slice starts, ends, axes and steps differ in length",
            ));
        }
        let mut slices = Vec::with_capacity(axes.len());
        for (((&axis, &start), &end), &step) in axes.iter().zip(&starts).zip(&ends).zip(&steps) {
            let dim = shape.get(axis).copied().unwrap_or(0);
            slices.push((axis, slice_range(start, end, step, dim)?));
        }
        let mut x = inputs.take(0, "data")?;
        fn cut<T>(a: &mut ArrayD<T>, slices: &[(usize, Slice)]) {
            for (axis, s) in slices {
                a.slice_axis_inplace(Axis(*axis), *s);
            }
        }
        match &mut x {
            Value::F32(a) => cut(a, &slices),
            Value::F64(a) => cut(a, &slices),
            Value::I64(a) => cut(a, &slices),
            Value::I32(a) => cut(a, &slices),
            Value::Bool(a) => cut(a, &slices),
            Value::F16(a) => cut(a, &slices),
        }
        Ok(vec![x])
    }
}

/// The ndarray slice for ONNX `start`, `end`, `step` on a dim of length `dim` (negative
/// positions count from the end; everything clamped as the spec says).
pub(crate) fn slice_range(start: i64, end: i64, step: i64, dim: usize) -> OpResult<Slice> {
    if step == 0 {
        return Err(OpError::invalid("Slice step is zero"));
    }
    let d = dim as i64;
    let fix = |x: i64| if x < 0 { x.saturating_add(d) } else { x };
    let (start, end) = (fix(start), fix(end));
    let step_isize = isize::try_from(step).map_err(|_| OpError::invalid("Slice step too large"))?;
    if step > 0 {
        let s = start.clamp(0, d);
        let e = end.clamp(0, d).max(s);
        Ok(Slice::new(s as isize, Some(e as isize), step_isize))
    } else {
        // Walk down from `start` (inclusive) to `end` (exclusive).
        let s = start.clamp(-1, d - 1);
        let e = end.clamp(-1, d - 1);
        let (lo, hi) = (e + 1, s + 1);
        let lo = lo.min(hi).max(0);
        Ok(Slice::new(
            lo as isize,
            Some(hi.max(0) as isize),
            step_isize,
        ))
    }
}

/// `Expand`: broadcast the input against a shape (the output is the broadcast of both).
#[derive(Debug)]
struct Expand;

impl Kernel for Expand {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let requested = shape_from(inputs.req(1, "shape")?, "shape")?;
        let x = inputs.req(0, "input")?;
        let shape = crate::broadcast::broadcast_shapes(x.shape(), &requested)?;
        check_size(&shape)?;
        if shape.as_slice() == x.shape() {
            return Ok(vec![inputs.take(0, "input")?]);
        }
        Ok(vec![
            try_map_value!(x, a => crate::broadcast::view_as(a, &shape).map(|v| v.to_owned())),
        ])
    }
}

/// `Tile`: repeat the input `repeats[i]` times along each axis.
#[derive(Debug)]
struct Tile;

impl Kernel for Tile {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let repeats = inputs.req(1, "repeats")?.to_i64s("repeats")?;
        let x = inputs.req(0, "input")?;
        if repeats.len() != x.rank() {
            return Err(OpError::shape(format!(
                "{} repeats for rank {}",
                repeats.len(),
                x.rank()
            )));
        }
        let repeats: Vec<usize> = repeats
            .into_iter()
            .map(|r| to_usize(r, "repeats"))
            .collect::<OpResult<_>>()?;
        let tiled: Vec<usize> = x
            .shape()
            .iter()
            .zip(&repeats)
            .map(|(&d, &r)| d.saturating_mul(r))
            .collect();
        check_size(&tiled)?;
        fn tile<T: Clone>(a: &ArrayD<T>, repeats: &[usize]) -> OpResult<ArrayD<T>> {
            let mut out = a.clone();
            for (axis, &r) in repeats.iter().enumerate() {
                if r == 1 {
                    continue;
                }
                let views = vec![out.view(); r];
                out = if r == 0 {
                    let mut shape = out.shape().to_vec();
                    if let Some(d) = shape.get_mut(axis) {
                        *d = 0;
                    }
                    ArrayD::from_shape_vec(IxDyn(&shape), Vec::new())
                        .map_err(|e| OpError::shape(e.to_string()))?
                } else {
                    concatenate(Axis(axis), &views).map_err(|e| OpError::shape(e.to_string()))?
                };
            }
            Ok(out)
        }
        Ok(vec![try_map_value!(x, a => tile(a, &repeats))])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

#[derive(Debug)]
struct Pad {
    mode: PadMode,
    /// `pads` and `value` attributes of opsets before 11.
    attributes: Option<(Vec<i64>, f32)>,
}

fn build_pad(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let mode = match ctx.string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" if ctx.opset >= 19 => PadMode::Wrap,
        other => {
            return Err(OpError::attr(
                "mode",
                format!("'{other}' is not supported at opset {}", ctx.opset),
            ));
        }
    };
    let attributes = if ctx.opset < 11 {
        let pads = ctx
            .ints("pads")?
            .ok_or_else(|| OpError::attr("pads", "is required"))?;
        Some((pads, ctx.float("value", 0.0)?))
    } else {
        None
    };
    Ok(Box::new(Pad { mode, attributes }))
}

impl Kernel for Pad {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.req(0, "data")?;
        let rank = x.rank();
        let (pads, fill, axes) = match &self.attributes {
            Some((p, v)) => (p.clone(), Some(f64::from(*v)), None),
            None => (
                inputs.req(1, "pads")?.to_i64s("pads")?,
                match inputs.get(2) {
                    Some(v) if v.len() == 1 => v.to_f64_vec().first().copied(),
                    Some(_) => return Err(OpError::shape("constant_value must be a scalar")),
                    None => None,
                },
                inputs.get(3).map(|v| v.to_i64s("axes")).transpose()?,
            ),
        };
        let axes = match axes {
            Some(a) => normalize_axes(&a, rank)?,
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(OpError::shape(format!(
                "{} pads for {} axes",
                pads.len(),
                axes.len()
            )));
        }
        let mut begin = vec![0i64; rank];
        let mut end = vec![0i64; rank];
        for (k, &axis) in axes.iter().enumerate() {
            begin[axis] = pads[k];
            end[axis] = pads[k + axes.len()];
        }
        let mode = self.mode;
        let fill = fill.unwrap_or(0.0);
        Ok(vec![match x {
            Value::F32(a) => Value::F32(pad(a, &begin, &end, mode, fill as f32)?),
            Value::F64(a) => Value::F64(pad(a, &begin, &end, mode, fill)?),
            Value::I64(a) => Value::I64(pad(a, &begin, &end, mode, fill as i64)?),
            Value::I32(a) => Value::I32(pad(a, &begin, &end, mode, fill as i32)?),
            Value::Bool(a) => Value::Bool(pad(a, &begin, &end, mode, fill != 0.0)?),
            Value::F16(a) => Value::F16(pad(a, &begin, &end, mode, half::f16::from_f64(fill))?),
        }])
    }
}

/// Pads (or, for negative pads, crops) every axis.
fn pad<T: Copy>(
    a: &ArrayD<T>,
    begin: &[i64],
    end: &[i64],
    mode: PadMode,
    fill: T,
) -> OpResult<ArrayD<T>> {
    let mut out_shape = Vec::with_capacity(a.ndim());
    // Per axis and output position: the input position to read, or None for the fill value.
    let mut sources: Vec<Vec<Option<usize>>> = Vec::with_capacity(a.ndim());
    for (axis, &d) in a.shape().iter().enumerate() {
        let (b, e) = (
            begin.get(axis).copied().unwrap_or(0),
            end.get(axis).copied().unwrap_or(0),
        );
        let len = d as i64 + b + e;
        if len < 0 {
            return Err(OpError::shape(format!(
                "pads {b},{e} crop more than axis {axis} of length {d}"
            )));
        }
        if usize::try_from(len).map_or(true, |l| l > crate::ops::MAX_ELEMENTS) {
            return Err(OpError::invalid(format!(
                "pads {b},{e} make axis {axis} too long"
            )));
        }
        if d == 0 && len > 0 && mode != PadMode::Constant {
            return Err(OpError::shape(format!("cannot {mode:?}-pad an empty axis")));
        }
        let di = d as i64;
        let map: Vec<Option<usize>> = (0..len)
            .map(|o| {
                let j = o - b;
                if (0..di).contains(&j) {
                    return Some(j as usize);
                }
                match mode {
                    PadMode::Constant => None,
                    PadMode::Edge => Some(j.clamp(0, di - 1) as usize),
                    PadMode::Wrap => Some(j.rem_euclid(di) as usize),
                    PadMode::Reflect if di == 1 => Some(0),
                    PadMode::Reflect => {
                        let period = 2 * (di - 1);
                        let r = j.rem_euclid(period);
                        Some((if r < di { r } else { period - r }) as usize)
                    }
                }
            })
            .collect();
        out_shape.push(len as usize);
        check_size(&out_shape)?;
        sources.push(map);
    }
    let mut index = vec![0usize; a.ndim()];
    Ok(ArrayD::from_shape_fn(IxDyn(&out_shape), |ix| {
        for (axis, slot) in index.iter_mut().enumerate() {
            match sources
                .get(axis)
                .and_then(|m| m.get(ix[axis]))
                .copied()
                .flatten()
            {
                Some(j) => *slot = j,
                None => return fill,
            }
        }
        a.get(IxDyn(&index)).copied().unwrap_or(fill)
    }))
}
