//! A Graphviz (DOT) view of a graph, for looking at what a rewrite did.

use std::collections::HashMap;
use std::fmt::Write;

use crate::graph::Graph;
use crate::model::MS_DOMAIN;

/// Fill colour of ONNX Runtime's fused ops (`com.microsoft`), so they stand out.
pub const FUSED_FILL: &str = "#cfe2ff";

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
    /// The graph in Graphviz's DOT language: one box per node (labelled with its op type,
    /// and on a second line its domain outside ONNX; `com.microsoft` nodes filled with
    /// [`FUSED_FILL`]), edges labelled with value names, graph inputs and outputs as
    /// ellipses. Initializers are left out (they would swamp the picture).
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph onnx {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        );
        let mut producer: HashMap<&str, String> = HashMap::new();
        for i in &self.inputs {
            let id = format!("in:{}", i.name);
            let _ = writeln!(s, "  {} [shape=ellipse];", quote(&id));
            producer.insert(i.name.as_str(), quote(&id));
        }
        for (k, n) in self.nodes.iter().enumerate() {
            let id = format!("n{k}");
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
            let _ = writeln!(s, "  {id} [label={}{fill}];", quote(&label));
            for i in n.inputs.iter().filter(|i| !i.is_empty()) {
                if let Some(p) = producer.get(i.as_str()) {
                    let _ = writeln!(s, "  {p} -> {id} [label={}, fontsize=8];", quote(i));
                }
            }
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                producer.insert(o.as_str(), id.clone());
            }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::graph::Node;

    fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> Node {
        Node {
            op_type: op.into(),
            domain: domain.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            ..Node::default()
        }
    }

    #[test]
    fn fused_nodes_get_one_line_break_and_a_fill() {
        let mut graph = Graph::default();
        graph.nodes.push(node("MatMul", "", &["x", "w"], &["y"]));
        graph
            .nodes
            .push(node("Attention", MS_DOMAIN, &["y"], &["a\"b"]));
        let dot = graph.to_dot();
        assert!(dot.contains("  n0 [label=\"MatMul\"];\n"), "{dot}");
        assert!(
            dot.contains(
                "  n1 [label=\"Attention\\n(com.microsoft)\", style=filled, fillcolor=\"#cfe2ff\"];\n"
            ),
            "{dot}"
        );
        assert!(!dot.contains("\\\\n"), "escaped twice: {dot}");
        assert!(
            dot.contains("  n0 -> n1 [label=\"y\", fontsize=8];\n"),
            "{dot}"
        );
    }

    #[test]
    fn inputs_and_outputs_are_ellipses_joined_to_their_nodes() {
        let mut graph = Graph::default();
        graph.inputs.push(crate::ValueInfo {
            name: "x".into(),
            ty: None,
            doc_string: String::new(),
            metadata_props: Vec::new(),
        });
        graph.outputs.push(crate::ValueInfo {
            name: "y".into(),
            ty: None,
            doc_string: String::new(),
            metadata_props: Vec::new(),
        });
        graph.nodes.push(node("Relu", "", &["x"], &["y"]));
        let dot = graph.to_dot();
        assert!(dot.contains("  \"in:x\" [shape=ellipse];\n"), "{dot}");
        assert!(
            dot.contains("  \"in:x\" -> n0 [label=\"x\", fontsize=8];\n"),
            "{dot}"
        );
        assert!(dot.contains("  n0 -> \"out:y\";\n"), "{dot}");
        assert!(dot.starts_with("digraph onnx {") && dot.ends_with("}\n"));
    }
}
