//! The fused graphs compute what the originals computed: every tiny model and the synthetic
//! attention layers, fused with all fusions, against the original, through the reference
//! interpreter and through ONNX Runtime 1.31.1 (which must also load the fused model).
//! Text models run with every padding pattern (none, right, left, a hole, a fully padded
//! row) at batch sizes 1 and 3; tolerance 1e-4 absolute.

#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;
mod support;

use std::path::{Path, PathBuf};

use attention_models::Rng;
use attention_models::{
    AttentionOptions, KeyTransposeForm, MaskForm, ScaleForm, Unbind, bert_attention_layer,
    packed_qkv_layer, packed_qkv_layer_unbound,
};
use transfuse_ir::{DataType, Model, Tensor};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::compare::shared_intermediates;
use transfuse_parity::{
    InputSource, InputSpec, Options, Padding, Runtime, Tolerance, compare_outputs,
    generate_inputs_with_symbols, max_abs_diff, prepare, run_model,
};
use transfuse_rewrite::{OptimizeOptions, optimize};

use support::{count, producer};

const TOLERANCE: f64 = 1e-4;
const SEQUENCE: usize = 16;

/// Inputs for `model`: batch `batch`, sequence `SEQUENCE` (key/value sequence of the
/// cross-attention models `SEQUENCE + 3`, so the two lengths differ). Float inputs (hidden
/// states, pixels) are uniform in `[-1, 1)`, the range the synthetic layers' weights are
/// scaled for: with standard normal hidden states, the fully padded row of the `-10000`
/// additive mask differs by rounding alone (f32's step at 10000 is 1e-3) beyond 1e-4.
fn generate(model: &Model, batch: usize, padding: Padding, seed: u64) -> Vec<Tensor> {
    let spec = InputSpec {
        batch,
        seq: SEQUENCE,
        seed,
        padding,
    };
    let mut inputs =
        generate_inputs_with_symbols(model, &spec, &[("kv_sequence", SEQUENCE + 3)]).unwrap();
    let mut rng = Rng::new(seed);
    for t in inputs.iter_mut().filter(|t| t.dtype == DataType::Float) {
        let n = t.dims.iter().product::<i64>() as usize;
        *t = Tensor::from_f32(&t.name, t.dims.clone(), &rng.floats(n, 1.0));
    }
    inputs
}

/// The reference interpreter.
fn interpreter() -> Runtime {
    Runtime::reference()
}

/// ONNX Runtime on one thread with its graph optimizations at `level`.
fn onnx_runtime(level: OptimizationLevel) -> Runtime {
    Runtime::ort(
        SessionOptions::default()
            .optimization_level(level)
            .intra_op_threads(1),
    )
}

fn fused(model: &Model) -> Model {
    optimize(model, &OptimizeOptions::default()).unwrap().0
}

/// The input sets a model is checked on: each padding pattern (only `None` for models
/// without a mask input) at batch 1 and 3.
fn input_sets(model: &Model) -> Vec<(String, Vec<Tensor>)> {
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
                generate(model, batch, padding, seed),
            ));
        }
    }
    sets
}

