//! `rq->scx` of every CPU: counters, the current task and the runnable list.
//!
//! Kernels since 6.16 keep `ops_qseq` per task (`task_struct.scx.ops_qseq`), not in
//! `struct scx_rq`; the wire format's `RqScxState.ops_qseq` is then written as 0
//! (see [`OPS_QSEQ_ABSENT`]). `kick_sync` is read from `scx_rq.kick_sync`, or
//! `scx_rq.pnt_seq` on kernels before 6.19.

use dump_schema::RqScxState;
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use crate::lists::{CoreOffsets, LIST_CAP, Links};
use crate::offsets::resolve_group;

/// Value written to `RqScxState.ops_qseq` when the kernel has no `scx_rq.ops_qseq`.
pub const OPS_QSEQ_ABSENT: u64 = 0;

/// Offsets of `struct rq` / `struct scx_rq` / the task members the rq walk needs
/// (group `rq`). Paths are from `struct rq`.
#[derive(Debug, Clone, Copy)]
pub struct RqOffsets {
    pub curr: u64,
    /// `rq.idle`: the CPU's idle task (`init_task` on CPU 0, which is on no task list
    /// the walker follows).
    pub idle: Option<u64>,
    pub nr_running: u64,
    pub flags: u64,
    pub cpu_released: u64,
    pub runnable_list: u64,
    pub local_dsq: u64,
    pub ops_qseq: Option<u64>,
    pub kick_sync: Option<u64>,
    pub nr_immed: Option<u64>,
    pub clock: Option<u64>,
    pub task_pid: u64,
    pub task_comm: u64,
    pub task_runnable_node: u64,
    pub task_runnable_at: u64,
}

impl RqOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<RqOffsets> {
        resolve_group(t, "rq", |r| {
            let kick_sync = r
                .opt("rq", "scx.kick_sync")
                .or_else(|| r.opt("rq", "scx.pnt_seq"));
            RqOffsets {
                curr: r.off("rq", "curr"),
                idle: r.opt("rq", "idle"),
                nr_running: r.off("rq", "scx.nr_running"),
                flags: r.off("rq", "scx.flags"),
                cpu_released: r.off("rq", "scx.cpu_released"),
                runnable_list: r.off("rq", "scx.runnable_list"),
                local_dsq: r.off("rq", "scx.local_dsq"),
                ops_qseq: r.opt("rq", "scx.ops_qseq"),
                kick_sync,
                nr_immed: r.opt("rq", "scx.nr_immed"),
                clock: r.opt("rq", "scx.clock"),
                task_pid: r.off("task_struct", "pid"),
                task_comm: r.off("task_struct", "comm"),
                task_runnable_node: r.off("task_struct", "scx.runnable_node"),
                task_runnable_at: r.off("task_struct", "scx.runnable_at"),
            }
        })
    }
}

/// The note for the `scx_rq` members this kernel lacks besides `ops_qseq` (which has its
/// own, [`crate::reasons::OPS_QSEQ_NOT_IN_KERNEL`]): e.g. 6.12 has no `nr_immed`, no
/// `clock` and `kick_sync` only as `pnt_seq`. `None` when it has them all.
pub fn absent_fields_note(o: &RqOffsets) -> Option<String> {
    let absent: Vec<&str> = [
        ("kick_sync", o.kick_sync.is_none()),
        ("nr_immed", o.nr_immed.is_none()),
        ("rq_clock", o.clock.is_none()),
    ]
    .iter()
    .filter(|(_, gone)| *gone)
    .map(|(n, _)| *n)
    .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "rq_scx_states: {}: not in this kernel's scx_rq; written as 0",
            absent.join(", ")
        )
    })
}

/// The `runqueues` address of every CPU.
pub fn runqueues(k: &KernelView<'_>, pc: &PerCpu) -> Result<Vec<Kva>> {
    let base = k.sym("runqueues")?;
    Ok((0..pc.nr_cpus()).filter_map(|c| pc.addr(base, c)).collect())
}

