//! ONNX Runtime's `EmbedLayerNormalization` (`com.microsoft`), following its CPU kernel.
//!
//! `output[b, s] = LN(word[input_ids[b, s]] + position[p] + segment[segment_ids[b, s]])`
//! over the hidden axis with `gamma`, `beta` and `epsilon` (default 1e-12), where `p` is
//! `position_ids[b, s]` (or `position_ids[0, s]` when it is `[1, S]`), else `s`.
//! `segment_ids` and `segment_embedding` are optional together. Outputs: `output`,
//! `mask_index` (int32 `[B]`: per batch the number of mask entries equal to 1; zeros
//! without a mask) and `embedding_sum` (the sum before normalization). All ids are int32
//! and checked against their tables.

use ndarray::{Array1, Array3, ArrayD};

use crate::elem::Float;
use crate::error::{OpError, OpResult};
use crate::registry::{BuildCtx, Inputs, Kernel, MS, Registry};
use crate::value::{Value, ValueElem, typed};

pub(crate) fn register(reg: &mut Registry) {
    reg.insert(MS, "EmbedLayerNormalization", 1..=1, build);
}

#[derive(Debug)]
struct EmbedLayerNorm {
    epsilon: f64,
}

fn build(ctx: &BuildCtx<'_>) -> OpResult<Box<dyn Kernel>> {
    Ok(Box::new(EmbedLayerNorm {
        epsilon: f64::from(ctx.float("epsilon", 1e-12)?),
    }))
}

impl Kernel for EmbedLayerNorm {
    fn run(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        float_dispatch!(inputs.req(2, "word_embedding")?, T => self.apply::<T>(inputs), "word_embedding must be float")
    }
}

/// A 2-D embedding table as (rows, hidden, row-major data).
fn table<T: ValueElem>(v: &Value, what: &str) -> OpResult<(usize, usize, Vec<T>)> {
    let a = typed::<T>(v, what)?;
    match a.shape() {
        [rows, hidden] => Ok((*rows, *hidden, a.iter().copied().collect())),
        other => Err(OpError::shape(format!("{what} must be 2-D, got {other:?}"))),
    }
}

/// Ids as `i32` in row-major order, with their shape.
fn ids(v: &Value, what: &str) -> OpResult<(Vec<usize>, Vec<i32>)> {
    let a = typed::<i32>(v, what)?;
    Ok((a.shape().to_vec(), a.iter().copied().collect()))
}

/// Row `id` of a table, or an error naming the table.
fn row<'t, T>(data: &'t [T], hidden: usize, rows: usize, id: i64, what: &str) -> OpResult<&'t [T]> {
    let idx = usize::try_from(id)
        .ok()
        .filter(|&i| i < rows)
        .ok_or_else(|| {
            OpError::invalid(format!("{what} id {id} is out of range for {rows} rows"))
        })?;
    data.get(idx * hidden..(idx + 1) * hidden)
        .ok_or_else(|| OpError::invalid(format!("{what} id {id}")))
}

impl EmbedLayerNorm {
    fn apply<T: Float + ValueElem>(&self, inputs: &mut Inputs<'_>) -> OpResult<Vec<Value>> {
        let (id_shape, input_ids) = ids(inputs.req(0, "input_ids")?, "input_ids")?;
        let [b, s] = id_shape[..] else {
            return Err(OpError::shape(format!(
                "input_ids must be [B, S], got {id_shape:?}"
            )));
        };
        let (words, hidden, word) = table::<T>(inputs.req(2, "word_embedding")?, "word_embedding")?;
        let (positions, ph, position) =
            table::<T>(inputs.req(3, "position_embedding")?, "position_embedding")?;
        let segment = match (inputs.get(1), inputs.get(4)) {
            (Some(sid), Some(stab)) => {
                let (shape, seg_ids) = ids(sid, "segment_ids")?;
                if shape != id_shape {
                    return Err(OpError::shape(format!(
                        "segment_ids {shape:?} differ from input_ids {id_shape:?}"
                    )));
                }
                let (rows, sh, data) = table::<T>(stab, "segment_embedding")?;
                if sh != hidden {
                    return Err(OpError::shape("segment_embedding hidden size differs"));
                }
                Some((seg_ids, rows, data))
            }
            (None, None) => None,
            _ => {
                return Err(OpError::invalid(
                    "segment_ids and segment_embedding must be given together",
                ));
            }
        };
        if ph != hidden {
            return Err(OpError::shape(
                "position_embedding hidden size differs from word_embedding's",
            ));
        }
        let vector = |i: usize, name: &'static str| -> OpResult<Vec<T>> {
            let v = typed::<T>(inputs.req(i, name)?, name)?;
            if v.shape() != [hidden] {
                return Err(OpError::shape(format!(
                    "{name} must be [{hidden}], got {:?}",
                    v.shape()
                )));
            }
            Ok(v.iter().copied().collect())
        };
        let (gamma, beta) = (vector(5, "gamma")?, vector(6, "beta")?);
        let position_ids = match inputs.get(8) {
            None => None,
            Some(p) => {
                let (shape, data) = ids(p, "position_ids")?;
                if shape != id_shape && shape != [1, s] {
                    return Err(OpError::shape(format!(
                        "position_ids must be [B, S] or [1, S], got {shape:?}"
                    )));
                }
                Some((shape[0] == 1, data))
            }
        };

