//! Reductions and scans: `Reduce*`, `ArgMax`/`ArgMin`, `CumSum`.
//!
//! Axes are an attribute before opset 18 (before 13 for `ReduceSum`) and an input after.
//! Every reduction moves the reduced axes last (a copy only when they are not already
//! last and contiguous), then reduces contiguous rows, in parallel when there are many.

use ndarray::{ArrayD, Axis, IxDyn};
use rayon::prelude::*;

use crate::broadcast::PARALLEL_ELEMENTS;
use crate::elem::Numeric;
use crate::error::{OpError, OpResult};
use crate::ops::{normalize_axes, normalize_axis};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    for name in [
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
    ] {
        reg.insert(ONNX, name, 1..=MAX_ONNX_OPSET, build_reduce);
    }
    reg.insert(ONNX, "ArgMax", 1..=MAX_ONNX_OPSET, build_arg);
    reg.insert(ONNX, "ArgMin", 1..=MAX_ONNX_OPSET, build_arg);
    reg.insert(ONNX, "CumSum", 11..=MAX_ONNX_OPSET, build_cumsum);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReduceOp {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

#[derive(Debug)]
struct Reduce {
    op: ReduceOp,
    keep_dims: bool,
    /// From the attribute (older opsets); `None` reads the optional input.
    axes_attribute: Option<Vec<i64>>,
    axes_from_input: bool,
    noop_with_empty_axes: bool,
}

fn build_reduce(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let op = match ctx.node.op_type.as_str() {
        "ReduceMean" => ReduceOp::Mean,
        "ReduceSum" => ReduceOp::Sum,
        "ReduceMax" => ReduceOp::Max,
        "ReduceMin" => ReduceOp::Min,
        "ReduceProd" => ReduceOp::Prod,
        "ReduceL1" => ReduceOp::L1,
        "ReduceL2" => ReduceOp::L2,
        "ReduceLogSum" => ReduceOp::LogSum,
        "ReduceLogSumExp" => ReduceOp::LogSumExp,
        "ReduceSumSquare" => ReduceOp::SumSquare,
        other => return Err(OpError::unsupported(format!("{other} is not a reduction"))),
    };
    let axes_from_input = if op == ReduceOp::Sum {
        ctx.opset >= 13
    } else {
        ctx.opset >= 18
    };
    let axes_attribute = if axes_from_input {
        ctx.reject("axes", "is an input at this opset")?;
        None
    } else {
        ctx.ints("axes")?
    };
    Ok(Box::new(Reduce {
        op,
        keep_dims: ctx.int("keepdims", 1)? != 0,
        axes_attribute,
        axes_from_input,
        noop_with_empty_axes: axes_from_input && ctx.int("noop_with_empty_axes", 0)? != 0,
    }))
}

impl Kernel for Reduce {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let axes = if self.axes_from_input {
            inputs.get(1).map(|v| v.to_i64s("axes")).transpose()?
        } else {
            self.axes_attribute.clone()
        };
        let x = inputs.req(0, "data")?;
        let rank = x.rank();
        let axes = match axes {
            Some(a) if !a.is_empty() => normalize_axes(&a, rank)?,
            _ if self.noop_with_empty_axes => return Ok(vec![inputs.take(0, "data")?]),
            _ => (0..rank).collect(),
        };
        let (op, keep) = (self.op, self.keep_dims);
        Ok(vec![match x {
            Value::F32(a) => Value::F32(reduce(a, &axes, keep, op)),
            Value::F64(a) => Value::F64(reduce(a, &axes, keep, op)),
            Value::I64(a) => Value::I64(reduce(a, &axes, keep, op)),
            Value::I32(a) => Value::I32(reduce(a, &axes, keep, op)),
            Value::Bool(_) => return Err(OpError::dtype(format!("{op:?} does not accept bool"))),
            Value::F16(_) => return Err(crate::ops::f16_unwidened()),
        }])
    }
}

