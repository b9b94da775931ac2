//! `ktstr diff`: what changed between two dumps ([`dump_schema::ReportDiff`]).

use std::path::Path;

use dump_schema::{FailureDumpReportAny, ReportDiff};

use crate::Error;
use crate::input::read_report;

/// The diff from dump `a` to dump `b` (each labelled with its path as given), or, with no
/// `b`, from `a`'s early snapshot to its late one (`a` must be a dual dump that has one).
pub fn diff_files(a: &Path, b: Option<&Path>) -> Result<ReportDiff, Error> {
    let ra = read_report(a)?;
    let label = |p: &Path| p.display().to_string();
    if let Some(b) = b {
        let rb = read_report(b)?;
        return Ok(ReportDiff::between(&ra, &label(a), &rb, &label(b)));
    }
    let FailureDumpReportAny::Dual(d) = &ra else {
        return Err(Error::Usage(format!(
            "{}: a {} report has one snapshot; give two dumps to compare, or a dual dump",
            a.display(),
            ra.schema()
        )));
    };
    ReportDiff::early_late(d).ok_or_else(|| {
        Error::Usage(format!(
            "{}: the dual dump has no early snapshot ({}); give two dumps to compare",
            a.display(),
            d.early_skipped_reason
                .as_deref()
                .unwrap_or("no reason recorded")
        ))
    })
}
