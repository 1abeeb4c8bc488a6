//! Runtime values: dense n-dimensional arrays of the element types the interpreter holds.

use half::f16;
use ndarray::{ArrayD, IxDyn};
use transfuse_ir::{DataType, Tensor};

use crate::error::{InterpError, OpError, OpResult};

/// A tensor value during interpretation.
///
/// Arrays may have any memory layout (kernels accept views with arbitrary strides); values
/// produced by kernels are usually in standard (row-major) layout.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit floats.
    F64(ArrayD<f64>),
    /// 16-bit floats (IEEE 754 half precision). Kernels compute in f32 and round each
    /// op's output back to f16, as ONNX Runtime's fp16 kernels store their results.
    F16(ArrayD<f16>),
    /// 64-bit signed integers.
    I64(ArrayD<i64>),
    /// 32-bit signed integers.
    I32(ArrayD<i32>),
    /// Booleans.
    Bool(ArrayD<bool>),
}

/// Applies one generic expression to whatever array a [`Value`] holds and wraps the result
/// in the same variant: `map_value!(v, a => a.t().to_owned())`.
macro_rules! map_value {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            $crate::Value::F32($a) => $crate::Value::F32($body),
            $crate::Value::F64($a) => $crate::Value::F64($body),
            $crate::Value::F16($a) => $crate::Value::F16($body),
            $crate::Value::I64($a) => $crate::Value::I64($body),
            $crate::Value::I32($a) => $crate::Value::I32($body),
            $crate::Value::Bool($a) => $crate::Value::Bool($body),
        }
    };
}
pub(crate) use map_value;

/// Like [`map_value!`] for expressions that return `OpResult<ArrayD<_>>`.
macro_rules! try_map_value {
    ($value:expr, $a:ident => $body:expr) => {
        match $value {
            $crate::Value::F32($a) => $crate::Value::F32($body?),
            $crate::Value::F64($a) => $crate::Value::F64($body?),
            $crate::Value::F16($a) => $crate::Value::F16($body?),
            $crate::Value::I64($a) => $crate::Value::I64($body?),
            $crate::Value::I32($a) => $crate::Value::I32($body?),
            $crate::Value::Bool($a) => $crate::Value::Bool($body?),
        }
    };
}
pub(crate) use try_map_value;

