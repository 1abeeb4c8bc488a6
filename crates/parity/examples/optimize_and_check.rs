//! Optimize a model with transfuse and check that the result computes what the original
//! computes, in the reference interpreter and (when its library is found) ONNX Runtime.
//!
//! ```text
//! cargo run --release -p transfuse-parity --example optimize_and_check -- [MODEL.onnx]
//! ```
//!
//! Without an argument it uses the bundled tiny BERT from `testdata/models/tiny/`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use transfuse_ir::Model;
use transfuse_parity::{InputSource, InputSpec, Options, Padding, Runtime, RuntimeKind, check};
use transfuse_rewrite::{OptimizeOptions, optimize};

fn main() -> Result<()> {
    let path = std::env::args_os().nth(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/models/tiny/bert_sdpa_ts_op17.onnx")
        },
        PathBuf::from,
    );
    let original = Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let (optimized, report) = optimize(&original, &OptimizeOptions::default())?;
    println!(
        "{}: {} nodes -> {}",
        path.display(),
        report.nodes_before,
        report.nodes_after
    );

    let mut all_pass = true;
    for kind in [RuntimeKind::Reference, RuntimeKind::Ort] {
        let options = Options {
            inputs: InputSource::Generated(InputSpec {
                batch: 2,
                seq: 16,
                seed: 0,
                padding: Padding::Left,
            }),
            runtime: Runtime {
                kind,
                ..Runtime::default()
            },
            ..Options::default()
        };
        match check(&original, &optimized, &options) {
            Ok(parity) => {
                println!(
                    "{kind}: {} (max abs error {:.2e})",
                    if parity.pass { "pass" } else { "FAIL" },
                    parity.max_abs()
                );
                all_pass &= parity.pass;
            }
            // ONNX Runtime's library may be missing on this machine: say so and go on.
            Err(e) if kind == RuntimeKind::Ort => println!("{kind}: skipped ({e})"),
            Err(e) => return Err(e.into()),
        }
    }
    if !all_pass {
        bail!("the optimized model does not compute what the original computes");
    }
    Ok(())
}
