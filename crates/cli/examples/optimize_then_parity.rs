//! Drive the `transfuse` command line from Rust code: optimize a model, then check that the
//! written result computes what the original computes, exactly as `transfuse optimize` and
//! `transfuse parity` would, with the same messages and errors.
//!
//! ```text
//! cargo run --release -p transfuse-cli --example optimize_then_parity -- [MODEL.onnx]
//! ```
//!
//! Without an argument it uses the bundled tiny BERT from `testdata/models/tiny/`. The
//! optimized model is written to a temporary directory that is removed at the end.
//! Front ends that want the result as values rather than printed summaries use the library
//! crates instead (`transfuse_rewrite::optimize`, `transfuse_parity::check`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use transfuse_cli::{Cli, exit_code, run};

fn main() {
    if let Err(e) = optimize_then_parity() {
        eprintln!("error: {e:#}");
        // The same exit statuses as the binary: 1 for a parity mismatch, 2 usage, 3 I/O.
        std::process::exit(exit_code(&e));
    }
}

fn optimize_then_parity() -> Result<()> {
    let model = std::env::args_os().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/models/tiny/bert_sdpa_ts_op17.onnx")
        },
        PathBuf::from,
    );
    let scratch = std::env::temp_dir().join(format!("transfuse-example-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).context("creating a scratch directory")?;
    let optimized = scratch.join("optimized.onnx");
    let result = (|| {
        // `optimize` verifies its output against the original before writing it.
        run(Cli::try_parse_from([
            "transfuse".as_ref(),
            "optimize".as_ref(),
            model.as_os_str(),
            "-o".as_ref(),
            optimized.as_os_str(),
        ])?)?;
        // An independent check in ONNX Runtime, with left-padded generated inputs.
        run(Cli::try_parse_from([
            "transfuse".as_ref(),
            "parity".as_ref(),
            model.as_os_str(),
            optimized.as_os_str(),
            "--runtime".as_ref(),
            "ort".as_ref(),
            "--padding".as_ref(),
            "left".as_ref(),
        ])?)
    })();
    // Remove the scratch directory whether or not the commands succeeded.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
