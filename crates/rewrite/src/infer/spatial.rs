//! Shapes of the ops that change spatial sizes: `Conv`, `Resize`/`Upsample` and `Pad`.

use super::shape::shape_vector;
use super::{input_value, is_absent, norm_axis, shape_of};
use crate::analysis::ClassData;
use crate::lang::OpNode;
use crate::symbolic::{ConstValue, Shape, SymDim};

/// `Conv`: batch, output channels and each spatial size from kernel, strides, dilations
/// and pads (or `auto_pad`).
pub(super) fn conv_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let x = shape_of(inputs, 0)?;
    let w = shape_of(inputs, 1)?;
    if x.len() < 3 || w.len() != x.len() {
        return None;
    }
    let spatial = x.len() - 2;
    let kernel: Vec<i64> = match node.attr_ints("kernel_shape") {
        Some(k) => k.to_vec(),
        None => w[2..].iter().map(SymDim::as_known).collect::<Option<_>>()?,
    };
    let strides = node
        .attr_ints("strides")
        .map(<[i64]>::to_vec)
        .unwrap_or_else(|| vec![1; spatial]);
    let dil = node
        .attr_ints("dilations")
        .map(<[i64]>::to_vec)
        .unwrap_or_else(|| vec![1; spatial]);
    let pads = node
        .attr_ints("pads")
        .map(<[i64]>::to_vec)
        .unwrap_or_else(|| vec![0; 2 * spatial]);
    // ONNX: VALID means no padding; SAME_UPPER/SAME_LOWER give ceil(len / stride).
    let auto_pad = node.attr_str("auto_pad").unwrap_or_default();
    let (pads, same) = match auto_pad.as_str() {
        "" | "NOTSET" => (pads, false),
        "VALID" => (vec![0; 2 * spatial], false),
        "SAME_UPPER" | "SAME_LOWER" => (pads, true),
        _ => return None,
    };
    if kernel.len() != spatial
        || strides.len() != spatial
        || dil.len() != spatial
        || pads.len() != 2 * spatial
    {
        return None;
    }
    let mut out = vec![x[0].clone(), w[0].clone()];
    for i in 0..spatial {
        // Batch and output channels are known even when the spatial size is not.
        let Some(len) = x[2 + i].as_known() else {
            out.push(SymDim::unknown());
            continue;
        };
        if strides[i] <= 0 {
            return None;
        }
        if same {
            let ceil = len.checked_add(strides[i] - 1)? / strides[i];
            out.push(SymDim::known(ceil));
            continue;
        }
        // Checked: attribute values come from the model and may be anything.
        let eff = dil[i]
            .checked_mul(kernel[i].checked_sub(1)?)?
            .checked_add(1)?;
        let padded = len
            .checked_add(pads[i])?
            .checked_add(pads[i + spatial])?
            .checked_sub(eff)?;
        out.push(SymDim::known((padded / strides[i]).checked_add(1)?));
    }
    Some(out)
}

/// `Resize` (X, roi, scales, sizes) and `Upsample` (X, scales): the rank is the input's;
/// a dim is the `sizes` entry, or the input's dim where its scale is exactly 1, or the
/// product with a known input dim; anything else is an unknown size.
pub(super) fn resize_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let x = shape_of(inputs, 0)?;
    let rank = x.len();
    let stretch = matches!(
        node.attr_str("keep_aspect_ratio_policy")
            .unwrap_or_default()
            .as_str(),
        "" | "stretch"
    );
    // With `axes` (opset 18) scales and sizes cover only some dims: not modelled.
    if node.attr_ints("axes").is_some() || !stretch {
        return Some(vec![SymDim::unknown(); rank]);
    }
    let (scales_at, sizes_at) = if node.op.as_str() == "Upsample" || inputs.len() == 2 {
        (1, None)
    } else {
        (2, Some(3))
    };
    let present = |i: usize| inputs.get(i).is_some_and(|d| !super::is_absent(d));
    if let Some(sizes_at) = sizes_at.filter(|&i| present(i)) {
        let sizes = shape_vector(inputs, sizes_at)?;
        return (sizes.len() == rank).then_some(sizes);
    }
    if !present(scales_at) {
        return None;
    }
    let Some(scales) = input_value(inputs, scales_at).and_then(ConstValue::as_f64s) else {
        return Some(vec![SymDim::unknown(); rank]);
    };
    if scales.len() != rank {
        return None;
    }
    Some(
        x.iter()
            .zip(&scales)
            .map(|(d, &f)| {
                if f == 1.0 {
                    return d.clone();
                }
                match d.as_known() {
                    // ONNX: floor(input_dim * scale).
                    Some(v) if f.is_finite() && f > 0.0 => {
                        let out = (v as f64 * f).floor();
                        if out <= i64::MAX as f64 {
                            SymDim::known(out as i64)
                        } else {
                            SymDim::unknown()
                        }
                    }
                    _ => SymDim::unknown(),
                }
            })
            .collect(),
    )
}

/// `Pad`: each dim grows by its begin and end pads (attribute before opset 11, input after,
/// with the optional `axes` input of opset 18). Pads that are not constant leave the rank
/// and unknown dims; a dim that is not padded keeps its symbol.
pub(super) fn pad_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let x = shape_of(inputs, 0)?;
    let rank = x.len();
    let pads = match node.attr_ints("pads") {
        Some(p) => Some(p.to_vec()),
        None => input_value(inputs, 1).and_then(ConstValue::as_i64s),
    };
    let axes: Vec<usize> = match inputs.get(3).filter(|d| !is_absent(d)) {
        None => (0..rank).collect(),
        Some(d) => d
            .value
            .as_ref()?
            .as_i64s()?
            .into_iter()
            .map(|a| norm_axis(a, rank))
            .collect::<Option<_>>()?,
    };
    let Some(pads) = pads.filter(|p| p.len() == 2 * axes.len()) else {
        return Some(vec![SymDim::unknown(); rank]);
    };
    let mut out = x.clone();
    for (i, &axis) in axes.iter().enumerate() {
        let grow = pads[i].checked_add(pads[i + axes.len()])?;
        out[axis] = out[axis]
            .add(&SymDim::known(grow))
            .filter(|d| d.as_known().is_none_or(|n| n >= 0))
            .unwrap_or_else(SymDim::unknown);
    }
    Some(out)
}
