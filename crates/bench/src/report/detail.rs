//! The detail sections of the page: parity with the original, the top-1 stand-in for
//! accuracy, and where the time goes by op type.

use std::fmt::Write as _;

use super::super::results::{BenchRun, ConfigId, ModelResult, Parity};
use super::{ms, sci, short, table_head};

fn parity_cell(p: Option<&Parity>, text: bool) -> String {
    match p.map(|p| (p, &p.error)) {
        None => "-".into(),
        Some((_, Some(e))) => format!("failed: {}", short(e)),
        Some((p, None)) => sci(p.shown_error(text)),
    }
}

pub fn parity_tables(out: &mut String, runs: &[BenchRun]) {
    out.push_str("## Parity with the original\n\n");
    out.push_str("Largest absolute difference of each configuration's output from the original model's in ONNX Runtime without optimizations on the CPU (fp32), on generated inputs (text: a batch whose first row is whole and the others padded after the pattern, error over the real tokens; vision: a batch of random images, logits). Worst over the model's shapes. For GPU runs the reference is still the CPU, and the GPU's own run of the original is listed too, so that the GPU's own rounding (the same for every configuration) can be told apart from an error of a fusion. Top-1 agreement: fraction of images whose arg-max class equals the reference's, the stand-in for the original experiment's ImageNet accuracy.\n\n");
    for (i, run) in runs.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "<details><summary>{}</summary>\n", run.column());
        } else {
            let _ = writeln!(out, "{}:\n", run.column());
        }
        out.push_str("| model | configuration | no padding | right padding | left padding | holes | top-1 agreement |\n|---|---|---|---|---|---|---|\n");
        for model in &run.models {
            let text = model.family == "text";
            for config in ConfigId::ALL {
                let all: Vec<&Parity> = model
                    .cases
                    .iter()
                    .flat_map(|c| c.parity.iter())
                    .filter(|p| p.config == config)
                    .collect();
                if all.is_empty() {
                    continue;
                }
                // A failure first, else the largest error shown.
                let worst = |padding: &str| -> Option<&Parity> {
                    let of = all.iter().copied().filter(|p| p.padding == padding);
                    let error = |p: &Parity| p.shown_error(text).unwrap_or(0.0);
                    let failed = of.clone().find(|p| p.error.is_some());
                    failed.or_else(|| of.max_by(|a, b| error(a).total_cmp(&error(b))))
                };
                let top1 = all.iter().filter_map(|p| p.top1_agreement).reduce(f64::min);
                let pads: &[&str] = if text {
                    &["none", "right", "left", "holes"]
                } else {
                    &["none"]
                };
                let mut cells: Vec<String> = pads
                    .iter()
                    .map(|pad| parity_cell(worst(pad), text))
                    .collect();
                cells.resize(4, String::new());
                let top1 = match top1 {
                    Some(t) => {
                        let batch = all.first().map_or(0, |p| p.batch);
                        format!("{:.3} of {batch}", t)
                    }
                    None => "".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {top1} |",
                    model.name,
                    config.short(),
                    cells.join(" | ")
                );
            }
        }
        out.push('\n');
        if i > 0 {
            out.push_str("</details>\n\n");
        }
    }
}

pub fn accuracy(out: &mut String, runs: &[BenchRun]) {
    let Some(run) = runs.first() else { return };
    let vision: Vec<&ModelResult> = run.models.iter().filter(|m| m.family == "vision").collect();
    if vision.is_empty() {
        return;
    }
    out.push_str("## Accuracy parity stand-in: top-1 agreement with the original (ViT)\n\n");
    let batch = vision
        .iter()
        .flat_map(|m| m.cases.iter().flat_map(|c| c.parity.iter()))
        .map(|p| p.batch)
        .next()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "The original experiment compared ImageNet top-1 accuracy; no dataset is available here, so this counts, on {batch} generated images, how often each configuration's top class equals the original model's in ONNX Runtime without optimizations ({}).\n",
        run.column()
    );
    table_head(out, &["configuration"], vision.iter().map(|m| &m.name));
    let _ = writeln!(
        out,
        "| {} | 1.000 (reference) |{}",
        ConfigId::OrtDisabled.label(),
        " 1.000 (reference) |".repeat(vision.len().saturating_sub(1))
    );
    for config in ConfigId::ALL
        .into_iter()
        .filter(|c| *c != ConfigId::OrtDisabled)
    {
        let cells: Vec<String> = vision
            .iter()
            .map(|m| {
                m.cases
                    .iter()
                    .flat_map(|c| c.parity.iter())
                    .filter(|p| p.config == config)
                    .filter_map(|p| p.top1_agreement)
                    .reduce(f64::min)
                    .map_or("-".into(), |t| format!("{t:.3}"))
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", config.label(), cells.join(" | "));
    }
    out.push('\n');
}

pub fn profiles(out: &mut String, runs: &[BenchRun]) {
    let with: Vec<&BenchRun> = runs
        .iter()
        .filter(|r| {
            r.models
                .iter()
                .any(|m| m.cases.iter().any(|c| !c.profile.is_empty()))
        })
        .collect();
    if with.is_empty() {
        return;
    }
    out.push_str("## Where the time goes: ONNX Runtime's per-node profile by op type\n\n");
    out.push_str("Kernel time per run (ms) summed by op type, from ONNX Runtime's profiler (`--profile`), largest first; the last row is the wall time of a whole run as the profiler saw it.\n\n");
    for run in with {
        for model in &run.models {
            for case in model.cases.iter().filter(|c| !c.profile.is_empty()) {
                let _ = writeln!(
                    out,
                    "<details><summary>{}: {} {}</summary>\n",
                    run.column(),
                    model.name,
                    case.shape
                );
                table_head(
                    out,
                    &["op type"],
                    case.profile.iter().map(|p| p.config.short()),
                );
                let mut ops: Vec<(String, f64)> = Vec::new();
                for p in &case.profile {
                    for (op, t) in &p.by_op {
                        match ops.iter_mut().find(|(o, _)| o == op) {
                            Some(entry) => entry.1 = entry.1.max(*t),
                            None => ops.push((op.clone(), *t)),
                        }
                    }
                }
                ops.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (op, _) in &ops {
                    let cells: Vec<String> = case
                        .profile
                        .iter()
                        .map(|p| match (p.by_op.get(op), p.nodes_by_op.get(op)) {
                            (Some(t), Some(n)) => {
                                let share = if p.kernel_ms > 0.0 {
                                    100.0 * t / p.kernel_ms
                                } else {
                                    0.0
                                };
                                format!("{} ({share:.0}%, {n} nodes)", ms(Some(*t)))
                            }
                            _ => "".into(),
                        })
                        .collect();
                    let _ = writeln!(out, "| {op} | {} |", cells.join(" | "));
                }
                let totals: Vec<String> = case
                    .profile
                    .iter()
                    .map(|p| {
                        format!(
                            "kernels {} / run {}",
                            ms(Some(p.kernel_ms)),
                            ms(Some(p.run_ms))
                        )
                    })
                    .collect();
                let _ = writeln!(out, "| total | {} |", totals.join(" | "));
                out.push_str("\n</details>\n\n");
            }
        }
    }
}
