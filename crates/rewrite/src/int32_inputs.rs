//! int32 graph inputs (`optimize --int32-inputs`, ONNX Runtime's `--input_int32`).
//!
//! PyTorch exports token ids, token types, positions and attention masks as int64, while
//! ONNX Runtime's fused kernels read them as int32 (`EmbedLayerNormalization`'s ids and
//! mask, `Attention`'s `mask_index`), so an optimized model casts each of them at the
//! start. [`narrow_int64_inputs`] declares them int32 instead and removes the casts that
//! become no-ops.
//!
//! **Which inputs.** Every graph input of element type int64, except one that also has an
//! initializer (a default the caller may override) or is itself a graph output. In the
//! encoders transfuse targets those are exactly the ids, token types, positions and masks.
//!
//! **Soundness.** The narrowed model computes the same as the original for every input
//! whose values fit in int32 (`-2^31..2^31`): ids beyond 2^31 are not supported (real
//! vocabularies are far smaller). Each reader of the input gets either the int32 input
//! where it means the same for those values, or one shared `Cast(to=INT64)` of it, which
//! restores the original value exactly:
//! - `Cast(to=X)` reads the int32 input: casting an int32-range value from int32 or from
//!   int64 gives the same X. A `Cast(to=INT32)` is then an identity and is removed (its
//!   readers read the input; kept as `Identity` where it is a graph output). A
//!   `Cast(to=INT64)` of the input is the input's original value, so its readers are
//!   treated as readers of the input, and it is removed too.
//! - `Shape` and `Size` read the input: they see only its shape.
//! - `Gather` and `GatherElements` read it as indices: ONNX accepts int32 and int64 indices
//!   with the same meaning.
//! - `Equal`, `Less`, `Greater`, `LessOrEqual` and `GreaterOrEqual` need both operands of
//!   one type: they read the input when the other operand is the input too, or an int64
//!   constant (initializer or `Constant`) whose values all fit in int32, which is replaced by
//!   an int32 copy (exact); the int64 constant goes when nothing else reads it.
//! - Every other reader reads the shared `Cast(to=INT64)`.
//!
//! Casts of the input to the same type are merged afterwards. A graph with subgraphs is
//! refused (their reads of outer values would not be retyped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use transfuse_ir::{AttrValue, DataType, Graph, Model, Node, Tensor, ValueInfo, ValueType};

use crate::error::RewriteError;
use crate::fresh_names::FreshNames;

/// What [`narrow_int64_inputs`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Int32InputsReport {
    /// The inputs now declared int32, in graph order.
    pub narrowed: Vec<String>,
    /// `Cast` nodes removed: identities on the narrowed inputs, casts back to int64 of
    /// them, and duplicates.
    pub casts_removed: usize,
    /// `Cast(to=INT64)` nodes added, one per narrowed input that some reader needs as
    /// int64.
    pub casts_added: usize,
}

/// Comparison ops whose operands must share one type.
const COMPARISONS: &[&str] = &["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"];

/// Constants larger than this are not re-typed for a comparison (it keeps the Cast).
const MAX_RETYPED_ELEMENTS: usize = 1024;

/// Declares every int64 graph input int32 and rewires its readers, as the
/// [module docs](self) describe. A model without such inputs comes back unchanged.
///
/// Errors on a graph with subgraphs and on a graph the IR's checks reject afterwards (a
/// bug).
pub fn narrow_int64_inputs(model: &Model) -> Result<(Model, Int32InputsReport), RewriteError> {
    let mut report = Int32InputsReport::default();
    let graph = &model.graph;
    let outputs: HashSet<&str> = graph.outputs.iter().map(|v| v.name.as_str()).collect();
    let candidates: Vec<String> = graph
        .inputs
        .iter()
        .filter(|v| v.elem_type() == Some(DataType::Int64))
        .filter(|v| graph.initializer(&v.name).is_none() && !outputs.contains(v.name.as_str()))
        .map(|v| v.name.clone())
        .collect();
    if candidates.is_empty() {
        return Ok((model.clone(), report));
    }
    if let Some(node) = graph.nodes.iter().find(|n| n.has_subgraph()) {
        return Err(RewriteError::Int32Inputs(format!(
            "node '{}' has a subgraph; graphs with subgraphs are not narrowed",
            node.label()
        )));
    }
    let mut out = graph.clone();
    let mut names = FreshNames::new(graph);
    for input in candidates {
        narrow(&mut out, &input, &mut names, &mut report)?;
        report.narrowed.push(input);
    }
    out.check()?;
    Ok((model.clone_with_graph(out), report))
}

