//! Sessions: a model loaded into ONNX Runtime, run on IR tensors.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ort::session::{Session as OrtSession, SessionInputValue, builder::SessionBuilder};
use ort::value::DynValue;
use transfuse_ir::Tensor;

use crate::convert::{from_ort_value, to_ort_value};
use crate::cuda::{CPU_SHAPE_MARKER, is_capture_refusal};
use crate::{
    CaptureReport, CudaOptions, ExecutionProvider, OrtError, OrtRuntime, Result, SessionOptions,
};

/// A model loaded into ONNX Runtime.
///
/// ```no_run
/// use transfuse_ir::Tensor;
/// use transfuse_ort::{OrtRuntime, Session, SessionOptions};
/// let runtime = OrtRuntime::init("target/onnxruntime/libonnxruntime.so.1.31.1")?;
/// let mut session = Session::from_file(runtime, "model.onnx", &SessionOptions::default())?;
/// let ids = Tensor::from_i64("input_ids", vec![1, 4], &[101, 7, 8, 102]);
/// let mask = Tensor::from_i64("attention_mask", vec![1, 4], &[1, 1, 1, 1]);
/// let outputs = session.run(&[("input_ids", ids), ("attention_mask", mask)])?;
/// for (name, tensor) in &outputs {
///     println!("{name}: {:?}", tensor.dims);
/// }
/// # Ok::<(), transfuse_ort::OrtError>(())
/// ```
#[derive(Debug)]
pub struct Session {
    pub(crate) inner: OrtSession,
    input_names: Vec<String>,
    output_names: Vec<String>,
    profiling: bool,
    pub(crate) provider: ExecutionProvider,
    pub(crate) cuda: CudaOptions,
    /// ONNX Runtime's warnings and errors for this session (CUDA sessions only; on the CPU its
    /// default logger prints them as before).
    log: Option<SessionLog>,
}

type SessionLog = Arc<Mutex<Vec<String>>>;

/// Inputs converted once into ONNX Runtime values, to be run many times without paying for
/// the conversion each time (see [`Session::prepare`]).
#[derive(Debug)]
pub struct PreparedInputs {
    pub(crate) values: Vec<(String, DynValue)>,
}

impl PreparedInputs {
    /// The input names, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(n, _)| n.as_str())
    }
}

/// The outputs of one run and how long ONNX Runtime took to compute them.
#[derive(Debug)]
pub struct TimedRun {
    /// The model's outputs, in the model's output order.
    pub outputs: Vec<(String, Tensor)>,
    /// Wall time of the inference call alone: no input conversion, no output copies.
    pub elapsed: Duration,
}

impl Session {
    /// Loads the model file at `path`. External data files are found next to it.
    pub fn from_file(
        runtime: &OrtRuntime,
        path: impl AsRef<Path>,
        options: &SessionOptions,
    ) -> Result<Session> {
        let path = path.as_ref();
        let model = format!("'{}'", path.display());
        if !path.is_file() {
            return Err(OrtError::CreateSession {
                model,
                message: "no such file".into(),
            });
        }
        let (mut builder, log) = configure(runtime, options)?;
        let session = builder
            .commit_from_file(path)
            .map_err(|e| creation_error(options, model, e.to_string()))?;
        Ok(Session::wrap(session, options, log))
    }

