//! `transfuse optimize --fix-shapes`: a static model without shape computations, verified
//! against the original at those shapes and recorded in the report; a spec that does not fit
//! the model is a usage error (exit 2) that writes nothing.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use transfuse_ir::{Dim, Model};

mod support;
use support::tiny;

fn optimize(spec: &str, out: &Path, report: &Path) -> std::process::Output {
    Command::cargo_bin("transfuse")
        .unwrap()
        .args(["optimize", "--fix-shapes", spec, "-o"])
        .arg(out)
        .arg("--report")
        .arg(report)
        .arg(tiny("bert_eager_ts_op14.onnx"))
        .output()
        .unwrap()
}

#[test]
fn fixed_shapes_leave_a_static_model_without_shape_ops() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("m.onnx"), dir.path().join("r.json"));
    let run = optimize("batch=1,input_ids=1x32", &out, &report);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("verified") && stdout.contains("1x32, holes padding"),
        "{stdout}"
    );

    let model = Model::load(&out).unwrap();
    for v in &model.graph.inputs {
        assert_eq!(
            v.shape().unwrap(),
            [Dim::Known(1), Dim::Known(32)],
            "{}",
            v.name
        );
    }
    let ops = model.graph.op_histogram();
    for op in [
        "Shape",
        "ConstantOfShape",
        "Range",
        "Concat",
        "Unsqueeze",
        "Gather",
    ] {
        assert!(!ops.contains_key(op), "{op} left: {ops:?}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["fixed_shapes"]["spec"], "batch=1,input_ids=1x32");
    assert_eq!(
        json["fixed_shapes"]["inputs"]["attention_mask"],
        serde_json::json!([1, 32])
    );
}

#[test]
fn a_spec_that_does_not_fit_is_a_usage_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("m.onnx"), dir.path().join("r.json"));
    for (spec, says) in [
        (
            "batch=1,seq_len=32",
            "'seq_len' is neither a graph input nor a dim name",
        ),
        ("input_ids=1x32x1", "input 'input_ids' has rank 2"),
        ("batch=0", "sizes must be positive"),
        ("batch", "has no '='"),
    ] {
        let run = optimize(spec, &out, &report);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{spec}: {stderr}");
        assert!(
            stderr.contains("--fix-shapes") && stderr.contains(says),
            "{spec}: {stderr}"
        );
        assert!(
            !out.exists() && !report.exists(),
            "{spec}: something was written"
        );
    }
    let run = optimize("batch=1,seq_len=32", &out, &report);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("dim names: batch, sequence"), "{stderr}");
}
