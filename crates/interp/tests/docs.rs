//! `docs/interpreter.md` lists every op the interpreter registers (a staleness check).
#![allow(clippy::unwrap_used, clippy::panic)]

#[test]
fn every_supported_op_is_documented() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/interpreter.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let missing: Vec<String> = transfuse_interp::supported_ops()
        .into_iter()
        .map(|o| o.op_type)
        .filter(|name| !text.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/interpreter.md does not mention {missing:?}"
    );
}
