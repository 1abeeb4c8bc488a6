//! I/O binding and the CUDA provider's options: a bound run computes what a plain run does,
//! and a CUDA graph capture either runs, is refused with ONNX Runtime's reason, or reports the
//! CPU-shape warning. The CUDA tests skip (and say so) where no CUDA provider is available.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use transfuse_ir::{AttrValue, DataType, Dim, Graph, Model, Node, OpsetImport, Tensor, ValueInfo};
use transfuse_ort::{CudaOptions, ExecutionProvider, OrtError, Session, SessionOptions};

/// `y = Add(x, x)` over `x: f32[n, 4]`; with `shape_ops`, `y` is that sum reshaped to
/// `[Shape(x)[0], -1]`: the `Gather`, `Unsqueeze` and `Concat` on the shape are the
/// kind of nodes ONNX Runtime keeps on the CPU.
fn model(shape_ops: bool) -> Model {
    let mut graph = Graph::default();
    let dims = Some(vec![Dim::Symbol("n".into()), Dim::Known(4)]);
    graph
        .inputs
        .push(ValueInfo::tensor("x", DataType::Float, dims.clone()));
    graph
        .outputs
        .push(ValueInfo::tensor("y", DataType::Float, dims));
    let sum = if shape_ops { "sum" } else { "y" };
    graph.nodes.push(Node::new(
        "Add",
        "",
        vec!["x".into(), "x".into()],
        vec![sum.into()],
    ));
    if shape_ops {
        for (name, dims, values) in [
            ("zero", vec![], vec![0i64]),
            ("axes", vec![1], vec![0]),
            ("rest", vec![1], vec![-1]),
        ] {
            let tensor = Tensor::from_i64(name, dims, &values);
            graph.initializers.insert(name.into(), Arc::new(tensor));
        }
        let nodes = [
            ("Shape", vec!["x"], "shape"),
            ("Gather", vec!["shape", "zero"], "rows"),
            ("Unsqueeze", vec!["rows", "axes"], "rows1"),
            ("Concat", vec!["rows1", "rest"], "target"),
            ("Reshape", vec!["sum", "target"], "y"),
        ];
        for (op, inputs, output) in nodes {
            let inputs = inputs.into_iter().map(String::from).collect();
            let node = Node::new(op, "", inputs, vec![output.into()]);
            graph.nodes.push(if op == "Concat" {
                node.with_attr("axis", AttrValue::Int(0))
            } else {
                node
            });
        }
    }
    Model {
        ir_version: 8,
        opset_imports: vec![OpsetImport {
            domain: String::new(),
            version: 17,
        }],
        graph,
        ..Model::default()
    }
}

fn input() -> Tensor {
    let values: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
    Tensor::from_f32("x", vec![2, 4], &values)
}

#[test]
fn a_bound_cpu_run_times_the_model() {
    let runtime = common::runtime();
    let bytes = model(false).to_bytes();
    let mut session = Session::from_bytes(runtime, &bytes, &SessionOptions::default()).unwrap();
    let prepared = session.prepare(&[("x", input())]).unwrap();
    let bound = session.bind(&prepared).unwrap();
    for _ in 0..3 {
        let elapsed = session.time_bound(&bound).unwrap();
        assert!(elapsed.as_secs() < 10);
    }
    // The CPU session keeps ONNX Runtime's own logger: nothing is captured.
    assert_eq!(session.capture_report().log, Vec::<String>::new());
}

/// A CUDA session, or `None` (with a message) where this build or this machine has no CUDA
/// provider.
fn cuda_session(shape_ops: bool, cuda: CudaOptions) -> Option<Result<Session, OrtError>> {
    let runtime = common::runtime();
    let options = SessionOptions::default()
        .execution_provider(ExecutionProvider::Cuda { device_id: 0 })
        .cuda_options(cuda);
    match Session::from_bytes(runtime, &model(shape_ops).to_bytes(), &options) {
        Err(e @ (OrtError::ProviderNotCompiled { .. } | OrtError::Configure { .. })) => {
            eprintln!("skipped: no CUDA execution provider here ({e})");
            None
        }
        Err(OrtError::CreateSession { message, .. })
            if message.contains("CUDA") && !cuda.cuda_graph =>
        {
            eprintln!("skipped: the CUDA provider does not start here ({message})");
            None
        }
        other => Some(other),
    }
}

#[test]
fn a_bound_cuda_run_with_and_without_graph_capture() {
    for cuda_graph in [false, true] {
        let cuda = CudaOptions {
            tf32: false,
            cuda_graph,
        };
        let Some(session) = cuda_session(false, cuda) else {
            return;
        };
        let mut session = session.unwrap();
        let prepared = session.prepare(&[("x", input())]).unwrap();
        let bound = session.bind(&prepared).unwrap();
        for _ in 0..5 {
            session.time_bound(&bound).unwrap();
        }
        let report = session.capture_report();
        assert_eq!(report.cpu_shape_warning, None, "{:?}", report.log);
    }
}

#[test]
fn a_capture_with_cpu_shape_nodes_is_refused_or_warned_about() {
    let cuda = CudaOptions {
        tf32: true,
        cuda_graph: true,
    };
    let Some(session) = cuda_session(true, cuda) else {
        return;
    };
    let outcome = session.and_then(|mut session| {
        let prepared = session.prepare(&[("x", input())])?;
        let bound = session.bind(&prepared)?;
        session.time_bound(&bound)?;
        Ok(session.capture_report())
    });
    match outcome {
        Err(OrtError::GraphCaptureRefused { message, .. }) => assert!(!message.is_empty()),
        Ok(report) => assert!(
            report.cpu_shape_warning.is_some(),
            "neither a refusal nor the CPU-shape warning: {:?}",
            report.log
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
