//! Rules that lift each exporter spelling into the canonical forms of `canonical.rs`.
//!
//! Every rule is local (one or two ONNX nodes plus facts) and adds one internal node to the
//! matched class. Shapes come from the analysis: a head split is recognized by the shapes
//! around a `Reshape`, never by how its target vector was computed.

use egg::Id;

use super::canonical::{
    columns, context, head_split, head_splits, key_transpose, key_transposes, probs, probs_in,
    scores, scores_in,
};
use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, Onnx, OpNode};
use crate::rule::{
    Match, Rewrite, absent, add_f32, add_i64_vector, add_op, data, dtype, is_float, ops, rule,
    same, same_shape, scaled_terms, shape,
};
use crate::symbolic::{SymDim, product};

/// `(perm, input)` of every `Transpose` e-node in class `id`.
fn transposes(eg: &EGraph, id: Id) -> Vec<(Vec<i64>, Id)> {
    ops(eg, id, "", "Transpose")
        .filter_map(|(n, c)| Some((n.attr_ints("perm")?.to_vec(), *c.first()?)))
        .collect()
}

/// Inputs `t` of every `Reshape(t, _)` in class `id`.
fn reshape_inputs(eg: &EGraph, id: Id) -> Vec<Id> {
    ops(eg, id, "", "Reshape")
        .filter_map(|(_, c)| c.first().copied())
        .collect()
}

/// The number of heads when class `split` (`[B,S,N,d]`) is a head split of `t` (`[B,S,H]`):
/// same `B` and `S`, known `N` and `d` with `N·d = H`.
fn head_split_heads(eg: &EGraph, t: Id, split: Id) -> Option<i64> {
    let (ts, ss) = (shape(eg, t)?, shape(eg, split)?);
    let ([b, s, h], [b2, s2, n, d]) = (ts.as_slice(), ss.as_slice()) else {
        return None;
    };
    let (n, d, h) = (n.as_known()?, d.as_known()?, h.as_known()?);
    (b == b2 && s == s2 && n > 0 && d > 0 && n.checked_mul(d) == Some(h)).then_some(n)
}

/// `Transpose(Reshape(t, [B,S,N,d]), [0,2,1,3])` -> `HeadSplit[N](t)`, and the one-transpose
/// Kᵀ `Transpose(Reshape(t, [B,S,N,d]), [0,2,3,1])` -> `KeyTranspose(HeadSplit[N](t))`.
fn lift_head_split(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let r = m.get("?r")?;
    let found = transposes(eg, m.root)
        .into_iter()
        .filter(|(_, x)| same(eg, *x, r))
        .find_map(|(perm, _)| {
            reshape_inputs(eg, r).into_iter().find_map(|t| {
                let heads = head_split_heads(eg, t, r)?;
                matches!(perm.as_slice(), [0, 2, 1, 3] | [0, 2, 3, 1]).then_some((
                    perm.clone(),
                    heads,
                    t,
                ))
            })
        })?;
    let (perm, heads, t) = found;
    if !is_float(eg, t) {
        return None;
    }
    let split = add_op(eg, head_split(heads), vec![t]);
    if perm == [0, 2, 1, 3] {
        Some(split)
    } else {
        Some(add_op(eg, key_transpose(), vec![split]))
    }
}

/// `Transpose(k, [0,1,3,2])` of a rank-4 `k` -> `KeyTranspose(k)`.
fn lift_key_transpose(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let k = m.get("?k")?;
    let swap_last = transposes(eg, m.root)
        .into_iter()
        .any(|(perm, x)| same(eg, x, k) && perm == [0, 1, 3, 2]);
    if !swap_last || shape(eg, k).map(Vec::len) != Some(4) {
        return None;
    }
    Some(add_op(eg, key_transpose(), vec![k]))
}

/// Dynamo's Kᵀ: `Reshape(Transpose(Reshape(k, [B·N, T, d]), [0,2,1]), [B,N,d,T])` with
/// `k` `[B,N,T,d]` -> `KeyTranspose(k)`. The inner reshape merges exactly the two leading
/// axes (so row-major order keeps each `[T, d]` block intact), the outer one splits them back.
fn lift_key_transpose_merged_batch(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let t3 = m.get("?t3")?;
    let out = shape(eg, m.root)?.clone();
    let k = transposes(eg, t3)
        .into_iter()
        .filter(|(perm, _)| perm == &[0, 2, 1])
        .find_map(|(_, r3)| {
            let inner = shape(eg, r3)?;
            reshape_inputs(eg, r3).into_iter().find(|&k| {
                let Some(ks) = shape(eg, k) else { return false };
                let ([b, n, t, d], [bn, t2, d2], [b3, n3, d3, t3]) =
                    (ks.as_slice(), inner.as_slice(), out.as_slice())
                else {
                    return false;
                };
                product(&[b.clone(), n.clone()]).as_ref() == Some(bn)
                    && t == t2
                    && d == d2
                    && b == b3
                    && n == n3
                    && d == d3
                    && t == t3
            })
        })?;
    Some(add_op(eg, key_transpose(), vec![k]))
}

