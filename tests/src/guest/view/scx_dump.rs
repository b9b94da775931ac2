//! The kernel's own `scx_dump_state` text and the dump's event timeline.

use std::collections::BTreeMap;

use dump_schema::FailureDumpReport;
use guest_lab::ConsoleLog;

/// The kernel's `scx_dump_state` text (printed by the guest after the scheduler left):
/// per CPU `CPU <n>: nr_run=… flags=… ksync=…`, `curr=<comm>[<pid>]`, then its runnable
/// tasks as `R <comm>[<pid>]` (`*R` for the current one). The kernel writes it from an
/// irq_work right after the exit kind flips, and the host freezes within milliseconds of
/// the flip: the two moments are close but not identical, so stable facts must be equal
/// (ONLINE flag, every listed task known to the dump but one forked after the freeze,
/// whose pid is above every captured one) and moving ones close (most listed
/// tasks on the same CPU's runqueue, `kick_sync` within a few thousand kicks).
/// `pid_of` maps the dump's task addresses to pids (see
/// [`KernelView::pids_of_report_tasks`](crate::guest::KernelView::pids_of_report_tasks)).
pub fn assert_scx_dump_agrees(
    log: &ConsoleLog,
    r: &FailureDumpReport,
    pid_of: &BTreeMap<u64, i32>,
) -> usize {
    let text = log.output("scx-dump").unwrap_or_default();
    assert!(
        !text.trim().is_empty(),
        "the kernel printed no scx_dump_state text"
    );
    eprintln!("--- kernel scx_dump_state ---\n{text}\n---");
    let rq_of = |c: u32| {
        r.rq_scx_states
            .iter()
            .find(|s| s.cpu == c)
            .unwrap_or_else(|| panic!("CPU {c} missing from rq_scx_states"))
    };
    let on_cpu = |c: u32, pid: i32| {
        let rq = rq_of(c);
        rq.curr_pid == pid
            || rq
                .runnable_task_kvas
                .iter()
                .any(|t| pid_of.get(t) == Some(&pid))
    };
    let newest = r.task_enrichments.iter().map(|t| t.pid).max().unwrap_or(0);
    let mut checked = 0;
    let (mut listed, mut same_cpu) = (0, 0);
    let mut cpus = 0;
    let mut cpu: Option<u32> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("CPU ") {
            let (n, tail) = rest.split_once(':').unwrap_or((rest, ""));
            cpu = n.trim().parse().ok();
            let Some(c) = cpu else { continue };
            let rq = rq_of(c);
            cpus += 1;
            for kv in tail.split_whitespace() {
                if let Some(v) = kv.strip_prefix("flags=") {
                    // SCX_RQ_ONLINE (bit 0) is stable; the other bits (CLK_VALID,
                    // IN_WAKEUP, ...) come and go with every rq lock section.
                    let v = u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
                    assert_eq!(rq.flags & 1, v & 1, "CPU {c} rq.scx.flags ONLINE");
                    checked += 1;
                }
                if let Some(v) = kv
                    .strip_prefix("ksync=")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    assert!(
                        rq.kick_sync.abs_diff(v) <= 5000,
                        "CPU {c} kick_sync {} vs kernel's {v}",
                        rq.kick_sync
                    );
                    checked += 1;
                }
            }
            continue;
        }
        let Some(c) = cpu else { continue };
        let task = l
            .strip_prefix("R ")
            .or_else(|| l.strip_prefix("*R "))
            .and_then(|t| t.split_whitespace().next())
            .or_else(|| l.split_whitespace().find_map(|w| w.strip_prefix("curr=")));
        let Some(pid) = task.and_then(bracket_pid) else {
            continue;
        };
        if !r.task_enrichments.iter().any(|t| t.pid == pid) {
            // A task forked between the freeze and the kernel's dump (the guest ran on
            // in between: the shell's loop starts a process every few milliseconds) has
            // a pid above every captured one; any other missing task is a loss.
            assert!(
                pid > newest,
                "pid {pid} (CPU {c} in the kernel's dump) not enriched (newest captured pid {newest})"
            );
            eprintln!("pid {pid} (CPU {c}): forked after the freeze, not in the dump");
            continue;
        }
        listed += 1;
        if on_cpu(c, pid) {
            same_cpu += 1;
        }
        checked += 1;
    }
    assert!(
        cpus as usize == r.rq_scx_states.len(),
        "the kernel listed {cpus} CPUs"
    );
    assert!(listed > 0, "no task in the kernel's dump");
    assert!(
        same_cpu * 2 >= listed,
        "only {same_cpu} of the {listed} tasks the kernel listed are on the same CPU in the dump"
    );
    checked
}

/// Samples taken while the guest ran, then the one at the freeze: time goes forward and
/// the cumulative counters never go back. A kernel without event counters (6.12) has
/// none, and the notes say why.
pub fn assert_timeline_monotone(r: &FailureDumpReport) {
    let tl = &r.event_counter_timeline;
    let none_here = scx_walk::reasons::EVENTS_NOT_IN_KERNEL;
    if r.capture_notes.iter().any(|n| n == none_here) {
        assert!(tl.is_empty(), "samples, yet the notes say: {none_here}");
        return;
    }
    assert!(
        tl.len() >= 2,
        "expected running samples plus the freeze sample: {tl:?}"
    );
    for w in tl.windows(2) {
        assert!(w[1].elapsed_ms >= w[0].elapsed_ms, "{w:?}");
        for ((name, a), (_, b)) in w[0].counters().iter().zip(w[1].counters().iter()) {
            assert!(b >= a, "{name} went back from {a} to {b}");
        }
    }
}

/// The pid in `comm[pid]`.
pub fn bracket_pid(s: &str) -> Option<i32> {
    let open = s.rfind('[')?;
    let close = s.rfind(']')?;
    s.get(open + 1..close)?.parse().ok()
}
