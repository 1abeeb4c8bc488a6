//! The fused graphs compute what the originals computed: every tiny model and the synthetic
//! attention layers, fused with all fusions, against the original, through the reference
//! interpreter and through ONNX Runtime 1.31.1 (which must also load the fused model).
//! Text models run with every padding pattern (none, right, left, a hole, a fully padded
//! row) at batch sizes 1 and 3; tolerance 1e-4 absolute.

#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;

use std::path::{Path, PathBuf};

use attention_models::inputs::{Padding, generate, max_abs_diff};
use attention_models::runners::{Outputs, interpreter, interpreter_values, onnx_runtime};
use attention_models::{
    AttentionOptions, KeyTransposeForm, MaskForm, ScaleForm, bert_attention_layer, packed_qkv_layer,
};
use transfuse_ir::{Model, Tensor};
use transfuse_ort::OptimizationLevel;
use transfuse_rewrite::{OptimizeOptions, optimize};

const TOLERANCE: f64 = 1e-4;

/// A way to run a model on inputs.
type Runner = dyn Fn(&Model, &[(String, Tensor)]) -> Result<Outputs, String>;
const SEQUENCE: usize = 16;

fn fused(model: &Model) -> Model {
    optimize(model, &OptimizeOptions::default()).unwrap().0
}

/// The input sets a model is checked on: each padding pattern (only `None` for models
/// without a mask input) at batch 1 and 3.
fn input_sets(model: &Model) -> Vec<(String, Vec<(String, Tensor)>)> {
    let has_mask = model.graph.inputs.iter().any(|i| i.name.contains("mask"));
    let paddings: &[Padding] = if has_mask {
        &Padding::ALL
    } else {
        &[Padding::None]
    };
    let mut sets = Vec::new();
    for &batch in &[1usize, 3] {
        for &padding in paddings {
            let seed = batch as u64 * 31 + padding as u64;
            sets.push((
                format!("batch {batch}, {padding:?} padding"),
                generate(model, batch, SEQUENCE, padding, seed),
            ));
        }
    }
    sets
}

/// Runs `original` and `candidate` with `run` on every input set and checks they agree
/// (NaN exactly where the original has NaN: a select mask filled with `-inf` and no guard
/// gives NaN for a fully padded sequence in both).
fn check(name: &str, original: &Model, candidate: &Model, run: &Runner) {
    for (case, inputs) in input_sets(original) {
        let expected =
            run(original, &inputs).unwrap_or_else(|e| panic!("{name}, {case}: original: {e}"));
        let got = run(candidate, &inputs).unwrap_or_else(|e| panic!("{name}, {case}: fused: {e}"));
        let diff = max_abs_diff(&expected, &got).unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
        assert!(diff <= TOLERANCE, "{name}, {case}: max abs diff {diff:e}");
    }
}

fn tiny_models() -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/tiny");
    let mut models: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    models.sort();
    models
}

/// The synthetic forms that no testdata model contains.
fn synthetic_models() -> Vec<(String, Model)> {
    let mut models = Vec::new();
    let forms = [
        (
            ScaleForm::DivSqrtD,
            KeyTransposeForm::TwoTransposes,
            MaskForm::ClassicAdditive(-10000.0),
        ),
        (
            ScaleForm::MulReciprocal,
            KeyTransposeForm::OneTranspose,
            MaskForm::ClassicAdditive(f32::MIN),
        ),
        (
            ScaleForm::MulReciprocal,
            KeyTransposeForm::TwoTransposes,
            MaskForm::Select(f32::MIN),
        ),
        (
            ScaleForm::BothSides,
            KeyTransposeForm::MergedBatch,
            MaskForm::Select(f32::NEG_INFINITY),
        ),
        (
            ScaleForm::DivSqrtD,
            KeyTransposeForm::OneTranspose,
            MaskForm::None,
        ),
    ];
    for (scale, key_transpose, mask) in forms {
        let opts = AttentionOptions {
            scale,
            key_transpose,
            mask,
            ..Default::default()
        };
        models.push((
            format!("synthetic {scale:?} {key_transpose:?} {mask:?}"),
            bert_attention_layer(opts),
        ));
    }
    let cross = AttentionOptions {
        cross_attention: true,
        ..Default::default()
    };
    models.push((
        "synthetic cross-attention".to_string(),
        bert_attention_layer(cross),
    ));
    models.push((
        "synthetic packed qkv".to_string(),
        packed_qkv_layer(32, 4, false),
    ));
    models.push((
        "synthetic packed qkv, weight an input".to_string(),
        packed_qkv_layer(32, 4, true),
    ));
    models
}

