//! `OptimizeOptions::int32_inputs` (`optimize --int32-inputs`) on every tiny and coverage
//! model, and on small graphs that exercise each kind of reader:
//! - every int64 input becomes int32, nothing else in the signature changes;
//! - no `Cast(to=INT32)` reads a narrowed input, directly or through a `Cast(to=INT64)`,
//!   and each input has at most one `Cast(to=INT64)`;
//! - the narrowed model computes exactly what the fused one computes (reference
//!   interpreter, the same ids as int32 instead of int64), and what the original computes
//!   within the parity tolerance (interpreter and ONNX Runtime);
//! - models without int64 inputs (images, an already narrowed model) are unchanged;
//! - with `--fix-shapes` and `to_float16` on the same model;
//! - the ONNX checker, strict shape inference and an ONNX Runtime session accept them.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use support::python_checks::check_models;
use support::{model_of, spec_by_input};
use transfuse_ir::{AttrValue, DataType, Dim, Graph, Model, Node, Tensor, ValueInfo};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{
    InputSource, Options, Runtime, Tolerance, conform_inputs, max_abs_diff, read_test_data,
    run_model,
};
use transfuse_rewrite::{
    Float16Options, FusionSet, OptimizeOptions, Report, narrow_int64_inputs, optimize, to_float16,
};

const INT32: i64 = 6;
const INT64: i64 = 7;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models")
}

/// Every tiny export with its `test_data_set_0`: `(name, model file, data directory)`.
fn models() -> Vec<(String, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for dir in ["tiny", "coverage/tiny"] {
        for e in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "onnx") {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let data = testdata().join(dir).join(&name).join("test_data_set_0");
                out.push((name, p, data));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 20, "tiny models missing");
    out
}

fn int64_inputs(model: &Model) -> Vec<String> {
    model
        .graph
        .inputs
        .iter()
        .filter(|v| v.elem_type() == Some(DataType::Int64))
        .map(|v| v.name.clone())
        .collect()
}

fn options(int32_inputs: bool) -> OptimizeOptions {
    OptimizeOptions {
        int32_inputs,
        ..OptimizeOptions::default()
    }
}

fn cast_to(node: &Node) -> Option<i64> {
    (node.op_type == "Cast")
        .then(|| node.attr_int("to"))
        .flatten()
}

/// The structural promises of the pass on `narrowed`, whose narrowed inputs are `inputs`.
fn check_structure(name: &str, original: &Model, narrowed: &Model, inputs: &[String]) {
    for (before, after) in original.graph.inputs.iter().zip(&narrowed.graph.inputs) {
        assert_eq!(before.name, after.name, "{name}");
        let rank = |v: &ValueInfo| v.shape().map(<[Dim]>::len);
        assert_eq!(rank(before), rank(after), "{name}: {}", before.name);
        let expected = if inputs.contains(&before.name) {
            Some(DataType::Int32)
        } else {
            before.elem_type()
        };
        assert_eq!(after.elem_type(), expected, "{name}: {}", before.name);
    }
    let g = &narrowed.graph;
    let producer = |v: &str| g.nodes.iter().find(|n| n.outputs.iter().any(|o| o == v));
    for input in inputs {
        let reads = |n: &&Node| n.inputs.first() == Some(input);
        let widening: Vec<&Node> = g
            .nodes
            .iter()
            .filter(reads)
            .filter(|n| cast_to(n) == Some(INT64))
            .collect();
        assert!(widening.len() <= 1, "{name}: '{input}' widened twice");
        for n in g.nodes.iter().filter(|n| cast_to(n) == Some(INT32)) {
            let source = &n.inputs[0];
            assert_ne!(source, input, "{name}: {} casts '{input}' to int32", n.name);
            let through_int64 = producer(source)
                .is_some_and(|p| cast_to(p) == Some(INT64) && p.inputs[0] == *input);
            assert!(
                !through_int64,
                "{name}: {} casts '{input}' to int64 and back",
                n.name
            );
        }
    }
}

/// `inputs` as int32 where `model` declares int32 (the values must fit).
fn as_declared(model: &Model, inputs: &[Tensor]) -> Vec<Tensor> {
    conform_inputs(model, inputs, "narrowed").unwrap()
}