/// The `to` of an ONNX `Cast` node, `None` for any other node.
fn cast_target(node: &Node) -> Option<DataType> {
    if node.op_type != "Cast" || !node.is_onnx() {
        return None;
    }
    let to = i32::try_from(node.attr_int("to")?).ok()?;
    Some(DataType::from_code(to))
}

/// Narrows the graph input `input` of `graph` (int64, checked by the caller).
fn narrow(
    graph: &mut Graph,
    input: &str,
    names: &mut FreshNames,
    report: &mut Int32InputsReport,
) -> Result<(), RewriteError> {
    let outputs: HashSet<String> = graph.outputs.iter().map(|v| v.name.clone()).collect();
    // The values equal to the original int64 input: itself and its casts to int64 (in
    // topological order, so one pass finds chains). Those casts are removed.
    let mut same: HashSet<String> = HashSet::from([input.to_string()]);
    let mut removed: Vec<bool> = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if cast_target(node) == Some(DataType::Int64)
            && node.inputs.first().is_some_and(|v| same.contains(v))
            && let Some(o) = node.outputs.first()
            && !outputs.contains(o)
        {
            same.insert(o.clone());
            removed[i] = true;
        }
    }
    let widened = names.fresh(&format!("{input}_int64"));
    let mut needs_widened = false;
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut retyped: HashMap<String, String> = HashMap::new();
    for (i, gone) in removed.iter_mut().enumerate() {
        if *gone {
            continue;
        }
        let reads: Vec<usize> = (0..graph.nodes[i].inputs.len())
            .filter(|&k| same.contains(&graph.nodes[i].inputs[k]))
            .collect();
        if reads.is_empty() {
            continue;
        }
        let node = &graph.nodes[i];
        let onnx = node.is_onnx();
        match (onnx, node.op_type.as_str(), cast_target(node)) {
            (_, _, Some(DataType::Int32)) => {
                let out_name = node.outputs.first().cloned().unwrap_or_default();
                if outputs.contains(&out_name) {
                    let node = &mut graph.nodes[i];
                    node.op_type = "Identity".to_string();
                    node.attributes.clear();
                    node.inputs = vec![input.to_string()];
                } else {
                    renames.insert(out_name, input.to_string());
                    *gone = true;
                }
            }
            (_, _, Some(_)) | (true, "Shape" | "Size", _) => {
                graph.nodes[i].inputs[0] = input.to_string();
            }
            (true, "Gather" | "GatherElements", _) => {
                for k in reads {
                    if k == 1 {
                        graph.nodes[i].inputs[k] = input.to_string();
                    } else {
                        graph.nodes[i].inputs[k] = widened.clone();
                        needs_widened = true;
                    }
                }
            }
            (true, op, _) if COMPARISONS.contains(&op) && node.inputs.len() == 2 => {
                let other = 1 - reads[0];
                let other_name = node.inputs[other].clone();
                let replacement = if same.contains(&other_name) {
                    Some(input.to_string())
                } else if let Some(name) = retyped.get(&other_name) {
                    Some(name.clone())
                } else if let Some(t) = int32_copy(graph, &other_name, names) {
                    let name = t.name.clone();
                    graph.initializers.insert(name.clone(), Arc::new(t));
                    retyped.insert(other_name, name.clone());
                    Some(name)
                } else {
                    None
                };
                let node = &mut graph.nodes[i];
                match replacement {
                    Some(r) => {
                        node.inputs[reads[0]] = input.to_string();
                        node.inputs[other] = r;
                    }
                    None => {
                        for k in reads {
                            node.inputs[k] = widened.clone();
                        }
                        needs_widened = true;
                    }
                }
            }
            _ => {
                for k in reads {
                    graph.nodes[i].inputs[k] = widened.clone();
                }
                needs_widened = true;
            }
        }
    }
    report.casts_removed += removed.iter().filter(|&&r| r).count();
    let mut gone: HashSet<String> = graph
        .nodes
        .iter()
        .zip(&removed)
        .filter(|(_, r)| **r)
        .flat_map(|(n, _)| n.outputs.iter().cloned())
        .collect();
    let mut kept: Vec<Node> = Vec::with_capacity(graph.nodes.len() + 1);
    if needs_widened {
        kept.push(Node {
            name: format!("{widened}_cast"),
            ..Node::new("Cast", "", vec![input.to_string()], vec![widened.clone()])
                .with_attr("to", AttrValue::Int(i64::from(DataType::Int64.code())))
        });
        report.casts_added += 1;
    }
    kept.extend(
        std::mem::take(&mut graph.nodes)
            .into_iter()
            .zip(&removed)
            .filter(|(_, r)| !**r)
            .map(|(n, _)| n),
    );
    graph.nodes = kept;
    let merged = merge_duplicate_casts(graph, input, &outputs, &mut renames);
    report.casts_removed += merged;
    gone.extend(renames.keys().cloned());
    for node in &mut graph.nodes {
        for v in &mut node.inputs {
            if let Some(to) = renames.get(v.as_str()) {
                *v = to.clone();
            }
        }
    }
    // Constants replaced by their int32 copies go when nothing else reads them.
    for constant in retyped.keys() {
        let read =
            outputs.contains(constant) || graph.nodes.iter().any(|n| n.inputs.contains(constant));
        if !read {
            graph.initializers.shift_remove(constant);
            graph.nodes.retain(|n| {
                !(n.op_type == "Constant" && n.is_onnx() && n.outputs.first() == Some(constant))
            });
            gone.insert(constant.clone());
        }
    }
    // Types: the input is int32, the shared cast int64; removed values lose their entry.
    let shape = graph
        .inputs
        .iter()
        .find(|v| v.name == input)
        .and_then(|v| v.shape().map(<[_]>::to_vec));
    for v in graph.inputs.iter_mut().filter(|v| v.name == input) {
        if let Some(ValueType::Tensor { elem_type, .. }) = &mut v.ty {
            *elem_type = DataType::Int32;
        }
    }
    graph.value_info.retain(|v| !gone.contains(&v.name));
    if needs_widened {
        graph
            .value_info
            .push(ValueInfo::tensor(widened, DataType::Int64, shape));
    }
    Ok(())
}

