//! The raw results of one `cargo xtask bench` run, as written to (and read back from) JSON.
//!
//! One file holds one run: one machine, one execution provider, one thread count. Several
//! files (this machine's 2-thread run, the device machine's 16-thread and GPU runs) are merged
//! into the one published table.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of this file layout; bumped when a field changes meaning.
pub const SCHEMA: u32 = 1;

/// The configurations measured for each model, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigId {
    /// The original model, ONNX Runtime's graph optimizations disabled.
    OrtDisabled,
    /// The original model, ONNX Runtime's graph optimizations all on.
    OrtAll,
    /// ONNX Runtime's Python transformers optimizer (opt_level 0), then all on.
    Peer,
    /// transfuse with every fusion but attention, then all on.
    OursNoAttention,
    /// transfuse with every fusion, then all on.
    Ours,
    /// The original model in OpenVINO (CPU).
    Openvino,
}

impl ConfigId {
    /// Every configuration, in table order.
    pub const ALL: [ConfigId; 6] = [
        ConfigId::OrtDisabled,
        ConfigId::OrtAll,
        ConfigId::Peer,
        ConfigId::OursNoAttention,
        ConfigId::Ours,
        ConfigId::Openvino,
    ];

    /// Short key used in file names and JSON.
    pub fn key(self) -> &'static str {
        match self {
            ConfigId::OrtDisabled => "ort_disabled",
            ConfigId::OrtAll => "ort_all",
            ConfigId::Peer => "peer",
            ConfigId::OursNoAttention => "ours_no_attention",
            ConfigId::Ours => "ours",
            ConfigId::Openvino => "openvino",
        }
    }

    /// The row label in the published table (the original experiment's wording where it has one).
    pub fn label(self) -> &'static str {
        match self {
            ConfigId::OrtDisabled => "ONNX Runtime, no optimizations",
            ConfigId::OrtAll => "ONNX Runtime, its own graph optimizations (all)",
            ConfigId::Peer => "ONNX Runtime's Python optimizer (peer), then all",
            ConfigId::OursNoAttention => {
                "ONNX Runtime, all fusions except attention (transfuse), then all"
            }
            ConfigId::Ours => "ONNX Runtime, full fusion (transfuse), then all",
            ConfigId::Openvino => "OpenVINO",
        }
    }

    /// A short name for chart legends and ratio tables.
    pub fn short(self) -> &'static str {
        match self {
            ConfigId::OrtDisabled => "ORT, no opt.",
            ConfigId::OrtAll => "ORT all",
            ConfigId::Peer => "peer + ORT all",
            ConfigId::OursNoAttention => "transfuse -attention + ORT all",
            ConfigId::Ours => "transfuse + ORT all",
            ConfigId::Openvino => "OpenVINO",
        }
    }

    /// The optimized model this configuration runs, if it is not the original.
    pub fn optimizer(self) -> Option<OptimizerId> {
        match self {
            ConfigId::Peer => Some(OptimizerId::Peer),
            ConfigId::OursNoAttention => Some(OptimizerId::OursNoAttention),
            ConfigId::Ours => Some(OptimizerId::Ours),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The offline graph optimizers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerId {
    /// `python -m onnxruntime.transformers.optimizer`.
    Peer,
    /// `cargo xtask optimize --fusions all,-attention`.
    OursNoAttention,
    /// `cargo xtask optimize --fusions all`.
    Ours,
}

impl OptimizerId {
    /// Every optimizer, in table order.
    pub const ALL: [OptimizerId; 3] = [
        OptimizerId::Peer,
        OptimizerId::OursNoAttention,
        OptimizerId::Ours,
    ];

    /// Short key used in file names and JSON.
    pub fn key(self) -> &'static str {
        match self {
            OptimizerId::Peer => "peer",
            OptimizerId::OursNoAttention => "ours_no_attention",
            OptimizerId::Ours => "ours",
        }
    }

    /// The name shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            OptimizerId::Peer => "ORT Python optimizer (peer)",
            OptimizerId::OursNoAttention => "transfuse all,-attention",
            OptimizerId::Ours => "transfuse all",
        }
    }
}

