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

/// A guest test's `ktstr` run in a fresh directory, its dumps under `out/`.
pub struct GuestRun {
    pub dir: tempfile::TempDir,
    pub output: Output,
}

impl GuestRun {
    /// `ktstr ARGS` in a fresh directory; `None` (after the skip) where QEMU is missing.
    pub fn new(args: &[&str]) -> Option<GuestRun> {
        if !guest_lab::testing::need_qemu() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let output = ktstr(args, dir.path());
        Some(GuestRun { dir, output })
    }

    /// `ktstr run --scheduler SCHED --timeout TIMEOUT --out out --json`, which must end at
    /// the timeout: exit 0, no failure.
    pub fn with_timeout(sched: &str, timeout: &str) -> Option<GuestRun> {
        let args = ["run", "--scheduler", sched, "--timeout", timeout];
        let run = GuestRun::new(&[&args[..], &["--out", "out", "--json"]].concat())?;
        assert_eq!(run.code(), Some(0), "no failure under {sched}");
        Some(run)
    }

    /// `ktstr`'s exit code.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The run's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The one dump in `out/` ([`the_dump`]).
    pub fn dump(&self) -> (PathBuf, String) {
        the_dump(&self.path().join("out"))
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
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
