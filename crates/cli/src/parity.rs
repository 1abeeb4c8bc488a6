//! `transfuse parity MODEL [CANDIDATE]`: do two models (or a model and its recorded outputs)
//! compute the same thing?
//!
//! - With `--inputs DIR` (the ONNX test-data layout `input_N.pb`, `output_N.pb`) and no
//!   CANDIDATE: MODEL's outputs are compared with the expected `output_N.pb`.
//! - With CANDIDATE: both run on the same inputs (DIR's, or generated from MODEL's input
//!   signature, see [`transfuse_parity::inputs`]) and CANDIDATE's outputs are compared with
//!   MODEL's.
//!
//! The verdict (PASS or FAIL, with the tolerance) is the first line printed. An fp16
//! CANDIDATE (see [`transfuse_parity::computes_in_float16`]) of an f32 MODEL is judged with
//! [`Tolerance::float16`] unless `--atol`/`--rtol` are given.
//!
//! Prints max absolute and relative error and a verdict per output, top-1 agreement for
//! classification logits, and on failure the first intermediate value (same name in both
//! graphs, in MODEL's topological order) whose values diverge. Fails (the binary exits
//! non-zero) when parity fails. The check itself is [`transfuse_parity::check_subjects`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use transfuse_ir::Model;
use transfuse_ort::{CudaOptions, ExecutionProvider, OptimizationLevel, SessionOptions};

use crate::{Mismatch, UsageError};
use transfuse_parity::{
    InputSource, InputSpec, Options, Padding, Report, Runtime, RuntimeKind, Tolerance,
};

/// Arguments of `transfuse parity`.
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
    /// Absolute tolerance [default: 1e-4; for an fp16 CANDIDATE of an f32 MODEL, 1e-2].
    #[arg(long)]
    pub atol: Option<f64>,
    /// Relative tolerance, added to atol, times |expected| [default: 0; for an fp16
    /// CANDIDATE of an f32 MODEL, 1e-2].
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// ONNX Runtime's own graph optimization level (--runtime ort only; default: disabled).
    #[arg(long)]
    pub ort_opt_level: Option<OptimizationLevel>,
    /// ONNX Runtime intra-op threads (--runtime ort; default: ONNX Runtime's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// ONNX Runtime's execution provider (--runtime ort): `cpu`, `cuda` or `cuda:N`. CUDA
    /// runs with TF32 off, so float32 is computed as float32; it needs a build with the
    /// `cuda` feature and ONNX Runtime's CUDA library [default: cpu].
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<ExecutionProvider>,
}

/// Runs `transfuse parity`: checks, prints the report, writes the JSON report when asked,
/// and fails when parity fails.
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
        return Err(UsageError(
            "nothing to compare with: give a CANDIDATE model, or --inputs DIR with expected outputs"
                .into(),
        )
        .into());
    }
    if args.runtime == RuntimeKind::Reference {
        for (given, flag) in [
            (args.ort_opt_level.is_some(), "--ort-opt-level"),
            (args.threads.is_some(), "--threads"),
            (args.provider.is_some(), "--provider"),
        ] {
            if given {
                return Err(UsageError(format!(
                    "{flag} applies to --runtime ort only, not to the reference interpreter"
                ))
                .into());
            }
        }
    }
    let mut ort_options = SessionOptions::default()
        .optimization_level(args.ort_opt_level.unwrap_or(OptimizationLevel::Disabled));
    ort_options.intra_op_threads = args.threads;
    if let Some(provider) = args.provider {
        ort_options.execution_provider = provider;
        ort_options.cuda = CudaOptions {
            tf32: false,
            cuda_graph: false,
        };
    }
    let load = |path: &Path| {
        Model::load(path).with_context(|| format!("checking parity: loading {}", path.display()))
    };
    let model = load(&args.model)?;
    let candidate = args.candidate.as_deref().map(load).transpose()?;
    let float16 = candidate.as_ref().is_some_and(|c| {
        transfuse_parity::computes_in_float16(c) && !transfuse_parity::computes_in_float16(&model)
    });
    let default = if float16 {
        Tolerance::float16()
    } else {
        Tolerance::absolute(1e-4)
    };
    let tolerance = Tolerance {
        atol: args.atol.unwrap_or(default.atol),
        rtol: args.rtol.unwrap_or(default.rtol),
    };
    let options = Options {
        inputs,
        runtime: Runtime {
            kind: args.runtime,
            ort: ort_options,
        },
        tolerance,
        locate_divergence: true,
    };
    let report = transfuse_parity::check_subjects(
        transfuse_parity::Subject {
            model: &model,
            path: Some(&args.model),
        },
        candidate.as_ref().map(|c| transfuse_parity::Subject {
            model: c,
            path: args.candidate.as_deref(),
        }),
        &options,
    )
    .context("checking parity")?;
    let basis = if float16 && args.atol.is_none() && args.rtol.is_none() {
        " (fp16 candidate of an f32 model: the measured fp16 tolerance)"
    } else {
        ""
    };
    println!(
        "{}: atol {:e}, rtol {:e}{basis}",
        if report.pass { "PASS" } else { "FAIL" },
        tolerance.atol,
        tolerance.rtol
    );
    print_report(&args.model, args.candidate.as_deref(), &report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.pass {
        let failed = report.failed_outputs();
        return Err(Mismatch(format!(
            "parity failed: {} differ beyond atol {:e}, rtol {:e}",
            failed.join(", "),
            tolerance.atol,
            tolerance.rtol
        ))
        .into());
    }
    Ok(())
}

/// Prints the report as a table.
fn print_report(model: &Path, candidate: Option<&Path>, report: &Report) {
    match candidate {
        Some(c) => println!(
            "parity ({}): candidate {} vs model {}",
            report.runtime,
            c.display(),
            model.display()
        ),
        None => println!(
            "parity ({}): {} vs expected outputs",
            report.runtime,
            model.display()
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
