//! `cargo xtask optimize`: `transfuse optimize`, with the bundled tiny BERT as the default
//! input (written under `target/optimized/`).

use std::path::PathBuf;

use anyhow::Result;
use transfuse_cli::optimize::Flags;

use transfuse_bench::paths;

/// The model optimized when no input is given.
pub const BUNDLED_MODEL: &str = "tiny/bert_sdpa_ts_op17.onnx";

/// Arguments of `cargo xtask optimize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input model (default: the bundled tiny BERT from testdata/).
    input: Option<PathBuf>,
    /// The options of `transfuse optimize` (the output defaults to `<input stem>.opt.onnx`
    /// beside the input, or under target/optimized/ for the bundled model).
    #[command(flatten)]
    flags: Flags,
}

/// Runs `cargo xtask optimize`.
pub fn run(args: Args) -> Result<()> {
    let Args { input, mut flags } = args;
    let input = match input {
        Some(p) => p,
        None => {
            if flags.output.is_none() {
                flags.output = Some(
                    paths::target_dir()
                        .join("optimized")
                        .join("bert_sdpa_ts_op17.opt.onnx"),
                );
            }
            paths::testdata_models().join(BUNDLED_MODEL)
        }
    };
    transfuse_cli::optimize::run(transfuse_cli::optimize::Args { input, flags })
}
