//! Constant tensor values and "every element equals c" facts.

use transfuse_ir::{DataType, Tensor};

use super::fold::{binary_scalar, cast_scalar, unary_scalar};
use super::{COMPARISONS, ELEMENTWISE_BINARY, dtype_of};
use crate::analysis::ClassData;
use crate::lang::{AttrVal, OpNode, is_default_domain};
use crate::symbolic::{ConstValue, MAX_CONST_ELEMS, Scalar, SymDim};
use crate::tensors::TensorTable;

/// The value of a tensor with at most [`MAX_CONST_ELEMS`] elements.
pub(crate) fn small_tensor_value(t: &Tensor) -> Option<ConstValue> {
    let n = t.numel().ok()?;
    if n > MAX_CONST_ELEMS {
        return None;
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let elems: Vec<Scalar> = if t.dtype.is_float() {
        t.to_f64_vec()
            .ok()?
            .into_iter()
            .map(Scalar::Float)
            .collect()
    } else {
        t.to_i64_vec()
            .ok()?
            .into_iter()
            .map(|v| Scalar::Int(SymDim::known(v)))
            .collect()
    };
    (elems.len() == n).then_some(ConstValue { dims, elems })
}

/// Tensors up to this many elements are scanned for a uniform value even when they are too
/// large to track as constants (LayerNorm scales, biases: hidden 768 to 4096 and beyond).
pub(crate) const MAX_UNIFORM_SCAN: usize = 1 << 20;

/// The single value of a tensor whose elements are all bitwise equal, for tensors above
/// [`MAX_CONST_ELEMS`] (smaller ones get it from [`small_tensor_value`]). The byte scan
/// stops at the first differing element, so trained weights cost a few comparisons; only
/// a truly uniform tensor is decoded. `-0.0` next to `0.0` counts as not uniform.
pub(crate) fn large_tensor_uniform(t: &Tensor) -> Option<Scalar> {
    let n = t.numel().ok()?;
    if n <= MAX_CONST_ELEMS || n > MAX_UNIFORM_SCAN {
        return None;
    }
    let size = t.dtype.size_of()?;
    let raw = t.raw_bytes().ok()?;
    let mut chunks = raw.chunks_exact(size);
    let first = chunks.next()?;
    if !chunks.all(|c| c == first) {
        return None;
    }
    let one = Tensor::from_raw("", t.dtype, vec![], first.to_vec().into());
    small_tensor_value(&one)?.uniform()
}

/// "Every element equals c" through ops that keep or combine uniform tensors.
pub(super) fn uniform(
    node: &OpNode,
    inputs: &[&ClassData],
    tensors: &TensorTable,
) -> Option<Scalar> {
    if !is_default_domain(node.domain.as_str()) {
        return None;
    }
    let u = |i: usize| inputs.get(i).and_then(|d| d.uniform.clone());
    let op = node.op.as_str();
    match op {
        "ConstantOfShape" => match node.attr("value") {
            Some(AttrVal::Tensor(t)) => small_tensor_value(tensors.tensor(*t)?)?.uniform(),
            // The default value is a float 0.
            _ => Some(Scalar::Float(0.0)),
        },
        "Expand" | "Reshape" | "Unsqueeze" | "Squeeze" | "Flatten" | "Transpose" | "Identity"
        | "Slice" | "Tile" | "Gather" | "GatherElements" | "GatherND" => u(0),
        "Where" => {
            if let Some(c) = u(0).and_then(|c| c.as_i64()) {
                return if c != 0 { u(1) } else { u(2) };
            }
            let (a, b) = (u(1)?, u(2)?);
            (a == b).then_some(a)
        }
        "Concat" => {
            let first = u(0)?;
            (1..inputs.len())
                .all(|i| u(i).as_ref() == Some(&first))
                .then_some(first)
        }
        "Cast" => cast_scalar(
            DataType::from_code(i32::try_from(node.attr_int("to")?).ok()?),
            &u(0)?,
        ),
        _ if (ELEMENTWISE_BINARY.contains(&op) || COMPARISONS.contains(&op))
            && inputs.len() == 2 =>
        {
            binary_scalar(op, dtype_of(inputs, 0), &u(0)?, &u(1)?)
        }
        _ if inputs.len() == 1 => unary_scalar(op, dtype_of(inputs, 0), &u(0)?),
        _ => None,
    }
}
