//! `transfuse optimize --float16` and `transfuse parity` on an fp16 candidate.

#![allow(clippy::unwrap_used)]

use transfuse_ir::{DataType, Model};

mod support;
use support::{tiny, transfuse};

#[test]
fn float16_writes_an_fp16_model_that_parity_judges_with_the_fp16_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let input = tiny("vit_sdpa_ts_op17.onnx");
    let (out, report) = (dir.path().join("m16.onnx"), dir.path().join("r.json"));
    let run = transfuse(&[
        "optimize".as_ref(),
        "--float16".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("float16: ") && stdout.contains("verified"),
        "{stdout}"
    );

    let original = Model::load(&input).unwrap();
    let half = Model::load(&out).unwrap();
    assert_eq!(half.graph.inputs, original.graph.inputs);
    assert!(
        half.graph
            .initializers
            .values()
            .all(|t| t.dtype != DataType::Float),
        "f32 weights left"
    );
    assert!(
        half.graph
            .nodes
            .iter()
            .any(|n| n.op_type == "MultiHeadAttention" || n.op_type == "Attention")
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(
        json["float16"]["converted_tensors"].as_u64().unwrap() > 0,
        "{json}"
    );

    // parity: the verdict first, under the fp16 tolerance.
    let parity = transfuse(&["parity".as_ref(), input.as_os_str(), out.as_os_str()]);
    let stdout = String::from_utf8_lossy(&parity.stdout);
    assert!(
        parity.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&parity.stderr)
    );
    let first = stdout.lines().next().unwrap();
    assert!(
        first.starts_with("PASS: atol 1e-2, rtol 1e-2 (fp16"),
        "{stdout}"
    );

    // An f32 tolerance given explicitly fails the fp16 model, verdict first again.
    let strict = transfuse(&[
        "parity".as_ref(),
        input.as_os_str(),
        out.as_os_str(),
        "--atol".as_ref(),
        "1e-6".as_ref(),
        "--rtol".as_ref(),
        "0".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("FAIL: atol 1e-6"),
        "{stdout}"
    );
}
