//! The `attention` fusion: where it fires (every exporter spelling, on synthetic models and
//! on every model in `testdata/`), where it must not, and what it emits (`num_heads`,
//! `scale`, packed weights, the attention bias). Numerical parity is in `attention_parity.rs`.

#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use attention_models::{
    AttentionOptions, KeyTransposeForm, MaskForm, ScaleForm, Unbind, bert_attention_layer,
    packed_qkv_layer, packed_qkv_layer_unbound,
};
use transfuse_ir::{Model, Node};
use transfuse_rewrite::{AttentionOp, OptimizeOptions, optimize};

fn optimized(model: &Model, fusions: &str) -> Model {
    let options = OptimizeOptions {
        fusions: fusions.parse().unwrap(),
        ..Default::default()
    };
    optimize(model, &options).unwrap().0
}

fn count(model: &Model, op: &str) -> usize {
    model.graph.nodes.iter().filter(|n| n.op_type == op).count()
}

fn fused_nodes<'a>(model: &'a Model, op: &str) -> Vec<&'a Node> {
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == op && n.domain == "com.microsoft")
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every combination of scale spelling, Kᵀ spelling and mask form of the synthetic BERT layer
/// fuses into one Attention with 4 heads and scale 1/√8.
#[test]
fn synthetic_spellings_fuse_into_one_attention() {
    let scales = [
        ScaleForm::DivSqrtD,
        ScaleForm::MulReciprocal,
        ScaleForm::BothSides,
    ];
    let keys = [
        KeyTransposeForm::TwoTransposes,
        KeyTransposeForm::OneTranspose,
        KeyTransposeForm::MergedBatch,
    ];
    let masks = [
        MaskForm::None,
        MaskForm::ClassicAdditive(-10000.0),
        MaskForm::ClassicAdditive(f32::MIN),
        MaskForm::Select(f32::MIN),
        MaskForm::Select(f32::NEG_INFINITY),
        MaskForm::MaskedFill(f32::MIN),
        MaskForm::MaskedFill(f32::NEG_INFINITY),
    ];
    for scale in scales {
        for key_transpose in keys {
            for mask in masks {
                let opts = AttentionOptions {
                    scale,
                    key_transpose,
                    mask,
                    ..Default::default()
                };
                let fused = optimized(&bert_attention_layer(opts), "attention");
                let case = format!("{scale:?} {key_transpose:?} {mask:?}");
                let attention = fused_nodes(&fused, "Attention");
                assert_eq!(
                    attention.len(),
                    1,
                    "{case}: {:?}",
                    fused.graph.op_histogram()
                );
                assert_eq!(count(&fused, "Softmax"), 0, "{case}");
                let node = attention[0];
                assert_eq!(node.attr_int("num_heads"), Some(4), "{case}");
                let scale_attr = node.attr_float("scale").unwrap();
                assert!(
                    (scale_attr - 1.0 / 8f32.sqrt()).abs() < 1e-6,
                    "{case}: scale {scale_attr}"
                );
                // Mask present -> attention_bias (input 5); never a mask_index (input 3).
                let has_bias = node.inputs.get(5).is_some_and(|s| !s.is_empty());
                assert_eq!(
                    has_bias,
                    mask != MaskForm::None,
                    "{case}: inputs {:?}",
                    node.inputs
                );
                assert!(
                    node.inputs.get(3).is_none_or(String::is_empty),
                    "{case}: mask_index used"
                );
                // The packed weight is [H, 3H].
                let w = fused.graph.initializer(&node.inputs[1]).unwrap();
                assert_eq!(w.dims, vec![32, 96], "{case}");
            }
        }
    }
}

/// The classic `[B,1,1,T]` mask is expanded to `[B,1,S,T]`: ONNX Runtime rejects a bias
/// whose query axis is broadcast.
#[test]
fn broadcast_mask_is_expanded_for_onnx_runtime() {
    let model = bert_attention_layer(AttentionOptions::default());
    let fused = optimized(&model, "attention");
    let node = fused_nodes(&fused, "Attention")[0];
    let bias = &node.inputs[5];
    let producer = fused
        .graph
        .nodes
        .iter()
        .find(|n| n.outputs.contains(bias))
        .unwrap();
    assert_eq!(producer.op_type, "Expand", "bias comes from {producer:?}");
}

