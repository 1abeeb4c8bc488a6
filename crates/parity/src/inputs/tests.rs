//! Unit tests of input generation, classification, conforming and test-data reading.
#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use crate::testdata::{tiny, tiny_dir};

fn row_string(row: &[bool]) -> String {
    row.iter().map(|&b| if b { '1' } else { '0' }).collect()
}

#[test]
fn padding_patterns() {
    let rows = |p| {
        (0..3)
            .map(|r| row_string(&mask_row(p, r, 3, 8)))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(Padding::None), ["11111111", "11111111", "11111111"]);
    assert_eq!(rows(Padding::Right), ["11111111", "11111100", "11110000"]);
    assert_eq!(rows(Padding::Left), ["11111111", "00111111", "00001111"]);
    assert_eq!(rows(Padding::Holes), ["10011111", "11100111", "11111001"]);
    assert_eq!(
        rows(Padding::FullyPadded),
        ["11111111", "11111100", "00000000"]
    );
    assert_eq!(row_string(&mask_row(Padding::Right, 0, 1, 8)), "11110000");
    assert_eq!(row_string(&mask_row(Padding::Left, 0, 1, 5)), "00111");
}

#[test]
fn every_pattern_keeps_a_real_token_and_pads_somewhere() {
    for padding in [Padding::Right, Padding::Left, Padding::Holes] {
        for batch in 1..5 {
            for seq in 3..40 {
                let rows: Vec<Vec<bool>> = (0..batch)
                    .map(|r| mask_row(padding, r, batch, seq))
                    .collect();
                assert!(
                    rows.iter().all(|r| r.len() == seq && r.iter().any(|&b| b)),
                    "{padding} {batch}x{seq}"
                );
                assert!(
                    rows.iter().flatten().any(|&b| !b),
                    "{padding} {batch}x{seq} pads nothing"
                );
                if padding == Padding::Holes {
                    assert!(
                        rows.iter().all(|r| r[0] && r[seq - 1]),
                        "{padding} {batch}x{seq}"
                    );
                }
            }
        }
    }
}

#[test]
fn text_inputs_follow_the_signature_and_the_vocabulary() {
    let model = tiny("bert_eager_ts_op14");
    let roles = classify_inputs(&model).expect("roles");
    assert_eq!(
        roles,
        [
            ("input_ids".to_string(), InputRole::TokenIds { vocab: 1000 }),
            ("attention_mask".to_string(), InputRole::Mask),
            (
                "token_type_ids".to_string(),
                InputRole::TokenTypes { types: 2 }
            ),
        ]
    );
    let spec = InputSpec {
        batch: 3,
        seq: 10,
        seed: 7,
        padding: Padding::Left,
    };
    let inputs = generate_inputs(&model, &spec).expect("inputs");
    assert_eq!(inputs.len(), 3);
    for t in &inputs {
        assert_eq!(t.dims, [3, 10], "{}", t.name);
    }
    let ids = inputs[0].to_i64_vec().expect("ids");
    assert!(ids.iter().all(|&i| (0..1000).contains(&i)));
    assert!(
        ids.iter().collect::<HashSet<_>>().len() > 20,
        "ids should vary"
    );
    let mask = inputs[1].to_i64_vec().expect("mask");
    let expected: Vec<i64> = (0..3)
        .flat_map(|r| mask_row(Padding::Left, r, 3, 10))
        .map(i64::from)
        .collect();
    assert_eq!(mask, expected);
    let types = inputs[2].to_i64_vec().expect("types");
    assert_eq!(&types[..10], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    // Same seed, same inputs; another seed, other ids.
    assert_eq!(generate_inputs(&model, &spec).expect("again")[0], inputs[0]);
    let other = generate_inputs(&model, &InputSpec { seed: 8, ..spec }).expect("other seed");
    assert_ne!(other[0], inputs[0]);
}

#[test]
fn every_tiny_text_model_has_its_token_ids_found() {
    for name in [
        "bert_sdpa_dynamo_op18",
        "bert_sdpa_ts_op17",
        "distilbert_eager_ts_op14",
        "roberta_sdpa_ts_op14",
    ] {
        let roles = classify_inputs(&tiny(name)).expect(name);
        assert!(
            roles.contains(&("input_ids".to_string(), InputRole::TokenIds { vocab: 1000 })),
            "{name}: {roles:?}"
        );
    }
}

/// Ids sliced (XLM keeps the last `S`) or transposed before the lookup are still ids; a
/// value that only goes into arithmetic is not.
#[test]
fn token_ids_are_followed_through_slices_to_the_table() {
    use transfuse_ir::{Graph, Node};
    let node = |op: &str, inputs: &[&str], output: &str| Node {
        op_type: op.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
        ..Node::default()
    };
    let mut graph = Graph::default();
    graph.initializers.insert(
        "table".into(),
        std::sync::Arc::new(transfuse_ir::Tensor::from_f32(
            "table",
            vec![77, 4],
            &[0.0; 308],
        )),
    );
    graph.nodes = vec![
        node("Slice", &["ids", "starts", "ends"], "last"),
        node("Transpose", &["last"], "t"),
        node("Gather", &["table", "t"], "embedded"),
        node("Add", &["other", "one"], "sum"),
        node("Gather", &["table", "sum"], "shifted"),
    ];
    assert_eq!(gathered_table_rows(&graph, "ids"), Some(77));
    assert_eq!(gathered_table_rows(&graph, "other"), None);
}

#[test]
fn named_symbols_take_their_given_size() {
    let model = tiny("bert_eager_ts_op14");
    let spec = InputSpec {
        batch: 2,
        seq: 5,
        seed: 0,
        padding: Padding::None,
    };
    let symbol = match &model.graph.inputs[0].shape().expect("shape")[1] {
        Dim::Symbol(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    let inputs =
        generate_inputs_with_symbols(&model, &spec, &[(symbol.as_str(), 7)]).expect("inputs");
    assert_eq!(inputs[0].dims, [2, 7]);
}

#[test]
fn images_are_normal_floats_of_the_declared_shape() {
    let model = tiny("vit_eager_ts_op14");
    let spec = InputSpec {
        batch: 2,
        seq: 99,
        seed: 1,
        padding: Padding::Right,
    };
    let inputs = generate_inputs(&model, &spec).expect("inputs");
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].dims, [2, 3, 32, 32]);
    let values = inputs[0].to_f32_vec().expect("f32");
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / values.len() as f64;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.1,
        "mean {mean}, variance {var}"
    );
}

