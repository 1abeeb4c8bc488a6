//! Session settings: graph optimization level, threads, execution provider, profiling.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::CudaOptions;

/// How much ONNX Runtime rewrites the graph itself when it creates a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptimizationLevel {
    /// No graph optimizations: the model runs as written.
    #[default]
    Disabled,
    /// Constant folding and redundant-node elimination (ONNX Runtime's level 1).
    Basic,
    /// Basic plus ONNX Runtime's own operator fusions (level 2).
    Extended,
    /// Everything, including layout optimizations (level 99).
    All,
}

impl OptimizationLevel {
    /// Every level, from none to all.
    pub const ALL_LEVELS: [OptimizationLevel; 4] = [
        OptimizationLevel::Disabled,
        OptimizationLevel::Basic,
        OptimizationLevel::Extended,
        OptimizationLevel::All,
    ];

    /// The level's name as written on command lines: `disabled`, `basic`, `extended`, `all`.
    pub fn name(self) -> &'static str {
        match self {
            OptimizationLevel::Disabled => "disabled",
            OptimizationLevel::Basic => "basic",
            OptimizationLevel::Extended => "extended",
            OptimizationLevel::All => "all",
        }
    }

    pub(crate) fn to_ort(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as L;
        match self {
            OptimizationLevel::Disabled => L::Disable,
            OptimizationLevel::Basic => L::Level1,
            OptimizationLevel::Extended => L::Level2,
            OptimizationLevel::All => L::All,
        }
    }
}

impl fmt::Display for OptimizationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no optimization level or execution provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{given}' (expected one of: {expected})")]
pub struct ParseSettingError {
    kind: &'static str,
    given: String,
    expected: &'static str,
}

impl ParseSettingError {
    pub(crate) fn new(kind: &'static str, given: &str, expected: &'static str) -> Self {
        ParseSettingError {
            kind,
            given: given.to_string(),
            expected,
        }
    }
}

impl FromStr for OptimizationLevel {
    type Err = ParseSettingError;

    /// Parses `disabled` (or `none`), `basic`, `extended`, `all`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" | "disable" | "none" => Ok(OptimizationLevel::Disabled),
            "basic" => Ok(OptimizationLevel::Basic),
            "extended" => Ok(OptimizationLevel::Extended),
            "all" => Ok(OptimizationLevel::All),
            _ => Err(ParseSettingError {
                kind: "optimization level",
                given: s.to_string(),
                expected: "disabled, basic, extended, all",
            }),
        }
    }
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU kernels.
    #[default]
    Cpu,
    /// NVIDIA GPUs through CUDA. Needs this crate's `cuda` feature and an ONNX Runtime
    /// library built with CUDA; without them, creating a session fails with a clear error
    /// rather than silently running on the CPU.
    Cuda {
        /// The GPU to use.
        device_id: i32,
    },
}

