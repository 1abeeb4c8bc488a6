//! The result files, the page and the chart, on a made-up pair of runs.

use std::collections::BTreeMap;

use super::results::{
    BenchRun, CaseResult, ConfigId, Latency, Machine, ModelResult, OptimizerId, OptimizerResult,
    Parity, ProfileResult, Ratio, SCHEMA, Tool,
};
use super::{chart, report};

fn latency(config: ConfigId, median: f64) -> Latency {
    Latency {
        config,
        error: None,
        load_ms: Some(10.0),
        min_ms: Some(median * 0.9),
        median_ms: Some(median),
        samples_ms: vec![median * 0.9, median, median * 1.1],
    }
}

fn ratio(numerator: ConfigId, denominator: ConfigId, median: f64) -> Ratio {
    Ratio {
        numerator,
        denominator,
        rounds: 3,
        median,
        p25: median - 0.01,
        p75: median + 0.01,
        min: median - 0.02,
        max: median + 0.02,
        of_medians: median,
    }
}

fn parity(config: ConfigId, padding: &str, max_abs: f64) -> Parity {
    Parity {
        config,
        padding: padding.into(),
        batch: 2,
        error: None,
        max_abs: Some(max_abs),
        max_abs_real: Some(max_abs),
        top1_agreement: None,
    }
}

fn optimizer(optimizer: OptimizerId, wall: f64, attention: usize) -> OptimizerResult {
    let mut histogram = BTreeMap::new();
    histogram.insert("com.microsoft.Attention".to_string(), attention);
    histogram.insert("com.microsoft.SkipLayerNormalization".to_string(), 24);
    histogram.insert("MatMul".to_string(), 48);
    OptimizerResult {
        optimizer,
        command: "optimize".into(),
        error: None,
        wall_ms: vec![wall],
        cached: false,
        nodes: 100,
        histogram,
    }
}

fn sample_run(provider: &str, threads: usize) -> BenchRun {
    let mut peer_failed = optimizer(OptimizerId::OursNoAttention, 200.0, 0);
    peer_failed.error = Some("exit status: 1: boom".into());
    let text_case = CaseResult {
        shape: "seq 32".into(),
        batch: 1,
        seq: Some(32),
        latency: vec![
            latency(ConfigId::OrtDisabled, 20.0),
            latency(ConfigId::OrtAll, 16.0),
            latency(ConfigId::Peer, 15.5),
            latency(ConfigId::Ours, 15.0),
            Latency {
                error: Some("transfuse all,-attention failed".into()),
                min_ms: None,
                median_ms: None,
                samples_ms: vec![],
                ..latency(ConfigId::OursNoAttention, 0.0)
            },
        ],
        ratios: vec![
            ratio(ConfigId::Ours, ConfigId::OrtAll, 0.94),
            ratio(ConfigId::Ours, ConfigId::Peer, 1.05),
        ],
        parity: vec![
            parity(ConfigId::Peer, "none", 1e-6),
            parity(ConfigId::Peer, "left", 3.6),
            parity(ConfigId::Ours, "none", 2e-6),
            parity(ConfigId::Ours, "left", 3e-6),
        ],
        profile: vec![ProfileResult {
            config: ConfigId::Ours,
            runs: 10,
            kernel_ms: 10.0,
            run_ms: 11.0,
            by_op: [("MatMul".to_string(), 8.8), ("Attention".to_string(), 1.2)]
                .into_iter()
                .collect(),
            nodes_by_op: [("MatMul".to_string(), 48), ("Attention".to_string(), 12)]
                .into_iter()
                .collect(),
        }],
        load_after: Some(0.5),
    };
    let vision_case = CaseResult {
        shape: "224x224".into(),
        batch: 1,
        seq: None,
        latency: vec![
            latency(ConfigId::OrtDisabled, 80.0),
            latency(ConfigId::Ours, 70.0),
            latency(ConfigId::Openvino, 90.0),
        ],
        ratios: vec![],
        parity: vec![Parity {
            top1_agreement: Some(1.0),
            batch: 8,
            ..parity(ConfigId::Ours, "none", 1e-5)
        }],
        profile: vec![],
        load_after: Some(1.5),
    };
    BenchRun {
        schema: SCHEMA,
        started_utc: "2026-11-26T00:00:00Z".into(),
        duration_s: 100.0,
        machine: Machine {
            cpu_model: "Test CPU".into(),
            logical_cpus: threads,
            gpu: (provider == "cuda").then(|| "Test GPU".to_string()),
            load_start: [0.5, 0.4, 0.3],
            load_end: [0.6, 0.5, 0.4],
            hostname: "test".into(),
        },
        ort_version: "1.31.1".into(),
        ort_build: "test".into(),
        provider: provider.into(),
        threads,
        rounds: 3,
        warmup: 1,
        peer: Tool {
            python: Some("python".into()),
            version: Some("1.31.1".into()),
            unavailable: None,
        },
        openvino: Tool {
            python: None,
            version: None,
            unavailable: Some("not installable".into()),
        },
        models: vec![
            ModelResult {
                name: "bert_eager_ts_op14".into(),
                family: "text".into(),
                nodes: 1311,
                optimizers: vec![
                    optimizer(OptimizerId::Peer, 16000.0, 12),
                    peer_failed,
                    optimizer(OptimizerId::Ours, 1000.0, 12),
                ],
                cases: vec![text_case],
            },
            ModelResult {
                name: "vit_sdpa_ts_op17".into(),
                family: "vision".into(),
                nodes: 1136,
                optimizers: vec![
                    optimizer(OptimizerId::Peer, 8000.0, 0),
                    optimizer(OptimizerId::Ours, 4000.0, 12),
                ],
                cases: vec![vision_case],
            },
        ],
        notes: vec!["a note".into()],
    }
}

