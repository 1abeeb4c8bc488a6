//! Well-known locations in the repository.

use std::path::PathBuf;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `testdata/models`.
pub fn testdata_models() -> PathBuf {
    root().join("testdata").join("models")
}

/// The build directory (`target/`, or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Where materialized base-size models go.
pub fn materialized_models() -> PathBuf {
    target_dir().join("models")
}
