//! The engine around the fusions: pass-through of what it does not understand, names,
//! outputs, options, the report, and extraction on a deep graph.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Builder, count, max_diff, random_inputs, run_with};
use transfuse_ir::{AttrValue, Node, Tensor};
use transfuse_rewrite::{FusionSet, OptimizeOptions, RewriteError, RunnerLimits, optimize};

#[test]
fn fusion_lists_parse() {
    let all = FusionSet::all();
    assert!(all.contains("gelu") && all.contains("attention"));
    let some: FusionSet = "all,-attention".parse().unwrap();
    assert!(!some.contains("attention") && some.contains("layernorm"));
    let list: FusionSet = "gelu, layernorm".parse().unwrap();
    assert_eq!(list.names().collect::<Vec<_>>(), vec!["gelu", "layernorm"]);
    assert!("none".parse::<FusionSet>().unwrap().is_empty());
    let err = "gelu,bogus".parse::<FusionSet>().unwrap_err();
    assert!(matches!(err, RewriteError::UnknownFusion { .. }));
    let text = err.to_string();
    assert!(
        text.contains("bogus") && text.contains("skiplayernorm") && text.contains("embedlayernorm"),
        "{text}"
    );
}

#[test]
fn unknown_ops_domains_and_subgraph_nodes_pass_through() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let cond = b.input("c", &[]);
    let _custom_out = {
        let out = "custom_out".to_string();
        b.graph.nodes.push(
            Node::new("MyOp", "com.example", vec![x.clone()], vec![out.clone()])
                .with_attr("mode", AttrValue::String(b"fast".to_vec())),
        );
        out
    };
    // An If whose branches read `custom_out` from the outer scope.
    let branch = |name: &str| {
        let mut g = transfuse_ir::Graph {
            name: name.into(),
            ..Default::default()
        };
        g.nodes.push(Node::new(
            "Identity",
            "",
            vec!["custom_out".into()],
            vec![format!("{name}_y")],
        ));
        g.outputs.push(transfuse_ir::ValueInfo::tensor(
            format!("{name}_y"),
            transfuse_ir::DataType::Float,
            None,
        ));
        transfuse_ir::graph_to_proto(&g)
    };
    b.graph.nodes.push(
        Node::new("If", "", vec![cond.clone()], vec!["if_out".into()])
            .with_attr("then_branch", AttrValue::Graph(Box::new(branch("then"))))
            .with_attr("else_branch", AttrValue::Graph(Box::new(branch("else")))),
    );
    b.output("if_out");
    let model = b.build();
    let (fused, report) = run_with(&model, "all");
    assert_eq!(fused.graph.nodes.len(), 2, "{report:?}");
    let my = fused
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "MyOp")
        .unwrap();
    assert_eq!(my, &model.graph.nodes[0]);
    let iff = fused
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "If")
        .unwrap();
    assert_eq!(iff, &model.graph.nodes[1]);
}

#[test]
fn outputs_that_are_inputs_or_initializers_or_repeated_keep_their_names() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["2"]);
    let w = b.init(&[2], &[1.0, 2.0]);
    let id = b.op("Identity", &[&w]);
    let y = b.op("Add", &[&x, &id]);
    let y2 = b.op("Add", &[&x, &id]); // a duplicate of y
    b.output(&y);
    b.output(&y2);
    b.output(&x);
    b.output(&id);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    let outs: Vec<&str> = fused
        .graph
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(outs, vec![y.as_str(), y2.as_str(), x.as_str(), id.as_str()]);
    fused.graph.clone().check().unwrap();
    let inputs = random_inputs(&model, &[], 1);
    assert_eq!(max_diff(&model, &fused, &inputs), 0.0);
}

#[test]
fn constant_nodes_and_multi_output_nodes_survive() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["4", "6"]);
    b.graph.nodes.push(
        Node::new("Constant", "", vec![], vec!["split_sizes".into()])
            .with_attr("value_ints", AttrValue::Ints(vec![2, 4])),
    );
    b.graph.nodes.push(
        Node::new(
            "Split",
            "",
            vec![x.clone(), "split_sizes".into()],
            vec!["s0".into(), "s1".into()],
        )
        .with_attr("axis", AttrValue::Int(1)),
    );
    let r = b.op("Relu", &["s1"]);
    b.output("s0");
    b.output(&r);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(fused.graph.nodes, model.graph.nodes);
}