#[test]
fn results_round_trip_through_json() {
    let run = sample_run("cpu", 2);
    let text = serde_json::to_string(&run).expect("encode");
    let back: BenchRun = serde_json::from_str(&text).expect("decode");
    assert_eq!(back.models.len(), 2);
    assert_eq!(back.models[0].cases[0].latency.len(), 5);
    assert_eq!(
        back.models[0].optimizers[0].histogram,
        run.models[0].optimizers[0].histogram
    );
    assert_eq!(back.column(), "CPU, 2 threads");
    assert!(
        text.contains("\"ours_no_attention\""),
        "config keys are snake_case"
    );
}

#[test]
fn the_page_has_every_section_and_marks_missed_goals() {
    let runs = vec![sample_run("cpu", 2), sample_run("cuda", 16)];
    let page = report::markdown(
        &runs,
        Some("benchmarks.svg"),
        "intro",
        &["extra note".into()],
    );
    for heading in [
        "## Conditions",
        "## Summary",
        "## Latency, ms per batch-1 inference",
        "### BERT-base, seq 32: `bert_eager_ts_op14`",
        "### ViT-B/16 (transformers), 224x224: `vit_sdpa_ts_op17`",
        "## Optimizer wall time",
        "## Fused operators",
        "## Parity with the original",
        "## Accuracy parity stand-in",
        "## Where the time goes",
        "## Notes and what was not run",
    ] {
        assert!(page.contains(heading), "missing {heading}\n{page}");
    }
    assert!(
        page.contains("| CPU, 2 threads | CPU, 16 threads |")
            || page.contains("| CPU, 2 threads | GPU (Test GPU) |")
    );
    // Latency cells: median (min); failures say so.
    assert!(
        page.contains("| ONNX Runtime, full fusion (transfuse), then all | 15.00 (13.50) |"),
        "{page}"
    );
    assert!(page.contains("failed: transfuse all,-attention failed"));
    // Ratio goals: 0.94 passes, 1.05 is marked.
    assert!(page.contains("0.940 [0.930–0.950] |"));
    assert!(page.contains("1.050 [1.040–1.060] ✗"));
    // Optimizer time: 16x passes, 2x is marked.
    assert!(page.contains("| 16.0x |"), "{page}");
    assert!(page.contains("| 2.0x ✗ |"), "{page}");
    // Fused op counts come from the domain-qualified histogram.
    // The columns are the registry's emitted op types, in its order.
    let counts: Vec<&str> = report::fused_ops()
        .iter()
        .map(|op| match *op {
            "Attention" => "12",
            "SkipLayerNormalization" => "24",
            _ => "0",
        })
        .collect();
    let row = format!(
        "| bert_eager_ts_op14 | transfuse all | 100 | {} |",
        counts.join(" | ")
    );
    assert!(page.contains(&row), "{row}\n{page}");
    // Parity: the peer's left-padding error is shown.
    assert!(page.contains("3.6e0"), "{page}");
    assert!(page.contains("1.000 of 8"));
    assert!(page.contains("- extra note") && page.contains("a note"));
    // Load after each case, min–max, beside the start and end.
    assert!(page.contains("0.50 → 0.60 (0.50–1.50)"), "{page}");
}

#[test]
fn the_chart_is_an_svg_with_a_panel_per_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chart.svg");
    chart::draw(&[sample_run("cpu", 2), sample_run("cuda", 16)], &path).expect("draw");
    let svg = std::fs::read_to_string(&path).expect("read");
    assert!(svg.starts_with("<svg") || svg.contains("<svg"));
    assert!(svg.contains("CPU, 2 threads") && svg.contains("GPU (Test GPU)"));
    assert!(svg.contains("transfuse + ORT all"));
    let empty = BenchRun {
        models: vec![],
        ..sample_run("cpu", 2)
    };
    assert!(chart::draw(&[empty], &dir.path().join("empty.svg")).is_err());
}
