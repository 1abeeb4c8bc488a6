//! The DOT text: labels, fills, clusters, collapsed layers, and a well-formedness check.

use crate::graph::{Graph, Node};
use crate::model::MS_DOMAIN;
use crate::{DEFAULT_COLLAPSE_ABOVE, DotOptions, FUSED_FILL};

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

fn named(name: &str, op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        ..node(op, domain, inputs, outputs)
    }
}

fn value(name: &str) -> crate::ValueInfo {
    crate::ValueInfo {
        name: name.into(),
        ty: None,
        doc_string: String::new(),
        metadata_props: Vec::new(),
    }
}

/// A BERT-like graph as the optimizer writes it (TorchScript names, fused nodes with new
/// names): an embedding outside the layers, `layers` blocks of eight nodes, a pooler.
fn fused_bert(layers: usize) -> Graph {
    let mut graph = Graph::default();
    graph.inputs.push(value("ids"));
    graph.outputs.push(value("pooled"));
    graph.nodes.push(named(
        "/m/embeddings/LayerNorm/LayerNormalization",
        "LayerNormalization",
        "",
        &["ids"],
        &["/m/embeddings/LayerNorm/LayerNormalization_output_0"],
    ));
    let mut x = "/m/embeddings/LayerNorm/LayerNormalization_output_0".to_string();
    for l in 0..layers {
        let p = format!("/m/encoder/layer.{l}");
        let v = |s: &str| format!("{p}/{s}_output_0");
        let (attn, gelu) = (
            format!("Attention_fused_{l}"),
            format!("BiasGelu_fused_{l}"),
        );
        let (dense, ln1) = (
            v("attention/output/dense/MatMul"),
            v("attention/output/LayerNorm/LN"),
        );
        let (inter, out, ln2) = (
            v("intermediate/dense/MatMul"),
            v("output/dense/MatMul"),
            v("output/LayerNorm/LN"),
        );
        let nodes = [
            named(&attn, "Attention", MS_DOMAIN, &[&x, "qkv_w"], &[&attn]),
            named(
                &format!("{p}/attention/output/dense/MatMul"),
                "MatMul",
                "",
                &[&attn, "w"],
                &[&dense],
            ),
            named(
                "SkipLayerNormalization_fused_a",
                "SkipLayerNormalization",
                MS_DOMAIN,
                &[&dense, &x],
                &[&ln1],
            ),
            named(
                &format!("{p}/intermediate/dense/MatMul"),
                "MatMul",
                "",
                &[&ln1, "w"],
                &[&inter],
            ),
            named(&gelu, "BiasGelu", MS_DOMAIN, &[&inter, "b"], &[&gelu]),
            named(
                &format!("{p}/output/dense/MatMul"),
                "MatMul",
                "",
                &[&gelu, "w"],
                &[&out],
            ),
            named(
                "SkipLayerNormalization_fused_b",
                "SkipLayerNormalization",
                MS_DOMAIN,
                &[&out, &ln1],
                &[&ln2],
            ),
            named(
                &format!("{p}/output/Identity"),
                "Identity",
                "",
                &[&ln2],
                &[&v("output/Identity")],
            ),
        ];
        graph.nodes.extend(nodes);
        x = v("output/Identity");
    }
    graph.nodes.push(named(
        "/m/pooler/dense/Gemm",
        "Gemm",
        "",
        &[&x, "w"],
        &["pooled"],
    ));
    graph
}

/// A DOT identifier or string at the start of `text` and the rest after it.
fn id(text: &str) -> (String, &str) {
    let text = text.trim_start();
    if let Some(quoted) = text.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                }
                '"' => return (out, &quoted[i + 1..]),
                c => out.push(c),
            }
        }
        // Unterminated: `check_well_formed` fails on the quote count.
        return (out, "");
    }
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (text[..end].to_string(), &text[end..])
}

/// Checks what Graphviz needs of the text: braces balanced outside strings, every edge
/// endpoint declared as a node, no node declared twice. Returns the declared node ids
/// and the edges.
fn check_well_formed(dot: &str) -> (Vec<String>, Vec<(String, String)>) {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for c in dot.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                assert!(depth >= 0, "unbalanced braces:\n{dot}");
            }
            _ => {}
        }
    }
    assert!(depth == 0 && !in_string, "unbalanced:\n{dot}");
    let (mut nodes, mut edges) = (Vec::new(), Vec::new());
    for line in dot.lines().map(str::trim) {
        if line.starts_with("digraph") || line.starts_with("subgraph") || line == "}" {
            continue;
        }
        let (first, rest) = id(line);
        if let Some(rest) = rest.trim_start().strip_prefix("->") {
            edges.push((first, id(rest).0));
        } else if rest.trim_start().starts_with('[')
            && !["node", "edge", "graph"].contains(&first.as_str())
        {
            assert!(!nodes.contains(&first), "{first} declared twice:\n{dot}");
            nodes.push(first);
        }
    }
    for (from, to) in &edges {
        assert!(
            nodes.contains(from) && nodes.contains(to),
            "edge {from} -> {to} to an undeclared node:\n{dot}"
        );
    }
    (nodes, edges)
}

/// The lines of cluster `k` (between its opening and closing brace).
fn cluster(dot: &str, k: usize) -> Vec<&str> {
    dot.lines()
        .skip_while(|l| *l != format!("  subgraph cluster_{k} {{"))
        .skip(1)
        .take_while(|l| *l != "  }")
        .collect()
}

