//! The parity check itself: run both models (or one model and its recorded outputs) on the
//! same inputs, compare per output, and on failure locate the first diverging value.

use std::path::{Path, PathBuf};

use transfuse_ir::{Model, Tensor};

use crate::compare::{
    TensorComparison, Tolerance, compare_tensors, first_divergence, shared_intermediates,
};
use crate::engine::{Runtime, prepare};
use crate::error::{ParityError, Result};
use crate::inputs::{
    InputRole, InputSpec, Padding, classify_inputs, conform_inputs, generate_inputs, read_test_data,
};
use crate::report::{Divergence, Report, RunTimes, producer};

/// Where the inputs come from.
#[derive(Clone, Debug)]
pub enum InputSource {
    /// Generated from the original model's input signature.
    Generated(InputSpec),
    /// Read from an ONNX test-data directory (`input_N.pb`, and `output_N.pb`: the expected
    /// outputs when there is no candidate).
    Directory(PathBuf),
    /// These tensors, named after the model's inputs.
    Given(Vec<Tensor>),
}

/// How a check runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The inputs.
    pub inputs: InputSource,
    /// The runtime both models run in.
    pub runtime: Runtime,
    /// Acceptance of each output element.
    pub tolerance: Tolerance,
    /// On failure, run both models again capturing intermediates to find the first divergence.
    pub locate_divergence: bool,
}

impl Default for Options {
    /// Generated inputs (batch 2, sequence 16, seed 0, right padding), the reference
    /// interpreter, absolute tolerance 1e-4, divergence located on failure.
    fn default() -> Options {
        Options {
            inputs: InputSource::Generated(InputSpec {
                batch: 2,
                seq: 16,
                seed: 0,
                padding: Padding::Right,
            }),
            runtime: Runtime::default(),
            tolerance: Tolerance::absolute(1e-4),
            locate_divergence: true,
        }
    }
}

/// A model, and the file it was loaded from when there is one (ONNX Runtime then loads that
/// file, so external data is found next to it).
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The model.
    pub model: &'a Model,
    /// Its file.
    pub path: Option<&'a Path>,
}

/// Does `candidate` compute what `original` computes? Both run on the same inputs and each
/// output of the candidate is compared with the original's.
pub fn check(original: &Model, candidate: &Model, options: &Options) -> Result<Report> {
    check_subjects(
        Subject {
            model: original,
            path: None,
        },
        Some(Subject {
            model: candidate,
            path: None,
        }),
        options,
    )
}

/// Loads the model files and checks them: `candidate` against `model`, or without a
/// candidate `model` against the expected outputs of the [`InputSource::Directory`].
pub fn check_files(model: &Path, candidate: Option<&Path>, options: &Options) -> Result<Report> {
    let load = |path: &Path| {
        Model::load(path).map_err(|source| ParityError::Load {
            path: path.to_path_buf(),
            source,
        })
    };
    let original = load(model)?;
    let candidate_model = candidate.map(load).transpose()?;
    check_subjects(
        Subject {
            model: &original,
            path: Some(model),
        },
        candidate_model.as_ref().map(|m| Subject {
            model: m,
            path: candidate,
        }),
        options,
    )
}

fn label(subject: &Subject<'_>, fallback: &str) -> String {
    subject
        .path
        .map_or_else(|| fallback.to_string(), |p| p.display().to_string())
}

/// What generated inputs are: sequence length and padding for text models (token ids,
/// masks, positions), the tensors' shapes for models whose inputs are all floats (images).
fn describe_generated(model: &Model, spec: &InputSpec, inputs: &[Tensor]) -> Result<String> {
    let text = classify_inputs(model)?
        .iter()
        .any(|(_, role)| !matches!(role, InputRole::Float));
    Ok(if text {
        format!(
            "generated: batch {}, seq {}, seed {}, padding {}",
            spec.batch, spec.seq, spec.seed, spec.padding
        )
    } else {
        let shapes: Vec<String> = inputs
            .iter()
            .map(|t| format!("{} {:?}", t.name, t.dims))
            .collect();
        format!("generated: {}, seed {}", shapes.join(", "), spec.seed)
    })
}

