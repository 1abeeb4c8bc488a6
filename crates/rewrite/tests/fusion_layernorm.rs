//! LayerNormalization and SkipLayerNormalization: forms that fire, forms that must not, and
//! parity through the reference interpreter.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Builder, count, max_diff, random_inputs, run_with};
use transfuse_ir::{AttrValue, Model};

/// How the decomposed layer norm is spelled.
#[derive(Clone, Copy)]
struct Form {
    /// `Mul(d, d)` instead of `Pow(d, 2)`.
    mul_square: bool,
    /// `Mul(d, Reciprocal(sqrt))` instead of `Div(d, sqrt)`.
    reciprocal: bool,
    /// Reduce over this axis.
    axis: i64,
    /// Exponent of the `Pow`.
    exponent: f32,
    /// Scale and bias present.
    affine: bool,
    /// Opset 18: `ReduceMean` takes its axes as a constant input.
    axes_input: bool,
    /// Size of the normalized (last) axis.
    width: i64,
    /// Scale all ones and bias all zeros, as a freshly initialized model exports them.
    unit_affine: bool,
}

const HF: Form = Form {
    mul_square: false,
    reciprocal: false,
    axis: -1,
    exponent: 2.0,
    affine: true,
    axes_input: false,
    width: 8,
    unit_affine: false,
};

/// `y = LN(x)` written out, over `x: [batch, seq, 8]`, optionally after a residual add.
fn decomposed(b: &mut Builder, x: &str, form: Form) -> String {
    let axes_name = format!("{x}_axes");
    if form.axes_input {
        b.graph.add_initializer(transfuse_ir::Tensor::from_i64(
            &axes_name,
            vec![1],
            &[form.axis],
        ));
    }
    let reduce_mean = |b: &mut Builder, v: &str| {
        if form.axes_input {
            b.op("ReduceMean", &[v, &axes_name])
        } else {
            b.op_attrs(
                "ReduceMean",
                &[v],
                vec![("axes", AttrValue::Ints(vec![form.axis]))],
            )
        }
    };
    let mean = reduce_mean(b, x);
    let d = b.op("Sub", &[x, &mean]);
    let sq = if form.mul_square {
        b.op("Mul", &[&d, &d])
    } else {
        let two = b.scalar(form.exponent);
        b.op("Pow", &[&d, &two])
    };
    let var = reduce_mean(b, &sq);
    let eps = b.scalar(1e-5);
    let ve = b.op("Add", &[&var, &eps]);
    let s = b.op("Sqrt", &[&ve]);
    let n = if form.reciprocal {
        let r = b.op("Reciprocal", &[&s]);
        b.op("Mul", &[&d, &r])
    } else {
        b.op("Div", &[&d, &s])
    };
    if !form.affine {
        return n;
    }
    let w = form.width;
    let (g, beta) = if form.unit_affine {
        let len = usize::try_from(w).unwrap();
        (b.init(&[w], &vec![1.0; len]), b.init(&[w], &vec![0.0; len]))
    } else {
        (b.random(&[w], 11), b.random(&[w], 12))
    };
    let scaled = b.op("Mul", &[&g, &n]);
    b.op("Add", &[&scaled, &beta])
}

fn single(form: Form) -> Model {
    let mut b = Builder::new(if form.axes_input { 18 } else { 14 });
    let width = form.width.to_string();
    let x = b.input("x", &["batch", "seq", &width]);
    let y = decomposed(&mut b, &x, form);
    b.output(&y);
    b.build()
}

fn check_parity(model: &Model, fused: &Model) {
    let inputs = random_inputs(model, &[("batch", 2), ("seq", 3)], 5);
    let d = max_diff(model, fused, &inputs);
    assert!(d < 1e-4, "max diff {d}");
}

