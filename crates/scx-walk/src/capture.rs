//! The capture: every section of a [`FailureDumpReport`] from a frozen guest, under a
//! soft deadline, each section filled or carrying its reason.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dump_schema::reasons as why;
use dump_schema::{EventCounterSample, FailureDumpReport, VcpuRegSnapshot};
use guest_mem::{CpuRegs, Kva};

use crate::cputime::{CpuTimeOffsets, per_cpu_time};
use crate::dsq::{DsqOffsets, DsqSources, dsq_state, locate_dsqs};
use crate::kernel::{KernelView, PerCpu, ValueRenderer};
use crate::lists::CoreOffsets;
use crate::maps::{MapCaps, MapCtx, MapOffsets, map_kvas};
use crate::numa::{NumaOffsets, per_node_numa};
use crate::offsets::MissingGroups;
use crate::progs::{ProgOffsets, is_struct_ops, prog_kvas, runtime_stats, used_maps};
use crate::psi::{PsiOffsets, cgroup_psi};
use crate::rq::{RqOffsets, rq_state, runqueues};
use crate::sched::{EventOffsets, SchedOffsets, sample_events, sched_state, scx_root};
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
pub fn capture(target: &Target<'_>, opts: &CaptureOptions) -> CaptureOutput {
    let k = target.kernel;
    let mut clock = Clock::new(opts.deadline);
    let mut log = Vec::new();
    let mut missing = MissingGroups::default();
    let mut r = FailureDumpReport::default();
    let mut truncated_at: Option<u64> = None;

    r.vcpu_regs = target
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
        .collect();
    log.push(reasons::NO_VCPU_PERF.to_string());

    let core = match CoreOffsets::resolve(k.types) {
        Ok(c) => c,
        Err(e) => {
            missing.note(&e);
            let mut out = FailureDumpReport::placeholder(missing.reason());
            out.is_placeholder = false;
            out.vcpu_regs = r.vcpu_regs;
            return CaptureOutput {
                report: out,
                phases: clock.phases,
                log: vec![e.to_string()],
            };
        }
    };
    let pc = match PerCpu::load(&k) {
        Ok(p) => p,
        Err(e) => {
            log.push(format!("per-CPU offsets: {e}"));
            PerCpu::default()
        }
    };
    clock.phase("offsets+percpu");

    // --- sched_ext state first: it is what the dump is for.
    let so = SchedOffsets::resolve(k.types).inspect_err(|e| {
        missing.note(e);
    });
    let rqo = RqOffsets::resolve(k.types).inspect_err(|e| {
        missing.note(e);
    });
    let dso = DsqOffsets::resolve(k.types).inspect_err(|e| {
        missing.note(e);
    });
    let rqs = runqueues(&k, &pc).unwrap_or_else(|e| {
        log.push(format!("runqueues: {e}"));
        Vec::new()
    });
    let mut sch_ref = None;
    let mut root_null = false;
    if let Ok(so) = &so {
        match scx_root(&k, so) {
            Ok(Some(s)) => {
                match sched_state(&k, so, s.kva) {
                    Ok(st) => r.scx_sched_state = Some(st),
                    Err(e) => log.push(format!("scx_sched: {e}")),
                }
                sch_ref = Some(s);
            }
            Ok(None) => root_null = true,
            Err(e) => log.push(format!("scx_root: {e}")),
        }
    }
    clock.phase("scx_sched");
    if let Ok(rqo) = &rqo {
        for (cpu, rq) in rqs.iter().enumerate() {
            match rq_state(&k, &core, rqo, cpu as u32, *rq) {
                Ok(s) => r.rq_scx_states.push(s),
                Err(e) => log.push(format!("rq {cpu}: {e}")),
            }
        }
    }
    clock.phase("rq");
    if let (Ok(dso), Ok(so)) = (&dso, &so) {
        let local = rqo.as_ref().ok().map(|o| o.local_dsq);
        let sch = sch_ref.as_ref().map(|s| s.kva);
        let src = DsqSources {
            rqs: &rqs,
            local_dsq_off: local,
            sch,
        };
        let (locs, errs) = locate_dsqs(&k, &core, dso, so, &pc, &src);
        if sch.is_some() {
            log.extend(errs);
        }
        for l in locs {
            match dsq_state(&k, &core, dso, l.kva, l.origin.clone()) {
                Ok(d) => r.dsq_states.push(d),
                Err(e) => {
                    if sch.is_some() {
                        log.push(format!("DSQ {}: {e}", l.origin))
                    }
                }
            }
        }
    }
    clock.phase("dsq");
    r.scx_walker_unavailable = if !missing.is_empty() {
        Some(missing.reason())
    } else if root_null {
        Some(why::SCX_ROOT_NULL.to_string())
    } else if r.scx_sched_state.is_none() && r.rq_scx_states.is_empty() {
        Some(why::SCX_WALKER_NO_STATE.to_string())
    } else {
        None
    };

    // --- event counters at the freeze.
    r.event_counter_timeline = opts.timeline.clone();
    if let (Ok(so), Some(s)) = (&so, &sch_ref) {
        match EventOffsets::resolve(k.types, so)
            .and_then(|eo| sample_events(&k, &eo, &pc, s.kva, opts.elapsed_ms))
        {
            Ok(sample) => r.event_counter_timeline.push(sample),
            Err(e) => log.push(format!("event counters: {e}")),
        }
    }
    clock.phase("events");

    // --- tasks: the ones the dump refers to first, then everything on scx_tasks.
    match TaskOffsets::resolve(k.types) {
        Ok(to) => {
            let mut first: Vec<Kva> = Vec::new();
            // lock_slowpath_match: running tasks are scanned from their vCPU's registers
            // (CPU n = vCPU n).
            let mut stacks = StackScanner::new(&k)
                .inspect_err(|e| log.push(format!("{}{e}", reasons::NO_STACK_SCAN_PREFIX)))
                .ok();
            if let Ok(rqo) = &rqo {
                for (cpu, rq) in rqs.iter().enumerate() {
                    if let Ok(c) = k.ptr(Kva(rq.0.wrapping_add(rqo.curr)), "rq.curr") {
                        first.push(c);
                        if let Some(sc) = stacks.as_mut() {
                            let regs = target.vcpu_regs.get(cpu).copied().flatten();
                            sc.set_running(c, cpu as u32, regs);
                        }
                    }
                }
            }
            for s in &r.rq_scx_states {
                first.extend(s.runnable_task_kvas.iter().map(|&t| Kva(t)));
            }
            for d in &r.dsq_states {
                first.extend(d.task_kvas.iter().map(|&t| Kva(t)));
            }
            let rest = match all_tasks(&k, &core, &to, opts.caps.tasks) {
                Ok((v, trunc)) => {
                    if trunc {
                        log.push(format!("task list truncated at {}", opts.caps.tasks));
                    }
                    v
                }
                Err(e) => {
                    log.push(format!("task list: {e}"));
                    Vec::new()
                }
            };
            let (tasks, failed, stopped) = enrich_all_with(
                &k,
                &to,
                first,
                rest,
                opts.caps.tasks,
                &|| clock.passed(),
                stacks.as_ref(),
            );
            if failed > 0 {
                log.push(format!("{failed} tasks unreadable"));
            }
            if stopped && clock.passed() {
                truncated_at.get_or_insert(clock.elapsed_us());
            }
            if tasks.is_empty() {
                r.task_enrichments_unavailable = Some(why::TASK_WALKER_ZERO_TASKS.into());
            }
            r.task_enrichments = tasks;
        }
        Err(e) => {
            log.push(e.to_string());
            r.task_enrichments_unavailable = Some(why::NO_TASK_WALKER.into());
        }
    }
    clock.phase("tasks");

    // --- maps and programs.
    let mut map_ctx_o = None;
    match MapOffsets::resolve(k.types) {
        Ok(mo) => map_ctx_o = Some(mo),
        Err(e) => log.push(format!("maps: {e}")),
    }
    let po = ProgOffsets::resolve(k.types);
    if let Some(mo) = &map_ctx_o {
        let cx = MapCtx {
            k,
            c: &core,
            o: mo,
            pc: &pc,
            renderer: target.renderer,
            caps: opts.caps.maps,
        };
        match map_kvas(&k, &core, opts.caps.maps.maps) {
            Ok((maps, trunc)) => {
                if trunc {
                    log.push(format!("map list truncated at {}", opts.caps.maps.maps));
                }
                for (i, m) in maps.iter().enumerate() {
                    if clock.passed() {
                        r.maps_truncated = (maps.len() - i) as u32;
                        truncated_at.get_or_insert(clock.elapsed_us());
                        break;
                    }
                    r.maps.push(cx.capture(*m));
                }
            }
            Err(e) => log.push(format!("map_idr: {e}")),
        }
        clock.phase("maps");
        if let Some(s) = &sch_ref {
            active_scheduler(&cx, po.as_ref().ok(), &s.ops_name, &mut r, &mut log);
        }
    }
    match &po {
        Ok(po) => match prog_kvas(&k, &core, 4096) {
            Ok(progs) => {
                for p in progs {
                    if !is_struct_ops(&k, po, p).unwrap_or(false) {
                        continue;
                    }
                    match runtime_stats(&k, po, &pc, p) {
                        Ok(s) => r.prog_runtime_stats.push(s),
                        Err(e) => log.push(format!("prog stats: {e}")),
                    }
                }
                if r.prog_runtime_stats.is_empty() {
                    r.prog_runtime_stats_unavailable = Some(why::NO_STRUCT_OPS_PROGRAMS.into());
                }
            }
            Err(e) => {
                log.push(format!("prog_idr: {e}"));
                r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
            }
        },
        Err(e) => {
            log.push(e.to_string());
            r.prog_runtime_stats_unavailable = Some(why::PROG_ACCESSOR_UNAVAILABLE.into());
        }
    }
    clock.phase("progs");

    // --- system-wide sections.
    match CpuTimeOffsets::resolve(k.types).and_then(|o| per_cpu_time(&k, &o, &pc)) {
        Ok(v) => r.per_cpu_time = v,
        Err(e) => log.push(format!("per-CPU time: {e}")),
    }
    clock.phase("cputime");
    match NumaOffsets::resolve(k.types).and_then(|o| per_node_numa(&k, &o, &pc)) {
        Ok(v) if !v.is_empty() => r.per_node_numa = v,
        Ok(_) => r.per_node_numa_unavailable = Some(reasons::NUMA_NO_NODES.into()),
        Err(e) => r.per_node_numa_unavailable = Some(format!("{}{e}", reasons::NUMA_FAILED_PREFIX)),
    }
    clock.phase("numa");
    match PsiOffsets::resolve(k.types).and_then(|o| cgroup_psi(&k, &core, &o)) {
        Ok((v, trunc)) => {
            if trunc {
                log.push("cgroup walk truncated".into());
            }
            r.cgroup_psi = v;
        }
        Err(e) => log.push(format!("cgroup PSI: {e}")),
    }
    clock.phase("psi");
    let sdt = sdt::capture_sdt(&r, target.renderer, &k, &|| clock.passed());
    r.sdt_allocations = sdt.allocations;
    r.scx_static_ranges = sdt.static_ranges;
    r.sdt_alloc_unavailable = sdt.unavailable;
    log.extend(sdt.log);
    if sdt.deadline_hit {
        truncated_at.get_or_insert(clock.elapsed_us());
    }
    clock.phase("sdt");

    r.dump_truncated_at_us = truncated_at;
    for d in missing.details() {
        log.push(format!("missing offsets: {d}"));
    }
    CaptureOutput {
        report: r,
        phases: clock.phases,
        log,
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
        let mut t = FakeTypes::default();
        for (ty, m, o) in [
            ("list_head", "next", 0),
            ("hlist_head", "first", 0),
            ("hlist_node", "next", 0),
            ("xarray", "xa_head", 8),
            ("xa_node", "shift", 0),
            ("xa_node", "slots", 40),
            ("idr", "idr_rt", 0),
            ("rhashtable", "tbl", 0),
            ("rhashtable", "nelems", 8),
            ("bucket_table", "size", 0),
            ("bucket_table", "nest", 4),
            ("bucket_table", "buckets", 64),
            ("bucket_table", "future_tbl", 32),
            ("rhash_head", "next", 0),
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
