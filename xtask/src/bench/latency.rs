//! Timing one case (a model at one input shape): sessions of every configuration, warm-up,
//! then rounds that run each configuration once in rotating order; per-round ratios. The
//! parity and profile stages of the case follow in [`super::parity`] and [`super::profile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{
    ExecutionProvider, OptimizationLevel, OrtRuntime, PreparedInputs, Session, SessionOptions,
};

use super::python::OpenVino;
use super::results::{CaseResult, ConfigId, Latency, Ratio};
use super::system::{load_average, median, min, quantile};
use super::{parity, profile};
use crate::parity::inputs::{InputSpec, Padding, generate_inputs};

/// How a case is measured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// ONNX Runtime intra-op threads (and OpenVINO inference threads).
    pub threads: usize,
    /// Where ONNX Runtime runs.
    pub provider: ExecutionProvider,
    /// Timed rounds.
    pub rounds: usize,
    /// The rounds are split into this many epochs; every ONNX Runtime session is created
    /// anew (and warmed up once) at the start of each epoch after the first. On a shared
    /// machine one session can stay slow for all its runs (seen at 2 threads: one
    /// configuration 30% slower for a whole case while the others were normal); with fresh
    /// sessions such an instance covers only part of the rounds.
    pub session_epochs: usize,
    /// Untimed runs of each configuration first.
    pub warmup: usize,
    /// Pause between two runs, so the thread pool of the previous session stops spinning.
    pub gap: Duration,
    /// Batch of the parity inputs for text models (rows padded after the pattern).
    pub parity_batch_text: usize,
    /// Batch of the parity inputs for vision models (generated images).
    pub parity_batch_vision: usize,
    /// Profiled runs per configuration with `--profile` (0: no profile).
    pub profile_runs: usize,
    /// Seed of the generated inputs.
    pub seed: u64,
    /// OpenVINO's inference precision (`f32`, `bf16`, `f16`).
    pub openvino_precision: String,
}

/// Where a case reports how far it got, and what went wrong on the way.
pub trait Progress {
    /// One more step done (a round, a stage); `message` says which.
    fn step(&mut self, message: &str);
    /// Something failed that the results must mention.
    fn warn(&mut self, message: String);
}

/// One model as the cases see it.
#[derive(Debug)]
pub struct Subject<'a> {
    /// The original model, for input generation.
    pub model: &'a Model,
    /// Its name.
    pub name: &'a str,
    /// True for text models (token ids and masks), false for vision.
    pub text: bool,
    /// The model file of each configuration, or why there is none.
    pub files: &'a BTreeMap<ConfigId, std::result::Result<PathBuf, String>>,
    /// The Python interpreter that runs OpenVINO, when it is available.
    pub openvino_python: Option<&'a Path>,
    /// Scratch directory of this model's cases.
    pub work_dir: &'a Path,
}

/// What the stages of one case share.
pub struct Case<'a> {
    pub runtime: &'static OrtRuntime,
    pub subject: &'a Subject<'a>,
    pub settings: &'a Settings,
    /// Scratch directory of the case.
    pub dir: PathBuf,
    /// `seq 128` or `224x224`.
    pub shape: String,
    /// The timed inputs (batch 1, no padding), also written as `.pb` files under `timed_dir`.
    pub inputs: Vec<Tensor>,
    pub timed_dir: PathBuf,
}

impl Case<'_> {
    /// Reports one step of this case: "`<model> <shape>: <what>`".
    pub fn step(&self, progress: &mut dyn Progress, what: &str) {
        progress.step(&format!("{} {}: {what}", self.subject.name, self.shape));
    }

    /// Session options of `config` on the case's provider and threads.
    pub fn session_options(&self, config: ConfigId) -> SessionOptions {
        let level = if config == ConfigId::OrtDisabled {
            OptimizationLevel::Disabled
        } else {
            OptimizationLevel::All
        };
        SessionOptions::default()
            .optimization_level(level)
            .intra_op_threads(self.settings.threads)
            .execution_provider(self.settings.provider)
    }

    /// Starts the engine of `config`: an ONNX Runtime session with the timed inputs prepared,
    /// or the OpenVINO driver.
    fn start_engine(&self, config: ConfigId) -> Result<Engine> {
        let file = match self.subject.files.get(&config) {
            Some(Ok(path)) => path,
            Some(Err(why)) => bail!("{why}"),
            None => bail!("not measured"),
        };
        if config == ConfigId::Openvino {
            let Some(python) = self.subject.openvino_python else {
                bail!("OpenVINO is unavailable")
            };
            if self.settings.provider != ExecutionProvider::Cpu {
                bail!("OpenVINO runs on the CPU only");
            }
            let s = self.settings;
            let log = self.dir.join("openvino.log");
            let driver = OpenVino::start(
                python,
                file,
                s.threads,
                &s.openvino_precision,
                &self.timed_dir,
                &log,
            )?;
            return Ok(Engine::OpenVino(driver));
        }
        let session = Session::from_file(self.runtime, file, &self.session_options(config))?;
        let prepared = session.prepare(&named(&self.inputs))?;
        Ok(Engine::Ort { session, prepared })
    }
}