/// One benchmark run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRun {
    /// [`SCHEMA`].
    pub schema: u32,
    /// When the run started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started_utc: String,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// The machine it ran on.
    pub machine: Machine,
    /// ONNX Runtime's version as the loaded library reports it.
    pub ort_version: String,
    /// ONNX Runtime's build information string.
    pub ort_build: String,
    /// `cpu` or `cuda`.
    pub provider: String,
    /// ONNX Runtime intra-op threads (and OpenVINO inference threads).
    pub threads: usize,
    /// Timed rounds per case (each round runs every configuration once).
    pub rounds: usize,
    /// Untimed runs of each configuration before the first round.
    pub warmup: usize,
    /// The peer optimizer's Python and its onnxruntime version, or why it is unavailable.
    pub peer: Tool,
    /// OpenVINO's version, or why it is unavailable.
    pub openvino: Tool,
    /// Per model: its optimizers and its cases.
    pub models: Vec<ModelResult>,
    /// Anything a reader of the numbers must know (skipped parts, failures).
    pub notes: Vec<String>,
}

/// What a run was measured on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs the OS reports.
    pub logical_cpus: usize,
    /// The GPU's name (nvidia-smi), for CUDA runs.
    pub gpu: Option<String>,
    /// 1/5/15-minute load averages when the run started.
    pub load_start: [f64; 3],
    /// 1/5/15-minute load averages when it ended.
    pub load_end: [f64; 3],
    /// The host's name.
    pub hostname: String,
}

/// An external tool: its version, or why it could not be used.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tool {
    /// The Python interpreter used.
    pub python: Option<String>,
    /// The tool's version when available.
    pub version: Option<String>,
    /// Why it is unavailable, when it is.
    pub unavailable: Option<String>,
}

impl Tool {
    /// A tool that cannot be used, and why.
    pub fn unavailable(python: Option<String>, why: impl Into<String>) -> Tool {
        let unavailable = Some(why.into());
        Tool {
            python,
            version: None,
            unavailable,
        }
    }

    /// A tool found by a probe that printed its version, or failed.
    pub fn probed(python: Option<String>, version: anyhow::Result<String>) -> Tool {
        match version {
            Ok(v) => Tool {
                python,
                version: Some(v),
                unavailable: None,
            },
            Err(e) => Tool::unavailable(python, format!("{e:#}")),
        }
    }
}

/// One model file: its optimizations and the input shapes it was timed at.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelResult {
    /// The model's name (`bert_eager_ts_op14`).
    pub name: String,
    /// `text` or `vision`.
    pub family: String,
    /// Node count of the original graph.
    pub nodes: usize,
    /// Each offline optimizer's outcome on this model.
    pub optimizers: Vec<OptimizerResult>,
    /// Each timed input shape.
    pub cases: Vec<CaseResult>,
}

/// One optimizer run (or a cached one) on one model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OptimizerResult {
    /// Which optimizer.
    pub optimizer: OptimizerId,
    /// The command line it ran.
    pub command: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Wall time of each whole-process run, ms.
    pub wall_ms: Vec<f64>,
    /// True when the optimized model and its times were reused from an earlier run with the
    /// same input and the same optimizer.
    pub cached: bool,
    /// Node count of the optimized graph.
    pub nodes: usize,
    /// Op histogram of the optimized graph (domain-qualified for non-ONNX domains).
    pub histogram: BTreeMap<String, usize>,
}

impl OptimizerResult {
    /// The fastest wall time, ms.
    pub fn min_wall_ms(&self) -> Option<f64> {
        self.wall_ms.iter().copied().reduce(f64::min)
    }

    /// How many nodes of a fused op type (any domain) the optimized graph holds.
    pub fn fused(&self, op: &str) -> usize {
        self.histogram
            .iter()
            .filter(|(k, _)| k.as_str() == op || k.rsplit('.').next() == Some(op))
            .map(|(_, v)| *v)
            .sum()
    }
}

/// One timed input shape of a model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    /// `seq 128`, `224x224`.
    pub shape: String,
    /// Batch size of the timed runs.
    pub batch: usize,
    /// Sequence length, for text models.
    pub seq: Option<usize>,
    /// Latency of each configuration.
    pub latency: Vec<Latency>,
    /// Per-round latency ratios of chosen pairs of configurations.
    pub ratios: Vec<Ratio>,
    /// Output agreement of each configuration with the original (ONNX Runtime, no optimizations).
    pub parity: Vec<Parity>,
    /// Per-op-type kernel time, when `--profile` was given.
    pub profile: Vec<ProfileResult>,
    /// The 1-minute load average when the case's timed rounds ended (it includes the
    /// benchmark's own threads).
    #[serde(default)]
    pub load_after: Option<f64>,
}