#[test]
fn every_tiny_model_narrows_its_int64_inputs_and_stays_exact() {
    let ort =
        Runtime::ort(SessionOptions::default().optimization_level(OptimizationLevel::Disabled));
    for (name, path, data) in models() {
        let model = Model::load(&path).unwrap();
        let wide = int64_inputs(&model);
        let (fused, _) = optimize(&model, &options(false)).unwrap();
        let (narrowed, report) =
            optimize(&model, &options(true)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let done = report.int32_inputs.clone().unwrap();
        assert_eq!(done.narrowed, wide, "{name}");
        check_structure(&name, &model, &narrowed, &wide);
        assert_eq!(report.nodes_after, narrowed.graph.nodes.len(), "{name}");

        // The fused embedding reads the narrowed ids directly: its cast to int32 is gone.
        let embeddings: Vec<&Node> = narrowed
            .graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "EmbedLayerNormalization")
            .collect();
        for n in &embeddings {
            assert!(wide.contains(&n.inputs[0]), "{name}: {n:?}");
        }
        if !embeddings.is_empty() {
            assert!(done.casts_removed >= 1, "{name}: {done:?}");
        }

        // Exact against the fused model: the same values, as int32.
        let inputs = read_test_data(&model, &data).unwrap().inputs;
        let want = run_model(&fused, &inputs, &Runtime::reference()).unwrap();
        let narrow_inputs = as_declared(&narrowed, &inputs);
        if !wide.is_empty() {
            assert!(
                narrow_inputs.iter().any(|t| t.dtype == DataType::Int32),
                "{name}: the inputs were not narrowed"
            );
        }
        let got = run_model(&narrowed, &narrow_inputs, &Runtime::reference()).unwrap();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.name, g.name, "{name}");
            assert_eq!(max_abs_diff(g, w), 0.0, "{name}: '{}'", w.name);
        }

        // Against the original through the parity checker, which feeds each model its own
        // integer widths.
        for runtime in [Runtime::reference(), ort.clone()] {
            let options = Options {
                inputs: InputSource::Directory(data.clone()),
                runtime,
                tolerance: Tolerance::absolute(1e-4),
                locate_divergence: true,
            };
            let report = transfuse_parity::check(&model, &narrowed, &options)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(report.pass, "{name}: {report:?}");
        }
    }
}

#[test]
fn models_without_int64_inputs_are_unchanged() {
    let vit = Model::load(testdata().join("tiny/vit_eager_ts_op14.onnx")).unwrap();
    let fused = optimize(&vit, &options(false)).unwrap().0;
    let (narrowed, report) = optimize(&vit, &options(true)).unwrap();
    assert_eq!(narrowed.dump(), fused.dump());
    assert!(report.int32_inputs.unwrap().narrowed.is_empty());

    // An already narrowed model: its int32 inputs stay as they are.
    let bert = Model::load(testdata().join("tiny/bert_eager_ts_op14.onnx")).unwrap();
    let once = optimize(&bert, &options(true)).unwrap().0;
    let (twice, report) = narrow_int64_inputs(&once).unwrap();
    assert_eq!(twice.dump(), once.dump());
    assert_eq!(report, transfuse_rewrite::Int32InputsReport::default());
}

#[test]
fn narrowing_alone_with_no_fusion_changes_only_the_casts() {
    let model = Model::load(testdata().join("tiny/roberta_sdpa_ts_op14.onnx")).unwrap();
    let options = OptimizeOptions {
        fusions: FusionSet::none(),
        int32_inputs: true,
        ..OptimizeOptions::default()
    };
    let (narrowed, report) = optimize(&model, &options).unwrap();
    let wide = int64_inputs(&model);
    check_structure("roberta, no fusion", &model, &narrowed, &wide);
    assert_eq!(report.int32_inputs.unwrap().narrowed, wide);
    let data = testdata().join("tiny/roberta_sdpa_ts_op14/test_data_set_0");
    let options = Options {
        inputs: InputSource::Directory(data),
        ..Options::default()
    };
    let parity = transfuse_parity::check(&model, &narrowed, &options).unwrap();
    assert!(parity.pass, "{parity:?}");
    assert_eq!(parity.max_abs(), 0.0);
}

