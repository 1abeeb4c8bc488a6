//! Element-wise ops of one input: math functions, activations, `IsNaN`/`IsInf`, `Not`, `Clip`.

use ndarray::ArrayD;

use crate::broadcast::{map, map_assign};
use crate::elem::{Float, Numeric};
use crate::error::{OpError, OpResult};
use crate::registry::{BuildCtx, Inputs, Kernel, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    // (op, the opset that introduced it or gave it its current semantics).
    let since = [
        ("Sqrt", 6),
        ("Exp", 6),
        ("Log", 6),
        ("Tanh", 6),
        ("Sigmoid", 6),
        ("Reciprocal", 6),
        ("Floor", 6),
        ("Ceil", 6),
        ("Neg", 6),
        ("Abs", 6),
        ("Relu", 6),
        ("Not", 1),
        ("Elu", 6),
        ("Selu", 6),
        ("LeakyRelu", 6),
        ("HardSigmoid", 6),
        ("Softplus", 1),
        ("Softsign", 1),
        ("Sin", 7),
        ("Cos", 7),
        ("Tan", 7),
        ("Asin", 7),
        ("Acos", 7),
        ("Atan", 7),
        ("Erf", 9),
        ("Sinh", 9),
        ("Cosh", 9),
        ("Asinh", 9),
        ("Acosh", 9),
        ("Atanh", 9),
        ("Sign", 9),
        ("IsNaN", 9),
        ("IsInf", 10),
        ("ThresholdedRelu", 10),
        ("Round", 11),
        ("Celu", 12),
        ("HardSwish", 14),
        ("Mish", 18),
        ("Gelu", 20),
    ];
    for (name, first) in since {
        reg.insert(
            ONNX,
            name,
            first..=crate::registry::MAX_ONNX_OPSET,
            build_unary,
        );
    }
    reg.insert(ONNX, "Clip", 6..=10, build_clip_attributes);
    reg.insert(
        ONNX,
        "Clip",
        11..=crate::registry::MAX_ONNX_OPSET,
        build_clip_inputs,
    );
}

/// The element-wise function, with its attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum UnaryOp {
    Sqrt,
    Exp,
    Log,
    Erf,
    Tanh,
    Sigmoid,
    Reciprocal,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Softplus,
    Softsign,
    HardSwish,
    Mish,
    Elu(f32),
    Selu {
        alpha: f32,
        gamma: f32,
    },
    LeakyRelu(f32),
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    ThresholdedRelu(f32),
    Celu(f32),
    /// ONNX `Gelu` (opset 20): exact (erf) or `approximate="tanh"`.
    Gelu {
        tanh: bool,
    },
    Neg,
    Abs,
    Relu,
    Sign,
    IsNaN,
    IsInf {
        negative: bool,
        positive: bool,
    },
    Not,
}

#[derive(Debug)]
struct Unary {
    op: UnaryOp,
}

