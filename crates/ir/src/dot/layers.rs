//! Which layer each node belongs to, read from the names exporters give nodes (see
//! [`Layers`]).

use std::collections::HashMap;

use crate::graph::{Graph, Node};

/// The metadata key under which torch's dynamo exporter lists a node's module scopes.
pub(super) const NAME_SCOPES: &str = "pkg.torch.onnx.name_scopes";

/// The layer of each node of a graph, read from names.
///
/// A node's module path comes from torch dynamo's `pkg.torch.onnx.name_scopes` metadata
/// (its deepest scope, `m.encoder.layer.3.attention`) or else from its name up to the last
/// `/` (TorchScript: `/m/encoder/layer.3/attention/self/MatMul`). The layer is the path up
/// to its first component that is a number: `layer.3`, `blocks.7`, `h.2`, `layers/0`, and for
/// T5's `block.0/layer.1` the whole `block.0`. A path with no number is outside every layer
/// (embeddings, pooler, classifier).
///
/// A node whose name has no path (`Constant_7`, or a node a fusion created) but whose
/// output keeps an original value name takes that value's path (TorchScript names values
/// after their producers: `/m/encoder/layer.0/output/LayerNorm/..._output_0`).
///
/// Nodes with no path at all (`node_MatMul_12` without metadata, fused nodes with new
/// output names) take the place of their nearest placed neighbours: in rounds, each such
/// node next to placed nodes (readers of its outputs, producers of its inputs, graph inputs
/// and outputs, which count as outside every layer) takes the layer most of them are in; a
/// tie goes to a layer before "outside", and between layers to the one met first, readers
/// before producers. Readers come first because a value with a new name is an intermediate
/// of a rewritten block, read inside that block, while inputs can come from the block
/// before (the residual stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// Layer keys in order of first appearance: the module path up to its first number
    /// (`m/encoder/layer.3`).
    pub keys: Vec<String>,
    /// One short name per key: the numbered component (`layer.3`), or the whole key when
    /// two keys share it.
    pub labels: Vec<String>,
    /// Per node of [`Graph::nodes`], the index of its layer in `keys`; `None` outside every
    /// layer.
    pub of_node: Vec<Option<usize>>,
}

impl Layers {
    /// The node indices of each layer, in node order.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut members = vec![Vec::new(); self.keys.len()];
        for (i, layer) in self.of_node.iter().enumerate() {
            if let Some(list) = layer.and_then(|k| members.get_mut(k)) {
                list.push(i);
            }
        }
        members
    }
}

/// Where a node is placed while layers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Not decided yet (the node's name has no path).
    Unknown,
    /// Outside every layer.
    Outside,
    /// In layer `k`.
    Layer(usize),
}

/// The key and short label of the layer of a module path: the path up to its first
/// component that is a number (components split at `/` and `.`). `None` when no component
/// is a number.
pub fn layer_of_path(path: &str) -> Option<(String, String)> {
    let mut components: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, c) in path.char_indices() {
        if c == '/' || c == '.' {
            components.push((start, i));
            start = i + 1;
        }
    }
    components.push((start, path.len()));
    let at = components.iter().position(|&(s, e)| {
        let text = &path[s..e];
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
    })?;
    let end = components[at].1;
    let label_start = match at.checked_sub(1).map(|p| components[p]) {
        Some((s, e)) if e > s => s,
        _ => components[at].0,
    };
    let key = path[..end].trim_start_matches(['/', '.']).to_string();
    Some((key, path[label_start..end].to_string()))
}

/// The path of a `/`-separated name: everything before the last `/`.
fn slash_path(name: &str) -> Option<&str> {
    name.rfind('/').map(|at| &name[..at])
}

/// A node's module path, `None` when neither its metadata, its name nor its outputs'
/// names carry one.
fn module_path(node: &Node) -> Option<&str> {
    if let Some((_, scopes)) = node.metadata_props.iter().find(|(k, _)| k == NAME_SCOPES) {
        // A Python list literal of nested scopes ending with the node's own name:
        // `['', 'm', 'm.encoder', ..., 'linear_2']`; the one before the last is the deepest.
        let items: Vec<&str> = scopes
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().trim_matches(['\'', '"']))
            .collect();
        if items.len() >= 2 {
            return items.get(items.len() - 2).copied();
        }
    }
    // Values fusions did not create keep their original names, which TorchScript derives
    // from the producing node's (`/m/encoder/layer.0/output/LayerNorm/..._output_0`).
    slash_path(&node.name).or_else(|| node.outputs.iter().find_map(|o| slash_path(o)))
}

