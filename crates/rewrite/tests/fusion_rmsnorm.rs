//! RMSNorm -> SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization: forms that
//! fire (also with partly known or unknown input shapes), forms that must not, and parity
//! through the reference interpreter and ONNX Runtime.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::HashMap;

use support::{Builder, count, max_diff, pseudo_random, run_with};
use transfuse_interp::Value;
use transfuse_ir::{AttrValue, DataType, Dim, Model, Tensor, ValueInfo};
use transfuse_ort::{OrtRuntime, Session, SessionOptions};

/// How the RMS norm is spelled.
#[derive(Clone, Copy, Debug)]
struct Form {
    /// `x * x` instead of `Pow(x, 2)`.
    mul_square: bool,
    /// 0: `Div(x, Sqrt)`, 1: `Mul(x, Reciprocal(Sqrt))`, 2: `Mul(Reciprocal(Sqrt), x)`,
    /// 3: `Mul(x, Pow(.., -0.5))`, 4: `Mul(x, Div(1, Sqrt))` (TorchScript's `rsqrt`).
    division: u8,
    /// T5: statistics on `Cast(x, float)`.
    cast: bool,
    /// Reduce over this axis.
    axis: i64,
    /// `gamma * n` instead of `n * gamma`.
    gamma_first: bool,
    /// Length of gamma.
    gamma_len: i64,
}

const T5: Form = Form {
    mul_square: false,
    division: 1,
    cast: true,
    axis: -1,
    gamma_first: true,
    gamma_len: 8,
};

fn rms(b: &mut Builder, x: &str, form: Form) -> String {
    let x = if form.cast {
        b.op_attrs(
            "Cast",
            &[x],
            vec![("to", AttrValue::Int(i64::from(DataType::Float.code())))],
        )
    } else {
        x.to_string()
    };
    let sq = if form.mul_square {
        b.op("Mul", &[&x, &x])
    } else {
        let two = b.scalar(2.0);
        b.op("Pow", &[&x, &two])
    };
    let var = b.op_attrs(
        "ReduceMean",
        &[&sq],
        vec![("axes", AttrValue::Ints(vec![form.axis]))],
    );
    let eps = b.scalar(1e-6);
    let ve = b.op("Add", &[&var, &eps]);
    let n = match form.division {
        0 => {
            let s = b.op("Sqrt", &[&ve]);
            b.op("Div", &[&x, &s])
        }
        1 | 2 => {
            let s = b.op("Sqrt", &[&ve]);
            let r = b.op("Reciprocal", &[&s]);
            if form.division == 1 {
                b.op("Mul", &[&x, &r])
            } else {
                b.op("Mul", &[&r, &x])
            }
        }
        4 => {
            let s = b.op("Sqrt", &[&ve]);
            let one = b.scalar(1.0);
            let r = b.op("Div", &[&one, &s]);
            b.op("Mul", &[&x, &r])
        }
        _ => {
            let p = b.scalar(-0.5);
            let r = b.op("Pow", &[&ve, &p]);
            b.op("Mul", &[&x, &r])
        }
    };
    let g = b.random(&[form.gamma_len], 7);
    if form.gamma_first {
        b.op("Mul", &[&g, &n])
    } else {
        b.op("Mul", &[&n, &g])
    }
}

/// The shape of the input: known, last dim unknown, or no shape at all.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InputShape {
    Known,
    LastDimUnknown,
    None,
}

impl InputShape {
    /// The declared shape of the inputs: `[batch, 3, 8]`, `[batch, 3, ?]` or none.
    fn dims(self) -> Option<Vec<Dim>> {
        let last = match self {
            InputShape::Known => Dim::Known(8),
            InputShape::LastDimUnknown => Dim::Unknown,
            InputShape::None => return None,
        };
        Some(vec![Dim::Symbol("batch".into()), Dim::Known(3), last])
    }
}

