//! Parity checks end to end on the tiny models: identical models pass, a perturbed
//! candidate fails with the diverging value named, recorded outputs are checked, and the
//! report serializes with the documented fields. Through the interpreter and ONNX Runtime.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use transfuse_ir::{Model, Tensor};
use transfuse_parity::{
    InputSource, InputSpec, Options, Padding, Runtime, RuntimeKind, Tolerance, check_files,
};

/// A copy of `model` whose first feed-forward MatMul (the first MatMul with the largest
/// float weight initializer read by that node alone) gets its weights scaled by 1.5;
/// returns it and the MatMul's output name. (Small perturbations of attention weights, or
/// uniform shifts ahead of a LayerNorm, can vanish below the tolerance.)
fn perturbed_candidate(model: &Model) -> (Model, String) {
    let consumers = model.graph.consumers();
    let weight_size = |n: &transfuse_ir::Node| -> Option<usize> {
        let w = n.inputs.get(1)?;
        let t = model.graph.initializer(w)?;
        (n.op_type == "MatMul" && t.dtype.is_float() && consumers.get(w.as_str())?.len() == 1)
            .then(|| t.numel().ok())
            .flatten()
    };
    let largest = model
        .graph
        .nodes
        .iter()
        .filter_map(weight_size)
        .max()
        .expect("a MatMul with a weight");
    let node = model
        .graph
        .nodes
        .iter()
        .find(|n| weight_size(n) == Some(largest))
        .expect("that MatMul");
    let weight = model.graph.initializer(&node.inputs[1]).expect("weight");
    let scaled: Vec<f32> = weight
        .to_f32_vec()
        .expect("f32 weight")
        .iter()
        .map(|v| v * 1.5)
        .collect();
    let mut candidate = model.clone();
    candidate
        .graph
        .add_initializer(Tensor::from_f32(&weight.name, weight.dims.clone(), &scaled));
    (candidate, node.outputs[0].clone())
}

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny")
        .join(name)
}

fn options(kind: RuntimeKind) -> Options {
    Options {
        inputs: InputSource::Generated(InputSpec {
            batch: 2,
            seq: 16,
            seed: 3,
            padding: Padding::Left,
        }),
        runtime: Runtime {
            kind,
            ..Runtime::default()
        },
        tolerance: Tolerance {
            atol: 1e-4,
            rtol: 0.0,
        },
        locate_divergence: true,
    }
}

fn check_perturbed_candidate_is_located(runtime: RuntimeKind) {
    let original = tiny("bert_sdpa_ts_op17.onnx");
    let model = Model::load(&original).expect("model");
    let (candidate, diverging) = perturbed_candidate(&model);
    let dir = tempfile::tempdir().expect("temp dir");
    let candidate_path = dir.path().join("candidate.onnx");
    candidate.save(&candidate_path).expect("save");

    let same = check_files(&original, Some(&original), &options(runtime)).expect("check");
    assert!(same.pass, "{same:?}");
    assert!(same.first_divergence.is_none());

    let report = check_files(&original, Some(&candidate_path), &options(runtime)).expect("check");
    assert!(!report.pass, "{report:?}");
    assert!(report.outputs[0].max_abs > 1e-3, "{report:?}");
    let divergence = report.first_divergence.expect("a diverging value");
    assert_eq!(divergence.comparison.name, diverging);
    assert!(
        divergence.model_op.starts_with("MatMul") && divergence.candidate_op.starts_with("MatMul")
    );
    assert!(
        report.shared_values_compared.is_some_and(|n| n > 100),
        "{:?}",
        report.shared_values_compared
    );
    // The in-memory entry point gives the same verdict.
    let in_memory = transfuse_parity::check(&model, &candidate, &options(runtime)).expect("check");
    assert!(!in_memory.pass);
    assert_eq!(
        in_memory
            .first_divergence
            .expect("divergence")
            .comparison
            .name,
        diverging
    );
}

#[test]
fn a_perturbed_candidate_fails_and_the_diverging_value_is_named_through_ort() {
    check_perturbed_candidate_is_located(RuntimeKind::Ort);
}

#[test]
fn a_perturbed_candidate_fails_and_the_diverging_value_is_named_through_the_interpreter() {
    check_perturbed_candidate_is_located(RuntimeKind::Reference);
}

fn check_expected_outputs_of_a_test_data_directory(runtime: RuntimeKind) {
    let path = tiny("vit_sdpa_dynamo_op18.onnx");
    let dir = tiny("vit_sdpa_dynamo_op18").join("test_data_set_0");
    let mut opts = options(runtime);
    opts.inputs = InputSource::Directory(dir);
    let report = check_files(&path, None, &opts).expect("check");
    assert!(report.pass, "{runtime}: {report:?}");
    assert_eq!(report.compared, "model vs expected");
    assert_eq!(report.outputs[0].top1_agreement, Some(1.0), "{runtime}");
    // PyTorch's float results are not reproduced bit for bit: a zero tolerance fails.
    opts.tolerance = Tolerance::EXACT;
    let strict = check_files(&path, None, &opts).expect("check");
    assert!(
        !strict.pass && strict.outputs[0].max_abs > 0.0,
        "{runtime}: {strict:?}"
    );
}

