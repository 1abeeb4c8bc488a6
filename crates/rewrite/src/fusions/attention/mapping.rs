//! The mapping: a complete canonical attention, merged back to `[B, S, H]`, becomes
//! com.microsoft `Attention` (Q, K and V projections packed into one weight and bias) or,
//! where packing is impossible, `MultiHeadAttention`.
//!
//! `num_heads` comes from the head split's shape facts and `scale` from the scale chain
//! (always written, never left to the op's default). The exporter's additive mask is fed
//! as `attention_bias` expanded to `[B|1, N|1, S, T]` (ONNX Runtime rejects a broadcast query
//! or key axis), dropped when it is provably all zeros. Where the
//! original guards Softmax with `Where(IsNaN(P), 0, P)`, the fused graph keeps that guard's
//! semantics exactly (see `nan_guard.rs` and `docs/fusions.md`, "The NaN guard").

use crate::rule::const_tensor;
use std::sync::Arc;

use egg::Id;
use transfuse_ir::{DataType, MS_DOMAIN, Tensor};

use super::canonical::{columns_in, contexts_in, head_splits, probs_in, scores_in};
use super::heads_first;
use super::mask::all_zero;
use super::nan_guard;
use crate::INTERNAL_DOMAIN;
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, Onnx, OpNode, TensorId};
use crate::rule::{Match, Rewrite, absent, add_i64_vector, add_op, dtype, ops, rule, same, shape};
use crate::symbolic::{Shape, SymDim};
use crate::tensors::TensorOrigin;

/// A recognized attention core: `Context(Probs(Scores(q4, k4), bias), v4)` with the three
/// head splits resolved to their `[B, *, H]` sources, or (`heads_first`) `q4`, `k4` and `v4`
/// themselves when the query or key is no head split (rotary embeddings): `MultiHeadAttention`
/// then takes the key and value `[B, N, T, d]` as they are and the query merged back to
/// `[B, S, N·d]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Core {
    pub(super) heads: i64,
    pub(super) scale: f32,
    pub(super) nan_guard: bool,
    /// The scores' additive bias (an absent class when none).
    pub(super) bias: Id,
    pub(super) query: Id,
    pub(super) key: Id,
    pub(super) value: Id,
    pub(super) heads_first: bool,
    /// The heads merge sequence-first (`Transpose(ctx, [2,0,1,3])` to `[S·B, H]` or
    /// `[S, B, H]`, as `torch.nn.MultiheadAttention` does); heads-first cores only.
    pub(super) seq_first: bool,
}

/// `Linear`: `x · W (+ b)` with `W` a 2-D float constant tensor and `b` a matching 1-D one.
#[derive(Clone, Copy, Debug)]
struct Linear {
    x: Id,
    weight: TensorId,
    bias: Option<TensorId>,
}

fn tensor_dims(eg: &EGraph, t: TensorId) -> Option<Vec<i64>> {
    eg.analysis
        .tensors
        .tensor(t)
        .filter(|t| t.dtype == DataType::Float)
        .map(|t| t.dims.clone())
}

/// Every linear projection that class `t` is: `Add(MatMul(x, W), b)` in either order, or
/// `MatMul(x, W)` alone.
fn linears(eg: &EGraph, t: Id) -> Vec<Linear> {
    let matmuls = |mm: Id| -> Vec<(Id, TensorId)> {
        ops(eg, mm, "", "MatMul")
            .filter_map(|(_, c)| {
                let (x, w) = (*c.first()?, *c.get(1)?);
                let wt = const_tensor(eg, w)?;
                (tensor_dims(eg, wt)?.len() == 2).then_some((x, wt))
            })
            .collect()
    };
    let mut out = Vec::new();
    for (_, c) in ops(eg, t, "", "Add") {
        let (Some(&l), Some(&r)) = (c.first(), c.get(1)) else {
            continue;
        };
        for (mm, b) in [(l, r), (r, l)] {
            let Some(bt) = const_tensor(eg, b) else {
                continue;
            };
            for (x, wt) in matmuls(mm) {
                let fits = matches!((tensor_dims(eg, wt), tensor_dims(eg, bt)), (Some(w), Some(b)) if b.len() == 1 && b[0] == w[1]);
                if fits {
                    out.push(Linear {
                        x,
                        weight: wt,
                        bias: Some(bt),
                    });
                }
            }
        }
    }
    out.extend(matmuls(t).into_iter().map(|(x, weight)| Linear {
        x,
        weight,
        bias: None,
    }));
    out
}

