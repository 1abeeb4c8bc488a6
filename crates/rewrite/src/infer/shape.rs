//! Element types and symbolic shapes of op outputs.

use transfuse_ir::DataType;

use super::slice::{range_len, slice_shape, slice_shape_partial};
use super::spatial::{conv_shape, pad_shape, resize_shape};
use super::{
    COMPARISONS, ELEMENTWISE_BINARY, UNARY_SAME, broadcast, dtype_of, facts, input_value,
    ints_attr_or_input, is_ms, norm_axis, shape_of,
};
use crate::analysis::{ClassData, ValueFacts};
use crate::lang::{AttrVal, OpNode, is_default_domain};
use crate::symbolic::{ConstValue, Shape, SymDim, product};
use crate::tensors::TensorTable;

pub(super) fn infer_single(
    node: &OpNode,
    inputs: &[&ClassData],
    tensors: &TensorTable,
) -> Option<ClassData> {
    let op = node.op.as_str();
    if !(is_default_domain(node.domain.as_str()) || is_ms(node)) {
        return None;
    }
    let all_shapes = || {
        inputs
            .iter()
            .map(|i| i.shape.as_ref())
            .collect::<Option<Vec<&Shape>>>()
    };
    if ELEMENTWISE_BINARY.contains(&op) || (is_ms(node) && op == "BiasGelu") {
        return facts(
            dtype_of(inputs, 0),
            all_shapes().and_then(|s| broadcast(&s)),
        );
    }
    if COMPARISONS.contains(&op) {
        return facts(
            Some(DataType::Bool),
            all_shapes().and_then(|s| broadcast(&s)),
        );
    }
    if UNARY_SAME.contains(&op) || (is_ms(node) && matches!(op, "Gelu" | "FastGelu" | "QuickGelu"))
    {
        let shape = if is_ms(node) && op == "FastGelu" {
            all_shapes().and_then(|s| broadcast(&s))
        } else {
            shape_of(inputs, 0).cloned()
        };
        return facts(dtype_of(inputs, 0), shape);
    }
    match op {
        "IsNaN" | "IsInf" => facts(Some(DataType::Bool), shape_of(inputs, 0).cloned()),
        "Where" => facts(
            dtype_of(inputs, 1),
            all_shapes().and_then(|s| broadcast(&s)),
        ),
        "Cast" => {
            let to = node
                .attr_int("to")
                .and_then(|c| i32::try_from(c).ok())
                .map(DataType::from_code);
            facts(to, shape_of(inputs, 0).cloned())
        }
        "CastLike" => facts(dtype_of(inputs, 1), shape_of(inputs, 0).cloned()),
        "LayerNormalization"
        | "SkipLayerNormalization"
        | "SkipSimplifiedLayerNormalization"
        | "SimplifiedLayerNormalization"
        | "RMSNormalization" => facts(dtype_of(inputs, 0), shape_of(inputs, 0).cloned()),
        "MatMul" => facts(
            dtype_of(inputs, 0),
            matmul_shape(shape_of(inputs, 0)?, shape_of(inputs, 1)?),
        ),
        "Gemm" => {
            let a = shape_of(inputs, 0)?;
            let b = shape_of(inputs, 1)?;
            if a.len() != 2 || b.len() != 2 {
                return facts(dtype_of(inputs, 0), None);
            }
            let m = if node.attr_int("transA").unwrap_or(0) != 0 {
                &a[1]
            } else {
                &a[0]
            };
            let n = if node.attr_int("transB").unwrap_or(0) != 0 {
                &b[0]
            } else {
                &b[1]
            };
            facts(dtype_of(inputs, 0), Some(vec![m.clone(), n.clone()]))
        }
        "Shape" => {
            let rank = shape_of(inputs, 0).map(Vec::len);
            let len = rank
                .and_then(|r| shape_range(node, r))
                .map(|(s, e)| e.saturating_sub(s));
            facts(
                Some(DataType::Int64),
                len.map(|l| vec![SymDim::known(l as i64)]),
            )
        }
        "Size" => facts(Some(DataType::Int64), Some(Vec::new())),
        "Reshape" => facts(dtype_of(inputs, 0), reshape_shape(node, inputs)),
        "Transpose" => {
            let s = shape_of(inputs, 0)?;
            let perm = node
                .attr_ints("perm")
                .map(<[i64]>::to_vec)
                .unwrap_or_else(|| (0..s.len() as i64).rev().collect());
            let shape = permute(s, &perm);
            facts(dtype_of(inputs, 0), shape)
        }
        "Unsqueeze" => {
            let s = shape_of(inputs, 0);
            let axes = ints_attr_or_input(node, inputs, "axes", 1);
            facts(
                dtype_of(inputs, 0),
                s.zip(axes).and_then(|(s, a)| unsqueeze_shape(s, &a)),
            )
        }
        "Squeeze" => {
            let s = shape_of(inputs, 0);
            let axes = if inputs.len() > 1 || node.attr_ints("axes").is_some() {
                ints_attr_or_input(node, inputs, "axes", 1)
            } else {
                Some(Vec::new())
            };
            facts(
                dtype_of(inputs, 0),
                s.zip(axes).and_then(|(s, a)| squeeze_shape(s, &a)),
            )
        }
        "Flatten" => {
            let s = shape_of(inputs, 0)?;
            let axis = norm_axis(node.attr_int("axis").unwrap_or(1), s.len() + 1)?;
            let shape = product(&s[..axis])
                .zip(product(&s[axis..]))
                .map(|(a, b)| vec![a, b]);
            facts(dtype_of(inputs, 0), shape)
        }
        "Concat" => {
            let shapes = all_shapes();
            let shape = shapes.and_then(|shapes| {
                let first = shapes.first()?;
                let axis = norm_axis(node.attr_int("axis")?, first.len())?;
                let mut out = (*first).clone();
                for s in &shapes[1..] {
                    if s.len() != out.len() {
                        return None;
                    }
                    // A sum of different sizes is no monomial: the dim is unknown.
                    out[axis] = out[axis].add(&s[axis]).unwrap_or_else(SymDim::unknown);
                    // Off the axis every input has the same size (ONNX requires it), so an
                    // unknown size takes a named one from another input.
                    for (i, d) in s.iter().enumerate() {
                        if i != axis && out[i].is_unnamed() && !d.is_unnamed() {
                            out[i] = d.clone();
                        }
                    }
                }
                Some(out)
            });
            facts(dtype_of(inputs, 0), shape)
        }
        "Slice" => facts(
            dtype_of(inputs, 0),
            slice_shape(node, inputs).or_else(|| slice_shape_partial(inputs)),
        ),
        "Gather" => {
            let shape = shape_of(inputs, 0)
                .zip(shape_of(inputs, 1))
                .and_then(|(d, i)| {
                    let axis = norm_axis(node.attr_int("axis").unwrap_or(0), d.len())?;
                    Some(
                        d[..axis]
                            .iter()
                            .chain(i.iter())
                            .chain(d[axis + 1..].iter())
                            .cloned()
                            .collect(),
                    )
                });
            facts(dtype_of(inputs, 0), shape)
        }
        "GatherElements" => facts(dtype_of(inputs, 0), shape_of(inputs, 1).cloned()),
        // indices[..-1] + data[batch_dims + r..], r = indices' last dim (known).
        "GatherND" => {
            let shape = shape_of(inputs, 0)
                .zip(shape_of(inputs, 1))
                .and_then(|(d, i)| {
                    let batch_dims =
                        usize::try_from(node.attr_int("batch_dims").unwrap_or(0)).ok()?;
                    let (last, outer) = i.split_last()?;
                    let r = usize::try_from(last.as_known()?).ok()?;
                    let rest = d.get(batch_dims.checked_add(r)?..)?;
                    (batch_dims <= outer.len()).then(|| outer.iter().chain(rest).cloned().collect())
                });
            facts(dtype_of(inputs, 0), shape)
        }
        "ConstantOfShape" => {
            let dtype = match node.attr("value") {
                Some(AttrVal::Tensor(t)) => tensors.dtype(*t),
                _ => Some(DataType::Float),
            };
            facts(dtype, shape_vector(inputs, 0))
        }
        "Expand" => {
            let shape = shape_of(inputs, 0)
                .zip(shape_vector(inputs, 1))
                .and_then(|(s, t)| broadcast(&[s, &t]));
            facts(dtype_of(inputs, 0), shape)
        }
        // Range's length is known for range(0, n, 1) and constant bounds; else it is one
        // unknown size (the output is 1-D whatever the bounds).
        "Range" => {
            let len = range_len(inputs).unwrap_or_else(SymDim::unknown);
            facts(dtype_of(inputs, 0), Some(vec![len]))
        }
        "Tile" => {
            let shape = shape_of(inputs, 0).and_then(|s| {
                let reps = shape_vector(inputs, 1)?;
                (reps.len() == s.len()).then(|| {
                    s.iter()
                        .zip(&reps)
                        .map(|(d, r)| {
                            if r.is_unknown_placeholder() {
                                SymDim::unknown()
                            } else {
                                d.mul(r).unwrap_or_else(SymDim::unknown)
                            }
                        })
                        .collect()
                })
            });
            facts(dtype_of(inputs, 0), shape)
        }
        "Resize" | "Upsample" => facts(dtype_of(inputs, 0), resize_shape(node, inputs)),
        "Pad" => facts(dtype_of(inputs, 0), pad_shape(node, inputs)),
        "ScatterND" | "ScatterElements" | "Scatter" => {
            facts(dtype_of(inputs, 0), shape_of(inputs, 0).cloned())
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2"
        | "ReduceL1" | "ReduceSumSquare" | "ReduceLogSumExp" | "ReduceLogSum" => {
            facts(dtype_of(inputs, 0), reduce_shape(node, inputs))
        }
        "ArgMax" | "ArgMin" => {
            let s = shape_of(inputs, 0);
            let shape = s.and_then(|s| {
                let axis = norm_axis(node.attr_int("axis").unwrap_or(0), s.len())?;
                let keep = node.attr_int("keepdims").unwrap_or(1) != 0;
                Some(reduce_dims(s, &[axis], keep))
            });
            facts(Some(DataType::Int64), shape)
        }
        "Conv" => facts(dtype_of(inputs, 0), conv_shape(node, inputs)),
        "Attention" if is_ms(node) => facts(dtype_of(inputs, 0), shape_of(inputs, 0).cloned()),
        _ => None,
    }
}

pub(super) fn infer_multi(node: &OpNode, inputs: &[&ClassData]) -> Option<Vec<ValueFacts>> {
    let n = node.outputs as usize;
    let dtype = dtype_of(inputs, 0);
    let op = node.op.as_str();
    match op {
        "Split" => {
            let s = shape_of(inputs, 0)?;
            let axis = norm_axis(node.attr_int("axis").unwrap_or(0), s.len())?;
            let sizes: Vec<SymDim> = match ints_attr_or_input(node, inputs, "split", 1) {
                Some(v) => v.into_iter().map(SymDim::known).collect(),
                None => {
                    let total = s[axis].as_known()?;
                    let parts = i64::try_from(n).ok()?;
                    if parts == 0 || total % parts != 0 {
                        return None;
                    }
                    vec![SymDim::known(total / parts); n]
                }
            };
            if sizes.len() != n {
                return None;
            }
            Some(
                sizes
                    .into_iter()
                    .map(|d| {
                        let mut shape = s.clone();
                        shape[axis] = d;
                        ValueFacts {
                            dtype,
                            shape: Some(shape),
                        }
                    })
                    .collect(),
            )
        }
        "LayerNormalization" | "SkipLayerNormalization" | "SkipSimplifiedLayerNormalization" => {
            let s = shape_of(inputs, 0);
            let mut out = vec![
                ValueFacts {
                    dtype,
                    shape: s.cloned()
                };
                n
            ];
            // Mean and inverse std dev keep the leading dims, with 1s for normalized axes.
            let stat_shape = s.and_then(|s| {
                let axis = if op == "LayerNormalization" {
                    norm_axis(node.attr_int("axis").unwrap_or(-1), s.len())?
                } else {
                    s.len().checked_sub(1)?
                };
                Some(
                    s.iter()
                        .enumerate()
                        .map(|(i, d)| {
                            if i >= axis {
                                SymDim::known(1)
                            } else {
                                d.clone()
                            }
                        })
                        .collect(),
                )
            });
            let stat_dtype = if op == "LayerNormalization" {
                Some(DataType::Float)
            } else {
                dtype
            };
            for slot in out.iter_mut().take(3).skip(1) {
                *slot = ValueFacts {
                    dtype: stat_dtype,
                    shape: stat_shape.clone(),
                };
            }
            Some(out)
        }
        "Dropout" => {
            let s = shape_of(inputs, 0).cloned();
            let mut out = vec![ValueFacts {
                dtype,
                shape: s.clone(),
            }];
            if n > 1 {
                out.push(ValueFacts {
                    dtype: Some(DataType::Bool),
                    shape: s,
                });
            }
            Some(out)
        }
        _ => None,
    }
}

fn matmul_shape(a: &Shape, b: &Shape) -> Option<Shape> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (a2, a_vec) = if a.len() == 1 {
        (vec![SymDim::known(1), a[0].clone()], true)
    } else {
        (a.clone(), false)
    };
    let (b2, b_vec) = if b.len() == 1 {
        (vec![b[0].clone(), SymDim::known(1)], true)
    } else {
        (b.clone(), false)
    };
    let batch_a: Shape = a2[..a2.len() - 2].to_vec();
    let batch_b: Shape = b2[..b2.len() - 2].to_vec();
    let mut out = broadcast(&[&batch_a, &batch_b])?;
    if !a_vec {
        out.push(a2[a2.len() - 2].clone());
    }
    if !b_vec {
        out.push(b2[b2.len() - 1].clone());
    }
    Some(out)
}