/// The general form: `candidate` against `model`, or without a candidate `model` against
/// the expected outputs of an [`InputSource::Directory`] (anything else is
/// [`ParityError::NoExpectedOutputs`]).
pub fn check_subjects(
    model: Subject<'_>,
    candidate: Option<Subject<'_>>,
    options: &Options,
) -> Result<Report> {
    let (inputs, expected, inputs_text) = match &options.inputs {
        InputSource::Generated(spec) => {
            let inputs = generate_inputs(model.model, spec)?;
            let text = describe_generated(model.model, spec, &inputs)?;
            (inputs, Vec::new(), text)
        }
        InputSource::Directory(dir) => {
            let data = read_test_data(model.model, dir)?;
            (data.inputs, data.outputs, format!("from {}", dir.display()))
        }
        InputSource::Given(tensors) => (
            tensors.clone(),
            Vec::new(),
            format!("given: {} tensors", tensors.len()),
        ),
    };
    let runtime = &options.runtime;
    let model_label = label(&model, "model");
    // One set of values; each model gets them at its declared integer widths.
    let model_inputs = conform_inputs(model.model, &inputs, &model_label)?;
    let mut model_engine = prepare(runtime, model.model, model.path, &model_label)?;
    let (model_outputs, model_time) = model_engine.run(&model_inputs)?;

    let Some(candidate) = candidate else {
        let outputs = compare_outputs(&model_outputs, &expected, options.tolerance)?;
        return Ok(Report {
            runtime: runtime.kind,
            pass: outputs.iter().all(|o| o.pass),
            outputs,
            run_ms: RunTimes {
                model: millis(model_time),
                candidate: None,
            },
            compared: "model vs expected".into(),
            inputs: inputs_text,
            first_divergence: None,
            shared_values_compared: None,
        });
    };
    let candidate_label = label(&candidate, "candidate");
    let candidate_inputs = conform_inputs(candidate.model, &inputs, &candidate_label)?;
    let mut candidate_engine = prepare(runtime, candidate.model, candidate.path, &candidate_label)?;
    let (candidate_outputs, candidate_time) = candidate_engine.run(&candidate_inputs)?;
    let outputs = compare_outputs(&candidate_outputs, &model_outputs, options.tolerance)?;
    let pass = outputs.iter().all(|o| o.pass);
    let mut report = Report {
        runtime: runtime.kind,
        pass,
        outputs,
        run_ms: RunTimes {
            model: millis(model_time),
            candidate: Some(millis(candidate_time)),
        },
        compared: "candidate vs model".into(),
        inputs: inputs_text,
        first_divergence: None,
        shared_values_compared: None,
    };
    if !pass && options.locate_divergence {
        let shared = shared_intermediates(model.model, candidate.model);
        // One session at a time: large models do not fit twice.
        drop(model_engine);
        let model_values = prepare(runtime, model.model, model.path, &model_label)?
            .capture(&model_inputs, &shared)?;
        drop(candidate_engine);
        let candidate_values = prepare(runtime, candidate.model, candidate.path, &candidate_label)?
            .capture(&candidate_inputs, &shared)?;
        report.shared_values_compared = Some(
            shared
                .iter()
                .filter(|n| model_values.contains_key(*n) && candidate_values.contains_key(*n))
                .count(),
        );
        report.first_divergence =
            first_divergence(&shared, &model_values, &candidate_values, options.tolerance).map(
                |comparison| Divergence {
                    model_op: producer(model.model, &comparison.name),
                    candidate_op: producer(candidate.model, &comparison.name),
                    comparison,
                },
            );
    }
    Ok(report)
}

/// Compares outputs pairwise by name (`expected` defines the names and order); an output
/// missing from `actual` fails.
pub fn compare_outputs(
    actual: &[Tensor],
    expected: &[Tensor],
    tolerance: Tolerance,
) -> Result<Vec<TensorComparison>> {
    if expected.is_empty() {
        return Err(ParityError::NoExpectedOutputs);
    }
    Ok(expected
        .iter()
        .map(|e| match actual.iter().find(|a| a.name == e.name) {
            Some(a) => compare_tensors(&e.name, a, e, tolerance),
            None => TensorComparison {
                name: e.name.clone(),
                max_abs: f64::INFINITY,
                max_rel: f64::INFINITY,
                pass: false,
                top1_agreement: None,
                problem: Some("missing from the compared model's outputs".into()),
            },
        })
        .collect())
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
