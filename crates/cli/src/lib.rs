//! The `transfuse` command line, as a library: the binary parses [`Cli`] and calls [`run`];
//! other front ends (the workspace's `cargo xtask`) call [`optimize::run`] and
//! [`parity::run`] directly.
//!
//! - `transfuse optimize MODEL [-o OUT|-] [--fusions LIST] [--report FILE|-] [--dot FILE [--dot-full]] ...`
//! - `transfuse parity MODEL [CANDIDATE] [--inputs DIR] [--runtime reference|ort] ...`
//!
//! Both print a human-readable summary and return an error on failure; [`exit_code`] maps
//! the error to the binary's exit status ([`EXIT_CODES`]).

#![warn(missing_docs)]

pub mod optimize;
pub mod output;
pub mod parity;
pub mod verify;

use clap::{Parser, Subcommand};

/// The exit statuses of `transfuse`, as printed by `--help`.
pub const EXIT_CODES: &str = "\
Exit status:
  0    success
  1    parity mismatch, or verification found a difference and nothing was written
  2    usage error (unknown option, malformed --fusions, options that do not apply)
  3    an input could not be read, or an output could not be written
  130  interrupted (SIGINT); 143 terminated (SIGTERM): temporary files are removed
  141  stdout closed early (broken pipe): ends quietly";

/// The command line of `transfuse`.
#[derive(Debug, Parser)]
#[command(
    name = "transfuse",
    version,
    about = "transfuse: fuse transformer ONNX graphs for ONNX Runtime",
    after_help = EXIT_CODES
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
    #[command(after_help = EXIT_CODES)]
    Optimize(optimize::Args),
    /// Compare a model with a candidate (or with expected outputs) on the same inputs, in
    /// the reference interpreter or ONNX Runtime.
    #[command(after_help = EXIT_CODES)]
    Parity(parity::Args),
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Optimize(args) => optimize::run(args),
        Command::Parity(args) => parity::run(args),
    }
}

/// A usage error found after parsing (malformed `--fusions`, options that do not apply):
/// exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The outputs differ (a failed parity check, or verification refusing to write): exit
/// status 1.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The exit status for `error`: 1 for a [`Mismatch`], 2 for a [`UsageError`], 141 for a
/// broken pipe, 3 for anything else (an input that could not be read, processed or written).
pub fn exit_code(error: &anyhow::Error) -> i32 {
    if error.chain().any(|c| c.is::<Mismatch>()) {
        1
    } else if error.chain().any(|c| c.is::<UsageError>()) {
        2
    } else if is_broken_pipe(error) {
        141
    } else {
        3
    }
}

/// True when `error` comes from writing to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `error` and its causes on one line, outermost first, without repeating a cause whose
/// text the previous message already contains.
pub fn error_message(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}
