//! The capture: every section of a [`FailureDumpReport`] from a frozen guest, under a
//! soft deadline, each section filled or carrying its reason.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dump_schema::reasons as why;
use dump_schema::{EventCounterSample, FailureDumpReport, VcpuRegSnapshot};
use guest_mem::{CpuRegs, Kva};

use crate::cputime::{CpuTimeOffsets, per_cpu_time};
use crate::dsq::{DsqOffsets, DsqSources, dsq_state, locate_dsqs};
use crate::error::{Result, WalkError};
use crate::kernel::{KernelView, PerCpu, ValueRenderer};
use crate::lists::CoreOffsets;
use crate::maps::{MapCaps, MapCtx, MapOffsets, map_kvas};
use crate::numa::{NumaOffsets, per_node_numa};
use crate::offsets::MissingGroups;
use crate::progs::{
    ProgOffsets, is_struct_ops, prog_kvas, prog_type, prog_type_name, runtime_stats, used_maps,
};
use crate::psi::{PsiOffsets, cgroup_psi};
use crate::rq::{RqOffsets, rq_state, runqueues};
use crate::sched::{EventOffsets, SchedOffsets, SchedRef, sample_events, sched_state, scx_root};
use crate::stackscan::StackScanner;
use crate::tasks::{TASK_CAP, TaskOffsets, all_tasks, enrich_all_with};
use crate::{reasons, sdt};

/// The frozen guest to capture.
pub struct Target<'a> {
    pub kernel: KernelView<'a>,
    /// Renders map values with BTF; `None` renders every value as hex.
    pub renderer: Option<&'a dyn ValueRenderer>,
    /// Registers per vCPU (index = vCPU id); `None` for a vCPU that did not park.
    pub vcpu_regs: Vec<Option<CpuRegs>>,
}

/// Caps of one capture (defaults: the wire format's Caps table).
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub tasks: usize,
    pub maps: MapCaps,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            tasks: TASK_CAP,
            maps: MapCaps::default(),
        }
    }
}

/// Options of one capture.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Soft deadline from the start of the capture: past it, heavy phases (maps,
    /// tasks, arena pages) stop and the report says where (`dump_truncated_at_us`,
    /// `maps_truncated`).
    pub deadline: Option<Duration>,
    pub caps: Caps,
    /// Event-counter samples taken while the guest ran (see [`crate::EventSampler`]);
    /// the capture appends one sample at the freeze.
    pub timeline: Vec<EventCounterSample>,
    /// Milliseconds since the run started, for the freeze-time sample.
    pub elapsed_ms: u64,
}

/// Time spent in one phase of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: &'static str,
    pub elapsed: Duration,
}

/// The report plus what the capture itself observed.
#[derive(Debug, Clone)]
pub struct CaptureOutput {
    pub report: FailureDumpReport,
    /// Phases in execution order with their durations (for benchmarks and `-v`).
    pub phases: Vec<Phase>,
    /// Non-fatal problems, one line each (reasons that did not fit in the report).
    pub log: Vec<String>,
}

struct Clock {
    start: Instant,
    last: Instant,
    deadline: Option<Duration>,
    phases: Vec<Phase>,
}