/// `torch.nn.MultiheadAttention`'s Kᵀ as the dynamo exporter writes it, sequence-first:
/// `Reshape(Transpose(x, [1,2,0]), [B,N,d,T])` with `x` `[T, B·N, d]` ->
/// `KeyTranspose(k)` with the heads-first key `k = Transpose(Reshape(x, [0,-1,N,d]),
/// [1,2,0,3])` (`[T, B, N, d]` -> `[B, N, T, d]`), which the fused op can take as it is.
fn lift_key_transpose_seq_first(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let t3 = m.get("?t3")?;
    let out = shape(eg, m.root)?.clone();
    let x = transposes(eg, t3)
        .into_iter()
        .filter(|(perm, _)| perm == &[1, 2, 0])
        .find_map(|(_, x)| {
            let xs = shape(eg, x)?;
            let ([t, bn, d], [b, n, d2, t2]) = (xs.as_slice(), out.as_slice()) else {
                return None;
            };
            let fits = product(&[b.clone(), n.clone()]).as_ref() == Some(bn)
                && t == t2
                && d == d2
                && n.as_known().is_some_and(|n| n > 0)
                && d.as_known().is_some_and(|d| d > 0);
            fits.then_some((x, n.as_known()?, d.as_known()?))
        });
    let (x, heads, head_size) = x?;
    if !is_float(eg, x) {
        return None;
    }
    let target = add_i64_vector(eg, &[0, -1, heads, head_size]);
    let split = add_op(eg, OpNode::new("Reshape", ""), vec![x, target]);
    let perm = AttrVal::Ints(vec![1, 2, 0, 3].into());
    let k = add_op(
        eg,
        OpNode::new("Transpose", "").with_attr("perm", perm),
        vec![split],
    );
    Some(add_op(eg, key_transpose(), vec![k]))
}

/// timm's packed qkv: part `i` of `Split(Transpose(Reshape(t, [B,S,3,N,d]), [2,0,3,1,4]),
/// [1,1,1], axis 0)` or of a `Slice` keeping element `i` of axis 0, squeezed on axis 0 (or
/// `Gather(.., i, axis 0)`), is
/// `HeadSplit[N](Columns[i·H, (i+1)·H](t))` with `H = N·d`.
fn packed_part(eg: &EGraph, t5: Id, index: i64, result: Id) -> Option<(i64, i64, Id)> {
    let (perm, r5) = transposes(eg, t5)
        .into_iter()
        .find(|(perm, _)| perm == &[2, 0, 3, 1, 4])?;
    let _ = perm;
    let rs = shape(eg, r5)?;
    let [b, s, three, n, d] = rs.as_slice() else {
        return None;
    };
    let (three, n, d) = (three.as_known()?, n.as_known()?, d.as_known()?);
    if !(0..three).contains(&index) || n <= 0 || d <= 0 {
        return None;
    }
    let h = n.checked_mul(d)?;
    let t = reshape_inputs(eg, r5).into_iter().find(|&t| {
        shape(eg, t).is_some_and(|ts| {
            ts.len() == 3 && &ts[0] == b && &ts[1] == s && ts[2].as_known() == three.checked_mul(h)
        })
    })?;
    // The part itself must be [B, N, S, d].
    let expected = vec![b.clone(), SymDim::known(n), s.clone(), SymDim::known(d)];
    (shape(eg, result) == Some(&expected)).then_some((n, index.checked_mul(h)?, t))
}

/// `(i, t5)` when class `part` is output `i` of `Split(t5, axis 0)` into three parts of
/// length 1.
fn split_part(eg: &EGraph, part: Id) -> Option<(i64, Id)> {
    let (index, tuple) = eg[part].nodes.iter().find_map(|n| match n {
        Onnx::Proj(i, [tuple]) => Some((i64::from(*i), *tuple)),
        _ => None,
    })?;
    let t5 = ops(eg, tuple, "", "Split").find_map(|(n, c)| {
        let unit_parts = data(eg, tuple).outputs.as_ref().is_some_and(|o| {
            o.len() == 3
                && o.iter()
                    .all(|f| f.shape.as_ref().and_then(|s| s.first()) == Some(&SymDim::known(1)))
        });
        (n.attr_int("axis").unwrap_or(0) == 0 && n.outputs == 3 && unit_parts)
            .then(|| c.first().copied())
            .flatten()
    })?;
    Some((index, t5))
}

