//! The session API on small synthetic models: every exchanged element type round-trips
//! exactly, wrong inputs give typed errors, profiling writes a per-node trace.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use transfuse_ir::{DataType, Dim, Graph, Model, Node, OpsetImport, Tensor, ValueInfo};
#[cfg(not(feature = "cuda"))]
use transfuse_ort::ExecutionProvider;
use transfuse_ort::{OrtError, OrtRuntime, Session, SessionOptions};

/// `out_<t> = Identity(in_<t>)` for each element type, plus `sum = Add(in_f32, in_f32)`.
fn identity_model(types: &[(&str, DataType)]) -> Model {
    let mut graph = Graph::default();
    for (suffix, dtype) in types {
        let shape = Some(vec![Dim::Symbol("n".into()), Dim::Known(3)]);
        graph.inputs.push(ValueInfo::tensor(
            format!("in_{suffix}"),
            *dtype,
            shape.clone(),
        ));
        graph
            .outputs
            .push(ValueInfo::tensor(format!("out_{suffix}"), *dtype, shape));
        graph.nodes.push(Node::new(
            "Identity",
            "",
            vec![format!("in_{suffix}")],
            vec![format!("out_{suffix}")],
        ));
    }
    graph
        .outputs
        .push(ValueInfo::tensor("sum", DataType::Float, None));
    graph.nodes.push(Node::new(
        "Add",
        "",
        vec!["in_f32".into(), "in_f32".into()],
        vec!["sum".into()],
    ));
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

const TYPES: [(&str, DataType); 7] = [
    ("f32", DataType::Float),
    ("f64", DataType::Double),
    ("i64", DataType::Int64),
    ("i32", DataType::Int32),
    ("i8", DataType::Int8),
    ("u8", DataType::Uint8),
    ("bool", DataType::Bool),
];

fn sample_inputs() -> Vec<(String, Tensor)> {
    let dims = vec![2, 3];
    let t = |name: &str, tensor: Tensor| (name.to_string(), tensor);
    vec![
        t(
            "in_f32",
            Tensor::from_f32(
                "",
                dims.clone(),
                &[1.5, -0.0, f32::INFINITY, f32::MIN_POSITIVE, 3e38, -7.25],
            ),
        ),
        t(
            "in_f64",
            Tensor::from_f64("", dims.clone(), &[1e-300, 2.0, -3.0, 4.5, 1e300, 0.1]),
        ),
        t(
            "in_i64",
            Tensor::from_i64("", dims.clone(), &[i64::MIN, -1, 0, 1, i64::MAX, 42]),
        ),
        t(
            "in_i32",
            Tensor::from_i32("", dims.clone(), &[i32::MIN, -1, 0, 1, i32::MAX, 42]),
        ),
        t(
            "in_i8",
            Tensor::from_raw(
                "",
                DataType::Int8,
                dims.clone(),
                vec![0x80, 0xff, 0, 1, 0x7f, 42].into(),
            ),
        ),
        t(
            "in_u8",
            Tensor::from_raw(
                "",
                DataType::Uint8,
                dims.clone(),
                vec![0, 1, 2, 128, 254, 255].into(),
            ),
        ),
        t(
            "in_bool",
            Tensor::from_bool("", dims, &[true, false, false, true, true, false]),
        ),
    ]
}

fn session(runtime: &OrtRuntime, options: &SessionOptions) -> Session {
    let bytes = identity_model(&TYPES).to_bytes();
    Session::from_bytes(runtime, &bytes, options).expect("session")
}

#[test]
fn every_element_type_round_trips_exactly() {
    let runtime = common::runtime();
    let mut session = session(runtime, &SessionOptions::default());
    let inputs = sample_inputs();
    let outputs = session.run(&inputs).expect("run");
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "out_f32", "out_f64", "out_i64", "out_i32", "out_i8", "out_u8", "out_bool", "sum"
        ]
    );
    for ((name, input), (out_name, output)) in inputs.iter().zip(&outputs) {
        assert_eq!(output.name, *out_name);
        assert_eq!(output.dtype, input.dtype, "{name}");
        assert_eq!(output.dims, input.dims, "{name}");
        assert_eq!(
            output.raw_bytes().expect("raw"),
            input.raw_bytes().expect("raw"),
            "{name}"
        );
    }
    let sum = outputs[7].1.to_f32_vec().expect("f32");
    assert_eq!(
        sum,
        [
            3.0,
            -0.0,
            f32::INFINITY,
            2.0 * f32::MIN_POSITIVE,
            f32::INFINITY,
            -14.5
        ]
    );
}

#[test]
fn empty_tensors_pass_through() {
    let runtime = common::runtime();
    let mut session = session(runtime, &SessionOptions::default());
    let inputs: Vec<(String, Tensor)> = sample_inputs()
        .into_iter()
        .map(|(name, t)| {
            let empty = Tensor::from_raw("", t.dtype, vec![0, 3], Vec::new().into());
            (name, empty)
        })
        .collect();
    let outputs = session.run(&inputs).expect("run");
    assert!(
        outputs
            .iter()
            .all(|(_, t)| t.dims == [0, 3] && t.raw_bytes().expect("raw").is_empty())
    );
}

