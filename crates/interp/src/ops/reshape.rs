//! Ops that change only the shape, not the elements: `Reshape`, `Flatten`, `Squeeze`,
//! `Unsqueeze`, `Identity`, and inference-mode `Dropout`.
//!
//! The input buffer is reused when this node is its last reader and it is in standard
//! layout, so these cost no copy on the hot path.

use ndarray::{ArrayD, IxDyn};

use crate::error::{OpError, OpResult};
use crate::ops::{normalize_axes, normalize_axis};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, try_map_value};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Reshape", 5..=MAX_ONNX_OPSET, build_reshape);
    reg.insert(ONNX, "Flatten", 1..=MAX_ONNX_OPSET, build_flatten);
    reg.insert(ONNX, "Squeeze", 1..=MAX_ONNX_OPSET, build_squeeze);
    reg.insert(ONNX, "Unsqueeze", 1..=MAX_ONNX_OPSET, build_unsqueeze);
    reg.insert(ONNX, "Identity", 1..=MAX_ONNX_OPSET, |_| {
        Ok(Box::new(Identity))
    });
    reg.insert(ONNX, "Dropout", 7..=MAX_ONNX_OPSET, |_| {
        Ok(Box::new(Dropout))
    });
}

/// `x` with a new shape of the same element count (row-major order).
pub(crate) fn reshape_value(x: Value, shape: &[usize]) -> OpResult<Value> {
    fn reshape<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> OpResult<ArrayD<T>> {
        if checked_product(shape) != Some(a.len()) {
            return Err(OpError::shape(format!(
                "cannot reshape {:?} to {:?}",
                a.shape(),
                shape
            )));
        }
        let a = if a.is_standard_layout() {
            a
        } else {
            a.as_standard_layout().into_owned()
        };
        a.into_shape_with_order(IxDyn(shape))
            .map_err(|e| OpError::shape(e.to_string()))
    }
    Ok(try_map_value!(x, a => reshape(a, shape)))
}

#[derive(Debug)]
struct Reshape {
    allow_zero: bool,
}

fn build_reshape(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let allow_zero = ctx.opset >= 14 && ctx.int("allowzero", 0)? != 0;
    Ok(Box::new(Reshape { allow_zero }))
}

impl Kernel for Reshape {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let requested = inputs.req(1, "shape")?.to_i64s("shape")?;
        let input_shape = inputs.req(0, "data")?.shape().to_vec();
        let shape = resolve_reshape(&input_shape, &requested, self.allow_zero)?;
        let x = inputs.take(0, "data")?;
        Ok(vec![reshape_value(x, &shape)?])
    }
}

/// The element count of `dims`, or `None` when it does not fit a `usize` (requested shapes
/// come from data and may hold huge dims).
fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The output dims of `Reshape`: 0 copies the input dim (unless `allow_zero`), one -1 is
/// inferred from the element count.
pub(crate) fn resolve_reshape(
    input: &[usize],
    requested: &[i64],
    allow_zero: bool,
) -> OpResult<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(requested.len());
    let mut infer = None;
    for (i, &d) in requested.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            -1 => {
                return Err(OpError::invalid(format!(
                    "shape {requested:?} has more than one -1"
                )));
            }
            0 if !allow_zero => out.push(*input.get(i).ok_or_else(|| {
                OpError::invalid(format!("shape {requested:?}: 0 at {i} past input rank"))
            })?),
            d if d >= 0 => out.push(d as usize),
            d => {
                return Err(OpError::invalid(format!(
                    "shape {requested:?} has invalid dim {d}"
                )));
            }
        }
    }
    let too_large = || OpError::shape(format!("cannot reshape {input:?} to {requested:?}"));
    if let Some(i) = infer {
        let known = checked_product(&out).ok_or_else(too_large)?;
        if known == 0 || !total.is_multiple_of(known) {
            return Err(OpError::shape(format!(
                "cannot reshape {input:?} to {requested:?}"
            )));
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = total / known;
        }
    }
    if checked_product(&out) != Some(total) {
        return Err(OpError::shape(format!(
            "cannot reshape {input:?} to {requested:?}"
        )));
    }
    Ok(out)
}

