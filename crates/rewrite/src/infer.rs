//! Per-op inference of [`ClassData`]: element type, symbolic shape, folded small constants
//! and uniform ("every element equals c") values.
//!
//! Covers every op of the test models and the fused ops this crate emits; an op not listed
//! here gets no facts from inference (import still seeds its declared `value_info` type).
//! Folding follows ONNX semantics for the values it handles (scalars and shape vectors of at
//! most [`MAX_CONST_ELEMS`] elements); `f32` arithmetic is rounded to `f32` after each op so
//! folded scales equal what a runtime computes.

use std::sync::Arc;

use transfuse_ir::{DataType, Tensor};

use crate::analysis::{ClassData, ValueFacts};
use crate::lang::{AttrVal, OpNode};
use crate::symbolic::{ConstValue, MAX_CONST_ELEMS, Scalar, Shape, SymDim, product};
use crate::tensors::TensorTable;

/// The value of a tensor with at most [`MAX_CONST_ELEMS`] elements.
pub fn small_tensor_value(t: &Tensor) -> Option<ConstValue> {
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
pub const MAX_UNIFORM_SCAN: usize = 1 << 20;

/// The single value of a tensor whose elements are all bitwise equal, for tensors above
/// [`MAX_CONST_ELEMS`] (smaller ones get it from [`small_tensor_value`]). The byte scan
/// stops at the first differing element, so trained weights cost a few comparisons; only
/// a truly uniform tensor is decoded. `-0.0` next to `0.0` counts as not uniform.
pub fn large_tensor_uniform(t: &Tensor) -> Option<Scalar> {
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

/// Facts of one node's output(s) from its inputs' facts.
pub fn infer(node: &OpNode, inputs: &[&ClassData], tensors: &TensorTable) -> ClassData {
    let mut out = if node.outputs > 1 {
        let outputs = infer_multi(node, inputs);
        ClassData {
            outputs: outputs.map(Arc::from),
            ..ClassData::default()
        }
    } else {
        let mut d = infer_single(node, inputs, tensors).unwrap_or_default();
        if d.value.is_none() {
            d.value = fold(node, inputs, tensors, &d).map(Arc::new);
        }
        if let Some(v) = &d.value {
            if d.uniform.is_none() {
                d.uniform = v.uniform();
            }
            // A folded value fixes the shape too.
            if d.shape.is_none() {
                d.shape = Some(v.dims.iter().map(|&x| SymDim::known(x as i64)).collect());
            }
        }
        if d.uniform.is_none() {
            d.uniform = uniform(node, inputs, tensors);
        }
        d
    };
    let deterministic = !matches!(
        node.op.as_str(),
        "RandomNormal"
            | "RandomUniform"
            | "RandomNormalLike"
            | "RandomUniformLike"
            | "Multinomial"
            | "Bernoulli"
    );
    out.constant = deterministic
        && !inputs.is_empty()
        && inputs.iter().all(|i| i.constant)
        && node.domain.as_str() != crate::INTERNAL_DOMAIN;
    out
}

const ELEMENTWISE_BINARY: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "PRelu", "BitShift", "Sum", "Mean",
];
const COMPARISONS: &[&str] = &[
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "And",
    "Or",
    "Xor",
];
const UNARY_SAME: &[&str] = &[
    "Erf",
    "Tanh",
    "Sqrt",
    "Sigmoid",
    "Relu",
    "Neg",
    "Reciprocal",
    "Exp",
    "Log",
    "Abs",
    "Not",
    "Softmax",
    "LogSoftmax",
    "Identity",
    "Gelu",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Clip",
    "LeakyRelu",
    "Elu",
    "Selu",
    "HardSigmoid",
    "HardSwish",
    "Softplus",
    "Softsign",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Mish",
    "CumSum",
    "Dropout",
    "Celu",
    "ThresholdedRelu",
    "Shrink",
    "Hardmax",
    "LpNormalization",
    "MeanVarianceNormalization",
    "InstanceNormalization",
    "BatchNormalization",
    "LRN",
    "Trilu",
];

fn is_ms(node: &OpNode) -> bool {
    node.domain.as_str() == transfuse_ir::MS_DOMAIN
}

fn facts(dtype: Option<DataType>, shape: Option<Shape>) -> Option<ClassData> {
    Some(ClassData {
        dtype,
        shape,
        ..ClassData::default()
    })
}

fn input_value<'a>(inputs: &[&'a ClassData], i: usize) -> Option<&'a ConstValue> {
    inputs.get(i).and_then(|d| d.value.as_deref())
}

