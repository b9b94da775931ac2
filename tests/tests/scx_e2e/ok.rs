//! The `ok` test scheduler frozen on demand: the module example of `e2e_tests::guest`,
//! run as it is written there (a guest test in about twenty lines).

use std::time::Duration;

use e2e_tests::guest::{GuestLab, view};
use guest_lab::{RunSpec, SchedulerChoice, TestScheduler};

#[test]
fn guest_scx_ok_dump_agrees_with_guest() {
    let Some(lab) = GuestLab::open() else { return }; // prints why it skips
    let spec = view::with_guest_view(
        RunSpec::new()
            .scheduler(SchedulerChoice::test(TestScheduler::Ok))
            .workload("ktstr_spin 2 600")
            .settle_ms(2000),
    );
    let mut guest = lab.boot(&spec);
    guest.wait_console(view::VIEW_END, Duration::from_secs(600));
    let out = guest.freeze_and_capture(&Default::default());
    guest.thaw_now();
    let log = guest.console_log();
    let r = &out.report;
    assert_eq!(view::attached_ops(&log), "ktstr_ok");
    assert!(r.scx_sched_state.is_some());
    view::assert_maps_agree(&log, r);
    view::assert_progs_agree(&log, r);
    // The spinners run under busybox `timeout` for the whole run.
    view::assert_tasks_agree(&log, r, &["timeout"]);
}
