//! `transfuse optimize --int32-inputs`: the written model takes int32 ids and masks, was
//! verified against the int64 original, says what it narrowed, and `transfuse parity`
//! accepts the pair (reference interpreter, and ONNX Runtime where it is provisioned).

#![allow(clippy::unwrap_used)]

use transfuse_ir::{DataType, Model};

mod support;
use support::{text, tiny, transfuse};

#[test]
fn int32_inputs_writes_a_verified_model_with_int32_ids_and_masks() {
    let dir = tempfile::tempdir().unwrap();
    let input = tiny("bert_eager_ts_op14.onnx");
    let (out, report) = (dir.path().join("m32.onnx"), dir.path().join("r.json"));
    let run = transfuse(&[
        "optimize".as_ref(),
        "--int32-inputs".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", text(&run.stderr));
    assert!(stdout.contains("verified in"), "{stdout}");
    assert!(
        stdout.contains("int32 inputs: 3 narrowed (input_ids, attention_mask, token_type_ids), "),
        "{stdout}"
    );

    let original = Model::load(&input).unwrap();
    let narrowed = Model::load(&out).unwrap();
    assert!(
        original
            .graph
            .inputs
            .iter()
            .all(|v| v.elem_type() == Some(DataType::Int64))
    );
    for v in &narrowed.graph.inputs {
        assert_eq!(v.elem_type(), Some(DataType::Int32), "{}", v.name);
    }
    // The embedding's ids are the input itself, no longer a cast of it.
    let embed = narrowed
        .graph
        .nodes
        .iter()
        .find(|n| n.op_type == "EmbedLayerNormalization")
        .unwrap();
    assert_eq!(embed.inputs[0], "input_ids");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let narrowing = &json["int32_inputs"];
    assert_eq!(narrowing["narrowed"].as_array().unwrap().len(), 3, "{json}");
    assert!(narrowing["casts_removed"].as_u64().unwrap() >= 2, "{json}");
    assert!(
        json["verification"]["cases"][0]["max_abs"].is_f64(),
        "{json}"
    );

    // parity: the original gets int64 ids, the candidate the same values as int32.
    let parity = transfuse(&["parity".as_ref(), input.as_os_str(), out.as_os_str()]);
    let stdout = text(&parity.stdout);
    assert_eq!(
        parity.status.code(),
        Some(0),
        "{stdout}{}",
        text(&parity.stderr)
    );
    assert!(stdout.starts_with("PASS"), "{stdout}");

    if transfuse_ort::library_path().is_err() {
        eprintln!("ONNX Runtime is not provisioned: the ort parity check is skipped");
        return;
    }
    let parity = transfuse(&[
        "parity".as_ref(),
        input.as_os_str(),
        out.as_os_str(),
        "--runtime".as_ref(),
        "ort".as_ref(),
    ]);
    let stdout = text(&parity.stdout);
    assert_eq!(
        parity.status.code(),
        Some(0),
        "{stdout}{}",
        text(&parity.stderr)
    );
    assert!(stdout.starts_with("PASS"), "{stdout}");
}

#[test]
fn int32_inputs_leave_an_image_model_s_float_input_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = tiny("vit_eager_ts_op14.onnx");
    let out = dir.path().join("vit.onnx");
    let run = transfuse(&[
        "optimize".as_ref(),
        "--int32-inputs".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", text(&run.stderr));
    assert!(
        stdout.contains("int32 inputs: 0 narrowed, 0 casts removed"),
        "{stdout}"
    );
    let model = Model::load(&out).unwrap();
    assert_eq!(model.graph.inputs[0].elem_type(), Some(DataType::Float));
}
