//! The scheduler's state (`struct scx_sched` behind `scx_root`, or the globals of the
//! kernels before it: [`crate::root`]), its event counters and the trigger location the
//! engines watch.

use dump_schema::{EventCounterSample, ScxSchedState};
use guest_mem::{Kva, KvaRead, KvaReadExt};

use crate::error::{Result, WalkError};
use crate::exit_kind::{ExitVerdict, verdict};
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use crate::root::{Anchor, GlobalSyms, Layout, Loc};
use btf_walk::OffsetGroup;

/// Where the walkers find the scheduler's state (group `scx_sched`): members of the
/// `struct scx_sched` behind `scx_root`, or the globals of kernels without it
/// ([`crate::root`]). The per-CPU and per-node parts exist only with `scx_sched`.
#[derive(Debug, Clone, Copy)]
pub struct SchedOffsets {
    /// How the scheduler is found.
    pub anchor: Anchor,
    /// `scx_sched.aborting`; absent with the globals layout.
    pub aborting: Option<Loc>,
    pub bypass_depth: Loc,
    pub exit_kind: Loc,
    /// The `struct scx_exit_info *` (`scx_sched.exit_info` or the global `scx_exit_info`)
    /// and `scx_exit_info.kind`: where the exit kind survives once the disable worker has
    /// reset `exit_kind` to `SCX_EXIT_DONE`.
    pub exit_info: Option<(Loc, u64)>,
    pub watchdog_timeout: Loc,
    /// The scheduler's `struct sched_ext_ops` (`scx_sched.ops` or the global `scx_ops`).
    pub ops: Loc,
    /// `sched_ext_ops.name` inside it.
    pub ops_name: u64,
    pub ops_name_len: u64,
    /// `sched_ext_ops.exit_dump_len` inside it.
    pub exit_dump_len: Option<u64>,
    /// `struct scx_sched_pcpu __percpu *pcpu` (7.x); absent on the first sched_ext kernels.
    pub pcpu: Option<u64>,
    /// `struct scx_sched_pnode **pnode` (7.x per-node global DSQs).
    pub pnode: Option<u64>,
    /// `struct scx_dispatch_q **global_dsqs` (`scx_sched.global_dsqs` 6.13–6.19, the
    /// global of that name on 6.12).
    pub global_dsqs: Option<Loc>,
    /// `scx_sched_pnode.global_dsq`.
    pub pnode_global_dsq: Option<u64>,
    /// The user DSQs' `struct rhashtable`.
    pub dsq_hash: Loc,
    pub pcpu_event_stats: Option<u64>,
    pub pcpu_bypass_dsq: Option<u64>,
}

impl SchedOffsets {
    /// The layout the kernel's BTF and symbols say it has ([`crate::root::layout`]);
    /// every member or symbol it lacks is named in the group's error.
    pub fn resolve(k: &KernelView<'_>) -> Result<SchedOffsets> {
        match crate::root::layout(k) {
            Some(Layout::Globals) => Self::resolve_globals(k),
            _ => Self::resolve_scx_sched(k),
        }
    }

    fn resolve_scx_sched(k: &KernelView<'_>) -> Result<SchedOffsets> {
        let t = k.types;
        let mut r = OffsetGroup::new(t, "scx_sched");
        let ops = r.off("scx_sched", "ops");
        let o = SchedOffsets {
            // Without the symbol, locating the scheduler fails (NoSymbol), not the offsets.
            anchor: Anchor::ScxRoot(k.syms.symbol("scx_root").unwrap_or(Kva(0))),
            aborting: Some(Loc::Member(r.off("scx_sched", "aborting"))),
            bypass_depth: Loc::Member(r.off("scx_sched", "bypass_depth")),
            exit_kind: Loc::Member(r.off("scx_sched", "exit_kind")),
            exit_info: r
                .opt("scx_sched", "exit_info")
                .map(Loc::Member)
                .zip(r.opt("scx_exit_info", "kind")),
            watchdog_timeout: Loc::Member(r.off("scx_sched", "watchdog_timeout")),
            ops: Loc::Member(ops),
            ops_name: r.off("sched_ext_ops", "name"),
            ops_name_len: 128,
            exit_dump_len: r.opt("sched_ext_ops", "exit_dump_len"),
            pcpu: r.opt("scx_sched", "pcpu"),
            pnode: r.opt("scx_sched", "pnode"),
            global_dsqs: r.opt("scx_sched", "global_dsqs").map(Loc::Member),
            pnode_global_dsq: r.opt("scx_sched_pnode", "global_dsq"),
            dsq_hash: Loc::Member(r.off("scx_sched", "dsq_hash")),
            pcpu_event_stats: r.opt("scx_sched_pcpu", "event_stats"),
            pcpu_bypass_dsq: r.opt("scx_sched_pcpu", "bypass_dsq"),
        };
        Ok(r.finish(o)?)
    }

