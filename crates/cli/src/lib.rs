//! The `transfuse` command line, as a library: the binary parses [`Cli`] and calls [`run`];
//! other front ends (the workspace's `cargo xtask`) call [`optimize::run`] and
//! [`parity::run`] directly.
//!
//! - `transfuse optimize MODEL [-o OUT] [--fusions LIST] [--report FILE] [--dot FILE]`
//! - `transfuse parity MODEL [CANDIDATE] [--inputs DIR] [--runtime reference|ort] ...`
//!
//! Both print a human-readable summary on stdout and return an error (the binary exits
//! non-zero) on failure, a failed parity check included.

#![warn(missing_docs)]

pub mod optimize;
pub mod parity;

use clap::{Parser, Subcommand};

/// The command line of `transfuse`.
#[derive(Debug, Parser)]
#[command(
    name = "transfuse",
    version,
    about = "transfuse: fuse transformer ONNX graphs for ONNX Runtime"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Optimize a model: fuse attention, LayerNorm, GELU and friends into ONNX Runtime's
    /// fused ops.
    Optimize(optimize::Args),
    /// Compare a model with a candidate (or with expected outputs) on the same inputs, in
    /// the reference interpreter or ONNX Runtime.
    Parity(parity::Args),
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Optimize(args) => optimize::run(args),
        Command::Parity(args) => parity::run(args),
    }
}
