//! Do two ONNX models compute the same thing?
//!
//! A parity check runs an original model and a candidate (for example its optimized version)
//! on the same inputs, in the project's reference interpreter or in ONNX Runtime, and
//! compares every output under a [`Tolerance`]. On failure it runs both again capturing the
//! values they both compute under the same name and names the first one (in the original's
//! topological order) that diverges. A model can also be checked against the recorded
//! outputs of an ONNX test-data directory.
//!
//! ```no_run
//! use transfuse_ir::Model;
//! use transfuse_parity::{Options, check};
//!
//! let original = Model::load("model.onnx")?;
//! let candidate = Model::load("model.optimized.onnx")?;
//! let report = check(&original, &candidate, &Options::default())?;
//! println!("pass: {}, max abs error {:e}", report.pass, report.max_abs());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pieces are public for other harnesses: input generation ([`generate_inputs`], the
//! [`Padding`] patterns of attention masks), running a model ([`run_model`]), comparing
//! tensors ([`compare_tensors`], [`max_abs_diff`]).
//!
//! An fp16 candidate (weights and activations converted by `transfuse optimize --float16`)
//! cannot match its f32 original to 1e-4; [`Tolerance::float16`] is the tolerance measured
//! for it, and [`computes_in_float16`] tells such a candidate apart.
//!
//! Cargo features: `ort` (default) runs models in ONNX Runtime through `transfuse-ort`, which
//! finds the library itself ([`transfuse_ort::library_path`]); `clap` derives
//! `clap::ValueEnum` for [`Padding`] and [`RuntimeKind`].
//!
//! This crate depends on the IR, the interpreter and optionally the ONNX Runtime runner,
//! never on the optimizer: it judges the optimizer's output from outside.

#![warn(missing_docs)]

mod check;
pub mod compare;
pub mod engine;
mod error;
pub mod inputs;
mod reference;
mod report;

pub use check::{
    InputSource, Options, Subject, check, check_files, check_subjects, compare_outputs,
};
pub use compare::{
    TensorComparison, Tolerance, compare_tensors, computes_in_float16, max_abs_diff,
};
pub use engine::{Engine, Runtime, RuntimeKind, prepare, run_model};
pub use error::{ParityError, Result};
pub use inputs::{
    InputSpec, Padding, conform_inputs, generate_inputs, generate_inputs_with_symbols, mask_row,
    read_test_data,
};
pub use reference::ReferenceEngine;
pub use report::{Divergence, Report, RunTimes};

#[cfg(test)]
pub(crate) mod testdata {
    use std::path::PathBuf;

    use transfuse_ir::Model;

    /// `testdata/models/tiny/<name>` (a directory or, with `.onnx`, a model).
    pub(crate) fn tiny_dir(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/models/tiny")
            .join(name)
    }

    /// The tiny model `name`.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn tiny(name: &str) -> Model {
        Model::load(tiny_dir(&format!("{name}.onnx"))).unwrap()
    }
}
