//! The transfuse reference interpreter.
//!
//! Executes a [`transfuse_ir::Model`] on [`ndarray`] arrays, in parallel on rayon's pool:
//! every ONNX op the project's models use (at the opsets they use) and ONNX Runtime's
//! fused contrib ops (`com.microsoft` `Attention`, `SkipLayerNormalization`, ...) with
//! ONNX Runtime's semantics. It is the independent witness that a fusion computes the same
//! thing as the graph it replaced, and is fast enough for base-size models.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use transfuse_interp::{Interpreter, Value};
//! let model = transfuse_ir::Model::load("model.onnx")?;
//! let interp = Interpreter::new(&model)?;
//! let mut inputs = HashMap::new();
//! inputs.insert("pixel_values".to_string(), Value::from_f32(&[1, 3, 32, 32], vec![0.0; 3072]).unwrap());
//! let outputs = interp.run(&inputs)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Contracts: preparing ([`Interpreter::new`]) reports unsupported ops and bad attributes
//! before anything runs; nothing panics on any model or input; every intermediate value
//! is dropped right after its last reader. The supported ops are listed by
//! [`supported_ops`] and documented in `docs/interpreter.md`.

#![warn(missing_docs)]

mod broadcast;
mod elem;
mod error;
mod half_precision;
mod interpreter;
mod linalg;
mod ops;
mod registry;
mod value;

pub use error::{InterpError, OpError};
pub use interpreter::{Interpreter, OpSupport, supported_ops};
pub use value::Value;