/// `a` with the reduced axes moved last, as contiguous rows of `row_len` elements, plus
/// the shape of the result.
fn rows_of<'a, T: Clone>(
    a: &'a ArrayD<T>,
    axes: &[usize],
    keep_dims: bool,
) -> (ndarray::CowArray<'a, T, IxDyn>, usize, Vec<usize>) {
    let rank = a.ndim();
    let kept: Vec<usize> = (0..rank).filter(|i| !axes.contains(i)).collect();
    let mut sorted_axes = axes.to_vec();
    sorted_axes.sort_unstable();
    let perm: Vec<usize> = kept.iter().chain(&sorted_axes).copied().collect();
    let row_len: usize = sorted_axes.iter().map(|&i| a.shape()[i]).product();
    let out_shape: Vec<usize> = if keep_dims {
        (0..rank)
            .map(|i| if axes.contains(&i) { 1 } else { a.shape()[i] })
            .collect()
    } else {
        kept.iter().map(|&i| a.shape()[i]).collect()
    };
    let moved = a.view().permuted_axes(IxDyn(&perm));
    let rows = if moved.is_standard_layout() {
        ndarray::CowArray::from(moved)
    } else {
        ndarray::CowArray::from(moved.as_standard_layout().into_owned())
    };
    (rows, row_len, out_shape)
}

/// Applies `f` to every contiguous row (in parallel for large inputs).
fn reduce_rows<T, U, F>(data: &[T], row_len: usize, rows: usize, f: F) -> Vec<U>
where
    T: Sync,
    U: Send,
    F: Fn(&[T]) -> U + Send + Sync,
{
    if row_len == 0 {
        return (0..rows).map(|_| f(&[])).collect();
    }
    if data.len() >= PARALLEL_ELEMENTS && rows > 1 {
        data.par_chunks(row_len).map(&f).collect()
    } else {
        data.chunks(row_len).map(f).collect()
    }
}

fn reduce<T: Numeric>(a: &ArrayD<T>, axes: &[usize], keep_dims: bool, op: ReduceOp) -> ArrayD<T> {
    let (rows, row_len, out_shape) = rows_of(a, axes, keep_dims);
    let count: usize = out_shape.iter().product();
    let data = rows.as_slice().unwrap_or(&[]);
    let n = T::of_f64(row_len as f64);
    let sum = |r: &[T]| r.iter().fold(T::ZERO, |acc, &x| acc.plus(x));
    let values: Vec<T> = match op {
        ReduceOp::Sum => reduce_rows(data, row_len, count, sum),
        ReduceOp::Mean => reduce_rows(data, row_len, count, |r| sum(r).divided_by(n)),
        ReduceOp::Max => reduce_rows(data, row_len, count, |r| {
            r.iter().fold(T::lowest(), |m, &x| m.max_nan(x))
        }),
        ReduceOp::Min => reduce_rows(data, row_len, count, |r| {
            r.iter().fold(T::highest(), |m, &x| m.min_nan(x))
        }),
        ReduceOp::Prod => reduce_rows(data, row_len, count, |r| {
            r.iter().fold(T::ONE, |acc, &x| acc.times(x))
        }),
        ReduceOp::L1 => reduce_rows(data, row_len, count, |r| {
            r.iter().fold(T::ZERO, |acc, &x| acc.plus(x.absolute()))
        }),
        ReduceOp::SumSquare => reduce_rows(data, row_len, count, |r| {
            r.iter().fold(T::ZERO, |acc, &x| acc.plus(x.times(x)))
        }),
        ReduceOp::L2 => reduce_rows(data, row_len, count, |r| {
            T::of_f64(
                r.iter()
                    .fold(0.0f64, |acc, &x| acc + x.as_f64() * x.as_f64())
                    .sqrt(),
            )
        }),
        ReduceOp::LogSum => reduce_rows(data, row_len, count, |r| T::of_f64(sum(r).as_f64().ln())),
        ReduceOp::LogSumExp => reduce_rows(data, row_len, count, |r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x.as_f64()));
            if m.is_infinite() {
                return T::of_f64(m);
            }
            T::of_f64(m + r.iter().map(|&x| (x.as_f64() - m).exp()).sum::<f64>().ln())
        }),
    };
    // `values` has one entry per output element, so the shape always fits.
    ArrayD::from_shape_vec(IxDyn(&out_shape), values)
        .unwrap_or_else(|_| ArrayD::from_elem(IxDyn(&out_shape), T::ZERO))
}

