//! The summary a person reads first (display-format.md "Summary"): what failed and why,
//! who triggered it and how the instant was caught, who waits where, what each CPU runs,
//! the counts, and every missing or capped part — at most [`MAX_LINES`] lines, before any
//! map. Tasks are named `comm[pid]` wherever the report has them (`task_kva`).

use std::fmt::{self, Write};

use super::names::Names;
use super::text::esc;
use crate::{DualFailureDumpReport, ExitInfo, FailureDumpReport};

/// The summary never takes more lines than this (dual: the late summary plus two): the
/// caps below keep it so, whatever the report holds.
#[cfg(test)]
const MAX_LINES: usize = 18;
/// DSQs listed with their waiting tasks.
const MAX_DSQS: usize = 4;
/// Tasks named per DSQ line.
const MAX_NAMES: usize = 4;
/// CPUs on the `cpus:` line before `+N more`.
const MAX_CPUS: usize = 8;
/// Missing or capped parts listed one per line before `+N more`.
const MAX_MISSING: usize = 6;
/// Backtrace frames on the `backtrace:` line.
const MAX_FRAMES: usize = 4;

/// Whether the report says anything about a scheduler (a report of maps alone, as the
/// map walkers' own tests build, has nothing to summarize).
pub(super) fn has_scheduler_facts(r: &FailureDumpReport) -> bool {
    r.scx_sched_state.is_some()
        || r.exit_info.is_some()
        || r.scx_walker_unavailable.is_some()
        || !r.rq_scx_states.is_empty()
        || !r.dsq_states.is_empty()
        || !r.task_enrichments.is_empty()
        || !r.capture_notes.is_empty()
        || r.is_placeholder
}

/// The summary of a single report, each line ending in `\n`.
pub(super) fn write_summary(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    outcome(r, out)?;
    if let Some(ei) = &r.exit_info {
        trigger(ei, out)?;
    }
    let names = Names::of(r);
    waiting(r, &names, out)?;
    cpus(r, out)?;
    counts(r, out)?;
    missing(r, out)
}

/// The late snapshot's summary, then one line for the early snapshot.
pub(super) fn write_dual_summary(d: &DualFailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    if !has_scheduler_facts(&d.late) {
        return Ok(());
    }
    write_summary(&d.late, out)?;
    match &d.early {
        Some(e) => {
            let names = Names::of(e);
            // The task that waited longest, named where the report has runnable ages
            // (with its DSQ); else the first task queued anywhere is named after the wait.
            let oldest = (e.task_enrichments.iter())
                .filter_map(|t| Some((t.runnable_age_jiffies?, t.task_kva)))
                .fold(None, |best: Option<(u64, u64)>, t| match best {
                    Some(b) if b.0 >= t.0 => Some(b),
                    _ => Some(t),
                });
            let (max, threshold) = (d.early_max_age_jiffies, d.early_threshold_jiffies);
            out.write_str("  early snapshot: ")?;
            match oldest {
                Some((_, kva)) => {
                    names.write_task(kva, out)?;
                    if let Some(q) = e.dsq_states.iter().find(|q| q.task_kvas.contains(&kva)) {
                        write!(out, " on dsq {:#x}", q.id)?;
                    }
                    write!(out, " waited longest: {max}j (threshold {threshold}j)")?;
                }
                None => {
                    write!(
                        out,
                        "the oldest runnable task had waited {max}j (threshold {threshold}j)"
                    )?;
                    if let Some(q) = e.dsq_states.iter().find(|q| !q.task_kvas.is_empty()) {
                        write!(out, "; dsq {:#x} held ", q.id)?;
                        names.write_task(q.task_kvas[0], out)?;
                    }
                }
            }
            out.write_char('\n')?;
            grew(e, &d.late, out)
        }
        None => writeln!(
            out,
            "  early snapshot: absent ({})",
            esc(d
                .early_skipped_reason
                .as_deref()
                .unwrap_or("no reason recorded"))
        ),
    }
}