/// Runs `original` and `candidate` in `runtime` on every input set and checks they agree
/// (NaN exactly where the original has NaN: a select mask filled with `-inf` and no guard
/// gives NaN for a fully padded sequence in both).
fn check(name: &str, original: &Model, candidate: &Model, runtime: &Runtime) {
    for (case, inputs) in input_sets(original) {
        let options = Options {
            inputs: InputSource::Given(inputs),
            runtime: runtime.clone(),
            tolerance: Tolerance::absolute(TOLERANCE),
            locate_divergence: false,
        };
        let report = transfuse_parity::check(original, candidate, &options)
            .unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
        assert!(
            report.pass,
            "{name}, {case}: max abs diff {:e} ({:?})",
            report.max_abs(),
            report.outputs
        );
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

/// The tiny model called `name`, loaded.
fn tiny(name: &str) -> Model {
    let path = tiny_models()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no tiny model {name}"))
        .1;
    Model::load(&path).unwrap()
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
        (
            ScaleForm::DivSqrtD,
            KeyTransposeForm::TwoTransposes,
            MaskForm::MaskedFill(f32::NEG_INFINITY),
        ),
        (
            ScaleForm::MulReciprocal,
            KeyTransposeForm::OneTranspose,
            MaskForm::MaskedFill(f32::MIN),
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
    for mask in [
        MaskForm::ClassicAdditive(-10000.0),
        MaskForm::Select(f32::NEG_INFINITY),
    ] {
        let opts = AttentionOptions {
            position_term: true,
            mask,
            ..Default::default()
        };
        models.push((
            format!("synthetic heads-first Q and K, {mask:?}"),
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
    models.push((
        "synthetic packed qkv cut by slices".to_string(),
        packed_qkv_layer_unbound(32, 4, false, Unbind::Slices),
    ));
    models
}

#[test]
fn tiny_models_match_through_the_interpreter() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        check(&name, &model, &fused(&model), &interpreter());
    }
}

#[test]
fn tiny_models_match_in_onnx_runtime() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        check(
            &name,
            &model,
            &fused(&model),
            &onnx_runtime(OptimizationLevel::Disabled),
        );
    }
}

/// The fused models also run with ONNX Runtime's own optimizations on (how they are used).
#[test]
fn fused_tiny_models_run_with_onnx_runtime_optimizations() {
    for (name, path) in tiny_models() {
        let model = Model::load(&path).unwrap();
        let candidate = fused(&model);
        let original = onnx_runtime(OptimizationLevel::Disabled);
        let optimized = onnx_runtime(OptimizationLevel::All);
        for (case, inputs) in input_sets(&model) {
            let expected = run_model(&model, &inputs, &original).unwrap();
            let got = run_model(&candidate, &inputs, &optimized)
                .unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
            let outputs = compare_outputs(&got, &expected, Tolerance::absolute(TOLERANCE))
                .unwrap_or_else(|e| panic!("{name}, {case}: {e}"));
            assert!(
                outputs.iter().all(|o| o.pass),
                "{name}, {case}: {outputs:?}"
            );
        }
    }
}

#[test]
fn synthetic_models_match_through_the_interpreter() {
    for (name, model) in synthetic_models() {
        check(&name, &model, &fused(&model), &interpreter());
    }
}

#[test]
fn synthetic_models_match_in_onnx_runtime() {
    for (name, model) in synthetic_models() {
        check(
            &name,
            &model,
            &fused(&model),
            &onnx_runtime(OptimizationLevel::Disabled),
        );
    }
}

/// A fully padded sequence: the TorchScript SDPA exports (mask fill `-inf`) give zeros in
/// every attention context row of that sequence (their `Where(IsNaN)` guard), and so does
/// the fused model (its output times a per-sequence "some key kept" flag, `Mul(F,
/// any_kept)`); the eager and dynamo exports (fill `-3.4e38`) give the mean of V there, and
/// so does the fused model, with no guard. Checked on every value
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
        let inputs = generate(&model, 2, Padding::FullyPadded, 7);
        let shared = shared_intermediates(&model, &candidate);
        let values = |m: &Model| {
            prepare(&interpreter(), m, None, &name)
                .and_then(|mut engine| engine.capture(&inputs, &shared))
                .unwrap()
        };
        let expected = values(&model);
        let got = values(&candidate);
        let mut compared = 0;
        for (value, tensor) in &got {
            let Some(expected_tensor) = expected.get(value) else {
                continue;
            };
            let diff = max_abs_diff(tensor, expected_tensor);
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
            let guard = nodes.iter().find(|n| {
                (n.op_type == "Where" && n.inputs.get(2) == Some(out))
                    || (n.op_type == "Mul" && n.inputs.first() == Some(out))
            });
            let result = guard.map_or(out, |g| &g.outputs[0]);
            assert!(
                expected.contains_key(result),
                "{name}: attention result {result} has no original name"
            );
            // A guard exactly where a fully padded sequence needs one (`-inf` fill).
            assert_eq!(
                guard.is_some(),
                NEG_INF_FILL.contains(&name.as_str()),
                "{name}: guard after the fused op"
            );
        }
        assert!(compared > 10, "{name}: only {compared} values compared");
        assert_eq!(
            count(&candidate, "IsNaN"),
            0,
            "{name}: an IsNaN guard is left"
        );
    }
}