impl Value {
    /// Converts an IR tensor (initializer, `Constant` attribute, test data) into a value.
    /// Errors for element types other than f32, f64, f16, i64, i32 and bool, and for tensors
    /// without data.
    pub fn from_tensor(t: &Tensor) -> Result<Value, InterpError> {
        let invalid = |source| InterpError::InvalidTensor {
            name: t.name.clone(),
            source,
        };
        let dims: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| InterpError::InvalidTensor {
                name: t.name.clone(),
                source: transfuse_ir::IrError::InvalidTensor {
                    tensor: t.name.clone(),
                    reason: format!("negative dims {:?}", t.dims),
                },
            })?;
        let shape = IxDyn(&dims);
        let bad_len = |len: usize| InterpError::InvalidTensor {
            name: t.name.clone(),
            source: transfuse_ir::IrError::InvalidTensor {
                tensor: t.name.clone(),
                reason: format!("{len} elements do not fill dims {:?}", t.dims),
            },
        };
        Ok(match t.dtype {
            DataType::Float => {
                let v = t.to_f32_vec().map_err(invalid)?;
                let n = v.len();
                Value::F32(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            DataType::Double => {
                let v = t.to_f64_vec().map_err(invalid)?;
                let n = v.len();
                Value::F64(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            DataType::Float16 => {
                let raw = t.raw_bytes().map_err(invalid)?;
                let v: Vec<f16> = raw
                    .chunks_exact(2)
                    .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                let n = v.len();
                Value::F16(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            DataType::Int64 => {
                let v = t.to_i64_vec().map_err(invalid)?;
                let n = v.len();
                Value::I64(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            DataType::Int32 => {
                // Every i32 fits i64, and back: the narrowing cast is exact.
                let v: Vec<i32> = t
                    .to_i64_vec()
                    .map_err(invalid)?
                    .into_iter()
                    .map(|x| x as i32)
                    .collect();
                let n = v.len();
                Value::I32(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            DataType::Bool => {
                let v: Vec<bool> = t
                    .to_i64_vec()
                    .map_err(invalid)?
                    .into_iter()
                    .map(|x| x != 0)
                    .collect();
                let n = v.len();
                Value::Bool(ArrayD::from_shape_vec(shape, v).map_err(|_| bad_len(n))?)
            }
            other => {
                return Err(InterpError::UnsupportedDtype {
                    name: t.name.clone(),
                    dtype: other,
                });
            }
        })
    }

    /// The value as an IR tensor called `name` (little-endian raw data, row-major order).
    pub fn to_tensor(&self, name: &str) -> Tensor {
        let dims: Vec<i64> = self.shape().iter().map(|&d| d as i64).collect();
        match self {
            Value::F32(a) => Tensor::from_f32(name, dims, &a.iter().copied().collect::<Vec<_>>()),
            Value::F64(a) => Tensor::from_f64(name, dims, &a.iter().copied().collect::<Vec<_>>()),
            Value::F16(a) => Tensor::from_f16_bits(
                name,
                dims,
                &a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            ),
            Value::I64(a) => Tensor::from_i64(name, dims, &a.iter().copied().collect::<Vec<_>>()),
            Value::I32(a) => Tensor::from_i32(name, dims, &a.iter().copied().collect::<Vec<_>>()),
            Value::Bool(a) => Tensor::from_bool(name, dims, &a.iter().copied().collect::<Vec<_>>()),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::F64(a) => a.shape(),
            Value::F16(a) => a.shape(),
            Value::I64(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::Bool(a) => a.shape(),
        }
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True when the value has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX element type.
    pub fn dtype(&self) -> DataType {
        match self {
            Value::F32(_) => DataType::Float,
            Value::F64(_) => DataType::Double,
            Value::F16(_) => DataType::Float16,
            Value::I64(_) => DataType::Int64,
            Value::I32(_) => DataType::Int32,
            Value::Bool(_) => DataType::Bool,
        }
    }

    /// Every element as `f64` in row-major order (bool as 0/1), for comparisons.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Value::F32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::F64(a) => a.iter().copied().collect(),
            Value::F16(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::I64(a) => a.iter().map(|&x| x as f64).collect(),
            Value::I32(a) => a.iter().map(|&x| f64::from(x)).collect(),
            Value::Bool(a) => a.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// A value from a shape and row-major `f32` data; `None` when the lengths differ.
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Option<Value> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Value::F32)
    }

    /// A value from a shape and row-major `i64` data; `None` when the lengths differ.
    pub fn from_i64(shape: &[usize], data: Vec<i64>) -> Option<Value> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Value::I64)
    }

    /// A value from a shape and row-major `i32` data; `None` when the lengths differ.
    pub fn from_i32(shape: &[usize], data: Vec<i32>) -> Option<Value> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Value::I32)
    }

    /// A value from a shape and row-major `bool` data; `None` when the lengths differ.
    pub fn from_bool(shape: &[usize], data: Vec<bool>) -> Option<Value> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Value::Bool)
    }

    /// A one-element value with no dimensions.
    pub(crate) fn scalar_i64(x: i64) -> Value {
        Value::I64(ArrayD::from_elem(IxDyn(&[]), x))
    }

    /// Integer contents (i64 or i32), for shape-like inputs (axes, pads, sizes, indices).
    pub(crate) fn to_i64s(&self, what: &str) -> OpResult<Vec<i64>> {
        match self {
            Value::I64(a) => Ok(a.iter().copied().collect()),
            Value::I32(a) => Ok(a.iter().map(|&x| i64::from(x)).collect()),
            other => Err(OpError::dtype(format!(
                "{what} must be int64 or int32, got {}",
                other.dtype()
            ))),
        }
    }

    /// Short type-and-shape text for messages, like `f32[2,3]`.
    pub(crate) fn describe(&self) -> String {
        let dims: Vec<String> = self.shape().iter().map(ToString::to_string).collect();
        format!("{}[{}]", self.dtype(), dims.join(","))
    }
}

impl From<ArrayD<f32>> for Value {
    fn from(a: ArrayD<f32>) -> Value {
        Value::F32(a)
    }
}
impl From<ArrayD<f64>> for Value {
    fn from(a: ArrayD<f64>) -> Value {
        Value::F64(a)
    }
}
impl From<ArrayD<f16>> for Value {
    fn from(a: ArrayD<f16>) -> Value {
        Value::F16(a)
    }
}
impl From<ArrayD<i64>> for Value {
    fn from(a: ArrayD<i64>) -> Value {
        Value::I64(a)
    }
}
impl From<ArrayD<i32>> for Value {
    fn from(a: ArrayD<i32>) -> Value {
        Value::I32(a)
    }
}
impl From<ArrayD<bool>> for Value {
    fn from(a: ArrayD<bool>) -> Value {
        Value::Bool(a)
    }
}

/// The element types a [`Value`] holds, for kernels written once over all of them.
pub(crate) trait ValueElem:
    Copy + Send + Sync + std::fmt::Debug + PartialEq + 'static
{
    /// The ONNX element type.
    const DTYPE: DataType;
    /// The array, when `v` holds this element type.
    fn view(v: &Value) -> Option<&ArrayD<Self>>;
    /// The array, when `v` holds this element type.
    fn unwrap(v: Value) -> Option<ArrayD<Self>>;
    /// Wraps an array.
    fn wrap(a: ArrayD<Self>) -> Value;
}

macro_rules! impl_value_elem {
    ($t:ty, $variant:ident, $dtype:expr) => {
        impl ValueElem for $t {
            const DTYPE: DataType = $dtype;
            fn view(v: &Value) -> Option<&ArrayD<Self>> {
                match v {
                    Value::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn unwrap(v: Value) -> Option<ArrayD<Self>> {
                match v {
                    Value::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn wrap(a: ArrayD<Self>) -> Value {
                Value::$variant(a)
            }
        }
    };
}
impl_value_elem!(f32, F32, DataType::Float);
impl_value_elem!(f64, F64, DataType::Double);
impl_value_elem!(f16, F16, DataType::Float16);
impl_value_elem!(i64, I64, DataType::Int64);
impl_value_elem!(i32, I32, DataType::Int32);
impl_value_elem!(bool, Bool, DataType::Bool);

/// The array of element type `T` in `v`, or a type error naming `what`.
pub(crate) fn typed<'v, T: ValueElem>(v: &'v Value, what: &str) -> OpResult<&'v ArrayD<T>> {
    T::view(v)
        .ok_or_else(|| OpError::dtype(format!("{what} must be {}, got {}", T::DTYPE, v.dtype())))
}

/// Owned form of [`typed`].
pub(crate) fn typed_owned<T: ValueElem>(v: Value, what: &str) -> OpResult<ArrayD<T>> {
    let dtype = v.dtype();
    T::unwrap(v).ok_or_else(|| OpError::dtype(format!("{what} must be {}, got {dtype}", T::DTYPE)))
}
