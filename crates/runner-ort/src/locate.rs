//! Finding the ONNX Runtime library: the one place that decides which file is loaded.
//!
//! Order: the file named by [`LIBRARY_PATH_VARIABLE`] when that variable is set (and it must
//! then exist); else the copy provisioned under the workspace's build directory,
//! `target/onnxruntime/` (`cargo xtask ort-lib` puts it there). The build directory is
//! `CARGO_TARGET_DIR` when set, else found by walking up from the running executable (tests,
//! examples and binaries built in the workspace live under it), from this crate's source
//! directory, and from the current directory.

use std::path::{Path, PathBuf};

use crate::{LIBRARY_FILE_NAME, LIBRARY_PATH_VARIABLE, OrtError, OrtRuntime, Result};

/// The directory under the build directory that holds the provisioned library.
pub const PROVISIONED_DIR: &str = "onnxruntime";

/// The ONNX Runtime library this process should load (see the module docs for the order).
///
/// Errors with [`OrtError::NotFound`] naming every place that was looked at.
pub fn library_path() -> Result<PathBuf> {
    if let Some(value) = std::env::var_os(LIBRARY_PATH_VARIABLE).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(value);
        return if path.is_file() {
            std::path::absolute(&path).map_err(|e| OrtError::Load {
                path,
                reason: e.to_string(),
            })
        } else {
            Err(OrtError::NotFound {
                looked: format!("{LIBRARY_PATH_VARIABLE}={}", path.display()),
            })
        };
    }
    let candidates = provisioned_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| OrtError::NotFound {
            looked: if candidates.is_empty() {
                "no build directory found".to_string()
            } else {
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Where a provisioned library is looked for, most likely first (the files need not exist).
pub fn provisioned_candidates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |dir: PathBuf| {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    };
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR").filter(|p| !p.is_empty()) {
        push(PathBuf::from(target));
    }
    // An executable under `<target>/<profile>/` (or `deps/`, `examples/`): the build directory
    // is the ancestor that holds `onnxruntime/`.
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            if dir.join(PROVISIONED_DIR).join(LIBRARY_FILE_NAME).is_file() {
                push(dir.to_path_buf());
                break;
            }
        }
    }
    // This crate's sources sit at `<workspace>/crates/runner-ort`.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(workspace) = manifest.parent().and_then(Path::parent) {
        push(workspace.join("target"));
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            if dir.join("Cargo.toml").is_file() && dir.join("target").is_dir() {
                push(dir.join("target"));
                break;
            }
        }
    }
    dirs.into_iter()
        .map(|d| d.join(PROVISIONED_DIR).join(LIBRARY_FILE_NAME))
        .collect()
}

/// The build directory's provisioned library path, whether or not it exists yet: where
/// `cargo xtask ort-lib` writes it (`CARGO_TARGET_DIR`, else the workspace's `target/`).
pub fn provisioned_path() -> PathBuf {
    provisioned_candidates()
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            Path::new("target")
                .join(PROVISIONED_DIR)
                .join(LIBRARY_FILE_NAME)
        })
}

impl OrtRuntime {
    /// Loads ONNX Runtime from [`library_path`] (the environment variable, else the
    /// provisioned copy).
    pub fn locate() -> Result<&'static OrtRuntime> {
        OrtRuntime::init(library_path()?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_library_under_build_directories() {
        let candidates = provisioned_candidates();
        assert!(!candidates.is_empty());
        for c in &candidates {
            assert!(
                c.ends_with(Path::new(PROVISIONED_DIR).join(LIBRARY_FILE_NAME)),
                "{c:?}"
            );
        }
        // No duplicates, and the default destination is the first.
        let mut unique = candidates.clone();
        unique.dedup();
        assert_eq!(unique, candidates);
        assert_eq!(provisioned_path(), candidates[0]);
    }
}