/// `(i, t5)` when class `part` is `Slice(t5, [i], [e], [0])` (steps absent or `[1]`) that
/// keeps exactly element `i` of axis 0: `e`, clamped to the axis's known length, is `i + 1`
/// (the dynamo exporter's `unbind`).
fn unit_slice_on_axis0(eg: &EGraph, part: Id) -> Option<(i64, Id)> {
    let ints = |id: Id| data(eg, id).value.as_ref()?.as_i64s();
    ops(eg, part, "", "Slice").find_map(|(_, c)| {
        let (&t5, &starts, &ends) = (c.first()?, c.get(1)?, c.get(2)?);
        let len = shape(eg, t5)?.first()?.as_known()?;
        let (starts, ends) = (ints(starts)?, ints(ends)?);
        let ([start], [end]) = (starts.as_slice(), ends.as_slice()) else {
            return None;
        };
        let axis_zero = match c.get(3) {
            Some(&axes) if !eg[axes].nodes.iter().any(|n| matches!(n, Onnx::Absent)) => {
                matches!(ints(axes)?.as_slice(), [0])
            }
            _ => true,
        };
        let unit_step = match c.get(4) {
            Some(&steps) if !eg[steps].nodes.iter().any(|n| matches!(n, Onnx::Absent)) => {
                matches!(ints(steps)?.as_slice(), [1])
            }
            _ => true,
        };
        let start = *start;
        (axis_zero && unit_step && (0..len).contains(&start) && (*end).min(len) == start + 1)
            .then_some((start, t5))
    })
}

fn lift_packed_qkv_split(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let part = m.get("?part")?;
    // Squeeze must remove axis 0 only: the result is the part without its leading 1.
    let part_shape = shape(eg, part)?;
    if part_shape.first() != Some(&SymDim::known(1))
        || shape(eg, m.root).map(|s| &s[..]) != Some(&part_shape[1..])
    {
        return None;
    }
    let (index, t5) = split_part(eg, part).or_else(|| unit_slice_on_axis0(eg, part))?;
    let (heads, start, t) = packed_part(eg, t5, index, m.root)?;
    let h = shape(eg, t)?.get(2)?.as_known()? / 3;
    let cols = add_op(eg, columns(start, start.checked_add(h)?), vec![t]);
    Some(add_op(eg, head_split(heads), vec![cols]))
}

fn lift_packed_qkv_gather(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (t5, idx) = (m.get("?t5")?, m.get("?i")?);
    let axis0 = ops(eg, m.root, "", "Gather").any(|(n, c)| {
        n.attr_int("axis").unwrap_or(0) == 0 && c.first().is_some_and(|&d| same(eg, d, t5))
    });
    let index = data(eg, idx)
        .value
        .as_ref()
        .filter(|v| v.dims.is_empty())?
        .single()?
        .as_i64()?;
    if !axis0 {
        return None;
    }
    let (heads, start, t) = packed_part(eg, t5, index, m.root)?;
    let h = shape(eg, t)?.get(2)?.as_known()? / 3;
    let cols = add_op(eg, columns(start, start.checked_add(h)?), vec![t]);
    Some(add_op(eg, head_split(heads), vec![cols]))
}

/// `MatMul(q·cq, Kᵀ·ck)` with `q` a head split and `Kᵀ` a `KeyTranspose` of one ->
/// `Scores[cq·ck](q, k)`; each factor is optional (a scalar `Mul` or `Div` that keeps the
/// shape).
fn lift_scores(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (a, b) = (m.get("?a")?, m.get("?b")?);
    if shape(eg, a).map(Vec::len) != Some(4)
        || shape(eg, b).map(Vec::len) != Some(4)
        || !is_float(eg, a)
    {
        return None;
    }
    let factors = |x: Id| -> Vec<(Id, f64)> {
        let mut v = vec![(x, 1.0)];
        v.extend(
            scaled_terms(eg, x)
                .into_iter()
                .filter(|(y, c)| c.is_finite() && same_shape(eg, *y, x)),
        );
        v
    };
    let (qs, ks) = (factors(a), factors(b));
    let split = qs.iter().find_map(|&(q, cq)| {
        if head_splits(eg, q).is_empty() {
            return None;
        }
        ks.iter().find_map(|&(kt, ck)| {
            key_transposes(eg, kt)
                .into_iter()
                .find(|&k| !head_splits(eg, k).is_empty())
                .map(|k| (q, k, cq * ck))
        })
    });
    // Else heads-first Q and K that are no head split themselves (rotary embeddings add
    // `q·cos + rotate_half(q)·sin` after the split): the mapping feeds them as they are.
    let (q, k, scale) = split.or_else(|| {
        qs.iter().find_map(|&(q, cq)| {
            ks.iter().find_map(|&(kt, ck)| {
                key_transposes(eg, kt)
                    .into_iter()
                    .find(|&k| heads_first_pair(eg, q, k))
                    .map(|k| (q, k, cq * ck))
            })
        })
    })?;
    Some(add_op(eg, scores(scale as f32), vec![q, k]))
}

