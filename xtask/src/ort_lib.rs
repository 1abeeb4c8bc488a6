//! `cargo xtask ort-lib`: provide the ONNX Runtime shared library the runner loads.
//!
//! Order: the library `transfuse-ort` finds itself ([`transfuse_ort::library_path`]:
//! `ORT_DYLIB_PATH` when set, else `target/onnxruntime/libonnxruntime.so.1.31.1` when
//! present); else the PyPI wheel `onnxruntime==1.31.1` is downloaded with pip into
//! `target/onnxruntime/wheel` and that one library file is extracted from it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use transfuse_ort::{LIBRARY_FILE_NAME, LIBRARY_PATH_VARIABLE, ONNX_RUNTIME_VERSION, OrtRuntime};

/// Arguments of `cargo xtask ort-lib`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also load the library and print ONNX Runtime's version and build information.
    #[arg(long)]
    pub check: bool,
}

/// Provisions the library and prints its absolute path on stdout (and nothing else there),
/// so CI can run `export ORT_DYLIB_PATH=$(cargo xtask ort-lib)`.
pub fn run(args: Args) -> Result<()> {
    let path = provision()?;
    if args.check {
        let runtime =
            OrtRuntime::init(&path).with_context(|| format!("loading {}", path.display()))?;
        eprintln!(
            "loaded ONNX Runtime {} ({})",
            runtime
                .version()
                .unwrap_or_else(|| "of unknown version".into()),
            runtime.build_info()
        );
    }
    println!("{}", path.display());
    Ok(())
}

/// The library to load, provisioning it first when needed (see the module docs).
pub fn provision() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(LIBRARY_PATH_VARIABLE).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{LIBRARY_PATH_VARIABLE} is '{}', which is not a file: point it at {LIBRARY_FILE_NAME} or unset it to let the xtask download ONNX Runtime {ONNX_RUNTIME_VERSION}",
                path.display()
            );
        }
    }
    if let Ok(found) = transfuse_ort::library_path() {
        return Ok(found);
    }
    let destination = transfuse_ort::provisioned_path();
    download_and_extract(&destination).map_err(|e| {
        anyhow!(
            "cannot provide ONNX Runtime {ONNX_RUNTIME_VERSION}: {e:#}. Set {LIBRARY_PATH_VARIABLE} to a {LIBRARY_FILE_NAME}, or make `python3 -m pip download onnxruntime=={ONNX_RUNTIME_VERSION}` work (network access to PyPI)"
        )
    })?;
    Ok(destination)
}

/// Loads ONNX Runtime (provisioning it first when needed) for this process.
pub fn runtime() -> Result<&'static OrtRuntime> {
    let path = provision()?;
    OrtRuntime::init(&path).with_context(|| format!("loading ONNX Runtime from {}", path.display()))
}

fn download_and_extract(destination: &Path) -> Result<()> {
    let wheel_dir = destination
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join("wheel");
    std::fs::create_dir_all(&wheel_dir)
        .with_context(|| format!("creating {}", wheel_dir.display()))?;
    let wheel = match find_wheel(&wheel_dir)? {
        Some(w) => w,
        None => {
            eprintln!(
                "downloading onnxruntime=={ONNX_RUNTIME_VERSION} from PyPI into {}",
                wheel_dir.display()
            );
            let output = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    &format!("onnxruntime=={ONNX_RUNTIME_VERSION}"),
                ])
                .args([
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    "-d",
                ])
                .arg(&wheel_dir)
                .output()
                .context("running python3 -m pip (is python3 with pip installed?)")?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no message");
                bail!("pip download failed ({}): {}", output.status, last.trim());
            }
            find_wheel(&wheel_dir)?.ok_or_else(|| {
                anyhow!(
                    "pip reported success but left no wheel in {}",
                    wheel_dir.display()
                )
            })?
        }
    };
    extract_library(&wheel, destination)
}

/// The `onnxruntime-<version>-*.whl` in `dir`, if any.
fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("onnxruntime-{ONNX_RUNTIME_VERSION}-");
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            wheels.push(path);
        }
    }
    wheels.sort();
    Ok(wheels.pop())
}

/// Copies `onnxruntime/capi/<library>` out of the wheel (a zip archive) to `destination`,
/// through a temporary file renamed into place.
pub(crate) fn extract_library(wheel: &Path, destination: &Path) -> Result<()> {
    let member = format!("onnxruntime/capi/{LIBRARY_FILE_NAME}");
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("reading {} as a zip archive", wheel.display()))?;
    let mut entry = archive
        .by_name(&member)
        .with_context(|| format!("finding {member} in {}", wheel.display()))?;
    let temporary = destination.with_extension("partial");
    let result = (|| -> Result<()> {
        let mut out = File::create(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("extracting {member}"))?;
        out.flush()?;
        set_executable(&temporary)?;
        std::fs::rename(&temporary, destination)
            .with_context(|| format!("renaming into {}", destination.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting permissions of {}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn extracts_only_the_library_from_a_wheel() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wheel = dir.path().join("onnxruntime-1.31.1-test.whl");
        {
            let mut zip = zip::ZipWriter::new(File::create(&wheel).expect("create"));
            let options = zip::write::SimpleFileOptions::default();
            zip.start_file("onnxruntime/__init__.py", options)
                .expect("start");
            zip.write_all(b"python").expect("write");
            zip.start_file(format!("onnxruntime/capi/{LIBRARY_FILE_NAME}"), options)
                .expect("start");
            zip.write_all(b"the library bytes").expect("write");
            zip.finish().expect("finish");
        }
        assert_eq!(find_wheel(dir.path()).expect("list"), Some(wheel.clone()));
        let destination = dir.path().join(LIBRARY_FILE_NAME);
        extract_library(&wheel, &destination).expect("extract");
        assert_eq!(
            std::fs::read(&destination).expect("read"),
            b"the library bytes"
        );
    }

    #[test]
    fn a_wheel_without_the_library_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wheel = dir.path().join("onnxruntime-1.31.1-test.whl");
        {
            let mut zip = zip::ZipWriter::new(File::create(&wheel).expect("create"));
            zip.start_file("other.txt", zip::write::SimpleFileOptions::default())
                .expect("start");
            zip.finish().expect("finish");
        }
        let destination = dir.path().join(LIBRARY_FILE_NAME);
        let err = extract_library(&wheel, &destination).unwrap_err();
        assert!(
            format!("{err:#}").contains("finding onnxruntime/capi/"),
            "{err:#}"
        );
        assert!(!destination.exists());
        assert!(!destination.with_extension("partial").exists());
    }
}
