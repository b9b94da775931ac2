//! The `stall` test scheduler: a victim task starves on a never-consumed user DSQ until
//! the watchdog ends the scheduler (`SCX_EXIT_ERROR_STALL`).

use guest_lab::TestScheduler;

use crate::run::{ErrorRun, VIEW_DONE, error_run};

#[test]
fn guest_scx_stall_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run(TestScheduler::Stall, &stall_workload(), 1000) else {
        return;
    };
    eprintln!("stall: {}", assert_stall_run(&run));
}

/// The victim starts once the guest has printed its view, so the stall (and the
/// freeze) always come after it, however slow the emulated guest is.
pub fn stall_workload() -> String {
    format!(
        "ktstr_spin 2 240 & (until [ -e {VIEW_DONE} ]; do sleep 1; done; ktstr_victim 120) & wait"
    )
}

/// What a stall run asserts on every kernel line: exit kind 1026, agreement with the
/// guest and the kernel, the victim on DSQ 0x101 at the late and the early snapshot, and
/// a capture past its deadline that keeps the scheduler state.
pub fn assert_stall_run(run: &ErrorRun) -> String {
    let r = &run.late.report;
    // SCX_EXIT_ERROR_STALL
    let checked = run.assert_agrees_with_guest_and_kernel("ktstr_stall", 1026);
    assert_eq!(r.active_obj_name.as_deref(), Some("ktstr_ops"));
    assert!(!r.active_map_kvas.is_empty());
    // The victim waits on the never-consumed user DSQ 0x101.
    let stall_dsq = r
        .dsq_states
        .iter()
        .find(|d| d.id == 0x101)
        .expect("user DSQ 0x101");
    assert_eq!(stall_dsq.origin, "user");
    let victims: Vec<i32> = stall_dsq
        .task_kvas
        .iter()
        .filter_map(|t| run.pid_of.get(t).copied())
        .collect();
    let victim_pid = r
        .task_enrichments
        .iter()
        .find(|t| t.comm == "ktstr-victim")
        .expect("victim enriched")
        .pid;
    assert!(
        victims.contains(&victim_pid),
        "victim {victim_pid} not on DSQ 0x101: {victims:?}"
    );
    // Dual capture: the early snapshot already shows the victim waiting.
    let early = run
        .dual
        .early
        .as_ref()
        .expect("an early snapshot was taken");
    assert!(run.dual.early_max_age_jiffies >= run.dual.early_threshold_jiffies);
    let ef = run.early_pid_of.as_ref().unwrap();
    let early_waiting: Vec<i32> = early
        .dsq_states
        .iter()
        .filter(|d| d.id == 0x101)
        .flat_map(|d| d.task_kvas.iter().filter_map(|t| ef.get(t).copied()))
        .collect();
    assert!(
        early_waiting.contains(&victim_pid),
        "early snapshot: victim not waiting ({early_waiting:?})"
    );
    // Past the deadline: no map captured, all counted, the time of the cut recorded;
    // the scheduler state (read first) is still there.
    let t = &run.truncated;
    assert!(t.maps.is_empty());
    assert_eq!(t.maps_truncated as usize, r.maps.len());
    assert!(t.dump_truncated_at_us.is_some());
    assert!(t.scx_sched_state.is_some() && !t.rq_scx_states.is_empty());
    assert_eq!(
        t.sdt_alloc_unavailable.as_deref(),
        Some(dump_schema::reasons::SDT_ALLOC_DEADLINE)
    );
    dump_schema::validate::validate_report_json(&t.to_json().unwrap()).unwrap();
    checked
}
