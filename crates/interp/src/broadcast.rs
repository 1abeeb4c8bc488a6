//! Numpy-style broadcasting and the element-wise loops built on it.
//!
//! Loops over large arrays run in parallel on rayon's pool; contiguous same-shape operands
//! take a plain slice loop.

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use rayon::prelude::*;

use crate::error::{OpError, OpResult};

/// Element count from which element-wise loops run in parallel.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 15;

/// The numpy broadcast of two shapes (align right; each pair of dims equal or one of them 1).
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, o) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OpError::shape(format!(
                    "shapes {a:?} and {b:?} do not broadcast"
                )));
            }
        };
    }
    Ok(out)
}

/// The broadcast of several shapes.
pub(crate) fn broadcast_all(shapes: &[&[usize]]) -> OpResult<Vec<usize>> {
    shapes
        .iter()
        .try_fold(Vec::new(), |acc, s| broadcast_shapes(&acc, s))
}

/// Dim `k` counted from the right (0 = last); 1 past the rank.
fn dim_from_right(shape: &[usize], k: usize) -> usize {
    if k < shape.len() {
        shape[shape.len() - 1 - k]
    } else {
        1
    }
}

/// A view of `a` broadcast to `shape`.
pub(crate) fn view_as<'a, T>(a: &'a ArrayD<T>, shape: &[usize]) -> OpResult<ArrayViewD<'a, T>> {
    a.broadcast(IxDyn(shape))
        .ok_or_else(|| OpError::shape(format!("cannot broadcast {:?} to {:?}", a.shape(), shape)))
}

/// `f(a, b)` element-wise with broadcasting.
pub(crate) fn zip_map<A, B, O, F>(a: &ArrayD<A>, b: &ArrayD<B>, f: F) -> OpResult<ArrayD<O>>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync,
    O: Send,
    F: Fn(A, B) -> O + Send + Sync,
{
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    crate::ops::check_size(&shape)?;
    let len: usize = shape.iter().product();
    if a.shape() == shape.as_slice()
        && b.shape() == shape.as_slice()
        && let (Some(sa), Some(sb)) = (a.as_slice(), b.as_slice())
    {
        let data: Vec<O> = if len >= PARALLEL_ELEMENTS {
            sa.par_iter()
                .zip(sb.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect()
        } else {
            sa.iter().zip(sb).map(|(&x, &y)| f(x, y)).collect()
        };
        return ArrayD::from_shape_vec(IxDyn(&shape), data)
            .map_err(|e| OpError::shape(e.to_string()));
    }
    let av = view_as(a, &shape)?;
    let bv = view_as(b, &shape)?;
    let zip = Zip::from(&av).and(&bv);
    Ok(if len >= PARALLEL_ELEMENTS {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    })
}

/// `a = f(a, b)` in place, when `b` broadcasts to `a`'s shape; returns `false` (leaving `a`
/// untouched) when it does not.
pub(crate) fn zip_assign<T, B, F>(a: &mut ArrayD<T>, b: &ArrayD<B>, f: F) -> bool
where
    T: Copy + Send + Sync,
    B: Copy + Send + Sync,
    F: Fn(T, B) -> T + Send + Sync,
{
    let Some(bv) = b.broadcast(a.raw_dim()) else {
        return false;
    };
    let zip = Zip::from(a.view_mut()).and(&bv);
    if zip.size() >= PARALLEL_ELEMENTS {
        zip.par_for_each(|x, &y| *x = f(*x, y));
    } else {
        zip.for_each(|x, &y| *x = f(*x, y));
    }
    true
}

/// `f(a)` element-wise.
pub(crate) fn map<A, O, F>(a: &ArrayD<A>, f: F) -> ArrayD<O>
where
    A: Copy + Send + Sync,
    O: Send,
    F: Fn(A) -> O + Send + Sync,
{
    if a.len() >= PARALLEL_ELEMENTS {
        if let Some(s) = a.as_slice() {
            let data: Vec<O> = s.par_iter().map(|&x| f(x)).collect();
            if let Ok(out) = ArrayD::from_shape_vec(a.raw_dim(), data) {
                return out;
            }
            // Unreachable: the data has exactly a.len() elements. Fall through to the plain loop.
        }
        Zip::from(a).par_map_collect(|&x| f(x))
    } else {
        a.map(|&x| f(x))
    }
}

/// `a = f(a)` element-wise, in place.
pub(crate) fn map_assign<T, F>(a: &mut ArrayD<T>, f: F)
where
    T: Copy + Send + Sync,
    F: Fn(T) -> T + Send + Sync,
{
    if a.len() >= PARALLEL_ELEMENTS {
        a.par_mapv_inplace(f);
    } else {
        a.mapv_inplace(f);
    }
}
