//! Matrix products: one GEMM entry point and numpy-style batched matmul on top of it.
//!
//! f32/f64 products go through the `gemm` crate (AVX-512, AVX2 or FMA kernels picked at
//! run time, threaded on rayon's pool); integer products through ndarray's
//! `general_mat_mul`.

use std::any::TypeId;

use ndarray::{
    ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn, LinalgScalar,
    linalg::general_mat_mul,
};
use rayon::prelude::*;

use crate::broadcast::broadcast_shapes;
use crate::error::{OpError, OpResult};

/// Multiply-adds from which one GEMM is threaded.
const PARALLEL_FLOPS: usize = 1 << 20;

/// `c = alpha * a·b + beta * c`, threaded for large products unless already running on a
/// rayon worker (then the caller parallelizes at a coarser level).
pub(crate) fn gemm<T>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) where
    T: LinalgScalar + Send + Sync,
{
    let (m, k) = a.dim();
    let n = b.dim().1;
    let big = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_FLOPS;
    let parallel =
        big && rayon::current_num_threads() > 1 && rayon::current_thread_index().is_none();
    gemm_with(alpha, a, b, beta, c, parallel);
}

/// [`gemm`] on the calling thread only.
pub(crate) fn gemm_serial<T>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    c: ArrayViewMut2<'_, T>,
) where
    T: LinalgScalar + Send + Sync,
{
    gemm_with(alpha, a, b, beta, c, false);
}

fn gemm_with<T>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
    parallel: bool,
) where
    T: LinalgScalar + Send + Sync,
{
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    // Callers check shapes; a mismatch here would be a bug, so compute nothing rather than
    // read out of bounds.
    if k != k2 || c.dim() != (m, n) || m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta.is_zero() {
            c.fill(T::zero());
        } else {
            c.mapv_inplace(|x| x * beta);
        }
        return;
    }
    let is_float =
        TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>();
    if !is_float {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three views describe valid elements at every (row, col) within their dims
    // at the given strides (ndarray's view invariant), the dims agree (checked above), `c`
    // is a unique borrow so it overlaps neither input, and T is f32 or f64, the types the
    // `gemm` crate dispatches on. `gemm` computes dst = alpha_g·dst + beta_g·lhs·rhs, reading
    // dst only when `read_dst`; hence the swapped scalars.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            !beta.is_zero(),
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
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
    crate::ops::check_size(&out_shape)?;
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
        let work = |(i, c): (usize, ArrayViewMut2<'_, T>)| -> OpResult<()> {
            let a2 = batch_item(&a_full, &batch, i)?;
            let b2 = batch_item(&b_full, &batch, i)?;
            gemm_serial(T::one(), a2, b2, T::zero(), c);
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
