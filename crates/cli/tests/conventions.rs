//! The conventions of a command-line tool: the `--fusions` grammar, where output goes,
//! exit statuses, plain error messages, the report's and the model's provenance.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use transfuse_ir::Model;

mod support;
use support::tiny;

fn transfuse() -> Command {
    Command::cargo_bin("transfuse").unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn optimize(dir: &Path, extra: &[&str]) -> Run {
    run(transfuse()
        .arg("optimize")
        .arg(tiny("bert_sdpa_ts_op17.onnx"))
        .arg("-o")
        .arg(dir.join("m.onnx"))
        .args(extra))
}

fn op_types(path: &Path) -> Vec<String> {
    Model::load(path)
        .unwrap()
        .graph
        .nodes
        .iter()
        .map(|n| n.op_type.clone())
        .collect()
}

#[test]
fn a_leading_minus_means_every_fusion_but_that_one() {
    for form in [
        &["--fusions", "-attention"][..],
        &["--fusions=-attention"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = optimize(dir.path(), form);
        assert_eq!(r.code, 0, "{form:?}: {}", r.stderr);
        let ops = op_types(&dir.path().join("m.onnx"));
        assert!(!ops.iter().any(|o| o == "Attention"), "{ops:?}");
        assert!(ops.iter().any(|o| o == "SkipLayerNormalization"), "{ops:?}");
    }
}

#[test]
fn malformed_fusion_lists_are_usage_errors_and_write_nothing() {
    for bad in ["", "all,none", "gelu,fancy"] {
        let dir = tempfile::tempdir().unwrap();
        let r = optimize(dir.path(), &["--fusions", bad]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("valid: all, none, layernorm"),
            "{bad:?}: {}",
            r.stderr
        );
        assert!(files_in(dir.path()).is_empty());
    }
}

#[test]
fn a_left_out_fusion_another_one_needs_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize(dir.path(), &["--fusions", "-gelu"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("'gelu' is left out, but 'biasgelu' needs its rules"))
            .count(),
        1,
        "{}",
        r.stderr
    );
    let r = optimize(dir.path(), &["--fusions", "-gelu", "--quiet"]);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.len()), (0, "", 0));
}

#[test]
fn the_model_goes_to_stdout_with_dash() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(transfuse()
        .arg("optimize")
        .arg(tiny("bert_sdpa_ts_op17.onnx"))
        .args(["-o", "-"])
        .current_dir(dir.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(files_in(dir.path()).is_empty(), "no file named '-'");
    let model = Model::from_bytes(r.stdout.clone().into(), None).unwrap();
    assert!(model.graph.nodes.iter().any(|n| n.op_type == "Attention"));
    assert!(
        r.stderr.contains("-> stdout"),
        "the summary goes to stderr: {}",
        r.stderr
    );
}

#[test]
fn the_report_goes_to_stdout_with_dash_and_names_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize(dir.path(), &["--report", "-", "--fusions", "-attention"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(json["tool"], "transfuse");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["fusions_asked"], "-attention");
    assert!(
        json["input"]
            .as_str()
            .unwrap()
            .ends_with("bert_sdpa_ts_op17.onnx")
    );
    assert!(json["output"].as_str().unwrap().ends_with("m.onnx"));
    assert!(json["ops_before"].is_object() && json["fused"].is_object());
    let cases = json["verification"]["cases"].as_array().unwrap();
    assert!(
        cases[0]["inputs"]
            .as_str()
            .unwrap()
            .contains("right, left and hole padding"),
        "{cases:?}"
    );
    assert!(
        r.stderr.contains("fused op"),
        "summary on stderr: {}",
        r.stderr
    );
    assert_eq!(files_in(dir.path()), vec!["m.onnx"]);
    let model = Model::load(dir.path().join("m.onnx")).unwrap();
    assert_eq!(model.producer_name, "transfuse");
    assert_eq!(model.producer_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(model.metadata("original_producer"), Some("pytorch"));
}

#[test]
fn quiet_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize(dir.path(), &["--quiet"]);
    assert_eq!((r.code, r.stderr.as_str(), r.stdout.len()), (0, "", 0));
    assert_eq!(files_in(dir.path()), vec!["m.onnx"]);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // stdout is a pipe whose reader is gone before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' optimize '{}' -o - 2>'{}' | true; echo ${{PIPESTATUS[0]:-}}",
            env!("CARGO_BIN_EXE_transfuse"),
            tiny("bert_sdpa_ts_op17.onnx").display(),
            dir.path().join("err").display()
        ))
        .output()
        .unwrap();
    assert!(status.status.success());
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "141");
    let stderr = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
    assert_eq!(files_in(dir.path()), vec!["err"]);
}

#[test]
fn unreadable_inputs_get_plain_messages_and_status_3() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize(dir.path(), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(transfuse().arg("optimize").arg(dir.path()));
    assert_eq!(r.code, 3);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: {} is a directory, not a model file",
            dir.path().display()
        )
    );
    let r = run(transfuse()
        .arg("optimize")
        .arg(dir.path().join("nope.onnx")));
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("nope.onnx does not exist"),
        "{}",
        r.stderr
    );
    // A file that is not a model: each cause once.
    std::fs::write(dir.path().join("junk.onnx"), [0xff_u8; 64]).unwrap();
    let r = run(transfuse()
        .arg("optimize")
        .arg(dir.path().join("junk.onnx")));
    assert_eq!(r.code, 3, "{}", r.stderr);
    let line = r.stderr.trim();
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "repeated cause in {line}");
    }
}

#[test]
fn an_unwritable_report_fails_before_the_model_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let r = optimize(
        dir.path(),
        &["--report", dir.path().join("file/r.json").to_str().unwrap()],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: cannot create"), "{}", r.stderr);
    assert_eq!(files_in(dir.path()), vec!["file"]);
    let r = optimize(dir.path(), &["--report", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("it is a directory"), "{}", r.stderr);
    assert_eq!(files_in(dir.path()), vec!["file"]);
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    let r = run(transfuse().args(["optimize", "--bogus"]));
    assert_eq!(r.code, 2);
    let r = run(transfuse().args(["optimize", "--help"]));
    assert_eq!(r.code, 0);
    let help = String::from_utf8_lossy(&r.stdout);
    assert!(help.contains("Exit status:") && help.contains("3    an input could not be read"));
}

#[test]
fn model_type_is_accepted_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let r = optimize(dir.path(), &["--model-type", "bert"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("--model-type bert is ignored"),
        "{}",
        r.stderr
    );
}
