//! BERT-family absolute-position embeddings -> com.microsoft `EmbedLayerNormalization`.
//!
//! `LayerNormalization(word + position [+ segment], gamma, beta)` (any `Add` order and
//! nesting) where
//! - word and segment are `Gather(table, ids)` of constant `[rows, H]` tables with integer
//!   `[B, S]` ids (the larger table is the word table);
//! - position is `Gather(table, p)` with `p` proven to be `0, 1, ..., S-1` (`[S]` or
//!   `[1, S]`): a `Slice(C, [0], [S], axes [1])` of a constant whose values are `0, 1, 2, ...`,
//!   a `Range(0, S, 1)` (optionally unsqueezed), or a folded constant with those values;
//! - the layer norm runs over the last axis with float32 statistics, and its epsilon is
//!   non-negative and finite (ONNX Runtime refuses the fused op otherwise);
//! - the tables are finite and far from overflowing the fused kernel's float32 statistics
//!   ([`tables_are_bounded`]).
//!
//! The ids are cast to int32 as the op requires. RoBERTa-style positions (`CumSum` over the
//! ids) are not `0..S-1` and stay unfused. Invalid ids differ: ONNX `Gather` accepts
//! negative ids, the fused op rejects them (see `docs/attention-forms.md`).

use crate::rule::{LN_DEFAULT_EPSILON, const_tensor};
use egg::Id;
use transfuse_ir::{DataType, MS_DOMAIN};

use crate::analysis::EGraph;
use crate::error::RewriteError;
use crate::lang::{AttrVal, F32Bits, Onnx, OpNode};
use crate::rule::{
    Match, Rewrite, absent, add_f32, add_op, data, dtype, is_channel_vector, ops, rule, same, shape,
};
use crate::symbolic::SymDim;

/// How deep the `Add` tree of the embedding sum may be (three terms need two levels).
const MAX_SUM_DEPTH: usize = 3;

/// `(table, indices)` of each term when class `id` is a sum of `Gather(table, indices,
/// axis 0)` terms (a single gather is a one-term sum).
fn gather_terms(eg: &EGraph, id: Id, depth: usize) -> Option<Vec<(Id, Id)>> {
    let gather = ops(eg, id, "", "Gather").find_map(|(n, c)| match c {
        [table, idx] if n.attr_int("axis").unwrap_or(0) == 0 => Some((*table, *idx)),
        _ => None,
    });
    if let Some(g) = gather {
        return Some(vec![g]);
    }
    let depth = depth.checked_sub(1)?;
    ops(eg, id, "", "Add").find_map(|(_, c)| {
        let mut left = gather_terms(eg, *c.first()?, depth)?;
        left.extend(gather_terms(eg, *c.get(1)?, depth)?);
        Some(left)
    })
}

/// True when the int64 values `v` are `0, 1, 2, ...`.
fn is_arange(v: &[i64]) -> bool {
    v.iter()
        .enumerate()
        .all(|(i, &x)| i64::try_from(i).is_ok_and(|i| i == x))
}

