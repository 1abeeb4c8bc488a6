//! Tensors: initializers, `Constant` values and tensor attributes.

use std::borrow::Cow;

use bytes::Bytes;

use crate::{DataType, IrError, Result};

/// A tensor's data, in the storage form the model used, so that saving writes it back
/// the same way. Raw data is little-endian and shares the loaded file's buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// No data at all (for example the stripped weights of a skeleton model).
    Empty,
    /// `raw_data`: little-endian packed elements.
    Raw(Bytes),
    /// `float_data` (f32, complex64).
    Float(Vec<f32>),
    /// `int32_data` (i32 and the narrower int, bool and 16-bit float types, widened).
    Int32(Vec<i32>),
    /// `int64_data`.
    Int64(Vec<i64>),
    /// `double_data` (f64, complex128).
    Double(Vec<f64>),
    /// `uint64_data` (u32, u64).
    Uint64(Vec<u64>),
    /// `string_data`.
    String(Vec<Vec<u8>>),
}

/// Where a tensor's data lived outside the model file when it was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalLocation {
    /// Path of the data file, relative to the model's directory.
    pub location: String,
    /// Byte offset in that file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
    /// Other `external_data` entries (for example `checksum`), kept verbatim.
    pub extra: Vec<(String, String)>,
}

/// A named, typed, shaped tensor.
///
/// Contract: `data` holds exactly `numel()` elements of `dtype` (or is `Empty`); the
/// loader checks this for raw data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its name (the value name for initializers).
    pub name: String,
    /// Element type.
    pub dtype: DataType,
    /// Shape.
    pub dims: Vec<i64>,
    /// The elements.
    pub data: TensorData,
    /// Documentation string.
    pub doc_string: String,
    /// `metadata_props`, in order.
    pub metadata_props: Vec<(String, String)>,
    /// `segment` (begin, end), kept verbatim.
    pub segment: Option<(i64, i64)>,
    /// Set when the data came from an external file; saving may write it externally again.
    pub external: Option<ExternalLocation>,
}

macro_rules! from_slice {
    ($fn_name:ident, $t:ty, $dtype:expr) => {
        #[doc = concat!("A tensor of `", stringify!($t), "` elements stored as little-endian raw data.")]
        pub fn $fn_name(name: impl Into<String>, dims: Vec<i64>, values: &[$t]) -> Tensor {
            let mut raw = Vec::with_capacity(values.len() * std::mem::size_of::<$t>());
            for v in values {
                raw.extend_from_slice(&v.to_le_bytes());
            }
            Tensor::from_raw(name, $dtype, dims, Bytes::from(raw))
        }
    };
}

impl Tensor {
    /// A tensor over little-endian `raw` bytes.
    pub fn from_raw(
        name: impl Into<String>,
        dtype: DataType,
        dims: Vec<i64>,
        raw: Bytes,
    ) -> Tensor {
        Tensor {
            name: name.into(),
            dtype,
            dims,
            data: TensorData::Raw(raw),
            doc_string: String::new(),
            metadata_props: Vec::new(),
            segment: None,
            external: None,
        }
    }

    from_slice!(from_f32, f32, DataType::Float);
    from_slice!(from_f64, f64, DataType::Double);
    from_slice!(from_i64, i64, DataType::Int64);
    from_slice!(from_i32, i32, DataType::Int32);

    /// A tensor of IEEE 754 half-precision floats, given as their bit patterns.
    pub fn from_f16_bits(name: impl Into<String>, dims: Vec<i64>, bits: &[u16]) -> Tensor {
        let raw: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        Tensor::from_raw(name, DataType::Float16, dims, Bytes::from(raw))
    }

    /// A tensor of booleans.
    pub fn from_bool(name: impl Into<String>, dims: Vec<i64>, values: &[bool]) -> Tensor {
        let raw: Vec<u8> = values.iter().map(|&b| u8::from(b)).collect();
        Tensor::from_raw(name, DataType::Bool, dims, Bytes::from(raw))
    }