/// `scheduler NAME: OUTCOME`.
fn outcome(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let name = r.active_obj_name.as_deref().unwrap_or("?");
    write!(out, "scheduler {}: ", esc(name))?;
    match (&r.exit_info, &r.scx_sched_state) {
        (Some(ei), _) => {
            write!(out, "{} ({})", esc(&ei.kind_name), ei.kind)?;
            match (&ei.reason, &ei.msg) {
                (Some(reason), Some(msg)) => write!(out, ": {} ({})", esc(reason), esc(msg))?,
                (Some(reason), None) => write!(out, ": {}", esc(reason))?,
                (None, Some(msg)) => write!(out, ": {}", esc(msg))?,
                (None, None) => {}
            }
        }
        (None, Some(st)) if st.exit_kind == 0 => out.write_str("running (no exit)")?,
        (None, Some(st)) => write!(out, "exit_kind {}", st.exit_kind)?,
        (None, None) => write!(
            out,
            "no scheduler state ({})",
            esc(r
                .scx_walker_unavailable
                .as_deref()
                .unwrap_or("not captured"))
        )?,
    }
    out.write_char('\n')
}

/// Who wrote the exit kind, how the instant was caught, and the first frames.
fn trigger(ei: &ExitInfo, out: &mut dyn Write) -> fmt::Result {
    out.write_str("  ")?;
    if let Some(t) = &ei.trigger {
        if let (Some(comm), Some(pid)) = (&t.comm, t.pid) {
            write!(out, "triggered by {}[{pid}] on CPU {}; ", esc(comm), t.cpu)?;
        } else {
            write!(out, "triggered on CPU {}; ", t.cpu)?;
        }
    }
    let how = match ei.source.as_str() {
        "watchpoint" => "caught at the write (watchpoint)",
        "poll" => "caught by polling (after the write)",
        "vmcore" => "read from a vmcore",
        other => other,
    };
    write!(out, "{}", esc(how))?;
    if let Some(why) = &ei.unavailable {
        write!(out, "; incomplete: {}", esc(why))?;
    }
    out.write_char('\n')?;
    if !ei.backtrace.is_empty() {
        out.write_str("  backtrace:")?;
        for (i, f) in ei.backtrace.iter().take(MAX_FRAMES).enumerate() {
            out.write_str(if i == 0 { " " } else { " < " })?;
            match (&f.symbol, f.offset) {
                (Some(s), Some(o)) => write!(out, "{}+{o:#x}", esc(s))?,
                (Some(s), None) => write!(out, "{}", esc(s))?,
                _ => write!(out, "{:#x}", f.addr)?,
            }
        }
        if ei.backtrace.len() > MAX_FRAMES {
            write!(out, " < … ({} frames)", ei.backtrace.len())?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// The DSQs that hold tasks, with the tasks by name (most queued first).
fn waiting(r: &FailureDumpReport, names: &Names<'_>, out: &mut dyn Write) -> fmt::Result {
    let mut queues: Vec<_> = r.dsq_states.iter().filter(|q| q.nr > 0).collect();
    queues.sort_by(|a, b| b.nr.cmp(&a.nr).then(a.id.cmp(&b.id)));
    for q in queues.iter().take(MAX_DSQS) {
        write!(
            out,
            "  waiting on dsq {:#x} ({}): {} queued",
            q.id,
            esc(&q.origin),
            q.nr
        )?;
        for (i, kva) in q.task_kvas.iter().take(MAX_NAMES).enumerate() {
            out.write_str(if i == 0 { ": " } else { ", " })?;
            names.write_task(*kva, out)?;
            if let Some(j) = names.task(*kva).and_then(|t| t.runnable_age_jiffies) {
                write!(out, " +{j}j")?;
            }
        }
        if q.task_kvas.len() > MAX_NAMES {
            write!(out, ", +{} more", q.task_kvas.len() - MAX_NAMES)?;
        }
        out.write_char('\n')?;
    }
    if queues.len() > MAX_DSQS {
        writeln!(out, "  +{} more DSQs with tasks", queues.len() - MAX_DSQS)?;
    }
    Ok(())
}

/// Each CPU's current task and queue length, on one line.
fn cpus(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    if r.rq_scx_states.is_empty() {
        return Ok(());
    }
    out.write_str("  cpus:")?;
    for (i, q) in r.rq_scx_states.iter().take(MAX_CPUS).enumerate() {
        out.write_str(if i == 0 { " " } else { " | " })?;
        write!(out, "{} curr=", q.cpu)?;
        if q.curr_comm.is_empty() {
            out.write_str("-")?;
        } else {
            write!(out, "{}[{}]", esc(&q.curr_comm), q.curr_pid)?;
        }
        write!(out, " nr_run={}", q.nr_running)?;
    }
    if r.rq_scx_states.len() > MAX_CPUS {
        write!(out, " | +{} more CPUs", r.rq_scx_states.len() - MAX_CPUS)?;
    }
    out.write_char('\n')
}

fn counts(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    writeln!(
        out,
        "  {} maps, {} programs, {} tasks, {} DSQs, {} CPUs",
        r.maps.len(),
        r.prog_runtime_stats.len() + r.aux_prog_runtime_stats.len(),
        r.task_enrichments.len(),
        r.dsq_states.len(),
        r.rq_scx_states.len().max(r.per_cpu_time.len())
    )
}

/// Every missing or capped part, one line each.
fn missing(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let mut lines: Vec<(&str, &str)> = [
        ("scx walker", &r.scx_walker_unavailable),
        ("tasks", &r.task_enrichments_unavailable),
        ("programs", &r.prog_runtime_stats_unavailable),
        ("NUMA", &r.per_node_numa_unavailable),
        ("sdt allocations", &r.sdt_alloc_unavailable),
    ]
    .into_iter()
    .filter_map(|(what, why)| why.as_deref().map(|w| (what, w)))
    .collect();
    lines.extend(r.capture_notes.iter().map(|n| ("note", n.as_str())));
    if r.maps_truncated > 0 || r.dump_truncated_at_us.is_some() {
        lines.push(("deadline", "the dump deadline was crossed (see the footer)"));
    }
    // A placeholder says the same reason in every section: once is enough.
    lines.dedup_by(|a, b| a.1 == b.1);
    for (what, why) in lines.iter().take(MAX_MISSING) {
        writeln!(out, "  missing: {what}: {}", esc(why))?;
    }
    if lines.len() > MAX_MISSING {
        writeln!(out, "  +{} more missing parts", lines.len() - MAX_MISSING)?;
    }
    Ok(())
}

/// What grew from the early snapshot to the late one: queue depths of the DSQs in both.
fn grew(early: &FailureDumpReport, late: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let mut changes = Vec::new();
    for q in &late.dsq_states {
        if let Some(e) = early.dsq_states.iter().find(|e| e.id == q.id)
            && e.nr != q.nr
        {
            changes.push((q.id, e.nr, q.nr));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    out.write_str("  early → late:")?;
    for (i, (id, a, b)) in changes.iter().take(MAX_DSQS).enumerate() {
        out.write_str(if i == 0 { " " } else { ", " })?;
        write!(out, "dsq {id:#x} {a} → {b} queued")?;
    }
    out.write_char('\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DsqState, ExitTrigger, RqScxState, ScxSchedState, TaskEnrichment};

    fn stall() -> FailureDumpReport {
        FailureDumpReport {
            active_obj_name: Some("ktstr_stall".into()),
            scx_sched_state: Some(ScxSchedState {
                exit_kind: 1026,
                ..Default::default()
            }),
            exit_info: Some(ExitInfo {
                kind: 1026,
                kind_name: "SCX_EXIT_ERROR_STALL".into(),
                source: "watchpoint".into(),
                reason: Some("runnable task stall".into()),
                msg: Some("ktstr-victim[149] failed to run for 2.368s".into()),
                trigger: Some(ExitTrigger {
                    cpu: 1,
                    pid: Some(29),
                    comm: Some("kworker/u8:1".into()),
                }),
                ..Default::default()
            }),
            dsq_states: vec![DsqState {
                id: 0x101,
                origin: "user".into(),
                nr: 1,
                task_kvas: vec![0xffff_8880_1000],
                ..Default::default()
            }],
            rq_scx_states: vec![RqScxState {
                cpu: 0,
                nr_running: 2,
                curr_pid: 148,
                curr_comm: "sh\n".into(),
                ..Default::default()
            }],
            task_enrichments: vec![TaskEnrichment {
                pid: 149,
                comm: "ktstr-victim".into(),
                task_kva: 0xffff_8880_1000,
                ..Default::default()
            }],
            capture_notes: vec!["arena: 3 of 5 pages not captured".into()],
            ..Default::default()
        }
    }

    fn text(r: &FailureDumpReport) -> String {
        let mut s = String::new();
        write_summary(r, &mut s).unwrap();
        s
    }

    #[test]
    fn says_what_failed_who_triggered_and_who_waits() {
        let s = text(&stall());
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "scheduler ktstr_stall: SCX_EXIT_ERROR_STALL (1026): runnable task stall (ktstr-victim[149] failed to run for 2.368s)"
        );
        assert_eq!(
            lines[1],
            "  triggered by kworker/u8:1[29] on CPU 1; caught at the write (watchpoint)"
        );
        assert_eq!(
            lines[2],
            "  waiting on dsq 0x101 (user): 1 queued: ktstr-victim[149]"
        );
        // A guest comm is escaped: the line does not break.
        assert_eq!(lines[3], "  cpus: 0 curr=sh\\n[148] nr_run=2");
        assert_eq!(lines[4], "  0 maps, 0 programs, 1 tasks, 1 DSQs, 1 CPUs");
        assert_eq!(
            lines[5],
            "  missing: note: arena: 3 of 5 pages not captured"
        );
        assert!(lines.len() <= MAX_LINES);
    }

    #[test]
    fn stays_short_on_a_huge_report() {
        let mut r = stall();
        r.dsq_states = (0..100)
            .map(|i| DsqState {
                id: i,
                nr: 50,
                task_kvas: (0..50).collect(),
                ..Default::default()
            })
            .collect();
        r.rq_scx_states = (0..512)
            .map(|c| RqScxState {
                cpu: c,
                ..Default::default()
            })
            .collect();
        r.capture_notes = (0..40).map(|i| format!("note {i}")).collect();
        r.exit_info.as_mut().unwrap().backtrace = vec![Default::default(); 64];
        let s = text(&r);
        assert!(s.lines().count() <= MAX_LINES, "{s}");
        assert!(s.contains("+96 more DSQs with tasks"), "{s}");
        assert!(s.contains("+504 more CPUs"), "{s}");
        assert!(s.contains("+34 more missing parts"), "{s}");
        // An address with no captured task stays an address.
        assert!(s.contains("0x0, 0x1"), "{s}");
    }

    #[test]
    fn no_exit_and_no_state() {
        let r = FailureDumpReport {
            scx_sched_state: Some(ScxSchedState::default()),
            ..Default::default()
        };
        assert!(text(&r).starts_with("scheduler ?: running (no exit)\n"));
        let r = FailureDumpReport::placeholder("the guest died");
        let s = text(&r);
        assert!(
            s.starts_with("scheduler ?: no scheduler state (the guest died)\n"),
            "{s}"
        );
        // The placeholder's one reason is listed once.
        assert_eq!(s.matches("the guest died").count(), 2, "{s}");
    }
}
