//! The interpreter as a whole: typed errors (unsupported ops name op, domain and opset),
//! input checking, observation order, outputs that are inputs or constants.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use std::collections::HashMap;

use common::*;
use transfuse_interp::{InterpError, Interpreter, OpError, supported_ops};
use transfuse_ir::{DataType, Dim, ValueInfo};

#[test]
fn unsupported_op_names_op_domain_and_opset() {
    let model = ModelBuilder::new(17)
        .input("x", f32s(&[1], &[1.0]))
        .node(op("NonMaxSuppression", &["x"], &["y"]))
        .outputs(&["y"])
        .model();
    let err = Interpreter::new(&model).unwrap_err();
    match &err {
        InterpError::UnsupportedOp {
            op_type,
            domain,
            opset,
        } => {
            assert_eq!(op_type, "NonMaxSuppression");
            assert_eq!(domain, "");
            assert_eq!(*opset, 17);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("NonMaxSuppression") && text.contains("opset 17"),
        "{text}"
    );

    let model = ModelBuilder::new(17)
        .input("x", f32s(&[1], &[1.0]))
        .node(ms_op("Rotary", &["x"], &["y"]))
        .outputs(&["y"])
        .model();
    let text = Interpreter::new(&model).unwrap_err().to_string();
    assert!(
        text.contains("Rotary") && text.contains("com.microsoft") && text.contains("opset 1"),
        "{text}"
    );

    // An op outside its supported opset range is unsupported too (Gelu is ONNX 20).
    let model = ModelBuilder::new(17)
        .input("x", f32s(&[1], &[1.0]))
        .node(op("Gelu", &["x"], &["y"]))
        .outputs(&["y"])
        .model();
    let err = Interpreter::new(&model).unwrap_err();
    assert!(
        matches!(err, InterpError::UnsupportedOp { opset: 17, .. }),
        "{err}"
    );
}

#[test]
fn bad_attributes_are_reported_when_preparing_with_the_node_name() {
    let mut node = op("Softmax", &["x"], &["y"]).with_attr("axis", string("last"));
    node.name = "my_softmax".into();
    let model = ModelBuilder::new(13)
        .input("x", f32s(&[1], &[1.0]))
        .node(node)
        .outputs(&["y"])
        .model();
    let err = Interpreter::new(&model).unwrap_err();
    match &err {
        InterpError::Node {
            node,
            op_type,
            source: OpError::Attribute { name, .. },
        } => {
            assert_eq!(
                (node.as_str(), op_type.as_str(), name.as_str()),
                ("my_softmax", "Softmax", "axis")
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    let model = ModelBuilder::new(17)
        .input("x", f32s(&[1, 2, 2], &[0.0; 4]))
        .node(ms_op("Attention", &["x", "x"], &["y"]))
        .outputs(&["y"])
        .model();
    assert!(
        Interpreter::new(&model)
            .unwrap_err()
            .to_string()
            .contains("num_heads")
    );
}

#[test]
fn run_errors_name_the_node() {
    let out = ModelBuilder::new(13)
        .input("a", f32s(&[2], &[1., 2.]))
        .input("b", f32s(&[3], &[1., 2., 3.]))
        .node(op("Add", &["a", "b"], &["y"]))
        .outputs(&["y"])
        .run();
    let err = out.unwrap_err();
    assert!(
        matches!(&err, InterpError::Node { op_type, source: OpError::Shape(_), .. } if op_type == "Add"),
        "{err}"
    );
    assert!(err.to_string().contains("do not broadcast"), "{err}");
}

#[test]
fn inputs_are_checked_against_the_signature() {
    let mut model = ModelBuilder::new(13)
        .input("x", f32s(&[2], &[0.0; 2]))
        .node(op("Relu", &["x"], &["y"]))
        .outputs(&["y"])
        .model();
    model.graph.inputs[0] = ValueInfo::tensor(
        "x",
        DataType::Float,
        Some(vec![Dim::Symbol("batch".into()), Dim::Known(3)]),
    );
    let interp = Interpreter::new(&model).unwrap();
    let run = |v| interp.run(&HashMap::from([("x".to_string(), v)]));
    assert!(matches!(
        run(i64s(&[1, 3], &[0; 3])).unwrap_err(),
        InterpError::InputMismatch { .. }
    ));
    assert!(matches!(
        run(f32s(&[1, 2], &[0.0; 2])).unwrap_err(),
        InterpError::InputMismatch { .. }
    ));
    assert!(run(f32s(&[4, 3], &[0.0; 12])).is_ok());
    let missing = interp.run(&HashMap::new()).unwrap_err();
    assert!(
        matches!(&missing, InterpError::MissingInput { name } if name == "x"),
        "{missing}"
    );
}

#[test]
fn initializer_defaults_for_graph_inputs() {
    let b = ModelBuilder::new(13)
        .input("x", f32s(&[1], &[5.0]))
        .initializer("x", &f32s(&[1], &[2.0]))
        .node(op("Neg", &["x"], &["y"]))
        .outputs(&["y"]);
    let model = b.model();
    let interp = Interpreter::new(&model).unwrap();
    assert_exact(
        &interp.run(&HashMap::new()).unwrap()["y"],
        &f32s(&[1], &[-2.0]),
    );
    let given = HashMap::from([("x".to_string(), f32s(&[1], &[5.0]))]);
    assert_exact(&interp.run(&given).unwrap()["y"], &f32s(&[1], &[-5.0]));
}

#[test]
fn observe_sees_every_produced_value_in_topological_order() {
    let model = ModelBuilder::new(13)
        .input("x", f32s(&[2], &[1., -2.]))
        .node(op("Constant", &[], &["c"]).with_attr("value_float", float(3.0)))
        .node(op("Relu", &["x"], &["r"]))
        .node(op("Add", &["r", "c"], &["s"]))
        .node(op("Split", &["s"], &["s0", "s1"]).with_attr("axis", int(0)))
        .node(op("Neg", &["s1"], &["y"]))
        .outputs(&["y", "x", "c"])
        .model();
    let interp = Interpreter::new(&model).unwrap();
    let mut seen = Vec::new();
    let out = interp
        .run_observed(
            &HashMap::from([("x".to_string(), f32s(&[2], &[1., -2.]))]),
            &mut |name, value| {
                seen.push((name.to_string(), value.to_f64_vec()));
            },
        )
        .unwrap();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["c", "r", "s", "s0", "s1", "y"]);
    assert_eq!(seen[2].1, vec![4.0, 3.0]);
    // Graph outputs may be graph inputs and constants.
    assert_exact(&out["y"], &f32s(&[1], &[-3.0]));
    assert_exact(&out["x"], &f32s(&[2], &[1., -2.]));
    assert_exact(&out["c"], &f32s(&[], &[3.0]));
}

#[test]
fn a_value_read_twice_by_one_node_is_not_moved() {
    let out = ModelBuilder::new(13)
        .input("x", f32s(&[3], &[1., 2., 3.]))
        .node(op("Neg", &["x"], &["n"]))
        .node(op("Mul", &["n", "n"], &["y"]))
        .outputs(&["y"])
        .run()
        .unwrap();
    assert_exact(&out[0], &f32s(&[3], &[1., 4., 9.]));
}

#[test]
fn bad_inputs_give_errors_not_panics() {
    // Each of these would index out of bounds if unchecked.
    let cases: Vec<(transfuse_ir::Node, Vec<Option<transfuse_interp::Value>>)> = vec![
        (
            op("Gather", &[], &[]).with_attr("axis", int(3)),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[1], &[0]))],
        ),
        (
            op("GatherND", &[], &[]),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[1, 2], &[0, 0]))],
        ),
        (
            op("Transpose", &[], &[]).with_attr("perm", ints(&[0, 0])),
            vec![Some(f32s(&[1, 1], &[1.]))],
        ),
        (
            op("Reshape", &[], &[]),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[2], &[-1, -1]))],
        ),
        (
            op("Concat", &[], &[]).with_attr("axis", int(0)),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[1], &[1]))],
        ),
        (
            op("Range", &[], &[]),
            vec![
                Some(f32s(&[], &[0.])),
                Some(f32s(&[], &[1e30])),
                Some(f32s(&[], &[1e-30])),
            ],
        ),
        (
            op("ConstantOfShape", &[], &[]),
            vec![Some(i64s(&[3], &[1 << 40, 1 << 40, 1 << 40]))],
        ),
        (
            op("MatMul", &[], &[]),
            vec![Some(f32s(&[2, 3], &[0.; 6])), Some(f32s(&[2, 3], &[0.; 6]))],
        ),
        (
            op("Expand", &[], &[]),
            vec![Some(f32s(&[3], &[0.; 3])), Some(i64s(&[1], &[-2]))],
        ),
        (
            op("Softmax", &[], &[]).with_attr("axis", int(5)),
            vec![Some(f32s(&[2], &[0.; 2]))],
        ),
        (
            ms_op("SkipLayerNormalization", &[], &[]),
            vec![
                Some(f32s(&[1, 2], &[0.; 2])),
                Some(f32s(&[1, 3], &[0.; 3])),
                Some(f32s(&[2], &[1.; 2])),
            ],
        ),
        (
            ms_op("EmbedLayerNormalization", &[], &[]),
            vec![
                Some(i32s(&[1, 1], &[-1])),
                None,
                Some(f32s(&[1, 1], &[0.])),
                Some(f32s(&[1, 1], &[0.])),
                None,
                Some(f32s(&[1], &[1.])),
                Some(f32s(&[1], &[0.])),
            ],
        ),
        (
            ms_op("Attention", &[], &[]).with_attr("num_heads", int(2)),
            vec![
                Some(f32s(&[1, 2, 3], &[0.; 6])),
                Some(f32s(&[3, 9], &[0.; 27])),
            ],
        ),
    ];
    for (node, inputs) in cases {
        let name = node.op_type.clone();
        let result = run_op(13, node, inputs, 1);
        assert!(result.is_err(), "{name} accepted bad input");
    }
}