/// The tiny text exports whose mask fills `-inf` (TorchScript SDPA).
const NEG_INF_FILL: [&str; 2] = ["bert_sdpa_ts_op17", "roberta_sdpa_ts_op14"];

/// True when the model has Attention nodes and `check` holds for each.
fn every_attention(model: &Model, check: impl Fn(&transfuse_ir::Node) -> bool) -> bool {
    let mut attention = model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Attention")
        .peekable();
    attention.peek().is_some() && attention.all(check)
}

/// True when every Attention's bias is the compact key-padding form
/// `Expand(Where(Unsqueeze(Cast(mask)), zero, fill), shape)`.
fn bias_is_compact(model: &Model) -> bool {
    every_attention(model, |a| {
        let chain = ["Expand", "Where", "Unsqueeze", "Cast"];
        let mut value = a.inputs.get(5).cloned().unwrap_or_default();
        chain.iter().all(|op| match producer(model, &value) {
            Some(n) if n.op_type == *op => {
                value = n.inputs[0].clone();
                true
            }
            _ => false,
        })
    })
}

/// True when every Attention takes the padding mask as a 2-D `mask_index`
/// `Cast(Cast(mask, bool), int32)` with the exporter's fill as `mask_filter_value`, and no bias.
fn mask_is_raw_index(model: &Model, fill: f32) -> bool {
    every_attention(model, |a| {
        let cast = a.inputs.get(3).and_then(|m| producer(model, m));
        let keep = cast.and_then(|c| producer(model, &c.inputs[0]));
        cast.is_some_and(|c| c.op_type == "Cast" && c.attr_int("to") == Some(6))
            && keep.is_some_and(|k| k.op_type == "Cast" && k.attr_int("to") == Some(9))
            && a.inputs.get(5).is_none_or(String::is_empty)
            && a.attr_float("mask_filter_value") == Some(fill)
    })
}

/// The text exports build their `[B,1,S,T]` keep-mask with index arithmetic (TorchScript: a
/// flat gather at `b*T + k`; dynamo: `GatherND` at `[b, k]`). The fused models take the
/// padding mask as a 2-D `mask_index` with the fill `-3.4e38`: the exporter's where it is
/// finite (eager and dynamo exports), and in place of `-inf` (TorchScript SDPA exports) where
/// the scores are bounded. A query weight of `3.4e38` leaves no such bound, and the `-inf`
/// mask then goes in as the compact `attention_bias` `Expand(Where(Unsqueeze(Cast(mask))))`.
/// Parity of these models is checked by the tests above, every padding pattern.
#[test]
fn key_padding_masks_become_compact() {
    let poisoned_queries = |mut model: Model, weights: &[&str]| {
        for &weight in weights {
            let t = model.graph.initializer(weight).unwrap();
            let mut values = t.to_f32_vec().unwrap();
            values[0] = 3.4e38;
            let changed = Tensor::from_f32(weight, t.dims.clone(), &values);
            model.graph.add_initializer(changed);
        }
        model
    };
    for (name, query_weights) in [
        ("bert_eager_ts_op14", None),
        ("bert_sdpa_dynamo_op18", None),
        (
            "bert_sdpa_ts_op17",
            Some(["onnx::MatMul_332", "onnx::MatMul_349"]),
        ),
        ("distilbert_eager_ts_op14", None),
        ("roberta_sdpa_ts_op14", None),
    ] {
        let original = tiny(name);
        let candidate = fused(&original);
        assert!(mask_is_raw_index(&candidate, f32::MIN), "{name}");
        if let Some(weights) = query_weights {
            let poisoned = poisoned_queries(original, &weights);
            let candidate = fused(&poisoned);
            assert!(
                bias_is_compact(&candidate),
                "{name}, query weights poisoned"
            );
            check(name, &poisoned, &candidate, &interpreter());
        }
        for op in ["Range", "Flatten", "GatherND", "GreaterOrEqual"] {
            assert_eq!(
                candidate
                    .graph
                    .nodes
                    .iter()
                    .filter(|n| n.op_type == op)
                    .count(),
                0,
                "{name}: {op} left"
            );
        }
    }
}

