//! What the published page shows after the GPU table: follow-up GPU runs (saved in
//! `xtask/bench/results/gpu/followup/*.json`, each a [`GpuRun`] whose notes say what changed)
//! and the kernel profile (`xtask/bench/results/gpu/profile/kernels.json`, written by
//! `xtask/device/gpu-profile.sh`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::gpu::{GpuRow, GpuRun};
use crate::gpu_report::{torch_case, torch_ms};
use crate::publish::{json_files, read_json};

/// One profiled model and setting (`gpu_profile.py --json`).
#[derive(Debug, Deserialize)]
struct ProfileEntry {
    label: String,
    setting: String,
    wall_median_ms: f64,
    kernel_ms: f64,
    kernels: f64,
    kinds_ms: std::collections::BTreeMap<String, f64>,
}

/// The profile file: the card, the entries and what they show.
#[derive(Debug, Deserialize)]
struct Profile {
    card: String,
    entries: Vec<ProfileEntry>,
    #[serde(default)]
    notes: Vec<String>,
}

/// Kernel kinds in the order of the table's columns.
const KINDS: [&str; 7] = [
    "gemm",
    "attention",
    "layernorm",
    "gelu",
    "transpose/copy",
    "elementwise",
    "other",
];

/// The follow-up runs and the profile under `dir` (`.../results/gpu`), rendered; `torch`:
/// the PyTorch rows of the main table, for the ratios. Empty when there are none.
pub fn saved_section(dir: &Path, torch: &[Value]) -> Result<String> {
    let mut out = String::new();
    let followups = json_files(&dir.join("followup"));
    if !followups.is_empty() {
        out.push_str("\n### Follow-up runs\n\n");
        out.push_str(
            "Later runs on the same machine type, with the code of their note. Ours: TF32 and a \
             CUDA graph (fp16 rows: fp16 and a CUDA graph), median (min) ms, against \
             torch.compile(mode=\"reduce-overhead\") at the same precision, each ratio twice: \
             against PyTorch measured in the same session where the run has it, and against the \
             main table's PyTorch rows (an earlier run). PyTorch's reduce-overhead medians \
             vary between and within sessions far more than ours (see the notes of runs 3 to \
             5).\n\n",
        );
        for (k, path) in followups.iter().enumerate() {
            let run: GpuRun = read_json(path, "a GPU result file")?;
            render_followup(&mut out, k + 1, &run, torch);
        }
    }
    let profile = dir.join("profile").join("kernels.json");
    if profile.is_file() {
        render_profile(&mut out, &read_json(&profile, "a kernel profile")?);
    }
    Ok(out)
}

fn fastest<'a>(run: &'a GpuRun, model: &str, shape: &str, variant: &str) -> Option<&'a GpuRow> {
    run.rows.iter().find(|r| {
        r.model == model && r.shape == shape && r.variant == variant && r.tf32 && r.cuda_graph
    })
}

fn cell(row: Option<&GpuRow>) -> String {
    match row.and_then(|r| Some((r.median_ms?, r.min_ms?))) {
        Some((median, min)) => format!("{median:.2} ({min:.2})"),
        None => "-".into(),
    }
}

/// torch.compile(mode="reduce-overhead")'s median at `prec`: from this run and from the main
/// table.
struct TorchReference {
    this_run: Option<f64>,
    main_table: Option<f64>,
}

impl TorchReference {
    fn new(run: &GpuRun, main: &[Value], case: &(String, Option<u64>), prec: &str) -> Self {
        let find = |torch: &[Value]| torch_ms(torch, "cuda", case, "compile-reduce-overhead", prec);
        TorchReference {
            this_run: find(&run.torch),
            main_table: find(main),
        }
    }

    /// `this run / main table`, `-` for a missing one.
    fn cell(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        format!("{} / {}", ms(self.this_run), ms(self.main_table))
    }

    /// Ours over each reference, `this run / main table`.
    fn ratios(&self, row: Option<&GpuRow>) -> String {
        let ours = row.and_then(|r| r.median_ms);
        let ratio = |torch: Option<f64>| match (ours, torch) {
            (Some(ours), Some(torch)) if torch > 0.0 => format!("{:.2}x", ours / torch),
            _ => "-".into(),
        };
        format!("{} / {}", ratio(self.this_run), ratio(self.main_table))
    }
}

fn render_followup(out: &mut String, index: usize, run: &GpuRun, torch: &[Value]) {
    let _ = writeln!(
        out,
        "**Run {index}** ({}, {} runs each).",
        run.started_utc, run.runs
    );
    for note in &run.notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "\n| model | shape | ours-fixed | torch RO, TF32: this run / main table | ratio | ours-fixed-fp16 | torch RO, fp16: this run / main table | ratio |\n|---|---|---|---|---|---|---|---|"
    );
    let mut cases: Vec<(&str, &str)> = Vec::new();
    for r in &run.rows {
        if !cases.contains(&(r.model.as_str(), r.shape.as_str())) {
            cases.push((r.model.as_str(), r.shape.as_str()));
        }
    }
    for (model, shape) in cases {
        let case = torch_case(model, shape);
        let fixed = fastest(run, model, shape, "ours-fixed");
        let fp16 = fastest(run, model, shape, "ours-fixed-fp16");
        let tf32_torch = TorchReference::new(run, torch, &case, "tf32");
        let fp16_torch = TorchReference::new(run, torch, &case, "fp16");
        let _ = writeln!(
            out,
            "| {model} | {shape} | {} | {} | {} | {} | {} | {} |",
            cell(fixed),
            tf32_torch.cell(),
            tf32_torch.ratios(fixed),
            cell(fp16),
            fp16_torch.cell(),
            fp16_torch.ratios(fp16),
        );
    }
    out.push('\n');
}

