//! Running a model on generated inputs: through the reference interpreter and through
//! ONNX Runtime. Both return `(output name, shape, values as f64)` in graph output order.

use std::collections::HashMap;
use std::path::PathBuf;

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::{
    LIBRARY_FILE_NAME, LIBRARY_PATH_VARIABLE, OptimizationLevel, OrtRuntime, Session,
    SessionOptions,
};

/// One run's outputs.
pub type Outputs = Vec<(String, Vec<usize>, Vec<f64>)>;

/// Every value of one run by name: `(shape, values)`.
pub type AllValues = HashMap<String, (Vec<usize>, Vec<f64>)>;

/// Runs `model` through the reference interpreter.
pub fn interpreter(model: &Model, inputs: &[(String, Tensor)]) -> Result<Outputs, String> {
    let interp = Interpreter::new(model).map_err(|e| format!("interpreter: {e}"))?;
    let mut feed = HashMap::new();
    for (name, t) in inputs {
        feed.insert(
            name.clone(),
            Value::from_tensor(t).map_err(|e| format!("input {name}: {e}"))?,
        );
    }
    let mut out = interp
        .run(&feed)
        .map_err(|e| format!("interpreter run: {e}"))?;
    model
        .graph
        .outputs
        .iter()
        .map(|o| {
            let v = out
                .remove(&o.name)
                .ok_or_else(|| format!("no output {}", o.name))?;
            Ok((o.name.clone(), v.shape().to_vec(), v.to_f64_vec()))
        })
        .collect()
}

/// ONNX Runtime, from `ORT_DYLIB_PATH` or `target/onnxruntime/` (`cargo xtask ort-lib`
/// provisions it).
pub fn ort_runtime() -> Result<&'static OrtRuntime, String> {
    let path = match std::env::var_os(LIBRARY_PATH_VARIABLE).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
            target.join("onnxruntime").join(LIBRARY_FILE_NAME)
        }
    };
    if !path.is_file() {
        return Err(format!(
            "ONNX Runtime library not found at {} (set {LIBRARY_PATH_VARIABLE} or run `cargo xtask ort-lib`)",
            path.display()
        ));
    }
    OrtRuntime::init(&path).map_err(|e| e.to_string())
}

/// Runs `model` in ONNX Runtime (CPU, one thread) with graph optimizations `level`.
pub fn onnx_runtime(
    model: &Model,
    inputs: &[(String, Tensor)],
    level: OptimizationLevel,
) -> Result<Outputs, String> {
    let runtime = ort_runtime()?;
    let options = SessionOptions::default()
        .optimization_level(level)
        .intra_op_threads(1);
    let mut session =
        Session::from_bytes(runtime, &model.to_bytes(), &options).map_err(|e| e.to_string())?;
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
    outputs
        .into_iter()
        .map(|(name, t)| {
            let shape = t
                .dims
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            let values = t.to_f64_vec().map_err(|e| format!("output {name}: {e}"))?;
            Ok((name, shape, values))
        })
        .collect()
}

/// Runs `model` through the reference interpreter and returns every value it computes
/// (intermediates included) by name: `(shape, values as f64)`.
pub fn interpreter_values(model: &Model, inputs: &[(String, Tensor)]) -> Result<AllValues, String> {
    let interp = Interpreter::new(model).map_err(|e| format!("interpreter: {e}"))?;
    let mut feed = HashMap::new();
    for (name, t) in inputs {
        feed.insert(
            name.clone(),
            Value::from_tensor(t).map_err(|e| format!("input {name}: {e}"))?,
        );
    }
    let mut values = HashMap::new();
    interp
        .run_observed(&feed, &mut |name, v| {
            values.insert(name.to_string(), (v.shape().to_vec(), v.to_f64_vec()));
        })
        .map_err(|e| format!("interpreter run: {e}"))?;
    Ok(values)
}