/// True when class `id` holds the positions `0, 1, ..., S-1`, shaped `[S]` or `[1, S]`.
fn is_position_range(eg: &EGraph, id: Id, seq: &SymDim) -> bool {
    let Some(s) = shape(eg, id) else { return false };
    let shaped = match s.as_slice() {
        [n] | [_, n] if s.len() == 1 || s[0] == SymDim::known(1) => n == seq,
        _ => false,
    };
    if !shaped || !dtype(eg, id).is_some_and(|d| matches!(d, DataType::Int64 | DataType::Int32)) {
        return false;
    }
    if data(eg, id)
        .value
        .as_ref()
        .and_then(|v| v.as_i64s())
        .is_some_and(|v| is_arange(&v))
    {
        return true;
    }
    let scalar_int = |c: Id| {
        data(eg, c)
            .value
            .as_ref()
            .and_then(|v| v.single()?.as_i64())
    };
    let vector = |c: Id| data(eg, c).value.as_ref().and_then(|v| v.as_dims());
    let rank_one_range = |r: Id| {
        ops(eg, r, "", "Range").any(|(_, c)| match c {
            [start, limit, delta] => {
                scalar_int(*start) == Some(0)
                    && scalar_int(*delta) == Some(1)
                    && data(eg, *limit)
                        .value
                        .as_ref()
                        .and_then(|v| v.single().cloned())
                        == Some(crate::symbolic::Scalar::Int(seq.clone()))
            }
            _ => false,
        })
    };
    if s.len() == 1 && rank_one_range(id) {
        return true;
    }
    let unsqueezed = ops(eg, id, "", "Unsqueeze").any(|(n, c)| {
        let axes = n.attr_ints("axes").map(<[i64]>::to_vec).or_else(|| {
            c.get(1)
                .and_then(|&a| data(eg, a).value.as_ref()?.as_i64s())
        });
        axes.as_deref() == Some(&[0]) && c.first().is_some_and(|&r| rank_one_range(r))
    });
    if unsqueezed {
        return true;
    }
    // Slice(C, [0], [S], axes, [1]) of a constant C = [[0, 1, 2, ...]] (or [0, 1, 2, ...]).
    ops(eg, id, "", "Slice").any(|(_, c)| {
        let Some(&table) = c.first() else {
            return false;
        };
        let Some(values) = const_tensor(eg, table)
            .and_then(|t| eg.analysis.tensors.tensor(t))
            .map(|t| (t.dims.clone(), t.to_i64_vec()))
        else {
            return false;
        };
        let (dims, Ok(values)) = values else {
            return false;
        };
        let axis_ok = match (
            dims.as_slice(),
            c.get(3)
                .and_then(|&a| data(eg, a).value.as_ref()?.as_i64s()),
        ) {
            ([_], None) => true,
            ([_], Some(a)) => a == [0] || a == [-1],
            ([1, _], Some(a)) => a == [1] || a == [-1],
            _ => false,
        };
        let steps_ok = match c.get(4) {
            None => true,
            Some(&st) => {
                eg[st].nodes.iter().any(|n| matches!(n, Onnx::Absent))
                    || vector(st) == Some(vec![SymDim::known(1)])
            }
        };
        axis_ok
            && steps_ok
            && is_arange(&values)
            && c.get(1).and_then(|&st| vector(st)) == Some(vec![SymDim::known(0)])
            && c.get(2).and_then(|&e| vector(e)) == Some(vec![seq.clone()])
    })
}

/// A constant float `[rows, hidden]` table.
fn is_table(eg: &EGraph, table: Id, hidden: &SymDim) -> Option<i64> {
    let s = shape(eg, table)?;
    let [rows, h] = s.as_slice() else { return None };
    (const_tensor(eg, table).is_some() && dtype(eg, table) == Some(DataType::Float) && h == hidden)
        .then(|| rows.as_known())
        .flatten()
}

/// Headroom below `f32::MAX` that `H · (Σ max|table|)²` must keep (see [`tables_are_bounded`]).
const SQUARE_SUM_HEADROOM: f64 = 16_777_216.0; // 2^24

/// True when the tables are finite and small enough that no sum of their rows overflows in
/// ONNX Runtime's `EmbedLayerNormalization` kernel. It accumulates the statistics of a row in
/// float32 (its `LayerNormalization` does not overflow there): with `|x_k| ≤ Σ_t max|table_t|`,
/// the sum of squares over `hidden` channels is at most `hidden · (Σ_t max|table_t|)²`, which
/// must stay far below `f32::MAX`. Real embeddings are of order 1; a table near `f32::MAX`
/// (or holding NaN or an infinity) keeps the original layer norm.
fn tables_are_bounded(eg: &EGraph, tables: &[Id], hidden: i64) -> bool {
    let mut bound = 0.0_f64;
    for &table in tables {
        let max_abs = const_tensor(eg, table).and_then(|id| eg.analysis.tensors.finite_max_abs(id));
        let Some(max_abs) = max_abs else {
            return false;
        };
        bound += f64::from(max_abs);
    }
    #[allow(clippy::cast_precision_loss)]
    let square_sum = hidden as f64 * bound * bound;
    square_sum <= f64::from(f32::MAX) / SQUARE_SUM_HEADROOM
}

/// `ids` as int32 (a `Cast` unless they already are).
fn as_int32(eg: &mut EGraph, ids: Id) -> Id {
    if dtype(eg, ids) == Some(DataType::Int32) {
        return ids;
    }
    add_op(
        eg,
        OpNode::new("Cast", "").with_attr("to", AttrVal::Int(i64::from(DataType::Int32.code()))),
        vec![ids],
    )
}

