//! The published table: `docs/benchmarks.md`, from one or more runs' results.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::results::{BenchRun, CaseResult, ConfigId, ModelResult, OptimizerId, Ratio};

mod detail;

/// The fused op types counted in the fused-op table, in column order: every op type a fusion
/// of the registry emits, in registry order.
pub fn fused_ops() -> Vec<&'static str> {
    let emitted = transfuse_rewrite::FUSIONS
        .iter()
        .flat_map(|f| f.emits.iter());
    emitted.map(|&(_, op)| op).collect()
}

/// The goal the issue sets: transfuse's median per-round ratio against ORT all and the peer.
pub const RATIO_GOAL: f64 = 1.02;

/// The goal for optimizer wall time: the peer takes at least this many times longer.
pub const WALL_GOAL: f64 = 4.0;

/// A human name for a model file name.
pub fn family_name(model: &str) -> &'static str {
    if model.starts_with("timm_vit") {
        "timm ViT-B/16"
    } else if model.starts_with("vit") {
        "ViT-B/16 (transformers)"
    } else if model.starts_with("bert") {
        "BERT-base"
    } else if model.starts_with("distilbert") {
        "DistilBERT"
    } else if model.starts_with("roberta") {
        "RoBERTa"
    } else {
        "model"
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.1}"),
        Some(v) if v >= 10.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

fn sci(v: Option<f64>) -> String {
    match v {
        Some(0.0) => "0".into(),
        Some(v) => format!("{v:.1e}"),
        None => "-".into(),
    }
}

/// Writes a table's header and rule: the `lead` cells, then one cell per `columns` item.
fn table_head<I: IntoIterator<Item = S>, S: std::fmt::Display>(
    out: &mut String,
    lead: &[&str],
    columns: I,
) {
    let mut cells: Vec<String> = lead.iter().map(|c| c.to_string()).collect();
    cells.extend(columns.into_iter().map(|c| c.to_string()));
    let _ = writeln!(
        out,
        "| {} |\n|{}",
        cells.join(" | "),
        "---|".repeat(cells.len())
    );
}

fn ratio_cell(r: Option<&Ratio>) -> String {
    match r {
        Some(r) => {
            let mark = if r.median <= RATIO_GOAL { "" } else { " ✗" };
            format!("{:.3} [{:.3}–{:.3}]{mark}", r.median, r.p25, r.p75)
        }
        None => "-".into(),
    }
}

/// Cases in a stable order: by model name, then text shapes by sequence length.
fn case_keys(runs: &[BenchRun]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, Option<usize>, String)> = Vec::new();
    for run in runs {
        for model in &run.models {
            for case in &model.cases {
                let key = (model.name.clone(), case.seq, case.shape.clone());
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys.sort();
    keys.into_iter().map(|(m, _, s)| (m, s)).collect()
}

fn find_case<'a>(
    run: &'a BenchRun,
    model: &str,
    shape: &str,
) -> Option<(&'a ModelResult, &'a CaseResult)> {
    let m = run.models.iter().find(|m| m.name == model)?;
    Some((m, m.cases.iter().find(|c| c.shape == shape)?))
}

fn find_model<'a>(run: &'a BenchRun, model: &str) -> Option<&'a ModelResult> {
    run.models.iter().find(|m| m.name == model)
}

fn model_names(runs: &[BenchRun]) -> Vec<String> {
    let set: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.models.iter().map(|m| m.name.clone()))
        .collect();
    set.into_iter().collect()
}

fn conditions(out: &mut String, runs: &[BenchRun]) {
    out.push_str("## Conditions\n\n");
    out.push_str("Load averages are read when a run starts and ends; they include the benchmark's own threads.\n\n");
    out.push_str("| run | machine | ONNX Runtime | threads | rounds (warm-up) | load average at start → end (after each case: min–max) | peer (Python optimizer) | OpenVINO | date (UTC) | duration |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for run in runs {
        let m = &run.machine;
        let gpu = m
            .gpu
            .as_deref()
            .map(|g| format!(", {g}"))
            .unwrap_or_default();
        let peer = match (&run.peer.version, &run.peer.unavailable) {
            (Some(v), None) => format!("onnxruntime {v}"),
            (_, Some(why)) => format!("unavailable: {}", short(why)),
            _ => "-".into(),
        };
        let ov = match (&run.openvino.version, &run.openvino.unavailable) {
            (Some(v), None) => {
                let (version, detail) = v.split_once(", ").unwrap_or((v, ""));
                let version = version.split('-').next().unwrap_or(version);
                if detail.is_empty() {
                    version.to_string()
                } else {
                    format!("{version}, {detail}")
                }
            }
            (_, Some(why)) => format!("not run: {}", short(why)),
            _ => "-".into(),
        };
        let during: Vec<f64> = run
            .models
            .iter()
            .flat_map(|m| m.cases.iter().filter_map(|c| c.load_after))
            .collect();
        let during = match (
            during.iter().copied().reduce(f64::min),
            during.iter().copied().reduce(f64::max),
        ) {
            (Some(lo), Some(hi)) => format!(" ({lo:.2}–{hi:.2})"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} ({} logical CPUs{gpu}) | {} | {} | {} ({}) | {:.2} → {:.2}{during} | {peer} | {ov} | {} | {:.0} s |",
            run.column(),
            m.cpu_model,
            m.logical_cpus,
            run.ort_version,
            run.threads,
            run.rounds,
            run.warmup,
            m.load_start[0],
            m.load_end[0],
            run.started_utc,
            run.duration_s
        );
    }
    out.push('\n');
}

