//! `transfuse optimize`: load, fuse, save, report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use transfuse_ir::Model;
use transfuse_rewrite::{FusionSet, OptimizeOptions, Report};

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
    /// Output path (default: `<input stem>.opt.onnx` beside the input).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Fusions to apply: `all`, `none`, or a comma-separated list of fusion names, where
    /// `-name` leaves one out (`all,-attention`).
    #[arg(long, default_value = "all")]
    pub fusions: String,
    /// Write a JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a Graphviz view of the optimized graph here.
    #[arg(long)]
    pub dot: Option<PathBuf>,
}

/// Runs `transfuse optimize`: loads the input, fuses, saves the model (and the report and
/// Graphviz view when asked) and prints a summary. Nothing is written when anything fails
/// before saving.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let Args { input, flags: args } = args;
    let fusions: FusionSet = args.fusions.parse().context("parsing --fusions")?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| input.with_extension("opt.onnx"));
    let model = Model::load(&input).with_context(|| format!("loading {}", input.display()))?;
    let options = OptimizeOptions {
        fusions,
        ..OptimizeOptions::default()
    };
    let (optimized, mut report) = transfuse_rewrite::optimize(&model, &options)
        .with_context(|| format!("optimizing {}", input.display()))?;
    report.model = input.display().to_string();
    drop(model);

    // Everything that can fail runs before the first file is written.
    let report_json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    let dot = args.dot.as_ref().map(|_| optimized.graph.to_dot());
    for path in [Some(&output), args.report.as_ref(), args.dot.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    optimized
        .save(&output)
        .with_context(|| format!("saving {}", output.display()))?;
    if let Some(path) = &args.report {
        write_file(path, &report_json)?;
    }
    if let (Some(path), Some(dot)) = (&args.dot, &dot) {
        write_file(path, dot)?;
    }
    print!(
        "{}",
        summary(
            &report,
            &input,
            &output,
            start.elapsed().as_secs_f64() * 1e3
        )
    );
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The table printed after a run.
fn summary(report: &Report, input: &Path, output: &Path, total_ms: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{} -> {}", input.display(), output.display());
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
    let _ = writeln!(
        s,
        "  optimize {:.0} ms, total {:.0} ms",
        report.optimize_ms, total_ms
    );
    s
}
