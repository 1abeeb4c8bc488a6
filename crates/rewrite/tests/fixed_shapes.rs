//! `OptimizeOptions::fixed_shapes` on every tiny export (`testdata/models/tiny` and
//! `testdata/models/coverage/tiny`), at the shapes of its `test_data_set_0`:
//! - the optimized model computes what PyTorch did and what the original computes (parity
//!   checker, reference interpreter; and ONNX Runtime on CPU), tolerance 1e-4 absolute;
//! - no shape computation is left: no `Shape` or `Size` node, and no node whose inputs are
//!   all constants unless it computes a float tensor too large to fold (weight arithmetic,
//!   such as an interpolated position embedding); every other node reads, directly or not,
//!   a graph input's data (a `Gather` of an embedding table by `input_ids` stays, a
//!   `Gather` of a dim does not);
//! - every optimized model passes `onnx.checker.check_model` (full check), strict ONNX shape
//!   inference and an ONNX Runtime session load (Python `onnx` and `onnxruntime`;
//!   `TRANSFUSE_SKIP_PYTHON_CHECKS=1` skips that test deliberately);
//! - both spellings of a spec (by dim name, by input) give the same model;
//! - specs that do not fit the model are typed errors naming what does exist.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use support::python_checks::check_models;
use support::spec_by_input;
use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{DataType, Dim, Model, Tensor};
use transfuse_ort::{OptimizationLevel, SessionOptions};
use transfuse_parity::{
    InputSource, Options, Runtime, Tolerance, compare_outputs, read_test_data, run_model,
};
use transfuse_rewrite::{
    FixedShapes, FixedShapesError, MAX_FOLDED_ELEMENTS, OptimizeOptions, RewriteError, optimize,
};

const TOLERANCE: f64 = 1e-4;

/// Ops that only ever compute shapes: none may be left.
const SHAPE_ONLY_OPS: &[&str] = &["Shape", "Size"];

/// Every tiny export with test data: `(name, model file, test_data_set_0)`.
fn models() -> Vec<(String, PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models");
    let mut out = Vec::new();
    for dir in [root.join("tiny"), root.join("coverage/tiny")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "onnx") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                let data = dir.join(&name).join("test_data_set_0");
                assert!(data.is_dir(), "{name}: no test_data_set_0");
                out.push((name, path, data));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 24, "tiny models missing: {}", out.len());
    out
}

fn inputs_of(model: &Model, data: &Path) -> Vec<Tensor> {
    read_test_data(model, data).unwrap().inputs
}

/// The spec by dim name: every `dim_param` of the inputs at its size in `inputs`.
fn spec_by_dim_name(model: &Model, inputs: &[Tensor]) -> String {
    let mut items: Vec<String> = Vec::new();
    for t in inputs {
        let declared = model
            .graph
            .inputs
            .iter()
            .find(|v| v.name == t.name)
            .unwrap();
        for (dim, size) in declared.shape().unwrap().iter().zip(&t.dims) {
            if let Dim::Symbol(s) = dim {
                let item = format!("{s}={size}");
                if !items.contains(&item) {
                    items.push(item);
                }
            }
        }
    }
    items.join(",")
}

fn fixed(model: &Model, spec: &str) -> Result<Model, RewriteError> {
    let options = OptimizeOptions {
        fixed_shapes: spec.parse()?,
        ..OptimizeOptions::default()
    };
    Ok(optimize(model, &options)?.0)
}

