//! `cargo xtask parity MODEL [CANDIDATE]`: do two models (or a model and its recorded outputs)
//! compute the same thing?
//!
//! - With `--inputs DIR` (the ONNX test-data layout `input_N.pb`, `output_N.pb`) and no
//!   CANDIDATE: MODEL's outputs are compared with the expected `output_N.pb`.
//! - With CANDIDATE: both run on the same inputs (DIR's, or generated from MODEL's input
//!   signature, see [`inputs`]) and CANDIDATE's outputs are compared with MODEL's.
//!
//! Prints max absolute and relative error and a verdict per output, top-1 agreement for
//! classification logits, and on failure the first intermediate value (same name in both
//! graphs, in MODEL's topological order) whose values diverge. Exits non-zero on failure.
//! The pieces ([`inputs::generate_inputs`], [`compare::compare_tensors`], [`check`]) are
//! reused by the bench.

pub mod compare;
pub mod engine;
pub mod inputs;
pub mod reference;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{OptimizationLevel, SessionOptions};

use compare::{
    TensorComparison, Tolerance, compare_tensors, first_divergence, shared_intermediates,
};
use engine::{RuntimeKind, engine_for};
use inputs::{InputSpec, Padding, generate_inputs, read_test_data};

/// Arguments of `cargo xtask parity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The reference model.
    pub model: PathBuf,
    /// A model that should compute the same as MODEL (for example its optimized version).
    pub candidate: Option<PathBuf>,
    /// Inputs (and, without CANDIDATE, expected outputs) in the ONNX test-data layout.
    #[arg(long, value_name = "DIR")]
    pub inputs: Option<PathBuf>,
    /// The runtime that executes the models.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Reference)]
    pub runtime: RuntimeKind,
    /// Batch size of generated inputs.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Sequence length of generated text inputs.
    #[arg(long, default_value_t = 16)]
    pub seq: usize,
    /// Seed of generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Padding pattern of generated attention masks.
    #[arg(long, value_enum, default_value_t = Padding::Right)]
    pub padding: Padding,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    /// Relative tolerance (added to atol, times |expected|).
    #[arg(long, default_value_t = 0.0)]
    pub rtol: f64,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// ONNX Runtime's own graph optimization level (--runtime ort).
    #[arg(long, default_value_t = OptimizationLevel::Disabled)]
    pub ort_opt_level: OptimizationLevel,
    /// ONNX Runtime intra-op threads (--runtime ort; default: ONNX Runtime's choice).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where the inputs come from.
#[derive(Clone, Debug)]
pub enum InputSource {
    /// Generated from the model's input signature.
    Generated(InputSpec),
    /// Read from an ONNX test-data directory.
    Directory(PathBuf),
}

/// One parity check.
#[derive(Clone, Debug)]
pub struct Request {
    /// The reference model.
    pub model: PathBuf,
    /// The model compared with it; `None` compares MODEL with the directory's expected outputs.
    pub candidate: Option<PathBuf>,
    /// The inputs.
    pub inputs: InputSource,
    /// The runtime.
    pub runtime: RuntimeKind,
    /// Acceptance.
    pub tolerance: Tolerance,
    /// Session settings for `RuntimeKind::Ort`.
    pub ort_options: SessionOptions,
    /// On failure, run both models again capturing intermediates to find the first divergence.
    pub locate_divergence: bool,
}

/// Wall times of the compared runs (inference only, first run of each model).
#[derive(Clone, Debug, Serialize)]
pub struct RunTimes {
    /// MODEL, in milliseconds.
    pub model: f64,
    /// CANDIDATE, in milliseconds (`null` without one).
    pub candidate: Option<f64>,
}

/// The first intermediate value whose values differ between the two models.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// How it compares.
    #[serde(flatten)]
    pub comparison: TensorComparison,
    /// The op that computes it in MODEL.
    pub model_op: String,
    /// The op that computes it in CANDIDATE.
    pub candidate_op: String,
}

/// The outcome of a parity check (the `--json` document).
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

