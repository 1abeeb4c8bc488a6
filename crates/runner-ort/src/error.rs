//! Typed errors of loading ONNX Runtime, building sessions and running models.

use std::path::PathBuf;

use transfuse_ir::{DataType, IrError};

/// Everything that can go wrong in this crate. Each message is one line naming the
/// problem and the library, model, setting or value involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrtError {
    /// The ONNX Runtime shared library could not be loaded (missing file, wrong
    /// architecture, too old a version).
    #[error("cannot load ONNX Runtime from '{path}': {reason}")]
    Load {
        /// The library that was asked for.
        path: PathBuf,
        /// Why loading failed.
        reason: String,
    },
    /// No ONNX Runtime library was found where one is looked for.
    #[error(
        "ONNX Runtime library not found (looked at {looked}): set ORT_DYLIB_PATH to a libonnxruntime.so.1.31.1, or run `cargo xtask ort-lib` in the workspace"
    )]
    NotFound {
        /// The places looked at.
        looked: String,
    },
    /// A process can hold only one ONNX Runtime library; a second, different one was asked for.
    #[error(
        "ONNX Runtime is already loaded from '{loaded}' in this process; cannot also load '{requested}'"
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library that was asked for afterwards.
        requested: PathBuf,
    },
    /// ONNX Runtime could not create its environment.
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),
    /// A session setting was rejected.
    #[error("cannot set {setting} on the session: {message}")]
    Configure {
        /// The setting (`optimization level`, `intra-op threads`, ...).
        setting: &'static str,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The execution provider was asked for, but this build of the crate does not include it.
    #[error(
        "the {provider} execution provider is not compiled in: build transfuse-ort with the cargo feature `{feature}`"
    )]
    ProviderNotCompiled {
        /// The provider (`CUDA`).
        provider: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// ONNX Runtime rejected the model when creating the session.
    #[error("ONNX Runtime cannot load the model {model}: {message}")]
    CreateSession {
        /// The model file, or `(from memory)`.
        model: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// An input was given that the model does not have.
    #[error("the model has no input '{name}' (its inputs: {expected})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's input names, comma separated.
        expected: String,
    },
    /// A model input was not given.
    #[error("input '{name}' of the model was not given")]
    MissingInput {
        /// The missing input.
        name: String,
    },
    /// A tensor's element type cannot be passed to or read from ONNX Runtime by this crate.
    #[error(
        "{role} '{name}' has element type {dtype}, which this runner does not exchange (f32, f64, i64, i32, i8, u8, bool)"
    )]
    UnsupportedType {
        /// `input` or `output`.
        role: &'static str,
        /// The value's name.
        name: String,
        /// Its element type.
        dtype: String,
    },
    /// An output is not a tensor (a sequence, map or optional).
    #[error("output '{name}' is not a tensor but {kind}")]
    NotATensor {
        /// The output.
        name: String,
        /// What it is.
        kind: String,
    },
    /// An input tensor's data is inconsistent (wrong byte count, negative dims, no data).
    /// (The IR error is part of the message, so it is not also reported as the source.)
    #[error("input '{name}': {problem}")]
    InvalidInput {
        /// The input.
        name: String,
        /// What is wrong with it.
        problem: IrError,
    },
    /// ONNX Runtime could not create or read a tensor value.
    #[error("tensor '{name}': {message}")]
    Value {
        /// The value's name.
        name: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// ONNX Runtime refused to capture the run in a CUDA graph (for example because some
    /// node is not placed on the CUDA provider). Its message is kept verbatim.
    #[error("CUDA graph capture refused at {stage}: {message}")]
    GraphCaptureRefused {
        /// `session creation`, `the first run` or `the capture`.
        stage: &'static str,
        /// ONNX Runtime's message.
        message: String,
    },
    /// Inputs or outputs could not be bound to device memory.
    #[error("I/O binding: {0}")]
    Binding(String),
    /// Inference failed.
    #[error("ONNX Runtime failed to run the model: {0}")]
    Run(String),
    /// Profiling was not enabled, or ONNX Runtime could not finish the profile.
    #[error("profiling: {0}")]
    Profiling(String),
}

impl OrtError {
    pub(crate) fn unsupported(role: &'static str, name: &str, dtype: DataType) -> OrtError {
        OrtError::UnsupportedType {
            role,
            name: name.to_string(),
            dtype: dtype.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = OrtError> = std::result::Result<T, E>;
