//! `transfuse optimize`: load, fuse, verify, save, report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use transfuse_ir::{Dim, Model};
use transfuse_rewrite::{AttentionOp, FixedShapes, FusionSet, OptimizeOptions, Report, Target};

use crate::UsageError;
use crate::output::{Printer, write_stdout};
use crate::verify::{Verification, verify, verify_within};

/// Arguments of `transfuse optimize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input model.
    pub input: PathBuf,
    /// Everything else.
    #[command(flatten)]
    pub flags: Flags,
}

/// The options of `transfuse optimize` besides the input.
#[derive(Debug, clap::Args)]
pub struct Flags {
    /// Output path, `-` for stdout (default: `<input stem>.opt.onnx` beside the input).
    #[arg(short, long, allow_hyphen_values = true)]
    pub output: Option<PathBuf>,
    /// Fusions to apply: `all`, `none`, or a comma-separated list of fusion names; a list
    /// that starts with `-name` means every fusion but those (`-attention`, `-gelu,-attention`).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    pub fusions: String,
    /// Fix input shapes and fold every shape computation to constants: dims by name
    /// (`batch=1,sequence=128`) or whole inputs (`input_ids=1x128`), mixable. The output
    /// model then accepts inputs of exactly those shapes.
    #[arg(long, value_name = "SPEC")]
    pub fix_shapes: Option<String>,
    /// The fused attention op: `attention` (packed QKV weights; a block that cannot be
    /// packed stays unfused), `mha` (MultiHeadAttention on the Q, K and V projections) or
    /// `auto` (packed where the projections allow, MultiHeadAttention elsewhere).
    #[arg(long, value_name = "OP", default_value = "auto")]
    pub attention_op: String,
    /// The device the model is optimized for: `gpu` (every fusion) or `cpu` (leaves out
    /// skiplayernorm and skiprmsnorm, whose ONNX Runtime CPU kernel is slower than the ops
    /// they replace).
    #[arg(long, value_name = "DEVICE", default_value = "gpu")]
    pub target: String,
    /// Write a JSON report here, `-` for stdout (the summary then goes to stderr).
    #[arg(long, allow_hyphen_values = true)]
    pub report: Option<PathBuf>,
    /// Write a Graphviz view of the optimized graph here, nodes grouped by layer (a graph of
    /// more than 64 nodes shows each layer as one box); also rendered to SVG beside it
    /// when Graphviz's `dot` is installed.
    #[arg(long)]
    pub dot: Option<PathBuf>,
    /// Draw every node in the --dot view, however large the graph.
    #[arg(long, requires = "dot")]
    pub dot_full: bool,
    /// List every attention, norm and GELU site left unfused, with the closest rule and the
    /// first condition that failed (the report's `unfused` list has them in any case).
    #[arg(long)]
    pub explain: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Skip verification (by default the original and the optimized model run in the
    /// reference interpreter on generated inputs, and nothing is written if they differ).
    #[arg(long)]
    pub no_verify: bool,
    /// Verify before writing (the default).
    #[arg(long, conflicts_with = "no_verify")]
    pub verify: bool,
    /// Convert the optimized model to float16: weights and activations in fp16, inputs and
    /// outputs in their original types (one Cast at each), ONNX Runtime's op block list kept
    /// in f32. Verified against the original with the fp16 tolerance (atol = rtol = 1e-2).
    #[arg(long)]
    pub float16: bool,
    /// Declare the int64 inputs (token ids, token types, positions, masks) int32, as ONNX
    /// Runtime's fused kernels read them, and remove the casts that become no-ops. The model
    /// then takes int32 inputs; ids beyond 2^31 are not supported.
    #[arg(long)]
    pub int32_inputs: bool,
    /// Accepted for scripts written for ONNX Runtime's optimizer and ignored: the structure
    /// is detected from the graph.
    #[arg(long, value_name = "TYPE")]
    pub model_type: Option<String>,
}

/// `-` as a path: stdout.
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Runs `transfuse optimize`: loads the input, fuses, verifies, saves the model (and the
/// report and Graphviz view when asked) and prints a summary. Nothing is written when
/// anything fails before saving, verification included.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let Args { input, flags: args } = args;
    let asked: FusionSet = args
        .fusions
        .parse()
        .map_err(|e| UsageError(format!("--fusions: {e}")))?;
    let target: Target = args
        .target
        .parse()
        .map_err(|e| UsageError(format!("--target: {e}")))?;
    let (fusions, left_out_for_target) = asked.for_target(target);
    let attention_op: AttentionOp = args
        .attention_op
        .parse()
        .map_err(|e| UsageError(format!("--attention-op: {e}")))?;
    let fixed_shapes: FixedShapes = match &args.fix_shapes {
        Some(spec) => spec
            .parse()
            .map_err(|e| UsageError(format!("--fix-shapes: {e}")))?,
        None => FixedShapes::default(),
    };
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| input.with_extension("opt.onnx"));
    let report_path = args.report.clone();
    if is_stdout(&output) && report_path.as_deref().is_some_and(is_stdout) {
        return Err(UsageError("-o - and --report - cannot both use stdout".into()).into());
    }
    let printer = Printer {
        quiet: args.quiet,
        stdout_is_data: is_stdout(&output) || report_path.as_deref().is_some_and(is_stdout),
    };
    if let Some(kind) = &args.model_type {
        printer.note(&format!(
            "--model-type {kind} is ignored: transfuse detects the structure from the graph"
        ))?;
    }
    if !left_out_for_target.is_empty() {
        printer.note(&format!(
            "--target {} leaves out {}: ONNX Runtime runs their fused op slower there than the ops it replaces",
            target.name(),
            left_out_for_target.join(", ")
        ))?;
    }
    for (left_out, by) in fusions.still_running() {
        printer.note(&format!(
            "'{left_out}' is left out, but '{by}' needs its rules and still fuses that pattern (leave out '{by}' too to keep it unfused)"
        ))?;
    }
    check_input(&input)?;
    // Output paths are checked before the (long) optimization, so a bad path fails early.
    for path in [Some(&output), report_path.as_ref(), args.dot.as_ref()]
        .into_iter()
        .flatten()
        .filter(|p| !is_stdout(p))
    {
        check_writable(path)?;
    }