/// `q` `[B, N, S, d]` and `k` `[B, N, T, d]`, float, with known `N` and `d` (the heads and
/// head size a fused op needs).
pub(super) fn heads_first_pair(eg: &EGraph, q: Id, k: Id) -> bool {
    let (Some(qs), Some(ks)) = (shape(eg, q), shape(eg, k)) else {
        return false;
    };
    let ([b, n, _, d], [bk, nk, _, dk]) = (qs.as_slice(), ks.as_slice()) else {
        return false;
    };
    is_float(eg, q)
        && b == bk
        && n == nk
        && d == dk
        && n.as_known().is_some_and(|n| n > 0)
        && d.as_known().is_some_and(|d| d > 0)
}

/// `Scores[s](q, k) · c` and `Scores[s](q, k) / c` -> `Scores[s·c](q, k)` (scalar `c`, shape
/// unchanged).
fn lift_scale(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let found = scaled_terms(eg, m.root).into_iter().find_map(|(x, c)| {
        let (s, q, k) = *scores_in(eg, x).first()?;
        (c.is_finite() && same_shape(eg, x, m.root)).then_some((f64::from(s) * c, q, k))
    })?;
    let (scale, q, k) = found;
    Some(add_op(eg, scores(scale as f32), vec![q, k]))
}

/// True when the select fill `c` of `Where(keep, scores, c)` can be replaced by adding `c`:
/// `-inf` (exact for finite scores) or float32's lowest value (`s + lowest` rounds to
/// `lowest` for every `|s| < 2^103`).
fn select_fill_is_additive(fill: f64) -> bool {
    fill == f64::NEG_INFINITY || fill <= f64::from(f32::MIN)
}

/// True when class `softmax` holds `Softmax(x)` over the last axis of a rank-4 float `x` (the
/// attention probabilities' shape; shared by the softmax lifting rules).
pub(super) fn float_softmax_over_last_axis(eg: &EGraph, softmax: Id, x: Id) -> bool {
    let Some(rank) = shape(eg, x).map(|s| s.len()) else {
        return false;
    };
    let last_axis = ops(eg, softmax, "", "Softmax").any(|(n, c)| {
        c.first().is_some_and(|&i| same(eg, i, x))
            && n.attr_int("axis")
                .is_some_and(|a| rank == 4 && (a == -1 || a == 3))
    });
    last_axis && dtype(eg, x) == Some(transfuse_ir::DataType::Float)
}

/// `Softmax(x, axis = last)` of a rank-4 `x` that is `Scores`, `Scores + bias`,
/// `bias + Scores`, `Where(keep, Scores, lowest)` or `Where(masked, lowest, Scores)` ->
/// `Probs[0](scores, bias)`.
fn lift_softmax(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    if !float_softmax_over_last_axis(eg, m.root, x) {
        return None;
    }
    if !scores_in(eg, x).is_empty() {
        let none = absent(eg);
        return Some(add_op(eg, probs(false), vec![x, none]));
    }
    // scores + bias: the sum must keep the scores' shape (the bias only broadcasts into it).
    let added = ops(eg, x, "", "Add").find_map(|(_, c)| {
        let (l, r) = (*c.first()?, *c.get(1)?);
        [(l, r), (r, l)].into_iter().find(|&(s, b)| {
            !scores_in(eg, s).is_empty() && same_shape(eg, s, x) && dtype(eg, b) == dtype(eg, s)
        })
    });
    if let Some((s, bias)) = added {
        return Some(add_op(eg, probs(false), vec![s, bias]));
    }
    // `Where(keep, Scores, fill)`, or `Where(masked, fill, Scores)` (`masked_fill`).
    let selected = ops(eg, x, "", "Where").find_map(|(_, c)| {
        let (cond, a, b) = (*c.first()?, *c.get(1)?, *c.get(2)?);
        let fill_first = scores_in(eg, a).is_empty();
        let (s, fill) = if fill_first { (b, a) } else { (a, b) };
        let fill_value = data(eg, fill).scalar()?;
        (!scores_in(eg, s).is_empty()
            && same_shape(eg, s, x)
            && dtype(eg, cond) == Some(transfuse_ir::DataType::Bool)
            && dtype(eg, fill) == dtype(eg, s)
            && select_fill_is_additive(fill_value))
        .then_some((cond, s, fill, fill_first))
    });
    let (cond, s, fill, fill_first) = selected?;
    let zero = add_f32(eg, vec![], &[0.0]);
    let branches = if fill_first {
        [fill, zero]
    } else {
        [zero, fill]
    };
    let bias = add_op(
        eg,
        OpNode::new("Where", ""),
        vec![cond, branches[0], branches[1]],
    );
    Some(add_op(eg, probs(false), vec![s, bias]))
}

