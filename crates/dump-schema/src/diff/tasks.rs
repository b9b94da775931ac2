//! Tasks, DSQs and CPUs: who is where in each snapshot, and what moved.

use std::collections::{HashMap, HashSet};

use super::{
    Change, CpuDiff, DsqDiff, FieldChange, TaskDiff, TaskPlace, TaskRef, bool_change, num_change,
    opt_num_change, pair_by_key, text_change,
};
use crate::{DsqState, FailureDumpReport, RqScxState, TaskEnrichment};

/// How a task is told apart within a snapshot: its pid, and for pid 0 (every CPU's idle
/// task) its comm.
fn task_key(t: &TaskEnrichment) -> (i32, String) {
    (t.pid, idle_comm(t.pid, &t.comm).to_string())
}

fn idle_comm(pid: i32, comm: &str) -> &str {
    if pid == 0 { comm } else { "" }
}

/// A queued task as it is matched between snapshots: by pid where the snapshot names the
/// task at that address, else by the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ident<'r> {
    Task(i32, &'r str),
    Addr(u64),
}

/// One snapshot, indexed.
pub(super) struct Side<'r> {
    pub(super) r: &'r FailureDumpReport,
    by_kva: HashMap<u64, &'r TaskEnrichment>,
    /// Where each queued or runnable task is, by address.
    places: HashMap<u64, TaskPlace>,
    /// CPU of each running task, by (pid, idle comm).
    running: HashMap<(i32, &'r str), u32>,
}

impl<'r> Side<'r> {
    fn new(r: &'r FailureDumpReport) -> Side<'r> {
        let by_kva = r
            .task_enrichments
            .iter()
            .filter(|t| t.task_kva != 0)
            .map(|t| (t.task_kva, t))
            .collect();
        let mut places: HashMap<u64, TaskPlace> = HashMap::new();
        for q in &r.rq_scx_states {
            for &kva in &q.runnable_task_kvas {
                places.entry(kva).or_default().cpu = Some(q.cpu);
            }
        }
        for d in &r.dsq_states {
            for &kva in &d.task_kvas {
                let p = places.entry(kva).or_default();
                p.dsq = Some(d.id);
                p.dsq_origin = Some(d.origin.clone());
            }
        }
        let running = r
            .rq_scx_states
            .iter()
            .filter(|q| !q.curr_comm.is_empty() || q.curr_pid != 0)
            .map(|q| ((q.curr_pid, idle_comm(q.curr_pid, &q.curr_comm)), q.cpu))
            .collect();
        Side {
            r,
            by_kva,
            places,
            running,
        }
    }

    /// The task at `kva`, when the snapshot has it.
    pub(super) fn task_at(&self, kva: u64) -> Option<&'r TaskEnrichment> {
        self.by_kva.get(&kva).copied()
    }

    fn ident(&self, kva: u64) -> Ident<'r> {
        match self.task_at(kva) {
            Some(t) => Ident::Task(t.pid, idle_comm(t.pid, &t.comm)),
            None => Ident::Addr(kva),
        }
    }

    fn task_ref(&self, kva: u64) -> TaskRef {
        let t = self.task_at(kva);
        TaskRef {
            pid: t.map(|t| t.pid),
            comm: t.map(|t| t.comm.clone()),
            task_kva: kva,
        }
    }

    /// Where `t` is: on a CPU's runnable list or running there, and/or on a DSQ.
    fn place(&self, t: &TaskEnrichment) -> Option<TaskPlace> {
        let mut p = match t.task_kva {
            0 => TaskPlace::default(),
            kva => self.places.get(&kva).cloned().unwrap_or_default(),
        };
        if let Some(&cpu) = self.running.get(&(t.pid, idle_comm(t.pid, &t.comm))) {
            p.cpu = Some(cpu);
            p.running = true;
        }
        (p != TaskPlace::default()).then_some(p)
    }
}

/// The two snapshots compared.
pub(super) struct Snapshots<'r> {
    pub(super) a: Side<'r>,
    pub(super) b: Side<'r>,
}

impl<'r> Snapshots<'r> {
    pub(super) fn new(a: &'r FailureDumpReport, b: &'r FailureDumpReport) -> Self {
        Snapshots {
            a: Side::new(a),
            b: Side::new(b),
        }
    }

    /// Every task that appeared, went, moved, waited longer or changed.
    pub(super) fn tasks(&self) -> Vec<TaskDiff> {
        let (ta, tb) = (&self.a.r.task_enrichments, &self.b.r.task_enrichments);
        let mut out = Vec::new();
        for pair in pair_by_key(ta, tb, task_key) {
            match pair {
                (Some(i), Some(j)) if reused(&ta[i], &tb[j]) => {
                    out.push(only(&self.a, &ta[i], Change::Gone));
                    out.push(only(&self.b, &tb[j], Change::Appeared));
                }
                (Some(i), Some(j)) => out.extend(self.task_changed(&ta[i], &tb[j])),
                (None, Some(j)) => out.push(only(&self.b, &tb[j], Change::Appeared)),
                (Some(i), None) => out.push(only(&self.a, &ta[i], Change::Gone)),
                (None, None) => {}
            }
        }
        out
    }

