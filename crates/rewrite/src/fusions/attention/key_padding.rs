//! Key-padding masks: a proof that an attention bias is `where(keep[b, k], zero, fill)` for a
//! `[B, T]` boolean `keep`, and its cheap equivalents.
//!
//! The text exports of transformers 5 build the `[B, 1, S, T]` keep-mask with index
//! arithmetic (`docs/attention-forms.md`, 1.5): TorchScript flattens the padding mask and
//! gathers it at `b * T + k`; dynamo uses `GatherND(keep, [b, k])`; both then and it with an
//! all-true query mask and expand. That is twenty to forty small nodes that ONNX Runtime runs
//! on every inference, about a tenth of a BERT forward pass on GPU. When the proof below
//! holds, packed `Attention` takes `Cast(keep, int32)` as an exact 2-D `mask_index`
//! ([`raw_key_mask`]), or else the bias's e-class also gets
//! `Expand(Where(Unsqueeze(keep, [1, 2]), zero, fill), [1, 1, S, T])` ([`add_compact_form`]),
//! which computes the same values, and extraction takes the cheaper form.
//!
//! The proof works on three facts, each holding if *some* e-node of a class satisfies it:
//! - `iota(x) = n`: the elements of `x` in row-major order are `0, 1, …, n - 1`;
//! - `row_major_copy(x, p)`: `x` holds the elements of `p` in `p`'s row-major order (any shape);
//! - `rows_of(c, p)`: `c` has shape `[B, 1, S, T]` (with `p: [B, T]`) and `c[b, 0, q, k] = p[b, k]`
//!   (a `GatherND` at `[b, k]` counters gives it directly).

use egg::Id;
use transfuse_ir::{DataType, Tensor};

use super::mask::all_true;
use crate::analysis::EGraph;
use crate::lang::{AttrVal, Onnx, OpNode};
use crate::rule::onnx_nodes;
use crate::rule::{add_f32, add_i64_vector, add_op, const_tensor, data, dtype, same, shape};
use crate::symbolic::{Shape, SymDim};

/// How deep a proof may look (the TorchScript mask is about ten nodes deep).
const MAX_DEPTH: usize = 16;

/// Ops that keep the row-major order (and count) of their input 0's elements.
const ORDER_PRESERVING: &[&str] = &["Reshape", "Flatten", "Unsqueeze", "Squeeze", "Identity"];

fn is_one(d: &SymDim) -> bool {
    d.as_known() == Some(1)
}

/// The symbolic integer held by a one-element class.
fn single_int(eg: &EGraph, id: Id) -> Option<SymDim> {
    let value = data(eg, id).value.as_ref()?;
    value
        .as_dims()?
        .into_iter()
        .next()
        .filter(|_| value.elems.len() == 1)
}

/// `n` when the elements of class `x`, in row-major order, are `0, 1, …, n - 1`.
fn iota(eg: &EGraph, x: Id, depth: usize) -> Option<SymDim> {
    let depth = depth.checked_sub(1)?;
    onnx_nodes(eg, x).find_map(|(node, c)| match (node.op.as_str(), c) {
        ("Range", [start, limit, delta]) => {
            let zero = single_int(eg, *start)?.as_known() == Some(0);
            let one = single_int(eg, *delta)?.as_known() == Some(1);
            let n = single_int(eg, *limit)?;
            (zero && one && n.as_known().is_none_or(|v| v >= 0)).then_some(n)
        }
        ("Add", [a, b]) => {
            iota_of_sum(eg, x, *a, *b, depth).or_else(|| iota_of_sum(eg, x, *b, *a, depth))
        }
        (op, [src, ..]) if ORDER_PRESERVING.contains(&op) => iota(eg, *src, depth),
        _ => None,
    })
}

