//! The early half of a dual capture, taken by `ktstr run` while the guest runs.
//!
//! Between the trigger watch's polls (every [`SCAN_EVERY`]) the runnable tasks' ages are
//! scanned from the host (`scx_walk::RunnableScanner`: every CPU's `rq->scx.runnable_list`,
//! `jiffies - p->scx.runnable_at`). The first time the oldest passes half the scheduler's
//! watchdog timeout (`scx_sched.watchdog_timeout / 2`), the guest is frozen, captured
//! through the same path as the late snapshot, and thawed; the run goes on. At the end the
//! late snapshot and this one make a `DualFailureDumpReport`; without an early snapshot
//! `early` is absent and `early_skipped_reason` says why, in one of the stable shapes:
//!
//! | reason | when |
//! |---|---|
//! | `max_age never crossed threshold (peak=Pj, threshold=Tj)` | no task waited that long (e.g. `ok` runs to its `--timeout`) |
//! | `scan prerequisites unavailable: …` | the scanner's symbols or BTF members are missing |
//! | [`EARLY_SNAPSHOT_FAILED_PREFIX`]`…` | the threshold was crossed but the early freeze or capture failed (the reason follows); not retried |

use std::time::{Duration, Instant};

use dump_schema::{DualFailureDumpReport, FailureDumpReport};
use scx_walk::live::AgeScan;
use scx_walk::{DualTracker, KernelView, RunnableScanner};

/// How often the runnable ages are scanned (a jiffy is 4 ms at the lab kernel's HZ=250;
/// a scan of a small guest costs well under a millisecond, so this keeps the trigger
/// poll's duty cycle high).
pub const SCAN_EVERY: Duration = Duration::from_millis(20);

/// Stable prefix of `early_skipped_reason` when the threshold was crossed but the early
/// snapshot could not be taken.
pub const EARLY_SNAPSHOT_FAILED_PREFIX: &str = "early snapshot failed: ";

/// What the early snapshot recorded, for logs and progress.
#[derive(Debug, Clone)]
pub struct EarlyTaken {
    pub pid: i32,
    pub cpu: u32,
    pub age_jiffies: u64,
    pub threshold_jiffies: u64,
    /// Freeze to thaw.
    pub frozen_for: Duration,
    /// Taken at the time `--early-at` asked for, not because the threshold was crossed.
    pub at_requested_time: bool,
}

impl std::fmt::Display for EarlyTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.frozen_for.as_secs_f64() * 1e3;
        if self.at_requested_time && self.pid == 0 && self.age_jiffies == 0 {
            return write!(
                f,
                "early snapshot at the requested time (--early-at): no runnable task waiting (threshold {}j); guest frozen {ms:.0} ms for it",
                self.threshold_jiffies
            );
        }
        if self.at_requested_time {
            return write!(
                f,
                "early snapshot at the requested time (--early-at): oldest runnable pid {} on CPU {} waited {}j (threshold {}j); guest frozen {ms:.0} ms for it",
                self.pid, self.cpu, self.age_jiffies, self.threshold_jiffies
            );
        }
        write!(
            f,
            "early snapshot: oldest runnable pid {} on CPU {} waited {}j >= threshold {}j; guest frozen {ms:.0} ms for it",
            self.pid, self.cpu, self.age_jiffies, self.threshold_jiffies
        )
    }
}

/// The scanner and the dual capture's bookkeeping.
pub(crate) struct EarlySnapshot {
    scanner: Option<RunnableScanner>,
    tracker: DualTracker,
    failed: Option<String>,
    taken: Option<EarlyTaken>,
    scans: u64,
    scan_errors: u64,
    scan_time: Duration,
    last_scan_error: Option<String>,
    /// When to take the snapshot whatever the waits (`--early-at`).
    due: Option<Instant>,
}

impl EarlySnapshot {
    /// Resolves the scanner over the live kernel view; a failure becomes the
    /// `scan prerequisites unavailable: …` reason.
    pub fn new(k: &KernelView<'_>, due: Option<Instant>) -> EarlySnapshot {
        let mut tracker = DualTracker::new();
        let scanner = RunnableScanner::new(k)
            .inspect_err(|e| tracker.prerequisites_unavailable(e))
            .ok();
        EarlySnapshot {
            scanner,
            tracker,
            failed: None,
            taken: None,
            scans: 0,
            scan_errors: 0,
            scan_time: Duration::ZERO,
            last_scan_error: None,
            due,
        }
    }

    /// Whether scanning is still useful (a scanner, no snapshot and no failure yet).
    pub fn active(&self) -> bool {
        self.scanner.is_some() && !self.tracker.has_early() && self.failed.is_none()
    }