#[test]
fn decomposed_forms_fuse_and_match() {
    let forms = [
        HF,
        Form {
            mul_square: true,
            ..HF
        },
        Form {
            reciprocal: true,
            ..HF
        },
        Form {
            affine: false,
            ..HF
        },
        Form { axis: 2, ..HF },
        Form {
            axes_input: true,
            ..HF
        },
    ];
    for (i, form) in forms.into_iter().enumerate() {
        let model = single(form);
        let (fused, report) = run_with(&model, "layernorm");
        assert_eq!(fused.graph.nodes.len(), 1, "form {i}: {report:?}");
        let ln = &fused.graph.nodes[0];
        assert_eq!(ln.op_type, "LayerNormalization", "form {i}");
        assert_eq!(
            ln.attr_float("epsilon"),
            Some(1e-5),
            "form {i}: epsilon read from the graph"
        );
        assert_eq!(ln.inputs.len(), if form.affine { 3 } else { 2 }, "form {i}");
        check_parity(&model, &fused);
    }
}

#[test]
fn wide_unit_scale_and_zero_bias_fold_into_the_layer_norm() {
    // Hidden 768 is above the size of tracked constant values: the unit scale must still be
    // recognized (from the uniform-value scan), or `* gamma` and `+ beta` stay as two
    // element-wise nodes after every LayerNormalization.
    for width in [8, 768, 4096] {
        for unit_affine in [true, false] {
            let form = Form {
                width,
                unit_affine,
                ..HF
            };
            let model = single(form);
            let (fused, report) = run_with(&model, "layernorm");
            assert_eq!(
                fused.graph.nodes.len(),
                1,
                "width {width}, unit {unit_affine}: {report:?}"
            );
            assert_eq!(fused.graph.nodes[0].inputs.len(), 3);
            check_parity(&model, &fused);
        }
    }
}

#[test]
fn not_a_layer_norm_is_left_alone() {
    // Mean over a different axis, or a cube instead of a square.
    for form in [
        Form { axis: 1, ..HF },
        Form {
            exponent: 3.0,
            ..HF
        },
    ] {
        let model = single(form);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(count(&fused, "LayerNormalization"), 0);
        assert_eq!(count(&fused, "ReduceMean"), 2);
    }
}

#[test]
fn layer_norm_is_kept_when_the_fusion_is_off() {
    let model = single(HF);
    let (fused, report) = run_with(&model, "all,-layernorm,-skiplayernorm");
    assert_eq!(count(&fused, "LayerNormalization"), 0);
    assert_eq!(
        fused.graph.nodes.len(),
        model.graph.nodes.len(),
        "{report:?}"
    );
}

/// `x + MatMul(h, W) + bias` then a layer norm: the post-LN residual of BERT.
fn post_ln(sum_used_elsewhere: bool, onnx_ln: bool) -> Model {
    let mut b = Builder::new(17);
    let x = b.input("x", &["batch", "seq", "8"]);
    let h = b.input("h", &["batch", "seq", "8"]);
    let w = b.random(&[8, 8], 21);
    let bias = b.random(&[8], 22);
    let mm = b.op("MatMul", &[&h, &w]);
    let dense = b.op("Add", &[&bias, &mm]);
    let sum = b.op("Add", &[&dense, &x]);
    let y = if onnx_ln {
        let g = b.random(&[8], 23);
        let beta = b.random(&[8], 24);
        b.op_attrs(
            "LayerNormalization",
            &[&sum, &g, &beta],
            vec![("epsilon", AttrValue::Float(1e-6))],
        )
    } else {
        decomposed(&mut b, &sum, HF)
    };
    b.output(&y);
    if sum_used_elsewhere {
        let two = b.scalar(2.0);
        let other = b.op("Mul", &[&sum, &two]);
        b.output(&other);
    }
    b.build()
}

#[test]
fn residual_layer_norm_becomes_skip_layer_norm_with_bias() {
    for onnx_ln in [false, true] {
        let model = post_ln(false, onnx_ln);
        let (fused, _) = run_with(&model, "all");
        assert_eq!(count(&fused, "SkipLayerNormalization"), 1);
        assert_eq!(
            fused.graph.nodes.len(),
            2,
            "MatMul + SkipLayerNormalization"
        );
        let sln = fused
            .graph
            .nodes
            .iter()
            .find(|n| n.op_type == "SkipLayerNormalization")
            .unwrap();
        assert_eq!(sln.inputs.len(), 5, "bias folded");
        assert_eq!(sln.outputs.len(), 1, "the sum is not needed");
        let eps = if onnx_ln { 1e-6 } else { 1e-5 };
        assert_eq!(sln.attr_float("epsilon"), Some(eps));
        assert!(
            fused
                .opset_imports
                .iter()
                .any(|o| o.domain == "com.microsoft")
        );
        check_parity(&model, &fused);
    }
}

