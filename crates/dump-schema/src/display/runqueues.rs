//! Runqueue states (display-format.md "Runqueue states"), in the shape of the kernel's
//! `scx_dump_state`: one line per CPU, then its current and runnable tasks by name, then each
//! DSQ with its tasks in queue order. A task's age is the report's `runnable_age_jiffies`
//! (`+580j`), else the kernel dump's (`kdump`, `-2320ms`); its slice comes from the kernel's
//! dump only (the report has no field for it).

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::filter::View;
use super::kdump::{self, KernelTask};
use super::layout::RangeList;
use super::names::{Names, write_name};
use super::text::esc;
use crate::{DsqState, FailureDumpReport, RqScxState, TaskEnrichment};

/// Task lines per CPU in the default view.
const MAX_CPU_TASKS: usize = 8;
/// Tasks named per DSQ in the default view.
const MAX_DSQ_TASKS: usize = 8;
/// Empty DSQs named in the default view.
const MAX_EMPTY_DSQS: usize = 8;
/// Where the default view's caps point.
const MORE: &str = "--section runqueues";

/// Everything the section needs to name a task and say where it waits.
struct Cx<'r> {
    names: &'r Names<'r>,
    by_pid: HashMap<i32, &'r TaskEnrichment>,
    /// Task address → its DSQ's label.
    queued: HashMap<u64, String>,
    kernel: HashMap<i32, KernelTask>,
    caps: bool,
    view: &'r View<'r>,
}

/// The section, when the report has run queues, DSQs or the `scx_sched` state; with the
/// walker's reason when it is unavailable.
pub(crate) fn write<'r>(
    r: &'r FailureDumpReport,
    names: &'r Names<'r>,
    v: &'r View<'r>,
    out: &mut dyn Write,
) -> fmt::Result {
    let captured =
        !r.rq_scx_states.is_empty() || !r.dsq_states.is_empty() || r.scx_sched_state.is_some();
    if !captured {
        return Ok(());
    }
    let cx = Cx {
        names,
        by_pid: r.task_enrichments.iter().map(|t| (t.pid, t)).collect(),
        queued: r
            .dsq_states
            .iter()
            .flat_map(|d| d.task_kvas.iter().map(move |&k| (k, dsq_label(d))))
            .collect(),
        kernel: r
            .exit_info
            .as_ref()
            .and_then(|e| e.kernel_dump.as_deref())
            .map(kdump::tasks)
            .unwrap_or_default(),
        caps: v.caps(),
        view: v,
    };
    write!(
        out,
        "runqueue states: {} CPUs, {} DSQs",
        r.rq_scx_states.len(),
        r.dsq_states.len()
    )?;
    if !cx.kernel.is_empty() {
        out.write_str(" (slices, and ages the report lacks, from the kernel's dump)")?;
    }
    out.write_char('\n')?;
    sched_line(r, out)?;
    cpus(&cx, &r.rq_scx_states, out)?;
    dsqs(&cx, &r.dsq_states, out)
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
    if x.sched_kva != 0 {
        write!(out, " kva={:#x}", x.sched_kva)?;
    }
    out.write_char('\n')
}

/// Each CPU and its tasks; in the default view, CPUs with nothing running or runnable as one
/// line.
fn cpus(cx: &Cx<'_>, rqs: &[RqScxState], out: &mut dyn Write) -> fmt::Result {
    let idle =
        |q: &RqScxState| q.nr_running == 0 && q.curr_pid == 0 && q.runnable_task_kvas.is_empty();
    let mut folded = Vec::new();
    for q in rqs {
        if cx.caps && idle(q) {
            folded.push(q.cpu as usize);
            continue;
        }
        cpu(cx, q, out)?;
    }
    if !folded.is_empty() {
        cx.view.note_cut();
        writeln!(
            out,
            "  CPUs {}: nr_run=0, no task ({MORE}: each one)",
            RangeList(&folded)
        )?;
    }
    Ok(())
}

fn cpu(cx: &Cx<'_>, q: &RqScxState, out: &mut dyn Write) -> fmt::Result {
    write!(
        out,
        "  CPU {}: nr_run={} flags={:#x} cpu_rel={} ops_qseq={} kick_sync={}",
        q.cpu,
        q.nr_running,
        q.flags,
        u8::from(q.cpu_released),
        q.ops_qseq,
        q.kick_sync
    )?;
    if q.nr_immed != 0 {
        write!(out, " nr_immed={}", q.nr_immed)?;
    }
    if q.rq_clock != 0 {
        write!(out, " rq_clock={}", q.rq_clock)?;
    }
    if q.curr_pid != 0 || !q.curr_comm.is_empty() {
        write!(out, " curr={}[{}]", esc(&q.curr_comm), q.curr_pid)?;
    }
    out.write_char('\n')?;
    let curr = (q.curr_pid != 0)
        .then(|| cx.by_pid.get(&q.curr_pid))
        .flatten();
    let mut lines = 0;
    if let Some(t) = curr {
        task_line(cx, Some(t), t.task_kva, true, out)?;
        lines += 1;
    }
    let runnable: Vec<u64> = q
        .runnable_task_kvas
        .iter()
        .copied()
        .filter(|&k| curr.is_none_or(|c| c.task_kva != k || k == 0))
        .collect();
    let shown = if cx.caps {
        runnable.len().min(MAX_CPU_TASKS.saturating_sub(lines))
    } else {
        runnable.len()
    };
    for &kva in &runnable[..shown] {
        task_line(cx, cx.names.task(kva), kva, false, out)?;
    }
    if shown < runnable.len() {
        cx.view.note_cut();
        writeln!(
            out,
            "    … +{} more runnable ({MORE})",
            runnable.len() - shown
        )?;
    }
    if q.runnable_truncated {
        out.write_str("    (the runnable list was cut short by the capture)\n")?;
    }
    Ok(())
}