/// `x = inner + outer * T` where `inner: [1, …, 1, T]` counts `0..T` and `outer: [B, 1, …, 1]`
/// counts `0..B`: row-major, `x` (shape `[B, 1, …, 1, T]`) counts `0..B*T`.
fn iota_of_sum(eg: &EGraph, x: Id, inner: Id, scaled: Id, depth: usize) -> Option<SymDim> {
    let t = iota(eg, inner, depth)?;
    let (xs, is) = (shape(eg, x)?, shape(eg, inner)?);
    let rank = xs.len();
    if rank < 2 || is.len() != rank || is[rank - 1] != t || !is[..rank - 1].iter().all(is_one) {
        return None;
    }
    onnx_nodes(eg, scaled).find_map(|(node, c)| {
        let [a, b] = c else { return None };
        if !node.is_onnx("Mul") {
            return None;
        }
        [(*a, *b), (*b, *a)]
            .into_iter()
            .find_map(|(outer, factor)| {
                (single_int(eg, factor)? == t).then_some(())?;
                let b_len = iota(eg, outer, depth)?;
                let os = shape(eg, outer)?;
                let ss = shape(eg, scaled)?;
                let outer_ok = os.len() == rank && os[0] == b_len && os[1..].iter().all(is_one);
                let expected: Shape = std::iter::once(b_len.clone())
                    .chain(std::iter::repeat_n(SymDim::known(1), rank - 2))
                    .chain(std::iter::once(t.clone()))
                    .collect();
                (outer_ok && ss == os && *xs == expected)
                    .then(|| b_len.mul(&t))
                    .flatten()
            })
    })
}

/// True when class `x` holds `p`'s elements in `p`'s row-major order.
fn row_major_copy(eg: &EGraph, x: Id, p: Id, depth: usize) -> bool {
    if same(eg, x, p) {
        return true;
    }
    let Some(depth) = depth.checked_sub(1) else {
        return false;
    };
    onnx_nodes(eg, x).any(|(node, c)| match (node.op.as_str(), c) {
        (op, [src, ..]) if ORDER_PRESERVING.contains(&op) => row_major_copy(eg, *src, p, depth),
        // Gathering rows 0..n-1 in order (n the row count) copies the table in order.
        ("Gather", [table, indices]) if node.attr_int("axis").unwrap_or(0) == 0 => {
            let rows = shape(eg, *table).and_then(|s| s.first().cloned());
            rows.is_some_and(|rows| iota(eg, *indices, depth) == Some(rows))
                && row_major_copy(eg, *table, p, depth)
        }
        _ => false,
    })
}

/// True when class `c` has shape `[B, 1, S, T]` and `c[b, 0, q, k] = p[b, k]` (`p: [B, T]`).
fn rows_of(eg: &EGraph, c: Id, p: Id, depth: usize) -> bool {
    let (Some(cs), Some(ps)) = (shape(eg, c), shape(eg, p)) else {
        return false;
    };
    let fits = cs.len() == 4 && ps.len() == 2 && cs[0] == ps[0] && is_one(&cs[1]) && cs[3] == ps[1];
    if !fits || dtype(eg, c) != Some(DataType::Bool) {
        return false;
    }
    // `[B, 1, 1, T]` holding `p` in order is `p` with two unit axes inserted.
    if is_one(&cs[2]) && row_major_copy(eg, c, p, depth) {
        return true;
    }
    let Some(depth) = depth.checked_sub(1) else {
        return false;
    };
    // Broadcasts along the query axis (dims 0, 1 and 3 are checked equal above).
    onnx_nodes(eg, c).any(|(node, ch)| match (node.op.as_str(), ch) {
        ("Expand", [x, _]) => rows_of(eg, *x, p, depth),
        ("And", [a, b]) => {
            (all_true(eg, *a) && rows_of(eg, *b, p, depth))
                || (all_true(eg, *b) && rows_of(eg, *a, p, depth))
        }
        ("Cast", [x]) | ("Identity", [x]) => {
            dtype(eg, *x) == Some(DataType::Bool) && rows_of(eg, *x, p, depth)
        }
        // dynamo: `GatherND(p, Concat(b, k))` with `b`, `k` the batch and key counters.
        ("GatherND", [table, indices]) => {
            node.attr_int("batch_dims").unwrap_or(0) == 0
                && is_one(&cs[2])
                && same(eg, *table, p)
                && batch_key_indices(eg, *indices, cs, depth)
        }
        _ => false,
    })
}

