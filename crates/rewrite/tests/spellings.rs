//! Property test: every equivalent spelling of a fused subgraph fuses, and stays exact.
//!
//! proptest draws a spelling of each block from the independent choices an exporter (or a
//! hand-written model) makes: operand order of every commutative op, a constant factor as
//! `Mul` by `c` or `Div` by `1/c`, where a constant factor sits in a product, `x³` as
//! `Pow(x, 3)`, `x * (x * x)` or `(x * x) * x`, `1/sqrt(v)` as `Div`, `Reciprocal`,
//! `Div(1, ..)` or `Pow(v, -0.5)`, a square as `Pow(d, 2)` or `d * d`, an `Identity`, a
//! no-op `Cast` or a one-input `Concat` in the way. Blocks: GELU (erf), tanh GELU, sigmoid GELU, LayerNorm, RMS norm
//! (with its residual Add), and the attention scale (on the scores, on Q, on Kᵀ, split as
//! d^-1/4 on both, as `Div` or `Mul`, constant on either side). For each drawn spelling:
//! the optimized graph holds the fused op and none of the ops the block is made of, and it
//! computes what the original computes in the reference interpreter.
#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;
mod support;

use attention_models::{
    AttentionOptions, KeyTransposeForm, MaskForm, ScaleForm, bert_attention_layer,
};
use proptest::prelude::*;
use support::{Builder, count, max_diff, random_inputs, run_with};
use transfuse_interp::Value;
use transfuse_ir::{AttrValue, DataType, Model};
use transfuse_parity::{InputSpec, Padding, generate_inputs};

/// Absolute tolerance of the interpreter comparison (values are O(1)).
const TOLERANCE: f64 = 1e-4;

/// One spelling choice per op; each `bool` flips one independent choice.
#[derive(Clone, Copy, Debug)]
struct Choices {
    bits: u32,
    /// Spellings of one multi-way choice (`1/sqrt`, `x³`).
    pick: u8,
}

impl Choices {
    fn flip(&mut self) -> bool {
        let b = self.bits & 1 == 1;
        self.bits = self.bits.rotate_right(1);
        b
    }
}

fn choices() -> impl Strategy<Value = Choices> {
    (any::<u32>(), any::<u8>()).prop_map(|(bits, pick)| Choices { bits, pick })
}

/// `a * b`, either operand order.
fn mul(b: &mut Builder, c: &mut Choices, x: &str, y: &str) -> String {
    if c.flip() {
        b.op("Mul", &[x, y])
    } else {
        b.op("Mul", &[y, x])
    }
}

/// `a + b`, either operand order.
fn add(b: &mut Builder, c: &mut Choices, x: &str, y: &str) -> String {
    if c.flip() {
        b.op("Add", &[x, y])
    } else {
        b.op("Add", &[y, x])
    }
}

/// `x * k` as `Mul` by `k` (either order) or `Div` by `1/k`.
fn scale(b: &mut Builder, c: &mut Choices, x: &str, k: f32) -> String {
    if c.flip() {
        let r = b.scalar(1.0 / k);
        b.op("Div", &[x, &r])
    } else {
        let k = b.scalar(k);
        mul(b, c, x, &k)
    }
}

/// `x`, or `x` behind an `Identity`, a `Cast` to float or a `Concat` of `x` alone (no-ops
/// the exporters leave; XLM joins its keys to an empty cache that way).
fn noop(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    match (c.flip(), c.flip()) {
        (true, true) => b.op("Identity", &[x]),
        (true, false) => b.op_attrs(
            "Cast",
            &[x],
            vec![("to", AttrValue::Int(i64::from(DataType::Float.code())))],
        ),
        (false, true) => b.op_attrs("Concat", &[x], vec![("axis", AttrValue::Int(-1))]),
        (false, false) => x.to_string(),
    }
}

/// `k * x * y` with the constant factor at any place in the product.
fn scaled_product(b: &mut Builder, c: &mut Choices, x: &str, y: &str, k: f32) -> String {
    match c.pick % 3 {
        0 => {
            let xy = mul(b, c, x, y);
            scale(b, c, &xy, k)
        }
        1 => {
            let kx = scale(b, c, x, k);
            mul(b, c, &kx, y)
        }
        _ => {
            let ky = scale(b, c, y, k);
            mul(b, c, x, &ky)
        }
    }
}