#[test]
fn original_nodes_keep_their_metadata() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["3"]);
    let y = b.op("Relu", &[&x]);
    b.output(&y);
    let mut model = b.build();
    model.graph.nodes[0].name = "relu_node".into();
    model.graph.nodes[0].metadata_props = vec![("pkg.torch.stack".into(), "model.py:3".into())];
    let (fused, _) = run_with(&model, "all");
    assert_eq!(fused.graph.nodes[0], model.graph.nodes[0]);
}

#[test]
fn report_describes_the_run() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["3"]);
    let y = b.op("Relu", &[&x]);
    b.output(&y);
    let model = b.build();
    let (_, report) = run_with(&model, "all");
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "model",
        "fused",
        "nodes_before",
        "nodes_after",
        "optimize_ms",
        "egraph",
        "rules",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    for key in ["nodes", "classes", "iterations", "stop_reason"] {
        assert!(json["egraph"].get(key).is_some(), "{key}");
    }
    assert_eq!(json["egraph"]["stop_reason"], "Saturated");
    // One entry per op type the registry emits.
    assert_eq!(
        json["fused"].as_object().unwrap().len(),
        transfuse_rewrite::fused_op_types().len()
    );
    assert!(json["rules"].get("gelu-erf").is_some());
    let (_, none) = run_with(&model, "none");
    assert_eq!(none.egraph.stop_reason, "NotRun");
}

/// A BERT-like stack: `layers` post-LN layers with decomposed LayerNorm and erf GELU.
fn deep_model(layers: u64) -> transfuse_ir::Model {
    let mut b = Builder::new(14);
    let mut x = b.input("x", &["batch", "seq", "8"]);
    let axes = || vec![("axes", AttrValue::Ints(vec![-1]))];
    for l in 0..layers {
        let w = b.random(&[8, 8], 100 + l);
        let bias = b.random(&[8], 200 + l);
        let mm = b.op("MatMul", &[&x, &w]);
        let h = b.op("Add", &[&bias, &mm]);
        let s2 = b.scalar(std::f32::consts::SQRT_2);
        let d = b.op("Div", &[&h, &s2]);
        let e = b.op("Erf", &[&d]);
        let one = b.scalar(1.0);
        let a = b.op("Add", &[&e, &one]);
        let m = b.op("Mul", &[&h, &a]);
        let half = b.scalar(0.5);
        let g = b.op("Mul", &[&m, &half]);
        let sum = b.op("Add", &[&g, &x]);
        let mean = b.op_attrs("ReduceMean", &[&sum], axes());
        let c = b.op("Sub", &[&sum, &mean]);
        let two = b.scalar(2.0);
        let sq = b.op("Pow", &[&c, &two]);
        let var = b.op_attrs("ReduceMean", &[&sq], axes());
        let eps = b.scalar(1e-12);
        let ve = b.op("Add", &[&var, &eps]);
        let sd = b.op("Sqrt", &[&ve]);
        let n = b.op("Div", &[&c, &sd]);
        let gamma = b.random(&[8], 300 + l);
        let beta = b.random(&[8], 400 + l);
        let sc = b.op("Mul", &[&n, &gamma]);
        x = b.op("Add", &[&sc, &beta]);
    }
    b.output(&x);
    b.build()
}

#[test]
fn every_layer_of_a_deep_stack_is_fused() {
    let model = deep_model(24);
    let (fused, report) = run_with(&model, "all");
    assert_eq!(count(&fused, "SkipLayerNormalization"), 24, "{report:?}");
    assert_eq!(count(&fused, "BiasGelu"), 24);
    assert_eq!(
        fused.graph.nodes.len(),
        24 * 3,
        "MatMul, BiasGelu, SkipLayerNormalization per layer"
    );
    let inputs = random_inputs(&model, &[("batch", 2), ("seq", 2)], 3);
    let d = max_diff(&model, &fused, &inputs);
    assert!(d < 1e-4, "max diff {d}");
}

