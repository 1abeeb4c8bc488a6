//! Folding of small constants ([`MAX_CONST_ELEMS`] elements at most) with ONNX semantics.

use transfuse_ir::DataType;

use super::shape::shape_range;
use super::slice::{range_len, slice_len, slice_params};
use super::uniform::uniform;
use super::{COMPARISONS, ELEMENTWISE_BINARY, dtype_of, input_value, norm_axis, shape_of};
use crate::analysis::ClassData;
use crate::lang::{OpNode, is_default_domain};
use crate::symbolic::{ConstValue, MAX_CONST_ELEMS, Scalar, Shape, SymDim, product};
use crate::tensors::TensorTable;

/// Rounds to the element type.
fn round_to(dtype: Option<DataType>, v: f64) -> f64 {
    if dtype == Some(DataType::Float) {
        v as f32 as f64
    } else {
        v
    }
}

pub(super) fn unary_scalar(op: &str, dtype: Option<DataType>, x: &Scalar) -> Option<Scalar> {
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

pub(super) fn cast_scalar(to: DataType, x: &Scalar) -> Option<Scalar> {
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
pub(super) fn binary_scalar(
    op: &str,
    dtype: Option<DataType>,
    a: &Scalar,
    b: &Scalar,
) -> Option<Scalar> {
    let boolean = |v: bool| Some(Scalar::Int(SymDim::known(i64::from(v))));
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => match op {
            "Add" => x.add(y).map(Scalar::Int),
            "Sub" => x.add(&y.neg()?).map(Scalar::Int),
            "Mul" => x.mul(y).map(Scalar::Int),
            "Div" => match (x.as_known(), y.as_known()) {
                // Integer division truncates toward zero (C semantics, as runtimes do).
                (Some(p), Some(q)) => p.checked_div(q).map(|v| Scalar::Int(SymDim::known(v))),
                // A size divided by a positive integer is a fixed nonnegative integer even
                // when it is no monomial: an unknown size.
                _ => x.div_exact(y).map(Scalar::Int).or_else(|| {
                    (x.as_known().is_none() && x.differs_from(&SymDim::known(-1)))
                        .then_some(())
                        .and(y.as_known().filter(|&q| q > 0))
                        .map(|_| Scalar::Int(SymDim::unknown()))
                }),
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
    let total = capped_numel(&out)?;
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
    let total = capped_numel(&out)?;
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

/// The element count of `dims` when it is at most [`MAX_CONST_ELEMS`]: the product is checked
/// (a wrapped count would pass as small) and the cap applies before anything is allocated.
pub(super) fn capped_numel(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_CONST_ELEMS)
}

/// The dims of `shape` when all are known and non-negative and their product is at most
/// [`MAX_CONST_ELEMS`].
pub(super) fn small_dims(shape: &Shape) -> Option<Vec<usize>> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| d.as_known().and_then(|x| usize::try_from(x).ok()))
        .collect::<Option<_>>()?;
    capped_numel(&dims)?;
    Some(dims)
}

fn reshaped(v: &ConstValue, shape: &Shape) -> Option<ConstValue> {
    let dims = small_dims(shape)?;
    (capped_numel(&dims)? == v.elems.len()).then(|| ConstValue {
        dims,
        elems: v.elems.clone(),
    })
}

pub(super) fn fold(
    node: &OpNode,
    inputs: &[&ClassData],
    _tensors: &TensorTable,
    facts: &ClassData,
) -> Option<ConstValue> {
    if !is_default_domain(node.domain.as_str()) {
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
            let total = parts
                .iter()
                .try_fold(0usize, |acc, p| acc.checked_add(p.elems.len()))?;
            if total > MAX_CONST_ELEMS {
                return None;
            }
            Some(ConstValue::vector(
                parts.iter().flat_map(|p| p.elems.iter().cloned()).collect(),
            ))
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
            // Any rank: exporters reverse a pads matrix ([k, 2], step -1) before F.pad.
            let data = v(0)?;
            let rank = data.dims.len();
            let mut picks: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
            for (axis, start, end, step) in slice_params(node, inputs, rank)? {
                let len = i64::try_from(data.dims[axis]).ok()?;
                let (first, count) = slice_len(len, start, end, step)?;
                picks[axis] = (0..count)
                    .map(|k| {
                        k.checked_mul(step)
                            .and_then(|o| o.checked_add(first))
                            .and_then(|i| usize::try_from(i).ok())
                    })
                    .collect::<Option<_>>()?;
            }
            let axes: Vec<usize> = (0..rank).collect();
            rearranged(data, &axes, &picks)
        }
        "ConstantOfShape" => {
            let dims = facts.shape.as_ref()?;
            let total = capped_numel(&small_dims(dims)?)?;
            let fill = uniform(node, inputs, _tensors)?;
            reshaped(&ConstValue::vector(vec![fill; total]), dims)
        }
        "Expand" => {
            let x = v(0)?;
            let dims = facts.shape.as_ref()?;
            // The cap applies before the index tensor is allocated.
            let target = small_dims(dims)?;
            let total = capped_numel(&target)?;
            let ones = ConstValue {
                dims: target,
                elems: vec![Scalar::Int(SymDim::known(0)); total],
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
            let rank = x.dims.len();
            let perm: Vec<usize> = match node.attr_ints("perm") {
                Some(p) => p
                    .iter()
                    .map(|&a| usize::try_from(a).ok().filter(|&a| a < rank))
                    .collect::<Option<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut seen = vec![false; rank];
            if perm.len() != rank || perm.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
                return None;
            }
            let picks: Vec<Vec<usize>> = perm.iter().map(|&a| (0..x.dims[a]).collect()).collect();
            rearranged(x, &perm, &picks)
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

/// The value whose output axis `i` runs over the positions `picks[i]` of `x`'s axis
/// `axes[i]` (row-major): a transpose when `axes` is a permutation, a strided slice when it
/// is the identity. `axes` is a permutation of `x`'s axes and every pick is in range.
fn rearranged(x: &ConstValue, axes: &[usize], picks: &[Vec<usize>]) -> Option<ConstValue> {
    let mut strides = vec![1usize; x.dims.len()];
    for a in (0..x.dims.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1].checked_mul(x.dims[a + 1])?;
    }
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let total = capped_numel(&dims)?;
    let mut elems = Vec::with_capacity(total);
    for flat in 0..total {
        let (mut rest, mut source) = (flat, 0usize);
        for i in (0..dims.len()).rev() {
            let position = picks[i][rest % dims[i]];
            rest /= dims[i];
            source += position * strides[axes[i]];
        }
        elems.push(x.elems.get(source)?.clone());
    }
    Some(ConstValue { dims, elems })
}