#[derive(Debug)]
struct Arg {
    max: bool,
    axis: i64,
    keep_dims: bool,
    select_last: bool,
}

fn build_arg(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Arg {
        max: ctx.node.op_type == "ArgMax",
        axis: ctx.int("axis", 0)?,
        keep_dims: ctx.int("keepdims", 1)? != 0,
        select_last: ctx.opset >= 12 && ctx.int("select_last_index", 0)? != 0,
    }))
}

impl Kernel for Arg {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.req(0, "data")?;
        let axis = normalize_axis(self.axis, x.rank())?;
        let out = match x {
            Value::F32(a) => arg(a, axis, self),
            Value::F64(a) => arg(a, axis, self),
            Value::I64(a) => arg(a, axis, self),
            Value::I32(a) => arg(a, axis, self),
            Value::Bool(_) => return Err(OpError::dtype("ArgMax/ArgMin do not accept bool")),
            Value::F16(_) => return Err(crate::ops::f16_unwidened()),
        };
        Ok(vec![Value::I64(out?)])
    }
}

fn arg<T: Numeric>(a: &ArrayD<T>, axis: usize, how: &Arg) -> OpResult<ArrayD<i64>> {
    let (rows, row_len, out_shape) = rows_of(a, &[axis], how.keep_dims);
    if row_len == 0 {
        return Err(OpError::shape("ArgMax/ArgMin over an empty axis"));
    }
    let count: usize = out_shape.iter().product();
    let data = rows.as_slice().unwrap_or(&[]);
    let (max, last) = (how.max, how.select_last);
    let values = reduce_rows(data, row_len, count, |r| {
        let mut best = 0usize;
        for (i, &x) in r.iter().enumerate().skip(1) {
            let b = r[best];
            let better = if max {
                x > b || (last && x == b)
            } else {
                x < b || (last && x == b)
            };
            if better {
                best = i;
            }
        }
        best as i64
    });
    ArrayD::from_shape_vec(IxDyn(&out_shape), values).map_err(|e| OpError::shape(e.to_string()))
}

#[derive(Debug)]
struct CumSum {
    exclusive: bool,
    reverse: bool,
}

fn build_cumsum(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(CumSum {
        exclusive: ctx.int("exclusive", 0)? != 0,
        reverse: ctx.int("reverse", 0)? != 0,
    }))
}

impl Kernel for CumSum {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let axis_value = inputs.req(1, "axis")?.to_i64s("axis")?;
        let axis = *axis_value
            .first()
            .ok_or_else(|| OpError::shape("CumSum axis must be a scalar"))?;
        let x = inputs.take(0, "x")?;
        let axis = normalize_axis(axis, x.rank())?;
        let (exclusive, reverse) = (self.exclusive, self.reverse);
        Ok(vec![match x {
            Value::F32(a) => Value::F32(cumsum(a, axis, exclusive, reverse)),
            Value::F64(a) => Value::F64(cumsum(a, axis, exclusive, reverse)),
            Value::I64(a) => Value::I64(cumsum(a, axis, exclusive, reverse)),
            Value::I32(a) => Value::I32(cumsum(a, axis, exclusive, reverse)),
            Value::Bool(_) => return Err(OpError::dtype("CumSum does not accept bool")),
            Value::F16(_) => return Err(crate::ops::f16_unwidened()),
        }])
    }
}

fn cumsum<T: Numeric>(mut a: ArrayD<T>, axis: usize, exclusive: bool, reverse: bool) -> ArrayD<T> {
    for mut lane in a.lanes_mut(Axis(axis)) {
        let mut acc = T::ZERO;
        let mut step = |x: &mut T| {
            let v = *x;
            if exclusive {
                *x = acc;
                acc = acc.plus(v);
            } else {
                acc = acc.plus(v);
                *x = acc;
            }
        };
        if reverse {
            lane.iter_mut().rev().for_each(&mut step);
        } else {
            lane.iter_mut().for_each(&mut step);
        }
    }
    a
}