#[derive(Debug)]
struct Flatten {
    axis: i64,
}

fn build_flatten(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Flatten {
        axis: ctx.int("axis", 1)?,
    }))
}

impl Kernel for Flatten {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "input")?.shape().to_vec();
        let rank = shape.len();
        // Flatten allows axis == rank (everything goes to the first dim).
        let axis = if self.axis == rank as i64 {
            rank
        } else {
            normalize_axis(self.axis, rank.max(1))?
        };
        let (head, tail) = shape.split_at(axis.min(rank));
        let dims = [
            head.iter().product::<usize>(),
            tail.iter().product::<usize>(),
        ];
        Ok(vec![reshape_value(inputs.take(0, "input")?, &dims)?])
    }
}

#[derive(Debug)]
struct Squeeze {
    /// Axes from the attribute (opsets before 13); `None` reads the input (or squeezes all).
    axes: Option<Vec<i64>>,
}

fn build_squeeze(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.opset >= 13 {
        ctx.reject("axes", "is an input from opset 13")?;
        return Ok(Box::new(Squeeze { axes: None }));
    }
    Ok(Box::new(Squeeze {
        axes: ctx.ints("axes")?,
    }))
}

impl Kernel for Squeeze {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let axes = match (&self.axes, inputs.get(1)) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(v)) => Some(v.to_i64s("axes")?),
            (None, None) => None,
        };
        // An empty axes list means the same as none: squeeze every dim of length 1.
        let axes = axes.filter(|a| !a.is_empty());
        let shape = inputs.req(0, "data")?.shape().to_vec();
        let out: Vec<usize> = match axes {
            None => shape.iter().copied().filter(|&d| d != 1).collect(),
            Some(axes) => {
                let axes = normalize_axes(&axes, shape.len())?;
                for &a in &axes {
                    if shape.get(a) != Some(&1) {
                        return Err(OpError::shape(format!(
                            "cannot squeeze axis {a} of {shape:?}"
                        )));
                    }
                }
                shape
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect()
            }
        };
        Ok(vec![reshape_value(inputs.take(0, "data")?, &out)?])
    }
}

#[derive(Debug)]
struct Unsqueeze {
    /// Axes from the attribute (opsets before 13); `None` reads the input.
    axes: Option<Vec<i64>>,
}

fn build_unsqueeze(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.opset >= 13 {
        ctx.reject("axes", "is an input from opset 13")?;
        return Ok(Box::new(Unsqueeze { axes: None }));
    }
    let axes = ctx
        .ints("axes")?
        .ok_or_else(|| OpError::attr("axes", "is required before opset 13"))?;
    Ok(Box::new(Unsqueeze { axes: Some(axes) }))
}

impl Kernel for Unsqueeze {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let axes = match &self.axes {
            Some(a) => a.clone(),
            None => inputs.req(1, "axes")?.to_i64s("axes")?,
        };
        let shape = inputs.req(0, "data")?.shape().to_vec();
        let out_rank = shape.len() + axes.len();
        let axes = normalize_axes(&axes, out_rank)?;
        let mut rest = shape.iter();
        let out: Vec<usize> = (0..out_rank)
            .map(|i| {
                if axes.contains(&i) {
                    1
                } else {
                    rest.next().copied().unwrap_or(1)
                }
            })
            .collect();
        Ok(vec![reshape_value(inputs.take(0, "data")?, &out)?])
    }
}

#[derive(Debug)]
struct Identity;

impl Kernel for Identity {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        Ok(vec![inputs.take(0, "input")?])
    }
}

/// Inference-mode `Dropout`: the input unchanged, and an all-true mask.
#[derive(Debug)]
struct Dropout;

impl Kernel for Dropout {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        if let Some(t) = inputs.get(2)
            && t.to_f64_vec().iter().any(|&x| x != 0.0)
        {
            return Err(OpError::unsupported("Dropout in training mode"));
        }
        let x = inputs.take(0, "data")?;
        let mask = Value::Bool(ArrayD::from_elem(IxDyn(x.shape()), true));
        Ok(vec![x, mask])
    }
}
