//! Layers read from names, scopes, kept value names and neighbours.

use crate::dot::layers::NAME_SCOPES;
use crate::graph::{Graph, Node};
use crate::{ValueInfo, layer_of_path};

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op_type: op.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        ..Node::default()
    }
}

fn value(name: &str) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        ty: None,
        doc_string: String::new(),
        metadata_props: Vec::new(),
    }
}

fn layer_names(graph: &Graph) -> Vec<Option<String>> {
    let layers = graph.layers();
    layers
        .of_node
        .iter()
        .map(|l| l.and_then(|k| layers.labels.get(k).cloned()))
        .collect()
}

fn some(label: &str) -> Option<String> {
    Some(label.to_string())
}

#[test]
fn the_layer_is_the_path_up_to_its_first_number() {
    let cases = [
        (
            "/m/encoder/layer.3/attention/self",
            "m/encoder/layer.3",
            "layer.3",
        ),
        ("/blocks.7/attn/qkv", "blocks.7", "blocks.7"),
        (
            "/bert/encoder/layer.11/output/dense",
            "bert/encoder/layer.11",
            "layer.11",
        ),
        (
            "/vit/encoder/layer.0/attention",
            "vit/encoder/layer.0",
            "layer.0",
        ),
        ("/blocks/blocks.0/mlp/fc1", "blocks/blocks.0", "blocks.0"),
        ("/transformer/h.2/attn/c_attn", "transformer/h.2", "h.2"),
        ("model/layers/10/mlp", "model/layers/10", "layers/10"),
        (
            "/m/encoder/block.0/layer.1/DenseReluDense",
            "m/encoder/block.0",
            "block.0",
        ),
        (
            "m.encoder.layer.4.attention.self",
            "m.encoder.layer.4",
            "layer.4",
        ),
        ("/0/attn", "0", "0"),
    ];
    for (path, key, label) in cases {
        assert_eq!(
            layer_of_path(path),
            Some((key.to_string(), label.to_string())),
            "{path}"
        );
    }
    for path in ["/m/embeddings/LayerNorm", "", "/m/pooler", "/m/conv2d/x1y"] {
        assert_eq!(layer_of_path(path), None, "{path}");
    }
}

#[test]
fn torchscript_names_cluster_by_layer_and_unindexed_paths_by_none() {
    let mut graph = Graph::default();
    graph.nodes.extend([
        node("/m/embeddings/Add", "Add", &["x"], &["e"]),
        node(
            "/m/encoder/layer.0/attention/self/query/MatMul",
            "MatMul",
            &["e"],
            &["q0"],
        ),
        node(
            "/m/encoder/layer.0/output/Add",
            "Add",
            &["q0", "e"],
            &["o0"],
        ),
        node(
            "/m/encoder/layer.1/attention/self/query/MatMul",
            "MatMul",
            &["o0"],
            &["q1"],
        ),
        node("/m/pooler/dense/Gemm", "Gemm", &["q1"], &["y"]),
    ]);
    let layers = graph.layers();
    assert_eq!(layers.keys, ["m/encoder/layer.0", "m/encoder/layer.1"]);
    assert_eq!(layers.labels, ["layer.0", "layer.1"]);
    assert_eq!(layers.of_node, [None, Some(0), Some(0), Some(1), None]);
    assert_eq!(layers.members(), [vec![1, 2], vec![3]]);
}

#[test]
fn labels_shared_by_two_keys_fall_back_to_the_keys() {
    let mut graph = Graph::default();
    graph.nodes.extend([
        node("/m/encoder/layer.0/MatMul", "MatMul", &["x"], &["a"]),
        node("/m/decoder/layer.0/MatMul", "MatMul", &["a"], &["b"]),
        node("/m/decoder/layer.1/MatMul", "MatMul", &["b"], &["c"]),
    ]);
    assert_eq!(
        graph.layers().labels,
        ["m/encoder/layer.0", "m/decoder/layer.0", "layer.1"]
    );
}

#[test]
fn dynamo_scopes_name_the_layer() {
    let mut matmul = node("node_MatMul_12", "MatMul", &["x"], &["linear_2"]);
    matmul.metadata_props.push((
        NAME_SCOPES.into(),
        "['', 'm', 'm.encoder', 'm.encoder.layer.3', 'm.encoder.layer.3.attention', 'linear_2']"
            .into(),
    ));
    let mut embed = node("node_embedding", "Gather", &["x"], &["embedding"]);
    embed.metadata_props.push((
        NAME_SCOPES.into(),
        "['', 'm', 'm.embeddings', 'embedding']".into(),
    ));
    let mut graph = Graph::default();
    graph.nodes.extend([embed, matmul]);
    let layers = graph.layers();
    assert_eq!(layers.keys, ["m.encoder.layer.3"]);
    assert_eq!(layers.labels, ["layer.3"]);
    assert_eq!(layers.of_node, [None, Some(0)]);
}

