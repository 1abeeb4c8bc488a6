//! ONNX Runtime's fused attention (`com.microsoft`): `Attention` and `MultiHeadAttention`,
//! following ONNX Runtime's CPU kernels.
//!
//! Both compute, per batch `b` and head `n`,
//! `softmax(scale · Q·Kᵀ + mask + attention_bias) · V`, with `scale` default
//! `1/√head_size`. The mask is additive: a masked key position adds `mask_filter_value`
//! (default -10000) to the score, as ONNX Runtime's CPU kernel does (its CUDA kernels
//! replace the score instead). Consequently a query row whose keys are all masked gets
//! the softmax of its unmasked scores shifted by a constant, which equals the unmasked
//! result; it is not zero. With `unidirectional = 1`, key positions after the query's
//! position (past length + s) get the lowest finite float instead of their score.
//!
//! `mask_index` / `key_padding_mask` forms (int32):
//! - `[B]`: valid length per batch (keys at or after it are masked; right padding only),
//! - `[2B]` (`Attention` only): end positions, then start positions (keys before the
//!   start are masked too),
//! - `[B, T]`: raw 0/1 key mask (0 masks); `[B, 1]` or `[1, 1]` means no mask,
//! - `[B, S, T]`: raw 0/1 mask per query,
//! - `[B, 1, M, M]` (`Attention` only, M ≥ T): raw mask read at row `past + s`
//!   (ONNX Runtime's CUDA "Megatron" form; its CPU kernel rejects it).
//!
//! `attention_bias` must be `[B or 1, N or 1, S, T]`.

use ndarray::{Array2, Array3, Array4, ArrayD, ArrayView2, ArrayView4, Axis, Ix4, s};
use rayon::prelude::*;

use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::linalg::{gemm, gemm_serial};
use crate::ops::softmax::softmax_row;
use crate::ops::to_usize;
use crate::registry::{BuildCtx, Inputs, Kernel, MS, Registry};
use crate::value::{Value, ValueElem, typed};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(MS, "Attention", 1..=1, build_attention);
    reg.insert(MS, "MultiHeadAttention", 1..=1, build_multi_head_attention);
}

/// Attributes shared by both ops.
#[derive(Clone, Copy, Debug)]
struct Common {
    num_heads: usize,
    /// 0 means `1/√head_size`.
    scale: f32,
    mask_filter_value: f32,
    causal: bool,
}

fn common(ctx: &BuildCtx<'_>) -> OpResult<Common> {
    let num_heads = ctx
        .opt_int("num_heads")?
        .ok_or_else(|| OpError::attr("num_heads", "is required"))?;
    let num_heads = to_usize(num_heads, "num_heads")?;
    if num_heads == 0 {
        return Err(OpError::attr("num_heads", "must be positive"));
    }
    Ok(Common {
        num_heads,
        scale: ctx.float("scale", 0.0)?,
        mask_filter_value: ctx.float("mask_filter_value", -10000.0)?,
        causal: ctx.int("unidirectional", 0)? != 0,
    })
}

/// The key mask, decoded from its int32 input.
#[derive(Debug)]
enum Mask {
    None,
    /// Per batch: keys at positions `>= end` (and `< start`) are masked.
    Range {
        end: Vec<i64>,
        start: Option<Vec<i64>>,
    },
    /// `[B, T]`: 0 masks key `t` for every query.
    Keys(Array2<i32>),
    /// `[B, S, T]`: 0 masks key `t` for query `s`.
    PerQuery(Array3<i32>),
    /// `[B, 1, M, M]`: read at `[b, 0, past + s, t]`.
    Megatron(Array4<i32>),
}

