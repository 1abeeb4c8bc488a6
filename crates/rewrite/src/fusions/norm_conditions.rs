//! Conditions shared by the normalization fusions that hold with partly known shapes: they
//! ask only for what the fused kernel needs (the normalized axis is the last one, the
//! scale and bias lengths), read from the analysis.

use egg::Id;

use crate::analysis::{ClassData, EGraph};
use crate::lang::OpNode;
use crate::rule::{data, dtype, is_const, last_dim, scalar, shape};

/// True when the `ReduceMean` e-node keeps dims and reduces exactly the last axis: axes
/// `[-1]` whatever the rank, or `[rank - 1]` when the rank is known.
pub(crate) fn mean_over_last_axis(eg: &EGraph, node: &OpNode, children: &[Id]) -> bool {
    if node.attr_int("keepdims").unwrap_or(1) == 0 {
        return false;
    }
    let inputs: Vec<&ClassData> = children.iter().map(|&c| data(eg, c)).collect();
    let Some(axes) = crate::infer::ints_attr_or_input(node, &inputs, "axes", 1) else {
        return false;
    };
    match axes.as_slice() {
        [-1] => true,
        [a] => children
            .first()
            .and_then(|&x| data(eg, x).rank())
            .is_some_and(|r| r > 0 && i64::try_from(r - 1).is_ok_and(|last| *a == last)),
        _ => false,
    }
}

/// The length of `v` as a per-channel (last axis) vector of `x`: `v` a constant 1-D tensor
/// of `x`'s element type with a known length, equal to `x`'s last dim when that is known.
///
/// When `x`'s last dim `D` is not known, `v`'s length `H` is enough: `x op v` broadcasts
/// `v` along the last axis. If `D == H` that is exactly the fused kernel's per-channel
/// scale or bias. If `D != H` and `D != 1` the original graph fails to broadcast, so there
/// is no value to differ from. If `D == 1` the original broadcasts the one-element rows to
/// `H` columns while the fused kernel rejects a scale of the wrong length: the fused graph
/// then fails instead of returning a different value, never silently computing something
/// else.
pub(crate) fn channel_len(eg: &EGraph, v: Id, x: Id) -> Option<i64> {
    let s = shape(eg, v)?;
    if !is_const(eg, v) || s.len() != 1 || dtype(eg, x).is_none() || dtype(eg, v) != dtype(eg, x) {
        return None;
    }
    let len = s[0].as_known()?;
    match last_dim(eg, x).and_then(|d| d.as_known()) {
        Some(d) if d != len => None,
        _ => Some(len),
    }
}

/// The value of a non-negative finite one-element constant `eps` added to a statistic of
/// `x`, when adding it cannot change the shape: rank 0, or no higher than `x`'s known rank.
pub(crate) fn epsilon_of(eg: &EGraph, eps: Id, x: Id) -> Option<f32> {
    let rank = shape(eg, eps)?.len();
    let fits = rank == 0 || data(eg, x).rank().is_some_and(|r| rank <= r);
    let e = scalar(eg, eps)?;
    (fits && e >= 0.0 && e.is_finite()).then_some(e as f32)
}
