//! SIGINT and SIGTERM at any point of `transfuse optimize` leave no temporary file, and the
//! output is either absent or whole.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use transfuse_ir::Model;

/// The base-size BERT when `cargo xtask models` made it (a save takes long enough to be
/// interrupted in the middle), else the bundled tiny one.
fn model() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let base = root.join("target/models/bert_eager_ts_op14.onnx");
    if base.exists() {
        base
    } else {
        root.join("testdata/models/tiny/bert_eager_ts_op14.onnx")
    }
}

#[test]
fn interrupted_runs_leave_no_temporary_files() {
    let input = model();
    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        for delay_ms in [0_u64, 50, 150, 300, 600, 1200] {
            let dir = tempfile::tempdir().unwrap();
            let (out, report) = (dir.path().join("m.onnx"), dir.path().join("r.json"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_transfuse"))
                .arg("optimize")
                .arg(&input)
                .arg("-o")
                .arg(&out)
                .arg("--report")
                .arg(&report)
                .arg("--no-verify")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let killed = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .unwrap();
            let code = child.wait().unwrap().code();
            let left: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                !left.iter().any(|n| n.contains(".tmp-")),
                "SIG{signal} after {delay_ms} ms left {left:?}"
            );
            if killed.success() && code != Some(0) {
                // Interrupted (a signal before the handler is installed kills the process
                // outright: no code).
                assert!(
                    code.is_none() || code == Some(status),
                    "SIG{signal} after {delay_ms} ms: status {code:?}"
                );
            }
            if out.exists() {
                Model::load(&out).unwrap();
            }
        }
    }
}
