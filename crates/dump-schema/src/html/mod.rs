//! One self-contained HTML page of a report (`ktstr render --html FILE`): what a person
//! opens in a browser to look around a dump. Nothing is fetched (the page's own security
//! policy forbids it), nothing external is needed: the styles and the small script are
//! embedded, the chart is inline SVG.
//!
//! What it shows, for a single report, for each snapshot of a dual report (the late one
//! first) and, for a degraded report, its few facts:
//! - the summary, exactly the text rendering's (so both say the same thing);
//! - the exit: kind, reason, message, who triggered it, the whole backtrace, and the
//!   kernel's debug dump (collapsed);
//! - every missing or capped part (`*_unavailable`, `capture_notes`), all of them;
//! - who runs and who waits: one card per busy CPU (its current task, then its runnable
//!   list in order), then every DSQ holding tasks with its queue in order, tasks as
//!   `comm[pid]` (the task at a `task_kva`), each waiting task with its wait
//!   (`runnable_age_jiffies`; from half the watchdog timeout on it stands out), the tasks
//!   the exit message names marked;
//! - the event-counter timeline as a chart: one line per counter that is non-zero somewhere,
//!   one point per sample, scaled to its own range, with a tick per sample under it; marks
//!   at the early and late snapshots of a dual report (the early snapshot's own timeline,
//!   which ends at its freeze, gets a chart of its own), at the capture of a single one;
//!   hovering shows every counter's value at the nearest sample;
//! - a sortable table of every task (where it runs or waits, class, priorities, context
//!   switches, times, parent) with a filter box, and one of the programs;
//! - every map collapsed (`<details>`), its header line as the title and its block as the
//!   text rendering prints it (folded the same way), with a filter box over names and
//!   contents and buttons to open or close all;
//! - everything else (vCPU registers, sdt allocations, CPU times, perf counters, …) as the
//!   text rendering prints it, collapsed.
//!
//! Every string from the guest or the document goes through the text rendering's escaping
//! (`\n`, `\x1b`, bidirectional overrides made visible) and then HTML escaping; nothing from
//! the dump is ever markup or script.
//!
//! Size: a page stays small whatever the dump holds. The caps, each said on the page where
//! it applies: [`MAP_TEXT_CAP`] of text per map and [`MAPS_BUDGET`] for all maps (past it a
//! map shows its header), [`MAX_TASK_ROWS`] tasks (those that run or wait first),
//! [`MAX_PROG_ROWS`] programs, [`MAX_SAMPLES`] chart samples (a longer timeline is thinned
//! evenly), and a few for the CPU and DSQ picture and the collapsed texts.
//!
//! The page's script adds `<p id="ktstr-ready">` once it has set everything up, and shows
//! any script error (or anything the policy blocked) in `#js-errors`: the browser test
//! (`crates/ktstr-cli/tests/html_browser.rs`) loads pages in a real headless Chromium and
//! checks both.

mod chart;
mod cpus;
mod maps;
mod model;
mod tables;
mod write;

pub use chart::MAX_SAMPLES;
pub use maps::{MAP_TEXT_CAP, MAPS_BUDGET};
pub use tables::{MAX_PROG_ROWS, MAX_TASK_ROWS};

use std::fmt::Write as _;

use crate::display::for_html;
use crate::{DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny};
use chart::Mark;
use model::Snapshot;
use write::Page;

/// Backtrace frames listed at most.
const MAX_FRAMES: usize = 128;
/// Capture notes listed at most.
const MAX_NOTES: usize = 500;
/// Text of the kernel's debug dump, and of the "everything else" block, at most (bytes).
const TEXT_CAP: usize = 256 << 10;

const STYLE: &str = include_str!("page.css");
const CATCH_JS: &str = include_str!("catch.js");
const PAGE_JS: &str = include_str!("page.js");