    fn task_changed(&self, x: &TaskEnrichment, y: &TaskEnrichment) -> Option<TaskDiff> {
        let (pa, pb) = (self.a.place(x), self.b.place(y));
        let moved = match (&pa, &pb) {
            (Some(p), Some(q)) => p.cpu != q.cpu || p.dsq != q.dsq || p.dsq_origin != q.dsq_origin,
            _ => false,
        };
        let wait = opt_num_change(
            WAIT,
            x.runnable_age_jiffies.map(Into::into),
            y.runnable_age_jiffies.map(Into::into),
        );
        let fields = task_fields(x, y);
        if pa == pb && wait.is_none() && fields.is_empty() {
            return None;
        }
        let ran = fields.iter().any(|f| RAN.contains(&f.name.as_str()));
        Some(TaskDiff {
            pid: y.pid,
            comm: y.comm.clone(),
            change: Change::Changed,
            place_a: pa,
            place_b: pb,
            moved,
            wait_jiffies: wait,
            ran: Some(ran),
            fields,
        })
    }

    /// Every DSQ that appeared, went, or whose `nr` or tasks changed.
    pub(super) fn dsqs(&self) -> Vec<DsqDiff> {
        let (da, db) = (&self.a.r.dsq_states, &self.b.r.dsq_states);
        let key = |d: &DsqState| (d.id, d.origin.clone());
        let mut out = Vec::new();
        for pair in pair_by_key(da, db, key) {
            let (x, y) = (pair.0.map(|i| &da[i]), pair.1.map(|j| &db[j]));
            let Some(d) = y.or(x) else { continue };
            let change = match (x, y) {
                (Some(_), Some(_)) => Change::Changed,
                (None, _) => Change::Appeared,
                (_, None) => Change::Gone,
            };
            let mut fields = Vec::new();
            match (x, y) {
                (Some(p), Some(q)) => {
                    fields.extend(num_change("nr", p.nr, q.nr));
                    fields.extend(bool_change("truncated", p.truncated, q.truncated));
                }
                (p, q) => fields.extend(text_change(
                    "nr",
                    p.map(|d| d.nr.to_string()),
                    q.map(|d| d.nr.to_string()),
                )),
            }
            let (appeared, left) = self.queued_changes(x, y);
            if change == Change::Changed
                && fields.is_empty()
                && appeared.is_empty()
                && left.is_empty()
            {
                continue;
            }
            out.push(DsqDiff {
                id: d.id,
                origin: d.origin.clone(),
                change,
                fields,
                appeared,
                left,
            });
        }
        out
    }

    /// Tasks queued on `y` only, and on `x` only.
    fn queued_changes(
        &self,
        x: Option<&DsqState>,
        y: Option<&DsqState>,
    ) -> (Vec<TaskRef>, Vec<TaskRef>) {
        fn kvas(d: Option<&DsqState>) -> &[u64] {
            d.map_or(&[][..], |d| &d.task_kvas[..])
        }
        let (ka, kb) = (kvas(x), kvas(y));
        let ia: HashSet<Ident<'_>> = ka.iter().map(|&k| self.a.ident(k)).collect();
        let ib: HashSet<Ident<'_>> = kb.iter().map(|&k| self.b.ident(k)).collect();
        let appeared = kb
            .iter()
            .filter(|&&k| !ia.contains(&self.b.ident(k)))
            .map(|&k| self.b.task_ref(k))
            .collect();
        let left = ka
            .iter()
            .filter(|&&k| !ib.contains(&self.a.ident(k)))
            .map(|&k| self.a.task_ref(k))
            .collect();
        (appeared, left)
    }

    /// Every CPU whose current task or queue changed.
    pub(super) fn cpus(&self) -> Vec<CpuDiff> {
        let (ra, rb) = (&self.a.r.rq_scx_states, &self.b.r.rq_scx_states);
        let mut out = Vec::new();
        for pair in pair_by_key(ra, rb, |q| q.cpu) {
            let (x, y) = (pair.0.map(|i| &ra[i]), pair.1.map(|j| &rb[j]));
            let Some(q) = y.or(x) else { continue };
            let (ca, cb) = (x.and_then(curr), y.and_then(curr));
            let change = match (x, y) {
                (Some(_), Some(_)) => Change::Changed,
                (None, _) => Change::Appeared,
                (_, None) => Change::Gone,
            };
            let fields = rq_fields(x, y);
            let curr_changed = ca != cb;
            if change == Change::Changed && !curr_changed && fields.is_empty() {
                continue;
            }
            out.push(CpuDiff {
                cpu: q.cpu,
                change,
                curr_changed,
                curr_a: if curr_changed { ca } else { None },
                curr_b: if curr_changed { cb } else { None },
                fields,
            });
        }
        out
    }
}

