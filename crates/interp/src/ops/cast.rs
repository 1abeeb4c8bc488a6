//! Element type conversion: `Cast`, `CastLike`.

use half::f16;
use ndarray::ArrayD;
use transfuse_ir::DataType;

use crate::broadcast::map;
use crate::error::{OpError, OpResult};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::Value;

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Cast", 6..=MAX_ONNX_OPSET, build_cast);
    reg.insert(ONNX, "CastLike", 15..=MAX_ONNX_OPSET, |_| {
        Ok(Box::new(CastLike))
    });
}

#[derive(Debug)]
struct Cast {
    to: DataType,
}

fn build_cast(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let code = ctx
        .opt_int("to")?
        .ok_or_else(|| OpError::attr("to", "is required"))?;
    let to = DataType::from_code(i32::try_from(code).unwrap_or(-1));
    check_target(to).map_err(|e| OpError::attr("to", e.to_string()))?;
    Ok(Box::new(Cast { to }))
}

fn check_target(to: DataType) -> OpResult<()> {
    match to {
        DataType::Float
        | DataType::Double
        | DataType::Float16
        | DataType::Int64
        | DataType::Int32
        | DataType::Bool => Ok(()),
        other => Err(OpError::unsupported(format!("casting to {other}"))),
    }
}

impl Kernel for Cast {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let x = inputs.take(0, "input")?;
        Ok(vec![cast(x, self.to)?])
    }
}

#[derive(Debug)]
struct CastLike;

impl Kernel for CastLike {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let to = inputs.req(1, "target_type")?.dtype();
        let x = inputs.take(0, "input")?;
        Ok(vec![cast(x, to)?])
    }
}

/// Conversions with C++ `static_cast` semantics where defined: float to integer truncates
/// toward zero (saturating here, where C++ leaves out-of-range values undefined; NaN gives
/// 0), integer narrowing wraps, anything to bool is `x != 0`; to f16 rounds to nearest even
/// (out-of-range values become infinities), as ONNX Runtime's `Cast` does.
trait CastElem: Copy + Send + Sync {
    fn f32(self) -> f32;
    fn f64(self) -> f64;
    fn f16(self) -> f16;
    fn i64(self) -> i64;
    fn i32(self) -> i32;
    fn boolean(self) -> bool;
}

macro_rules! impl_cast_elem {
    ($t:ty) => {
        impl CastElem for $t {
            fn f32(self) -> f32 {
                self as f32
            }
            fn f64(self) -> f64 {
                self as f64
            }
            fn f16(self) -> f16 {
                f16::from_f64(self as f64)
            }
            fn i64(self) -> i64 {
                self as i64
            }
            fn i32(self) -> i32 {
                self as i32
            }
            #[allow(clippy::float_cmp)]
            fn boolean(self) -> bool {
                self != (0 as $t)
            }
        }
    };
}
impl_cast_elem!(f32);
impl_cast_elem!(f64);
impl_cast_elem!(i64);
impl_cast_elem!(i32);

impl CastElem for f16 {
    fn f32(self) -> f32 {
        self.to_f32()
    }
    fn f64(self) -> f64 {
        self.to_f64()
    }
    fn f16(self) -> f16 {
        self
    }
    fn i64(self) -> i64 {
        self.to_f32() as i64
    }
    fn i32(self) -> i32 {
        self.to_f32() as i32
    }
    fn boolean(self) -> bool {
        self.to_f32() != 0.0
    }
}

impl CastElem for bool {
    fn f32(self) -> f32 {
        f32::from(u8::from(self))
    }
    fn f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn f16(self) -> f16 {
        if self { f16::ONE } else { f16::ZERO }
    }
    fn i64(self) -> i64 {
        i64::from(self)
    }
    fn i32(self) -> i32 {
        i32::from(self)
    }
    fn boolean(self) -> bool {
        self
    }
}

fn convert<A: CastElem>(a: &ArrayD<A>, to: DataType) -> OpResult<Value> {
    Ok(match to {
        DataType::Float => Value::F32(map(a, A::f32)),
        DataType::Double => Value::F64(map(a, A::f64)),
        DataType::Float16 => Value::F16(map(a, A::f16)),
        DataType::Int64 => Value::I64(map(a, A::i64)),
        DataType::Int32 => Value::I32(map(a, A::i32)),
        DataType::Bool => Value::Bool(map(a, A::boolean)),
        other => return Err(OpError::unsupported(format!("casting to {other}"))),
    })
}

/// `x` converted to element type `to` (moved through unchanged when it already has it).
pub(crate) fn cast(x: Value, to: DataType) -> OpResult<Value> {
    if x.dtype() == to {
        return Ok(x);
    }
    match &x {
        Value::F32(a) => convert(a, to),
        Value::F64(a) => convert(a, to),
        Value::F16(a) => convert(a, to),
        Value::I64(a) => convert(a, to),
        Value::I32(a) => convert(a, to),
        Value::Bool(a) => convert(a, to),
    }
}
