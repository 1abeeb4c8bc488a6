//! The fusion registry is the single source of truth: every op a fusion emits has a kernel in
//! the reference interpreter (so parity can check it) and a row in `docs/interpreter.md`, and
//! every fusion and rule name is documented in `docs/fusions.md`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use transfuse_rewrite::FUSIONS;

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `com.microsoft` and `` (ONNX) as the interpreter names them.
fn same_domain(a: &str, b: &str) -> bool {
    let canonical = |d: &str| if d == "ai.onnx" { "" } else { d }.to_string();
    canonical(a) == canonical(b)
}

#[test]
fn every_emitted_op_has_an_interpreter_kernel_and_docs() {
    let kernels = transfuse_interp::supported_ops();
    let docs = doc("interpreter.md");
    for fusion in FUSIONS {
        for (domain, op) in fusion.emits {
            assert!(
                kernels
                    .iter()
                    .any(|k| k.op_type == *op && same_domain(&k.domain, domain)),
                "fusion {} emits {domain}:{op}, which the interpreter cannot run",
                fusion.name
            );
            assert!(
                docs.contains(&format!("`{op}`")),
                "docs/interpreter.md does not mention `{op}` (emitted by {})",
                fusion.name
            );
        }
    }
}

#[test]
fn every_fusion_and_rule_is_documented() {
    let docs = doc("fusions.md");
    let mentioned = |name: &str| docs.contains(&format!("`{name}`"));
    let mut missing = Vec::new();
    for rule in transfuse_rewrite::fusions::normalize::rules().unwrap() {
        if !mentioned(rule.name.as_str()) {
            missing.push(format!("normalization rule {}", rule.name));
        }
    }
    for fusion in FUSIONS {
        if !mentioned(fusion.name) {
            missing.push(format!("fusion {}", fusion.name));
        }
        for rule in (fusion.rules)().unwrap() {
            if !mentioned(rule.name.as_str()) {
                missing.push(format!("rule {} of {}", rule.name, fusion.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/fusions.md does not mention: {missing:#?}"
    );
}
