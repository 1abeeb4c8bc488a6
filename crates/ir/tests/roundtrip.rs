//! Load/save round trips of every bundled model: the IR reproduces the graph and the saved
//! file keeps every protobuf field of the original (schema-independent wire comparison).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use transfuse_ir::{ExternalData, Model, SaveOptions, wire};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models")
}

/// Tiny models and base skeletons in testdata, plus materialized base models when present.
fn all_models() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["tiny", "skeleton"] {
        for e in std::fs::read_dir(models_dir().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "onnx") {
                out.push(p);
            }
        }
    }
    let materialized = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models");
    if let Ok(rd) = std::fs::read_dir(&materialized) {
        for e in rd {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "onnx") {
                out.push(p);
            }
        }
    } else {
        eprintln!(
            "note: no materialized base models (run `cargo xtask models`); checking testdata only"
        );
    }
    out.sort();
    assert!(
        out.len() >= 16,
        "expected the bundled models, found {out:?}"
    );
    out
}

#[test]
fn every_model_round_trips_without_losing_a_field() {
    let dir = tempfile::tempdir().unwrap();
    for path in all_models() {
        let original = std::fs::read(&path).unwrap();
        let model = Model::load(&path).unwrap();
        let out = dir.path().join("saved.onnx");
        model.save(&out).unwrap();
        let saved = std::fs::read(&out).unwrap();
        let diffs = wire::compare(&original, &saved).unwrap();
        assert!(
            diffs.is_empty(),
            "{}: fields lost or changed:\n{}",
            path.display(),
            diffs.join("\n")
        );
        let reloaded = Model::load(&out).unwrap();
        assert_eq!(
            model,
            reloaded,
            "{}: reloaded model differs",
            path.display()
        );
        // The in-memory encoder and the streaming writer agree.
        if original.len() < 16 << 20 {
            assert!(
                wire::compare(&original, &model.to_bytes())
                    .unwrap()
                    .is_empty()
            );
        }
    }
}

#[test]
fn wire_comparison_detects_a_lost_field() {
    let path = models_dir().join("tiny/bert_eager_ts_op14.onnx");
    let original = std::fs::read(&path).unwrap();
    let mut model = Model::load(&path).unwrap();
    model.graph.nodes[3].metadata_props.clear();
    model.graph.nodes[3]
        .metadata_props
        .push(("k".into(), "v".into()));
    model.producer_name.clear();
    let diffs = wire::compare(&original, &model.to_bytes()).unwrap();
    assert!(
        diffs.iter().any(|d| d.starts_with("/2")),
        "producer_name loss not reported: {diffs:?}"
    );
    assert!(
        diffs.iter().any(|d| d.starts_with("/7")),
        "graph change not reported: {diffs:?}"
    );
}

#[test]
fn dynamo_node_metadata_survives() {
    let path = models_dir().join("tiny/bert_sdpa_dynamo_op18.onnx");
    let model = Model::load(&path).unwrap();
    let with_meta = model
        .graph
        .nodes
        .iter()
        .filter(|n| !n.metadata_props.is_empty())
        .count();
    assert!(
        with_meta > 50,
        "dynamo exports carry node metadata, found {with_meta} nodes with it"
    );
}

#[test]
fn skeleton_tensors_keep_dims_without_data() {
    let model = Model::load(models_dir().join("skeleton/bert_eager_ts_op14.onnx")).unwrap();
    let fill = model.metadata("skeleton_fill").unwrap();
    let first = fill.split(',').next().unwrap();
    let t = model.graph.initializer(first).unwrap();
    assert!(t.is_empty_data());
    assert!(t.numel().unwrap() >= 4096);
}

#[test]
fn external_data_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(models_dir().join("tiny/vit_sdpa_ts_op17.onnx")).unwrap();
    let ext = dir.path().join("ext.onnx");
    let opts = SaveOptions {
        external_data: ExternalData::External { min_bytes: 1024 },
        ..Default::default()
    };
    model.save_with(&ext, &opts).unwrap();
    assert!(dir.path().join("ext.onnx.data").exists());
    let inline_size = model.to_bytes().len() as u64;
    assert!(
        std::fs::metadata(&ext).unwrap().len() < inline_size / 4,
        "weights should live in the data file"
    );

    let loaded = Model::load(&ext).unwrap();
    let externals = loaded
        .graph
        .initializers
        .values()
        .filter(|t| t.external.is_some())
        .count();
    assert!(externals > 0);
    for (name, t) in &model.graph.initializers {
        let u = loaded.graph.initializer(name).unwrap();
        assert_eq!(t.raw_bytes().unwrap(), u.raw_bytes().unwrap(), "{name}");
    }
    // Saving again with the default policy keeps external tensors external, in a new file.
    let again = dir.path().join("again.onnx");
    loaded.save(&again).unwrap();
    assert!(dir.path().join("again.onnx.data").exists());
    let reloaded = Model::load(&again).unwrap();
    for (name, t) in &model.graph.initializers {
        assert_eq!(
            t.raw_bytes().unwrap(),
            reloaded
                .graph
                .initializer(name)
                .unwrap()
                .raw_bytes()
                .unwrap()
        );
    }
}

#[test]
fn auto_policy_moves_weights_out_above_the_inline_budget() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(models_dir().join("tiny/bert_eager_ts_op14.onnx")).unwrap();
    let out = dir.path().join("m.onnx");
    // A budget below the model's weight size stands in for protobuf's 2 GiB limit.
    let opts = SaveOptions {
        inline_budget: 64 * 1024,
        ..Default::default()
    };
    model.save_with(&out, &opts).unwrap();
    assert!(dir.path().join("m.onnx.data").exists());
    let loaded = Model::load(&out).unwrap();
    assert!(
        loaded
            .graph
            .initializers
            .values()
            .any(|t| t.external.is_some())
    );
}

#[test]
fn weights_added_to_an_external_data_model_are_written_externally() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(models_dir().join("tiny/vit_sdpa_ts_op17.onnx")).unwrap();
    let ext = dir.path().join("ext.onnx");
    let opts = SaveOptions {
        external_data: ExternalData::External { min_bytes: 1024 },
        ..Default::default()
    };
    model.save_with(&ext, &opts).unwrap();
    let mut loaded = Model::load(&ext).unwrap();
    // A weight a rewrite would create (4 KiB, no external location) and a small constant.
    loaded.graph.add_initializer(transfuse_ir::Tensor::from_f32(
        "new_weight",
        vec![1024],
        &[0.5; 1024],
    ));
    loaded
        .graph
        .add_initializer(transfuse_ir::Tensor::from_f32("new_scalar", vec![], &[2.0]));
    let again = dir.path().join("again.onnx");
    loaded.save(&again).unwrap();
    let reloaded = Model::load(&again).unwrap();
    let weight = reloaded.graph.initializer("new_weight").unwrap();
    assert!(weight.external.is_some(), "a new large weight stays inline");
    assert_eq!(weight.to_f32_vec().unwrap(), vec![0.5; 1024]);
    assert!(
        reloaded
            .graph
            .initializer("new_scalar")
            .unwrap()
            .external
            .is_none()
    );
}
