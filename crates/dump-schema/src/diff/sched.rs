//! The report's own fields, the scheduler's state, programs and event counters.

use super::{
    Change, FieldChange, ProgramDiff, bool_change, num_change, opt_num_change, pair_by_key,
    text_change,
};
use crate::{
    DegradedFailureDumpReport, EventCounterSample, ExitInfo, FailureDumpReport, ProgRuntimeStats,
    ScxSchedState, VcpuRegSnapshot,
};

/// The scheduler's state, the exit info, the last event sample's time, counts, what is
/// unavailable, capture notes and the vCPUs.
pub(super) fn report_fields(
    a: &FailureDumpReport,
    b: &FailureDumpReport,
    out: &mut Vec<FieldChange>,
) {
    out.extend(text_change(
        "active_obj_name",
        a.active_obj_name.clone(),
        b.active_obj_name.clone(),
    ));
    out.extend(bool_change(
        "is_placeholder",
        a.is_placeholder,
        b.is_placeholder,
    ));
    sched_state(a.scx_sched_state.as_ref(), b.scx_sched_state.as_ref(), out);
    exit_info(a.exit_info.as_ref(), b.exit_info.as_ref(), out);
    let last_ms = |r: &FailureDumpReport| r.event_counter_timeline.last().map(|s| s.elapsed_ms);
    if let (Some(x), Some(y)) = (last_ms(a), last_ms(b)) {
        out.extend(num_change("elapsed_ms", x, y));
    }
    for (name, x, y) in [
        ("maps", a.maps.len(), b.maps.len()),
        ("tasks", a.task_enrichments.len(), b.task_enrichments.len()),
        ("dsqs", a.dsq_states.len(), b.dsq_states.len()),
        (
            "maps_truncated",
            a.maps_truncated as usize,
            b.maps_truncated as usize,
        ),
    ] {
        out.extend(num_change(name, x as u64, y as u64));
    }
    for (name, x, y) in [
        (
            "scx_walker_unavailable",
            &a.scx_walker_unavailable,
            &b.scx_walker_unavailable,
        ),
        (
            "task_enrichments_unavailable",
            &a.task_enrichments_unavailable,
            &b.task_enrichments_unavailable,
        ),
        (
            "prog_runtime_stats_unavailable",
            &a.prog_runtime_stats_unavailable,
            &b.prog_runtime_stats_unavailable,
        ),
        (
            "sdt_alloc_unavailable",
            &a.sdt_alloc_unavailable,
            &b.sdt_alloc_unavailable,
        ),
        (
            "per_node_numa_unavailable",
            &a.per_node_numa_unavailable,
            &b.per_node_numa_unavailable,
        ),
    ] {
        out.extend(text_change(name, x.clone(), y.clone()));
    }
    capture_notes(&a.capture_notes, &b.capture_notes, out);
    vcpus(&a.vcpu_regs, &b.vcpu_regs, out);
}

fn sched_state(a: Option<&ScxSchedState>, b: Option<&ScxSchedState>, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Some(x), Some(y)) => {
            out.extend(num_change("exit_kind", x.exit_kind, y.exit_kind));
            out.extend(bool_change("aborting", x.aborting, y.aborting));
            out.extend(num_change("bypass_depth", x.bypass_depth, y.bypass_depth));
            out.extend(num_change(
                "watchdog_timeout",
                x.watchdog_timeout,
                y.watchdog_timeout,
            ));
        }
        (x, y) => {
            let present =
                |s: Option<&ScxSchedState>| s.map(|s| format!("exit_kind {}", s.exit_kind));
            out.extend(text_change("scx_sched_state", present(x), present(y)));
        }
    }
}

fn exit_info(a: Option<&ExitInfo>, b: Option<&ExitInfo>, out: &mut Vec<FieldChange>) {
    let kind = |e: Option<&ExitInfo>| e.map(|e| format!("{} ({})", e.kind_name, e.kind));
    out.extend(text_change("exit_info.kind", kind(a), kind(b)));
    let reason = |e: Option<&ExitInfo>| e.and_then(|e| e.reason.clone());
    out.extend(text_change("exit_info.reason", reason(a), reason(b)));
    let msg = |e: Option<&ExitInfo>| e.and_then(|e| e.msg.clone());
    out.extend(text_change("exit_info.msg", msg(a), msg(b)));
    let trigger = |e: Option<&ExitInfo>| {
        let t = e?.trigger.as_ref()?;
        Some(match (&t.comm, t.pid) {
            (Some(c), Some(p)) => format!("{c}[{p}] on CPU {}", t.cpu),
            _ => format!("CPU {}", t.cpu),
        })
    };
    out.extend(text_change("exit_info.trigger", trigger(a), trigger(b)));
}

/// Capture notes that appeared (`b` only) or went (`a` only).
fn capture_notes(a: &[String], b: &[String], out: &mut Vec<FieldChange>) {
    for n in a.iter().filter(|n| !b.contains(n)) {
        out.extend(text_change("capture_note", Some(n.clone()), None));
    }
    for n in b.iter().filter(|n| !a.contains(n)) {
        out.extend(text_change("capture_note", None, Some(n.clone())));
    }
}

