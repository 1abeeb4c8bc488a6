//! Typed errors of preparing and running a graph.

use transfuse_ir::{DataType, IrError};

/// Everything that can go wrong while preparing or running a model.
///
/// Each message is one line naming the node, value or op involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterpError {
    /// The interpreter has no kernel for this op at this opset.
    #[error("unsupported op '{op_type}' (domain '{domain}', opset {opset})")]
    UnsupportedOp {
        /// Operator type.
        op_type: String,
        /// Operator domain (`""` is the default ONNX domain).
        domain: String,
        /// The opset version the model imports for that domain (0 when it imports none).
        opset: i64,
    },
    /// A node failed: bad attributes (found while preparing) or bad inputs (found while running).
    #[error("node '{node}' ({op_type}): {source}")]
    Node {
        /// The node's label (its name, or `op->first_output`).
        node: String,
        /// Its op type.
        op_type: String,
        /// What went wrong.
        #[source]
        source: OpError,
    },
    /// A graph input without an initializer default was not given to `run`.
    #[error("graph input '{name}' was not provided")]
    MissingInput {
        /// The input's name.
        name: String,
    },
    /// A graph input was given with a type or shape the graph does not declare.
    #[error("graph input '{name}': expected {expected}, got {actual}")]
    InputMismatch {
        /// The input's name.
        name: String,
        /// What the graph declares.
        expected: String,
        /// What was given.
        actual: String,
    },
    /// A tensor (initializer, `Constant` value or test data) has an element type the
    /// interpreter does not hold.
    #[error("tensor '{name}' has element type {dtype}, which the interpreter does not support")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// Its element type.
        dtype: DataType,
    },
    /// A tensor's data could not be read (missing data, bad dims).
    #[error("tensor '{name}': {source}")]
    InvalidTensor {
        /// The tensor's name.
        name: String,
        /// The IR's error.
        #[source]
        source: IrError,
    },
    /// A value the schedule expected is not available: the graph reads a value nothing
    /// produced (an omitted optional output, for example).
    #[error("value '{name}' is read but was never produced")]
    MissingValue {
        /// The value's name.
        name: String,
    },
}

/// Why one op failed; wrapped in [`InterpError::Node`] with the node's name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// Input shapes that do not fit together.
    #[error("shape error: {0}")]
    Shape(String),
    /// Input element types the op does not accept.
    #[error("type error: {0}")]
    Type(String),
    /// An attribute that is missing, of the wrong kind or out of range.
    #[error("attribute '{name}': {reason}")]
    Attribute {
        /// The attribute.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A required input is absent.
    #[error("required input {index} ({name}) is missing")]
    MissingInput {
        /// Input position.
        index: usize,
        /// The input's name in the op schema.
        name: &'static str,
    },
    /// An input value out of its allowed range (an index past the end, a zero step, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A valid use of the op that this interpreter does not implement.
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl OpError {
    /// A shape error.
    pub(crate) fn shape(msg: impl Into<String>) -> OpError {
        OpError::Shape(msg.into())
    }
    /// A type error.
    pub(crate) fn dtype(msg: impl Into<String>) -> OpError {
        OpError::Type(msg.into())
    }
    /// An attribute error.
    pub(crate) fn attr(name: &str, reason: impl Into<String>) -> OpError {
        OpError::Attribute {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
    /// An invalid-input error.
    pub(crate) fn invalid(msg: impl Into<String>) -> OpError {
        OpError::InvalidInput(msg.into())
    }
    /// An unsupported-feature error.
    pub(crate) fn unsupported(msg: impl Into<String>) -> OpError {
        OpError::Unsupported(msg.into())
    }
}

/// Result alias of kernels.
pub(crate) type OpResult<T> = Result<T, OpError>;
