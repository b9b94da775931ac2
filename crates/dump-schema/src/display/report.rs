//! The sections of a [`FailureDumpReport`], one function each, in display order.

use std::fmt::{self, Write};

use super::DisplayOptions;
use super::layout::write_table;
use super::maps;
use super::text::{Sections, esc, guest_lines};
use super::value::{Cx, write_block};
use crate::{FailureDumpReport, VcpuRegSnapshot};

/// Tasks listed under the `task_enrichments` count line (unless `full`).
const MAX_TASK_ROWS: usize = 32;
/// Widest event-counter sparkline; longer timelines are bucketed (max per bucket).
const MAX_SPARK: usize = 64;

/// The whole report: the summary (what failed and why, who waits; see `summary.rs`),
/// then its sections separated by blank lines; or `(empty failure dump)`.
pub(super) fn write_report(
    r: &FailureDumpReport,
    o: &DisplayOptions,
    out: &mut dyn Write,
) -> fmt::Result {
    if super::summary::has_scheduler_facts(r) {
        super::summary::write_summary(r, out)?;
        out.write_char('\n')?;
    }
    write_body(r, o, out)
}

/// The sections without the summary.
pub(super) fn write_body(
    r: &FailureDumpReport,
    o: &DisplayOptions,
    out: &mut dyn Write,
) -> fmt::Result {
    let mut s = Sections::new(out);
    let mut cx = Cx::new(o);
    guest_setup_failure(r, s.next())?;
    // On a placeholder, the reason is said once here and not repeated per section.
    let shown = placeholder_reason(r);
    if let Some(reason) = shown {
        writeln!(s.next(), "capture unavailable: {}", esc(reason))?;
    }
    for m in &r.maps {
        maps::write_map(&mut cx, m, s.next())?;
    }
    vcpu_regs(r, s.next())?;
    sdt_allocations(&mut cx, r, &mut s)?;
    unavailable(s.next(), "sdt_alloc", &r.sdt_alloc_unavailable, shown)?;
    scx_static(r, s.next())?;
    prog_runtime_stats(r, shown, s.next())?;
    counts(r, o, shown, s.next())?;
    scx_walker(r, o, shown, s.next())?;
    timeline(r, s.next())?;
    vcpu_perf(r, s.next())?;
    probe_counters(r, s.next())?;
    truncation(r, s.next())?;
    if !s.wrote() {
        s.write_str("(empty failure dump)")?;
    }
    Ok(())
}

/// The reason a placeholder report gives, said once instead of per section.
fn placeholder_reason(r: &FailureDumpReport) -> Option<&str> {
    r.is_placeholder.then(|| {
        [
            &r.scx_walker_unavailable,
            &r.task_enrichments_unavailable,
            &r.prog_runtime_stats_unavailable,
            &r.sdt_alloc_unavailable,
            &r.per_node_numa_unavailable,
        ]
        .into_iter()
        .find_map(|x| x.as_deref())
        .unwrap_or("no reason recorded")
    })
}

/// `<section>: <unavailable: reason>`, unless the placeholder line already said it.
fn unavailable(
    out: &mut dyn Write,
    section: &str,
    reason: &Option<String>,
    shown: Option<&str>,
) -> fmt::Result {
    match reason {
        Some(r) if Some(r.as_str()) != shown => {
            writeln!(out, "{section}: <unavailable: {}>", esc(r))
        }
        _ => Ok(()),
    }
}

fn guest_setup_failure(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let Some(g) = &r.guest_setup_failure else {
        return Ok(());
    };
    out.write_str("guest setup failure:\n")?;
    for (label, v) in [
        ("stage", &g.init_stage),
        ("phase", &g.final_guest_phase),
        ("attach outcome", &g.scheduler_attach_outcome),
    ] {
        if !v.is_empty() {
            writeln!(out, "  {label}: {}", esc(v))?;
        }
    }
    if g.guest_exit_code != 0 {
        writeln!(out, "  exit code: {}", g.guest_exit_code)?;
    }
    for (label, v) in [
        ("console tail", &g.console_tail),
        ("init log tail", &g.init_log_tail),
        ("scheduler log tail", &g.scheduler_log_tail),
    ] {
        if !v.is_empty() {
            writeln!(out, "  {label}:")?;
            guest_lines(out, v.trim_end_matches('\n'), 4)?;
        }
    }
    Ok(())
}

