//! `Display` of the reports: what a person reads in a failing test's output or a terminal.
//!
//! The layout follows `shared/spec/display-format.md`; the crate docs list where it goes
//! further. Output has no trailing newline.

mod maps;
mod value;

use std::fmt::{self, Write};

use crate::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny,
    VcpuRegSnapshot,
};
use value::{push_indent, write_block};

/// Tasks listed under the `task_enrichments` count line.
const MAX_TASK_ROWS: usize = 32;
/// Widest event-counter sparkline; longer timelines are bucketed (max per bucket).
const MAX_SPARK: usize = 64;

impl fmt::Display for FailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sections = report_sections(self);
        if sections.is_empty() {
            return f.write_str("(empty failure dump)");
        }
        f.write_str(sections.join("\n").trim_end_matches('\n'))
    }
}

impl fmt::Display for DualFailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("DualFailureDumpReport: early=");
        match &self.early {
            Some(_) => write!(
                out,
                "present (max_age={}j, threshold={}j)",
                self.early_max_age_jiffies, self.early_threshold_jiffies
            )?,
            None => write!(
                out,
                "absent ({})",
                self.early_skipped_reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            )?,
        }
        writeln!(
            out,
            ", late=({} maps, {} vcpu_regs)",
            self.late.maps.len(),
            self.late.vcpu_regs.len()
        )?;
        if let Some(early) = &self.early {
            out.push_str("\nearly snapshot (half-way):\n");
            indent_into(&mut out, &early.to_string(), 2);
        }
        out.push_str("\nlate snapshot (error-exit):\n");
        indent_into(&mut out, &self.late.to_string(), 2);
        f.write_str(out.trim_end_matches('\n'))
    }
}

impl fmt::Display for DegradedFailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("degraded failure dump:\n");
        writeln!(out, "  reason: {}", self.reason)?;
        let parked = self.vcpu_regs.iter().filter(|r| r.is_some()).count();
        writeln!(out, "  vcpus_parked: {parked}/{}", self.vcpu_regs.len())?;
        for (i, r) in self.vcpu_regs.iter().enumerate() {
            match r {
                Some(r) => writeln!(
                    out,
                    "    vcpu {i}: parked, ip={:#018x} sp={:#018x}",
                    r.instruction_pointer, r.stack_pointer
                )?,
                None => writeln!(out, "    vcpu {i}: not_parked")?,
            }
        }
        writeln!(out, "  watchpoint_hit: {}", self.watchpoint_hit)?;
        writeln!(out, "  bss_latch_state: {}", self.bss_latch_state)?;
        match self.exit_kind {
            Some(k) => writeln!(out, "  exit_kind: {k}")?,
            None => writeln!(out, "  exit_kind: none")?,
        }
        write!(out, "  elapsed_ms: {}", self.elapsed_ms)?;
        f.write_str(&out)
    }
}

impl fmt::Display for FailureDumpReportAny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(r) => r.fmt(f),
            Self::Dual(r) => r.fmt(f),
            Self::Degraded(r) => r.fmt(f),
        }
    }
}

