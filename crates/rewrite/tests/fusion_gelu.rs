//! Gelu, BiasGelu, FastGelu and QuickGelu: forms that fire, forms that must not, parity.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Builder, count, max_diff, random_inputs, run_with};
use transfuse_ir::{AttrValue, Model};

const SQRT2: f32 = std::f32::consts::SQRT_2;

/// `MatMul(x, W) + b` then an erf GELU spelled by `form`.
fn erf_gelu_model(form: &str, sqrt2: f32, half: f32) -> Model {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "seq", "8"]);
    let w = b.random(&[8, 16], 1);
    let bias = b.random(&[16], 2);
    let mm = b.op("MatMul", &[&x, &w]);
    let h = b.op("Add", &[&bias, &mm]);
    let one = b.scalar(1.0);
    let half_c = b.scalar(half);
    let (arg, erf_add) = match form {
        "div" => {
            let s = b.scalar(sqrt2);
            (b.op("Div", &[&h, &s]), true)
        }
        _ => {
            let s = b.scalar(1.0 / sqrt2);
            (b.op("Mul", &[&s, &h]), false)
        }
    };
    let e = b.op("Erf", &[&arg]);
    let a = if erf_add {
        b.op("Add", &[&e, &one])
    } else {
        b.op("Add", &[&one, &e])
    };
    let y = match form {
        // torch: x * 0.5 * (1 + erf)
        "div" => {
            let xh = b.op("Mul", &[&h, &half_c]);
            b.op("Mul", &[&xh, &a])
        }
        // dynamo: x * (0.5 * (1 + erf))
        "mul" => {
            let ha = b.op("Mul", &[&half_c, &a]);
            b.op("Mul", &[&h, &ha])
        }
        // 0.5 * (x * (1 + erf))
        _ => {
            let xa = b.op("Mul", &[&a, &h]);
            b.op("Mul", &[&half_c, &xa])
        }
    };
    b.output(&y);
    b.build()
}

#[test]
fn erf_gelu_forms_fuse_to_bias_gelu_and_match() {
    for form in ["div", "mul", "outer"] {
        let model = erf_gelu_model(form, SQRT2, 0.5);
        let (fused, report) = run_with(&model, "all");
        assert_eq!(count(&fused, "BiasGelu"), 1, "form {form}: {report:?}");
        assert_eq!(count(&fused, "Erf"), 0, "form {form}");
        assert_eq!(fused.graph.nodes.len(), 2, "form {form}: MatMul + BiasGelu");
        let (gelu_only, _) = run_with(&model, "gelu");
        assert_eq!(count(&gelu_only, "Gelu"), 1, "form {form}");
        assert_eq!(count(&gelu_only, "BiasGelu"), 0, "form {form}");
    }
}

#[test]
fn erf_gelu_forms_compute_the_same() {
    for form in ["div", "mul", "outer"] {
        let model = erf_gelu_model(form, SQRT2, 0.5);
        let inputs = random_inputs(&model, &[("batch", 2), ("seq", 3)], 7);
        for fusions in ["gelu", "all"] {
            let (fused, _) = run_with(&model, fusions);
            let d = max_diff(&model, &fused, &inputs);
            assert!(d < 1e-5, "form {form}, fusions {fusions}: max diff {d}");
        }
    }
}

#[test]
fn erf_gelu_with_wrong_constants_is_left_alone() {
    for (sqrt2, half) in [(1.5, 0.5), (SQRT2, 0.25)] {
        let model = erf_gelu_model("div", sqrt2, half);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(count(&fused, "Erf"), 1);
        assert_eq!(count(&fused, "Gelu") + count(&fused, "BiasGelu"), 0);
    }
}

#[test]
fn gelu_without_matmul_bias_stays_gelu() {
    // The bias is added to a graph input, not a MatMul: no BiasGelu.
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let bias = b.random(&[8], 3);
    let h = b.op("Add", &[&x, &bias]);
    let s = b.scalar(SQRT2);
    let d = b.op("Div", &[&h, &s]);
    let e = b.op("Erf", &[&d]);
    let one = b.scalar(1.0);
    let a = b.op("Add", &[&e, &one]);
    let m = b.op("Mul", &[&h, &a]);
    let half = b.scalar(0.5);
    let y = b.op("Mul", &[&m, &half]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "Gelu"), 1);
    assert_eq!(count(&fused, "BiasGelu"), 0);
}

