//! "Who runs, who waits": one card per busy CPU (its current task, then its runnable list
//! in order), then every DSQ that holds tasks, its queue in order; tasks as `comm[pid]`.

use super::model::Snapshot;
use super::write::Page;
use crate::display::for_html::RangeList;
use crate::{DsqState, RqScxState, TaskEnrichment};

/// Tasks drawn per queue before `+N more`.
const MAX_CHIPS: usize = 64;
/// Tasks drawn in all the queues of a snapshot (the rest are counted per queue).
const MAX_CHIPS_TOTAL: usize = 1024;
/// CPU cards drawn (busy CPUs only; the idle ones are listed by number).
const MAX_CPUS: usize = 256;
/// DSQ rows drawn (those holding tasks).
const MAX_DSQS: usize = 256;

/// What drawing the picture carries along.
struct Cx<'s, 'r> {
    s: &'s Snapshot<'r>,
    /// Chips left of [`MAX_CHIPS_TOTAL`].
    left: usize,
    /// Waits from this many jiffies on stand out.
    long: Option<u64>,
}

pub(crate) fn write(p: &mut Page, s: &Snapshot<'_>) {
    let r = s.r;
    if r.rq_scx_states.is_empty() && r.dsq_states.is_empty() {
        return;
    }
    p.raw("<section class=\"cpus\" id=\"")
        .raw(s.id)
        .raw("-cpus\"><h3>Who runs, who waits</h3>\n");
    if let Some(msg) = r.exit_info.as_ref().and_then(|e| e.msg.as_deref()) {
        p.raw("<p class=\"why\">The kernel says: <q>")
            .guest(msg)
            .raw("</q> (tasks it names are <span class=\"chip named\">marked</span>)</p>\n");
    }
    let long = long_wait(s);
    if s.has_waits() {
        p.raw(
            "<p class=\"note\">Queues in the order captured (first = next to run); after each \
             waiting task, how long it had been runnable without running at the capture, in \
             jiffies",
        );
        if let Some(j) = long {
            p.fmt(format_args!(
                " (<span class=\"age long\">marked</span> from {j}j: half the watchdog timeout)"
            ));
        }
        p.raw(".</p>\n");
    } else {
        p.raw(
            "<p class=\"note\">Queues in the order captured (first = next to run). This dump \
             records no waiting times (runnable_age_jiffies).</p>\n",
        );
    }
    let mut cx = Cx {
        s,
        left: MAX_CHIPS_TOTAL,
        long,
    };
    cpu_cards(p, &mut cx);
    dsq_table(p, &mut cx);
    p.raw("</section>\n");
}

fn busy(q: &RqScxState) -> bool {
    q.curr_pid != 0 || q.nr_running > 0 || !q.runnable_task_kvas.is_empty()
}

fn cpu_cards(p: &mut Page, cx: &mut Cx<'_, '_>) {
    let rqs = &cx.s.r.rq_scx_states;
    if rqs.is_empty() {
        return;
    }
    let busy_rqs: Vec<&RqScxState> = rqs.iter().filter(|q| busy(q)).collect();
    p.raw("<div class=\"cpu-grid\">\n");
    for q in busy_rqs.iter().take(MAX_CPUS) {
        cpu_card(p, cx, q);
    }
    p.raw("</div>\n");
    if busy_rqs.len() > MAX_CPUS {
        p.fmt(format_args!(
            "<p class=\"folded\">{} more busy CPUs not drawn (the task table has where each task is)</p>\n",
            busy_rqs.len() - MAX_CPUS
        ));
    }
    let idle: Vec<u32> = rqs.iter().filter(|q| !busy(q)).map(|q| q.cpu).collect();
    if !idle.is_empty() {
        p.raw("<p class=\"idle\">Idle (nothing running or runnable): CPU ")
            .text(&ranges(&idle))
            .raw("</p>\n");
    }
}