    fn resolve_globals(k: &KernelView<'_>) -> Result<SchedOffsets> {
        let mut r = OffsetGroup::new(k.types, "scx_sched");
        let ops_name = r.off("sched_ext_ops", "name");
        let exit_dump_len = r.opt("sched_ext_ops", "exit_dump_len");
        let ei_kind = r.opt("scx_exit_info", "kind");
        // `atomic_t` is `{ int counter; }`: the value is at offset 0.
        let counter = r.opt("atomic_t", "counter").unwrap_or(0);
        let (ops_name, exit_dump_len, ei_kind) = r.finish((ops_name, exit_dump_len, ei_kind))?;
        let mut g = GlobalSyms::new(k);
        let anchor = g.anchor();
        let o = SchedOffsets {
            anchor,
            aborting: None,
            bypass_depth: Loc::Global(g.req("scx_ops_bypass_depth")),
            exit_kind: Loc::Global(g.req("scx_exit_kind")).plus(counter),
            exit_info: g.opt("scx_exit_info").map(Loc::Global).zip(ei_kind),
            watchdog_timeout: Loc::Global(g.req("scx_watchdog_timeout")),
            ops: Loc::Global(g.req("scx_ops")),
            ops_name,
            ops_name_len: 128,
            exit_dump_len,
            pcpu: None,
            pnode: None,
            global_dsqs: g.opt("global_dsqs").map(Loc::Global),
            pnode_global_dsq: None,
            dsq_hash: Loc::Global(g.req("dsq_hash")),
            pcpu_event_stats: None,
            pcpu_bypass_dsq: None,
        };
        g.finish("scx_sched", o)
    }

    /// The root of the attached scheduler; `Ok(None)` when none is attached.
    pub fn locate(&self, k: &KernelView<'_>) -> Result<Option<Kva>> {
        if self.anchor == Anchor::ScxRoot(Kva(0)) {
            return Err(WalkError::NoSymbol("scx_root"));
        }
        self.anchor
            .locate(k.mem)
            .map_err(WalkError::mem(self.anchor.what()))
    }
}

/// Where the engines' trigger watch reads the exit kind: `scx_root->exit_kind`, or the
/// global `scx_exit_kind` of kernels without `scx_root` ([`crate::root`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerLocation {
    /// How the scheduler is found.
    pub anchor: Anchor,
    /// The `atomic_t exit_kind`.
    pub exit_kind: Loc,
    /// The `struct scx_exit_info *` and `scx_exit_info.kind`: the exit kind stays there
    /// after the disable worker resets `exit_kind`.
    pub exit_info: Option<(Loc, u64)>,
}

impl TriggerLocation {
    /// Resolves the scheduler's anchor and exit kind from BTF and symbols.
    pub fn resolve(k: &KernelView<'_>) -> Result<TriggerLocation> {
        if crate::root::layout(k) == Some(Layout::Globals) {
            let so = SchedOffsets::resolve(k)?;
            return Ok(TriggerLocation {
                anchor: so.anchor,
                exit_kind: so.exit_kind,
                exit_info: so.exit_info,
            });
        }
        let scx_root = k.sym("scx_root")?;
        let mut r = OffsetGroup::new(k.types, "scx_sched");
        let exit_kind_offset = r.off("scx_sched", "exit_kind");
        let exit_info = r
            .opt("scx_sched", "exit_info")
            .map(Loc::Member)
            .zip(r.opt("scx_exit_info", "kind"));
        Ok(r.finish(TriggerLocation {
            anchor: Anchor::ScxRoot(scx_root),
            exit_kind: Loc::Member(exit_kind_offset),
            exit_info,
        })?)
    }

    /// What a poll watch reads, as `(address, offset, direct)`: the `u32` at `offset`
    /// in the object the pointer at `address` points at (`scx_root`), or, when `direct`,
    /// the `u32` at `address + offset` itself (the global `scx_exit_kind`).
    pub fn poll_target(&self) -> (Kva, u64, bool) {
        match (self.exit_kind, self.anchor) {
            (Loc::Member(off), Anchor::ScxRoot(p)) => (p, off, false),
            (Loc::Member(off), Anchor::Globals { ops, .. }) => (ops, off, true),
            (Loc::Global(a), _) => (a, 0, true),
        }
    }

