//! The markdown of the GPU table (`cargo xtask bench --device cuda`): ONNX Runtime rows with
//! their TF32 and CUDA graph settings, PyTorch rows, and ours against
//! `torch.compile(mode="reduce-overhead")`; refusals, warnings and errors as numbered notes.

use std::fmt::Write as _;

use serde_json::Value;

use super::gpu::{GpuRow, GpuRun};

/// Numbered notes, each text once.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn mark(&mut self, text: &str) -> usize {
        match self.0.iter().position(|n| n == text) {
            Some(i) => i + 1,
            None => {
                self.0.push(text.to_string());
                self.0.len()
            }
        }
    }
}

fn cell(row: Option<&GpuRow>, notes: &mut Notes) -> String {
    let Some(row) = row else {
        return "-".into();
    };
    let mut text = match (
        row.median_ms,
        &row.unavailable,
        &row.capture_refused,
        &row.error,
    ) {
        (Some(m), ..) => format!("{m:.2} ({:.2})", row.min_ms.unwrap_or(f64::NAN)),
        (None, Some(why), ..) => format!("n/a [{}]", notes.mark(why)),
        (None, None, Some(why), _) => {
            format!(
                "capture refused [{}]",
                notes.mark(&format!("capture refused {why}"))
            )
        }
        (None, None, None, Some(e)) => format!("error [{}]", notes.mark(e)),
        _ => "-".into(),
    };
    if let Some(warning) = &row.cpu_shape_warning {
        let _ = write!(text, " ⚠[{}]", notes.mark(warning));
    }
    text
}

/// The PyTorch case a model's shape corresponds to (`bert`, 128) or (`vit`, none).
pub(crate) fn torch_case(model: &str, shape: &str) -> (String, Option<u64>) {
    let kind = if model.contains("vit") { "vit" } else { "bert" };
    let seq = shape.strip_prefix("seq ").and_then(|s| s.parse().ok());
    (kind.to_string(), seq)
}

