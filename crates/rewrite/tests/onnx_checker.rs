//! Every optimized model in `testdata/models/tiny` and `testdata/models/skeleton` passes `onnx.checker.check_model` (full
//! check), ONNX shape inference in strict mode, and an ONNX Runtime session load, through the
//! Python `onnx` and `onnxruntime` packages (CI installs them).
//!
//! Without Python or those packages the test fails with a message saying so; set
//! `TRANSFUSE_SKIP_PYTHON_CHECKS=1` to skip it deliberately.

#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use support::python_checks::check_models;
use transfuse_ir::Model;
use transfuse_rewrite::{OptimizeOptions, optimize};

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
    let optimized = models(kind).into_iter().map(|path| {
        let model = Model::load(&path).unwrap();
        let (out, _) = optimize(&model, &OptimizeOptions::default()).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        (name, out)
    });
    check_models(&format!("optimized {kind} models"), optimized, false);
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
