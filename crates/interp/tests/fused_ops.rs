//! Property tests: every fused op against the decomposed ONNX subgraph it replaces, built
//! with the IR and run through the same interpreter, on generated shapes and values.
#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_arguments)]

mod common;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use transfuse_interp::Value;

const TOLERANCE: f64 = 1e-5;

/// Appends a decomposed LayerNormalization over the last axis: `x` -> `out`.
fn decomposed_layer_norm(
    b: ModelBuilder,
    x: &str,
    scale: &str,
    bias: Option<&str>,
    eps: f32,
    out: &str,
) -> ModelBuilder {
    let p = |s: &str| format!("{out}_{s}");
    let b = b
        .initializer(&p("two"), &f32s(&[], &[2.0]))
        .initializer(&p("eps"), &f32s(&[], &[eps]))
        .node(op("ReduceMean", &[x], &[&p("mean")]).with_attr("axes", ints(&[-1])))
        .node(op("Sub", &[x, &p("mean")], &[&p("centered")]))
        .node(op("Pow", &[&p("centered"), &p("two")], &[&p("squared")]))
        .node(op("ReduceMean", &[&p("squared")], &[&p("var")]).with_attr("axes", ints(&[-1])))
        .node(op("Add", &[&p("var"), &p("eps")], &[&p("var_eps")]))
        .node(op("Sqrt", &[&p("var_eps")], &[&p("std")]))
        .node(op("Div", &[&p("centered"), &p("std")], &[&p("normed")]));
    match bias {
        Some(bias) => b
            .node(op("Mul", &[&p("normed"), scale], &[&p("scaled")]))
            .node(op("Add", &[&p("scaled"), bias], &[out])),
        None => b.node(op("Mul", &[&p("normed"), scale], &[out])),
    }
}

/// (batch, seq, hidden) with data, scale and bias vectors.
type LnCase = ((usize, usize, usize), Vec<f32>, Vec<f32>, Vec<f32>);