/// A graph with every kind of reader of one int64 input `ids` [2, 3]:
/// `Cast(to=INT64)` followed by `Cast(to=INT32)` (a round trip), a `Cast(to=FLOAT)` twice,
/// an `Equal` with a small int64 constant and a `Less` with one beyond int32, an `Add`, a
/// `Gather` of a table, `Shape`, and a `Cast(to=INT32)` that is a graph output.
fn readers_model() -> Model {
    let mut g = Graph {
        name: "readers".into(),
        ..Graph::default()
    };
    let dims = vec![Dim::Known(2), Dim::Known(3)];
    g.inputs
        .push(ValueInfo::tensor("ids", DataType::Int64, Some(dims)));
    g.add_initializer(Tensor::from_i64("one", vec![], &[1]));
    g.add_initializer(Tensor::from_i64("huge", vec![], &[1 << 40]));
    g.add_initializer(Tensor::from_f32(
        "table",
        vec![5, 2],
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ));
    let cast = |input: &str, out: &str, to: i64| {
        Node::new("Cast", "", vec![input.into()], vec![out.into()])
            .with_attr("to", AttrValue::Int(to))
    };
    let op = |op: &str, inputs: &[&str], out: &str| {
        Node::new(
            op,
            "",
            inputs.iter().map(|s| s.to_string()).collect(),
            vec![out.into()],
        )
    };
    g.nodes = vec![
        cast("ids", "ids64", INT64),
        cast("ids64", "ids32", INT32),
        cast("ids32", "ids32_float", 1),
        cast("ids", "float_a", 1),
        cast("ids64", "float_b", 1),
        op("Add", &["float_a", "float_b"], "floats"),
        op("Equal", &["ids", "one"], "is_one"),
        op("Less", &["ids", "huge"], "below_huge"),
        op("Add", &["ids64", "one"], "ids_plus_one"),
        op("Gather", &["table", "ids"], "embedded"),
        op("Shape", &["ids"], "shape"),
        cast("ids", "ids_out", INT32),
    ];
    let known = |d: &[i64]| Some(d.iter().map(|&n| Dim::Known(n)).collect());
    for (o, dtype, shape) in [
        ("ids32_float", DataType::Float, &[2, 3][..]),
        ("floats", DataType::Float, &[2, 3]),
        ("is_one", DataType::Bool, &[2, 3]),
        ("below_huge", DataType::Bool, &[2, 3]),
        ("ids_plus_one", DataType::Int64, &[2, 3]),
        ("embedded", DataType::Float, &[2, 3, 2]),
        ("shape", DataType::Int64, &[2]),
        ("ids_out", DataType::Int32, &[2, 3]),
    ] {
        g.outputs.push(ValueInfo::tensor(o, dtype, known(shape)));
    }
    g.check().unwrap();
    model_of(g, 17)
}

#[test]
fn each_reader_gets_the_int32_input_or_one_shared_cast() {
    let model = readers_model();
    let (narrowed, report) = narrow_int64_inputs(&model).unwrap();
    let ids = vec!["ids".to_string()];
    check_structure("readers", &model, &narrowed, &ids);
    assert_eq!(report.narrowed, ids);
    // Removed: the cast to int64 (its readers read `ids`), the cast back to int32, and the
    // second cast to float. Added: one cast to int64 for `Less` and `Add`.
    assert_eq!(report.casts_removed, 3, "{}", narrowed.dump());
    assert_eq!(report.casts_added, 1, "{}", narrowed.dump());
    let g = &narrowed.graph;
    let node = |out: &str| {
        g.nodes
            .iter()
            .find(|n| n.outputs[0] == out)
            .unwrap_or_else(|| panic!("no node computes {out}: {}", narrowed.dump()))
    };
    let widened = g
        .nodes
        .iter()
        .find(|n| cast_to(n) == Some(INT64))
        .unwrap()
        .outputs[0]
        .clone();
    assert_eq!(node("ids32_float").inputs, ["ids"]);
    assert_eq!(node("is_one").inputs[0], "ids");
    let one32 = g.initializer(&node("is_one").inputs[1]).unwrap();
    assert_eq!(one32.dtype, DataType::Int32);
    assert_eq!(node("below_huge").inputs, [widened.as_str(), "huge"]);
    assert_eq!(node("ids_plus_one").inputs, [widened.as_str(), "one"]);
    assert_eq!(node("embedded").inputs, ["table", "ids"]);
    assert_eq!(node("shape").inputs, ["ids"]);
    assert_eq!(node("ids_out").op_type, "Identity");
    // One cast to float is left, read by both operands of the Add.
    assert_eq!(node("floats").inputs[0], node("floats").inputs[1]);

    // The same results for every int32-range id, boundaries included.
    let values = [0, 4, -(1 << 31), (1 << 31) - 1, 1, 3];
    let wide = Tensor::from_i64("ids", vec![2, 3], &values);
    let mut model_no_gather = model.clone();
    let mut narrowed_no_gather = narrowed.clone();
    for m in [&mut model_no_gather, &mut narrowed_no_gather] {
        m.graph.nodes.retain(|n| n.op_type != "Gather");
        m.graph.outputs.retain(|o| o.name != "embedded");
    }
    let small = Tensor::from_i64("ids", vec![2, 3], &[0, 4, 2, 1, 1, 3]);
    for (a, b, input) in [
        (&model_no_gather, &narrowed_no_gather, &wide),
        (&model, &narrowed, &small),
    ] {
        let want = run_model(a, std::slice::from_ref(input), &Runtime::reference()).unwrap();
        let narrow_input = as_declared(b, std::slice::from_ref(input));
        let got = run_model(b, &narrow_input, &Runtime::reference()).unwrap();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.name, g.name);
            assert_eq!(w.dtype, g.dtype, "{}", w.name);
            assert_eq!(
                w.to_f64_vec().unwrap(),
                g.to_f64_vec().unwrap(),
                "{}",
                w.name
            );
        }
    }
}