/// Merges the `Cast` nodes that read `input` with the same attributes into the first one:
/// readers of the others read its output (a graph output keeps its own cast). Returns how
/// many were removed; their outputs are added to `renames`.
fn merge_duplicate_casts(
    graph: &mut Graph,
    input: &str,
    outputs: &HashSet<String>,
    renames: &mut HashMap<String, String>,
) -> usize {
    let mut first: Vec<(Vec<transfuse_ir::Attribute>, String)> = Vec::new();
    let mut drop = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if cast_target(node).is_none() || node.inputs.first().map(String::as_str) != Some(input) {
            continue;
        }
        let Some(o) = node.outputs.first() else {
            continue;
        };
        match first.iter().find(|(attrs, _)| *attrs == node.attributes) {
            Some((_, kept)) if !outputs.contains(o) => {
                renames.insert(o.clone(), kept.clone());
                drop[i] = true;
            }
            Some(_) => {}
            None => first.push((node.attributes.clone(), o.clone())),
        }
    }
    let count = drop.iter().filter(|&&d| d).count();
    let mut index = 0;
    graph.nodes.retain(|_| {
        let keep = !drop[index];
        index += 1;
        keep
    });
    count
}

/// An int32 initializer equal to the int64 constant `name` (an initializer that is not a
/// graph input, or a `Constant` node's output) when every value fits in int32; `None`
/// otherwise.
fn int32_copy(graph: &Graph, name: &str, names: &mut FreshNames) -> Option<Tensor> {
    let is_input = graph.inputs.iter().any(|v| v.name == name);
    let tensor: Tensor = match graph.initializer(name) {
        Some(t) if !is_input => (**t).clone(),
        Some(_) => return None,
        None => {
            let node = graph.nodes.iter().find(|n| {
                n.op_type == "Constant"
                    && n.is_onnx()
                    && n.outputs.first().is_some_and(|o| o == name)
            })?;
            match node.attributes.as_slice() {
                [a] => match &a.value {
                    AttrValue::Tensor(t) => t.clone(),
                    AttrValue::Int(v) if a.name == "value_int" => {
                        Tensor::from_i64(name, vec![], &[*v])
                    }
                    AttrValue::Ints(v) if a.name == "value_ints" => {
                        Tensor::from_i64(name, vec![v.len() as i64], v)
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    };
    if tensor.dtype != DataType::Int64 || tensor.numel().ok()? > MAX_RETYPED_ELEMENTS {
        return None;
    }
    let values = tensor.to_i64_vec().ok()?;
    if values.len() != tensor.numel().ok()? {
        return None;
    }
    let narrow: Vec<i32> = values
        .iter()
        .map(|&v| i32::try_from(v).ok())
        .collect::<Option<_>>()?;
    Some(Tensor::from_i32(
        names.fresh(&format!("{name}_int32")),
        tensor.dims.clone(),
        &narrow,
    ))
}
