//! The analysis on real exports: symbolic shapes through reshapes, folded shape and scale
//! arithmetic, and "every element equals c" facts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use transfuse_ir::Model;
use transfuse_rewrite::testing::import;
use transfuse_rewrite::{ClassData, EGraph, Scalar, SymDim};

fn facts(model: &str) -> (EGraph, Vec<(String, egg::Id)>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny")
        .join(format!("{model}.onnx"));
    let m = Model::load(path).unwrap();
    let (eg, imported) = import(&m).unwrap();
    (eg, imported.names)
}

fn data<'a>(eg: &'a EGraph, names: &[(String, egg::Id)], value: &str) -> &'a ClassData {
    let id = names
        .iter()
        .find(|(n, _)| n == value)
        .unwrap_or_else(|| panic!("no value {value}"))
        .1;
    &eg[id].data
}

fn shape_text(d: &ClassData) -> String {
    d.shape
        .as_ref()
        .map(|s| {
            s.iter()
                .map(SymDim::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[test]
fn reshape_targets_built_from_shape_gathers_are_symbolic() {
    let (eg, names) = facts("bert_eager_ts_op14");
    let target = data(
        &eg,
        &names,
        "/m/encoder/layer.0/attention/self/Concat_output_0",
    );
    let dims = target.value.as_ref().unwrap().as_dims().unwrap();
    assert_eq!(
        dims,
        vec![
            SymDim::symbol("batch"),
            SymDim::symbol("sequence"),
            SymDim::known(-1),
            SymDim::known(16)
        ]
    );
    // Reshape with -1 infers the head count from the total size.
    let heads = data(
        &eg,
        &names,
        "/m/encoder/layer.0/attention/self/Reshape_output_0",
    );
    assert_eq!(shape_text(heads), "batch,sequence,4,16");
}

#[test]
fn timm_scale_chain_folds_to_a_constant() {
    // Sqrt(Cast(Div(1, Sqrt(Cast(Slice(Shape(q), -1)))))) with head size 16: 16^-1/4 = 0.5.
    let (eg, names) = facts("timm_vit_sdpa_ts_op17");
    let scale = data(&eg, &names, "/m/blocks/blocks.0/attn/Sqrt_1_output_0");
    assert_eq!(scale.scalar(), Some(0.5));
    let q = data(&eg, &names, "/m/blocks/blocks.0/attn/Squeeze_output_0");
    assert_eq!(shape_text(q), "batch,4,17,16");
}

#[test]
fn dynamo_shape_slices_fold() {
    let (eg, names) = facts("bert_sdpa_dynamo_op18");
    // Shape(input_ids)[1:2] is [sequence].
    let seq = data(&eg, &names, "val_1");
    assert_eq!(
        seq.value.as_ref().unwrap().as_dims().unwrap(),
        vec![SymDim::symbol("sequence")]
    );
    let view = data(&eg, &names, "view");
    assert_eq!(shape_text(view), "batch,sequence,4,16");
}

#[test]
fn expanded_all_true_mask_is_uniform() {
    let (eg, names) = facts("vit_sdpa_dynamo_op18");
    let mask = data(&eg, &names, "expand_1");
    assert_eq!(mask.uniform, Some(Scalar::Int(SymDim::known(1))));
    assert_eq!(shape_text(mask), "batch,1,17,17");
    // Where(all-true mask, 0, -3.4e38) is all zeros.
    let bias = data(&eg, &names, "val_75");
    assert_eq!(bias.uniform, Some(Scalar::Float(0.0)));
}

#[test]
fn text_masks_depend_on_the_input() {
    // BERT's additive mask comes from attention_mask: not uniform, not constant.
    let (eg, names) = facts("bert_eager_ts_op14");
    let bias = data(&eg, &names, "/m/Where_1_output_0");
    assert_eq!(bias.uniform, None);
    assert!(!bias.constant);
    assert_eq!(shape_text(bias), "batch,1,sequence,sequence");
}
