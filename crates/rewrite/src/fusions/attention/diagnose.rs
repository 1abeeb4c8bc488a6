//! Why an attention block did not fuse, read from an e-graph on which the attention rules
//! ran: the first stage of the chain `Scores -> Probs -> fused op` that is missing, and the
//! condition of that stage that does not hold. Used by [`crate::explain`].

use egg::Id;
use transfuse_ir::DataType;

use super::canonical::{head_splits, key_transposes, probs_in, scores_in};
use super::lift::{float_softmax_over_last_axis, heads_first_pair};
use crate::analysis::EGraph;
use crate::lang::Onnx;
use crate::rule::{dtype, ops, scaled_terms, shape};
use crate::symbolic::{Shape, SymDim};

fn show(s: Option<&Shape>) -> String {
    match s {
        Some(dims) => format!(
            "[{}]",
            dims.iter()
                .map(SymDim::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "unknown".to_string(),
    }
}

/// The op types of the ONNX e-nodes of class `id` (what computes it).
fn computed_by(eg: &EGraph, id: Id) -> String {
    let mut names: Vec<String> = eg[id]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Onnx::Op(d, _) if !d.domain.as_str().starts_with("transfuse") => Some(d.op.to_string()),
            _ => None,
        })
        .collect();
    names.dedup();
    if names.is_empty() {
        "an input or constant".to_string()
    } else {
        names.join("/")
    }
}

/// The classes that may hold the scores: `x`, the terms of up to two nested `Add`s, the
/// kept branch of a `Where`.
fn score_candidates(eg: &EGraph, x: Id) -> Vec<Id> {
    let mut out = vec![x];
    let mut frontier = vec![x];
    for _ in 0..2 {
        let mut next = Vec::new();
        for id in frontier {
            for (_, c) in ops(eg, id, "", "Add") {
                next.extend(c.iter().copied());
            }
            for (_, c) in ops(eg, id, "", "Where") {
                next.extend(c.get(1).copied());
            }
        }
        out.extend(next.iter().copied());
        frontier = next;
    }
    out
}

/// The first failing condition of the attention fusion at a `Softmax` whose class is
/// `softmax` and whose input class is `x`.
pub(crate) fn diagnose(eg: &EGraph, softmax: Id, x: Id) -> String {
    let Some(xs) = shape(eg, x) else {
        return "the scores' shape is unknown (the shape analysis did not reach it)".to_string();
    };
    if xs.len() != 4 {
        return format!("the scores are {}, not rank 4 [B, N, S, T]", show(Some(xs)));
    }
    if dtype(eg, x) != Some(DataType::Float) {
        return "the scores are not float32".to_string();
    }
    if !float_softmax_over_last_axis(eg, softmax, x) {
        return "the Softmax is not taken over the last axis (the keys)".to_string();
    }
    let candidates = score_candidates(eg, x);
    let lifted = candidates.iter().any(|&c| !scores_in(eg, c).is_empty());
    if !lifted {
        let matmuls: Vec<(Id, Id)> = candidates
            .iter()
            .flat_map(|&c| {
                let mut v = vec![c];
                v.extend(scaled_terms(eg, c).into_iter().map(|(y, _)| y));
                v
            })
            .flat_map(|c| {
                ops(eg, c, "", "MatMul")
                    .filter_map(|(_, ch)| Some((*ch.first()?, *ch.get(1)?)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let Some(&(q, kt)) = matmuls.first() else {
            return "no Q·Kᵀ MatMul (optionally scaled by a scalar) feeds the softmax".to_string();
        };
        let keys: Vec<Id> = std::iter::once(kt)
            .chain(scaled_terms(eg, kt).into_iter().map(|(y, _)| y))
            .flat_map(|c| key_transposes(eg, c))
            .collect();
        let q_split = std::iter::once(q)
            .chain(scaled_terms(eg, q).into_iter().map(|(y, _)| y))
            .any(|c| {
                !head_splits(eg, c).is_empty() || keys.iter().any(|&k| heads_first_pair(eg, c, k))
            });
        if !q_split {
            return format!(
                "the query {} (computed by {}) is neither a proven head split Transpose(Reshape([B, S, H] -> [B, S, N, d])) nor a float [B, N, S, d] with the key's known N and d",
                show(shape(eg, q)),
                computed_by(eg, q),
            );
        }
        let k_split = std::iter::once(kt)
            .chain(scaled_terms(eg, kt).into_iter().map(|(y, _)| y))
            .any(|c| {
                key_transposes(eg, c)
                    .into_iter()
                    .any(|k| !head_splits(eg, k).is_empty())
            });
        if !k_split {
            return format!(
                "the key {} (computed by {}) is not a proven transposed head split",
                show(shape(eg, kt)),
                computed_by(eg, kt)
            );
        }
        return "the scores' scale is not one finite scalar (a per-head or shaped factor)"
            .to_string();
    }
    let Some((_, _, bias)) = probs_in(eg, softmax).into_iter().next() else {
        return "scores have an additive input that changes their shape, more than two additive inputs, or a select fill that is not -inf or float32's lowest value".to_string();
    };
    let absent = eg[bias].nodes.iter().any(|n| matches!(n, Onnx::Absent));
    if !absent {
        if dtype(eg, bias) != Some(DataType::Float) {
            return "the scores' additive input is not float32".to_string();
        }
        match shape(eg, bias) {
            None => {
                return "the scores' additive input has an unknown shape: not proven to broadcast to [B|1, N|1, S, T]".to_string();
            }
            Some(bs) => {
                let fits = bs.len() <= 4
                    && bs
                        .iter()
                        .rev()
                        .zip(xs.iter().rev())
                        .all(|(d, want)| d.as_known() == Some(1) || d == want);
                if !fits {
                    return format!(
                        "the scores' additive input {} is not proven to broadcast to [B|1, N|1, S, T] = {}",
                        show(Some(bs)),
                        show(Some(xs))
                    );
                }
            }
        }
    }
    "the probabilities' MatMul with V, the head merge to [B, S, H] or the Q, K, V shapes are not proven (head splits of one [B, S, H] with N·d = H; or, for Q and K changed after their head splits, self-attention on [B, N, S, d] Q, K and V of one head size)".to_string()
}