impl Clock {
    fn new(deadline: Option<Duration>) -> Clock {
        let now = Instant::now();
        Clock {
            start: now,
            last: now,
            deadline,
            phases: Vec::new(),
        }
    }
    fn phase(&mut self, name: &'static str) {
        let now = Instant::now();
        self.phases.push(Phase {
            name,
            elapsed: now - self.last,
        });
        self.last = now;
    }
    fn passed(&self) -> bool {
        self.deadline.is_some_and(|d| self.start.elapsed() >= d)
    }
    fn elapsed_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Captures a frozen guest. Never fails: sections that cannot be read carry their
/// reason, and `log` says more.
///
/// The phases run in the order below (sched_ext state first: it is what the dump is for);
/// each one records its time in [`CaptureOutput::phases`].
pub fn capture(target: &Target<'_>, opts: &CaptureOptions) -> CaptureOutput {
    let mut run = Run::new(target, opts);
    let core = match CoreOffsets::resolve(run.k.types) {
        Ok(c) => c,
        Err(e) => return run.without_core_offsets(e),
    };
    let pc = run.per_cpu();
    run.clock.phase("offsets+percpu");
    let found = run.sched_ext(&core, &pc);
    run.events(&found, &pc);
    run.tasks(&core, &found);
    run.maps_and_progs(&core, &pc, &found);
    run.system(&core, &pc);
    run.sdt();
    run.finish()
}

/// One capture in progress: the report being filled and what the capture observed.
struct Run<'t, 'a> {
    target: &'t Target<'a>,
    opts: &'t CaptureOptions,
    k: KernelView<'a>,
    clock: Clock,
    log: Vec<String>,
    missing: MissingGroups,
    r: FailureDumpReport,
    truncated_at: Option<u64>,
}

/// What the sched_ext phases found that later phases build on.
struct SchedFound {
    so: Result<SchedOffsets>,
    rqo: Result<RqOffsets>,
    rqs: Vec<Kva>,
    sch_ref: Option<SchedRef>,
}

impl<'t, 'a> Run<'t, 'a> {
    /// Starts the clock and takes the vCPU registers (they need no guest memory).
    fn new(target: &'t Target<'a>, opts: &'t CaptureOptions) -> Self {
        let r = FailureDumpReport {
            vcpu_regs: target
                .vcpu_regs
                .iter()
                .map(|v| {
                    v.map(|g| VcpuRegSnapshot {
                        instruction_pointer: g.rip,
                        stack_pointer: g.rsp,
                        page_table_root: g.cr3,
                        ..Default::default()
                    })
                })
                .collect(),
            ..Default::default()
        };
        Run {
            target,
            opts,
            k: target.kernel,
            clock: Clock::new(opts.deadline),
            log: vec![reasons::NO_VCPU_PERF.to_string()],
            missing: MissingGroups::default(),
            r,
            truncated_at: None,
        }
    }

    /// Without the list/xarray/rhashtable offsets no walker can run: a report with the
    /// registers and the reason naming the group.
    fn without_core_offsets(mut self, e: WalkError) -> CaptureOutput {
        self.missing.note(&e);
        let mut out = FailureDumpReport::placeholder(self.missing.reason());
        out.is_placeholder = false;
        out.vcpu_regs = self.r.vcpu_regs;
        CaptureOutput {
            report: out,
            phases: self.clock.phases,
            log: vec![e.to_string()],
        }
    }

    fn per_cpu(&mut self) -> PerCpu {
        PerCpu::load(&self.k).unwrap_or_else(|e| {
            self.log.push(format!("per-CPU offsets: {e}"));
            PerCpu::default()
        })
    }

    /// Phases `scx_sched`, `rq` and `dsq`, then `scx_walker_unavailable`.
    fn sched_ext(&mut self, core: &CoreOffsets, pc: &PerCpu) -> SchedFound {
        let k = self.k;
        let so = self.noted(SchedOffsets::resolve(k.types));
        let rqo = self.noted(RqOffsets::resolve(k.types));
        let dso = self.noted(DsqOffsets::resolve(k.types));
        let rqs = runqueues(&k, pc).unwrap_or_else(|e| {
            self.log.push(format!("runqueues: {e}"));
            Vec::new()
        });
        let (sch_ref, root_null) = match &so {
            Ok(so) => self.scx_sched(so),
            Err(_) => (None, false),
        };
        self.clock.phase("scx_sched");
        if let Ok(rqo) = &rqo {
            self.rq_states(core, rqo, &rqs);
        }
        self.clock.phase("rq");
        if let (Ok(dso), Ok(so)) = (&dso, &so) {
            let src = DsqSources {
                rqs: &rqs,
                local_dsq_off: rqo.as_ref().ok().map(|o| o.local_dsq),
                sch: sch_ref.as_ref().map(|s| s.kva),
            };
            self.dsq_states(core, pc, dso, so, &src);
        }
        self.clock.phase("dsq");
        self.r.scx_walker_unavailable = self.walker_unavailable(root_null);
        SchedFound {
            so,
            rqo,
            rqs,
            sch_ref,
        }
    }

    /// `res`, its missing offset group (if that is why it failed) noted for the reason.
    fn noted<T>(&mut self, res: Result<T>) -> Result<T> {
        if let Err(e) = &res {
            self.missing.note(e);
        }
        res
    }

