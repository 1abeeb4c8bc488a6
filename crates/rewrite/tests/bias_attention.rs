//! Attention whose scores get an additive bias that is not a padding mask: T5's relative
//! position bias (bucketed positions gathered from a learned table, shared by every layer)
//! plus its padding mask, with no scale. Every attention fuses with `scale = 1` and the bias
//! as `attention_bias`, the bias subgraph is kept once, and the fused model computes what
//! the original and PyTorch computed (reference interpreter and ONNX Runtime, right, left and
//! hole padding). Where the bias is not proven to broadcast to `[B, N, S, T]`, nothing fuses,
//! and `explain` says why.
#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;

use std::collections::HashMap;
use std::path::PathBuf;

use attention_models::Builder;
use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{AttrValue, DataType, Dim, MS_DOMAIN, Model, Tensor};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{
    InputSource, InputSpec, Options, Padding, Runtime, Tolerance, max_abs_diff, read_test_data,
};
use transfuse_rewrite::{OptimizeOptions, explain, optimize};

const T5: &[&str] = &[
    "t5_enc_eager_ts_op14",
    "t5_enc_eager_ts_op17",
    "t5_enc_eager_dynamo_op18",
];

fn coverage_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/coverage/tiny")
}

fn load(name: &str) -> Model {
    Model::load(coverage_dir().join(format!("{name}.onnx"))).unwrap()
}

fn fused(model: &Model) -> Model {
    optimize(model, &OptimizeOptions::default()).unwrap().0
}

fn count(model: &Model, op: &str) -> usize {
    model.graph.nodes.iter().filter(|n| n.op_type == op).count()
}

fn attention_nodes(model: &Model) -> Vec<&transfuse_ir::Node> {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| {
            n.domain == MS_DOMAIN && (n.op_type == "Attention" || n.op_type == "MultiHeadAttention")
        })
        .collect()
}

/// Nodes reading an initializer whose name says it is the relative position bias table.
fn table_readers(model: &Model) -> usize {
    let tables: Vec<&String> = model
        .graph
        .initializers
        .keys()
        .filter(|k| k.contains("relative_attention_bias"))
        .collect();
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.inputs.iter().any(|i| tables.contains(&i)))
        .count()
}

#[test]
fn every_t5_attention_fuses_with_scale_one_and_the_bias_once() {
    for name in T5 {
        let model = load(name);
        let (out, report) = optimize(&model, &OptimizeOptions::default()).unwrap();
        assert!(
            report.rules["attention-softmax-two-biases"] > 0,
            "{name}: the position bias and the mask were not combined"
        );
        let softmaxes = count(&model, "Softmax");
        let attention = attention_nodes(&out);
        assert!(softmaxes > 0, "{name}: no attention in the original");
        assert_eq!(
            attention.len(),
            softmaxes,
            "{name}: not every attention fused"
        );
        assert_eq!(count(&out, "Softmax"), 0, "{name}: a Softmax is left");
        for node in &attention {
            assert_eq!(node.attr_float("scale"), Some(1.0), "{name}: {}", node.name);
            // The bias is fed (input 5 of MultiHeadAttention, input 5 of Attention).
            assert!(
                node.inputs.get(5).is_some_and(|b| !b.is_empty()),
                "{name}: {} has no attention_bias",
                node.name
            );
        }
        assert!(table_readers(&model) >= 1, "{name}: no bias table found");
        assert_eq!(
            table_readers(&out),
            table_readers(&model),
            "{name}: the shared bias is computed more than once"
        );
        let explanation = explain(&out);
        let attention_cov = &explanation.coverage[0];
        assert_eq!(attention_cov.family, "attention");
        assert_eq!(
            attention_cov.fused, attention_cov.found,
            "{name}: {explanation:?}"
        );
        assert!(
            explanation.unfused.iter().all(|s| s.family != "attention"),
            "{name}: {:?}",
            explanation.unfused
        );
    }
}

/// `test_data_set_0` inputs by graph input name, and the expected outputs.
fn test_data(name: &str, model: &Model) -> (HashMap<String, Value>, Vec<Tensor>) {
    let dir = coverage_dir().join(name).join("test_data_set_0");
    let data = read_test_data(model, &dir).unwrap();
    let inputs = data
        .inputs
        .iter()
        .map(|t| (t.name.clone(), Value::from_tensor(t).unwrap()))
        .collect();
    (inputs, data.outputs)
}

