//! The transfuse graph IR.
//!
//! Loads ONNX models into a graph the rest of the project can read and change, and saves
//! them back without losing anything: unknown ops, domains, attributes, metadata, subgraphs,
//! functions and external data all round-trip.
//!
//! ```no_run
//! use transfuse_ir::Model;
//! let model = Model::load("model.onnx")?;
//! println!("{}", model.graph.nodes.len());
//! model.save("copy.onnx")?;
//! # Ok::<(), transfuse_ir::IrError>(())
//! ```
//!
//! Invariants of a loaded [`Graph`]: nodes are in topological order, each value name is
//! defined once, every input is defined. Initializers are `Arc`-shared and their raw data
//! slices the memory-mapped file; nothing copies weights.

mod convert;
mod dot;
mod dtype;
mod dump;
mod error;
mod graph;
mod io;
mod model;
pub mod staging;
mod tensor;
pub mod wire;

pub use convert::{graph_from_proto, graph_to_proto, tensor_from_proto, tensor_to_proto};
pub use dot::{DEFAULT_COLLAPSE_ABOVE, DotOptions, FUSED_FILL, Layers, layer_of_path};
pub use dtype::DataType;
pub use error::{IrError, Result};
pub use graph::{AttrValue, Attribute, Dim, Graph, Node, ValueInfo, ValueType};
pub use io::{ExternalData, SaveOptions};
pub use model::{MS_DOMAIN, Model, ONNX_DOMAIN, OpsetImport};
pub use staging::{remove_staged_files, write_file_atomically};
pub use tensor::{ExternalLocation, Tensor, TensorData, f16_to_f32};
pub use transfuse_proto as proto;