fn permute(s: &Shape, perm: &[i64]) -> Option<Shape> {
    if perm.len() != s.len() {
        return None;
    }
    perm.iter()
        .map(|&p| usize::try_from(p).ok().and_then(|p| s.get(p).cloned()))
        .collect()
}

fn unsqueeze_shape(s: &Shape, axes: &[i64]) -> Option<Shape> {
    let rank = s.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Option<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    if axes.len() + s.len() != rank {
        return None;
    }
    let mut it = s.iter();
    (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                Some(SymDim::known(1))
            } else {
                it.next().cloned()
            }
        })
        .collect()
}

fn squeeze_shape(s: &Shape, axes: &[i64]) -> Option<Shape> {
    if axes.is_empty() {
        // Squeeze every dim known to be 1; an unknown dim makes the result unknown.
        if s.iter().any(|d| d.as_known().is_none()) {
            return None;
        }
        return Some(
            s.iter()
                .filter(|d| d.as_known() != Some(1))
                .cloned()
                .collect(),
        );
    }
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, s.len()))
        .collect::<Option<_>>()?;
    Some(
        s.iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone())
            .collect(),
    )
}

/// `[start, end)` of the dims a `Shape` node returns, for an input of rank `rank`.
pub(super) fn shape_range(node: &OpNode, rank: usize) -> Option<(usize, usize)> {
    let r = rank as i64;
    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let start = clamp(node.attr_int("start").unwrap_or(0));
    let end = clamp(node.attr_int("end").unwrap_or(r));
    Some((start as usize, end.max(start) as usize))
}

