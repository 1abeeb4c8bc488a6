//! Regression tests for models the optimizer must never make worse: an output that ONNX
//! Runtime refuses (a negative or NaN layer-norm epsilon, an attention bias of the wrong
//! shape), one that computes something else (the exporter's NaN guard after Softmax), or one
//! that is invalid at the model's opset. Each test starts from a minimal model that failed
//! before the fix.

#![allow(clippy::unwrap_used, clippy::panic)]

mod attention_models;
mod support;

use std::path::PathBuf;

use transfuse_ir::{AttrValue, Model, Tensor};
use transfuse_ort::OptimizationLevel;
use transfuse_parity::{InputSpec, Padding, Runtime, generate_inputs, run_model};
use transfuse_rewrite::{OptimizeOptions, optimize};

use support::{count, model_of, producer};

fn fused(model: &Model) -> Model {
    optimize(model, &OptimizeOptions::default()).unwrap().0
}

fn tiny(name: &str) -> Model {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny")
        .join(format!("{name}.onnx"));
    Model::load(&path).unwrap()
}

/// One run's outputs: `(name, shape, values)` in graph output order.
type Outputs = Vec<(String, Vec<usize>, Vec<f64>)>;

/// Generated inputs (transfuse-parity's generator) at `batch` x `seq`.
fn generate(model: &Model, batch: usize, seq: usize, padding: Padding, seed: u64) -> Vec<Tensor> {
    let spec = InputSpec {
        batch,
        seq,
        seed,
        padding,
    };
    generate_inputs(model, &spec).unwrap()
}

fn run_on(model: &Model, inputs: &[Tensor], runtime: &Runtime) -> Result<Outputs, String> {
    let outputs = run_model(model, inputs, runtime).map_err(|e| e.to_string())?;
    outputs
        .into_iter()
        .map(|t| {
            let shape = t.dims.iter().map(|&d| d as usize).collect();
            let values = t.to_f64_vec().map_err(|e| e.to_string())?;
            Ok((t.name.clone(), shape, values))
        })
        .collect()
}

/// Runs `model` in the reference interpreter.
fn interpreter(model: &Model, inputs: &[Tensor]) -> Result<Outputs, String> {
    run_on(model, inputs, &Runtime::reference())
}

/// Runs `model` in ONNX Runtime on one thread with graph optimizations `level`.
fn onnx_runtime(
    model: &Model,
    inputs: &[Tensor],
    level: OptimizationLevel,
) -> Result<Outputs, String> {
    let options = transfuse_ort::SessionOptions::default()
        .optimization_level(level)
        .intra_op_threads(1);
    run_on(model, inputs, &Runtime::ort(options))
}

