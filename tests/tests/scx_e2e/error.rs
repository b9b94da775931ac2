//! The `error` test scheduler: `scx_bpf_error()` after a while (`SCX_EXIT_ERROR_BPF`).

use e2e_tests::guest::view;
use freeze::lab::TestScheduler;

use crate::run::error_run;

#[test]
fn scx_error_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run(TestScheduler::Error, "ktstr_spin 2 240", 90_000) else {
        return;
    };
    let r = &run.late.report;
    assert_eq!(run.exit_kind, 1025, "SCX_EXIT_ERROR_BPF");
    assert_eq!(r.scx_sched_state.as_ref().unwrap().exit_kind, 1025);
    assert_eq!(r.scx_walker_unavailable, None);
    let maps = view::assert_maps_agree(&run.log, r);
    let progs = view::assert_progs_agree(&run.log, r);
    let bss = view::assert_bss_agrees(&run.log, r, &view::test_sched_bss);
    let tasks = view::assert_tasks_agree(&run.log, r, &[]);
    view::assert_cputime_agrees(&run.log, r, run.since_view);
    view::assert_sysfs_agrees(&run.log, r, "ktstr_error");
    let dumped = view::assert_scx_dump_agrees(&run.log, r, &run.pid_of);
    view::assert_timeline_monotone(r);
    // No task starves under the error scheduler: the dual report says why it has no
    // early snapshot, in the stable shape.
    if run.dual.early.is_none() {
        let why = run.dual.early_skipped_reason.as_deref().unwrap();
        assert!(
            why.starts_with("max_age never crossed threshold (peak="),
            "{why}"
        );
    }
    eprintln!(
        "error: checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks, {dumped} kernel-dump facts"
    );
}
