//! Proofs about an attention bias (the additive mask), read from the e-graph.
//!
//! Each proof holds if *some* e-node of the class satisfies it (all e-nodes of a class compute
//! the same value), so a class that gains members later only makes more proofs succeed.
//! Proofs recurse through the few ops mask subgraphs use, to a fixed depth.

use crate::rule::onnx_nodes;
use egg::Id;
use transfuse_ir::DataType;

use crate::analysis::EGraph;
use crate::rule::{data, dtype};

/// How deep a proof may look (mask subgraphs are a handful of nodes deep).
const MAX_DEPTH: usize = 16;

/// Ops that move or copy elements without changing them (input 0 is the data).
const VALUE_PRESERVING: &[&str] = &[
    "Expand",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Flatten",
    "Transpose",
    "Identity",
];

fn uniform_number(eg: &EGraph, id: Id) -> Option<f64> {
    data(eg, id).uniform.as_ref()?.as_f64()
}

/// The smallest element of class `id`, when provable (constants, `Range` with a
/// non-negative step, and copies of those).
fn min_value(eg: &EGraph, id: Id, depth: usize) -> Option<f64> {
    if let Some(v) = uniform_number(eg, id) {
        return Some(v);
    }
    if let Some(values) = data(eg, id).value.as_ref().and_then(|v| v.as_f64s()) {
        return values.into_iter().reduce(f64::min);
    }
    let depth = depth.checked_sub(1)?;
    onnx_nodes(eg, id).find_map(|(node, c)| match node.op.as_str() {
        "Range" => {
            let (start, delta) = (
                uniform_number(eg, *c.first()?)?,
                uniform_number(eg, *c.get(2)?)?,
            );
            (delta >= 0.0).then_some(start)
        }
        "Cast" => {
            // Integer and float casts are monotone; bool casts are not about order.
            let to = DataType::from_code(i32::try_from(node.attr_int("to")?).ok()?);
            let from = dtype(eg, *c.first()?)?;
            (to != DataType::Bool && from != DataType::Bool)
                .then(|| min_value(eg, c[0], depth))
                .flatten()
        }
        op if VALUE_PRESERVING.contains(&op) => min_value(eg, *c.first()?, depth),
        _ => None,
    })
}

/// True when every element of the boolean class `id` is provably true.
pub(super) fn all_true(eg: &EGraph, id: Id) -> bool {
    all_true_at(eg, id, MAX_DEPTH)
}

fn all_true_at(eg: &EGraph, id: Id, depth: usize) -> bool {
    if dtype(eg, id) == Some(DataType::Bool) && uniform_number(eg, id).is_some_and(|v| v != 0.0) {
        return true;
    }
    let Some(depth) = depth.checked_sub(1) else {
        return false;
    };
    onnx_nodes(eg, id).any(|(node, c)| match (node.op.as_str(), c) {
        ("And", [a, b]) => all_true_at(eg, *a, depth) && all_true_at(eg, *b, depth),
        ("Or", [a, b]) => all_true_at(eg, *a, depth) || all_true_at(eg, *b, depth),
        ("GreaterOrEqual", [a, b]) => {
            matches!((min_value(eg, *a, depth), uniform_number(eg, *b)), (Some(lo), Some(bound)) if lo >= bound)
        }
        ("Greater", [a, b]) => {
            matches!((min_value(eg, *a, depth), uniform_number(eg, *b)), (Some(lo), Some(bound)) if lo > bound)
        }
        ("Cast", [x]) => node.attr_int("to") == Some(i64::from(DataType::Bool.code())) && dtype(eg, *x) == Some(DataType::Bool) && all_true_at(eg, *x, depth),
        (op, [x, ..]) if VALUE_PRESERVING.contains(&op) => all_true_at(eg, *x, depth),
        _ => false,
    })
}

/// True when every element of class `id` is provably `0.0` (for example the vision models'
/// `Where(all-true, 0, NEG)`), so adding it changes nothing.
pub(super) fn all_zero(eg: &EGraph, id: Id) -> bool {
    all_zero_at(eg, id, MAX_DEPTH)
}

fn all_zero_at(eg: &EGraph, id: Id, depth: usize) -> bool {
    if uniform_number(eg, id) == Some(0.0) {
        return true;
    }
    let Some(depth) = depth.checked_sub(1) else {
        return false;
    };
    onnx_nodes(eg, id).any(|(node, c)| match (node.op.as_str(), c) {
        ("Where", [cond, a, b]) => {
            (all_true_at(eg, *cond, depth) && all_zero_at(eg, *a, depth))
                || (all_zero_at(eg, *a, depth) && all_zero_at(eg, *b, depth))
        }
        (op, [x, ..]) if VALUE_PRESERVING.contains(&op) => all_zero_at(eg, *x, depth),
        _ => false,
    })
}
