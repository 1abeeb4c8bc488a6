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
//! Raw results go to `target/bench/<provider>-<threads>t.json`; the markdown table
//! (`docs/benchmarks.md`) and chart (`docs/benchmarks.svg`) are rendered from this run plus
//! any earlier runs given with `--merge` (the device machine's 16-thread and GPU runs).
//!
//! Layout: [`results`] (the JSON), [`python`] (virtual environment, peer, OpenVINO driver),
//! [`optimizers`] (timed optimizer processes), [`measure`] (one case), [`profile`],
//! [`report`] (markdown), [`chart`] (SVG), [`system`] (machine facts, statistics).

mod chart;
mod measure;
mod optimizers;
mod profile;
mod python;
mod report;
mod results;
mod system;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use transfuse_ir::Model;
use transfuse_ort::ExecutionProvider;

use self::measure::{Progress, Settings, Subject};
use self::optimizers::Job;
use self::results::{BenchRun, ConfigId, ModelResult, OptimizerId, SCHEMA, Tool};
use crate::{models, ort_lib, paths};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models: names of base models (materialized under target/models when needed), `NAME:SEQ`
    /// for one sequence length, or paths to `.onnx` files. Default: every base model.
    models: Vec<String>,
    /// ONNX Runtime intra-op threads (and OpenVINO inference threads).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed rounds per case; each round runs every configuration once, in rotating order.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Untimed runs of every configuration before the rounds.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Split the rounds into this many epochs, with new ONNX Runtime sessions for each (so one
    /// session instance that stays slow on a shared machine weighs on part of the rounds only).
    #[arg(long, default_value_t = 3)]
    session_epochs: usize,
    /// Sequence lengths of text models (batch 1).
    #[arg(long, value_delimiter = ',', default_values_t = [32usize, 128])]
    seqs: Vec<usize>,
    /// Where to write this run's raw results (default: target/bench/<provider>-<threads>t.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also profile ONNX Runtime per node and aggregate the kernel time by op type.
    #[arg(long)]
    profile: bool,
    /// Profiled runs per configuration with --profile.
    #[arg(long, default_value_t = 10)]
    profile_runs: usize,
    /// Execution provider of ONNX Runtime: cpu, cuda, cuda:N (cuda needs the `cuda` build
    /// feature and a CUDA build of ONNX Runtime in ORT_DYLIB_PATH).
    #[arg(long, default_value = "cpu")]
    provider: ExecutionProvider,
    /// A Python that already has onnxruntime 1.31.1, onnx and sympy (and optionally openvino),
    /// used as is instead of creating target/bench/venv.
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// Leave out the peer optimizer.
    #[arg(long)]
    no_peer: bool,
    /// Leave out OpenVINO.
    #[arg(long)]
    no_openvino: bool,
    /// OpenVINO's inference precision hint: f32 (as ONNX Runtime computes), or bf16 / f16
    /// (OpenVINO's own default on CPUs with bf16 units).
    #[arg(long, default_value = "f32")]
    openvino_precision: String,
    /// The peer's --num_heads (0: it detects them).
    #[arg(long, default_value_t = 12)]
    num_heads: usize,
    /// The peer's --hidden_size (0: it detects it).
    #[arg(long, default_value_t = 768)]
    hidden_size: usize,
    /// Whole-process runs of each optimizer per model (interleaved; the fastest is reported).
    #[arg(long, default_value_t = 1)]
    optimizer_runs: usize,
    /// Optimize again even where an earlier run's optimized model fits.
    #[arg(long)]
    fresh: bool,
    /// Earlier runs' result files to publish together with this one.
    #[arg(long)]
    merge: Vec<PathBuf>,
    /// Publish without the saved runs of other machines (xtask/bench/results/*.json, such as
    /// the device machine's 16-thread and GPU runs), which are otherwise added as columns.
    #[arg(long)]
    no_saved: bool,
    /// Measure nothing: publish the --merge files only.
    #[arg(long)]
    render_only: bool,
    /// Do not write docs/benchmarks.md and docs/benchmarks.svg (only the raw JSON).
    #[arg(long)]
    no_publish: bool,
    /// Where the markdown goes (the chart goes beside it, as .svg).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Extra lines for the page's notes (how the runs were made, what was not run).
    #[arg(long)]
    note: Vec<String>,
    /// Pause between two timed runs, ms. ONNX Runtime's idle pool threads spin for tens of
    /// ms after a run; without the pause, the sessions interleaved with the one timed compete
    /// with it for the cores (seen here: +50% at 2 threads).
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// Rows of the generated text inputs for parity (row 0 whole, the others padded).
    #[arg(long, default_value_t = 2)]
    parity_batch: usize,
    /// Generated images for the vision models' parity and top-1 agreement.
    #[arg(long, default_value_t = 8)]
    parity_images: usize,
    /// Seed of the generated inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scratch directory: optimized models (reused by later runs), generated inputs,
    /// profiles, the OpenVINO driver's logs (default: target/bench).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// A model to benchmark and the sequence lengths it is timed at (text models).
