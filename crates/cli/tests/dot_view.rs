//! `transfuse optimize --dot`: nodes grouped by layer, large graphs collapsed into one box
//! per layer unless `--dot-full`, an SVG beside the view when Graphviz is installed, and a
//! note saying how to render it when it is not.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use transfuse_ir::Model;

mod support;
use support::tiny;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `transfuse optimize` with `args`; with `path` set, that is the whole of `PATH` (a
/// directory without Graphviz, or with a stand-in `dot`).
fn optimize(args: &[&str], path: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_transfuse"));
    cmd.arg("optimize").args(args);
    if let Some(dir) = path {
        cmd.env("PATH", dir);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn graphviz_installed() -> bool {
    Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Node boxes of a DOT text: `n<k>` (one node) and `c<k>` (a collapsed layer) declarations.
fn boxes(dot: &str) -> Vec<&str> {
    dot.lines()
        .map(str::trim)
        .filter(|l| !l.contains("->"))
        .filter_map(|l| l.split_once(" [label=").map(|(id, _)| id))
        .filter(|id| {
            let mut chars = id.chars();
            matches!(chars.next(), Some('n' | 'c'))
                && !chars.as_str().is_empty()
                && chars.all(|c| c.is_ascii_digit())
        })
        .collect()
}

/// The lines of each `cluster_<k>` subgraph, in order.
fn clusters(dot: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut inside = false;
    for line in dot.lines() {
        if line.starts_with("  subgraph cluster_") {
            out.push(Vec::new());
            inside = true;
        } else if line == "  }" {
            inside = false;
        } else if inside {
            out.last_mut().unwrap().push(line);
        }
    }
    out
}

#[test]
fn fused_nodes_sit_in_the_cluster_of_their_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (out, dot) = (dir.path().join("m.onnx"), dir.path().join("g.dot"));
    let run = optimize(
        &[
            "--no-verify",
            "-o",
            s(&out),
            "--dot",
            s(&dot),
            s(&tiny("bert_sdpa_ts_op17.onnx")),
        ],
        Some(dir.path()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&dot).unwrap();
    let nodes = Model::load(&out).unwrap().graph.nodes.len();
    assert!(
        nodes <= transfuse_ir::DEFAULT_COLLAPSE_ABOVE,
        "{nodes} nodes: this view should not collapse"
    );
    assert_eq!(boxes(&text).len(), nodes, "{text}");
    let clusters = clusters(&text);
    assert_eq!(clusters.len(), 2, "{text}");
    for (k, lines) in clusters.iter().enumerate() {
        assert_eq!(lines[0], format!("    label=\"layer.{k}\";"), "{text}");
        for op in ["Attention", "SkipLayerNormalization", "BiasGelu"] {
            let count = lines
                .iter()
                .filter(|l| l.contains(&format!("[label=\"{op}\\n(com.microsoft)\"")))
                .count();
            let expected = if op == "SkipLayerNormalization" { 2 } else { 1 };
            assert_eq!(count, expected, "{op} in layer.{k}:\n{text}");
        }
    }
    // The embedding's fused op is outside both layers.
    let outside = text.split("  subgraph").next().unwrap();
    assert!(
        outside.contains("[label=\"EmbedLayerNormalization\\n(com.microsoft)\""),
        "{text}"
    );
}

#[test]
fn large_graphs_collapse_into_one_box_per_layer_unless_dot_full() {
    let dir = tempfile::tempdir().unwrap();
    let input = tiny("roberta_sdpa_ts_op14.onnx");
    let nodes = Model::load(&input).unwrap().graph.nodes.len();
    assert!(
        nodes > transfuse_ir::DEFAULT_COLLAPSE_ABOVE,
        "{nodes} nodes: too few to collapse"
    );
    let (collapsed, full) = (dir.path().join("c.dot"), dir.path().join("f.dot"));
    for (dot, extra) in [(&collapsed, None), (&full, Some("--dot-full"))] {
        let out = dir.path().join("m.onnx");
        let mut args = vec!["--fusions", "none", "--no-verify", "-o", s(&out)];
        args.extend(["--dot", s(dot)]);
        args.extend(extra);
        args.push(s(&input));
        let run = optimize(&args, Some(dir.path()));
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let collapsed = std::fs::read_to_string(&collapsed).unwrap();
    let full = std::fs::read_to_string(&full).unwrap();

    assert_eq!(boxes(&full).len(), nodes, "{full}");
    assert_eq!(clusters(&full).len(), 2, "{full}");
    let layer_boxes: Vec<&str> = collapsed
        .lines()
        .filter(|l| l.starts_with("  c") && !l.contains("->"))
        .collect();
    assert_eq!(layer_boxes.len(), 2, "{collapsed}");
    for (k, line) in layer_boxes.iter().enumerate() {
        assert!(
            line.starts_with(&format!("  c{k} [label=\"layer.{k} \u{2014} "))
                && line.contains(" nodes\\n"),
            "{line}"
        );
    }
    assert!(!collapsed.contains("subgraph"), "{collapsed}");
    assert!(boxes(&collapsed).len() < boxes(&full).len());
    // Each pair of endpoints is joined once.
    let mut edges: Vec<&str> = collapsed
        .lines()
        .filter_map(|l| l.split_once(" [").map(|(e, _)| e))
        .filter(|e| e.contains(" -> "))
        .collect();
    let all = edges.len();
    edges.sort_unstable();
    edges.dedup();
    assert_eq!(edges.len(), all, "{collapsed}");
    assert!(collapsed.contains("  c0 -> c1 ["), "{collapsed}");
}

#[test]
fn dot_full_needs_dot() {
    let run = optimize(&["--dot-full", s(&tiny("bert_sdpa_ts_op17.onnx"))], None);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--dot <DOT>"), "{}", run.stderr);
}

#[test]
fn the_view_is_rendered_to_svg_beside_it_when_graphviz_is_installed() {
    if !graphviz_installed() {
        eprintln!("Graphviz is not installed: the SVG is not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (out, dot) = (dir.path().join("m.onnx"), dir.path().join("view.dot"));
    let run = optimize(
        &[
            "--no-verify",
            "-o",
            s(&out),
            "--dot",
            s(&dot),
            s(&tiny("vit_sdpa_ts_op17.onnx")),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let svg = std::fs::read_to_string(dir.path().join("view.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("cluster_0") && svg.contains("Attention"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["m.onnx", "view.dot", "view.svg"]);
}

#[test]
fn without_graphviz_a_note_says_how_to_render_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let (out, dot) = (dir.path().join("m.onnx"), dir.path().join("g.dot"));
    let input = tiny("vit_sdpa_ts_op17.onnx");
    let args = ["--no-verify", "-o", s(&out), "--dot", s(&dot), s(&input)];
    let run = optimize(&args, Some(dir.path()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let svg = dir.path().join("g.svg");
    assert!(
        run.stderr.contains(&format!(
            "Graphviz is not installed: render the view with `dot -Tsvg {} -o {}`",
            dot.display(),
            svg.display()
        )),
        "{}",
        run.stderr
    );
    assert!(dot.exists() && !svg.exists());

    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    let run = optimize(&quiet, Some(dir.path()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.is_empty() && run.stderr.is_empty(),
        "{}",
        run.stderr
    );
    assert!(dot.exists() && !svg.exists());
}

#[cfg(unix)]
#[test]
fn a_failing_graphviz_is_a_warning_and_the_view_is_kept() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("dot");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, dot) = (dir.path().join("m.onnx"), dir.path().join("g.dot"));
    let input = tiny("vit_sdpa_ts_op17.onnx");
    let args = ["--no-verify", "-o", s(&out), "--dot", s(&dot), s(&input)];
    // A script just written can be briefly busy while another test thread forks.
    let mut run = optimize(&args, Some(&bin));
    for _ in 0..5 {
        if !run.stderr.contains("Text file busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        run = optimize(&args, Some(&bin));
    }
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "warning: {} was not rendered to SVG: dot failed",
            dot.display()
        )) && run.stderr.contains("syntax error in line 1"),
        "{}",
        run.stderr
    );
    assert!(out.exists() && dot.exists() && !dir.path().join("g.svg").exists());
}