fn short(text: &str) -> String {
    let one_line = text.replace(['\n', '|'], " ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}

fn summary(out: &mut String, runs: &[BenchRun]) {
    out.push_str(
        "## Summary: transfuse against ONNX Runtime's own optimizations and against the peer\n\n",
    );
    out.push_str(&format!(
        "Median of the per-round latency ratios (both configurations run in the same round), with the 25th–75th percentile in brackets. Below 1 means transfuse is faster; ✗ marks a median above the goal of {RATIO_GOAL}.\n\n"
    ));
    let columns = runs.iter().flat_map(|r| {
        let c = r.column();
        [format!("{c}: ours / ORT all"), format!("{c}: ours / peer")]
    });
    table_head(out, &["model", "shape"], columns);
    for (model, shape) in case_keys(runs) {
        let _ = write!(out, "| {model} | {shape} |");
        for run in runs {
            let case = find_case(run, &model, &shape).map(|(_, c)| c);
            let get = |den| case.and_then(|c| c.ours_vs(den));
            let _ = write!(
                out,
                " {} | {} |",
                ratio_cell(get(ConfigId::OrtAll)),
                ratio_cell(get(ConfigId::Peer))
            );
        }
        out.push('\n');
    }
    out.push('\n');
    for line in missed_goals(runs) {
        let _ = writeln!(out, "- {line}");
    }
    out.push('\n');
}

/// The worst error of a configuration's outputs under padded masks (real tokens), in one run.
fn worst_padded_error(model: &ModelResult, config: ConfigId) -> Option<f64> {
    model
        .cases
        .iter()
        .flat_map(|c| c.parity.iter())
        .filter(|p| p.config == config && p.padding != "none")
        .filter_map(|p| p.max_abs_real)
        .reduce(f64::max)
}

/// One line per run on the goals: where transfuse is slower than the goal allows, and what
/// the faster configuration computes under padding.
fn missed_goals(runs: &[BenchRun]) -> Vec<String> {
    let mut lines = Vec::new();
    for run in runs {
        let mut slower: Vec<String> = Vec::new();
        for model in &run.models {
            for case in &model.cases {
                for den in [ConfigId::OrtAll, ConfigId::Peer] {
                    let Some(r) = case.ours_vs(den).filter(|r| r.median > RATIO_GOAL) else {
                        continue;
                    };
                    let mut text = format!(
                        "{} {} vs {}: {:.3}",
                        model.name,
                        case.shape,
                        den.short(),
                        r.median
                    );
                    if let Some(e) = worst_padded_error(model, den).filter(|e| *e > 1e-2) {
                        let _ = write!(
                            text,
                            " (its output under padded masks is off by up to {e:.2})"
                        );
                    }
                    slower.push(text);
                }
            }
        }
        let counted = run.models.iter().map(|m| m.cases.len()).sum::<usize>();
        if counted == 0 {
            continue;
        }
        if slower.is_empty() {
            lines.push(format!(
                "{}: transfuse meets the goal (median ratio ≤ {RATIO_GOAL}) against both on all {counted} cases.",
                run.column()
            ));
        } else {
            lines.push(format!(
                "{}: transfuse misses the goal (median ratio ≤ {RATIO_GOAL}) on {} of {} comparisons: {}.",
                run.column(),
                slower.len(),
                2 * counted,
                slower.join("; ")
            ));
        }
    }
    lines
}

fn latency_tables(out: &mut String, runs: &[BenchRun]) {
    out.push_str("## Latency, ms per batch-1 inference: median (min)\n\n");
    out.push_str("In the original experiment's layout; one column per run. \"then all\" means the optimized model runs with ONNX Runtime's own graph optimizations all on.\n\n");
    for (model, shape) in case_keys(runs) {
        let _ = writeln!(out, "### {}, {shape}: `{model}`\n", family_name(&model));
        table_head(out, &["configuration"], runs.iter().map(BenchRun::column));
        for config in ConfigId::ALL {
            let cells: Vec<String> = runs
                .iter()
                .map(|run| {
                    let latency = find_case(run, &model, &shape)
                        .and_then(|(_, c)| c.latency.iter().find(|l| l.config == config));
                    match latency {
                        Some(l) if l.median_ms.is_some() => {
                            format!("{} ({})", ms(l.median_ms), ms(l.min_ms))
                        }
                        Some(l) => match &l.error {
                            Some(e) => format!("failed: {}", short(e)),
                            None => "-".into(),
                        },
                        None => "-".into(),
                    }
                })
                .collect();
            if cells.iter().all(|c| c == "-") {
                continue;
            }
            let _ = writeln!(out, "| {} | {} |", config.label(), cells.join(" | "));
        }
        out.push('\n');
    }
}

fn optimizer_times(out: &mut String, runs: &[BenchRun]) {
    out.push_str("## Optimizer wall time, whole process (ms, fastest run)\n\n");
    let _ = writeln!(
        out,
        "Each optimizer runs as its own process (transfuse: this binary's `optimize`; the peer: `python -m onnxruntime.transformers.optimizer ... --opt_level 0`), start to exit, on the machine of the run. The goal is a peer / transfuse ratio of at least {WALL_GOAL}.\n"
    );
    out.push_str("| run | model | transfuse all | transfuse all,-attention | peer | peer / transfuse all |\n|---|---|---|---|---|---|\n");
    for run in runs {
        for model in &run.models {
            let get = |id: OptimizerId| model.optimizers.iter().find(|o| o.optimizer == id);
            let cell = |id: OptimizerId| match get(id) {
                Some(o) if o.error.is_none() => {
                    let cached = if o.cached { " (cached)" } else { "" };
                    format!("{}{cached}", ms(o.min_wall_ms()))
                }
                Some(o) => format!("failed: {}", short(o.error.as_deref().unwrap_or(""))),
                None => "-".into(),
            };
            let wall = |id| model.optimized_by(id).and_then(|o| o.min_wall_ms());
            let ratio = match (wall(OptimizerId::Peer), wall(OptimizerId::Ours)) {
                (Some(p), Some(o)) if o > 0.0 => {
                    let mark = if p / o >= WALL_GOAL { "" } else { " ✗" };
                    format!("{:.1}x{mark}", p / o)
                }
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {ratio} |",
                run.column(),
                model.name,
                cell(OptimizerId::Ours),
                cell(OptimizerId::OursNoAttention),
                cell(OptimizerId::Peer)
            );
        }
    }
    out.push('\n');
}

fn fused_op_table(out: &mut String, runs: &[BenchRun]) {
    out.push_str("## Fused operators in the optimized graphs\n\n");
    out.push_str("Op histogram of each optimized model (from the first run that has it), before ONNX Runtime's own session-time fusions.\n\n");
    let ops = fused_ops();
    table_head(out, &["model", "optimizer", "nodes"], &ops);
    for name in model_names(runs) {
        let Some(model) = runs.iter().find_map(|r| find_model(r, &name)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {name} | original | {} |{}",
            model.nodes,
            " |".repeat(ops.len())
        );
        for id in OptimizerId::ALL {
            let mut of_model = runs.iter().filter_map(|r| find_model(r, &name));
            match of_model.find_map(|m| m.optimized_by(id)) {
                Some(o) => {
                    let counts: Vec<String> =
                        ops.iter().map(|op| o.fused(op).to_string()).collect();
                    let _ = writeln!(
                        out,
                        "| {name} | {} | {} | {} |",
                        id.label(),
                        o.nodes,
                        counts.join(" | ")
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| {name} | {} | failed |{}",
                        id.label(),
                        " |".repeat(ops.len())
                    );
                }
            }
        }
    }
    out.push('\n');
}

fn notes(out: &mut String, runs: &[BenchRun], extra: &[String]) {
    let all: Vec<(String, &String)> = runs
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| (r.column(), n)))
        .collect();
    if all.is_empty() && extra.is_empty() {
        return;
    }
    out.push_str("## Notes and what was not run\n\n");
    for line in extra {
        let _ = writeln!(out, "- {line}");
    }
    for (column, note) in all {
        let _ = writeln!(out, "- {column}: {}", short(note));
    }
    out.push('\n');
}

/// The whole markdown page. `chart` is the SVG's file name (beside the page), `preamble`
/// free text placed under the title, `extra_notes` lines added to the notes section.
pub fn markdown(
    runs: &[BenchRun],
    chart: Option<&str>,
    preamble: &str,
    extra_notes: &[String],
) -> String {
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str("Generated by `cargo xtask bench`; do not edit by hand (the raw results are JSON files under `target/bench/`).\n\n");
    if !preamble.trim().is_empty() {
        out.push_str(preamble.trim());
        out.push_str("\n\n");
    }
    if let Some(chart) = chart {
        let _ = writeln!(
            out,
            "![Latency relative to ONNX Runtime without optimizations]({chart})\n"
        );
    }
    conditions(&mut out, runs);
    summary(&mut out, runs);
    latency_tables(&mut out, runs);
    optimizer_times(&mut out, runs);
    fused_op_table(&mut out, runs);
    detail::parity_tables(&mut out, runs);
    detail::accuracy(&mut out, runs);
    detail::profiles(&mut out, runs);
    notes(&mut out, runs, extra_notes);
    out
}
