//! `transfuse optimize`: the fused model, the JSON report, the Graphviz view, and no output
//! at all when the run fails.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use transfuse_ir::Model;

mod support;
use support::{text, tiny, transfuse};

#[test]
fn optimize_writes_model_report_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report, dot) = (
        dir.path().join("m.onnx"),
        dir.path().join("r.json"),
        dir.path().join("g.dot"),
    );
    let run = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .args([
            "optimize",
            "--fusions",
            "all,-attention,-embedlayernorm",
            "-o",
        ])
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .arg("--dot")
        .arg(&dot)
        .arg("--dot-full")
        .arg(tiny("bert_sdpa_ts_op17.onnx"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("SkipLayerNormalization") && stdout.contains("nodes 264 ->"),
        "{stdout}"
    );

    let model = Model::load(&out).unwrap();
    assert!(model.graph.nodes.iter().any(|n| n.op_type == "BiasGelu"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["fused"]["SkipLayerNormalization"], 4);
    assert_eq!(json["fused"]["BiasGelu"], 2);
    assert_eq!(json["fused"]["Attention"], 0);
    assert_eq!(json["nodes_before"], 264);
    assert_eq!(json["nodes_after"], model.graph.nodes.len());
    assert_eq!(json["egraph"]["stop_reason"], "Saturated");
    assert!(json["rules"]["gelu-erf"].as_u64().unwrap() > 0);
    let dot = std::fs::read_to_string(&dot).unwrap();
    assert!(dot.starts_with("digraph") && dot.contains("SkipLayerNormalization"));
    assert_eq!(
        dot.matches("[label=").count() - dot.matches("fontsize").count(),
        model.graph.nodes.len()
    );
}

#[test]
fn unknown_fusion_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("m.onnx"), dir.path().join("r.json"));
    let run = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .args(["optimize", "--fusions", "gelu,fancy", "-o"])
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .arg(tiny("bert_sdpa_ts_op17.onnx"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("unknown fusion 'fancy'") && stderr.contains("layernorm"),
        "{stderr}"
    );
    assert!(!out.exists() && !report.exists());
}

#[test]
fn version_and_a_required_input() {
    let run = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(run.status.success());
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("transfuse {}", env!("CARGO_PKG_VERSION"))
    );
    // The installed command has no bundled default model.
    let run = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .arg("optimize")
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("<INPUT>"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// An audio model whose strided feature encoder cannot run on 16 samples (wav2vec2's conv
/// stack) is verified at a longer length, not written unverified.
#[test]
fn audio_model_is_verified_at_a_length_its_feature_encoder_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.onnx");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/coverage/tiny/wav2vec2_sdpa_ts_op17.onnx");
    let run = transfuse(&[
        "optimize".as_ref(),
        model.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("verified in") && stdout.contains("open dims 1024"),
        "{stdout}"
    );
    assert!(!stdout.contains("not verified"), "{stdout}");
}
