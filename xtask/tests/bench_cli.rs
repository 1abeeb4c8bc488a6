//! `cargo xtask bench` end to end on the bundled tiny models (ONNX Runtime needed; the peer
//! and OpenVINO are left out so the test needs no Python packages).

use std::path::PathBuf;
use std::process::Command;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/models/tiny")
        .join(format!("{name}.onnx"))
}

#[test]
fn bench_measures_publishes_and_merges() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("run.json");
    let markdown = dir.path().join("page.md");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .arg(tiny("bert_eager_ts_op14"))
        .arg(tiny("vit_sdpa_ts_op17"))
        .args([
            "--seqs",
            "8",
            "--rounds",
            "3",
            "--warmup",
            "1",
            "--no-peer",
            "--no-openvino",
            "--profile",
        ])
        .args(["--profile-runs", "2", "--gap-ms", "0", "--no-saved"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");

    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(run["threads"], 2);
    assert_eq!(run["provider"], "cpu");
    assert!(
        run["ort_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    assert!(
        !run["machine"]["cpu_model"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    let models = run["models"].as_array().expect("models");
    assert_eq!(models.len(), 2);
    for model in models {
        let case = &model["cases"][0];
        for config in ["ort_disabled", "ort_all"] {
            let latency = case["latency"]
                .as_array()
                .expect("latency")
                .iter()
                .find(|l| l["config"] == config)
                .expect(config);
            assert_eq!(
                latency["samples_ms"].as_array().map(Vec::len),
                Some(3),
                "{config}: {latency}"
            );
            assert!(latency["median_ms"].as_f64().is_some_and(|m| m > 0.0));
        }
        // transfuse is either measured or its failure recorded.
        let ours = case["latency"]
            .as_array()
            .expect("latency")
            .iter()
            .find(|l| l["config"] == "ours")
            .expect("ours");
        assert!(
            ours["median_ms"].is_number() || ours["error"].is_string(),
            "{ours}"
        );
        assert!(!case["profile"].as_array().expect("profile").is_empty());
    }
    let text = &models[0];
    assert_eq!(text["family"], "text");
    let paddings: Vec<&str> = text["cases"][0]["parity"]
        .as_array()
        .expect("parity")
        .iter()
        .filter_map(|p| p["padding"].as_str())
        .collect();
    for padding in ["none", "right", "left", "holes"] {
        assert!(
            paddings.contains(&padding),
            "{padding} missing: {paddings:?}"
        );
    }
    let ort_all_left = text["cases"][0]["parity"]
        .as_array()
        .expect("parity")
        .iter()
        .find(|p| p["config"] == "ort_all" && p["padding"] == "left")
        .expect("ORT all, left padding");
    assert!(
        ort_all_left["max_abs_real"]
            .as_f64()
            .is_some_and(|e| e < 1e-4),
        "{ort_all_left}"
    );
    let vision = &models[1];
    assert_eq!(vision["cases"][0]["shape"], "32x32");

    let page = std::fs::read_to_string(&markdown).expect("markdown");
    assert!(page.contains("## Latency") && page.contains("bert_eager_ts_op14"));
    assert!(markdown.with_extension("svg").is_file());

    // Publishing from saved results alone.
    let again = dir.path().join("again.md");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--render-only", "--no-saved", "--merge"])
        .arg(&json)
        .arg("--markdown")
        .arg(&again)
        .output()
        .expect("run xtask");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same page, up to the last digit of numbers that went through JSON.
    let again = std::fs::read_to_string(&again).expect("page");
    assert_eq!(again.lines().count(), page.lines().count());
    let headings = |p: &str| {
        p.lines()
            .filter(|l| l.starts_with('#'))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(headings(&again), headings(&page));

    // Without --publish or --markdown the page and chart go under the build directory, and
    // the committed page is left as it was.
    let committed_page = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let committed = std::fs::read(&committed_page).ok();
    let target = dir.path().join("target");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--render-only", "--no-saved", "--merge"])
        .arg(&json)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(target.join("bench/benchmarks.md").is_file(), "{stderr}");
    assert!(target.join("bench/benchmarks.svg").is_file(), "{stderr}");
    assert!(stderr.contains("--publish"), "{stderr}");
    assert_eq!(std::fs::read(&committed_page).ok(), committed);
}

#[test]
fn io_bench_says_where_it_writes_and_stays_in_the_build_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("io-bench")
        .arg(tiny("bert_eager_ts_op14"))
        .args(["--rounds", "1"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run xtask");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let roundtrip = target.join("io-bench").join("roundtrip.onnx");
    assert!(
        stderr.contains(&roundtrip.display().to_string()),
        "{stderr}"
    );
    assert!(!roundtrip.exists(), "the saved copy is removed");
    assert!(String::from_utf8_lossy(&output.stdout).contains("| bert_eager_ts_op14 |"));
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "bench",
            "--render-only",
            "--no-saved",
            "--markdown",
            "/nonexistent/page.md",
        ])
        .output()
        .expect("run xtask");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--render-only needs result files"),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "no_such_model"])
        .output()
        .expect("run xtask");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no skeleton named 'no_such_model'"));
}
