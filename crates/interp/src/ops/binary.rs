//! Element-wise ops of several inputs with numpy broadcasting: arithmetic, comparisons,
//! logic, the variadic `Max`/`Min`/`Sum`/`Mean`, and `Where`.

use ndarray::{ArrayD, Zip};
use transfuse_ir::DataType;

use crate::broadcast::{
    PARALLEL_ELEMENTS, broadcast_all, broadcast_shapes, view_as, zip_assign, zip_map,
};
use crate::elem::Numeric;
use crate::error::{OpError, OpResult};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, ValueElem, typed};

pub(crate) fn register(reg: &mut Registry) {
    for name in ["Add", "Sub", "Mul", "Div", "Pow", "PRelu"] {
        reg.insert(ONNX, name, 7..=MAX_ONNX_OPSET, build_arith);
    }
    reg.insert(ONNX, "Mod", 10..=MAX_ONNX_OPSET, build_arith);
    for name in ["Equal", "Less", "Greater"] {
        reg.insert(ONNX, name, 7..=MAX_ONNX_OPSET, build_compare);
    }
    for name in ["LessOrEqual", "GreaterOrEqual"] {
        reg.insert(ONNX, name, 12..=MAX_ONNX_OPSET, build_compare);
    }
    for name in ["And", "Or", "Xor"] {
        reg.insert(ONNX, name, 7..=MAX_ONNX_OPSET, build_logic);
    }
    for name in ["Max", "Min", "Sum", "Mean"] {
        reg.insert(ONNX, name, 6..=MAX_ONNX_OPSET, build_variadic);
    }
    reg.insert(ONNX, "Where", 9..=MAX_ONNX_OPSET, |_| Ok(Box::new(Where)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// `fmod = 0`: integer remainder with the divisor's sign; `fmod = 1`: C `fmod`.
    Mod {
        fmod: bool,
    },
    PRelu,
}

#[derive(Debug)]
struct Arith {
    op: ArithOp,
}

fn build_arith(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let op = match ctx.node.op_type.as_str() {
        "Add" => ArithOp::Add,
        "Sub" => ArithOp::Sub,
        "Mul" => ArithOp::Mul,
        "Div" => ArithOp::Div,
        "Pow" => ArithOp::Pow,
        "PRelu" => ArithOp::PRelu,
        "Mod" => ArithOp::Mod {
            fmod: ctx.int("fmod", 0)? != 0,
        },
        other => {
            return Err(OpError::unsupported(format!(
                "{other} is not an arithmetic op"
            )));
        }
    };
    Ok(Box::new(Arith { op }))
}

impl Kernel for Arith {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (ta, tb) = (inputs.req(0, "A")?.dtype(), inputs.req(1, "B")?.dtype());
        if self.op == ArithOp::Pow && ta != tb {
            return Ok(vec![mixed_pow(inputs.req(0, "X")?, inputs.req(1, "Y")?)?]);
        }
        if ta != tb {
            return Err(OpError::dtype(format!("{:?} of {ta} and {tb}", self.op)));
        }
        let out = match ta {
            DataType::Float => arith::<f32>(self.op, inputs)?,
            DataType::Double => arith::<f64>(self.op, inputs)?,
            DataType::Int64 => arith::<i64>(self.op, inputs)?,
            DataType::Int32 => arith::<i32>(self.op, inputs)?,
            other => {
                return Err(OpError::dtype(format!(
                    "{:?} does not accept {other}",
                    self.op
                )));
            }
        };
        Ok(vec![out])
    }
}

/// One arithmetic op for element type `T`; each arm is its own monomorphized loop.
fn arith<T: Numeric + ValueElem>(op: ArithOp, inputs: &mut Inputs<'_>) -> OpResult<Value> {
    if matches!(op, ArithOp::Div | ArithOp::Mod { .. }) && !T::IS_FLOAT {
        let divisor = typed::<T>(inputs.req(1, "B")?, "B")?;
        if divisor.iter().any(|&d| d == T::ZERO) {
            return Err(OpError::invalid("integer division by zero"));
        }
    }
    match op {
        ArithOp::Add => same_type(inputs, T::plus),
        ArithOp::Sub => same_type(inputs, T::minus),
        ArithOp::Mul => same_type(inputs, T::times),
        ArithOp::Div => same_type(inputs, T::divided_by),
        ArithOp::Pow => same_type(inputs, T::power),
        ArithOp::PRelu => same_type(
            inputs,
            |x: T, slope: T| if x < T::ZERO { slope.times(x) } else { x },
        ),
        ArithOp::Mod { fmod: true } => same_type(inputs, c_fmod::<T>),
        ArithOp::Mod { fmod: false } if T::IS_FLOAT => {
            Err(OpError::attr("fmod", "must be 1 for floating-point inputs"))
        }
        ArithOp::Mod { fmod: false } => same_type(inputs, floor_mod::<T>),
    }
}

/// C `fmod`: the remainder has the dividend's sign.
fn c_fmod<T: Numeric>(x: T, y: T) -> T {
    if T::IS_FLOAT {
        T::of_f64(x.as_f64() % y.as_f64())
    } else {
        x.minus(x.divided_by(y).times(y))
    }
}

/// Integer remainder with the divisor's sign (Python's `%`).
fn floor_mod<T: Numeric>(x: T, y: T) -> T {
    let r = c_fmod(x, y);
    if r != T::ZERO && ((r < T::ZERO) != (y < T::ZERO)) {
        r.plus(y)
    } else {
        r
    }
}

/// `f(a, b)` with broadcasting for two inputs of element type `T`, reusing an input's buffer
/// when this node is its last reader and it already has the output shape.
pub(crate) fn same_type<T, F>(inputs: &mut Inputs<'_>, f: F) -> OpResult<Value>
where
    T: ValueElem,
    F: Fn(T, T) -> T + Send + Sync,
{
    let (sa, sb) = (
        inputs.req(0, "A")?.shape().to_vec(),
        inputs.req(1, "B")?.shape().to_vec(),
    );
    let shape = broadcast_shapes(&sa, &sb)?;
    if inputs.is_owned(0) && sa == shape {
        if let Some(mut a) = T::unwrap(inputs.take(0, "A")?) {
            let b = typed::<T>(inputs.req(1, "B")?, "B")?;
            if zip_assign(&mut a, b, f) {
                return Ok(T::wrap(a));
            }
        }
        return Err(OpError::dtype("A and B differ in element type"));
    }
    if inputs.is_owned(1) && sb == shape {
        if let Some(mut b) = T::unwrap(inputs.take(1, "B")?) {
            let a = typed::<T>(inputs.req(0, "A")?, "A")?;
            if zip_assign(&mut b, a, |y, x| f(x, y)) {
                return Ok(T::wrap(b));
            }
        }
        return Err(OpError::dtype("A and B differ in element type"));
    }
    let a = typed::<T>(inputs.req(0, "A")?, "A")?;
    let b = typed::<T>(inputs.req(1, "B")?, "B")?;
    Ok(T::wrap(zip_map(a, b, f)?))
}

/// `Pow` with base and exponent of different element types: the result has the base's type.
fn mixed_pow(x: &Value, y: &Value) -> OpResult<Value> {
    fn with_exponent<T: Numeric + ValueElem>(base: &ArrayD<T>, y: &Value) -> OpResult<ArrayD<T>> {
        match y {
            Value::F32(e) => zip_map(base, e, |b, e| T::of_f64(b.as_f64().powf(f64::from(e)))),
            Value::F64(e) => zip_map(base, e, |b, e| T::of_f64(b.as_f64().powf(e))),
            Value::I64(e) => zip_map(base, e, |b, e| pow_by_int(b, e)),
            Value::I32(e) => zip_map(base, e, |b, e| pow_by_int(b, i64::from(e))),
            Value::Bool(_) => Err(OpError::dtype("Pow exponent cannot be bool")),
            Value::F16(_) => Err(crate::ops::f16_unwidened()),
        }
    }
    Ok(match x {
        Value::F32(b) => Value::F32(with_exponent(b, y)?),
        Value::F64(b) => Value::F64(with_exponent(b, y)?),
        Value::I64(b) => Value::I64(with_exponent(b, y)?),
        Value::I32(b) => Value::I32(with_exponent(b, y)?),
        Value::Bool(_) => return Err(OpError::dtype("Pow base cannot be bool")),
        Value::F16(_) => return Err(crate::ops::f16_unwidened()),
    })
}

fn pow_by_int<T: Numeric>(base: T, e: i64) -> T {
    if T::IS_FLOAT {
        T::of_f64(base.as_f64().powi(i32::try_from(e).unwrap_or(if e < 0 {
            i32::MIN
        } else {
            i32::MAX
        })))
    } else {
        base.power(T::of_i64(e))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CompareOp {
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
}

#[derive(Debug)]
struct Compare {
    op: CompareOp,
}

fn build_compare(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let op = match ctx.node.op_type.as_str() {
        "Equal" => CompareOp::Equal,
        "Less" => CompareOp::Less,
        "Greater" => CompareOp::Greater,
        "LessOrEqual" => CompareOp::LessOrEqual,
        "GreaterOrEqual" => CompareOp::GreaterOrEqual,
        other => return Err(OpError::unsupported(format!("{other} is not a comparison"))),
    };
    Ok(Box::new(Compare { op }))
}

impl Kernel for Compare {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (a, b) = (inputs.req(0, "A")?, inputs.req(1, "B")?);
        let out = match (a, b) {
            (Value::F32(x), Value::F32(y)) => compare(self.op, x, y)?,
            (Value::F64(x), Value::F64(y)) => compare(self.op, x, y)?,
            (Value::I64(x), Value::I64(y)) => compare(self.op, x, y)?,
            (Value::I32(x), Value::I32(y)) => compare(self.op, x, y)?,
            (Value::Bool(x), Value::Bool(y)) if self.op == CompareOp::Equal => {
                zip_map(x, y, |p, q| p == q)?
            }
            _ => {
                return Err(OpError::dtype(format!(
                    "{:?} of {} and {}",
                    self.op,
                    a.dtype(),
                    b.dtype()
                )));
            }
        };
        Ok(vec![Value::Bool(out)])
    }
}

fn compare<T: Numeric>(op: CompareOp, a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<bool>> {
    match op {
        CompareOp::Equal => zip_map(a, b, |x, y| x == y),
        CompareOp::Less => zip_map(a, b, |x, y| x < y),
        CompareOp::Greater => zip_map(a, b, |x, y| x > y),
        CompareOp::LessOrEqual => zip_map(a, b, |x, y| x <= y),
        CompareOp::GreaterOrEqual => zip_map(a, b, |x, y| x >= y),
    }
}

#[derive(Debug)]
struct Logic {
    op: fn(bool, bool) -> bool,
}

fn build_logic(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let op: fn(bool, bool) -> bool = match ctx.node.op_type.as_str() {
        "And" => |x, y| x & y,
        "Or" => |x, y| x | y,
        "Xor" => |x, y| x ^ y,
        other => return Err(OpError::unsupported(format!("{other} is not a logic op"))),
    };
    Ok(Box::new(Logic { op }))
}

impl Kernel for Logic {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let op = self.op;
        Ok(vec![same_type::<bool, _>(inputs, op)?])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VariadicOp {
    Max,
    Min,
    Sum,
    Mean,
}

#[derive(Debug)]
struct Variadic {
    op: VariadicOp,
}

fn build_variadic(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let op = match ctx.node.op_type.as_str() {
        "Max" => VariadicOp::Max,
        "Min" => VariadicOp::Min,
        "Sum" => VariadicOp::Sum,
        "Mean" => VariadicOp::Mean,
        other => {
            return Err(OpError::unsupported(format!(
                "{other} is not a variadic op"
            )));
        }
    };
    Ok(Box::new(Variadic { op }))
}

impl Kernel for Variadic {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let first = inputs.req(0, "data_0")?.dtype();
        let out = match first {
            DataType::Float => variadic::<f32>(self.op, inputs)?,
            DataType::Double => variadic::<f64>(self.op, inputs)?,
            DataType::Int64 => variadic::<i64>(self.op, inputs)?,
            DataType::Int32 => variadic::<i32>(self.op, inputs)?,
            other => {
                return Err(OpError::dtype(format!(
                    "{:?} does not accept {other}",
                    self.op
                )));
            }
        };
        Ok(vec![out])
    }
}

fn variadic<T: Numeric + ValueElem>(op: VariadicOp, inputs: &mut Inputs<'_>) -> OpResult<Value> {
    let f: fn(T, T) -> T = match op {
        VariadicOp::Max => T::max_nan,
        VariadicOp::Min => T::min_nan,
        VariadicOp::Sum | VariadicOp::Mean => T::plus,
    };
    let count = inputs.len();
    if count == 0 {
        return Err(OpError::MissingInput {
            index: 0,
            name: "data_0",
        });
    }
    let mut acc: ArrayD<T> = crate::value::typed_owned(inputs.take(0, "data_0")?, "data_0")?;
    for i in 1..count {
        let next = typed::<T>(inputs.req(i, "data_i")?, "data_i")?;
        let shape = broadcast_shapes(acc.shape(), next.shape())?;
        if shape.as_slice() == acc.shape() {
            zip_assign(&mut acc, next, f);
        } else {
            acc = zip_map(&acc, next, f)?;
        }
    }
    if op == VariadicOp::Mean {
        if !T::IS_FLOAT {
            return Err(OpError::dtype("Mean needs float inputs"));
        }
        let n = T::of_f64(count as f64);
        crate::broadcast::map_assign(&mut acc, |v| v.divided_by(n));
    }
    Ok(T::wrap(acc))
}

/// `Where(condition, X, Y)`: X where the condition holds, else Y, all three broadcast.
#[derive(Debug)]
struct Where;

impl Kernel for Where {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let cond = typed::<bool>(inputs.req(0, "condition")?, "condition")?;
        let (x, y) = (inputs.req(1, "X")?, inputs.req(2, "Y")?);
        let out = match (x, y) {
            (Value::F32(a), Value::F32(b)) => Value::F32(select(cond, a, b)?),
            (Value::F64(a), Value::F64(b)) => Value::F64(select(cond, a, b)?),
            (Value::I64(a), Value::I64(b)) => Value::I64(select(cond, a, b)?),
            (Value::I32(a), Value::I32(b)) => Value::I32(select(cond, a, b)?),
            (Value::Bool(a), Value::Bool(b)) => Value::Bool(select(cond, a, b)?),
            _ => {
                return Err(OpError::dtype(format!(
                    "Where of {} and {}",
                    x.dtype(),
                    y.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

fn select<T: Copy + Send + Sync>(
    cond: &ArrayD<bool>,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
) -> OpResult<ArrayD<T>> {
    let shape = broadcast_all(&[cond.shape(), x.shape(), y.shape()])?;
    crate::ops::check_size(&shape)?;
    let (cv, xv, yv) = (
        view_as(cond, &shape)?,
        view_as(x, &shape)?,
        view_as(y, &shape)?,
    );
    let zip = Zip::from(&cv).and(&xv).and(&yv);
    Ok(if zip.size() >= PARALLEL_ELEMENTS {
        zip.par_map_collect(|&c, &a, &b| if c { a } else { b })
    } else {
        zip.map_collect(|&c, &a, &b| if c { a } else { b })
    })
}