/// True when class `indices` (shape `out + [2]`) holds `[b, k]` at `[b, 0, 0, k]`, for the
/// `[B, 1, 1, T]` shape `out`: `Concat(Unsqueeze(Expand(count over axis 0), -1),
/// Unsqueeze(Expand(count over axis 3), -1), axis -1)`.
fn batch_key_indices(eg: &EGraph, indices: Id, out: &Shape, depth: usize) -> bool {
    if constant_batch_key_indices(eg, indices, out) {
        return true;
    }
    let Some(depth) = depth.checked_sub(1) else {
        return false;
    };
    onnx_nodes(eg, indices).any(|(node, c)| {
        let rank = i64::try_from(out.len()).unwrap_or(i64::MAX);
        let last_axis = matches!(node.attr_int("axis"), Some(a) if a == -1 || a == rank);
        match c {
            [b, k] if node.is_onnx("Concat") && last_axis => {
                counts_along(eg, *b, out, 0, depth) && counts_along(eg, *k, out, 3, depth)
            }
            _ => false,
        }
    })
}

/// True when class `indices` is a constant (what `--fix-shapes` folds the counters into) of
/// shape `out + [2]` holding `[b, k]` at `[b, 0, 0, k]`, checked element by element.
fn constant_batch_key_indices(eg: &EGraph, indices: Id, out: &Shape) -> bool {
    let Some((dims, values)) = constant_with_shape(eg, indices, out, 2) else {
        return false;
    };
    let [batch, 1, 1, keys] = dims[..] else {
        return false;
    };
    // `eq` also fails on a different count.
    let expected = (0..batch).flat_map(|b| (0..keys).map(move |k| [b, k]));
    values.chunks_exact(2).eq(expected)
}

/// True when class `x` (shape `out + [1]`) holds `i[axis]` at index `i + [0]`: an
/// [`index_counter`] over `axis`, all zeros along a unit `axis`, or a constant holding exactly
/// that (checked element by element).
fn counts_along(eg: &EGraph, x: Id, out: &Shape, axis: usize, depth: usize) -> bool {
    if index_counter(eg, x, out, depth) == Some(axis) {
        return true;
    }
    // Along a unit axis the coordinate is 0 everywhere (batch 1 at fixed shapes).
    let uniform = data(eg, x).uniform.as_ref().and_then(|u| u.as_f64());
    let shape_fits =
        shape(eg, x).is_some_and(|s| s.len() == out.len() + 1 && s[..out.len()] == out[..]);
    if out.get(axis).is_some_and(is_one) && uniform == Some(0.0) && shape_fits {
        return true;
    }
    let Some((dims, values)) = constant_with_shape(eg, x, out, 1) else {
        return false;
    };
    let Some(&len) = dims.get(axis) else {
        return false;
    };
    let stride: i64 = dims[axis + 1..].iter().product();
    (0_i64..)
        .zip(&values)
        .all(|(flat, &v)| v == flat / stride % len)
}

/// The dims and int values of class `x` when it is a constant of shape `out + [last]`, `out`
/// all known with no zero dim.
fn constant_with_shape(eg: &EGraph, x: Id, out: &Shape, last: i64) -> Option<(Vec<i64>, Vec<i64>)> {
    let t = eg.analysis.tensors.tensor(const_tensor(eg, x)?)?;
    let dims: Vec<i64> = out.iter().map(SymDim::as_known).collect::<Option<_>>()?;
    if dims.iter().any(|&d| d <= 0) || t.dims.len() != dims.len() + 1 {
        return None;
    }
    if t.dims[..dims.len()] != dims[..] || t.dims[dims.len()] != last {
        return None;
    }
    Some((dims, t.to_i64_vec().ok()?))
}

