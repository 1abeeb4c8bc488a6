//! Run ONNX models in ONNX Runtime, exchanging [`transfuse_ir::Tensor`]s.
//!
//! The only crate of the project that depends on `ort`; nothing of `ort` appears in its
//! public API. ONNX Runtime is loaded at run time from a shared library file (the
//! `load-dynamic` feature of `ort`), once per process:
//!
//! ```no_run
//! use transfuse_ir::Tensor;
//! use transfuse_ort::{OptimizationLevel, OrtRuntime, Session, SessionOptions};
//!
//! let runtime = OrtRuntime::init("target/onnxruntime/libonnxruntime.so.1.31.1")?;
//! let options = SessionOptions::default().optimization_level(OptimizationLevel::All).intra_op_threads(2);
//! let mut session = Session::from_file(runtime, "model.onnx", &options)?;
//! let pixels = Tensor::from_f32("pixel_values", vec![1, 3, 32, 32], &[0.0; 3 * 32 * 32]);
//! let timed = session.run_timed(&[("pixel_values", pixels)])?;
//! println!("{} outputs in {:?}", timed.outputs.len(), timed.elapsed);
//! # Ok::<(), transfuse_ort::OrtError>(())
//! ```
//!
//! Tensors of element type f32, f64, i64, i32, i8, u8 and bool go in and come out.
//! Execution providers: CPU, and CUDA with the cargo feature `cuda` ([`CudaOptions`]: TF32 and
//! CUDA graph capture, recorded with [`SessionOptions::provider_description`]). For timing,
//! [`Session::bind`] puts the inputs on the device once and binds the outputs to device memory,
//! so [`Session::time_bound`] measures no host copies. Per-node profiling
//! writes ONNX Runtime's JSON trace ([`SessionOptions::profiling`], [`Session::end_profiling`]).

mod binding;
mod convert;
mod cuda;
mod error;
mod locate;
mod options;
mod runtime;
mod session;

pub use binding::BoundRun;
pub use cuda::{CaptureReport, CudaOptions};
pub use error::{OrtError, Result};
pub use locate::{PROVISIONED_DIR, library_path, provisioned_candidates, provisioned_path};
pub use options::{ExecutionProvider, OptimizationLevel, ParseSettingError, SessionOptions};
pub use runtime::{LIBRARY_FILE_NAME, LIBRARY_PATH_VARIABLE, ONNX_RUNTIME_VERSION, OrtRuntime};
pub use session::{PreparedInputs, Session, TimedRun};