#[test]
fn expected_outputs_of_a_test_data_directory_are_checked_through_ort() {
    check_expected_outputs_of_a_test_data_directory(RuntimeKind::Ort);
}

#[test]
fn expected_outputs_of_a_test_data_directory_are_checked_through_the_interpreter() {
    check_expected_outputs_of_a_test_data_directory(RuntimeKind::Reference);
}

#[test]
fn without_a_candidate_generated_inputs_have_nothing_to_compare_with() {
    let path = tiny("bert_sdpa_ts_op17.onnx");
    let err = check_files(&path, None, &options(RuntimeKind::Reference)).unwrap_err();
    assert!(
        matches!(err, transfuse_parity::ParityError::NoExpectedOutputs),
        "{err}"
    );
    let missing = check_files(Path::new("/nonexistent.onnx"), None, &Options::default());
    assert!(
        matches!(missing, Err(transfuse_parity::ParityError::Load { .. })),
        "{missing:?}"
    );
}

#[test]
fn the_json_report_has_the_documented_fields() {
    let path = tiny("distilbert_eager_ts_op14.onnx");
    let report = check_files(&path, Some(&path), &options(RuntimeKind::Ort)).expect("check");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["runtime"], "ort");
    assert_eq!(json["pass"], true);
    assert_eq!(json["outputs"][0]["name"], "output_0");
    for key in ["max_abs", "max_rel"] {
        assert!(json["outputs"][0][key].is_f64(), "{key}");
    }
    assert_eq!(json["outputs"][0]["pass"], true);
    assert!(json["run_ms"]["model"].is_f64() && json["run_ms"]["candidate"].is_f64());
}

/// `model` with every int64 input declared int32 and widened back by one `Cast` at the
/// start: the same function on int32-range values.
fn int32_candidate(model: &Model) -> Model {
    let mut candidate = model.clone();
    let graph = &mut candidate.graph;
    let mut casts = Vec::new();
    for input in graph
        .inputs
        .iter_mut()
        .filter(|v| v.elem_type() == Some(transfuse_ir::DataType::Int64))
    {
        let wide = format!("{}_wide", input.name);
        casts.push(
            transfuse_ir::Node::new("Cast", "", vec![input.name.clone()], vec![wide.clone()])
                .with_attr("to", transfuse_ir::AttrValue::Int(7)),
        );
        if let Some(transfuse_ir::ValueType::Tensor { elem_type, .. }) = &mut input.ty {
            *elem_type = transfuse_ir::DataType::Int32;
        }
        for node in &mut graph.nodes {
            for v in node.inputs.iter_mut().filter(|v| **v == input.name) {
                *v = wide.clone();
            }
        }
    }
    assert!(!casts.is_empty(), "no int64 input");
    casts.append(&mut graph.nodes);
    graph.nodes = casts;
    graph.check().expect("valid candidate");
    candidate
}

fn check_an_int32_candidate_of_an_int64_model(runtime: RuntimeKind) {
    let path = tiny("bert_eager_ts_op14.onnx");
    let model = Model::load(&path).expect("model");
    let candidate = int32_candidate(&model);
    let dir = tempfile::tempdir().expect("temp dir");
    let candidate_path = dir.path().join("candidate.onnx");
    candidate.save(&candidate_path).expect("save");
    let mut opts = options(runtime);
    opts.tolerance = Tolerance::EXACT;
    // Generated from either model's signature, given, or read from a directory: each model
    // gets the same values at its own width.
    let report = check_files(&path, Some(&candidate_path), &opts).expect("check");
    assert!(report.pass, "{runtime}: {report:?}");
    let reverse = check_files(&candidate_path, Some(&path), &opts).expect("check");
    assert!(reverse.pass, "{runtime}: {reverse:?}");
    opts.inputs = InputSource::Directory(tiny("bert_eager_ts_op14").join("test_data_set_0"));
    let report = check_files(&path, Some(&candidate_path), &opts).expect("check");
    assert!(report.pass, "{runtime}: {report:?}");
}

#[test]
fn an_int32_candidate_of_an_int64_model_gets_the_same_values_through_ort() {
    check_an_int32_candidate_of_an_int64_model(RuntimeKind::Ort);
}

#[test]
fn an_int32_candidate_of_an_int64_model_gets_the_same_values_through_the_interpreter() {
    check_an_int32_candidate_of_an_int64_model(RuntimeKind::Reference);
}

#[test]
fn a_float_input_for_an_integer_one_is_an_error() {
    let path = tiny("bert_eager_ts_op14.onnx");
    let model = Model::load(&path).expect("model");
    let mut opts = options(RuntimeKind::Reference);
    let mut inputs = transfuse_parity::generate_inputs(
        &model,
        &InputSpec {
            batch: 1,
            seq: 4,
            seed: 0,
            padding: Padding::None,
        },
    )
    .expect("inputs");
    inputs[0] = Tensor::from_f32(&inputs[0].name, inputs[0].dims.clone(), &[1.0; 4]);
    opts.inputs = InputSource::Given(inputs);
    let err = transfuse_parity::check(&model, &model, &opts).unwrap_err();
    assert!(
        matches!(err, transfuse_parity::ParityError::InputType { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("input_ids"), "{err}");
}
