//! Times forward passes of a model through the interpreter.
//!
//! `cargo run --release -p transfuse-interp --example forward -- MODEL.onnx [--seq N] [--batch N] [--runs N]`
//!
//! Inputs are generated from the model's input signature: symbolic dims named like a batch
//! get `--batch`, other symbolic dims `--seq`; integer inputs get small token ids (masks
//! all ones, `token_type_ids` zeros); float inputs deterministic values in [-1, 1).
//! Prints load, prepare and per-run times (min and median after one warm-up run);
//! `--profile` also prints the time per op type (from the gaps between produced values).

use std::collections::HashMap;
use std::time::Instant;

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{DataType, Dim, Model};

struct Options {
    model: String,
    seq: usize,
    batch: usize,
    runs: usize,
    profile: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        model: String::new(),
        seq: 128,
        batch: 1,
        runs: 5,
        profile: false,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seq" => options.seq = number("--seq")?,
            "--batch" => options.batch = number("--batch")?,
            "--runs" => options.runs = number("--runs")?.max(1),
            "--profile" => options.profile = true,
            other if options.model.is_empty() && !other.starts_with("--") => {
                options.model = other.to_string()
            }
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    if options.model.is_empty() {
        return Err(
            "usage: forward MODEL.onnx [--seq N] [--batch N] [--runs N] [--profile]".into(),
        );
    }
    Ok(options)
}

/// Deterministic inputs for every graph input without an initializer default.
fn generate_inputs(
    model: &Model,
    seq: usize,
    batch: usize,
) -> Result<HashMap<String, Value>, String> {
    let mut inputs = HashMap::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for vi in &model.graph.inputs {
        if model.graph.initializers.contains_key(&vi.name) {
            continue;
        }
        let dims = vi
            .shape()
            .ok_or_else(|| format!("input {} has no shape", vi.name))?;
        let shape: Vec<usize> = dims
            .iter()
            .map(|d| match d {
                Dim::Known(k) => usize::try_from(*k).unwrap_or(1),
                Dim::Symbol(s) if s.contains("batch") => batch,
                _ => seq,
            })
            .collect();
        let count: usize = shape.iter().product();
        let name = vi.name.to_lowercase();
        let value = match vi.elem_type() {
            Some(DataType::Float) => {
                let data = (0..count)
                    .map(|_| (next() % 2000) as f32 / 1000.0 - 1.0)
                    .collect();
                Value::from_f32(&shape, data)
            }
            Some(DataType::Int64) => {
                let data = (0..count)
                    .map(|_| {
                        if name.contains("mask") {
                            1
                        } else if name.contains("type") {
                            0
                        } else {
                            (next() % 100) as i64
                        }
                    })
                    .collect();
                Value::from_i64(&shape, data)
            }
            Some(DataType::Int32) => {
                let data = (0..count)
                    .map(|_| {
                        if name.contains("mask") {
                            1
                        } else if name.contains("type") {
                            0
                        } else {
                            (next() % 100) as i32
                        }
                    })
                    .collect();
                Value::from_i32(&shape, data)
            }
            other => return Err(format!("input {}: cannot generate {other:?}", vi.name)),
        };
        inputs.insert(vi.name.clone(), value.ok_or("shape mismatch")?);
    }
    Ok(inputs)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let options = parse_args()?;
    let start = Instant::now();
    let model = Model::load(&options.model).map_err(|e| e.to_string())?;
    let loaded = start.elapsed();
    let start = Instant::now();
    let interp = Interpreter::new(&model).map_err(|e| e.to_string())?;
    let prepared = start.elapsed();
    let inputs = generate_inputs(&model, options.seq, options.batch)?;
    let op_of: HashMap<String, String> = model
        .graph
        .nodes
        .iter()
        .flat_map(|n| {
            n.outputs
                .iter()
                .map(move |o| (o.clone(), n.op_type.clone()))
        })
        .collect();
    drop(model);
    println!(
        "{}: load {:.0} ms, prepare {:.0} ms, {} threads",
        options.model,
        loaded.as_secs_f64() * 1e3,
        prepared.as_secs_f64() * 1e3,
        rayon::current_num_threads()
    );
    interp.run(&inputs).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(options.runs);
    for _ in 0..options.runs {
        let start = Instant::now();
        let outputs = interp.run(&inputs).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        drop(outputs);
    }
    if options.profile {
        profile(&interp, &inputs, &op_of, options.runs)?;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mut shapes: Vec<String> = inputs
        .iter()
        .map(|(name, v)| format!("{name} {:?}", v.shape()))
        .collect();
    shapes.sort();
    println!(
        "{}: {} runs, min {:.1} ms, median {:.1} ms",
        shapes.join(", "),
        times.len(),
        times[0],
        median
    );
    Ok(())
}

/// Time per op type: each produced value is charged the time since the previous one.
fn profile(
    interp: &Interpreter,
    inputs: &HashMap<String, Value>,
    op_of: &HashMap<String, String>,
    runs: usize,
) -> Result<(), String> {
    let mut per_op: HashMap<String, f64> = HashMap::new();
    for _ in 0..runs {
        let mut last = Instant::now();
        let mut observe = |name: &str, _: &Value| {
            let now = Instant::now();
            let op = op_of.get(name).cloned().unwrap_or_default();
            *per_op.entry(op).or_default() += (now - last).as_secs_f64() * 1e3 / runs as f64;
            last = now;
        };
        interp
            .run_observed(inputs, &mut observe)
            .map_err(|e| e.to_string())?;
    }
    let mut rows: Vec<_> = per_op.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, ms) in rows {
        println!("  {op:<28} {ms:8.2} ms");
    }
    Ok(())
}