#[test]
fn wrong_inputs_are_typed_errors() {
    let runtime = common::runtime();
    let mut session = session(runtime, &SessionOptions::default());
    let mut inputs = sample_inputs();
    inputs.push(("extra".into(), Tensor::from_f32("", vec![1], &[0.0])));
    let err = session.run(&inputs).unwrap_err();
    assert!(
        matches!(&err, OrtError::UnknownInput { name, .. } if name == "extra"),
        "{err}"
    );

    let inputs: Vec<(String, Tensor)> = sample_inputs().into_iter().skip(1).collect();
    let err = session.run(&inputs).unwrap_err();
    assert!(
        matches!(&err, OrtError::MissingInput { name } if name == "in_f32"),
        "{err}"
    );

    let mut inputs = sample_inputs();
    inputs[0].1 = Tensor::from_raw("", DataType::Float, vec![2, 3], vec![0u8; 5].into());
    let err = session.run(&inputs).unwrap_err();
    assert!(
        matches!(&err, OrtError::InvalidInput { name, .. } if name == "in_f32"),
        "{err}"
    );

    let mut inputs = sample_inputs();
    inputs[0].1 = Tensor::from_raw("", DataType::Float16, vec![2, 3], vec![0u8; 12].into());
    let err = session.run(&inputs).unwrap_err();
    assert!(
        matches!(&err, OrtError::UnsupportedType { role: "input", .. }),
        "{err}"
    );

    // A shape the model rejects (the second dim is fixed at 3) fails inside ONNX Runtime.
    let mut inputs = sample_inputs();
    inputs[0].1 = Tensor::from_f32("", vec![3, 2], &[0.0; 6]);
    let err = session.run(&inputs).unwrap_err();
    assert!(matches!(&err, OrtError::Run(_)), "{err}");
}

#[test]
fn bad_models_are_typed_errors() {
    let runtime = common::runtime();
    let err =
        Session::from_bytes(runtime, b"not an onnx model", &SessionOptions::default()).unwrap_err();
    assert!(matches!(err, OrtError::CreateSession { .. }), "{err}");
    let err = Session::from_file(
        runtime,
        "/nonexistent/model.onnx",
        &SessionOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OrtError::CreateSession { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn only_one_library_per_process() {
    let runtime = common::runtime();
    assert!(std::ptr::eq(
        OrtRuntime::init(runtime.library_path()).expect("same library"),
        runtime
    ));
    let other = tempfile::NamedTempFile::new().expect("temp file");
    let err = OrtRuntime::init(other.path()).unwrap_err();
    assert!(matches!(err, OrtError::AlreadyLoaded { .. }), "{err}");
    assert_eq!(runtime.version().as_deref(), Some("1.31.1"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_refused() {
    let runtime = common::runtime();
    let options =
        SessionOptions::default().execution_provider(ExecutionProvider::Cuda { device_id: 0 });
    let err =
        Session::from_bytes(runtime, &identity_model(&TYPES).to_bytes(), &options).unwrap_err();
    assert!(matches!(err, OrtError::ProviderNotCompiled { .. }), "{err}");
}

#[test]
fn profiling_writes_a_trace_of_node_runs() {
    let runtime = common::runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SessionOptions::default().profiling(dir.path().join("profile"));
    let mut session = session(runtime, &options);
    for _ in 0..3 {
        session.run(&sample_inputs()).expect("run");
    }
    let file = session.end_profiling().expect("end profiling");
    assert!(file.starts_with(dir.path()), "{}", file.display());
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    let node_runs: Vec<&serde_json::Value> = trace
        .as_array()
        .expect("an array of events")
        .iter()
        .filter(|e| {
            e["cat"] == "Node"
                && e["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("_kernel_time"))
        })
        .collect();
    let adds = node_runs
        .iter()
        .filter(|e| e["args"]["op_name"] == "Add")
        .count();
    assert_eq!(adds, 3, "one Add per run");
    assert!(node_runs.iter().all(|e| e["dur"].is_u64()));
    let err = session.end_profiling().unwrap_err();
    assert!(matches!(err, OrtError::Profiling(_)), "{err}");
}

#[test]
fn timed_runs_report_the_inference_time() {
    let runtime = common::runtime();
    let mut session = session(runtime, &SessionOptions::default().intra_op_threads(1));
    let prepared = session.prepare(&sample_inputs()).expect("prepare");
    assert_eq!(prepared.names().count(), 7);
    let timed = session.run_prepared(&prepared).expect("run");
    assert_eq!(timed.outputs.len(), 8);
    assert!(timed.elapsed.as_nanos() > 0);
    assert!(session.time_prepared(&prepared).expect("time").as_nanos() > 0);
}