/// Runs `cargo xtask parity`.
pub fn run(args: Args) -> Result<()> {
    let inputs = match &args.inputs {
        Some(dir) => InputSource::Directory(dir.clone()),
        None => InputSource::Generated(InputSpec {
            batch: args.batch,
            seq: args.seq,
            seed: args.seed,
            padding: args.padding,
        }),
    };
    if args.candidate.is_none() && args.inputs.is_none() {
        bail!(
            "nothing to compare with: give a CANDIDATE model, or --inputs DIR with expected outputs"
        );
    }
    let mut ort_options = SessionOptions::default().optimization_level(args.ort_opt_level);
    ort_options.intra_op_threads = args.threads;
    let request = Request {
        model: args.model.clone(),
        candidate: args.candidate.clone(),
        inputs,
        runtime: args.runtime,
        tolerance: Tolerance {
            atol: args.atol,
            rtol: args.rtol,
        },
        ort_options,
        locate_divergence: true,
    };
    let report = check(&request)?;
    print_report(&request, &report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.pass {
        let failed: Vec<&str> = report
            .outputs
            .iter()
            .filter(|o| !o.pass)
            .map(|o| o.name.as_str())
            .collect();
        bail!(
            "parity failed: {} differ beyond atol {:e}, rtol {:e}",
            failed.join(", "),
            args.atol,
            args.rtol
        );
    }
    Ok(())
}

fn load(path: &Path) -> Result<Model> {
    Model::load(path).with_context(|| format!("loading {}", path.display()))
}

/// Runs one parity check (no printing).
pub fn check(request: &Request) -> Result<Report> {
    let model = load(&request.model)?;
    let candidate = request.candidate.as_deref().map(load).transpose()?;
    let (inputs, expected, inputs_text) = match &request.inputs {
        InputSource::Generated(spec) => {
            let inputs = generate_inputs(&model, spec)
                .with_context(|| format!("generating inputs for {}", request.model.display()))?;
            let text = format!(
                "generated: batch {}, seq {}, seed {}, padding {}",
                spec.batch, spec.seq, spec.seed, spec.padding
            );
            (inputs, Vec::new(), text)
        }
        InputSource::Directory(dir) => {
            let data = read_test_data(&model, dir)?;
            (data.inputs, data.outputs, format!("from {}", dir.display()))
        }
    };

    let mut model_engine = engine_for(
        request.runtime,
        &request.model,
        &model,
        &request.ort_options,
    )
    .with_context(|| {
        format!(
            "preparing {} in the {} runtime",
            request.model.display(),
            request.runtime
        )
    })?;
    let (model_outputs, model_time) = model_engine
        .run(&inputs)
        .with_context(|| format!("running {}", request.model.display()))?;

    let Some(candidate) = candidate else {
        let outputs = compare_outputs(&model_outputs, &expected, request.tolerance)?;
        return Ok(Report {
            runtime: request.runtime,
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
    let candidate_path = request.candidate.as_deref().unwrap_or(Path::new(""));
    let mut candidate_engine = engine_for(
        request.runtime,
        candidate_path,
        &candidate,
        &request.ort_options,
    )
    .with_context(|| {
        format!(
            "preparing {} in the {} runtime",
            candidate_path.display(),
            request.runtime
        )
    })?;
    let (candidate_outputs, candidate_time) = candidate_engine
        .run(&inputs)
        .with_context(|| format!("running {}", candidate_path.display()))?;
    let outputs = compare_outputs(&candidate_outputs, &model_outputs, request.tolerance)?;
    let pass = outputs.iter().all(|o| o.pass);
    let mut report = Report {
        runtime: request.runtime,
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
    if !pass && request.locate_divergence {
        let shared = shared_intermediates(&model, &candidate);
        drop(model_engine);
        let model_values = engine_for(
            request.runtime,
            &request.model,
            &model,
            &request.ort_options,
        )?
        .capture(&inputs, &shared)
        .context("capturing MODEL's intermediate values")?;
        drop(candidate_engine);
        let candidate_values = engine_for(
            request.runtime,
            candidate_path,
            &candidate,
            &request.ort_options,
        )?
        .capture(&inputs, &shared)
        .context("capturing CANDIDATE's intermediate values")?;
        report.shared_values_compared = Some(
            shared
                .iter()
                .filter(|n| model_values.contains_key(*n) && candidate_values.contains_key(*n))
                .count(),
        );
        report.first_divergence =
            first_divergence(&shared, &model_values, &candidate_values, request.tolerance).map(
                |comparison| Divergence {
                    model_op: producer(&model, &comparison.name),
                    candidate_op: producer(&candidate, &comparison.name),
                    comparison,
                },
            );
    }
    Ok(report)
}

/// Compares outputs pairwise by name (`expected` defines the names and order).
pub fn compare_outputs(
    actual: &[Tensor],
    expected: &[Tensor],
    tolerance: Tolerance,
) -> Result<Vec<TensorComparison>> {
    if expected.is_empty() {
        bail!("no expected outputs to compare with");
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

/// `OpType 'node name'` of the node computing `value`.
fn producer(model: &Model, value: &str) -> String {
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

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_report(request: &Request, report: &Report) {
    match &request.candidate {
        Some(c) => println!(
            "parity ({}): candidate {} vs model {}",
            report.runtime,
            c.display(),
            request.model.display()
        ),
        None => println!(
            "parity ({}): {} vs expected outputs",
            report.runtime,
            request.model.display()
        ),
    }
    println!("inputs {}", report.inputs);
    let width = report
        .outputs
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<width$}  {:>10}  {:>10}  {:>6}  result",
        "output", "max_abs", "max_rel", "top1"
    );
    for o in &report.outputs {
        let top1 = o
            .top1_agreement
            .map_or("-".to_string(), |a| format!("{:.0}%", a * 100.0));
        let verdict = if o.pass {
            "pass".to_string()
        } else {
            "FAIL".to_string()
        };
        let note = o
            .problem
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        println!(
            "{:<width$}  {:>10.3e}  {:>10.3e}  {:>6}  {verdict}{note}",
            o.name, o.max_abs, o.max_rel, top1
        );
    }
    match report.run_ms.candidate {
        Some(c) => println!(
            "run: model {:.1} ms, candidate {:.1} ms",
            report.run_ms.model, c
        ),
        None => println!("run: model {:.1} ms", report.run_ms.model),
    }
    if let Some(d) = &report.first_divergence {
        println!(
            "first diverging value: '{}' (max_abs {:.3e}, max_rel {:.3e}{}): computed by {} in MODEL, {} in CANDIDATE",
            d.comparison.name,
            d.comparison.max_abs,
            d.comparison.max_rel,
            d.comparison
                .problem
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default(),
            d.model_op,
            d.candidate_op
        );
    } else if let Some(n) = report.shared_values_compared {
        println!(
            "no shared intermediate value diverges ({n} compared): the difference arises where the graphs differ, before the outputs"
        );
    }
    println!("{}", if report.pass { "PASS" } else { "FAIL" });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::paths;

    /// A copy of `model` whose first feed-forward MatMul (the first MatMul with the largest
    /// float weight initializer read by that node alone) gets its weights scaled by 1.5;
    /// returns it and the MatMul's output name. (Small perturbations of attention weights, or
    /// uniform shifts ahead of a LayerNorm, can vanish below the tolerance.)
    pub(crate) fn perturbed_candidate(model: &Model) -> (Model, String) {
        let consumers = model.graph.consumers();
        let weight_size = |n: &transfuse_ir::Node| -> Option<usize> {
            let w = n.inputs.get(1)?;
            let t = model.graph.initializer(w)?;
            (n.op_type == "MatMul" && t.dtype.is_float() && consumers.get(w.as_str())?.len() == 1)
                .then(|| t.numel().ok())
                .flatten()
        };
        let largest = model
            .graph
            .nodes
            .iter()
            .filter_map(weight_size)
            .max()
            .expect("a MatMul with a weight");
        let node = model
            .graph
            .nodes
            .iter()
            .find(|n| weight_size(n) == Some(largest))
            .expect("that MatMul");
        let weight = model.graph.initializer(&node.inputs[1]).expect("weight");
        let scaled: Vec<f32> = weight
            .to_f32_vec()
            .expect("f32 weight")
            .iter()
            .map(|v| v * 1.5)
            .collect();
        let mut candidate = model.clone();
        candidate.graph.add_initializer(Tensor::from_f32(
            &weight.name,
            weight.dims.clone(),
            &scaled,
        ));
        (candidate, node.outputs[0].clone())
    }

    fn tiny(name: &str) -> PathBuf {
        paths::testdata_models()
            .join("tiny")
            .join(format!("{name}.onnx"))
    }

    fn request(model: &Path, candidate: Option<&Path>, runtime: RuntimeKind) -> Request {
        Request {
            model: model.to_path_buf(),
            candidate: candidate.map(Path::to_path_buf),
            inputs: InputSource::Generated(InputSpec {
                batch: 2,
                seq: 16,
                seed: 3,
                padding: Padding::Left,
            }),
            runtime,
            tolerance: Tolerance {
                atol: 1e-4,
                rtol: 0.0,
            },
            ort_options: SessionOptions::default(),
            locate_divergence: true,
        }
    }

    fn check_perturbed_candidate_is_located(runtime: RuntimeKind) {
        let original = tiny("bert_sdpa_ts_op17");
        let model = Model::load(&original).expect("model");
        let (candidate, diverging) = perturbed_candidate(&model);
        let dir = tempfile::tempdir().expect("temp dir");
        let candidate_path = dir.path().join("candidate.onnx");
        candidate.save(&candidate_path).expect("save");

        let same = check(&request(&original, Some(&original), runtime)).expect("check");
        assert!(same.pass, "{same:?}");
        assert!(same.first_divergence.is_none());

        let report = check(&request(&original, Some(&candidate_path), runtime)).expect("check");
        assert!(!report.pass, "{report:?}");
        assert!(report.outputs[0].max_abs > 1e-3, "{report:?}");
        let divergence = report.first_divergence.expect("a diverging value");
        assert_eq!(divergence.comparison.name, diverging);
        assert!(
            divergence.model_op.starts_with("MatMul")
                && divergence.candidate_op.starts_with("MatMul")
        );
        assert!(
            report.shared_values_compared.is_some_and(|n| n > 100),
            "{:?}",
            report.shared_values_compared
        );
    }

    #[test]
    fn a_perturbed_candidate_fails_and_the_diverging_value_is_named_through_ort() {
        check_perturbed_candidate_is_located(RuntimeKind::Ort);
    }

    #[test]
    fn a_perturbed_candidate_fails_and_the_diverging_value_is_named_through_the_interpreter() {
        check_perturbed_candidate_is_located(RuntimeKind::Reference);
    }

    fn check_expected_outputs_of_a_test_data_directory(runtime: RuntimeKind) {
        let path = tiny("vit_sdpa_dynamo_op18");
        let dir = paths::testdata_models()
            .join("tiny")
            .join("vit_sdpa_dynamo_op18")
            .join("test_data_set_0");
        let mut req = request(&path, None, runtime);
        req.inputs = InputSource::Directory(dir);
        let report = check(&req).expect("check");
        assert!(report.pass, "{runtime}: {report:?}");
        assert_eq!(report.compared, "model vs expected");
        assert_eq!(report.outputs[0].top1_agreement, Some(1.0), "{runtime}");
        // PyTorch's float results are not reproduced bit for bit: a zero tolerance fails.
        req.tolerance = Tolerance {
            atol: 0.0,
            rtol: 0.0,
        };
        let strict = check(&req).expect("check");
        assert!(
            !strict.pass && strict.outputs[0].max_abs > 0.0,
            "{runtime}: {strict:?}"
        );
    }

    #[test]
    fn expected_outputs_of_a_test_data_directory_are_checked_through_ort() {
        check_expected_outputs_of_a_test_data_directory(RuntimeKind::Ort);
    }

    #[test]
    fn expected_outputs_of_a_test_data_directory_are_checked_through_the_interpreter() {
        check_expected_outputs_of_a_test_data_directory(RuntimeKind::Reference);
    }

    #[test]
    fn the_json_report_has_the_documented_fields() {
        let path = tiny("distilbert_eager_ts_op14");
        let report = check(&request(&path, Some(&path), RuntimeKind::Ort)).expect("check");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["runtime"], "ort");
        assert_eq!(json["pass"], true);
        assert_eq!(json["outputs"][0]["name"], "output_0");
        for key in ["max_abs", "max_rel"] {
            assert!(json["outputs"][0][key].is_f64(), "{key}");
        }
        assert_eq!(json["outputs"][0]["pass"], true);
        assert!(json["run_ms"]["model"].is_f64() && json["run_ms"]["candidate"].is_f64());
    }
}
