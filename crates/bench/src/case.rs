//! What a case is (a model at one input shape, with its settings and scratch directory)
//! and the engines its configurations run on: ONNX Runtime sessions or the OpenVINO driver.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{
    ExecutionProvider, OptimizationLevel, OrtRuntime, PreparedInputs, Session, SessionOptions,
};

use super::python::OpenVino;
use super::results::ConfigId;

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
    pub fn start_engine(&self, config: ConfigId) -> Result<Engine> {
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

/// What runs a configuration.
pub enum Engine {
    Ort {
        session: Session,
        prepared: PreparedInputs,
    },
    OpenVino(OpenVino),
}

/// One configuration's engine and its samples (`None` for rounds it did not run).
pub struct Runner {
    pub config: ConfigId,
    pub engine: Engine,
    pub samples: Vec<Option<f64>>,
    pub error: Option<String>,
}

impl Runner {
    pub fn time(&mut self) -> Result<f64> {
        match &mut self.engine {
            Engine::Ort { session, prepared } => {
                Ok(session.time_prepared(prepared)?.as_secs_f64() * 1e3)
            }
            Engine::OpenVino(driver) => driver.time(),
        }
    }

    /// Times one run, recording a failure as the runner's error (`None` then, and for a
    /// runner that failed before).
    pub fn sample(&mut self) -> Option<f64> {
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

/// Writes `inputs` as `input_<i>.pb` files into `dir`.
pub fn write_inputs(inputs: &[Tensor], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, t) in inputs.iter().enumerate() {
        let path = dir.join(format!("input_{i}.pb"));
        t.save_pb(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
