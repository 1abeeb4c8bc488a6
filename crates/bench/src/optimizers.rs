//! Running the offline optimizers as whole processes: transfuse (this very binary, `optimize`)
//! and the peer (`python -m onnxruntime.transformers.optimizer`), timing each end to end.
//!
//! Optimized models go to `target/bench/optimized/<model>/<optimizer>.onnx`, each with a
//! `.json` sidecar holding the wall times and what produced it. A later run reuses the model
//! and its recorded times when the input file and the optimizer (the binary's size and mtime,
//! or the Python and its onnxruntime version) are the same, unless `--fresh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use transfuse_ir::Model;

use super::python::last_line;
use super::results::{OptimizerId, OptimizerResult, Tool};

/// Settings the peer optimizer needs besides the model.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    /// The interpreter with `onnxruntime`.
    pub python: PathBuf,
    /// Its onnxruntime version (part of the cache key).
    pub version: String,
    /// `--num_heads` (0: let the peer detect it).
    pub num_heads: usize,
    /// `--hidden_size` (0: let the peer detect it).
    pub hidden_size: usize,
}

/// One optimizer job: which optimizer, on which model, into which file.
#[derive(Clone, Debug)]
pub struct Job {
    /// Which optimizer.
    pub optimizer: OptimizerId,
    /// The original model.
    pub input: PathBuf,
    /// Where the optimized model goes.
    pub output: PathBuf,
    /// `bert` or `vit` (the peer's `--model_type`).
    pub model_type: &'static str,
    /// transfuse's `--target`: the device the timed runs use (`cpu` or `gpu`).
    pub target: &'static str,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sidecar {
    key: String,
    command: String,
    wall_ms: Vec<f64>,
}

fn file_stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{}:{mtime}", path.display(), m.len())
        }
        Err(_) => format!("{}:missing", path.display()),
    }
}

impl Job {
    fn command(&self, peer: Option<&PeerSettings>) -> Result<(Command, String, String)> {
        let mut args: Vec<String> = Vec::new();
        let (program, identity) = match self.optimizer {
            OptimizerId::Ours | OptimizerId::OursNoAttention => {
                let exe = std::env::current_exe().context("finding this program's own path")?;
                let fusions = if self.optimizer == OptimizerId::Ours {
                    "all"
                } else {
                    "all,-attention"
                };
                args.extend(["optimize".into(), self.input.display().to_string()]);
                args.extend([
                    "-o".into(),
                    self.output.display().to_string(),
                    "--fusions".into(),
                    fusions.into(),
                    "--target".into(),
                    self.target.into(),
                ]);
                let identity = file_stamp(&exe);
                (exe, identity)
            }
            OptimizerId::Peer => {
                let Some(peer) = peer else {
                    bail!("the peer optimizer is unavailable")
                };
                args.extend(["-m".into(), "onnxruntime.transformers.optimizer".into()]);
                args.extend(["--input".into(), self.input.display().to_string()]);
                args.extend(["--output".into(), self.output.display().to_string()]);
                args.extend(["--model_type".into(), self.model_type.into()]);
                args.extend(["--num_heads".into(), peer.num_heads.to_string()]);
                args.extend(["--hidden_size".into(), peer.hidden_size.to_string()]);
                args.extend(["--opt_level".into(), "0".into()]);
                (
                    peer.python.clone(),
                    format!("{} onnxruntime {}", peer.python.display(), peer.version),
                )
            }
        };
        let shown = format!("{} {}", program.display(), args.join(" "));
        let key = format!(
            "{} | {} | {}",
            file_stamp(&self.input),
            identity,
            args.join(" ")
        );
        let mut command = Command::new(&program);
        command.args(&args);
        Ok((command, shown, key))
    }

    fn sidecar_path(&self) -> PathBuf {
        self.output.with_extension("json")
    }
}

