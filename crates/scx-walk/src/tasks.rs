//! Task enrichment: the identity, priorities, counters and scheduling class of every
//! task the dump refers to (runqueue `curr`, runnable lists, DSQs), then of the tasks on
//! `scx_tasks` (falling back to `init_task.tasks`) up to the cap.

use std::collections::HashSet;

use dump_schema::TaskEnrichment;
use guest_mem::Kva;

use crate::error::{Result, WalkError};
use crate::kernel::{KernelTypes, KernelView};
use crate::lists::{CoreOffsets, list_nodes, list_nodes_partial};
use crate::stackscan::StackScanner;
use btf_walk::OffsetGroup;

/// Default cap on enriched tasks.
pub const TASK_CAP: usize = 4096;

/// `SCHED_EXT` policy number.
const SCHED_EXT_POLICY: u32 = 7;

/// Offsets of `task_struct`, `signal_struct` and `pid` (group `task_struct`).
#[derive(Debug, Clone, Copy)]
pub struct TaskOffsets {
    pub pid: u64,
    pub tgid: u64,
    pub comm: u64,
    pub weight: u64,
    pub prio: u64,
    pub static_prio: u64,
    pub normal_prio: u64,
    pub rt_priority: u64,
    pub policy: u64,
    pub nvcsw: u64,
    pub nivcsw: u64,
    pub utime: u64,
    pub stime: u64,
    pub sched_class: u64,
    pub group_leader: u64,
    pub real_parent: u64,
    pub signal: u64,
    pub tasks: u64,
    pub scx_tasks_node: Option<u64>,
    pub core_cookie: Option<u64>,
    pub sig_nr_threads: u64,
    pub sig_pids: u64,
    pub sig_nvcsw: u64,
    pub sig_nivcsw: u64,
    pub sig_utime: u64,
    pub sig_stime: u64,
    pub pid_numbers_nr: u64,
    pub pidtype_pgid: u64,
    pub pidtype_sid: u64,
}

impl TaskOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<TaskOffsets> {
        let mut r = OffsetGroup::new(t, "task_struct");
        let o = TaskOffsets {
            pid: r.off("task_struct", "pid"),
            tgid: r.off("task_struct", "tgid"),
            comm: r.off("task_struct", "comm"),
            weight: r.off("task_struct", "scx.weight"),
            prio: r.off("task_struct", "prio"),
            static_prio: r.off("task_struct", "static_prio"),
            normal_prio: r.off("task_struct", "normal_prio"),
            rt_priority: r.off("task_struct", "rt_priority"),
            policy: r.off("task_struct", "policy"),
            nvcsw: r.off("task_struct", "nvcsw"),
            nivcsw: r.off("task_struct", "nivcsw"),
            utime: r.off("task_struct", "utime"),
            stime: r.off("task_struct", "stime"),
            sched_class: r.off("task_struct", "sched_class"),
            group_leader: r.off("task_struct", "group_leader"),
            real_parent: r.off("task_struct", "real_parent"),
            signal: r.off("task_struct", "signal"),
            tasks: r.off("task_struct", "tasks"),
            scx_tasks_node: r.opt("task_struct", "scx.tasks_node"),
            core_cookie: r.opt("task_struct", "core_cookie"),
            sig_nr_threads: r.off("signal_struct", "nr_threads"),
            sig_pids: r.off("signal_struct", "pids"),
            sig_nvcsw: r.off("signal_struct", "nvcsw"),
            sig_nivcsw: r.off("signal_struct", "nivcsw"),
            sig_utime: r.off("signal_struct", "utime"),
            sig_stime: r.off("signal_struct", "stime"),
            pid_numbers_nr: r.off("pid", "numbers") + r.off("upid", "nr"),
            pidtype_pgid: t.enum_value("PIDTYPE_PGID").unwrap_or(2) as u64,
            pidtype_sid: t.enum_value("PIDTYPE_SID").unwrap_or(3) as u64,
        };
        Ok(r.finish(o)?)
    }
}

/// Tasks of the whole system, in `scx_tasks` order (or the `init_task.tasks` order).
pub fn all_tasks(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &TaskOffsets,
    cap: usize,
) -> Result<(Vec<Kva>, bool)> {
    if let (Some(head), Some(node)) = (k.syms.symbol("scx_tasks"), o.scx_tasks_node) {
        let w = list_nodes(k, c, head, cap, "scx_tasks")?;
        // The list also holds iteration cursors (`sched_ext_entity`s that are not
        // inside a task); they are filtered later when their pid/comm fail to read
        // or look wrong.
        return Ok((
            w.nodes
                .iter()
                .map(|n| Kva(n.0.wrapping_sub(node)))
                .collect(),
            w.truncated,
        ));
    }
    let init = k.sym("init_task")?;
    let w = list_nodes(k, c, init.checked_offset(o.tasks)?, cap, "init_task.tasks")?;
    let mut v = vec![init];
    v.extend(w.nodes.iter().map(|n| Kva(n.0.wrapping_sub(o.tasks))));
    Ok((v, w.truncated))
}

