//! Every tiny test model, run through ONNX Runtime, reproduces PyTorch's outputs
//! (`test_data_set_0`) within 1e-4 absolute, with ONNX Runtime's optimizations off and on.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use transfuse_ir::Model;
use transfuse_ort::{OptimizationLevel, Session, SessionOptions};

const TOLERANCE: f64 = 1e-4;

#[test]
fn tiny_models_match_pytorch_outputs() {
    let runtime = common::runtime();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, path) in common::tiny_models() {
        let model = Model::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let data_dir = path.with_extension("").join("test_data_set_0");
        let (inputs, expected) = common::load_test_data(&model, &data_dir);
        assert!(
            !inputs.is_empty() && !expected.is_empty(),
            "{name}: no test data in {}",
            data_dir.display()
        );
        for level in [OptimizationLevel::Disabled, OptimizationLevel::All] {
            let options = SessionOptions::default()
                .optimization_level(level)
                .intra_op_threads(2);
            let mut session = Session::from_file(runtime, &path, &options)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let outputs = session
                .run(&inputs)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(outputs.len(), expected.len(), "{name}: output count");
            for ((output_name, actual), wanted) in outputs.iter().zip(&expected) {
                let diff = common::max_abs_diff(actual, wanted);
                println!("{name} [{level}] {output_name}: max abs diff {diff:.3e}");
                if diff.is_nan() || diff > TOLERANCE {
                    failures.push(format!(
                        "{name} [{level}] {output_name}: max abs diff {diff:.3e} > {TOLERANCE:e}"
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outputs differ from PyTorch's:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 18, "only {checked} outputs checked");
}

/// The comparison above can fail: a model's output compared with a perturbed copy of the
/// expected output exceeds the tolerance.
#[test]
fn a_perturbed_expected_output_is_detected() {
    let runtime = common::runtime();
    let (name, path) = common::tiny_models()
        .into_iter()
        .next()
        .expect("a tiny model");
    let model = Model::load(&path).expect("load");
    let (inputs, expected) =
        common::load_test_data(&model, &path.with_extension("").join("test_data_set_0"));
    let mut session =
        Session::from_file(runtime, &path, &SessionOptions::default()).expect("session");
    let outputs = session.run(&inputs).expect("run");
    let mut values = expected[0].to_f32_vec().expect("f32 output");
    let middle = values.len() / 2;
    values[middle] += 1e-3;
    let perturbed =
        transfuse_ir::Tensor::from_f32(&expected[0].name, expected[0].dims.clone(), &values);
    let diff = common::max_abs_diff(&outputs[0].1, &perturbed);
    assert!(
        diff > TOLERANCE,
        "{name}: a 1e-3 perturbation gave max abs diff {diff:e}"
    );
}