fn build_unary(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    use UnaryOp as U;
    let op = match ctx.node.op_type.as_str() {
        "Sqrt" => U::Sqrt,
        "Exp" => U::Exp,
        "Log" => U::Log,
        "Erf" => U::Erf,
        "Tanh" => U::Tanh,
        "Sigmoid" => U::Sigmoid,
        "Reciprocal" => U::Reciprocal,
        "Floor" => U::Floor,
        "Ceil" => U::Ceil,
        "Round" => U::Round,
        "Sin" => U::Sin,
        "Cos" => U::Cos,
        "Tan" => U::Tan,
        "Asin" => U::Asin,
        "Acos" => U::Acos,
        "Atan" => U::Atan,
        "Sinh" => U::Sinh,
        "Cosh" => U::Cosh,
        "Asinh" => U::Asinh,
        "Acosh" => U::Acosh,
        "Atanh" => U::Atanh,
        "Softplus" => U::Softplus,
        "Softsign" => U::Softsign,
        "HardSwish" => U::HardSwish,
        "Mish" => U::Mish,
        "Elu" => U::Elu(ctx.float("alpha", 1.0)?),
        "Selu" => U::Selu {
            alpha: ctx.float("alpha", 1.673_263_2)?,
            gamma: ctx.float("gamma", 1.050_701)?,
        },
        "LeakyRelu" => U::LeakyRelu(ctx.float("alpha", 0.01)?),
        "HardSigmoid" => U::HardSigmoid {
            alpha: ctx.float("alpha", 0.2)?,
            beta: ctx.float("beta", 0.5)?,
        },
        "ThresholdedRelu" => U::ThresholdedRelu(ctx.float("alpha", 1.0)?),
        "Celu" => U::Celu(ctx.float("alpha", 1.0)?),
        "Gelu" => match ctx.string("approximate", "none")?.as_str() {
            "none" => U::Gelu { tanh: false },
            "tanh" => U::Gelu { tanh: true },
            other => {
                return Err(OpError::attr(
                    "approximate",
                    format!("'{other}' is not none or tanh"),
                ));
            }
        },
        "Neg" => U::Neg,
        "Abs" => U::Abs,
        "Relu" => U::Relu,
        "Sign" => U::Sign,
        "IsNaN" => U::IsNaN,
        "IsInf" => U::IsInf {
            negative: ctx.int("detect_negative", 1)? != 0,
            positive: ctx.int("detect_positive", 1)? != 0,
        },
        "Not" => U::Not,
        other => return Err(OpError::unsupported(format!("{other} is not a unary op"))),
    };
    Ok(Box::new(Unary { op }))
}

impl Kernel for Unary {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        use UnaryOp as U;
        let op = self.op;
        let x = inputs.take(0, "X")?;
        let out = match (op, x) {
            (U::IsNaN, Value::F32(a)) => Value::Bool(map(&a, f32::is_nan)),
            (U::IsNaN, Value::F64(a)) => Value::Bool(map(&a, f64::is_nan)),
            (U::IsInf { negative, positive }, Value::F32(a)) => Value::Bool(map(&a, move |v| {
                v.is_infinite() && ((v > 0.0 && positive) || (v < 0.0 && negative))
            })),
            (U::IsInf { negative, positive }, Value::F64(a)) => Value::Bool(map(&a, move |v| {
                v.is_infinite() && ((v > 0.0 && positive) || (v < 0.0 && negative))
            })),
            (U::Not, Value::Bool(mut a)) => {
                map_assign(&mut a, |v| !v);
                Value::Bool(a)
            }
            (U::Neg | U::Abs | U::Relu | U::Sign, Value::I64(a)) => Value::I64(numeric_op(op, a)),
            (U::Neg | U::Abs | U::Relu | U::Sign, Value::I32(a)) => Value::I32(numeric_op(op, a)),
            (U::IsNaN | U::IsInf { .. } | U::Not, other) => {
                return Err(OpError::dtype(format!(
                    "{op:?} does not accept {}",
                    other.dtype()
                )));
            }
            (_, Value::F32(a)) => Value::F32(float_op(op, a)),
            (_, Value::F64(a)) => Value::F64(float_op(op, a)),
            (_, other) => {
                return Err(OpError::dtype(format!(
                    "{op:?} needs a float input, got {}",
                    other.dtype()
                )));
            }
        };
        Ok(vec![out])
    }
}

/// The integer-capable ops (`Neg`, `Abs`, `Relu`, `Sign`), in place.
fn numeric_op<T: Numeric>(op: UnaryOp, mut a: ArrayD<T>) -> ArrayD<T> {
    match op {
        UnaryOp::Neg => map_assign(&mut a, T::negated),
        UnaryOp::Abs => map_assign(&mut a, T::absolute),
        UnaryOp::Relu => map_assign(&mut a, |v| if v > T::ZERO { v } else { T::ZERO }),
        UnaryOp::Sign => map_assign(&mut a, |v| {
            if v > T::ZERO {
                T::ONE
            } else if v < T::ZERO {
                T::ONE.negated()
            } else {
                v
            }
        }),
        _ => {}
    }
    a
}

