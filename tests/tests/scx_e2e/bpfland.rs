//! The real third-party scheduler `scx_bpfland`, frozen on demand.

use std::time::{Duration, Instant};

use e2e_tests::guest::GuestLab;
use e2e_tests::guest::view::{self, BssRule};
use guest_lab::{RunSpec, SchedulerChoice};

/// The real third-party scheduler `scx_bpfland` (crates.io) under a CPU workload: no
/// error exit, so the host freezes on demand right after the guest printed its view.
#[test]
fn guest_scx_bpfland_dump_agrees_with_guest() {
    let Some(lab) = GuestLab::open() else { return };
    lab.lab.bpfland().expect("provisioning scx_bpfland");
    let spec = view::with_guest_view(
        RunSpec::new()
            .scheduler(SchedulerChoice::bpfland())
            .workload("ktstr_spin 3 600")
            .settle_ms(2000)
            .attach_timeout_s(300),
    );
    let mut guest = lab.boot(&spec);
    guest.wait_console(view::VIEW_END, Duration::from_secs(600));
    let view_at = Instant::now();
    let out = guest.freeze_and_capture(&Default::default());
    let since_view = view_at.elapsed();
    guest.thaw_now();
    let log = guest.console_log();
    let r = &out.report;
    let ops = view::attached_ops(&log);
    assert!(ops.starts_with("bpfland"), "{ops}");
    assert_eq!(r.scx_walker_unavailable, None);
    let st = r.scx_sched_state.as_ref().expect("scx_sched_state");
    assert!(
        !scx_walk::exit_kind::is_error(st.exit_kind),
        "no error exit: {st:?}"
    );
    assert!(
        r.active_obj_name.is_some(),
        "struct_ops map of bpfland found"
    );
    for origin in [
        "local cpu 0",
        "local cpu 1",
        "bypass cpu 0",
        "global node 0",
    ] {
        assert!(
            r.dsq_states.iter().any(|d| d.origin == origin),
            "no {origin} DSQ in {:?}",
            r.dsq_states.iter().map(|d| &d.origin).collect::<Vec<_>>()
        );
    }
    assert!(
        r.dsq_states.iter().any(|d| d.origin == "user"),
        "bpfland creates user DSQs"
    );
    let maps = view::assert_maps_agree(&log, r);
    let progs = view::assert_progs_agree(&log, r);
    // bpfland's .bss holds gauges and counters that move while it runs: check that every
    // member the guest printed is rendered as a number.
    let bss = view::assert_bss_agrees(&log, r, &|_| BssRule::Any);
    let tasks = view::assert_tasks_agree(&log, r, &[]);
    view::assert_cputime_agrees(&log, r, since_view);
    view::assert_sysfs_agrees(&log, r, &ops);
    // Workload tasks run under sched_ext.
    assert!(r.task_enrichments.iter().any(|t| t.sched_class == "ext"));
    eprintln!("bpfland: checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks");
}
