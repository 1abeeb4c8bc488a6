//! Fixed shapes (`--fix-shapes`): the dynamic dims of a model's inputs made static, so the
//! optimizer can fold every shape computation to constants.
//!
//! A spec is a comma-separated list of `name=value` items, in two spellings that mix:
//! - by `dim_param`: `batch=1,sequence=128` fixes every graph input dim named `batch` or
//!   `sequence`;
//! - by input: `input_ids=1x128` fixes the whole shape of input `input_ids` (the rank must
//!   match). Where that input's dims are named, the names take those sizes everywhere.
//!
//! An item whose name is a graph input is read as an input's shape, any other as a
//! `dim_param`. Resolution against a model ([`FixedShapes::resolve`]) fails on a name that is
//! neither (listing the names that are), a wrong rank, a size given to a dim whose declared
//! size differs, and two different sizes for one `dim_param`. The named dims are then made
//! static in the graph inputs, outputs and `value_info` ([`FixedShapes::apply`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use transfuse_ir::{Dim, Graph, Model, ValueInfo, ValueType};

/// What is wrong with a fixed-shapes spec, alone or against a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FixedShapesError {
    /// The spec does not parse: empty, an empty item, an item without `=`, a size that is
    /// no integer.
    #[error(
        "invalid shape spec '{spec}': {reason} (expected e.g. 'batch=1,sequence=128' or 'input_ids=1x128')"
    )]
    Syntax {
        /// The whole spec.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A size is zero or negative.
    #[error("'{item}': sizes must be positive")]
    NonPositive {
        /// The item.
        item: String,
    },
    /// The same name is given twice with different sizes.
    #[error("'{name}' is given twice, as {first} and as {second}")]
    Repeated {
        /// The name.
        name: String,
        /// The first value.
        first: String,
        /// The second value.
        second: String,
    },
    /// A name that is neither a graph input nor a `dim_param` of one.
    #[error(
        "'{name}' is neither a graph input nor a dim name of one (inputs: {inputs}; dim names: {dims})"
    )]
    UnknownName {
        /// The name given.
        name: String,
        /// The graph inputs, comma separated.
        inputs: String,
        /// The `dim_param`s of the graph inputs, comma separated (`none` when there are none).
        dims: String,
    },
    /// An input's shape of the wrong rank.
    #[error("input '{input}' has rank {rank} ({declared}), but {given} sizes were given")]
    RankMismatch {
        /// The input.
        input: String,
        /// Its declared rank.
        rank: usize,
        /// Its declared shape, as text.
        declared: String,
        /// How many sizes were given.
        given: usize,
    },
    /// An input has no declared shape to fix.
    #[error("input '{input}' declares no tensor shape to fix")]
    NoShape {
        /// The input.
        input: String,
    },
    /// A size given to a dim that is declared with another size.
    #[error("input '{input}' dim {axis} is declared {declared}, not {given}")]
    StaticMismatch {
        /// The input.
        input: String,
        /// The axis.
        axis: usize,
        /// The declared size.
        declared: i64,
        /// The size given.
        given: i64,
    },
    /// One `dim_param` given two different sizes (directly or through inputs' shapes).
    #[error("dim '{dim}' is fixed to both {first} and {second}")]
    Conflict {
        /// The dim name.
        dim: String,
        /// One size.
        first: i64,
        /// The other.
        second: i64,
    },
}

/// One item of a spec: a name and its sizes (one for a `dim_param`, the whole shape for an
/// input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedShape {
    /// A graph input or a `dim_param`.
    pub name: String,
    /// The sizes given (`1x128` is `[1, 128]`).
    pub sizes: Vec<i64>,
}

/// Dims to make static before optimizing (see the module docs); empty by default (nothing
/// fixed). Parse it from a spec: `"batch=1,sequence=128".parse::<FixedShapes>()`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FixedShapes {
    items: Vec<FixedShape>,
}

/// A spec resolved against one model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedShapes {
    /// The size of each fixed `dim_param`.
    pub dims: BTreeMap<String, i64>,
    /// The size of unnamed dims fixed through an input's shape: `(input, axis) -> size`.
    pub unnamed: BTreeMap<(String, usize), i64>,
}

impl FixedShapes {
    /// True when nothing is fixed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items, in spec order.
    pub fn items(&self) -> &[FixedShape] {
        &self.items
    }