fn render_profile(out: &mut String, profile: &Profile) {
    let _ = writeln!(out, "\n### Where the GPU time goes ({})\n", profile.card);
    for note in &profile.notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = write!(
        out,
        "\n| what | setting | wall, no graph | kernels, ms/run | launches/run |"
    );
    for kind in KINDS {
        let _ = write!(out, " {kind} |");
    }
    let _ = write!(out, "\n|---|---|---|---|---|");
    out.push_str(&"---|".repeat(KINDS.len()));
    out.push('\n');
    for e in &profile.entries {
        let _ = write!(
            out,
            "| {} | {} | {:.2} | {:.3} | {:.0} |",
            e.label, e.setting, e.wall_median_ms, e.kernel_ms, e.kernels
        );
        for kind in KINDS {
            let ms = e.kinds_ms.get(kind).copied().unwrap_or(0.0);
            let _ = write!(out, " {ms:.3} |");
        }
        out.push('\n');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(variant: &str, median: f64) -> GpuRow {
        GpuRow {
            model: "vit_sdpa_ts_op17".into(),
            shape: "224x224".into(),
            variant: variant.into(),
            tf32: true,
            cuda_graph: true,
            median_ms: Some(median),
            min_ms: Some(median - 0.01),
            ..GpuRow::default()
        }
    }

    #[test]
    fn followups_and_profile_reach_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let followup = dir.path().join("followup");
        std::fs::create_dir_all(&followup).unwrap();
        let run = GpuRun {
            started_utc: "2026-01-01".into(),
            card: None,
            driver: None,
            ort_version: "1".into(),
            runs: 300,
            warmup: 10,
            transfuse_flags: vec![],
            rows: vec![row("ours-fixed", 1.0), row("ours-fixed-fp16", 0.5)],
            torch: vec![],
            notes: vec!["what changed".into()],
        };
        std::fs::write(
            followup.join("1.json"),
            serde_json::to_string(&run).unwrap(),
        )
        .unwrap();
        // A second run with its own PyTorch rows.
        let same_session = serde_json::json!({"device": "cuda", "rows": [
            {"model": "vit", "seq": null, "impl": "compile-reduce-overhead", "precision": "tf32", "median_ms": 2.0},
            {"model": "vit", "seq": null, "impl": "compile-reduce-overhead", "precision": "fp16", "median_ms": 1.25}]});
        let run2 = GpuRun {
            torch: vec![same_session],
            notes: vec!["with torch".into()],
            ..run
        };
        std::fs::write(
            followup.join("2.json"),
            serde_json::to_string(&run2).unwrap(),
        )
        .unwrap();
        let torch = serde_json::json!({"device": "cuda", "rows": [
            {"model": "vit", "seq": null, "impl": "compile-reduce-overhead", "precision": "tf32", "median_ms": 1.25},
            {"model": "vit", "seq": null, "impl": "compile-reduce-overhead", "precision": "fp16", "median_ms": 1.0}]});
        std::fs::create_dir_all(dir.path().join("profile")).unwrap();
        let profile = serde_json::json!({"card": "H", "notes": ["kernel-bound"], "entries": [
            {"label": "ort vit", "setting": "fp32", "wall_median_ms": 1.2, "kernel_ms": 0.96,
             "kernels": 177.0, "kinds_ms": {"gemm": 0.75}, "heaviest": []}]});
        std::fs::write(
            dir.path().join("profile").join("kernels.json"),
            profile.to_string(),
        )
        .unwrap();
        let page = saved_section(dir.path(), &[torch]).unwrap();
        assert!(page.contains("- what changed"), "{page}");
        assert!(
            page.contains(
                "| vit_sdpa_ts_op17 | 224x224 | 1.00 (0.99) | - / 1.25 | - / 0.80x | 0.50 (0.49) | - / 1.00 | - / 0.50x |"
            ),
            "{page}"
        );
        assert!(page.contains("- with torch"), "{page}");
        assert!(
            page.contains(
                "| vit_sdpa_ts_op17 | 224x224 | 1.00 (0.99) | 2.00 / 1.25 | 0.50x / 0.80x | 0.50 (0.49) | 1.25 / 1.00 | 0.40x / 0.50x |"
            ),
            "{page}"
        );
        assert!(page.contains("- kernel-bound"), "{page}");
        assert!(
            page.contains("| ort vit | fp32 | 1.20 | 0.960 | 177 | 0.750 |"),
            "{page}"
        );
    }
}
