//! `cargo xtask test`: everything the test suite needs on a fresh machine, then the tests.
//!
//! Provisions ONNX Runtime's shared library (see `ort_lib`), materializes the base-size models
//! (see `models`), then runs `cargo test --release --workspace` with `ORT_DYLIB_PATH` set and
//! snapshot updates disabled, so a missing snapshot fails instead of being written.

use std::ops::Not;
use std::process::Command;

use anyhow::{Context, Result, bail};
use transfuse_ort::LIBRARY_PATH_VARIABLE;

use crate::{models, ort_lib, paths};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Extra arguments passed to `cargo test` (`--workspace` is added unless `-p` is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cargo_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let library = ort_lib::provision()?;
    eprintln!("ONNX Runtime library: {}", library.display());
    models::materialize(&[], false)?;
    let selects_packages = args
        .cargo_args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(paths::root())
        .args(["test", "--release"])
        .args(selects_packages.not().then_some("--workspace"))
        .args(&args.cargo_args)
        .env(LIBRARY_PATH_VARIABLE, &library)
        .env("INSTA_UPDATE", "no")
        .status()
        .context("starting cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
