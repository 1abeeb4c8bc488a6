//! Indexing ops: `Gather`, `GatherElements`, `GatherND`, `ScatterND`.
//!
//! Every index is checked against its axis before use; negative indices count from the end.

use ndarray::{ArrayD, Dimension, IxDyn};

use crate::error::{OpError, OpResult};
use crate::ops::{normalize_axis, to_usize};
use crate::registry::{BuildCtx, Inputs, Kernel, MAX_ONNX_OPSET, ONNX, Registry};
use crate::value::{Value, try_map_value};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(ONNX, "Gather", 1..=MAX_ONNX_OPSET, build_gather);
    reg.insert(
        ONNX,
        "GatherElements",
        11..=MAX_ONNX_OPSET,
        build_gather_elements,
    );
    reg.insert(ONNX, "GatherND", 11..=MAX_ONNX_OPSET, build_gather_nd);
    reg.insert(ONNX, "ScatterND", 11..=MAX_ONNX_OPSET, build_scatter_nd);
}

/// An index in `[-len, len)` as a position in `[0, len)`.
fn resolve_index(i: i64, len: usize) -> OpResult<usize> {
    let l = len as i64;
    let j = if i < 0 { i + l } else { i };
    if (0..l).contains(&j) {
        Ok(j as usize)
    } else {
        Err(OpError::invalid(format!(
            "index {i} is out of range for a dim of length {len}"
        )))
    }
}

#[derive(Debug)]
struct Gather {
    axis: i64,
}

fn build_gather(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(Gather {
        axis: ctx.int("axis", 0)?,
    }))
}

impl Kernel for Gather {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let data = inputs.req(0, "data")?;
        let indices = inputs.req(1, "indices")?;
        let axis = normalize_axis(self.axis, data.rank())?;
        let len = data.shape().get(axis).copied().unwrap_or(0);
        let idx: Vec<usize> = indices
            .to_i64s("indices")?
            .into_iter()
            .map(|i| resolve_index(i, len))
            .collect::<OpResult<_>>()?;
        let idx_shape = indices.shape().to_vec();
        Ok(vec![
            try_map_value!(data, a => gather(a, axis, &idx, &idx_shape)),
        ])
    }
}

/// `out[outer, i..., inner] = a[outer, idx[i...], inner]`, indices already resolved.
fn gather<T: Clone>(
    a: &ArrayD<T>,
    axis: usize,
    idx: &[usize],
    idx_shape: &[usize],
) -> OpResult<ArrayD<T>> {
    let shape = a.shape();
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let len = shape[axis];
    let mut out_shape = shape[..axis].to_vec();
    out_shape.extend_from_slice(idx_shape);
    out_shape.extend_from_slice(&shape[axis + 1..]);
    crate::ops::check_size(&out_shape)?;
    let std = a.as_standard_layout();
    let src = std
        .as_slice()
        .ok_or_else(|| OpError::shape("Gather: data not contiguous"))?;
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let start = (o * len + i) * inner;
            out.extend_from_slice(
                src.get(start..start + inner)
                    .ok_or_else(|| OpError::invalid("Gather index"))?,
            );
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| OpError::shape(e.to_string()))
}

#[derive(Debug)]
struct GatherElements {
    axis: i64,
}

fn build_gather_elements(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(GatherElements {
        axis: ctx.int("axis", 0)?,
    }))
}

impl Kernel for GatherElements {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let data = inputs.req(0, "data")?;
        let indices = inputs.req(1, "indices")?;
        let rank = data.rank();
        if indices.rank() != rank {
            return Err(OpError::shape(format!(
                "indices rank {} differs from data rank {rank}",
                indices.rank()
            )));
        }
        let axis = normalize_axis(self.axis, rank)?;
        let len = data.shape().get(axis).copied().unwrap_or(0);
        for (d, (&n, &m)) in indices.shape().iter().zip(data.shape()).enumerate() {
            if d != axis && n > m {
                return Err(OpError::shape(format!(
                    "indices dim {d} ({n}) exceeds data dim ({m})"
                )));
            }
        }
        let idx: Vec<usize> = indices
            .to_i64s("indices")?
            .into_iter()
            .map(|i| resolve_index(i, len))
            .collect::<OpResult<_>>()?;
        let idx = ArrayD::from_shape_vec(IxDyn(indices.shape()), idx)
            .map_err(|e| OpError::shape(e.to_string()))?;
        fn run<T: Clone>(a: &ArrayD<T>, idx: &ArrayD<usize>, axis: usize) -> OpResult<ArrayD<T>> {
            let mut out = Vec::with_capacity(idx.len());
            let mut position = vec![0usize; a.ndim()];
            for (ix, &k) in idx.indexed_iter() {
                position.copy_from_slice(ix.slice());
                if let Some(p) = position.get_mut(axis) {
                    *p = k;
                }
                out.push(
                    a.get(IxDyn(&position))
                        .cloned()
                        .ok_or_else(|| OpError::invalid("GatherElements index"))?,
                );
            }
            ArrayD::from_shape_vec(idx.raw_dim(), out).map_err(|e| OpError::shape(e.to_string()))
        }
        Ok(vec![try_map_value!(data, a => run(a, &idx, axis))])
    }
}

#[derive(Debug)]
struct GatherNd {
    batch_dims: usize,
}

fn build_gather_nd(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let batch_dims = if ctx.opset >= 12 {
        to_usize(ctx.int("batch_dims", 0)?, "batch_dims")?
    } else {
        0
    };
    Ok(Box::new(GatherNd { batch_dims }))
}