    /// What the exit kind is called on this kernel (`scx_sched.exit_kind`, or the global
    /// `scx_exit_kind`), for logs.
    pub fn exit_kind_name(&self) -> &'static str {
        match self.exit_kind {
            Loc::Member(_) => "scx_sched.exit_kind",
            Loc::Global(_) => "scx_exit_kind",
        }
    }

    /// The root of the scheduler attached now, read through `mem`; `None` when none is
    /// or the read fails.
    pub fn current(&self, mem: &dyn KvaRead) -> Option<Kva> {
        self.anchor.locate(mem).ok().flatten()
    }

    /// The address of the exit kind of the scheduler whose root is `sched`.
    pub fn exit_kind_at(&self, sched: Kva) -> Result<Kva> {
        self.exit_kind.at(sched)
    }

    /// `exit_info->kind` read through `mem` (the live guest's reader while it
    /// runs); `None` when this kernel has no `exit_info`, a read fails, or it is NULL.
    pub fn exit_info_kind(&self, sched: Kva, mem: &dyn KvaRead) -> Option<u32> {
        let (info, kind) = self.exit_info?;
        let ei = mem.read_u64(info.at(sched).ok()?).ok()?;
        if ei == 0 {
            return None;
        }
        mem.read_u32(Kva(ei).checked_offset(kind).ok()?).ok()
    }

    /// The capture rule ([`crate::exit_kind::verdict`]) for `exit_kind` just read from the
    /// scheduler whose root is `sched`, reading `exit_info->kind` through `mem` when it is
    /// needed.
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
        let Some(sch) = self
            .anchor
            .locate(k.mem)
            .map_err(WalkError::mem(self.anchor.what()))?
        else {
            return Ok(None);
        };
        Ok(Some(k.u32(self.exit_kind.at(sch)?, "exit_kind")?))
    }
}

/// The attached scheduler, if any.
#[derive(Debug, Clone)]
pub struct SchedRef {
    /// Its root: the `struct scx_sched`, or `scx_ops` with the globals layout.
    pub kva: Kva,
    pub ops_name: String,
}

/// Finds the attached scheduler (`scx_root`, or the globals' enable state). `Ok(None)`
/// when none is attached.
pub fn scx_root(k: &KernelView<'_>, o: &SchedOffsets) -> Result<Option<SchedRef>> {
    let Some(sch) = o.locate(k)? else {
        return Ok(None);
    };
    let ops_name = k.cstr(
        o.ops.at(sch)?.checked_offset(o.ops_name)?,
        o.ops_name_len as usize,
        "sched_ext_ops.name",
    )?;
    Ok(Some(SchedRef { kva: sch, ops_name }))
}

