//! Heads-first attention cores: Q or K is no head split (rotary embeddings change them after
//! the split), so `MultiHeadAttention` takes the query merged back to `[B, S, H]` and the key
//! and value `[B, N, T, d]` as they are (ONNX Runtime accepts key and value already split
//! into heads when both are 4-D). Self-attention only (`T = S`). The head merge may be
//! sequence-first, as `torch.nn.MultiheadAttention` writes it ([`sequence_first`]).

use egg::Id;
use transfuse_ir::MS_DOMAIN;

use super::mapping::{Core, attention_bias, with_bias};
use super::nan_guard;
use crate::analysis::EGraph;
use crate::lang::{AttrVal, OpNode};
use crate::rule::{add_i64_vector, add_op, shape};
use crate::symbolic::{Shape, SymDim, product};

/// The head count when `q4` `[B,N,S,d]`, `k4` and `v4` `[B,N,T,d]` merge to `out`
/// `[B, S, N·d]` (`seq_first`: `[S·B, N·d]` or `[S, B, N·d]`), self-attention (`T = S`,
/// which the bias and its lengths rely on).
pub(super) fn heads(
    eg: &EGraph,
    q4: Id,
    k4: Id,
    v4: Id,
    out: &Shape,
    seq_first: bool,
) -> Option<i64> {
    let (q, k, v) = (shape(eg, q4)?, shape(eg, k4)?, shape(eg, v4)?);
    let ([b, n, s, d], [bk, nk, t, dk], [bv, nv, tv, dv]) =
        (q.as_slice(), k.as_slice(), v.as_slice())
    else {
        return None;
    };
    let (heads, head_size) = (n.as_known()?, d.as_known()?);
    let hidden = SymDim::known(heads.checked_mul(head_size)?);
    let fits = heads > 0
        && head_size > 0
        && [bk, bv].iter().all(|x| *x == b)
        && [nk, nv].iter().all(|x| *x == n)
        && [dk, dv].iter().all(|x| *x == d)
        && t == s
        && tv == s
        && if seq_first {
            let rows = product(&[s.clone(), b.clone()]);
            out.as_slice() == [s.clone(), b.clone(), hidden.clone()]
                || rows.is_some_and(|r| out.as_slice() == [r, hidden])
        } else {
            out.as_slice() == [b.clone(), s.clone(), hidden]
        };
    fits.then_some(heads)
}

/// `Reshape(Transpose(q4, [0,2,1,3]), [0, 0, N·d])`: a heads-first `[B, N, S, d]` value
/// (the query, or a per-head guard replacement) merged back to `[B, S, N·d]`.
fn merged(eg: &mut EGraph, q4: Id, hidden: i64) -> Id {
    let perm = AttrVal::Ints(vec![0, 2, 1, 3].into());
    let transposed = add_op(
        eg,
        OpNode::new("Transpose", "").with_attr("perm", perm),
        vec![q4],
    );
    let target = add_i64_vector(eg, &[0, 0, hidden]);
    add_op(eg, OpNode::new("Reshape", ""), vec![transposed, target])
}

/// `MultiHeadAttention` on a heads-first core; a NaN guard takes its by-column form
/// ([`nan_guard::heads_first_guard`]).
pub(super) fn multi_head_attention(eg: &mut EGraph, core: &Core, scale: AttrVal) -> Option<Id> {
    let head_size = shape(eg, core.query)?.get(3)?.as_known()?;
    let hidden = core.heads.checked_mul(head_size)?;
    let query = merged(eg, core.query, hidden);
    // `T = S`: the query's length serves for both axes of the bias.
    let bias = attention_bias(eg, core.bias, query, query, core.heads).ok()?;
    let inputs = with_bias(eg, vec![query, core.key, core.value], bias);
    let node = OpNode::new("MultiHeadAttention", MS_DOMAIN)
        .with_attr("num_heads", AttrVal::Int(core.heads))
        .with_attr("scale", scale);
    let out = add_op(eg, node, inputs);
    if !core.nan_guard {
        return Some(out);
    }
    let merge = |eg: &mut EGraph, t: Id| merged(eg, t, hidden);
    Some(nan_guard::heads_first_guard(eg, out, core.value, merge))
}

/// `[B, S, H]` -> `Reshape(Transpose(fused, [1,0,2]), target)`: the fused output in the
/// original's sequence-first layout (`target` is the original merge's own shape input,
/// `[S·B, H]` or `[S, B, H]`).
pub(super) fn sequence_first(eg: &mut EGraph, fused: Id, target: Id) -> Id {
    let perm = AttrVal::Ints(vec![1, 0, 2].into());
    let transpose = OpNode::new("Transpose", "").with_attr("perm", perm);
    let seq_major = add_op(eg, transpose, vec![fused]);
    add_op(eg, OpNode::new("Reshape", ""), vec![seq_major, target])
}
