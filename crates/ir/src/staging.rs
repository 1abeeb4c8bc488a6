//! Files being written, staged under temporary names until they are complete.
//!
//! Every temporary file the crate creates is registered here for as long as it exists, so
//! that a program interrupted by a signal can remove them all with
//! [`remove_staged_files`] before it exits: an interrupted save leaves nothing behind.
//!
//! Contract: registration, creation, the final renames and removal all happen under one lock.
//! Once [`remove_staged_files`] has run, no new file can be staged, so a signal handler that
//! calls it and then exits cannot race with a save in progress on another thread: either the
//! save's renames completed before the handler took the lock (the outputs are whole), or the
//! handler removes the temporary files and later attempts fail.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::{IrError, Result};

#[derive(Debug, Default)]
struct Staged {
    paths: Vec<PathBuf>,
    closing: bool,
}

static STAGED: Mutex<Staged> = Mutex::new(Staged {
    paths: Vec::new(),
    closing: false,
});

fn staged() -> MutexGuard<'static, Staged> {
    // A panic while holding the lock cannot leave the list inconsistent (every update is one
    // push, retain or flag store), so a poisoned lock is still usable.
    STAGED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The temporary name used while `path` is written: a hidden file in the same directory
/// (so the final rename stays on one file system), unique to this process.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Creates (truncating) the temporary file `tmp` and registers it.
pub(crate) fn create(tmp: &Path) -> Result<File> {
    let mut list = staged();
    if list.closing {
        return Err(IrError::io(
            "creating",
            tmp,
            std::io::Error::new(std::io::ErrorKind::Interrupted, "the program is exiting"),
        ));
    }
    let file = File::create(tmp).map_err(|e| IrError::io("creating", tmp, e))?;
    list.paths.push(tmp.to_path_buf());
    Ok(file)
}

/// Removes the temporary files of a failed write.
pub(crate) fn discard(tmps: &[&Path]) {
    let mut list = staged();
    for tmp in tmps {
        let _ = std::fs::remove_file(tmp);
        list.paths.retain(|p| p != tmp);
    }
}

/// Renames every `(temporary, destination)` pair into place, as one step with respect to
/// [`remove_staged_files`]. If a rename fails, the remaining temporary files and the
/// destinations already renamed by this call are removed, so no partial set of outputs
/// (for example external data without its model) is left.
pub(crate) fn commit(pending: &[(PathBuf, PathBuf)]) -> Result<()> {
    let mut list = staged();
    for (i, (tmp, dest)) in pending.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, dest) {
            for (t, _) in &pending[i..] {
                let _ = std::fs::remove_file(t);
            }
            for (_, d) in &pending[..i] {
                let _ = std::fs::remove_file(d);
            }
            list.paths.retain(|p| !pending.iter().any(|(t, _)| t == p));
            return Err(IrError::io("renaming into", dest, e));
        }
    }
    list.paths.retain(|p| !pending.iter().any(|(t, _)| t == p));
    Ok(())
}

/// Removes every temporary file a save in progress has created, and makes later saves in
/// this process fail instead of creating new ones. Returns how many files were removed.
///
/// For a program's interrupt (SIGINT/SIGTERM) handler: call it, then exit. It takes a lock
/// that saves hold only briefly (while creating and renaming files, never while writing).
pub fn remove_staged_files() -> usize {
    let mut list = staged();
    list.closing = true;
    let mut removed = 0;
    for p in list.paths.drain(..) {
        if std::fs::remove_file(&p).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes `bytes` to `path` through a staged temporary file: the file appears complete or
/// not at all, also when the program is interrupted (see [`remove_staged_files`]).
pub fn write_file_atomically(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let path = path.as_ref();
    let tmp = temp_path(path);
    let written = create(&tmp).and_then(|mut f| {
        f.write_all(bytes)
            .map_err(|e| IrError::io("writing", &tmp, e))
    });
    if let Err(e) = written {
        discard(&[&tmp]);
        return Err(e);
    }
    commit(&[(tmp, path.to_path_buf())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_destination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("report.json");
        write_file_atomically(&dest, b"{}").expect("write");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
        assert_eq!(std::fs::read(&dest).expect("read"), b"{}");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The destination is a directory: the rename fails after the data was written.
        let dest = dir.path().join("taken");
        std::fs::create_dir(&dest).expect("mkdir");
        std::fs::write(dest.join("x"), b"x").expect("fill");
        assert!(write_file_atomically(&dest, b"data").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }
}