/// `1 / sqrt(v)` times `x`, in one of four spellings.
fn times_rsqrt(b: &mut Builder, c: &mut Choices, x: &str, v: &str) -> String {
    match (c.pick / 3) % 4 {
        0 => {
            let s = b.op("Sqrt", &[v]);
            b.op("Div", &[x, &s])
        }
        1 => {
            let s = b.op("Sqrt", &[v]);
            let r = b.op("Reciprocal", &[&s]);
            mul(b, c, x, &r)
        }
        2 => {
            let s = b.op("Sqrt", &[v]);
            let one = b.scalar(1.0);
            let r = b.op("Div", &[&one, &s]);
            mul(b, c, x, &r)
        }
        _ => {
            let p = b.scalar(-0.5);
            let r = b.op("Pow", &[v, &p]);
            mul(b, c, x, &r)
        }
    }
}

/// `d²` as `Pow(d, 2)` or `d * d`.
fn square(b: &mut Builder, c: &mut Choices, d: &str) -> String {
    if c.flip() {
        let two = b.scalar(2.0);
        b.op("Pow", &[d, &two])
    } else {
        b.op("Mul", &[d, d])
    }
}

fn mean_last(b: &mut Builder, x: &str) -> String {
    b.op_attrs(
        "ReduceMean",
        &[x],
        vec![("axes", AttrValue::Ints(vec![-1]))],
    )
}

const HIDDEN: i64 = 16;

/// A model `y = block(x)` with `x: [batch, 5, HIDDEN]`.
fn model(block: impl FnOnce(&mut Builder, &str) -> String) -> Model {
    let mut b = Builder::new(14);
    let h = HIDDEN.to_string();
    let x = b.input("x", &["batch", "5", &h]);
    let y = block(&mut b, &x);
    b.output(&y);
    b.build()
}

/// Optimizes with every fusion; checks the fused op is there, the block's ops are gone,
/// and the interpreter agrees with the original.
fn check(model: &Model, fused_op: &str, gone: &[&str], case: &str) -> Result<(), TestCaseError> {
    let (fused, _) = run_with(model, "all");
    let histogram = fused.graph.op_histogram();
    prop_assert!(
        count(&fused, fused_op) >= 1,
        "{case}: no {fused_op} in {histogram:?}"
    );
    for op in gone {
        prop_assert_eq!(
            count(&fused, op),
            0,
            "{}: {} left in {:?}",
            case,
            op,
            histogram
        );
    }
    let inputs = random_inputs(model, &[("batch", 2)], 11);
    let diff = max_diff(model, &fused, &inputs);
    prop_assert!(diff <= TOLERANCE, "{case}: max abs diff {diff:e}");
    Ok(())
}

/// `0.5 * x * (1 + erf(x / √2))`.
fn erf_gelu(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    let x = noop(b, c, x);
    let t = scale(b, c, &x, std::f32::consts::FRAC_1_SQRT_2);
    let e = b.op("Erf", &[&t]);
    let one = b.scalar(1.0);
    let s = add(b, c, &e, &one);
    scaled_product(b, c, &x, &s, 0.5)
}

/// `0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 * x³)))`.
fn tanh_gelu(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    let cube = match c.pick % 3 {
        0 => {
            let three = b.scalar(3.0);
            b.op("Pow", &[x, &three])
        }
        1 => {
            let xx = b.op("Mul", &[x, x]);
            mul(b, c, x, &xx)
        }
        _ => {
            let xx = b.op("Mul", &[x, x]);
            b.op("Mul", &[&xx, x])
        }
    };
    let k = scale(b, c, &cube, 0.044_715);
    let inner = add(b, c, x, &k);
    let t = scale(b, c, &inner, (2.0 / std::f32::consts::PI).sqrt());
    let th = b.op("Tanh", &[&t]);
    let one = b.scalar(1.0);
    let s = add(b, c, &th, &one);
    scaled_product(b, c, x, &s, 0.5)
}

/// `x * sigmoid(1.702 * x)`.
fn sigmoid_gelu(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    let t = scale(b, c, x, 1.702);
    let s = b.op("Sigmoid", &[&t]);
    mul(b, c, x, &s)
}

/// `(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) * g + beta`.
fn layer_norm(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    let x = noop(b, c, x);
    let mean = mean_last(b, &x);
    let d = b.op("Sub", &[&x, &mean]);
    let sq = square(b, c, &d);
    let var = mean_last(b, &sq);
    let eps = b.scalar(1e-5);
    let ve = add(b, c, &var, &eps);
    let n = times_rsqrt(b, c, &d, &ve);
    let g = b.random(&[HIDDEN], 3);
    let gn = mul(b, c, &n, &g);
    let beta = b.random(&[HIDDEN], 4);
    add(b, c, &gn, &beta)
}

