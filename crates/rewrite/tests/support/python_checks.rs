//! The Python-side checks of written models: `onnx.checker.check_model` (full check), ONNX
//! shape inference in strict mode, and an ONNX Runtime CPU session load, through the
//! `onnx` and `onnxruntime` packages (CI installs them). Without Python or those packages a
//! check fails with a message saying so; `TRANSFUSE_SKIP_PYTHON_CHECKS=1` skips it on purpose.

use std::path::PathBuf;
use std::process::Command;

use transfuse_ir::Model;

const SKIP_VARIABLE: &str = "TRANSFUSE_SKIP_PYTHON_CHECKS";

/// Checks each file named on the command line; prints one line per failure and exits 1 if
/// any failed. Skeleton models keep dims and type of their large weights but no data: those
/// are filled with zeros first. ONNX Runtime's graph optimizations are off unless the first
/// argument is `--ort-optimize`.
const CHECK_SCRIPT: &str = r#"
import sys
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")
paths = sys.argv[1:]
optimize = bool(paths) and paths[0] == "--ort-optimize"
if optimize:
    paths = paths[1:]
failed = 0
for path in paths:
    try:
        model = onnx.load(path)
        for i, t in enumerate(model.graph.initializer):
            if not any(len(getattr(t, f)) for f in FIELDS) and t.data_location != onnx.TensorProto.EXTERNAL:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
                filled = numpy_helper.from_array(np.zeros(tuple(t.dims), dtype=dtype), t.name)
                model.graph.initializer[i].CopyFrom(filled)
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
        options = ort.SessionOptions()
        if not optimize:
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
pub fn python_available() -> bool {
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

/// Writes each `(name, model)` to a scratch directory and checks them all in one Python run
/// (with ONNX Runtime's graph optimizations on load when `ort_optimize`); panics naming every
/// rejected model, with `what` saying which models they are. Does nothing when skipped.
pub fn check_models(
    what: &str,
    models: impl IntoIterator<Item = (String, Model)>,
    ort_optimize: bool,
) {
    if !python_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "transfuse-checker-{}-{}",
        what.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, model) in models {
        let file = dir.join(format!("{name}.onnx"));
        model.save(&file).unwrap();
        files.push(file);
    }
    let mut command = Command::new(python());
    command.arg("-c").arg(CHECK_SCRIPT);
    if ort_optimize {
        command.arg("--ort-optimize");
    }
    let result = command.args(&files).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        result.status.success(),
        "{what} the ONNX checker, strict shape inference or ONNX Runtime reject:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}
