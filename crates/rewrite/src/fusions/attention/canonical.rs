//! The canonical intermediate forms of attention ([`INTERNAL_DOMAIN`] e-nodes) and the
//! queries that find them in an e-class.
//!
//! | node | children | attributes | meaning |
//! |---|---|---|---|
//! | `HeadSplit` | `t [B,S,H]` | `heads` | `Transpose(Reshape(t, [B,S,N,d]), [0,2,1,3])`, `[B,N,S,d]` |
//! | `Columns` | `t [.., W]` | `start`, `end` | `t[..., start:end]` |
//! | `KeyTranspose` | `k [B,N,T,d]` | - | `k` with its last two axes swapped |
//! | `Scores` | `q, k` (both `[B,N,*,d]`) | `scale` | `scale · q · kᵀ` |
//! | `Probs` | `scores, bias` (`bias` may be absent) | `nan_guard` | `Softmax(scores + bias)` over the last axis, NaN rows zeroed when `nan_guard = 1` |
//! | `Context` | `probs, v [B,N,T,d]` | - | `probs · v`, `[B,N,S,d]` |
//!
//! Internal nodes are never extracted; only the final mapping (see `mapping.rs`) puts an
//! ONNX Runtime node in a class.

use egg::Id;

use crate::INTERNAL_DOMAIN;
use crate::analysis::EGraph;
use crate::lang::{AttrVal, F32Bits, OpNode};
use crate::rule::ops;

pub(super) const HEAD_SPLIT: &str = "HeadSplit";
pub(super) const COLUMNS: &str = "Columns";
pub(super) const KEY_TRANSPOSE: &str = "KeyTranspose";
pub(super) const SCORES: &str = "Scores";
pub(super) const PROBS: &str = "Probs";
pub(super) const CONTEXT: &str = "Context";

/// `HeadSplit[heads]`.
pub(super) fn head_split(heads: i64) -> OpNode {
    OpNode::new(HEAD_SPLIT, INTERNAL_DOMAIN).with_attr("heads", AttrVal::Int(heads))
}

/// `Columns[start, end]`.
pub(super) fn columns(start: i64, end: i64) -> OpNode {
    OpNode::new(COLUMNS, INTERNAL_DOMAIN)
        .with_attr("start", AttrVal::Int(start))
        .with_attr("end", AttrVal::Int(end))
}

/// `KeyTranspose`.
pub(super) fn key_transpose() -> OpNode {
    OpNode::new(KEY_TRANSPOSE, INTERNAL_DOMAIN)
}

/// `Scores[scale]`.
pub(super) fn scores(scale: f32) -> OpNode {
    OpNode::new(SCORES, INTERNAL_DOMAIN).with_attr("scale", AttrVal::Float(F32Bits::new(scale)))
}

/// `Probs[nan_guard]`.
pub(super) fn probs(nan_guard: bool) -> OpNode {
    OpNode::new(PROBS, INTERNAL_DOMAIN).with_attr("nan_guard", AttrVal::Int(i64::from(nan_guard)))
}

/// `Context`.
pub(super) fn context() -> OpNode {
    OpNode::new(CONTEXT, INTERNAL_DOMAIN)
}

/// Every `(heads, t)` such that class `id` holds `HeadSplit[heads](t)`.
pub(super) fn head_splits(eg: &EGraph, id: Id) -> Vec<(i64, Id)> {
    ops(eg, id, INTERNAL_DOMAIN, HEAD_SPLIT)
        .filter_map(|(n, c)| Some((n.attr_int("heads")?, *c.first()?)))
        .collect()
}

/// Every `k` such that class `id` holds `KeyTranspose(k)`.
pub(super) fn key_transposes(eg: &EGraph, id: Id) -> Vec<Id> {
    ops(eg, id, INTERNAL_DOMAIN, KEY_TRANSPOSE)
        .filter_map(|(_, c)| c.first().copied())
        .collect()
}

/// `(scale, q, k)` of every `Scores` node in class `id`.
pub(super) fn scores_in(eg: &EGraph, id: Id) -> Vec<(f32, Id, Id)> {
    ops(eg, id, INTERNAL_DOMAIN, SCORES)
        .filter_map(|(n, c)| match c {
            [q, k] => Some((n.attr_float("scale")?, *q, *k)),
            _ => None,
        })
        .collect()
}

/// `(nan_guard, scores, bias)` of every `Probs` node in class `id`.
pub(super) fn probs_in(eg: &EGraph, id: Id) -> Vec<(bool, Id, Id)> {
    ops(eg, id, INTERNAL_DOMAIN, PROBS)
        .filter_map(|(n, c)| match c {
            [s, b] => Some((n.attr_int("nan_guard")? != 0, *s, *b)),
            _ => None,
        })
        .collect()
}

/// `(probs, v)` of every `Context` node in class `id`.
pub(super) fn contexts_in(eg: &EGraph, id: Id) -> Vec<(Id, Id)> {
    ops(eg, id, INTERNAL_DOMAIN, CONTEXT)
        .filter_map(|(_, c)| match c {
            [p, v] => Some((*p, *v)),
            _ => None,
        })
        .collect()
}

/// `(start, end, t)` of every `Columns` node in class `id`.
pub(super) fn columns_in(eg: &EGraph, id: Id) -> Vec<(i64, i64, Id)> {
    ops(eg, id, INTERNAL_DOMAIN, COLUMNS)
        .filter_map(|(n, c)| Some((n.attr_int("start")?, n.attr_int("end")?, *c.first()?)))
        .collect()
}