/// Latency of one configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    /// Which configuration.
    pub config: ConfigId,
    /// Why it was not measured, if it was not.
    pub error: Option<String>,
    /// Session creation (model load and ONNX Runtime's own optimizations), ms.
    pub load_ms: Option<f64>,
    /// Fastest timed run, ms.
    pub min_ms: Option<f64>,
    /// Median timed run, ms.
    pub median_ms: Option<f64>,
    /// Every timed run in round order, ms.
    pub samples_ms: Vec<f64>,
}

/// Distribution of the per-round ratio `numerator / denominator` (both measured in the same
/// round, so slow phases of a noisy machine hit both).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ratio {
    /// The configuration on top.
    pub numerator: ConfigId,
    /// The configuration below.
    pub denominator: ConfigId,
    /// Rounds in which both ran.
    pub rounds: usize,
    /// Median of the per-round ratios.
    pub median: f64,
    /// 25th percentile.
    pub p25: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Smallest per-round ratio.
    pub min: f64,
    /// Largest per-round ratio.
    pub max: f64,
    /// Ratio of the two medians (not per round).
    pub of_medians: f64,
}

/// Output agreement of one configuration with the original.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parity {
    /// Which configuration.
    pub config: ConfigId,
    /// Padding pattern of the attention mask (`none`, `left`, `right`), for text models.
    pub padding: String,
    /// Batch size of the parity inputs.
    pub batch: usize,
    /// Why it could not be compared, if it could not.
    pub error: Option<String>,
    /// Largest absolute difference from the original's outputs, over every element.
    pub max_abs: Option<f64>,
    /// The same over real tokens only (mask 1), for text models: padded positions carry no
    /// meaning, and a wrong mask shows on the real ones.
    pub max_abs_real: Option<f64>,
    /// Fraction of rows whose arg-max class equals the original's (classification outputs).
    pub top1_agreement: Option<f64>,
}

/// ONNX Runtime's per-node profile of one configuration, aggregated by op type.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileResult {
    /// Which configuration.
    pub config: ConfigId,
    /// Profiled runs (after warm-up) the totals are averaged over.
    pub runs: usize,
    /// Sum of all kernel times per run, ms.
    pub kernel_ms: f64,
    /// Wall time of a run as the profiler saw it (`model_run`), ms, averaged.
    pub run_ms: f64,
    /// Kernel time per run of each op type, ms.
    pub by_op: BTreeMap<String, f64>,
    /// Nodes of each op type that ran (in one run).
    pub nodes_by_op: BTreeMap<String, usize>,
}

impl ModelResult {
    /// The result of optimizer `id`, when it ran without error.
    pub fn optimized_by(&self, id: OptimizerId) -> Option<&OptimizerResult> {
        let ok = |o: &&OptimizerResult| o.optimizer == id && o.error.is_none();
        self.optimizers.iter().find(ok)
    }
}

impl CaseResult {
    /// The median latency of `config`, when it has one.
    pub fn median_ms(&self, config: ConfigId) -> Option<f64> {
        let latency = self.latency.iter().find(|l| l.config == config)?;
        latency.median_ms
    }

    /// The ratio of transfuse (all fusions) to `den`, when both ran.
    pub fn ours_vs(&self, den: ConfigId) -> Option<&Ratio> {
        let ours = |r: &&Ratio| r.numerator == ConfigId::Ours && r.denominator == den;
        self.ratios.iter().find(ours)
    }
}

impl Parity {
    /// The error a table shows: over the real tokens for a padded text batch, else over all.
    pub fn shown_error(&self, text: bool) -> Option<f64> {
        if text && self.padding != "none" {
            self.max_abs_real
        } else {
            self.max_abs
        }
    }
}

impl BenchRun {
    /// A column heading for this run: provider, threads and machine.
    pub fn column(&self) -> String {
        if self.provider == "cpu" {
            format!("CPU, {} threads", self.threads)
        } else {
            match &self.machine.gpu {
                Some(gpu) => format!("GPU ({gpu})"),
                None => format!("GPU ({})", self.provider),
            }
        }
    }
}