/// The system's tasks as [`all_tasks_partial`] found them, and what the walk lost.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskList {
    /// `task_struct` addresses, possibly with duplicates (when two lists were walked).
    pub tasks: Vec<Kva>,
    /// The cap stopped a walk.
    pub truncated: bool,
    /// What was lost, in words (for `capture_notes`).
    pub notes: Vec<String>,
}

/// [`all_tasks`] that keeps what it reached, from both lists: `scx_tasks` (every task
/// sched_ext knows, threads included) and `init_task.tasks` (every process, zombies
/// included: a zombie leaves `scx_tasks` at its last switch but stays a process until
/// its parent reaps it). A walk that stops at an unreadable or looping node keeps the
/// tasks before it; the other list may hold those behind it; the loss is said in `notes`.
pub fn all_tasks_partial(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &TaskOffsets,
    cap: usize,
) -> TaskList {
    let mut out = TaskList::default();
    if let (Some(head), Some(node)) = (k.syms.symbol("scx_tasks"), o.scx_tasks_node) {
        let w = list_nodes_partial(k, c, head, cap, "scx_tasks");
        out.tasks
            .extend(w.walked.nodes.iter().map(|n| Kva(n.0.wrapping_sub(node))));
        out.truncated |= w.walked.truncated;
        if let Some(e) = w.error {
            out.notes.push(format!(
                "tasks: the scx_tasks walk stopped after {} tasks ({e})",
                w.walked.nodes.len()
            ));
        }
    }
    let init = match k.sym("init_task") {
        Ok(i) => i,
        Err(e) => {
            out.notes
                .push(format!("tasks: init_task.tasks not walked ({e})"));
            return out;
        }
    };
    let head = match init.checked_offset(o.tasks) {
        Ok(h) => h,
        Err(e) => {
            out.notes.push(format!(
                "tasks: init_task.tasks not walked ({})",
                WalkError::from(e)
            ));
            return out;
        }
    };
    let w = list_nodes_partial(k, c, head, cap, "init_task.tasks");
    out.tasks.push(init);
    out.tasks.extend(
        w.walked
            .nodes
            .iter()
            .map(|n| Kva(n.0.wrapping_sub(o.tasks))),
    );
    out.truncated |= w.walked.truncated;
    if let Some(e) = w.error {
        out.notes.push(format!(
            "tasks: the init_task.tasks walk stopped after {} tasks ({e})",
            w.walked.nodes.len()
        ));
    }
    out
}

/// The scheduling classes, by the symbol of their `struct sched_class`.
const CLASSES: [&str; 6] = ["stop", "dl", "rt", "fair", "ext", "idle"];

/// Class name from the symbol `task->sched_class` points at: `fair_sched_class` →
/// `fair`. Class symbols share addresses with linker markers
/// (`__sched_class_highest`), so the known classes are matched by address first;
/// anything else is reported as the raw symbol (or address).
pub fn sched_class_name(k: &KernelView<'_>, class: Kva) -> String {
    for c in CLASSES {
        let sym = format!("{c}_sched_class");
        if k.syms.symbol(&sym) == Some(class) {
            return c.to_string();
        }
    }
    match k.syms.nearest(class) {
        Some((name, 0)) => name
            .strip_suffix("_sched_class")
            .map(str::to_string)
            .unwrap_or(name),
        Some((name, off)) => format!("{name}+{off:#x}"),
        None => format!("{:#x}", class.0),
    }
}

