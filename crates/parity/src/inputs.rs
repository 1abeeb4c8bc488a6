//! Inputs for parity checks: generated from a model's input signature, or read from an ONNX
//! test-data directory (`input_N.pb`, `output_N.pb`).
//!
//! Generation rules, by input (graph inputs that are not initializers):
//! - token ids (an integer input that reaches a `Gather` as its indices, through casts, slices and
//!   reshapes): uniform in `[0, rows)` of that `Gather`'s table (the embedding's vocabulary);
//! - attention masks (name contains `mask`): ones and zeros after the [`Padding`] pattern;
//! - token type ids (name contains `token_type` or `segment`): zeros on the first half of each
//!   row, ones on the second (clamped to the type table's size);
//! - position ids (name contains `position`): `0..seq` on every row;
//! - floating-point inputs (images): standard normal values;
//! - symbolic dims: a size given for that symbol ([`generate_inputs_with_symbols`]), else the
//!   first dim is the batch and later ones the sequence length.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use transfuse_ir::{DataType, Dim, Graph, Model, Tensor};

use crate::error::{ParityError, Result};

fn generate_error(message: String) -> ParityError {
    ParityError::Generate(message)
}

/// Where the zeros of generated attention masks go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Padding {
    /// No padding: masks are all ones.
    None,
    /// Padding at the end of rows (the tokenizers' default).
    #[default]
    Right,
    /// Padding at the start of rows (decoder-style batching); wrong under a 1-D mask index.
    Left,
    /// Zeros inside rows (a block in the middle), first and last tokens kept.
    Holes,
    /// The last row is padding entirely (all zeros); the others are right-padded.
    FullyPadded,
}

impl Padding {
    /// Every pattern, for loops over test cases.
    pub const ALL: [Padding; 5] = [
        Padding::None,
        Padding::Right,
        Padding::Left,
        Padding::Holes,
        Padding::FullyPadded,
    ];
}

impl std::str::FromStr for Padding {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Padding, String> {
        Padding::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| {
                format!("unknown padding '{s}' (none, right, left, holes, fully-padded)")
            })
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Padding::None => "none",
            Padding::Right => "right",
            Padding::Left => "left",
            Padding::Holes => "holes",
            Padding::FullyPadded => "fully-padded",
        })
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Batch size (symbolic first dims).
    pub batch: usize,
    /// Sequence length (other symbolic dims).
    pub seq: usize,
    /// Seed of the random generator: the same seed gives the same inputs.
    pub seed: u64,
    /// Mask pattern.
    pub padding: Padding,
}

/// The mask row `row` of `batch` rows of length `seq`: `true` where the token is real.
///
/// Lengths: with several rows, row 0 is whole and the last row keeps half its tokens, the
/// others in between; a single row keeps half. `FullyPadded` zeroes the last row and
/// right-pads the others like `Right`. `Holes` zeroes a block of a quarter of the row
/// (at least one token) at an offset that moves with the row, never the first or last token.
pub fn mask_row(padding: Padding, row: usize, batch: usize, seq: usize) -> Vec<bool> {
    let valid_len = |row: usize| -> usize {
        let cut = if batch <= 1 {
            seq / 2
        } else {
            row * (seq / 2) / (batch - 1)
        };
        (seq - cut).max(1)
    };
    match padding {
        Padding::None => vec![true; seq],
        Padding::FullyPadded if row + 1 == batch => vec![false; seq],
        Padding::Right | Padding::FullyPadded => {
            let len = valid_len(row);
            (0..seq).map(|i| i < len).collect()
        }
        Padding::Left => {
            let len = valid_len(row);
            (0..seq).map(|i| i >= seq - len).collect()
        }
        Padding::Holes => {
            if seq < 3 {
                return vec![true; seq];
            }
            let hole = (seq / 4).max(1);
            let room = seq - 2 - hole; // start positions 1..=1+room keep the last token
            let start = 1 + (row * hole) % (room + 1);
            (0..seq).map(|i| i < start || i >= start + hole).collect()
        }
    }
}

