//! `cargo xtask bench`: the original experiment's latency table, side by side with the peers.
//!
//! For each model (default: every materialized base model, text models at sequence lengths 32
//! and 128, batch 1), it measures, interleaved round by round after warm-up, the latency of:
//! the original in ONNX Runtime with graph optimizations disabled and all on; the peer (ONNX
//! Runtime's Python transformers optimizer) then all on; transfuse with all fusions, and with
//! all but attention, then all on; and OpenVINO on the original where it installs. It also
//! times each optimizer as a whole process, counts the fused ops each produced, checks parity
//! of every configuration with the original (text models under several padding patterns), and
//! with `--profile` aggregates ONNX Runtime's per-node profile by op type.
//!
//! Raw results go to `target/bench/<provider>-<threads>t.json`; the markdown table and chart
//! are rendered from this run plus any earlier runs given with `--merge` and the saved runs
//! of other machines (`xtask/bench/results/`), into `target/bench/benchmarks.md` and `.svg`.
//! Only `--publish` writes the committed `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! Layout: [`args`] (command line, models), [`run`] (the loop over models), [`case`] (a case
//! and its engines), [`latency`] (one case's timing), [`parity`], [`profile`], [`optimizers`]
//! (timed optimizer processes), [`python`] (virtual environment, peer, OpenVINO driver),
//! [`results`] (the JSON), [`publish`] (files read and written), [`report`] (markdown),
//! [`chart`] (SVG), [`system`] (machine facts, statistics); [`gpu`] and [`gpu_report`]: the GPU
//! table (`--device cuda`); [`fp16_report`]: the page's section from the saved output of
//! `cargo xtask fp16-accuracy`.

mod args;
mod case;
mod chart;
mod fp16_report;
mod gpu;
mod gpu_followup;
mod gpu_report;
mod latency;
pub mod models;
mod optimizers;
mod parity;
pub mod paths;
mod profile;
mod publish;
mod python;
mod report;
mod results;
mod run;
mod system;
#[cfg(test)]
mod tests;

use anyhow::{Context, Result, bail};

pub use self::args::Args;
use self::publish::{default_json, publish, read_run, saved_results_dir, saved_runs};

/// Runs the benchmark (or, with `--render-only`, only publishes earlier results).
pub fn run(args: Args) -> Result<()> {
    if args.gpu.device.is_some() {
        return gpu::run(&args);
    }
    let mut merged = Vec::new();
    for path in &args.merge {
        merged.push(read_run(path)?);
    }
    if !args.no_saved {
        merged.extend(saved_runs()?);
    }
    if args.render_only {
        if merged.is_empty() {
            bail!(
                "--render-only needs result files to publish: pass them with --merge, or save them in {}",
                saved_results_dir().display()
            );
        }
        return publish(&args, merged);
    }
    if args.threads == 0 || args.rounds == 0 {
        bail!("--threads and --rounds must be at least 1");
    }
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| default_json(args.provider, args.threads));
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let run = run::measure(&args, &json)?;
    eprintln!("raw results: {}", json.display());
    run::print_summary(&run);
    if args.no_publish {
        return Ok(());
    }
    merged.insert(0, run);
    publish(&args, merged)
}
