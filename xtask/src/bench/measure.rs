//! Measuring one case (a model at one input shape): latency of every configuration,
//! interleaved round by round after warm-up; parity of every configuration against the
//! original; optionally ONNX Runtime's per-node profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{
    ExecutionProvider, OptimizationLevel, OrtRuntime, PreparedInputs, Session, SessionOptions,
};

use super::profile;
use super::python::OpenVino;
use super::results::{CaseResult, ConfigId, Latency, Parity, ProfileResult, Ratio};
use super::system::{median, min, quantile};
use transfuse_parity::{InputSpec, Padding, Tolerance, compare_tensors, generate_inputs, mask_row};

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

enum Engine {
    Ort {
        session: Session,
        prepared: PreparedInputs,
    },
    OpenVino(OpenVino),
}

struct Runner {
    config: ConfigId,
    engine: Engine,
    samples: Vec<Option<f64>>,
    error: Option<String>,
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

    fn outputs(&mut self, inputs: &[Tensor], scratch: &Path) -> Result<Vec<Tensor>> {
        match &mut self.engine {
            Engine::Ort { session, .. } => {
                let named: Vec<(&str, Tensor)> = inputs
                    .iter()
                    .map(|t| (t.name.as_str(), t.clone()))
                    .collect();
                Ok(session
                    .run(&named)?
                    .into_iter()
                    .map(|(name, t)| t.renamed(name))
                    .collect())
            }
            Engine::OpenVino(driver) => {
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
                        Tensor::load_pb(&path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    );
                }
                Ok(outputs)
            }
        }
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

fn session_options(settings: &Settings, level: OptimizationLevel) -> SessionOptions {
    SessionOptions::default()
        .optimization_level(level)
        .intra_op_threads(settings.threads)
        .execution_provider(settings.provider)
}

fn level_of(config: ConfigId) -> OptimizationLevel {
    if config == ConfigId::OrtDisabled {
        OptimizationLevel::Disabled
    } else {
        OptimizationLevel::All
    }
}

/// How many steps [`measure_case`] reports for `configs` configurations.
pub fn steps(configs: usize, text: bool, settings: &Settings) -> u64 {
    let profiled = if settings.profile_runs > 0 {
        PROFILED.len()
    } else {
        0
    };
    (configs + settings.warmup + settings.rounds + patterns(text).len() + profiled) as u64
}

/// The configurations measured, in order.
pub fn configs(subject: &Subject<'_>) -> Vec<ConfigId> {
    ConfigId::ALL
        .into_iter()
        .filter(|c| subject.files.contains_key(c))
        .collect()
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
    let timed_inputs =
        generate_inputs(subject.model, &spec).context("generating the timed inputs")?;
    let shape = match seq {
        Some(s) => format!("seq {s}"),
        None => image_shape(&timed_inputs),
    };
    let case_dir = subject.work_dir.join(shape.replace(' ', "_"));
    let timed_dir = case_dir.join("timed_inputs");
    write_inputs(&timed_inputs, &timed_dir)?;

    // Sessions (and the OpenVINO driver), one per configuration.
    let mut runners: Vec<Runner> = Vec::new();
    let mut latency: BTreeMap<ConfigId, Latency> = BTreeMap::new();
    for config in configs(subject) {
        let mut record = Latency {
            config,
            error: None,
            load_ms: None,
            min_ms: None,
            median_ms: None,
            samples_ms: Vec::new(),
        };
        let started = std::time::Instant::now();
        let engine = start_engine(
            runtime,
            subject,
            config,
            settings,
            &timed_inputs,
            &timed_dir,
            &case_dir,
        );
        match engine {
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
        progress.step(&format!(
            "{} {shape}: loaded {}",
            subject.name,
            config.key()
        ));
    }

    // Warm-up, then timed rounds; the order rotates each round.
    for w in 0..settings.warmup {
        for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
            if let Err(e) = runner.time() {
                runner.error = Some(format!("{e:#}"));
            }
            std::thread::sleep(settings.gap);
        }
        progress.step(&format!(
            "{} {shape}: warm-up {}/{}",
            subject.name,
            w + 1,
            settings.warmup
        ));
    }
    let n = runners.len();
    let epochs = settings.session_epochs.clamp(1, settings.rounds.max(1));
    for round in 0..settings.rounds {
        if round > 0 && round * epochs % settings.rounds < epochs {
            renew_sessions(
                &mut runners,
                runtime,
                subject,
                settings,
                &timed_inputs,
                &timed_dir,
                &case_dir,
            );
        }
        for k in 0..n {
            let runner = &mut runners[(round + k) % n];
            let sample = if runner.error.is_none() {
                match runner.time() {
                    Ok(ms) => Some(ms),
                    Err(e) => {
                        runner.error = Some(format!("{e:#}"));
                        None
                    }
                }
            } else {
                None
            };
            runner.samples.push(sample);
            std::thread::sleep(settings.gap);
        }
        progress.step(&format!(
            "{} {shape}: round {}/{}",
            subject.name,
            round + 1,
            settings.rounds
        ));
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
    let load_after = Some(super::system::load_average()[0]);

    // Parity against the original without optimizations (on the CPU).
    let case = Case {
        runtime,
        subject,
        settings,
        dir: &case_dir,
        shape: &shape,
    };
    let parity = parity(&case, seq, &mut runners, progress);
    drop(runners);

    let profile = if settings.profile_runs > 0 {
        profile_case(&case, &timed_inputs, progress)
    } else {
        Vec::new()
    };
    let _ = std::fs::remove_dir_all(case_dir.join("parity"));

    Ok(CaseResult {
        shape,
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

fn start_engine(
    runtime: &'static OrtRuntime,
    subject: &Subject<'_>,
    config: ConfigId,
    settings: &Settings,
    inputs: &[Tensor],
    timed_dir: &Path,
    case_dir: &Path,
) -> Result<Engine> {
    let file = match subject.files.get(&config) {
        Some(Ok(path)) => path,
        Some(Err(why)) => bail!("{why}"),
        None => bail!("not measured"),
    };
    if config == ConfigId::Openvino {
        let Some(python) = subject.openvino_python else {
            bail!("OpenVINO is unavailable")
        };
        if settings.provider != ExecutionProvider::Cpu {
            bail!("OpenVINO runs on the CPU only");
        }
        let log = case_dir.join("openvino.log");
        return Ok(Engine::OpenVino(OpenVino::start(
            python,
            file,
            settings.threads,
            &settings.openvino_precision,
            timed_dir,
            &log,
        )?));
    }
    let session = Session::from_file(runtime, file, &session_options(settings, level_of(config)))?;
    let named: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|t| (t.name.as_str(), t.clone()))
        .collect();
    let prepared = session.prepare(&named)?;
    Ok(Engine::Ort { session, prepared })
}

/// Replaces every working ONNX Runtime session by a new one of the same configuration and
/// runs it once untimed (OpenVINO's driver process is kept). A session that fails to come
/// back marks its configuration failed.
fn renew_sessions(
    runners: &mut [Runner],
    runtime: &'static OrtRuntime,
    subject: &Subject<'_>,
    settings: &Settings,
    inputs: &[Tensor],
    timed_dir: &Path,
    case_dir: &Path,
) {
    for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
        if matches!(runner.engine, Engine::OpenVino(_)) {
            continue;
        }
        let renewed = start_engine(
            runtime,
            subject,
            runner.config,
            settings,
            inputs,
            timed_dir,
            case_dir,
        );
        match renewed {
            Ok(engine) => {
                runner.engine = engine;
                if let Err(e) = runner.time() {
                    runner.error = Some(format!("{e:#}"));
                }
                std::thread::sleep(settings.gap);
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

/// The patterns checked: every mask pattern for text models, none for vision.
fn patterns(text: bool) -> Vec<Padding> {
    if text {
        vec![Padding::None, Padding::Right, Padding::Left, Padding::Holes]
    } else {
        vec![Padding::None]
    }
}

/// The original without optimizations in a CPU session: the parity reference of runs on
/// another execution provider (whose own no-optimization session is then compared too).
fn cpu_reference(
    runtime: &'static OrtRuntime,
    subject: &Subject<'_>,
    settings: &Settings,
) -> Result<Session> {
    let Some(Ok(file)) = subject.files.get(&ConfigId::OrtDisabled) else {
        bail!("no original model")
    };
    let options = SessionOptions::default()
        .optimization_level(OptimizationLevel::Disabled)
        .intra_op_threads(settings.threads);
    Ok(Session::from_file(runtime, file, &options)?)
}

/// What the parity and profile stages of one case share.
struct Case<'a> {
    runtime: &'static OrtRuntime,
    subject: &'a Subject<'a>,
    settings: &'a Settings,
    dir: &'a Path,
    shape: &'a str,
}

fn parity(
    case: &Case<'_>,
    seq: Option<usize>,
    runners: &mut [Runner],
    progress: &mut dyn Progress,
) -> Vec<Parity> {
    let Case {
        runtime,
        subject,
        settings,
        dir: case_dir,
        shape,
    } = *case;
    let batch = if subject.text {
        settings.parity_batch_text
    } else {
        settings.parity_batch_vision
    }
    .max(1);
    let tolerance = Tolerance {
        atol: 1e-4,
        rtol: 0.0,
    };
    // On another execution provider, the reference is the original on the CPU (exact fp32),
    // and that provider's own run of the original is compared too.
    let mut cpu = (settings.provider != ExecutionProvider::Cpu)
        .then(|| cpu_reference(runtime, subject, settings).map_err(|e| format!("{e:#}")));
    let compare_original = cpu.is_some();
    let mut out = Vec::new();
    for padding in patterns(subject.text) {
        let record = |config, error: Option<String>| Parity {
            config,
            padding: padding.to_string(),
            batch,
            error,
            max_abs: None,
            max_abs_real: None,
            top1_agreement: None,
        };
        let spec = InputSpec {
            batch,
            seq: seq.unwrap_or(1),
            seed: settings.seed.wrapping_add(1),
            padding,
        };
        let inputs = match generate_inputs(subject.model, &spec) {
            Ok(i) => i,
            Err(e) => {
                out.extend(
                    runners
                        .iter()
                        .map(|r| record(r.config, Some(format!("generating inputs: {e:#}")))),
                );
                continue;
            }
        };
        let scratch = case_dir.join("parity");
        let reference = match (
            &mut cpu,
            runners
                .iter_mut()
                .find(|r| r.config == ConfigId::OrtDisabled),
        ) {
            (Some(Ok(session)), _) => {
                let named: Vec<(&str, Tensor)> = inputs
                    .iter()
                    .map(|t| (t.name.as_str(), t.clone()))
                    .collect();
                session
                    .run(&named)
                    .map(|outs| outs.into_iter().map(|(name, t)| t.renamed(name)).collect())
                    .map_err(anyhow::Error::from)
            }
            (Some(Err(e)), _) => Err(anyhow::anyhow!("the CPU reference session: {e}")),
            (None, Some(r)) if r.error.is_none() => r.outputs(&inputs, &scratch),
            (None, _) => Err(anyhow::anyhow!(
                "the original without optimizations did not run"
            )),
        };
        let reference = match reference {
            Ok(outputs) => outputs,
            Err(e) => {
                out.extend(
                    runners
                        .iter()
                        .map(|r| record(r.config, Some(format!("reference: {e:#}")))),
                );
                continue;
            }
        };
        let real: Option<Vec<bool>> = (subject.text && padding != Padding::None).then(|| {
            (0..batch)
                .flat_map(|row| mask_row(padding, row, batch, spec.seq))
                .collect()
        });
        for runner in runners
            .iter_mut()
            .filter(|r| compare_original || r.config != ConfigId::OrtDisabled)
        {
            let mut entry = record(runner.config, None);
            if let Some(e) = &runner.error {
                entry.error = Some(format!("did not run: {e}"));
                out.push(entry);
                continue;
            }
            match runner.outputs(&inputs, &scratch) {
                Err(e) => entry.error = Some(format!("{e:#}")),
                Ok(outputs) => {
                    let (mut max_abs, mut max_real, mut top1) = (0.0f64, None::<f64>, None);
                    for (i, expected) in reference.iter().enumerate() {
                        let actual = outputs
                            .iter()
                            .find(|t| t.name == expected.name)
                            .or_else(|| outputs.get(i));
                        let Some(actual) = actual else {
                            entry.error = Some(format!("no output '{}'", expected.name));
                            break;
                        };
                        let c = compare_tensors(&expected.name, actual, expected, tolerance);
                        if let Some(problem) = c.problem {
                            entry.error = Some(format!("output '{}': {problem}", expected.name));
                            break;
                        }
                        max_abs = max_abs.max(c.max_abs);
                        if top1.is_none() {
                            top1 = c.top1_agreement;
                        }
                        if let Some(real) = &real
                            && let Some(m) = real_tokens_error(actual, expected, real, tolerance)
                        {
                            max_real = Some(max_real.map_or(m, |x| x.max(m)));
                        }
                    }
                    if entry.error.is_none() {
                        entry.max_abs = Some(max_abs);
                        entry.max_abs_real = max_real;
                        entry.top1_agreement = top1;
                    }
                }
            }
            out.push(entry);
        }
        progress.step(&format!(
            "{} {shape}: parity ({padding} padding)",
            subject.name
        ));
    }
    out
}

/// Max abs error over the real tokens of a `[batch, seq, ...]` output, `real` giving
/// `batch * seq` flags; `None` for outputs of another layout.
fn real_tokens_error(
    actual: &Tensor,
    expected: &Tensor,
    real: &[bool],
    tolerance: Tolerance,
) -> Option<f64> {
    if expected.dims.len() < 2 || actual.dims != expected.dims {
        return None;
    }
    let tokens = usize::try_from(expected.dims[0] * expected.dims[1]).ok()?;
    if tokens != real.len() || tokens == 0 {
        return None;
    }
    let (a, e) = (actual.to_f32_vec().ok()?, expected.to_f32_vec().ok()?);
    let width = e.len() / tokens;
    let pick = |v: &[f32]| -> Vec<f32> {
        v.chunks(width.max(1))
            .zip(real)
            .filter(|(_, keep)| **keep)
            .flat_map(|(c, _)| c.iter().copied())
            .collect()
    };
    let (a, e) = (pick(&a), pick(&e));
    let dims = vec![(e.len() / width.max(1)) as i64, width as i64];
    let c = compare_tensors(
        &expected.name,
        &Tensor::from_f32("a", dims.clone(), &a),
        &Tensor::from_f32("e", dims, &e),
        tolerance,
    );
    Some(c.max_abs)
}

/// The configurations profiled with `--profile`.
pub const PROFILED: [ConfigId; 4] = [
    ConfigId::OrtDisabled,
    ConfigId::OrtAll,
    ConfigId::Peer,
    ConfigId::Ours,
];

fn profile_case(
    case: &Case<'_>,
    inputs: &[Tensor],
    progress: &mut dyn Progress,
) -> Vec<ProfileResult> {
    let Case {
        runtime,
        subject,
        settings,
        dir: case_dir,
        shape,
    } = *case;
    let mut out = Vec::new();
    for config in PROFILED {
        let Some(Ok(file)) = subject.files.get(&config) else {
            continue;
        };
        let prefix = case_dir.join(format!("profile_{}", config.key()));
        let result = (|| -> Result<ProfileResult> {
            let options = session_options(settings, level_of(config)).profiling(&prefix);
            let mut session = Session::from_file(runtime, file, &options)?;
            let named: Vec<(&str, Tensor)> = inputs
                .iter()
                .map(|t| (t.name.as_str(), t.clone()))
                .collect();
            let prepared = session.prepare(&named)?;
            for _ in 0..settings.warmup.max(1) + settings.profile_runs {
                session.time_prepared(&prepared)?;
            }
            let path = session.end_profiling()?;
            let aggregated = profile::aggregate_file(&path, config, settings.profile_runs);
            let _ = std::fs::remove_file(&path);
            aggregated
        })();
        match result {
            Ok(p) => out.push(p),
            Err(e) => progress.warn(format!(
                "{} {shape}: the profile of {} failed: {e:#}",
                subject.name,
                config.key()
            )),
        }
        progress.step(&format!(
            "{} {shape}: profile {}",
            subject.name,
            config.key()
        ));
    }
    out
}
