//! Conversions between transfuse IR tensors and ONNX Runtime values.

use bytes::Bytes;
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use transfuse_ir::{DataType, Tensor};

use crate::{OrtError, Result};

/// Builds an ONNX Runtime tensor holding a copy of `tensor`'s elements.
pub(crate) fn to_ort_value(name: &str, tensor: &Tensor) -> Result<DynValue> {
    let invalid = |problem| OrtError::InvalidInput {
        name: name.to_string(),
        problem,
    };
    let raw = tensor.raw_bytes().map_err(invalid)?;
    let dims = tensor.dims.clone();
    let value_error = |e: ort::Error| OrtError::Value {
        name: name.to_string(),
        message: e.to_string(),
    };
    macro_rules! build {
        ($t:ty, $n:literal) => {{
            let values: Vec<$t> = raw
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])))
                .collect();
            OrtTensor::from_array((dims, values))
                .map_err(value_error)?
                .into_dyn()
        }};
    }
    Ok(match tensor.dtype {
        DataType::Float => build!(f32, 4),
        DataType::Double => build!(f64, 8),
        DataType::Int64 => build!(i64, 8),
        DataType::Int32 => build!(i32, 4),
        DataType::Int8 => build!(i8, 1),
        DataType::Uint8 => build!(u8, 1),
        DataType::Bool => {
            let values: Vec<bool> = raw.iter().map(|&b| b != 0).collect();
            OrtTensor::from_array((dims, values))
                .map_err(value_error)?
                .into_dyn()
        }
        other => return Err(OrtError::unsupported("input", name, other)),
    })
}

/// Copies an ONNX Runtime output into an IR tensor called `name`.
pub(crate) fn from_ort_value(name: &str, value: &DynValue) -> Result<Tensor> {
    let (element_type, shape) = match value.dtype() {
        ValueType::Tensor { ty, shape, .. } => (*ty, shape.to_vec()),
        other => {
            return Err(OrtError::NotATensor {
                name: name.to_string(),
                kind: other.to_string(),
            });
        }
    };
    let value_error = |e: ort::Error| OrtError::Value {
        name: name.to_string(),
        message: e.to_string(),
    };
    let empty = shape.contains(&0);
    macro_rules! copy {
        ($t:ty, $dtype:expr) => {{
            let mut raw = Vec::new();
            if !empty {
                let (_, values) = value.try_extract_tensor::<$t>().map_err(value_error)?;
                raw.reserve(values.len() * std::mem::size_of::<$t>());
                for v in values {
                    raw.extend_from_slice(&v.to_le_bytes());
                }
            }
            Tensor::from_raw(name, $dtype, shape, Bytes::from(raw))
        }};
    }
    Ok(match element_type {
        TensorElementType::Float32 => copy!(f32, DataType::Float),
        TensorElementType::Float64 => copy!(f64, DataType::Double),
        TensorElementType::Int64 => copy!(i64, DataType::Int64),
        TensorElementType::Int32 => copy!(i32, DataType::Int32),
        TensorElementType::Int8 => copy!(i8, DataType::Int8),
        TensorElementType::Uint8 => copy!(u8, DataType::Uint8),
        TensorElementType::Bool => {
            let mut raw = Vec::new();
            if !empty {
                let (_, values) = value.try_extract_tensor::<bool>().map_err(value_error)?;
                raw.extend(values.iter().map(|&b| u8::from(b)));
            }
            Tensor::from_raw(name, DataType::Bool, shape, Bytes::from(raw))
        }
        other => {
            return Err(OrtError::UnsupportedType {
                role: "output",
                name: name.to_string(),
                dtype: other.to_string(),
            });
        }
    })
}
