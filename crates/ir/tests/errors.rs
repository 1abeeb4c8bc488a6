//! Malformed inputs give specific, typed errors; nothing panics.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use transfuse_ir::{IrError, Model, Node, Tensor};

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny")
        .join(name)
}

fn load_bytes(bytes: Vec<u8>) -> Result<Model, IrError> {
    Model::from_bytes(bytes.into(), None)
}

#[test]
fn truncated_file_is_a_decode_error() {
    let bytes = std::fs::read(tiny("bert_eager_ts_op14.onnx")).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 3, 7] {
        let err = load_bytes(bytes[..cut].to_vec()).unwrap_err();
        assert!(
            matches!(err, IrError::Decode(_) | IrError::NotOnnx(_)),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn text_and_empty_files_are_not_onnx() {
    let err = load_bytes(b"hello, this is not a model\n".to_vec()).unwrap_err();
    assert!(
        matches!(err, IrError::Decode(_) | IrError::NotOnnx(_)),
        "{err}"
    );
    let err = load_bytes(Vec::new()).unwrap_err();
    assert!(matches!(err, IrError::NotOnnx(_)), "{err}");
    assert!(err.to_string().contains("empty"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let bytes = std::fs::read(tiny("vit_eager_ts_op14.onnx")).unwrap();
    // Flip bytes throughout the file: every outcome is Ok or a typed error.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % b.len() as u64) as usize;
            b[i] = (state >> 32) as u8;
        }
        let _ = load_bytes(b);
    }
}

fn base() -> Model {
    Model::load(tiny("bert_eager_ts_op14.onnx")).unwrap()
}

#[test]
fn undefined_input_is_named() {
    let mut m = base();
    m.graph.nodes[5].inputs[0] = "nowhere".into();
    let err = load_bytes(m.to_bytes()).unwrap_err();
    assert!(
        matches!(err, IrError::UndefinedValue { ref value, .. } if value == "nowhere"),
        "{err}"
    );
    assert!(err.to_string().contains("'nowhere'"));
}

#[test]
fn duplicate_value_names_are_rejected() {
    let mut m = base();
    let dup = m.graph.nodes[2].outputs[0].clone();
    m.graph.nodes[4].outputs[0] = dup.clone();
    let err = load_bytes(m.to_bytes()).unwrap_err();
    assert!(
        matches!(err, IrError::DuplicateValue { ref name, .. } if *name == dup),
        "{err}"
    );
}

#[test]
fn cycles_are_rejected() {
    let mut m = base();
    // Two nodes reading each other's output.
    m.graph.nodes.push(Node::new(
        "Identity",
        "",
        vec!["cyc_b".into()],
        vec!["cyc_a".into()],
    ));
    m.graph.nodes.push(Node::new(
        "Identity",
        "",
        vec!["cyc_a".into()],
        vec!["cyc_b".into()],
    ));
    let err = load_bytes(m.to_bytes()).unwrap_err();
    assert!(matches!(err, IrError::Cycle { .. }), "{err}");
}

#[test]
fn nodes_out_of_order_are_sorted_on_load() {
    let mut m = base();
    let expected = m.graph.nodes.clone();
    m.graph.nodes.reverse();
    let loaded = load_bytes(m.to_bytes()).unwrap();
    let pos = |g: &[Node], out: &str| {
        g.iter()
            .position(|n| n.outputs.iter().any(|o| o == out))
            .unwrap()
    };
    for n in &loaded.graph.nodes {
        let here = pos(&loaded.graph.nodes, &n.outputs[0]);
        for i in n
            .inputs
            .iter()
            .filter(|i| expected.iter().any(|e| e.outputs.contains(i)))
        {
            assert!(
                pos(&loaded.graph.nodes, i) < here,
                "{i} used before it is produced"
            );
        }
    }
}

#[test]
fn missing_external_data_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = base();
    let first = m.graph.initializers.keys().next().unwrap().clone();
    let mut t: Tensor = (*m.graph.initializers[&first]).clone();
    t.external = Some(transfuse_ir::ExternalLocation {
        location: "weights.bin".into(),
        offset: 0,
        length: 16,
        extra: vec![],
    });
    m.graph.initializers.insert(first, std::sync::Arc::new(t));
    let path = dir.path().join("m.onnx");
    m.save(&path).unwrap();
    std::fs::remove_file(dir.path().join("m.onnx.data")).unwrap();
    let err = Model::load(&path).unwrap_err();
    assert!(matches!(err, IrError::ExternalDataMissing { .. }), "{err}");
}

#[test]
fn unknown_ops_and_domains_pass_through() {
    let mut m = base();
    let out = m.graph.outputs[0].name.clone();
    let last = m
        .graph
        .nodes
        .iter_mut()
        .find(|n| n.outputs.contains(&out))
        .unwrap();
    last.outputs[0] = "pre_custom".into();
    m.graph.nodes.push(
        Node::new(
            "MyOp",
            "org.example.custom",
            vec!["pre_custom".into()],
            vec![out],
        )
        .with_attr(
            "flavour",
            transfuse_ir::AttrValue::String(b"spicy".to_vec()),
        ),
    );
    m.ensure_opset("org.example.custom", 3);
    let loaded = load_bytes(m.to_bytes()).unwrap();
    assert_eq!(loaded, m);
}

#[test]
fn a_failed_save_leaves_no_file() {
    let m = base();
    let dir = tempfile::tempdir().unwrap();
    // A directory in place of the output file makes the final rename fail.
    let target = dir.path().join("out.onnx");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    assert!(m.save(&target).is_err());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "out.onnx")
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
    // Saving into a missing directory fails cleanly too.
    assert!(m.save(dir.path().join("no/such/dir/m.onnx")).is_err());
}
