//! `Display` of the reports: what a person reads in a failing test's output or a terminal.
//!
//! The layout follows `shared/spec/display-format.md`; the crate docs ("Display") list where
//! it goes further. Output has no trailing newline. [`DisplayOptions`] choose the width and
//! whether anything is folded; `Display` uses the defaults.
//!
//! Everything is written straight to the [`fmt::Formatter`] through the writers of `text`
//! (buffering, blank lines between non-empty sections, indentation of nested reports, no
//! trailing newline, the one escaping of guest text); write errors propagate.
//!
//! Files: `report` (the sections of a report), `maps` (one map block), `percpu` (per-CPU
//! values), `value` ([`RenderedValue`]), `layout` (tables, aligned columns), `text` (writers
//! and escaping).

mod diff;
mod filter;
mod kdump;
mod layout;
mod maps;
mod names;
mod percpu;
mod report;
mod runqueues;
mod summary;
mod tasks;
pub(crate) mod text;
pub(crate) mod value;

use std::fmt::{self, Write};

use crate::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny,
    RenderedValue, ReportDiff,
};
pub use filter::Filter;
use filter::{NO_FILTER, Section, View};
use text::{Indent, Out, esc};

/// How the human rendering is laid out. `Display` uses [`DisplayOptions::default`].
///
/// ```
/// use dump_schema::{DisplayOptions, FailureDumpReport};
///
/// let report = FailureDumpReport::default();
/// let opts = DisplayOptions { full: true, width: 80 };
/// assert_eq!(report.display_with(&opts).to_string(), "(empty failure dump)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayOptions {
    /// Nothing folded or hidden: every array element, struct member (zeros too), array-map
    /// key, CPU, task, run queue and DSQ on its own (`ktstr render --full`).
    pub full: bool,
    /// Columns the lines are kept within where the content allows: values print inline when
    /// they fit, data-section scalars fill lines up to it, per-CPU tables wrap at it.
    pub width: usize,
}

impl DisplayOptions {
    /// The width when none is given.
    pub const DEFAULT_WIDTH: usize = 120;
}

impl Default for DisplayOptions {
    fn default() -> Self {
        Self {
            full: false,
            width: Self::DEFAULT_WIDTH,
        }
    }
}

/// A report or value rendered with chosen [`DisplayOptions`] (and [`Filter`]); see
/// `display_with` and `display_filtered`.
pub struct DisplayWith<'a, T: ?Sized> {
    value: &'a T,
    opts: DisplayOptions,
    filter: &'a Filter,
}

macro_rules! display_with {
    ($($t:ty => $write:expr;)*) => {$(
        impl $t {
            /// The human rendering with `opts` (what `Display` prints with the defaults).
            pub fn display_with(&self, opts: &DisplayOptions) -> DisplayWith<'_, Self> {
                DisplayWith { value: self, opts: *opts, filter: &NO_FILTER }
            }

            /// The parts of the rendering `filter` selects (the whole default view when it
            /// is empty); check its names first with [`Filter::check`].
            pub fn display_filtered<'a>(
                &'a self,
                opts: &DisplayOptions,
                filter: &'a Filter,
            ) -> DisplayWith<'a, Self> {
                DisplayWith { value: self, opts: *opts, filter }
            }
        }

        impl fmt::Display for DisplayWith<'_, $t> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut out = Out::new(f);
                let cut = std::cell::Cell::new(false);
                let view = View { opts: self.opts, filter: self.filter, cut: &cut };
                ($write)(self.value, &view, &mut out as &mut dyn Write)?;
                out.finish()
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.display_with(&DisplayOptions::default()).fmt(f)
            }
        }
    )*};
}

display_with! {
    FailureDumpReport => report::write_report;
    DualFailureDumpReport => write_dual;
    DegradedFailureDumpReport => write_degraded;
    FailureDumpReportAny => write_any;
    ReportDiff => |d: &ReportDiff, o: &View<'_>, out: &mut dyn Write| {
        diff::write_diff(d, &o.opts, out)
    };
    RenderedValue => |v: &RenderedValue, o: &View<'_>, out: &mut dyn Write| {
        let mut cx = value::Cx::new(&o.opts, &names::NO_NAMES);
        value::write_block(&mut cx, v, 0, 0, "", out)
    };
}

fn write_any(r: &FailureDumpReportAny, o: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    match r {
        FailureDumpReportAny::Single(r) => report::write_report(r, o, out),
        FailureDumpReportAny::Dual(r) => write_dual(r, o, out),
        FailureDumpReportAny::Degraded(r) => write_degraded(r, o, out),
    }
}

/// The summary and the header line, then the early snapshot (when taken) and the late one,
/// indented. In the default view the early snapshot shows only its run queues (unless
/// `full`): a filter shows its other parts, for both snapshots.
fn write_dual(r: &DualFailureDumpReport, o: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    let mut wrote = false;
    if o.shows(Section::Summary) {
        if summary::has_scheduler_facts(&r.late) {
            summary::write_dual_summary(r, out)?;
            out.write_char('\n')?;
        }
        dual_header(r, out)?;
        wrote = true;
    }
    if let Some(early) = &r.early {
        snapshot(out, "early snapshot (half-way):", wrote, |w| {
            if o.caps() {
                report::write_early(early, o, w).map(|()| true)
            } else {
                report::write_body(early, o, w)
            }
        })?;
        wrote = true;
    }
    snapshot(out, "late snapshot (error-exit):", wrote, |w| {
        report::write_body(&r.late, o, w)
    })?;
    report::legend(o, out)
}