fn vcpu_regs(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    if r.vcpu_regs.is_empty() {
        return Ok(());
    }
    out.write_str("vcpu_regs:\n")?;
    for (i, v) in r.vcpu_regs.iter().enumerate() {
        vcpu_regs_line(out, i, v)?;
    }
    Ok(())
}

fn vcpu_regs_line(out: &mut dyn Write, i: usize, r: &Option<VcpuRegSnapshot>) -> fmt::Result {
    let Some(r) = r else {
        return writeln!(out, "  vcpu {i}: <unavailable>");
    };
    write!(
        out,
        "  vcpu {i}: ip={:#018x} sp={:#018x} ptroot={:#018x}",
        r.instruction_pointer, r.stack_pointer, r.page_table_root
    )?;
    if let Some(u) = r.user_page_table_root {
        write!(out, " uptroot={u:#018x}")?;
    }
    if let Some(t) = r.tcr_el1 {
        write!(out, " tcr_el1={t:#018x}")?;
    }
    out.write_char('\n')
}

/// One section per allocator.
fn sdt_allocations(cx: &mut Cx, r: &FailureDumpReport, s: &mut Sections<'_>) -> fmt::Result {
    for a in &r.sdt_allocations {
        let out = s.next();
        write!(
            out,
            "sdt_alloc {} (elem_size={}, target_type_id={}, {} entries",
            esc(&a.allocator_name),
            a.elem_size,
            a.target_type_id,
            a.entries.len()
        )?;
        if a.skipped_subtrees > 0 {
            write!(out, ", {} subtrees skipped", a.skipped_subtrees)?;
        }
        if a.truncated {
            out.write_str(", truncated")?;
        }
        out.write_str(")\n")?;
        if !a.payload_type_reason.is_empty() {
            writeln!(out, "  payload type: {}", esc(&a.payload_type_reason))?;
        }
        for e in &a.entries {
            let head = format!("idx={} genn={} addr={:#010x}: ", e.idx, e.genn, e.user_addr);
            write_block(cx, &e.payload, 0, 2, &head, out)?;
        }
    }
    Ok(())
}

fn scx_static(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let st = &r.scx_static_ranges;
    if st.is_empty() {
        return Ok(());
    }
    write!(out, "scx_static: {} ranges", st.ranges.len())?;
    if st.skipped > 0 {
        write!(out, ", {} skipped", st.skipped)?;
    }
    out.write_char('\n')?;
    for x in &st.ranges {
        writeln!(
            out,
            "  {}: start_low32={:#010x} size={} capacity={}",
            esc(&x.instance_name),
            x.start_low32,
            x.size,
            x.capacity
        )?;
    }
    Ok(())
}

fn prog_runtime_stats(
    r: &FailureDumpReport,
    shown: Option<&str>,
    out: &mut dyn Write,
) -> fmt::Result {
    if !r.prog_runtime_stats.is_empty() {
        out.write_str("prog_runtime_stats:\n")?;
    }
    for p in &r.prog_runtime_stats {
        write!(
            out,
            "  {}: cnt={} nsecs={} misses={}",
            esc(&p.name),
            p.cnt,
            p.nsecs,
            p.misses
        )?;
        if p.cnt > 0 {
            write!(
                out,
                " ns/call={:.3} miss_rate={:.4}",
                p.nsecs as f64 / p.cnt as f64,
                p.misses as f64 / p.cnt as f64
            )?;
        }
        out.write_char('\n')?;
    }
    unavailable(
        out,
        "prog_runtime_stats",
        &r.prog_runtime_stats_unavailable,
        shown,
    )
}

/// The scheduler line and the count lines, with the task table.
fn counts(
    r: &FailureDumpReport,
    o: &DisplayOptions,
    shown: Option<&str>,
    out: &mut dyn Write,
) -> fmt::Result {
    if let Some(name) = &r.active_obj_name {
        writeln!(
            out,
            "scheduler: {} ({} active maps)",
            esc(name),
            r.active_map_kvas.len()
        )?;
    } else if !r.active_map_kvas.is_empty() {
        writeln!(out, "scheduler: {} active maps", r.active_map_kvas.len())?;
    }
    if !r.per_cpu_time.is_empty() {
        writeln!(out, "per_cpu_time: {} CPUs captured", r.per_cpu_time.len())?;
    }
    if !r.cgroup_psi.is_empty() {
        writeln!(out, "cgroup_psi: {} cgroups captured", r.cgroup_psi.len())?;
    }
    if !r.per_node_numa.is_empty() {
        writeln!(
            out,
            "per_node_numa: {} nodes captured",
            r.per_node_numa.len()
        )?;
    }
    unavailable(out, "per_node_numa", &r.per_node_numa_unavailable, shown)?;
    tasks(r, o, out)?;
    unavailable(
        out,
        "task_enrichments",
        &r.task_enrichments_unavailable,
        shown,
    )
}