impl Mask {
    /// Decodes a mask input. `allow_extra` enables the `[2B]` and 4-D forms of `Attention`.
    fn parse(
        v: Option<&Value>,
        b: usize,
        s: usize,
        t: usize,
        past: usize,
        allow_extra: bool,
    ) -> OpResult<Mask> {
        let Some(v) = v else {
            return Ok(Mask::None);
        };
        let a = typed::<i32>(v, "mask")?;
        let shape = a.shape().to_vec();
        let bad = || {
            OpError::shape(format!(
                "mask shape {shape:?} does not fit batch {b}, sequence {s}, total {t}"
            ))
        };
        let flat: Vec<i64> = a.iter().map(|&x| i64::from(x)).collect();
        Ok(match shape.as_slice() {
            [n] if *n == b => Mask::Range {
                end: flat,
                start: None,
            },
            [n] if *n == 2 * b && allow_extra => {
                let (end, start) = flat.split_at(b);
                Mask::Range {
                    end: end.to_vec(),
                    start: Some(start.to_vec()),
                }
            }
            [n, m] if *n == b && *m == t => Mask::Keys(to_fixed(a)?),
            [n, 1] if allow_extra && (*n == b || *n == 1) => Mask::None,
            [n, q, m] if *n == b && *q == s && *m == t => Mask::PerQuery(to_fixed(a)?),
            [n, 1, m1, m2] if allow_extra && *n == b && m1 == m2 && *m1 >= t && *m1 >= past + s => {
                Mask::Megatron(to_fixed(a)?)
            }
            _ => return Err(bad()),
        })
    }

    /// True when key `t` is masked for query `s` of batch `b` (`past` = past length).
    fn masked(&self, b: usize, s: usize, t: usize, past: usize) -> bool {
        match self {
            Mask::None => false,
            Mask::Range { end, start } => {
                let tt = t as i64;
                let after_end = end.get(b).is_some_and(|&e| tt >= e);
                let before_start = start
                    .as_ref()
                    .and_then(|st| st.get(b))
                    .is_some_and(|&st| tt < st);
                after_end || before_start
            }
            Mask::Keys(m) => m.get((b, t)).is_some_and(|&x| x <= 0),
            Mask::PerQuery(m) => m.get((b, s, t)).is_some_and(|&x| x <= 0),
            Mask::Megatron(m) => m.get((b, 0, past + s, t)).is_some_and(|&x| x <= 0),
        }
    }
}

fn to_fixed<D: ndarray::Dimension>(a: &ArrayD<i32>) -> OpResult<ndarray::Array<i32, D>> {
    a.clone()
        .into_dimensionality::<D>()
        .map_err(|e| OpError::shape(e.to_string()))
}

/// The attention core on per-head Q `[B,N,S,H]`, K `[B,N,T,H]`, V `[B,N,T,Hv]`.
struct Core<'a, T> {
    q: ArrayView4<'a, T>,
    k: ArrayView4<'a, T>,
    v: ArrayView4<'a, T>,
    mask: &'a Mask,
    bias: Option<ArrayView4<'a, T>>,
    common: Common,
    past: usize,
}