/// timm's packed qkv projection (Split + Squeeze, scale computed from the shape, Softmax ->
/// Cast -> Cast) fuses and reuses the original [H, 3H] weight unchanged.
#[test]
fn packed_qkv_uses_the_weight_as_is() {
    let model = packed_qkv_layer(32, 4, false);
    let fused = optimized(&model, "attention");
    let attention = fused_nodes(&fused, "Attention");
    assert_eq!(attention.len(), 1, "{:?}", fused.graph.op_histogram());
    let node = attention[0];
    assert_eq!(node.attr_int("num_heads"), Some(4));
    assert!((node.attr_float("scale").unwrap() - 1.0 / 8f32.sqrt()).abs() < 1e-6);
    let original_weight = model
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "MatMul")
        .unwrap()
        .inputs[1]
        .clone();
    assert_eq!(node.inputs[1], original_weight);
    assert!(
        node.inputs.len() <= 3,
        "no mask, no bias: {:?}",
        node.inputs
    );
}

/// The dynamo exporter's `unbind` (three `Slice`s of axis 0, the last one open-ended) is
/// the same packed projection.
#[test]
fn packed_qkv_cut_by_slices_uses_the_weight_as_is() {
    let model = packed_qkv_layer_unbound(32, 4, false, Unbind::Slices);
    let fused = optimized(&model, "attention");
    let attention = fused_nodes(&fused, "Attention");
    assert_eq!(attention.len(), 1, "{:?}", fused.graph.op_histogram());
    assert_eq!(
        count(&fused, "Slice"),
        0,
        "{:?}",
        fused.graph.op_histogram()
    );
}

/// A packed qkv projection whose weight is not a constant cannot feed Attention's packed
/// weights: MultiHeadAttention on column slices of the projection.
#[test]
fn packed_qkv_with_computed_weight_becomes_multi_head_attention() {
    let fused = optimized(&packed_qkv_layer(32, 4, true), "attention");
    assert!(fused_nodes(&fused, "Attention").is_empty());
    assert_eq!(
        fused_nodes(&fused, "MultiHeadAttention").len(),
        1,
        "{:?}",
        fused.graph.op_histogram()
    );
    assert_eq!(
        count(&fused, "Slice"),
        3,
        "one column slice each for Q, K and V"
    );
    assert_eq!(count(&fused, "Softmax"), 0);
}

/// Cross-attention (K and V from another input) cannot be packed: MultiHeadAttention.
#[test]
fn cross_attention_becomes_multi_head_attention() {
    let opts = AttentionOptions {
        cross_attention: true,
        ..Default::default()
    };
    let fused = optimized(&bert_attention_layer(opts), "attention");
    assert!(fused_nodes(&fused, "Attention").is_empty());
    let mha = fused_nodes(&fused, "MultiHeadAttention");
    assert_eq!(mha.len(), 1, "{:?}", fused.graph.op_histogram());
    assert_eq!(count(&fused, "Softmax"), 0);
    assert_eq!(mha[0].attr_int("num_heads"), Some(4));
}

/// Q and K changed after their head splits (rotary embeddings' shape: `q + q · p`) map to
/// MultiHeadAttention on the heads-first tensors: the query merged back to `[B, S, H]`, key
/// and value `[B, N, S, d]` as they are. With keys from another input (`T ≠ S`) the
/// heads-first form does not apply and nothing fuses.
#[test]
fn query_and_key_changed_after_the_head_split_become_multi_head_attention() {
    let opts = AttentionOptions {
        position_term: true,
        ..Default::default()
    };
    let fused = optimized(&bert_attention_layer(opts), "attention");
    let mha = fused_nodes(&fused, "MultiHeadAttention");
    assert_eq!(mha.len(), 1, "{:?}", fused.graph.op_histogram());
    assert_eq!(count(&fused, "Softmax"), 0);
    assert_eq!(mha[0].attr_int("num_heads"), Some(4));
    let producer = |name: &str| {
        fused
            .graph
            .nodes
            .iter()
            .find(|n| n.outputs.iter().any(|o| o == name))
            .map(|n| n.op_type.as_str())
    };
    // Query: `Reshape(Transpose(q + q · p))`; key: `k + q · p` itself; value: its head split.
    assert_eq!(producer(&mha[0].inputs[0]), Some("Reshape"));
    assert_eq!(
        producer(&mha[0].inputs[1]),
        Some("Add"),
        "key fed heads-first"
    );
    assert_eq!(
        producer(&mha[0].inputs[2]),
        Some("Transpose"),
        "value fed heads-first"
    );

    let cross = AttentionOptions {
        position_term: true,
        cross_attention: true,
        ..Default::default()
    };
    let unfused = optimized(&bert_attention_layer(cross), "attention");
    assert!(fused_nodes(&unfused, "MultiHeadAttention").is_empty());
    assert_eq!(count(&unfused, "Softmax"), 1);
}

