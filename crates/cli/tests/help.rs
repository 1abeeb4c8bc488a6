//! The help texts, as users see them (review changes to them like code).

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;

fn help(args: &[&str]) -> String {
    let out = Command::cargo_bin("transfuse")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn transfuse_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn optimize_help() {
    insta::assert_snapshot!(help(&["optimize", "--help"]));
}