fn model_with(form: Form, input: InputShape) -> Model {
    let mut b = Builder::new(14);
    let shape = input.dims();
    for name in ["x", "h"] {
        b.graph
            .inputs
            .push(ValueInfo::tensor(name, DataType::Float, shape.clone()));
    }
    let sum = b.op("Add", &["h", "x"]);
    let y = rms(&mut b, &sum, form);
    b.output(&y);
    b.build()
}

fn feed(names: &[&str], dims: &[i64], seed: u64) -> HashMap<String, Value> {
    let n: i64 = dims.iter().product();
    names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let values: Vec<f32> = (0..n)
                .map(|i| pseudo_random(seed + k as u64, i as u64))
                .collect();
            let t = Tensor::from_f32(*name, dims.to_vec(), &values);
            (name.to_string(), Value::from_tensor(&t).unwrap())
        })
        .collect()
}

fn the_norm(model: &Model) -> &transfuse_ir::Node {
    model
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "SkipSimplifiedLayerNormalization")
        .unwrap_or_else(|| {
            panic!(
                "no SkipSimplifiedLayerNormalization in {:?}",
                model.graph.nodes
            )
        })
}

#[test]
fn rms_forms_fuse_and_match() {
    let mut forms = Vec::new();
    for mul_square in [false, true] {
        for division in 0..5 {
            for cast in [false, true] {
                forms.push(Form {
                    mul_square,
                    division,
                    cast,
                    gamma_first: division % 2 == 0,
                    ..T5
                });
            }
        }
    }
    forms.push(Form { axis: 2, ..T5 });
    for form in forms {
        for input in [
            InputShape::Known,
            InputShape::LastDimUnknown,
            InputShape::None,
        ] {
            // Every spelling is recognized; the skip form needs the residual's shape (the
            // kernel's input and skip must be the same rank-3 shape), so with unknown shapes
            // the norm stays decomposed: a standalone SimplifiedLayerNormalization would not
            // pass the ONNX checker.
            let model = model_with(form, input);
            let (fused, report) = run_with(&model, "skiprmsnorm");
            if input == InputShape::Known {
                assert_eq!(
                    fused.graph.nodes.len(),
                    1,
                    "{form:?} {input:?}: {:?} {report:?}",
                    fused.graph.nodes
                );
                let n = the_norm(&fused);
                assert_eq!(n.domain, "com.microsoft");
                assert_eq!(n.inputs.len(), 3);
                assert_eq!(n.attr_float("epsilon"), Some(1e-6));
            } else {
                assert_eq!(count(&fused, "SkipSimplifiedLayerNormalization"), 0);
            }
            assert_eq!(count(&fused, "SimplifiedLayerNormalization"), 0);
            let inputs = feed(&["x", "h"], &[2, 3, 8], 3);
            let d = max_diff(&model, &fused, &inputs);
            assert!(d < 1e-5, "{form:?} {input:?}: max diff {d}");
        }
    }
}

#[test]
fn rms_over_another_axis_or_with_a_wrong_scale_is_left_alone() {
    // Axis 1 is not the last one (also not provable with only the rank known).
    for input in [InputShape::Known, InputShape::LastDimUnknown] {
        let model = model_with(Form { axis: 1, ..T5 }, input);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(
            count(&fused, "SimplifiedLayerNormalization"),
            0,
            "{input:?}"
        );
        assert_eq!(count(&fused, "ReduceMean"), 1);
        assert_eq!(count(&fused, "RMSNormalization"), 0, "{input:?}");
    }
    // Without any shape, axis 2 may or may not be the last one.
    let model = model_with(Form { axis: 2, ..T5 }, InputShape::None);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "SimplifiedLayerNormalization"), 0);
    // A scale of length 1 over a known last dim of 8 is a broadcast, not a per-channel
    // scale: the core fuses (with unit scale) and the product stays.
    let model = model_with(Form { gamma_len: 1, ..T5 }, InputShape::Known);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "Mul"), 1, "{:?}", fused.graph.nodes);
}

