//! `scx_root` → `struct scx_sched`: the scheduler's state, its event counters and the
//! trigger location the engines watch.

use dump_schema::{EventCounterSample, ScxSchedState};
use guest_mem::{Kva, KvaRead, KvaReadExt};

use crate::error::{Result, WalkError};
use crate::exit_kind::{ExitVerdict, verdict};
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use btf_walk::OffsetGroup;

/// Offsets of `struct scx_sched` the walkers use (group `scx_sched`).
#[derive(Debug, Clone, Copy)]
pub struct SchedOffsets {
    pub aborting: u64,
    pub bypass_depth: u64,
    pub exit_kind: u64,
    /// `scx_sched.exit_info` (a pointer) and `scx_exit_info.kind`: where the exit kind
    /// survives once the disable worker has reset `exit_kind` to `SCX_EXIT_DONE`.
    pub exit_info: Option<(u64, u64)>,
    pub watchdog_timeout: u64,
    pub ops_name: u64,
    pub ops_name_len: u64,
    /// `struct scx_sched_pcpu __percpu *pcpu` (7.x); absent on the first sched_ext kernels.
    pub pcpu: Option<u64>,
    /// `struct scx_sched_pnode **pnode` (7.x per-node global DSQs).
    pub pnode: Option<u64>,
    /// `struct scx_dispatch_q **global_dsqs` (6.13–6.19).
    pub global_dsqs: Option<u64>,
    /// `scx_sched_pnode.global_dsq`.
    pub pnode_global_dsq: Option<u64>,
    pub dsq_hash: u64,
    pub pcpu_event_stats: Option<u64>,
    pub pcpu_bypass_dsq: Option<u64>,
}

impl SchedOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<SchedOffsets> {
        let mut r = OffsetGroup::new(t, "scx_sched");
        let ops_name = r.off("scx_sched", "ops.name");
        let o = SchedOffsets {
            aborting: r.off("scx_sched", "aborting"),
            bypass_depth: r.off("scx_sched", "bypass_depth"),
            exit_kind: r.off("scx_sched", "exit_kind"),
            exit_info: r
                .opt("scx_sched", "exit_info")
                .zip(r.opt("scx_exit_info", "kind")),
            watchdog_timeout: r.off("scx_sched", "watchdog_timeout"),
            ops_name,
            ops_name_len: 128,
            pcpu: r.opt("scx_sched", "pcpu"),
            pnode: r.opt("scx_sched", "pnode"),
            global_dsqs: r.opt("scx_sched", "global_dsqs"),
            pnode_global_dsq: r.opt("scx_sched_pnode", "global_dsq"),
            dsq_hash: r.off("scx_sched", "dsq_hash"),
            pcpu_event_stats: r.opt("scx_sched_pcpu", "event_stats"),
            pcpu_bypass_dsq: r.opt("scx_sched_pcpu", "bypass_dsq"),
        };
        Ok(r.finish(o)?)
    }
}

/// Where the engines' trigger watch reads the exit kind: `*scx_root + exit_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerLocation {
    /// Address of the `scx_root` pointer variable.
    pub scx_root: Kva,
    /// Offset of `atomic_t exit_kind` in `struct scx_sched`.
    pub exit_kind_offset: u64,
    /// Offsets of `scx_sched.exit_info` (a pointer) and `scx_exit_info.kind`: the exit
    /// kind stays there after the disable worker resets `exit_kind`.
    pub exit_info: Option<(u64, u64)>,
}

impl TriggerLocation {
    /// Resolves `scx_root` (symbol) and `scx_sched.exit_kind` (BTF).
    pub fn resolve(k: &KernelView<'_>) -> Result<TriggerLocation> {
        let scx_root = k.sym("scx_root")?;
        let mut r = OffsetGroup::new(k.types, "scx_sched");
        let exit_kind_offset = r.off("scx_sched", "exit_kind");
        let exit_info = r
            .opt("scx_sched", "exit_info")
            .zip(r.opt("scx_exit_info", "kind"));
        Ok(r.finish(TriggerLocation {
            scx_root,
            exit_kind_offset,
            exit_info,
        })?)
    }

