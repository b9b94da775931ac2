//! "Who runs, who waits": one card per busy CPU (its current task, then its runnable list
//! in order), then every DSQ that holds tasks, its queue in order; tasks as `comm[pid]`.

use super::model::Snapshot;
use super::write::Page;
use crate::display::for_html::RangeList;
use crate::{DsqState, RqScxState};

/// Tasks drawn per queue before `+N more`.
const MAX_CHIPS: usize = 64;
/// Tasks drawn in all the queues of a snapshot (the rest are counted per queue).
const MAX_CHIPS_TOTAL: usize = 1024;
/// CPU cards drawn (busy CPUs only; the idle ones are listed by number).
const MAX_CPUS: usize = 256;
/// DSQ rows drawn (those holding tasks).
const MAX_DSQS: usize = 256;
/// Waits from this long on stand out.
const LONG_WAIT_MS: u64 = 1000;

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
    p.raw(if s.has_waits() {
        "<p class=\"note\">Queues in the order captured (first = next to run). Waits are \
         the kernel's: how long each task had been runnable when it dumped its state at \
         the exit (its debug dump).</p>\n"
    } else {
        "<p class=\"note\">Queues in the order captured (first = next to run). No waiting \
         times here: the kernel writes them in its debug dump at an error exit, and the \
         report records positions only.</p>\n"
    });
    let mut left = MAX_CHIPS_TOTAL;
    cpu_cards(p, s, &mut left);
    dsq_table(p, s, &mut left);
    p.raw("</section>\n");
}

fn busy(q: &RqScxState) -> bool {
    q.curr_pid != 0 || q.nr_running > 0 || !q.runnable_task_kvas.is_empty()
}

fn cpu_cards(p: &mut Page, s: &Snapshot<'_>, left: &mut usize) {
    let rqs = &s.r.rq_scx_states;
    if rqs.is_empty() {
        return;
    }
    let busy_rqs: Vec<&RqScxState> = rqs.iter().filter(|q| busy(q)).collect();
    p.raw("<div class=\"cpu-grid\">\n");
    for q in busy_rqs.iter().take(MAX_CPUS) {
        cpu_card(p, s, q, left);
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

fn cpu_card(p: &mut Page, s: &Snapshot<'_>, q: &RqScxState, left: &mut usize) {
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
        let named = named_in_exit(s, &q.curr_comm, q.curr_pid);
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
        chips(
            p,
            s,
            &q.runnable_task_kvas,
            q.runnable_truncated,
            curr,
            left,
        );
    }
    p.raw("</div>\n");
}

fn dsq_table(p: &mut Page, s: &Snapshot<'_>, left: &mut usize) {
    let all = &s.r.dsq_states;
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
            chips(p, s, &d.task_kvas, d.truncated, 0, left);
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
/// such task); `curr` (a pid) is marked `*` as the kernel's debug dump does. At most
/// [`MAX_CHIPS`], and no more than `left` (what remains of the snapshot's
/// [`MAX_CHIPS_TOTAL`]).
fn chips(
    p: &mut Page,
    s: &Snapshot<'_>,
    kvas: &[u64],
    truncated: bool,
    curr: i32,
    left: &mut usize,
) {
    let drawn = kvas.len().min(MAX_CHIPS).min(*left);
    *left -= drawn;
    p.raw("<ol class=\"q\">");
    for kva in &kvas[..drawn] {
        match s.task(*kva) {
            Some(t) => {
                let mut class = String::from("chip");
                if t.pid == curr {
                    class.push_str(" run");
                }
                if named_in_exit(s, &t.comm, t.pid) {
                    class.push_str(" named");
                }
                p.raw("<li class=\"").raw(&class).raw("\" title=\"");
                p.guest(&t.sched_class).fmt(format_args!(
                    " prio={} weight={} nvcsw={} nivcsw={} utime={}ns stime={}ns\">",
                    t.prio, t.weight, t.nvcsw, t.nivcsw, t.utime, t.stime
                ));
                if t.pid == curr {
                    p.raw("*");
                }
                p.task(&t.comm, t.pid);
                match s.wait_ms(t.pid) {
                    Some(ms) if t.pid != curr => {
                        p.raw(if ms >= LONG_WAIT_MS {
                            " <span class=\"age long\">"
                        } else {
                            " <span class=\"age\">"
                        })
                        .text(&wait_text(ms))
                        .raw("</span>");
                    }
                    _ => {}
                }
                p.raw("</li>");
            }
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

/// `+2.288s` or `+12ms`: how long a task had been runnable.
pub(crate) fn wait_text(ms: u64) -> String {
    if ms >= 1000 {
        format!("+{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        format!("+{ms}ms")
    }
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
        assert_eq!(wait_text(2288), "+2.288s");
        assert_eq!(wait_text(12), "+12ms");
    }
}