/// `task_enrichments: N tasks captured` and a table of the first [`MAX_TASK_ROWS`] (all of
/// them when `full`).
fn tasks(r: &FailureDumpReport, o: &DisplayOptions, out: &mut dyn Write) -> fmt::Result {
    if r.task_enrichments.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "task_enrichments: {} tasks captured",
        r.task_enrichments.len()
    )?;
    let shown = if o.full {
        r.task_enrichments.len()
    } else {
        r.task_enrichments.len().min(MAX_TASK_ROWS)
    };
    let rows = &r.task_enrichments[..shown];
    let headers: Vec<String> = [
        "pid", "tgid", "comm", "class", "prio", "nvcsw", "nivcsw", "utime", "stime",
    ]
    .map(String::from)
    .to_vec();
    let cols: Vec<Vec<String>> = vec![
        rows.iter().map(|t| t.pid.to_string()).collect(),
        rows.iter().map(|t| t.tgid.to_string()).collect(),
        rows.iter().map(|t| esc(&t.comm).to_string()).collect(),
        rows.iter()
            .map(|t| esc(&t.sched_class).to_string())
            .collect(),
        rows.iter().map(|t| t.prio.to_string()).collect(),
        rows.iter().map(|t| t.nvcsw.to_string()).collect(),
        rows.iter().map(|t| t.nivcsw.to_string()).collect(),
        rows.iter().map(|t| t.utime.to_string()).collect(),
        rows.iter().map(|t| t.stime.to_string()).collect(),
    ];
    write_table(2, &headers, &cols, usize::MAX, out)?;
    if r.task_enrichments.len() > rows.len() {
        writeln!(out, "  … {} more", r.task_enrichments.len() - rows.len())?;
    }
    Ok(())
}

fn scx_walker(
    r: &FailureDumpReport,
    o: &DisplayOptions,
    shown: Option<&str>,
    out: &mut dyn Write,
) -> fmt::Result {
    let captured =
        !r.rq_scx_states.is_empty() || !r.dsq_states.is_empty() || r.scx_sched_state.is_some();
    if captured {
        writeln!(
            out,
            "scx_walker: rq_scx={} dsq={} sched={}",
            r.rq_scx_states.len(),
            r.dsq_states.len(),
            if r.scx_sched_state.is_some() {
                "captured"
            } else {
                "absent"
            }
        )?;
        sched_line(r, out)?;
        run_queues(r, o, out)?;
    }
    unavailable(out, "scx_walker", &r.scx_walker_unavailable, shown)
}

fn sched_line(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let Some(x) = &r.scx_sched_state else {
        return Ok(());
    };
    write!(
        out,
        "  sched: aborting={} bypass_depth={} exit_kind={}",
        x.aborting, x.bypass_depth, x.exit_kind
    )?;
    if x.watchdog_timeout != 0 {
        write!(out, " watchdog_timeout={}", x.watchdog_timeout)?;
    }
    if !x.source.is_empty() {
        write!(out, " source={}", esc(&x.source))?;
    }
    out.write_char('\n')
}

