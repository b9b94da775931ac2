//! What the capture session calls while the guest runs (reads may race with the guest;
//! callers retry on error): the event-counter sampler, the runnable-age scanner that
//! decides the early snapshot of a dual capture, and the trigger location.

use dump_schema::reasons as why;
use dump_schema::{DualFailureDumpReport, EventCounterSample, FailureDumpReport};
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelView, PerCpu};
use crate::lists::CoreOffsets;
use crate::rq::{RqOffsets, RunnableAge, oldest_runnable, runqueues};
use crate::sched::{EventOffsets, SchedOffsets, sample_events};

pub use crate::sched::TriggerLocation;

/// Samples `scx_sched`'s per-CPU event counters, offsets resolved once.
#[derive(Debug, Clone)]
pub struct EventSampler {
    eo: EventOffsets,
    pc: PerCpu,
    so: SchedOffsets,
}

impl EventSampler {
    pub fn new(k: &KernelView<'_>) -> Result<EventSampler> {
        let so = SchedOffsets::resolve(k)?;
        Ok(EventSampler {
            eo: EventOffsets::resolve(k.types, &so)?,
            pc: PerCpu::load(k)?,
            so,
        })
    }

    /// One sample, or `Ok(None)` when no scheduler is attached.
    pub fn sample(
        &self,
        k: &KernelView<'_>,
        elapsed_ms: u64,
    ) -> Result<Option<EventCounterSample>> {
        let Some(sch) = self.so.locate(k)? else {
            return Ok(None);
        };
        sample_events(k, &self.eo, &self.pc, sch, elapsed_ms).map(Some)
    }
}

/// Result of one scan of the runnable lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgeScan {
    /// The oldest runnable task, if any task is runnable under sched_ext.
    pub oldest: Option<RunnableAge>,
    /// Half the scheduler's watchdog timeout, in jiffies.
    pub threshold_jiffies: u64,
}

impl AgeScan {
    pub fn max_age_jiffies(&self) -> u64 {
        self.oldest.map_or(0, |o| o.age_jiffies)
    }
    /// Whether the early snapshot should be taken now.
    pub fn crossed(&self) -> bool {
        self.threshold_jiffies > 0 && self.max_age_jiffies() >= self.threshold_jiffies
    }
}

/// Scans every CPU's `rq->scx.runnable_list` for the oldest `scx.runnable_at`.
#[derive(Debug, Clone)]
pub struct RunnableScanner {
    core: CoreOffsets,
    rqo: RqOffsets,
    so: SchedOffsets,
    rqs: Vec<Kva>,
    jiffies: Kva,
}

impl RunnableScanner {
    /// Resolves everything once; an error here is the dual capture's
    /// `scan prerequisites unavailable: …` reason.
    pub fn new(k: &KernelView<'_>) -> Result<RunnableScanner> {
        let pc = PerCpu::load(k)?;
        let jiffies = crate::rq::jiffies_symbol(k)?;
        Ok(RunnableScanner {
            core: CoreOffsets::resolve(k.types)?,
            rqo: RqOffsets::resolve(k.types)?,
            so: SchedOffsets::resolve(k)?,
            rqs: runqueues(k, &pc)?,
            jiffies,
        })
    }

    /// One scan. The threshold is 0 (never crossed) when no scheduler is attached.
    pub fn scan(&self, k: &KernelView<'_>) -> Result<AgeScan> {
        let now = k.u64(self.jiffies, "jiffies")?;
        let threshold_jiffies = match self.so.locate(k)? {
            None => 0,
            Some(sch) => k.u64(self.so.watchdog_timeout.at(sch)?, "watchdog_timeout")? / 2,
        };
        let oldest = oldest_runnable(k, &self.core, &self.rqo, &self.rqs, now)?;
        Ok(AgeScan {
            oldest,
            threshold_jiffies,
        })
    }
}

