//! CPU latency of fixed shapes on the base-size models (`cargo xtask models` puts them in
//! `target/models`): each model optimized as usual and with its input shapes fixed, both run
//! in ONNX Runtime on the CPU (level ALL) on the same inputs, timed interleaved; prints the
//! minimum and median of each. A measurement, not a check of speed, so it is `#[ignore]`d:
//!
//! ```text
//! cargo test --release -p transfuse-rewrite --test fixed_shapes_latency -- --ignored --nocapture
//! ```
//!
//! `TRANSFUSE_LATENCY_RUNS` (default 30) sets the timed runs per model, `TRANSFUSE_LATENCY_THREADS`
//! (default 1) ONNX Runtime's intra-op threads.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use transfuse_ir::Model;
use transfuse_ort::{OptimizationLevel, OrtRuntime, Session, SessionOptions};
use transfuse_parity::{InputSpec, Padding, generate_inputs, max_abs_diff};
use transfuse_rewrite::{OptimizeOptions, optimize};

/// `(model, spec)`: batch 1, sequence 128 for text.
const CASES: &[(&str, &str)] = &[
    ("bert_eager_ts_op14", "batch=1,sequence=128"),
    ("bert_sdpa_dynamo_op18", "batch=1,sequence=128"),
    ("vit_eager_ts_op14", "batch=1"),
    ("vit_sdpa_dynamo_op18", "batch=1"),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models")
}

fn stats(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[0]), ms(times[times.len() / 2]))
}

#[test]
#[ignore = "a measurement on the base-size models: run it by name"]
fn cpu_latency_with_and_without_fixed_shapes() {
    let runs = env_usize("TRANSFUSE_LATENCY_RUNS", 30);
    let threads = env_usize("TRANSFUSE_LATENCY_THREADS", 1);
    let runtime = OrtRuntime::locate().unwrap();
    let dir = tempfile_dir();
    let options = SessionOptions::default()
        .optimization_level(OptimizationLevel::All)
        .intra_op_threads(threads);
    println!("ONNX Runtime CPU, level ALL, {threads} thread(s), {runs} interleaved runs each");
    println!(
        "| model | shapes | ours min | ours median | fixed min | fixed median | max abs diff |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, spec) in CASES {
        let path = models_dir().join(format!("{name}.onnx"));
        let model = Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (ours, _) = optimize(&model, &OptimizeOptions::default()).unwrap();
        let fixed_options = OptimizeOptions {
            fixed_shapes: spec.parse().unwrap(),
            ..OptimizeOptions::default()
        };
        let (fixed, _) = optimize(&model, &fixed_options).unwrap();
        // From the original at the fixed shapes: the fused model hides the embedding tables.
        let inputs = generate_inputs(
            &fixed_options.fixed_shapes.apply(&model).unwrap(),
            &InputSpec {
                batch: 1,
                seq: 128,
                seed: 0,
                padding: Padding::None,
            },
        )
        .unwrap();
        let named: Vec<(String, transfuse_ir::Tensor)> =
            inputs.iter().map(|t| (t.name.clone(), t.clone())).collect();
        let mut sessions = Vec::new();
        for (label, m) in [("ours", &ours), ("fixed", &fixed)] {
            let file = dir.join(format!("{name}.{label}.onnx"));
            m.save(&file).unwrap();
            let session = Session::from_file(runtime, &file, &options).unwrap();
            let prepared = session.prepare(&named).unwrap();
            sessions.push((session, prepared, Vec::with_capacity(runs)));
        }
        let mut outputs = Vec::new();
        for (session, prepared, _) in &mut sessions {
            let first = session.run_prepared(prepared).unwrap();
            outputs.push(first.outputs);
            for _ in 0..3 {
                session.time_prepared(prepared).unwrap();
            }
        }
        let diff = outputs[0]
            .iter()
            .zip(&outputs[1])
            .map(|((_, a), (_, b))| max_abs_diff(a, b))
            .fold(0.0, f64::max);
        for _ in 0..runs {
            for (session, prepared, times) in &mut sessions {
                times.push(session.time_prepared(prepared).unwrap());
            }
        }
        let mut times = sessions.into_iter().map(|(_, _, t)| stats(t));
        let (a_min, a_med) = times.next().unwrap();
        let (b_min, b_med) = times.next().unwrap();
        println!(
            "| {name} | {spec} | {a_min:.2} | {a_med:.2} | {b_min:.2} | {b_med:.2} | {diff:.1e} |"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("transfuse-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
