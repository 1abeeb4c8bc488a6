//! ONNX Runtime's per-node profile (Chrome trace JSON), aggregated by op type.
//!
//! The trace holds one `Session`/`model_run` event per run and one `Node` event per kernel
//! run (`<node>_kernel_time`, with `args.op_name` and `dur` in microseconds). Warm-up runs are
//! left out by keeping only the kernels that fall inside the last `runs` `model_run` spans.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use transfuse_ort::Session;

use super::case::{Case, Progress, named};
use super::results::{ConfigId, ProfileResult};

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    args: EventArgs,
}

#[derive(Debug, Default, Deserialize)]
struct EventArgs {
    #[serde(default)]
    op_name: Option<String>,
}

/// The configurations profiled with `--profile`.
pub const PROFILED: [ConfigId; 4] = [
    ConfigId::OrtDisabled,
    ConfigId::OrtAll,
    ConfigId::Peer,
    ConfigId::Ours,
];

/// Profiles each configuration of [`PROFILED`] on the case's timed inputs in a session of
/// its own; a failure is a warning and leaves its profile out.
pub fn profile_case(case: &Case<'_>, progress: &mut dyn Progress) -> Vec<ProfileResult> {
    let (subject, settings) = (case.subject, case.settings);
    let mut out = Vec::new();
    for config in PROFILED {
        let Some(Ok(file)) = subject.files.get(&config) else {
            continue;
        };
        let prefix = case.dir.join(format!("profile_{}", config.key()));
        let result = (|| -> Result<ProfileResult> {
            let options = case.session_options(config).profiling(&prefix);
            let mut session = Session::from_file(case.runtime, file, &options)?;
            let prepared = session.prepare(&named(&case.inputs))?;
            for _ in 0..settings.warmup.max(1) + settings.profile_runs {
                session.time_prepared(&prepared)?;
            }
            let path = session.end_profiling()?;
            let aggregated = aggregate_file(&path, config, settings.profile_runs);
            let _ = std::fs::remove_file(&path);
            aggregated
        })();
        match result {
            Ok(p) => out.push(p),
            Err(e) => progress.warn(format!(
                "{} {}: the profile of {} failed: {e:#}",
                subject.name,
                case.shape,
                config.key()
            )),
        }
        case.step(progress, &format!("profile {}", config.key()));
    }
    out
}

/// Reads the trace at `path` and aggregates the kernels of its last `runs` runs.
pub fn aggregate_file(path: &Path, config: ConfigId, runs: usize) -> Result<ProfileResult> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the profile {}", path.display()))?;
    aggregate(&text, config, runs)
        .with_context(|| format!("reading the profile {}", path.display()))
}

/// Aggregates a trace given as JSON text (see the module docs).
pub fn aggregate(json: &str, config: ConfigId, runs: usize) -> Result<ProfileResult> {
    let events: Vec<Event> = serde_json::from_str(json)
        .context("not an ONNX Runtime profile (a JSON list of events)")?;
    let mut spans: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e.cat == "Session" && e.name == "model_run")
        .map(|e| (e.ts, e.ts + e.dur))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    if spans.len() < runs || runs == 0 {
        bail!(
            "the profile holds {} runs, expected at least {runs}",
            spans.len()
        );
    }
    let kept = &spans[spans.len() - runs..];
    let mut by_op: BTreeMap<String, f64> = BTreeMap::new();
    let mut nodes_by_op: BTreeMap<String, usize> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e.cat == "Node" && e.name.ends_with("_kernel_time"))
    {
        let Some(op) = &event.args.op_name else {
            continue;
        };
        if !kept
            .iter()
            .any(|&(start, end)| event.ts >= start && event.ts <= end)
        {
            continue;
        }
        *by_op.entry(op.clone()).or_default() += event.dur / 1e3 / runs as f64;
        *nodes_by_op.entry(op.clone()).or_default() += 1;
    }
    for count in nodes_by_op.values_mut() {
        *count = count.div_ceil(runs);
    }
    let kernel_ms = by_op.values().sum();
    let run_ms = kept.iter().map(|(s, e)| e - s).sum::<f64>() / 1e3 / runs as f64;
    Ok(ProfileResult {
        config,
        runs,
        kernel_ms,
        run_ms,
        by_op,
        nodes_by_op,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_of_the_last_runs_are_summed_by_op() {
        let trace = r#"[
          {"cat":"Session","name":"model_loading_uri","ts":0,"dur":5,"args":{}},
          {"cat":"Session","name":"model_run","ts":100,"dur":50,"args":{}},
          {"cat":"Node","name":"a_kernel_time","ts":110,"dur":999,"args":{"op_name":"MatMul"}},
          {"cat":"Session","name":"model_run","ts":200,"dur":40,"args":{}},
          {"cat":"Node","name":"a_kernel_time","ts":205,"dur":20,"args":{"op_name":"MatMul"}},
          {"cat":"Node","name":"b_kernel_time","ts":225,"dur":10,"args":{"op_name":"Attention"}},
          {"cat":"Session","name":"model_run","ts":300,"dur":60,"args":{}},
          {"cat":"Node","name":"a_kernel_time","ts":305,"dur":40,"args":{"op_name":"MatMul"}},
          {"cat":"Node","name":"b_kernel_time","ts":345,"dur":10,"args":{"op_name":"Attention"}}
        ]"#;
        let p = aggregate(trace, ConfigId::Ours, 2).expect("aggregate");
        assert_eq!(p.runs, 2);
        assert!((p.by_op["MatMul"] - 0.030).abs() < 1e-12, "{p:?}");
        assert!((p.by_op["Attention"] - 0.010).abs() < 1e-12, "{p:?}");
        assert_eq!(p.nodes_by_op["MatMul"], 1);
        assert!((p.run_ms - 0.050).abs() < 1e-12);
        assert!((p.kernel_ms - 0.040).abs() < 1e-12);
        assert!(aggregate(trace, ConfigId::Ours, 4).is_err());
        assert!(aggregate("{}", ConfigId::Ours, 1).is_err());
    }
}