/// Every float op, in place: the match is outside the loop, so each arm is its own loop.
fn float_op<T: Float>(op: UnaryOp, mut a: ArrayD<T>) -> ArrayD<T> {
    use UnaryOp as U;
    let c = T::of_f32;
    match op {
        U::Sqrt => map_assign(&mut a, T::sqrt),
        U::Exp => map_assign(&mut a, T::exp),
        U::Log => map_assign(&mut a, T::ln),
        U::Erf => map_assign(&mut a, Float::erf),
        U::Tanh => map_assign(&mut a, T::tanh),
        U::Sigmoid => map_assign(&mut a, sigmoid),
        U::Reciprocal => map_assign(&mut a, T::recip),
        U::Floor => map_assign(&mut a, T::floor),
        U::Ceil => map_assign(&mut a, T::ceil),
        U::Round => map_assign(&mut a, round_half_even),
        U::Sin => map_assign(&mut a, T::sin),
        U::Cos => map_assign(&mut a, T::cos),
        U::Tan => map_assign(&mut a, T::tan),
        U::Asin => map_assign(&mut a, T::asin),
        U::Acos => map_assign(&mut a, T::acos),
        U::Atan => map_assign(&mut a, T::atan),
        U::Sinh => map_assign(&mut a, T::sinh),
        U::Cosh => map_assign(&mut a, T::cosh),
        U::Asinh => map_assign(&mut a, T::asinh),
        U::Acosh => map_assign(&mut a, T::acosh),
        U::Atanh => map_assign(&mut a, T::atanh),
        U::Softplus => map_assign(&mut a, softplus),
        U::Softsign => map_assign(&mut a, |v| v / (T::ONE + v.abs())),
        U::HardSwish => map_assign(&mut a, |v| {
            v * (v / c(6.0) + c(0.5)).max(T::ZERO).min(T::ONE)
        }),
        U::Mish => map_assign(&mut a, |v| v * softplus(v).tanh()),
        U::Elu(alpha) => map_assign(&mut a, |v| {
            if v < T::ZERO {
                c(alpha) * (v.exp() - T::ONE)
            } else {
                v
            }
        }),
        U::Selu { alpha, gamma } => map_assign(&mut a, |v| {
            if v > T::ZERO {
                c(gamma) * v
            } else {
                c(gamma) * (c(alpha) * v.exp() - c(alpha))
            }
        }),
        U::LeakyRelu(alpha) => map_assign(&mut a, |v| if v < T::ZERO { c(alpha) * v } else { v }),
        U::HardSigmoid { alpha, beta } => {
            map_assign(&mut a, |v| {
                (c(alpha) * v + c(beta)).max(T::ZERO).min(T::ONE)
            });
        }
        U::ThresholdedRelu(alpha) => map_assign(&mut a, |v| if v > c(alpha) { v } else { T::ZERO }),
        U::Celu(alpha) => map_assign(&mut a, |v| {
            v.max(T::ZERO) + (c(alpha) * ((v / c(alpha)).exp() - T::ONE)).min(T::ZERO)
        }),
        U::Gelu { tanh: false } => map_assign(&mut a, gelu_erf),
        U::Gelu { tanh: true } => map_assign(&mut a, gelu_tanh),
        U::Neg => map_assign(&mut a, |v| -v),
        U::Abs => map_assign(&mut a, T::abs),
        U::Relu => map_assign(&mut a, |v| if v > T::ZERO { v } else { T::ZERO }),
        U::Sign => map_assign(&mut a, |v| {
            if v > T::ZERO {
                T::ONE
            } else if v < T::ZERO {
                -T::ONE
            } else {
                v
            }
        }),
        U::IsNaN | U::IsInf { .. } | U::Not => {}
    }
    a
}

