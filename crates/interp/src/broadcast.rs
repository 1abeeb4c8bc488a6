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
    // One operand contiguous with the output shape, the other a contiguous block that
    // repeats along the leading dims (a bias row, a scalar): plain slice loops.
    if a.shape() == shape.as_slice()
        && let (Some(sa), Some(block)) = (a.as_slice(), repeating_block(b, &shape))
    {
        let data = blocks_map(sa, block, &f);
        return ArrayD::from_shape_vec(IxDyn(&shape), data)
            .map_err(|e| OpError::shape(e.to_string()));
    }
    if b.shape() == shape.as_slice()
        && let (Some(sb), Some(block)) = (b.as_slice(), repeating_block(a, &shape))
    {
        let data = blocks_map(sb, block, |y, x| f(x, y));
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
    let shape = a.shape().to_vec();
    if let Some(block) = repeating_block(b, &shape)
        && let Some(sa) = a.as_slice_mut()
    {
        blocks_assign(sa, block, f);
        return true;
    }
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

/// `b`'s elements when `b` is contiguous and, leading 1-dims aside, equals the trailing
/// dims of `shape`: then broadcasting `b` to `shape` repeats this block.
fn repeating_block<'b, B>(b: &'b ArrayD<B>, shape: &[usize]) -> Option<&'b [B]> {
    let dims: &[usize] = b.shape();
    let first = dims.iter().position(|&d| d != 1).unwrap_or(dims.len());
    let core = &dims[first..];
    if !shape.ends_with(core) || b.is_empty() {
        return None;
    }
    b.as_slice()
}

/// Elements per parallel task in the block loops.
const TASK_ELEMENTS: usize = 1 << 13;

/// `out[i] = f(x[i], block[i % block.len()])`.
fn blocks_map<A, B, O, F>(x: &[A], block: &[B], f: F) -> Vec<O>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync,
    O: Send,
    F: Fn(A, B) -> O + Send + Sync,
{
    let n = block.len().max(1);
    if let [q] = block {
        let q = *q;
        return if x.len() >= PARALLEL_ELEMENTS {
            x.par_iter().map(|&p| f(p, q)).collect()
        } else {
            x.iter().map(|&p| f(p, q)).collect()
        };
    }
    if x.len() >= PARALLEL_ELEMENTS {
        let task = n * TASK_ELEMENTS.div_ceil(n);
        x.par_chunks(task)
            .flat_map_iter(|chunk| {
                chunk
                    .chunks(n)
                    .flat_map(|c| c.iter().zip(block).map(|(&p, &q)| f(p, q)))
            })
            .collect()
    } else {
        x.chunks(n)
            .flat_map(|c| c.iter().zip(block).map(|(&p, &q)| f(p, q)))
            .collect()
    }
}

/// `x[i] = f(x[i], block[i % block.len()])`.
fn blocks_assign<T, B, F>(x: &mut [T], block: &[B], f: F)
where
    T: Copy + Send + Sync,
    B: Copy + Send + Sync,
    F: Fn(T, B) -> T + Send + Sync,
{
    let n = block.len().max(1);
    if let [q] = block {
        let q = *q;
        if x.len() >= PARALLEL_ELEMENTS {
            x.par_iter_mut().for_each(|p| *p = f(*p, q));
        } else {
            x.iter_mut().for_each(|p| *p = f(*p, q));
        }
        return;
    }
    let apply = |chunk: &mut [T]| {
        for c in chunk.chunks_mut(n) {
            for (p, &q) in c.iter_mut().zip(block) {
                *p = f(*p, q);
            }
        }
    };
    if x.len() >= PARALLEL_ELEMENTS {
        x.par_chunks_mut(n * TASK_ELEMENTS.div_ceil(n))
            .for_each(apply);
    } else {
        apply(x);
    }
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
