//! The kernels, one file per op family, all registered by [`register_all`].

/// Runs a kernel's generic `apply` at the element type of a float input: evaluates `$body`
/// with the type alias `$t` set to `f32` or `f64` after the variant of `$value`; any other
/// element type is a dtype error reading "`<message>`, got `<type>`".
macro_rules! float_dispatch {
    ($value:expr, $t:ident => $body:expr, $($message:tt)+) => {
        match $value {
            $crate::value::Value::F32(_) => {
                type $t = f32;
                $body
            }
            $crate::value::Value::F64(_) => {
                type $t = f64;
                $body
            }
            other => Err($crate::error::OpError::dtype(format!(
                "{}, got {}",
                format_args!($($message)+),
                other.dtype()
            ))),
        }
    };
}

pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod cast;
pub(crate) mod conv;
pub(crate) mod embed_layer_norm;
pub(crate) mod gather;
pub(crate) mod gelu;
pub(crate) mod generator;
pub(crate) mod layout;
pub(crate) mod matmul;
pub(crate) mod normalization;
pub(crate) mod reduce;
pub(crate) mod reshape;
pub(crate) mod resize;
pub(crate) mod softmax;
pub(crate) mod unary;

use crate::error::{OpError, OpResult};
use crate::registry::Registry;

/// The registration table: every op family adds its ops with the opset ranges it follows.
pub(crate) fn register_all(reg: &mut Registry) {
    unary::register(reg);
    binary::register(reg);
    cast::register(reg);
    generator::register(reg);
    reshape::register(reg);
    layout::register(reg);
    gather::register(reg);
    reduce::register(reg);
    softmax::register(reg);
    matmul::register(reg);
    conv::register(reg);
    resize::register(reg);
    normalization::register(reg);
    gelu::register(reg);
    attention::register(reg);
    embed_layer_norm::register(reg);
}

/// The error for an f16 array reaching a kernel directly: every kernel but the ones that
/// move f16 data unchanged runs behind [`crate::half_precision`]'s widening wrapper.
pub(crate) fn f16_unwidened() -> OpError {
    OpError::dtype("f16 inputs reach this kernel widened to f32")
}

/// An axis attribute or input in `[-rank, rank)` as an index in `[0, rank)`.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(OpError::invalid(format!(
            "axis {axis} is out of range for rank {rank}"
        )))
    }
}

/// Normalizes a list of axes and rejects duplicates.
pub(crate) fn normalize_axes(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(a, rank)?;
        if out.contains(&n) {
            return Err(OpError::invalid(format!(
                "axis {a} is repeated in {axes:?}"
            )));
        }
        out.push(n);
    }
    Ok(out)
}

/// The most elements an op may allocate for a shape derived from input values or
/// attributes; larger requests are errors rather than allocation failures.
pub(crate) const MAX_ELEMENTS: usize = 1 << 32;

/// Errors when `shape` holds more than [`MAX_ELEMENTS`] elements (or overflows).
pub(crate) fn check_size(shape: &[usize]) -> OpResult<()> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .map(|_| ())
        .ok_or_else(|| OpError::invalid(format!("shape {shape:?} is too large")))
}

/// A non-negative size from an `i64`.
pub(crate) fn to_usize(x: i64, what: &str) -> OpResult<usize> {
    usize::try_from(x)
        .map_err(|_| OpError::invalid(format!("{what} must be non-negative, got {x}")))
}
