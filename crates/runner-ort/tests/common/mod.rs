//! Shared helpers of the integration tests: finding ONNX Runtime and the test models,
//! reading test data, generating simple inputs, comparing tensors.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use transfuse_ir::{DataType, Dim, Model, Tensor};
use transfuse_ort::OrtRuntime;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// ONNX Runtime, found by [`OrtRuntime::locate`] (`ORT_DYLIB_PATH`, else
/// `target/onnxruntime/`). Fails the test with instructions when neither has the library: CI
/// provisions it before running the tests.
pub fn runtime() -> &'static OrtRuntime {
    OrtRuntime::locate().unwrap_or_else(|e| {
        panic!("{e} (or `export ORT_DYLIB_PATH=$(cargo xtask ort-lib)`) before `cargo test`")
    })
}

/// The tiny test models: (name, model file), sorted by name.
pub fn tiny_models() -> Vec<(String, PathBuf)> {
    let dir = workspace_root()
        .join("testdata")
        .join("models")
        .join("tiny");
    let mut models: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    models.sort();
    assert!(!models.is_empty(), "no tiny models in {}", dir.display());
    models
}

/// The materialized base-size models under `target/models` (made by `cargo xtask models`):
/// (name, model file); empty when none are there.
pub fn materialized_models() -> Vec<(String, PathBuf)> {
    let dir = target_dir().join("models");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut models: Vec<(String, PathBuf)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    models.sort();
    models
}

/// The model's graph inputs that are not initializers, in order.
pub fn graph_input_names(model: &Model) -> Vec<String> {
    model
        .graph
        .inputs
        .iter()
        .filter(|v| model.graph.initializer(&v.name).is_none())
        .map(|v| v.name.clone())
        .collect()
}

/// Reads `input_N.pb` and `output_N.pb` from an ONNX test-data directory. Inputs are paired
/// with the model's input names (by their own name when it is one, else by position).
pub fn load_test_data(model: &Model, dir: &Path) -> (Vec<(String, Tensor)>, Vec<Tensor>) {
    let names = graph_input_names(model);
    let read_all = |prefix: &str| -> Vec<Tensor> {
        (0..)
            .map(|i| dir.join(format!("{prefix}_{i}.pb")))
            .take_while(|p| p.is_file())
            .map(|p| Tensor::load_pb(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
            .collect()
    };
    let inputs = read_all("input")
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let name = if names.contains(&t.name) {
                t.name.clone()
            } else {
                names[i].clone()
            };
            (name, t)
        })
        .collect();
    (inputs, read_all("output"))
}

/// Simple deterministic inputs for a model's signature: symbolic dim 0 is `batch`, any other
/// symbolic dim is `seq`. Integer inputs named like masks get ones with the last quarter of the
/// final row padded; token type ids zeros; other integer inputs (token ids) cycle through
/// 1..=97 (inside every test model's vocabulary); floats are a fixed pseudo-random sequence
/// in [-1, 1).
pub fn simple_inputs(model: &Model, batch: i64, seq: i64) -> Vec<(String, Tensor)> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next_float = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut out = Vec::new();
    for name in graph_input_names(model) {
        let info = model.graph.inputs.iter().find(|v| v.name == name).unwrap();
        let dtype = info.elem_type().unwrap();
        let dims: Vec<i64> = info
            .shape()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(v) => *v,
                _ if i == 0 => batch,
                _ => seq,
            })
            .collect();
        let count: i64 = dims.iter().product();
        let last_dim = *dims.last().unwrap_or(&1);
        let lower = name.to_ascii_lowercase();
        let tensor = if dtype == DataType::Float {
            let values: Vec<f32> = (0..count).map(|_| next_float()).collect();
            Tensor::from_f32(&name, dims, &values)
        } else {
            let values: Vec<i64> = (0..count)
                .map(|i| {
                    if lower.contains("mask") {
                        let row = i / last_dim;
                        let col = i % last_dim;
                        let padded = row == count / last_dim - 1 && col >= last_dim - last_dim / 4;
                        i64::from(!padded)
                    } else if lower.contains("token_type") {
                        0
                    } else {
                        1 + (i * 31) % 97
                    }
                })
                .collect();
            match dtype {
                DataType::Int64 => Tensor::from_i64(&name, dims, &values),
                DataType::Int32 => Tensor::from_i32(
                    &name,
                    dims,
                    &values.iter().map(|&v| v as i32).collect::<Vec<_>>(),
                ),
                other => panic!("input {name}: no simple generator for {other}"),
            }
        };
        out.push((name, tensor));
    }
    out
}

/// Largest absolute elementwise difference; panics on shape mismatch.
pub fn max_abs_diff(actual: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(
        actual.dims, expected.dims,
        "shapes differ for {}",
        expected.name
    );
    let a = actual.to_f64_vec().unwrap();
    let b = expected.to_f64_vec().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, |m, d| if d.is_nan() || d > m { d } else { m })
}
