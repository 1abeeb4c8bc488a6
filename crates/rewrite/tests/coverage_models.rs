//! What fuses in each coverage model (`testdata/models/coverage/tiny`), and that every
//! optimized model stays exact: against each `test_data_set_*` output (what PyTorch computed)
//! and against the original through the parity checker, tolerance 1e-4 absolute. One
//! snapshot records, per model, the op types this run added (the fused ops and their
//! helpers) and the sites left unfused
//! (`Softmax`, `ReduceMean`, `Erf`, `Tanh`, `Sigmoid`), so progress and regressions show.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};
use transfuse_parity::{InputSource, Options, Runtime, Tolerance, max_abs_diff, read_test_data};
use transfuse_rewrite::{OptimizeOptions, explain, optimize};

const TOLERANCE: f64 = 1e-4;

/// Ops a fusion looks for: one left over is a block that did not fuse.
const SITES: &[&str] = &["Softmax", "ReduceMean", "Erf", "Tanh", "Sigmoid"];

/// Families whose attention, norms and GELUs all fuse: no site may be left.
const FULLY_FUSED: &[&str] = &[
    "vit_interp_eager_ts_op14",
    "vit_interp_sdpa_ts_op17",
    "dinov2_eager_ts_op14",
    "dinov2_sdpa_ts_op17",
    "timm_vit_dyn_eager_ts_op14",
    "timm_vit_dyn_sdpa_ts_op17",
    "vit_interp_sdpa_dynamo_op18",
    "dinov2_sdpa_dynamo_op18",
    "timm_vit_dyn_sdpa_dynamo_op18",
    "t5_enc_eager_ts_op14",
    "t5_enc_eager_ts_op17",
    "t5_enc_eager_dynamo_op18",
    "swin_eager_ts_op14",
    "swin_sdpa_ts_op17",
    "swin_sdpa_dynamo_op18",
    "beit_eager_ts_op14",
    "beit_sdpa_ts_op17",
    "beit_sdpa_dynamo_op18",
    "siglip_vision_eager_ts_op14",
    "siglip_vision_sdpa_ts_op17",
    "siglip_vision_sdpa_dynamo_op18",
    "wav2vec2_eager_ts_op14",
    "wav2vec2_sdpa_ts_op17",
    "wav2vec2_sdpa_dynamo_op18",
    "roformer_eager_ts_op14",
    "roformer_eager_ts_op17",
    "roformer_eager_dynamo_op18",
    "esm_eager_ts_op14",
    "esm_sdpa_ts_op17",
    "esm_sdpa_dynamo_op18",
    "modernbert_eager_ts_op14",
    "modernbert_sdpa_ts_op17",
    "xlm_eager_ts_op14",
    "xlm_eager_ts_op17",
    "xlm_eager_dynamo_op18",
    "tv_vit_eager_ts_op14",
    "tv_vit_sdpa_ts_op17",
    "tv_vit_sdpa_dynamo_op18",
];

fn coverage_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/coverage/tiny")
}

fn models() -> Vec<(String, PathBuf)> {
    let mut models: Vec<(String, PathBuf)> = std::fs::read_dir(coverage_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    models.sort();
    models
}

fn histogram(model: &Model) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for n in &model.graph.nodes {
        *h.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    h
}

/// Every `test_data_set_*` directory: inputs by graph input name, expected outputs.
fn test_sets(name: &str, model: &Model) -> Vec<(Vec<Tensor>, Vec<Tensor>)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(coverage_dir().join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
        })
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "{name}: no test_data_set_*");
    dirs.iter()
        .map(|dir| {
            let data = read_test_data(model, dir).unwrap();
            (data.inputs, data.outputs)
        })
        .collect()
}

fn check_exact(name: &str, original: &Model, fused: &Model) {
    for (k, (inputs, expected)) in test_sets(name, original).into_iter().enumerate() {
        // Against PyTorch's outputs, in the reference interpreter.
        let by_name = original
            .graph
            .inputs
            .iter()
            .zip(&inputs)
            .map(|(v, t)| (v.name.clone(), Value::from_tensor(t).unwrap()))
            .collect();
        let result = Interpreter::new(fused)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .run(&by_name)
            .unwrap_or_else(|e| panic!("{name}, set {k}: {e}"));
        for (o, want) in fused.graph.outputs.iter().zip(&expected) {
            let got = result[&o.name].to_tensor(&o.name);
            let diff = max_abs_diff(&got, want);
            assert!(
                diff < TOLERANCE,
                "{name}, set {k}: {} differs from PyTorch by {diff}",
                o.name
            );
        }
        // Against the original model, through the parity checker.
        let options = Options {
            inputs: InputSource::Given(inputs),
            runtime: Runtime::reference(),
            tolerance: Tolerance::absolute(TOLERANCE),
            locate_divergence: false,
        };
        let report = transfuse_parity::check(original, fused, &options)
            .unwrap_or_else(|e| panic!("{name}, set {k}: {e}"));
        assert!(
            report.pass,
            "{name}, set {k}: max abs diff {:e} against the original",
            report.max_abs()
        );
    }
}

#[test]
fn coverage_models_fuse_and_stay_exact() {
    let mut table = String::from("model | new op types (count) | sites left\n");
    for (name, path) in models() {
        let model = Model::load(&path).unwrap();
        let fused = optimize(&model, &OptimizeOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .0;
        fused
            .graph
            .clone()
            .check()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_exact(&name, &model, &fused);

        let before = histogram(&model);
        let after = histogram(&fused);
        // Ops this run fused: present in the output beyond what the input already held.
        let fused_ops: Vec<String> = after
            .iter()
            .filter(|(op, _)| !SITES.contains(&op.as_str()))
            .filter_map(|(op, &n)| {
                let had = before.get(op).copied().unwrap_or(0);
                let new = n.saturating_sub(had);
                (new > 0 && had == 0).then(|| format!("{op} {new}"))
            })
            .collect();
        // Every site left is explained, with the closest rule and a reason.
        let explanation = explain(&fused);
        let sites: Vec<String> = SITES
            .iter()
            .filter_map(|op| {
                let n = after.get(*op).copied().unwrap_or(0);
                let explained: Vec<_> =
                    explanation.unfused.iter().filter(|s| s.op == *op).collect();
                assert_eq!(explained.len(), n, "{name}: {op} sites explained");
                assert!(explained.iter().all(|s| !s.reason.is_empty()), "{name}");
                let rules: std::collections::BTreeSet<&str> =
                    explained.iter().map(|s| s.rule).collect();
                let rules: Vec<&str> = rules.into_iter().collect();
                (n > 0).then(|| format!("{op} {n} ({})", rules.join(", ")))
            })
            .collect();
        writeln!(
            table,
            "{name} | {} | {}",
            if fused_ops.is_empty() {
                "-".to_string()
            } else {
                fused_ops.join(", ")
            },
            if sites.is_empty() {
                "-".to_string()
            } else {
                sites.join(", ")
            }
        )
        .unwrap();
        if FULLY_FUSED.contains(&name.as_str()) {
            for op in ["Softmax", "ReduceMean", "Erf"] {
                assert_eq!(after.get(op), None, "{name}: {op} left unfused");
            }
        }
    }
    insta::assert_snapshot!(table);
}