pub(crate) fn torch_ms(
    torch: &[Value],
    device: &str,
    case: &(String, Option<u64>),
    imp: &str,
    prec: &str,
) -> Option<f64> {
    torch
        .iter()
        .filter(|t| t["device"] == device)
        .flat_map(|t| t["rows"].as_array().into_iter().flatten())
        .find(|r| {
            r["model"] == case.0.as_str()
                && r["seq"].as_u64() == case.1
                && r["impl"] == imp
                && r["precision"] == prec
        })
        .and_then(|r| r["median_ms"].as_f64())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// Renders the GPU page from one or more runs (rows of later runs are appended).
pub fn render(runs: &[GpuRun], extra_notes: &[String]) -> String {
    let mut out = String::new();
    let rows: Vec<&GpuRow> = runs.iter().flat_map(|r| &r.rows).collect();
    let torch: Vec<Value> = runs.iter().flat_map(|r| r.torch.clone()).collect();
    let first = runs.iter().find(|r| !r.rows.is_empty()).or(runs.first());
    let facts = |key: &str| {
        torch
            .iter()
            .find_map(|t| t["machine"][key].as_str().map(String::from))
            .unwrap_or_else(|| "-".into())
    };
    let card = first
        .and_then(|r| r.card.clone())
        .unwrap_or_else(|| facts("card"));
    let driver = first
        .and_then(|r| r.driver.clone())
        .unwrap_or_else(|| facts("driver"));
    let _ = writeln!(out, "## GPU: {card}\n");
    let _ = writeln!(
        out,
        "Card {card}, driver {driver}; ONNX Runtime {} (CUDA execution provider, graph optimizations all); \
         torch {}, transformers {}. Batch 1, median (min) ms of {} runs after {} warm-up runs, inputs and \
         outputs bound on the device (no host copies in the timed call). `use_tf32` and `enable_cuda_graph` \
         are the CUDA provider's options of each column; fp16 rows run with `use_tf32=1`. \
         `transfuse optimize` flags of this build: {}.\n",
        first.map_or("-", |r| r.ort_version.as_str()),
        facts("torch"),
        facts("transformers"),
        first.map_or(0, |r| r.runs),
        first.map_or(0, |r| r.warmup),
        first
            .map(|r| r.transfuse_flags.join(", "))
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "neither --fix-shapes nor --float16".into()),
    );
    let mut notes = Notes::default();
    let _ = writeln!(
        out,
        "| model | shape | variant | fp32, no TF32 | same + CUDA graph | TF32 | TF32 + CUDA graph |\n|---|---|---|---|---|---|---|"
    );
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for r in &rows {
        let key = (r.model.as_str(), r.shape.as_str(), r.variant.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (model, shape, variant) in &keys {
        let find = |tf32: bool, graph: bool| {
            rows.iter()
                .rev()
                .find(|r| {
                    r.model == *model
                        && r.shape == *shape
                        && r.variant == *variant
                        && r.tf32 == tf32
                        && r.cuda_graph == graph
                })
                .copied()
        };
        let fp16 = variant.ends_with("fp16");
        let cells: Vec<String> = [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .map(|(t, g)| {
                if fp16 && !t {
                    "-".into()
                } else {
                    cell(find(t, g), &mut notes)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {model} | {shape} | {variant} | {} |",
            cells.join(" | ")
        );
    }

    let _ = writeln!(
        out,
        "\n### PyTorch\n\nThe same architectures built from transformers configs (BertModel without pooler, \
         ViTForImageClassification, 1000 classes) with random weights; host clock around each call and a \
         `torch.cuda.synchronize()`. `compile` is `torch.compile` in its default mode, `reduce-overhead` its \
         CUDA-graph mode, both over SDPA attention.\n"
    );
    let cpu_threads = torch
        .iter()
        .find(|t| t["device"] == "cpu")
        .and_then(|t| t["machine"]["threads"].as_u64())
        .map_or_else(|| "CPU".into(), |n| format!("CPU, {n} threads"));
    let _ = writeln!(
        out,
        "| model | shape | PyTorch | GPU fp32, no TF32 | GPU TF32 | GPU fp16 | {cpu_threads}, fp32 |\n|---|---|---|---|---|---|---|"
    );
    let cases: Vec<(String, Option<u64>)> = torch
        .iter()
        .flat_map(|t| t["rows"].as_array().into_iter().flatten())
        .map(|r| {
            (
                r["model"].as_str().unwrap_or("-").to_string(),
                r["seq"].as_u64(),
            )
        })
        .fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        });
    for case in &cases {
        for imp in ["eager", "sdpa", "compile", "compile-reduce-overhead"] {
            let shape = case
                .1
                .map_or_else(|| "224x224".into(), |s| format!("seq {s}"));
            let _ = writeln!(
                out,
                "| {} | {shape} | {imp} | {} | {} | {} | {} |",
                case.0,
                ms(torch_ms(&torch, "cuda", case, imp, "fp32")),
                ms(torch_ms(&torch, "cuda", case, imp, "tf32")),
                ms(torch_ms(&torch, "cuda", case, imp, "fp16")),
                ms(torch_ms(&torch, "cpu", case, imp, "fp32")),
            );
        }
    }

    let _ = writeln!(
        out,
        "\n### Ours against torch.compile(mode=\"reduce-overhead\")\n\n\
         Ours: the fastest of `ours` and `ours-fixed` with a CUDA graph (TF32), and of `ours-fp16` and \
         `ours-fixed-fp16` with a CUDA graph.\n\n\
         | model | shape | ours, TF32 + graph | torch RO, TF32 | ratio | ours fp16 + graph | torch RO, fp16 | ratio |\n|---|---|---|---|---|---|---|---|"
    );
    let mut shapes: Vec<(&str, &str)> = Vec::new();
    for (m, s, _) in &keys {
        if !shapes.contains(&(*m, *s)) {
            shapes.push((*m, *s));
        }
    }
    for (model, shape) in shapes {
        let best = |variants: [&str; 2]| {
            rows.iter()
                .filter(|r| r.model == model && r.shape == shape && r.tf32 && r.cuda_graph)
                .filter(|r| variants.contains(&r.variant.as_str()))
                .filter_map(|r| r.median_ms)
                .min_by(f64::total_cmp)
        };
        let ours = best(["ours", "ours-fixed"]);
        let ours16 = best(["ours-fp16", "ours-fixed-fp16"]);
        let case = torch_case(model, shape);
        let ro = torch_ms(&torch, "cuda", &case, "compile-reduce-overhead", "tf32");
        let ro16 = torch_ms(&torch, "cuda", &case, "compile-reduce-overhead", "fp16");
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {model} | {shape} | {} | {} | {} | {} | {} | {} |",
            ms(ours),
            ms(ro),
            ratio(ours, ro),
            ms(ours16),
            ms(ro16),
            ratio(ours16, ro16)
        );
    }

    let _ = writeln!(out, "\n### Notes\n");
    let _ = writeln!(
        out,
        "- TensorRT is not measured: its Python package fetches its libraries from outside the package \
         registries at install time, and the GPU machine has no network."
    );
    let _ = writeln!(
        out,
        "- ⚠ marks ONNX Runtime's warning that shape computations run on the CPU under the CUDA graph: \
         the replayed graph is then valid only while those CPU-side values stay the same."
    );
    for note in runs.iter().flat_map(|r| &r.notes).chain(extra_notes) {
        let _ = writeln!(out, "- {note}");
    }
    for (i, note) in notes.0.iter().enumerate() {
        let one_line = note.replace('\n', " ");
        let _ = writeln!(out, "- [{}] {one_line}", i + 1);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(variant: &str, graph: bool) -> GpuRow {
        GpuRow {
            model: "bert_eager_ts_op14".into(),
            shape: "seq 128".into(),
            variant: variant.into(),
            tf32: true,
            cuda_graph: graph,
            ..GpuRow::default()
        }
    }

    #[test]
    fn refusals_warnings_and_ratios_reach_the_page() {
        let mut refused = row("raw", true);
        refused.capture_refused = Some("at session creation: not all nodes on CUDA".into());
        let mut warned = row("peer", true);
        warned.median_ms = Some(1.5);
        warned.min_ms = Some(1.4);
        warned.cpu_shape_warning = Some("shape massaging nodes".into());
        let mut ours = row("ours", true);
        ours.median_ms = Some(0.8);
        ours.min_ms = Some(0.75);
        let missing = GpuRow {
            unavailable: Some("not available in this build".into()),
            ..row("ours-fixed", true)
        };
        let torch = serde_json::json!({
            "device": "cuda",
            "machine": {"torch": "2.11.0", "card": "H200"},
            "rows": [{"model": "bert", "seq": 128, "impl": "compile-reduce-overhead",
                      "precision": "tf32", "median_ms": 1.0}]
        });
        let run = GpuRun {
            ort_version: "1.31.1".into(),
            rows: vec![refused, warned, ours, missing],
            torch: vec![torch],
            ..GpuRun::default()
        };
        let page = render(&[run], &[]);
        let line = |variant: &str| {
            page.lines()
                .find(|l| l.contains(&format!("| {variant} |")))
                .unwrap()
                .to_string()
        };
        assert!(
            line("raw").ends_with("| - | capture refused [1] |"),
            "{page}"
        );
        assert!(line("peer").ends_with("| 1.50 (1.40) ⚠[2] |"), "{page}");
        assert!(line("ours-fixed").ends_with("| n/a [3] |"), "{page}");
        assert!(page.contains("[1] capture refused at session creation: not all nodes on CUDA"));
        assert!(
            page.contains("| bert_eager_ts_op14 | seq 128 | 0.80 | 1.00 | 0.80x |"),
            "{page}"
        );
        assert!(page.contains("torch 2.11.0"));
        assert!(page.contains("TensorRT is not measured"));
    }
}