    /// `sched->exit_info->kind` read through `mem` (the live guest's reader while it
    /// runs); `None` when this kernel has no `exit_info`, a read fails, or it is NULL.
    pub fn exit_info_kind(&self, sched: Kva, mem: &dyn KvaRead) -> Option<u32> {
        let (info, kind) = self.exit_info?;
        let ei = mem.read_u64(sched.checked_offset(info).ok()?).ok()?;
        if ei == 0 {
            return None;
        }
        mem.read_u32(Kva(ei).checked_offset(kind).ok()?).ok()
    }

    /// The capture rule ([`crate::exit_kind::verdict`]) for `exit_kind` just read from the
    /// `scx_sched` at `sched`, reading `exit_info->kind` through `mem` when it is needed.
    pub fn judge(
        &self,
        sched: Kva,
        exit_kind: u32,
        mem: &dyn KvaRead,
        unregistrations: bool,
    ) -> ExitVerdict {
        verdict(
            exit_kind,
            || self.exit_info_kind(sched, mem),
            unregistrations,
        )
    }

    /// Reads the current exit kind; `Ok(None)` when no scheduler is attached.
    pub fn read_exit_kind(&self, k: &KernelView<'_>) -> Result<Option<u32>> {
        let sch = k.ptr(self.scx_root, "scx_root")?;
        if sch.0 == 0 {
            return Ok(None);
        }
        Ok(Some(k.u32(
            sch.checked_offset(self.exit_kind_offset)?,
            "scx_sched.exit_kind",
        )?))
    }
}

/// The attached scheduler, if any.
#[derive(Debug, Clone)]
pub struct SchedRef {
    pub kva: Kva,
    pub ops_name: String,
}

/// Reads `scx_root`. `Ok(None)` when no scheduler is attached.
pub fn scx_root(k: &KernelView<'_>, o: &SchedOffsets) -> Result<Option<SchedRef>> {
    let sch = k.ptr(k.sym("scx_root")?, "scx_root")?;
    if sch.0 == 0 {
        return Ok(None);
    }
    let ops_name = k.cstr(
        sch.checked_offset(o.ops_name)?,
        o.ops_name_len as usize,
        "scx_sched.ops.name",
    )?;
    Ok(Some(SchedRef { kva: sch, ops_name }))
}

/// `ScxSchedState` of the live scheduler.
///
/// `exit_kind` is the kind the scheduler exits with: `scx_sched.exit_kind`, except when
/// that reads `SCX_EXIT_DONE` (1) while `exit_info->kind` holds a later kind — on 7.3 the
/// disable worker copies the kind into `exit_info` and then resets `exit_kind` to DONE,
/// so a freeze a few milliseconds after an error exit would otherwise report "done".
pub fn sched_state(k: &KernelView<'_>, o: &SchedOffsets, sch: Kva) -> Result<ScxSchedState> {
    let aborting = k.u8(sch.checked_offset(o.aborting)?, "scx_sched.aborting")? != 0;
    let bypass_depth = k.i32(
        sch.checked_offset(o.bypass_depth)?,
        "scx_sched.bypass_depth",
    )?;
    let exit_kind = k.u32(sch.checked_offset(o.exit_kind)?, "scx_sched.exit_kind")?;
    let (exit_kind, _late) =
        crate::exit_kind::effective_kind(exit_kind, || exit_info_kind(k, o, sch));
    let watchdog_timeout = k.u64(
        sch.checked_offset(o.watchdog_timeout)?,
        "scx_sched.watchdog_timeout",
    )?;
    Ok(ScxSchedState {
        aborting,
        bypass_depth,
        exit_kind,
        watchdog_timeout,
        source: SOURCE_LIVE.to_string(),
        sched_kva: sch.0,
    })
}