#[test]
fn onnx_gelu_tanh_becomes_fast_gelu_never_bias_gelu() {
    let mut b = Builder::new(20);
    let x = b.input("x", &["batch", "8"]);
    let w = b.random(&[8, 8], 4);
    let bias = b.random(&[8], 5);
    let mm = b.op("MatMul", &[&x, &w]);
    let h = b.op("Add", &[&mm, &bias]);
    let y = b.op_attrs(
        "Gelu",
        &[&h],
        vec![("approximate", AttrValue::String(b"tanh".to_vec()))],
    );
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "BiasGelu"), 0);
    assert_eq!(count(&fused, "FastGelu"), 1);
    let fast = fused
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "FastGelu")
        .unwrap();
    assert_eq!(fast.inputs.len(), 2, "bias folded into FastGelu");
}

/// `0.5 * h * (1 + tanh(sqrt(2/pi) * (h + 0.044715 * h^3)))` after `MatMul + bias`;
/// `cube` spells h^3 as `Pow` or as products; `k` is the sqrt(2/pi) constant used.
fn tanh_gelu_model(cube_by_pow: bool, k: f32) -> Model {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let w = b.random(&[8, 8], 6);
    let bias = b.random(&[8], 7);
    let mm = b.op("MatMul", &[&x, &w]);
    let h = b.op("Add", &[&mm, &bias]);
    let cube = if cube_by_pow {
        let three = b.scalar(3.0);
        b.op("Pow", &[&h, &three])
    } else {
        let sq = b.op("Mul", &[&h, &h]);
        b.op("Mul", &[&h, &sq])
    };
    let c = b.scalar(0.044715);
    let t = b.op("Mul", &[&c, &cube]);
    let inner = b.op("Add", &[&h, &t]);
    let kc = b.scalar(k);
    let arg = b.op("Mul", &[&kc, &inner]);
    let th = b.op("Tanh", &[&arg]);
    let one = b.scalar(1.0);
    let a = b.op("Add", &[&one, &th]);
    let half = b.scalar(0.5);
    let hh = b.op("Mul", &[&half, &h]);
    let y = b.op("Mul", &[&hh, &a]);
    b.output(&y);
    b.build()
}

#[test]
fn tanh_gelu_becomes_fast_gelu_with_bias_and_matches() {
    for by_pow in [true, false] {
        let model = tanh_gelu_model(by_pow, 0.797_884_6);
        let (fused, report) = run_with(&model, "all");
        assert_eq!(count(&fused, "FastGelu"), 1, "{report:?}");
        assert_eq!(count(&fused, "BiasGelu") + count(&fused, "Gelu"), 0);
        assert_eq!(fused.graph.nodes.len(), 2, "MatMul + FastGelu(bias)");
        let inputs = random_inputs(&model, &[("batch", 3)], 9);
        let d = max_diff(&model, &fused, &inputs);
        assert!(d < 1e-5, "max diff {d}");
    }
}

#[test]
fn tanh_gelu_with_wrong_constant_is_left_alone() {
    let model = tanh_gelu_model(true, 0.7);
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "FastGelu"), 0);
    assert_eq!(count(&fused, "Tanh"), 1);
}

fn quick_gelu_model(alpha: f32, sigmoid_first: bool) -> Model {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let a = b.scalar(alpha);
    let t = b.op("Mul", &[&x, &a]);
    let s = b.op("Sigmoid", &[&t]);
    let y = if sigmoid_first {
        b.op("Mul", &[&s, &x])
    } else {
        b.op("Mul", &[&x, &s])
    };
    b.output(&y);
    b.build()
}

#[test]
fn quick_gelu_fuses_with_its_alpha_and_matches() {
    for (alpha, first) in [(1.702, false), (1.702, true), (1.0, false)] {
        let model = quick_gelu_model(alpha, first);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(fused.graph.nodes.len(), 1);
        let q = &fused.graph.nodes[0];
        assert_eq!(q.op_type, "QuickGelu");
        assert_eq!(q.attr_float("alpha"), Some(alpha));
        let inputs = random_inputs(&model, &[("batch", 3)], 13);
        assert!(max_diff(&model, &fused, &inputs) < 1e-5);
    }
}

#[test]
fn sigmoid_of_another_value_is_not_quick_gelu() {
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let z = b.input("z", &["batch", "8"]);
    let s = b.op("Sigmoid", &[&z]);
    let y = b.op("Mul", &[&x, &s]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "QuickGelu"), 0);
    assert_eq!(count(&fused, "Sigmoid"), 1);
}
