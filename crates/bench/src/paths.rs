//! Well-known locations in the repository.

use std::path::PathBuf;

/// The workspace root (two levels above this crate's manifest, `crates/bench/`).
///
/// That is the checkout the binary was built in; when that directory is gone (a release binary
/// copied to another machine), the nearest directory at or above the current one that holds
/// `xtask/Cargo.toml`.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("Cargo.toml").is_file()
        && let Some(root) = manifest.ancestors().nth(2)
    {
        return root.to_path_buf();
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            cwd.ancestors()
                .find(|d| d.join("xtask").join("Cargo.toml").is_file())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| {
            manifest
                .ancestors()
                .nth(2)
                .map_or(manifest.clone(), PathBuf::from)
        })
}

/// `testdata/models`.
pub fn testdata_models() -> PathBuf {
    root().join("testdata").join("models")
}

/// The build directory (`target/`, or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Where materialized base-size models go.
pub fn materialized_models() -> PathBuf {
    target_dir().join("models")
}