/// `inputs` as the (name, tensor) pairs a session takes.
pub fn named(inputs: &[Tensor]) -> Vec<(&str, Tensor)> {
    inputs
        .iter()
        .map(|t| (t.name.as_str(), t.clone()))
        .collect()
}

/// Runs `session` on `inputs` and names each output tensor after its graph output.
pub fn run_session(session: &mut Session, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let outputs = session.run(&named(inputs))?;
    Ok(outputs
        .into_iter()
        .map(|(name, t)| t.renamed(name))
        .collect())
}

enum Engine {
    Ort {
        session: Session,
        prepared: PreparedInputs,
    },
    OpenVino(OpenVino),
}

/// One configuration's engine and its samples (`None` for rounds it did not run).
pub struct Runner {
    pub config: ConfigId,
    engine: Engine,
    samples: Vec<Option<f64>>,
    pub error: Option<String>,
}

impl Runner {
    fn time(&mut self) -> Result<f64> {
        match &mut self.engine {
            Engine::Ort { session, prepared } => {
                Ok(session.time_prepared(prepared)?.as_secs_f64() * 1e3)
            }
            Engine::OpenVino(driver) => driver.time(),
        }
    }

    /// Times one run, recording a failure as the runner's error (`None` then, and for a
    /// runner that failed before).
    fn sample(&mut self) -> Option<f64> {
        if self.error.is_some() {
            return None;
        }
        self.time()
            .map_err(|e| self.error = Some(format!("{e:#}")))
            .ok()
    }

    /// The outputs of one run on `inputs` (OpenVINO exchanges them as `.pb` files in `scratch`).
    pub fn outputs(&mut self, inputs: &[Tensor], scratch: &Path) -> Result<Vec<Tensor>> {
        let driver = match &mut self.engine {
            Engine::Ort { session, .. } => return run_session(session, inputs),
            Engine::OpenVino(driver) => driver,
        };
        let (in_dir, out_dir) = (scratch.join("in"), scratch.join("out"));
        let _ = std::fs::remove_dir_all(scratch);
        write_inputs(inputs, &in_dir)?;
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        driver.infer(&in_dir, &out_dir)?;
        let mut outputs = Vec::new();
        for i in 0.. {
            let path = out_dir.join(format!("output_{i}.pb"));
            if !path.is_file() {
                break;
            }
            outputs.push(
                Tensor::load_pb(&path).with_context(|| format!("reading {}", path.display()))?,
            );
        }
        Ok(outputs)
    }
}