#[test]
fn supported_ops_lists_the_table() {
    let ops = supported_ops();
    let has = |domain: &str, name: &str, opset: i64| {
        ops.iter()
            .any(|o| o.domain == domain && o.op_type == name && o.opsets.contains(&opset))
    };
    for name in [
        "Add",
        "MatMul",
        "Conv",
        "ConvTranspose",
        "Resize",
        "LayerNormalization",
        "Softmax",
        "Where",
        "CumSum",
        "GatherND",
    ] {
        assert!(has("", name, 17), "{name}");
    }
    assert!(has("", "ReduceMean", 18) && has("", "Gelu", 20) && !has("", "Gelu", 17));
    for name in [
        "Attention",
        "MultiHeadAttention",
        "SkipLayerNormalization",
        "EmbedLayerNormalization",
        "Gelu",
        "FastGelu",
        "BiasGelu",
        "QuickGelu",
    ] {
        assert!(has("com.microsoft", name, 1), "{name}");
    }
}

#[test]
fn one_prepared_interpreter_serves_several_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Interpreter>();
    let model = ModelBuilder::new(13)
        .input("x", f32s(&[2], &[0.0; 2]))
        .node(op("Exp", &["x"], &["y"]))
        .outputs(&["y"])
        .model();
    let interp = Interpreter::new(&model).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let interp = &interp;
            scope.spawn(move || {
                let x = f32s(&[2], &[t as f32, 0.0]);
                let y = interp.run(&HashMap::from([("x".to_string(), x)])).unwrap();
                assert_close(&y["y"], &f32s(&[2], &[(t as f32).exp(), 1.0]), 1e-6);
            });
        }
    });
}