fn reshape_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let Some(target) = input_value(inputs, 1).and_then(ConstValue::as_dims) else {
        // A computed target still fixes the rank.
        let rank = shape_of(inputs, 1)?.first()?.as_known()?;
        return (0..rank).map(|_| Some(SymDim::unknown())).collect();
    };
    let input = shape_of(inputs, 0);
    let allowzero = node.attr_int("allowzero").unwrap_or(0) != 0;
    let mut out: Vec<Option<SymDim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, d) in target.iter().enumerate() {
        match d.as_known() {
            Some(0) if !allowzero => out.push(Some(input?.get(i)?.clone())),
            Some(-1) => {
                if infer_at.is_some() {
                    return None;
                }
                infer_at = Some(i);
                out.push(None);
            }
            Some(v) if v < 0 => return None,
            _ => out.push(Some(d.clone())),
        }
    }
    if let Some(i) = infer_at {
        let known: Vec<SymDim> = out.iter().flatten().cloned().collect();
        // Where the quotient is no monomial the dim is an unknown size.
        out[i] = Some(
            product(input?)
                .zip(product(&known))
                .and_then(|(total, known)| total.div_exact(&known))
                .unwrap_or_else(SymDim::unknown),
        );
    }
    out.into_iter().collect()
}

pub(super) fn reduce_dims(s: &Shape, axes: &[usize], keep: bool) -> Shape {
    s.iter()
        .enumerate()
        .filter_map(|(i, d)| {
            if axes.contains(&i) {
                keep.then(|| SymDim::known(1))
            } else {
                Some(d.clone())
            }
        })
        .collect()
}