impl ExecutionProvider {
    /// The provider's name as written on command lines: `cpu`, `cuda`, `cuda:1`.
    pub fn name(self) -> String {
        match self {
            ExecutionProvider::Cpu => "cpu".into(),
            ExecutionProvider::Cuda { device_id: 0 } => "cuda".into(),
            ExecutionProvider::Cuda { device_id } => format!("cuda:{device_id}"),
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for ExecutionProvider {
    type Err = ParseSettingError;

    /// Parses `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseSettingError {
            kind: "execution provider",
            given: s.to_string(),
            expected: "cpu, cuda, cuda:N",
        };
        let lower = s.to_ascii_lowercase();
        match lower.split_once(':') {
            None if lower == "cpu" => Ok(ExecutionProvider::Cpu),
            None if lower == "cuda" => Ok(ExecutionProvider::Cuda { device_id: 0 }),
            Some(("cuda", id)) => id
                .parse()
                .map(|device_id| ExecutionProvider::Cuda { device_id })
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Settings of a [`crate::Session`].
///
/// ```
/// use transfuse_ort::{OptimizationLevel, SessionOptions};
/// let options = SessionOptions::default().optimization_level(OptimizationLevel::All).intra_op_threads(2);
/// assert_eq!(options.intra_op_threads, Some(2));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// ONNX Runtime's own graph optimizations (default: disabled, so a model runs as written).
    pub optimization_level: OptimizationLevel,
    /// Threads used inside one operator; `None` leaves ONNX Runtime's default (one per
    /// physical core).
    pub intra_op_threads: Option<usize>,
    /// Where the model runs (default: CPU).
    pub execution_provider: ExecutionProvider,
    /// TF32 and CUDA graph capture of the CUDA provider (ignored on the CPU).
    pub cuda: CudaOptions,
    /// When set, ONNX Runtime records every node's execution time; the profile is written
    /// as `<prefix>_<timestamp>.json` when [`crate::Session::end_profiling`] is called.
    pub profiling_prefix: Option<PathBuf>,
}

impl SessionOptions {
    /// Sets the graph optimization level.
    pub fn optimization_level(mut self, level: OptimizationLevel) -> Self {
        self.optimization_level = level;
        self
    }

    /// Sets the number of intra-op threads.
    pub fn intra_op_threads(mut self, threads: usize) -> Self {
        self.intra_op_threads = Some(threads);
        self
    }

    /// Sets the execution provider.
    pub fn execution_provider(mut self, provider: ExecutionProvider) -> Self {
        self.execution_provider = provider;
        self
    }

    /// Sets the CUDA provider's TF32 and graph-capture options.
    pub fn cuda_options(mut self, cuda: CudaOptions) -> Self {
        self.cuda = cuda;
        self
    }

    /// The execution provider and, for CUDA, its options as ONNX Runtime names them: what a
    /// result records about where it ran (`cuda device_id=0,use_tf32=1,enable_cuda_graph=0`).
    pub fn provider_description(&self) -> String {
        match self.execution_provider {
            ExecutionProvider::Cpu => "cpu".into(),
            ExecutionProvider::Cuda { device_id } => {
                let options: Vec<String> = self
                    .cuda
                    .provider_options(device_id)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("cuda {}", options.join(","))
            }
        }
    }

    /// Enables per-node profiling into files starting with `prefix`.
    pub fn profiling(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.profiling_prefix = Some(prefix.into());
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn optimization_levels_parse_and_print() {
        for level in OptimizationLevel::ALL_LEVELS {
            assert_eq!(level.name().parse::<OptimizationLevel>(), Ok(level));
        }
        assert_eq!(
            "NONE".parse::<OptimizationLevel>(),
            Ok(OptimizationLevel::Disabled)
        );
        let err = "fast".parse::<OptimizationLevel>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown optimization level 'fast' (expected one of: disabled, basic, extended, all)"
        );
    }

    #[test]
    fn execution_providers_parse_and_print() {
        assert_eq!(
            "cpu".parse::<ExecutionProvider>(),
            Ok(ExecutionProvider::Cpu)
        );
        assert_eq!(
            "cuda".parse::<ExecutionProvider>(),
            Ok(ExecutionProvider::Cuda { device_id: 0 })
        );
        assert_eq!(
            "cuda:3".parse::<ExecutionProvider>(),
            Ok(ExecutionProvider::Cuda { device_id: 3 })
        );
        assert_eq!(
            ExecutionProvider::Cuda { device_id: 3 }.to_string(),
            "cuda:3"
        );
        assert!("cuda:x".parse::<ExecutionProvider>().is_err());
        let options = SessionOptions::default()
            .execution_provider("cuda:1".parse().unwrap())
            .cuda_options("graph=on,tf32=off".parse().unwrap());
        assert_eq!(
            options.provider_description(),
            "cuda device_id=1,use_tf32=0,enable_cuda_graph=1"
        );
        assert_eq!(SessionOptions::default().provider_description(), "cpu");
        assert!("tpu".parse::<ExecutionProvider>().is_err());
    }
}