    /// Loads a model from its serialized bytes (for example [`transfuse_ir::Model::to_bytes`]).
    /// The model must hold all its weights inline.
    pub fn from_bytes(
        runtime: &OrtRuntime,
        bytes: &[u8],
        options: &SessionOptions,
    ) -> Result<Session> {
        let (mut builder, log) = configure(runtime, options)?;
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| creation_error(options, "(from memory)".into(), e.to_string()))?;
        Ok(Session::wrap(session, options, log))
    }

    fn wrap(inner: OrtSession, options: &SessionOptions, log: Option<SessionLog>) -> Session {
        let input_names = inner
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let output_names = inner
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        Session {
            inner,
            input_names,
            output_names,
            profiling: options.profiling_prefix.is_some(),
            provider: options.execution_provider,
            cuda: options.cuda,
            log,
        }
    }

    /// What ONNX Runtime has logged for this session so far (CUDA sessions; empty on the
    /// CPU), and its CPU-shape warning under CUDA graph capture if it gave one. Read it after
    /// [`Session::bind`], which makes the first run (when a capture is decided).
    pub fn capture_report(&self) -> CaptureReport {
        let log = self.log.as_ref().map_or_else(Vec::new, |log| {
            log.lock().unwrap_or_else(PoisonError::into_inner).clone()
        });
        CaptureReport {
            cpu_shape_warning: log.iter().find(|m| m.contains(CPU_SHAPE_MARKER)).cloned(),
            log,
        }
    }

    /// The model's input names, in order.
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    /// The model's output names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Converts `inputs` (name and tensor) into ONNX Runtime values. Every model input must be
    /// given exactly once; unknown names are an error. The tensors' own `name` fields are
    /// ignored.
    pub fn prepare<S: AsRef<str>>(&self, inputs: &[(S, Tensor)]) -> Result<PreparedInputs> {
        for (name, _) in inputs {
            let name = name.as_ref();
            if !self.input_names.iter().any(|n| n == name) {
                return Err(OrtError::UnknownInput {
                    name: name.to_string(),
                    expected: self.input_names.join(", "),
                });
            }
        }
        for expected in &self.input_names {
            if !inputs.iter().any(|(n, _)| n.as_ref() == expected) {
                return Err(OrtError::MissingInput {
                    name: expected.clone(),
                });
            }
        }
        let values = inputs
            .iter()
            .map(|(name, tensor)| {
                Ok((
                    name.as_ref().to_string(),
                    to_ort_value(name.as_ref(), tensor)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedInputs { values })
    }

    /// Runs the model on prepared inputs; returns the outputs (in the model's output order)
    /// and the time of the inference call alone.
    pub fn run_prepared(&mut self, inputs: &PreparedInputs) -> Result<TimedRun> {
        let feed: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = inputs
            .values
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), SessionInputValue::from(value)))
            .collect();
        let start = Instant::now();
        let results = self
            .inner
            .run(feed)
            .map_err(|e| OrtError::Run(e.to_string()))?;
        let elapsed = start.elapsed();
        let mut outputs = Vec::with_capacity(results.len());
        for (name, value) in results {
            let tensor = from_ort_value(name, &value)?;
            outputs.push((name.to_string(), tensor));
        }
        Ok(TimedRun { outputs, elapsed })
    }

    /// Runs the model on prepared inputs and returns only the time of the inference call
    /// (outputs are computed, then dropped without being copied): the primitive of benchmarks.
    pub fn time_prepared(&mut self, inputs: &PreparedInputs) -> Result<Duration> {
        let feed: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = inputs
            .values
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), SessionInputValue::from(value)))
            .collect();
        let start = Instant::now();
        let results = self
            .inner
            .run(feed)
            .map_err(|e| OrtError::Run(e.to_string()))?;
        let elapsed = start.elapsed();
        drop(results);
        Ok(elapsed)
    }

    /// Runs the model: `inputs` are (input name, tensor) pairs; returns (output name, tensor)
    /// pairs in the model's output order, each tensor named after its output.
    pub fn run<S: AsRef<str>>(&mut self, inputs: &[(S, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        Ok(self.run_timed(inputs)?.outputs)
    }

    /// [`Session::run`], also reporting the time of the inference call alone.
    pub fn run_timed<S: AsRef<str>>(&mut self, inputs: &[(S, Tensor)]) -> Result<TimedRun> {
        let prepared = self.prepare(inputs)?;
        self.run_prepared(&prepared)
    }

    /// Ends profiling and returns the path of the JSON profile ONNX Runtime wrote (Chrome
    /// trace format: one event per node run, with `op_name` and `dur` in microseconds). Errors
    /// when the session was created without [`SessionOptions::profiling`].
    pub fn end_profiling(&mut self) -> Result<PathBuf> {
        if !self.profiling {
            return Err(OrtError::Profiling(
                "the session was created without profiling enabled".into(),
            ));
        }
        self.profiling = false;
        let file = self
            .inner
            .end_profiling()
            .map_err(|e| OrtError::Profiling(e.to_string()))?;
        Ok(PathBuf::from(file))
    }
}

/// A session creation error; a refused CUDA graph capture gets its own variant.
fn creation_error(options: &SessionOptions, model: String, message: String) -> OrtError {
    let cuda = matches!(options.execution_provider, ExecutionProvider::Cuda { .. });
    if cuda && options.cuda.cuda_graph && is_capture_refusal(&message) {
        OrtError::GraphCaptureRefused {
            stage: "session creation",
            message,
        }
    } else {
        OrtError::CreateSession { model, message }
    }
}

fn configure(
    runtime: &OrtRuntime,
    options: &SessionOptions,
) -> Result<(SessionBuilder, Option<SessionLog>)> {
    let config = |setting: &'static str| {
        move |e: ort::Error<SessionBuilder>| OrtError::Configure {
            setting,
            message: e.to_string(),
        }
    };
    let mut builder = OrtSession::builder(runtime.environment())
        .map_err(|e| OrtError::Configure {
            setting: "session options",
            message: e.to_string(),
        })?
        .with_optimization_level(options.optimization_level.to_ort())
        .map_err(config("the optimization level"))?;
    if let Some(threads) = options.intra_op_threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(config("the intra-op thread count"))?;
    }
    if let Some(prefix) = &options.profiling_prefix {
        builder = builder
            .with_profiling(prefix)
            .map_err(config("profiling"))?;
    }
    let mut log = None;
    match options.execution_provider {
        ExecutionProvider::Cpu => {}
        ExecutionProvider::Cuda { device_id } => {
            let (with_logger, kept) = capture_log(builder)?;
            builder = with_cuda(with_logger, device_id, options.cuda)?;
            log = Some(kept);
        }
    }
    Ok((builder, log))
}