fn fuse(eg: &mut EGraph, m: &Match<'_>) -> Option<Id> {
    let (sum, gamma) = (m.get("?sum")?, m.get("?g")?);
    let beta = m.get("?b");
    let already_fused = eg[m.root].nodes.iter().any(|n| match n {
        Onnx::Proj(0, [t]) => ops(eg, *t, MS_DOMAIN, "EmbedLayerNormalization")
            .next()
            .is_some(),
        _ => false,
    });
    if already_fused {
        return None;
    }
    let sum_shape = shape(eg, sum)?.clone();
    let [batch, seq, hidden] = sum_shape.as_slice() else {
        return None;
    };
    if hidden.as_known().is_none() || dtype(eg, sum) != Some(DataType::Float) {
        return None;
    }
    let epsilon = ops(eg, m.root, "", "LayerNormalization").find_map(|(n, c)| {
        let inputs_match = c.first().is_some_and(|&x| same(eg, x, sum))
            && c.get(1).is_some_and(|&g| same(eg, g, gamma))
            && match (beta, c.get(2)) {
                (Some(b), Some(&x)) => same(eg, b, x),
                (None, None) => true,
                _ => false,
            };
        let last_axis = matches!(n.attr_int("axis").unwrap_or(-1), -1 | 2);
        let f32_stats = n.attr_int("stash_type").unwrap_or(1) == 1;
        (inputs_match && last_axis && f32_stats && n.outputs == 1)
            .then(|| n.attr_float("epsilon").unwrap_or(LN_DEFAULT_EPSILON))
    })?;
    if !super::skiplayernorm::fusable_epsilon(epsilon) {
        return None;
    }
    if !is_channel_vector(eg, gamma, sum) || beta.is_some_and(|b| !is_channel_vector(eg, b, sum)) {
        return None;
    }

    let terms = gather_terms(eg, sum, MAX_SUM_DEPTH)?;
    if !(2..=3).contains(&terms.len()) {
        return None;
    }
    let position = terms.iter().position(|&(table, idx)| {
        is_table(eg, table, hidden).is_some() && is_position_range(eg, idx, seq)
    })?;
    let (pos_table, _) = terms[position];
    // The other terms: constant tables gathered with integer [B, S] ids; word = larger table.
    let mut others: Vec<(i64, Id, Id)> = Vec::new();
    for (i, &(table, ids)) in terms.iter().enumerate() {
        if i == position {
            continue;
        }
        let rows = is_table(eg, table, hidden)?;
        let ids_ok = shape(eg, ids).is_some_and(|s| s.as_slice() == [batch.clone(), seq.clone()])
            && dtype(eg, ids).is_some_and(|d| matches!(d, DataType::Int64 | DataType::Int32));
        if !ids_ok {
            return None;
        }
        others.push((rows, table, ids));
    }
    others.sort_by_key(|&(rows, _, _)| std::cmp::Reverse(rows));
    let (word_table, word_ids) = (others.first()?.1, others.first()?.2);
    let segment = others.get(1).map(|&(_, t, ids)| (t, ids));

    let mut tables = vec![word_table, pos_table];
    tables.extend(segment.map(|(t, _)| t));
    if !tables_are_bounded(eg, &tables, hidden.as_known()?) {
        return None;
    }
    let ids32 = as_int32(eg, word_ids);
    let (seg_ids, seg_table) = match segment {
        Some((table, ids)) => (as_int32(eg, ids), table),
        None => {
            let none = absent(eg);
            (none, none)
        }
    };
    let beta = match beta {
        Some(b) => b,
        None => {
            let h = hidden.as_known()?;
            add_f32(eg, vec![h], &vec![0.0; usize::try_from(h).ok()?])
        }
    };
    // Two outputs: ONNX Runtime's shape inference needs `mask_index` declared.
    let node = OpNode::new("EmbedLayerNormalization", MS_DOMAIN)
        .with_outputs(2)
        .with_attr("epsilon", AttrVal::Float(F32Bits::new(epsilon)));
    let fused = add_op(
        eg,
        node,
        vec![
            ids32, seg_ids, word_table, pos_table, seg_table, gamma, beta,
        ],
    );
    Some(eg.add(Onnx::Proj(0, [fused])))
}

/// The rules of this fusion.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    Ok(vec![rule(
        "embedlayernorm",
        &[
            "(LayerNormalization ?sum ?g ?b)",
            "(LayerNormalization ?sum ?g)",
        ],
        fuse,
    )?])
}