#[derive(Debug)]
struct ModelSpec {
    name: String,
    path: PathBuf,
    seqs: Option<Vec<usize>>,
}

fn resolve_models(args: &Args) -> Result<Vec<ModelSpec>> {
    let wanted: Vec<String> = if args.models.is_empty() {
        let dir = paths::testdata_models().join("skeleton");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".onnx")
                    .map(String::from)
            })
            .collect();
        names.sort();
        names
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
fn is_text(model: &Model) -> bool {
    !model.graph.inputs.iter().any(|v| {
        v.elem_type().is_some_and(|t| t.is_float()) && v.shape().is_some_and(|s| s.len() == 4)
    })
}

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

fn default_json(provider: ExecutionProvider, threads: usize) -> PathBuf {
    paths::target_dir().join("bench").join(format!(
        "{}-{threads}t.json",
        provider.name().replace(':', "")
    ))
}

/// Runs the benchmark (or, with `--render-only`, only publishes earlier results).
pub fn run(args: Args) -> Result<()> {
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
    let run = measure(&args, &json)?;
    eprintln!("raw results: {}", json.display());
    print_summary(&run);
    if args.no_publish {
        return Ok(());
    }
    merged.insert(0, run);
    publish(&args, merged)
}

/// Where the saved runs of other machines live: `xtask/bench/results/`.
pub fn saved_results_dir() -> PathBuf {
    paths::root().join("xtask").join("bench").join("results")
}

/// The saved runs, in file name order (none when the directory does not exist).
fn saved_runs() -> Result<Vec<BenchRun>> {
    let dir = saved_results_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|f| read_run(f)).collect()
}

fn read_run(path: &Path) -> Result<BenchRun> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let run: BenchRun = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a bench result file", path.display()))?;
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
What `cargo xtask bench` measures, per model (batch 1; BERT-base at sequence lengths 32 and 128, ViT-B/16 at 224x224; random weights, generated inputs): the original model in ONNX Runtime with its graph optimizations disabled and all on; ONNX Runtime's Python transformers optimizer (the peer, `--opt_level 0`) and transfuse (all fusions, and all but attention), each followed by ONNX Runtime with all optimizations on; and OpenVINO on the original model where it installs. All configurations of a case run interleaved, one run each per round in rotating order, after warm-up runs, with every ONNX Runtime session created anew (and run once untimed) at the start of each third of the rounds; the tables give the median and the minimum, and ratios are taken per round, so a slow phase of a shared machine hits both sides of a ratio. PyTorch, BetterTransformer and TensorRT rows of the original experiment cannot run here and are left out.

Reproduce: `cargo xtask bench` (this machine's run at 2 threads; it creates the Python virtual environment for the peer and OpenVINO under `target/bench/venv` and materializes the models), and on a machine with many cores and a GPU `xtask bench --threads 16 --no-publish` and `xtask bench --provider cuda --threads 16 --no-publish` (a binary built with `--features cuda`, ONNX Runtime's CUDA build in `ORT_DYLIB_PATH`), whose JSON files, copied into `xtask/bench/results/`, are added as columns whenever the page is published (`cargo xtask bench --render-only` publishes them with no new measurement).";