/// The core behind `Reshape(Transpose(ctx, [0,2,1,3]), [B, S, N·d])` (class `root`): one on
/// head splits wherever the class has one (it maps to packed `Attention`), else a heads-first
/// one.
fn find_core(eg: &EGraph, root: Id, ctx_t: Id) -> Option<Core> {
    find_core_of(eg, root, ctx_t, false).or_else(|| find_core_of(eg, root, ctx_t, true))
}

fn find_core_of(eg: &EGraph, root: Id, ctx_t: Id, heads_first: bool) -> Option<Core> {
    let out_shape = shape(eg, root)?;
    let transposed = ops(eg, ctx_t, "", "Transpose")
        .filter_map(|(n, c)| match n.attr_ints("perm") {
            Some([0, 2, 1, 3]) => Some((*c.first()?, false)),
            Some([2, 0, 1, 3]) if heads_first => Some((*c.first()?, true)),
            _ => None,
        })
        .collect::<Vec<_>>();
    for (ctx, seq_first) in transposed {
        for (p, v4) in contexts_in(eg, ctx) {
            for (nan_guard, s, bias) in probs_in(eg, p) {
                for (scale, q4, k4) in scores_in(eg, s) {
                    if heads_first {
                        let heads = heads_first::heads(eg, q4, k4, v4, out_shape, seq_first);
                        if let Some(heads) = heads {
                            return Some(Core {
                                heads,
                                scale,
                                nan_guard,
                                bias,
                                query: q4,
                                key: k4,
                                value: v4,
                                heads_first: true,
                                seq_first,
                            });
                        }
                        continue;
                    }
                    for (heads, query) in head_splits(eg, q4) {
                        let key = head_splits(eg, k4)
                            .into_iter()
                            .find(|(h, _)| *h == heads)
                            .map(|(_, t)| t);
                        let value = head_splits(eg, v4)
                            .into_iter()
                            .find(|(h, _)| *h == heads)
                            .map(|(_, t)| t);
                        let (Some(key), Some(value)) = (key, value) else {
                            continue;
                        };
                        let core = Core {
                            heads,
                            scale,
                            nan_guard,
                            bias,
                            query,
                            key,
                            value,
                            heads_first: false,
                            seq_first: false,
                        };
                        if shapes_fit(eg, &core, out_shape) {
                            return Some(core);
                        }
                    }
                }
            }
        }
    }
    None
}

/// Query `[B,S,H]`, key and value `[B,T,H]`, the merged output `[B,S,H]`, `H` divisible by
/// the head count. (A head split's source may be an internal `Columns` class without facts:
/// then its [`HeadSplit`](super::canonical) class, which has them, vouches for it.)
fn shapes_fit(eg: &EGraph, core: &Core, out: &Shape) -> bool {
    let dims = |t: Id| -> Option<Shape> {
        if let Some(s) = shape(eg, t) {
            return Some(s.clone());
        }
        let (start, end, src) = *columns_in(eg, t).first()?;
        let mut s = shape(eg, src)?.clone();
        *s.last_mut()? = SymDim::known(end - start);
        Some(s)
    };
    let (Some(q), Some(k), Some(v)) = (dims(core.query), dims(core.key), dims(core.value)) else {
        return false;
    };
    let ([b, s, h], [bk, t, hk], [bv, tv, hv]) = (q.as_slice(), k.as_slice(), v.as_slice()) else {
        return false;
    };
    let Some(hidden) = h.as_known() else {
        return false;
    };
    b == bk
        && b == bv
        && t == tv
        && h == hk
        && h == hv
        && hidden % core.heads == 0
        && out.as_slice() == [b.clone(), s.clone(), h.clone()]
}

