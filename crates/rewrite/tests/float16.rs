//! `to_float16` after optimization, on every tiny and coverage model: fp16 weights, the
//! signature kept with one `Cast` per float boundary, the fused ops unchanged, parity with
//! the f32 original within `Tolerance::float16` in the reference interpreter and in ONNX
//! Runtime (CPU), and the ONNX checker; plus a blocked op that stays f32.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use support::model_of;
use support::python_checks::check_models;
use transfuse_ir::{AttrValue, DataType, Dim, Graph, Model, Node, Tensor, ValueInfo};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{InputSource, Options, Runtime, Tolerance, read_test_data};
use transfuse_rewrite::{Float16Options, OptimizeOptions, fused_op_types, optimize, to_float16};

const F16: i64 = 10;
const F32: i64 = 1;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models")
}

/// Every model of `testdata/models/tiny` and `testdata/models/coverage/tiny`.
fn models() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in ["tiny", "coverage/tiny"] {
        for e in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "onnx") {
                out.push((p.file_stem().unwrap().to_string_lossy().into_owned(), p));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 20, "tiny models missing");
    out
}

fn fused_counts(model: &Model) -> BTreeMap<String, usize> {
    let fused: HashSet<&str> = fused_op_types().into_iter().map(|(_, op)| op).collect();
    let mut counts = BTreeMap::new();
    for n in model
        .graph
        .nodes
        .iter()
        .filter(|n| fused.contains(n.op_type.as_str()))
    {
        *counts.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    counts
}

fn cast_to(node: &Node) -> Option<i64> {
    (node.op_type == "Cast")
        .then(|| node.attr_int("to"))
        .flatten()
}

/// The converted model's structure: fp16 weights, the original signature, one Cast per
/// float boundary.
fn check_structure(name: &str, original: &Model, half: &Model, kept_f32: &[String]) {
    let g = &half.graph;
    assert_eq!(g.inputs, original.graph.inputs, "{name}: inputs changed");
    let sig = |vs: &[ValueInfo]| {
        vs.iter()
            .map(|v| (v.name.clone(), v.elem_type()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sig(&g.outputs),
        sig(&original.graph.outputs),
        "{name}: outputs changed"
    );

    let consumers = g.consumers();
    // Every f32 initializer left is read only by nodes kept in f32 (Resize scales).
    for (w, t) in &g.initializers {
        if t.dtype == DataType::Float {
            for &i in consumers.get(w.as_str()).map_or(&[][..], Vec::as_slice) {
                let n = &g.nodes[i];
                assert!(
                    kept_f32.iter().any(|k| k.contains(&n.label())),
                    "{name}: f32 weight '{w}' read by the fp16 node {}",
                    n.label()
                );
            }
        }
    }
    assert!(
        g.initializers
            .values()
            .any(|t| t.dtype == DataType::Float16),
        "{name}: no fp16 weight"
    );
    // Each f32 input: read by exactly one Cast to fp16 (and by f32 nodes only otherwise).
    for v in g
        .inputs
        .iter()
        .filter(|v| v.elem_type() == Some(DataType::Float))
    {
        let readers: Vec<&Node> = consumers[v.name.as_str()]
            .iter()
            .map(|&i| &g.nodes[i])
            .collect();
        let casts = readers.iter().filter(|n| cast_to(n) == Some(F16)).count();
        assert_eq!(
            casts, 1,
            "{name}: input '{}' has {casts} casts to fp16",
            v.name
        );
        for n in readers.iter().filter(|n| cast_to(n) != Some(F16)) {
            assert!(
                kept_f32.iter().any(|k| k.contains(&n.label())),
                "{name}: input '{}' read uncast by {}",
                v.name,
                n.label()
            );
        }
    }
    // Each f32 output: made by one Cast to f32 of an fp16 value.
    for v in g
        .outputs
        .iter()
        .filter(|v| v.elem_type() == Some(DataType::Float))
    {
        let producer = g
            .nodes
            .iter()
            .find(|n| n.outputs.contains(&v.name))
            .unwrap();
        assert_eq!(
            cast_to(producer),
            Some(F32),
            "{name}: output '{}' not cast back",
            v.name
        );
        let source = &producer.inputs[0];
        let made_by = g.nodes.iter().find(|n| n.outputs.contains(source)).unwrap();
        assert_ne!(
            cast_to(made_by),
            Some(F32),
            "{name}: two casts before '{}'",
            v.name
        );
    }
}

fn parity(name: &str, original: &Model, half: &Model, inputs: &[Tensor], runtime: Runtime) {
    let label = format!("{:?}", runtime.kind);
    let options = Options {
        inputs: InputSource::Given(inputs.to_vec()),
        runtime,
        tolerance: Tolerance::float16(),
        locate_divergence: false,
    };
    let report = transfuse_parity::check(original, half, &options)
        .unwrap_or_else(|e| panic!("{name} ({label}): {e}"));
    assert!(
        report.pass,
        "{name} ({label}): max abs diff {:e} beyond Tolerance::float16",
        report.max_abs()
    );
    for o in report.outputs.iter().filter_map(|o| o.top1_agreement) {
        assert_eq!(o, 1.0, "{name} ({label}): top-1 disagrees");
    }
}

#[test]
fn every_tiny_model_converts_and_stays_within_the_fp16_tolerance() {
    let ort =
        Runtime::ort(SessionOptions::default().optimization_level(OptimizationLevel::Disabled));
    for (name, path) in models() {
        let model = Model::load(&path).unwrap();
        let fused = optimize(&model, &OptimizeOptions::default()).unwrap().0;
        let (half, report) = to_float16(&fused, &Float16Options::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for k in &report.kept_f32 {
            // Only the ops of the block list (here: Resize, for position embeddings).
            assert!(k.starts_with("Resize "), "{name}: {k} kept in f32");
        }
        check_structure(&name, &model, &half, &report.kept_f32);
        assert_eq!(
            fused_counts(&half),
            fused_counts(&fused),
            "{name}: fused ops changed"
        );
        let data =
            read_test_data(&model, &path.with_extension("").join("test_data_set_0")).unwrap();
        parity(&name, &model, &half, &data.inputs, Runtime::reference());
        parity(&name, &model, &half, &data.inputs, ort.clone());
    }
}

/// A model computing `Add(Max(x * w, c), b)`: `Max` is in ONNX Runtime's block list.
fn max_model() -> Model {
    let dims = |d: &[i64]| Some(d.iter().map(|&v| Dim::Known(v)).collect());
    let mut g = Graph {
        name: "blocked".into(),
        inputs: vec![ValueInfo::tensor("x", DataType::Float, dims(&[2, 4]))],
        outputs: vec![ValueInfo::tensor("y", DataType::Float, dims(&[2, 4]))],
        ..Graph::default()
    };
    g.add_initializer(Tensor::from_f32("w", vec![4], &[0.5, -1.25, 3.0, 1e-9]));
    g.add_initializer(Tensor::from_f32("c", vec![], &[0.1]));
    g.add_initializer(Tensor::from_f32("b", vec![4], &[1.0, 2.0, 7e4, -3.0]));
    let s = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    g.nodes = vec![
        Node::new("Mul", "", s(&["x", "w"]), s(&["xw"])),
        Node::new("Max", "", s(&["xw", "c"]), s(&["m"])),
        Node::new("Add", "", s(&["m", "b"]), s(&["y"])),
    ];
    model_of(g, 17)
}

#[test]
fn a_blocked_op_stays_f32_between_casts() {
    let model = max_model();
    let (half, report) = to_float16(&model, &Float16Options::default()).unwrap();
    let g = &half.graph;
    let node = |op: &str| g.nodes.iter().find(|n| n.op_type == op).unwrap();
    assert_eq!(report.kept_f32.len(), 1, "{:?}", report.kept_f32);
    assert!(
        report.kept_f32[0].starts_with("Max "),
        "{:?}",
        report.kept_f32
    );
    // Max reads its f32 operands: a Cast back from fp16 for the product, `c` as it was.
    let max = node("Max");
    let producer = |v: &str| g.nodes.iter().find(|n| n.outputs.iter().any(|o| o == v));
    assert_eq!(cast_to(producer(&max.inputs[0]).unwrap()), Some(F32));
    assert_eq!(g.initializers["c"].dtype, DataType::Float);
    // Mul and Add compute in fp16; their weights are fp16, `b` clamped to 1e4.
    assert_eq!(g.initializers["w"].dtype, DataType::Float16);
    assert_eq!(
        g.initializers["b"].to_f32_vec().unwrap(),
        vec![1.0, 2.0, 1e4, -3.0]
    );
    assert_eq!(report.clamped_elements, 2, "7e4 to 1e4 and 1e-9 to 1e-7");
    let add = node("Add");
    assert_eq!(cast_to(producer(&add.inputs[0]).unwrap()), Some(F16));
    assert_eq!(cast_to(producer("y").unwrap()), Some(F32));
    // Without the block list, Max runs in fp16.
    let options = Float16Options {
        op_block_list: Vec::new(),
        ..Float16Options::default()
    };
    let (all_half, report) = to_float16(&model, &options).unwrap();
    assert!(report.kept_f32.is_empty());
    assert_eq!(all_half.graph.initializers["c"].dtype, DataType::Float16);
    // Both compute what the original does within the fp16 tolerance (the clamped 7e4 aside:
    // that column is checked against 1e4).
    let x = Tensor::from_f32(
        "x",
        vec![2, 4],
        &[1.0, -2.0, 0.3, 4.0, -0.5, 0.25, 2.0, 1.0],
    );
    for m in [&half, &all_half] {
        let got = transfuse_parity::run_model(m, std::slice::from_ref(&x), &Runtime::reference())
            .unwrap();
        let want =
            transfuse_parity::run_model(&model, std::slice::from_ref(&x), &Runtime::reference())
                .unwrap();
        let (got, want) = (got[0].to_f32_vec().unwrap(), want[0].to_f32_vec().unwrap());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let w = if i % 4 == 2 { w - 7e4 + 1e4 } else { *w };
            assert!(
                Tolerance::float16().accepts(f64::from(*g), f64::from(w)),
                "{i}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn subgraphs_are_refused() {
    let mut model = max_model();
    let branch = transfuse_ir::proto::GraphProto::default();
    model.graph.nodes[0] = model.graph.nodes[0]
        .clone()
        .with_attr("then_branch", AttrValue::Graph(Box::new(branch)));
    let err = to_float16(&model, &Float16Options::default()).unwrap_err();
    assert!(err.to_string().contains("subgraph"), "{err}");
}

#[test]
fn every_converted_tiny_model_passes_the_onnx_checker() {
    let converted = models().into_iter().map(|(name, path)| {
        let model = Model::load(&path).unwrap();
        let fused = optimize(&model, &OptimizeOptions::default()).unwrap().0;
        (
            name,
            to_float16(&fused, &Float16Options::default()).unwrap().0,
        )
    });
    check_models("fp16 models", converted, false);
}
