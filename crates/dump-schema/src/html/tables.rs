//! The sortable tables: tasks (every task, where it runs or waits) and programs. The page's
//! script sorts a column on a click on its header: numerically by each cell's `data-v`
//! where the header says `data-type="num"`, else by text.

use super::model::{Place, Snapshot};
use super::write::Page;
use crate::{ProgRuntimeStats, TaskEnrichment};

/// Task rows at most (those that run or wait first); the rest are counted.
pub const MAX_TASK_ROWS: usize = 3000;
/// Program rows at most.
pub const MAX_PROG_ROWS: usize = 2000;

/// A column: its header and whether it sorts as numbers.
struct Col(&'static str, bool);

fn head(p: &mut Page, cols: &[Col]) {
    p.raw("<thead><tr>");
    for Col(name, num) in cols {
        p.raw(if *num {
            "<th data-type=\"num\">"
        } else {
            "<th>"
        })
        .raw(name)
        .raw("</th>");
    }
    p.raw("</tr></thead>\n<tbody>\n");
}

/// A numeric cell.
fn num(p: &mut Page, v: impl std::fmt::Display) {
    p.fmt(format_args!("<td data-v=\"{v}\">{v}</td>"));
}

/// A time in nanoseconds, shown in seconds, sorted by nanoseconds.
fn secs(p: &mut Page, ns: u64) {
    p.fmt(format_args!(
        "<td data-v=\"{ns}\">{:.3}</td>",
        ns as f64 / 1e9
    ));
}

/// A filter box over the rows (or blocks) matched by `selector`.
pub(crate) fn filter_box(p: &mut Page, selector: &str, what: &str) {
    p.raw("<p class=\"filter-row\"><input type=\"search\" class=\"filter\" data-filter=\"")
        .text(selector)
        .raw("\" placeholder=\"filter ")
        .text(what)
        .raw(" (any text)\" aria-label=\"filter ")
        .text(what)
        .raw("\"> <span class=\"count\"></span></p>\n");
}

pub(crate) fn tasks(p: &mut Page, s: &Snapshot<'_>) {
    let r = s.r;
    let all = &r.task_enrichments;
    if all.is_empty() {
        if let Some(why) = &r.task_enrichments_unavailable {
            p.raw("<p class=\"missing\">tasks: ")
                .guest(why)
                .raw("</p>\n");
        }
        return;
    }
    // Those that run or wait first, then the others, each in the report's order.
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by_key(|&i| s.places(i).0.is_empty());
    let shown = all.len().min(MAX_TASK_ROWS);
    p.raw("<section class=\"tasks\" id=\"")
        .raw(s.id)
        .raw("-tasks\">")
        .fmt(format_args!("<h3>Tasks ({})</h3>\n", all.len()));
    filter_box(p, &format!("#{}-tasks tbody tr", s.id), "tasks");
    p.raw("<div class=\"scroll\"><table class=\"sortable\">");
    let cols = [
        Col("pid", true),
        Col("tgid", true),
        Col("comm", false),
        Col("class", false),
        Col("where", false),
        Col("waited j", true),
        Col("prio", true),
        Col("weight", true),
        Col("nvcsw", true),
        Col("nivcsw", true),
        Col("utime s", true),
        Col("stime s", true),
        Col("parent", false),
        Col("lock slow path", false),
    ];
    head(p, &cols);
    for &i in &order[..shown] {
        task_row(p, &all[i], s.places(i));
    }
    p.raw("</tbody></table></div>\n");
    if shown < all.len() {
        p.fmt(format_args!(
            "<p class=\"folded\">{} more tasks not listed (sleeping ones last; \
             ktstr render --full lists every task)</p>\n",
            all.len() - shown
        ));
    }
    p.raw("</section>\n");
}

fn task_row(p: &mut Page, t: &TaskEnrichment, (places, more): (&[Place], usize)) {
    p.raw("<tr>");
    num(p, t.pid);
    num(p, t.tgid);
    p.fmt(format_args!("<td title=\"task_struct {:#x}\">", t.task_kva))
        .guest(&t.comm)
        .raw("</td><td>")
        .guest(&t.sched_class)
        .raw("</td><td>");
    for (k, place) in places.iter().enumerate() {
        if k > 0 {
            p.raw("; ");
        }
        match place {
            Place::Running { cpu } => p.fmt(format_args!("runs on CPU {cpu}")),
            Place::Runnable { cpu, pos } => p.fmt(format_args!("runnable on CPU {cpu} (#{pos})")),
            Place::Queued { dsq, pos } => p.fmt(format_args!("dsq {dsq:#x} (#{pos})")),
        };
    }
    if more > 0 {
        p.fmt(format_args!("; +{more} more"));
    }
    p.raw("</td>");
    match t.runnable_age_jiffies {
        Some(j) => num(p, j),
        None => {
            p.raw("<td data-v=\"\"></td>");
        }
    }
    num(p, t.prio);
    num(p, t.weight);
    num(p, t.nvcsw);
    num(p, t.nivcsw);
    secs(p, t.utime);
    secs(p, t.stime);
    p.raw("<td>");
    if t.real_parent_pid != 0 || !t.real_parent_comm.is_empty() {
        p.task(&t.real_parent_comm, t.real_parent_pid);
    }
    p.raw("</td><td>")
        .guest(&t.lock_slowpath_match)
        .raw("</td></tr>\n");
}

pub(crate) fn programs(p: &mut Page, s: &Snapshot<'_>) {
    let r = s.r;
    let progs: Vec<&ProgRuntimeStats> = r
        .prog_runtime_stats
        .iter()
        .chain(&r.aux_prog_runtime_stats)
        .collect();
    if progs.is_empty() {
        if let Some(why) = &r.prog_runtime_stats_unavailable {
            p.raw("<p class=\"missing\">programs: ")
                .guest(why)
                .raw("</p>\n");
        }
        return;
    }
    p.raw("<section class=\"progs\" id=\"")
        .raw(s.id)
        .raw("-progs\">")
        .fmt(format_args!("<h3>Programs ({})</h3>\n", progs.len()));
    p.raw("<div class=\"scroll\"><table class=\"sortable\">");
    let cols = [
        Col("name", false),
        Col("type", false),
        Col("runs", true),
        Col("ns", true),
        Col("ns/run", true),
        Col("misses", true),
    ];
    head(p, &cols);
    for g in progs.iter().take(MAX_PROG_ROWS) {
        p.raw("<tr><td>").guest(&g.name).raw("</td><td>");
        if g.prog_type.is_empty() {
            p.raw("struct_ops");
        } else {
            p.guest(&g.prog_type);
        }
        p.raw("</td>");
        num(p, g.cnt);
        num(p, g.nsecs);
        if g.cnt > 0 {
            num(p, format_args!("{:.1}", g.nsecs as f64 / g.cnt as f64));
        } else {
            p.raw("<td data-v=\"0\"></td>");
        }
        num(p, g.misses);
        p.raw("</tr>\n");
    }
    p.raw("</tbody></table></div>\n");
    if progs.len() > MAX_PROG_ROWS {
        p.fmt(format_args!(
            "<p class=\"folded\">{} more programs not listed</p>\n",
            progs.len() - MAX_PROG_ROWS
        ));
    }
    p.raw("</section>\n");
}