/// True when every output value of `a` and `b` is NaN in both or finite in both (and the
/// finite ones agree to `1e-4`), position by position.
fn same_results(a: &Outputs, b: &Outputs) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} outputs vs {}", a.len(), b.len()));
    }
    for ((name, sa, va), (_, sb, vb)) in a.iter().zip(b) {
        if sa != sb {
            return Err(format!("{name}: shape {sa:?} vs {sb:?}"));
        }
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            let agree = match (x.is_nan(), y.is_nan()) {
                (true, true) => true,
                (false, false) => x == y || (x - y).abs() <= 1e-4,
                _ => false,
            };
            if !agree {
                return Err(format!("{name}[{i}]: original {x}, optimized {y}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Layer-norm epsilon (ONNX Runtime enforces `epsilon >= 0` in its fused layer norms).

/// `LayerNormalization(x + MatMul(h, W) + bias)` at opset 17 with `epsilon`.
fn residual_layer_norm(epsilon: f32) -> Model {
    use transfuse_ir::{DataType, Dim, Graph, Node, ValueInfo};
    let dims = || {
        Some(vec![
            Dim::Symbol("batch".into()),
            Dim::Symbol("seq".into()),
            Dim::Known(8),
        ])
    };
    let mut graph = Graph {
        name: "residual".into(),
        ..Graph::default()
    };
    graph.inputs = vec![
        ValueInfo::tensor("x", DataType::Float, dims()),
        ValueInfo::tensor("h", DataType::Float, dims()),
    ];
    let values = |n: usize, s: f32| {
        (0..n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * s)
            .collect::<Vec<_>>()
    };
    graph.add_initializer(Tensor::from_f32("w", vec![8, 8], &values(64, 0.1)));
    graph.add_initializer(Tensor::from_f32("bias", vec![8], &values(8, 0.05)));
    graph.add_initializer(Tensor::from_f32("gamma", vec![8], &values(8, 0.2)));
    graph.add_initializer(Tensor::from_f32("beta", vec![8], &values(8, 0.03)));
    graph.nodes = vec![
        Node::new(
            "MatMul",
            "",
            vec!["h".into(), "w".into()],
            vec!["mm".into()],
        ),
        Node::new(
            "Add",
            "",
            vec!["mm".into(), "bias".into()],
            vec!["dense".into()],
        ),
        Node::new(
            "Add",
            "",
            vec!["dense".into(), "x".into()],
            vec!["sum".into()],
        ),
        Node::new(
            "LayerNormalization",
            "",
            vec!["sum".into(), "gamma".into(), "beta".into()],
            vec!["y".into()],
        )
        .with_attr("epsilon", AttrValue::Float(epsilon)),
    ];
    graph.outputs = vec![ValueInfo::tensor("y", DataType::Float, dims())];
    graph.check().unwrap();
    model_of(graph, 17)
}

#[test]
fn invalid_epsilon_never_reaches_a_fused_layer_norm() {
    // A valid epsilon fuses (so the test can fail).
    let valid = fused(&residual_layer_norm(1e-5));
    assert_eq!(count(&valid, "SkipLayerNormalization"), 1);
    for epsilon in [-1.0, -1e-12, f32::NAN, f32::INFINITY] {
        let model = residual_layer_norm(epsilon);
        let out = fused(&model);
        assert_eq!(
            count(&out, "SkipLayerNormalization") + count(&out, "EmbedLayerNormalization"),
            0,
            "epsilon {epsilon}"
        );
        let inputs = generate(&model, 2, 5, Padding::None, 3);
        let expected = onnx_runtime(&model, &inputs, OptimizationLevel::Disabled).unwrap();
        let got = onnx_runtime(&out, &inputs, OptimizationLevel::Disabled)
            .unwrap_or_else(|e| panic!("epsilon {epsilon}: ONNX Runtime refuses the output: {e}"));
        same_results(&expected, &got).unwrap_or_else(|e| panic!("epsilon {epsilon}: {e}"));
    }
}

/// A BERT embedding layer norm (opset 17: an ONNX `LayerNormalization`) with a negative or
/// NaN epsilon stays unfused, and ONNX Runtime loads and runs the output.
#[test]
fn invalid_epsilon_keeps_the_embedding_layer_norm() {
    let model = tiny("bert_sdpa_ts_op17");
    assert_eq!(count(&fused(&model), "EmbedLayerNormalization"), 1);
    for epsilon in [-1.0f32, f32::NAN] {
        let mut changed = model.clone();
        let first = changed
            .graph
            .nodes
            .iter_mut()
            .find(|n| n.op_type == "LayerNormalization")
            .unwrap();
        first.attributes.retain(|a| a.name != "epsilon");
        *first = first
            .clone()
            .with_attr("epsilon", AttrValue::Float(epsilon));
        let out = fused(&changed);
        assert_eq!(
            count(&out, "EmbedLayerNormalization"),
            0,
            "epsilon {epsilon}"
        );
        let inputs = generate(&changed, 2, 6, Padding::None, 5);
        let expected = onnx_runtime(&changed, &inputs, OptimizationLevel::Disabled).unwrap();
        let got = onnx_runtime(&out, &inputs, OptimizationLevel::Disabled)
            .unwrap_or_else(|e| panic!("epsilon {epsilon}: ONNX Runtime refuses the output: {e}"));
        same_results(&expected, &got).unwrap_or_else(|e| panic!("epsilon {epsilon}: {e}"));
    }
}

/// Replaces the value of a `Constant` node output or an initializer called `name` (no-op
/// when `name` is neither).
fn set_value(model: &mut Model, name: &str, value: Tensor) {
    if let Some(node) = model
        .graph
        .nodes
        .iter_mut()
        .find(|n| n.op_type == "Constant" && n.outputs[0] == name)
    {
        for attr in &mut node.attributes {
            if attr.name == "value" {
                attr.value = AttrValue::Tensor(value.renamed(""));
            }
        }
        return;
    }
    if model.graph.initializer(name).is_some() {
        model.graph.add_initializer(value.renamed(name));
    }
}

// ---------------------------------------------------------------------------------------
// Attention bias shape.

#[test]
fn changed_range_steps_never_give_a_bias_onnx_runtime_refuses() {
    for (name, steps) in [
        (
            "bert_eager_ts_op14",
            vec![
                "/m/Constant_4_output_0",
                "/m/Constant_6_output_0",
                "/m/Constant_8_output_0",
            ],
        ),
        (
            "bert_sdpa_ts_op17",
            vec![
                "/m/Constant_4_output_0",
                "/m/Constant_6_output_0",
                "/m/Constant_8_output_0",
            ],
        ),
        (
            "roberta_sdpa_ts_op14",
            vec![
                "/m/Constant_4_output_0",
                "/m/Constant_6_output_0",
                "/m/Constant_8_output_0",
            ],
        ),
        ("bert_sdpa_dynamo_op18", vec!["val_21"]),
    ] {
        for &constant in &steps {
            for step in [2i64, 16, 100] {
                let mut model = tiny(name);
                set_value(&mut model, constant, Tensor::from_i64("", vec![], &[step]));
                let out = fused(&model);
                let case = format!("{name}, {} step {step}", constant);
                for (batch, padding) in [(1, Padding::None), (3, Padding::Right)] {
                    let inputs = generate(&model, batch, 16, padding, 11);
                    let Ok(expected) = onnx_runtime(&model, &inputs, OptimizationLevel::Disabled)
                    else {
                        continue;
                    };
                    let got = onnx_runtime(&out, &inputs, OptimizationLevel::Disabled)
                        .unwrap_or_else(|e| panic!("{case}: ONNX Runtime: {e}"));
                    same_results(&expected, &got).unwrap_or_else(|e| panic!("{case}: {e}"));
                    let reference = interpreter(&out, &inputs).unwrap();
                    same_results(&expected, &reference)
                        .unwrap_or_else(|e| panic!("{case}: interpreter: {e}"));
                }
                eprintln!(
                    "{case}: {} Attention",
                    count(&out, "Attention") + count(&out, "MultiHeadAttention")
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The exporter's NaN guard `Where(IsNaN(Softmax), 0, Softmax)`.

/// Positions where `a` and `b` do not both hold NaN or both a finite value (or both the same
/// infinity): the first, described.
fn same_classes(a: &Outputs, b: &Outputs) -> Result<usize, String> {
    let mut nan = 0;
    for ((name, sa, va), (_, sb, vb)) in a.iter().zip(b) {
        if sa != sb {
            return Err(format!("{name}: shape {sa:?} vs {sb:?}"));
        }
        for (i, (x, y)) in va.iter().zip(vb).enumerate() {
            let agree = (x.is_nan() && y.is_nan())
                || (x.is_finite() && y.is_finite())
                || (x.is_infinite() && x == y);
            if !agree {
                return Err(format!("{name}[{i}]: original {x}, optimized {y}"));
            }
            nan += usize::from(x.is_nan());
        }
    }
    Ok(nan)
}

/// Sets element `[row, col]` of the 2-D float initializer `name` to `value`.
fn poke(model: &mut Model, name: &str, row: usize, col: usize, value: f32) {
    let t = model.graph.initializer(name).unwrap();
    let cols = usize::try_from(t.dims[1]).unwrap();
    let mut values = t.to_f32_vec().unwrap();
    values[row * cols + col] = value;
    let changed = Tensor::from_f32(name, t.dims.clone(), &values);
    model.graph.add_initializer(changed);
}

/// A huge or NaN query or value weight: the guarded SDPA exports and their fused form give
/// NaN at the same positions and finite values at the same positions (and the same values
/// where the scores do not overflow), through the reference interpreter.
#[test]
fn nan_guard_keeps_its_semantics_for_overflow_and_nan_weights() {
    let cases = [
        ("bert_sdpa_ts_op17", "onnx::MatMul_332", "onnx::MatMul_340"),
        ("bert_sdpa_dynamo_op18", "val_49", "val_65"),
        ("vit_sdpa_ts_op17", "onnx::MatMul_306", "onnx::MatMul_314"),
    ];
    for (name, query, value) in cases {
        let original = tiny(name);
        let out = fused(&original);
        assert_eq!(
            count(&out, "Attention") + count(&out, "MultiHeadAttention"),
            2,
            "{name}: the guarded form still fuses"
        );
        let inputs = generate(&original, 2, 16, Padding::Right, 9);
        // Unchanged weights: the same values.
        let expected = interpreter(&original, &inputs).unwrap();
        let got = interpreter(&out, &inputs).unwrap();
        same_results(&expected, &got).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (weight, what) in [(query, "query"), (value, "value")] {
            for poison in [3.4e38f32, -3.4e38, f32::NAN, f32::INFINITY] {
                let mut model = original.clone();
                for row in 0..4 {
                    poke(&mut model, weight, row, row, poison);
                }
                let out = fused(&model);
                let expected = interpreter(&model, &inputs).unwrap();
                let got = interpreter(&out, &inputs).unwrap();
                let case = format!("{name}, {what} weight {poison}");
                let nan = same_classes(&expected, &got).unwrap_or_else(|e| panic!("{case}: {e}"));
                let total: usize = expected.iter().map(|o| o.2.len()).sum();
                // Overflowing scores zero whole rows in the original: what the guard is for.
                eprintln!("{case}: {nan} NaN of {total}");
            }
        }
    }
}

/// The op type producing what each NaN guard's `ReduceSum(t · 0)` reads as `t`: a
/// normalization for the by-input form, the value projection (`Add`/`MatMul`) for the
/// by-column form.
fn guard_sources(model: &Model) -> Vec<String> {
    let producer = |value: &str| producer(model, value);
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "ReduceSum")
        .filter_map(|sum| producer(&sum.inputs[0]))
        .filter(|zeroed| zeroed.op_type == "Mul")
        .filter_map(|zeroed| zeroed.inputs.iter().find_map(|i| producer(i)))
        .map(|n| n.op_type.clone())
        .collect()
}

const GUARDED: [&str; 4] = [
    "bert_sdpa_ts_op17",
    "bert_sdpa_dynamo_op18",
    "vit_sdpa_ts_op17",
    "vit_sdpa_dynamo_op18",
];

/// The number of `Mul(F, any_kept)` guards: a fused attention output times a `ReduceMax`
/// of the mask.
fn keep_guards(model: &Model) -> usize {
    let producer = |value: &str| producer(model, value).map(|n| n.op_type.as_str());
    model
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "Mul" && n.inputs.len() == 2)
        .filter(|n| producer(&n.inputs[0]) == Some("Attention"))
        .filter(|n| producer(&n.inputs[1]) == Some("ReduceMax"))
        .count()
}

/// The value projection's input is a layer norm's output with finite constants, and the
/// query and key weights bound the scores, so the guard takes its cheapest form:
/// - no mask (ViT) or a finite mask fill (the dynamo BERT export, `-3.4e38`): no guard at
///   all;
/// - a `-inf` mask fill (the TorchScript BERT export): the fused op takes a finite fill and
///   its output is multiplied by the per-sequence "some key kept" flag, no `IsNaN` left.
#[test]
fn nan_guard_takes_its_cheapest_form_when_scores_and_value_are_bounded() {
    for name in GUARDED {
        let original = tiny(name);
        let out = fused(&original);
        assert_eq!(count(&out, "IsNaN"), 0, "{name}: an IsNaN guard is left");
        assert_eq!(guard_sources(&out), Vec::<String>::new(), "{name}");
        let expected_keep_guards = if name == "bert_sdpa_ts_op17" { 2 } else { 0 };
        assert_eq!(keep_guards(&out), expected_keep_guards, "{name}");
        // One flag for the whole network.
        assert_eq!(
            count(&out, "ReduceMax"),
            expected_keep_guards.min(1),
            "{name}"
        );
        // Two layers, four linears each (the value projection is only inside Attention),
        // plus ViT's classifier.
        let linears = count(&out, "MatMul") + count(&out, "Gemm");
        assert_eq!(linears, 6 + usize::from(name.starts_with("vit")), "{name}");
    }
}

/// A query weight that can overflow the scores keeps the guard, read from the input (the
/// value is still bounded); a value weight that can overflow keeps it by column.
#[test]
fn nan_guard_stays_when_a_weight_is_unbounded() {
    for (weight, expected) in [
        ("onnx::MatMul_306", "LayerNormalization"),
        ("onnx::MatMul_314", "Add"),
    ] {
        let mut model = tiny("vit_sdpa_ts_op17");
        poke(&mut model, weight, 0, 0, 3.4e38);
        let sources = guard_sources(&fused(&model));
        assert_eq!(sources.len(), 1, "{weight}: {sources:?}");
        assert!(sources[0].ends_with(expected), "{weight}: {sources:?}");
    }
}

/// The guard's forms on inputs that make rows non-finite or fully masked: NaN and finite at
/// the same positions as the original, and the same finite values, in the reference
/// interpreter and in ONNX Runtime. Text models get their non-finite rows from a poisoned
/// word-embedding row (the normalization bound the guard relies on reads only the layer
/// norm's constants), at a kept position and at a padded one, with and without a fully
/// masked second sequence.
#[test]
fn nan_guard_forms_match_the_original_on_non_finite_and_masked_inputs() {
    for name in GUARDED {
        let original = tiny(name);
        let inputs = generate(&original, 2, 16, Padding::Right, 5);
        let mut cases: Vec<(String, Model, Vec<Tensor>)> = Vec::new();
        if let Some(k) = inputs.iter().position(|t| t.name == "pixel_values") {
            for poison in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3.4e38] {
                let mut changed = inputs.clone();
                let t = &inputs[k];
                let mut values = t.to_f32_vec().unwrap();
                values[7] = poison;
                changed[k] = Tensor::from_f32(&t.name, t.dims.clone(), &values);
                cases.push((format!("pixel {poison}"), original.clone(), changed));
            }
        }
        if let Some(k) = inputs.iter().position(|t| t.name == "attention_mask") {
            // The second sequence fully masked.
            let mut fully_masked = inputs.clone();
            let t = &inputs[k];
            let mask = t.to_i64_vec().unwrap();
            let half = mask.len() / 2;
            let mut values = mask.clone();
            values[half..].fill(0);
            fully_masked[k] = Tensor::from_i64(&t.name, t.dims.clone(), &values);
            let ids = inputs.iter().find(|t| t.name == "input_ids").unwrap();
            let ids = ids.to_i64_vec().unwrap();
            // Position 3 of the first sequence is kept; the last of the second is padding.
            let last = ids.len() - 1;
            assert_eq!((mask[3], mask[last]), (1, 0), "{name}: padding pattern");
            cases.push((
                "fully masked sequence".to_string(),
                original.clone(),
                fully_masked.clone(),
            ));
            for (where_, position) in [("kept", 3), ("padded", last)] {
                let row = usize::try_from(ids[position]).unwrap();
                for poison in [f32::INFINITY, f32::NAN, 3.4e38] {
                    let mut model = original.clone();
                    for col in 0..4 {
                        poke(
                            &mut model,
                            "m.embeddings.word_embeddings.weight",
                            row,
                            col,
                            poison,
                        );
                    }
                    for (masking, case_inputs) in [("", &inputs), (", fully masked", &fully_masked)]
                    {
                        let what = format!("{poison} embedding at a {where_} token{masking}");
                        cases.push((what, model.clone(), case_inputs.clone()));
                    }
                }
            }
        }
        assert!(!cases.is_empty(), "{name}");
        for (what, model, case_inputs) in cases {
            let out = fused(&model);
            let expected = interpreter(&model, &case_inputs).unwrap();
            let got = interpreter(&out, &case_inputs).unwrap();
            same_results(&expected, &got).unwrap_or_else(|e| panic!("{name}, {what}: {e}"));
            let ort = |m: &Model| onnx_runtime(m, &case_inputs, OptimizationLevel::Disabled);
            same_results(&ort(&model).unwrap(), &ort(&out).unwrap())
                .unwrap_or_else(|e| panic!("{name}, {what}, ONNX Runtime: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Opsets.

/// Opset-14 ViT: ONNX `LayerNormalization` is only defined from opset 17, and every op of
/// the model means the same there, so the output imports opset 17.
#[test]
fn opset_14_model_with_layer_norm_is_raised_to_17() {
    let model = tiny("vit_eager_ts_op14");
    assert_eq!(model.opset(""), Some(14));
    let out = fused(&model);
    assert!(count(&out, "LayerNormalization") > 0);
    assert_eq!(out.opset(""), Some(17));
    assert!(out.ir_version >= 8);
    let inputs = generate(&model, 2, 16, Padding::None, 1);
    let expected = interpreter(&model, &inputs).unwrap();
    let got = interpreter(&out, &inputs).unwrap();
    same_results(&expected, &got).unwrap();
}

/// Values the fusions create carry `value_info` with their type and, where known, shape.
#[test]
fn created_values_get_value_info() {
    let model = tiny("bert_eager_ts_op14");
    let out = fused(&model);
    let original: std::collections::HashSet<&str> = model
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .collect();
    let mut created = 0;
    let mut missing = Vec::new();
    for node in &out.graph.nodes {
        for (i, value) in node
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
        {
            if original.contains(value.as_str())
                || out.graph.outputs.iter().any(|o| &o.name == value)
            {
                continue;
            }
            created += 1;
            match out.graph.value_info.iter().find(|v| &v.name == value) {
                Some(info) => assert!(info.elem_type().is_some(), "{value}"),
                None => missing.push(format!("{} output {i} ({value})", node.op_type)),
            }
        }
    }
    assert!(created > 0);
    // Only outputs the analysis has no facts for may lack it: the embedding's mask_index.
    assert!(
        missing
            .iter()
            .all(|m| m.starts_with("EmbedLayerNormalization output 1")),
        "created values without value_info: {missing:?}"
    );
    // The fused nodes' outputs have shapes: the layer norms' are [batch, sequence, 64].
    let sln = out
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "SkipLayerNormalization")
        .unwrap();
    if let Some(info) = out
        .graph
        .value_info
        .iter()
        .find(|v| v.name == sln.outputs[0])
    {
        assert_eq!(info.shape().unwrap().len(), 3);
    }
}

/// A decomposed layer norm next to an op whose meaning changed after the model's opset
/// (`BatchNormalization`, opset 14), or in a model older than opset 13: the opset stays and
/// the layer norm stays decomposed.
#[test]
fn models_that_cannot_be_raised_keep_the_decomposed_layer_norm() {
    for (opset, with_batch_norm) in [(14, true), (12, false)] {
        let model = decomposed_layer_norm(opset, with_batch_norm);
        let out = fused(&model);
        let case = format!("opset {opset}, batch norm {with_batch_norm}");
        assert_eq!(out.opset(""), Some(opset), "{case}");
        assert_eq!(count(&out, "LayerNormalization"), 0, "{case}");
        let inputs = generate(&model, 2, 5, Padding::None, 4);
        let expected = interpreter(&model, &inputs).unwrap();
        let got = interpreter(&out, &inputs).unwrap();
        same_results(&expected, &got).unwrap_or_else(|e| panic!("{case}: {e}"));
        // The same graph without the blocker is raised and fused.
        if with_batch_norm {
            let plain = fused(&decomposed_layer_norm(opset, false));
            assert_eq!(plain.opset(""), Some(17));
            assert_eq!(count(&plain, "LayerNormalization"), 1);
        }
    }
}

/// `x: [batch, 4, 8]` -> decomposed layer norm over the last axis (reduce axes as
/// attributes, valid before opset 18), optionally after an inference `BatchNormalization`.
fn decomposed_layer_norm(opset: i64, with_batch_norm: bool) -> Model {
    use transfuse_ir::{DataType, Dim, Graph, Node, OpsetImport, ValueInfo};
    let shape = Some(vec![
        Dim::Symbol("batch".into()),
        Dim::Known(4),
        Dim::Known(8),
    ]);
    let mut graph = Graph {
        name: "ln".into(),
        ..Graph::default()
    };
    graph.inputs = vec![ValueInfo::tensor("x", DataType::Float, shape.clone())];
    let mut nodes = Vec::new();
    let mut x = "x".to_string();
    if with_batch_norm {
        for (name, v) in [
            ("bn_scale", 1.5),
            ("bn_bias", 0.1),
            ("bn_mean", 0.2),
            ("bn_var", 2.0),
        ] {
            graph.add_initializer(Tensor::from_f32(name, vec![4], &[v; 4]));
        }
        nodes.push(Node::new(
            "BatchNormalization",
            "",
            vec![
                "x".into(),
                "bn_scale".into(),
                "bn_bias".into(),
                "bn_mean".into(),
                "bn_var".into(),
            ],
            vec!["bn".into()],
        ));
        x = "bn".into();
    }
    graph.add_initializer(Tensor::from_f32("two", vec![], &[2.0]));
    graph.add_initializer(Tensor::from_f32("eps", vec![], &[1e-5]));
    let axes = || vec![("axes", AttrValue::Ints(vec![-1]))];
    let node = |op: &str, inputs: &[&str], out: &str, attrs: Vec<(&str, AttrValue)>| {
        let mut n = Node::new(
            op,
            "",
            inputs.iter().map(|s| (*s).to_string()).collect(),
            vec![out.to_string()],
        );
        for (k, v) in attrs {
            n = n.with_attr(k, v);
        }
        n
    };
    nodes.extend([
        node("ReduceMean", &[&x], "mean", axes()),
        node("Sub", &[&x, "mean"], "d", vec![]),
        node("Pow", &["d", "two"], "sq", vec![]),
        node("ReduceMean", &["sq"], "var", axes()),
        node("Add", &["var", "eps"], "ve", vec![]),
        node("Sqrt", &["ve"], "std", vec![]),
        node("Div", &["d", "std"], "y", vec![]),
    ]);
    graph.nodes = nodes;
    graph.outputs = vec![ValueInfo::tensor("y", DataType::Float, shape)];
    graph.check().unwrap();
    Model {
        ir_version: 7,
        opset_imports: vec![OpsetImport {
            domain: String::new(),
            version: opset,
        }],
        graph,
        ..Model::default()
    }
}

/// A default-domain opset newer than transfuse knows is refused with an error naming it.
#[test]
fn future_opset_is_refused_naming_the_opset() {
    let mut model = decomposed_layer_norm(17, false);
    model.opset_imports[0].version = 99;
    let err = optimize(&model, &OptimizeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            transfuse_rewrite::RewriteError::UnsupportedOpset { version: 99, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("opset 99"), "{err}");
    // The newest known opset is accepted.
    model.opset_imports[0].version = transfuse_rewrite::opset::MAX_KNOWN_OPSET;
    optimize(&model, &OptimizeOptions::default()).unwrap();
}
