//! What the page needs to know about one snapshot beyond its fields: which task an address
//! is, where each task runs or waits, and how long it has waited where the kernel said so.

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
    /// Milliseconds each runnable task had been runnable, by pid, from the kernel's debug
    /// dump (empty without one).
    waits: HashMap<i32, u64>,
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
        let waits = r
            .exit_info
            .as_ref()
            .and_then(|e| e.kernel_dump.as_deref())
            .map(kernel_dump_waits)
            .unwrap_or_default();
        Snapshot {
            r,
            id,
            by_kva,
            places,
            waits,
        }
    }

    /// How long task `pid` had been runnable when the kernel dumped its state, in ms.
    pub(crate) fn wait_ms(&self, pid: i32) -> Option<u64> {
        self.waits.get(&pid).copied()
    }

    /// Whether the snapshot has waiting times at all.
    pub(crate) fn has_waits(&self) -> bool {
        !self.waits.is_empty()
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

/// Lines of the kernel's debug dump read at most.
const MAX_DUMP_LINES: usize = 100_000;

/// From the kernel's debug dump (`scx_dump_state`), how long each task on a CPU's runnable
/// list had been runnable, by pid: its task lines read ` *R comm[pid] *root -2288ms` (`*`
/// for the current task, the state letter, the task, the scheduler on newer kernels, then
/// `runnable_at` relative to the dump). A positive offset (the task turned runnable while
/// the kernel was dumping) counts as 0. Lines that do not have that shape are ignored.
pub(crate) fn kernel_dump_waits(dump: &str) -> HashMap<i32, u64> {
    dump.lines()
        .take(MAX_DUMP_LINES)
        .filter_map(task_line)
        .collect()
}

/// `(pid, ms runnable)` of one task line of the kernel's debug dump.
fn task_line(line: &str) -> Option<(i32, u64)> {
    let rest = line.strip_prefix(' ')?;
    let rest = rest.strip_prefix(['*', ' '])?;
    let mut chars = rest.chars();
    if !chars.next()?.is_ascii_uppercase() || chars.next()? != ' ' {
        return None;
    }
    let rest = &rest[2..];
    let (task, age) = rest.trim_end().rsplit_once(' ')?;
    let delta: i64 = age.strip_suffix("ms")?.parse().ok()?;
    if !age.starts_with(['+', '-']) {
        return None;
    }
    // The pid is in the last `[digits]` of what precedes (a comm may hold brackets).
    let close = task.rfind(']')?;
    let open = task[..close].rfind('[')?;
    let pid: i32 = task[open + 1..close].parse().ok()?;
    Some((pid, u64::try_from(-delta).unwrap_or(0)))
}

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

    #[test]
    fn waits_from_the_kernels_dump() {
        // As the 7.3 kernel writes it (scx_dump_state), with a hostile comm.
        let dump = "ktstr_stall: root\n\
            kworker/u8:0[12] triggered exit kind 1026 on CPU 1:\n\
            \x20 runnable task stall (ktstr-victim[150] failed to run for 2.280s)\n\
            CPU 1   : nr_run=4 flags=0x1 cpu_rel=0 ksync=2008\n\
            \x20         curr=sh[156] class=ext_sched_class\n\
            \x20*R sh[156] *root -12ms\n\
            \x20     scx_state/flags=4/0x5 dsq_flags=0x0 ops_state/qseq=0/0\n\
            \x20 R ktstr-victim[150] *root -2288ms\n\
            \x20 R rcu_preempt[15] *root +16ms\n\
            \x20 R a]b[c[d] [77] -5ms\n\
            \x20 R old[31] -40ms\n\
            \x20 R bad[x] -1ms\n\
            \x20 R huge[32] -99999999999999999999ms\n\
            \x20 R [33] 12ms\n";
        let w = kernel_dump_waits(dump);
        assert_eq!(w.get(&156), Some(&12));
        assert_eq!(w.get(&150), Some(&2288));
        assert_eq!(w.get(&15), Some(&0));
        assert_eq!(w.get(&77), Some(&5));
        assert_eq!(w.get(&31), Some(&40));
        assert_eq!(w.len(), 5, "{w:?}");
    }
}
