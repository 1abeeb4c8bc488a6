//! Replays every committed fuzzing finding (`regressions/<target>/<file>`, the minimized input
//! of a crash or violation that was since fixed) through the same check the fuzz target runs.
#![allow(clippy::panic)]

use std::path::Path;

fn replay(target: &str, check: fn(&[u8]) -> Result<(), transfuse_fuzz::Finding>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("reading a finding");
        if let Err(finding) = check(&data) {
            panic!("{}: {finding}", f.display());
        }
    }
    files.len()
}

#[test]
fn load_findings_stay_fixed() {
    replay("load_bytes", transfuse_fuzz::check_load);
}

#[test]
fn optimize_findings_stay_fixed() {
    replay("optimize_mutated", transfuse_fuzz::check_optimize);
}