#[test]
fn runner_limits_stop_the_run_and_say_so() {
    let model = deep_model(4);
    let options = OptimizeOptions {
        fusions: FusionSet::all(),
        limits: RunnerLimits {
            iter_limit: 1,
            ..RunnerLimits::default()
        },
        ..OptimizeOptions::default()
    };
    let (partial, report) = optimize(&model, &options).unwrap();
    assert_eq!(report.egraph.iterations, 1);
    assert!(
        report.egraph.stop_reason.starts_with("IterationLimit"),
        "{}",
        report.egraph.stop_reason
    );
    // Whatever was found is still a correct graph.
    let inputs = random_inputs(&model, &[("batch", 1), ("seq", 2)], 4);
    assert!(max_diff(&model, &partial, &inputs) < 1e-4);
}

#[test]
fn skeleton_weights_without_data_do_not_break_analysis() {
    // A weight with dims but no data (a skeleton) is a constant of unknown value.
    let mut b = Builder::new(14);
    let x = b.input("x", &["2", "4"]);
    let mut t = Tensor::from_f32("w_empty", vec![4, 4], &[0.0; 16]);
    t.data = transfuse_ir::TensorData::Empty;
    b.graph.add_initializer(t);
    let y = b.op("MatMul", &[&x, "w_empty"]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(fused.graph.nodes.len(), 1);
}

#[test]
fn malformed_but_loadable_graphs_do_not_panic() {
    // Wrong arities, degenerate shape arithmetic and overflowing constants: the optimizer
    // may leave them alone or fail with an error, but must not panic.
    let mut b = Builder::new(18);
    let x = b.input("x", &["batch", "seq", "8"]);
    let one_input_ops = [
        "Sub",
        "Pow",
        "Mul",
        "Add",
        "Div",
        "LayerNormalization",
        "Gelu",
        "Sigmoid",
    ];
    let mut outs = Vec::new();
    for op in one_input_ops {
        outs.push(b.op(op, &[&x]));
    }
    outs.push(b.op("ReduceMean", &[]));
    let min = {
        let name = "int_min".to_string();
        b.graph
            .add_initializer(Tensor::from_i64(&name, vec![1], &[i64::MIN]));
        name
    };
    let minus_one = {
        let name = "minus_one".to_string();
        b.graph
            .add_initializer(Tensor::from_i64(&name, vec![1], &[-1]));
        name
    };
    let zero = {
        let name = "zero".to_string();
        b.graph
            .add_initializer(Tensor::from_i64(&name, vec![], &[0]));
        name
    };
    outs.push(b.op("Div", &[&min, &minus_one]));
    outs.push(b.op("Mod", &[&min, &minus_one]));
    outs.push(b.op("Range", &[&zero, &min, &zero]));
    outs.push(b.op("Slice", &[&x, &min, &min, &zero, &zero]));
    outs.push(b.op("Reshape", &[&x, &min]));
    let shape = b.op("Shape", &[&x]);
    outs.push(b.op("Reshape", &[&x, &shape]));
    outs.push(b.op_attrs(
        "Transpose",
        &[&x],
        vec![("perm", AttrValue::Ints(vec![5, -3]))],
    ));
    outs.push(b.op_attrs("Unsqueeze", &[&x, &min], vec![]));
    outs.push(b.op_attrs(
        "Concat",
        &[&x, &shape],
        vec![("axis", AttrValue::Int(i64::MAX))],
    ));
    for o in &outs {
        b.output(o);
    }
    let model = b.build();
    for fusions in ["all", "none"] {
        let options = OptimizeOptions {
            fusions: fusions.parse().unwrap(),
            ..OptimizeOptions::default()
        };
        if let Ok((fused, _)) = optimize(&model, &options) {
            assert_eq!(fused.graph.outputs.len(), outs.len());
        }
    }
}
