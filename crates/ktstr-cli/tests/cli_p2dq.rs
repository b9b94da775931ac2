//! `ktstr run --scheduler p2dq`: a real third-party scheduler (`scx_p2dq` from crates.io,
//! which links the sched_ext project's sdt arena allocator) through the whole command.
//! Nothing fails under p2dq, so `--timeout` ends the run with exit 0 and a dual report
//! whose late snapshot holds the scheduler's sdt allocations (its per-task contexts) and
//! static range; `ktstr render` shows them.
//!
//! Needs QEMU and the guest lab with scx_p2dq (`cargo xtask provision` builds it); without
//! QEMU the test prints why it skips.

mod support;

use dump_schema::{FailureDumpReportAny, RenderedValue};
use support::{GuestRun, dual, ktstr, late};

/// The `pid` member of a rendered `struct task_p2dq` payload.
fn payload_pid(v: &RenderedValue) -> Option<i64> {
    v.member("pid")?.as_u64().map(|p| p as i32 as i64)
}

#[test]
fn guest_run_p2dq_dumps_its_sdt_allocations() {
    let Some(run) = GuestRun::with_timeout("p2dq", "25s") else {
        return;
    };
    let (path, json) = run.dump();
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("p2dq"),
        "{path:?}"
    );
    let any = FailureDumpReportAny::from_json(&json).unwrap();
    assert!(dual(&any).early.is_none(), "nothing starves under p2dq");
    let r = late(&any);
    assert!(
        r.active_obj_name
            .as_deref()
            .is_some_and(|n| n.contains("p2dq")),
        "attached ops: {:?}",
        r.active_obj_name
    );
    assert_eq!(r.sdt_alloc_unavailable, None);
    let tasks = r
        .sdt_allocations
        .iter()
        .find(|a| a.allocator_name == "scx_task_allocator")
        .expect("p2dq's task allocator");
    assert!(!tasks.entries.is_empty() && !tasks.truncated);
    // Each per-task context belongs to a task the dump enriched as a sched_ext task.
    let ext_pids: Vec<i64> = r
        .task_enrichments
        .iter()
        .filter(|t| t.sched_class == "ext")
        .map(|t| i64::from(t.pid))
        .collect();
    let ctx_pids: Vec<i64> = tasks
        .entries
        .iter()
        .filter_map(|e| payload_pid(&e.payload))
        .collect();
    assert_eq!(
        ctx_pids.len(),
        tasks.entries.len(),
        "every payload is a typed task context: {}",
        tasks.payload_type_reason
    );
    let matched = ctx_pids.iter().filter(|p| ext_pids.contains(p)).count();
    assert!(
        matched * 10 >= ctx_pids.len() * 9,
        "{matched} of {} task contexts name an enriched ext task",
        ctx_pids.len()
    );
    assert!(
        r.scx_static_ranges
            .ranges
            .iter()
            .any(|s| s.instance_name == "scx_static" && s.capacity > 0),
        "{:?}",
        r.scx_static_ranges
    );
    // The human rendering names the allocator.
    let shown = ktstr(&["render", path.to_str().unwrap()], run.path());
    assert_eq!(shown.status.code(), Some(0));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("scx_task_allocator"), "{text}");
}
