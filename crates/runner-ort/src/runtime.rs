//! Loading the ONNX Runtime shared library and holding its process-wide environment.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ort::environment::Environment;

use crate::{OrtError, Result};

/// The ONNX Runtime version this crate is built and tested against.
pub const ONNX_RUNTIME_VERSION: &str = "1.31.1";

/// The file name of that version's shared library on Linux, as shipped in the PyPI wheel
/// `onnxruntime==1.31.1` under `onnxruntime/capi/`.
pub const LIBRARY_FILE_NAME: &str = "libonnxruntime.so.1.31.1";

/// The environment variable that names the ONNX Runtime library to load.
pub const LIBRARY_PATH_VARIABLE: &str = "ORT_DYLIB_PATH";

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// A loaded ONNX Runtime library and its environment.
///
/// ONNX Runtime allows one library and one environment per process, so there is exactly one
/// `OrtRuntime`, created by [`OrtRuntime::init`] and alive until the process ends. Sessions
/// are created under it (see [`crate::Session`]).
pub struct OrtRuntime {
    environment: Environment,
    library: PathBuf,
    build_info: String,
}

impl std::fmt::Debug for OrtRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtRuntime")
            .field("library", &self.library)
            .field("build_info", &self.build_info)
            .finish()
    }
}

impl OrtRuntime {
    /// Loads the ONNX Runtime shared library at `library` and creates the environment.
    ///
    /// Calling it again with the same library returns the runtime already loaded; a different
    /// library is an error ([`OrtError::AlreadyLoaded`]), since a process can hold only one.
    /// The library must be ONNX Runtime 1.31 or newer.
    pub fn init(library: impl AsRef<Path>) -> Result<&'static OrtRuntime> {
        let library = library.as_ref();
        let requested = std::path::absolute(library).map_err(|e| OrtError::Load {
            path: library.to_path_buf(),
            reason: e.to_string(),
        })?;
        let _guard = INIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = RUNTIME.get() {
            return if same_file(&runtime.library, &requested) {
                Ok(runtime)
            } else {
                Err(OrtError::AlreadyLoaded {
                    loaded: runtime.library.clone(),
                    requested,
                })
            };
        }
        if !requested.is_file() {
            return Err(OrtError::Load {
                path: requested,
                reason: "no such file".into(),
            });
        }
        let builder = ort::init_from(&requested).map_err(|e| OrtError::Load {
            path: requested.clone(),
            reason: e.to_string(),
        })?;
        let environment = builder
            .with_name("transfuse")
            .with_telemetry(false)
            .build()
            .map_err(|e| OrtError::Environment(e.to_string()))?;
        let runtime = OrtRuntime {
            environment,
            library: requested,
            build_info: ort::info().to_string(),
        };
        Ok(RUNTIME.get_or_init(|| runtime))
    }

    /// The runtime, if [`OrtRuntime::init`] has succeeded in this process.
    pub fn get() -> Option<&'static OrtRuntime> {
        RUNTIME.get()
    }

    /// The library file this runtime was loaded from (absolute).
    pub fn library_path(&self) -> &Path {
        &self.library
    }

    /// ONNX Runtime's build information string (version, git commit, compiler flags).
    pub fn build_info(&self) -> &str {
        &self.build_info
    }

    /// The ONNX Runtime version (`1.31.1`), read from the build information's release branch
    /// (`git-branch=rel-1.31.1`), else from the library's file name (`libonnxruntime.so.1.31.1`).
    pub fn version(&self) -> Option<String> {
        version_from_build_info(&self.build_info).or_else(|| version_from_file_name(&self.library))
    }

    pub(crate) fn environment(&self) -> &Environment {
        &self.environment
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

fn version_from_build_info(info: &str) -> Option<String> {
    let branch = info
        .split([',', ' '])
        .find_map(|field| field.trim().strip_prefix("git-branch="))?;
    let version = branch.strip_prefix("rel-").unwrap_or(branch);
    is_version(version).then(|| version.to_string())
}

fn version_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let version = name.split_once(".so.").map(|(_, v)| v)?;
    is_version(version).then(|| version.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_the_release_branch() {
        let info = "ORT Build Info: git-branch=rel-1.31.1, git-commit-id=abc, build type=Release";
        assert_eq!(version_from_build_info(info).as_deref(), Some("1.31.1"));
        assert_eq!(
            version_from_build_info("ORT Build Info: git-branch=main, x"),
            None
        );
    }

    #[test]
    fn version_is_read_from_the_file_name() {
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(),
            Some("1.31.1")
        );
        assert_eq!(
            version_from_file_name(Path::new("/x/libonnxruntime.so")),
            None
        );
    }

    #[test]
    fn a_missing_library_is_a_load_error() {
        let err = OrtRuntime::init("/nonexistent/libonnxruntime.so.1.31.1").unwrap_err();
        assert!(
            matches!(err, OrtError::Load { .. } | OrtError::AlreadyLoaded { .. }),
            "{err}"
        );
    }
}