/// The page of `report`, as one HTML document.
///
/// ```
/// use dump_schema::{FailureDumpReport, FailureDumpReportAny, TaskEnrichment};
///
/// let report = FailureDumpReport {
///     task_enrichments: vec![TaskEnrichment {
///         pid: 7,
///         comm: "<script>".into(),
///         ..Default::default()
///     }],
///     ..Default::default()
/// };
/// let page = dump_schema::html::page(&FailureDumpReportAny::Single(report));
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains(">&lt;script&gt;</td>"));
/// ```
pub fn page(report: &FailureDumpReportAny) -> String {
    let mut p = Page::default();
    head(&mut p, report);
    match report {
        FailureDumpReportAny::Single(r) => {
            let s = Snapshot::new(r, "dump");
            nav(&mut p, &[&s]);
            summary(&mut p, report);
            let marks = end_mark(r, "capture");
            let mut budget = MAPS_BUDGET;
            snapshot(&mut p, &s, "The dump", &marks, &mut budget);
        }
        FailureDumpReportAny::Dual(d) => dual(&mut p, report, d),
        FailureDumpReportAny::Degraded(_) => {
            nav(&mut p, &[]);
            summary(&mut p, report);
        }
    }
    p.raw("<script>")
        .raw(PAGE_JS)
        .raw("</script>\n</body>\n</html>\n");
    p.buf
}

fn dual(p: &mut Page, report: &FailureDumpReportAny, d: &DualFailureDumpReport) {
    let late = Snapshot::new(&d.late, "late");
    let early = d.early.as_ref().map(|e| Snapshot::new(e, "early"));
    let mut all = vec![&late];
    all.extend(early.as_ref());
    nav(p, &all);
    summary(p, report);
    // Each snapshot charts its own timeline (the early one ends with a sample taken at its
    // freeze, which the late one does not have); the late chart marks both snapshots.
    let mut marks = d
        .early
        .as_ref()
        .map_or(Vec::new(), |e| end_mark(e, "early"));
    marks.extend(end_mark(&d.late, "late"));
    let exited = d.late.exit_info.is_some()
        || d.late
            .scx_sched_state
            .as_ref()
            .is_some_and(|x| x.exit_kind != 0);
    let title = if exited {
        "Late snapshot (at the scheduler's exit)"
    } else {
        "Late snapshot (at the capture)"
    };
    let mut budget = MAPS_BUDGET;
    snapshot(p, &late, title, &marks, &mut budget);
    match &early {
        Some(e) => {
            let title = format!(
                "Early snapshot (the oldest runnable task had waited {}j, threshold {}j)",
                d.early_max_age_jiffies, d.early_threshold_jiffies
            );
            snapshot(p, e, &title, &end_mark(e.r, "early"), &mut budget);
        }
        None => {
            p.raw("<section class=\"snapshot\" id=\"early\"><h2>Early snapshot</h2><p>absent: ")
                .guest(
                    d.early_skipped_reason
                        .as_deref()
                        .unwrap_or("no reason recorded"),
                )
                .raw("</p></section>\n");
        }
    }
}

/// A mark at the last sample of `r`'s timeline (taken at its freeze), if it has one.
fn end_mark(r: &FailureDumpReport, label: &'static str) -> Vec<Mark> {
    r.event_counter_timeline
        .last()
        .map(|s| Mark {
            label,
            ms: s.elapsed_ms,
        })
        .into_iter()
        .collect()
}