/// Forms that are not attention, or whose mask cannot be turned into an additive bias
/// exactly, stay unfused.
#[test]
fn does_not_fire_when_conditions_fail() {
    let cases = [
        (
            "select mask with a finite fill (replace != add)",
            AttentionOptions {
                mask: MaskForm::Select(-10000.0),
                ..Default::default()
            },
        ),
        (
            "masked_fill with a finite fill (replace != add)",
            AttentionOptions {
                mask: MaskForm::MaskedFill(-10000.0),
                ..Default::default()
            },
        ),
        (
            "a per-head scale vector",
            AttentionOptions {
                scale: ScaleForm::PerHeadVector,
                ..Default::default()
            },
        ),
        (
            "a zero scale (ONNX Runtime would use 1/sqrt(d))",
            AttentionOptions {
                scale: ScaleForm::Zero,
                ..Default::default()
            },
        ),
        (
            "softmax over the query axis",
            AttentionOptions {
                softmax_axis: 2,
                ..Default::default()
            },
        ),
        (
            "K not transposed",
            AttentionOptions {
                key_transpose: KeyTransposeForm::Missing,
                ..Default::default()
            },
        ),
    ];
    for (what, opts) in cases {
        let fused = optimized(&bert_attention_layer(opts), "attention");
        assert!(
            fused_nodes(&fused, "Attention").is_empty(),
            "{what}: {:?}",
            fused.graph.op_histogram()
        );
        assert!(
            fused_nodes(&fused, "MultiHeadAttention").is_empty(),
            "{what}"
        );
        assert_eq!(count(&fused, "Softmax"), 1, "{what}");
    }
}

/// With the fusion disabled nothing changes, even though its rules would match.
#[test]
fn disabled_fusion_does_not_fire() {
    let model = bert_attention_layer(AttentionOptions::default());
    let fused = optimized(&model, "all,-attention");
    assert!(fused_nodes(&fused, "Attention").is_empty());
    assert_eq!(count(&fused, "Softmax"), 1);
}

fn tiny_models() -> Vec<(String, PathBuf)> {
    let dir = workspace().join("testdata/models/tiny");
    let mut models: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    models.sort();
    assert_eq!(models.len(), 9, "tiny models in {}", dir.display());
    models
}

/// True for the models whose embedding is BERT-style (absolute positions 0..S-1).
fn has_absolute_position_embedding(name: &str) -> bool {
    name.starts_with("bert") || name.starts_with("distilbert")
}

/// Every tiny model (2 layers): two Attention, no Softmax; BERT and DistilBERT also get
/// their EmbedLayerNormalization.
#[test]
fn every_tiny_model_fuses_each_layer() {
    for (name, path) in tiny_models() {
        let fused = optimized(&Model::load(&path).unwrap(), "all");
        assert_eq!(
            fused_nodes(&fused, "Attention").len(),
            2,
            "{name}: {:?}",
            fused.graph.op_histogram()
        );
        assert_eq!(count(&fused, "Softmax"), 0, "{name}");
        let embed = fused_nodes(&fused, "EmbedLayerNormalization").len();
        assert_eq!(
            embed,
            usize::from(has_absolute_position_embedding(&name)),
            "{name}"
        );
        assert_eq!(count(&fused, "ReduceMean"), 0, "{name}");
        // The affine of every norm is folded in (these models carry unit scales and zero
        // biases at hidden 768, above the size of tracked constant values).
        let norm_outputs: Vec<&str> = fused
            .graph
            .nodes
            .iter()
            .filter(|n| n.op_type.ends_with("LayerNormalization"))
            .flat_map(|n| n.outputs.iter().map(String::as_str))
            .collect();
        // The NaN guard's `x · 0` (read only by its ReduceSum) is not an affine.
        let read_only_by_reduce_sum = |value: &str| {
            fused
                .graph
                .nodes
                .iter()
                .filter(|m| m.inputs.iter().any(|i| i == value))
                .all(|m| m.op_type == "ReduceSum")
        };
        let affine_left = fused.graph.nodes.iter().filter(|n| {
            matches!(n.op_type.as_str(), "Mul" | "Add")
                && n.inputs.iter().any(|i| norm_outputs.contains(&i.as_str()))
                && !n.outputs.iter().all(|o| read_only_by_reduce_sum(o))
        });
        assert_eq!(affine_left.count(), 0, "{name}: a norm's affine is left");
    }
}

