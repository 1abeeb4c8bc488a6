//! The command line of `cargo xtask bench`, and the models it names.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use transfuse_ir::Model;
use transfuse_ort::ExecutionProvider;

use crate::models;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models: names of base models (materialized under target/models when needed), `NAME:SEQ`
    /// for one sequence length, or paths to `.onnx` files. Default: every base model.
    pub models: Vec<String>,
    /// ONNX Runtime intra-op threads (and OpenVINO inference threads).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed rounds per case; each round runs every configuration once, in rotating order.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Untimed runs of every configuration before the rounds.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Split the rounds into this many epochs, with new ONNX Runtime sessions for each (so one
    /// session instance that stays slow on a shared machine weighs on part of the rounds only).
    #[arg(long, default_value_t = 3)]
    pub session_epochs: usize,
    /// Sequence lengths of text models (batch 1).
    #[arg(long, value_delimiter = ',', default_values_t = [32usize, 128])]
    pub seqs: Vec<usize>,
    /// Where to write this run's raw results (default: target/bench/<provider>-<threads>t.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also profile ONNX Runtime per node and aggregate the kernel time by op type.
    #[arg(long)]
    pub profile: bool,
    /// Profiled runs per configuration with --profile.
    #[arg(long, default_value_t = 10)]
    pub profile_runs: usize,
    /// Execution provider of ONNX Runtime: cpu, cuda, cuda:N (cuda needs the `cuda` build
    /// feature and a CUDA build of ONNX Runtime in ORT_DYLIB_PATH).
    #[arg(long, default_value = "cpu")]
    pub provider: ExecutionProvider,
    /// A Python that already has onnxruntime 1.31.1, onnx and sympy (and optionally openvino),
    /// used as is instead of creating target/bench/venv.
    #[arg(long)]
    pub peer_python: Option<PathBuf>,
    /// Leave out the peer optimizer.
    #[arg(long)]
    pub no_peer: bool,
    /// Leave out OpenVINO.
    #[arg(long)]
    pub no_openvino: bool,
    /// OpenVINO's inference precision hint: f32 (as ONNX Runtime computes), or bf16 / f16
    /// (OpenVINO's own default on CPUs with bf16 units).
    #[arg(long, default_value = "f32")]
    pub openvino_precision: String,
    /// The peer's --num_heads (0: it detects them).
    #[arg(long, default_value_t = 12)]
    pub num_heads: usize,
    /// The peer's --hidden_size (0: it detects it).
    #[arg(long, default_value_t = 768)]
    pub hidden_size: usize,
    /// Whole-process runs of each optimizer per model (interleaved; the fastest is reported).
    #[arg(long, default_value_t = 1)]
    pub optimizer_runs: usize,
    /// Optimize again even where an earlier run's optimized model fits.
    #[arg(long)]
    pub fresh: bool,
    /// Earlier runs' result files to publish together with this one.
    #[arg(long)]
    pub merge: Vec<PathBuf>,
    /// Publish without the saved runs of other machines (xtask/bench/results/*.json, such as
    /// the device machine's 16-thread and GPU runs), which are otherwise added as columns.
    #[arg(long)]
    pub no_saved: bool,
    /// Measure nothing: publish the --merge files only.
    #[arg(long)]
    pub render_only: bool,
    /// Write no page and chart at all (only the raw JSON).
    #[arg(long)]
    pub no_publish: bool,
    /// Write the page and chart to the committed docs/benchmarks.md and docs/benchmarks.svg
    /// (default: target/bench/benchmarks.md and .svg, leaving the committed files as they are).
    #[arg(long, conflicts_with = "no_publish")]
    pub publish: bool,
    /// Where the markdown goes (the chart goes beside it, as .svg); overrides the default
    /// of --publish or not.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Extra lines for the page's notes (how the runs were made, what was not run).
    #[arg(long)]
    pub note: Vec<String>,
    /// Pause between two timed runs, ms. ONNX Runtime's idle pool threads spin for tens of
    /// ms after a run; without the pause, the sessions interleaved with the one timed compete
    /// with it for the cores (seen here: +50% at 2 threads).
    #[arg(long, default_value_t = 100)]
    pub gap_ms: u64,
    /// Rows of the generated text inputs for parity (row 0 whole, the others padded).
    #[arg(long, default_value_t = 2)]
    pub parity_batch: usize,
    /// Generated images for the vision models' parity and top-1 agreement.
    #[arg(long, default_value_t = 8)]
    pub parity_images: usize,
    /// Seed of the generated inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scratch directory: optimized models (reused by later runs), generated inputs,
    /// profiles, the OpenVINO driver's logs (default: target/bench).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The GPU table (`--device cuda`) and its options.
    #[command(flatten)]
    pub gpu: Box<super::gpu::GpuArgs>,
}

/// A model to benchmark and the sequence lengths it is timed at (text models).
#[derive(Debug)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    pub seqs: Option<Vec<usize>>,
}

pub fn resolve_models(args: &Args) -> Result<Vec<ModelSpec>> {
    let wanted: Vec<String> = if args.models.is_empty() {
        models::skeleton_names()?
    } else {
        args.models.clone()
    };
    let mut specs: Vec<ModelSpec> = Vec::new();
    for item in wanted {
        let as_path = PathBuf::from(&item);
        let (name, path, seqs) = if item.ends_with(".onnx") || as_path.is_file() {
            if !as_path.is_file() {
                bail!("no model file {}", as_path.display());
            }
            let name = as_path
                .file_stem()
                .map_or_else(|| item.clone(), |s| s.to_string_lossy().into_owned());
            (name, as_path, None)
        } else {
            let (name, seq) = match item.split_once(':') {
                Some((n, s)) => {
                    let seq: usize = s.parse().with_context(|| {
                        format!("'{item}': the sequence length after ':' must be a number")
                    })?;
                    (n.to_string(), Some(seq))
                }
                None => (item.clone(), None),
            };
            let path = models::materialize(std::slice::from_ref(&name), false)?
                .into_iter()
                .next()
                .with_context(|| format!("materializing {name}"))?;
            (name, path, seq.map(|s| vec![s]))
        };
        match specs.iter_mut().find(|s| s.name == name) {
            Some(existing) => match (&mut existing.seqs, seqs) {
                (Some(have), Some(more)) => have.extend(more),
                (slot, _) => *slot = None,
            },
            None => specs.push(ModelSpec { name, path, seqs }),
        }
    }
    Ok(specs)
}

/// A text model takes token ids; a vision model takes a 4-D float image.
pub fn is_text(model: &Model) -> bool {
    !model.graph.inputs.iter().any(|v| {
        v.elem_type().is_some_and(|t| t.is_float()) && v.shape().is_some_and(|s| s.len() == 4)
    })
}