/// `title`, after a blank line unless it comes first, then what `body` writes indented 2
/// (`(nothing selected)` when it writes nothing).
fn snapshot(
    out: &mut dyn Write,
    title: &str,
    after: bool,
    body: impl FnOnce(&mut dyn Write) -> Result<bool, fmt::Error>,
) -> fmt::Result {
    if after {
        out.write_char('\n')?;
    }
    writeln!(out, "{title}")?;
    let mut w = Indent::new(out, 2);
    if !body(&mut w)? {
        w.write_str("(nothing selected)\n")?;
    }
    w.finish()
}

/// `DualFailureDumpReport: early=…, late=(N maps, M vcpu_regs)`.
fn dual_header(r: &DualFailureDumpReport, out: &mut dyn Write) -> fmt::Result {
    out.write_str("DualFailureDumpReport: early=")?;
    match &r.early {
        Some(_) => write!(
            out,
            "present (max_age={}j, threshold={}j)",
            r.early_max_age_jiffies, r.early_threshold_jiffies
        )?,
        None => write!(
            out,
            "absent ({})",
            esc(r
                .early_skipped_reason
                .as_deref()
                .unwrap_or("no reason recorded"))
        )?,
    }
    writeln!(
        out,
        ", late=({} maps, {} vcpu_regs)",
        r.late.maps.len(),
        r.late.vcpu_regs.len()
    )
}

fn write_degraded(r: &DegradedFailureDumpReport, _: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    out.write_str("degraded failure dump:\n")?;
    writeln!(out, "  reason: {}", esc(&r.reason))?;
    let parked = r.vcpu_regs.iter().filter(|r| r.is_some()).count();
    writeln!(out, "  vcpus_parked: {parked}/{}", r.vcpu_regs.len())?;
    for (i, v) in r.vcpu_regs.iter().enumerate() {
        match v {
            Some(v) => writeln!(
                out,
                "    vcpu {i}: parked, ip={:#018x} sp={:#018x}",
                v.instruction_pointer, v.stack_pointer
            )?,
            None => writeln!(out, "    vcpu {i}: not_parked")?,
        }
    }
    writeln!(out, "  watchpoint_hit: {}", r.watchpoint_hit)?;
    writeln!(out, "  bss_latch_state: {}", esc(&r.bss_latch_state))?;
    match r.exit_kind {
        Some(k) => writeln!(out, "  exit_kind: {k}")?,
        None => writeln!(out, "  exit_kind: none")?,
    }
    write!(out, "  elapsed_ms: {}", r.elapsed_ms)
}

/// The pieces of the text rendering the HTML page ([`crate::html`]) shows as they are, so
/// that the two never say different things: the summary, one map block (tasks named), the
/// sections other than maps, and the one escaping of guest text.
pub(crate) mod for_html {
    use std::cell::Cell;
    use std::fmt::{self, Write};

    use super::filter::{Filter, NO_FILTER, View};
    use super::names::Names;
    use super::{DisplayOptions, report, summary};
    use crate::{
        DegradedFailureDumpReport, FailureDumpMap, FailureDumpReport, FailureDumpReportAny,
    };

    pub(crate) use super::layout::RangeList;
    pub(crate) use super::text::esc;

    /// The summary of the text rendering (each line ending in `\n`), or nothing when the
    /// report says nothing about a scheduler; a degraded report's whole rendering.
    pub(crate) fn summary(r: &FailureDumpReportAny, out: &mut dyn Write) -> fmt::Result {
        match r {
            FailureDumpReportAny::Single(r) if summary::has_scheduler_facts(r) => {
                summary::write_summary(r, out)
            }
            FailureDumpReportAny::Single(_) => Ok(()),
            FailureDumpReportAny::Dual(d) => summary::write_dual_summary(d, out),
            FailureDumpReportAny::Degraded(d) => degraded(d, out),
        }
    }

    fn degraded(d: &DegradedFailureDumpReport, out: &mut dyn Write) -> fmt::Result {
        let cut = Cell::new(false);
        let view = View {
            opts: DisplayOptions::default(),
            filter: &NO_FILTER,
            cut: &cut,
        };
        super::write_degraded(d, &view, out)?;
        out.write_char('\n')
    }

    /// One map of `r` as the default rendering prints it (addresses that are `r`'s tasks
    /// named, storage keys as their owners).
    pub(crate) fn map(
        r: &FailureDumpReport,
        m: &FailureDumpMap,
        out: &mut dyn Write,
    ) -> fmt::Result {
        let opts = DisplayOptions::default();
        let names = Names::of(r);
        super::maps::write_map(&mut super::value::Cx::new(&opts, &names), m, false, out)
    }

    /// Every section of `r` but its summary and maps, as `ktstr render --section …` prints
    /// them.
    pub(crate) fn body_without_maps(r: &FailureDumpReport, out: &mut dyn Write) -> fmt::Result {
        let filter = Filter {
            sections: Filter::SECTIONS
                .iter()
                .map(|(name, _)| *name)
                .filter(|n| *n != "maps" && *n != "summary")
                .map(String::from)
                .collect(),
            ..Filter::default()
        };
        let cut = Cell::new(false);
        let view = View {
            opts: DisplayOptions::default(),
            filter: &filter,
            cut: &cut,
        };
        report::write_body(r, &view, out).map(|_| ())
    }
}
