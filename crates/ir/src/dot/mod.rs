//! A Graphviz (DOT) view of a graph, for looking at what a rewrite did.
//!
//! Nodes are grouped into one cluster per layer ([`Layers`], read from node names); a graph
//! of more than [`DotOptions::collapse_above`] nodes shows each layer as one box listing its
//! ops, so a 12-layer model stays readable.

mod layers;

use std::collections::HashMap;
use std::fmt::Write;

use crate::graph::{Graph, Node};
use crate::model::MS_DOMAIN;

pub use layers::{Layers, layer_of_path};

/// Fill colour of ONNX Runtime's fused ops (`com.microsoft`), so they stand out.
pub const FUSED_FILL: &str = "#cfe2ff";

/// Fill colour of a collapsed layer without fused ops.
const LAYER_FILL: &str = "#f2f2f2";

/// The default of [`DotOptions::collapse_above`]: about where a full drawing stops being
/// readable.
pub const DEFAULT_COLLAPSE_ABOVE: usize = 64;

/// How [`Graph::to_dot_with`] draws a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotOptions {
    /// Draw each layer as one box when the graph has more nodes than this; `None` draws
    /// every node. A graph without layers is always drawn in full.
    pub collapse_above: Option<usize>,
}

impl Default for DotOptions {
    /// Layers collapse above [`DEFAULT_COLLAPSE_ABOVE`] nodes.
    fn default() -> DotOptions {
        DotOptions {
            collapse_above: Some(DEFAULT_COLLAPSE_ABOVE),
        }
    }
}

impl DotOptions {
    /// Every node drawn, whatever the size of the graph.
    pub fn full() -> DotOptions {
        DotOptions {
            collapse_above: None,
        }
    }
}

/// A DOT string literal: backslashes and quotes escaped, each newline written as the
/// two characters `\n` (Graphviz's line break). Escaping happens here and nowhere else.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Graph {
    /// The graph in Graphviz's DOT language, with the default [`DotOptions`].
    pub fn to_dot(&self) -> String {
        self.to_dot_with(&DotOptions::default())
    }

    /// The graph in Graphviz's DOT language: one box per node (labelled with its op type,
    /// and on a second line its domain outside ONNX; `com.microsoft` nodes filled with
    /// [`FUSED_FILL`]), the nodes of each layer in a `cluster_<k>` subgraph labelled with
    /// the layer's name, edges labelled with value names, graph inputs and outputs as
    /// ellipses. Initializers are left out (they would swamp the picture).
    ///
    /// Collapsed (see [`DotOptions::collapse_above`]), each layer is one box `c<k>` whose
    /// label gives the layer's name, node count and op types (fused ops first, each with
    /// its count when above one); edges between the same two boxes are drawn once,
    /// labelled with the value name, or with the number of values when several.
    pub fn to_dot_with(&self, options: &DotOptions) -> String {
        let layers = self.layers();
        let collapse = !layers.keys.is_empty()
            && options
                .collapse_above
                .is_some_and(|limit| self.nodes.len() > limit);
        let members = layers.members();
        let shown = |i: usize| match layers.of_node.get(i).copied().flatten() {
            Some(k) if collapse => format!("c{k}"),
            _ => format!("n{i}"),
        };
        let mut s = String::from(
            "digraph onnx {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        );
        let mut producer: HashMap<&str, String> = HashMap::new();
        for i in &self.inputs {
            let id = quote(&format!("in:{}", i.name));
            let _ = writeln!(s, "  {id} [shape=ellipse];");
            producer.insert(i.name.as_str(), id);
        }
        for (k, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), shown(k));
            }
        }

        for (k, n) in self.nodes.iter().enumerate() {
            if layers.of_node.get(k).copied().flatten().is_none() {
                let _ = writeln!(s, "  n{k} {};", node_attrs(n));
            }
        }
        for (k, nodes) in members.iter().enumerate() {
            let label = layers.labels.get(k).map_or("", String::as_str);
            if collapse {
                let _ = writeln!(s, "  c{k} {};", layer_box(label, nodes, &self.nodes));
            } else {
                let _ = writeln!(
                    s,
                    "  subgraph cluster_{k} {{\n    label={};\n    style=rounded;",
                    quote(label)
                );
                for &i in nodes {
                    if let Some(n) = self.nodes.get(i) {
                        let _ = writeln!(s, "    n{i} {};", node_attrs(n));
                    }
                }
                s.push_str("  }\n");
            }
        }

        // Edges in order of first use; collapsed, each pair of endpoints once.
        let mut edges: Vec<(String, String, Vec<&str>)> = Vec::new();
        let mut edge_at: HashMap<(String, String), usize> = HashMap::new();
        for (k, n) in self.nodes.iter().enumerate() {
            let to = shown(k);
            for i in n.inputs.iter().filter(|i| !i.is_empty()) {
                let Some(from) = producer.get(i.as_str()) else {
                    continue;
                };
                if !collapse {
                    edges.push((from.clone(), to.clone(), vec![i.as_str()]));
                    continue;
                }
                if *from == to {
                    continue;
                }
                let key = (from.clone(), to.clone());
                match edge_at.get(&key) {
                    Some(&at) => {
                        if let Some(values) = edges.get_mut(at).map(|e| &mut e.2)
                            && !values.contains(&i.as_str())
                        {
                            values.push(i.as_str());
                        }
                    }
                    None => {
                        edge_at.insert(key, edges.len());
                        edges.push((from.clone(), to.clone(), vec![i.as_str()]));
                    }
                }
            }
        }
        for (from, to, values) in &edges {
            let label = match values.as_slice() {
                [one] => (*one).to_string(),
                many => format!("{} values", many.len()),
            };
            let _ = writeln!(s, "  {from} -> {to} [label={}, fontsize=8];", quote(&label));
        }
        for o in &self.outputs {
            let id = quote(&format!("out:{}", o.name));
            let _ = writeln!(s, "  {id} [shape=ellipse];");
            if let Some(p) = producer.get(o.name.as_str()) {
                let _ = writeln!(s, "  {p} -> {id};");
            }
        }
        s.push_str("}\n");
        s
    }
}