    let model = Model::load(&input).with_context(|| format!("loading {}", input.display()))?;
    // The original at the fixed shapes: what the optimized model is verified against.
    let at_fixed_shapes = fixed_shapes
        .apply(&model)
        .map_err(|e| UsageError(format!("--fix-shapes: {e}")))?;
    let options = OptimizeOptions {
        fusions: fusions.clone(),
        fixed_shapes: fixed_shapes.clone(),
        attention_op,
        int32_inputs: args.int32_inputs,
        ..OptimizeOptions::default()
    };
    let (mut optimized, report) = transfuse_rewrite::optimize(&model, &options)
        .with_context(|| format!("optimizing {}", input.display()))?;
    let verification = if args.no_verify {
        None
    } else {
        let v = verify(&at_fixed_shapes, &optimized)?;
        if let Some(reason) = &v.skipped {
            printer.note(&format!("not verified: {reason}"))?;
        }
        Some(v)
    };
    // --float16: the fused model (verified exact above) is converted, and the converted
    // model is verified against the original under the fp16 tolerance.
    let (verification, float16) = if args.float16 {
        let (half, f16_report) = transfuse_rewrite::to_float16(
            &optimized,
            &transfuse_rewrite::Float16Options::default(),
        )
        .with_context(|| format!("converting {} to float16", input.display()))?;
        optimized = half;
        let verification = match verification {
            Some(v) if v.skipped.is_none() => Some(
                verify_within(&model, &optimized, transfuse_parity::Tolerance::float16())
                    .context("verifying the float16 model")?,
            ),
            other => other,
        };
        (verification, Some(f16_report))
    } else {
        (verification, None)
    };
    let explanation = transfuse_rewrite::explain(&optimized).with_fusions(&fusions);
    if !fusions.is_empty() || args.int32_inputs {
        // `--fusions none` writes the model exactly as loaded (a faithful baseline).
        mark_producer(&mut optimized, &model);
    }
    drop((model, at_fixed_shapes));

    // Everything that can fail runs before the first file is written.
    let mut report_value = json_report(
        &report,
        &input,
        &output,
        (&args.fusions, target),
        &fusions,
        verification.as_ref(),
        &explanation,
    )?;
    if !fixed_shapes.is_empty() {
        report_value["fixed_shapes"] = fixed_shapes_json(&fixed_shapes, &optimized);
    }
    if let (Some(f), Some(object)) = (&float16, report_value.as_object_mut()) {
        object.insert(
            "float16".into(),
            serde_json::to_value(f).context("serializing the report")?,
        );
    }
    let report_json =
        serde_json::to_string_pretty(&report_value).context("serializing the report")? + "\n";
    let dot_options = if args.dot_full {
        transfuse_ir::DotOptions::full()
    } else {
        transfuse_ir::DotOptions::default()
    };
    let dot = args
        .dot
        .as_ref()
        .map(|_| optimized.graph.to_dot_with(&dot_options));