/// Snapshots of each optimized tiny model's op histogram (all fusions).
#[test]
fn tiny_model_op_histograms() {
    for (name, path) in tiny_models() {
        let fused = optimized(&Model::load(&path).unwrap(), "all");
        let histogram: BTreeMap<String, usize> = fused.graph.op_histogram();
        let text: String = histogram
            .iter()
            .map(|(op, n)| format!("{op}: {n}\n"))
            .collect();
        insta::assert_snapshot!(format!("histogram_{name}"), text);
    }
}

/// The materialized base models (`cargo xtask models`), when present: one Attention per
/// layer (12), no Softmax, EmbedLayerNormalization for BERT.
#[test]
fn every_base_model_fuses_each_layer() {
    let dir = workspace().join("target/models");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipped: no materialized models in {} (run `cargo xtask models`)",
            dir.display()
        );
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let fused = optimized(&Model::load(&path).unwrap(), "all");
        assert_eq!(
            fused_nodes(&fused, "Attention").len(),
            12,
            "{name}: {:?}",
            fused.graph.op_histogram()
        );
        assert_eq!(count(&fused, "Softmax"), 0, "{name}");
        let embed = fused_nodes(&fused, "EmbedLayerNormalization").len();
        assert_eq!(
            embed,
            usize::from(has_absolute_position_embedding(&name)),
            "{name}"
        );
    }
}

fn optimized_with(model: &Model, attention_op: AttentionOp) -> Model {
    let options = OptimizeOptions {
        attention_op,
        ..Default::default()
    };
    optimize(model, &options).unwrap().0
}

/// `--attention-op`: `auto` packs where it can, `mha` never packs, `attention` leaves a
/// block whose projections cannot be packed unfused rather than emit MultiHeadAttention.
#[test]
fn attention_op_chooses_the_fused_op() {
    let layer = bert_attention_layer(AttentionOptions::default());
    let auto = optimized_with(&layer, AttentionOp::Auto);
    assert_eq!(fused_nodes(&auto, "Attention").len(), 1);
    assert_eq!(fused_nodes(&auto, "MultiHeadAttention").len(), 0);
    let mha = optimized_with(&layer, AttentionOp::MultiHeadAttention);
    assert_eq!(fused_nodes(&mha, "Attention").len(), 0);
    assert_eq!(
        fused_nodes(&mha, "MultiHeadAttention").len(),
        1,
        "{:?}",
        mha.graph.op_histogram()
    );
    assert_eq!(count(&mha, "Softmax"), 0);
    for (form, fused) in [("auto", &auto), ("mha", &mha)] {
        let report =
            transfuse_parity::check(&layer, fused, &transfuse_parity::Options::default()).unwrap();
        assert!(report.pass, "{form}: max abs diff {:e}", report.max_abs());
    }
    let packed = optimized_with(&layer, AttentionOp::Attention);
    assert_eq!(fused_nodes(&packed, "Attention").len(), 1);

    // The weight is a graph input: no packed form exists.
    let unpackable = packed_qkv_layer(32, 4, true);
    let packed_only = optimized_with(&unpackable, AttentionOp::Attention);
    assert_eq!(fused_nodes(&packed_only, "Attention").len(), 0);
    assert_eq!(fused_nodes(&packed_only, "MultiHeadAttention").len(), 0);
    assert_eq!(count(&packed_only, "Softmax"), 1);
    let auto = optimized_with(&unpackable, AttentionOp::Auto);
    assert_eq!(fused_nodes(&auto, "MultiHeadAttention").len(), 1);
}