/// The attribute list of one node's box.
fn node_attrs(n: &Node) -> String {
    let label = if n.is_onnx() {
        n.op_type.clone()
    } else {
        format!("{}\n({})", n.op_type, n.domain)
    };
    let fill = if n.domain == MS_DOMAIN {
        format!(", style=filled, fillcolor={}", quote(FUSED_FILL))
    } else {
        String::new()
    };
    format!("[label={}{fill}]", quote(&label))
}

/// The attribute list of a collapsed layer's box: `layer.3 — 7 nodes` over the op types,
/// fused (non-ONNX) ops first, each group in order of first appearance.
fn layer_box(label: &str, members: &[usize], nodes: &[Node]) -> String {
    let mut ops: Vec<(&str, bool, usize)> = Vec::new();
    for n in members.iter().filter_map(|&i| nodes.get(i)) {
        match ops.iter_mut().find(|(op, _, _)| *op == n.op_type) {
            Some((_, _, count)) => *count += 1,
            None => ops.push((n.op_type.as_str(), !n.is_onnx(), 1)),
        }
    }
    ops.sort_by_key(|&(_, fused, _)| !fused);
    let fused = ops.iter().any(|&(_, fused, _)| fused);
    let mut text = format!(
        "{label} \u{2014} {} node{}",
        members.len(),
        if members.len() == 1 { "" } else { "s" }
    );
    // Op types four to a line, so the box stays compact.
    for (k, (op, _, count)) in ops.iter().enumerate() {
        text.push_str(if k % 4 == 0 { "\n" } else { ", " });
        text.push_str(op);
        if *count > 1 {
            let _ = write!(text, " x{count}");
        }
    }
    format!(
        "[label={}, style=\"rounded,filled\", fillcolor={}]",
        quote(&text),
        quote(if fused { FUSED_FILL } else { LAYER_FILL })
    )
}

#[cfg(test)]
mod tests;