/// The role of a graph input, which decides how its values are generated.
#[derive(Clone, Debug, PartialEq)]
pub enum InputRole {
    /// Token ids below `vocab`.
    TokenIds {
        /// Rows of the embedding table they index.
        vocab: i64,
    },
    /// An attention mask.
    Mask,
    /// Segment ids below `types`.
    TokenTypes {
        /// Rows of the type embedding table (2 when unknown).
        types: i64,
    },
    /// Positions `0..seq`.
    Positions,
    /// Floating-point data (images).
    Float,
}

/// Decides the role of each graph input of `model`.
pub fn classify_inputs(model: &Model) -> Result<Vec<(String, InputRole)>> {
    let graph = &model.graph;
    let mut out = Vec::new();
    for info in graph
        .inputs
        .iter()
        .filter(|v| graph.initializer(&v.name).is_none())
    {
        let name = info.name.as_str();
        let lower = name.to_ascii_lowercase();
        let dtype = info
            .elem_type()
            .ok_or_else(|| generate_error(format!("input '{name}' has no tensor type")))?;
        let role = if dtype.is_float() && !lower.contains("mask") {
            InputRole::Float
        } else if lower.contains("mask") {
            InputRole::Mask
        } else if lower.contains("token_type") || lower.contains("segment") {
            InputRole::TokenTypes {
                types: gathered_table_rows(graph, name).unwrap_or(2),
            }
        } else if lower.contains("position") {
            InputRole::Positions
        } else if let Some(vocab) = gathered_table_rows(graph, name) {
            InputRole::TokenIds { vocab }
        } else {
            return Err(generate_error(format!(
                "cannot tell how to generate input '{name}' ({dtype}): it is not a mask, token type or position input and reaches no Gather of an embedding table; give the inputs instead"
            )));
        };
        out.push((name.to_string(), role));
    }
    Ok(out)
}

/// Rows (first dim) of the table of the first `Gather` that indexes with `value`, following
/// the value through shape-only and cast ops and ops that select some of its elements
/// (XLM slices its ids to the last `S` before the lookup).
pub fn gathered_table_rows(graph: &Graph, value: &str) -> Option<i64> {
    const TRANSPARENT: [&str; 12] = [
        "Cast",
        "Reshape",
        "Unsqueeze",
        "Squeeze",
        "Flatten",
        "Identity",
        "Expand",
        "Slice",
        "Transpose",
        "Tile",
        "Split",
        "Gather",
    ];
    let constants: HashMap<&str, &Tensor> = graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Constant" && n.is_onnx())
        .filter_map(|n| Some((n.outputs.first()?.as_str(), n.attr_tensor("value")?)))
        .collect();
    let table_rows = |name: &str| -> Option<i64> {
        let dims = match graph.initializer(name) {
            Some(t) => &t.dims,
            None => &constants.get(name)?.dims,
        };
        dims.first().copied()
    };
    let mut frontier = vec![value.to_string()];
    let mut seen = HashSet::new();
    while let Some(current) = frontier.pop() {
        if !seen.insert(current.clone()) {
            continue;
        }
        for node in graph.nodes.iter().filter(|n| n.inputs.contains(&current)) {
            if node.op_type == "Gather" && node.inputs.get(1) == Some(&current) {
                if let Some(rows) = node.inputs.first().and_then(|t| table_rows(t)) {
                    return Some(rows);
                }
            } else if TRANSPARENT.contains(&node.op_type.as_str())
                && node.inputs.first() == Some(&current)
            {
                frontier.extend(node.outputs.iter().filter(|o| !o.is_empty()).cloned());
            }
        }
    }
    None
}

/// Generates one tensor per graph input of `model` (named after it, in graph order).
pub fn generate_inputs(model: &Model, spec: &InputSpec) -> Result<Vec<Tensor>> {
    generate_inputs_with_symbols(model, spec, &[])
}

/// Inputs are not generated above this many elements each (4 GiB of f32).
pub const MAX_INPUT_ELEMENTS: usize = 1 << 30;

