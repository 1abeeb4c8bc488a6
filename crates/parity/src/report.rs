//! The outcome of a parity check, serializable as the documented JSON report.

use serde::Serialize;
use transfuse_ir::Model;

use crate::compare::TensorComparison;
use crate::engine::RuntimeKind;

/// Wall times of the compared runs (inference only, first run of each model).
#[derive(Clone, Debug, Serialize)]
pub struct RunTimes {
    /// The original model, in milliseconds.
    pub model: f64,
    /// The candidate, in milliseconds (`null` without one).
    pub candidate: Option<f64>,
}

/// The first intermediate value whose values differ between the two models.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// How it compares.
    #[serde(flatten)]
    pub comparison: TensorComparison,
    /// The op that computes it in the original model.
    pub model_op: String,
    /// The op that computes it in the candidate.
    pub candidate_op: String,
}

/// The outcome of a parity check (the `--json` document of `transfuse parity`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `reference` or `ort`.
    pub runtime: RuntimeKind,
    /// Every output passed.
    pub pass: bool,
    /// Per output.
    pub outputs: Vec<TensorComparison>,
    /// Inference times.
    pub run_ms: RunTimes,
    /// What the outputs were compared with: `candidate vs model` or `model vs expected`.
    pub compared: String,
    /// The inputs used.
    pub inputs: String,
    /// On failure with a candidate: the first diverging shared value, if one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_divergence: Option<Divergence>,
    /// On failure with a candidate: how many shared intermediate values were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_values_compared: Option<usize>,
}

impl Report {
    /// The names of the outputs that failed.
    pub fn failed_outputs(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .filter(|o| !o.pass)
            .map(|o| o.name.as_str())
            .collect()
    }

    /// The largest `max_abs` over all outputs.
    pub fn max_abs(&self) -> f64 {
        self.outputs.iter().map(|o| o.max_abs).fold(0.0, f64::max)
    }
}

/// `OpType 'node name'` of the node computing `value` (`domain.OpType` outside ONNX).
pub(crate) fn producer(model: &Model, value: &str) -> String {
    model
        .graph
        .nodes
        .iter()
        .find(|n| n.outputs.iter().any(|o| o == value))
        .map(|n| {
            let op = if n.is_onnx() {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            if n.name.is_empty() {
                op
            } else {
                format!("{op} '{}'", n.name)
            }
        })
        .unwrap_or_else(|| "(not computed by a node)".into())
}
