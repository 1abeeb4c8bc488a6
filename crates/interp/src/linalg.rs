//! Matrix products: one GEMM entry point (ndarray's `general_mat_mul`, which uses the
//! `matrixmultiply` kernels for f32/f64) split over rayon's threads, and numpy-style
//! batched matmul on top of it.

use ndarray::{
    ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn, LinalgScalar,
    linalg::general_mat_mul,
};
use rayon::prelude::*;

use crate::broadcast::broadcast_shapes;
use crate::error::{OpError, OpResult};

/// Multiply-adds from which one GEMM is split over threads.
const PARALLEL_FLOPS: usize = 1 << 21;
/// The narrowest column (or row) block a split GEMM hands one task.
const MIN_BLOCK: usize = 64;

/// `c = alpha * a·b + beta * c`.
///
/// Splits large products into column (or row) blocks run on rayon's pool, unless already
/// on a rayon worker (then the caller parallelizes at a coarser level).
pub(crate) fn gemm<T>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
) where
    T: LinalgScalar + Send + Sync,
{
    let (m, k) = a.dim();
    let n = b.dim().1;
    let threads = rayon::current_num_threads();
    let big = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_FLOPS;
    if !big || threads < 2 || rayon::current_thread_index().is_some() {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    // Two blocks per thread balance cores that are shared with other work.
    let wanted = 2 * threads;
    if n >= m && n >= 2 * MIN_BLOCK {
        let block = n.div_ceil(wanted.min(n / MIN_BLOCK));
        let pairs: Vec<_> = c
            .axis_chunks_iter_mut(Axis(1), block)
            .zip(b.axis_chunks_iter(Axis(1), block))
            .collect();
        pairs
            .into_par_iter()
            .for_each(|(mut cb, bb)| general_mat_mul(alpha, &a, &bb, beta, &mut cb));
    } else if m >= 2 * MIN_BLOCK {
        let block = m.div_ceil(wanted.min(m / MIN_BLOCK));
        let pairs: Vec<_> = c
            .axis_chunks_iter_mut(Axis(0), block)
            .zip(a.axis_chunks_iter(Axis(0), block))
            .collect();
        pairs
            .into_par_iter()
            .for_each(|(mut cb, ab)| general_mat_mul(alpha, &ab, &b, beta, &mut cb));
    } else {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
    }
}

/// Numpy `matmul`: 1-D operands are promoted (and the added dim removed again), batch dims
/// broadcast.
pub(crate) fn matmul<T>(a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>>
where
    T: LinalgScalar + Send + Sync,
{
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra == 0 || rb == 0 {
        return Err(OpError::shape(
            "MatMul operands must have at least one dimension",
        ));
    }
    // Promote 1-D operands: [K] is [1, K] on the left and [K, 1] on the right.
    let a_view = if ra == 1 {
        a.view().insert_axis(Axis(0))
    } else {
        a.view()
    };
    let b_view = if rb == 1 {
        b.view().insert_axis(Axis(1))
    } else {
        b.view()
    };
    let (ash, bsh) = (a_view.shape(), b_view.shape());
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        return Err(OpError::shape(format!(
            "MatMul inner dims differ: {:?} x {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let a_batch = &ash[..ash.len() - 2];
    let b_batch = &bsh[..bsh.len() - 2];
    let batch = broadcast_shapes(a_batch, b_batch)?;
    let batch_count: usize = batch.iter().product();

    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    let mut out = ArrayD::<T>::zeros(IxDyn(&out_shape));

    let b_is_matrix = b_batch.iter().all(|&d| d == 1);
    if b_is_matrix {
        // Every batch entry multiplies the same matrix: fold the batch into the rows.
        let b2 = b_view
            .to_shape((k, n))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let a_full = a_view
            .broadcast(IxDyn(&[batch.as_slice(), &[m, k]].concat()))
            .ok_or_else(|| {
                OpError::shape(format!(
                    "MatMul batch dims {:?} vs {:?}",
                    a.shape(),
                    b.shape()
                ))
            })?;
        let a2 = a_full
            .to_shape((batch_count * m, k))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let c2 = out
            .view_mut()
            .into_shape_with_order((batch_count * m, n))
            .map_err(|e| OpError::shape(e.to_string()))?;
        gemm(T::one(), a2.view(), b2.view(), T::zero(), c2);
    } else {
        let a_full_shape: Vec<usize> = [batch.as_slice(), &[m, k]].concat();
        let b_full_shape: Vec<usize> = [batch.as_slice(), &[k, n]].concat();
        let cannot = || {
            OpError::shape(format!(
                "MatMul batch dims {:?} vs {:?}",
                a.shape(),
                b.shape()
            ))
        };
        let a_full = a_view.broadcast(IxDyn(&a_full_shape)).ok_or_else(cannot)?;
        let b_full = b_view.broadcast(IxDyn(&b_full_shape)).ok_or_else(cannot)?;
        let mut c3 = out
            .view_mut()
            .into_shape_with_order((batch_count, m, n))
            .map_err(|e| OpError::shape(e.to_string()))?;
        let work = |(i, mut c): (usize, ArrayViewMut2<'_, T>)| -> OpResult<()> {
            let a2 = batch_item(&a_full, &batch, i)?;
            let b2 = batch_item(&b_full, &batch, i)?;
            general_mat_mul(T::one(), &a2, &b2, T::zero(), &mut c);
            Ok(())
        };
        let per_item = m.saturating_mul(n).saturating_mul(k);
        if batch_count > 1 && per_item.saturating_mul(batch_count) >= PARALLEL_FLOPS / 4 {
            c3.axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .try_for_each(work)?;
        } else {
            c3.axis_iter_mut(Axis(0)).enumerate().try_for_each(work)?;
        }
    }

    // Drop the dims added for 1-D operands.
    let mut final_shape = batch;
    if ra > 1 {
        final_shape.push(m);
    }
    if rb > 1 {
        final_shape.push(n);
    }
    out.into_shape_with_order(IxDyn(&final_shape))
        .map_err(|e| OpError::shape(e.to_string()))
}

/// The matrix at row-major batch position `i` of `x` ([..batch, r, c]).
fn batch_item<'a, T>(
    x: &ArrayViewD<'a, T>,
    batch: &[usize],
    i: usize,
) -> OpResult<ArrayView2<'a, T>> {
    let mut view = x.clone();
    let mut rest = i;
    let mut index = vec![0; batch.len()];
    for (slot, &d) in index.iter_mut().zip(batch).rev() {
        *slot = rest % d.max(1);
        rest /= d.max(1);
    }
    for ix in index {
        view = view.index_axis_move(Axis(0), ix);
    }
    view.into_dimensionality()
        .map_err(|e| OpError::shape(e.to_string()))
}