        let mut sum = Array3::<T>::zeros((b, s, hidden));
        let mut out = Array3::<T>::zeros((b, s, hidden));
        let sum_rows = sum
            .as_slice_mut()
            .ok_or_else(|| OpError::shape("buffer not contiguous"))?;
        let out_rows = out
            .as_slice_mut()
            .ok_or_else(|| OpError::shape("buffer not contiguous"))?;
        for index in 0..b * s {
            let token = i64::from(input_ids.get(index).copied().unwrap_or(0));
            let pos = match &position_ids {
                None => (index % s.max(1)) as i64,
                Some((broadcast, p)) => {
                    let at = if *broadcast { index % s.max(1) } else { index };
                    i64::from(p.get(at).copied().unwrap_or(0))
                }
            };
            let w = row(&word, hidden, words, token, "word")?;
            let p = row(&position, hidden, positions, pos, "position")?;
            let sg = match &segment {
                Some((seg_ids, rows, data)) => Some(row(
                    data,
                    hidden,
                    *rows,
                    i64::from(seg_ids.get(index).copied().unwrap_or(0)),
                    "segment",
                )?),
                None => None,
            };
            let target = sum_rows
                .get_mut(index * hidden..(index + 1) * hidden)
                .ok_or_else(|| OpError::shape("embedding buffer"))?;
            for (i, t) in target.iter_mut().enumerate() {
                let mut v = w[i] + p[i];
                if let Some(sg) = sg {
                    v = v + sg[i];
                }
                *t = v;
            }
            let n = hidden.max(1) as f64;
            let mean = target.iter().map(|&x| x.as_f64()).sum::<f64>() / n;
            let var = target
                .iter()
                .map(|&x| (x.as_f64() - mean).powi(2))
                .sum::<f64>()
                / n;
            let inv = 1.0 / (var + self.epsilon).sqrt();
            let (m, iv) = (T::of_f64(mean), T::of_f64(inv));
            let dst = out_rows
                .get_mut(index * hidden..(index + 1) * hidden)
                .ok_or_else(|| OpError::shape("output"))?;
            for (((d, &x), &g), &be) in dst.iter_mut().zip(target.iter()).zip(&gamma).zip(&beta) {
                *d = (x - m) * iv * g + be;
            }
        }

        let mask_index: Vec<i32> = match inputs.get(7) {
            None => vec![0; b],
            Some(mask) => {
                let (shape, data) = ids(mask, "mask")?;
                if shape != id_shape {
                    return Err(OpError::shape(format!(
                        "mask {shape:?} differs from input_ids {id_shape:?}"
                    )));
                }
                (0..b)
                    .map(|row| {
                        data.get(row * s..(row + 1) * s)
                            .map_or(0, |r| r.iter().filter(|&&v| v == 1).count() as i32)
                    })
                    .collect()
            }
        };
        let mask_index: ArrayD<i32> = Array1::from(mask_index).into_dyn();
        Ok(vec![
            T::wrap(out.into_dyn()),
            Value::I32(mask_index),
            T::wrap(sum.into_dyn()),
        ])
    }
}