#[test]
fn a_kept_output_name_places_a_node_with_a_new_name() {
    let mut graph = Graph::default();
    graph.nodes.extend([
        node(
            "/m/encoder/layer.0/output/dense/MatMul",
            "MatMul",
            &["x"],
            &["d0"],
        ),
        node(
            "SkipLayerNormalization_fused_3",
            "SkipLayerNormalization",
            &["d0", "x"],
            &["/m/encoder/layer.0/output/LayerNorm/LayerNormalization_output_0"],
        ),
        node(
            "/m/encoder/layer.1/attention/self/value/MatMul",
            "MatMul",
            &["/m/encoder/layer.0/output/LayerNorm/LayerNormalization_output_0"],
            &["v1"],
        ),
    ]);
    // By neighbours alone the tie would go to the reader, in layer.1.
    assert_eq!(
        layer_names(&graph),
        [some("layer.0"), some("layer.0"), some("layer.1")]
    );
}

#[test]
fn fused_nodes_without_names_take_the_layer_of_their_neighbours() {
    let mut graph = Graph::default();
    graph.inputs.push(value("ids"));
    graph.outputs.push(value("y"));
    graph.nodes.extend([
        // Reads only a graph input, read only by unplaced nodes: outside.
        node(
            "EmbedLayerNormalization_fused_1",
            "EmbedLayerNormalization",
            &["ids"],
            &["e"],
        ),
        node("Attention_fused_2", "Attention", &["e"], &["a0"]),
        node(
            "/m/encoder/layer.0/attention/output/dense/MatMul",
            "MatMul",
            &["a0"],
            &["d0"],
        ),
        node(
            "SkipLayerNormalization_fused_3",
            "SkipLayerNormalization",
            &["d0", "e"],
            &["s0"],
        ),
        // Reads layer.0, read by layer.1: the reader wins the tie.
        node("Attention_fused_4", "Attention", &["s0"], &["a1"]),
        node("IsNaN_fused_5", "IsNaN", &["a1"], &["n1"]),
        node(
            "/m/encoder/layer.1/attention/output/dense/MatMul",
            "MatMul",
            &["a1", "n1"],
            &["d1"],
        ),
        node("Gelu_fused_6", "Gelu", &["d1"], &["g1"]),
        // Two steps from any named node: placed in the second round.
        node("Gelu_fused_7", "Gelu", &["g1"], &["h1"]),
        // Writes a graph output, which counts as outside.
        node("Gelu_fused_8", "Gelu", &["h1"], &["y"]),
    ]);
    assert_eq!(
        layer_names(&graph),
        [
            None,
            some("layer.0"),
            some("layer.0"),
            some("layer.0"),
            some("layer.1"),
            some("layer.1"),
            some("layer.1"),
            some("layer.1"),
            some("layer.1"),
            None,
        ]
    );
}

#[test]
fn outside_wins_only_by_a_majority() {
    let mut graph = Graph::default();
    graph.inputs.extend([value("a"), value("b")]);
    graph.nodes.extend([
        node("/m/layers.0/MatMul", "MatMul", &["a"], &["x"]),
        // Inputs: two graph inputs against one layer: outside.
        node("Add_fused_1", "Add", &["a", "b", "x"], &["s"]),
        // One graph input against one layer: the layer.
        node("Mul_fused_2", "Mul", &["a", "x"], &["t"]),
    ]);
    assert_eq!(
        layer_names(&graph),
        [some("layers.0"), None, some("layers.0")]
    );
}

#[test]
fn a_graph_without_numbered_paths_has_no_layers() {
    let mut graph = Graph::default();
    graph.inputs.push(value("x"));
    graph.nodes.extend([
        node("node_MatMul_1", "MatMul", &["x"], &["a"]),
        node("/m/embeddings/Add", "Add", &["a"], &["b"]),
        node("node_Relu_2", "Relu", &["b"], &["c"]),
    ]);
    let layers = graph.layers();
    assert!(layers.keys.is_empty() && layers.labels.is_empty());
    assert_eq!(layers.of_node, [None, None, None]);
    assert!(layers.members().is_empty());
}