/// The axis `a` when class `x` (shape `out + [1]`) holds `i[a]` at index `i + [0]`:
/// `Unsqueeze(e, [-1])` where `e` has shape `out` and is a broadcast of a tensor whose only
/// non-unit axis is `a`, of length `out[a]`, counting `0..out[a]` along it.
fn index_counter(eg: &EGraph, x: Id, out: &Shape, depth: usize) -> Option<usize> {
    let depth = depth.checked_sub(1)?;
    let xs = shape(eg, x)?;
    if xs.len() != out.len() + 1 || xs[..out.len()] != out[..] || !is_one(&xs[out.len()]) {
        return None;
    }
    onnx_nodes(eg, x).find_map(|(node, c)| {
        let [e, axes] = c else { return None };
        let rank = i64::try_from(out.len()).ok()?;
        let axes = data(eg, *axes).value.as_ref()?.as_i64s()?;
        if !node.is_onnx("Unsqueeze") || !(axes == [-1] || axes == [rank]) {
            return None;
        }
        if shape(eg, *e)? != out {
            return None;
        }
        // `e` itself, or an `Expand` of the counter to `out`.
        std::iter::once(*e)
            .chain(
                onnx_nodes(eg, *e)
                    .filter(|(n, _)| n.is_onnx("Expand"))
                    .map(|(_, c)| c[0]),
            )
            .find_map(|counter| single_axis_count(eg, counter, out, depth))
    })
}

/// The axis `a` when class `x` has the rank of `out`, unit dims except `a` (of length
/// `out[a]`), and counts `0..out[a]` along `a`.
fn single_axis_count(eg: &EGraph, x: Id, out: &Shape, depth: usize) -> Option<usize> {
    let xs = shape(eg, x)?;
    if xs.len() != out.len() {
        return None;
    }
    let mut non_unit = (0..xs.len()).filter(|&i| !is_one(&xs[i]));
    let axis = non_unit.next()?;
    if non_unit.next().is_some() || xs[axis] != out[axis] {
        return None;
    }
    (iota(eg, x, depth)? == xs[axis]).then_some(axis)
}

/// True when class `v` is a one-element float32 tensor of rank at most 4 (a `Where` branch
/// that broadcasts to any `[B, 1, 1, T]` without changing its shape).
fn single_float(eg: &EGraph, v: Id) -> bool {
    dtype(eg, v) == Some(DataType::Float)
        && shape(eg, v).is_some_and(|s| s.len() <= 4 && s.iter().all(is_one))
}

/// `(keep, zero, fill)` when `bias` provably equals `Where(c, zero, fill)` with
/// `c[b, 0, q, k] = keep[b, k]` for a `[B, T]` boolean class `keep` that is a `Cast` of some
/// other tensor (the padding mask input).
fn key_padding_source(eg: &EGraph, bias: Id) -> Option<(Id, Id, Id)> {
    onnx_nodes(eg, bias).find_map(|(node, c)| {
        let [cond, zero, fill] = c else { return None };
        if !node.is_onnx("Where") || !single_float(eg, *zero) || !single_float(eg, *fill) {
            return None;
        }
        candidate_keeps(eg, *cond)
            .into_iter()
            .find(|&keep| rows_of(eg, *cond, keep, MAX_DEPTH))
            .map(|keep| (keep, *zero, *fill))
    })
}

/// The `[B, T]` boolean casts reachable from `c` through a few ops: the classes a keep-mask
/// may come from.
fn candidate_keeps(eg: &EGraph, c: Id) -> Vec<Id> {
    let mut found = Vec::new();
    let mut stack = vec![(c, MAX_DEPTH)];
    let mut seen = std::collections::HashSet::new();
    while let Some((id, depth)) = stack.pop() {
        let id = eg.find(id);
        if !seen.insert(id) || depth == 0 {
            continue;
        }
        for (node, children) in onnx_nodes(eg, id) {
            let is_keep = node.is_onnx("Cast")
                && dtype(eg, id) == Some(DataType::Bool)
                && shape(eg, id).is_some_and(|s| s.len() == 2);
            if is_keep && !found.contains(&id) {
                found.push(id);
            }
            stack.extend(children.iter().map(|&ch| (ch, depth - 1)));
        }
    }
    found
}

