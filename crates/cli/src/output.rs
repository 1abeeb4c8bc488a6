//! Where messages go: the summary to stdout unless stdout carries data (`-o -`,
//! `--report -`), notes to stderr, nothing but errors under `--quiet`. Writes return
//! errors instead of panicking, so a closed pipe ends the program quietly (see
//! [`crate::exit_code`]).

use std::io::Write as _;

use anyhow::{Context, Result};

/// The destinations of a run's messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Printer {
    /// Print nothing but errors.
    pub quiet: bool,
    /// stdout carries data: the summary goes to stderr.
    pub stdout_is_data: bool,
}

impl Printer {
    /// Prints the summary (stdout, or stderr when stdout carries data).
    pub fn summary(&self, text: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        if self.stdout_is_data {
            write_stderr(text)
        } else {
            write_stdout(text.as_bytes())
        }
    }

    /// Prints a note (stderr).
    pub fn note(&self, text: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        write_stderr(&format!("note: {text}\n"))
    }
}

/// Writes data to stdout.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

fn write_stderr(text: &str) -> Result<()> {
    // A closed stderr is not worth failing for.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    Ok(())
}