#[test]
fn integer_inputs_take_each_model_s_declared_width() {
    let model = tiny("bert_eager_ts_op14");
    let mut narrow = model.clone();
    for v in &mut narrow.graph.inputs {
        if let Some(transfuse_ir::ValueType::Tensor { elem_type, .. }) = &mut v.ty {
            *elem_type = DataType::Int32;
        }
    }
    let ids = Tensor::from_i64("input_ids", vec![1, 3], &[0, -7, i64::from(i32::MAX)]);
    let as_i32 = conform_inputs(&narrow, std::slice::from_ref(&ids), "c").expect("fits");
    assert_eq!(as_i32[0].dtype, DataType::Int32);
    assert_eq!(
        as_i32[0].to_i64_vec().expect("ints"),
        [0, -7, i64::from(i32::MAX)]
    );
    // Back to int64 for the original, and untouched where the types agree.
    let back = conform_inputs(&model, &as_i32, "m").expect("widened");
    assert_eq!(back[0], ids);
    assert_eq!(conform_inputs(&model, &back, "m").expect("same")[0], ids);
    // Not representable: an error naming the value, never a wrapped id.
    let big = Tensor::from_i64("input_ids", vec![1], &[i64::from(i32::MAX) + 1]);
    let err = conform_inputs(&narrow, &[big], "c")
        .unwrap_err()
        .to_string();
    assert!(err.contains("2147483648") && err.starts_with("c:"), "{err}");
    // Tensors that are no input of the model pass through.
    let other = Tensor::from_f32("not_an_input", vec![1], &[1.0]);
    assert_eq!(
        conform_inputs(&narrow, std::slice::from_ref(&other), "c").expect("kept")[0],
        other
    );
}

#[test]
fn test_data_directories_are_read_by_name() {
    let model = tiny("bert_eager_ts_op14");
    let dir = tiny_dir("bert_eager_ts_op14").join("test_data_set_0");
    let data = read_test_data(&model, &dir).expect("test data");
    let names: Vec<&str> = data.inputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);
    assert_eq!(data.outputs.len(), 1);
    assert_eq!(data.outputs[0].name, model.graph.outputs[0].name);
    assert!(read_test_data(&model, &dir.join("missing")).is_err());
}
