//! The IR round trip keeps models runnable and their results unchanged: each tiny model and
//! each materialized base model, loaded and saved by `transfuse_ir`, loads in ONNX Runtime and
//! computes exactly the original's outputs on generated inputs.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;

use transfuse_ir::Model;
use transfuse_ort::{OrtRuntime, Session, SessionOptions};

fn check_round_trip(runtime: &OrtRuntime, name: &str, path: &Path, batch: i64, seq: i64) {
    let model = Model::load(path).unwrap_or_else(|e| panic!("{name}: loading: {e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let saved = dir.path().join(format!("{name}.onnx"));
    model
        .save(&saved)
        .unwrap_or_else(|e| panic!("{name}: saving: {e}"));
    let inputs = common::simple_inputs(&model, batch, seq);
    drop(model);

    let options = SessionOptions::default().intra_op_threads(2);
    let original = Session::from_file(runtime, path, &options)
        .unwrap_or_else(|e| panic!("{name}: original: {e}"))
        .run(&inputs)
        .unwrap_or_else(|e| panic!("{name}: original: {e}"));
    let round_tripped = Session::from_file(runtime, &saved, &options)
        .unwrap_or_else(|e| panic!("{name}: saved copy: {e}"))
        .run(&inputs)
        .unwrap_or_else(|e| panic!("{name}: saved copy: {e}"));

    assert_eq!(original.len(), round_tripped.len(), "{name}: output count");
    for ((name_a, a), (name_b, b)) in original.iter().zip(&round_tripped) {
        assert_eq!(name_a, name_b, "{name}: output names");
        assert_eq!(a.dims, b.dims, "{name}: {name_a} shape");
        assert_eq!(a.dtype, b.dtype, "{name}: {name_a} element type");
        let diff = common::max_abs_diff(b, a);
        assert!(
            diff == 0.0,
            "{name}: {name_a} differs after the round trip (max abs diff {diff:e})"
        );
        println!(
            "{name}: {name_a} {:?} identical after the round trip",
            a.dims
        );
    }
}

#[test]
fn tiny_models_survive_the_round_trip() {
    let runtime = common::runtime();
    for (name, path) in common::tiny_models() {
        check_round_trip(runtime, &name, &path, 2, 16);
    }
}

/// Batch 1 and a short sequence keep this fast; sizes that matter for speed belong to the bench.
#[test]
fn materialized_base_models_survive_the_round_trip() {
    let runtime = common::runtime();
    let models = common::materialized_models();
    if models.is_empty() {
        println!(
            "note: no materialized base models under target/models; run `cargo xtask models` (CI does) to test them"
        );
        return;
    }
    for (name, path) in models {
        check_round_trip(runtime, &name, &path, 1, 8);
    }
}
