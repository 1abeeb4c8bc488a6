//! Every tiny model in `testdata/models/tiny` reproduces PyTorch's outputs (stored in
//! `test_data_set_0`) within 1e-4 absolute.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};

const TOLERANCE: f64 = 1e-4;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/tiny")
}

/// Runs `name` on its stored inputs; returns the max abs error of each stored output.
fn check_model(name: &str) -> Vec<(String, f64)> {
    let dir = tiny_dir();
    let model = Model::load(dir.join(format!("{name}.onnx"))).unwrap();
    let interp = Interpreter::new(&model).unwrap_or_else(|e| panic!("{name}: {e}"));
    let data = dir.join(name).join("test_data_set_0");
    let mut inputs = HashMap::new();
    for (i, vi) in model.graph.inputs.iter().enumerate() {
        if model.graph.initializers.contains_key(&vi.name) {
            continue;
        }
        let t = Tensor::load_pb(data.join(format!("input_{i}.pb"))).unwrap();
        inputs.insert(vi.name.clone(), Value::from_tensor(&t).unwrap());
    }
    let outputs = interp
        .run(&inputs)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut errors = Vec::new();
    for (i, vo) in model.graph.outputs.iter().enumerate() {
        let path = data.join(format!("output_{i}.pb"));
        if !path.exists() {
            continue;
        }
        let expected = Value::from_tensor(&Tensor::load_pb(path).unwrap()).unwrap();
        let got = &outputs[&vo.name];
        assert_eq!(
            got.shape(),
            expected.shape(),
            "{name}: output {} shape",
            vo.name
        );
        let max_abs = got
            .to_f64_vec()
            .iter()
            .zip(expected.to_f64_vec())
            .map(|(a, b)| {
                if a.is_nan() || b.is_nan() {
                    f64::INFINITY
                } else {
                    (a - b).abs()
                }
            })
            .fold(0.0, f64::max);
        errors.push((vo.name.clone(), max_abs));
    }
    assert!(!errors.is_empty(), "{name}: no stored outputs compared");
    errors
}

macro_rules! tiny_model_test {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            for (output, err) in check_model($name) {
                assert!(
                    err <= TOLERANCE,
                    "{}: output {output} differs by {err:e}",
                    $name
                );
            }
        }
    };
}

tiny_model_test!(bert_eager_ts_op14, "bert_eager_ts_op14");
tiny_model_test!(bert_sdpa_ts_op17, "bert_sdpa_ts_op17");
tiny_model_test!(bert_sdpa_dynamo_op18, "bert_sdpa_dynamo_op18");
tiny_model_test!(distilbert_eager_ts_op14, "distilbert_eager_ts_op14");
tiny_model_test!(roberta_sdpa_ts_op14, "roberta_sdpa_ts_op14");
tiny_model_test!(vit_eager_ts_op14, "vit_eager_ts_op14");
tiny_model_test!(vit_sdpa_ts_op17, "vit_sdpa_ts_op17");
tiny_model_test!(vit_sdpa_dynamo_op18, "vit_sdpa_dynamo_op18");
tiny_model_test!(timm_vit_sdpa_ts_op17, "timm_vit_sdpa_ts_op17");

/// Every tiny model directory has a test above.
#[test]
fn all_tiny_models_are_covered() {
    let covered = [
        "bert_eager_ts_op14",
        "bert_sdpa_ts_op17",
        "bert_sdpa_dynamo_op18",
        "distilbert_eager_ts_op14",
        "roberta_sdpa_ts_op14",
        "vit_eager_ts_op14",
        "vit_sdpa_ts_op17",
        "vit_sdpa_dynamo_op18",
        "timm_vit_sdpa_ts_op17",
    ];
    for entry in std::fs::read_dir(tiny_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "onnx") {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                covered.contains(&stem.as_str()),
                "tiny model {stem} has no test"
            );
        }
    }
}
