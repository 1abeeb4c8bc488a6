//! Per-op inference of [`ClassData`]: element type, symbolic shape, folded small constants
//! and uniform ("every element equals c") values.
//!
//! Covers every op of the test models and the fused ops this crate emits; an op not listed
//! here gets no facts from inference (import still seeds its declared `value_info` type).
//! Folding follows ONNX semantics for the values it handles (scalars and shape vectors of at
//! most [`MAX_CONST_ELEMS`] elements); `f32` arithmetic is rounded to `f32` after each op so
//! folded scales equal what a runtime computes.

mod fold;
#[cfg(test)]
mod fold_tests;
#[cfg(test)]
mod partial_tests;
mod shape;
mod slice;
mod spatial;
#[cfg(test)]
mod tests;
mod uniform;

use std::sync::Arc;

use transfuse_ir::DataType;

use crate::analysis::ClassData;
use crate::lang::OpNode;
use crate::symbolic::{ConstValue, Scalar, Shape, SymDim};
use crate::tensors::TensorTable;

use fold::fold;
use shape::{infer_multi, infer_single};
use uniform::uniform;

pub(crate) use shape::reduce_axes;
pub(crate) use uniform::{large_tensor_uniform, small_tensor_value};

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

/// Renames every unknown-size placeholder ([`SymDim::unknown`]) in `data` to a symbol
/// unique to class `class` and its position: an unknown dim stays distinct from every other
/// dim (so no condition can take two unknown sizes for equal), while the class's own uses
/// of it (`Shape` of the value, arithmetic on it) keep referring to the same size.
pub(crate) fn name_unknowns(data: &mut ClassData, class: usize) {
    fn rename(dims: &mut [SymDim], class: usize, prefix: &str) {
        for (i, d) in dims.iter_mut().enumerate() {
            if d.is_unknown_placeholder() {
                *d = SymDim::unknown_named(class, &format!("{prefix}{i}"));
            }
        }
    }
    if let Some(shape) = data.shape.as_mut() {
        rename(shape, class, "d");
    }
    let value_has_unknown = data.value.as_ref().is_some_and(|v| {
        v.elems
            .iter()
            .any(|e| matches!(e, Scalar::Int(d) if d.is_unknown_placeholder()))
    });
    if value_has_unknown {
        if let Some(v) = data.value.as_mut() {
            let v = Arc::make_mut(v);
            for (i, e) in v.elems.iter_mut().enumerate() {
                if let Scalar::Int(d) = e
                    && d.is_unknown_placeholder()
                {
                    *d = SymDim::unknown_named(class, &format!("v{i}"));
                }
            }
        }
        // A value with an unknown element is not uniform as far as anyone can tell.
        data.uniform = None;
    }
    if let Some(outputs) = data.outputs.as_ref() {
        let any = outputs.iter().any(|o| {
            o.shape
                .as_ref()
                .is_some_and(|s| s.iter().any(SymDim::is_unknown_placeholder))
        });
        if any {
            let mut renamed: Vec<crate::analysis::ValueFacts> = outputs.to_vec();
            for (k, o) in renamed.iter_mut().enumerate() {
                if let Some(s) = o.shape.as_mut() {
                    rename(s, class, &format!("o{k}d"));
                }
            }
            data.outputs = Some(Arc::from(renamed));
        }
    }
}

pub(super) const ELEMENTWISE_BINARY: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "PRelu", "BitShift", "Sum", "Mean",
];
pub(super) const COMPARISONS: &[&str] = &[
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "And",
    "Or",
    "Xor",
];
pub(super) const UNARY_SAME: &[&str] = &[
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

pub(super) fn is_ms(node: &OpNode) -> bool {
    node.domain.as_str() == transfuse_ir::MS_DOMAIN
}

pub(super) fn facts(dtype: Option<DataType>, shape: Option<Shape>) -> Option<ClassData> {
    Some(ClassData {
        dtype,
        shape,
        ..ClassData::default()
    })
}

pub(super) fn input_value<'a>(inputs: &[&'a ClassData], i: usize) -> Option<&'a ConstValue> {
    inputs.get(i).and_then(|d| d.value.as_deref())
}

/// Integer list from attribute `name`, or else from the constant input `index` (the
/// attribute moved to an input in newer opsets).
pub(crate) fn ints_attr_or_input(
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
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy-style broadcast of several shapes.
pub(crate) fn broadcast(shapes: &[&Shape]) -> Option<Shape> {
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
                // Two different non-1 dims: at run time they are equal, or one of them is 1.
                // A known one (not 1) is then the result; two symbols give an unknown size.
                Some(cur) => match (cur.as_known(), d.as_known()) {
                    (Some(_), _) => Some(cur),
                    (None, Some(_)) => Some(d.clone()),
                    (None, None) => Some(SymDim::unknown()),
                },
            };
        }
        out.push(dim.unwrap_or(SymDim::known(1)));
    }
    Some(out)
}

/// The facts of an omitted optional input: constant, with no type (nothing else looks so).
pub(super) fn is_absent(d: &ClassData) -> bool {
    d.constant && d.dtype.is_none() && d.shape.is_none() && d.value.is_none()
}

pub(super) fn shape_of<'a>(inputs: &[&'a ClassData], i: usize) -> Option<&'a Shape> {
    inputs.get(i)?.shape.as_ref()
}

pub(super) fn dtype_of(inputs: &[&ClassData], i: usize) -> Option<DataType> {
    inputs.get(i)?.dtype
}