    /// Resolves the spec against `graph`'s inputs: every `dim_param` fixed and its size.
    pub fn resolve(&self, graph: &Graph) -> Result<ResolvedShapes, FixedShapesError> {
        let inputs: Vec<&ValueInfo> = graph
            .inputs
            .iter()
            .filter(|v| !graph.initializers.contains_key(&v.name))
            .collect();
        let mut resolved = ResolvedShapes::default();
        let mut fix = |dim: &str, size: i64| match resolved.dims.insert(dim.to_string(), size) {
            Some(first) if first != size => Err(FixedShapesError::Conflict {
                dim: dim.to_string(),
                first,
                second: size,
            }),
            _ => Ok(()),
        };
        let mut unnamed = BTreeMap::new();
        for item in &self.items {
            if let Some(input) = inputs.iter().find(|v| v.name == item.name) {
                let declared = input.shape().ok_or_else(|| FixedShapesError::NoShape {
                    input: input.name.clone(),
                })?;
                if declared.len() != item.sizes.len() {
                    return Err(FixedShapesError::RankMismatch {
                        input: input.name.clone(),
                        rank: declared.len(),
                        declared: shape_text(declared),
                        given: item.sizes.len(),
                    });
                }
                for (axis, (dim, &size)) in declared.iter().zip(&item.sizes).enumerate() {
                    match dim {
                        Dim::Known(v) if *v != size => {
                            return Err(FixedShapesError::StaticMismatch {
                                input: input.name.clone(),
                                axis,
                                declared: *v,
                                given: size,
                            });
                        }
                        Dim::Known(_) => {}
                        Dim::Symbol(s) => fix(s, size)?,
                        Dim::Unknown => {
                            unnamed.insert((input.name.clone(), axis), size);
                        }
                    }
                }
            } else {
                let names = input_dim_names(&inputs);
                let [size] = item.sizes.as_slice() else {
                    return Err(unknown_name(&item.name, &inputs, &names));
                };
                if !names.contains(item.name.as_str()) {
                    return Err(unknown_name(&item.name, &inputs, &names));
                }
                fix(&item.name, *size)?;
            }
        }
        resolved.unnamed = unnamed;
        Ok(resolved)
    }

    /// `model` with the fixed dims made static in its graph inputs, outputs and
    /// `value_info` (any dim named after a fixed `dim_param`; an input's unnamed dims where
    /// its shape was given). Errors as [`FixedShapes::resolve`].
    pub fn apply(&self, model: &Model) -> Result<Model, FixedShapesError> {
        let resolved = self.resolve(&model.graph)?;
        let mut out = model.clone();
        let g = &mut out.graph;
        for v in g
            .inputs
            .iter_mut()
            .chain(&mut g.outputs)
            .chain(&mut g.value_info)
        {
            let name = v.name.clone();
            let Some(ValueType::Tensor {
                shape: Some(dims), ..
            }) = v.ty.as_mut()
            else {
                continue;
            };
            for (axis, dim) in dims.iter_mut().enumerate() {
                let size = match dim {
                    Dim::Symbol(s) => resolved.dims.get(s.as_str()).copied(),
                    Dim::Unknown => resolved.unnamed.get(&(name.clone(), axis)).copied(),
                    Dim::Known(_) => None,
                };
                if let Some(size) = size {
                    *dim = Dim::Known(size);
                }
            }
        }
        Ok(out)
    }
}

/// The `dim_param`s of `inputs`.
fn input_dim_names<'a>(inputs: &[&'a ValueInfo]) -> BTreeSet<&'a str> {
    inputs
        .iter()
        .filter_map(|v| v.shape())
        .flatten()
        .filter_map(|d| match d {
            Dim::Symbol(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn unknown_name(name: &str, inputs: &[&ValueInfo], dims: &BTreeSet<&str>) -> FixedShapesError {
    let inputs: Vec<String> = inputs
        .iter()
        .map(|v| match v.shape() {
            Some(s) => format!("{} {}", v.name, shape_text(s)),
            None => v.name.clone(),
        })
        .collect();
    FixedShapesError::UnknownName {
        name: name.to_string(),
        inputs: inputs.join(", "),
        dims: if dims.is_empty() {
            "none".to_string()
        } else {
            dims.iter().copied().collect::<Vec<_>>().join(", ")
        },
    }
}

/// `[batch, 128]`.
fn shape_text(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl FromStr for FixedShapes {
    type Err = FixedShapesError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let syntax = |reason: String| FixedShapesError::Syntax {
            spec: spec.to_string(),
            reason,
        };
        if spec.trim().is_empty() {
            return Err(syntax("the spec is empty".to_string()));
        }
        let mut items: Vec<FixedShape> = Vec::new();
        for item in spec.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(syntax("an item is empty".to_string()));
            }
            let Some((name, value)) = item.split_once('=') else {
                return Err(syntax(format!("'{item}' has no '='")));
            };
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(syntax(format!("'{item}' has no name")));
            }
            let sizes = value
                .split('x')
                .map(|s| s.trim().parse::<i64>())
                .collect::<Result<Vec<i64>, _>>()
                .map_err(|_| syntax(format!("'{value}' is not a size or sizes like 1x128")))?;
            if sizes.iter().any(|&s| s <= 0) {
                return Err(FixedShapesError::NonPositive {
                    item: item.to_string(),
                });
            }
            match items.iter().find(|i| i.name == name) {
                Some(first) if first.sizes != sizes => {
                    return Err(FixedShapesError::Repeated {
                        name: name.to_string(),
                        first: sizes_text(&first.sizes),
                        second: sizes_text(&sizes),
                    });
                }
                Some(_) => {}
                None => items.push(FixedShape {
                    name: name.to_string(),
                    sizes,
                }),
            }
        }
        Ok(FixedShapes { items })
    }
}

