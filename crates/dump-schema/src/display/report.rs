//! The sections of a [`FailureDumpReport`], one function each, in display order (see
//! `filter::Section`). In the default view long parts are capped, each saying which filter
//! shows the rest; a filter prints only what it selects, uncapped.

use std::fmt::{self, Write};

use super::filter::{Section, View};
use super::layout::write_table;
use super::maps;
use super::names::Names;
use super::text::{Capped, Sections, esc, guest_lines};
use super::value::{Cx, write_block};
use crate::{FailureDumpReport, SOFTIRQ_NAMES, VcpuRegSnapshot};

/// Widest event-counter sparkline; longer timelines are bucketed (max per bucket).
const MAX_SPARK: usize = 64;
/// Lines of one map block in the default view.
const MAX_MAP_LINES: usize = 40;
/// Lines of one sdt allocator in the default view.
const MAX_SDT_LINES: usize = 24;
/// Lines of the kernel's dump in the default view.
const MAX_KERNEL_DUMP_LINES: usize = 40;
/// Capture notes in the default view.
const MAX_NOTES: usize = 20;

/// The whole report: the summary (what failed and why, who waits; see `summary.rs`),
/// then its sections separated by blank lines; or `(empty failure dump)`.
pub(super) fn write_report(
    r: &FailureDumpReport,
    v: &View<'_>,
    out: &mut dyn Write,
) -> fmt::Result {
    let mut wrote = false;
    if v.shows(Section::Summary) && super::summary::has_scheduler_facts(r) {
        super::summary::write_summary(r, out)?;
        out.write_char('\n')?;
        wrote = true;
    }
    if write_body(r, v, out)? {
        legend(v, out)
    } else if wrote {
        Ok(())
    } else {
        out.write_str(if v.is_default() {
            "(empty failure dump)"
        } else {
            "(nothing selected)"
        })
    }
}

/// The last line of the default view: what it leaves out and what shows it.
pub(super) fn legend(v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    if !v.cut.get() {
        return Ok(());
    }
    out.write_str(
        "\n(default view: long parts cut short, each naming the filter that shows the rest; \
         --full shows everything unfolded)\n",
    )
}

/// The sections without the summary; whether anything was written.
pub(super) fn write_body(
    r: &FailureDumpReport,
    v: &View<'_>,
    out: &mut dyn Write,
) -> Result<bool, fmt::Error> {
    let names = Names::of(r);
    let mut cx = Cx::new(&v.opts, &names);
    let mut s = Sections::new(out);
    // On a placeholder, the reason is said once here and not repeated per section.
    let shown = placeholder_reason(r);
    if v.shows(Section::Setup) {
        guest_setup_failure(r, s.next())?;
        if let Some(reason) = shown {
            writeln!(s.next(), "capture unavailable: {}", esc(reason))?;
        }
    }
    if v.shows(Section::Runqueues) {
        let out = s.next();
        super::runqueues::write(r, &names, v, out)?;
        unavailable(out, "scx_walker", &r.scx_walker_unavailable, shown)?;
    }
    if v.shows(Section::Exit) {
        exit(r, v, s.next())?;
    }
    if v.shows(Section::Tasks) {
        let out = s.next();
        super::tasks::table(r, v, out)?;
        unavailable(
            out,
            "task_enrichments",
            &r.task_enrichments_unavailable,
            shown,
        )?;
    }
    if !v.filter.tasks.is_empty() {
        super::tasks::blocks(r, &mut cx, v, s.next())?;
    }
    for m in r.maps.iter().filter(|m| v.shows_map(&m.name)) {
        map(&mut cx, v, m, s.next())?;
    }
    write_rest(r, v, &mut cx, shown, &mut s)?;
    Ok(s.wrote())
}

/// The sections after the maps.
fn write_rest(
    r: &FailureDumpReport,
    v: &View<'_>,
    cx: &mut Cx<'_>,
    shown: Option<&str>,
    s: &mut Sections<'_>,
) -> fmt::Result {
    if v.shows(Section::VcpuRegs) {
        vcpu_regs(r, s.next())?;
    }
    if v.shows(Section::Sdt) {
        sdt_allocations(cx, v, r, s)?;
        unavailable(s.next(), "sdt_alloc", &r.sdt_alloc_unavailable, shown)?;
        scx_static(r, s.next())?;
    }
    if v.shows(Section::Programs) {
        prog_runtime_stats(r, shown, s.next())?;
    }
    counts(r, v, shown, s)?;
    if v.shows(Section::Timeline) {
        timeline(r, v, s.next())?;
    }
    if v.shows(Section::VcpuPerf) {
        vcpu_perf(r, v, s.next())?;
    }
    if v.shows(Section::ProbeCounters) {
        probe_counters(r, s.next())?;
    }
    if v.shows(Section::Notes) {
        notes(r, v, s.next())?;
    }
    Ok(())
}