/// Logistic sigmoid, without overflow for large |x|.
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// `ln(1 + e^x)`, without overflow for large x.
fn softplus<T: Float>(x: T) -> T {
    if x > T::ZERO {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Round to nearest, ties to even (ONNX `Round`).
fn round_half_even<T: Float>(x: T) -> T {
    let floor = x.floor();
    let diff = x - floor;
    let half = T::of_f32(0.5);
    if diff < half {
        floor
    } else if diff > half {
        floor + T::ONE
    } else {
        let two = T::of_f32(2.0);
        if (floor / two).floor() * two == floor {
            floor
        } else {
            floor + T::ONE
        }
    }
}

/// `0.5·x·(1 + erf(x/√2))`: the exact GELU.
pub(crate) fn gelu_erf<T: Float>(x: T) -> T {
    T::of_f32(0.5) * x * (T::ONE + Float::erf(x * T::of_f64(std::f64::consts::FRAC_1_SQRT_2)))
}

/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`: the tanh GELU.
pub(crate) fn gelu_tanh<T: Float>(x: T) -> T {
    let k = T::of_f64((2.0 / std::f64::consts::PI).sqrt());
    T::of_f32(0.5) * x * (T::ONE + (k * (x + T::of_f64(0.044715) * x * x * x)).tanh())
}

/// `Clip` with `min`/`max` attributes (opsets 6 to 10).
#[derive(Debug)]
struct ClipAttributes {
    min: f32,
    max: f32,
}

fn build_clip_attributes(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(ClipAttributes {
        min: ctx.float("min", f32::MIN)?,
        max: ctx.float("max", f32::MAX)?,
    }))
}

impl Kernel for ClipAttributes {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.take(0, "input")?;
        let (lo, hi) = (f64::from(self.min), f64::from(self.max));
        Ok(vec![clip(x, Some(lo), Some(hi))?])
    }
}

/// `Clip` with optional `min`/`max` inputs (opset 11 on).
#[derive(Debug)]
struct ClipInputs;

fn build_clip_inputs(_ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(ClipInputs))
}

impl Kernel for ClipInputs {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let bound = |i: usize, name: &str| -> OpResult<Option<f64>> {
            match inputs.get(i) {
                None => Ok(None),
                Some(v) if v.len() == 1 => Ok(v.to_f64_vec().first().copied()),
                Some(v) => Err(OpError::shape(format!(
                    "Clip {name} must be a scalar, got {}",
                    v.describe()
                ))),
            }
        };
        let lo = bound(1, "min")?;
        let hi = bound(2, "max")?;
        let x = inputs.take(0, "input")?;
        Ok(vec![clip(x, lo, hi)?])
    }
}

/// Clamps every element to `[lo, hi]` (either bound optional). NaN stays NaN.
fn clip(x: Value, lo: Option<f64>, hi: Option<f64>) -> OpResult<Value> {
    fn apply<T: Numeric>(mut a: ArrayD<T>, lo: Option<f64>, hi: Option<f64>) -> ArrayD<T> {
        let lo = lo.map(T::of_f64);
        let hi = hi.map(T::of_f64);
        map_assign(&mut a, |v| {
            let v = match lo {
                Some(l) if v < l => l,
                _ => v,
            };
            match hi {
                Some(h) if v > h => h,
                _ => v,
            }
        });
        a
    }
    Ok(match x {
        Value::F32(a) => Value::F32(apply(a, lo, hi)),
        Value::F64(a) => Value::F64(apply(a, lo, hi)),
        Value::I64(a) => Value::I64(apply(a, lo, hi)),
        Value::I32(a) => Value::I32(apply(a, lo, hi)),
        Value::Bool(_) => return Err(OpError::dtype("Clip does not accept bool")),
        Value::F16(_) => return Err(crate::ops::f16_unwidened()),
    })
}
