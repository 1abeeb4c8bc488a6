//! `cargo xtask io-bench`: how fast a model loads and saves, and the peak memory it takes.
//!
//! Each round loads the model (memory-mapped, weights not copied) and saves it (streamed).
//! Reports min and median of the rounds and the process's peak resident set (`VmHWM`),
//! which includes the mapped file pages the save reads.
//!
//! Everything it writes stays under the build directory: the default model is materialized
//! into `target/models/` (about 440 MB, announced before it is written) and each save goes to
//! `target/io-bench/roundtrip.onnx`, removed after the model's rounds.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use transfuse_ir::Model;

use crate::{models, paths};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models to time (default: BERT-base, `bert_eager_ts_op14`, materialized into
    /// target/models when missing: about 440 MB).
    models: Vec<PathBuf>,
    /// Rounds per model.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

pub fn run(args: Args) -> Result<()> {
    let models = if args.models.is_empty() {
        models::materialize(&["bert_eager_ts_op14".to_string()], false)?
    } else {
        args.models
    };
    let out_dir = paths::target_dir().join("io-bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join("roundtrip.onnx");
    eprintln!(
        "saved copies go to {} (removed after each model)",
        out.display()
    );
    println!(
        "| model | size MB | load ms (min/median) | save ms (min/median) | load+save ms (min/median) |"
    );
    println!("|---|---|---|---|---|");
    for path in models {
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let (mut load, mut save, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            let t0 = Instant::now();
            let model =
                Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
            let t1 = Instant::now();
            model
                .save(&out)
                .with_context(|| format!("saving {}", out.display()))?;
            let t2 = Instant::now();
            drop(model);
            load.push((t1 - t0).as_secs_f64() * 1e3);
            save.push((t2 - t1).as_secs_f64() * 1e3);
            total.push((t2 - t0).as_secs_f64() * 1e3);
        }
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            path.file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
            size as f64 / 1e6,
            min_median(&mut load),
            min_median(&mut save),
            min_median(&mut total)
        );
        let _ = std::fs::remove_file(&out);
    }
    if let Some(peak) = peak_rss_mb() {
        println!("peak RSS of this process: {peak:.0} MB");
    }
    Ok(())
}

fn min_median(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.0} / {:.0}", v[0], v[v.len() / 2])
}

/// Peak resident set size of this process in MB, from `/proc/self/status` (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
