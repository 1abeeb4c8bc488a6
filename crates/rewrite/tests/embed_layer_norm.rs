//! The `embedlayernorm` fusion: BERT-style embeddings (word + position [+ segment] gathers,
//! LayerNorm) become one EmbedLayerNormalization; positions that are not provably `0..S-1`
//! stay unfused. Fused models are checked against the originals through the reference
//! interpreter and ONNX Runtime.

#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;

use attention_models::{EmbeddingOptions, PositionForm, bert_embeddings};
use transfuse_ir::{DataType, Model, Node};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{
    InputSpec, Padding, Runtime, Tolerance, compare_outputs, generate_inputs, run_model,
};
use transfuse_rewrite::{OptimizeOptions, optimize};

fn optimized(model: &Model) -> Model {
    let options = OptimizeOptions {
        fusions: "embedlayernorm".parse().unwrap(),
        ..Default::default()
    };
    optimize(model, &options).unwrap().0
}

fn embed_nodes(model: &Model) -> Vec<&Node> {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "EmbedLayerNormalization")
        .collect()
}

fn fires() -> Vec<(&'static str, EmbeddingOptions)> {
    let base = EmbeddingOptions::default();
    vec![
        ("word + segment + sliced positions", base),
        (
            "position added first",
            EmbeddingOptions {
                position_added_first: true,
                ..base
            },
        ),
        (
            "no segment, Range positions",
            EmbeddingOptions {
                segment: false,
                positions: PositionForm::Range,
                ..base
            },
        ),
        (
            "epsilon 1e-5",
            EmbeddingOptions {
                epsilon: 1e-5,
                ..base
            },
        ),
    ]
}

#[test]
fn fires_on_absolute_position_embeddings() {
    for (what, opts) in fires() {
        let model = bert_embeddings(opts);
        let fused = optimized(&model);
        let nodes = embed_nodes(&fused);
        assert_eq!(nodes.len(), 1, "{what}: {:?}", fused.graph.op_histogram());
        let node = nodes[0];
        assert!(
            (node.attr_float("epsilon").unwrap() - opts.epsilon).abs() <= opts.epsilon * 1e-6,
            "{what}"
        );
        assert_eq!(
            fused
                .graph
                .nodes
                .iter()
                .filter(|n| n.op_type == "LayerNormalization")
                .count(),
            0,
            "{what}"
        );
        // ids reach the op as int32; the segment inputs are both present or both absent.
        let ids_cast = fused
            .graph
            .nodes
            .iter()
            .find(|n| n.outputs.first() == node.inputs.first())
            .unwrap();
        assert_eq!(ids_cast.op_type, "Cast", "{what}");
        assert_eq!(
            ids_cast.attr_int("to"),
            Some(i64::from(DataType::Int32.code())),
            "{what}"
        );
        let segment = (!node.inputs[1].is_empty(), !node.inputs[4].is_empty());
        assert_eq!(
            segment,
            (opts.segment, opts.segment),
            "{what}: {:?}",
            node.inputs
        );
        // The mask_index output is declared (ONNX Runtime's shape inference needs it).
        assert_eq!(node.outputs.len(), 2, "{what}");
    }
}

#[test]
fn does_not_fire_without_provable_positions_or_last_axis() {
    let base = EmbeddingOptions::default();
    let cases = [
        (
            "RoBERTa CumSum positions",
            EmbeddingOptions {
                positions: PositionForm::CumSum,
                ..base
            },
        ),
        (
            "positions starting at 2",
            EmbeddingOptions {
                positions: PositionForm::SliceWithOffset,
                ..base
            },
        ),
        (
            "position ids that are not 0, 1, 2, ...",
            EmbeddingOptions {
                positions: PositionForm::SliceOfNonArange,
                ..base
            },
        ),
        (
            "LayerNorm over axis 1",
            EmbeddingOptions {
                last_axis: false,
                ..base
            },
        ),
    ];
    for (what, opts) in cases {
        let fused = optimized(&bert_embeddings(opts));
        assert!(
            embed_nodes(&fused).is_empty(),
            "{what}: {:?}",
            fused.graph.op_histogram()
        );
    }
}

#[test]
fn fused_embeddings_match_the_original() {
    for (what, opts) in fires() {
        let model = bert_embeddings(opts);
        let fused = optimized(&model);
        for batch in [1, 3] {
            let spec = InputSpec {
                batch,
                seq: 12,
                seed: batch as u64,
                padding: Padding::None,
            };
            let inputs = generate_inputs(&model, &spec).unwrap();
            let expected = run_model(&model, &inputs, &Runtime::reference()).unwrap();
            let ort = Runtime::ort(
                SessionOptions::default()
                    .optimization_level(OptimizationLevel::Disabled)
                    .intra_op_threads(1),
            );
            for (runtime, settings) in
                [("interpreter", Runtime::reference()), ("onnx runtime", ort)]
            {
                let got = run_model(&fused, &inputs, &settings)
                    .unwrap_or_else(|e| panic!("{what}, {runtime}: {e}"));
                let outputs = compare_outputs(&got, &expected, Tolerance::absolute(1e-4))
                    .unwrap_or_else(|e| panic!("{what}, {runtime}: {e}"));
                assert!(
                    outputs.iter().all(|o| o.pass),
                    "{what}, {runtime}, batch {batch}: {outputs:?}"
                );
            }
        }
    }
}

/// ONNX Runtime's `EmbedLayerNormalization` kernel accumulates its row statistics in float32
/// and gives NaN for embeddings near `f32::MAX`, where `LayerNormalization` stays finite. So
/// a table holding a NaN, an infinity or a value whose square overflows those statistics keeps
/// the original layer norm; a large but safe value still fuses.
#[test]
fn does_not_fire_on_tables_that_can_overflow_the_fused_statistics() {
    let model = bert_embeddings(EmbeddingOptions::default());
    // The word table: the largest 2-D float initializer.
    let word = model
        .graph
        .initializers
        .values()
        .filter(|t| t.dims.len() == 2 && t.dtype == DataType::Float)
        .max_by_key(|t| t.dims[0])
        .unwrap()
        .as_ref()
        .clone();
    let with = |value: f32| {
        let mut values = word.to_f32_vec().unwrap();
        values[5] = value;
        let mut changed = model.clone();
        changed
            .graph
            .add_initializer(transfuse_ir::Tensor::from_f32(
                &word.name,
                word.dims.clone(),
                &values,
            ));
        changed
    };
    for value in [f32::NAN, f32::INFINITY, -3.4e38, 1e20] {
        let fused = optimized(&with(value));
        assert!(embed_nodes(&fused).is_empty(), "{value}");
    }
    assert_eq!(embed_nodes(&optimized(&with(1e6))).len(), 1);
}