    // The model first (staged and renamed into place by the IR), then the small files; if
    // one of those fails, the files already written are removed.
    let mut written: Vec<&Path> = Vec::new();
    let result = (|| -> Result<()> {
        if is_stdout(&output) {
            write_stdout(&optimized.to_bytes())?;
        } else {
            optimized
                .save(&output)
                .with_context(|| format!("saving {}", output.display()))?;
            written.push(&output);
        }
        if let Some(path) = &report_path {
            if is_stdout(path) {
                write_stdout(report_json.as_bytes())?;
            } else {
                write_file(path, report_json.as_bytes())?;
                written.push(path);
            }
        }
        if let (Some(path), Some(dot)) = (&args.dot, &dot) {
            write_file(path, dot.as_bytes())?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for path in written {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    if let Some(path) = &args.dot {
        render_svg(path, &printer)?;
    }
    let mut text = summary(
        &report,
        &input,
        &output,
        verification.as_ref(),
        start.elapsed().as_secs_f64() * 1e3,
    );
    let _ = writeln!(text, "  fused/found: {}", explanation.summary());
    if let Some(n) = &report.int32_inputs {
        let _ = writeln!(
            text,
            "  int32 inputs: {} narrowed{}, {} casts removed, {} added",
            n.narrowed.len(),
            if n.narrowed.is_empty() {
                String::new()
            } else {
                format!(" ({})", n.narrowed.join(", "))
            },
            n.casts_removed,
            n.casts_added
        );
    }
    if let Some(f) = &float16 {
        let _ = writeln!(
            text,
            "  float16: {} tensors converted ({} values clamped), {} casts added, {} nodes kept in f32{}",
            f.converted_tensors,
            f.clamped_elements,
            f.casts_added,
            f.kept_f32.len(),
            if f.kept_f32.is_empty() {
                String::new()
            } else {
                format!(": {}", f.kept_f32.join(", "))
            }
        );
    }
    if args.explain {
        if explanation.unfused.is_empty() {
            let _ = writeln!(text, "  every attention, norm and GELU site is fused");
        }
        for site in &explanation.unfused {
            let _ = writeln!(text, "  unfused: {site}");
        }
    } else if !explanation.unfused.is_empty() {
        let _ = writeln!(
            text,
            "  {} site(s) left unfused: --explain says why",
            explanation.unfused.len()
        );
    }
    printer.summary(&text)
}

/// Plain messages for inputs that cannot be models.
fn check_input(input: &Path) -> Result<()> {
    match std::fs::metadata(input) {
        Ok(m) if m.is_dir() => bail!("{} is a directory, not a model file", input.display()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{} does not exist", input.display())
        }
        Err(e) => bail!("cannot read {}: {}", input.display(), plain(&e)),
    }
}

/// Fails unless `path` can be created: not a directory, in a directory that exists (it is
/// created) and, where `path` exists, writable.
fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("cannot write {}: it is a directory", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {}", dir.display(), plain(&e)))?;
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), plain(&e)))?;
    }
    Ok(())
}

/// An I/O error's text without the `(os error N)` suffix.
fn plain(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    transfuse_ir::write_file_atomically(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Renders the Graphviz view at `path` to an SVG beside it with Graphviz's `dot` when it is
/// installed (a failure is a warning: the view itself is written), else says how to.
fn render_svg(path: &Path, printer: &Printer) -> Result<()> {
    let mut svg = path.with_extension("svg");
    if svg == path {
        svg = PathBuf::from(format!("{}.svg", path.display()));
    }
    let rendered = std::process::Command::new("dot")
        .arg("-Tsvg")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .output();
    let failure = match rendered {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return printer.note(&format!(
                "Graphviz is not installed: render the view with `dot -Tsvg {} -o {}` (Graphviz is in most package managers)",
                path.display(),
                svg.display()
            ));
        }
        Err(e) => format!("cannot run dot: {}", plain(&e)),
        Ok(out) if !out.status.success() || out.stdout.is_empty() => format!(
            "dot failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(out) => match transfuse_ir::write_file_atomically(&svg, &out.stdout) {
            Ok(()) => return Ok(()),
            Err(e) => format!("writing {}: {e}", svg.display()),
        },
    };
    if !printer.quiet {
        // A closed stderr is not worth failing for.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr().lock(),
            format!(
                "warning: {} was not rendered to SVG: {failure}\n",
                path.display()
            )
            .as_bytes(),
        );
    }
    Ok(())
}

