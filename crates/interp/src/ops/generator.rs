//! Ops that make values from attributes or shapes: `Constant`, `ConstantOfShape`, `Range`,
//! `Shape`, `Size`, `EyeLike`, `Trilu`.

use ndarray::{ArrayD, IxDyn};
use transfuse_ir::DataType;

use crate::elem::Numeric;
use crate::error::{OpError, OpResult};
use crate::ops::to_usize;
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, ValueElem, map_value};

/// Largest element count `Range` and `ConstantOfShape` will allocate (guards against
/// absurd sizes from bad inputs).
const MAX_GENERATED: usize = 1 << 31;

pub(crate) fn register(reg: &mut Registry) {
    // `Constant` is evaluated while preparing (see `constant_value`); this entry only lets
    // lookups succeed for callers that list supported ops.
    reg.insert(ONNX, "Constant", 1..=MAX_ONNX_OPSET, |ctx| {
        Ok(Box::new(ConstantKernel(constant_value(ctx)?)))
    });
    reg.insert(
        ONNX,
        "ConstantOfShape",
        9..=MAX_ONNX_OPSET,
        build_constant_of_shape,
    );
    reg.insert(ONNX, "Range", 11..=MAX_ONNX_OPSET, |_| Ok(Box::new(Range)));
    reg.insert(ONNX, "Shape", 1..=MAX_ONNX_OPSET, build_shape);
    reg.insert(ONNX, "Size", 1..=MAX_ONNX_OPSET, |_| Ok(Box::new(Size)));
    reg.insert(ONNX, "Trilu", 14..=MAX_ONNX_OPSET, build_trilu);
}

/// The value of a `Constant` node, from whichever `value*` attribute it has.
pub(crate) fn constant_value(ctx: &BuildCtx<'_>) -> OpResult<Value> {
    if let Some(t) = ctx.tensor("value")? {
        return Value::from_tensor(t).map_err(|e| OpError::attr("value", e.to_string()));
    }
    if let Some(x) = ctx.opt_float("value_float")? {
        return Ok(Value::F32(ArrayD::from_elem(IxDyn(&[]), x)));
    }
    if let Some(v) = ctx.floats("value_floats")? {
        return Ok(Value::F32(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(shape_err)?,
        ));
    }
    if let Some(x) = ctx.opt_int("value_int")? {
        return Ok(Value::scalar_i64(x));
    }
    if let Some(v) = ctx.ints("value_ints")? {
        return Ok(Value::I64(
            ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(shape_err)?,
        ));
    }
    for unsupported in ["sparse_value", "value_string", "value_strings"] {
        ctx.reject(unsupported, "this kind of Constant is not supported")?;
    }
    Err(OpError::attr("value", "Constant has no value attribute"))
}

fn shape_err(e: ndarray::ShapeError) -> OpError {
    OpError::shape(e.to_string())
}

#[derive(Debug)]
struct ConstantKernel(Value);

impl Kernel for ConstantKernel {
    fn run(&self, _inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        Ok(vec![self.0.clone()])
    }
}

/// Reads a 1-D shape input as dims.
pub(crate) fn shape_from(v: &Value, what: &str) -> OpResult<Vec<usize>> {
    v.to_i64s(what)?
        .into_iter()
        .map(|d| to_usize(d, what))
        .collect()
}

fn checked_count(shape: &[usize]) -> OpResult<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_GENERATED)
        .ok_or_else(|| OpError::invalid(format!("shape {shape:?} is too large")))
}

#[derive(Debug)]
struct ConstantOfShape {
    fill: Value,
}

fn build_constant_of_shape(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let fill = match ctx.tensor("value")? {
        Some(t) => {
            let v = Value::from_tensor(t).map_err(|e| OpError::attr("value", e.to_string()))?;
            if v.len() != 1 {
                return Err(OpError::attr("value", "must hold exactly one element"));
            }
            v
        }
        None => Value::F32(ArrayD::from_elem(IxDyn(&[1]), 0.0)),
    };
    Ok(Box::new(ConstantOfShape { fill }))
}

impl Kernel for ConstantOfShape {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = shape_from(inputs.req(0, "input")?, "shape")?;
        checked_count(&shape)?;
        fn fill<T: Copy>(a: &ArrayD<T>, shape: &[usize]) -> OpResult<ArrayD<T>> {
            let x = a
                .iter()
                .next()
                .copied()
                .ok_or_else(|| OpError::invalid("empty fill value"))?;
            Ok(ArrayD::from_elem(IxDyn(shape), x))
        }
        Ok(vec![match &self.fill {
            Value::F32(a) => Value::F32(fill(a, &shape)?),
            Value::F64(a) => Value::F64(fill(a, &shape)?),
            Value::I64(a) => Value::I64(fill(a, &shape)?),
            Value::I32(a) => Value::I32(fill(a, &shape)?),
            Value::Bool(a) => Value::Bool(fill(a, &shape)?),
            Value::F16(a) => Value::F16(fill(a, &shape)?),
        }])
    }
}