/// `r / sqrt(mean(r²) + eps) * g` of the residual sum `r = x + f(x)`.
fn rms_norm(b: &mut Builder, c: &mut Choices, x: &str) -> String {
    let w = b.random(&[HIDDEN, HIDDEN], 5);
    let f = b.op("MatMul", &[x, &w]);
    let r = add(b, c, x, &f);
    let r = noop(b, c, &r);
    let sq = square(b, c, &r);
    let ms = mean_last(b, &sq);
    let eps = b.scalar(1e-6);
    let ve = add(b, c, &ms, &eps);
    let n = times_rsqrt(b, c, &r, &ve);
    let g = b.random(&[HIDDEN], 6);
    mul(b, c, &n, &g)
}

const SCALES: [ScaleForm; 7] = [
    ScaleForm::DivSqrtD,
    ScaleForm::MulReciprocal,
    ScaleForm::ConstantFirst,
    ScaleForm::OnQuery,
    ScaleForm::OnKey,
    ScaleForm::BothSides,
    ScaleForm::BothSidesDiv,
];
const KEYS: [KeyTransposeForm; 3] = [
    KeyTransposeForm::TwoTransposes,
    KeyTransposeForm::OneTranspose,
    KeyTransposeForm::MergedBatch,
];
const MASKS: [MaskForm; 3] = [
    MaskForm::None,
    MaskForm::ClassicAdditive(-10000.0),
    MaskForm::Select(f32::MIN),
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn attention_scale_spellings_fuse(
        scale in 0..SCALES.len(),
        key in 0..KEYS.len(),
        mask in 0..MASKS.len(),
    ) {
        let opts = AttentionOptions {
            scale: SCALES[scale],
            key_transpose: KEYS[key],
            mask: MASKS[mask],
            ..Default::default()
        };
        let case = format!("{opts:?}");
        let m = bert_attention_layer(opts);
        let (fused, _) = run_with(&m, "all");
        let attention = fused
            .graph
            .nodes
            .iter()
            .find(|n| n.op_type == "Attention")
            .ok_or_else(|| TestCaseError::fail(format!("{case}: no Attention")))?;
        // 32 hidden, 4 heads: head size 8.
        let s = attention.attr_float("scale").unwrap_or(0.0);
        prop_assert!((s - 1.0 / 8f32.sqrt()).abs() < 1e-6, "{}: scale {}", case, s);
        prop_assert_eq!(count(&fused, "Softmax"), 0, "{}", case);
        let spec = InputSpec { batch: 2, seq: 6, seed: 5, padding: Padding::Left };
        let inputs = generate_inputs(&m, &spec)
            .map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?
            .into_iter()
            .map(|t| (t.name.clone(), Value::from_tensor(&t).unwrap()))
            .collect();
        let diff = max_diff(&m, &fused, &inputs);
        prop_assert!(diff <= TOLERANCE, "{}: max abs diff {:e}", case, diff);
    }

    #[test]
    fn erf_gelu_spellings_fuse(mut c in choices()) {
        let case = format!("{c:?}");
        let m = model(|b, x| erf_gelu(b, &mut c, x));
        check(&m, "Gelu", &["Erf"], &case)?;
    }

    #[test]
    fn tanh_gelu_spellings_fuse(mut c in choices()) {
        let case = format!("{c:?}");
        let m = model(|b, x| tanh_gelu(b, &mut c, x));
        check(&m, "FastGelu", &["Tanh", "Pow"], &case)?;
    }

    #[test]
    fn sigmoid_gelu_spellings_fuse(mut c in choices()) {
        let case = format!("{c:?}");
        let m = model(|b, x| sigmoid_gelu(b, &mut c, x));
        check(&m, "QuickGelu", &["Sigmoid"], &case)?;
    }

    #[test]
    fn layer_norm_spellings_fuse(mut c in choices()) {
        let case = format!("{c:?}");
        let m = model(|b, x| layer_norm(b, &mut c, x));
        check(&m, "LayerNormalization", &["ReduceMean", "Sqrt", "Pow"], &case)?;
    }

    #[test]
    fn rms_norm_spellings_fuse(mut c in choices()) {
        let case = format!("{c:?}");
        let m = model(|b, x| rms_norm(b, &mut c, x));
        check(&m, "SkipSimplifiedLayerNormalization", &["ReduceMean", "Sqrt", "Pow"], &case)?;
    }
}