/// The nodes that compute a shape or a small constant: `Shape`/`Size`, and nodes none of
/// whose inputs depends on a graph input, unless their output (as computed on `inputs`) is a
/// float tensor of more than [`MAX_FOLDED_ELEMENTS`].
fn shape_computations(model: &Model, inputs: &[Tensor]) -> Vec<String> {
    let feed: HashMap<String, Value> = inputs
        .iter()
        .map(|t| (t.name.clone(), Value::from_tensor(t).unwrap()))
        .collect();
    let mut computed: HashMap<String, (DataType, usize)> = HashMap::new();
    Interpreter::new(model)
        .unwrap()
        .run_observed(&feed, &mut |name, value| {
            computed.insert(name.to_string(), (value.dtype(), value.len()));
        })
        .unwrap();
    let large_float = |name: &str| {
        computed.get(name).is_some_and(|&(dtype, len)| {
            matches!(
                dtype,
                DataType::Float | DataType::Float16 | DataType::Double
            ) && len > MAX_FOLDED_ELEMENTS
        })
    };
    let g = &model.graph;
    let mut data: HashSet<&str> = g
        .inputs
        .iter()
        .filter(|v| !g.initializers.contains_key(&v.name))
        .map(|v| v.name.as_str())
        .collect();
    let mut left = Vec::new();
    for node in &g.nodes {
        let reads_data = node.inputs.iter().any(|i| data.contains(i.as_str()));
        if reads_data {
            data.extend(node.outputs.iter().map(String::as_str));
        }
        let weight_arithmetic = node.outputs.iter().all(|o| large_float(o));
        if SHAPE_ONLY_OPS.contains(&node.op_type.as_str()) || !(reads_data || weight_arithmetic) {
            left.push(format!(
                "{} '{}' -> {:?}",
                node.op_type, node.name, node.outputs
            ));
        }
    }
    left
}

#[test]
fn fixed_shapes_fold_every_shape_computation_and_stay_exact() {
    let ort = Runtime::ort(
        SessionOptions::default()
            .optimization_level(OptimizationLevel::Disabled)
            .intra_op_threads(1),
    );
    for (name, path, data) in models() {
        let model = Model::load(&path).unwrap();
        let inputs = inputs_of(&model, &data);
        let spec = spec_by_dim_name(&model, &inputs);
        let out = fixed(&model, &spec).unwrap_or_else(|e| panic!("{name} ({spec}): {e}"));

        // The test must be able to fail: the exports compute shapes at run time.
        assert!(
            !shape_computations(&model, &inputs).is_empty(),
            "{name}: the original computes no shape"
        );
        let left = shape_computations(&out, &inputs);
        assert!(
            left.is_empty(),
            "{name} ({spec}): shape computations left: {left:#?}"
        );
        for v in out.graph.inputs.iter().chain(&out.graph.outputs) {
            let dims = v.shape().unwrap();
            assert!(
                dims.iter().all(|d| matches!(d, Dim::Known(_))),
                "{name}: '{}' is not static: {dims:?}",
                v.name
            );
        }

        // Against the original, through the parity checker, on the recorded inputs.
        let options = Options {
            inputs: InputSource::Directory(data.clone()),
            runtime: Runtime::reference(),
            tolerance: Tolerance::absolute(TOLERANCE),
            locate_divergence: true,
        };
        let report = transfuse_parity::check(&model, &out, &options).unwrap();
        assert!(report.pass, "{name}: differs from the original: {report:?}");

        // Against what PyTorch computed, in the interpreter and in ONNX Runtime (CPU).
        let expected = read_test_data(&model, &data).unwrap().outputs;
        for (engine, runtime) in [
            ("interpreter", Runtime::reference()),
            ("onnx runtime", ort.clone()),
        ] {
            let got = run_model(&out, &inputs, &runtime)
                .unwrap_or_else(|e| panic!("{name}, {engine}: {e}"));
            let outputs = compare_outputs(&got, &expected, Tolerance::absolute(TOLERANCE))
                .unwrap_or_else(|e| panic!("{name}, {engine}: {e}"));
            assert!(
                outputs.iter().all(|o| o.pass),
                "{name}, {engine}: differs from PyTorch: {outputs:?}"
            );
        }
    }
}

#[test]
fn fixed_shape_models_pass_the_onnx_checker() {
    let fixed_models = models().into_iter().map(|(name, path, data)| {
        let model = Model::load(&path).unwrap();
        let out = fixed(&model, &spec_by_dim_name(&model, &inputs_of(&model, &data))).unwrap();
        (name, out)
    });
    // ONNX Runtime loads them with its graph optimizations on.
    check_models("fixed-shape models", fixed_models, true);
}

