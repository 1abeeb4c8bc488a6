//! The published chart: `docs/benchmarks.svg`, one panel per run, one group of bars per case,
//! each bar a configuration's median latency relative to ONNX Runtime without optimizations.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::results::{BenchRun, ConfigId};

fn color(config: ConfigId) -> RGBColor {
    match config {
        ConfigId::OrtDisabled => RGBColor(170, 170, 170),
        ConfigId::OrtAll => RGBColor(66, 114, 196),
        ConfigId::Peer => RGBColor(237, 125, 49),
        ConfigId::OursNoAttention => RGBColor(150, 205, 120),
        ConfigId::Ours => RGBColor(40, 140, 60),
        ConfigId::Openvino => RGBColor(130, 90, 170),
    }
}

/// Splits `bert_eager_ts_op14` into `bert` and `eager_ts_op14` for two-line labels.
fn split_name(model: &str) -> (String, String) {
    for family in ["timm_vit", "distilbert", "roberta", "bert", "vit"] {
        if let Some(rest) = model.strip_prefix(family) {
            return (family.to_string(), rest.trim_start_matches('_').to_string());
        }
    }
    (model.to_string(), String::new())
}

/// One bar group: the case's label lines and each configuration's relative latency.
type Group = ([String; 3], Vec<(ConfigId, f64)>);

fn groups(run: &BenchRun) -> Vec<Group> {
    let mut out = Vec::new();
    for model in &run.models {
        for case in &model.cases {
            let median = |c: ConfigId| case.median_ms(c);
            let Some(base) = median(ConfigId::OrtDisabled).filter(|b| *b > 0.0) else {
                continue;
            };
            let bars: Vec<(ConfigId, f64)> = ConfigId::ALL
                .iter()
                .filter_map(|&c| Some((c, median(c)? / base)))
                .collect();
            let (family, variant) = split_name(&model.name);
            out.push(([family, variant, case.shape.clone()], bars));
        }
    }
    out
}

/// Draws the chart of `runs` into `path` (SVG).
pub fn draw(runs: &[BenchRun], path: &Path) -> Result<()> {
    let panels: Vec<(String, Vec<Group>)> = runs
        .iter()
        .map(|r| {
            (
                if r.provider == "cpu" {
                    format!(
                        "{}: {}, {} logical CPUs, ONNX Runtime {}",
                        r.column(),
                        r.machine.cpu_model,
                        r.machine.logical_cpus,
                        r.ort_version
                    )
                } else {
                    format!(
                        "{}: ONNX Runtime {} ({})",
                        r.column(),
                        r.ort_version,
                        r.provider
                    )
                },
                groups(r),
            )
        })
        .filter(|(_, g)| !g.is_empty())
        .collect();
    if panels.is_empty() {
        return Err(anyhow!("no latency to chart"));
    }
    let panel_height = 380u32;
    let width = 1400u32;
    let root =
        SVGBackend::new(path, (width, panel_height * panels.len() as u32)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((panels.len(), 1));
    for ((title, groups), area) in panels.iter().zip(areas.iter()) {
        let top = groups
            .iter()
            .flat_map(|(_, bars)| bars.iter().map(|(_, v)| *v))
            .fold(1.2f64, f64::max)
            * 1.08;
        let n = groups.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .margin_right(250)
            .x_label_area_size(58)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n, 0f64..top)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("median latency / ORT without optimizations")
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 1.0), (n, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| err(&e))?;
        for config in ConfigId::ALL {
            let style = color(config).filled();
            let mut bars = Vec::new();
            for (g, (_, values)) in groups.iter().enumerate() {
                let count = values.len().max(1) as f64;
                let Some(slot) = values.iter().position(|(c, _)| *c == config) else {
                    continue;
                };
                let width = 0.84 / count;
                let x0 = g as f64 + 0.08 + slot as f64 * width;
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.92, values[slot].1)],
                    style,
                ));
            }
            if bars.is_empty() {
                continue;
            }
            chart.draw_series(bars).map_err(|e| err(&e))?;
        }
        // The legend, in the right margin of every panel.
        let present: Vec<ConfigId> = ConfigId::ALL
            .into_iter()
            .filter(|c| groups.iter().any(|(_, v)| v.iter().any(|(k, _)| k == c)))
            .collect();
        let (right, top_px) = chart.backend_coord(&(n, top));
        let legend_style =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (k, config) in present.iter().enumerate() {
            let y = top_px + 10 + 20 * k as i32;
            root.draw(&Rectangle::new(
                [(right + 16, y - 6), (right + 28, y + 6)],
                color(*config).filled(),
            ))
            .map_err(|e| err(&e))?;
            root.draw(&Text::new(
                config.short(),
                (right + 34, y),
                legend_style.clone(),
            ))
            .map_err(|e| err(&e))?;
        }
        let label_style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (g, (lines, _)) in groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            for (k, line) in lines.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (x, y + 6 + 15 * k as i32),
                    label_style.clone(),
                ))
                .map_err(|e| err(&e))?;
            }
        }
    }
    root.present()
        .map_err(|e| err(&e))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
