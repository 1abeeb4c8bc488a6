//! `cargo xtask optimize`: load, fuse, save, report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use transfuse_ir::{Graph, Model};
use transfuse_rewrite::{FusionSet, OptimizeOptions, Report};

use crate::paths;

/// The model optimized when no input is given.
pub const BUNDLED_MODEL: &str = "tiny/bert_sdpa_ts_op17.onnx";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input model (default: the bundled tiny BERT from testdata/).
    input: Option<PathBuf>,
    /// Output path (default: `<input stem>.opt.onnx` beside the input, or under target/ for
    /// the bundled model).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Fusions to apply: `all`, `none`, or a comma-separated list of names from
    /// docs/fusions.md, where `-name` leaves one out (`all,-attention`).
    #[arg(long, default_value = "all")]
    fusions: String,
    /// Write a JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write a Graphviz view of the optimized graph here.
    #[arg(long)]
    dot: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let fusions: FusionSet = args.fusions.parse().context("parsing --fusions")?;
    let (input, default_out) = match &args.input {
        Some(p) => (p.clone(), p.with_extension("opt.onnx")),
        None => {
            let p = paths::testdata_models().join(BUNDLED_MODEL);
            (
                p,
                paths::target_dir()
                    .join("optimized")
                    .join("bert_sdpa_ts_op17.opt.onnx"),
            )
        }
    };
    let output = args.output.clone().unwrap_or(default_out);
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
    let dot = args.dot.as_ref().map(|_| to_dot(&optimized.graph));
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

/// Graphviz of a graph: one box per node, edges labelled with value names; inputs and
/// outputs as ellipses. Initializers are left out (they would swamp the picture).
fn to_dot(graph: &Graph) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut s = String::from(
        "digraph onnx {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
    );
    let mut producer = std::collections::HashMap::new();
    for i in &graph.inputs {
        let _ = writeln!(s, "  {} [shape=ellipse];", quote(&format!("in:{}", i.name)));
        producer.insert(i.name.as_str(), format!("in:{}", i.name));
    }
    for (k, n) in graph.nodes.iter().enumerate() {
        let id = format!("n{k}");
        let label = if n.is_onnx() {
            n.op_type.clone()
        } else {
            format!("{}\\n({})", n.op_type, n.domain)
        };
        let _ = writeln!(s, "  {id} [label={}];", quote(&label));
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), id.clone());
        }
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            if let Some(p) = producer.get(i.as_str()) {
                let _ = writeln!(
                    s,
                    "  {} -> {id} [label={}, fontsize=8];",
                    quote(p),
                    quote(i)
                );
            }
        }
    }
    for o in &graph.outputs {
        let _ = writeln!(
            s,
            "  {} [shape=ellipse];",
            quote(&format!("out:{}", o.name))
        );
        if let Some(p) = producer.get(o.name.as_str()) {
            let _ = writeln!(
                s,
                "  {} -> {};",
                quote(p),
                quote(&format!("out:{}", o.name))
            );
        }
    }
    s.push_str("}\n");
    s
}