    /// Number of elements, or an error for negative dims or overflow.
    pub fn numel(&self) -> Result<usize> {
        self.dims.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d)
                .ok()
                .and_then(|d| acc.checked_mul(d))
                .ok_or_else(|| IrError::tensor(&self.name, format!("invalid dims {:?}", self.dims)))
        })
    }

    /// Bytes of data held in memory (raw or typed), for size accounting.
    pub fn byte_len(&self) -> usize {
        match &self.data {
            TensorData::Empty => 0,
            TensorData::Raw(b) => b.len(),
            TensorData::Float(v) => v.len() * 4,
            TensorData::Int32(v) => v.len() * 4,
            TensorData::Int64(v) => v.len() * 8,
            TensorData::Double(v) => v.len() * 8,
            TensorData::Uint64(v) => v.len() * 8,
            TensorData::String(v) => v.iter().map(Vec::len).sum(),
        }
    }

    /// True when the tensor carries no data (skeleton weights).
    pub fn is_empty_data(&self) -> bool {
        matches!(self.data, TensorData::Empty) && self.numel().map_or(true, |n| n > 0)
    }

    /// The elements as little-endian packed bytes, converting typed storage when needed.
    /// Errors for strings, sub-byte types and missing data.
    pub fn raw_bytes(&self) -> Result<Cow<'_, [u8]>> {
        let size = self.dtype.size_of().ok_or_else(|| {
            IrError::tensor(
                &self.name,
                format!("{} has no fixed-size raw form", self.dtype),
            )
        })?;
        let n = self.numel()?;
        let bytes: Cow<'_, [u8]> = match &self.data {
            TensorData::Raw(b) => Cow::Borrowed(b.as_ref()),
            TensorData::Empty if n == 0 => Cow::Borrowed(&[]),
            TensorData::Empty => return Err(IrError::tensor(&self.name, "has no data")),
            TensorData::Float(v) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::Double(v) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::Int64(v) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            TensorData::Uint64(v) => Cow::Owned(match size {
                4 => v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
                _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            }),
            TensorData::Int32(v) => Cow::Owned(match size {
                1 => v.iter().map(|&x| x as u8).collect(),
                2 => v.iter().flat_map(|&x| (x as u16).to_le_bytes()).collect(),
                _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            }),
            TensorData::String(_) => {
                return Err(IrError::tensor(&self.name, "string data has no raw form"));
            }
        };
        let expected = n.saturating_mul(size);
        if bytes.len() != expected {
            return Err(IrError::tensor(
                &self.name,
                format!(
                    "holds {} bytes, but {} x {:?} needs {expected}",
                    bytes.len(),
                    self.dtype,
                    self.dims
                ),
            ));
        }
        Ok(bytes)
    }

    /// Every element converted to `f64` (any numeric type, bool as 0/1).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        use DataType as D;
        let raw = self.raw_bytes()?;
        let bad = || {
            IrError::tensor(
                &self.name,
                format!("cannot read {} as a number", self.dtype),
            )
        };
        Ok(match self.dtype {
            D::Float => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            D::Double => raw
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(arr8(c)))
                .collect(),
            D::Float16 => raw
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
                .collect(),
            D::Bfloat16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16) as f64)
                .collect(),
            D::Int64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr8(c)) as f64)
                .collect(),
            D::Uint64 => raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(arr8(c)) as f64)
                .collect(),
            D::Int32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            D::Uint32 => raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            D::Int16 => raw
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            D::Uint16 => raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as f64)
                .collect(),
            D::Int8 => raw.iter().map(|&b| b as i8 as f64).collect(),
            D::Uint8 => raw.iter().map(|&b| b as f64).collect(),
            D::Bool => raw
                .iter()
                .map(|&b| if b != 0 { 1.0 } else { 0.0 })
                .collect(),
            _ => return Err(bad()),
        })
    }

    /// Every element as `f32` (converted from any numeric type).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        if self.dtype == DataType::Float {
            let raw = self.raw_bytes()?;
            return Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect());
        }
        Ok(self.to_f64_vec()?.into_iter().map(|x| x as f32).collect())
    }

    /// Every element as `i64`. Errors for floating-point tensors.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        use DataType as D;
        let raw = self.raw_bytes()?;
        Ok(match self.dtype {
            D::Int64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr8(c)))
                .collect(),
            D::Uint64 => raw
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(arr8(c)) as i64)
                .collect(),
            D::Int32 => raw
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            D::Uint32 => raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            D::Int16 => raw
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            D::Uint16 => raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            D::Int8 => raw.iter().map(|&b| b as i8 as i64).collect(),
            D::Uint8 | D::Bool => raw.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(IrError::tensor(
                    &self.name,
                    format!("cannot read {other} as integers"),
                ));
            }
        })
    }

    /// Every element as `bool` (non-zero is true).
    pub fn to_bool_vec(&self) -> Result<Vec<bool>> {
        Ok(self.to_f64_vec()?.into_iter().map(|x| x != 0.0).collect())
    }

    /// The same tensor under another name (data shared, not copied).
    pub fn renamed(&self, name: impl Into<String>) -> Tensor {
        Tensor {
            name: name.into(),
            ..self.clone()
        }
    }
}

fn arr8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    a
}

/// IEEE 754 half-precision bits to `f32`.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exp = ((bits >> 10) & 0x1f) as u32;
    let frac = (bits & 0x3ff) as u32;
    let out = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f * 2^-24.
            let v = f as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(out)
}

impl Tensor {
    /// Reads a file holding one serialized `TensorProto` (the ONNX test-data layout
    /// `input_N.pb` / `output_N.pb`).
    pub fn load_pb(path: impl AsRef<std::path::Path>) -> Result<Tensor> {
        use prost::Message;
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| IrError::io("reading", path, e))?;
        let proto = transfuse_proto::TensorProto::decode(Bytes::from(bytes))?;
        crate::convert::tensor_from_proto(proto)
    }

    /// Writes this tensor as one serialized `TensorProto` (inline data).
    pub fn save_pb(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        use prost::Message;
        let path = path.as_ref();
        let bytes = crate::convert::tensor_to_proto(self).encode_to_vec();
        std::fs::write(path, bytes).map_err(|e| IrError::io("writing", path, e))
    }
}