#[test]
fn tiny_models_match_through_the_interpreter() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        check(&name, &model, &fused(&model), &interpreter);
    }
}

#[test]
fn tiny_models_match_in_onnx_runtime() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        let run =
            |m: &Model, i: &[(String, Tensor)]| onnx_runtime(m, i, OptimizationLevel::Disabled);
        check(&name, &model, &fused(&model), &run);
    }
}

/// The fused models also run with ONNX Runtime's own optimizations on (how they are used).
#[test]
fn fused_tiny_models_run_with_onnx_runtime_optimizations() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        let candidate = fused(&model);
        let original =
            |m: &Model, i: &[(String, Tensor)]| onnx_runtime(m, i, OptimizationLevel::Disabled);
        let optimized =
            |m: &Model, i: &[(String, Tensor)]| onnx_runtime(m, i, OptimizationLevel::All);
        for (case, inputs) in input_sets(&model) {
            let expected = original(&model, &inputs).unwrap();
            let got =
                optimized(&candidate, &inputs).unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
            let diff =
                max_abs_diff(&expected, &got).unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
            assert!(diff <= TOLERANCE, "{name}, {case}: max abs diff {diff:e}");
        }
    }
}

#[test]
fn synthetic_models_match_through_the_interpreter() {
    for (name, model) in synthetic_models() {
        check(&name, &model, &fused(&model), &interpreter);
    }
}

#[test]
fn synthetic_models_match_in_onnx_runtime() {
    for (name, model) in synthetic_models() {
        let run =
            |m: &Model, i: &[(String, Tensor)]| onnx_runtime(m, i, OptimizationLevel::Disabled);
        check(&name, &model, &fused(&model), &run);
    }
}

/// A fully padded sequence: the TorchScript SDPA exports (mask fill `-inf`) give zeros in
/// every attention context row of that sequence (their `Where(IsNaN)` guard), and so does
/// the fused model (the guard moves after the fused op); the eager and dynamo exports (fill
/// `-3.4e38`) give the mean of V there, and so does the fused model. Checked on every value
/// both graphs compute under the same name (the attention outputs keep their names), not
/// only on the model output.
#[test]
fn fully_padded_sequence_gives_what_the_original_gives() {
    for (name, path) in tiny_models()
        .into_iter()
        .filter(|(n, _)| !n.contains("vit"))
    {
        let model = Model::load(&path).unwrap();
        let candidate = fused(&model);
        let inputs = generate(&model, 2, SEQUENCE, Padding::FullyPadded, 7);
        let expected = interpreter_values(&model, &inputs).unwrap();
        let got = interpreter_values(&candidate, &inputs).unwrap();
        let mut compared = 0;
        for (value, (shape, values)) in &got {
            let Some((expected_shape, expected_values)) = expected.get(value) else {
                continue;
            };
            let pair = |s: &Vec<usize>, v: &Vec<f64>| vec![(value.clone(), s.clone(), v.clone())];
            let diff = max_abs_diff(&pair(expected_shape, expected_values), &pair(shape, values))
                .unwrap_or_else(|e| panic!("{name}: value {value}: {e}"));
            assert!(
                diff <= TOLERANCE,
                "{name}: value {value}: max abs diff {diff:e}"
            );
            compared += 1;
        }
        // Each attention result (the fused op's output, or the guard's after it) carries the
        // name of the original head merge, so it was among the compared values.
        let nodes = &candidate.graph.nodes;
        for attention in nodes.iter().filter(|n| n.op_type == "Attention") {
            let out = &attention.outputs[0];
            let guard = nodes
                .iter()
                .find(|n| n.op_type == "Where" && n.inputs.get(2) == Some(out));
            let result = guard.map_or(out, |g| &g.outputs[0]);
            assert!(
                expected.contains_key(result),
                "{name}: attention result {result} has no original name"
            );
        }
        assert!(compared > 10, "{name}: only {compared} values compared");
        // The guard is kept exactly where the mask can hold -inf.
        let guarded = candidate.graph.nodes.iter().any(|n| n.op_type == "IsNaN");
        let minus_inf_mask = name.contains("sdpa_ts");
        assert_eq!(
            guarded, minus_inf_mask,
            "{name}: IsNaN guard after the fused op"
        );
    }
}
