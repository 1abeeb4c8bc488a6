//! One measuring run: every model's optimizers, then its cases, with a progress bar; the
//! results are saved after each model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use transfuse_ir::Model;
use transfuse_ort::ExecutionProvider;

use super::args::{Args, is_text, resolve_models};
use super::case::{Progress, Settings, Subject};
use super::latency;
use super::optimizers::{self, Job};
use super::publish::save_run;
use super::python;
use super::results::{BenchRun, ConfigId, ModelResult, OptimizerId, SCHEMA, Tool};
use super::system;
use crate::paths;

struct Bar {
    bar: ProgressBar,
    warnings: Vec<String>,
}

impl Bar {
    fn log(&self, message: &str) {
        self.bar.suspend(|| eprintln!("{message}"));
    }
}

impl Progress for Bar {
    fn step(&mut self, message: &str) {
        // Without a terminal the bar is hidden: print the stages (not every round) as lines.
        if self.bar.is_hidden() && !message.contains(": round ") && !message.contains(": warm-up ")
        {
            eprintln!("[{:>4.0} s] {message}", self.bar.elapsed().as_secs_f64());
        }
        self.bar.set_message(message.to_string());
        self.bar.inc(1);
    }

    fn warn(&mut self, message: String) {
        self.log(&format!("warning: {message}"));
        self.warnings.push(message);
    }
}

/// Measures every model, saving the results to `json` after each model (so a run cut short
/// keeps what it finished) and at the end.
pub fn measure(args: &Args, json: &Path) -> Result<BenchRun> {
    let started = Instant::now();
    let started_utc = system::utc_now();
    let mut machine = system::machine();
    let specs = resolve_models(args)?;
    let runtime = transfuse_ort::OrtRuntime::locate()?;
    if args.provider != ExecutionProvider::Cpu {
        machine.gpu = system::gpu_name();
    }
    let mut notes: Vec<String> = Vec::new();
    if args.provider == ExecutionProvider::Cpu {
        notes.push(
            "transfuse ran with `--target cpu` (no skip layer norms: ONNX Runtime's CPU kernel of them is slower)".into(),
        );
    }

    let want_openvino = !args.no_openvino && args.provider == ExecutionProvider::Cpu;
    let env = if args.no_peer && !want_openvino {
        let off = Tool::unavailable(None, "not asked for");
        python::PythonEnv {
            python: None,
            peer: off.clone(),
            openvino: off,
        }
    } else {
        python::prepare(args.peer_python.as_deref(), want_openvino, &mut |m| {
            eprintln!("{m}")
        })
    };
    let mut peer_tool = env.peer.clone();
    if args.no_peer {
        peer_tool.unavailable = Some("not asked for (--no-peer)".into());
    }
    let mut openvino_tool = env.openvino.clone();
    if let Some(version) = &openvino_tool.version {
        openvino_tool.version = Some(format!("{version}, precision {}", args.openvino_precision));
    }
    if args.provider != ExecutionProvider::Cpu {
        openvino_tool.unavailable = Some("CPU runs only".into());
    }
    if let Some(why) = &peer_tool.unavailable {
        notes.push(format!("the peer optimizer was not run: {why}"));
    }
    if let Some(why) = openvino_tool.unavailable.as_ref().filter(|_| want_openvino) {
        notes.push(format!("OpenVINO was not run: {why}"));
    }
    let peer = optimizers::peer_settings(&peer_tool, args.num_heads, args.hidden_size);
    let openvino_python = openvino_tool
        .unavailable
        .is_none()
        .then(|| env.python.clone())
        .flatten();

    let settings = Settings {
        threads: args.threads,
        provider: args.provider,
        rounds: args.rounds,
        session_epochs: args.session_epochs,
        warmup: args.warmup,
        gap: Duration::from_millis(args.gap_ms),
        parity_batch_text: args.parity_batch,
        parity_batch_vision: args.parity_images,
        profile_runs: if args.profile {
            args.profile_runs.max(1)
        } else {
            0
        },
        seed: args.seed,
        openvino_precision: args.openvino_precision.clone(),
    };

    // The progress bar counts optimizer processes and case steps.
    let configs_count = 5 + usize::from(openvino_python.is_some());
    let total: u64 = specs
        .iter()
        .map(|s| {
            let cases = s.seqs.as_ref().map_or(args.seqs.len(), Vec::len) as u64;
            (3 * args.optimizer_runs.max(1)) as u64
                + cases * latency::steps(configs_count, true, &settings)
        })
        .sum();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = Bar {
        bar,
        warnings: Vec::new(),
    };

    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("bench"));
    let mut run = BenchRun {
        schema: SCHEMA,
        started_utc,
        duration_s: 0.0,
        machine,
        ort_version: runtime.version().unwrap_or_else(|| "unknown".into()),
        ort_build: runtime.build_info().to_string(),
        provider: args.provider.name(),
        threads: args.threads,
        rounds: args.rounds,
        warmup: args.warmup,
        peer: peer_tool,
        openvino: openvino_tool,
        models: Vec::new(),
        notes,
    };
    let base_notes = run.notes.clone();
    for spec in &specs {
        let model =
            Model::load(&spec.path).with_context(|| format!("loading {}", spec.path.display()))?;
        let text = is_text(&model);
        let out_dir = work.join("optimized").join(&spec.name);
        let jobs: Vec<Job> = OptimizerId::ALL
            .iter()
            .filter(|id| **id != OptimizerId::Peer || !args.no_peer)
            .map(|&optimizer| Job {
                optimizer,
                input: spec.path.clone(),
                output: out_dir.join(format!("{}.onnx", optimizer.key())),
                model_type: if text { "bert" } else { "vit" },
                target: if args.provider == ExecutionProvider::Cpu {
                    "cpu"
                } else {
                    "gpu"
                },
            })
            .collect();
        progress
            .bar
            .set_message(format!("{}: optimizing", spec.name));
        let optimized = optimizers::run_jobs(
            &jobs,
            peer.as_ref(),
            args.optimizer_runs.max(1),
            args.fresh,
            &mut || {
                progress.bar.inc(1);
            },
        );
        let mut files: BTreeMap<ConfigId, std::result::Result<PathBuf, String>> = BTreeMap::new();
        files.insert(ConfigId::OrtDisabled, Ok(spec.path.clone()));
        files.insert(ConfigId::OrtAll, Ok(spec.path.clone()));
        for config in [ConfigId::Peer, ConfigId::OursNoAttention, ConfigId::Ours] {
            let Some(id) = config.optimizer() else {
                continue;
            };
            if let Some(o) = optimized.iter().find(|o| o.optimizer == id) {
                match &o.error {
                    None => {
                        files.insert(config, Ok(out_dir.join(format!("{}.onnx", id.key()))));
                    }
                    Some(e) => {
                        progress.warn(format!("{}: {} failed: {e}", spec.name, id.label()));
                        files.insert(config, Err(format!("{} failed", id.label())));
                    }
                }
            }
        }
        if openvino_python.is_some() {
            files.insert(ConfigId::Openvino, Ok(spec.path.clone()));
        }
        let subject = Subject {
            model: &model,
            name: &spec.name,
            text,
            files: &files,
            openvino_python: openvino_python.as_deref(),
            work_dir: &work.join("cases").join(&spec.name),
        };
        let seqs: Vec<Option<usize>> = if text {
            spec.seqs
                .clone()
                .unwrap_or_else(|| args.seqs.clone())
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let mut cases = Vec::new();
        for seq in seqs {
            match latency::measure_case(runtime, &subject, seq, &settings, &mut progress) {
                Ok(case) => cases.push(case),
                Err(e) => progress.warn(format!(
                    "{} {}: not measured: {e:#}",
                    spec.name,
                    seq.map_or_else(String::new, |s| format!("seq {s}"))
                )),
            }
        }
        run.models.push(ModelResult {
            name: spec.name.clone(),
            family: if text { "text" } else { "vision" }.into(),
            nodes: model.graph.nodes.len(),
            optimizers: optimized,
            cases,
        });
        run.notes = base_notes
            .iter()
            .chain(&progress.warnings)
            .cloned()
            .collect();
        run.duration_s = started.elapsed().as_secs_f64();
        run.machine.load_end = system::load_average();
        if let Err(e) = save_run(&run, json) {
            progress.warn(format!("{e:#}"));
        }
    }
    progress.bar.finish_and_clear();
    run.notes = base_notes.into_iter().chain(progress.warnings).collect();
    run.duration_s = started.elapsed().as_secs_f64();
    run.machine.load_end = system::load_average();
    save_run(&run, json)?;
    Ok(run)
}

