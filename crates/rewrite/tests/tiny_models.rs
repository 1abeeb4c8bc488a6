//! Normalization and GELU fusion on every tiny test model: every LayerNorm and every GELU
//! fused, no `Erf`/`Pow`/`ReduceMean` left, names kept, and the fused model computes what the
//! original does (reference interpreter) and what PyTorch did (`test_data_set_0`).
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};
use transfuse_parity::{max_abs_diff, read_test_data};
use transfuse_rewrite::{FusionSet, OptimizeOptions, optimize};

/// The normalization and GELU fusions (attention and embedding fusions are tested on their own).
const NORMALIZATION_AND_GELU: &str = "layernorm,skiplayernorm,gelu,biasgelu,fastgelu,quickgelu";

const MODELS: &[&str] = &[
    "bert_eager_ts_op14",
    "bert_sdpa_dynamo_op18",
    "bert_sdpa_ts_op17",
    "distilbert_eager_ts_op14",
    "roberta_sdpa_ts_op14",
    "timm_vit_sdpa_ts_op17",
    "vit_eager_ts_op14",
    "vit_sdpa_dynamo_op18",
    "vit_sdpa_ts_op17",
];

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/tiny")
}

fn load(name: &str) -> Model {
    Model::load(tiny_dir().join(format!("{name}.onnx"))).unwrap()
}

fn optimized(model: &Model, fusions: &str) -> Model {
    let options = OptimizeOptions {
        fusions: fusions.parse::<FusionSet>().unwrap(),
        ..OptimizeOptions::default()
    };
    optimize(model, &options).unwrap().0
}

fn count(model: &Model, op: &str) -> usize {
    model.graph.nodes.iter().filter(|n| n.op_type == op).count()
}

/// `test_data_set_0` inputs by graph input name, and the expected outputs.
fn test_data(name: &str, model: &Model) -> (HashMap<String, Value>, Vec<Tensor>) {
    let dir = tiny_dir().join(name).join("test_data_set_0");
    let data = read_test_data(model, &dir).unwrap();
    let inputs = data
        .inputs
        .iter()
        .map(|t| (t.name.clone(), Value::from_tensor(t).unwrap()))
        .collect();
    (inputs, data.outputs)
}

#[test]
fn every_layer_norm_and_gelu_is_fused() {
    for name in MODELS {
        let model = load(name);
        let fused = optimized(&model, NORMALIZATION_AND_GELU);
        // 2 layers x 2 LayerNorms + the embedding (text) or final (vision) one.
        let norms = count(&fused, "LayerNormalization") + count(&fused, "SkipLayerNormalization");
        assert_eq!(norms, 5, "{name}: layer norms");
        let gelus = count(&fused, "Gelu") + count(&fused, "BiasGelu") + count(&fused, "FastGelu");
        assert_eq!(gelus, 2, "{name}: one GELU per layer");
        assert_eq!(
            count(&fused, "BiasGelu"),
            2,
            "{name}: the MatMul bias folds into BiasGelu"
        );
        for op in ["Erf", "Pow", "ReduceMean"] {
            assert_eq!(count(&fused, op), 0, "{name}: {op} left");
        }
        // Graph inputs and outputs keep their names and order.
        let names = |m: &Model| {
            (
                m.graph
                    .inputs
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
                m.graph
                    .outputs
                    .iter()
                    .map(|v| v.name.clone())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(names(&model), names(&fused), "{name}");
    }
}

#[test]
fn fused_models_match_the_original_and_pytorch() {
    for name in MODELS {
        let model = load(name);
        let fused = optimized(&model, NORMALIZATION_AND_GELU);
        let (inputs, expected) = test_data(name, &model);
        let original = Interpreter::new(&model).unwrap().run(&inputs).unwrap();
        let result = Interpreter::new(&fused)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .run(&inputs)
            .unwrap();
        for (o, want) in model.graph.outputs.iter().zip(&expected) {
            let got = result[&o.name].to_tensor(&o.name);
            let vs_original = max_abs_diff(&got, &original[&o.name].to_tensor(&o.name));
            let vs_torch = max_abs_diff(&got, want);
            assert!(
                vs_original < 1e-4,
                "{name}: {} differs from the original by {vs_original}",
                o.name
            );
            assert!(
                vs_torch < 1e-4,
                "{name}: {} differs from PyTorch by {vs_torch}",
                o.name
            );
        }
    }
}

#[test]
fn layer_norm_only_models_match_the_original() {
    // LayerNormalization and SkipLayerNormalization alone (ops the interpreter has had first).
    for name in MODELS {
        let model = load(name);
        let fused = optimized(&model, "layernorm,skiplayernorm");
        assert_eq!(count(&fused, "ReduceMean"), 0, "{name}");
        let (inputs, _) = test_data(name, &model);
        let a = Interpreter::new(&model).unwrap().run(&inputs).unwrap();
        let b = Interpreter::new(&fused).unwrap().run(&inputs).unwrap();
        for o in &model.graph.outputs {
            let d = max_abs_diff(
                &a[&o.name].to_tensor(&o.name),
                &b[&o.name].to_tensor(&o.name),
            );
            assert!(d < 1e-4, "{name}: {} differs by {d}", o.name);
        }
    }
}

#[test]
fn op_histograms() {
    for name in MODELS {
        let fused = optimized(&load(name), NORMALIZATION_AND_GELU);
        insta::assert_debug_snapshot!(format!("histogram_{name}"), fused.graph.op_histogram());
    }
}

#[test]
fn no_fusion_is_a_round_trip() {
    for name in MODELS {
        let model = load(name);
        let same = optimized(&model, "none");
        for op in ["Erf", "ReduceMean", "MatMul", "Softmax"] {
            assert_eq!(count(&same, op), count(&model, op), "{name}: {op}");
        }
        assert_eq!(
            count(&same, "Gelu") + count(&same, "SkipLayerNormalization"),
            0,
            "{name}"
        );
        // Only duplicate nodes (same op on the same inputs) merge; everything else keeps its name.
        let kept: std::collections::HashSet<&str> = same
            .graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(String::as_str))
            .collect();
        let dropped = model
            .graph
            .nodes
            .iter()
            .flat_map(|n| &n.outputs)
            .filter(|o| !kept.contains(o.as_str()))
            .count();
        assert!(
            dropped * 10 < model.graph.nodes.len(),
            "{name}: {dropped} values renamed or dropped"
        );
        let (inputs, _) = test_data(name, &model);
        let a = Interpreter::new(&model).unwrap().run(&inputs).unwrap();
        let b = Interpreter::new(&same).unwrap().run(&inputs).unwrap();
        for o in &model.graph.outputs {
            assert_eq!(a[&o.name].to_f64_vec(), b[&o.name].to_f64_vec(), "{name}");
        }
    }
}