/// Where Q, K and V come from when they are linears of one input: `x` and either one
/// `[Hin, 3H]` linear (timm) or three `[Hin, H]` ones to pack.
#[derive(Clone, Copy, Debug)]
enum Projection {
    /// One linear whose weight already has the packed layout.
    Packed {
        x: Id,
        weight: TensorId,
        bias: Option<TensorId>,
        width: i64,
    },
    /// Three linears of the same input, in Q, K, V order.
    Separate { x: Id, parts: [Linear; 3] },
}

impl Projection {
    fn input(&self) -> Id {
        match self {
            Projection::Packed { x, .. } | Projection::Separate { x, .. } => *x,
        }
    }
}

/// The projection behind the core's Q, K and V, when it is packable (no data is read).
fn projection(eg: &EGraph, core: &Core) -> Option<Projection> {
    // timm: three column blocks of one [Hin, 3H] linear, in Q, K, V order.
    let blocks: Vec<(i64, i64, Id)> = [core.query, core.key, core.value]
        .iter()
        .filter_map(|&t| columns_in(eg, t).first().copied())
        .collect();
    if let [(0, h, a), (k0, h2, b), (v0, h3, c)] = blocks.as_slice() {
        let (h, two_h, three_h) = (*h, h.checked_mul(2)?, h.checked_mul(3)?);
        if *k0 != h
            || *h2 != two_h
            || *v0 != two_h
            || *h3 != three_h
            || !same(eg, *a, *b)
            || !same(eg, *a, *c)
        {
            return None;
        }
        let lin = linears(eg, *a)
            .into_iter()
            .find(|l| tensor_dims(eg, l.weight).is_some_and(|w| w[1] == three_h))?;
        return Some(Projection::Packed {
            x: lin.x,
            weight: lin.weight,
            bias: lin.bias,
            width: three_h,
        });
    }
    // Three separate linears of the same input.
    let (q, k, v) = (
        linears(eg, core.query),
        linears(eg, core.key),
        linears(eg, core.value),
    );
    q.iter().find_map(|lq| {
        let lk = k.iter().find(|l| same(eg, l.x, lq.x))?;
        let lv = v.iter().find(|l| same(eg, l.x, lq.x))?;
        Some(Projection::Separate {
            x: lq.x,
            parts: [*lq, *lk, *lv],
        })
    })
}

/// The Q, K and V linears of a projection, as column ranges: the thirds of a packed one, or
/// the three linears.
fn projections(eg: &EGraph, projection: &Projection) -> Option<nan_guard::Projections> {
    match *projection {
        Projection::Packed {
            x,
            weight,
            bias,
            width,
        } => {
            let third = usize::try_from(width).ok()? / 3;
            let part = |k: usize| nan_guard::Columns {
                weight,
                columns: k * third..(k + 1) * third,
                bias,
            };
            Some(nan_guard::Projections {
                x,
                query: part(0),
                key: part(1),
                value: part(2),
            })
        }
        Projection::Separate { x, parts } => {
            let part = |l: &Linear| -> Option<nan_guard::Columns> {
                let cols = usize::try_from(*tensor_dims(eg, l.weight)?.get(1)?).ok()?;
                Some(nan_guard::Columns {
                    weight: l.weight,
                    columns: 0..cols,
                    bias: l.bias,
                })
            };
            Some(nan_guard::Projections {
                x,
                query: part(&parts[0])?,
                key: part(&parts[1])?,
                value: part(&parts[2])?,
            })
        }
    }
}

/// The `[Hin, 3H]` weight and `[3H]` bias of a projection: used as they are for a packed
/// linear (a zero bias made when there is none), packed from three linears otherwise.
/// `None` when weight data is missing (skeleton models) or the pieces do not fit.
fn packed_weights(eg: &mut EGraph, projection: &Projection) -> Option<(TensorId, TensorId)> {
    match *projection {
        Projection::Packed {
            weight,
            bias: Some(bias),
            ..
        } => Some((weight, bias)),
        Projection::Packed {
            weight,
            bias: None,
            width,
            ..
        } => {
            let zeros = vec![0.0; usize::try_from(width).ok()?];
            Some((weight, eg.analysis.tensors.f32(vec![width], &zeros)))
        }
        Projection::Separate { parts, .. } => pack(eg, &parts),
    }
}

