//! `transfuse optimize --attention-op`: `mha` writes MultiHeadAttention where `auto` packs
//! into Attention; an unknown value is a usage error (exit 2) that writes nothing.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use transfuse_ir::Model;

mod support;
use support::tiny;

fn fused_ops(model: &Model, op: &str) -> usize {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == op && n.domain == "com.microsoft")
        .count()
}

#[test]
fn attention_op_picks_the_fused_op() {
    let dir = tempfile::tempdir().unwrap();
    for (op, attention, mha) in [("auto", 2, 0), ("attention", 2, 0), ("mha", 0, 2)] {
        let out = dir.path().join(format!("{op}.onnx"));
        let run = Command::cargo_bin("transfuse")
            .unwrap()
            .args(["optimize", "--quiet", "--attention-op", op, "-o"])
            .arg(&out)
            .arg(tiny("bert_sdpa_ts_op17.onnx"))
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{op}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let model = Model::load(&out).unwrap();
        assert_eq!(fused_ops(&model, "Attention"), attention, "{op}");
        assert_eq!(fused_ops(&model, "MultiHeadAttention"), mha, "{op}");
    }
}

#[test]
fn an_unknown_attention_op_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let run = Command::cargo_bin("transfuse")
        .unwrap()
        .args(["optimize", "--attention-op", "packed", "-o"])
        .arg(&out)
        .arg(tiny("bert_sdpa_ts_op17.onnx"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("--attention-op") && stderr.contains("auto, attention, mha"),
        "{stderr}"
    );
    assert!(!out.exists());
}