/// `*R comm[pid] +age dsq=… slice=… weight=…`: what the report and the kernel's dump say
/// about one task.
fn task_line(
    cx: &Cx<'_>,
    t: Option<&TaskEnrichment>,
    kva: u64,
    current: bool,
    out: &mut dyn Write,
) -> fmt::Result {
    let k = t.and_then(|t| cx.kernel.get(&t.pid));
    let state = match k {
        Some(k) => k.state.clone(),
        None if current => "*R".to_string(),
        None => " R".to_string(),
    };
    write!(out, "   {state} ")?;
    match t {
        Some(t) => write_name(t, out)?,
        None => cx.names.write_task(kva, out)?,
    }
    // The report's own age (jiffies at the capture) when it has one, else the kernel dump's.
    match (t.and_then(|t| t.runnable_age_jiffies), k) {
        (Some(j), _) => write!(out, " +{j}j")?,
        (None, Some(k)) => write!(out, " {}", esc(&k.age))?,
        (None, None) => {}
    }
    let dsq = cx.queued.get(&kva).cloned().or_else(|| {
        k.and_then(|k| k.dsq_id.clone())
            .filter(|d| d != "(n/a)")
            .map(|d| esc(&d).to_string())
    });
    if let Some(d) = dsq {
        write!(out, " dsq={d}")?;
    }
    if let Some(s) = k.and_then(|k| k.slice) {
        write!(out, " slice={s}")?;
    }
    if let Some(t) = t {
        write!(out, " weight={}", t.weight)?;
        if t.prio != 120 {
            write!(out, " prio={}", t.prio)?;
        }
        if t.sched_class != "ext" && !t.sched_class.is_empty() {
            write!(out, " class={}", esc(&t.sched_class))?;
        }
        if !t.lock_slowpath_match.is_empty() {
            write!(out, " lock={}", esc(&t.lock_slowpath_match))?;
        }
    }
    out.write_char('\n')
}

/// `0x101` for a user DSQ; `local`, `bypass`, `global` (from the origin) for the kernel's.
fn dsq_label(d: &DsqState) -> String {
    if d.origin == "user" || d.origin.is_empty() {
        format!("{:#x}", d.id)
    } else {
        let kind = d.origin.split(' ').next().unwrap_or("");
        esc(kind).to_string()
    }
}

/// Each DSQ that holds tasks, with them by name; the empty ones in one line (each on its
/// own outside the default view).
fn dsqs(cx: &Cx<'_>, dsqs: &[DsqState], out: &mut dyn Write) -> fmt::Result {
    let mut empty = Vec::new();
    for d in dsqs {
        if cx.caps && d.nr == 0 && d.task_kvas.is_empty() {
            empty.push(d);
            continue;
        }
        write!(
            out,
            "  DSQ {:#x} ({}): nr={} seq={}",
            d.id,
            esc(&d.origin),
            d.nr,
            d.seq
        )?;
        let shown = if cx.caps {
            d.task_kvas.len().min(MAX_DSQ_TASKS)
        } else {
            d.task_kvas.len()
        };
        for (i, &kva) in d.task_kvas[..shown].iter().enumerate() {
            out.write_str(if i == 0 { ": " } else { ", " })?;
            cx.names.write_task(kva, out)?;
        }
        if shown < d.task_kvas.len() {
            cx.view.note_cut();
            write!(out, ", +{} more ({MORE})", d.task_kvas.len() - shown)?;
        }
        if d.truncated {
            out.write_str(" (the list was cut short by the capture)")?;
        }
        out.write_char('\n')?;
    }
    if empty.is_empty() {
        return Ok(());
    }
    cx.view.note_cut();
    write!(out, "  {} empty DSQs:", empty.len())?;
    for (i, d) in empty.iter().take(MAX_EMPTY_DSQS).enumerate() {
        out.write_str(if i == 0 { " " } else { ", " })?;
        if d.origin == "user" || d.origin.is_empty() {
            write!(out, "{:#x}", d.id)?;
        } else {
            write!(out, "{}", esc(&d.origin))?;
        }
    }
    if empty.len() > MAX_EMPTY_DSQS {
        write!(out, ", +{} more", empty.len() - MAX_EMPTY_DSQS)?;
    }
    writeln!(out, " ({MORE}: their seq)")
}
