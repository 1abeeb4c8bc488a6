//! `cargo xtask bench --device cuda`: the GPU table. For every model and shape it times, in
//! one process on one card, ONNX Runtime on the original (raw), the peer's GPU optimization and
//! ours (also with `--fix-shapes` and `--float16` where the `transfuse` binary has them), each
//! with TF32 off and on and with CUDA graph capture off and on, inputs and outputs bound on the
//! device ([`transfuse_ort::Session::bind`]); fp16 variants: the peer's own conversion, ONNX
//! Runtime's `convert_float_to_float16` of the original, and ours. PyTorch rows come from
//! `xtask/python/torch_bench.py`. A refused capture, and ONNX Runtime's warning that shape
//! computations run on the CPU under a capture, are recorded verbatim with the row.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use transfuse_ir::Model;
use transfuse_ort::{
    CudaOptions, ExecutionProvider, OptimizationLevel, OrtError, OrtRuntime, Session,
    SessionOptions,
};
use transfuse_parity::{InputSpec, Padding, generate_inputs};

use super::args::{Args, is_text, resolve_models};
use super::gpu_report::render;
use super::python::last_line;
use super::system::{gpu_name, median, min, utc_now};
use crate::paths;

/// Options of the GPU table (`--device cuda`).
#[derive(Debug, Clone, clap::Args)]
pub struct GpuArgs {
    /// `cuda` or `cuda:N`: measure the GPU table instead of the CPU latency table.
    #[arg(long)]
    pub device: Option<ExecutionProvider>,
    /// Timed runs per GPU configuration (each bound on the device, batch 1).
    #[arg(long, default_value_t = 300)]
    pub gpu_runs: usize,
    /// Untimed runs per GPU configuration before timing (after the binding's first run).
    #[arg(long, default_value_t = 30)]
    pub gpu_warmup: usize,
    /// PyTorch rows: `cuda`, `cpu` (at --threads), both, or `none`.
    #[arg(long, value_delimiter = ',', default_value = "cuda")]
    pub torch: Vec<String>,
    /// PyTorch cases (`bert:32,bert:128,vit`).
    #[arg(long, default_value = "bert:32,bert:128,vit")]
    pub torch_cases: String,
    /// Only the PyTorch rows (no ONNX Runtime rows).
    #[arg(long)]
    pub torch_only: bool,
    /// The `transfuse` binary (default: beside this program).
    #[arg(long)]
    pub transfuse: Option<PathBuf>,
    /// The directory of the Python scripts (default: xtask/python).
    #[arg(long)]
    pub scripts: Option<PathBuf>,
}

/// The variants in the order of the table.
const VARIANTS: [&str; 8] = [
    "raw",
    "peer",
    "ours",
    "ours-fixed",
    "raw-fp16",
    "peer-fp16",
    "ours-fp16",
    "ours-fixed-fp16",
];

/// One run of the GPU table (the JSON written with `--json`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GpuRun {
    pub started_utc: String,
    pub card: Option<String>,
    pub driver: Option<String>,
    pub ort_version: String,
    pub runs: usize,
    pub warmup: usize,
    /// `transfuse optimize` flags the binary had (`--fix-shapes`, `--float16`).
    pub transfuse_flags: Vec<String>,
    pub rows: Vec<GpuRow>,
    /// PyTorch's own JSON, one per device (`device`, `machine`, `rows`).
    pub torch: Vec<serde_json::Value>,
    pub notes: Vec<String>,
}

/// One ONNX Runtime configuration of one case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GpuRow {
    pub model: String,
    pub shape: String,
    /// `raw`, `peer`, `ours`, `ours-fixed`, and each with `-fp16`.
    pub variant: String,
    /// The provider and its options as ONNX Runtime names them.
    pub provider: String,
    pub tf32: bool,
    pub cuda_graph: bool,
    pub median_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub runs: usize,
    /// Why the variant has no model (a tool failed, a flag is missing from this build).
    pub unavailable: Option<String>,
    /// ONNX Runtime's refusal of the CUDA graph capture, verbatim.
    pub capture_refused: Option<String>,
    /// ONNX Runtime's warning that shape computations run on the CPU under the capture.
    pub cpu_shape_warning: Option<String>,
    pub error: Option<String>,
}