fn cpu_card(p: &mut Page, cx: &mut Cx<'_, '_>, q: &RqScxState) {
    p.fmt(format_args!(
        "<div class=\"cpu\" data-cpu=\"{}\"><div class=\"cpu-h\"><b>CPU {}</b> nr_running={} flags={:#x}",
        q.cpu, q.cpu, q.nr_running, q.flags
    ));
    if q.cpu_released {
        p.raw(" released");
    }
    p.raw("</div>\n<div class=\"curr\">runs ");
    if q.curr_pid == 0 {
        p.raw("<span class=\"none\">nothing</span>");
    } else {
        let named = named_in_exit(cx.s, &q.curr_comm, q.curr_pid);
        p.raw(if named {
            "<span class=\"chip run named\">"
        } else {
            "<span class=\"chip run\">"
        })
        .task(&q.curr_comm, q.curr_pid)
        .raw("</span>");
    }
    p.raw("</div>\n");
    if !q.runnable_task_kvas.is_empty() {
        p.raw("<div class=\"qh\">runnable, in order:</div>");
        let curr = q.curr_pid;
        chips(p, cx, &q.runnable_task_kvas, q.runnable_truncated, curr);
    }
    p.raw("</div>\n");
}

fn dsq_table(p: &mut Page, cx: &mut Cx<'_, '_>) {
    let all = &cx.s.r.dsq_states;
    if all.is_empty() {
        return;
    }
    let mut held: Vec<&DsqState> = all
        .iter()
        .filter(|d| d.nr > 0 || !d.task_kvas.is_empty())
        .collect();
    held.sort_by(|a, b| b.nr.cmp(&a.nr).then(a.id.cmp(&b.id)));
    if !held.is_empty() {
        p.raw(
            "<table class=\"dsqs\"><thead><tr><th>DSQ</th><th>origin</th><th>nr</th>\
             <th>seq</th><th>queued, in order</th></tr></thead><tbody>\n",
        );
        for d in held.iter().take(MAX_DSQS) {
            p.fmt(format_args!("<tr><td>{:#x}</td><td>", d.id))
                .guest(&d.origin)
                .fmt(format_args!("</td><td>{}</td><td>{}</td><td>", d.nr, d.seq));
            chips(p, cx, &d.task_kvas, d.truncated, 0);
            p.raw("</td></tr>\n");
        }
        p.raw("</tbody></table>\n");
    }
    if held.len() > MAX_DSQS {
        p.fmt(format_args!(
            "<p class=\"folded\">{} more DSQs holding tasks not drawn</p>\n",
            held.len() - MAX_DSQS
        ));
    }
    let empty = all.len() - held.len();
    if empty > 0 {
        p.fmt(format_args!("<p class=\"idle\">{empty} empty DSQs</p>\n"));
    }
}

/// The tasks at `kvas` as a list of `comm[pid]` chips (an address when the dump has no
/// such task), each waiting one followed by its wait; `curr` (a pid) is marked `*` as the
/// kernel's debug dump does. At most [`MAX_CHIPS`], and no more than what remains of the
/// snapshot's [`MAX_CHIPS_TOTAL`].
fn chips(p: &mut Page, cx: &mut Cx<'_, '_>, kvas: &[u64], truncated: bool, curr: i32) {
    let drawn = kvas.len().min(MAX_CHIPS).min(cx.left);
    cx.left -= drawn;
    p.raw("<ol class=\"q\">");
    for kva in &kvas[..drawn] {
        match cx.s.task(*kva) {
            Some(t) => chip(p, cx, t, t.pid == curr),
            None => {
                p.fmt(format_args!(
                    "<li class=\"chip addr\" title=\"no captured task at this address\">{kva:#x}</li>"
                ));
            }
        }
    }
    if kvas.len() > drawn {
        p.fmt(format_args!(
            "<li class=\"more\">+{} more</li>",
            kvas.len() - drawn
        ));
    }
    if truncated {
        p.raw("<li class=\"more\">… (the capture stopped walking this list)</li>");
    }
    p.raw("</ol>\n");
}