impl<T: Float + ndarray::LinalgScalar> Core<'_, T> {
    /// Returns the output `[B, S, N·Hv]` and, when asked, the pre-softmax scores `[B,N,S,T]`.
    fn run(&self, want_scores: bool) -> OpResult<(Array3<T>, Option<Array4<T>>)> {
        let (b, n, s, h) = self.q.dim();
        let t = self.k.dim().2;
        let hv = self.v.dim().3;
        if self.k.dim() != (b, n, t, h) || self.v.dim() != (b, n, t, hv) {
            return Err(OpError::shape(format!(
                "Q {:?}, K {:?}, V {:?} do not fit",
                self.q.dim(),
                self.k.dim(),
                self.v.dim()
            )));
        }
        if let Some(bias) = &self.bias {
            let (bb, bn, bs, bt) = bias.dim();
            if !((bb == b || bb == 1) && (bn == n || bn == 1) && bs == s && bt == t) {
                return Err(OpError::shape(format!(
                    "attention_bias {:?} must be [{b} or 1, {n} or 1, {s}, {t}]",
                    bias.shape()
                )));
            }
        }
        let scale = if self.common.scale == 0.0 {
            T::ONE / T::of_f64(h as f64).sqrt()
        } else {
            T::of_f32(self.common.scale)
        };
        let filter = T::of_f32(self.common.mask_filter_value);
        let mut out = Array3::<T>::zeros((b, s, n * hv));
        let mut scores_out = if want_scores {
            Some(Array4::<T>::zeros((b, n, s, t)))
        } else {
            None
        };
        // One task per (batch, head), each writing its own column block of the output.
        let mut tasks: Vec<(usize, usize, ndarray::ArrayViewMut2<'_, T>)> =
            Vec::with_capacity(b * n);
        for (bi, out_b) in out.axis_iter_mut(Axis(0)).enumerate() {
            // [S, N·Hv] -> [N, S, Hv]: one strided block per head.
            let mut blocks = out_b
                .into_shape_with_order((s, n, hv))
                .map_err(|e| OpError::shape(e.to_string()))?;
            blocks.swap_axes(0, 1);
            for (ni, block) in split_outer(blocks).into_iter().enumerate() {
                tasks.push((bi, ni, block));
            }
        }
        let mut score_views: Vec<Option<ndarray::ArrayViewMut2<'_, T>>> = match scores_out.as_mut()
        {
            Some(all) => all
                .outer_iter_mut()
                .flat_map(split_outer)
                .map(Some)
                .collect(),
            None => (0..b * n).map(|_| None).collect(),
        };
        let work: Vec<_> = tasks.into_iter().zip(score_views.drain(..)).collect();
        let run_one = |((bi, ni, mut out_view), scores_view): (
            (usize, usize, ndarray::ArrayViewMut2<'_, T>),
            Option<ndarray::ArrayViewMut2<'_, T>>,
        )| {
            let q = self.q.slice(s![bi, ni, .., ..]);
            let k = self.k.slice(s![bi, ni, .., ..]);
            let v = self.v.slice(s![bi, ni, .., ..]);
            let mut scores = Array2::<T>::zeros((s, t));
            gemm_serial(scale, q, k.t(), T::ZERO, scores.view_mut());
            if let Some(bias) = &self.bias {
                let bias_view: ArrayView2<'_, T> = bias.slice(s![
                    if bias.dim().0 == 1 { 0 } else { bi },
                    if bias.dim().1 == 1 { 0 } else { ni },
                    ..,
                    ..
                ]);
                scores.zip_mut_with(&bias_view, |x, &y| *x = *x + y);
            }
            for (si, mut row) in scores.axis_iter_mut(Axis(0)).enumerate() {
                for (ti, x) in row.iter_mut().enumerate() {
                    if self.common.causal && ti > self.past + si {
                        *x = T::lowest();
                    } else if self.mask.masked(bi, si, ti, self.past) {
                        *x = *x + filter;
                    }
                }
            }
            if let Some(mut sv) = scores_view {
                sv.assign(&scores);
            }
            if let Some(data) = scores.as_slice_mut() {
                for row in data.chunks_mut(t.max(1)) {
                    softmax_row(row);
                }
            }
            gemm_serial(T::ONE, scores.view(), v, T::ZERO, out_view.view_mut());
        };
        if b * n > 1 && s * t * h >= 1 << 12 {
            work.into_par_iter().for_each(run_one);
        } else {
            work.into_iter().for_each(run_one);
        }
        Ok((out, scores_out))
    }
}

/// The sub-views along the first axis, each keeping the parent's lifetime.
fn split_outer<'a, T>(mut v: ndarray::ArrayViewMut3<'a, T>) -> Vec<ndarray::ArrayViewMut2<'a, T>> {
    let mut out = Vec::with_capacity(v.len_of(Axis(0)));
    while v.len_of(Axis(0)) > 0 {
        let (head, rest) = v.split_at(Axis(0), 1);
        out.push(head.index_axis_move(Axis(0), 0));
        v = rest;
    }
    out
}

/// `[B, L, N·H]` (a column range of a projection) split into heads `[B, N, L, H]`.
fn split_heads<T: Float>(
    x: ArrayView2<'_, T>,
    batch: usize,
    len: usize,
    heads: usize,
) -> OpResult<Array4<T>> {
    let width = x.dim().1;
    if !width.is_multiple_of(heads) {
        return Err(OpError::shape(format!(
            "hidden size {width} is not divisible by {heads} heads"
        )));
    }
    let hs = width / heads;
    let x3 = x
        .to_shape((batch, len, heads, hs))
        .map_err(|e| OpError::shape(e.to_string()))?;
    Ok(x3
        .permuted_axes([0, 2, 1, 3])
        .as_standard_layout()
        .into_owned())
}