/// BERT with fixed shapes, int32 inputs and float16.
fn combined() -> (Model, Model, PathBuf) {
    let path = testdata().join("tiny/bert_eager_ts_op14.onnx");
    let data = testdata().join("tiny/bert_eager_ts_op14/test_data_set_0");
    let model = Model::load(&path).unwrap();
    let inputs = read_test_data(&model, &data).unwrap().inputs;
    let options = OptimizeOptions {
        fixed_shapes: spec_by_input(&inputs).parse().unwrap(),
        int32_inputs: true,
        ..OptimizeOptions::default()
    };
    let (fused, report): (Model, Report) = optimize(&model, &options).unwrap();
    assert_eq!(report.int32_inputs.unwrap().narrowed.len(), 3);
    let half = to_float16(&fused, &Float16Options::default()).unwrap().0;
    (model, half, data)
}

#[test]
fn int32_inputs_combine_with_fixed_shapes_and_float16() {
    let (model, half, data) = combined();
    let wide = int64_inputs(&model);
    check_structure("combined", &model, &half, &wide);
    for v in &half.graph.inputs {
        assert!(
            v.shape()
                .unwrap()
                .iter()
                .all(|d| matches!(d, Dim::Known(_)))
        );
    }
    assert!(
        half.graph
            .initializers
            .values()
            .any(|t| t.dtype == DataType::Float16)
    );
    let ort =
        Runtime::ort(SessionOptions::default().optimization_level(OptimizationLevel::Disabled));
    for runtime in [Runtime::reference(), ort] {
        let options = Options {
            inputs: InputSource::Directory(data.clone()),
            runtime,
            tolerance: Tolerance::float16(),
            locate_divergence: false,
        };
        let report = transfuse_parity::check(&model, &half, &options).unwrap();
        assert!(report.pass, "{report:?}");
    }
}

#[test]
fn an_out_of_range_id_is_refused_by_parity_not_wrapped() {
    let model = readers_model();
    let narrowed = narrow_int64_inputs(&model).unwrap().0;
    let input = Tensor::from_i64("ids", vec![2, 3], &[0, 1, 2, 3, 4, 1 << 31]);
    let err = conform_inputs(&narrowed, &[input], "candidate").unwrap_err();
    assert!(err.to_string().contains("2147483648"), "{err}");
}

#[test]
fn narrowed_models_pass_the_onnx_checker() {
    let mut narrowed: Vec<(String, Model)> = models()
        .into_iter()
        .map(|(name, path, _)| {
            let model = Model::load(&path).unwrap();
            (name, optimize(&model, &options(true)).unwrap().0)
        })
        .collect();
    narrowed.push((
        "readers".into(),
        narrow_int64_inputs(&readers_model()).unwrap().0,
    ));
    narrowed.push(("combined".into(), combined().1));
    check_models("int32-input models", narrowed, false);
}
