//! `Slice` and `Range`: parameters, output lengths and shapes.

use super::{input_value, is_absent, norm_axis, shape_of};
use crate::analysis::ClassData;
use crate::lang::OpNode;
use crate::symbolic::{Scalar, Shape, SymDim};

/// Resolved `(start, end, step)` per sliced axis of a `Slice` node (attribute form before
/// opset 10, inputs after), or `None` when not constant.
pub(super) fn slice_params(
    node: &OpNode,
    inputs: &[&ClassData],
    rank: usize,
) -> Option<Vec<(usize, i64, i64, i64)>> {
    let (starts, ends, axes, steps) = if node.attr_ints("starts").is_some() {
        (
            node.attr_ints("starts")?.to_vec(),
            node.attr_ints("ends")?.to_vec(),
            node.attr_ints("axes").map(<[i64]>::to_vec),
            None,
        )
    } else {
        let get = |i: usize| -> Option<Option<Vec<i64>>> {
            match inputs.get(i) {
                None => Some(None),
                Some(d) if is_absent(d) => Some(None),
                Some(d) => Some(Some(d.value.as_ref()?.as_i64s()?)),
            }
        };
        (get(1)??, get(2)??, get(3)?, get(4)?)
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return None;
    }
    (0..starts.len())
        .map(|i| Some((norm_axis(axes[i], rank)?, starts[i], ends[i], steps[i])))
        .collect()
}

/// Output length of slicing a dim of known length `len`.
pub(super) fn slice_len(len: i64, start: i64, end: i64, step: i64) -> Option<(i64, i64)> {
    if step == 0 {
        return None;
    }
    let clampv = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let norm = |v: i64| if v < 0 { v.saturating_add(len) } else { v };
    let (s, e) = if step > 0 {
        (clampv(norm(start), 0, len), clampv(norm(end), 0, len))
    } else {
        (
            clampv(norm(start), -1, len - 1),
            clampv(norm(end), -1, len - 1),
        )
    };
    // i128: steps and bounds may be near the i64 limits (exporters write i64::MAX ends).
    let (s128, e128, step128) = (i128::from(s), i128::from(e), i128::from(step));
    let count = if step > 0 {
        (e128 - s128 + step128 - 1) / step128
    } else {
        (s128 - e128 - step128 - 1) / -step128
    };
    Some((s, i64::try_from(count.max(0)).ok()?))
}

/// The constant `axes` of a `Slice` with `count` sliced axes (all leading axes when absent),
/// when every step is 1 (or absent); `None` otherwise.
fn unit_step_axes(inputs: &[&ClassData], count: usize) -> Option<Vec<i64>> {
    let axes = match inputs.get(3) {
        Some(d) if !is_absent(d) => d.value.as_ref()?.as_i64s()?,
        _ => (0..count as i64).collect(),
    };
    let steps_ok = match inputs.get(4) {
        Some(d) if !is_absent(d) => d.value.as_ref()?.as_i64s()?.iter().all(|&s| s == 1),
        _ => true,
    };
    (steps_ok && axes.len() == count).then_some(axes)
}

/// For `Slice(x, starts=0, ends=[n], axes, steps=1)` with a symbolic `n`: `(axis, n)`.
fn symbolic_slice_ends(inputs: &[&ClassData], rank: usize) -> Option<Vec<(usize, SymDim)>> {
    let starts = input_value(inputs, 1)?.as_i64s()?;
    let ends = input_value(inputs, 2)?.as_dims()?;
    let axes = unit_step_axes(inputs, ends.len())?;
    if starts.iter().any(|&s| s != 0) || ends.iter().all(|e| e.as_known().is_some()) {
        return None;
    }
    axes.iter()
        .zip(ends)
        .map(|(&a, e)| Some((norm_axis(a, rank)?, e)))
        .collect()
}

