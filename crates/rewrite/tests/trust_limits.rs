//! Minimal models that once made the optimizer abort or write models ONNX Runtime could not
//! run: huge static shapes in folded constants, a multi-output node with unused outputs, and
//! an input importing `com.microsoft` at version 0.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::{Builder, count, run_with};
use transfuse_ir::{AttrValue, MS_DOMAIN, Model, OpsetImport, Tensor};
use transfuse_ort::{OptimizationLevel, OrtRuntime, Session, SessionOptions};

/// ONNX Runtime, found the project's one way (`ORT_DYLIB_PATH`, then the copy
/// `cargo xtask ort-lib` provisions).
fn ort_runtime() -> &'static OrtRuntime {
    OrtRuntime::locate().unwrap_or_else(|e| panic!("ONNX Runtime: {e}"))
}

/// Loads and runs `model` in ONNX Runtime at every optimization level.
fn run_in_ort(model: &Model, inputs: &[(String, Tensor)]) {
    let runtime = ort_runtime();
    for level in [
        OptimizationLevel::Disabled,
        OptimizationLevel::Basic,
        OptimizationLevel::Extended,
        OptimizationLevel::All,
    ] {
        let options = SessionOptions::default()
            .optimization_level(level)
            .intra_op_threads(1);
        let mut session = Session::from_bytes(runtime, &model.to_bytes(), &options)
            .unwrap_or_else(|e| panic!("ONNX Runtime refused the model at {level:?}: {e}"));
        session
            .run(inputs)
            .unwrap_or_else(|e| panic!("ONNX Runtime run at {level:?}: {e}"));
    }
}

/// `y = Expand(1.0, shape) + x`: the `Expand` is a constant that must not be folded (or
/// allocated) when its shape is huge or its element count overflows.
fn expand_model(shape: &[i64]) -> Model {
    let mut b = Builder::new(17);
    let x = b.input("x", &["1"]);
    let one = b.scalar(1.0);
    b.graph
        .add_initializer(Tensor::from_i64("shape", vec![shape.len() as i64], shape));
    let e = b.op("Expand", &[&one, "shape"]);
    let y = b.op("Add", &[&e, &x]);
    b.output(&y);
    b.build()
}

#[test]
fn huge_static_expand_shapes_neither_abort_nor_wrap() {
    for shape in [
        vec![1i64 << 31, 64],
        vec![i64::MAX],
        vec![i64::MAX, i64::MAX],
        vec![1 << 62, 4],
        vec![1, 1, 16384, 16384],
    ] {
        let model = expand_model(&shape);
        let start = Instant::now();
        let (out, _) = run_with(&model, "all");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{shape:?} took {:?}",
            start.elapsed()
        );
        // Nothing was folded into a tensor: the Expand and its shape are written as they were.
        assert_eq!(count(&out, "Expand"), 1, "{shape:?}");
        let written = out.graph.initializer("shape").unwrap();
        assert_eq!(written.to_i64_vec().unwrap(), shape, "{shape:?}");
        for t in out.graph.initializers.values() {
            assert!(t.numel().unwrap() <= 64, "{shape:?}: {} folded", t.name);
        }
    }
}

/// `x -> Split` into 3 with only the first output used.
fn split_model() -> Model {
    let mut b = Builder::new(17);
    let x = b.input("x", &["6", "4"]);
    b.graph.nodes.push(
        transfuse_ir::Node::new(
            "Split",
            "",
            vec![x],
            vec!["a".into(), "b".into(), "c".into()],
        )
        .with_attr("axis", AttrValue::Int(0)),
    );
    let y = b.op("Relu", &["a"]);
    b.output(&y);
    b.build()
}

#[test]
fn multi_output_nodes_keep_every_output_name() {
    let model = split_model();
    let (out, _) = run_with(&model, "all");
    let split = out
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "Split")
        .unwrap();
    assert_eq!(split.outputs, ["a", "b", "c"]);
    let x = Tensor::from_f32("x", vec![6, 4], &[0.5; 24]);
    run_in_ort(&out, &[("x".to_string(), x)]);
}

/// An erf GELU (fused to `com.microsoft:Gelu`) in a model that imports `com.microsoft` at
/// `version`.
fn gelu_model(ms_version: i64) -> Model {
    let mut b = Builder::new(17);
    let x = b.input("x", &["2", "8"]);
    let s = b.scalar(std::f32::consts::SQRT_2);
    let one = b.scalar(1.0);
    let half = b.scalar(0.5);
    let d = b.op("Div", &[&x, &s]);
    let e = b.op("Erf", &[&d]);
    let a = b.op("Add", &[&e, &one]);
    let xh = b.op("Mul", &[&x, &half]);
    let y = b.op("Mul", &[&xh, &a]);
    b.output(&y);
    let mut model = b.build();
    model.opset_imports.push(OpsetImport {
        domain: MS_DOMAIN.to_string(),
        version: ms_version,
    });
    model
}

#[test]
fn fused_ops_get_a_com_microsoft_version_ort_resolves() {
    for version in [0, -3, 1] {
        let model = gelu_model(version);
        let (out, report) = run_with(&model, "all");
        assert_eq!(report.fused["Gelu"], 1, "version {version}");
        assert_eq!(out.opset(MS_DOMAIN), Some(1), "version {version}");
        let x = Tensor::from_f32("x", vec![2, 8], &[0.25; 16]);
        run_in_ort(&out, &[("x".to_string(), x)]);
    }
}

#[test]
fn report_counts_ops_before_and_after_and_only_new_fused_ops() {
    let model = gelu_model(1);
    let (out, report) = run_with(&model, "all");
    assert_eq!(report.ops_before["Erf"], 1);
    assert_eq!(report.ops_before.get("com.microsoft.Gelu"), None);
    assert_eq!(report.ops_after["com.microsoft.Gelu"], 1);
    assert_eq!(report.ops_after.get("Erf"), None);
    assert_eq!(report.fused["Gelu"], 1);
    // Optimizing the output again creates nothing: the Gelu it has is not counted.
    let (_, again) = run_with(&out, "all");
    assert_eq!(again.fused["Gelu"], 0);
    assert_eq!(again.ops_before["com.microsoft.Gelu"], 1);
    // `none` returns the model as loaded: nothing fused, before equals after.
    let (_, none) = run_with(&out, "none");
    assert!(none.fused.values().all(|&n| n == 0));
    assert_eq!(none.ops_before, none.ops_after);
    // Every fused op type of the registry has an entry.
    assert_eq!(
        report.fused.len(),
        transfuse_rewrite::fused_op_types().len()
    );
}

/// A chain of `n` Relu nodes.
fn relu_chain(n: usize) -> Model {
    let mut b = Builder::new(17);
    let mut x = b.input("x", &["batch", "8"]);
    for _ in 0..n {
        x = b.op("Relu", &[&x]);
    }
    b.output(&x);
    b.build()
}

#[test]
fn graphs_over_the_node_limit_are_refused_with_the_limit_named() {
    let limits = transfuse_rewrite::RunnerLimits {
        max_graph_nodes: 500,
        ..Default::default()
    };
    let options = transfuse_rewrite::OptimizeOptions {
        limits,
        ..Default::default()
    };
    let err = transfuse_rewrite::optimize(&relu_chain(501), &options).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("501 nodes")
            && message.contains("500")
            && message.contains("max_graph_nodes"),
        "{message}"
    );
    let (out, _) = transfuse_rewrite::optimize(&relu_chain(500), &options).unwrap();
    assert_eq!(out.graph.nodes.len(), 500);
}