#[test]
fn absurd_sizes_are_errors_not_allocations() {
    let cases: Vec<(transfuse_ir::Node, Vec<Option<transfuse_interp::Value>>)> = vec![
        (
            op("Expand", &[], &[]),
            vec![
                Some(f32s(&[1], &[1.])),
                Some(i64s(&[3], &[1 << 20, 1 << 20, 1 << 20])),
            ],
        ),
        (
            op("Tile", &[], &[]),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[1], &[1 << 40]))],
        ),
        (
            op("Pad", &[], &[]),
            vec![Some(f32s(&[2], &[1., 2.])), Some(i64s(&[2], &[1 << 40, 0]))],
        ),
        (
            op("Add", &[], &[]),
            vec![
                Some(f32s(&[1 << 17, 1], &vec![0.; 1 << 17])),
                Some(f32s(&[1 << 16], &vec![0.; 1 << 16])),
            ],
        ),
        (
            op("Resize", &[], &[]),
            vec![
                Some(f32s(&[1, 1, 2, 2], &[0.; 4])),
                None,
                Some(f32s(&[4], &[1., 1., 1e6, 1e6])),
            ],
        ),
        (
            op("ConvTranspose", &[], &[]).with_attr("output_shape", ints(&[1 << 20, 1 << 20])),
            vec![
                Some(f32s(&[1, 1, 1, 1], &[1.])),
                Some(f32s(&[1, 1, 1, 1], &[1.])),
            ],
        ),
        (
            op("Conv", &[], &[]),
            vec![
                Some(f32s(&[1, 1, 2, 2], &[1.; 4])),
                Some(f32s(&[1, 1, 0, 2], &[])),
            ],
        ),
    ];
    for (node, inputs) in cases {
        let name = node.op_type.clone();
        let err = run_op(13, node, inputs, 1).unwrap_err();
        assert!(matches!(err, InterpError::Node { .. }), "{name}: {err}");
    }
}