/// `Range(start, limit, delta)`: `max(ceil((limit - start) / delta), 0)` elements.
#[derive(Debug)]
struct Range;

impl Kernel for Range {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (s, l, d) = (
            inputs.req(0, "start")?,
            inputs.req(1, "limit")?,
            inputs.req(2, "delta")?,
        );
        if s.len() != 1 || l.len() != 1 || d.len() != 1 {
            return Err(OpError::shape("Range inputs must be scalars"));
        }
        fn range<T: Numeric + ValueElem>(s: &Value, l: &Value, d: &Value) -> OpResult<Value> {
            let scalar = |v: &Value, what: &str| -> OpResult<T> {
                crate::value::typed::<T>(v, what)?
                    .iter()
                    .next()
                    .copied()
                    .ok_or_else(|| OpError::shape("Range inputs must be scalars"))
            };
            let (start, limit, delta) = (
                scalar(s, "start")?,
                scalar(l, "limit")?,
                scalar(d, "delta")?,
            );
            if delta == T::ZERO {
                return Err(OpError::invalid("Range delta is zero"));
            }
            let count = ((limit.as_f64() - start.as_f64()) / delta.as_f64()).ceil();
            if count.is_nan() || count >= MAX_GENERATED as f64 {
                return Err(OpError::invalid(format!(
                    "Range of {count} elements is too large"
                )));
            }
            let n = if count > 0.0 { count as usize } else { 0 };
            // Accumulate like the spec's loop: start, start+delta, ...
            let mut data = Vec::with_capacity(n);
            let mut x = start;
            for _ in 0..n {
                data.push(x);
                x = x.plus(delta);
            }
            Ok(T::wrap(
                ArrayD::from_shape_vec(IxDyn(&[n]), data).map_err(shape_err)?,
            ))
        }
        Ok(vec![match s.dtype() {
            DataType::Float => range::<f32>(s, l, d)?,
            DataType::Double => range::<f64>(s, l, d)?,
            DataType::Int64 => range::<i64>(s, l, d)?,
            DataType::Int32 => range::<i32>(s, l, d)?,
            other => return Err(OpError::dtype(format!("Range does not accept {other}"))),
        }])
    }
}

/// `Shape` with the optional `start`/`end` slice of opset 15.
#[derive(Debug)]
struct Shape {
    start: i64,
    end: Option<i64>,
}

fn build_shape(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.opset < 15 {
        return Ok(Box::new(Shape {
            start: 0,
            end: None,
        }));
    }
    Ok(Box::new(Shape {
        start: ctx.int("start", 0)?,
        end: ctx.opt_int("end")?,
    }))
}

impl Kernel for Shape {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let shape = inputs.req(0, "data")?.shape();
        let rank = shape.len() as i64;
        // Negative values count from the end; both are clamped to [0, rank].
        let clamp = |x: i64| (if x < 0 { x + rank } else { x }).clamp(0, rank) as usize;
        let (start, end) = (clamp(self.start), clamp(self.end.unwrap_or(rank)));
        let dims: Vec<i64> = shape
            .get(start..end.max(start))
            .unwrap_or(&[])
            .iter()
            .map(|&d| d as i64)
            .collect();
        Ok(vec![Value::I64(
            ArrayD::from_shape_vec(IxDyn(&[dims.len()]), dims).map_err(shape_err)?,
        )])
    }
}

#[derive(Debug)]
struct Size;

impl Kernel for Size {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        Ok(vec![Value::scalar_i64(inputs.req(0, "data")?.len() as i64)])
    }
}

/// `Trilu`: keeps the lower (`upper = 0`) or upper triangle of the last two dims, shifted by
/// the optional diagonal offset `k`.
#[derive(Debug)]
struct Trilu {
    upper: bool,
}

fn build_trilu(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Trilu {
        upper: ctx.int("upper", 1)? != 0,
    }))
}

impl Kernel for Trilu {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let k = match inputs.get(1) {
            Some(v) => *v
                .to_i64s("k")?
                .first()
                .ok_or_else(|| OpError::shape("k must be a scalar"))?,
            None => 0,
        };
        let x = inputs.take(0, "input")?;
        if x.rank() < 2 {
            return Err(OpError::shape("Trilu needs at least 2 dims"));
        }
        let upper = self.upper;
        fn apply<T: Copy + Default>(mut a: ArrayD<T>, k: i64, upper: bool) -> ArrayD<T> {
            let rank = a.ndim();
            let (rows, cols) = (a.shape()[rank - 2], a.shape()[rank - 1]);
            for (index, v) in a.iter_mut().enumerate() {
                let j = (index % cols) as i64;
                let i = ((index / cols) % rows.max(1)) as i64;
                let keep = if upper { j - i >= k } else { j - i <= k };
                if !keep {
                    *v = T::default();
                }
            }
            a
        }
        // `iter_mut` walks in logical (row-major) order, which the index arithmetic assumes.
        Ok(vec![map_value!(x, a => apply(a, k, upper))])
    }
}