/// The layout shared by `GatherND` and `ScatterND`: which data block each index tuple names.
struct NdIndex {
    /// Per (batch, tuple): the flat offset of the addressed block in the data.
    offsets: Vec<usize>,
    /// Elements per addressed block.
    block: usize,
    /// Leading dims of the result: indices.shape[..-1].
    lead: Vec<usize>,
    /// Length of each index tuple.
    k: usize,
}

fn nd_index(data_shape: &[usize], indices: &Value, batch_dims: usize) -> OpResult<NdIndex> {
    let ishape = indices.shape();
    let q = ishape.len();
    let r = data_shape.len();
    let k = *ishape
        .last()
        .ok_or_else(|| OpError::shape("indices must have at least one dim"))?;
    if batch_dims >= q || batch_dims >= r || k > r - batch_dims {
        return Err(OpError::shape(format!(
            "indices {ishape:?} do not fit data {data_shape:?} with batch_dims {batch_dims}"
        )));
    }
    if ishape[..batch_dims] != data_shape[..batch_dims] {
        return Err(OpError::shape("batch dims of data and indices differ"));
    }
    let batches: usize = data_shape[..batch_dims].iter().product();
    let block: usize = data_shape[batch_dims + k..].iter().product();
    let batch_stride: usize = data_shape[batch_dims..].iter().product();
    let flat = indices.to_i64s("indices")?;
    let tuples_per_batch: usize = ishape[batch_dims..q - 1].iter().product();
    let mut offsets = Vec::with_capacity(batches * tuples_per_batch);
    for (t, tuple) in flat
        .chunks(k.max(1))
        .enumerate()
        .take(batches * tuples_per_batch)
    {
        let batch = t / tuples_per_batch.max(1);
        let mut offset = 0usize;
        for (j, &i) in tuple.iter().take(k).enumerate() {
            let dim = data_shape[batch_dims + j];
            offset = offset * dim + resolve_index(i, dim)?;
        }
        // Remaining (unindexed) leading dims of the block are covered by `block`.
        offsets.push(batch * batch_stride + offset * block);
    }
    if k == 0 {
        offsets = (0..batches * tuples_per_batch)
            .map(|t| (t / tuples_per_batch.max(1)) * batch_stride)
            .collect();
    }
    Ok(NdIndex {
        offsets,
        block,
        lead: ishape[..q - 1].to_vec(),
        k,
    })
}

impl Kernel for GatherNd {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let data = inputs.req(0, "data")?;
        let layout = nd_index(data.shape(), inputs.req(1, "indices")?, self.batch_dims)?;
        let mut out_shape = layout.lead.clone();
        out_shape.extend_from_slice(
            data.shape()
                .get(self.batch_dims + layout.k..)
                .unwrap_or(&[]),
        );
        fn run<T: Clone>(
            a: &ArrayD<T>,
            layout: &NdIndex,
            out_shape: &[usize],
        ) -> OpResult<ArrayD<T>> {
            let std = a.as_standard_layout();
            let src = std
                .as_slice()
                .ok_or_else(|| OpError::shape("data not contiguous"))?;
            let mut out = Vec::with_capacity(layout.offsets.len() * layout.block);
            for &o in &layout.offsets {
                out.extend_from_slice(
                    src.get(o..o + layout.block)
                        .ok_or_else(|| OpError::invalid("GatherND index"))?,
                );
            }
            ArrayD::from_shape_vec(IxDyn(out_shape), out).map_err(|e| OpError::shape(e.to_string()))
        }
        Ok(vec![try_map_value!(data, a => run(a, &layout, &out_shape))])
    }
}

#[derive(Debug)]
struct ScatterNd {
    reduction: String,
}

fn build_scatter_nd(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    let reduction = if ctx.opset >= 16 {
        ctx.string("reduction", "none")?
    } else {
        "none".to_string()
    };
    if reduction != "none" {
        return Err(OpError::unsupported(format!(
            "ScatterND reduction '{reduction}'"
        )));
    }
    Ok(Box::new(ScatterNd { reduction }))
}

impl Kernel for ScatterNd {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let _ = &self.reduction;
        let layout = nd_index(inputs.req(0, "data")?.shape(), inputs.req(1, "indices")?, 0)?;
        let updates = inputs.req(2, "updates")?.clone();
        let data = inputs.take(0, "data")?;
        fn run<T: Clone>(
            mut a: ArrayD<T>,
            updates: &ArrayD<T>,
            layout: &NdIndex,
        ) -> OpResult<ArrayD<T>> {
            if updates.len() != layout.offsets.len() * layout.block {
                return Err(OpError::shape("updates do not match the indexed blocks"));
            }
            if !a.is_standard_layout() {
                a = a.as_standard_layout().into_owned();
            }
            let dst = a
                .as_slice_mut()
                .ok_or_else(|| OpError::shape("data not contiguous"))?;
            let upd: Vec<T> = updates.iter().cloned().collect();
            for (n, &o) in layout.offsets.iter().enumerate() {
                let from = upd.get(n * layout.block..(n + 1) * layout.block);
                let to = dst.get_mut(o..o + layout.block);
                match (from, to) {
                    (Some(f), Some(t)) => t.clone_from_slice(f),
                    _ => return Err(OpError::invalid("ScatterND index")),
                }
            }
            Ok(a)
        }
        Ok(vec![match (data, &updates) {
            (Value::F32(a), Value::F32(u)) => Value::F32(run(a, u, &layout)?),
            (Value::F64(a), Value::F64(u)) => Value::F64(run(a, u, &layout)?),
            (Value::I64(a), Value::I64(u)) => Value::I64(run(a, u, &layout)?),
            (Value::I32(a), Value::I32(u)) => Value::I32(run(a, u, &layout)?),
            (Value::Bool(a), Value::Bool(u)) => Value::Bool(run(a, u, &layout)?),
            _ => return Err(OpError::dtype("ScatterND data and updates differ in type")),
        }])
    }
}