#[test]
fn residual_sum_used_elsewhere_comes_from_output_3() {
    let model = post_ln(true, false);
    let (fused, _) = run_with(&model, "all");
    let sln = fused
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "SkipLayerNormalization")
        .unwrap();
    assert_eq!(sln.outputs.len(), 4);
    assert!(!sln.outputs[3].is_empty());
    assert_eq!(count(&fused, "Add"), 0, "no separate residual Add");
    check_parity(&model, &fused);
}

#[test]
fn pre_ln_chain_shares_the_residual_stream() {
    // ViT: x1 = x0 + f(LN(x0)); x2 = x1 + g(LN(x1)); out = LN(x2).
    let mut b = Builder::new(17);
    let x0 = b.input("x", &["batch", "seq", "8"]);
    let mut x = x0.clone();
    for layer in 0..2u64 {
        let g = b.random(&[8], 30 + layer);
        let beta = b.random(&[8], 40 + layer);
        let n = b.op_attrs("LayerNormalization", &[&x, &g, &beta], vec![]);
        let w = b.random(&[8, 8], 50 + layer);
        let bias = b.random(&[8], 60 + layer);
        let mm = b.op("MatMul", &[&n, &w]);
        let dense = b.op("Add", &[&bias, &mm]);
        x = b.op("Add", &[&x, &dense]);
    }
    let g = b.random(&[8], 70);
    let beta = b.random(&[8], 71);
    let y = b.op_attrs("LayerNormalization", &[&x, &g, &beta], vec![]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    // The first LN reads the input directly; the other two take the residuals.
    assert_eq!(count(&fused, "LayerNormalization"), 1);
    assert_eq!(count(&fused, "SkipLayerNormalization"), 2);
    assert_eq!(count(&fused, "Add"), 0);
    check_parity(&model, &fused);
}

#[test]
fn skip_layer_norm_needs_equal_shapes() {
    // A broadcast residual ([batch, seq, 8] + [1, seq, 8]) stays a LayerNormalization.
    let mut b = Builder::new(17);
    let x = b.input("x", &["batch", "seq", "8"]);
    let p = b.input("p", &["1", "seq", "8"]);
    let sum = b.op("Add", &[&x, &p]);
    let g = b.random(&[8], 1);
    let y = b.op_attrs("LayerNormalization", &[&sum, &g], vec![]);
    b.output(&y);
    let model = b.build();
    let (fused, _) = run_with(&model, "all");
    assert_eq!(count(&fused, "SkipLayerNormalization"), 0);
    assert_eq!(count(&fused, "LayerNormalization"), 1);
}

#[test]
fn tensorflow_layer_norm_fuses() {
    // x * s + (beta - mean * s), s = gamma / sqrt(mean((x - mean)^2) + eps)
    let mut b = Builder::new(14);
    let x = b.input("x", &["batch", "8"]);
    let axes = || vec![("axes", AttrValue::Ints(vec![-1]))];
    let mean = b.op_attrs("ReduceMean", &[&x], axes());
    let d = b.op("Sub", &[&x, &mean]);
    let sq = b.op("Mul", &[&d, &d]);
    let var = b.op_attrs("ReduceMean", &[&sq], axes());
    let eps = b.scalar(1e-3);
    let ve = b.op("Add", &[&var, &eps]);
    let s = b.op("Sqrt", &[&ve]);
    let r = b.op("Reciprocal", &[&s]);
    let g = b.random(&[8], 3);
    let scale = b.op("Mul", &[&r, &g]);
    let xs = b.op("Mul", &[&x, &scale]);
    let ms = b.op("Mul", &[&mean, &scale]);
    let beta = b.random(&[8], 4);
    let shift = b.op("Sub", &[&beta, &ms]);
    let y = b.op("Add", &[&xs, &shift]);
    b.output(&y);
    let model = b.build();
    let (fused, report) = run_with(&model, "layernorm");
    assert_eq!(fused.graph.nodes.len(), 1, "{report:?}");
    assert_eq!(fused.graph.nodes[0].attr_float("epsilon"), Some(1e-3));
    check_parity(&model, &fused);
}