impl Graph {
    /// The layer of each node, read from node names and neighbours (see [`Layers`]).
    pub fn layers(&self) -> Layers {
        let mut keys: Vec<String> = Vec::new();
        let mut short: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut place: Vec<Place> = self
            .nodes
            .iter()
            .map(|n| match module_path(n) {
                None => Place::Unknown,
                Some(path) => match layer_of_path(path) {
                    None => Place::Outside,
                    Some((key, label)) => {
                        let next = keys.len();
                        let k = *index.entry(key.clone()).or_insert(next);
                        if k == next {
                            keys.push(key);
                            short.push(label);
                        }
                        Place::Layer(k)
                    }
                },
            })
            .collect();
        if !keys.is_empty() {
            place_by_neighbours(self, &mut place);
        }
        let labels = short
            .iter()
            .zip(&keys)
            .map(|(s, key)| {
                if short.iter().filter(|t| *t == s).count() > 1 {
                    key.clone()
                } else {
                    s.clone()
                }
            })
            .collect();
        Layers {
            keys,
            labels,
            of_node: place
                .iter()
                .map(|p| match p {
                    Place::Layer(k) => Some(*k),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// Places every `Unknown` node reachable from placed ones (see [`Layers`]).
/// Each node is looked at once at the start and once more after a neighbour is placed, so
/// the work is linear in the number of edges.
fn place_by_neighbours(graph: &Graph, place: &mut [Place]) {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), i);
        }
    }
    let consumers = graph.consumers();
    let boundary: std::collections::HashSet<&str> = graph
        .inputs
        .iter()
        .chain(&graph.outputs)
        .map(|v| v.name.as_str())
        .collect();
    // Neighbours in vote order: readers of the outputs, then producers of the inputs; `None`
    // stands for a graph input or output.
    let neighbours = |i: usize| -> Vec<Option<usize>> {
        let Some(n) = graph.nodes.get(i) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in n.outputs.iter().filter(|v| !v.is_empty()) {
            out.extend(
                consumers
                    .get(v.as_str())
                    .into_iter()
                    .flatten()
                    .map(|&c| Some(c)),
            );
            if boundary.contains(v.as_str()) {
                out.push(None);
            }
        }
        for v in n.inputs.iter().filter(|v| !v.is_empty()) {
            if let Some(&p) = producer.get(v.as_str()) {
                out.push(Some(p));
            } else if boundary.contains(v.as_str()) {
                out.push(None);
            }
        }
        out
    };
    let mut frontier: Vec<usize> = (0..place.len())
        .filter(|&i| place[i] == Place::Unknown)
        .collect();
    while !frontier.is_empty() {
        // Decisions of a round read only places from before it.
        let decided: Vec<(usize, Place)> = frontier
            .iter()
            .filter_map(|&i| vote(&neighbours(i), place).map(|p| (i, p)))
            .collect();
        let mut next = Vec::new();
        for &(i, p) in &decided {
            place[i] = p;
        }
        for &(i, _) in &decided {
            next.extend(
                neighbours(i)
                    .into_iter()
                    .flatten()
                    .filter(|&j| place[j] == Place::Unknown),
            );
        }
        next.sort_unstable();
        next.dedup();
        frontier = next;
    }
}

/// The place most placed neighbours have (`None` when none is placed): a layer wins ties
/// against "outside", and among layers the first met wins.
fn vote(neighbours: &[Option<usize>], place: &[Place]) -> Option<Place> {
    let mut outside = 0usize;
    let mut layers: Vec<(usize, usize)> = Vec::new();
    for n in neighbours {
        match n.map_or(Place::Outside, |j| place[j]) {
            Place::Unknown => {}
            Place::Outside => outside += 1,
            Place::Layer(k) => match layers.iter_mut().find(|(l, _)| *l == k) {
                Some((_, count)) => *count += 1,
                None => layers.push((k, 1)),
            },
        }
    }
    // `max_by_key` keeps the last of equal maxima: search from the back for the first.
    let best = layers.iter().rev().max_by_key(|(_, count)| *count).copied();
    match best {
        Some((k, count)) if count >= outside => Some(Place::Layer(k)),
        _ if outside > 0 => Some(Place::Outside),
        _ => None,
    }
}