/// A rank-0 float32 constant holding the value of the one-element class `v` when it is
/// known (a `Where` branch of rank at most 4 broadcasts the same either way), else `v`.
fn scalar_const(eg: &mut EGraph, v: Id) -> Id {
    let Some(value) = data(eg, v).uniform.as_ref().and_then(|u| u.as_f64()) else {
        return v;
    };
    // The class is float32, so the value converts back exactly.
    #[allow(clippy::cast_possible_truncation)]
    let t = eg
        .analysis
        .tensors
        .intern(Tensor::from_f32("", vec![], &[value as f32]));
    eg.add(Onnx::Const(t))
}

/// Fills at or below this are absorbed by any realistic score (`|s| < 1e31`): `s + fill`
/// rounds to `fill` in f32, so adding the fill (ONNX Runtime's CPU kernel, the exporter's
/// graph) and replacing the score by it (its CUDA kernels) give the same scores.
const ABSORBING_FILL: f64 = -1e37;

/// `(mask, fill)` for `Attention`'s 2-D `mask_index` input when `bias` is a key-padding mask
/// that adds exactly `0` where kept and a finite absorbing `fill` where masked, and `keep` is
/// `[B, T]` with `B`, `T` the batch and sequence of the attention input `x`: `mask` is
/// `Cast(keep, int32)`, exactly 0/1, so ONNX Runtime's `mask > 0` test matches the
/// exporter's `mask != 0`. The 2-D mask skips the `[B, 1, S, T]` float bias entirely.
pub(super) fn raw_key_mask(eg: &mut EGraph, bias: Id, x: Id) -> Option<(Id, f32)> {
    let (keep, fill) = self_key_padding(eg, bias, x)?;
    if !fill.is_finite() || fill > ABSORBING_FILL {
        return None;
    }
    // The class holds float32 values, so the fill converts back exactly.
    #[allow(clippy::cast_possible_truncation)]
    Some((mask_index(eg, keep), fill as f32))
}

/// `keep` when `bias` is a key-padding mask that adds exactly `0` where kept and `-inf` where
/// masked (PyTorch's boolean-mask SDPA exports), with `keep: [B, T]` fitting the attention
/// input `x: [B, T, H]`. Such a mask makes a fully masked row NaN; see
/// `nan_guard::masked_keep` for when a finite fill computes the same.
pub(super) fn neg_inf_key_padding(eg: &EGraph, bias: Id, x: Id) -> Option<Id> {
    let (keep, fill) = self_key_padding(eg, bias, x)?;
    (fill == f64::NEG_INFINITY).then_some(keep)
}

/// True when `bias` is a key-padding mask adding exactly `0` where kept and a finite fill
/// where masked, fitting `x` as in [`neg_inf_key_padding`]: it never makes a score row NaN
/// by itself.
pub(super) fn finite_key_padding(eg: &EGraph, bias: Id, x: Id) -> bool {
    self_key_padding(eg, bias, x).is_some_and(|(_, fill)| fill.is_finite())
}

/// `(keep, fill)` when `bias` is a key-padding mask adding exactly `0` where kept and the
/// constant `fill` elsewhere, `keep: [B, T]` with `B`, `T` those of `x: [B, T, H]`.
fn self_key_padding(eg: &EGraph, bias: Id, x: Id) -> Option<(Id, f64)> {
    let (keep, zero, fill) = key_padding_source(eg, bias)?;
    let number = |id: Id| data(eg, id).uniform.as_ref().and_then(|u| u.as_f64());
    let (zero, fill) = (number(zero)?, number(fill)?);
    let (ks, xs) = (shape(eg, keep)?, shape(eg, x)?);
    let fits = ks.len() == 2 && xs.len() == 3 && ks[0] == xs[0] && ks[1] == xs[1];
    (zero == 0.0 && fits).then_some((keep, fill))
}