/// Routes the session's ONNX Runtime log (warnings and worse) into a buffer, also printing
/// each line on stderr as ONNX Runtime's default logger would.
fn capture_log(builder: SessionBuilder) -> Result<(SessionBuilder, SessionLog)> {
    use ort::logging::LogLevel;
    let log: SessionLog = Arc::default();
    let sink = Arc::clone(&log);
    let logger = Arc::new(
        move |level: LogLevel, category: &str, _id: &str, location: &str, message: &str| {
            if level < LogLevel::Warning {
                return;
            }
            eprintln!("onnxruntime {level:?} [{category}] {location}: {message}");
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(message.to_string());
        },
    );
    let failed = |e: ort::Error<SessionBuilder>| OrtError::Configure {
        setting: "the session logger",
        message: e.to_string(),
    };
    let builder = builder.with_log_level(LogLevel::Warning).map_err(failed)?;
    let builder = builder.with_logger(logger).map_err(failed)?;
    Ok((builder, log))
}

#[cfg(feature = "cuda")]
fn with_cuda(builder: SessionBuilder, device_id: i32, cuda: CudaOptions) -> Result<SessionBuilder> {
    let provider = ort::ep::CUDA::default()
        .with_device_id(device_id)
        .with_tf32(cuda.tf32)
        .with_cuda_graph(cuda.cuda_graph)
        .build()
        .error_on_failure();
    builder
        .with_execution_providers([provider])
        .map_err(|e| OrtError::Configure {
            setting: "the CUDA execution provider",
            message: e.to_string(),
        })
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _builder: SessionBuilder,
    _device_id: i32,
    _cuda: CudaOptions,
) -> Result<SessionBuilder> {
    Err(OrtError::ProviderNotCompiled {
        provider: "CUDA",
        feature: "cuda",
    })
}
