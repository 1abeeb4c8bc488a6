//! Typed errors of loading, checking and saving models.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or writing a model.
///
/// Each message is one line that names the problem and the value or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IrError {
    /// The file could not be read or written.
    #[error("{action} '{path}'")]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed protobuf message (truncated or not ONNX at all).
    #[error("not a valid ONNX file (truncated or corrupt protobuf): {0}")]
    Decode(#[from] prost::DecodeError),
    /// The bytes decode, but do not describe an ONNX model.
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    /// A node reads a value that nothing produces.
    #[error(
        "node '{node}' ({op_type}) reads '{value}', which no node, initializer or graph input produces"
    )]
    UndefinedValue {
        /// Name of the reading node (or its index when unnamed).
        node: String,
        /// Its op type.
        op_type: String,
        /// The missing value.
        value: String,
    },
    /// A graph output names a value that nothing produces.
    #[error("graph output '{0}' is not produced by any node, initializer or graph input")]
    UndefinedOutput(String),
    /// Two producers define the same value name.
    #[error("value '{name}' is defined twice ({first} and {second})")]
    DuplicateValue {
        /// The value name.
        name: String,
        /// What defined it first.
        first: String,
        /// What defined it again.
        second: String,
    },
    /// The nodes cannot be ordered because some depend on each other in a loop.
    #[error("the graph has a cycle through node '{node}' ({op_type})")]
    Cycle {
        /// A node on the cycle.
        node: String,
        /// Its op type.
        op_type: String,
    },
    /// A tensor's external data file does not exist.
    #[error("external data file '{path}' of tensor '{tensor}' is missing")]
    ExternalDataMissing {
        /// The tensor.
        tensor: String,
        /// The file it points to.
        path: PathBuf,
    },
    /// A tensor's external data reference is malformed or out of the file's bounds.
    #[error("external data of tensor '{tensor}' is invalid: {reason}")]
    ExternalDataInvalid {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's data does not match its type or dims, or cannot be converted as asked.
    #[error("tensor '{tensor}': {reason}")]
    InvalidTensor {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = IrError> = std::result::Result<T, E>;

impl IrError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        IrError::Io {
            action,
            path: path.into(),
            source,
        }
    }
    pub(crate) fn tensor(tensor: &str, reason: impl Into<String>) -> Self {
        IrError::InvalidTensor {
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }
}