/// Names transfuse as the producer and keeps the original producer in `metadata_props`.
fn mark_producer(optimized: &mut Model, original: &Model) {
    let mut set = |key: &str, value: &str| {
        optimized.metadata_props.retain(|(k, _)| k != key);
        optimized
            .metadata_props
            .push((key.to_string(), value.to_string()));
    };
    if !original.producer_name.is_empty() && original.producer_name != "transfuse" {
        set("original_producer", &original.producer_name);
        set("original_producer_version", &original.producer_version);
    }
    optimized.producer_name = "transfuse".to_string();
    optimized.producer_version = env!("CARGO_PKG_VERSION").to_string();
}

/// The JSON report: the optimizer's [`Report`] plus the tool, the paths, the fusions asked
/// for and the verification.
fn json_report(
    report: &Report,
    input: &Path,
    output: &Path,
    (asked, target): (&str, Target),
    fusions: &FusionSet,
    verification: Option<&Verification>,
    explanation: &transfuse_rewrite::explain::Explanation,
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(report).context("serializing the report")?;
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "unfused".into(),
            serde_json::to_value(&explanation.unfused).context("serializing the report")?,
        );
        object.insert(
            "coverage".into(),
            serde_json::to_value(&explanation.coverage).context("serializing the report")?,
        );
        object.insert("tool".into(), "transfuse".into());
        object.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        object.insert("input".into(), input.display().to_string().into());
        object.insert("output".into(), output.display().to_string().into());
        object.insert("fusions_asked".into(), asked.into());
        object.insert("target".into(), target.name().into());
        object.insert(
            "fusions_enabled".into(),
            fusions.names().collect::<Vec<_>>().into(),
        );
        object.insert(
            "verification".into(),
            match verification {
                None => serde_json::Value::Null,
                Some(v) => serde_json::json!({
                    "ms": v.ms,
                    "skipped": v.skipped,
                    "cases": v.cases.iter().map(|c| serde_json::json!({
                        "inputs": c.name,
                        "max_abs": c.max_abs,
                    })).collect::<Vec<_>>(),
                }),
            },
        );
    }
    Ok(value)
}

/// The report's `fixed_shapes`: the spec as given and the resulting shape of each graph
/// input.
fn fixed_shapes_json(fixed: &FixedShapes, optimized: &Model) -> serde_json::Value {
    let inputs: serde_json::Map<String, serde_json::Value> = optimized
        .graph
        .inputs
        .iter()
        .filter_map(|v| {
            let dims: Vec<serde_json::Value> = v
                .shape()?
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => (*n).into(),
                    other => other.to_string().into(),
                })
                .collect();
            Some((v.name.clone(), dims.into()))
        })
        .collect();
    serde_json::json!({ "spec": fixed.to_string(), "inputs": inputs })
}

/// The table printed after a run.
fn summary(
    report: &Report,
    input: &Path,
    output: &Path,
    verification: Option<&Verification>,
    total_ms: f64,
) -> String {
    let mut s = String::new();
    let shown = if is_stdout(output) {
        "stdout".to_string()
    } else {
        output.display().to_string()
    };
    let _ = writeln!(s, "{} -> {shown}", input.display());
    let _ = writeln!(s, "  {:<26} {:>6}", "fused op", "count");
    for (op, n) in &report.fused {
        if *n > 0 {
            let _ = writeln!(s, "  {op:<26} {n:>6}");
        }
    }
    let _ = writeln!(
        s,
        "  nodes {} -> {}",
        report.nodes_before, report.nodes_after
    );
    let e = &report.egraph;
    let _ = writeln!(
        s,
        "  e-graph: {} e-nodes, {} e-classes, {} iterations, stop: {}",
        e.nodes, e.classes, e.iterations, e.stop_reason
    );
    match verification {
        Some(v) if v.skipped.is_some() => {
            let _ = writeln!(
                s,
                "  not verified: the reference interpreter cannot run the original"
            );
        }
        Some(v) => {
            let _ = writeln!(
                s,
                "  verified in {:.0} ms: {} (max abs diff {:.1e})",
                v.ms,
                v.cases
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                v.cases.iter().map(|c| c.max_abs).fold(0.0, f64::max)
            );
        }
        None => {
            let _ = writeln!(s, "  not verified (--no-verify)");
        }
    }
    let _ = writeln!(
        s,
        "  optimize {:.0} ms, total {:.0} ms",
        report.optimize_ms, total_ms
    );
    s
}