#[test]
fn a_layer_norm_is_not_taken_for_an_rms_norm() {
    // (x - mean) / sqrt(mean((x - mean)^2) + eps) is an RMS norm of x - mean, but it belongs
    // to `layernorm`; with that off it stays decomposed.
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "3", "8"]);
    let axes = || vec![("axes", AttrValue::Ints(vec![-1]))];
    let mean = b.op_attrs("ReduceMean", &[&x], axes());
    let d = b.op("Sub", &[&x, &mean]);
    let sq = b.op("Mul", &[&d, &d]);
    let var = b.op_attrs("ReduceMean", &[&sq], axes());
    let eps = b.scalar(1e-5);
    let ve = b.op("Add", &[&var, &eps]);
    let s = b.op("Sqrt", &[&ve]);
    let n = b.op("Div", &[&d, &s]);
    let g = b.random(&[8], 2);
    let y = b.op("Mul", &[&n, &g]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all,-layernorm,-skiplayernorm");
    assert_eq!(count(&fused, "SimplifiedLayerNormalization"), 0);
    assert_eq!(count(&fused, "RMSNormalization"), 0);
    assert_eq!(fused.graph.nodes.len(), model.graph.nodes.len());
}

/// `h + x` then an RMS norm, the sum optionally used again.
fn residual(sum_used_elsewhere: bool) -> Model {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "seq", "8"]);
    let h = b.input("h", &["batch", "seq", "8"]);
    let sum = b.op("Add", &[&h, &x]);
    let y = rms(&mut b, &sum, T5);
    b.output(&y);
    if sum_used_elsewhere {
        let two = b.scalar(2.0);
        let other = b.op("Mul", &[&sum, &two]);
        b.output(&other);
    }
    b.build()
}

#[test]
fn residual_rms_norm_becomes_skip_simplified_layer_norm() {
    for used in [false, true] {
        let model = residual(used);
        let (fused, report) = run_with(&model, "all");
        assert_eq!(
            count(&fused, "SkipSimplifiedLayerNormalization"),
            1,
            "{:?} {report:?}",
            fused.graph.nodes
        );
        assert_eq!(count(&fused, "Add"), 0, "no separate residual Add");
        assert_eq!(fused.graph.nodes.len(), if used { 2 } else { 1 });
        let node = &fused.graph.nodes[0];
        assert_eq!(node.domain, "com.microsoft");
        assert_eq!(node.attr_float("epsilon"), Some(1e-6));
        let inputs = feed(&["x", "h"], &[2, 3, 8], 9);
        let d = max_diff(&model, &fused, &inputs);
        assert!(d < 1e-5, "max diff {d}");
    }
}

#[test]
fn rms_norm_is_kept_when_the_fusion_is_off() {
    let model = residual(false);
    let (fused, _) = run_with(&model, "all,-rmsnorm,-skiprmsnorm");
    assert_eq!(count(&fused, "SimplifiedLayerNormalization"), 0);
    assert_eq!(count(&fused, "SkipSimplifiedLayerNormalization"), 0);
    assert_eq!(count(&fused, "ReduceMean"), 1);
}

/// ONNX Runtime, found the project's one way (`ORT_DYLIB_PATH`, then the copy
/// `cargo xtask ort-lib` provisions).
fn ort_runtime() -> &'static OrtRuntime {
    OrtRuntime::locate().unwrap_or_else(|e| panic!("ONNX Runtime: {e}"))
}

fn ort_run(model: &Model, inputs: &[(String, Tensor)]) -> Vec<Vec<f64>> {
    let options = SessionOptions::default().intra_op_threads(1);
    let mut session = Session::from_bytes(ort_runtime(), &model.to_bytes(), &options)
        .unwrap_or_else(|e| panic!("ONNX Runtime rejects the model: {e}"));
    session
        .run(inputs)
        .unwrap()
        .into_iter()
        .map(|(_, t)| t.to_f64_vec().unwrap())
        .collect()
}