/// Enriches one task.
pub fn enrich(k: &KernelView<'_>, o: &TaskOffsets, task: Kva) -> Result<TaskEnrichment> {
    let f = |off: u64| -> Result<Kva> { Ok(task.checked_offset(off)?) };
    let pid = k.i32(f(o.pid)?, "task.pid")?;
    let tgid = k.i32(f(o.tgid)?, "task.tgid")?;
    let comm = k.cstr(f(o.comm)?, 16, "task.comm")?;
    let class = k.ptr(f(o.sched_class)?, "task.sched_class")?;
    let sched_class = sched_class_name(k, class);
    let policy = k.u32(f(o.policy)?, "task.policy")?;
    let pi_boosted_out_of_scx =
        policy == SCHED_EXT_POLICY && matches!(sched_class.as_str(), "rt" | "dl" | "stop");
    let leader = k.ptr(f(o.group_leader)?, "task.group_leader")?;
    let parent = k.ptr(f(o.real_parent)?, "task.real_parent")?;
    let signal = k.ptr(f(o.signal)?, "task.signal")?;
    let opt_i32 = |p: Kva, off: u64, what| -> i32 {
        if p.0 == 0 {
            return 0;
        }
        p.checked_offset(off)
            .map_err(WalkError::from)
            .and_then(|a| k.i32(a, what))
            .unwrap_or(0)
    };
    let sig_u64 = |off: u64, what| -> u64 {
        if signal.0 == 0 {
            return 0;
        }
        signal
            .checked_offset(off)
            .map_err(WalkError::from)
            .and_then(|a| k.u64(a, what))
            .unwrap_or(0)
    };
    let pid_of = |ty: u64| -> i32 {
        if signal.0 == 0 {
            return 0;
        }
        let Ok(p) = signal
            .checked_offset(o.sig_pids + ty * 8)
            .map_err(WalkError::from)
            .and_then(|a| k.ptr(a, "signal.pids"))
        else {
            return 0;
        };
        opt_i32(p, o.pid_numbers_nr, "pid.nr")
    };
    Ok(TaskEnrichment {
        pid,
        tgid,
        comm,
        weight: k.u32(f(o.weight)?, "task.scx.weight")?,
        prio: k.i32(f(o.prio)?, "task.prio")?,
        static_prio: k.i32(f(o.static_prio)?, "task.static_prio")?,
        normal_prio: k.i32(f(o.normal_prio)?, "task.normal_prio")?,
        rt_priority: k.u32(f(o.rt_priority)?, "task.rt_priority")?,
        pi_boosted_out_of_scx,
        nvcsw: k.u64(f(o.nvcsw)?, "task.nvcsw")?,
        nivcsw: k.u64(f(o.nivcsw)?, "task.nivcsw")?,
        utime: k.u64(f(o.utime)?, "task.utime")?,
        stime: k.u64(f(o.stime)?, "task.stime")?,
        group_leader_pid: opt_i32(leader, o.pid, "group_leader.pid"),
        real_parent_pid: opt_i32(parent, o.pid, "real_parent.pid"),
        pgid: pid_of(o.pidtype_pgid),
        sid: pid_of(o.pidtype_sid),
        nr_threads: opt_i32(signal, o.sig_nr_threads, "signal.nr_threads"),
        real_parent_comm: if parent.0 != 0 {
            parent
                .checked_offset(o.comm)
                .map_err(WalkError::from)
                .and_then(|a| k.cstr(a, 16, "real_parent.comm"))
                .unwrap_or_default()
        } else {
            String::new()
        },
        sched_class,
        // Filled by `enrich_all_with` from the task's kernel stack.
        lock_slowpath_match: String::new(),
        core_cookie: match o.core_cookie {
            Some(off) => k.u64(f(off)?, "task.core_cookie").unwrap_or(0),
            None => 0,
        },
        signal_nvcsw: sig_u64(o.sig_nvcsw, "signal.nvcsw"),
        signal_nivcsw: sig_u64(o.sig_nivcsw, "signal.nivcsw"),
        signal_utime: sig_u64(o.sig_utime, "signal.utime"),
        signal_stime: sig_u64(o.sig_stime, "signal.stime"),
        task_kva: task.0,
        // Filled by the capture for the tasks on a runnable list (`rq::runnable_age`).
        runnable_age_jiffies: None,
    })
}

/// What [`enrich_all_with`] produced.
#[derive(Debug, Default, Clone)]
pub struct Enriched {
    pub tasks: Vec<TaskEnrichment>,
    /// Entries that failed to read or whose pid is negative (not tasks: iteration
    /// cursors on `scx_tasks`, or garbage).
    pub failed: usize,
    /// Why the first of them failed.
    pub first_error: Option<String>,
    /// The cap or the deadline stopped the enrichment.
    pub stopped: bool,
}

/// Enriches `first` (tasks the dump refers to) then `rest`, deduplicated, up to `cap`.
/// Entries that fail to read, or whose pid is negative, are skipped and counted.
/// `lock_slowpath_match` is filled from each task's kernel stack when a [`StackScanner`]
/// is given (see [`crate::stackscan`]), else left empty.
pub fn enrich_all_with(
    k: &KernelView<'_>,
    o: &TaskOffsets,
    first: impl IntoIterator<Item = Kva>,
    rest: impl IntoIterator<Item = Kva>,
    cap: usize,
    deadline_passed: &dyn Fn() -> bool,
    stacks: Option<&StackScanner<'_>>,
) -> Enriched {
    let mut seen = HashSet::new();
    let mut out = Enriched::default();
    for t in first.into_iter().chain(rest) {
        if out.tasks.len() >= cap {
            out.stopped = true;
            break;
        }
        if t.0 == 0 || !seen.insert(t.0) {
            continue;
        }
        if out.tasks.len() % 64 == 0 && deadline_passed() {
            out.stopped = true;
            break;
        }
        match enrich(k, o, t) {
            Ok(mut e) if e.pid >= 0 => {
                if let Some(sc) = stacks {
                    e.lock_slowpath_match = sc.lock_slowpath_match(t);
                }
                out.tasks.push(e)
            }
            Ok(e) => {
                out.failed += 1;
                out.first_error
                    .get_or_insert_with(|| format!("task {t}: pid {} is negative", e.pid));
            }
            Err(e) => {
                out.failed += 1;
                out.first_error
                    .get_or_insert_with(|| format!("task {t}: {e}"));
            }
        }
    }
    out
}