/// `Cast(keep, int32)`: `Attention`'s 2-D `mask_index`, exactly 0/1, so ONNX Runtime's
/// `mask > 0` test matches the exporter's `mask != 0`.
pub(super) fn mask_index(eg: &mut EGraph, keep: Id) -> Id {
    let to_int32 =
        OpNode::new("Cast", "").with_attr("to", AttrVal::Int(i64::from(DataType::Int32.code())));
    add_op(eg, to_int32, vec![keep])
}

/// `Expand(Where(Unsqueeze(keep, [1, 2]), 0, fill), [1, 1, T, T])` (`T`: dim 1 of `keep`): the
/// `[B, 1, T, T]` self-attention bias of a key-padding mask with this fill. It reads only
/// `keep`, so every layer shares it. Needs ONNX opset 13 or later (`Unsqueeze` with an axes
/// input).
pub(super) fn compact_self_bias(eg: &mut EGraph, keep: Id, fill: f32) -> Id {
    let target_shape = super::mapping::query_key_target(eg, keep, keep);
    let (zero, fill) = (add_f32(eg, vec![], &[0.0]), add_f32(eg, vec![], &[fill]));
    compact_bias(eg, keep, zero, fill, target_shape)
}

/// `Expand(Where(Unsqueeze(keep, [1, 2]), zero, fill), target_shape)`.
fn compact_bias(eg: &mut EGraph, keep: Id, zero: Id, fill: Id, target_shape: Id) -> Id {
    let axes = add_i64_vector(eg, &[1, 2]);
    let unsqueezed = add_op(eg, OpNode::new("Unsqueeze", ""), vec![keep, axes]);
    let selected = add_op(eg, OpNode::new("Where", ""), vec![unsqueezed, zero, fill]);
    add_op(eg, OpNode::new("Expand", ""), vec![selected, target_shape])
}