    /// The attached scheduler (if any) and its state; `true` when `scx_root` is NULL.
    fn scx_sched(&mut self, so: &SchedOffsets) -> (Option<SchedRef>, bool) {
        match scx_root(&self.k, so) {
            Ok(Some(s)) => {
                match sched_state(&self.k, so, s.kva) {
                    Ok(st) => self.r.scx_sched_state = Some(st),
                    Err(e) => self.log.push(format!("scx_sched: {e}")),
                }
                (Some(s), false)
            }
            Ok(None) => (None, true),
            Err(e) => {
                self.log.push(format!("scx_root: {e}"));
                (None, false)
            }
        }
    }

    fn rq_states(&mut self, core: &CoreOffsets, rqo: &RqOffsets, rqs: &[Kva]) {
        for (cpu, rq) in rqs.iter().enumerate() {
            match rq_state(&self.k, core, rqo, cpu as u32, *rq) {
                Ok(s) => self.r.rq_scx_states.push(s),
                Err(e) => self.log.push(format!("rq {cpu}: {e}")),
            }
        }
    }

    /// Every DSQ found; errors are logged only while a scheduler is attached (without
    /// one, missing DSQs are expected).
    fn dsq_states(
        &mut self,
        core: &CoreOffsets,
        pc: &PerCpu,
        dso: &DsqOffsets,
        so: &SchedOffsets,
        src: &DsqSources<'_>,
    ) {
        let attached = src.sch.is_some();
        let (locs, errs) = locate_dsqs(&self.k, core, dso, so, pc, src);
        if attached {
            self.log.extend(errs);
        }
        for l in locs {
            match dsq_state(&self.k, core, dso, l.kva, l.origin.clone()) {
                Ok(d) => self.r.dsq_states.push(d),
                Err(e) if attached => self.log.push(format!("DSQ {}: {e}", l.origin)),
                Err(_) => {}
            }
        }
    }

    fn walker_unavailable(&self, root_null: bool) -> Option<String> {
        if !self.missing.is_empty() {
            Some(self.missing.reason())
        } else if root_null {
            Some(why::SCX_ROOT_NULL.to_string())
        } else if self.r.scx_sched_state.is_none() && self.r.rq_scx_states.is_empty() {
            Some(why::SCX_WALKER_NO_STATE.to_string())
        } else {
            None
        }
    }

    /// Phase `events`: the timeline taken while the guest ran, plus one sample now.
    fn events(&mut self, found: &SchedFound, pc: &PerCpu) {
        self.r.event_counter_timeline = self.opts.timeline.clone();
        if let (Ok(so), Some(s)) = (&found.so, &found.sch_ref) {
            match EventOffsets::resolve(self.k.types, so)
                .and_then(|eo| sample_events(&self.k, &eo, pc, s.kva, self.opts.elapsed_ms))
            {
                Ok(sample) => self.r.event_counter_timeline.push(sample),
                Err(e) => self.log.push(format!("event counters: {e}")),
            }
        }
        self.clock.phase("events");
    }

    /// Phase `tasks`: the ones the dump refers to first, then everything on scx_tasks.
    fn tasks(&mut self, core: &CoreOffsets, found: &SchedFound) {
        match TaskOffsets::resolve(self.k.types) {
            Ok(to) => self.enrich_tasks(core, &to, found),
            Err(e) => {
                self.log.push(e.to_string());
                self.r.task_enrichments_unavailable = Some(why::NO_TASK_WALKER.into());
            }
        }
        self.clock.phase("tasks");
    }

    fn enrich_tasks(&mut self, core: &CoreOffsets, to: &TaskOffsets, found: &SchedFound) {
        let k = self.k;
        let mut stacks = StackScanner::new(&k)
            .inspect_err(|e| {
                self.log
                    .push(format!("{}{e}", reasons::NO_STACK_SCAN_PREFIX))
            })
            .ok();
        let first = self.referenced_tasks(found, stacks.as_mut());
        let cap = self.opts.caps.tasks;
        let rest = match all_tasks(&k, core, to, cap) {
            Ok((v, trunc)) => {
                if trunc {
                    self.log.push(format!("task list truncated at {cap}"));
                }
                v
            }
            Err(e) => {
                self.log.push(format!("task list: {e}"));
                Vec::new()
            }
        };
        let clock = &self.clock;
        let (tasks, failed, stopped) = enrich_all_with(
            &k,
            to,
            first,
            rest,
            cap,
            &|| clock.passed(),
            stacks.as_ref(),
        );
        if failed > 0 {
            self.log.push(format!("{failed} tasks unreadable"));
        }
        if stopped && self.clock.passed() {
            self.truncated_at.get_or_insert(self.clock.elapsed_us());
        }
        if tasks.is_empty() {
            self.r.task_enrichments_unavailable = Some(why::TASK_WALKER_ZERO_TASKS.into());
        }
        self.r.task_enrichments = tasks;
    }

