//! The same suites on the 6.12 LTS kernel (built by the lab from Debian's
//! `linux-source-6.12`): no `struct scx_sched` there, the scheduler's state is kernel
//! globals (`scx_exit_kind`, `scx_exit_info`, `scx_ops`, ...), found from the kernel's BTF
//! and symbols. The stall and error runs assert exactly what the 7.3 runs do.

use guest_lab::TestScheduler;

use crate::error::assert_error_run;
use crate::run::error_run_on;
use crate::stall::{assert_stall_run, stall_workload};

/// The kernel line these tests run.
const LTS: &str = "6.12";

/// What only the globals layout shows: no event counters, no `aborting` flag, both
/// said in the notes; the scheduler's root is `scx_ops`.
fn assert_globals_layout(r: &dump_schema::FailureDumpReport) {
    let notes = &r.capture_notes;
    for reason in [
        scx_walk::reasons::EVENTS_NOT_IN_KERNEL,
        scx_walk::reasons::ABORTING_NOT_IN_KERNEL,
    ] {
        assert!(
            notes.iter().any(|n| n == reason),
            "{reason} not in {notes:#?}"
        );
    }
    assert!(r.event_counter_timeline.is_empty());
    assert!(
        r.dsq_states.iter().any(|d| d.origin.starts_with("global")),
        "global DSQs from global_dsqs"
    );
}

#[test]
fn guest_scx_612_stall_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run_on(Some(LTS), TestScheduler::Stall, &stall_workload(), 1000) else {
        return;
    };
    assert!(run.log.phase("init").is_some());
    assert_globals_layout(&run.late.report);
    eprintln!("6.12 stall: {}", assert_stall_run(&run));
}

#[test]
fn guest_scx_612_error_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run_on(Some(LTS), TestScheduler::Error, "ktstr_spin 2 240", 90_000)
    else {
        return;
    };
    assert_globals_layout(&run.late.report);
    eprintln!("6.12 error: {}", assert_error_run(&run));
}