fn regs(v: &Option<VcpuRegSnapshot>) -> String {
    match v {
        Some(r) => format!("ip={:#x} sp={:#x}", r.instruction_pointer, r.stack_pointer),
        None => "not parked".to_string(),
    }
}

/// Where each vCPU was (`vcpu N`), by index.
fn vcpus(a: &[Option<VcpuRegSnapshot>], b: &[Option<VcpuRegSnapshot>], out: &mut Vec<FieldChange>) {
    for i in 0..a.len().max(b.len()) {
        out.extend(text_change(
            &format!("vcpu {i}"),
            a.get(i).map(regs),
            b.get(i).map(regs),
        ));
    }
}

/// Two degraded reports: every field of theirs.
pub(super) fn degraded_fields(
    a: &DegradedFailureDumpReport,
    b: &DegradedFailureDumpReport,
    out: &mut Vec<FieldChange>,
) {
    out.extend(text_change(
        "reason",
        Some(a.reason.clone()),
        Some(b.reason.clone()),
    ));
    out.extend(bool_change(
        "watchpoint_hit",
        a.watchpoint_hit,
        b.watchpoint_hit,
    ));
    out.extend(text_change(
        "bss_latch_state",
        Some(a.bss_latch_state.clone()),
        Some(b.bss_latch_state.clone()),
    ));
    exit_kinds(a.exit_kind, b.exit_kind, out);
    out.extend(num_change("elapsed_ms", a.elapsed_ms, b.elapsed_ms));
    vcpus(&a.vcpu_regs, &b.vcpu_regs, out);
}

/// A degraded report against a snapshot: what both hold, the exit kind and the vCPUs.
/// `degraded_is_b`: the degraded report is side `b`.
pub(super) fn degraded_vs_snapshot(
    g: &DegradedFailureDumpReport,
    s: &FailureDumpReport,
    degraded_is_b: bool,
    out: &mut Vec<FieldChange>,
) {
    let sk = s.scx_sched_state.as_ref().map(|st| st.exit_kind);
    let (ka, kb, va, vb) = if degraded_is_b {
        (sk, g.exit_kind, &s.vcpu_regs, &g.vcpu_regs)
    } else {
        (g.exit_kind, sk, &g.vcpu_regs, &s.vcpu_regs)
    };
    exit_kinds(ka, kb, out);
    vcpus(va, vb, out);
}

fn exit_kinds(a: Option<u32>, b: Option<u32>, out: &mut Vec<FieldChange>) {
    out.extend(opt_num_change(
        "exit_kind",
        a.map(Into::into),
        b.map(Into::into),
    ));
}

/// Every program of both reports (struct_ops ones, then the others), by name and type.
pub(super) fn programs(a: &FailureDumpReport, b: &FailureDumpReport) -> Vec<ProgramDiff> {
    fn all(r: &FailureDumpReport) -> Vec<&ProgRuntimeStats> {
        r.prog_runtime_stats
            .iter()
            .chain(&r.aux_prog_runtime_stats)
            .collect()
    }
    let (pa, pb) = (all(a), all(b));
    let mut out = Vec::new();
    for pair in pair_by_key(&pa, &pb, |p| (p.name.as_str(), p.prog_type.as_str())) {
        match pair {
            (Some(i), Some(j)) => {
                let c = counters(Some(pa[i]), Some(pb[j]));
                if !c.is_empty() {
                    out.push(prog(pb[j], Change::Changed, c));
                }
            }
            (None, Some(j)) => out.push(prog(pb[j], Change::Appeared, counters(None, Some(pb[j])))),
            (Some(i), None) => out.push(prog(pa[i], Change::Gone, counters(Some(pa[i]), None))),
            (None, None) => {}
        }
    }
    out
}

fn prog(p: &ProgRuntimeStats, change: Change, counters: Vec<FieldChange>) -> ProgramDiff {
    ProgramDiff {
        name: p.name.clone(),
        prog_type: p.prog_type.clone(),
        change,
        counters,
    }
}

/// `cnt`, `nsecs`, `misses` that differ (all of one side when the other is absent).
fn counters(a: Option<&ProgRuntimeStats>, b: Option<&ProgRuntimeStats>) -> Vec<FieldChange> {
    let get = |f: fn(&ProgRuntimeStats) -> u64| (a.map(|p| f(p).into()), b.map(|p| f(p).into()));
    [
        ("cnt", get(|p| p.cnt)),
        ("nsecs", get(|p| p.nsecs)),
        ("misses", get(|p| p.misses)),
    ]
    .into_iter()
    .filter_map(|(name, (x, y))| opt_num_change(name, x, y))
    .collect()
}

/// Event counters that differ between the last samples.
pub(super) fn events(a: &FailureDumpReport, b: &FailureDumpReport) -> Vec<FieldChange> {
    let (Some(x), Some(y)) = (
        a.event_counter_timeline.last(),
        b.event_counter_timeline.last(),
    ) else {
        return Vec::new();
    };
    let (cx, cy) = (
        EventCounterSample::counters(x),
        EventCounterSample::counters(y),
    );
    cx.iter()
        .zip(cy.iter())
        .filter_map(|((name, va), (_, vb))| num_change(name, *va, *vb))
        .collect()
}
