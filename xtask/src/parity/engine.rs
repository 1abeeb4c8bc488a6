//! The runtimes parity runs models in: ONNX Runtime (through `transfuse-ort`) and the
//! project's reference interpreter (`transfuse-interp`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use transfuse_ir::{Model, Tensor, ValueInfo};
use transfuse_ort::{OrtRuntime, Session, SessionOptions};

use super::reference::ReferenceEngine;

/// Which runtime executes the models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The project's reference interpreter (ndarray + rayon).
    #[default]
    Reference,
    /// ONNX Runtime.
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

/// A model ready to run in one runtime.
pub trait Engine {
    /// Runs the model; returns its outputs (named, in graph output order) and the wall time
    /// of the inference alone.
    fn run(&mut self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Duration)>;

    /// Runs the model and returns the values called `names` that it computes.
    fn capture(&mut self, inputs: &[Tensor], names: &[String]) -> Result<HashMap<String, Tensor>>;
}

/// Prepares `model` (loaded from `path`) for `kind`.
pub fn engine_for(
    kind: RuntimeKind,
    path: &Path,
    model: &Model,
    ort_options: &SessionOptions,
) -> Result<Box<dyn Engine>> {
    Ok(match kind {
        RuntimeKind::Ort => Box::new(OrtEngine::new(
            crate::ort_lib::runtime()?,
            path,
            model,
            ort_options,
        )?),
        RuntimeKind::Reference => Box::new(ReferenceEngine::new(model)?),
    })
}

/// A model in an ONNX Runtime session.
pub struct OrtEngine {
    runtime: &'static OrtRuntime,
    model: Model,
    options: SessionOptions,
    session: Session,
}

impl OrtEngine {
    /// Creates the session from the file (so external data is found next to it).
    pub fn new(
        runtime: &'static OrtRuntime,
        path: &Path,
        model: &Model,
        options: &SessionOptions,
    ) -> Result<OrtEngine> {
        let session = Session::from_file(runtime, path, options)?;
        Ok(OrtEngine {
            runtime,
            model: model.clone(),
            options: options.clone(),
            session,
        })
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
        let timed = self.session.run_timed(&named_inputs(inputs))?;
        Ok((
            timed.outputs.into_iter().map(|(_, t)| t).collect(),
            timed.elapsed,
        ))
    }

    /// A copy of the model with the wanted values added as graph outputs, in a session of its
    /// own (same settings).
    fn capture(&mut self, inputs: &[Tensor], names: &[String]) -> Result<HashMap<String, Tensor>> {
        let mut copy = self.model.clone();
        let present: HashSet<String> = copy.graph.outputs.iter().map(|v| v.name.clone()).collect();
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
            .context("loading the model with its intermediate values as outputs")?;
        drop(bytes);
        let wanted: HashSet<&String> = names.iter().collect();
        Ok(session
            .run(&named_inputs(inputs))?
            .into_iter()
            .filter(|(n, _)| wanted.contains(n))
            .collect())
    }
}