/// Writes the page and chart of `runs`; of several runs with the same column heading, the
/// first one given is kept (this run before --merge files before saved ones).
fn publish(args: &Args, runs: Vec<BenchRun>) -> Result<()> {
    let mut kept: Vec<BenchRun> = Vec::new();
    for run in runs {
        if !kept.iter().any(|k| k.column() == run.column()) {
            kept.push(run);
        }
    }
    let mut runs = kept;
    runs.sort_by_key(|r| (r.provider != "cpu", r.threads));
    let markdown = args
        .markdown
        .clone()
        .unwrap_or_else(|| paths::root().join("docs").join("benchmarks.md"));
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
        "PyTorch, PyTorch with BetterTransformer and TensorRT (rows of the original experiment) are not run: no PyTorch or TensorRT here.".to_string(),
    ];
    notes.extend(args.note.iter().cloned());
    let page = report::markdown(&runs, chart_name.as_deref(), PREAMBLE, &notes);
    std::fs::write(&markdown, page).with_context(|| format!("writing {}", markdown.display()))?;
    eprintln!(
        "published: {}{}",
        markdown.display(),
        if chart_name.is_some() {
            format!(" and {}", svg.display())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Writes `run` as pretty JSON to `path`.
fn save_run(run: &BenchRun, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(run).context("encoding the results")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Measures every model, saving the results to `json` after each model (so a run cut short
/// keeps what it finished) and at the end.
fn measure(args: &Args, json: &Path) -> Result<BenchRun> {
    let started = Instant::now();
    let started_utc = system::utc_now();
    let mut machine = system::machine();
    let specs = resolve_models(args)?;
    let runtime = ort_lib::runtime()?;
    if args.provider != ExecutionProvider::Cpu {
        machine.gpu = system::gpu_name();
    }
    let mut notes: Vec<String> = Vec::new();

    let want_openvino = !args.no_openvino && args.provider == ExecutionProvider::Cpu;
    let env = if args.no_peer && !want_openvino {
        let off = Tool {
            python: None,
            version: None,
            unavailable: Some("not asked for".into()),
        };
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
        peer_tool = Tool {
            unavailable: Some("not asked for (--no-peer)".into()),
            ..peer_tool
        };
    }
    let mut openvino_tool = env.openvino.clone();
    if let Some(version) = &openvino_tool.version {
        openvino_tool.version = Some(format!("{version}, precision {}", args.openvino_precision));
    }
    if args.provider != ExecutionProvider::Cpu {
        openvino_tool = Tool {
            unavailable: Some("CPU runs only".into()),
            ..openvino_tool
        };
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
                + cases * measure::steps(configs_count, true, &settings)
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
            match measure::measure_case(runtime, &subject, seq, &settings, &mut progress) {
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
fn print_summary(run: &BenchRun) {
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
        let wall = |id| {
            model
                .optimizers
                .iter()
                .find(|o| o.optimizer == id && o.error.is_none())
                .and_then(|o| o.min_wall_ms())
        };
        let speedup = match (wall(OptimizerId::Peer), wall(OptimizerId::Ours)) {
            (Some(p), Some(o)) if o > 0.0 => format!("{:.1}", p / o),
            _ => "-".into(),
        };
        for case in &model.cases {
            let ratio = |den| {
                case.ratios
                    .iter()
                    .find(|r| r.numerator == ConfigId::Ours && r.denominator == den)
                    .map_or_else(|| "-".to_string(), |r| format!("{:.3}", r.median))
            };
            let ours = case
                .latency
                .iter()
                .find(|l| l.config == ConfigId::Ours)
                .and_then(|l| l.median_ms);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::results::{
        BenchRun, CaseResult, ConfigId, Latency, Machine, ModelResult, OptimizerId,
        OptimizerResult, Parity, ProfileResult, Ratio, SCHEMA, Tool,
    };
    use super::{chart, report};

    fn latency(config: ConfigId, median: f64) -> Latency {
        Latency {
            config,
            error: None,
            load_ms: Some(10.0),
            min_ms: Some(median * 0.9),
            median_ms: Some(median),
            samples_ms: vec![median * 0.9, median, median * 1.1],
        }
    }

    fn ratio(numerator: ConfigId, denominator: ConfigId, median: f64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            rounds: 3,
            median,
            p25: median - 0.01,
            p75: median + 0.01,
            min: median - 0.02,
            max: median + 0.02,
            of_medians: median,
        }
    }

    fn parity(config: ConfigId, padding: &str, max_abs: f64) -> Parity {
        Parity {
            config,
            padding: padding.into(),
            batch: 2,
            error: None,
            max_abs: Some(max_abs),
            max_abs_real: Some(max_abs),
            top1_agreement: None,
        }
    }

    fn optimizer(optimizer: OptimizerId, wall: f64, attention: usize) -> OptimizerResult {
        let mut histogram = BTreeMap::new();
        histogram.insert("com.microsoft.Attention".to_string(), attention);
        histogram.insert("com.microsoft.SkipLayerNormalization".to_string(), 24);
        histogram.insert("MatMul".to_string(), 48);
        OptimizerResult {
            optimizer,
            command: "optimize".into(),
            error: None,
            wall_ms: vec![wall],
            cached: false,
            nodes: 100,
            histogram,
        }
    }

    fn sample_run(provider: &str, threads: usize) -> BenchRun {
        let mut peer_failed = optimizer(OptimizerId::OursNoAttention, 200.0, 0);
        peer_failed.error = Some("exit status: 1: boom".into());
        let text_case = CaseResult {
            shape: "seq 32".into(),
            batch: 1,
            seq: Some(32),
            latency: vec![
                latency(ConfigId::OrtDisabled, 20.0),
                latency(ConfigId::OrtAll, 16.0),
                latency(ConfigId::Peer, 15.5),
                latency(ConfigId::Ours, 15.0),
                Latency {
                    error: Some("transfuse all,-attention failed".into()),
                    min_ms: None,
                    median_ms: None,
                    samples_ms: vec![],
                    ..latency(ConfigId::OursNoAttention, 0.0)
                },
            ],
            ratios: vec![
                ratio(ConfigId::Ours, ConfigId::OrtAll, 0.94),
                ratio(ConfigId::Ours, ConfigId::Peer, 1.05),
            ],
            parity: vec![
                parity(ConfigId::Peer, "none", 1e-6),
                parity(ConfigId::Peer, "left", 3.6),
                parity(ConfigId::Ours, "none", 2e-6),
                parity(ConfigId::Ours, "left", 3e-6),
            ],
            profile: vec![ProfileResult {
                config: ConfigId::Ours,
                runs: 10,
                kernel_ms: 10.0,
                run_ms: 11.0,
                by_op: [("MatMul".to_string(), 8.8), ("Attention".to_string(), 1.2)]
                    .into_iter()
                    .collect(),
                nodes_by_op: [("MatMul".to_string(), 48), ("Attention".to_string(), 12)]
                    .into_iter()
                    .collect(),
            }],
            load_after: Some(0.5),
        };
        let vision_case = CaseResult {
            shape: "224x224".into(),
            batch: 1,
            seq: None,
            latency: vec![
                latency(ConfigId::OrtDisabled, 80.0),
                latency(ConfigId::Ours, 70.0),
                latency(ConfigId::Openvino, 90.0),
            ],
            ratios: vec![],
            parity: vec![Parity {
                top1_agreement: Some(1.0),
                batch: 8,
                ..parity(ConfigId::Ours, "none", 1e-5)
            }],
            profile: vec![],
            load_after: Some(1.5),
        };
        BenchRun {
            schema: SCHEMA,
            started_utc: "2026-11-26T00:00:00Z".into(),
            duration_s: 100.0,
            machine: Machine {
                cpu_model: "Test CPU".into(),
                logical_cpus: threads,
                gpu: (provider == "cuda").then(|| "Test GPU".to_string()),
                load_start: [0.5, 0.4, 0.3],
                load_end: [0.6, 0.5, 0.4],
                hostname: "test".into(),
            },
            ort_version: "1.31.1".into(),
            ort_build: "test".into(),
            provider: provider.into(),
            threads,
            rounds: 3,
            warmup: 1,
            peer: Tool {
                python: Some("python".into()),
                version: Some("1.31.1".into()),
                unavailable: None,
            },
            openvino: Tool {
                python: None,
                version: None,
                unavailable: Some("not installable".into()),
            },
            models: vec![
                ModelResult {
                    name: "bert_eager_ts_op14".into(),
                    family: "text".into(),
                    nodes: 1311,
                    optimizers: vec![
                        optimizer(OptimizerId::Peer, 16000.0, 12),
                        peer_failed,
                        optimizer(OptimizerId::Ours, 1000.0, 12),
                    ],
                    cases: vec![text_case],
                },
                ModelResult {
                    name: "vit_sdpa_ts_op17".into(),
                    family: "vision".into(),
                    nodes: 1136,
                    optimizers: vec![
                        optimizer(OptimizerId::Peer, 8000.0, 0),
                        optimizer(OptimizerId::Ours, 4000.0, 12),
                    ],
                    cases: vec![vision_case],
                },
            ],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let run = sample_run("cpu", 2);
        let text = serde_json::to_string(&run).expect("encode");
        let back: BenchRun = serde_json::from_str(&text).expect("decode");
        assert_eq!(back.models.len(), 2);
        assert_eq!(back.models[0].cases[0].latency.len(), 5);
        assert_eq!(
            back.models[0].optimizers[0].histogram,
            run.models[0].optimizers[0].histogram
        );
        assert_eq!(back.column(), "CPU, 2 threads");
        assert!(
            text.contains("\"ours_no_attention\""),
            "config keys are snake_case"
        );
    }

    #[test]
    fn the_page_has_every_section_and_marks_missed_goals() {
        let runs = vec![sample_run("cpu", 2), sample_run("cuda", 16)];
        let page = report::markdown(
            &runs,
            Some("benchmarks.svg"),
            "intro",
            &["extra note".into()],
        );
        for heading in [
            "## Conditions",
            "## Summary",
            "## Latency, ms per batch-1 inference",
            "### BERT-base, seq 32: `bert_eager_ts_op14`",
            "### ViT-B/16 (transformers), 224x224: `vit_sdpa_ts_op17`",
            "## Optimizer wall time",
            "## Fused operators",
            "## Parity with the original",
            "## Accuracy parity stand-in",
            "## Where the time goes",
            "## Notes and what was not run",
        ] {
            assert!(page.contains(heading), "missing {heading}\n{page}");
        }
        assert!(
            page.contains("| CPU, 2 threads | CPU, 16 threads |")
                || page.contains("| CPU, 2 threads | GPU (Test GPU) |")
        );
        // Latency cells: median (min); failures say so.
        assert!(
            page.contains("| ONNX Runtime, full fusion (transfuse), then all | 15.00 (13.50) |"),
            "{page}"
        );
        assert!(page.contains("failed: transfuse all,-attention failed"));
        // Ratio goals: 0.94 passes, 1.05 is marked.
        assert!(page.contains("0.940 [0.930–0.950] |"));
        assert!(page.contains("1.050 [1.040–1.060] ✗"));
        // Optimizer time: 16x passes, 2x is marked.
        assert!(page.contains("| 16.0x |"), "{page}");
        assert!(page.contains("| 2.0x ✗ |"), "{page}");
        // Fused op counts come from the domain-qualified histogram.
        assert!(
            page.contains("| bert_eager_ts_op14 | transfuse all | 100 | 12 | 0 | 0 | 24 |"),
            "{page}"
        );
        // Parity: the peer's left-padding error is shown.
        assert!(page.contains("3.6e0"), "{page}");
        assert!(page.contains("1.000 of 8"));
        assert!(page.contains("- extra note") && page.contains("a note"));
        // Load after each case, min–max, beside the start and end.
        assert!(page.contains("0.50 → 0.60 (0.50–1.50)"), "{page}");
    }

    #[test]
    fn the_chart_is_an_svg_with_a_panel_per_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chart.svg");
        chart::draw(&[sample_run("cpu", 2), sample_run("cuda", 16)], &path).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(svg.starts_with("<svg") || svg.contains("<svg"));
        assert!(svg.contains("CPU, 2 threads") && svg.contains("GPU (Test GPU)"));
        assert!(svg.contains("transfuse + ORT all"));
        let empty = BenchRun {
            models: vec![],
            ..sample_run("cpu", 2)
        };
        assert!(chart::draw(&[empty], &dir.path().join("empty.svg")).is_err());
    }
}