/// Largest `bypass_depth` taken as real (nesting of bypass requests: a handful).
const MAX_BYPASS_DEPTH: i32 = 1 << 16;
/// Largest `watchdog_timeout` taken as real, in jiffies (a day at HZ=1000; the kernel
/// caps it at 30 s).
const MAX_WATCHDOG_JIFFIES: u64 = 86_400_000;

/// What is implausible in the scheduler state just read, one note each: the values the
/// verdict depends on are checked so that a damaged `scx_sched` page is not taken as a
/// scheduler error (an `exit_kind` of 4294967295 is no exit kind).
pub fn doubts(
    k: &KernelView<'_>,
    o: &SchedOffsets,
    s: &SchedRef,
    st: &ScxSchedState,
) -> Vec<String> {
    let mut out = Vec::new();
    if crate::exit_kind::name(st.exit_kind).is_none() {
        out.push(format!(
            "scx_sched.exit_kind: {} is not a known exit kind; the scheduler state is doubtful (damaged scx_sched?)",
            st.exit_kind
        ));
    }
    if let Ok(a) = s
        .kva
        .checked_offset(o.aborting)
        .map_err(WalkError::from)
        .and_then(|a| k.u8(a, "scx_sched.aborting"))
        && a > 1
    {
        out.push(format!(
            "scx_sched.aborting: byte {a:#x} is not a bool; the scheduler state is doubtful"
        ));
    }
    if !(0..=MAX_BYPASS_DEPTH).contains(&st.bypass_depth) {
        out.push(format!(
            "scx_sched.bypass_depth: {} is implausible; the scheduler state is doubtful",
            st.bypass_depth
        ));
    }
    if st.watchdog_timeout > MAX_WATCHDOG_JIFFIES {
        out.push(format!(
            "scx_sched.watchdog_timeout: {} jiffies is implausible; the scheduler state is doubtful",
            st.watchdog_timeout
        ));
    }
    if s.ops_name.is_empty()
        || s.ops_name
            .chars()
            .any(|c| c.is_control() || c == '\u{fffd}')
    {
        out.push(format!(
            "scx_sched.ops.name: {:?} is not a scheduler name; the scheduler state is doubtful",
            s.ops_name
        ));
    }
    out
}

/// `exit_info->kind`, when the kernel has it and it is readable.
fn exit_info_kind(k: &KernelView<'_>, o: &SchedOffsets, sch: Kva) -> Option<u32> {
    let (info, kind) = o.exit_info?;
    let ei = k
        .ptr(sch.checked_offset(info).ok()?, "scx_sched.exit_info")
        .ok()?;
    if ei.0 == 0 {
        return None;
    }
    k.u32(ei.checked_offset(kind).ok()?, "scx_exit_info.kind")
        .ok()
}

/// `ScxSchedState.source` for state read from the kernel's `scx_sched`.
pub const SOURCE_LIVE: &str = "live";

/// Event-counter member names in `struct scx_event_stats`, with the wire field each
/// one sums into. Several kernel names may feed one field (renames across versions).
const EVENTS: &[(&str, &[&str])] = &[
    ("select_cpu_fallback", &["SCX_EV_SELECT_CPU_FALLBACK"]),
    (
        "dispatch_local_dsq_offline",
        &["SCX_EV_DISPATCH_LOCAL_DSQ_OFFLINE"],
    ),
    ("dispatch_keep_last", &["SCX_EV_DISPATCH_KEEP_LAST"]),
    ("enq_skip_exiting", &["SCX_EV_ENQ_SKIP_EXITING"]),
    (
        "enq_skip_migration_disabled",
        &["SCX_EV_ENQ_SKIP_MIGRATION_DISABLED"],
    ),
    ("reenq_immed", &["SCX_EV_REENQ_IMMED"]),
    (
        "reenq_local_repeat",
        &["SCX_EV_REENQ_LOCAL_REPEAT", "SCX_EV_REENQ_REPEAT"],
    ),
    ("refill_slice_dfl", &["SCX_EV_REFILL_SLICE_DFL"]),
    ("bypass_duration", &["SCX_EV_BYPASS_DURATION"]),
    ("bypass_dispatch", &["SCX_EV_BYPASS_DISPATCH"]),
    ("bypass_activate", &["SCX_EV_BYPASS_ACTIVATE"]),
    ("insert_not_owned", &["SCX_EV_INSERT_NOT_OWNED"]),
    ("sub_bypass_dispatch", &["SCX_EV_SUB_BYPASS_DISPATCH"]),
];