/// Appends `new` ([B,N,L,H]) after `past` ([B,N,P,H]) along the sequence axis.
fn concat_past<T: Float>(past: Option<ArrayView4<'_, T>>, new: Array4<T>) -> OpResult<Array4<T>> {
    match past {
        None => Ok(new),
        Some(p) => ndarray::concatenate(Axis(2), &[p, new.view()])
            .map_err(|e| OpError::shape(format!("past: {e}"))),
    }
}

fn view4<'a, T: ValueElem>(v: &'a Value, what: &str) -> OpResult<ArrayView4<'a, T>> {
    typed::<T>(v, what)?
        .view()
        .into_dimensionality::<Ix4>()
        .map_err(|_| OpError::shape(format!("{what} must be 4-D, got {:?}", v.shape())))
}

#[derive(Debug)]
struct Attention {
    common: Common,
    qkv_hidden_sizes: Option<[usize; 3]>,
    /// The node asks for output 1 (`present`).
    want_present: bool,
}

/// True when the node names output `i`.
fn wants_output(ctx: &BuildCtx<'_>, i: usize) -> bool {
    ctx.node.outputs.get(i).is_some_and(|o| !o.is_empty())
}

fn build_attention(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    if ctx.int("do_rotary", 0)? != 0 {
        return Err(OpError::unsupported("Attention with do_rotary"));
    }
    if ctx.int("past_present_share_buffer", 0)? != 0 {
        return Err(OpError::unsupported(
            "Attention with past_present_share_buffer",
        ));
    }
    let qkv_hidden_sizes = match ctx.ints("qkv_hidden_sizes")? {
        None => None,
        Some(v) => match v.as_slice() {
            [q, k, v] => Some([
                to_usize(*q, "qkv_hidden_sizes")?,
                to_usize(*k, "qkv_hidden_sizes")?,
                to_usize(*v, "qkv_hidden_sizes")?,
            ]),
            _ => return Err(OpError::attr("qkv_hidden_sizes", "must have 3 values")),
        },
    };
    Ok(Box::new(Attention {
        common: common(ctx)?,
        qkv_hidden_sizes,
        want_present: wants_output(ctx, 1),
    }))
}

impl Kernel for Attention {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "input")?, T => self.apply::<T>(inputs), "Attention needs float input")
    }
}