fn write_inputs(inputs: &[Tensor], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, t) in inputs.iter().enumerate() {
        let path = dir.join(format!("input_{i}.pb"));
        t.save_pb(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// How many steps [`measure_case`] reports for `configs` configurations.
pub fn steps(configs: usize, text: bool, settings: &Settings) -> u64 {
    let profiled = if settings.profile_runs > 0 {
        profile::PROFILED.len()
    } else {
        0
    };
    (configs + settings.warmup + settings.rounds + parity::patterns(text).len() + profiled) as u64
}

/// Measures `subject` at `seq` (text) or its declared image size (vision), reporting every
/// round and stage to `progress` (see [`steps`]).
pub fn measure_case(
    runtime: &'static OrtRuntime,
    subject: &Subject<'_>,
    seq: Option<usize>,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<CaseResult> {
    let spec = InputSpec {
        batch: 1,
        seq: seq.unwrap_or(1),
        seed: settings.seed,
        padding: Padding::None,
    };
    let inputs = generate_inputs(subject.model, &spec).context("generating the timed inputs")?;
    let shape = match seq {
        Some(s) => format!("seq {s}"),
        None => image_shape(&inputs),
    };
    let dir = subject.work_dir.join(shape.replace(' ', "_"));
    let timed_dir = dir.join("timed_inputs");
    write_inputs(&inputs, &timed_dir)?;
    let case = Case {
        runtime,
        subject,
        settings,
        dir,
        shape,
        inputs,
        timed_dir,
    };

    // Sessions (and the OpenVINO driver), one per configuration.
    let mut runners: Vec<Runner> = Vec::new();
    let mut latency: BTreeMap<ConfigId, Latency> = BTreeMap::new();
    for config in ConfigId::ALL
        .into_iter()
        .filter(|c| subject.files.contains_key(c))
    {
        let mut record = Latency {
            config,
            error: None,
            load_ms: None,
            min_ms: None,
            median_ms: None,
            samples_ms: Vec::new(),
        };
        let started = Instant::now();
        match case.start_engine(config) {
            Ok(engine) => {
                record.load_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                runners.push(Runner {
                    config,
                    engine,
                    samples: Vec::new(),
                    error: None,
                });
            }
            Err(e) => record.error = Some(format!("{e:#}")),
        }
        latency.insert(config, record);
        case.step(progress, &format!("loaded {}", config.key()));
    }

    // Warm-up, then timed rounds; the order rotates each round.
    for w in 0..settings.warmup {
        for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
            runner.sample();
            std::thread::sleep(settings.gap);
        }
        case.step(progress, &format!("warm-up {}/{}", w + 1, settings.warmup));
    }
    let n = runners.len();
    let epochs = settings.session_epochs.clamp(1, settings.rounds.max(1));
    for round in 0..settings.rounds {
        if round > 0 && round * epochs % settings.rounds < epochs {
            renew_sessions(&case, &mut runners);
        }
        for k in 0..n {
            let runner = &mut runners[(round + k) % n];
            let sample = runner.sample();
            runner.samples.push(sample);
            std::thread::sleep(settings.gap);
        }
        case.step(
            progress,
            &format!("round {}/{}", round + 1, settings.rounds),
        );
    }
    for runner in &runners {
        if let Some(record) = latency.get_mut(&runner.config) {
            record.samples_ms = runner.samples.iter().flatten().copied().collect();
            record.min_ms = min(&record.samples_ms);
            record.median_ms = median(&record.samples_ms);
            if runner.error.is_some() {
                record.error.clone_from(&runner.error);
            }
        }
    }
    let ratios = ratios(&runners);
    let load_after = Some(load_average()[0]);

    // Parity against the original without optimizations (on the CPU).
    let parity = parity::parity(&case, seq, &mut runners, progress);
    drop(runners);
    let profile = if settings.profile_runs > 0 {
        profile::profile_case(&case, progress)
    } else {
        Vec::new()
    };
    let _ = std::fs::remove_dir_all(case.dir.join("parity"));

    Ok(CaseResult {
        shape: case.shape,
        batch: 1,
        seq,
        latency: latency.into_values().collect(),
        ratios,
        parity,
        profile,
        load_after,
    })
}

fn image_shape(inputs: &[Tensor]) -> String {
    match inputs.iter().find(|t| t.dims.len() == 4) {
        Some(t) => format!("{}x{}", t.dims[2], t.dims[3]),
        None => "default shape".into(),
    }
}

/// Replaces every working ONNX Runtime session by a new one of the same configuration and
/// runs it once untimed (OpenVINO's driver process is kept). A session that fails to come
/// back marks its configuration failed.
fn renew_sessions(case: &Case<'_>, runners: &mut [Runner]) {
    for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
        if matches!(runner.engine, Engine::OpenVino(_)) {
            continue;
        }
        match case.start_engine(runner.config) {
            Ok(engine) => {
                runner.engine = engine;
                runner.sample();
                std::thread::sleep(case.settings.gap);
            }
            Err(e) => runner.error = Some(format!("renewing the session: {e:#}")),
        }
    }
}

/// The ratio pairs reported: (numerator, denominator).
pub const RATIO_PAIRS: [(ConfigId, ConfigId); 7] = [
    (ConfigId::Ours, ConfigId::OrtAll),
    (ConfigId::Ours, ConfigId::Peer),
    (ConfigId::Ours, ConfigId::OrtDisabled),
    (ConfigId::OursNoAttention, ConfigId::OrtAll),
    (ConfigId::Peer, ConfigId::OrtAll),
    (ConfigId::OrtAll, ConfigId::OrtDisabled),
    (ConfigId::Openvino, ConfigId::OrtDisabled),
];

fn ratios(runners: &[Runner]) -> Vec<Ratio> {
    let find = |c: ConfigId| runners.iter().find(|r| r.config == c);
    let mut out = Vec::new();
    for (num, den) in RATIO_PAIRS {
        let (Some(a), Some(b)) = (find(num), find(den)) else {
            continue;
        };
        let per_round: Vec<f64> = a
            .samples
            .iter()
            .zip(&b.samples)
            .filter_map(|(x, y)| Some((*x)? / (*y)?))
            .filter(|r| r.is_finite())
            .collect();
        let a_all: Vec<f64> = a.samples.iter().flatten().copied().collect();
        let b_all: Vec<f64> = b.samples.iter().flatten().copied().collect();
        let (Some(med), Some(p25), Some(p75), Some(lo), Some(hi), Some(ma), Some(mb)) = (
            median(&per_round),
            quantile(&per_round, 0.25),
            quantile(&per_round, 0.75),
            quantile(&per_round, 0.0),
            quantile(&per_round, 1.0),
            median(&a_all),
            median(&b_all),
        ) else {
            continue;
        };
        out.push(Ratio {
            numerator: num,
            denominator: den,
            rounds: per_round.len(),
            median: med,
            p25,
            p75,
            min: lo,
            max: hi,
            of_medians: ma / mb,
        });
    }
    out
}