    /// One scan; when the threshold is crossed, `take` freezes, captures and thaws (it
    /// returns the report or why not). Returns what was taken, once.
    ///
    /// A scan reads a running guest: a torn read is an error that the next scan retries.
    pub fn tick(
        &mut self,
        k: &KernelView<'_>,
        take: impl FnOnce(&AgeScan) -> Result<(FailureDumpReport, Duration), String>,
    ) -> Option<&EarlyTaken> {
        if !self.active() {
            return None;
        }
        let scanner = self.scanner.as_ref()?;
        let t0 = Instant::now();
        let scan = scanner.scan(k);
        self.scan_time += t0.elapsed();
        self.scans += 1;
        let scan = match scan {
            Ok(s) => s,
            Err(e) => {
                self.scan_errors += 1;
                self.last_scan_error = Some(e.to_string());
                return None;
            }
        };
        let crossed = self.tracker.observe(&scan);
        let at_requested_time = !crossed && self.due.is_some_and(|d| Instant::now() >= d);
        if !crossed && !at_requested_time {
            return None;
        }
        match take(&scan) {
            Ok((report, frozen_for)) => {
                self.tracker.set_early(report, &scan);
                let oldest = scan.oldest;
                self.taken = Some(EarlyTaken {
                    pid: oldest.map_or(0, |o| o.pid),
                    cpu: oldest.map_or(0, |o| o.cpu),
                    age_jiffies: scan.max_age_jiffies(),
                    threshold_jiffies: scan.threshold_jiffies,
                    frozen_for,
                    at_requested_time,
                });
                self.taken.as_ref()
            }
            Err(why) => {
                self.failed = Some(format!("{EARLY_SNAPSHOT_FAILED_PREFIX}{why}"));
                None
            }
        }
    }

    /// Whether the early snapshot was taken.
    pub fn has_early(&self) -> bool {
        self.tracker.has_early()
    }

    /// A line for `-v`: scans, their cost, errors.
    pub fn summary(&self) -> String {
        let avg_us = if self.scans > 0 {
            self.scan_time.as_secs_f64() * 1e6 / self.scans as f64
        } else {
            0.0
        };
        let mut s = format!(
            "runnable-age scans: {} ({:.0} µs each on average), {} torn/failed",
            self.scans, avg_us, self.scan_errors
        );
        if let Some(e) = &self.last_scan_error {
            s.push_str(&format!(" (last: {e})"));
        }
        if let Some(t) = &self.taken {
            s.push_str(&format!("; {t}"));
        }
        if let Some(f) = &self.failed {
            s.push_str(&format!("; {f}"));
        }
        s
    }

    /// The dual report around the late snapshot.
    pub fn finish(self, late: FailureDumpReport) -> DualFailureDumpReport {
        let mut d = self.tracker.finish(late);
        if d.early.is_none()
            && let Some(f) = self.failed
        {
            d.early_skipped_reason = Some(f);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(failed: Option<&str>) -> EarlySnapshot {
        EarlySnapshot {
            scanner: None,
            tracker: DualTracker::new(),
            failed: failed.map(str::to_string),
            taken: None,
            scans: 0,
            scan_errors: 0,
            scan_time: Duration::ZERO,
            last_scan_error: None,
            due: None,
        }
    }

    #[test]
    fn a_failed_early_snapshot_gives_its_reason() {
        let e = idle(Some("early snapshot failed: freeze: QMP stop timed out"));
        assert!(!e.active() && !e.has_early());
        let d = e.finish(FailureDumpReport::default());
        assert!(d.early.is_none());
        assert_eq!(
            d.early_skipped_reason.as_deref(),
            Some("early snapshot failed: freeze: QMP stop timed out")
        );
        assert!(
            d.early_skipped_reason
                .unwrap()
                .starts_with(EARLY_SNAPSHOT_FAILED_PREFIX)
        );
    }

    #[test]
    fn without_a_scanner_the_prerequisites_reason_stays() {
        let mut e = idle(None);
        e.tracker
            .prerequisites_unavailable("kernel symbol `jiffies_64` not found");
        assert!(!e.active());
        assert!(e.summary().starts_with("runnable-age scans: 0 "));
        let d = e.finish(FailureDumpReport::default());
        assert_eq!(
            d.early_skipped_reason.as_deref(),
            Some("scan prerequisites unavailable: kernel symbol `jiffies_64` not found")
        );
    }

    #[test]
    fn taken_is_described_for_the_progress_line() {
        let t = EarlyTaken {
            pid: 131,
            cpu: 1,
            age_jiffies: 253,
            threshold_jiffies: 250,
            frozen_for: Duration::from_millis(772),
            at_requested_time: false,
        };
        assert_eq!(
            t.to_string(),
            "early snapshot: oldest runnable pid 131 on CPU 1 waited 253j >= threshold 250j; guest frozen 772 ms for it"
        );
        let asked = EarlyTaken {
            age_jiffies: 12,
            at_requested_time: true,
            ..t
        };
        assert_eq!(
            asked.to_string(),
            "early snapshot at the requested time (--early-at): oldest runnable pid 131 on CPU 1 waited 12j (threshold 250j); guest frozen 772 ms for it"
        );
        let none = EarlyTaken {
            pid: 0,
            cpu: 0,
            age_jiffies: 0,
            ..asked
        };
        assert_eq!(
            none.to_string(),
            "early snapshot at the requested time (--early-at): no runnable task waiting (threshold 250j); guest frozen 772 ms for it"
        );
    }
}