impl Attention {
    fn apply<T: Float + ValueElem + ndarray::LinalgScalar>(
        &self,
        inputs: &mut Inputs<'_>,
    ) -> OpResult<Vec<Value>> {
        if inputs.get(6).is_some() {
            return Err(OpError::unsupported("Attention past_sequence_length input"));
        }
        let x = typed::<T>(inputs.req(0, "input")?, "input")?;
        let w = typed::<T>(inputs.req(1, "weights")?, "weights")?;
        let [b, s, d_in] = x.shape() else {
            return Err(OpError::shape(format!(
                "input must be [B, S, D], got {:?}",
                x.shape()
            )));
        };
        let (b, s, d_in) = (*b, *s, *d_in);
        let [wd, total] = w.shape() else {
            return Err(OpError::shape(format!(
                "weights must be 2-D, got {:?}",
                w.shape()
            )));
        };
        if *wd != d_in {
            return Err(OpError::shape(format!(
                "weights {:?} do not fit input {:?}",
                w.shape(),
                x.shape()
            )));
        }
        let total = *total;
        let [dq, dk, dv] = self.qkv_hidden_sizes.unwrap_or([total / 3; 3]);
        if dq != dk || dq + dk + dv != total {
            return Err(OpError::shape(format!(
                "Q/K/V hidden sizes {dq}/{dk}/{dv} do not fit weights width {total}"
            )));
        }
        let heads = self.common.num_heads;
        if dq % heads != 0 || dv % heads != 0 {
            return Err(OpError::shape(format!(
                "hidden sizes {dq}/{dv} not divisible by {heads} heads"
            )));
        }
        // Projection: [B·S, D_in] x [D_in, Dq+Dk+Dv] + bias.
        let x2 = x
            .to_shape((b * s, d_in))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let w2 = w
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| OpError::shape(e.to_string()))?;
        let mut qkv = Array2::<T>::zeros((b * s, total));
        gemm(T::ONE, x2.view(), w2, T::ZERO, qkv.view_mut());
        if let Some(bias) = inputs.get(2) {
            let bias = typed::<T>(bias, "bias")?;
            if bias.shape() != [total] {
                return Err(OpError::shape(format!(
                    "bias must be [{total}], got {:?}",
                    bias.shape()
                )));
            }
            let bias: Vec<T> = bias.iter().copied().collect();
            for mut row in qkv.axis_iter_mut(Axis(0)) {
                for (v, &bv) in row.iter_mut().zip(&bias) {
                    *v = *v + bv;
                }
            }
        }
        let q = split_heads(qkv.slice(s![.., 0..dq]), b, s, heads)?;
        let k = split_heads(qkv.slice(s![.., dq..dq + dk]), b, s, heads)?;
        let v = split_heads(qkv.slice(s![.., dq + dk..]), b, s, heads)?;
        // past: [2, B, N, P, H].
        let (k, v, past) = match inputs.get(4) {
            None => (k, v, 0),
            Some(p) => {
                let p = typed::<T>(p, "past")?;
                let shape = p.shape().to_vec();
                if shape.len() != 5
                    || shape[0] != 2
                    || shape[1] != b
                    || shape[2] != heads
                    || shape[4] != dq / heads
                {
                    return Err(OpError::shape(format!(
                        "past must be [2, {b}, {heads}, P, {}], got {shape:?}",
                        dq / heads
                    )));
                }
                if dk != dv {
                    return Err(OpError::shape("past needs equal K and V hidden sizes"));
                }
                let pk = p
                    .index_axis(Axis(0), 0)
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| OpError::shape(e.to_string()))?;
                let pv = p
                    .index_axis(Axis(0), 1)
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| OpError::shape(e.to_string()))?;
                (
                    concat_past(Some(pk), k)?,
                    concat_past(Some(pv), v)?,
                    shape[3],
                )
            }
        };
        let t = k.dim().2;
        let mask = Mask::parse(inputs.get(3), b, s, t, past, true)?;
        let bias = inputs
            .get(5)
            .map(|v| view4::<T>(v, "attention_bias"))
            .transpose()?;
        let core = Core {
            q: q.view(),
            k: k.view(),
            v: v.view(),
            mask: &mask,
            bias,
            common: self.common,
            past,
        };
        let (out, _) = core.run(false)?;
        let mut outputs = vec![T::wrap(out.into_dyn())];
        if self.want_present {
            // present: [2, B, N, T, H].
            let present = ndarray::stack(Axis(0), &[k.view(), v.view()])
                .map_err(|e| OpError::shape(e.to_string()))?;
            outputs.push(T::wrap(present.into_dyn()));
        }
        Ok(outputs)
    }
}

#[derive(Debug)]
struct MultiHeadAttention {
    common: Common,
    /// The node asks for output 3 (the pre-softmax scores).
    want_scores: bool,
}

fn build_multi_head_attention(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(MultiHeadAttention {
        common: common(ctx)?,
        want_scores: wants_output(ctx, 3),
    }))
}

impl Kernel for MultiHeadAttention {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(0, "query")?, T => self.apply::<T>(inputs), "MultiHeadAttention needs float input")
    }
}