/// Resolved event-counter offsets inside `struct scx_sched_pcpu`.
#[derive(Debug, Clone)]
pub struct EventOffsets {
    /// `scx_sched.pcpu`.
    pcpu: u64,
    /// Per wire field: offset in `scx_sched_pcpu`, or `None` when this kernel lacks it
    /// (the field then stays 0).
    fields: Vec<Option<u64>>,
}

impl EventOffsets {
    pub fn resolve(t: &dyn KernelTypes, o: &SchedOffsets) -> Result<EventOffsets> {
        let (Some(pcpu), Some(stats)) = (o.pcpu, o.pcpu_event_stats) else {
            return Err(WalkError::MissingOffsets {
                group: "scx_event_stats",
                members: vec!["scx_sched.pcpu".into(), "scx_sched_pcpu.event_stats".into()],
            });
        };
        let fields = EVENTS
            .iter()
            .map(|(_, names)| {
                names
                    .iter()
                    .find_map(|n| t.offset_of("scx_event_stats", n))
                    .map(|off| stats + off)
            })
            .collect::<Vec<_>>();
        if fields.iter().all(Option::is_none) {
            return Err(WalkError::MissingOffsets {
                group: "scx_event_stats",
                members: vec!["scx_event_stats.SCX_EV_*".into()],
            });
        }
        Ok(EventOffsets { pcpu, fields })
    }
}

