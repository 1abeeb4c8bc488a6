//! `transfuse optimize --target`: `cpu` leaves out the skip layer norms (ONNX Runtime's CPU
//! kernel of them is slower than the ops they replace) and says so; `gpu`, the default, keeps
//! every fusion; an unknown device is a usage error.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use transfuse_ir::Model;

mod support;
use support::tiny;

fn count(model: &Model, op: &str) -> usize {
    model.graph.nodes.iter().filter(|n| n.op_type == op).count()
}

/// Runs `transfuse optimize` on a tiny ViT with `extra`: exit code, stderr, output model.
fn optimize(extra: &[&str]) -> (i32, String, Option<Model>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let run = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .arg("optimize")
        .arg(tiny("vit_eager_ts_op14.onnx"))
        .arg("-o")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let model = out.is_file().then(|| Model::load(&out).unwrap());
    (
        run.status.code().unwrap(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
        model,
    )
}

#[test]
fn cpu_target_leaves_out_the_skip_layer_norms_and_says_so() {
    let (code, stderr, model) = optimize(&["--target", "cpu"]);
    assert_eq!(code, 0, "{stderr}");
    let model = model.unwrap();
    assert_eq!(count(&model, "SkipLayerNormalization"), 0);
    assert!(count(&model, "LayerNormalization") >= 5);
    assert_eq!(count(&model, "Attention"), 2);
    assert!(
        stderr.contains("--target cpu leaves out skiplayernorm, skiprmsnorm"),
        "{stderr}"
    );
}

#[test]
fn gpu_target_is_the_default_and_keeps_every_fusion() {
    let (code, stderr, model) = optimize(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count(&model.unwrap(), "SkipLayerNormalization"), 4);
    assert!(!stderr.contains("--target"), "{stderr}");
    let (code, _, model) = optimize(&["--target", "gpu"]);
    assert_eq!(code, 0);
    assert_eq!(count(&model.unwrap(), "SkipLayerNormalization"), 4);
}

#[test]
fn unknown_target_is_a_usage_error_and_writes_nothing() {
    let (code, stderr, model) = optimize(&["--target", "tpu"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown target 'tpu' (valid: gpu, cpu)"),
        "{stderr}"
    );
    assert!(model.is_none());
}