    /// Tasks the report already names: each CPU's current task (whose stack is scanned
    /// from its vCPU's registers, CPU n = vCPU n), then runnable and queued tasks.
    fn referenced_tasks(
        &self,
        found: &SchedFound,
        mut stacks: Option<&mut StackScanner<'_>>,
    ) -> Vec<Kva> {
        let mut first: Vec<Kva> = Vec::new();
        if let Ok(rqo) = &found.rqo {
            for (cpu, rq) in found.rqs.iter().enumerate() {
                if let Ok(c) = self.k.ptr(Kva(rq.0.wrapping_add(rqo.curr)), "rq.curr") {
                    first.push(c);
                    if let Some(sc) = stacks.as_deref_mut() {
                        let regs = self.target.vcpu_regs.get(cpu).copied().flatten();
                        sc.set_running(c, cpu as u32, regs);
                    }
                }
            }
        }
        for s in &self.r.rq_scx_states {
            first.extend(s.runnable_task_kvas.iter().map(|&t| Kva(t)));
        }
        for d in &self.r.dsq_states {
            first.extend(d.task_kvas.iter().map(|&t| Kva(t)));
        }
        first
    }

    /// Phases `maps` (when the map offsets resolve) and `progs`.
    fn maps_and_progs(&mut self, core: &CoreOffsets, pc: &PerCpu, found: &SchedFound) {
        let mo = MapOffsets::resolve(self.k.types)
            .inspect_err(|e| self.log.push(format!("maps: {e}")))
            .ok();
        let po = ProgOffsets::resolve(self.k.types);
        if let Some(mo) = &mo {
            let cx = MapCtx {
                k: self.k,
                c: core,
                o: mo,
                pc,
                renderer: self.target.renderer,
                caps: self.opts.caps.maps,
            };
            self.maps(&cx);
            self.clock.phase("maps");
            if let Some(s) = &found.sch_ref {
                active_scheduler(
                    &cx,
                    po.as_ref().ok(),
                    &s.ops_name,
                    &mut self.r,
                    &mut self.log,
                );
            }
        }
        self.progs(core, pc, &po);
        self.clock.phase("progs");
    }

    /// Every map on `map_idr`, until the deadline (`maps_truncated` counts the rest).
    fn maps(&mut self, cx: &MapCtx<'_>) {
        let cap = self.opts.caps.maps.maps;
        let maps = match map_kvas(&self.k, cx.c, cap) {
            Ok((maps, trunc)) => {
                if trunc {
                    self.log.push(format!("map list truncated at {cap}"));
                }
                maps
            }
            Err(e) => {
                self.log.push(format!("map_idr: {e}"));
                return;
            }
        };
        for (i, m) in maps.iter().enumerate() {
            if self.clock.passed() {
                self.r.maps_truncated = (maps.len() - i) as u32;
                self.truncated_at.get_or_insert(self.clock.elapsed_us());
                break;
            }
            self.r.maps.push(cx.capture(*m));
        }
    }

