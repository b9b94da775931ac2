//! `Display` of the reports: what a person reads in a failing test's output or a terminal.
//!
//! The layout follows `shared/spec/display-format.md`; the crate docs list where it goes
//! further. Output has no trailing newline.
//!
//! Everything is written straight to the [`fmt::Formatter`] through the writers of `text`
//! (blank lines between non-empty sections, indentation of nested reports, no trailing
//! newline); write errors propagate.

mod maps;
mod report;
mod text;
mod value;

use std::fmt::{self, Write};

use crate::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny,
};
use text::{Indent, Out};

impl fmt::Display for FailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Out::new(f);
        report::write_report(self, &mut out)?;
        out.finish()
    }
}

impl fmt::Display for DualFailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Out::new(f);
        write_dual(self, &mut out)?;
        out.finish()
    }
}

/// The header line, then the early snapshot (when taken) and the late one, indented.
fn write_dual(r: &DualFailureDumpReport, out: &mut dyn Write) -> fmt::Result {
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
            r.early_skipped_reason
                .as_deref()
                .unwrap_or("no reason recorded")
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
        indented(out, early)?;
    }
    out.write_str("\nlate snapshot (error-exit):\n")?;
    indented(out, &r.late)
}

/// `report`'s lines indented 2, each ending in `\n`.
fn indented(out: &mut dyn Write, report: &FailureDumpReport) -> fmt::Result {
    let mut w = Indent::new(out, 2);
    write!(w, "{report}")?;
    w.finish()
}

impl fmt::Display for DegradedFailureDumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("degraded failure dump:\n")?;
        writeln!(f, "  reason: {}", self.reason)?;
        let parked = self.vcpu_regs.iter().filter(|r| r.is_some()).count();
        writeln!(f, "  vcpus_parked: {parked}/{}", self.vcpu_regs.len())?;
        for (i, r) in self.vcpu_regs.iter().enumerate() {
            match r {
                Some(r) => writeln!(
                    f,
                    "    vcpu {i}: parked, ip={:#018x} sp={:#018x}",
                    r.instruction_pointer, r.stack_pointer
                )?,
                None => writeln!(f, "    vcpu {i}: not_parked")?,
            }
        }
        writeln!(f, "  watchpoint_hit: {}", self.watchpoint_hit)?;
        writeln!(f, "  bss_latch_state: {}", self.bss_latch_state)?;
        match self.exit_kind {
            Some(k) => writeln!(f, "  exit_kind: {k}")?,
            None => writeln!(f, "  exit_kind: none")?,
        }
        write!(f, "  elapsed_ms: {}", self.elapsed_ms)
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