/// `x[-n:]` on axes whose length is exactly the symbolic `n` (XLM keeps the last `S` ids
/// of a `[B, S]` input): a start of `-len` normalizes to 0, so the slice is the whole axis.
fn symbolic_whole_suffix(inputs: &[&ClassData], s: &Shape) -> Option<Shape> {
    let starts = input_value(inputs, 1)?.as_dims()?;
    let ends = input_value(inputs, 2)?.as_i64s()?;
    let axes = unit_step_axes(inputs, starts.len())?;
    if ends.len() != starts.len() {
        return None;
    }
    for ((&a, start), &end) in axes.iter().zip(&starts).zip(&ends) {
        let axis = norm_axis(a, s.len())?;
        let whole = start.as_known().is_none()
            && start.mul(&SymDim::known(-1)).as_ref() == Some(&s[axis])
            && end >= i64::from(i32::MAX);
        if !whole {
            return None;
        }
    }
    Some(s.clone())
}

/// `x[0:n]` with a symbolic `n` has `n` elements: exporters slice position tables to the
/// sequence length, which must not exceed the table for the model to run at all.
pub(super) fn slice_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let s = shape_of(inputs, 0)?;
    if let Some(out) = symbolic_whole_suffix(inputs, s) {
        return Some(out);
    }
    if let Some(ends) = symbolic_slice_ends(inputs, s.len()) {
        let mut out = s.clone();
        for (axis, end) in ends {
            if end.as_known().is_some() {
                return None;
            }
            out[axis] = end;
        }
        return Some(out);
    }
    let params = slice_params(node, inputs, s.len())?;
    let mut out = s.clone();
    for (axis, start, end, step) in params {
        match s[axis].as_known() {
            Some(len) => out[axis] = SymDim::known(slice_len(len, start, end, step)?.1),
            // A symbolic dim survives only a full slice.
            None if start == 0 && step == 1 && end >= i32::MAX as i64 => {}
            None => return None,
        }
    }
    Some(out)
}

pub(super) fn range_len(inputs: &[&ClassData]) -> Option<SymDim> {
    let start = input_value(inputs, 0)?.single()?.clone();
    let limit = input_value(inputs, 1)?.single()?.clone();
    let delta = input_value(inputs, 2)?.single()?.clone();
    match (start, limit, delta) {
        (Scalar::Int(s), Scalar::Int(l), Scalar::Int(d)) => {
            if let (Some(s), Some(l), Some(d)) = (s.as_known(), l.as_known(), d.as_known()) {
                if d == 0 {
                    return None;
                }
                let n = ((l as f64 - s as f64) / d as f64).ceil().max(0.0) as i64;
                return Some(SymDim::known(n));
            }
            // range(0, n, 1) has n elements.
            if s.as_known() == Some(0) && d.as_known() == Some(1) {
                Some(l)
            } else {
                None
            }
        }
        (s, l, d) => {
            let (s, l, d) = (s.as_f64()?, l.as_f64()?, d.as_f64()?);
            if d == 0.0 {
                return None;
            }
            Some(SymDim::known(((l - s) / d).ceil().max(0.0) as i64))
        }
    }
}

/// `Slice` with bounds computed at run time: the rank and every dim outside the sliced axes
/// are kept; a sliced axis is an unknown size. Needs constant `axes` (or no `axes` and
/// `starts` of known length, which then covers the leading dims).
pub(super) fn slice_shape_partial(inputs: &[&ClassData]) -> Option<Shape> {
    let s = shape_of(inputs, 0)?;
    let axes: Vec<i64> = match inputs.get(3) {
        Some(d) if !is_absent(d) => d.value.as_ref()?.as_i64s()?,
        _ => {
            let n = shape_of(inputs, 1)?.first()?.as_known()?;
            (0..n).collect()
        }
    };
    let mut out = s.clone();
    for a in axes {
        out[norm_axis(a, s.len())?] = SymDim::unknown();
    }
    Some(out)
}