fn sizes_text(sizes: &[i64]) -> String {
    sizes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

impl fmt::Display for FixedShapes {
    /// The canonical spec (`batch=1,input_ids=1x128`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .items
            .iter()
            .map(|i| format!("{}={}", i.name, sizes_text(&i.sizes)))
            .collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use transfuse_ir::DataType;

    fn model() -> Model {
        let mut g = Graph::default();
        let dims = |d: &[&str]| {
            d.iter()
                .map(|s| {
                    s.parse::<i64>()
                        .map_or_else(|_| Dim::Symbol((*s).to_string()), Dim::Known)
                })
                .collect::<Vec<_>>()
        };
        g.inputs.push(ValueInfo::tensor(
            "input_ids",
            DataType::Int64,
            Some(dims(&["batch", "sequence"])),
        ));
        g.inputs.push(ValueInfo::tensor(
            "mask",
            DataType::Int64,
            Some(vec![Dim::Symbol("batch".into()), Dim::Unknown]),
        ));
        g.inputs.push(ValueInfo::tensor(
            "pixels",
            DataType::Float,
            Some(dims(&["batch", "3", "32"])),
        ));
        g.outputs.push(ValueInfo::tensor(
            "out",
            DataType::Float,
            Some(dims(&["batch", "sequence", "8"])),
        ));
        Model {
            graph: g,
            ..Model::default()
        }
    }

    fn shape(m: &Model, name: &str) -> Vec<Dim> {
        m.graph
            .inputs
            .iter()
            .chain(&m.graph.outputs)
            .find(|v| v.name == name)
            .and_then(|v| v.shape())
            .unwrap()
            .to_vec()
    }

    fn err(spec: &str) -> FixedShapesError {
        spec.parse::<FixedShapes>()
            .and_then(|f| f.apply(&model()))
            .unwrap_err()
    }

    #[test]
    fn dim_names_and_input_shapes_mix() {
        let f: FixedShapes = "batch=2, mask=2x16".parse().unwrap();
        let m = f.apply(&model()).unwrap();
        let k = |v: &[i64]| v.iter().map(|&d| Dim::Known(d)).collect::<Vec<_>>();
        assert_eq!(shape(&m, "input_ids")[0], Dim::Known(2));
        assert_eq!(shape(&m, "input_ids")[1], Dim::Symbol("sequence".into()));
        assert_eq!(shape(&m, "mask"), k(&[2, 16]));
        assert_eq!(shape(&m, "pixels"), k(&[2, 3, 32]));
        let f: FixedShapes = "input_ids=1x128".parse().unwrap();
        let m = f.apply(&model()).unwrap();
        assert_eq!(
            shape(&m, "out"),
            k(&[1, 128, 8]),
            "names propagate to outputs"
        );
        assert_eq!(f.to_string(), "input_ids=1x128");
    }

    #[test]
    fn errors_are_typed_and_name_the_valid_names() {
        match err("batchsize=1") {
            FixedShapesError::UnknownName { inputs, dims, .. } => {
                assert_eq!(dims, "batch, sequence");
                assert!(inputs.contains("input_ids [batch, sequence]"), "{inputs}");
            }
            e => panic!("{e}"),
        }
        assert!(matches!(
            err("input_ids=1"),
            FixedShapesError::RankMismatch { .. }
        ));
        assert!(matches!(
            err("pixels=1x4x32"),
            FixedShapesError::StaticMismatch { axis: 1, .. }
        ));
        assert!(matches!(
            err("batch=1,input_ids=2x8"),
            FixedShapesError::Conflict { .. }
        ));
        assert!(matches!(
            err("batch=0"),
            FixedShapesError::NonPositive { .. }
        ));
        assert!(matches!(
            err("batch=1,batch=2"),
            FixedShapesError::Repeated { .. }
        ));
        for bad in [
            "",
            "batch",
            "batch=",
            "=1",
            "batch=1,,sequence=2",
            "batch=one",
            "x=1xx2",
        ] {
            assert!(
                matches!(err(bad), FixedShapesError::Syntax { .. }),
                "{bad:?}"
            );
        }
        assert!("batch=1,batch=1".parse::<FixedShapes>().is_ok());
    }
}
