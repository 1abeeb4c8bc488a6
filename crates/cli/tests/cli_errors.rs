//! Malformed models make `transfuse optimize` fail with one line naming the problem, a
//! non-zero exit status, and no output file.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use transfuse_ir::{Model, Node};

mod support;
use support::tiny;

/// Runs `optimize IN -o OUT --fusions none` and returns (success, stderr).
fn optimize(input: &Path, output: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_transfuse"))
        .args(["optimize", "--fusions", "none", "-o"])
        .arg(output)
        .arg(input)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_failure(bytes: &[u8], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.path().join("out.onnx");
    let (ok, stderr) = optimize(&input, &output);
    assert!(!ok, "expected failure for {needle}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected, got:\n{stderr}"
    );
    assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
    assert!(!output.exists(), "a failed run wrote {}", output.display());
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "only the input should remain");
}

fn edited(edit: impl FnOnce(&mut Model)) -> Vec<u8> {
    let mut m = Model::load(tiny("bert_eager_ts_op14.onnx")).unwrap();
    edit(&mut m);
    m.to_bytes()
}

#[test]
fn truncated_model() {
    let bytes = std::fs::read(tiny("bert_eager_ts_op14.onnx")).unwrap();
    expect_failure(&bytes[..bytes.len() / 3], "not a valid ONNX file");
}

#[test]
fn non_onnx_bytes() {
    expect_failure(b"{\"this\": \"is json\"}", "ONNX");
    expect_failure(b"", "empty");
}

#[test]
fn undefined_input() {
    expect_failure(
        &edited(|m| m.graph.nodes[7].inputs[0] = "ghost".into()),
        "'ghost'",
    );
}

#[test]
fn duplicate_value() {
    let bytes = edited(|m| {
        let name = m.graph.nodes[1].outputs[0].clone();
        m.graph.nodes[6].outputs[0] = name;
    });
    expect_failure(&bytes, "defined twice");
}

#[test]
fn cycle() {
    let bytes = edited(|m| {
        m.graph.nodes.push(Node::new(
            "Identity",
            "",
            vec!["loop_b".into()],
            vec!["loop_a".into()],
        ));
        m.graph.nodes.push(Node::new(
            "Identity",
            "",
            vec!["loop_a".into()],
            vec!["loop_b".into()],
        ));
    });
    expect_failure(&bytes, "cycle");
}

#[test]
fn missing_external_data() {
    let bytes = edited(|m| {
        let name = m.graph.initializers.keys().next().unwrap().clone();
        let mut t = (*m.graph.initializers[&name]).clone();
        t.data = transfuse_ir::TensorData::Empty;
        m.graph.initializers.insert(name, std::sync::Arc::new(t));
    });
    // Re-encode the first initializer as an external reference by hand.
    let mut proto =
        <transfuse_ir::proto::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    let t = &mut proto.graph.as_mut().unwrap().initializer[0];
    t.data_location = Some(1);
    t.external_data = vec![transfuse_ir::proto::StringStringEntryProto {
        key: Some("location".into()),
        value: Some("weights.bin".into()),
    }];
    expect_failure(&prost::Message::encode_to_vec(&proto), "weights.bin");
}

#[test]
fn unchanged_round_trip_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.onnx");
    let (ok, stderr) = optimize(&tiny("vit_eager_ts_op14.onnx"), &output);
    assert!(ok, "{stderr}");
    let a = Model::load(tiny("vit_eager_ts_op14.onnx")).unwrap();
    let b = Model::load(&output).unwrap();
    assert_eq!(a, b);
}
