//! Stable text dumps of the tiny models.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use transfuse_ir::Model;

#[test]
fn tiny_model_dumps() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models/tiny");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".onnx")
                .map(String::from)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 9);
    for name in names {
        let model = Model::load(dir.join(format!("{name}.onnx"))).unwrap();
        insta::assert_snapshot!(name, model.dump());
    }
}
