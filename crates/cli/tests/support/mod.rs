//! Helpers shared by the command-line tests. Each test binary uses some of them.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A bundled tiny model, `name` with its extension.
pub fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny")
        .join(name)
}

/// Runs the built `transfuse` binary with `args`.
pub fn transfuse(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .args(args)
        .output()
        .unwrap()
}

/// Process output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
