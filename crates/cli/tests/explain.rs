//! `--explain` names each site left unfused with its reason; the summary counts found and
//! fused blocks; the report carries both.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use assert_cmd::Command;
use transfuse_ir::{AttrValue, Attribute, Model};

fn model(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models")
        .join(dir)
        .join(name)
}

#[test]
fn explain_names_each_unfused_site_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    // RoFormer with its first Softmax taken over the query axis instead of the keys: no
    // longer attention, so that block does not fuse, and the report says why.
    let mut roformer = Model::load(model("coverage/tiny", "roformer_eager_ts_op17.onnx")).unwrap();
    let softmax = roformer
        .graph
        .nodes
        .iter_mut()
        .find(|n| n.op_type == "Softmax")
        .unwrap();
    softmax.attributes.retain(|a| a.name != "axis");
    softmax.attributes.push(Attribute {
        name: "axis".into(),
        value: AttrValue::Int(2),
        doc_string: String::new(),
        ref_attr_name: String::new(),
    });
    let mutated = dir.path().join("softmax_over_queries.onnx");
    roformer.save(&mutated).unwrap();
    let out = Command::cargo_bin("transfuse")
        .unwrap()
        .arg("optimize")
        .arg(&mutated)
        .arg("-o")
        .arg(dir.path().join("r.onnx"))
        .arg("--report")
        .arg(dir.path().join("r.json"))
        .arg("--explain")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unfused: attention at "), "{text}");
    assert!(text.contains("fused/found: attention 1/2"), "{text}");
    assert!(text.contains("last axis"), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    let unfused = report["unfused"].as_array().unwrap();
    assert!(!unfused.is_empty());
    assert!(
        unfused
            .iter()
            .all(|s| s["reason"].as_str().is_some_and(|r| !r.is_empty()))
    );
}

/// `transfuse optimize` of the tiny BERT with `--explain` and `flags`: its stdout, once the
/// run has exited 0.
fn explain_tiny_bert(flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("transfuse")
        .unwrap()
        .arg("optimize")
        .arg(model("tiny", "bert_sdpa_ts_op17.onnx"))
        .arg("-o")
        .arg(dir.path().join("b.onnx"))
        .arg("--explain")
        .args(flags)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_fully_fused_model_has_nothing_to_explain() {
    let text = explain_tiny_bert(&[]);
    assert!(
        text.contains("every attention, norm and GELU site is fused"),
        "{text}"
    );
    assert!(text.contains("attention 2/2"), "{text}");
}

/// A site whose fusion `--fusions` left out is explained as that, not by a condition the
/// rules never checked.
#[test]
fn a_fusion_left_out_is_named_as_the_reason() {
    let text = explain_tiny_bert(&["--fusions", "all,-attention"]);
    assert!(text.contains("attention 0/2"), "{text}");
    assert!(
        text.contains("the `attention` fusion was not run (--fusions)"),
        "{text}"
    );
}