/// Sums the per-CPU event counters of the scheduler at `sch` into one sample.
pub fn sample_events(
    k: &KernelView<'_>,
    eo: &EventOffsets,
    pc: &PerCpu,
    sch: Kva,
    elapsed_ms: u64,
) -> Result<EventCounterSample> {
    let pcpu = k.ptr(sch.checked_offset(eo.pcpu)?, "scx_sched.pcpu")?;
    let mut sums = vec![0i64; EVENTS.len()];
    for cpu in 0..pc.nr_cpus() {
        let Some(base) = pc.addr(pcpu, cpu) else {
            continue;
        };
        for (sum, off) in sums.iter_mut().zip(&eo.fields) {
            if let Some(off) = off {
                *sum = sum.wrapping_add(k.i64(base.checked_offset(*off)?, "scx_event_stats")?);
            }
        }
    }
    Ok(EventCounterSample {
        elapsed_ms,
        select_cpu_fallback: sums[0],
        dispatch_local_dsq_offline: sums[1],
        dispatch_keep_last: sums[2],
        enq_skip_exiting: sums[3],
        enq_skip_migration_disabled: sums[4],
        reenq_immed: sums[5],
        reenq_local_repeat: sums[6],
        refill_slice_dfl: sums[7],
        bypass_duration: sums[8],
        bypass_dispatch: sums[9],
        bypass_activate: sums[10],
        insert_not_owned: sums[11],
        sub_bypass_dispatch: sums[12],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const B: u64 = 0xffff_8880_0000_0000;

    /// The `scx_sched` members every kernel has (group `scx_sched`).
    fn sched_types() -> FakeTypes {
        FakeTypes::default()
            .member("scx_sched", "ops.name", 0)
            .member("scx_sched", "aborting", 0x100)
            .member("scx_sched", "bypass_depth", 0x104)
            .member("scx_sched", "exit_kind", 0x108)
            .member("scx_sched", "watchdog_timeout", 0x110)
            .member("scx_sched", "dsq_hash", 0x200)
    }

    #[test]
    fn event_counters_sum_over_cpus_and_follow_renames() {
        let t = sched_types()
            .member("scx_sched", "pcpu", 0x300)
            .member("scx_sched_pcpu", "event_stats", 0x40)
            .member("scx_event_stats", "SCX_EV_SELECT_CPU_FALLBACK", 0)
            // 7.3 calls it SCX_EV_REENQ_REPEAT; the wire field is reenq_local_repeat.
            .member("scx_event_stats", "SCX_EV_REENQ_REPEAT", 8)
            .member("scx_event_stats", "SCX_EV_BYPASS_DURATION", 16);
        let so = SchedOffsets::resolve(&t).unwrap();
        let eo = EventOffsets::resolve(&t, &so).unwrap();
        let mut m = FakeMem::default();
        let sch = B;
        let pcpu = B + 0x10_000;
        m.w64(sch + 0x300, pcpu);
        let pc = PerCpu::from_offsets(vec![0, 0x1000]);
        for (cpu_off, (a, b, c)) in [(0u64, (1u64, 10u64, 100u64)), (0x1000, (2, 20, 200))] {
            let base = pcpu + cpu_off + 0x40;
            m.w64(base, a);
            m.w64(base + 8, b);
            m.w64(base + 16, c);
        }
        let s = FakeSyms::default();
        let k = KernelView {
            mem: &m,
            syms: &s,
            types: &t,
        };
        let e = sample_events(&k, &eo, &pc, Kva(sch), 1234).unwrap();
        assert_eq!(e.elapsed_ms, 1234);
        assert_eq!(e.select_cpu_fallback, 3);
        assert_eq!(e.reenq_local_repeat, 30);
        assert_eq!(e.bypass_duration, 300);
        // Members this kernel lacks stay 0.
        assert_eq!(e.insert_not_owned, 0);
        // Without the per-CPU stats the group is missing, by name.
        let mut t2 = t;
        t2.members
            .remove(&("scx_sched".to_string(), "pcpu".to_string()));
        let so2 = SchedOffsets::resolve(&t2).unwrap();
        assert!(matches!(
            EventOffsets::resolve(&t2, &so2),
            Err(WalkError::MissingOffsets {
                group: "scx_event_stats",
                ..
            })
        ));
    }

    #[test]
    fn exit_kind_done_after_an_error_reports_the_error_from_exit_info() {
        let t = sched_types()
            .member("scx_sched", "exit_info", 0x118)
            .member("scx_exit_info", "kind", 0);
        let o = SchedOffsets::resolve(&t).unwrap();
        let s = FakeSyms::default();
        let info = B + 0x8000;
        let state = |exit_kind: u32, info_ptr: u64, info_kind: u32| {
            let mut m = FakeMem::default();
            m.w32(B + 0x108, exit_kind);
            m.w64(B + 0x118, info_ptr);
            m.w32(info, info_kind);
            let k = KernelView {
                mem: &m,
                syms: &s,
                types: &t,
            };
            sched_state(&k, &o, Kva(B)).unwrap().exit_kind
        };
        // The disable worker has run: exit_kind reads DONE, exit_info keeps the error.
        assert_eq!(state(1, info, 1026), 1026);
        // Before it runs, exit_kind itself is the error.
        assert_eq!(state(1025, info, 0), 1025);
        // A clean unregistration stays DONE; no exit_info stays DONE.
        assert_eq!(state(1, info, 1), 1);
        assert_eq!(state(1, 0, 0), 1);
        // Still running.
        assert_eq!(state(0, info, 1026), 0);
    }
}
