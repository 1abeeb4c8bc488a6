//! `Softmax`, `LogSoftmax`, `Hardmax`.
//!
//! Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalized over
//! the whole trailing block; from opset 13 over the single axis `axis` (default -1).

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::broadcast::PARALLEL_ELEMENTS;
use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::ops::normalize_axis;
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    for name in ["Softmax", "LogSoftmax", "Hardmax"] {
        reg.insert(ONNX, name, 1..=MAX_ONNX_OPSET, build_softmax);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

#[derive(Debug)]
struct Softmax {
    kind: Kind,
    axis: i64,
    /// Opsets before 13: normalize over the flattened block `[axis..]`.
    coerce_2d: bool,
}

fn build_softmax(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let kind = match ctx.node.op_type.as_str() {
        "Softmax" => Kind::Softmax,
        "LogSoftmax" => Kind::LogSoftmax,
        "Hardmax" => Kind::Hardmax,
        other => return Err(OpError::unsupported(format!("{other} is not a softmax op"))),
    };
    let coerce_2d = ctx.opset < 13;
    let axis = ctx.int("axis", if coerce_2d { 1 } else { -1 })?;
    Ok(Box::new(Softmax {
        kind,
        axis,
        coerce_2d,
    }))
}

impl Kernel for Softmax {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.take(0, "input")?;
        let out = match x {
            Value::F32(a) => Value::F32(self.apply(a)?),
            Value::F64(a) => Value::F64(self.apply(a)?),
            other => {
                return Err(OpError::dtype(format!(
                    "{:?} needs float input, got {}",
                    self.kind,
                    other.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

impl Softmax {
    fn apply<T: Float>(&self, a: ArrayD<T>) -> OpResult<ArrayD<T>> {
        let rank = a.ndim();
        if self.coerce_2d {
            let axis = if self.axis == rank as i64 {
                rank
            } else {
                normalize_axis(self.axis, rank.max(1))?
            };
            let row_len: usize = a.shape()[axis.min(rank)..].iter().product();
            let shape = a.shape().to_vec();
            let mut a = if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            };
            if let Some(data) = a.as_slice_mut() {
                normalize_rows(data, row_len, self.kind);
            }
            return a
                .into_shape_with_order(IxDyn(&shape))
                .map_err(|e| OpError::shape(e.to_string()));
        }
        let axis = normalize_axis(self.axis, rank)?;
        let row_len = a.shape()[axis];
        if axis + 1 == rank && a.is_standard_layout() {
            let mut a = a;
            if let Some(data) = a.as_slice_mut() {
                normalize_rows(data, row_len, self.kind);
            }
            return Ok(a);
        }
        // Move the axis last, normalize contiguous rows, move it back.
        let mut perm: Vec<usize> = (0..rank).filter(|&i| i != axis).collect();
        perm.push(axis);
        let mut moved = a
            .permuted_axes(IxDyn(&perm))
            .as_standard_layout()
            .into_owned();
        if let Some(data) = moved.as_slice_mut() {
            normalize_rows(data, row_len, self.kind);
        }
        let mut inverse = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(moved.permuted_axes(IxDyn(&inverse)))
    }
}

/// Normalizes each contiguous row of `row_len` elements in place.
fn normalize_rows<T: Float>(data: &mut [T], row_len: usize, kind: Kind) {
    if row_len == 0 {
        return;
    }
    let f = |row: &mut [T]| match kind {
        Kind::Softmax => softmax_row(row),
        Kind::LogSoftmax => log_softmax_row(row),
        Kind::Hardmax => hardmax_row(row),
    };
    if data.len() >= PARALLEL_ELEMENTS {
        data.par_chunks_mut(row_len).for_each(f);
    } else {
        data.chunks_mut(row_len).for_each(f);
    }
}

/// `exp(x - max) / sum`. A row of all -inf gives NaN, as in the ONNX definition.
pub(crate) fn softmax_row<T: Float>(row: &mut [T]) {
    let max = row
        .iter()
        .fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    let mut sum = T::ZERO;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum = sum + *x;
    }
    let inv = T::ONE / sum;
    for x in row.iter_mut() {
        *x = *x * inv;
    }
}

fn log_softmax_row<T: Float>(row: &mut [T]) {
    let max = row
        .iter()
        .fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    let sum = row.iter().fold(T::ZERO, |s, &x| s + (x - max).exp());
    let log_sum = sum.ln();
    for x in row.iter_mut() {
        *x = *x - max - log_sum;
    }
}

fn hardmax_row<T: Float>(row: &mut [T]) {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if row.get(best).is_some_and(|&b| x > b) {
            best = i;
        }
    }
    for (i, x) in row.iter_mut().enumerate() {
        *x = if i == best { T::ONE } else { T::ZERO };
    }
}