/// The name of a task's wait in [`TaskDiff::wait_jiffies`].
const WAIT: &str = "runnable_age_jiffies";

/// Fields whose change means the task ran.
const RAN: [&str; 4] = ["nvcsw", "nivcsw", "utime", "stime"];

/// The same pid, yet another task: a different `task_struct` and a different comm.
fn reused(x: &TaskEnrichment, y: &TaskEnrichment) -> bool {
    x.task_kva != 0 && y.task_kva != 0 && x.task_kva != y.task_kva && x.comm != y.comm
}

/// A task in one snapshot only.
fn only(side: &Side<'_>, t: &TaskEnrichment, change: Change) -> TaskDiff {
    let wait = t.runnable_age_jiffies.map(|w| {
        let w = Some(w.to_string());
        let (a, b) = if change == Change::Gone {
            (w, None)
        } else {
            (None, w)
        };
        FieldChange {
            name: WAIT.to_string(),
            a,
            b,
            delta: None,
        }
    });
    let place = side.place(t);
    let (place_a, place_b) = if change == Change::Gone {
        (place, None)
    } else {
        (None, place)
    };
    TaskDiff {
        pid: t.pid,
        comm: t.comm.clone(),
        change,
        place_a,
        place_b,
        moved: false,
        wait_jiffies: wait,
        ran: None,
        fields: Vec::new(),
    }
}

/// The fields of two enrichments of one task that differ.
fn task_fields(x: &TaskEnrichment, y: &TaskEnrichment) -> Vec<FieldChange> {
    let mut out = Vec::new();
    for (name, p, q) in [
        ("comm", &x.comm, &y.comm),
        ("sched_class", &x.sched_class, &y.sched_class),
        (
            "lock_slowpath_match",
            &x.lock_slowpath_match,
            &y.lock_slowpath_match,
        ),
    ] {
        out.extend(text_change(name, Some(p.clone()), Some(q.clone())));
    }
    out.extend(bool_change(
        "pi_boosted_out_of_scx",
        x.pi_boosted_out_of_scx,
        y.pi_boosted_out_of_scx,
    ));
    for (name, p, q) in [
        ("tgid", x.tgid, y.tgid),
        ("prio", x.prio, y.prio),
        ("static_prio", x.static_prio, y.static_prio),
        ("normal_prio", x.normal_prio, y.normal_prio),
        ("real_parent_pid", x.real_parent_pid, y.real_parent_pid),
        ("nr_threads", x.nr_threads, y.nr_threads),
    ] {
        out.extend(num_change(name, p, q));
    }
    for (name, p, q) in [
        ("weight", u64::from(x.weight), u64::from(y.weight)),
        (
            "rt_priority",
            u64::from(x.rt_priority),
            u64::from(y.rt_priority),
        ),
        ("nvcsw", x.nvcsw, y.nvcsw),
        ("nivcsw", x.nivcsw, y.nivcsw),
        ("utime", x.utime, y.utime),
        ("stime", x.stime, y.stime),
    ] {
        out.extend(num_change(name, p, q));
    }
    out
}

/// The current task of a runqueue (none: no task recorded).
fn curr(q: &RqScxState) -> Option<TaskRef> {
    (q.curr_pid != 0 || !q.curr_comm.is_empty()).then(|| TaskRef {
        pid: Some(q.curr_pid),
        comm: Some(q.curr_comm.clone()),
        task_kva: 0,
    })
}

/// `nr_running`, `runnable` (length of the runnable list), `flags`, `cpu_released`.
fn rq_fields(x: Option<&RqScxState>, y: Option<&RqScxState>) -> Vec<FieldChange> {
    let get = |f: fn(&RqScxState) -> u64| (x.map(|q| f(q).into()), y.map(|q| f(q).into()));
    let mut out: Vec<FieldChange> = [
        ("nr_running", get(|q| q.nr_running.into())),
        ("runnable", get(|q| q.runnable_task_kvas.len() as u64)),
        ("flags", get(|q| q.flags.into())),
    ]
    .into_iter()
    .filter_map(|(name, (p, q))| opt_num_change(name, p, q))
    .collect();
    out.extend(text_change(
        "cpu_released",
        x.map(|q| q.cpu_released.to_string()),
        y.map(|q| q.cpu_released.to_string()),
    ));
    out
}