/// A short plain-text summary on stdout.
pub fn print_summary(run: &BenchRun) {
    println!(
        "{} on {} (ONNX Runtime {}, {} rounds)",
        run.column(),
        run.machine.cpu_model,
        run.ort_version,
        run.rounds
    );
    println!(
        "{:<28} {:<10} {:>14} {:>14} {:>12} {:>12}",
        "model", "shape", "ours/ORT all", "ours/peer", "ours ms", "peer opt x"
    );
    for model in &run.models {
        let wall = |id| model.optimized_by(id).and_then(|o| o.min_wall_ms());
        let speedup = match (wall(OptimizerId::Peer), wall(OptimizerId::Ours)) {
            (Some(p), Some(o)) if o > 0.0 => format!("{:.1}", p / o),
            _ => "-".into(),
        };
        for case in &model.cases {
            let ratio = |den| {
                case.ours_vs(den)
                    .map_or("-".into(), |r| format!("{:.3}", r.median))
            };
            let ours = case.median_ms(ConfigId::Ours);
            println!(
                "{:<28} {:<10} {:>14} {:>14} {:>12} {:>12}",
                model.name,
                case.shape,
                ratio(ConfigId::OrtAll),
                ratio(ConfigId::Peer),
                ours.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
                speedup
            );
        }
    }
    for note in &run.notes {
        println!("note: {note}");
    }
}