/// [`generate_inputs`], with the size of some symbolic dims given by name (`("kv_sequence",
/// 19)`): a symbol listed here takes that size wherever it appears.
pub fn generate_inputs_with_symbols(
    model: &Model,
    spec: &InputSpec,
    symbols: &[(&str, usize)],
) -> Result<Vec<Tensor>> {
    if spec.batch == 0 || spec.seq == 0 {
        return Err(generate_error(
            "batch and sequence length must be at least 1".into(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut out = Vec::new();
    for (name, role) in classify_inputs(model)? {
        let info = model
            .graph
            .inputs
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| generate_error(format!("input '{name}' vanished")))?;
        let dtype = info
            .elem_type()
            .ok_or_else(|| generate_error(format!("input '{name}' has no tensor type")))?;
        let shape = info
            .shape()
            .ok_or_else(|| generate_error(format!("input '{name}' has no shape")))?;
        let dims: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(v) => usize::try_from(*v)
                    .map_err(|_| generate_error(format!("input '{name}' has dim {v}"))),
                Dim::Symbol(s) if symbols.iter().any(|(n, _)| n == s) => Ok(symbols
                    .iter()
                    .find(|(n, _)| n == s)
                    .map_or(spec.seq, |&(_, size)| size)),
                Dim::Symbol(_) | Dim::Unknown if i == 0 => Ok(spec.batch),
                Dim::Symbol(_) | Dim::Unknown => Ok(spec.seq),
            })
            .collect::<Result<_>>()?;
        let count = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_INPUT_ELEMENTS)
            .ok_or_else(|| {
                generate_error(format!(
                    "input '{name}' of shape {dims:?} is larger than {MAX_INPUT_ELEMENTS} elements"
                ))
            })?;
        let row_len = dims.last().copied().unwrap_or(1).max(1);
        let rows = count / row_len;
        let values: Vec<f64> = match role {
            InputRole::Float => (0..count).map(|_| rng.sample::<f64, _>(StandardNormal)).collect(),
            InputRole::TokenIds { vocab } => {
                if vocab <= 0 {
                    return Err(generate_error(format!(
                        "input '{name}' indexes an empty table"
                    )));
                }
                (0..count).map(|_| rng.random_range(0..vocab) as f64).collect()
            }
            InputRole::Mask => (0..rows)
                .flat_map(|r| mask_row(spec.padding, r, rows, row_len))
                .map(|real| if real { 1.0 } else { 0.0 })
                .collect(),
            InputRole::TokenTypes { types } => (0..count)
                .map(|i| if i % row_len < row_len / 2 { 0 } else { 1.min(types - 1).max(0) } as f64)
                .collect(),
            InputRole::Positions => (0..count).map(|i| (i % row_len) as f64).collect(),
        };
        out.push(tensor_of(&name, dtype, &dims, &values)?);
    }
    Ok(out)
}

fn tensor_of(name: &str, dtype: DataType, dims: &[usize], values: &[f64]) -> Result<Tensor> {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Ok(match dtype {
        DataType::Float => Tensor::from_f32(
            name,
            dims,
            &values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        ),
        DataType::Double => Tensor::from_f64(name, dims, values),
        DataType::Int64 => Tensor::from_i64(
            name,
            dims,
            &values.iter().map(|&v| v as i64).collect::<Vec<_>>(),
        ),
        DataType::Int32 => Tensor::from_i32(
            name,
            dims,
            &values.iter().map(|&v| v as i32).collect::<Vec<_>>(),
        ),
        DataType::Bool => Tensor::from_bool(
            name,
            dims,
            &values.iter().map(|&v| v != 0.0).collect::<Vec<_>>(),
        ),
        other => {
            return Err(generate_error(format!(
                "input '{name}' has element type {other}, which parity cannot generate"
            )));
        }
    })
}

/// The integer types [`conform_inputs`] converts between.
fn is_integer(dtype: DataType) -> bool {
    use DataType as D;
    matches!(
        dtype,
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::Uint8 | D::Uint16 | D::Uint32
    )
}

