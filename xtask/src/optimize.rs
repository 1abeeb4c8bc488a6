//! `cargo xtask optimize`: load, fuse, save.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use transfuse_ir::Model;

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
    /// Fusions to apply: `all`, `none`, or a comma-separated list (`-name` removes one).
    #[arg(long, default_value = "all")]
    fusions: String,
    /// Write a JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let (input, default_out) = match &args.input {
        Some(p) => (p.clone(), p.with_extension("opt.onnx")),
        None => {
            let p = paths::testdata_models().join(BUNDLED_MODEL);
            (p, paths::target_dir().join("optimized").join("bert_sdpa_ts_op17.opt.onnx"))
        }
    };
    let output = args.output.clone().unwrap_or(default_out);
    let model = Model::load(&input).with_context(|| format!("loading {}", input.display()))?;
    let nodes_before = model.graph.nodes.len();
    if args.fusions != "none" {
        bail!("fusion '{}' is not available yet; use --fusions none", args.fusions);
    }
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    model.save(&output).with_context(|| format!("saving {}", output.display()))?;
    println!(
        "{} -> {}: {} nodes -> {} nodes in {:.0} ms",
        input.display(),
        output.display(),
        nodes_before,
        model.graph.nodes.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