/// `RqScxState` of CPU `cpu` whose `struct rq` is at `rq`.
pub fn rq_state(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &RqOffsets,
    cpu: u32,
    rq: Kva,
) -> Result<RqScxState> {
    let at = |off: u64| rq.checked_offset(off);
    let nr_running = k.u32(at(o.nr_running)?, "rq.scx.nr_running")?;
    let flags = k.u32(at(o.flags)?, "rq.scx.flags")?;
    let cpu_released = k.u8(at(o.cpu_released)?, "rq.scx.cpu_released")? != 0;
    let ops_qseq = match o.ops_qseq {
        Some(off) => k.u64(at(off)?, "rq.scx.ops_qseq")?,
        None => OPS_QSEQ_ABSENT,
    };
    let kick_sync = match o.kick_sync {
        Some(off) => k.u64(at(off)?, "rq.scx.kick_sync")?,
        None => 0,
    };
    let nr_immed = match o.nr_immed {
        Some(off) => k.u32(at(off)?, "rq.scx.nr_immed")?,
        None => 0,
    };
    let rq_clock = match o.clock {
        Some(off) => k.u64(at(off)?, "rq.scx.clock")?,
        None => 0,
    };
    let curr = k.ptr(at(o.curr)?, "rq.curr")?;
    let (curr_pid, curr_comm) = if curr.0 != 0 {
        (
            k.i32(curr.checked_offset(o.task_pid)?, "curr->pid")?,
            k.cstr(curr.checked_offset(o.task_comm)?, 16, "curr->comm")?,
        )
    } else {
        (0, String::new())
    };
    let runnable = Links::List
        .walk(k, c, at(o.runnable_list)?, LIST_CAP, "rq.scx.runnable_list")
        .strict()?;
    let runnable_task_kvas = runnable
        .nodes
        .iter()
        .map(|n| n.0.wrapping_sub(o.task_runnable_node))
        .collect();
    Ok(RqScxState {
        cpu,
        nr_running,
        flags,
        cpu_released,
        ops_qseq,
        kick_sync,
        nr_immed,
        rq_clock,
        curr_pid,
        curr_comm,
        runnable_task_kvas,
        runnable_truncated: runnable.truncated,
    })
}

/// One runnable task's wait, for the dual-capture scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnableAge {
    pub cpu: u32,
    pub task: Kva,
    pub pid: i32,
    /// `jiffies - task->scx.runnable_at` (saturating).
    pub age_jiffies: u64,
}

/// The kernel's `jiffies_64` (or `jiffies`).
pub fn jiffies_symbol(k: &KernelView<'_>) -> Result<Kva> {
    k.syms
        .symbol("jiffies_64")
        .or_else(|| k.syms.symbol("jiffies"))
        .ok_or(crate::error::WalkError::NoSymbol("jiffies_64"))
}

/// How long the task at `task` has been runnable at `now_jiffies`:
/// `now_jiffies - task->scx.runnable_at` (saturating; meaningful for a task on a runnable
/// list).
pub fn runnable_age(k: &KernelView<'_>, o: &RqOffsets, task: Kva, now_jiffies: u64) -> Result<u64> {
    let at = k.u64(task.checked_offset(o.task_runnable_at)?, "scx.runnable_at")?;
    Ok(now_jiffies.saturating_sub(at))
}