#[test]
fn each_layer_is_a_cluster_holding_its_nodes_and_fused_nodes() {
    let graph = fused_bert(2);
    let dot = graph.to_dot();
    let (nodes, edges) = check_well_formed(&dot);
    assert_eq!(nodes.len(), graph.nodes.len() + 2, "{dot}");
    assert_eq!(edges.len(), 1 + 2 * 10 + 1 + 1, "{dot}");
    for k in 0..2 {
        let lines = cluster(&dot, k);
        assert_eq!(lines[0], format!("    label=\"layer.{k}\";"), "{dot}");
        let members: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains("[label="))
            .copied()
            .collect();
        let first = 1 + 8 * k;
        let expected: Vec<String> = (first..first + 8).map(|i| format!("    n{i} [")).collect();
        assert_eq!(members.len(), 8, "{dot}");
        for (line, start) in members.iter().zip(&expected) {
            assert!(line.starts_with(start.as_str()), "{line} in\n{dot}");
        }
        assert_eq!(members.iter().filter(|l| l.contains(FUSED_FILL)).count(), 4);
    }
    // The embedding and the pooler stay outside every cluster.
    assert!(
        dot.contains("\n  n0 [label=\"LayerNormalization\"];\n"),
        "{dot}"
    );
    assert!(dot.contains("\n  n17 [label=\"Gemm\"];\n"), "{dot}");
    assert_eq!(dot.matches("subgraph cluster_").count(), 2);
}

#[test]
fn a_graph_without_layers_has_no_clusters_and_never_collapses() {
    let mut graph = Graph::default();
    for k in 0..5 {
        let (i, o) = (format!("v{k}"), format!("v{}", k + 1));
        graph
            .nodes
            .push(named(&format!("node_Relu_{k}"), "Relu", "", &[&i], &[&o]));
    }
    let dot = graph.to_dot_with(&DotOptions {
        collapse_above: Some(1),
    });
    assert!(!dot.contains("subgraph") && !dot.contains(" c0 "), "{dot}");
    assert_eq!(check_well_formed(&dot).0.len(), 5);
}

#[test]
fn large_graphs_collapse_each_layer_into_one_box() {
    let graph = fused_bert(3);
    // 26 nodes: at the limit nothing collapses, above it every layer does.
    assert_eq!(
        graph.to_dot_with(&DotOptions {
            collapse_above: Some(26)
        }),
        graph.to_dot_with(&DotOptions::full())
    );
    let dot = graph.to_dot_with(&DotOptions {
        collapse_above: Some(25),
    });
    let (nodes, edges) = check_well_formed(&dot);
    assert_eq!(
        nodes,
        ["in:ids", "n0", "n25", "c0", "c1", "c2", "out:pooled"],
        "{dot}"
    );
    assert!(!dot.contains("subgraph"), "{dot}");
    for k in 0..3 {
        assert!(
            dot.contains(&format!(
                "  c{k} [label=\"layer.{k} \u{2014} 8 nodes\\nAttention, SkipLayerNormalization x2, BiasGelu, MatMul x3\\nIdentity\", style=\"rounded,filled\", fillcolor=\"#cfe2ff\"];\n"
            )),
            "{dot}"
        );
    }
    // Layer 1 reads layer 0's output twice (Attention and the residual): one edge.
    let pairs: Vec<(&str, &str)> = edges
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("in:ids", "n0"),
            ("n0", "c0"),
            ("c0", "c1"),
            ("c1", "c2"),
            ("c2", "n25"),
            ("n25", "out:pooled")
        ],
        "{dot}"
    );
    assert!(
        dot.contains(
            "  c0 -> c1 [label=\"/m/encoder/layer.0/output/Identity_output_0\", fontsize=8];\n"
        ),
        "{dot}"
    );
}

#[test]
fn collapsed_edges_carrying_several_values_say_how_many() {
    let mut graph = Graph::default();
    graph.nodes.extend([
        named("/m/layers.0/a/MatMul", "MatMul", "", &["x"], &["a"]),
        named("/m/layers.0/b/MatMul", "MatMul", "", &["x"], &["b"]),
        named("/m/layers.1/Add", "Add", "", &["a", "b"], &["c"]),
        named("/m/layers.1/Mul", "Mul", "", &["a", "c"], &["d"]),
    ]);
    let dot = graph.to_dot_with(&DotOptions {
        collapse_above: Some(0),
    });
    let (nodes, edges) = check_well_formed(&dot);
    assert_eq!(nodes, ["c0", "c1"], "{dot}");
    assert_eq!(edges.len(), 1, "{dot}");
    assert!(
        dot.contains("  c0 -> c1 [label=\"2 values\", fontsize=8];\n"),
        "{dot}"
    );
    // No fused op: the plain fill, and one node's box says "node".
    assert!(dot.contains("layers.0 \u{2014} 2 nodes\\nMatMul x2\", style=\"rounded,filled\", fillcolor=\"#f2f2f2\""), "{dot}");
    graph.nodes.truncate(3);
    let dot = graph.to_dot_with(&DotOptions {
        collapse_above: Some(0),
    });
    assert!(dot.contains("layers.1 \u{2014} 1 node\\nAdd\""), "{dot}");
}

#[test]
fn the_default_collapses_above_64_nodes() {
    assert_eq!(
        DotOptions::default().collapse_above,
        Some(DEFAULT_COLLAPSE_ABOVE)
    );
    assert_eq!(DEFAULT_COLLAPSE_ABOVE, 64);
    let small = fused_bert(7);
    assert!(small.nodes.len() <= 64, "{}", small.nodes.len());
    assert!(small.to_dot().contains("subgraph cluster_6"));
    let large = fused_bert(8);
    assert!(large.nodes.len() > 64, "{}", large.nodes.len());
    let dot = large.to_dot();
    assert!(!dot.contains("subgraph") && dot.contains("  c7 ["), "{dot}");
    check_well_formed(&dot);
    check_well_formed(&large.to_dot_with(&DotOptions::full()));
}
