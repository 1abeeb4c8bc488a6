//! Self-attention -> com.microsoft `Attention` (or `MultiHeadAttention`).
//!
//! Works in two stages (the full design and the catalogue of exporter spellings are in
//! `docs/attention-forms.md`):
//! 1. small lifting rules ([`lift`]) recognize pieces of every exporter's spelling and add
//!    canonical internal nodes ([`canonical`]) to their classes: `HeadSplit`, `KeyTranspose`,
//!    `Columns` (timm's packed qkv), `Scores` (with the product of all scale factors),
//!    `Probs` (Softmax of scores plus an optional additive bias, optionally NaN-guarded) and
//!    `Context`;
//! 2. one mapping rule ([`mapping`]) turns a complete `Reshape(Transpose(Context(..)))`
//!    head merge into the fused op, with `num_heads` and `scale` read from the graph.
//!
//! Scores with two additive inputs (T5's position bias plus its padding mask) are lifted by
//! [`bias`] into one `Probs` whose bias is their sum.
//!
//! Masks are fed as `attention_bias` exactly as the exporter computed them; a `mask_index`
//! is never emitted. Bias proofs (all zeros, all finite) are in [`mask`].

mod bias;
mod canonical;
mod diagnose;
mod heads_first;
mod key_padding;
mod lift;
mod mapping;
mod mask;
mod nan_guard;

pub(crate) use diagnose::diagnose;

use crate::error::RewriteError;
use crate::rule::Rewrite;

/// The rules of this fusion: lifting rules, then the mapping.
pub fn rules() -> Result<Vec<Rewrite>, RewriteError> {
    let mut rules = lift::rules()?;
    rules.extend(bias::rules()?);
    rules.extend(mapping::rules()?);
    Ok(rules)
}