#[test]
fn fused_t5_matches_pytorch_test_data() {
    for name in T5 {
        let model = load(name);
        let out = fused(&model);
        let (inputs, expected) = test_data(name, &model);
        let result = Interpreter::new(&out)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .run(&inputs)
            .unwrap();
        for (o, want) in model.graph.outputs.iter().zip(&expected) {
            let got = result[&o.name].to_tensor(&o.name);
            let diff = max_abs_diff(&got, want);
            assert!(
                diff < 1e-4,
                "{name}: {} differs from PyTorch by {diff}",
                o.name
            );
        }
    }
}

fn check_parity(runtime: &Runtime) {
    for name in T5 {
        let model = load(name);
        let out = fused(&model);
        for padding in [Padding::Right, Padding::Left, Padding::Holes] {
            for batch in [1usize, 3] {
                let options = Options {
                    inputs: InputSource::Generated(InputSpec {
                        batch,
                        seq: 12,
                        seed: 7 + batch as u64,
                        padding,
                    }),
                    runtime: runtime.clone(),
                    tolerance: Tolerance::absolute(1e-4),
                    locate_divergence: false,
                };
                let report = transfuse_parity::check(&model, &out, &options)
                    .unwrap_or_else(|e| panic!("{name}, {padding:?}, batch {batch}: {e}"));
                assert!(
                    report.pass,
                    "{name}, {padding:?}, batch {batch}: max abs diff {:e}",
                    report.max_abs()
                );
            }
        }
    }
}

#[test]
fn fused_t5_matches_the_original_in_the_interpreter() {
    check_parity(&Runtime::reference());
}

#[test]
fn fused_t5_matches_the_original_in_onnx_runtime() {
    check_parity(&Runtime::ort(
        SessionOptions::default()
            .optimization_level(OptimizationLevel::Disabled)
            .intra_op_threads(1),
    ));
}

/// One unscaled attention layer on `x [2, 8, 32]` (4 heads) whose scores get
/// `(Q·Kᵀ + bias) + mask`, `mask` `[2, 1, 1, 8]` and `bias` a graph input of dims
/// `bias_dims` or, when there are none, a learned `[15, 4]` table gathered by a fixed
/// `[8, 8]` index of relative positions and moved to `[4, 8, 8]` (Swin's spelling).
fn biased_layer(bias_dims: &[Dim]) -> Model {
    let (h, n, d) = (32i64, 4i64, 8i64);
    let mut b = Builder::new("biased_attention", 17, 11);
    let known = |v: &[i64]| v.iter().map(|&x| Dim::Known(x)).collect::<Vec<_>>();
    let x = b.input("x", DataType::Float, &known(&[2, 8, h]));
    let bias = if bias_dims.is_empty() {
        let table = b.random_f32("table", &[15, n], 1.0);
        let relative: Vec<i64> = (0..8i64)
            .flat_map(|i| (0..8i64).map(move |j| i - j + 7))
            .collect();
        let index = b.init_i64("index", &[8, 8], &relative);
        let gathered = b.op(
            "Gather",
            &[&table, &index],
            vec![("axis", AttrValue::Int(0))],
        );
        b.transpose(&gathered, &[2, 0, 1])
    } else {
        b.input("bias", DataType::Float, bias_dims)
    };
    let mask = b.input("mask", DataType::Float, &known(&[2, 1, 1, 8]));
    let split = b.const_i64s(&[2, 8, n, d]);
    let head = |b: &mut Builder, hint: &str| {
        let w = b.random_f32(hint, &[h, h], 0.4);
        let mm = b.op("MatMul", &[&x, &w], vec![]);
        let r = b.op("Reshape", &[&mm, &split], vec![]);
        b.transpose(&r, &[0, 2, 1, 3])
    };
    let q = head(&mut b, "q");
    let k = head(&mut b, "k");
    let v = head(&mut b, "v");
    let kt = b.transpose(&k, &[0, 1, 3, 2]);
    let s = b.op("MatMul", &[&q, &kt], vec![]);
    let s1 = b.op("Add", &[&s, &bias], vec![]);
    let s2 = b.op("Add", &[&s1, &mask], vec![]);
    let p = b.op("Softmax", &[&s2], vec![("axis", AttrValue::Int(-1))]);
    let c = b.op("MatMul", &[&p, &v], vec![]);
    let ct = b.transpose(&c, &[0, 2, 1, 3]);
    let merge = b.const_i64s(&[2, 8, h]);
    b.op("Reshape", &[&ct, &merge], vec![]);
    b.name_last_output("y");
    b.output("y", DataType::Float);
    b.finish()
}