/// Integer list from attribute `name`, or else from the constant input `index` (the
/// attribute moved to an input in newer opsets).
pub fn ints_attr_or_input(
    node: &OpNode,
    inputs: &[&ClassData],
    name: &str,
    index: usize,
) -> Option<Vec<i64>> {
    if let Some(v) = node.attr_ints(name) {
        return Some(v.to_vec());
    }
    input_value(inputs, index)?.as_i64s()
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy-style broadcast of several shapes.
pub fn broadcast(shapes: &[&Shape]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.len()).max()?;
    let one = SymDim::known(1);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let mut dim: Option<SymDim> = None;
        for s in shapes {
            let off = rank - s.len();
            let d = if i < off { &one } else { &s[i - off] };
            dim = match dim {
                None => Some(d.clone()),
                Some(cur) if cur == *d || *d == one => Some(cur),
                Some(cur) if cur == one => Some(d.clone()),
                // Two different non-1 dims (possibly symbols that are equal at run time):
                // unknown.
                Some(_) => return None,
            };
        }
        out.push(dim.unwrap_or(SymDim::known(1)));
    }
    Some(out)
}

/// The facts of an omitted optional input: constant, with no type (nothing else looks so).
fn is_absent(d: &ClassData) -> bool {
    d.constant && d.dtype.is_none() && d.shape.is_none() && d.value.is_none()
}

fn shape_of<'a>(inputs: &[&'a ClassData], i: usize) -> Option<&'a Shape> {
    inputs.get(i)?.shape.as_ref()
}

fn dtype_of(inputs: &[&ClassData], i: usize) -> Option<DataType> {
    inputs.get(i)?.dtype
}

fn infer_single(node: &OpNode, inputs: &[&ClassData], tensors: &TensorTable) -> Option<ClassData> {
    let op = node.op.as_str();
    if !(node.domain.as_str().is_empty() || node.domain.as_str() == "ai.onnx" || is_ms(node)) {
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
        | "SimplifiedLayerNormalization" => {
            facts(dtype_of(inputs, 0), shape_of(inputs, 0).cloned())
        }
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
                    out[axis] = out[axis].add(&s[axis])?;
                }
                Some(out)
            });
            facts(dtype_of(inputs, 0), shape)
        }
        "Slice" => facts(dtype_of(inputs, 0), slice_shape(node, inputs)),
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
            facts(dtype, input_value(inputs, 0).and_then(ConstValue::as_dims))
        }
        "Expand" => {
            let target = input_value(inputs, 1).and_then(ConstValue::as_dims);
            let shape = shape_of(inputs, 0)
                .zip(target)
                .and_then(|(s, t)| broadcast(&[s, &t]));
            facts(dtype_of(inputs, 0), shape)
        }
        "Range" => {
            let len = range_len(inputs);
            facts(dtype_of(inputs, 0), len.map(|l| vec![l]))
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

fn infer_multi(node: &OpNode, inputs: &[&ClassData]) -> Option<Vec<ValueFacts>> {
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
fn shape_range(node: &OpNode, rank: usize) -> Option<(usize, usize)> {
    let r = rank as i64;
    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let start = clamp(node.attr_int("start").unwrap_or(0));
    let end = clamp(node.attr_int("end").unwrap_or(r));
    Some((start as usize, end.max(start) as usize))
}

fn reshape_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let target = input_value(inputs, 1)?.as_dims()?;
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
        let total = product(input?)?;
        let known: Vec<SymDim> = out.iter().flatten().cloned().collect();
        out[i] = Some(total.div_exact(&product(&known)?)?);
    }
    out.into_iter().collect()
}