/// The oldest runnable task over all CPUs (by `scx.runnable_at`), at `now_jiffies`.
pub fn oldest_runnable(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &RqOffsets,
    rqs: &[Kva],
    now_jiffies: u64,
) -> Result<Option<RunnableAge>> {
    let mut best: Option<RunnableAge> = None;
    for (cpu, rq) in rqs.iter().enumerate() {
        let head = rq.checked_offset(o.runnable_list)?;
        let nodes = Links::List
            .walk(k, c, head, LIST_CAP, "rq.scx.runnable_list")
            .strict()?;
        for n in nodes.nodes {
            let task = Kva(n.0.wrapping_sub(o.task_runnable_node));
            let age = runnable_age(k, o, task, now_jiffies)?;
            if best.is_none_or(|b| age > b.age_jiffies) {
                let pid = k.i32(task.checked_offset(o.task_pid)?, "task pid")?;
                best = Some(RunnableAge {
                    cpu: cpu as u32,
                    task,
                    pid,
                    age_jiffies: age,
                });
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    fn offsets() -> RqOffsets {
        RqOffsets {
            curr: 0,
            idle: None,
            nr_running: 0,
            flags: 0,
            cpu_released: 0,
            runnable_list: 0,
            local_dsq: 0,
            ops_qseq: None,
            kick_sync: None,
            nr_immed: None,
            clock: None,
            task_pid: 0,
            task_comm: 0,
            task_runnable_node: 0,
            task_runnable_at: 0x40,
        }
    }

    /// A task's wait is `jiffies - scx.runnable_at`, 0 when `runnable_at` is later (never
    /// negative); `jiffies_64` is preferred, `jiffies` the fallback; an unreadable task is
    /// an error.
    #[test]
    fn runnable_age_is_jiffies_since_runnable_at() {
        const T: u64 = 0xffff_8880_0000_1000;
        let mut m = FakeMem::default();
        m.w64(T + 0x40, 4_294_667_296);
        m.w64(0xffff_ffff_8200_0000, 4_294_667_548);
        let types = FakeTypes::core();
        let syms = FakeSyms::default().with("jiffies", 0xffff_ffff_8200_0000);
        let k = KernelView {
            mem: &m,
            syms: &syms,
            types: &types,
        };
        let j = jiffies_symbol(&k).unwrap();
        let now = k.u64(j, "jiffies").unwrap();
        assert_eq!(runnable_age(&k, &offsets(), Kva(T), now).unwrap(), 252);
        assert_eq!(runnable_age(&k, &offsets(), Kva(T), 5).unwrap(), 0);
        assert!(runnable_age(&k, &offsets(), Kva(T + 0x1000), now).is_err());
        let both = FakeSyms::default()
            .with("jiffies", 0xffff_ffff_8200_0000)
            .with("jiffies_64", 0x1234);
        let k = KernelView { syms: &both, ..k };
        assert_eq!(jiffies_symbol(&k).unwrap(), Kva(0x1234));
        let none = FakeSyms::default();
        assert!(jiffies_symbol(&KernelView { syms: &none, ..k }).is_err());
    }

    fn types() -> FakeTypes {
        let mut t = FakeTypes::default();
        for (i, m) in [
            "curr",
            "scx.nr_running",
            "scx.flags",
            "scx.cpu_released",
            "scx.runnable_list",
            "scx.local_dsq",
        ]
        .iter()
        .enumerate()
        {
            t = t.member("rq", m, i as u64 * 8);
        }
        for (i, m) in ["pid", "comm", "scx.runnable_node", "scx.runnable_at"]
            .iter()
            .enumerate()
        {
            t = t.member("task_struct", m, i as u64 * 8);
        }
        t
    }

    /// 6.12's scx_rq: `pnt_seq` stands in for `kick_sync`, `nr_immed` and `clock` are
    /// absent and said so; 7.x's has them all.
    #[test]
    fn absent_scx_rq_members_are_named() {
        let t612 = types().member("rq", "scx.pnt_seq", 0x100);
        let o = RqOffsets::resolve(&t612).unwrap();
        assert_eq!(o.kick_sync, Some(0x100));
        assert_eq!(
            absent_fields_note(&o).as_deref(),
            Some("rq_scx_states: nr_immed, rq_clock: not in this kernel's scx_rq; written as 0")
        );
        let t7 = types()
            .member("rq", "scx.kick_sync", 0x100)
            .member("rq", "scx.nr_immed", 0x108)
            .member("rq", "scx.clock", 0x110);
        assert_eq!(absent_fields_note(&RqOffsets::resolve(&t7).unwrap()), None);
    }
}
