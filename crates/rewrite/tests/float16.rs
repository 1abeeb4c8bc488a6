//! `to_float16` on the tiny and coverage models.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use transfuse_ir::{DataType, Model};
use transfuse_parity::{InputSource, Options, Runtime, Tolerance, read_test_data};
use transfuse_rewrite::{Float16Options, OptimizeOptions, optimize, to_float16};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/models")
}

fn all_models() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in ["tiny", "coverage/tiny"] {
        for e in std::fs::read_dir(testdata().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "onnx") {
                out.push((p.file_stem().unwrap().to_string_lossy().into_owned(), p));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn measure() {
    for (name, path) in all_models() {
        let model = Model::load(&path).unwrap();
        let fused = optimize(&model, &OptimizeOptions::default()).unwrap().0;
        let (half, rep) = to_float16(&fused, &Float16Options::default()).unwrap();
        let dir = path.with_extension("").join("test_data_set_0");
        let data = read_test_data(&model, &dir).unwrap();
        for (rt_name, runtime) in [("ref", Runtime::reference()), ("ort", Runtime::ort(Default::default()))] {
            let options = Options {
                inputs: InputSource::Given(data.inputs.clone()),
                runtime,
                tolerance: Tolerance::absolute(1e9),
                locate_divergence: false,
            };
            match transfuse_parity::check(&model, &half, &options) {
                Ok(r) => {
                    for o in &r.outputs {
                        eprintln!("MEASURE {name} {rt_name} {} abs {:.3e} rel {:.3e} top1 {:?}", o.name, o.max_abs, o.max_rel, o.top1_agreement);
                    }
                }
                Err(e) => eprintln!("MEASURE {name} {rt_name} ERROR {e}"),
            }
        }
        eprintln!("REPORT {name} {:?}", rep);
        let _ = DataType::Float16;
    }
}