/// `ScxSchedState` of the live scheduler.
///
/// `exit_kind` is the kind the scheduler exits with: `exit_kind`, except when that
/// reads `SCX_EXIT_DONE` (1) while `exit_info->kind` holds a later kind — the disable
/// worker copies the kind into `exit_info` and then resets `exit_kind` to DONE, so a
/// freeze a few milliseconds after an error exit would otherwise report "done".
/// `aborting` is false on kernels without the flag (the capture notes it).
pub fn sched_state(k: &KernelView<'_>, o: &SchedOffsets, sch: Kva) -> Result<ScxSchedState> {
    let aborting = match o.aborting {
        Some(l) => k.u8(l.at(sch)?, "scx_sched.aborting")? != 0,
        None => false,
    };
    let bypass_depth = k.i32(o.bypass_depth.at(sch)?, "bypass_depth")?;
    let exit_kind = k.u32(o.exit_kind.at(sch)?, "exit_kind")?;
    let (exit_kind, _late) =
        crate::exit_kind::effective_kind(exit_kind, || exit_info_kind(k, o, sch));
    let watchdog_timeout = k.u64(o.watchdog_timeout.at(sch)?, "watchdog_timeout")?;
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
    if let Some(l) = o.aborting
        && let Ok(a) = l.at(s.kva).and_then(|a| k.u8(a, "scx_sched.aborting"))
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
    let ei = k.ptr(info.at(sch).ok()?, "exit_info").ok()?;
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
            .member("scx_sched", "ops", 0)
            .member("sched_ext_ops", "name", 0)
            .member("scx_sched", "aborting", 0x100)
            .member("scx_sched", "bypass_depth", 0x104)
            .member("scx_sched", "exit_kind", 0x108)
            .member("scx_sched", "watchdog_timeout", 0x110)
            .member("scx_sched", "dsq_hash", 0x200)
    }

    /// The offsets of the `scx_sched` layout (`scx_root` at a dummy address).
    fn resolve(t: &FakeTypes) -> SchedOffsets {
        let s = FakeSyms::default().with("scx_root", B - 0x1000);
        let m = FakeMem::default();
        SchedOffsets::resolve(&KernelView {
            mem: &m,
            syms: &s,
            types: t,
        })
        .unwrap()
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
        let so = resolve(&t);
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
        let so2 = resolve(&t2);
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
        let o = resolve(&t);
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

    /// The 6.12 layout: no `struct scx_sched`, the state in globals. The scheduler is
    /// found through `scx_ops_enable_state_var`, its state read from the globals, and the
    /// trigger polls `scx_exit_kind` in place.
    #[test]
    fn the_globals_layout_reads_the_scheduler_from_globals() {
        const G: u64 = 0xffff_ffff_8300_0000;
        let mut t = FakeTypes::default()
            .member("sched_ext_ops", "name", 0x40)
            .member("sched_ext_ops", "exit_dump_len", 0x38)
            .member("scx_exit_info", "kind", 0)
            .member("atomic_t", "counter", 0);
        t.enums.insert("SCX_OPS_DISABLED".into(), 3);
        let s = FakeSyms::default()
            .with("scx_ops", G)
            .with("scx_exit_kind", G + 0x200)
            .with("scx_exit_info", G + 0x208)
            .with("scx_ops_enable_state_var", G + 0x210)
            .with("scx_ops_bypass_depth", G + 0x214)
            .with("scx_watchdog_timeout", G + 0x218)
            .with("global_dsqs", G + 0x220)
            .with("dsq_hash", G + 0x300);
        let mut m = FakeMem::default();
        m.write(G + 0x40, b"ktstr_stall\0");
        m.w32(G + 0x210, 3); // SCX_OPS_DISABLED
        m.w32(G + 0x200, 1); // SCX_EXIT_DONE while none is enabled
        let k = |m: &FakeMem| {
            let k = KernelView {
                mem: m,
                syms: &s,
                types: &t,
            };
            let o = SchedOffsets::resolve(&k).unwrap();
            let r = scx_root(&k, &o).unwrap();
            let st = r.as_ref().map(|r| sched_state(&k, &o, r.kva).unwrap());
            let trig = TriggerLocation::resolve(&k).unwrap();
            (o, r, st, trig)
        };
        let (o, r, _, trig) = k(&m);
        assert!(r.is_none(), "disabled: no scheduler");
        assert_eq!(o.aborting, None);
        assert_eq!(o.global_dsqs, Some(Loc::Global(Kva(G + 0x220))));
        assert_eq!(o.dsq_hash.at(Kva(1)).unwrap(), Kva(G + 0x300));
        assert_eq!(trig.poll_target(), (Kva(G + 0x200), 0, true));
        assert_eq!(trig.current(&m), None);
        // Enabled, then the watchdog's claim: exit_kind 1026 in the global.
        m.w32(G + 0x210, 1);
        m.w32(G + 0x200, 1026);
        m.w32(G + 0x214, 1);
        m.w64(G + 0x218, 500);
        let (_, r, st, trig) = k(&m);
        let r = r.expect("attached");
        assert_eq!((r.kva, r.ops_name.as_str()), (Kva(G), "ktstr_stall"));
        let st = st.unwrap();
        assert_eq!(
            (
                st.exit_kind,
                st.bypass_depth,
                st.watchdog_timeout,
                st.aborting
            ),
            (1026, 1, 500, false)
        );
        assert_eq!(st.sched_kva, G);
        assert_eq!(trig.current(&m), Some(Kva(G)));
        assert_eq!(trig.exit_kind_at(Kva(G)).unwrap(), Kva(G + 0x200));
        // The disable worker took over: DONE in the global, the kind in exit_info.
        let info = G + 0x1000;
        m.w32(G + 0x200, 1);
        m.w64(G + 0x208, info);
        m.w32(info, 1026);
        let (_, _, st, trig) = k(&m);
        assert_eq!(st.unwrap().exit_kind, 1026);
        assert_eq!(trig.exit_info_kind(Kva(G), &m), Some(1026));
        // A missing global is named.
        let s2 = FakeSyms::default().with("scx_exit_kind", G + 0x200);
        let err = SchedOffsets::resolve(&KernelView {
            mem: &m,
            syms: &s2,
            types: &t,
        })
        .unwrap_err();
        assert!(err.to_string().contains("symbol scx_ops"), "{err}");
    }
}