/// Resolved `(start, end, step)` per sliced axis of a `Slice` node (attribute form before
/// opset 10, inputs after), or `None` when not constant.
fn slice_params(
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
fn slice_len(len: i64, start: i64, end: i64, step: i64) -> Option<(i64, i64)> {
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

/// For `Slice(x, starts=0, ends=[n], axes, steps=1)` with a symbolic `n`: `(axis, n)`.
fn symbolic_slice_ends(inputs: &[&ClassData], rank: usize) -> Option<Vec<(usize, SymDim)>> {
    let starts = input_value(inputs, 1)?.as_i64s()?;
    let ends = input_value(inputs, 2)?.as_dims()?;
    let axes = match inputs.get(3) {
        Some(d) if !is_absent(d) => d.value.as_ref()?.as_i64s()?,
        _ => (0..ends.len() as i64).collect(),
    };
    let steps_ok = match inputs.get(4) {
        Some(d) if !is_absent(d) => d.value.as_ref()?.as_i64s()?.iter().all(|&s| s == 1),
        _ => true,
    };
    if !steps_ok
        || starts.iter().any(|&s| s != 0)
        || axes.len() != ends.len()
        || ends.iter().all(|e| e.as_known().is_some())
    {
        return None;
    }
    axes.iter()
        .zip(ends)
        .map(|(&a, e)| Some((norm_axis(a, rank)?, e)))
        .collect()
}

/// `x[0:n]` with a symbolic `n` has `n` elements: exporters slice position tables to the
/// sequence length, which must not exceed the table for the model to run at all.
fn slice_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
    let s = shape_of(inputs, 0)?;
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

fn range_len(inputs: &[&ClassData]) -> Option<SymDim> {
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

fn reduce_dims(s: &Shape, axes: &[usize], keep: bool) -> Shape {
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
pub fn reduce_axes(node: &OpNode, inputs: &[&ClassData], rank: usize) -> Option<Vec<usize>> {
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

fn conv_shape(node: &OpNode, inputs: &[&ClassData]) -> Option<Shape> {
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
    let auto_pad = node.attr_str("auto_pad").unwrap_or_default();
    if !(auto_pad.is_empty() || auto_pad == "NOTSET")
        || kernel.len() != spatial
        || strides.len() != spatial
        || dil.len() != spatial
        || pads.len() != 2 * spatial
    {
        return None;
    }
    let mut out = vec![x[0].clone(), w[0].clone()];
    for i in 0..spatial {
        let len = x[2 + i].as_known()?;
        let eff = dil[i] * (kernel[i] - 1) + 1;
        if strides[i] <= 0 {
            return None;
        }
        out.push(SymDim::known(
            (len + pads[i] + pads[i + spatial] - eff) / strides[i] + 1,
        ));
    }
    Some(out)
}

// ----- folding of small constants -----

/// Rounds to the element type.
fn round_to(dtype: Option<DataType>, v: f64) -> f64 {
    if dtype == Some(DataType::Float) {
        v as f32 as f64
    } else {
        v
    }
}

fn unary_scalar(op: &str, dtype: Option<DataType>, x: &Scalar) -> Option<Scalar> {
    let f = |v: f64| Some(Scalar::Float(round_to(dtype, v)));
    match (op, x) {
        ("Identity", x) => Some(x.clone()),
        ("Neg", Scalar::Int(d)) => d.neg().map(Scalar::Int),
        ("Neg", Scalar::Float(v)) => f(-v),
        ("Sqrt", Scalar::Float(v)) => f(v.sqrt()),
        ("Reciprocal", Scalar::Float(v)) => f(1.0 / v),
        ("Exp", Scalar::Float(v)) => f(v.exp()),
        ("Log", Scalar::Float(v)) => f(v.ln()),
        ("Abs", Scalar::Float(v)) => f(v.abs()),
        ("Abs", Scalar::Int(d)) => d
            .as_known()?
            .checked_abs()
            .map(|v| Scalar::Int(SymDim::known(v))),
        ("Erf", Scalar::Float(_)) => None,
        ("Tanh", Scalar::Float(v)) => f(v.tanh()),
        ("Sigmoid", Scalar::Float(v)) => f(1.0 / (1.0 + (-v).exp())),
        ("Relu", Scalar::Float(v)) => f(v.max(0.0)),
        ("Floor", Scalar::Float(v)) => f(v.floor()),
        ("Ceil", Scalar::Float(v)) => f(v.ceil()),
        ("Not", Scalar::Int(d)) => d
            .as_known()
            .map(|v| Scalar::Int(SymDim::known(i64::from(v == 0)))),
        ("IsNaN", Scalar::Float(v)) => Some(Scalar::Int(SymDim::known(i64::from(v.is_nan())))),
        ("IsNaN", Scalar::Int(_)) => Some(Scalar::Int(SymDim::known(0))),
        ("IsInf", Scalar::Float(v)) => Some(Scalar::Int(SymDim::known(i64::from(v.is_infinite())))),
        _ => None,
    }
}

fn cast_scalar(to: DataType, x: &Scalar) -> Option<Scalar> {
    if to == DataType::Bool {
        return match x {
            Scalar::Int(d) => Some(Scalar::Int(SymDim::known(i64::from(d.as_known()? != 0)))),
            Scalar::Float(v) => Some(Scalar::Int(SymDim::known(i64::from(*v != 0.0)))),
        };
    }
    if to.is_float() {
        return Some(Scalar::Float(round_to(Some(to), x.as_f64()?)));
    }
    match x {
        Scalar::Int(d) => Some(Scalar::Int(d.clone())),
        Scalar::Float(v) if v.is_finite() => Some(Scalar::Int(SymDim::known(v.trunc() as i64))),
        Scalar::Float(_) => None,
    }
}

/// A binary elementwise op on scalars, with ONNX semantics for the element type.
pub fn binary_scalar(op: &str, dtype: Option<DataType>, a: &Scalar, b: &Scalar) -> Option<Scalar> {
    let boolean = |v: bool| Some(Scalar::Int(SymDim::known(i64::from(v))));
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => match op {
            "Add" => x.add(y).map(Scalar::Int),
            "Sub" => x.add(&y.neg()?).map(Scalar::Int),
            "Mul" => x.mul(y).map(Scalar::Int),
            "Div" => match (x.as_known(), y.as_known()) {
                // Integer division truncates toward zero (C semantics, as runtimes do).
                (Some(p), Some(q)) => p.checked_div(q).map(|v| Scalar::Int(SymDim::known(v))),
                _ => x.div_exact(y).map(Scalar::Int),
            },
            "Max" => Some(Scalar::Int(SymDim::known(x.as_known()?.max(y.as_known()?)))),
            "Min" => Some(Scalar::Int(SymDim::known(x.as_known()?.min(y.as_known()?)))),
            "Mod" => {
                let (p, q) = (x.as_known()?, y.as_known()?);
                // Integer Mod takes the divisor's sign (Python semantics).
                if q == 0 {
                    return None;
                }
                let r = p.checked_rem(q)?;
                Some(Scalar::Int(SymDim::known(
                    if r != 0 && ((r < 0) != (q < 0)) {
                        r + q
                    } else {
                        r
                    },
                )))
            }
            "Equal" => {
                if x == y {
                    boolean(true)
                } else if x.differs_from(y) {
                    boolean(false)
                } else {
                    boolean(x.as_known()? == y.as_known()?)
                }
            }
            "Greater" => boolean(x.as_known()? > y.as_known()?),
            "GreaterOrEqual" => boolean(x.as_known()? >= y.as_known()?),
            "Less" => boolean(x.as_known()? < y.as_known()?),
            "LessOrEqual" => boolean(x.as_known()? <= y.as_known()?),
            "And" => boolean(x.as_known()? != 0 && y.as_known()? != 0),
            "Or" => boolean(x.as_known()? != 0 || y.as_known()? != 0),
            "Xor" => boolean((x.as_known()? != 0) != (y.as_known()? != 0)),
            "Pow" => {
                let (p, q) = (x.as_known()?, y.as_known()?);
                u32::try_from(q)
                    .ok()
                    .and_then(|q| p.checked_pow(q))
                    .map(|v| Scalar::Int(SymDim::known(v)))
            }
            _ => None,
        },
        _ => {
            let (x, y) = (a.as_f64()?, b.as_f64()?);
            let f = |v: f64| Some(Scalar::Float(round_to(dtype, v)));
            match op {
                "Add" => f(x + y),
                "Sub" => f(x - y),
                "Mul" => f(x * y),
                "Div" => f(x / y),
                "Pow" => f(x.powf(y)),
                "Max" => f(x.max(y)),
                "Min" => f(x.min(y)),
                "Equal" => boolean(x == y),
                "Greater" => boolean(x > y),
                "GreaterOrEqual" => boolean(x >= y),
                "Less" => boolean(x < y),
                "LessOrEqual" => boolean(x <= y),
                _ => None,
            }
        }
    }
}

/// Index maps for broadcasting small constants: output dims and, per input, the source index
/// of every output element.
fn broadcast_indices(dims: &[&[usize]]) -> Option<(Vec<usize>, Vec<Vec<usize>>)> {
    let rank = dims.iter().map(|d| d.len()).max()?;
    let mut out = vec![1usize; rank];
    for d in dims {
        let off = rank - d.len();
        for (i, &x) in d.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = x;
            } else if x != 1 && x != *o {
                return None;
            }
        }
    }
    let total: usize = out.iter().product();
    if total > MAX_CONST_ELEMS {
        return None;
    }
    let mut maps = Vec::with_capacity(dims.len());
    for d in dims {
        let off = rank - d.len();
        let mut map = Vec::with_capacity(total);
        for flat in 0..total {
            let mut rem = flat;
            let mut src = 0usize;
            let mut stride = 1usize;
            for axis in (0..rank).rev() {
                let coord = rem % out[axis];
                rem /= out[axis];
                if axis >= off {
                    let size = d[axis - off];
                    if size != 1 {
                        src += coord * stride;
                    }
                    stride *= size;
                }
            }
            map.push(src);
        }
        maps.push(map);
    }
    Some((out, maps))
}

fn elementwise(
    values: &[&ConstValue],
    f: impl Fn(&[&Scalar]) -> Option<Scalar>,
) -> Option<ConstValue> {
    let dims: Vec<&[usize]> = values.iter().map(|v| v.dims.as_slice()).collect();
    let (out, maps) = broadcast_indices(&dims)?;
    let total: usize = out.iter().product();
    let mut elems = Vec::with_capacity(total);
    for i in 0..total {
        let args: Vec<&Scalar> = values
            .iter()
            .zip(&maps)
            .map(|(v, m)| v.elems.get(m[i]))
            .collect::<Option<_>>()?;
        elems.push(f(&args)?);
    }
    Some(ConstValue { dims: out, elems })
}

fn reshaped(v: &ConstValue, shape: &Shape) -> Option<ConstValue> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| d.as_known().and_then(|x| usize::try_from(x).ok()))
        .collect::<Option<_>>()?;
    (dims.iter().product::<usize>() == v.elems.len()).then(|| ConstValue {
        dims,
        elems: v.elems.clone(),
    })
}