/// Runs the GPU table, or with `--render-only` renders earlier GPU runs (`--merge`).
pub fn run(args: &Args) -> Result<()> {
    let markdown = args
        .markdown
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("bench").join("gpu.md"));
    let mut runs = Vec::new();
    for path in &args.merge {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        runs.push(
            serde_json::from_str::<GpuRun>(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    if !args.render_only {
        let json = args
            .json
            .clone()
            .unwrap_or_else(|| paths::target_dir().join("bench").join("gpu.json"));
        let run = measure(args, &json)?;
        eprintln!("raw results: {}", json.display());
        runs.insert(0, run);
    }
    if runs.is_empty() {
        bail!("--render-only needs GPU result files given with --merge");
    }
    let page = render(&runs, &args.note);
    if let Some(dir) = markdown.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&markdown, &page).with_context(|| format!("writing {}", markdown.display()))?;
    println!("{page}");
    eprintln!("GPU table: {}", markdown.display());
    Ok(())
}

/// The GPU table of the saved GPU runs (`xtask/bench/results/gpu/*.json`, in file name
/// order) for the published page; empty when there are none.
pub fn saved_section() -> Result<String> {
    let dir = super::publish::saved_results_dir().join("gpu");
    let runs: Vec<GpuRun> = super::publish::json_files(&dir)
        .iter()
        .map(|f| super::publish::read_json(f, "a GPU result file"))
        .collect::<Result<_>>()?;
    let torch: Vec<serde_json::Value> = runs.iter().flat_map(|r| r.torch.clone()).collect();
    let followups = super::gpu_followup::saved_section(&dir, &torch)?;
    Ok(if runs.is_empty() {
        followups
    } else {
        let pointer = if followups.is_empty() {
            vec![]
        } else {
            vec![
                "The follow-up runs below measure later code on the same machine type; where they \
                 cover an export, they supersede its rows above (each run's note says what \
                 changed)."
                    .to_string(),
            ]
        };
        format!("\n{}{followups}", render(&runs, &pointer))
    })
}

fn save(run: &GpuRun, json: &Path) -> Result<()> {
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(json, serde_json::to_string_pretty(run)?)
        .with_context(|| format!("writing {}", json.display()))
}

fn measure(args: &Args, json: &Path) -> Result<GpuRun> {
    let gpu = &args.gpu;
    let device_id = match gpu.device {
        Some(ExecutionProvider::Cuda { device_id }) => device_id,
        _ => bail!("--device takes cuda or cuda:N"),
    };
    let scripts = gpu
        .scripts
        .clone()
        .unwrap_or_else(|| paths::root().join("xtask").join("python"));
    let python = args
        .peer_python
        .clone()
        .unwrap_or_else(|| PathBuf::from("python3"));
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("bench"))
        .join("gpu");
    let mut run = GpuRun {
        started_utc: utc_now(),
        card: gpu_name(),
        driver: nvidia_smi("driver_version"),
        runs: gpu.gpu_runs.max(1),
        warmup: gpu.gpu_warmup,
        ..GpuRun::default()
    };
    if !gpu.torch_only {
        let runtime = transfuse_ort::OrtRuntime::locate()?;
        run.ort_version = runtime.version().unwrap_or_else(|| "unknown".into());
        let transfuse = gpu.transfuse.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("transfuse")))
                .unwrap_or_else(|| PathBuf::from("transfuse"))
        });
        for spec in resolve_models(args)? {
            let model = Model::load(&spec.path)
                .with_context(|| format!("loading {}", spec.path.display()))?;
            let text = is_text(&model);
            let seqs: Vec<Option<usize>> = if text {
                let seqs = spec.seqs.clone().unwrap_or_else(|| args.seqs.clone());
                seqs.into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            // Per shape: the inputs, and the `--fix-shapes` spec they give (`input_ids=1x128,...`).
            let mut cases = Vec::new();
            for seq in seqs {
                let shape = seq.map_or_else(|| "224x224".to_string(), |s| format!("seq {s}"));
                let spec_in = InputSpec {
                    batch: 1,
                    seq: seq.unwrap_or(1),
                    seed: args.seed,
                    padding: Padding::None,
                };
                let inputs = generate_inputs(&model, &spec_in).context("generating inputs")?;
                let fix: Vec<String> = inputs
                    .iter()
                    .map(|t| {
                        let dims: Vec<String> = t.dims.iter().map(ToString::to_string).collect();
                        format!("{}={}", t.name, dims.join("x"))
                    })
                    .collect();
                let tag = seq.map_or_else(String::new, |s| format!("-s{s}"));
                cases.push((shape, inputs, tag, fix.join(",")));
            }
            let fixed: Vec<(String, String)> =
                cases.iter().map(|c| (c.2.clone(), c.3.clone())).collect();
            let tools = (python.as_path(), scripts.as_path(), transfuse.as_path());
            let dir = work.join(&spec.name);
            let (flags, files) = variants(args, tools, &spec.path, &dir, text, &fixed)?;
            run.transfuse_flags = flags;
            for (shape, inputs, tag, _) in &cases {
                let raw = ("raw".to_string(), Ok(spec.path.clone()));
                let mut own: Vec<(&str, &Result<PathBuf, String>)> = std::iter::once(&raw)
                    .chain(&files)
                    .filter(|(name, _)| {
                        !name.starts_with("ours-fixed") || name.ends_with(tag.as_str())
                    })
                    .map(|(name, file)| (name.strip_suffix(tag.as_str()).unwrap_or(name), file))
                    .collect();
                own.sort_by_key(|(name, _)| VARIANTS.iter().position(|v| v == name));
                for (variant, file) in own {
                    for (tf32, cuda_graph) in settings(variant.ends_with("fp16")) {
                        let cuda = CudaOptions { tf32, cuda_graph };
                        let mut row = GpuRow {
                            model: spec.name.clone(),
                            shape: shape.clone(),
                            variant: variant.to_string(),
                            provider: SessionOptions::default()
                                .execution_provider(ExecutionProvider::Cuda { device_id })
                                .cuda_options(cuda)
                                .provider_description(),
                            tf32,
                            cuda_graph,
                            ..GpuRow::default()
                        };
                        match file {
                            Err(why) => row.unavailable = Some(why.clone()),
                            Ok(path) => {
                                time_row(runtime, path, inputs, device_id, cuda, gpu, &mut row)
                            }
                        }
                        eprintln!("{}", row_line(&row));
                        run.rows.push(row);
                    }
                }
                save(&run, json)?;
            }
        }
    }
    for device in gpu.torch.iter().filter(|d| *d != "none") {
        let out = work.join(format!("torch-{device}.json"));
        let mut command = Command::new(&python);
        command
            .arg(scripts.join("torch_bench.py"))
            .args(["--device", device, "--cases", &gpu.torch_cases])
            .args(["--runs", &run.runs.to_string()])
            .args(["--warmup", &gpu.gpu_warmup.max(3).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .arg("--json")
            .arg(&out);
        let status = command.status().context("starting the PyTorch benchmark")?;
        match std::fs::read_to_string(&out) {
            Ok(text) => run.torch.push(serde_json::from_str(&text)?),
            Err(e) => run.notes.push(format!(
                "PyTorch on {device} gave no results ({status}): {e}"
            )),
        }
        save(&run, json)?;
    }
    save(&run, json)?;
    Ok(run)
}

/// (TF32, CUDA graph) settings timed: all four in fp32; fp16 with TF32 at ONNX Runtime's
/// default (it touches no fp16 kernel).
fn settings(fp16: bool) -> Vec<(bool, bool)> {
    if fp16 {
        vec![(true, false), (true, true)]
    } else {
        vec![(false, false), (false, true), (true, false), (true, true)]
    }
}

fn row_line(row: &GpuRow) -> String {
    let result = match (
        &row.median_ms,
        &row.unavailable,
        &row.capture_refused,
        &row.error,
    ) {
        (Some(m), ..) => format!("{m:.3} ms (min {:.3})", row.min_ms.unwrap_or(f64::NAN)),
        (None, Some(why), ..) => format!("unavailable: {why}"),
        (None, None, Some(why), _) => format!("capture refused: {why}"),
        (None, None, None, Some(e)) => format!("error: {e}"),
        _ => "no result".into(),
    };
    let warned = if row.cpu_shape_warning.is_some() {
        " [CPU-shape warning]"
    } else {
        ""
    };
    format!(
        "{} {} {} tf32={} graph={}: {result}{warned}",
        row.model,
        row.shape,
        row.variant,
        u8::from(row.tf32),
        u8::from(row.cuda_graph)
    )
}

/// Creates the session, binds the inputs and outputs on the device, warms up and times.
fn time_row(
    runtime: &'static OrtRuntime,
    path: &Path,
    inputs: &[transfuse_ir::Tensor],
    device_id: i32,
    cuda: CudaOptions,
    gpu: &GpuArgs,
    row: &mut GpuRow,
) {
    let options = SessionOptions::default()
        .optimization_level(OptimizationLevel::All)
        .execution_provider(ExecutionProvider::Cuda { device_id })
        .cuda_options(cuda);
    let outcome = (|| -> Result<Vec<f64>, OrtError> {
        let mut session = Session::from_file(runtime, path, &options)?;
        let named: Vec<(String, transfuse_ir::Tensor)> = inputs
            .iter()
            .filter(|t| session.input_names().contains(&t.name))
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        let prepared = session.prepare(&named)?;
        let bound = session.bind(&prepared);
        row.cpu_shape_warning = session.capture_report().cpu_shape_warning;
        let bound = bound?;
        for _ in 0..gpu.gpu_warmup {
            session.time_bound(&bound)?;
        }
        row.cpu_shape_warning = session.capture_report().cpu_shape_warning;
        (0..gpu.gpu_runs.max(1))
            .map(|_| session.time_bound(&bound).map(|d| d.as_secs_f64() * 1e3))
            .collect()
    })();
    match outcome {
        Ok(samples) => {
            row.median_ms = median(&samples);
            row.min_ms = min(&samples);
            row.runs = samples.len();
        }
        Err(OrtError::GraphCaptureRefused { stage, message }) => {
            row.capture_refused = Some(format!("at {stage}: {message}"));
        }
        Err(e) => row.error = Some(e.to_string()),
    }
}

fn nvidia_smi(field: &str) -> Option<String> {
    let output = Command::new("nvidia-smi")
        .args([&format!("--query-gpu={field}"), "--format=csv,noheader"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// A variant's name and its model file, or why it has none.
type Variant = (String, Result<PathBuf, String>);

/// Makes every variant of one model with `gpu_prep.py` (the peer, fp16 conversions, ours
/// through the `transfuse` binary, also at the fixed shapes given as `(tag, spec)`), or reuses
/// those an earlier run made. Returns the `optimize` flags the binary has and each variant's
/// file, or why it has none.
fn variants(
    args: &Args,
    tools: (&Path, &Path, &Path),
    raw: &Path,
    dir: &Path,
    text: bool,
    fixed: &[(String, String)],
) -> Result<(Vec<String>, Vec<Variant>)> {
    let (python, scripts, transfuse) = tools;
    let mut command = Command::new(python);
    command
        .arg(scripts.join("gpu_prep.py"))
        .arg("--input")
        .arg(raw);
    command
        .arg("--dir")
        .arg(dir)
        .arg("--transfuse")
        .arg(transfuse);
    command.args(["--model-type", if text { "bert" } else { "vit" }]);
    command.args(["--num-heads", &args.num_heads.to_string()]);
    command.args(["--hidden-size", &args.hidden_size.to_string()]);
    for (tag, spec) in fixed {
        command.arg(format!("--fixed={tag}={spec}"));
    }
    if args.fresh {
        command.arg("--fresh");
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("starting gpu_prep.py")?;
    if !output.status.success() {
        bail!("gpu_prep.py failed ({})", output.status);
    }
    let reply: serde_json::Value =
        serde_json::from_str(&last_line(&output.stdout)).context("reading gpu_prep.py's answer")?;
    let flags = reply["flags"].as_array().into_iter().flatten();
    let flags = flags.filter_map(|f| f.as_str().map(String::from)).collect();
    let mut out = Vec::new();
    for (name, v) in reply["variants"].as_object().into_iter().flatten() {
        let file = match (v["path"].as_str(), v["error"].as_str()) {
            (Some(path), _) => Ok(PathBuf::from(path)),
            (None, error) => Err(error.unwrap_or("not produced").to_string()),
        };
        out.push((name.clone(), file));
    }
    Ok((flags, out))
}