fn ln_case() -> impl Strategy<Value = LnCase> {
    (1usize..3, 1usize..5, 1usize..10).prop_flat_map(|(b, s, h)| {
        (
            Just((b, s, h)),
            vec(-3f32..3.0, b * s * h),
            vec(-2f32..2.0, h),
            vec(-1f32..1.0, h),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn layer_normalization_matches_decomposition(((b, s, h), x, scale, bias) in ln_case(), eps in prop::sample::select(vec![1e-5f32, 1e-12, 0.1])) {
        let x = f32s(&[b, s, h], &x);
        let (scale, bias) = (f32s(&[h], &scale), f32s(&[h], &bias));
        let fused = ModelBuilder::new(17)
            .input("x", x.clone())
            .initializer("scale", &scale)
            .initializer("bias", &bias)
            .node(op("LayerNormalization", &["x", "scale", "bias"], &["y"]).with_attr("epsilon", float(eps)))
            .outputs(&["y"])
            .run()
            .unwrap();
        let plain = decomposed_layer_norm(
            ModelBuilder::new(17).input("x", x).initializer("scale", &scale).initializer("bias", &bias),
            "x", "scale", Some("bias"), eps, "y",
        )
        .outputs(&["y"])
        .run()
        .unwrap();
        prop_assert!(max_abs_diff(&fused[0], &plain[0]) <= TOLERANCE, "differs by {}", max_abs_diff(&fused[0], &plain[0]));
    }

    #[test]
    fn skip_layer_normalization_matches_add_and_layer_norm(
        ((b, s, h), x, gamma, beta) in ln_case(),
        seed in 0u64..1000,
        with_beta in any::<bool>(),
        with_bias in any::<bool>(),
        skip_broadcast in any::<bool>(),
    ) {
        let x = f32s(&[b, s, h], &x);
        let skip_shape = if skip_broadcast { vec![s, h] } else { vec![b, s, h] };
        let skip = f32s(&skip_shape, &pseudo_random(skip_shape.iter().product(), seed));
        let bias = f32s(&[h], &pseudo_random(h, seed + 1));
        let (gamma, beta) = (f32s(&[h], &gamma), f32s(&[h], &beta));
        let eps = 1e-12f32;
        let inputs = ["x", "skip", "gamma", if with_beta { "beta" } else { "" }, if with_bias { "bias" } else { "" }];
        let start = || ModelBuilder::new(17)
            .input("x", x.clone())
            .input("skip", skip.clone())
            .initializer("gamma", &gamma)
            .initializer("beta", &beta)
            .initializer("bias", &bias);
        let fused = start()
            .node(ms_op("SkipLayerNormalization", &inputs, &["y", "mean", "inv_std", "sum"]).with_attr("epsilon", float(eps)))
            .outputs(&["y", "sum"])
            .run()
            .unwrap();
        let mut plain = start().node(op("Add", &["x", "skip"], &["xs"]));
        let sum_name = if with_bias {
            plain = plain.node(op("Add", &["xs", "bias"], &["xsb"]));
            "xsb"
        } else {
            "xs"
        };
        let plain = decomposed_layer_norm(plain, sum_name, "gamma", with_beta.then_some("beta"), eps, "y")
            .outputs(&["y", sum_name])
            .run()
            .unwrap();
        prop_assert!(max_abs_diff(&fused[0], &plain[0]) <= TOLERANCE, "output differs by {}", max_abs_diff(&fused[0], &plain[0]));
        prop_assert!(max_abs_diff(&fused[1], &plain[1]) == 0.0, "sum differs");
    }
}

/// The GELU-family subgraphs.
fn erf_gelu(b: ModelBuilder, x: &str, out: &str) -> ModelBuilder {
    let p = |s: &str| format!("{out}_{s}");
    b.initializer(&p("sqrt2"), &f32s(&[], &[std::f32::consts::SQRT_2]))
        .initializer(&p("one"), &f32s(&[], &[1.0]))
        .initializer(&p("half"), &f32s(&[], &[0.5]))
        .node(op("Div", &[x, &p("sqrt2")], &[&p("scaled")]))
        .node(op("Erf", &[&p("scaled")], &[&p("erf")]))
        .node(op("Add", &[&p("erf"), &p("one")], &[&p("erf1")]))
        .node(op("Mul", &[x, &p("erf1")], &[&p("prod")]))
        .node(op("Mul", &[&p("prod"), &p("half")], &[out]))
}

fn tanh_gelu(b: ModelBuilder, x: &str, out: &str) -> ModelBuilder {
    let p = |s: &str| format!("{out}_{s}");
    b.initializer(&p("three"), &f32s(&[], &[3.0]))
        .initializer(&p("k"), &f32s(&[], &[0.044715]))
        .initializer(
            &p("c"),
            &f32s(&[], &[(2.0f32 / std::f32::consts::PI).sqrt()]),
        )
        .initializer(&p("one"), &f32s(&[], &[1.0]))
        .initializer(&p("half"), &f32s(&[], &[0.5]))
        .node(op("Pow", &[x, &p("three")], &[&p("cube")]))
        .node(op("Mul", &[&p("cube"), &p("k")], &[&p("kcube")]))
        .node(op("Add", &[x, &p("kcube")], &[&p("inner")]))
        .node(op("Mul", &[&p("inner"), &p("c")], &[&p("arg")]))
        .node(op("Tanh", &[&p("arg")], &[&p("t")]))
        .node(op("Add", &[&p("t"), &p("one")], &[&p("t1")]))
        .node(op("Mul", &[x, &p("t1")], &[&p("prod")]))
        .node(op("Mul", &[&p("prod"), &p("half")], &[out]))
}

fn gelu_case() -> impl Strategy<Value = ((usize, usize), Vec<f32>, Vec<f32>)> {
    (1usize..4, 1usize..12)
        .prop_flat_map(|(r, h)| (Just((r, h)), vec(-6f32..6.0, r * h), vec(-1f32..1.0, h)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn gelu_family_matches_formulas(((r, h), x, bias) in gelu_case(), alpha in 0.5f32..2.5) {
        let x = f32s(&[r, h], &x);
        let bias = f32s(&[h], &bias);
        let start = || ModelBuilder::new(17).input("x", x.clone()).initializer("bias", &bias);
        let run = |b: ModelBuilder| b.outputs(&["y"]).run().unwrap().remove(0);
        let check = |fused: Value, plain: Value, what: &str| -> Result<(), TestCaseError> {
            let d = max_abs_diff(&fused, &plain);
            prop_assert!(d <= TOLERANCE, "{} differs by {}", what, d);
            Ok(())
        };
        check(run(start().node(ms_op("Gelu", &["x"], &["y"]))), run(erf_gelu(start(), "x", "y")), "Gelu")?;
        check(
            run(start().node(ms_op("BiasGelu", &["x", "bias"], &["y"]))),
            run(erf_gelu(start().node(op("Add", &["x", "bias"], &["xb"])), "xb", "y")),
            "BiasGelu",
        )?;
        check(run(start().node(ms_op("FastGelu", &["x"], &["y"]))), run(tanh_gelu(start(), "x", "y")), "FastGelu")?;
        check(
            run(start().node(ms_op("FastGelu", &["x", "bias"], &["y"]))),
            run(tanh_gelu(start().node(op("Add", &["x", "bias"], &["xb"])), "xb", "y")),
            "FastGelu with bias",
        )?;
        let quick = start()
            .initializer("alpha", &f32s(&[], &[alpha]))
            .node(op("Mul", &["x", "alpha"], &["ax"]))
            .node(op("Sigmoid", &["ax"], &["sig"]))
            .node(op("Mul", &["x", "sig"], &["y"]));
        check(run(start().node(ms_op("QuickGelu", &["x"], &["y"]).with_attr("alpha", float(alpha)))), run(quick), "QuickGelu")?;
        // The ONNX Gelu (opset 20) agrees with both forms.
        let onnx20 = |approx: &str| ModelBuilder::new(20).input("x", x.clone()).node(op("Gelu", &["x"], &["y"]).with_attr("approximate", string(approx)));
        check(run(onnx20("none")), run(start().node(ms_op("Gelu", &["x"], &["y"]))), "ONNX Gelu none")?;
        check(run(onnx20("tanh")), run(start().node(ms_op("FastGelu", &["x"], &["y"]))), "ONNX Gelu tanh")?;
    }
}

/// The unfused attention core on head-split Q, K, V (`[B, N, S, H]`, `[B, N, T, H]`):
/// `softmax(Q·Kᵀ·scale + additive) · V`, merged back to `[B, S, N·H]`. `additive` is a
/// value broadcastable to `[B, N, S, T]` (or none).
fn decomposed_core(
    b: ModelBuilder,
    q: &str,
    k: &str,
    v: &str,
    scale: f32,
    additive: &[&str],
    batch: usize,
    seq: usize,
    hidden_v: usize,
    out: &str,
) -> ModelBuilder {
    let mut b = b
        .initializer("core_scale", &f32s(&[], &[scale]))
        .initializer(
            "core_out_shape",
            &i64s(&[3], &[batch as i64, seq as i64, hidden_v as i64]),
        )
        .node(op("Transpose", &[k], &["core_kt"]).with_attr("perm", ints(&[0, 1, 3, 2])))
        .node(op("MatMul", &[q, "core_kt"], &["core_qk"]))
        .node(op("Mul", &["core_qk", "core_scale"], &["core_scores0"]));
    let mut current = "core_scores0".to_string();
    for (i, add) in additive.iter().enumerate() {
        let next = format!("core_scores{}", i + 1);
        b = b.node(op("Add", &[&current, add], &[&next]));
        current = next;
    }
    b.node(op("Softmax", &[&current], &["core_probs"]).with_attr("axis", int(-1)))
        .node(op("MatMul", &["core_probs", v], &["core_ctx"]))
        .node(
            op("Transpose", &["core_ctx"], &["core_ctx_t"]).with_attr("perm", ints(&[0, 2, 1, 3])),
        )
        .node(op("Reshape", &["core_ctx_t", "core_out_shape"], &[out]))
}

/// Splits `[B, L, N·H]` into heads `[B, N, L, H]`.
fn split_heads(
    b: ModelBuilder,
    x: &str,
    batch: usize,
    len: usize,
    heads: usize,
    head_size: usize,
    out: &str,
) -> ModelBuilder {
    let shape = format!("{out}_shape");
    let mid = format!("{out}_4d");
    b.initializer(
        &shape,
        &i64s(
            &[4],
            &[batch as i64, len as i64, heads as i64, head_size as i64],
        ),
    )
    .node(op("Reshape", &[x, &shape], &[&mid]))
    .node(op("Transpose", &[&mid], &[out]).with_attr("perm", ints(&[0, 2, 1, 3])))
}

/// A 0/1 key mask `[B, T]` as the additive `[B, 1, 1, T]` term `(1 - mask) · filter`.
fn additive_key_mask(b: ModelBuilder, mask: &str, filter: f32, out: &str) -> ModelBuilder {
    b.initializer("mask_one", &f32s(&[], &[1.0]))
        .initializer("mask_filter", &f32s(&[], &[filter]))
        .initializer("mask_axes", &i64s(&[2], &[1, 2]))
        .node(op("Cast", &[mask], &["mask_f"]).with_attr("to", int(1)))
        .node(op("Sub", &["mask_one", "mask_f"], &["mask_inv"]))
        .node(op("Mul", &["mask_inv", "mask_filter"], &["mask_add3"]))
        .node(op("Unsqueeze", &["mask_add3", "mask_axes"], &[out]))
}

#[derive(Clone, Debug)]
struct AttentionCase {
    batch: usize,
    seq: usize,
    heads: usize,
    head_size: usize,
    input: Vec<f32>,
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// Raw 0/1 key mask [B, S].
    mask: Vec<i32>,
    attention_bias: Vec<f32>,
    /// Whether the bias is [B, N, S, S] (else [1, 1, S, S]).
    bias_full: bool,
}

fn attention_case() -> impl Strategy<Value = AttentionCase> {
    (1usize..3, 1usize..6, 1usize..4, 1usize..5, any::<bool>()).prop_flat_map(
        |(batch, seq, heads, head_size, bias_full)| {
            let d = heads * head_size;
            let bias_len = if bias_full {
                batch * heads * seq * seq
            } else {
                seq * seq
            };
            (
                vec(-1f32..1.0, batch * seq * d),
                vec(-0.7f32..0.7, d * 3 * d),
                vec(-0.3f32..0.3, 3 * d),
                // Every row keeps its first key, so no row is fully masked here.
                vec(0i32..2, batch * seq),
                vec(-2f32..2.0, bias_len),
            )
                .prop_map(move |(input, weights, bias, mut mask, attention_bias)| {
                    for r in 0..batch {
                        mask[r * seq] = 1;
                    }
                    AttentionCase {
                        batch,
                        seq,
                        heads,
                        head_size,
                        input,
                        weights,
                        bias,
                        mask,
                        attention_bias,
                        bias_full,
                    }
                })
        },
    )
}

impl AttentionCase {
    fn hidden(&self) -> usize {
        self.heads * self.head_size
    }

    fn attention_bias_value(&self) -> Value {
        let s = self.seq;
        if self.bias_full {
            f32s(&[self.batch, self.heads, s, s], &self.attention_bias)
        } else {
            f32s(&[1, 1, s, s], &self.attention_bias)
        }
    }

    /// The packed-QKV graph decomposed into MatMul/Add/Split/Reshape/Transpose/Softmax.
    fn decomposed(&self, mask: Option<&Value>, with_bias: bool, filter: f32) -> Value {
        let (b, s, n, h, d) = (
            self.batch,
            self.seq,
            self.heads,
            self.head_size,
            self.hidden(),
        );
        let mut m = ModelBuilder::new(17)
            .input("input", f32s(&[b, s, d], &self.input))
            .initializer("weights", &f32s(&[d, 3 * d], &self.weights))
            .initializer("bias", &f32s(&[3 * d], &self.bias))
            .initializer("split", &i64s(&[3], &[d as i64, d as i64, d as i64]))
            .node(op("MatMul", &["input", "weights"], &["proj"]))
            .node(op("Add", &["proj", "bias"], &["qkv"]))
            .node(op("Split", &["qkv", "split"], &["q", "k", "v"]).with_attr("axis", int(2)));
        m = split_heads(m, "q", b, s, n, h, "qh");
        m = split_heads(m, "k", b, s, n, h, "kh");
        m = split_heads(m, "v", b, s, n, h, "vh");
        let mut additive = Vec::new();
        if let Some(mask) = mask {
            m = additive_key_mask(m.input("mask", mask.clone()), "mask", filter, "mask_add");
            additive.push("mask_add");
        }
        if with_bias {
            m = m.input("attention_bias", self.attention_bias_value());
            additive.push("attention_bias");
        }
        let scale = 1.0 / (h as f32).sqrt();
        decomposed_core(m, "qh", "kh", "vh", scale, &additive, b, s, d, "y")
            .outputs(&["y"])
            .run()
            .unwrap()
            .remove(0)
    }

    /// The fused `Attention` node with the given mask input (if any).
    fn fused(&self, mask: Option<Value>, with_bias: bool, filter: f32) -> Value {
        let (b, s, d) = (self.batch, self.seq, self.hidden());
        let mut m = ModelBuilder::new(17)
            .input("input", f32s(&[b, s, d], &self.input))
            .initializer("weights", &f32s(&[d, 3 * d], &self.weights))
            .initializer("bias", &f32s(&[3 * d], &self.bias));
        let mask_name = if let Some(mask) = mask {
            m = m.input("mask_index", mask);
            "mask_index"
        } else {
            ""
        };
        let bias_name = if with_bias {
            m = m.input("attention_bias", self.attention_bias_value());
            "attention_bias"
        } else {
            ""
        };
        let node = ms_op(
            "Attention",
            &["input", "weights", "bias", mask_name, "", bias_name],
            &["y"],
        )
        .with_attr("num_heads", int(self.heads as i64))
        .with_attr("mask_filter_value", float(filter));
        m.node(node).outputs(&["y"]).run().unwrap().remove(0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn attention_matches_decomposition_with_2d_mask_and_bias(case in attention_case(), use_mask in any::<bool>(), use_bias in any::<bool>()) {
        let mask = i32s(&[case.batch, case.seq], &case.mask);
        let filter = -10000.0;
        let fused = case.fused(use_mask.then(|| mask.clone()), use_bias, filter);
        let plain = case.decomposed(use_mask.then_some(&mask), use_bias, filter);
        let d = max_abs_diff(&fused, &plain);
        prop_assert!(d <= TOLERANCE, "differs by {}", d);
    }

    #[test]
    fn attention_1d_mask_index_equals_right_padded_2d_mask(case in attention_case(), lengths in vec(1usize..6, 2)) {
        // Valid lengths (right padding) as mask_index [B], against the equivalent 0/1 mask.
        let (b, s) = (case.batch, case.seq);
        let lengths: Vec<i32> = (0..b).map(|i| lengths[i].min(s) as i32).collect();
        let raw: Vec<i32> = (0..b * s).map(|i| i32::from((i % s) < lengths[i / s] as usize)).collect();
        let fused_1d = case.fused(Some(i32s(&[b], &lengths)), false, -10000.0);
        let plain = case.decomposed(Some(&i32s(&[b, s], &raw)), false, -10000.0);
        prop_assert!(max_abs_diff(&fused_1d, &plain) <= TOLERANCE);
        // The [2B] form with start positions 0 is the same mask.
        let mut end_start = lengths.clone();
        end_start.extend(std::iter::repeat_n(0, b));
        let fused_2b = case.fused(Some(i32s(&[2 * b], &end_start)), false, -10000.0);
        prop_assert!(max_abs_diff(&fused_2b, &plain) <= TOLERANCE);
        // A 3-D mask [B, S, T] repeating the key mask per query.
        let per_query: Vec<i32> = (0..b * s * s).map(|i| raw[(i / (s * s)) * s + i % s]).collect();
        let fused_3d = case.fused(Some(i32s(&[b, s, s], &per_query)), false, -10000.0);
        prop_assert!(max_abs_diff(&fused_3d, &plain) <= TOLERANCE);
    }
}

#[test]
fn attention_start_positions_mask_left_padding() {
    // [2B] mask_index: end 3 and start 1 for batch 0 mask keys 0 and 3 of 4.
    let case = AttentionCase {
        batch: 1,
        seq: 4,
        heads: 2,
        head_size: 2,
        input: pseudo_random(16, 1),
        weights: pseudo_random(48, 2),
        bias: pseudo_random(12, 3),
        mask: vec![0, 1, 1, 0],
        attention_bias: Vec::new(),
        bias_full: false,
    };
    let fused = case.fused(Some(i32s(&[2], &[3, 1])), false, -10000.0);
    let plain = case.decomposed(Some(&i32s(&[1, 4], &case.mask)), false, -10000.0);
    assert_close(&fused, &plain, TOLERANCE);
}

#[test]
fn attention_fully_masked_row_equals_the_unmasked_result() {
    // The mask is additive, so masking every key shifts all scores equally: the result is
    // plain attention (not zeros, not the mean of V).
    let case = AttentionCase {
        batch: 2,
        seq: 3,
        heads: 1,
        head_size: 4,
        input: pseudo_random(24, 4),
        weights: pseudo_random(48, 5),
        bias: pseudo_random(12, 6),
        mask: vec![0; 6],
        attention_bias: Vec::new(),
        bias_full: false,
    };
    let unmasked = case.fused(None, false, -10000.0);
    // With a small filter value the shift is exact to f32 rounding of O(1) numbers.
    let masked = case.fused(Some(i32s(&[2, 3], &case.mask)), false, -1.0);
    assert_close(&masked, &unmasked, TOLERANCE);
    // With the default -10000 the scores are rounded at magnitude 1e4 (ulp 2^-10), so the
    // probabilities carry relative errors up to about 1e-3.
    let masked = case.fused(Some(i32s(&[2, 3], &case.mask)), false, -10000.0);
    assert_close(&masked, &unmasked, 2e-3);
}

#[test]
fn attention_unidirectional_masks_future_keys() {
    let case = AttentionCase {
        batch: 1,
        seq: 3,
        heads: 1,
        head_size: 2,
        input: pseudo_random(6, 7),
        weights: pseudo_random(12, 8),
        bias: vec![0.0; 6],
        mask: vec![1; 3],
        attention_bias: Vec::new(),
        bias_full: false,
    };
    // A causal additive bias [1, 1, S, S] with the lowest float above the diagonal.
    let mut causal = vec![0f32; 9];
    for i in 0..3 {
        for j in i + 1..3 {
            causal[i * 3 + j] = f32::MIN;
        }
    }
    let with_causal_bias = AttentionCase {
        attention_bias: causal,
        ..case.clone()
    };
    let plain = with_causal_bias.decomposed(None, true, -10000.0);
    let m = ModelBuilder::new(17)
        .input("input", f32s(&[1, 3, 2], &case.input))
        .initializer("weights", &f32s(&[2, 6], &case.weights))
        .initializer("bias", &f32s(&[6], &case.bias))
        .node(
            ms_op("Attention", &["input", "weights", "bias"], &["y"])
                .with_attr("num_heads", int(1))
                .with_attr("unidirectional", int(1)),
        );
    let fused = m.outputs(&["y"]).run().unwrap().remove(0);
    assert_close(&fused, &plain, TOLERANCE);
}

#[derive(Clone, Debug)]
struct MhaCase {
    batch: usize,
    q_len: usize,
    kv_len: usize,
    heads: usize,
    head_size: usize,
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    bias: Vec<f32>,
    mask: Vec<i32>,
    attention_bias: Vec<f32>,
}

fn mha_case() -> impl Strategy<Value = MhaCase> {
    (1usize..3, 1usize..5, 1usize..5, 1usize..4, 1usize..4).prop_flat_map(
        |(batch, q_len, kv_len, heads, head_size)| {
            let d = heads * head_size;
            (
                vec(-1f32..1.0, batch * q_len * d),
                vec(-1f32..1.0, batch * kv_len * d),
                vec(-1f32..1.0, batch * kv_len * d),
                vec(-0.5f32..0.5, 3 * d),
                vec(0i32..2, batch * kv_len),
                vec(-1f32..1.0, batch * heads * q_len * kv_len),
            )
                .prop_map(
                    move |(query, key, value, bias, mut mask, attention_bias)| {
                        for r in 0..batch {
                            mask[r * kv_len] = 1;
                        }
                        MhaCase {
                            batch,
                            q_len,
                            kv_len,
                            heads,
                            head_size,
                            query,
                            key,
                            value,
                            bias,
                            mask,
                            attention_bias,
                        }
                    },
                )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn multi_head_attention_matches_decomposition(case in mha_case(), use_bias in any::<bool>(), use_mask in any::<bool>(), use_attention_bias in any::<bool>(), scale in prop::option::of(0.1f32..1.0)) {
        let (b, s, l, n, h) = (case.batch, case.q_len, case.kv_len, case.heads, case.head_size);
        let d = n * h;
        let start = || {
            ModelBuilder::new(17)
                .input("query", f32s(&[b, s, d], &case.query))
                .input("key", f32s(&[b, l, d], &case.key))
                .input("value", f32s(&[b, l, d], &case.value))
                .input("mask", i32s(&[b, l], &case.mask))
                .input("attention_bias", f32s(&[b, n, s, l], &case.attention_bias))
                .initializer("bias", &f32s(&[3 * d], &case.bias))
        };
        let inputs = ["query", "key", "value", if use_bias { "bias" } else { "" }, if use_mask { "mask" } else { "" }, if use_attention_bias { "attention_bias" } else { "" }];
        let mut node = ms_op("MultiHeadAttention", &inputs, &["y"]).with_attr("num_heads", int(n as i64));
        if let Some(sc) = scale {
            node = node.with_attr("scale", float(sc));
        }
        let fused = start().node(node).outputs(&["y"]).run().unwrap().remove(0);

        let mut m = start();
        let (mut q, mut k, mut v) = ("query", "key", "value");
        if use_bias {
            m = m
                .initializer("bias_split", &i64s(&[3], &[d as i64, d as i64, d as i64]))
                .node(op("Split", &["bias", "bias_split"], &["bq", "bk", "bv"]).with_attr("axis", int(0)))
                .node(op("Add", &["query", "bq"], &["qb"]))
                .node(op("Add", &["key", "bk"], &["kb"]))
                .node(op("Add", &["value", "bv"], &["vb"]));
            (q, k, v) = ("qb", "kb", "vb");
        }
        m = split_heads(m, q, b, s, n, h, "qh");
        m = split_heads(m, k, b, l, n, h, "kh");
        m = split_heads(m, v, b, l, n, h, "vh");
        let mut additive = Vec::new();
        if use_mask {
            m = additive_key_mask(m, "mask", -10000.0, "mask_add");
            additive.push("mask_add");
        }
        if use_attention_bias {
            additive.push("attention_bias");
        }
        let scale = scale.unwrap_or(1.0 / (h as f32).sqrt());
        let plain = decomposed_core(m, "qh", "kh", "vh", scale, &additive, b, s, d, "y").outputs(&["y"]).run().unwrap().remove(0);
        let diff = max_abs_diff(&fused, &plain);
        prop_assert!(diff <= TOLERANCE, "differs by {}", diff);
    }
}

#[derive(Clone, Debug)]
struct EmbedCase {
    batch: usize,
    seq: usize,
    hidden: usize,
    vocab: usize,
    ids: Vec<i32>,
    segments: Vec<i32>,
    mask: Vec<i32>,
    word: Vec<f32>,
    position: Vec<f32>,
    segment: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

fn embed_case() -> impl Strategy<Value = EmbedCase> {
    (1usize..3, 1usize..6, 1usize..8, 2usize..20).prop_flat_map(|(batch, seq, hidden, vocab)| {
        (
            vec(0..vocab as i32, batch * seq),
            vec(0i32..2, batch * seq),
            vec(0i32..2, batch * seq),
            vec(-1f32..1.0, vocab * hidden),
            vec(-1f32..1.0, (seq + 2) * hidden),
            vec(-1f32..1.0, 2 * hidden),
            vec(0.5f32..1.5, hidden),
            vec(-0.5f32..0.5, hidden),
        )
            .prop_map(
                move |(ids, segments, mask, word, position, segment, gamma, beta)| EmbedCase {
                    batch,
                    seq,
                    hidden,
                    vocab,
                    ids,
                    segments,
                    mask,
                    word,
                    position,
                    segment,
                    gamma,
                    beta,
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn embed_layer_normalization_matches_gathers_adds_and_layer_norm(case in embed_case(), with_segment in any::<bool>()) {
        let (b, s, h) = (case.batch, case.seq, case.hidden);
        let eps = 1e-12f32;
        let start = || {
            ModelBuilder::new(17)
                .input("ids", i32s(&[b, s], &case.ids))
                .input("segments", i32s(&[b, s], &case.segments))
                .input("mask", i32s(&[b, s], &case.mask))
                .initializer("word", &f32s(&[case.vocab, h], &case.word))
                .initializer("position", &f32s(&[s + 2, h], &case.position))
                .initializer("segment", &f32s(&[2, h], &case.segment))
                .initializer("gamma", &f32s(&[h], &case.gamma))
                .initializer("beta", &f32s(&[h], &case.beta))
        };
        let (seg_ids, seg_table) = if with_segment { ("segments", "segment") } else { ("", "") };
        let fused = start()
            .node(ms_op("EmbedLayerNormalization", &["ids", seg_ids, "word", "position", seg_table, "gamma", "beta", "mask"], &["y", "mask_index", "sum"]).with_attr("epsilon", float(eps)))
            .outputs(&["y", "mask_index", "sum"])
            .run()
            .unwrap();

        let positions: Vec<i64> = (0..s as i64).collect();
        let mut m = start()
            .initializer("positions", &i64s(&[s], &positions))
            .initializer("one", &i32s(&[], &[1]))
            .initializer("axis1", &i64s(&[1], &[1]))
            .node(op("Gather", &["word", "ids"], &["we"]))
            .node(op("Gather", &["position", "positions"], &["pe"]))
            .node(op("Add", &["we", "pe"], &["wp"]))
            .node(op("Equal", &["mask", "one"], &["is_one"]))
            .node(op("Cast", &["is_one"], &["ones"]).with_attr("to", int(6)))
            .node(op("ReduceSum", &["ones", "axis1"], &["mask_index"]).with_attr("keepdims", int(0)));
        let sum = if with_segment {
            m = m.node(op("Gather", &["segment", "segments"], &["se"])).node(op("Add", &["wp", "se"], &["wps"]));
            "wps"
        } else {
            "wp"
        };
        let plain = decomposed_layer_norm(m, sum, "gamma", Some("beta"), eps, "y")
            .outputs(&["y", "mask_index", sum])
            .run()
            .unwrap();
        prop_assert!(max_abs_diff(&fused[0], &plain[0]) <= TOLERANCE, "output differs by {}", max_abs_diff(&fused[0], &plain[0]));
        prop_assert_eq!(fused[1].dtype(), transfuse_ir::DataType::Int32);
        prop_assert_eq!(fused[1].to_f64_vec(), plain[1].to_f64_vec());
        prop_assert!(max_abs_diff(&fused[2], &plain[2]) == 0.0);
    }
}

#[test]
fn embed_layer_normalization_checks_ids_and_accepts_position_ids() {
    let h = 2;
    let build = |ids: &[i32], position_ids: Option<Value>| {
        let mut m = ModelBuilder::new(17)
            .input("ids", i32s(&[1, 2], ids))
            .initializer("word", &f32s(&[3, h], &[0., 1., 2., 3., 4., 5.]))
            .initializer(
                "position",
                &f32s(&[4, h], &[0., 0., 10., 10., 20., 20., 30., 30.]),
            )
            .initializer("gamma", &f32s(&[h], &[1., 1.]))
            .initializer("beta", &f32s(&[h], &[0., 0.]));
        let pos_name = match position_ids {
            Some(p) => {
                m = m.input("pos", p);
                "pos"
            }
            None => "",
        };
        m.node(ms_op(
            "EmbedLayerNormalization",
            &[
                "ids", "", "word", "position", "", "gamma", "beta", "", pos_name,
            ],
            &["y", "mask_index", "sum"],
        ))
        .outputs(&["sum", "mask_index"])
        .run()
    };
    let out = build(&[1, 2], Some(i32s(&[1, 2], &[3, 0]))).unwrap();
    assert_exact(&out[0], &f32s(&[1, 2, 2], &[32., 33., 4., 5.]));
    // No mask: mask_index is all zeros.
    assert_exact(&out[1], &i32s(&[1], &[0]));
    let err = build(&[1, 3], None).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn attention_4d_megatron_mask_reads_rows_at_past_plus_s() {
    // [B, 1, M, M] with M > T: row s, columns < T, is the mask of query s.
    let (b, s, m) = (2, 3, 5);
    let case = AttentionCase {
        batch: b,
        seq: s,
        heads: 2,
        head_size: 2,
        input: pseudo_random(b * s * 4, 21),
        weights: pseudo_random(4 * 12, 22),
        bias: pseudo_random(12, 23),
        mask: Vec::new(),
        attention_bias: Vec::new(),
        bias_full: false,
    };
    let raw: Vec<i32> = (0..b * m * m)
        .map(|i| i32::from(i % 3 != 1 || i % m == 0))
        .collect();
    let per_query: Vec<i32> = (0..b * s * s)
        .map(|i| raw[(i / (s * s)) * m * m + ((i / s) % s) * m + i % s])
        .collect();
    let fused_4d = case.fused(Some(i32s(&[b, 1, m, m], &raw)), false, -10000.0);
    let fused_3d = case.fused(Some(i32s(&[b, s, s], &per_query)), false, -10000.0);
    assert_close(&fused_4d, &fused_3d, 0.0);
    // The 3-D form is itself checked against the decomposed graph above; here check it
    // differs from no mask at all, so the comparison is not vacuous.
    assert!(max_abs_diff(&fused_3d, &case.fused(None, false, -10000.0)) > 1e-3);
}

#[test]
fn attention_qkv_hidden_sizes_with_a_wider_value() {
    // Dq = Dk = 4, Dv = 6, two heads: head sizes 2 and 3.
    let (b, s, din, dq, dv, n) = (2, 3, 5, 4, 6, 2);
    let total = 2 * dq + dv;
    let input = pseudo_random(b * s * din, 31);
    let weights = pseudo_random(din * total, 32);
    let bias = pseudo_random(total, 33);
    let start = || {
        ModelBuilder::new(17)
            .input("input", f32s(&[b, s, din], &input))
            .initializer("weights", &f32s(&[din, total], &weights))
            .initializer("bias", &f32s(&[total], &bias))
    };
    let fused = start()
        .node(
            ms_op("Attention", &["input", "weights", "bias"], &["y"])
                .with_attr("num_heads", int(n as i64))
                .with_attr("qkv_hidden_sizes", ints(&[dq as i64, dq as i64, dv as i64])),
        )
        .outputs(&["y"])
        .run()
        .unwrap()
        .remove(0);
    let mut m = start()
        .initializer("split", &i64s(&[3], &[dq as i64, dq as i64, dv as i64]))
        .node(op("MatMul", &["input", "weights"], &["proj"]))
        .node(op("Add", &["proj", "bias"], &["qkv"]))
        .node(op("Split", &["qkv", "split"], &["q", "k", "v"]).with_attr("axis", int(2)));
    m = split_heads(m, "q", b, s, n, dq / n, "qh");
    m = split_heads(m, "k", b, s, n, dq / n, "kh");
    m = split_heads(m, "v", b, s, n, dv / n, "vh");
    let scale = 1.0 / ((dq / n) as f32).sqrt();
    let plain = decomposed_core(m, "qh", "kh", "vh", scale, &[], b, s, dv, "y")
        .outputs(&["y"])
        .run()
        .unwrap()
        .remove(0);
    assert_eq!(fused.shape(), &[b, s, dv]);
    assert_close(&fused, &plain, TOLERANCE);
}

#[test]
fn attention_past_is_prepended_and_present_returned() {
    let (b, s, p, n, h) = (1, 2, 3, 2, 2);
    let d = n * h;
    let input = pseudo_random(b * s * d, 41);
    let weights = pseudo_random(d * 3 * d, 42);
    let bias = pseudo_random(3 * d, 43);
    let past = pseudo_random(2 * b * n * p * h, 44);
    let start = || {
        ModelBuilder::new(17)
            .input("input", f32s(&[b, s, d], &input))
            .input("past", f32s(&[2, b, n, p, h], &past))
            .initializer("weights", &f32s(&[d, 3 * d], &weights))
            .initializer("bias", &f32s(&[3 * d], &bias))
    };
    let fused = start()
        .node(
            ms_op(
                "Attention",
                &["input", "weights", "bias", "", "past"],
                &["y", "present"],
            )
            .with_attr("num_heads", int(n as i64)),
        )
        .outputs(&["y", "present"])
        .run()
        .unwrap();
    let mut m = start()
        .initializer("split", &i64s(&[3], &[d as i64, d as i64, d as i64]))
        .initializer("past_split", &i64s(&[2], &[1, 1]))
        .initializer("axis0", &i64s(&[1], &[0]))
        .node(op("MatMul", &["input", "weights"], &["proj"]))
        .node(op("Add", &["proj", "bias"], &["qkv"]))
        .node(op("Split", &["qkv", "split"], &["q", "k", "v"]).with_attr("axis", int(2)))
        .node(op("Split", &["past", "past_split"], &["pk5", "pv5"]).with_attr("axis", int(0)))
        .node(op("Squeeze", &["pk5", "axis0"], &["pk"]))
        .node(op("Squeeze", &["pv5", "axis0"], &["pv"]));
    m = split_heads(m, "q", b, s, n, h, "qh");
    m = split_heads(m, "k", b, s, n, h, "kh_new");
    m = split_heads(m, "v", b, s, n, h, "vh_new");
    m = m
        .node(op("Concat", &["pk", "kh_new"], &["kh"]).with_attr("axis", int(2)))
        .node(op("Concat", &["pv", "vh_new"], &["vh"]).with_attr("axis", int(2)))
        .initializer("present_axis", &i64s(&[1], &[0]))
        .node(op("Unsqueeze", &["kh", "present_axis"], &["k5"]))
        .node(op("Unsqueeze", &["vh", "present_axis"], &["v5"]))
        .node(op("Concat", &["k5", "v5"], &["present"]).with_attr("axis", int(0)));
    let scale = 1.0 / (h as f32).sqrt();
    let plain = decomposed_core(m, "qh", "kh", "vh", scale, &[], b, s, d, "y")
        .outputs(&["y", "present"])
        .run()
        .unwrap();
    assert_eq!(fused[1].shape(), &[2, b, n, p + s, h]);
    assert_close(&fused[0], &plain[0], TOLERANCE);
    assert_close(&fused[1], &plain[1], 0.0);
}