#[test]
fn a_bias_broadcasting_to_the_scores_fuses_and_matches() {
    let known = |v: &[i64]| v.iter().map(|&x| Dim::Known(x)).collect::<Vec<_>>();
    let model = biased_layer(&known(&[1, 4, 8, 8]));
    let out = fused(&model);
    assert_eq!(
        attention_nodes(&out).len(),
        1,
        "{:?}",
        out.graph.op_histogram()
    );
    let options = Options {
        inputs: InputSource::Generated(InputSpec {
            batch: 2,
            seq: 8,
            seed: 3,
            padding: Padding::None,
        }),
        runtime: Runtime::reference(),
        tolerance: Tolerance::absolute(1e-4),
        locate_divergence: false,
    };
    let report = transfuse_parity::check(&model, &out, &options).unwrap();
    assert!(report.pass, "max abs diff {:e}", report.max_abs());
}

#[test]
fn a_bias_of_unknown_shape_does_not_fuse_and_is_explained() {
    let unknown = [Dim::Unknown, Dim::Unknown, Dim::Known(8), Dim::Known(8)];
    let model = biased_layer(&unknown);
    let out = fused(&model);
    assert!(attention_nodes(&out).is_empty());
    assert_eq!(count(&out, "Softmax"), 1);
    let explanation = explain(&out);
    let sites: Vec<String> = explanation
        .unfused
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(explanation.unfused.len(), 1, "{sites:?}");
    let site = &explanation.unfused[0];
    assert_eq!(
        (site.family, site.rule, site.op.as_str()),
        ("attention", "attention", "Softmax")
    );
    // Inference keeps the dims it knows, so the reason names the bias dim it cannot prove.
    assert!(site.reason.contains("not proven to broadcast"), "{sites:?}");
    assert_eq!(explanation.summary(), "attention 0/1, norms 0/0, gelu 0/0");
}

#[test]
fn a_mean_over_a_middle_axis_is_explained() {
    let mut b = Builder::new("mean_axis_1", 13, 5);
    let x = b.input(
        "x",
        DataType::Float,
        &[Dim::Known(2), Dim::Known(8), Dim::Known(32)],
    );
    let m = b.op(
        "ReduceMean",
        &[&x],
        vec![
            ("axes", AttrValue::Ints(vec![1])),
            ("keepdims", AttrValue::Int(1)),
        ],
    );
    let y = b.op("Sub", &[&x, &m], vec![]);
    let _ = y;
    b.name_last_output("y");
    b.output("y", DataType::Float);
    let model = b.finish();
    let explanation = explain(&fused(&model));
    let lines: Vec<String> = explanation
        .unfused
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("layernorm-core at ")
            && lines[0].ends_with("mean is not over the last axis only"),
        "{lines:?}"
    );
    assert_eq!(explanation.summary(), "attention 0/0, norms 0/1, gelu 0/0");
}

/// T5 normalizes the embeddings with an RMS norm that has no residual Add before it: it
/// becomes ONNX's RMSNormalization (the model raised to opset 23) while the others fuse as
/// SkipSimplifiedLayerNormalization; nothing is left to explain.
#[test]
fn t5_norms_all_fuse() {
    for name in [
        "t5_enc_eager_ts_op14",
        "t5_enc_eager_ts_op17",
        "t5_enc_eager_dynamo_op18",
    ] {
        let model = load(name);
        let out = fused(&model);
        assert_eq!(count(&out, "SkipSimplifiedLayerNormalization"), 4, "{name}");
        assert_eq!(count(&out, "RMSNormalization"), 1, "{name}");
        assert_eq!(out.opset(""), Some(23), "{name}");
        let explanation = explain(&out);
        assert!(
            explanation.unfused.is_empty(),
            "{name}: {:?}",
            explanation.unfused
        );
    }
}

/// RoFormer's rotary position embeddings change Q and K after their head splits: each
/// attention becomes MultiHeadAttention on the heads-first tensors (the rotation itself stays
/// as the exporter wrote it), and the explanation lists nothing.
#[test]
fn roformer_rotary_attention_fuses() {
    for name in [
        "roformer_eager_ts_op14",
        "roformer_eager_ts_op17",
        "roformer_eager_dynamo_op18",
    ] {
        let model = load(name);
        let out = fused(&model);
        assert_eq!(
            count(&out, "MultiHeadAttention"),
            count(&model, "Softmax"),
            "{name}"
        );
        assert_eq!(count(&out, "Softmax"), 0, "{name}");
        let explanation = explain(&out);
        assert!(
            explanation.unfused.is_empty(),
            "{name}: {:?}",
            explanation.unfused
        );
    }
}
