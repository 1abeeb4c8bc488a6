//! Every optimized model in `testdata/models/tiny` and `testdata/models/skeleton` passes `onnx.checker.check_model` (full
//! check), ONNX shape inference in strict mode, and an ONNX Runtime session load, through the
//! Python `onnx` and `onnxruntime` packages (CI installs them).
//!
//! Without Python or those packages the test fails with a message saying so; set
//! `TRANSFUSE_SKIP_PYTHON_CHECKS=1` to skip it deliberately.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use transfuse_ir::Model;
use transfuse_rewrite::{OptimizeOptions, optimize};

const SKIP_VARIABLE: &str = "TRANSFUSE_SKIP_PYTHON_CHECKS";

/// Checks each file named on the command line; prints one line per failure and exits 1 if
/// any failed.
const CHECK_SCRIPT: &str = r#"
import sys
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")
failed = 0
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        # Skeleton models keep dims and type of their large weights but no data: zeros.
        for i, t in enumerate(model.graph.initializer):
            if not any(len(getattr(t, f)) for f in FIELDS) and t.data_location != onnx.TensorProto.EXTERNAL:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
                filled = numpy_helper.from_array(np.zeros(tuple(t.dims), dtype=dtype), t.name)
                model.graph.initializer[i].CopyFrom(filled)
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        failed += 1
        print(f"{path}: {type(e).__name__}: {e}".replace("\n", " "))
sys.exit(1 if failed else 0)
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// False (after saying why) when the checks are skipped on purpose; panics when Python or
/// its packages are missing otherwise.
fn python_available() -> bool {
    if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1") {
        eprintln!("{SKIP_VARIABLE}=1: ONNX checker tests skipped");
        return false;
    }
    let probe = Command::new(python())
        .args(["-c", "import onnx, onnxruntime"])
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "`{} -c 'import onnx, onnxruntime'` failed: {} (install them, e.g. `pip install onnx \
             onnxruntime`, or set {SKIP_VARIABLE}=1 to skip these checks)",
            python(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run `{}`: {e} (install Python 3 with onnx and onnxruntime, or set \
             {SKIP_VARIABLE}=1 to skip these checks)",
            python()
        ),
    }
}

fn models(kind: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models")
        .join(kind);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    out.sort();
    assert!(out.len() >= 7, "models missing in {}", dir.display());
    out
}

/// Optimizes every model of `testdata/models/<kind>` and checks the outputs in one Python run.
fn check_all(kind: &str) {
    if !python_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("transfuse-checker-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for path in models(kind) {
        let model = Model::load(&path).unwrap();
        let (out, _) = optimize(&model, &OptimizeOptions::default()).unwrap();
        let file = dir.join(path.file_name().unwrap());
        out.save(&file).unwrap();
        files.push(file);
    }
    let result = Command::new(python())
        .arg("-c")
        .arg(CHECK_SCRIPT)
        .args(&files)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        result.status.success(),
        "optimized {kind} models the ONNX checker, strict shape inference or ONNX Runtime \
         reject:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn every_optimized_tiny_model_passes_the_onnx_checker() {
    check_all("tiny");
}

/// The base-size skeletons (BERT-base, ViT-B/16), their stripped weights filled with zeros
/// for the checks.
#[test]
fn every_optimized_skeleton_model_passes_the_onnx_checker() {
    check_all("skeleton");
}