/// Packs three `[Hin, H_i]` weights column-wise and their biases (zeros where absent), as
/// little-endian bytes copied row by row (no per-element conversion). `None` when a tensor
/// has no data (skeleton weights), the element types differ or the input sizes differ.
fn pack(eg: &mut EGraph, parts: &[Linear; 3]) -> Option<(TensorId, TensorId)> {
    let tensors = &eg.analysis.tensors;
    let dtype = tensors.dtype(parts[0].weight)?;
    let size = dtype.size_of()?;
    let mut weights = Vec::with_capacity(3);
    let mut biases: Vec<u8> = Vec::new();
    for l in parts {
        let w = tensors.tensor(l.weight)?;
        let [rows, cols] = w.dims.as_slice() else {
            return None;
        };
        let (rows, cols) = (usize::try_from(*rows).ok()?, usize::try_from(*cols).ok()?);
        let bytes = w.raw_bytes().ok()?;
        if w.dtype != dtype || bytes.len() != rows.checked_mul(cols)?.checked_mul(size)? {
            return None;
        }
        match l.bias {
            Some(b) => {
                let b = tensors.tensor(b)?;
                let bb = b.raw_bytes().ok()?;
                if b.dtype != dtype || bb.len() != cols * size {
                    return None;
                }
                biases.extend_from_slice(&bb);
            }
            None => biases.resize(biases.len() + cols * size, 0),
        }
        weights.push((rows, cols * size, bytes));
    }
    let rows = weights.first()?.0;
    if weights.iter().any(|w| w.0 != rows) {
        return None;
    }
    let row_bytes: usize = weights.iter().map(|w| w.1).sum();
    let mut packed = Vec::with_capacity(rows.checked_mul(row_bytes)?);
    for r in 0..rows {
        for (_, width, bytes) in &weights {
            packed.extend_from_slice(bytes.get(r * width..(r + 1) * width)?);
        }
    }
    let total = i64::try_from(row_bytes / size).ok()?;
    let dims = vec![i64::try_from(rows).ok()?, total];
    let weight = Tensor::from_raw("", dtype, dims, packed.into());
    let bias = Tensor::from_raw("", dtype, vec![total], biases.into());
    // Added, not interned: the mapping packs at most once per attention (it stops once the
    // class holds the fused node), and interning would copy and hash megabytes per layer.
    let tensors = &mut eg.analysis.tensors;
    Some((
        tensors.add(Arc::new(weight), TensorOrigin::Created),
        tensors.add(Arc::new(bias), TensorOrigin::Created),
    ))
}

fn is_absent(eg: &EGraph, id: Id) -> bool {
    eg[id].nodes.iter().any(|n| matches!(n, Onnx::Absent))
}

/// `[1]`-shaped int64 vector holding dim 1 of `t` (its sequence length).
fn sequence_length(eg: &mut EGraph, t: Id) -> Id {
    let shape_node = add_op(eg, OpNode::new("Shape", ""), vec![t]);
    let index = add_i64_vector(eg, &[1]);
    add_op(
        eg,
        OpNode::new("Gather", "").with_attr("axis", AttrVal::Int(0)),
        vec![shape_node, index],
    )
}

