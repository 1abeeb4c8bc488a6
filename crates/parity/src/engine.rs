//! The runtimes parity runs models in: the project's reference interpreter
//! (`transfuse-interp`), and ONNX Runtime (`transfuse-ort`, with the cargo feature `ort`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use transfuse_ir::{Model, Tensor};

use crate::error::Result;
use crate::reference::ReferenceEngine;

/// Which runtime executes the models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The project's reference interpreter (ndarray + rayon).
    #[default]
    Reference,
    /// ONNX Runtime (needs the cargo feature `ort`, and the library at run time).
    Ort,
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RuntimeKind::Reference => "reference",
            RuntimeKind::Ort => "ort",
        })
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<RuntimeKind, String> {
        match s {
            "reference" => Ok(RuntimeKind::Reference),
            "ort" => Ok(RuntimeKind::Ort),
            _ => Err(format!("unknown runtime '{s}' (reference, ort)")),
        }
    }
}

/// A runtime and its settings.
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    /// Which runtime.
    pub kind: RuntimeKind,
    /// Session settings for [`RuntimeKind::Ort`].
    #[cfg(feature = "ort")]
    pub ort: transfuse_ort::SessionOptions,
}

impl Runtime {
    /// The reference interpreter.
    pub fn reference() -> Runtime {
        Runtime::default()
    }

    /// ONNX Runtime with these session settings.
    #[cfg(feature = "ort")]
    pub fn ort(options: transfuse_ort::SessionOptions) -> Runtime {
        Runtime {
            kind: RuntimeKind::Ort,
            ort: options,
        }
    }
}

/// A model ready to run in one runtime.
pub trait Engine {
    /// Runs the model; returns its outputs (named, in graph output order) and the wall time
    /// of the inference alone.
    fn run(&mut self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Duration)>;

    /// Runs the model and returns the values called `names` that it computes.
    fn capture(&mut self, inputs: &[Tensor], names: &[String]) -> Result<HashMap<String, Tensor>>;
}

/// Prepares `model` for `runtime`. `path` is the file it was loaded from, if any (ONNX
/// Runtime then reads it from there, so external data is found next to it); `label` names
/// the model in errors.
pub fn prepare(
    runtime: &Runtime,
    model: &Model,
    path: Option<&Path>,
    label: &str,
) -> Result<Box<dyn Engine>> {
    match runtime.kind {
        RuntimeKind::Reference => Ok(Box::new(ReferenceEngine::new(model, label)?)),
        #[cfg(feature = "ort")]
        RuntimeKind::Ort => Ok(Box::new(ort::OrtEngine::new(
            model,
            path,
            &runtime.ort,
            label,
        )?)),
        #[cfg(not(feature = "ort"))]
        RuntimeKind::Ort => {
            let _ = path;
            Err(crate::error::ParityError::OrtNotCompiled)
        }
    }
}

/// Runs `model` once in `runtime` and returns its outputs in graph output order.
pub fn run_model(model: &Model, inputs: &[Tensor], runtime: &Runtime) -> Result<Vec<Tensor>> {
    Ok(prepare(runtime, model, None, "model")?.run(inputs)?.0)
}

#[cfg(feature = "ort")]
mod ort {
    use std::collections::{HashMap, HashSet};
    use std::path::Path;
    use std::time::Duration;

    use transfuse_ir::{Model, Tensor, ValueInfo};
    use transfuse_ort::{OrtError, OrtRuntime, Session, SessionOptions};

    use super::Engine;
    use crate::error::{ParityError, Result};

    /// A model in an ONNX Runtime session.
    pub(super) struct OrtEngine {
        runtime: &'static OrtRuntime,
        model: Model,
        options: SessionOptions,
        session: Session,
        label: String,
    }

    impl OrtEngine {
        /// Creates the session from the file when there is one, else from the serialized model.
        pub(super) fn new(
            model: &Model,
            path: Option<&Path>,
            options: &SessionOptions,
            label: &str,
        ) -> Result<OrtEngine> {
            let runtime = OrtRuntime::locate().map_err(|source| ParityError::Ort {
                model: "ONNX Runtime".into(),
                source: Box::new(source),
            })?;
            let error = |source| ParityError::Ort {
                model: label.to_string(),
                source: Box::new(source),
            };
            let session = match path {
                Some(path) => Session::from_file(runtime, path, options),
                None => Session::from_bytes(runtime, &model.to_bytes(), options),
            }
            .map_err(error)?;
            Ok(OrtEngine {
                runtime,
                model: model.clone(),
                options: options.clone(),
                session,
                label: label.to_string(),
            })
        }

        fn error(&self, source: OrtError) -> ParityError {
            ParityError::Ort {
                model: self.label.clone(),
                source: Box::new(source),
            }
        }
    }

    fn named_inputs(inputs: &[Tensor]) -> Vec<(&str, Tensor)> {
        inputs
            .iter()
            .map(|t| (t.name.as_str(), t.clone()))
            .collect()
    }

    impl Engine for OrtEngine {
        fn run(&mut self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Duration)> {
            let timed = self
                .session
                .run_timed(&named_inputs(inputs))
                .map_err(|e| self.error(e))?;
            Ok((
                timed.outputs.into_iter().map(|(_, t)| t).collect(),
                timed.elapsed,
            ))
        }

        /// A copy of the model with the wanted values added as graph outputs, in a session of
        /// its own (same settings).
        fn capture(
            &mut self,
            inputs: &[Tensor],
            names: &[String],
        ) -> Result<HashMap<String, Tensor>> {
            let mut copy = self.model.clone();
            let present: HashSet<String> =
                copy.graph.outputs.iter().map(|v| v.name.clone()).collect();
            for name in names.iter().filter(|n| !present.contains(*n)) {
                let info = copy
                    .graph
                    .value_info
                    .iter()
                    .find(|v| &v.name == name)
                    .cloned()
                    .unwrap_or_else(|| ValueInfo {
                        name: name.clone(),
                        ty: None,
                        doc_string: String::new(),
                        metadata_props: Vec::new(),
                    });
                copy.graph.outputs.push(info);
            }
            let bytes = copy.to_bytes();
            drop(copy);
            let mut session = Session::from_bytes(self.runtime, &bytes, &self.options)
                .map_err(|e| self.error(e))?;
            drop(bytes);
            let wanted: HashSet<&String> = names.iter().collect();
            Ok(session
                .run(&named_inputs(inputs))
                .map_err(|e| self.error(e))?
                .into_iter()
                .filter(|(n, _)| wanted.contains(n))
                .collect())
        }
    }
}
