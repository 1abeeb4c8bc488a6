//! Typed errors of parity checks.

use std::path::PathBuf;

/// Everything that can stop a parity check before it reaches a verdict. (A check that runs
/// and finds differences is not an error: it returns a failing [`crate::Report`].)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParityError {
    /// A model file could not be loaded.
    #[error("loading {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        source: transfuse_ir::IrError,
    },
    /// Inputs could not be generated from the model's input signature.
    #[error("cannot generate inputs: {0}")]
    Generate(String),
    /// A given or generated input does not fit a model's declared input type (a float
    /// tensor for an integer input, or an integer value outside the declared width).
    #[error("{model}: {problem}")]
    InputType {
        /// Which model (`model` or `candidate`, or a file name).
        model: String,
        /// What does not fit.
        problem: String,
    },
    /// A test-data directory is incomplete or does not fit the model.
    #[error("test data in {dir}: {problem}")]
    TestData {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A tensor file of a test-data directory could not be read.
    #[error("reading {path}: {source}")]
    ReadTensor {
        /// The file.
        path: PathBuf,
        /// Why.
        source: transfuse_ir::IrError,
    },
    /// The reference interpreter rejected or failed to run a model.
    #[error("{model} in the reference interpreter: {source}")]
    Interpreter {
        /// Which model (`model` or `candidate`, or a file name).
        model: String,
        /// The interpreter's error (boxed: it is large).
        source: Box<transfuse_interp::InterpError>,
    },
    /// A model did not produce one of its declared outputs.
    #[error("{model} did not produce its output '{output}'")]
    MissingOutput {
        /// Which model.
        model: String,
        /// The output.
        output: String,
    },
    /// ONNX Runtime could not be loaded, or rejected or failed to run a model.
    #[cfg(feature = "ort")]
    #[error("{model} in ONNX Runtime: {source}")]
    Ort {
        /// Which model (`model` or `candidate`, or a file name), or `ONNX Runtime` when the
        /// library itself could not be loaded.
        model: String,
        /// ONNX Runtime's error (boxed: it is large).
        source: Box<transfuse_ort::OrtError>,
    },
    /// ONNX Runtime was asked for, but this build does not include it.
    #[error(
        "the ort runtime is not compiled in: build transfuse-parity with the cargo feature `ort`"
    )]
    OrtNotCompiled,
    /// There is nothing to compare the outputs with.
    #[error("no expected outputs to compare with")]
    NoExpectedOutputs,
}

/// Result alias of this crate.
pub type Result<T, E = ParityError> = std::result::Result<T, E>;