/// Appends `text` with every non-empty line indented by `n`, and a final newline.
fn indent_into(out: &mut String, text: &str, n: usize) {
    for line in text.lines() {
        if !line.is_empty() {
            push_indent(out, n);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// `<section>: <unavailable: reason>`, unless the placeholder line already said it.
fn unavailable(out: &mut String, section: &str, reason: &Option<String>, shown: Option<&str>) {
    if let Some(r) = reason
        && Some(r.as_str()) != shown
    {
        writeln!(out, "{section}: <unavailable: {r}>").unwrap();
    }
}

fn vcpu_regs_line(out: &mut String, i: usize, r: &Option<VcpuRegSnapshot>) {
    match r {
        Some(r) => {
            write!(
                out,
                "  vcpu {i}: ip={:#018x} sp={:#018x} ptroot={:#018x}",
                r.instruction_pointer, r.stack_pointer, r.page_table_root
            )
            .unwrap();
            if let Some(u) = r.user_page_table_root {
                write!(out, " uptroot={u:#018x}").unwrap();
            }
            if let Some(t) = r.tcr_el1 {
                write!(out, " tcr_el1={t:#018x}").unwrap();
            }
            out.push('\n');
        }
        None => writeln!(out, "  vcpu {i}: <unavailable>").unwrap(),
    }
}

/// The sections of a report, each ending in a newline, in display order.
fn report_sections(r: &FailureDumpReport) -> Vec<String> {
    let mut sections = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() {
            sections.push(s);
        }
    };

    if let Some(g) = &r.guest_setup_failure {
        let mut s = String::from("guest setup failure:\n");
        for (label, v) in [
            ("stage", &g.init_stage),
            ("phase", &g.final_guest_phase),
            ("attach outcome", &g.scheduler_attach_outcome),
        ] {
            if !v.is_empty() {
                writeln!(s, "  {label}: {v}").unwrap();
            }
        }
        if g.guest_exit_code != 0 {
            writeln!(s, "  exit code: {}", g.guest_exit_code).unwrap();
        }
        for (label, v) in [
            ("console tail", &g.console_tail),
            ("init log tail", &g.init_log_tail),
            ("scheduler log tail", &g.scheduler_log_tail),
        ] {
            if !v.is_empty() {
                writeln!(s, "  {label}:").unwrap();
                indent_into(&mut s, v.trim_end_matches('\n'), 4);
            }
        }
        push(s);
    }

    // On a placeholder, the reason is said once here and not repeated per section.
    let placeholder_reason = r.is_placeholder.then(|| {
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
    });
    if let Some(reason) = placeholder_reason {
        push(format!("capture unavailable: {reason}\n"));
    }
    let shown = placeholder_reason;

    for m in &r.maps {
        let mut s = String::new();
        maps::write_map(m, &mut s);
        push(s);
    }

    if !r.vcpu_regs.is_empty() {
        let mut s = String::from("vcpu_regs:\n");
        for (i, v) in r.vcpu_regs.iter().enumerate() {
            vcpu_regs_line(&mut s, i, v);
        }
        push(s);
    }

    for a in &r.sdt_allocations {
        let mut s = String::new();
        write!(
            s,
            "sdt_alloc {} (elem_size={}, target_type_id={}, {} entries",
            a.allocator_name,
            a.elem_size,
            a.target_type_id,
            a.entries.len()
        )
        .unwrap();
        if a.skipped_subtrees > 0 {
            write!(s, ", {} subtrees skipped", a.skipped_subtrees).unwrap();
        }
        if a.truncated {
            s.push_str(", truncated");
        }
        s.push_str(")\n");
        if !a.payload_type_reason.is_empty() {
            writeln!(s, "  payload type: {}", a.payload_type_reason).unwrap();
        }
        for e in &a.entries {
            let head = format!("idx={} genn={} addr={:#010x}: ", e.idx, e.genn, e.user_addr);
            write_block(&e.payload, 0, 2, &head, &mut s);
        }
        push(s);
    }
    let mut s = String::new();
    unavailable(&mut s, "sdt_alloc", &r.sdt_alloc_unavailable, shown);
    push(s);
    let st = &r.scx_static_ranges;
    if !st.is_empty() {
        let mut s = format!("scx_static: {} ranges", st.ranges.len());
        if st.skipped > 0 {
            write!(s, ", {} skipped", st.skipped).unwrap();
        }
        s.push('\n');
        for x in &st.ranges {
            writeln!(
                s,
                "  {}: start_low32={:#010x} size={} capacity={}",
                x.instance_name, x.start_low32, x.size, x.capacity
            )
            .unwrap();
        }
        push(s);
    }

    let mut s = String::new();
    if !r.prog_runtime_stats.is_empty() {
        s.push_str("prog_runtime_stats:\n");
        for p in &r.prog_runtime_stats {
            write!(
                s,
                "  {}: cnt={} nsecs={} misses={}",
                p.name, p.cnt, p.nsecs, p.misses
            )
            .unwrap();
            if p.cnt > 0 {
                write!(
                    s,
                    " ns/call={:.3} miss_rate={:.4}",
                    p.nsecs as f64 / p.cnt as f64,
                    p.misses as f64 / p.cnt as f64
                )
                .unwrap();
            }
            s.push('\n');
        }
    }
    unavailable(
        &mut s,
        "prog_runtime_stats",
        &r.prog_runtime_stats_unavailable,
        shown,
    );
    push(s);

    push(counts_section(r, shown));
    push(scx_walker_section(r, shown));
    push(timeline_section(r));

    if !r.vcpu_perf_at_freeze.is_empty() {
        let mut s = String::from("vcpu_perf_at_freeze:\n");
        for (i, p) in r.vcpu_perf_at_freeze.iter().enumerate() {
            match p {
                Some(p) => {
                    write!(
                        s,
                        "  vcpu {i}: cycles={} instructions={}",
                        p.cycles, p.instructions
                    )
                    .unwrap();
                    if p.cycles > 0 {
                        write!(s, " ipc={:.2}", p.instructions as f64 / p.cycles as f64).unwrap();
                    }
                    write!(
                        s,
                        " cache_misses={} branch_misses={}",
                        p.cache_misses, p.branch_misses
                    )
                    .unwrap();
                    if let Some(t) = p.task_clock_ns {
                        write!(s, " task_clock={t}ns").unwrap();
                    }
                    s.push('\n');
                }
                None => writeln!(s, "  vcpu {i}: <unavailable>").unwrap(),
            }
        }
        push(s);
    }

    if let Some(p) = &r.probe_counters {
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
        let nonzero: Vec<String> = all
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if nonzero.is_empty() {
            push("probe_counters: all zero\n".to_string());
        } else {
            push(format!("probe_counters: {}\n", nonzero.join(" ")));
        }
    }

    if r.dump_truncated_at_us.is_some() || r.maps_truncated > 0 {
        let mut s = String::from("dump truncated: ");
        if let Some(us) = r.dump_truncated_at_us {
            write!(s, "deadline crossed at {us}us ").unwrap();
        }
        writeln!(s, "({} map(s) skipped)", r.maps_truncated).unwrap();
        push(s);
    }
    sections
}

fn counts_section(r: &FailureDumpReport, shown: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(name) = &r.active_obj_name {
        writeln!(
            s,
            "scheduler: {name} ({} active maps)",
            r.active_map_kvas.len()
        )
        .unwrap();
    } else if !r.active_map_kvas.is_empty() {
        writeln!(s, "scheduler: {} active maps", r.active_map_kvas.len()).unwrap();
    }
    if !r.per_cpu_time.is_empty() {
        writeln!(s, "per_cpu_time: {} CPUs captured", r.per_cpu_time.len()).unwrap();
    }
    if !r.cgroup_psi.is_empty() {
        writeln!(s, "cgroup_psi: {} cgroups captured", r.cgroup_psi.len()).unwrap();
    }
    if !r.per_node_numa.is_empty() {
        writeln!(s, "per_node_numa: {} nodes captured", r.per_node_numa.len()).unwrap();
    }
    unavailable(&mut s, "per_node_numa", &r.per_node_numa_unavailable, shown);
    if !r.task_enrichments.is_empty() {
        writeln!(
            s,
            "task_enrichments: {} tasks captured",
            r.task_enrichments.len()
        )
        .unwrap();
        let rows = &r.task_enrichments[..r.task_enrichments.len().min(MAX_TASK_ROWS)];
        let headers: Vec<String> = [
            "pid", "tgid", "comm", "class", "prio", "nvcsw", "nivcsw", "utime", "stime",
        ]
        .map(String::from)
        .to_vec();
        let cols: Vec<Vec<String>> = vec![
            rows.iter().map(|t| t.pid.to_string()).collect(),
            rows.iter().map(|t| t.tgid.to_string()).collect(),
            rows.iter().map(|t| t.comm.clone()).collect(),
            rows.iter().map(|t| t.sched_class.clone()).collect(),
            rows.iter().map(|t| t.prio.to_string()).collect(),
            rows.iter().map(|t| t.nvcsw.to_string()).collect(),
            rows.iter().map(|t| t.nivcsw.to_string()).collect(),
            rows.iter().map(|t| t.utime.to_string()).collect(),
            rows.iter().map(|t| t.stime.to_string()).collect(),
        ];
        maps::write_table(2, &headers, &cols, usize::MAX, &mut s);
        if r.task_enrichments.len() > rows.len() {
            writeln!(s, "  … {} more", r.task_enrichments.len() - rows.len()).unwrap();
        }
    }
    unavailable(
        &mut s,
        "task_enrichments",
        &r.task_enrichments_unavailable,
        shown,
    );
    s
}

fn scx_walker_section(r: &FailureDumpReport, shown: Option<&str>) -> String {
    let mut s = String::new();
    let captured =
        !r.rq_scx_states.is_empty() || !r.dsq_states.is_empty() || r.scx_sched_state.is_some();
    if captured {
        writeln!(
            s,
            "scx_walker: rq_scx={} dsq={} sched={}",
            r.rq_scx_states.len(),
            r.dsq_states.len(),
            if r.scx_sched_state.is_some() {
                "captured"
            } else {
                "absent"
            }
        )
        .unwrap();
        if let Some(x) = &r.scx_sched_state {
            write!(
                s,
                "  sched: aborting={} bypass_depth={} exit_kind={}",
                x.aborting, x.bypass_depth, x.exit_kind
            )
            .unwrap();
            if x.watchdog_timeout != 0 {
                write!(s, " watchdog_timeout={}", x.watchdog_timeout).unwrap();
            }
            if !x.source.is_empty() {
                write!(s, " source={}", x.source).unwrap();
            }
            s.push('\n');
        }
        // Only queues that hold something: the rest is in the JSON.
        for q in r
            .rq_scx_states
            .iter()
            .filter(|q| q.nr_running > 0 || q.curr_pid != 0)
        {
            write!(
                s,
                "  rq cpu {}: nr_running={} flags={:#x}",
                q.cpu, q.nr_running, q.flags
            )
            .unwrap();
            if q.curr_pid != 0 {
                write!(s, " curr={} ({})", q.curr_pid, q.curr_comm).unwrap();
            }
            if !q.runnable_task_kvas.is_empty() {
                write!(s, " runnable={}", q.runnable_task_kvas.len()).unwrap();
                if q.runnable_truncated {
                    s.push('+');
                }
            }
            s.push('\n');
        }
        for d in r.dsq_states.iter().filter(|d| d.nr > 0) {
            write!(
                s,
                "  dsq {:#x} ({}): nr={} seq={}",
                d.id, d.origin, d.nr, d.seq
            )
            .unwrap();
            if d.truncated {
                s.push_str(" (tasks truncated)");
            }
            s.push('\n');
        }
    }
    unavailable(&mut s, "scx_walker", &r.scx_walker_unavailable, shown);
    s
}

fn timeline_section(r: &FailureDumpReport) -> String {
    let t = &r.event_counter_timeline;
    let (Some(first), Some(last)) = (t.first(), t.last()) else {
        return String::new();
    };
    let mut s = format!(
        "event_counter_timeline: {} samples ({}–{}ms)\n",
        t.len(),
        first.elapsed_ms,
        last.elapsed_ms
    );
    let names = first.counters().map(|(n, _)| n);
    for (c, name) in names.iter().enumerate() {
        let series: Vec<i64> = t.iter().map(|x| x.counters()[c].1).collect();
        if series.iter().all(|&v| v == 0) {
            continue;
        }
        writeln!(
            s,
            "{name:>30} {} (last={})",
            sparkline(&series),
            series[series.len() - 1]
        )
        .unwrap();
    }
    s
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