/// Sets the value of the `Constant` node that produces `output`.
fn set_constant(model: &mut Model, output: &str, value: Tensor) {
    let node = model
        .graph
        .nodes
        .iter_mut()
        .find(|n| n.op_type == "Constant" && n.outputs[0] == output)
        .unwrap();
    for attr in &mut node.attributes {
        if attr.name == "value" {
            attr.value = transfuse_ir::AttrValue::Tensor(value.renamed(""));
        }
    }
}

/// Masks that are not a pure key-padding mask keep the exporter's subgraph, and the fused
/// model still computes what the original does: the gather index scaled by the batch size
/// instead of the key length (rows mixed up at batch > 1), and a query mask that is not all
/// true (`q >= 3`, the first query rows fully masked).
#[test]
fn other_masks_are_not_made_compact() {
    let original = tiny("bert_eager_ts_op14");
    let mut wrong_stride = original.clone();
    set_constant(
        &mut wrong_stride,
        "/m/Constant_20_output_0",
        Tensor::from_i64("", vec![1], &[0]),
    );
    let mut query_mask = original.clone();
    set_constant(
        &mut query_mask,
        "/m/Constant_19_output_0",
        Tensor::from_i64("", vec![], &[3]),
    );
    for (case, model) in [("stride B", wrong_stride), ("q >= 3", query_mask)] {
        let candidate = fused(&model);
        assert!(!bias_is_compact(&candidate), "{case}");
        assert!(!mask_is_raw_index(&candidate, f32::MIN), "{case}");
        assert_eq!(
            candidate
                .graph
                .nodes
                .iter()
                .filter(|n| n.op_type == "Attention")
                .count(),
            2,
            "{case}: attention still fuses"
        );
        check(case, &model, &candidate, &interpreter());
    }
    // And unmodified, it does become a 2-D mask_index.
    assert!(mask_is_raw_index(&fused(&original), f32::MIN));
}

/// With `MultiHeadAttention` (`--attention-op mha`), the `-inf` key-padding mask of the
/// TorchScript SDPA exports becomes one `[B, 1, T, T]` bias with the finite fill, shared by
/// every layer, plus the per-sequence flag; the models match the original in ONNX Runtime on
/// every padding pattern, a fully padded sequence included.
#[test]
fn multi_head_attention_takes_one_shared_finite_fill_bias() {
    let options = OptimizeOptions {
        attention_op: transfuse_rewrite::AttentionOp::MultiHeadAttention,
        ..OptimizeOptions::default()
    };
    for name in NEG_INF_FILL {
        let model = tiny(name);
        let candidate = optimize(&model, &options).unwrap().0;
        let biases: std::collections::HashSet<&str> = candidate
            .graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "MultiHeadAttention")
            .map(|n| n.inputs[5].as_str())
            .collect();
        assert_eq!(count(&candidate, "MultiHeadAttention"), 2, "{name}");
        assert_eq!(biases.len(), 1, "{name}: {biases:?}");
        assert_eq!(count(&candidate, "ReduceMax"), 1, "{name}");
        assert_eq!(count(&candidate, "IsNaN"), 0, "{name}");
        check(
            name,
            &model,
            &candidate,
            &onnx_runtime(OptimizationLevel::Disabled),
        );
    }
}
