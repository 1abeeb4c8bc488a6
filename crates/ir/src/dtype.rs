//! ONNX element types.

/// An ONNX tensor element type (`TensorProto.DataType`).
///
/// Codes this crate does not know are kept as [`DataType::Other`] so they round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum DataType {
    Undefined,
    Float,
    Uint8,
    Int8,
    Uint16,
    Int16,
    Int32,
    Int64,
    String,
    Bool,
    Float16,
    Double,
    Uint32,
    Uint64,
    Complex64,
    Complex128,
    Bfloat16,
    Float8E4M3Fn,
    Float8E4M3Fnuz,
    Float8E5M2,
    Float8E5M2Fnuz,
    Uint4,
    Int4,
    Float4E2M1,
    Float8E8M0,
    Uint2,
    Int2,
    /// A code outside the list above, kept verbatim.
    Other(i32),
}

const TABLE: [(DataType, i32, &str); 27] = [
    (DataType::Undefined, 0, "undefined"),
    (DataType::Float, 1, "f32"),
    (DataType::Uint8, 2, "u8"),
    (DataType::Int8, 3, "i8"),
    (DataType::Uint16, 4, "u16"),
    (DataType::Int16, 5, "i16"),
    (DataType::Int32, 6, "i32"),
    (DataType::Int64, 7, "i64"),
    (DataType::String, 8, "string"),
    (DataType::Bool, 9, "bool"),
    (DataType::Float16, 10, "f16"),
    (DataType::Double, 11, "f64"),
    (DataType::Uint32, 12, "u32"),
    (DataType::Uint64, 13, "u64"),
    (DataType::Complex64, 14, "c64"),
    (DataType::Complex128, 15, "c128"),
    (DataType::Bfloat16, 16, "bf16"),
    (DataType::Float8E4M3Fn, 17, "f8e4m3fn"),
    (DataType::Float8E4M3Fnuz, 18, "f8e4m3fnuz"),
    (DataType::Float8E5M2, 19, "f8e5m2"),
    (DataType::Float8E5M2Fnuz, 20, "f8e5m2fnuz"),
    (DataType::Uint4, 21, "u4"),
    (DataType::Int4, 22, "i4"),
    (DataType::Float4E2M1, 23, "f4e2m1"),
    (DataType::Float8E8M0, 24, "f8e8m0"),
    (DataType::Uint2, 25, "u2"),
    (DataType::Int2, 26, "i2"),
];

impl DataType {
    /// From the protobuf code.
    pub fn from_code(code: i32) -> DataType {
        TABLE
            .iter()
            .find(|(_, c, _)| *c == code)
            .map_or(DataType::Other(code), |(d, _, _)| *d)
    }

    /// The protobuf code.
    pub fn code(self) -> i32 {
        match self {
            DataType::Other(c) => c,
            d => TABLE
                .iter()
                .find(|(t, _, _)| *t == d)
                .map_or(0, |(_, c, _)| *c),
        }
    }

    /// Short lower-case name (`f32`, `i64`, `bool`, ...), used in dumps and messages.
    pub fn short_name(self) -> String {
        match self {
            DataType::Other(c) => format!("dtype{c}"),
            d => TABLE
                .iter()
                .find(|(t, _, _)| *t == d)
                .map_or("?", |(_, _, n)| n)
                .to_string(),
        }
    }

    /// Bytes per element in `raw_data`, for whole-byte types; `None` for strings,
    /// sub-byte types and unknown codes.
    pub fn size_of(self) -> Option<usize> {
        use DataType::*;
        Some(match self {
            Uint8 | Int8 | Bool | Float8E4M3Fn | Float8E4M3Fnuz | Float8E5M2 | Float8E5M2Fnuz
            | Float8E8M0 => 1,
            Uint16 | Int16 | Float16 | Bfloat16 => 2,
            Float | Int32 | Uint32 => 4,
            Int64 | Double | Uint64 | Complex64 => 8,
            Complex128 => 16,
            _ => return None,
        })
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        use DataType::*;
        matches!(
            self,
            Float
                | Double
                | Float16
                | Bfloat16
                | Float8E4M3Fn
                | Float8E4M3Fnuz
                | Float8E5M2
                | Float8E5M2Fnuz
        )
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.short_name())
    }
}