impl MultiHeadAttention {
    fn apply<T: Float + ValueElem + ndarray::LinalgScalar>(
        &self,
        inputs: &mut Inputs<'_>,
    ) -> OpResult<Vec<Value>> {
        for (i, name) in [(8, "past_sequence_length"), (9, "cache_indirection")] {
            if inputs.get(i).is_some() {
                return Err(OpError::unsupported(format!(
                    "MultiHeadAttention input {name}"
                )));
            }
        }
        let heads = self.common.num_heads;
        let query = typed::<T>(inputs.req(0, "query")?, "query")?;
        let [b, s, dq] = query.shape() else {
            return Err(OpError::unsupported(format!(
                "query of shape {:?} (only [B, S, D]; packed QKV is not supported)",
                query.shape()
            )));
        };
        let (b, s, dq) = (*b, *s, *dq);
        let key = inputs
            .get(1)
            .ok_or_else(|| OpError::unsupported("MultiHeadAttention without key (packed QKV)"))?;
        let value = inputs.req(2, "value")?;
        let key = typed::<T>(key, "key")?;
        let value = typed::<T>(value, "value")?;
        let bias = inputs.get(3).map(|v| typed::<T>(v, "bias")).transpose()?;
        let q2 = query
            .to_shape((b * s, dq))
            .map_err(|e| OpError::shape(e.to_string()))?
            .into_owned();
        // Bias layout: [Dq + Dk + Dv]; its K and V parts apply to 3-D key/value only.
        let (dk, dv, kv_len, kv_heads_given) = match (key.shape(), value.shape()) {
            ([kb, l, dk], [vb, l2, dv]) if *kb == b && *vb == b && l == l2 => (*dk, *dv, *l, false),
            ([kb, kn, l, hk], [vb, vn, l2, hv])
                if *kb == b && *vb == b && *kn == heads && *vn == heads && l == l2 =>
            {
                (kn * hk, vn * hv, *l, true)
            }
            _ => {
                return Err(OpError::shape(format!(
                    "key {:?} and value {:?} must both be [B, L, D] or [B, N, L, H]",
                    key.shape(),
                    value.shape()
                )));
            }
        };
        if dq != dk {
            return Err(OpError::shape(format!(
                "query hidden size {dq} differs from key's {dk}"
            )));
        }
        if dq % heads != 0 || dv % heads != 0 {
            return Err(OpError::shape(format!(
                "hidden sizes {dq}/{dv} not divisible by {heads} heads"
            )));
        }
        let bias_parts: Option<Vec<T>> = match bias {
            None => None,
            Some(bv) if bv.shape() == [dq + dk + dv] => Some(bv.iter().copied().collect()),
            Some(bv) => {
                return Err(OpError::shape(format!(
                    "bias must be [{}], got {:?}",
                    dq + dk + dv,
                    bv.shape()
                )));
            }
        };
        if kv_heads_given && bias_parts.is_some() {
            return Err(OpError::unsupported(
                "bias with key/value already split into heads",
            ));
        }
        let add = |mut m: Array2<T>, offset: usize| -> Array2<T> {
            if let Some(bias) = &bias_parts {
                for mut row in m.axis_iter_mut(Axis(0)) {
                    for (x, &bv) in row.iter_mut().zip(bias.iter().skip(offset)) {
                        *x = *x + bv;
                    }
                }
            }
            m
        };
        let q = split_heads(add(q2, 0).view(), b, s, heads)?;
        let (k, v) = if kv_heads_given {
            (
                key.view()
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| OpError::shape(e.to_string()))?
                    .to_owned(),
                value
                    .view()
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| OpError::shape(e.to_string()))?
                    .to_owned(),
            )
        } else {
            let k2 = key
                .to_shape((b * kv_len, dk))
                .map_err(|e| OpError::shape(e.to_string()))?
                .into_owned();
            let v2 = value
                .to_shape((b * kv_len, dv))
                .map_err(|e| OpError::shape(e.to_string()))?
                .into_owned();
            (
                split_heads(add(k2, dq).view(), b, kv_len, heads)?,
                split_heads(add(v2, dq + dk).view(), b, kv_len, heads)?,
            )
        };
        let past_key = inputs
            .get(6)
            .map(|p| view4::<T>(p, "past_key"))
            .transpose()?;
        let past_value = inputs
            .get(7)
            .map(|p| view4::<T>(p, "past_value"))
            .transpose()?;
        let past = past_key.as_ref().map_or(0, |p| p.dim().2);
        if past_value.as_ref().map_or(0, |p| p.dim().2) != past {
            return Err(OpError::shape("past_key and past_value differ in length"));
        }
        let k = concat_past(past_key, k)?;
        let v = concat_past(past_value, v)?;
        let t = k.dim().2;
        let mask = Mask::parse(inputs.get(4), b, s, t, past, false)?;
        let attention_bias = inputs
            .get(5)
            .map(|v| view4::<T>(v, "attention_bias"))
            .transpose()?;
        let core = Core {
            q: q.view(),
            k: k.view(),
            v: v.view(),
            mask: &mask,
            bias: attention_bias,
            common: self.common,
            past,
        };
        let (out, scores) = core.run(self.want_scores)?;
        let scores = scores.map(|a| T::wrap(a.into_dyn()));
        let mut outputs = vec![
            T::wrap(out.into_dyn()),
            T::wrap(k.into_dyn()),
            T::wrap(v.into_dyn()),
        ];
        outputs.extend(scores);
        Ok(outputs)
    }
}