/// Run queues and DSQs that hold something (all of them when `full`): the rest is in the
/// JSON.
fn run_queues(r: &FailureDumpReport, o: &DisplayOptions, out: &mut dyn Write) -> fmt::Result {
    for q in r
        .rq_scx_states
        .iter()
        .filter(|q| o.full || q.nr_running > 0 || q.curr_pid != 0)
    {
        write!(
            out,
            "  rq cpu {}: nr_running={} flags={:#x}",
            q.cpu, q.nr_running, q.flags
        )?;
        if q.curr_pid != 0 {
            write!(out, " curr={} ({})", q.curr_pid, esc(&q.curr_comm))?;
        }
        if !q.runnable_task_kvas.is_empty() {
            write!(out, " runnable={}", q.runnable_task_kvas.len())?;
            if q.runnable_truncated {
                out.write_char('+')?;
            }
        }
        out.write_char('\n')?;
    }
    for d in r.dsq_states.iter().filter(|d| o.full || d.nr > 0) {
        write!(
            out,
            "  dsq {:#x} ({}): nr={} seq={}",
            d.id,
            esc(&d.origin),
            d.nr,
            d.seq
        )?;
        if d.truncated {
            out.write_str(" (tasks truncated)")?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

fn timeline(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let t = &r.event_counter_timeline;
    let (Some(first), Some(last)) = (t.first(), t.last()) else {
        return Ok(());
    };
    writeln!(
        out,
        "event_counter_timeline: {} samples ({}–{}ms)",
        t.len(),
        first.elapsed_ms,
        last.elapsed_ms
    )?;
    let names = first.counters().map(|(n, _)| n);
    for (c, name) in names.iter().enumerate() {
        let series: Vec<i64> = t.iter().map(|x| x.counters()[c].1).collect();
        if series.iter().all(|&v| v == 0) {
            continue;
        }
        writeln!(
            out,
            "{name:>30} {} (last={})",
            sparkline(&series),
            series[series.len() - 1]
        )?;
    }
    Ok(())
}

/// `▁▂▃▄▅▆▇█` scaled from the series' minimum to its maximum (`▄` throughout when constant),
/// at most [`MAX_SPARK`] wide.
fn sparkline(series: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let buckets = series.len().min(MAX_SPARK);
    let points: Vec<i64> = (0..buckets)
        .map(|b| {
            let lo = b * series.len() / buckets;
            let hi = ((b + 1) * series.len() / buckets).max(lo + 1);
            series[lo..hi].iter().copied().max().unwrap_or(0)
        })
        .collect();
    let min = points.iter().copied().min().unwrap_or(0);
    let max = points.iter().copied().max().unwrap_or(0);
    if min == max {
        // No variation: a flat mid-height line, so a constant non-zero counter does not read
        // as a floor of zeros (an all-zero series is not printed at all).
        return std::iter::repeat_n(BARS[3], points.len()).collect();
    }
    let span = (max as i128 - min as i128).max(1);
    points
        .iter()
        .map(|&v| BARS[((v as i128 - min as i128) * 7 / span) as usize])
        .collect()
}

fn vcpu_perf(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    if r.vcpu_perf_at_freeze.is_empty() {
        return Ok(());
    }
    out.write_str("vcpu_perf_at_freeze:\n")?;
    for (i, p) in r.vcpu_perf_at_freeze.iter().enumerate() {
        let Some(p) = p else {
            writeln!(out, "  vcpu {i}: <unavailable>")?;
            continue;
        };
        write!(
            out,
            "  vcpu {i}: cycles={} instructions={}",
            p.cycles, p.instructions
        )?;
        if p.cycles > 0 {
            write!(out, " ipc={:.2}", p.instructions as f64 / p.cycles as f64)?;
        }
        write!(
            out,
            " cache_misses={} branch_misses={}",
            p.cache_misses, p.branch_misses
        )?;
        if let Some(t) = p.task_clock_ns {
            write!(out, " task_clock={t}ns")?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

fn probe_counters(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    let Some(p) = &r.probe_counters else {
        return Ok(());
    };
    let all = [
        ("probe_count", p.probe_count),
        ("kprobe_returns", p.kprobe_returns),
        ("meta_miss", p.meta_miss),
        ("ringbuf_drops", p.ringbuf_drops),
        ("timeline_count", p.timeline_count),
        ("timeline_drops", p.timeline_drops),
        ("pi_count", p.pi_count),
        ("pi_orphan_fexits", p.pi_orphan_fexits),
        ("pi_class_change_count", p.pi_class_change_count),
        ("pi_drops", p.pi_drops),
        ("lock_contend_count", p.lock_contend_count),
        ("lock_contend_drops", p.lock_contend_drops),
        ("preempt_disable_count", p.preempt_disable_count),
        ("preempt_enable_count", p.preempt_enable_count),
        ("trigger_count", p.trigger_count),
    ];
    out.write_str("probe_counters:")?;
    let mut any = false;
    for (n, v) in all.iter().filter(|(_, v)| *v != 0) {
        write!(out, " {n}={v}")?;
        any = true;
    }
    if !any {
        out.write_str(" all zero")?;
    }
    out.write_char('\n')
}

/// `dump truncated: [deadline crossed at Nus ](K map(s) skipped)`.
fn truncation(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    if r.dump_truncated_at_us.is_none() && r.maps_truncated == 0 {
        return Ok(());
    }
    out.write_str("dump truncated: ")?;
    if let Some(us) = r.dump_truncated_at_us {
        write!(out, "deadline crossed at {us}us ")?;
    }
    writeln!(out, "({} map(s) skipped)", r.maps_truncated)
}