fn chip(p: &mut Page, cx: &Cx<'_, '_>, t: &TaskEnrichment, current: bool) {
    let mut class = String::from("chip");
    if current {
        class.push_str(" run");
    }
    if named_in_exit(cx.s, &t.comm, t.pid) {
        class.push_str(" named");
    }
    p.raw("<li class=\"").raw(&class).raw("\" title=\"");
    p.guest(&t.sched_class).fmt(format_args!(
        " prio={} weight={} nvcsw={} nivcsw={} utime={}ns stime={}ns\">",
        t.prio, t.weight, t.nvcsw, t.nivcsw, t.utime, t.stime
    ));
    if current {
        p.raw("*");
    }
    p.task(&t.comm, t.pid);
    if let Some(j) = t.runnable_age_jiffies.filter(|_| !current) {
        let long = cx.long.is_some_and(|l| j >= l);
        p.raw(if long {
            " <span class=\"age long\">"
        } else {
            " <span class=\"age\">"
        })
        .fmt(format_args!("+{j}j</span>"));
    }
    p.raw("</li>");
}

/// Half the scheduler's watchdog timeout, in jiffies (the early snapshot's threshold):
/// waits from there on stand out.
fn long_wait(s: &Snapshot<'_>) -> Option<u64> {
    let w = s.r.scx_sched_state.as_ref()?.watchdog_timeout;
    (w > 0).then_some(w / 2)
}

/// Whether the scheduler's exit message names the task `comm[pid]` (the kernel's stall
/// message does: `ktstr-victim[149] failed to run for 2.368s`).
fn named_in_exit(s: &Snapshot<'_>, comm: &str, pid: i32) -> bool {
    match s.r.exit_info.as_ref().and_then(|e| e.msg.as_deref()) {
        Some(msg) if !comm.is_empty() => msg.contains(&format!("{comm}[{pid}]")),
        _ => false,
    }
}

/// `0-3,5,7-9`: the text rendering's CPU ranges.
pub(crate) fn ranges(ns: &[u32]) -> String {
    let mut sorted: Vec<usize> = ns.iter().map(|&n| n as usize).collect();
    sorted.sort_unstable();
    sorted.dedup();
    RangeList(&sorted).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ranges() {
        assert_eq!(ranges(&[5, 0, 1, 2, 3, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn waits_and_the_long_ones() {
        let task = |pid, kva, age| TaskEnrichment {
            pid,
            comm: format!("t{pid}"),
            task_kva: kva,
            runnable_age_jiffies: age,
            ..Default::default()
        };
        let r = crate::FailureDumpReport {
            scx_sched_state: Some(crate::ScxSchedState {
                watchdog_timeout: 500,
                ..Default::default()
            }),
            task_enrichments: vec![
                task(1, 0x10, None),
                task(2, 0x20, Some(10)),
                task(3, 0x30, Some(250)),
            ],
            rq_scx_states: vec![RqScxState {
                cpu: 0,
                nr_running: 3,
                curr_pid: 1,
                runnable_task_kvas: vec![0x10, 0x20, 0x30, 0x40],
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = Snapshot::new(&r, "dump");
        let mut p = Page::default();
        write(&mut p, &s);
        let html = &p.buf;
        assert!(
            html.contains("from 250j: half the watchdog timeout"),
            "{html}"
        );
        assert!(html.contains(">*t1[1]</li>"), "{html}");
        assert!(
            html.contains(">t2[2] <span class=\"age\">+10j</span></li>"),
            "{html}"
        );
        assert!(
            html.contains(">t3[3] <span class=\"age long\">+250j</span></li>"),
            "{html}"
        );
        assert!(html.contains(">0x40</li>"), "{html}");
    }
}