/// Bookkeeping of a dual capture: the peak age seen, the early snapshot once taken.
#[derive(Debug, Clone, Default)]
pub struct DualTracker {
    peak: u64,
    threshold: u64,
    early: Option<(FailureDumpReport, u64, u64)>,
    prerequisites_error: Option<String>,
}

impl DualTracker {
    pub fn new() -> DualTracker {
        DualTracker::default()
    }

    /// The scanner could not be set up.
    pub fn prerequisites_unavailable(&mut self, err: impl std::fmt::Display) {
        self.prerequisites_error = Some(format!("{}{err}", why::EARLY_SCAN_PREREQUISITES_PREFIX));
    }

    /// Records a scan; returns true when the early snapshot should be taken now
    /// (threshold crossed and no early snapshot yet).
    pub fn observe(&mut self, scan: &AgeScan) -> bool {
        self.peak = self.peak.max(scan.max_age_jiffies());
        if scan.threshold_jiffies > 0 {
            self.threshold = scan.threshold_jiffies;
        }
        self.early.is_none() && scan.crossed()
    }

    /// Stores the early snapshot taken after `observe` returned true.
    pub fn set_early(&mut self, report: FailureDumpReport, scan: &AgeScan) {
        self.early = Some((report, scan.max_age_jiffies(), scan.threshold_jiffies));
    }

    pub fn has_early(&self) -> bool {
        self.early.is_some()
    }

    /// The dual report around the late snapshot.
    pub fn finish(self, late: FailureDumpReport) -> DualFailureDumpReport {
        let mut d = DualFailureDumpReport::new(late);
        match self.early {
            Some((early, age, threshold)) => {
                d.early = Some(early);
                d.early_max_age_jiffies = age;
                d.early_threshold_jiffies = threshold;
            }
            None => {
                d.early_skipped_reason = Some(match self.prerequisites_error {
                    Some(e) => e,
                    None => why::early_max_age_never_crossed(self.peak, self.threshold),
                });
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rq::RunnableAge;

    fn scan(age: u64, threshold: u64) -> AgeScan {
        AgeScan {
            oldest: Some(RunnableAge {
                cpu: 1,
                task: Kva(0xffff_8880_0000_1000),
                pid: 42,
                age_jiffies: age,
            }),
            threshold_jiffies: threshold,
        }
    }

    #[test]
    fn early_snapshot_once_the_threshold_is_crossed() {
        let mut t = DualTracker::new();
        assert!(!t.observe(&scan(100, 250)));
        assert!(t.observe(&scan(260, 250)));
        t.set_early(FailureDumpReport::default(), &scan(260, 250));
        // Only one early snapshot.
        assert!(!t.observe(&scan(400, 250)));
        let d = t.finish(FailureDumpReport::default());
        assert!(d.early.is_some());
        assert_eq!(
            (d.early_max_age_jiffies, d.early_threshold_jiffies),
            (260, 250)
        );
        assert_eq!(d.early_skipped_reason, None);
    }

    #[test]
    fn skipped_reasons_have_the_stable_shapes() {
        let mut t = DualTracker::new();
        t.observe(&scan(100, 250));
        t.observe(&scan(180, 250));
        let d = t.finish(FailureDumpReport::default());
        assert!(d.early.is_none());
        assert_eq!(
            d.early_skipped_reason.as_deref(),
            Some("max_age never crossed threshold (peak=180j, threshold=250j)")
        );
        // No scheduler (threshold 0) never triggers.
        let mut t = DualTracker::new();
        assert!(!t.observe(&scan(10_000, 0)));
        let mut t = DualTracker::new();
        t.prerequisites_unavailable("kernel symbol `jiffies_64` not found");
        let d = t.finish(FailureDumpReport::default());
        assert_eq!(
            d.early_skipped_reason.as_deref(),
            Some("scan prerequisites unavailable: kernel symbol `jiffies_64` not found")
        );
    }
}