fn head(p: &mut Page, report: &FailureDumpReportAny) {
    p.raw(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    let late = match report {
        FailureDumpReportAny::Single(r) => Some(r),
        FailureDumpReportAny::Dual(d) => Some(&d.late),
        FailureDumpReportAny::Degraded(_) => None,
    };
    p.raw("ktstr failure dump");
    if let Some(r) = late {
        if let Some(name) = &r.active_obj_name {
            p.raw(": ").guest(name);
        }
        if let Some(e) = &r.exit_info {
            p.raw(" — ").guest(&e.kind_name);
        }
    } else {
        p.raw(" (degraded)");
    }
    p.raw("</title>\n<style>\n")
        .raw(STYLE)
        .raw("</style>\n</head>\n<body>\n");
    // First in the body: the error box, and the catcher that fills it.
    p.raw("<div id=\"js-errors\" class=\"js-errors\" hidden></div>\n<script>")
        .raw(CATCH_JS)
        .raw("</script>\n");
}

/// The heading and the links to every part.
fn nav(p: &mut Page, snapshots: &[&Snapshot<'_>]) {
    p.raw("<header><h1>ktstr failure dump</h1><nav><a href=\"#summary\">summary</a>");
    for s in snapshots {
        let parts = [
            (
                "cpus",
                "who runs, who waits",
                !s.r.rq_scx_states.is_empty() || !s.r.dsq_states.is_empty(),
            ),
            (
                "events",
                "event counters",
                !s.r.event_counter_timeline.is_empty(),
            ),
            ("tasks", "tasks", !s.r.task_enrichments.is_empty()),
            ("maps", "maps", !s.r.maps.is_empty()),
        ];
        p.raw("<a href=\"#")
            .raw(s.id)
            .raw("\"><b>")
            .raw(s.id)
            .raw("</b></a>");
        for (part, words, present) in parts {
            if present {
                p.raw("<a href=\"#")
                    .raw(s.id)
                    .raw("-")
                    .raw(part)
                    .raw("\">")
                    .raw(words)
                    .raw("</a>");
            }
        }
    }
    p.raw("</nav></header>\n");
}

/// The text rendering's summary.
fn summary(p: &mut Page, report: &FailureDumpReportAny) {
    p.raw("<section id=\"summary\"><h2>Summary</h2>\n<pre class=\"summary\">");
    let before = p.len();
    let _ = for_html::summary(report, &mut p.sink(usize::MAX));
    if p.len() == before {
        p.raw("(this report says nothing about a scheduler: maps only)");
    }
    while p.buf.ends_with('\n') {
        p.buf.pop();
    }
    p.raw("</pre>\n</section>\n");
}

/// One snapshot: its exit, losses, CPUs and DSQs, chart, tables, maps and the rest.
fn snapshot(p: &mut Page, s: &Snapshot<'_>, title: &str, marks: &[Mark], budget: &mut usize) {
    p.raw("<section class=\"snapshot\" id=\"")
        .raw(s.id)
        .raw("\"><h2>")
        .text(title)
        .raw("</h2>\n");
    exit(p, s);
    losses(p, s);
    cpus::write(p, s);
    events(p, s, marks);
    tables::tasks(p, s);
    tables::programs(p, s);
    maps::write(p, s, budget);
    rest(p, s);
    p.raw("</section>\n");
}

fn events(p: &mut Page, s: &Snapshot<'_>, marks: &[Mark]) {
    if s.r.event_counter_timeline.is_empty() {
        return;
    }
    p.raw("<section class=\"events\" id=\"")
        .raw(s.id)
        .raw("-events\"><h3>Event counters</h3>\n");
    chart::write(p, s.id, &s.r.event_counter_timeline, marks);
    p.raw("</section>\n");
}

/// The exit: what, why, who, where (the whole backtrace), and the kernel's debug dump.
fn exit(p: &mut Page, s: &Snapshot<'_>) {
    let Some(e) = &s.r.exit_info else { return };
    p.raw("<section class=\"exit\" id=\"")
        .raw(s.id)
        .raw("-exit\"><h3>Exit</h3>\n<dl>");
    p.raw("<dt>kind</dt><dd>")
        .guest(&e.kind_name)
        .fmt(format_args!(" ({})", e.kind));
    if let Some(c) = e.exit_code {
        p.fmt(format_args!(", exit code {c}"));
    }
    p.raw("</dd>");
    let fields = [
        ("reason", &e.reason),
        ("message", &e.msg),
        ("unavailable", &e.unavailable),
    ];
    for (name, v) in fields {
        if let Some(v) = v {
            p.raw("<dt>")
                .raw(name)
                .raw("</dt><dd>")
                .guest(v)
                .raw("</dd>");
        }
    }
    if let Some(t) = &e.trigger {
        p.fmt(format_args!("<dt>triggered</dt><dd>on CPU {}", t.cpu));
        if let (Some(comm), Some(pid)) = (&t.comm, t.pid) {
            p.raw(" by ").task(comm, pid);
        }
        p.raw("</dd>");
    }
    p.raw("<dt>caught</dt><dd>")
        .guest(&e.source)
        .raw("</dd></dl>\n");
    if !e.backtrace.is_empty() {
        p.raw("<pre class=\"bt\">");
        for f in e.backtrace.iter().take(MAX_FRAMES) {
            p.fmt(format_args!("{:#018x} ", f.addr));
            match (&f.symbol, f.offset) {
                (Some(sym), Some(off)) => p.guest(sym).fmt(format_args!("+{off:#x}")),
                (Some(sym), None) => p.guest(sym),
                _ => p.raw("?"),
            };
            p.raw("\n");
        }
        if e.backtrace.len() > MAX_FRAMES {
            p.fmt(format_args!(
                "… {} more frames",
                e.backtrace.len() - MAX_FRAMES
            ));
        }
        p.raw("</pre>\n");
    }
    if let Some(dump) = &e.kernel_dump {
        p.raw("<details><summary>the kernel's debug dump");
        if e.kernel_dump_truncated {
            p.raw(" (truncated by the kernel)");
        }
        p.raw("</summary>\n");
        capped_pre(p, |w| {
            dump.lines()
                .try_for_each(|l| writeln!(w, "{}", for_html::esc(l)))
        });
        p.raw("</details>\n");
    }
    p.raw("</section>\n");
}

/// Every missing or capped part, all of them (the summary lists the first few).
fn losses(p: &mut Page, s: &Snapshot<'_>) {
    let r = s.r;
    let sections = [
        ("scx walker", &r.scx_walker_unavailable),
        ("tasks", &r.task_enrichments_unavailable),
        ("programs", &r.prog_runtime_stats_unavailable),
        ("NUMA", &r.per_node_numa_unavailable),
        ("sdt allocations", &r.sdt_alloc_unavailable),
    ];
    let missing: Vec<(&str, &str)> = sections
        .into_iter()
        .filter_map(|(what, why)| why.as_deref().map(|w| (what, w)))
        .collect();
    if missing.is_empty() && r.capture_notes.is_empty() {
        return;
    }
    p.raw("<details class=\"losses\"")
        .raw(if r.is_placeholder { " open" } else { "" })
        .fmt(format_args!(
            "><summary>What the capture lost or doubts ({})</summary>\n<ul>",
            missing.len() + r.capture_notes.len()
        ));
    for (what, why) in &missing {
        p.raw("<li>").raw(what).raw(": ").guest(why).raw("</li>\n");
    }
    for n in r.capture_notes.iter().take(MAX_NOTES) {
        p.raw("<li>").guest(n).raw("</li>\n");
    }
    p.raw("</ul>\n");
    if r.capture_notes.len() > MAX_NOTES {
        p.fmt(format_args!(
            "<p class=\"folded\">{} more notes not listed</p>\n",
            r.capture_notes.len() - MAX_NOTES
        ));
    }
    p.raw("</details>\n");
}

/// The sections the page does not draw, as the text rendering prints them.
fn rest(p: &mut Page, s: &Snapshot<'_>) {
    p.raw("<details class=\"rest\" id=\"")
        .raw(s.id)
        .raw("-rest\"")
        .raw(if s.r.is_placeholder { " open" } else { "" })
        .raw(
            "><summary>Everything else, as <code>ktstr render</code> prints it \
              (vCPUs, allocations, CPU times, perf counters, …)</summary>\n",
        );
    capped_pre(p, |w| for_html::body_without_maps(s.r, w));
    p.raw("</details>\n");
}

/// A `<pre>` of the text `fill` writes, at most [`TEXT_CAP`] bytes of it, and a line
/// saying so when it was cut.
fn capped_pre(p: &mut Page, fill: impl FnOnce(&mut write::Escaping<'_>) -> std::fmt::Result) {
    p.raw("<pre>");
    let cut = {
        let mut w = p.sink(TEXT_CAP);
        fill(&mut w).is_err() && w.cut()
    };
    p.raw("</pre>\n");
    if cut {
        p.fmt(format_args!(
            "<p class=\"folded\">cut after {} KiB</p>\n",
            TEXT_CAP >> 10
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        DegradedFailureDumpReport, DsqState, EventCounterSample, FailureDumpArrayEntry,
        FailureDumpMap, ProgRuntimeStats, RenderedValue, RqScxState, TaskEnrichment, map_type,
    };

    fn whole(page: &str) {
        assert!(page.starts_with("<!DOCTYPE html>\n"));
        assert!(page.ends_with("</body>\n</html>\n"));
        assert!(page.contains("<section id=\"summary\">"));
        assert_eq!(
            page.matches("<script>").count(),
            2,
            "the catcher and the page's script"
        );
    }

    #[test]
    fn every_kind_makes_a_page() {
        // A placeholder: its reason in the summary, the rest open.
        let p = page(&FailureDumpReport::placeholder("the guest died").into());
        whole(&p);
        assert!(p.contains("no scheduler state (the guest died)"));
        assert!(p.contains("<details class=\"rest\" id=\"dump-rest\" open>"));
        // A dual report without an early snapshot says why.
        let mut d = DualFailureDumpReport::new(FailureDumpReport::default());
        d.early_skipped_reason = Some("max_age never crossed threshold <x>".into());
        let p = page(&d.into());
        whole(&p);
        assert!(p.contains("absent: max_age never crossed threshold &lt;x&gt;"));
        // Degraded: its text rendering.
        let p = page(
            &DegradedFailureDumpReport {
                reason: "vCPU rendezvous timed out".into(),
                ..Default::default()
            }
            .into(),
        );
        whole(&p);
        assert!(p.contains("degraded failure dump:\n  reason: vCPU rendezvous timed out"));
        // Maps only: nothing to summarize, the map is there.
        let p = page(
            &FailureDumpReport {
                maps: vec![FailureDumpMap {
                    name: "m".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }
            .into(),
        );
        whole(&p);
        assert!(p.contains("maps only"));
        assert!(p.contains("<summary>map m (type=unspec"));
    }

    /// More of everything than any real dump holds.
    fn huge() -> FailureDumpReport {
        let kvas: Vec<u64> = (0..2000).map(|i| 0x1000 + i * 8).collect();
        FailureDumpReport {
            task_enrichments: (0..20_000)
                .map(|i| TaskEnrichment {
                    pid: i,
                    comm: "<t>\"'&\x1b".into(),
                    task_kva: 0x1000 + i as u64 * 8,
                    ..Default::default()
                })
                .collect(),
            rq_scx_states: (0..1024)
                .map(|cpu| RqScxState {
                    cpu,
                    nr_running: 5,
                    curr_pid: 1,
                    runnable_task_kvas: kvas.clone(),
                    ..Default::default()
                })
                .collect(),
            dsq_states: (0..2000)
                .map(|id| DsqState {
                    id,
                    nr: 2000,
                    task_kvas: kvas.clone(),
                    ..Default::default()
                })
                .collect(),
            event_counter_timeline: (0..100_000)
                .map(|i| EventCounterSample {
                    elapsed_ms: i,
                    dispatch_keep_last: i as i64 % 7,
                    ..Default::default()
                })
                .collect(),
            prog_runtime_stats: vec![ProgRuntimeStats::default(); 10_000],
            capture_notes: vec!["note".into(); 10_000],
            maps: (0..40)
                .map(|m| FailureDumpMap {
                    name: format!("map{m}"),
                    map_type: map_type::ARRAY,
                    array_entries: (0..5_000)
                        .map(|k| FailureDumpArrayEntry {
                            key: k,
                            value: Some(RenderedValue::Uint {
                                bits: 64,
                                value: u64::from(k),
                            }),
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_huge_report_makes_a_bounded_page() {
        let r = huge();
        let p = page(&r.clone().into());
        whole(&p);
        assert!(p.len() < 6 << 20, "{} bytes", p.len());
        assert!(p.contains("17000 more tasks not listed"));
        assert!(p.contains("8000 more programs not listed"));
        assert!(p.contains("9500 more notes not listed"));
        assert!(p.contains("768 more busy CPUs not drawn"));
        assert!(p.contains("1744 more DSQs holding tasks not drawn"));
        assert!(p.contains("100000 samples (<span class=\"folded\">2048 drawn"));
        assert!(p.contains("budget for map text (1024 KiB) was spent"));
        // The chips stop at the snapshot's total; the queues say how many more.
        assert_eq!(p.matches("<li class=\"chip").count(), 1024);
        // Hostile comms are text.
        assert!(!p.contains("<t>"));
        assert!(p.contains("&lt;t&gt;&quot;&#39;&amp;\\x1b"));
    }
}