/// `Where(IsNaN(p), 0, p)` with `p = Probs[0](s, b)` -> `Probs[1](s, b)`. (The pattern binds
/// the two `p`s separately and the applier checks they are one class.)
fn lift_nan_guard(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (p, z, q) = (m.get("?p")?, m.get("?z")?, m.get("?q")?);
    let zero =
        data(eg, z).uniform.as_ref().and_then(|u| u.as_f64()) == Some(0.0) && is_float(eg, z);
    let (_, s, b) = probs_in(eg, p).into_iter().find(|(guard, _, _)| !guard)?;
    if !zero || !same(eg, p, q) || !same_shape(eg, p, m.root) {
        return None;
    }
    Some(add_op(eg, probs(true), vec![s, b]))
}

/// `Cast(x, to)` where `x` already has element type `to` -> `x` (ViT eager's
/// `Softmax -> Cast -> Cast`).
fn drop_noop_cast(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let x = m.get("?x")?;
    let from = dtype(eg, x)?;
    let to = ops(eg, m.root, "", "Cast").find_map(|(n, c)| {
        c.first()
            .is_some_and(|&i| same(eg, i, x))
            .then(|| n.attr_int("to"))
            .flatten()
    })?;
    (i64::from(from.code()) == to).then_some(x)
}

/// `MatMul(Probs, v)` with `v` a head split, or a heads-first `[B, N, T, d]` value next to
/// heads-first scores -> `Context(probs, v)`.
fn lift_context(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (p, v) = (m.get("?p")?, m.get("?v")?);
    let probs = probs_in(eg, p);
    if probs.is_empty() {
        return None;
    }
    let heads_first = || {
        probs.iter().any(|&(_, s, _)| {
            scores_in(eg, s)
                .into_iter()
                .any(|(_, _, k)| heads_first_pair(eg, k, v))
        })
    };
    if head_splits(eg, v).is_empty() && !heads_first() {
        return None;
    }
    Some(add_op(eg, context(), vec![p, v]))
}

/// The lifting rules.
pub(super) fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![
        rule("attention-cast-noop", &["(Cast ?x)"], drop_noop_cast)?,
        rule("attention-head-split", &["(Transpose ?r)"], lift_head_split)?,
        rule(
            "attention-key-transpose",
            &["(Transpose ?k)"],
            lift_key_transpose,
        )?,
        rule(
            "attention-key-transpose-merged-batch",
            &["(Reshape ?t3 ?target)"],
            lift_key_transpose_merged_batch,
        )?,
        rule(
            "attention-key-transpose-seq-first",
            &["(Reshape ?t3 ?target)"],
            lift_key_transpose_seq_first,
        )?,
        rule(
            "attention-packed-qkv",
            &["(Squeeze ?part ?axes)", "(Squeeze ?part)"],
            lift_packed_qkv_split,
        )?,
        rule(
            "attention-packed-qkv-gather",
            &["(Gather ?t5 ?i)"],
            lift_packed_qkv_gather,
        )?,
        rule("attention-scores", &["(MatMul ?a ?b)"], lift_scores)?,
        rule(
            "attention-scale",
            &["(Mul ?s ?c)", "(Div ?s ?c)"],
            lift_scale,
        )?,
        rule("attention-softmax", &["(Softmax ?x)"], lift_softmax)?,
        rule(
            "attention-nan-guard",
            &["(Where (IsNaN ?p) ?z ?q)"],
            lift_nan_guard,
        )?,
        rule("attention-context", &["(MatMul ?p ?v)"], lift_context)?,
    ])
}
