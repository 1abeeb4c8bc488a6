//! Inputs for parity checks, and the comparison of two runs.
//!
//! Inputs are generated from a model's input signature: token ids, token types, attention
//! masks with a chosen padding pattern, and random floats (hidden states, images).

use transfuse_ir::{DataType, Dim, Model, Tensor};

use super::Rng;

/// Where the padding of the attention mask goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Nothing padded.
    None,
    /// Row `i` keeps its first `T - 2 - 2i` positions (at least one).
    Right,
    /// Row `i` keeps its last `T - 2 - 2i` positions (at least one).
    Left,
    /// Every row misses positions `2..4+i` in the middle.
    Hole,
    /// The last row is padding entirely (mask all zero); the others are right-padded.
    FullyPadded,
}

impl Padding {
    /// Every pattern, for loops over test cases.
    pub const ALL: [Padding; 5] = [
        Padding::None,
        Padding::Right,
        Padding::Left,
        Padding::Hole,
        Padding::FullyPadded,
    ];
}

fn kept_length(total: usize, row: usize) -> usize {
    total.saturating_sub(2 + 2 * row).max(1)
}

/// A `[batch, total]` 0/1 mask with the padding pattern.
pub fn mask_values(batch: usize, total: usize, padding: Padding) -> Vec<i64> {
    let mut m = vec![1i64; batch * total];
    for row in 0..batch {
        let r = &mut m[row * total..(row + 1) * total];
        let keep = kept_length(total, row);
        match padding {
            Padding::None => {}
            Padding::Right => r[keep..].iter_mut().for_each(|v| *v = 0),
            Padding::Left => r[..total - keep].iter_mut().for_each(|v| *v = 0),
            Padding::Hole => r
                .iter_mut()
                .take((4 + row).min(total - 1))
                .skip(2)
                .for_each(|v| *v = 0),
            Padding::FullyPadded if row + 1 == batch => r.iter_mut().for_each(|v| *v = 0),
            Padding::FullyPadded => r[keep..].iter_mut().for_each(|v| *v = 0),
        }
    }
    m
}

/// The size a symbolic dimension gets: `batch` the batch size, `kv_sequence` the sequence
/// length plus 3 (so cross-attention has distinct lengths), any other symbol the sequence
/// length.
fn dim_size(dim: &Dim, batch: usize, seq: usize) -> usize {
    match dim {
        Dim::Known(v) => usize::try_from(*v).unwrap_or(1),
        Dim::Symbol(s) if s == "batch" => batch,
        Dim::Symbol(s) if s == "kv_sequence" => seq + 3,
        Dim::Symbol(_) | Dim::Unknown => seq,
    }
}

/// Inputs for every graph input of `model` (not initializers): ids in `[0, 50)` (valid for
/// every vocabulary here), token types 0/1, masks with `padding`, floats in `[-1, 1)`.
pub fn generate(
    model: &Model,
    batch: usize,
    seq: usize,
    padding: Padding,
    seed: u64,
) -> Vec<(String, Tensor)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for input in &model.graph.inputs {
        if model.graph.initializer(&input.name).is_some() {
            continue;
        }
        let dims: Vec<usize> = input
            .shape()
            .unwrap_or(&[])
            .iter()
            .map(|d| dim_size(d, batch, seq))
            .collect();
        let n: usize = dims.iter().product();
        let dims_i64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let name = input.name.as_str();
        let tensor = match input.elem_type() {
            Some(DataType::Int64 | DataType::Int32) => {
                let values: Vec<i64> = if name.contains("mask") {
                    mask_values(
                        dims.first().copied().unwrap_or(1),
                        dims.last().copied().unwrap_or(1),
                        padding,
                    )
                } else if name.contains("token_type") {
                    (0..n).map(|_| rng.below(2)).collect()
                } else {
                    (0..n).map(|_| rng.below(50)).collect()
                };
                if input.elem_type() == Some(DataType::Int32) {
                    let v: Vec<i32> = values.iter().map(|&x| x as i32).collect();
                    Tensor::from_i32(name, dims_i64, &v)
                } else {
                    Tensor::from_i64(name, dims_i64, &values)
                }
            }
            _ => Tensor::from_f32(name, dims_i64, &rng.floats(n, 1.0)),
        };
        out.push((name.to_string(), tensor));
    }
    out
}

/// Largest absolute difference between two runs' outputs (by position). A NaN in one run
/// where the other has a number is an error, as are different shapes or output counts.
pub fn max_abs_diff(
    a: &[(String, Vec<usize>, Vec<f64>)],
    b: &[(String, Vec<usize>, Vec<f64>)],
) -> Result<f64, String> {
    if a.len() != b.len() {
        return Err(format!("{} outputs vs {}", a.len(), b.len()));
    }
    let mut worst = 0.0f64;
    for ((na, sa, va), (nb, sb, vb)) in a.iter().zip(b) {
        if sa != sb {
            return Err(format!("output {na} has shape {sa:?}, {nb} has {sb:?}"));
        }
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            match (x.is_nan(), y.is_nan()) {
                (true, true) => {}
                (false, false) => worst = worst.max((x - y).abs()),
                _ => return Err(format!("output {na}[{i}]: {x} vs {y}")),
            }
        }
    }
    Ok(worst)
}