#[test]
fn a_spec_by_input_gives_the_same_model_as_one_by_dim_name() {
    for (name, path, data) in models().into_iter().step_by(3) {
        let model = Model::load(&path).unwrap();
        let inputs = inputs_of(&model, &data);
        let by_dim = fixed(&model, &spec_by_dim_name(&model, &inputs)).unwrap();
        let by_input = fixed(&model, &spec_by_input(&inputs)).unwrap();
        assert_eq!(by_dim.dump(), by_input.dump(), "{name}");
    }
}

#[test]
fn fixed_shapes_fold_with_no_fusion_selected() {
    let model = bert();
    let options = OptimizeOptions {
        fusions: "none".parse().unwrap(),
        fixed_shapes: "batch=1,sequence=8".parse().unwrap(),
        ..OptimizeOptions::default()
    };
    let out = optimize(&model, &options).unwrap().0;
    let ops = out.graph.op_histogram();
    assert!(
        !ops.contains_key("Shape") && !ops.contains_key("ConstantOfShape"),
        "{ops:?}"
    );
    assert_eq!(ops.get("Softmax"), Some(&2), "nothing fused: {ops:?}");
}

fn bert() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/models/tiny/bert_eager_ts_op14.onnx");
    Model::load(path).unwrap()
}

#[test]
fn a_dim_name_that_does_not_exist_is_an_error_that_lists_the_names() {
    let err = fixed(&bert(), "batch=1,seq_len=128").unwrap_err();
    assert!(
        matches!(
            &err,
            RewriteError::FixedShapes(FixedShapesError::UnknownName { name, .. }) if name == "seq_len"
        ),
        "{err:?}"
    );
    let text = err.to_string();
    for expected in [
        "'seq_len'",
        "dim names: batch, sequence",
        "input_ids [batch, sequence]",
    ] {
        assert!(text.contains(expected), "{text}");
    }
}

#[test]
fn an_input_shape_of_the_wrong_rank_is_an_error() {
    let err = fixed(&bert(), "input_ids=1x128x1").unwrap_err();
    assert!(
        matches!(
            &err,
            RewriteError::FixedShapes(FixedShapesError::RankMismatch {
                rank: 2,
                given: 3,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("input 'input_ids' has rank 2"),
        "{err}"
    );
}

#[test]
fn conflicting_and_non_positive_sizes_are_errors() {
    let conflict = fixed(&bert(), "sequence=64,attention_mask=1x128").unwrap_err();
    assert!(
        matches!(
            conflict,
            RewriteError::FixedShapes(FixedShapesError::Conflict { .. })
        ),
        "{conflict:?}"
    );
    let zero = "batch=0".parse::<FixedShapes>().unwrap_err();
    assert!(
        matches!(zero, FixedShapesError::NonPositive { .. }),
        "{zero:?}"
    );
}

/// Fixing the shapes never costs an attention fusion or adds a node: every model, at the test
/// data's shapes and at batch 1, has the dynamic output's attention ops and at most its node
/// count (folded shapes can let a norm fuse further, never less).
/// (The dynamo text export's key-padding proof once failed on the folded `GatherND`
/// indices, so its fixed models kept the mask subgraph and the NaN guards.)
#[test]
fn fixed_shapes_keep_every_fusion_of_the_dynamic_model() {
    let fused_ops = |m: &Model| {
        let mut ops = m.graph.op_histogram();
        ops.retain(|op, _| op.contains("Attention"));
        ops
    };
    for (name, path, data) in models() {
        let model = Model::load(&path).unwrap();
        let dynamic = optimize(&model, &OptimizeOptions::default()).unwrap().0;
        let inputs = inputs_of(&model, &data);
        let batch_one: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                let mut dims = t.dims.clone();
                if let Some(first) = dims.first_mut() {
                    *first = 1;
                }
                Tensor::from_i64(&t.name, dims, &[])
            })
            .collect();
        for (what, shapes) in [("test data", &inputs), ("batch 1", &batch_one)] {
            let out = fixed(&model, &spec_by_input(shapes)).unwrap();
            assert_eq!(fused_ops(&out), fused_ops(&dynamic), "{name}, {what}");
            assert!(
                out.graph.nodes.len() <= dynamic.graph.nodes.len(),
                "{name}, {what}: {} nodes, {} without fixed shapes",
                out.graph.nodes.len(),
                dynamic.graph.nodes.len()
            );
        }
    }
}