    /// Runtime statistics of the struct_ops programs (the scheduler's callbacks), and of
    /// the scheduler's other programs (`aux_prog_runtime_stats`: tracing, syscall, …
    /// programs that share a map with a struct_ops program, as a scheduler's programs
    /// share its `.bss`/`.rodata`; a tool's own programs, such as bpftool's iterator,
    /// share none).
    fn progs(&mut self, core: &CoreOffsets, pc: &PerCpu, po: &Result<ProgOffsets>) {
        let po = match po {
            Ok(po) => po,
            Err(e) => {
                self.log.push(e.to_string());
                self.r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
                return;
            }
        };
        let progs = match prog_kvas(&self.k, core, 4096) {
            Ok(progs) => progs,
            Err(e) => {
                self.log.push(format!("prog_idr: {e}"));
                self.r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
                return;
            }
        };
        let mut scheduler_maps = BTreeSet::new();
        let mut others = Vec::new();
        for p in progs {
            if !is_struct_ops(&self.k, po, p).unwrap_or(false) {
                others.push(p);
                continue;
            }
            match runtime_stats(&self.k, po, pc, p) {
                Ok(s) => self.r.prog_runtime_stats.push(s),
                Err(e) => self.log.push(format!("prog stats: {e}")),
            }
            match used_maps(&self.k, po, p) {
                Ok(maps) => scheduler_maps.extend(maps),
                Err(e) => self.log.push(format!("prog maps: {e}")),
            }
        }
        if self.r.prog_runtime_stats.is_empty() {
            self.r.prog_runtime_stats_unavailable = Some(why::NO_STRUCT_OPS_PROGRAMS.into());
        }
        for p in others {
            let shares = used_maps(&self.k, po, p)
                .is_ok_and(|maps| maps.iter().any(|m| scheduler_maps.contains(m)));
            if !shares {
                continue;
            }
            let stats = prog_type(&self.k, po, p).and_then(|ty| {
                let mut s = runtime_stats(&self.k, po, pc, p)?;
                s.prog_type = prog_type_name(po, ty);
                Ok(s)
            });
            match stats {
                Ok(s) => self.r.aux_prog_runtime_stats.push(s),
                Err(e) => self.log.push(format!("prog stats: {e}")),
            }
        }
    }

    /// Phases `cputime`, `numa` and `psi`: the system-wide sections.
    fn system(&mut self, core: &CoreOffsets, pc: &PerCpu) {
        let k = self.k;
        match CpuTimeOffsets::resolve(k.types).and_then(|o| per_cpu_time(&k, &o, pc)) {
            Ok(v) => self.r.per_cpu_time = v,
            Err(e) => self.log.push(format!("per-CPU time: {e}")),
        }
        self.clock.phase("cputime");
        match NumaOffsets::resolve(k.types).and_then(|o| per_node_numa(&k, &o, pc)) {
            Ok(v) if !v.is_empty() => self.r.per_node_numa = v,
            Ok(_) => self.r.per_node_numa_unavailable = Some(reasons::NUMA_NO_NODES.into()),
            Err(e) => {
                self.r.per_node_numa_unavailable =
                    Some(format!("{}{e}", reasons::NUMA_FAILED_PREFIX))
            }
        }
        self.clock.phase("numa");
        match PsiOffsets::resolve(k.types).and_then(|o| cgroup_psi(&k, core, &o)) {
            Ok((v, trunc)) => {
                if trunc {
                    self.log.push("cgroup walk truncated".into());
                }
                self.r.cgroup_psi = v;
            }
            Err(e) => self.log.push(format!("cgroup PSI: {e}")),
        }
        self.clock.phase("psi");
    }

    /// Phase `sdt`: the scheduler's arena allocations.
    fn sdt(&mut self) {
        let clock = &self.clock;
        let sdt = sdt::capture_sdt(&self.r, self.target.renderer, &self.k, &|| clock.passed());
        self.r.sdt_allocations = sdt.allocations;
        self.r.scx_static_ranges = sdt.static_ranges;
        self.r.sdt_alloc_unavailable = sdt.unavailable;
        self.log.extend(sdt.log);
        if sdt.deadline_hit {
            self.truncated_at.get_or_insert(self.clock.elapsed_us());
        }
        self.clock.phase("sdt");
    }