/// Normalized reduction axes of a `Reduce*` node (attribute before opset 18, input after),
/// `None` when not constant. An empty list means "all axes" unless `noop_with_empty_axes`.
pub(crate) fn reduce_axes(node: &OpNode, inputs: &[&ClassData], rank: usize) -> Option<Vec<usize>> {
    let axes = match ints_attr_or_input(node, inputs, "axes", 1) {
        Some(a) => a,
        None if inputs.len() < 2 => Vec::new(),
        None => return None,
    };
    if axes.is_empty() {
        if node.attr_int("noop_with_empty_axes").unwrap_or(0) != 0 {
            return Some(Vec::new());
        }
        return Some((0..rank).collect());
    }
    let mut v: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Option<_>>()?;
    v.sort_unstable();
    v.dedup();
    Some(v)
}

fn reduce_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let s = shape_of(inputs, 0)?;
    let axes = reduce_axes(node, inputs, s.len())?;
    Some(reduce_dims(
        s,
        &axes,
        node.attr_int("keepdims").unwrap_or(1) != 0,
    ))
}

/// A shape vector input (1-D integers): its value when folded, else as many unknown sizes
/// as its (known) length.
pub(super) fn shape_vector(inputs: &[&ClassData], i: usize) -> Option<Shape> {
    if let Some(dims) = input_value(inputs, i).and_then(ConstValue::as_dims) {
        return Some(dims);
    }
    let len = shape_of(inputs, i)?;
    let [len] = len.as_slice() else {
        return None;
    };
    let len = usize::try_from(len.as_known()?).ok()?;
    // Sizes are bounded by MAX_CONST_ELEMS elsewhere; a rank beyond it is no real shape.
    (len <= crate::symbolic::MAX_CONST_ELEMS).then(|| vec![SymDim::unknown(); len])
}