/// The `attention_bias` input: `None` when there is no bias or it is all zeros; else
/// `Expand(bias, [1, 1, S, T])` with `S` and `T` read from the query and key at run time.
/// Errors (`Err(())`) when the bias cannot be fed: not float, rank above 4, or a dim not
/// proven to be 1 or its place in `[B, N, S, T]` (ONNX Runtime takes `[B|1, N|1, S, T]` only).
pub(super) fn attention_bias(
    eg: &mut EGraph,
    bias: Id,
    query_src: Id,
    key_src: Id,
    heads: i64,
) -> Result<Option<Id>, ()> {
    if is_absent(eg, bias) || all_zero(eg, bias) {
        return Ok(None);
    }
    if dtype(eg, bias) != Some(DataType::Float) {
        return Err(());
    }
    let (Some(bs), Some(qs), Some(ks)) =
        (shape(eg, bias), shape(eg, query_src), shape(eg, key_src))
    else {
        return Err(());
    };
    let (Some(s), Some(t)) = (qs.get(1), ks.get(1)) else {
        return Err(());
    };
    if bs.len() > 4 {
        return Err(());
    }
    let full = [
        qs.first().ok_or(())?.clone(),
        SymDim::known(heads),
        s.clone(),
        t.clone(),
    ];
    let fits = bs
        .iter()
        .rev()
        .zip(full.iter().rev())
        .all(|(d, want)| d.as_known() == Some(1) || d == want);
    if !fits {
        return Err(());
    }
    // Always expanded to the run-time `S` and `T`: a bias whose facts say `[.., S, T]` can
    // still be `[.., 1, T]` at run time (a mask built from a `Range` whose length the
    // analysis cannot pin, broadcast by the original `Add`), which ONNX Runtime refuses.
    let target = query_key_target(eg, query_src, key_src);
    let fed = add_op(eg, OpNode::new("Expand", ""), vec![bias, target]);
    super::key_padding::add_compact_form(eg, bias, fed, query_src, key_src);
    Ok(Some(eg.find(fed)))
}

/// `[1, 1, S, T]` as an int64 shape vector, `S` and `T` dim 1 of `query_src` and `key_src`.
pub(super) fn query_key_target(eg: &mut EGraph, query_src: Id, key_src: Id) -> Id {
    let ones = add_i64_vector(eg, &[1, 1]);
    let s = sequence_length(eg, query_src);
    let t = sequence_length(eg, key_src);
    add_op(
        eg,
        OpNode::new("Concat", "").with_attr("axis", AttrVal::Int(0)),
        vec![ones, s, t],
    )
}

/// A real (extractable) value for class `t`: `t` itself, or for a `Columns` block that only
/// exists as an internal node, a `Slice` of its source on the last axis.
fn materialize(eg: &mut EGraph, t: Id) -> Option<Id> {
    let real = eg[t]
        .nodes
        .iter()
        .any(|n| !matches!(n, Onnx::Op(d, _) if d.domain.as_str() == INTERNAL_DOMAIN));
    if real {
        return Some(t);
    }
    let (start, end, src) = *columns_in(eg, t).first()?;
    let (starts, ends, axes) = (
        add_i64_vector(eg, &[start]),
        add_i64_vector(eg, &[end]),
        add_i64_vector(eg, &[-1]),
    );
    let slice = add_op(eg, OpNode::new("Slice", ""), vec![src, starts, ends, axes]);
    eg.union(slice, t);
    Some(eg.find(t))
}

/// True when class `root` already holds the fused node (directly or under a NaN guard:
/// `Where(.., .., F)` or `Mul(F, any_kept)`).
fn already_fused(eg: &EGraph, root: Id) -> bool {
    let fused = |id: Id| {
        ops(eg, id, MS_DOMAIN, "Attention").next().is_some()
            || ops(eg, id, MS_DOMAIN, "MultiHeadAttention")
                .next()
                .is_some()
    };
    fused(root)
        || ops(eg, root, "", "Where").any(|(_, c)| c.get(2).is_some_and(|&x| fused(x)))
        || ops(eg, root, "", "Mul").any(|(_, c)| c.first().is_some_and(|&x| fused(x)))
}