    fn finish(mut self) -> CaptureOutput {
        self.r.dump_truncated_at_us = self.truncated_at;
        for d in self.missing.details() {
            self.log.push(format!("missing offsets: {d}"));
        }
        CaptureOutput {
            report: self.r,
            phases: self.clock.phases,
            log: self.log,
        }
    }
}

/// `active_obj_name` / `active_map_kvas`: the struct_ops map whose `sched_ext_ops.name`
/// is the attached scheduler's, and the maps its programs use.
fn active_scheduler(
    cx: &MapCtx<'_>,
    po: Option<&ProgOffsets>,
    ops_name: &str,
    r: &mut FailureDumpReport,
    log: &mut Vec<String>,
) {
    let Some(so) = cx.o.struct_ops else {
        log.push("active scheduler: struct_ops offsets missing".into());
        return;
    };
    let name_off =
        cx.k.types
            .offset_of("bpf_struct_ops_value", "data")
            .zip(cx.k.types.offset_of("sched_ext_ops", "name"));
    let Some((data, name)) = name_off else {
        log.push("active scheduler: sched_ext_ops.name offset missing".into());
        return;
    };
    // The newest struct_ops map carrying this ops name is the attached one.
    let found = r.maps.iter().rev().find(|m| {
        m.map_type == dump_schema::map_type::STRUCT_OPS
            && cx
                .k
                .cstr(
                    Kva(m.map_kva.wrapping_add(so.kvalue + data + name)),
                    128,
                    "ops.name",
                )
                .is_ok_and(|n| n == ops_name)
    });
    let Some(m) = found else {
        log.push(format!(
            "active scheduler: no struct_ops map named ops `{ops_name}`"
        ));
        return;
    };
    r.active_obj_name = Some(m.name.clone());
    let mut kvas = BTreeSet::new();
    kvas.insert(m.map_kva);
    let progs = crate::maps::struct_ops_progs(cx, Kva(m.map_kva)).unwrap_or_else(|e| {
        log.push(format!("active scheduler programs: {e}"));
        Vec::new()
    });
    if let Some(po) = po {
        for p in progs {
            match used_maps(&cx.k, po, p) {
                Ok(ms) => kvas.extend(ms.into_iter().map(|m| m.0)),
                Err(e) => log.push(format!("used_maps: {e}")),
            }
        }
    }
    r.active_map_kvas = kvas.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const B: u64 = 0xffff_ffff_8100_0000;

    /// A kernel whose BTF lacks one rq member and every map/task type: the rq group is
    /// named in the stable reason, the other sections say why they are empty, and the
    /// capture still returns the vCPU registers.
    #[test]
    fn missing_groups_degrade_their_sections_only() {
        let mut t = FakeTypes::core();
        for (ty, m, o) in [
            ("scx_sched", "ops.name", 0),
            ("scx_sched", "aborting", 0x100),
            ("scx_sched", "bypass_depth", 0x104),
            ("scx_sched", "exit_kind", 0x108),
            ("scx_sched", "watchdog_timeout", 0x110),
            ("scx_sched", "dsq_hash", 0x200),
            ("rq", "curr", 0x10),
            ("rq", "scx.nr_running", 0x20),
        ] {
            t = t.member(ty, m, o);
        }
        let s = FakeSyms::default()
            .with("nr_cpu_ids", B)
            .with("__per_cpu_offset", B + 0x100)
            .with("scx_root", B + 0x200)
            .with("runqueues", B + 0x1000);
        let mut m = FakeMem::default();
        m.w32(B, 1);
        m.w64(B + 0x100, 0);
        m.w64(B + 0x200, 0); // no scheduler attached
        let target = Target {
            kernel: KernelView {
                mem: &m,
                syms: &s,
                types: &t,
            },
            renderer: None,
            vcpu_regs: vec![
                Some(CpuRegs {
                    rip: 0xffff_ffff_8100_1234,
                    rsp: 0xffff_c900_0000_0ff0,
                    cr3: 0x1000,
                    ..Default::default()
                }),
                None,
            ],
        };
        let out = capture(&target, &CaptureOptions::default());
        let r = &out.report;
        assert_eq!(
            r.scx_walker_unavailable.as_deref(),
            Some("scx walker partial: missing offset groups [rq, dsq]")
        );
        assert!(r.rq_scx_states.is_empty() && r.dsq_states.is_empty());
        assert_eq!(
            r.task_enrichments_unavailable.as_deref(),
            Some(why::NO_TASK_WALKER)
        );
        assert_eq!(
            r.prog_runtime_stats_unavailable.as_deref(),
            Some(why::PROG_ACCESSOR_UNAVAILABLE)
        );
        assert!(r.per_node_numa_unavailable.is_some());
        assert_eq!(r.vcpu_regs.len(), 2);
        assert_eq!(
            r.vcpu_regs[0].as_ref().unwrap().instruction_pointer,
            0xffff_ffff_8100_1234
        );
        assert!(r.vcpu_regs[1].is_none());
        assert!(
            out.log.iter().any(|l| l.contains("rq.scx.flags")),
            "{:?}",
            out.log
        );
        let phases: Vec<_> = out.phases.iter().map(|p| p.name).collect();
        assert!(phases.contains(&"maps") || phases.contains(&"progs"));
    }
}