/// When `bias` is a key-padding mask, adds `Expand(Where(Unsqueeze(keep, [1, 2]), zero, fill),
/// [1, 1, S, T])` (`S`, `T`: dim 1 of `query_src` and `key_src`) to the e-class of `fed`, the
/// bias as the fused op takes it (`bias` itself or `bias` expanded to `[B, 1, S, T]`), when the
/// analysis shows both have the same shape. Needs ONNX opset 13 or later (`Unsqueeze` with an
/// axes input).
pub(super) fn add_compact_form(eg: &mut EGraph, bias: Id, fed: Id, query_src: Id, key_src: Id) {
    if eg.analysis.onnx_opset.is_none_or(|v| v < 13) {
        return;
    }
    let Some((keep, zero, fill)) = key_padding_source(eg, bias) else {
        return;
    };
    // Self-attention (`S = T`, the usual case): the target comes from `keep` alone. Its
    // sub-DAG is then a few nodes off the mask input, which extraction prices correctly; one
    // built from the layer's input would carry the whole network before it.
    let square = match (shape(eg, fed), shape(eg, keep)) {
        (Some(f), Some(k)) => f.len() == 4 && k.len() == 2 && f[2] == k[1] && f[3] == k[1],
        _ => false,
    };
    let target_shape = if square {
        super::mapping::query_key_target(eg, keep, keep)
    } else {
        super::mapping::query_key_target(eg, query_src, key_src)
    };
    // Known fill values become shared scalars, so layers that each carry their own copy of
    // `0` and `-inf` end up with one compact mask.
    let (zero, fill) = (scalar_const(eg, zero), scalar_const(eg, fill));
    let expanded = compact_bias(eg, keep, zero, fill, target_shape);
    // `bias[b, 0, q, k] = where(keep[b, k], zero, fill)` for every q, so any broadcast of it to
    // `[B, 1, S, T]` equals the compact form; the shapes must agree for that.
    if shape(eg, expanded).is_some() && shape(eg, expanded) == shape(eg, fed) {
        eg.union(expanded, fed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use transfuse_ir::{AttrValue, Dim, Graph, Node, ValueInfo};

    use super::*;

    /// A mask graph: `attention_mask: [batch, seq]` int64 in, the bias `[batch, 1, 1, seq]`
    /// out, built by `body` from the bool keep-mask `keep`.
    struct MaskGraph {
        graph: Graph,
        count: usize,
    }

    impl MaskGraph {
        fn new() -> MaskGraph {
            MaskGraph::with_dims(vec![Dim::Symbol("batch".into()), Dim::Symbol("seq".into())])
        }

        fn with_dims(dims: Vec<Dim>) -> MaskGraph {
            let mut graph = Graph::default();
            graph.inputs.push(ValueInfo::tensor(
                "attention_mask",
                DataType::Int64,
                Some(dims),
            ));
            let mut g = MaskGraph { graph, count: 0 };
            g.node(
                "Cast",
                &["attention_mask"],
                vec![("to", AttrValue::Int(DataType::Bool.code().into()))],
            );
            g
        }

        fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, AttrValue)>) -> String {
            self.count += 1;
            let out = format!("v{}", self.count);
            let inputs = inputs.iter().map(|s| s.to_string()).collect();
            let mut node = Node::new(op, "", inputs, vec![out.clone()]);
            for (k, v) in attrs {
                node = node.with_attr(k, v);
            }
            self.graph.nodes.push(node);
            out
        }

        fn ints(&mut self, values: &[i64]) -> String {
            self.count += 1;
            let name = format!("c{}", self.count);
            let len = i64::try_from(values.len()).unwrap();
            let dims = if values.len() == 1 { vec![] } else { vec![len] };
            self.graph
                .add_initializer(Tensor::from_i64(&name, dims, values));
            name
        }

        fn ints_1d(&mut self, values: &[i64]) -> String {
            self.count += 1;
            let name = format!("c{}", self.count);
            let len = i64::try_from(values.len()).unwrap();
            self.graph
                .add_initializer(Tensor::from_i64(&name, vec![len], values));
            name
        }

        /// `Range(0, dim(attention_mask, axis), 1)` unsqueezed to rank 4 along `place`.
        fn counter(&mut self, axis: i64, place: usize) -> String {
            let shape = self.node("Shape", &["attention_mask"], vec![]);
            let index = self.ints(&[axis]);
            let n = self.node("Gather", &[&shape, &index], vec![]);
            let (zero, one) = (self.ints(&[0]), self.ints(&[1]));
            let range = self.node("Range", &[&zero, &n, &one], vec![]);
            let axes: Vec<i64> = (0..4).filter(|&a| a != place as i64).collect();
            let axes = self.ints_1d(&axes);
            self.node("Unsqueeze", &[&range, &axes], vec![])
        }

        /// The dynamo form: `GatherND(keep, Concat(b, k))`, components in `order`.
        fn dynamo(mut self, swap: bool, key_place: usize) -> (Graph, String) {
            let b = self.counter(0, 0);
            let k = self.counter(1, key_place);
            let max = self.node("Max", &[&b, &k], vec![]);
            let target = self.node("Shape", &[&max], vec![]);
            let last = self.ints_1d(&[-1]);
            let mut parts = Vec::new();
            for c in [&b, &k] {
                let e = self.node("Expand", &[c, &target], vec![]);
                parts.push(self.node("Unsqueeze", &[&e, &last], vec![]));
            }
            if swap {
                parts.reverse();
            }
            let indices = self.node(
                "Concat",
                &[&parts[0], &parts[1]],
                vec![("axis", AttrValue::Int(-1))],
            );
            let gathered = self.node("GatherND", &["v1", &indices], vec![]);
            self.finish(&gathered)
        }

        /// A constant int64 tensor.
        fn constant(&mut self, dims: Vec<i64>, values: &[i64]) -> String {
            self.count += 1;
            let name = format!("c{}", self.count);
            self.graph
                .add_initializer(Tensor::from_i64(&name, dims, values));
            name
        }

        /// The dynamo form at fixed shapes `[batch, seq]`: `GatherND(keep, indices)` with the
        /// indices folded to one constant, `[b, k]` pairs made by `pair`.
        fn folded_dynamo(
            mut self,
            batch: i64,
            seq: i64,
            pair: impl Fn(i64, i64) -> [i64; 2],
        ) -> (Graph, String) {
            let mut values = Vec::new();
            for b in 0..batch {
                for k in 0..seq {
                    values.extend(pair(b, k));
                }
            }
            let indices = self.constant(vec![batch, 1, 1, seq, 2], &values);
            let gathered = self.node("GatherND", &["v1", &indices], vec![]);
            self.finish(&gathered)
        }

        /// Batch 1 at fixed shapes: `Concat(zeros, key counter)` of two constants.
        fn folded_batch_one(mut self, seq: i64, keys: &[i64]) -> (Graph, String) {
            let zeros = self.constant(vec![1, 1, 1, seq, 1], &vec![0; keys.len()]);
            let counter = self.constant(vec![1, 1, 1, seq, 1], keys);
            let indices = self.node(
                "Concat",
                &[&zeros, &counter],
                vec![("axis", AttrValue::Int(-1))],
            );
            let gathered = self.node("GatherND", &["v1", &indices], vec![]);
            self.finish(&gathered)
        }

        fn finish(mut self, keep_rows: &str) -> (Graph, String) {
            self.count += 1;
            let (zero, fill) = (format!("z{}", self.count), format!("f{}", self.count));
            self.graph
                .add_initializer(Tensor::from_f32(&zero, vec![], &[0.0]));
            self.graph
                .add_initializer(Tensor::from_f32(&fill, vec![], &[f32::MIN]));
            let bias = self.node("Where", &[keep_rows, &zero, &fill], vec![]);
            self.graph
                .outputs
                .push(ValueInfo::tensor(&bias, DataType::Float, None));
            self.graph.check().unwrap();
            (self.graph, bias)
        }
    }

    fn proven(graph: &Graph, bias: &str) -> bool {
        let (mut eg, imported) = crate::import::import_graph(graph).unwrap();
        eg.rebuild();
        let id = imported.names.iter().find(|(n, _)| n == bias).unwrap().1;
        key_padding_source(&eg, id).is_some()
    }

    #[test]
    fn dynamo_gather_nd_mask_is_a_key_padding_mask() {
        let (graph, bias) = MaskGraph::new().dynamo(false, 3);
        assert!(proven(&graph, &bias));
    }

    /// `--fix-shapes` folds the dynamo counters into constants: each index is then checked.
    #[test]
    fn folded_gather_nd_indices_are_checked_element_by_element() {
        let fixed = || MaskGraph::with_dims(vec![Dim::Known(2), Dim::Known(5)]);
        let (graph, bias) = fixed().folded_dynamo(2, 5, |b, k| [b, k]);
        assert!(proven(&graph, &bias));
        let (graph, bias) = fixed().folded_dynamo(2, 5, |b, k| [1 - b, k]);
        assert!(!proven(&graph, &bias), "rows of the other sequence");
        let (graph, bias) = fixed().folded_dynamo(2, 5, |b, k| [b, 4 - k]);
        assert!(!proven(&graph, &bias), "keys reversed");
        let one = || MaskGraph::with_dims(vec![Dim::Known(1), Dim::Known(5)]);
        let (graph, bias) = one().folded_batch_one(5, &[0, 1, 2, 3, 4]);
        assert!(proven(&graph, &bias));
        let (graph, bias) = one().folded_batch_one(5, &[0, 1, 2, 4, 3]);
        assert!(!proven(&graph, &bias), "two keys swapped");
    }

    #[test]
    fn swapped_or_misplaced_counters_are_not() {
        // `keep[k, b]` (only valid when batch = seq), and the key counter on the query axis.
        let (graph, bias) = MaskGraph::new().dynamo(true, 3);
        assert!(!proven(&graph, &bias));
        let (graph, bias) = MaskGraph::new().dynamo(false, 2);
        assert!(!proven(&graph, &bias));
    }
}
