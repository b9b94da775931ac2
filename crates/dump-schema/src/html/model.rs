//! What the page needs to know about one snapshot beyond its fields: which task an address
//! is, and where each task runs or waits.

use std::collections::HashMap;

use crate::{FailureDumpReport, TaskEnrichment};

/// Where a task was at the capture: running on a CPU, on a CPU's runnable list, or queued
/// on a DSQ (1-based positions, queue order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Running { cpu: u32 },
    Runnable { cpu: u32, pos: usize },
    Queued { dsq: u64, pos: usize },
}

/// One snapshot of the page (a single report, or a dual report's early or late one).
pub(crate) struct Snapshot<'r> {
    pub(crate) r: &'r FailureDumpReport,
    /// The id prefix of its elements (`late`, `early`, `dump`).
    pub(crate) id: &'static str,
    /// Index in `r.task_enrichments` by `task_kva`.
    by_kva: HashMap<u64, usize>,
    /// Where each task is, by index in `r.task_enrichments`: the first [`MAX_PLACES`]
    /// places, and how many more (a task is on one runnable list and one DSQ at a time,
    /// but a damaged dump may list it anywhere).
    places: HashMap<usize, (Vec<Place>, usize)>,
}

impl<'r> Snapshot<'r> {
    pub(crate) fn new(r: &'r FailureDumpReport, id: &'static str) -> Self {
        let by_kva: HashMap<u64, usize> = r
            .task_enrichments
            .iter()
            .enumerate()
            .filter(|(_, t)| t.task_kva != 0)
            .map(|(i, t)| (t.task_kva, i))
            .collect();
        let by_pid: HashMap<i32, usize> = r
            .task_enrichments
            .iter()
            .enumerate()
            .map(|(i, t)| (t.pid, i))
            .collect();
        let mut places: HashMap<usize, (Vec<Place>, usize)> = HashMap::new();
        let mut add = |i: usize, p: Place| {
            let (kept, more) = places.entry(i).or_default();
            if kept.len() < MAX_PLACES {
                kept.push(p);
            } else {
                *more += 1;
            }
        };
        for q in &r.rq_scx_states {
            if q.curr_pid != 0
                && let Some(&i) = by_pid.get(&q.curr_pid)
            {
                add(i, Place::Running { cpu: q.cpu });
            }
            for (pos, kva) in q.runnable_task_kvas.iter().enumerate() {
                if let Some(&i) = by_kva.get(kva) {
                    add(
                        i,
                        Place::Runnable {
                            cpu: q.cpu,
                            pos: pos + 1,
                        },
                    );
                }
            }
        }
        for d in &r.dsq_states {
            for (pos, kva) in d.task_kvas.iter().enumerate() {
                if let Some(&i) = by_kva.get(kva) {
                    add(
                        i,
                        Place::Queued {
                            dsq: d.id,
                            pos: pos + 1,
                        },
                    );
                }
            }
        }
        Snapshot {
            r,
            id,
            by_kva,
            places,
        }
    }

    /// Whether any task has its wait recorded (`runnable_age_jiffies`).
    pub(crate) fn has_waits(&self) -> bool {
        self.r
            .task_enrichments
            .iter()
            .any(|t| t.runnable_age_jiffies.is_some())
    }

    /// The task at `kva`, when the report captured it.
    pub(crate) fn task(&self, kva: u64) -> Option<&'r TaskEnrichment> {
        self.by_kva.get(&kva).map(|&i| &self.r.task_enrichments[i])
    }

    /// Where task `i` (an index in `task_enrichments`) is (empty when nowhere in
    /// particular: sleeping, or not under sched_ext), and in how many more places.
    pub(crate) fn places(&self, i: usize) -> (&[Place], usize) {
        self.places
            .get(&i)
            .map_or((&[], 0), |(kept, more)| (kept.as_slice(), *more))
    }
}

/// Places kept per task.
const MAX_PLACES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DsqState, RqScxState};

    #[test]
    fn tasks_are_found_where_they_run_and_wait() {
        let r = FailureDumpReport {
            task_enrichments: vec![
                TaskEnrichment {
                    pid: 7,
                    comm: "sh".into(),
                    task_kva: 0x1000,
                    ..Default::default()
                },
                TaskEnrichment {
                    pid: 9,
                    comm: "victim".into(),
                    task_kva: 0x2000,
                    ..Default::default()
                },
            ],
            rq_scx_states: vec![RqScxState {
                cpu: 1,
                curr_pid: 7,
                runnable_task_kvas: vec![0x1000, 0x2000, 0x3000],
                ..Default::default()
            }],
            dsq_states: vec![DsqState {
                id: 0x101,
                task_kvas: vec![0x2000],
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = Snapshot::new(&r, "dump");
        assert_eq!(
            s.places(0),
            (
                &[
                    Place::Running { cpu: 1 },
                    Place::Runnable { cpu: 1, pos: 1 }
                ][..],
                0
            )
        );
        assert_eq!(
            s.places(1),
            (
                &[
                    Place::Runnable { cpu: 1, pos: 2 },
                    Place::Queued { dsq: 0x101, pos: 1 }
                ][..],
                0
            )
        );
        assert_eq!(s.task(0x2000).map(|t| t.pid), Some(9));
        assert!(s.task(0x3000).is_none());
        assert!(!s.has_waits());
    }
}
