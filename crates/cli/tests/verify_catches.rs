//! `optimize --verify` refuses a rewrite that changes results: a rule that is wrong on
//! purpose (it replaces `Erf(x)` with `FastGelu(x)`) is caught and named, and the faithful
//! fusions pass.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use transfuse_cli::Mismatch;
use transfuse_cli::verify::verify;
use transfuse_ir::{MS_DOMAIN, Model};
use transfuse_rewrite::OpNode;
use transfuse_rewrite::rule::{add_op, rule};
use transfuse_rewrite::{OptimizeOptions, optimize};

fn tiny(name: &str) -> Model {
    Model::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/models/tiny")
            .join(name),
    )
    .unwrap()
}

#[test]
fn a_wrong_rule_is_caught_and_named() {
    let model = tiny("bert_sdpa_ts_op17.onnx");
    let wrong = rule("wrong-erf", &["(Erf ?x)"], |eg, m| {
        let x = m.get("?x")?;
        Some(add_op(eg, OpNode::new("FastGelu", MS_DOMAIN), vec![x]))
    })
    .unwrap();
    let options = OptimizeOptions {
        // FastGelu stays extractable (fastgelu is on); the GELU fusions are off, so the Erf
        // nodes survive for the wrong rule to replace.
        fusions: "-gelu,-biasgelu".parse().unwrap(),
        extra_rules: std::sync::Arc::new(vec![wrong]),
        ..OptimizeOptions::default()
    };
    let (broken, _) = optimize(&model, &options).unwrap();
    assert!(
        broken.graph.nodes.iter().any(|n| n.op_type == "FastGelu"),
        "the wrong rule must have fired for the test to mean anything"
    );
    let err = verify(&model, &broken).unwrap_err();
    let mismatch = err.downcast_ref::<Mismatch>().unwrap();
    assert!(
        mismatch.0.starts_with("verification failed"),
        "{}",
        mismatch.0
    );
    assert!(mismatch.0.contains("FastGelu"), "{}", mismatch.0);
    assert!(mismatch.0.contains("fusion 'fastgelu'"), "{}", mismatch.0);
}

#[test]
fn faithful_fusions_pass() {
    for name in ["bert_sdpa_ts_op17.onnx", "vit_sdpa_ts_op17.onnx"] {
        let model = tiny(name);
        let (fused, _) = optimize(&model, &OptimizeOptions::default()).unwrap();
        let v = verify(&model, &fused).unwrap();
        assert!(v.skipped.is_none() && !v.cases.is_empty(), "{name}: {v:?}");
    }
}