/// `inputs` as `model` declares them: a tensor of another integer width than its graph
/// input declares is converted to the declared int32 or int64, value by value (an int64
/// original and its int32 candidate, `optimize --int32-inputs`, then run on the same values);
/// a value outside the declared width, or a float tensor for an integer input (or the
/// reverse), is an error ([`ParityError::InputType`], naming `label`). Tensors of the
/// declared type, and tensors the model declares no tensor type for, are kept as they are.
pub fn conform_inputs(model: &Model, inputs: &[Tensor], label: &str) -> Result<Vec<Tensor>> {
    let error = |problem: String| ParityError::InputType {
        model: label.to_string(),
        problem,
    };
    inputs
        .iter()
        .map(|t| {
            let declared = model
                .graph
                .inputs
                .iter()
                .find(|v| v.name == t.name)
                .and_then(|v| v.elem_type());
            let Some(declared) = declared.filter(|d| *d != t.dtype) else {
                return Ok(t.clone());
            };
            if !(is_integer(declared) && is_integer(t.dtype)) {
                return Err(error(format!(
                    "input '{}' is {} but the model declares {}",
                    t.name, t.dtype, declared
                )));
            }
            let values = t.to_i64_vec().map_err(|e| error(e.to_string()))?;
            let out_of_range = |v: &i64| {
                error(format!(
                    "input '{}' holds {v}, which does not fit the declared {declared}",
                    t.name
                ))
            };
            match declared {
                DataType::Int64 => Ok(Tensor::from_i64(&t.name, t.dims.clone(), &values)),
                DataType::Int32 => {
                    let narrow = values
                        .iter()
                        .map(|v| i32::try_from(*v).map_err(|_| out_of_range(v)))
                        .collect::<Result<Vec<i32>>>()?;
                    Ok(Tensor::from_i32(&t.name, t.dims.clone(), &narrow))
                }
                other => Err(error(format!(
                    "input '{}' is {} but the model declares {other}, which parity does not convert to",
                    t.name, t.dtype
                ))),
            }
        })
        .collect()
}

/// Test data read from a directory in the ONNX backend-test layout.
#[derive(Debug)]
pub struct TestData {
    /// `input_N.pb`, named after the model's inputs.
    pub inputs: Vec<Tensor>,
    /// `output_N.pb`, named after the model's outputs.
    pub outputs: Vec<Tensor>,
}

/// Reads `input_0.pb, input_1.pb, ...` and `output_0.pb, ...` from `dir`. A tensor whose own
/// name is one of the model's inputs (outputs) keeps it; others take the name at their position.
pub fn read_test_data(model: &Model, dir: &Path) -> Result<TestData> {
    let graph = &model.graph;
    let input_names: Vec<&str> = graph
        .inputs
        .iter()
        .filter(|v| graph.initializer(&v.name).is_none())
        .map(|v| v.name.as_str())
        .collect();
    let output_names: Vec<&str> = graph.outputs.iter().map(|v| v.name.as_str()).collect();
    let test_data_error = |problem: String| ParityError::TestData {
        dir: dir.to_path_buf(),
        problem,
    };
    let read = |prefix: &str, names: &[&str]| -> Result<Vec<Tensor>> {
        let mut tensors = Vec::new();
        for i in 0.. {
            let path = dir.join(format!("{prefix}_{i}.pb"));
            if !path.is_file() {
                break;
            }
            let tensor = Tensor::load_pb(&path).map_err(|source| ParityError::ReadTensor {
                path: path.clone(),
                source,
            })?;
            let name = if names.contains(&tensor.name.as_str()) {
                tensor.name.clone()
            } else {
                match names.get(i) {
                    Some(n) => n.to_string(),
                    None => {
                        return Err(test_data_error(format!(
                            "{} has no matching {prefix} in the model (it has {})",
                            path.display(),
                            names.len()
                        )));
                    }
                }
            };
            tensors.push(tensor.renamed(name));
        }
        Ok(tensors)
    };
    let inputs = read("input", &input_names)?;
    if inputs.is_empty() {
        return Err(test_data_error("no input_0.pb".into()));
    }
    for name in &input_names {
        if !inputs.iter().any(|t| t.name == *name) {
            return Err(test_data_error(format!(
                "no tensor for the model's input '{name}'"
            )));
        }
    }
    let outputs = read("output", &output_names)?;
    Ok(TestData { inputs, outputs })
}

#[cfg(test)]
mod tests;
