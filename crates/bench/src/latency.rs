//! Timing one case: sessions of every configuration, warm-up, then rounds that run each
//! configuration once in rotating order, with sessions renewed each epoch; per-round ratios.
//! The parity and profile stages of the case follow in [`super::parity`] and
//! [`super::profile`].

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use transfuse_ir::Tensor;
use transfuse_ort::OrtRuntime;

use super::case::{Case, Engine, Progress, Runner, Settings, Subject, write_inputs};
use super::results::{CaseResult, ConfigId, Latency, Ratio};
use super::system::{load_average, median, min, quantile};
use super::{parity, profile};
use transfuse_parity::{InputSpec, Padding, generate_inputs};

/// How many steps [`measure_case`] reports for `configs` configurations.
pub fn steps(configs: usize, text: bool, settings: &Settings) -> u64 {
    let profiled = if settings.profile_runs > 0 {
        profile::PROFILED.len()
    } else {
        0
    };
    (configs + settings.warmup + settings.rounds + parity::patterns(text).len() + profiled) as u64
}

/// Measures `subject` at `seq` (text) or its declared image size (vision), reporting every
/// round and stage to `progress` (see [`steps`]).
pub fn measure_case(
    runtime: &'static OrtRuntime,
    subject: &Subject<'_>,
    seq: Option<usize>,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<CaseResult> {
    let spec = InputSpec {
        batch: 1,
        seq: seq.unwrap_or(1),
        seed: settings.seed,
        padding: Padding::None,
    };
    let inputs = generate_inputs(subject.model, &spec).context("generating the timed inputs")?;
    let shape = match seq {
        Some(s) => format!("seq {s}"),
        None => image_shape(&inputs),
    };
    let dir = subject.work_dir.join(shape.replace(' ', "_"));
    let timed_dir = dir.join("timed_inputs");
    write_inputs(&inputs, &timed_dir)?;
    let case = Case {
        runtime,
        subject,
        settings,
        dir,
        shape,
        inputs,
        timed_dir,
    };

    // Sessions (and the OpenVINO driver), one per configuration.
    let mut runners: Vec<Runner> = Vec::new();
    let mut latency: BTreeMap<ConfigId, Latency> = BTreeMap::new();
    for config in ConfigId::ALL
        .into_iter()
        .filter(|c| subject.files.contains_key(c))
    {
        let mut record = Latency {
            config,
            error: None,
            load_ms: None,
            min_ms: None,
            median_ms: None,
            samples_ms: Vec::new(),
        };
        let started = Instant::now();
        match case.start_engine(config) {
            Ok(engine) => {
                record.load_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                runners.push(Runner {
                    config,
                    engine,
                    samples: Vec::new(),
                    error: None,
                });
            }
            Err(e) => record.error = Some(format!("{e:#}")),
        }
        latency.insert(config, record);
        case.step(progress, &format!("loaded {}", config.key()));
    }

    // Warm-up, then timed rounds; the order rotates each round.
    for w in 0..settings.warmup {
        for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
            runner.sample();
            std::thread::sleep(settings.gap);
        }
        case.step(progress, &format!("warm-up {}/{}", w + 1, settings.warmup));
    }
    let n = runners.len();
    let epochs = settings.session_epochs.clamp(1, settings.rounds.max(1));
    for round in 0..settings.rounds {
        if round > 0 && round * epochs % settings.rounds < epochs {
            renew_sessions(&case, &mut runners);
        }
        for k in 0..n {
            let runner = &mut runners[(round + k) % n];
            let sample = runner.sample();
            runner.samples.push(sample);
            std::thread::sleep(settings.gap);
        }
        case.step(
            progress,
            &format!("round {}/{}", round + 1, settings.rounds),
        );
    }
    for runner in &runners {
        if let Some(record) = latency.get_mut(&runner.config) {
            record.samples_ms = runner.samples.iter().flatten().copied().collect();
            record.min_ms = min(&record.samples_ms);
            record.median_ms = median(&record.samples_ms);
            if runner.error.is_some() {
                record.error.clone_from(&runner.error);
            }
        }
    }
    let ratios = ratios(&runners);
    let load_after = Some(load_average()[0]);

    // Parity against the original without optimizations (on the CPU).
    let parity = parity::parity(&case, seq, &mut runners, progress);
    drop(runners);
    let profile = if settings.profile_runs > 0 {
        profile::profile_case(&case, progress)
    } else {
        Vec::new()
    };
    let _ = std::fs::remove_dir_all(case.dir.join("parity"));

    Ok(CaseResult {
        shape: case.shape,
        batch: 1,
        seq,
        latency: latency.into_values().collect(),
        ratios,
        parity,
        profile,
        load_after,
    })
}

fn image_shape(inputs: &[Tensor]) -> String {
    match inputs.iter().find(|t| t.dims.len() == 4) {
        Some(t) => format!("{}x{}", t.dims[2], t.dims[3]),
        None => "default shape".into(),
    }
}

/// Replaces every working ONNX Runtime session by a new one of the same configuration and
/// runs it once untimed (OpenVINO's driver process is kept). A session that fails to come
/// back marks its configuration failed.
fn renew_sessions(case: &Case<'_>, runners: &mut [Runner]) {
    for runner in runners.iter_mut().filter(|r| r.error.is_none()) {
        if matches!(runner.engine, Engine::OpenVino(_)) {
            continue;
        }
        match case.start_engine(runner.config) {
            Ok(engine) => {
                runner.engine = engine;
                runner.sample();
                std::thread::sleep(case.settings.gap);
            }
            Err(e) => runner.error = Some(format!("renewing the session: {e:#}")),
        }
    }
}

/// The ratio pairs reported: (numerator, denominator).
pub const RATIO_PAIRS: [(ConfigId, ConfigId); 7] = [
    (ConfigId::Ours, ConfigId::OrtAll),
    (ConfigId::Ours, ConfigId::Peer),
    (ConfigId::Ours, ConfigId::OrtDisabled),
    (ConfigId::OursNoAttention, ConfigId::OrtAll),
    (ConfigId::Peer, ConfigId::OrtAll),
    (ConfigId::OrtAll, ConfigId::OrtDisabled),
    (ConfigId::Openvino, ConfigId::OrtDisabled),
];

fn ratios(runners: &[Runner]) -> Vec<Ratio> {
    let find = |c: ConfigId| runners.iter().find(|r| r.config == c);
    let mut out = Vec::new();
    for (num, den) in RATIO_PAIRS {
        let (Some(a), Some(b)) = (find(num), find(den)) else {
            continue;
        };
        let per_round: Vec<f64> = a
            .samples
            .iter()
            .zip(&b.samples)
            .filter_map(|(x, y)| Some((*x)? / (*y)?))
            .filter(|r| r.is_finite())
            .collect();
        let a_all: Vec<f64> = a.samples.iter().flatten().copied().collect();
        let b_all: Vec<f64> = b.samples.iter().flatten().copied().collect();
        let (Some(med), Some(p25), Some(p75), Some(lo), Some(hi), Some(ma), Some(mb)) = (
            median(&per_round),
            quantile(&per_round, 0.25),
            quantile(&per_round, 0.75),
            quantile(&per_round, 0.0),
            quantile(&per_round, 1.0),
            median(&a_all),
            median(&b_all),
        ) else {
            continue;
        };
        out.push(Ratio {
            numerator: num,
            denominator: den,
            rounds: per_round.len(),
            median: med,
            p25,
            p75,
            min: lo,
            max: hi,
            of_medians: ma / mb,
        });
    }
    out
}