/// The early snapshot of a dual report in the default view: its run queues, and what shows
/// the rest.
pub(super) fn write_early(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    let names = Names::of(r);
    super::runqueues::write(r, &names, v, out)?;
    v.note_cut();
    writeln!(
        out,
        "({} maps, {} tasks and the other sections of this snapshot: --section NAME, --map NAME, \
         --task PID|COMM or --full)",
        r.maps.len(),
        r.task_enrichments.len()
    )
}

/// One map block; in the default view cut at [`MAX_MAP_LINES`] lines, saying how many are
/// left and that `--map NAME` shows them.
fn map(
    cx: &mut Cx<'_>,
    v: &View<'_>,
    m: &crate::FailureDumpMap,
    out: &mut dyn Write,
) -> fmt::Result {
    let limit = if v.caps() { MAX_MAP_LINES } else { usize::MAX };
    let mut c = Capped::new(out, limit);
    maps::write_map(cx, m, !v.caps(), &mut c)?;
    let hidden = c.hidden();
    if hidden > 0 {
        v.note_cut();
        writeln!(
            c.inner(),
            "  … {hidden} more lines (--map {})",
            esc(&m.name)
        )?;
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

/// The exit info in full: kind, code, reason, message, trigger, every backtrace frame, and
/// the kernel's debug dump (its first [`MAX_KERNEL_DUMP_LINES`] lines in the default view).
fn exit(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    let Some(e) = &r.exit_info else {
        return Ok(());
    };
    write!(out, "exit: {} ({})", esc(&e.kind_name), e.kind)?;
    if let Some(c) = e.exit_code {
        write!(out, " exit_code={c}")?;
    }
    writeln!(out, " source={}", esc(&e.source))?;
    for (label, text) in [
        ("reason", &e.reason),
        ("msg", &e.msg),
        ("unavailable", &e.unavailable),
    ] {
        if let Some(t) = text {
            writeln!(out, "  {label}: {}", esc(t))?;
        }
    }
    if let Some(t) = &e.trigger {
        write!(out, "  trigger: CPU {}", t.cpu)?;
        match (&t.comm, t.pid) {
            (Some(c), Some(p)) => write!(out, " {}[{p}]", esc(c))?,
            (None, Some(p)) => write!(out, " pid {p}")?,
            _ => {}
        }
        out.write_char('\n')?;
    }
    if !e.backtrace.is_empty() {
        out.write_str("  backtrace:\n")?;
    }
    for f in &e.backtrace {
        out.write_str("    ")?;
        match &f.symbol {
            Some(s) => write!(out, "{}", esc(s))?,
            None => write!(out, "{:#x}", f.addr)?,
        }
        if let Some(o) = f.offset {
            write!(out, "+{o:#x}")?;
        }
        if let Some(sz) = f.size {
            write!(out, "/{sz:#x}")?;
        }
        if f.symbol.is_some() {
            write!(out, " ({:#x})", f.addr)?;
        }
        out.write_char('\n')?;
    }
    let Some(dump) = &e.kernel_dump else {
        return Ok(());
    };
    let lines = dump.lines().count();
    write!(out, "  the kernel's dump ({lines} lines")?;
    if e.kernel_dump_truncated {
        out.write_str(", cut short by the kernel")?;
    }
    out.write_str("):\n")?;
    let limit = if v.caps() {
        MAX_KERNEL_DUMP_LINES
    } else {
        usize::MAX
    };
    guest_lines(out, dump.lines().take(limit), 4)?;
    if lines > limit {
        v.note_cut();
        writeln!(out, "    … {} more lines (--section exit)", lines - limit)?;
    }
    Ok(())
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
            guest_lines(out, v.trim_end_matches('\n').lines(), 4)?;
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

/// One section per allocator; in the default view each cut at [`MAX_SDT_LINES`] lines.
fn sdt_allocations(
    cx: &mut Cx<'_>,
    v: &View<'_>,
    r: &FailureDumpReport,
    s: &mut Sections<'_>,
) -> fmt::Result {
    let limit = if v.caps() { MAX_SDT_LINES } else { usize::MAX };
    for a in &r.sdt_allocations {
        let mut out = Capped::new(s.next(), limit);
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
            write_block(cx, &e.payload, 0, 2, &head, &mut out)?;
        }
        let hidden = out.hidden();
        if hidden > 0 {
            v.note_cut();
            writeln!(out.inner(), "  … {hidden} more lines (--section sdt)")?;
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

/// `  <name>: cnt=N nsecs=N misses=N[ ns/call=… miss_rate=…][ type=…]`.
fn prog_line(out: &mut dyn Write, p: &crate::ProgRuntimeStats) -> fmt::Result {
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
    if !p.prog_type.is_empty() {
        write!(out, " type={}", esc(&p.prog_type))?;
    }
    out.write_char('\n')
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
        prog_line(out, p)?;
    }
    if !r.aux_prog_runtime_stats.is_empty() {
        out.write_str("other programs of the scheduler:\n")?;
    }
    for p in &r.aux_prog_runtime_stats {
        prog_line(out, p)?;
    }
    unavailable(
        out,
        "prog_runtime_stats",
        &r.prog_runtime_stats_unavailable,
        shown,
    )
}

/// The scheduler object and the sections the default view only counts, one line each
/// saying which filter shows them; in full when selected (or `full`).
fn counts(
    r: &FailureDumpReport,
    v: &View<'_>,
    shown: Option<&str>,
    s: &mut Sections<'_>,
) -> fmt::Result {
    let whole = |sec| v.selected(sec) || (v.is_default() && v.opts.full);
    // The default view prints these as one block of count lines.
    let grouped = v.caps();
    if grouped {
        s.next();
    }
    if v.shows(Section::Scheduler) {
        scheduler(r, v, whole(Section::Scheduler), block(s, grouped))?;
    }
    let cpus = &r.per_cpu_time;
    if v.shows(Section::CpuTime) && !cpus.is_empty() {
        let out = block(s, grouped);
        writeln!(
            out,
            "per_cpu_time: {} CPUs captured{}",
            cpus.len(),
            more(v, "cpu_time")
        )?;
        if whole(Section::CpuTime) {
            cpu_time(r, out)?;
        }
    }
    if v.shows(Section::Cgroups) && !r.cgroup_psi.is_empty() {
        let out = block(s, grouped);
        writeln!(
            out,
            "cgroup_psi: {} cgroups captured{}",
            r.cgroup_psi.len(),
            more(v, "cgroups")
        )?;
        if whole(Section::Cgroups) {
            cgroups(r, out)?;
        }
    }
    if v.shows(Section::Numa) {
        let out = block(s, grouped);
        if !r.per_node_numa.is_empty() {
            writeln!(
                out,
                "per_node_numa: {} nodes captured{}",
                r.per_node_numa.len(),
                more(v, "numa")
            )?;
            if whole(Section::Numa) {
                numa(r, out)?;
            }
        }
        unavailable(out, "per_node_numa", &r.per_node_numa_unavailable, shown)?;
    }
    Ok(())
}

/// The sections writer, starting a new section unless `grouped`.
fn block<'a, 'w>(s: &'a mut Sections<'w>, grouped: bool) -> &'a mut Sections<'w> {
    if grouped { s } else { s.next() }
}

/// ` (--section NAME)` after a count line of the default view.
fn more(v: &View<'_>, section: &str) -> String {
    if v.caps() {
        v.note_cut();
        format!(" (--section {section})")
    } else {
        String::new()
    }
}

/// `scheduler: NAME (N active maps)`; `whole`: each active map by address and name.
fn scheduler(r: &FailureDumpReport, v: &View<'_>, whole: bool, out: &mut dyn Write) -> fmt::Result {
    match &r.active_obj_name {
        Some(name) => write!(out, "scheduler: {}", esc(name))?,
        None if r.active_map_kvas.is_empty() => return Ok(()),
        None => out.write_str("scheduler:")?,
    }
    writeln!(
        out,
        " ({} active maps){}",
        r.active_map_kvas.len(),
        more(v, "scheduler")
    )?;
    if !whole {
        return Ok(());
    }
    for kva in &r.active_map_kvas {
        write!(out, "  active map {kva:#x}")?;
        if let Some(m) = r.maps.iter().find(|m| m.map_kva == *kva) {
            write!(out, ": {}", esc(&m.name))?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// A column: its header and how a row's cell is written.
type Column<'a, T> = (&'a str, &'a dyn Fn(&T) -> String);

/// The per-CPU time table (ns), the softirq counts as `si.NAME` columns.
fn cpu_time(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    use crate::PerCpuTimeStats as C;
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    let (mut headers, mut cols) = columns(
        &r.per_cpu_time,
        &[
            ("cpu", &|c: &C| c.cpu.to_string()),
            ("user", &|c: &C| c.cpustat_user_ns.to_string()),
            ("nice", &|c: &C| c.cpustat_nice_ns.to_string()),
            ("system", &|c: &C| c.cpustat_system_ns.to_string()),
            ("softirq", &|c: &C| c.cpustat_softirq_ns.to_string()),
            ("irq", &|c: &C| c.cpustat_irq_ns.to_string()),
            ("idle", &|c: &C| c.cpustat_idle_ns.to_string()),
            ("iowait", &|c: &C| c.cpustat_iowait_ns.to_string()),
            ("steal", &|c: &C| c.cpustat_steal_ns.to_string()),
            ("irqs", &|c: &C| c.irqs_sum.to_string()),
            ("iowait_sleep", &|c: &C| opt(c.iowait_sleeptime_ns)),
        ],
    );
    for (i, name) in SOFTIRQ_NAMES.iter().enumerate() {
        headers.push(format!("si.{name}"));
        cols.push(
            r.per_cpu_time
                .iter()
                .map(|c| c.softirqs[i].to_string())
                .collect(),
        );
    }
    out.write_str("  (times in ns)\n")?;
    write_table(2, &headers, &cols, 1, out)
}

fn cgroups(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    use crate::CgroupPsiStat as C;
    let (headers, cols) = columns(
        &r.cgroup_psi,
        &[
            ("cgroup", &|c: &C| format!("{:#x}", c.cgroup_kva)),
            ("serial_nr", &|c: &C| c.serial_nr.to_string()),
            ("total_ns", &|c: &C| c.total_ns.to_string()),
            ("avg10_raw", &|c: &C| c.avg10_raw.to_string()),
        ],
    );
    write_table(2, &headers, &cols, 1, out)
}

fn numa(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    use crate::PerNodeNumaStats as N;
    let (headers, cols) = columns(
        &r.per_node_numa,
        &[
            ("node", &|n: &N| n.node.to_string()),
            ("numa_hit", &|n: &N| n.numa_hit.to_string()),
            ("numa_miss", &|n: &N| n.numa_miss.to_string()),
            ("numa_foreign", &|n: &N| n.numa_foreign.to_string()),
            ("interleave_hit", &|n: &N| n.numa_interleave_hit.to_string()),
            ("local", &|n: &N| n.numa_local.to_string()),
            ("other", &|n: &N| n.numa_other.to_string()),
        ],
    );
    write_table(2, &headers, &cols, 1, out)
}

/// Headers and cells (column-major) of `rows` in `spec`'s columns.
pub(super) fn columns<T>(rows: &[T], spec: &[Column<'_, T>]) -> (Vec<String>, Vec<Vec<String>>) {
    let headers = spec.iter().map(|(h, _)| h.to_string()).collect();
    let cols = spec
        .iter()
        .map(|(_, f)| rows.iter().map(*f).collect())
        .collect();
    (headers, cols)
}

/// Sparklines of the counters that are non-zero somewhere; when selected (or `full`), every
/// sample as a table too.
fn timeline(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
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
    if v.caps() {
        if t.len() > 1 {
            v.note_cut();
            out.write_str("  (--section timeline: every sample)\n")?;
        }
        return Ok(());
    }
    timeline_table(r, v.opts.full, out)
}

/// One row per sample: `elapsed_ms` and the counters (those non-zero somewhere, all when
/// `full`).
fn timeline_table(r: &FailureDumpReport, full: bool, out: &mut dyn Write) -> fmt::Result {
    let t = &r.event_counter_timeline;
    let Some(first) = t.first() else {
        return Ok(());
    };
    let mut headers = vec!["elapsed_ms".to_string()];
    let mut cols = vec![
        t.iter()
            .map(|x| x.elapsed_ms.to_string())
            .collect::<Vec<_>>(),
    ];
    for (c, (name, _)) in first.counters().iter().enumerate() {
        let col: Vec<i64> = t.iter().map(|x| x.counters()[c].1).collect();
        if full || col.iter().any(|&v| v != 0) {
            headers.push(name.to_string());
            cols.push(col.iter().map(i64::to_string).collect());
        }
    }
    write_table(2, &headers, &cols, 1, out)
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

/// Per-vCPU counters; outside the default view also how long each counter was enabled and
/// running.
fn vcpu_perf(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
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
        if !v.caps() {
            write!(
                out,
                " enabled={}ns running={}ns",
                p.time_enabled_ns, p.time_running_ns
            )?;
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

/// Every capture note (the first [`MAX_NOTES`] in the default view), then the truncation
/// footer.
fn notes(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    let n = r.capture_notes.len();
    let shown = if v.caps() { n.min(MAX_NOTES) } else { n };
    if n > 0 {
        out.write_str("capture notes:\n")?;
    }
    for note in &r.capture_notes[..shown] {
        writeln!(out, "  {}", esc(note))?;
    }
    if shown < n {
        v.note_cut();
        writeln!(out, "  … {} more (--section notes)", n - shown)?;
    }
    truncation(r, out)
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
