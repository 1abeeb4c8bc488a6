//! CUDA execution provider settings, written out as the provider options ONNX Runtime
//! receives, so every result can record exactly what it ran with.

use std::fmt;
use std::str::FromStr;

use crate::ParseSettingError;

/// Settings of the CUDA execution provider beyond the device id (which
/// [`crate::ExecutionProvider::Cuda`] carries). Ignored on the CPU.
///
/// ```
/// use transfuse_ort::CudaOptions;
/// let options: CudaOptions = "tf32=off,graph=on".parse()?;
/// assert_eq!(options, CudaOptions { tf32: false, cuda_graph: true });
/// assert_eq!(options.to_string(), "use_tf32=0,enable_cuda_graph=1");
/// # Ok::<(), transfuse_ort::ParseSettingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CudaOptions {
    /// `use_tf32`: let float32 matrix products and convolutions use the TF32 tensor-core mode
    /// (ONNX Runtime's default: on).
    pub tf32: bool,
    /// `enable_cuda_graph`: capture the whole run in one CUDA graph and replay it. ONNX Runtime
    /// refuses it (at session creation or at the first run) when some node is not placed on
    /// the CUDA provider; a capture also needs inputs and outputs at fixed device addresses,
    /// which [`crate::Session::bind`] provides.
    pub cuda_graph: bool,
}

impl Default for CudaOptions {
    /// ONNX Runtime's defaults: TF32 on, no graph capture.
    fn default() -> Self {
        CudaOptions {
            tf32: true,
            cuda_graph: false,
        }
    }
}

impl CudaOptions {
    /// The provider options as ONNX Runtime names them, with the device id first.
    pub fn provider_options(&self, device_id: i32) -> Vec<(&'static str, String)> {
        vec![
            ("device_id", device_id.to_string()),
            ("use_tf32", u8::from(self.tf32).to_string()),
            ("enable_cuda_graph", u8::from(self.cuda_graph).to_string()),
        ]
    }
}

impl fmt::Display for CudaOptions {
    /// `use_tf32=1,enable_cuda_graph=0`, as ONNX Runtime's option names read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "use_tf32={},enable_cuda_graph={}",
            u8::from(self.tf32),
            u8::from(self.cuda_graph)
        )
    }
}

impl FromStr for CudaOptions {
    type Err = ParseSettingError;

    /// Parses comma-separated `key=value` pairs over the defaults. Keys: `tf32` (or
    /// `use_tf32`) and `graph` (or `cuda_graph`, `enable_cuda_graph`); values: `on`/`off`,
    /// `1`/`0`, `true`/`false`. An empty string gives the defaults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ParseSettingError::new(
                "CUDA option",
                s,
                "tf32=on|off, graph=on|off (comma separated)",
            )
        };
        let mut options = CudaOptions::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            let on = match value.trim().to_ascii_lowercase().as_str() {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                _ => return Err(bad()),
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "tf32" | "use_tf32" => options.tf32 = on,
                "graph" | "cuda_graph" | "enable_cuda_graph" => options.cuda_graph = on,
                _ => return Err(bad()),
            }
        }
        Ok(options)
    }
}

/// What ONNX Runtime said about a CUDA graph capture of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureReport {
    /// ONNX Runtime's warning that some shape computations stay on the CPU, verbatim ("This
    /// model has shape massaging nodes that will execute on CPU. Use the graph capture
    /// feature with caution..."): the replayed graph is then valid only while those CPU-side
    /// values do not change.
    pub cpu_shape_warning: Option<String>,
    /// Every warning or error ONNX Runtime logged for the session, verbatim.
    pub log: Vec<String>,
}

/// The marker of ONNX Runtime's CPU-shape warning under CUDA graph capture.
pub(crate) const CPU_SHAPE_MARKER: &str = "shape massaging nodes";

/// Whether an ONNX Runtime error message is a refusal of CUDA graph capture.
pub(crate) fn is_capture_refusal(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("graph capture") || lower.contains("cuda graph") || lower.contains("cudagraph")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_over_the_defaults() {
        assert_eq!("".parse::<CudaOptions>(), Ok(CudaOptions::default()));
        assert_eq!(
            "graph=on".parse::<CudaOptions>(),
            Ok(CudaOptions {
                tf32: true,
                cuda_graph: true
            })
        );
        assert_eq!(
            "use_tf32=0, enable_cuda_graph=true".parse::<CudaOptions>(),
            Ok(CudaOptions {
                tf32: false,
                cuda_graph: true
            })
        );
        for bad in ["tf32", "tf32=maybe", "fp16=on", "graph=on,,x=1"] {
            let err = bad.parse::<CudaOptions>().unwrap_err();
            assert!(err.to_string().contains("CUDA option"), "{bad}: {err}");
        }
    }

    #[test]
    fn options_are_recorded_under_onnx_runtime_names() {
        let options = CudaOptions {
            tf32: false,
            cuda_graph: true,
        };
        assert_eq!(
            options.provider_options(2),
            vec![
                ("device_id", "2".to_string()),
                ("use_tf32", "0".to_string()),
                ("enable_cuda_graph", "1".to_string()),
            ]
        );
        let printed = options.to_string();
        assert_eq!(printed, "use_tf32=0,enable_cuda_graph=1");
        assert_eq!(printed.parse::<CudaOptions>(), Ok(options));
    }

    #[test]
    fn capture_refusals_are_recognized() {
        assert!(is_capture_refusal(
            "This session cannot use the graph capture feature as requested by the user as all compute graph nodes have not been partitioned to the CUDA EP."
        ));
        assert!(!is_capture_refusal("Invalid input name: x"));
    }
}
