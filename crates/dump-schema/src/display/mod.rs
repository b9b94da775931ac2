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
mod layout;
mod maps;
mod percpu;
mod report;
mod summary;
pub(crate) mod text;
pub(crate) mod value;

use std::fmt::{self, Write};

use crate::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny,
    RenderedValue, ReportDiff,
};
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

/// A report or value rendered with chosen [`DisplayOptions`]; see `display_with`.
pub struct DisplayWith<'a, T: ?Sized> {
    value: &'a T,
    opts: DisplayOptions,
}

macro_rules! display_with {
    ($($t:ty => $write:expr;)*) => {$(
        impl $t {
            /// The human rendering with `opts` (what `Display` prints with the defaults).
            pub fn display_with(&self, opts: &DisplayOptions) -> DisplayWith<'_, Self> {
                DisplayWith { value: self, opts: *opts }
            }
        }

        impl fmt::Display for DisplayWith<'_, $t> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut out = Out::new(f);
                ($write)(self.value, &self.opts, &mut out as &mut dyn Write)?;
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
    ReportDiff => diff::write_diff;
    RenderedValue => |v: &RenderedValue, o: &DisplayOptions, out: &mut dyn Write| {
        value::write_block(&mut value::Cx::new(o), v, 0, 0, "", out)
    };
}

fn write_any(r: &FailureDumpReportAny, o: &DisplayOptions, out: &mut dyn Write) -> fmt::Result {
    match r {
        FailureDumpReportAny::Single(r) => report::write_report(r, o, out),
        FailureDumpReportAny::Dual(r) => write_dual(r, o, out),
        FailureDumpReportAny::Degraded(r) => write_degraded(r, o, out),
    }
}

/// The header line, then the early snapshot (when taken) and the late one, indented.
fn write_dual(r: &DualFailureDumpReport, o: &DisplayOptions, out: &mut dyn Write) -> fmt::Result {
    if summary::has_scheduler_facts(&r.late) {
        summary::write_dual_summary(r, out)?;
        out.write_char('\n')?;
    }
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
    )?;
    if let Some(early) = &r.early {
        out.write_str("\nearly snapshot (half-way):\n")?;
        indented(out, early, o)?;
    }
    out.write_str("\nlate snapshot (error-exit):\n")?;
    indented(out, &r.late, o)
}

/// `report`'s lines indented 2, each ending in `\n`.
/// A snapshot of a dual report, indented, without its own summary (the dual's comes
/// first for both).
fn indented(out: &mut dyn Write, report: &FailureDumpReport, o: &DisplayOptions) -> fmt::Result {
    let mut w = Indent::new(out, 2);
    report::write_body(report, o, &mut w)?;
    w.finish()
}

fn write_degraded(
    r: &DegradedFailureDumpReport,
    _: &DisplayOptions,
    out: &mut dyn Write,
) -> fmt::Result {
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
/// that the two never say different things: the summary, one map block, the sections
/// other than maps, and the one escaping of guest text.
pub(crate) mod for_html {
    use std::fmt::{self, Write};

    use super::{DisplayOptions, report, summary};
    use crate::{DegradedFailureDumpReport, FailureDumpMap, FailureDumpReportAny};

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
        super::write_degraded(d, &DisplayOptions::default(), out)?;
        out.write_char('\n')
    }

    /// One map block as the default rendering prints it.
    pub(crate) fn map(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
        let opts = DisplayOptions::default();
        super::maps::write_map(&mut super::value::Cx::new(&opts), m, out)
    }

    /// Every section of `r` but its maps (and without a summary), as the default rendering
    /// prints them.
    pub(crate) fn body_without_maps(
        r: &crate::FailureDumpReport,
        out: &mut dyn Write,
    ) -> fmt::Result {
        let rest = crate::FailureDumpReport {
            maps: Vec::new(),
            ..r.clone()
        };
        report::write_body(&rest, &DisplayOptions::default(), out)
    }
}
