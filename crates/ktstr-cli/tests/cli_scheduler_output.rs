//! `ktstr run` with schedulers that are processes of their own, on a real guest under
//! QEMU: what the scheduler said of itself reaches the user.
//!
//! - A "scheduler" that prints a line on stdout and one on stderr and exits 3 before
//!   attaching: the placeholder's `guest_setup_failure.scheduler_log_tail` holds its
//!   exit status and both lines, and `-v` prints them.
//! - `scx_bpfland` with `--cpus 4`, captured at a timeout: the dump has four CPUs (the
//!   guest's topology follows `--cpus`: QEMU's `-smp 4` is one package of four cores,
//!   one L3), and `-v` prints the scheduler's last lines and that it was still running.
//!
//! Needs QEMU and the guest lab; without QEMU the tests print why they skip.

mod support;

use dump_schema::FailureDumpReportAny;
use support::{GuestRun, late};

/// `ktstr -v run --engine qemu --scheduler SCHED --out out EXTRA…` as a guest test.
fn verbose_qemu_run(scheduler: &str, extra: &[&str]) -> Option<GuestRun> {
    let args = ["-v", "run", "--engine", "qemu", "--scheduler", scheduler];
    GuestRun::new(&[&args[..], &["--out", "out"], extra].concat())
}

#[test]
fn guest_run_a_scheduler_that_exits_leaves_its_status_and_output() {
    // The guest's own static busybox as the user's executable.
    let Some(run) = verbose_qemu_run(
        "/bin/busybox",
        &[
            "--",
            "sh",
            "-c",
            "echo loading my scheduler; echo 'config: bad value' >&2; exit 3",
        ],
    ) else {
        return;
    };
    assert_eq!(run.code(), Some(1), "a guest setup failure is exit 1");
    let (_, json) = run.dump();
    let FailureDumpReportAny::Single(r) = FailureDumpReportAny::from_json(&json).unwrap() else {
        panic!("a placeholder is a single report");
    };
    assert!(r.is_placeholder);
    let ctx = r.guest_setup_failure.expect("guest_setup_failure");
    assert_eq!(ctx.scheduler_attach_outcome, "failed reason=exited");
    let tail = &ctx.scheduler_log_tail;
    assert!(
        tail.starts_with("[ktstr] scheduler process: exit status 3\n"),
        "{tail}"
    );
    for line in ["loading my scheduler", "config: bad value"] {
        assert!(tail.lines().any(|l| l == line), "{line} in {tail}");
    }
    let stderr = run.stderr();
    assert!(stderr.contains("scheduler: exit status 3"), "{stderr}");
    assert!(stderr.contains("scheduler| config: bad value"), "{stderr}");
}

#[test]
fn guest_run_a_real_scheduler_on_four_cpus_logs_its_output() {
    let Some(run) = verbose_qemu_run("bpfland", &["--cpus", "4", "--timeout", "30s"]) else {
        return;
    };
    assert_eq!(run.code(), Some(0), "no failure at a timeout");
    let (_, json) = run.dump();
    let written = FailureDumpReportAny::from_json(&json).unwrap();
    let r = late(&written);
    assert_eq!(r.per_cpu_time.len(), 4, "four CPUs in the guest");
    assert_eq!(r.rq_scx_states.len(), 4);
    assert!(
        r.task_enrichments.iter().any(|t| t.sched_class == "ext"),
        "tasks run on sched_ext"
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains("scheduler: no exit reported (still running"),
        "{stderr}"
    );
    // Its log as the guest printed it after the attach (scx_bpfland says what it found).
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("scheduler| ") && l.contains("scx_bpfland")),
        "{stderr}"
    );
}
