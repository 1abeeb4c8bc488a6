//! Reading and writing results: the raw JSON of a run, the saved runs of other machines,
//! and the page and chart (under `target/bench/`, or with `--publish` the committed ones in
//! `docs/`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use transfuse_ort::ExecutionProvider;

use super::args::Args;
use super::results::{BenchRun, SCHEMA};
use super::{chart, report};
use crate::paths;

/// Where this run's raw results go by default: `target/bench/<provider>-<threads>t.json`.
pub fn default_json(provider: ExecutionProvider, threads: usize) -> PathBuf {
    paths::target_dir().join("bench").join(format!(
        "{}-{threads}t.json",
        provider.name().replace(':', "")
    ))
}

/// Where the saved runs of other machines live: `xtask/bench/results/`.
pub fn saved_results_dir() -> PathBuf {
    paths::root().join("xtask").join("bench").join("results")
}

/// The `.json` files directly in `dir`, in file name order (none when `dir` does not exist).
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A saved result file of type `T`; `what` names the kind in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// The saved runs, in file name order (none when the directory does not exist).
pub fn saved_runs() -> Result<Vec<BenchRun>> {
    json_files(&saved_results_dir())
        .iter()
        .map(|f| read_run(f))
        .collect()
}

pub fn read_run(path: &Path) -> Result<BenchRun> {
    let run: BenchRun = read_json(path, "a bench result file")?;
    if run.schema != SCHEMA {
        bail!(
            "{} has result schema {}, this program reads {SCHEMA}",
            path.display(),
            run.schema
        );
    }
    Ok(run)
}

/// The page's introduction: what was measured and how to reproduce it.
const PREAMBLE: &str = "\
What `cargo xtask bench` measures, per model (batch 1; BERT-base at sequence lengths 32 and 128, ViT-B/16 at 224x224; random weights, generated inputs): the original model in ONNX Runtime with its graph optimizations disabled and all on; ONNX Runtime's Python transformers optimizer (the peer, `--opt_level 0`) and transfuse (all fusions, and all but attention; runs whose notes say so pass `--target cpu`, which leaves out the skip layer norms ONNX Runtime runs slower on the CPU), each followed by ONNX Runtime with all optimizations on; and OpenVINO on the original model where it installs. All configurations of a case run interleaved, one run each per round in rotating order, after warm-up runs, with every ONNX Runtime session created anew (and run once untimed) at the start of each third of the rounds; the tables give the median and the minimum, and ratios are taken per round, so a slow phase of a shared machine hits both sides of a ratio. The CPU and GPU columns of these tables time ONNX Runtime with host copies; the GPU table at the end (`--device cuda`: inputs and outputs bound on the device, TF32 and CUDA graphs on and off, fp16, fixed shapes) adds the original experiment's PyTorch rows (eager, SDPA, the successor of BetterTransformer's fast path, and `torch.compile`). TensorRT cannot be installed on the GPU machine (see the notes there).

Reproduce: `cargo xtask bench --publish` (this machine's run at 2 threads; it creates the Python virtual environment for the peer and OpenVINO under `target/bench/venv` and materializes the models; without `--publish` the page and chart go to `target/bench/` instead of `docs/`), and on a machine with many cores and a GPU `xtask bench --threads 16 --no-publish` and `xtask bench --provider cuda --threads 16 --no-publish` (a binary built with `--features cuda`, ONNX Runtime's CUDA build in `ORT_DYLIB_PATH`), whose JSON files, copied into `xtask/bench/results/`, are added as columns whenever the page is rendered (`cargo xtask bench --render-only --publish` publishes them with no new measurement).";

/// Writes the page and chart of `runs`; of several runs with the same column heading, the
/// first one given is kept (this run before --merge files before saved ones).
pub fn publish(args: &Args, runs: Vec<BenchRun>) -> Result<()> {
    let mut kept: Vec<BenchRun> = Vec::new();
    for run in runs {
        if !kept.iter().any(|k| k.column() == run.column()) {
            kept.push(run);
        }
    }
    let mut runs = kept;
    runs.sort_by_key(|r| (r.provider != "cpu", r.threads));
    let markdown = args.markdown.clone().unwrap_or_else(|| {
        let dir = if args.publish {
            paths::root().join("docs")
        } else {
            paths::target_dir().join("bench")
        };
        dir.join("benchmarks.md")
    });
    let svg = markdown.with_extension("svg");
    if let Some(dir) = markdown.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let chart_name = match chart::draw(&runs, &svg) {
        Ok(()) => svg.file_name().map(|n| n.to_string_lossy().into_owned()),
        Err(e) => {
            eprintln!("warning: no chart: {e:#}");
            None
        }
    };
    let mut notes = vec![
        "PyTorch rows (eager, SDPA, torch.compile) are in the GPU table at the end, measured on the GPU machine with its 16 CPU cores; this machine has no PyTorch. TensorRT is not measured anywhere (see the GPU notes).".to_string(),
    ];
    notes.extend(args.note.iter().cloned());
    let mut page = report::markdown(&runs, chart_name.as_deref(), PREAMBLE, &notes);
    page.push_str(&super::gpu::saved_section()?);
    page.push_str(&super::fp16_report::saved_section()?);
    std::fs::write(&markdown, page).with_context(|| format!("writing {}", markdown.display()))?;
    let chart = chart_name.map_or_else(String::new, |_| format!(" and {}", svg.display()));
    eprintln!("page written: {}{chart}", markdown.display());
    if !args.publish && args.markdown.is_none() {
        eprintln!("(docs/benchmarks.md is left as it is; --publish writes it)");
    }
    Ok(())
}

/// Writes `run` as pretty JSON to `path`.
pub fn save_run(run: &BenchRun, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(run).context("encoding the results")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