fn fold(
    node: &OpNode,
    inputs: &[&ClassData],
    _tensors: &TensorTable,
    facts: &ClassData,
) -> Option<ConstValue> {
    if !(node.domain.as_str().is_empty() || node.domain.as_str() == "ai.onnx") {
        return None;
    }
    let op = node.op.as_str();
    let v = |i: usize| input_value(inputs, i);
    match op {
        "Shape" => {
            let s = shape_of(inputs, 0)?;
            let (start, end) = shape_range(node, s.len())?;
            Some(ConstValue::vector(
                s[start..end].iter().cloned().map(Scalar::Int).collect(),
            ))
        }
        "Size" => Some(ConstValue::scalar(Scalar::Int(product(shape_of(
            inputs, 0,
        )?)?))),
        "Identity" | "Reshape" | "Unsqueeze" | "Squeeze" | "Flatten" => {
            reshaped(v(0)?, facts.shape.as_ref()?)
        }
        "Cast" => {
            let to = DataType::from_code(i32::try_from(node.attr_int("to")?).ok()?);
            let x = v(0)?;
            Some(ConstValue {
                dims: x.dims.clone(),
                elems: x
                    .elems
                    .iter()
                    .map(|e| cast_scalar(to, e))
                    .collect::<Option<_>>()?,
            })
        }
        "Concat" => {
            let parts: Vec<&ConstValue> = (0..inputs.len()).map(v).collect::<Option<_>>()?;
            if parts.iter().any(|p| p.dims.len() != 1) {
                return None;
            }
            let elems: Vec<Scalar> = parts.iter().flat_map(|p| p.elems.iter().cloned()).collect();
            (elems.len() <= MAX_CONST_ELEMS).then(|| ConstValue::vector(elems))
        }
        "Gather" => {
            let data = v(0)?;
            let idx = v(1)?;
            if data.dims.len() != 1 {
                return None;
            }
            let axis = norm_axis(node.attr_int("axis").unwrap_or(0), 1)?;
            let _ = axis;
            let n = data.elems.len() as i64;
            let elems: Vec<Scalar> = idx
                .as_i64s()?
                .into_iter()
                .map(|i| {
                    let i = if i < 0 { i + n } else { i };
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| data.elems.get(i).cloned())
                })
                .collect::<Option<_>>()?;
            Some(ConstValue {
                dims: idx.dims.clone(),
                elems,
            })
        }
        "Slice" => {
            let data = v(0)?;
            if data.dims.len() != 1 {
                return None;
            }
            let params = slice_params(node, inputs, 1)?;
            let [(_, start, end, step)] = params.as_slice() else {
                return None;
            };
            let len = data.elems.len() as i64;
            let (s, count) = slice_len(len, *start, *end, *step)?;
            let elems: Vec<Scalar> = (0..count)
                .map(|k| {
                    usize::try_from(s + k * step)
                        .ok()
                        .and_then(|i| data.elems.get(i).cloned())
                })
                .collect::<Option<_>>()?;
            Some(ConstValue::vector(elems))
        }
        "ConstantOfShape" => {
            let dims = facts.shape.as_ref()?;
            let fill = uniform(node, inputs, _tensors)?;
            let total: i64 = dims
                .iter()
                .map(SymDim::as_known)
                .try_fold(1i64, |acc, d| acc.checked_mul(d?))?;
            let total = usize::try_from(total)
                .ok()
                .filter(|&t| t <= MAX_CONST_ELEMS)?;
            reshaped(&ConstValue::vector(vec![fill; total]), dims)
        }
        "Expand" => {
            let x = v(0)?;
            let dims = facts.shape.as_ref()?;
            let target: Vec<usize> = dims
                .iter()
                .map(|d| d.as_known().and_then(|x| usize::try_from(x).ok()))
                .collect::<Option<_>>()?;
            let ones = ConstValue {
                dims: target.clone(),
                elems: vec![Scalar::Int(SymDim::known(0)); target.iter().product()],
            };
            elementwise(&[x, &ones], |a| Some(a[0].clone()))
        }
        "Range" => {
            let len = range_len(inputs)?.as_known()?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_CONST_ELEMS)?;
            let start = v(0)?.single()?.clone();
            let delta = v(2)?.single()?.clone();
            let dtype = facts.dtype;
            let mut elems = Vec::with_capacity(len);
            let mut cur = start;
            for _ in 0..len {
                elems.push(cur.clone());
                cur = binary_scalar("Add", dtype, &cur, &delta)?;
            }
            Some(ConstValue::vector(elems))
        }
        "Where" => elementwise(&[v(0)?, v(1)?, v(2)?], |a| {
            let c = a[0].as_i64()?;
            Some(if c != 0 { a[1].clone() } else { a[2].clone() })
        }),
        "Transpose" => {
            let x = v(0)?;
            (x.dims.len() <= 1 || x.elems.len() <= 1).then(|| ConstValue {
                dims: x.dims.iter().rev().copied().collect(),
                elems: x.elems.clone(),
            })
        }
        _ if ELEMENTWISE_BINARY.contains(&op) || COMPARISONS.contains(&op) => {
            if inputs.len() != 2 {
                return None;
            }
            let dtype = dtype_of(inputs, 0);
            elementwise(&[v(0)?, v(1)?], |a| binary_scalar(op, dtype, a[0], a[1]))
        }
        _ => {
            let x = v(0)?;
            if inputs.len() != 1 {
                return None;
            }
            let dtype = dtype_of(inputs, 0);
            Some(ConstValue {
                dims: x.dims.clone(),
                elems: x
                    .elems
                    .iter()
                    .map(|e| unary_scalar(op, dtype, e))
                    .collect::<Option<_>>()?,
            })
        }
    }
}

/// "Every element equals c" through ops that keep or combine uniform tensors.
fn uniform(node: &OpNode, inputs: &[&ClassData], tensors: &TensorTable) -> Option<Scalar> {
    if !(node.domain.as_str().is_empty() || node.domain.as_str() == "ai.onnx") {
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