#[test]
fn fused_rms_norms_run_in_onnx_runtime() {
    for (model, names) in [
        (model_with(T5, InputShape::Known), vec!["x", "h"]),
        (residual(true), vec!["x", "h"]),
    ] {
        let (fused, _) = run_with(&model, "all");
        assert_eq!(count(&fused, "SkipSimplifiedLayerNormalization"), 1);
        assert_eq!(count(&fused, "SimplifiedLayerNormalization"), 0);
        let inputs: Vec<(String, Tensor)> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let values: Vec<f32> = (0..48).map(|i| pseudo_random(20 + k as u64, i)).collect();
                (
                    name.to_string(),
                    Tensor::from_f32(*name, vec![2, 3, 8], &values),
                )
            })
            .collect();
        let expected = ort_run(&model, &inputs);
        let got = ort_run(&fused, &inputs);
        assert_eq!(expected.len(), got.len());
        for (e, g) in expected.iter().zip(&got) {
            let d = e
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f64, f64::max);
            assert!(d < 1e-5, "ONNX Runtime max diff {d}");
        }
    }
}

#[test]
fn tanh_gelu_with_a_product_cube_and_the_half_outside_fuses() {
    // 0.5 * (x * (1 + tanh(c * (x + 0.044715 * (x * (x * x))))))
    for input in [InputShape::Known, InputShape::None] {
        let mut b = Builder::new(14);
        let shape = match input {
            InputShape::Known => Some(vec![Dim::Symbol("batch".into()), Dim::Known(8)]),
            _ => None,
        };
        b.graph
            .inputs
            .push(ValueInfo::tensor("x", DataType::Float, shape));
        let xx = b.op("Mul", &["x", "x"]);
        let cube = b.op("Mul", &["x", &xx]);
        let k = b.scalar(0.044715);
        let kc = b.op("Mul", &[&k, &cube]);
        let inner = b.op("Add", &["x", &kc]);
        let c = b.scalar(0.797_884_6);
        let arg = b.op("Mul", &[&c, &inner]);
        let t = b.op("Tanh", &[&arg]);
        let one = b.scalar(1.0);
        let onep = b.op("Add", &[&one, &t]);
        let prod = b.op("Mul", &["x", &onep]);
        let half = b.scalar(0.5);
        let y = b.op("Mul", &[&half, &prod]);
        b.output(&y);
        let model = b.build();
        let (fused, report) = run_with(&model, "fastgelu");
        assert_eq!(
            count(&fused, "FastGelu"),
            1,
            "{input:?}: {:?} {report:?}",
            fused.graph.nodes
        );
        assert_eq!(fused.graph.nodes.len(), 1);
        let inputs = feed(&["x"], &[2, 8], 4);
        let d = max_diff(&model, &fused, &inputs);
        assert!(d < 1e-5, "max diff {d}");
    }
}

/// A decomposed layer norm over the last axis (`axes = [axis]`) of `x`, `gamma` of length
/// `gamma_len`, `beta` of length 8.
fn layer_norm_model(input: InputShape, axis: i64, gamma_len: i64) -> Model {
    let mut b = Builder::new(14);
    let shape = input.dims();
    b.graph
        .inputs
        .push(ValueInfo::tensor("x", DataType::Float, shape));
    let axes = || vec![("axes", AttrValue::Ints(vec![axis]))];
    let mean = b.op_attrs("ReduceMean", &["x"], axes());
    let d = b.op("Sub", &["x", &mean]);
    let two = b.scalar(2.0);
    let sq = b.op("Pow", &[&d, &two]);
    let var = b.op_attrs("ReduceMean", &[&sq], axes());
    let eps = b.scalar(1e-5);
    let ve = b.op("Add", &[&var, &eps]);
    let s = b.op("Sqrt", &[&ve]);
    let n = b.op("Div", &[&d, &s]);
    let g = b.random(&[gamma_len], 5);
    let scaled = b.op("Mul", &[&g, &n]);
    let beta = b.random(&[8], 6);
    let y = b.op("Add", &[&scaled, &beta]);
    b.output(&y);
    b.build()
}