fn fuse(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    if already_fused(eg, m.root) {
        return None;
    }
    let core = find_core(eg, m.root, m.get("?ctx_t")?)?;
    // ONNX Runtime reads `scale = 0` as "use the default 1/sqrt(d)": such a graph cannot map.
    if core.scale == 0.0 || !core.scale.is_finite() {
        return None;
    }
    let scale = AttrVal::Float(F32Bits::new(core.scale));
    let heads = AttrVal::Int(core.heads);
    if core.heads_first {
        let fused = heads_first::multi_head_attention(eg, &core, scale)?;
        return if core.seq_first {
            Some(heads_first::sequence_first(eg, fused, m.get("?target")?))
        } else {
            Some(fused)
        };
    }
    let mut fused = None;
    let projection = projection(eg, &core);
    let guard_projections = projection.as_ref().and_then(|p| projections(eg, p));
    // A guarded `-inf` key-padding mask that the finite fill computes exactly (with the
    // cheaper guard `keep_guard`); both fused forms below then take that fill.
    let finite_fill_keep = if core.nan_guard {
        nan_guard::masked_keep(eg, core.bias, guard_projections.as_ref(), core.scale)
    } else {
        None
    };
    // Packed Attention; weights are copied only once every other condition holds.
    if let Some(projection) = projection {
        let x = projection.input();
        // A key-padding mask goes in as a 2-D mask_index when that is exact (see
        // `raw_key_mask`), else as attention_bias.
        let raw_mask = match finite_fill_keep {
            Some(keep) => Some((
                super::key_padding::mask_index(eg, keep),
                nan_guard::FINITE_FILL,
            )),
            None => super::key_padding::raw_key_mask(eg, core.bias, x),
        };
        let bias = match raw_mask {
            Some(_) => None,
            None => attention_bias(eg, core.bias, x, x, core.heads).ok()?,
        };
        if let Some((weight, packed_bias)) = packed_weights(eg, &projection) {
            let (w, b) = (
                eg.add(Onnx::Const(weight)),
                eg.add(Onnx::Const(packed_bias)),
            );
            let mut node = OpNode::new("Attention", MS_DOMAIN)
                .with_attr("num_heads", heads.clone())
                .with_attr("scale", scale.clone());
            let inputs = match raw_mask {
                Some((mask, fill)) => {
                    node = node.with_attr("mask_filter_value", AttrVal::Float(F32Bits::new(fill)));
                    vec![x, w, b, mask]
                }
                None => with_bias(eg, vec![x, w, b], bias),
            };
            fused = Some(add_op(eg, node, inputs));
        }
    }
    // MultiHeadAttention on Q, K and V as they are: the only form where packing is
    // impossible, and otherwise an alternative in the same class, which extraction takes
    // only when packed Attention is not allowed (`--attention-op mha`; it costs more).
    let mut multi_head = || {
        let (q, k, v) = (
            materialize(eg, core.query)?,
            materialize(eg, core.key)?,
            materialize(eg, core.value)?,
        );
        let bias = match finite_fill_keep {
            // `keep` fits the layer input (self-attention), so the bias is `[B, 1, T, T]`.
            Some(keep) => Some(super::key_padding::compact_self_bias(
                eg,
                keep,
                nan_guard::FINITE_FILL,
            )),
            None => attention_bias(eg, core.bias, q, k, core.heads).ok()?,
        };
        let inputs = with_bias(eg, vec![q, k, v], bias);
        let node = OpNode::new("MultiHeadAttention", MS_DOMAIN)
            .with_attr("num_heads", heads.clone())
            .with_attr("scale", scale.clone());
        Some(add_op(eg, node, inputs))
    };
    let out = match fused {
        Some(f) => {
            if let Some(alternative) = multi_head() {
                eg.union(f, alternative);
            }
            eg.find(f)
        }
        None => multi_head()?,
    };
    if let Some(keep) = finite_fill_keep {
        return Some(nan_guard::keep_guard(eg, out, keep));
    }
    if core.nan_guard {
        let finite_bias = is_absent(eg, core.bias)
            || all_zero(eg, core.bias)
            || guard_projections
                .as_ref()
                .is_some_and(|p| super::key_padding::finite_key_padding(eg, core.bias, p.x));
        return nan_guard::guard(
            eg,
            out,
            |eg| materialize(eg, core.value),
            guard_projections.as_ref(),
            finite_bias,
            core.scale,
        );
    }
    Some(out)
}

/// The fused op's inputs: `inputs` (Q, K, V or x, W, b), then the `attention_bias` in its
/// slot (index 5 of both `Attention` and `MultiHeadAttention`, after two absent inputs) when
/// there is one.
pub(super) fn with_bias(eg: &mut EGraph, mut inputs: Vec<Id>, bias: Option<Id>) -> Vec<Id> {
    if let Some(ab) = bias {
        let none = absent(eg);
        inputs.extend([none, none, ab]);
    }
    inputs
}

/// The mapping rule.
pub(super) fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "attention",
        &["(Reshape ?ctx_t ?target)"],
        fuse,
    )?])
}
