//! `transfuse parity` end to end: a faithful candidate passes with exit status 0, a
//! perturbed one fails with a non-zero status, names the first diverging value, and writes the
//! JSON report.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use transfuse_ir::{Model, Tensor};

mod support;
use support::tiny;

/// Runs `parity MODEL CANDIDATE --runtime RUNTIME --json FILE ...`: (success, stdout, stderr, json).
fn parity(
    model: &Path,
    candidate: &Path,
    runtime: &str,
    extra: &[&str],
) -> (bool, String, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .arg("parity")
        .arg(model)
        .arg(candidate)
        .args(["--runtime", runtime, "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    (
        out.status.success(),
        stdout,
        stderr,
        serde_json::from_str(&text).unwrap(),
    )
}

/// Scales the first feed-forward MatMul's weights (the largest single-use MatMul weight) by 1.5;
/// returns the MatMul's output name.
fn perturb(model: &mut Model) -> String {
    let consumers = model.graph.consumers();
    let size = |n: &transfuse_ir::Node| -> Option<usize> {
        let t = model.graph.initializer(n.inputs.get(1)?)?;
        (n.op_type == "MatMul" && consumers.get(n.inputs[1].as_str())?.len() == 1)
            .then(|| t.numel().unwrap())
    };
    let largest = model.graph.nodes.iter().filter_map(size).max().unwrap();
    let node = model
        .graph
        .nodes
        .iter()
        .find(|n| size(n) == Some(largest))
        .unwrap()
        .clone();
    drop(consumers);
    let weight = model.graph.initializer(&node.inputs[1]).unwrap().clone();
    let scaled: Vec<f32> = weight
        .to_f32_vec()
        .unwrap()
        .iter()
        .map(|v| v * 1.5)
        .collect();
    model
        .graph
        .add_initializer(Tensor::from_f32(&weight.name, weight.dims.clone(), &scaled));
    node.outputs[0].clone()
}

fn check_cli(runtime: &str) {
    let original = tiny("bert_eager_ts_op14.onnx");
    let (ok, stdout, stderr, report) = parity(
        &original,
        &original,
        runtime,
        &["--padding", "left", "--batch", "3"],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("PASS"), "{stdout}");
    assert_eq!(report["pass"], true);
    assert_eq!(report["runtime"], runtime);

    let mut model = Model::load(&original).unwrap();
    let diverging = perturb(&mut model);
    let dir = tempfile::tempdir().unwrap();
    let candidate = dir.path().join("perturbed.onnx");
    model.save(&candidate).unwrap();
    let (ok, stdout, stderr, report) = parity(&original, &candidate, runtime, &[]);
    println!("{stdout}");
    assert!(!ok, "a perturbed candidate passed:\n{stdout}");
    assert!(
        stdout.contains(&format!("first diverging value: '{diverging}'")),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("FAIL"), "{stdout}");
    assert!(stderr.contains("parity failed: output_0"), "{stderr}");
    assert_eq!(report["pass"], false);
    assert_eq!(report["outputs"][0]["pass"], false);
    assert_eq!(report["first_divergence"]["name"], diverging.as_str());
}

#[test]
fn parity_cli_through_ort() {
    check_cli("ort");
}

#[test]
fn parity_cli_through_the_reference_interpreter() {
    check_cli("reference");
}

/// `--provider`: `cpu` runs as before; `cuda` in a build without the CUDA provider is a clear
/// error (exit 3), not a silent run on the CPU; an unknown provider and `--provider` with the
/// reference interpreter are usage errors (exit 2).
#[test]
fn provider_option_selects_onnx_runtimes_execution_provider() {
    let model = tiny("bert_sdpa_ts_op17.onnx");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_transfuse"))
            .arg("parity")
            .arg(&model)
            .arg(&model)
            .args(extra)
            .output()
            .unwrap()
    };
    let cpu = run(&["--runtime", "ort", "--provider", "cpu"]);
    assert!(cpu.status.success(), "{cpu:?}");
    assert!(String::from_utf8_lossy(&cpu.stdout).starts_with("PASS"));
    let unknown = run(&["--runtime", "ort", "--provider", "tpu"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("cpu, cuda, cuda:N"));
    let reference = run(&["--provider", "cpu"]);
    assert_eq!(reference.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&reference.stderr).contains("--runtime ort only"));
    // This crate's tests build without the CUDA provider (and run where there is no GPU).
    let cuda = run(&["--runtime", "ort", "--provider", "cuda"]);
    assert_eq!(cuda.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&cuda.stderr);
    assert!(stderr.contains("CUDA execution provider"), "{stderr}");
}
