//! Helpers shared by the CLI tests that run `ktstr` on a real guest.
// Each test binary uses its own subset of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dump_schema::{DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny};

/// `ktstr run` writes a dual report whenever it captured.
pub fn dual(r: &FailureDumpReportAny) -> &DualFailureDumpReport {
    match r {
        FailureDumpReportAny::Dual(d) => d,
        other => panic!("expected a dual report, got schema {}", other.schema()),
    }
}

/// The late (or only) snapshot of a report.
pub fn late(r: &FailureDumpReportAny) -> &FailureDumpReport {
    match r {
        FailureDumpReportAny::Single(r) => r,
        FailureDumpReportAny::Dual(d) => &d.late,
        FailureDumpReportAny::Degraded(_) => panic!("degraded report: the freeze did not complete"),
    }
}

/// Runs the `ktstr` binary under test in `cwd`; its stderr is echoed for the test log.
pub fn ktstr(args: &[&str], cwd: &Path) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running ktstr");
    eprintln!(
        "--- ktstr {args:?}: {} ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `ktstr run --scheduler SCHED --timeout TIMEOUT --out out --json` in `cwd`.
pub fn run_with_timeout(sched: &str, timeout: &str, cwd: &Path) -> Output {
    ktstr(
        &[
            "run",
            "--scheduler",
            sched,
            "--timeout",
            timeout,
            "--out",
            "out",
            "--json",
        ],
        cwd,
    )
}

/// The one dump in `dir`, validated against `schema/any.json`; fails if a temporary or
/// partial file is there too.
pub fn the_dump(dir: &Path) -> (PathBuf, String) {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let dumps: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".failure-dump.json"))
        .collect();
    assert_eq!(dumps.len(), 1, "one dump expected in {files:?}");
    assert!(
        files
            .iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "temporary file left behind: {files:?}"
    );
    let json = std::fs::read_to_string(dumps[0]).unwrap();
    dump_schema::validate::validate_report_json(&json)
        .expect("the dump validates against schema/any.json");
    (dumps[0].clone(), json)
}