/// Runs `jobs` (one model's optimizers), each `runs` times, interleaved (run 1 of every
/// optimizer, then run 2, ...), reusing cached results unless `fresh`. `step` is called after
/// every process. Failures are recorded in the results, never returned.
pub fn run_jobs(
    jobs: &[Job],
    peer: Option<&PeerSettings>,
    runs: usize,
    fresh: bool,
    step: &mut dyn FnMut(),
) -> Vec<OptimizerResult> {
    struct State {
        command: Option<(String, String)>,
        error: Option<String>,
        wall_ms: Vec<f64>,
        cached: bool,
    }
    let mut states: Vec<State> = jobs
        .iter()
        .map(|job| match job.command(peer) {
            Err(e) => State {
                command: None,
                error: Some(format!("{e:#}")),
                wall_ms: Vec::new(),
                cached: false,
            },
            Ok((_, shown, key)) => {
                let cached = (!fresh)
                    .then(|| std::fs::read_to_string(job.sidecar_path()).ok())
                    .flatten()
                    .and_then(|text| serde_json::from_str::<Sidecar>(&text).ok())
                    .filter(|s| s.key == key && s.wall_ms.len() >= runs && job.output.is_file());
                State {
                    command: Some((shown, key)),
                    error: None,
                    cached: cached.is_some(),
                    wall_ms: cached.map_or_else(Vec::new, |s| s.wall_ms),
                }
            }
        })
        .collect();
    for _ in 0..runs.max(1) {
        for (job, state) in jobs.iter().zip(states.iter_mut()) {
            if !state.cached && state.error.is_none() {
                match run_once(job, peer) {
                    Ok(ms) => state.wall_ms.push(ms),
                    Err(e) => state.error = Some(format!("{e:#}")),
                }
            }
            step();
        }
    }
    jobs.iter()
        .zip(states)
        .map(|(job, state)| {
            let (shown, key) = state.command.clone().unwrap_or_default();
            let mut result = OptimizerResult {
                optimizer: job.optimizer,
                command: shown.clone(),
                error: state.error,
                wall_ms: state.wall_ms,
                cached: state.cached,
                nodes: 0,
                histogram: Default::default(),
            };
            if result.error.is_none() {
                match Model::load(&job.output) {
                    Ok(model) => {
                        result.nodes = model.graph.nodes.len();
                        result.histogram = model.graph.op_histogram();
                        if !state.cached {
                            let sidecar = Sidecar {
                                key,
                                command: shown,
                                wall_ms: result.wall_ms.clone(),
                            };
                            if let Ok(text) = serde_json::to_string_pretty(&sidecar) {
                                let _ = std::fs::write(job.sidecar_path(), text);
                            }
                        }
                    }
                    Err(e) => {
                        result.error = Some(format!(
                            "reading the optimized model {}: {e}",
                            job.output.display()
                        ))
                    }
                }
            }
            result
        })
        .collect()
}

/// Runs one optimizer process and returns its wall time, ms.
fn run_once(job: &Job, peer: Option<&PeerSettings>) -> Result<f64> {
    if let Some(dir) = job.output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&job.output);
    let _ = std::fs::remove_file(job.sidecar_path());
    let (mut command, shown, _) = job.command(peer)?;
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("starting {shown}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() {
        bail!("{}: {}", output.status, last_line(&output.stderr));
    }
    if !job.output.is_file() {
        bail!(
            "{} exited successfully but wrote no {}",
            job.optimizer.label(),
            job.output.display()
        );
    }
    Ok(ms)
}

/// The peer's settings, when its tool is available.
pub fn peer_settings(tool: &Tool, num_heads: usize, hidden_size: usize) -> Option<PeerSettings> {
    match (&tool.python, &tool.version, &tool.unavailable) {
        (Some(python), Some(version), None) => Some(PeerSettings {
            python: PathBuf::from(python),
            version: version.clone(),
            num_heads,
            hidden_size,
        }),
        _ => None,
    }
}