#[test]
fn layer_norm_fuses_with_partly_known_or_unknown_shapes() {
    for input in [
        InputShape::Known,
        InputShape::LastDimUnknown,
        InputShape::None,
    ] {
        let model = layer_norm_model(input, -1, 8);
        let (fused, report) = run_with(&model, "layernorm");
        assert_eq!(
            fused.graph.nodes.len(),
            1,
            "{input:?}: {:?} {report:?}",
            fused.graph.nodes
        );
        assert_eq!(fused.graph.nodes[0].op_type, "LayerNormalization");
        assert_eq!(
            fused.graph.nodes[0].inputs.len(),
            3,
            "{input:?}: scale and bias"
        );
        let inputs = feed(&["x"], &[2, 3, 8], 8);
        let d = max_diff(&model, &fused, &inputs);
        assert!(d < 1e-5, "{input:?}: max diff {d}");
    }
    // Axis 2 is the last one when the rank is known.
    let model = layer_norm_model(InputShape::LastDimUnknown, 2, 8);
    let (fused, _) = run_with(&model, "layernorm");
    assert_eq!(fused.graph.nodes.len(), 1);
}

#[test]
fn layer_norm_with_unprovable_axis_or_wrong_scale_is_left_alone() {
    // A scale of length 1 over a known last dim of 8 is a broadcast, not a per-channel
    // scale: the core fuses (with unit scale) and the product stays.
    let model = layer_norm_model(InputShape::Known, -1, 1);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "Mul"), 1, "{:?}", fused.graph.nodes);
    for (input, axis, gamma_len) in [
        (InputShape::LastDimUnknown, 1, 8),
        (InputShape::None, 1, 8),
        (InputShape::None, 2, 8),
    ] {
        let model = layer_norm_model(input, axis, gamma_len);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(
            count(&fused, "LayerNormalization"),
            0,
            "{input:?} axis {axis} gamma {gamma_len}"
        );
        assert_eq!(count(&fused, "ReduceMean"), 2);
    }
}

/// A standalone RMS norm (no residual Add before it): `x` straight from the input.
fn standalone(extra_reduce_max: bool) -> Model {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "3", "8"]);
    let y = rms(&mut b, &x, T5);
    b.output(&y);
    if extra_reduce_max {
        // ReduceMax keeps its axes as an attribute until opset 18: a graph holding one
        // cannot be relabelled to opset 23.
        let m = b.op_attrs("ReduceMax", &[&x], vec![("axes", AttrValue::Ints(vec![1]))]);
        b.output(&m);
    }
    b.build()
}

#[test]
fn a_standalone_rms_norm_becomes_rms_normalization_at_opset_23() {
    let model = standalone(false);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(
        fused.graph.nodes.len(),
        1,
        "{:?}",
        fused.graph.op_histogram()
    );
    let n = &fused.graph.nodes[0];
    assert_eq!(
        (n.op_type.as_str(), n.domain.as_str()),
        ("RMSNormalization", "")
    );
    assert_eq!(n.attr_float("epsilon"), Some(1e-6));
    assert_eq!(n.attr_int("axis"), Some(-1));
    assert_eq!(fused.opset(""), Some(23));
    assert!(fused.ir_version >= 11);
    let inputs = feed(&["x"], &[2, 3, 8], 5);
    let d = max_diff(&model, &fused, &inputs);
    assert!(d < 1e-5, "max diff {d}");
    // Without `rmsnorm` in the set, nothing is emitted for it.
    let (kept, _) = run_with(&model, "all,-rmsnorm");
    assert_eq!(count(&kept, "RMSNormalization"), 0);
    assert_eq!(kept.opset(""), Some(14));
}

#[test]
fn a_standalone_rms_norm_stays_when_the_opset_cannot_be_raised_and_says_why() {
    let model = standalone(true);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "RMSNormalization"), 0);
    assert_eq!(count(&fused, "ReduceMean"), 1);
    assert_eq!(fused.opset(""), Some(14));
    let explanation = transfuse_rewrite::explain(&fused);
    let norms: Vec<_> = explanation
        .unfused
        .iter()
        .filter(|s| s.family == "norms")
        .collect();
    assert_eq!(norms.len(), 1, "{norms:?}");
    assert_eq!(norms[0].rule, "rmsnorm");
    assert!(norms[0].reason.contains("opset 23"), "{}", norms[0]);
}
