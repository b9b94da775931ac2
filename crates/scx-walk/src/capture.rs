//! The capture: every section of a [`FailureDumpReport`] from a frozen guest, under a
//! soft deadline, each section filled or carrying its reason, and every part that was
//! dropped, capped or doubtful in `capture_notes` ([`crate::notes`]).

mod bpf;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dump_schema::reasons as why;
use dump_schema::{EventCounterSample, FailureDumpReport, VcpuRegSnapshot};
use guest_mem::{CpuRegs, Kva};

use crate::cputime::{CpuTimeOffsets, per_cpu_time};
use crate::dsq::{DsqOffsets, DsqSources, dsq_state, locate_dsqs};
use crate::error::{Result, WalkError};
use crate::kernel::{KernelView, PerCpu, ValueRenderer};
use crate::lists::CoreOffsets;
use crate::maps::MapCaps;
use crate::notes::{Notes, Tally};
use crate::numa::{NumaOffsets, per_node_numa};
use crate::offsets::MissingGroups;
use crate::psi::{CGROUP_CAP, PsiOffsets, cgroup_psi};
use crate::rq::{RqOffsets, jiffies_symbol, rq_state, runnable_age, runqueues};
use crate::sched::{EventOffsets, SchedOffsets, SchedRef, sample_events, sched_state, scx_root};
use crate::stackscan::StackScanner;
use crate::tasks::{TASK_CAP, TaskOffsets, all_tasks_partial, enrich_all_with};
use crate::{reasons, sdt};

/// The frozen guest to capture.
pub struct Target<'a> {
    pub kernel: KernelView<'a>,
    /// Renders map values with BTF; `None` renders every value as hex.
    pub renderer: Option<&'a dyn ValueRenderer>,
    /// Registers per vCPU (index = vCPU id); `None` for a vCPU that did not park.
    pub vcpu_regs: Vec<Option<CpuRegs>>,
    /// What a second thread reads through; with it, the maps phase (a real scheduler's
    /// biggest) renders maps on two threads. `None`: one thread.
    pub second_thread: Option<SecondThread<'a>>,
}

/// The guest as a second thread sees it: its own reader of the same memory (a clone of
/// `kernel`, with its own translation cache) and the thread-safe type and value
/// renderers the capture's [`KernelView`] and renderer stand for.
#[derive(Clone, Copy)]
pub struct SecondThread<'a> {
    pub kernel: &'a guest_mem::Kernel,
    pub types: &'a (dyn crate::kernel::KernelTypes + Sync),
    pub renderer: Option<&'a (dyn ValueRenderer + Sync)>,
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
    /// Non-fatal problems, one line each: every `capture_notes` line, plus what is not
    /// a loss (e.g. why `vcpu_perf_at_freeze` is empty).
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
    /// When the deadline passes, if there is one.
    fn deadline_at(&self) -> Option<Instant> {
        self.deadline.map(|d| self.start + d)
    }
    fn passed(&self) -> bool {
        self.deadline.is_some_and(|d| self.start.elapsed() >= d)
    }
    fn elapsed_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Captures a frozen guest. Never fails: sections that cannot be read carry their
/// reason, `capture_notes` says what was lost, and `log` says more.
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
    run.phase("offsets+percpu");
    run.walk_maps_and_progs(&core, &pc, |run| {
        let found = run.sched_ext(&core, &pc);
        run.events(&found, &pc);
        run.tasks(&core, &found);
        run.runnable_ages(&found);
        found
    });
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
    notes: Notes,
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
        let mut notes = Notes::default();
        let parked = target.vcpu_regs.iter().flatten().count();
        if parked < target.vcpu_regs.len() {
            notes.push(format!(
                "vcpu_regs: {} of {} vCPUs without registers (not parked)",
                target.vcpu_regs.len() - parked,
                target.vcpu_regs.len()
            ));
        }
        Run {
            target,
            opts,
            k: target.kernel,
            clock: Clock::new(opts.deadline),
            log: vec![reasons::NO_VCPU_PERF.to_string()],
            notes,
            missing: MissingGroups::default(),
            r,
            truncated_at: None,
        }
    }

    /// A loss: in `capture_notes` and in the log.
    /// Ends a phase: its time, and the memory it read released from the resident set
    /// (a vmcore mapping; a no-op on live guest memory).
    fn phase(&mut self, name: &'static str) {
        self.clock.phase(name);
        self.k.mem.release_resident();
    }

    fn lost(&mut self, line: String) {
        self.notes.push(line.as_str());
        self.log.push(line);
    }

    /// Without the list/xarray/rhashtable offsets no walker can run: a report with the
    /// registers, the reason naming the group, and a note saying that nothing was walked.
    fn without_core_offsets(mut self, e: WalkError) -> CaptureOutput {
        self.missing.note(&e);
        self.lost(format!(
            "kernel BTF: no walker ran ({e}); every section from guest memory is empty"
        ));
        let mut out = FailureDumpReport::placeholder(self.missing.reason());
        out.is_placeholder = false;
        out.vcpu_regs = self.r.vcpu_regs;
        out.capture_notes = self.notes.into_lines();
        CaptureOutput {
            report: out,
            phases: self.clock.phases,
            log: self.log,
        }
    }

    fn per_cpu(&mut self) -> PerCpu {
        PerCpu::load(&self.k).unwrap_or_else(|e| {
            self.lost(format!(
                "per-CPU offsets: unreadable ({e}); runqueues, per-CPU DSQs, CPU time and event counters empty"
            ));
            PerCpu::default()
        })
    }

    /// Phases `scx_sched`, `rq` and `dsq`, then `scx_walker_unavailable`.
    fn sched_ext(&mut self, core: &CoreOffsets, pc: &PerCpu) -> SchedFound {
        let k = self.k;
        let so = self.noted(SchedOffsets::resolve(&k));
        let rqo = self.noted(RqOffsets::resolve(k.types));
        let dso = self.noted(DsqOffsets::resolve(k.types));
        let rqs = runqueues(&k, pc).unwrap_or_else(|e| {
            self.lost(format!(
                "runqueues: not located ({e}); rq_scx_states and local DSQs empty"
            ));
            Vec::new()
        });
        let (sch_ref, root_null) = match &so {
            Ok(so) => self.scx_sched(so),
            Err(_) => (None, None),
        };
        self.phase("scx_sched");
        if let Ok(rqo) = &rqo {
            self.rq_states(core, rqo, &rqs);
        }
        self.phase("rq");
        if let (Ok(dso), Ok(so)) = (&dso, &so) {
            let src = DsqSources {
                rqs: &rqs,
                local_dsq_off: rqo.as_ref().ok().map(|o| o.local_dsq),
                sch: sch_ref.as_ref().map(|s| s.kva),
            };
            self.dsq_states(core, pc, dso, so, &src);
        }
        self.phase("dsq");
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

    /// The attached scheduler (if any) and its state; with none attached, the reason
    /// (`scx_root` NULL, or the 6.12 globals' enable state disabled: [`crate::root`]).
    /// Values that decide the verdict are checked ([`crate::sched::doubts`]).
    fn scx_sched(&mut self, so: &SchedOffsets) -> (Option<SchedRef>, Option<&'static str>) {
        match scx_root(&self.k, so) {
            Ok(Some(s)) => {
                match sched_state(&self.k, so, s.kva) {
                    Ok(st) => {
                        for d in crate::sched::doubts(&self.k, so, &s, &st) {
                            self.lost(d);
                        }
                        if so.aborting.is_none() {
                            self.lost(reasons::ABORTING_NOT_IN_KERNEL.to_string());
                        }
                        self.r.scx_sched_state = Some(st);
                    }
                    Err(e) => self.lost(format!(
                        "scx_sched: unreadable ({e}); scx_sched_state absent"
                    )),
                }
                (Some(s), None)
            }
            Ok(None) => (None, Some(so.anchor.detached_reason())),
            Err(e) => {
                self.lost(format!(
                    "{}: unreadable ({e}); the scheduler's state, its DSQs and event counters absent",
                    so.anchor.what()
                ));
                (None, None)
            }
        }
    }

    fn rq_states(&mut self, core: &CoreOffsets, rqo: &RqOffsets, rqs: &[Kva]) {
        let mut tally = Tally::new("runqueues");
        for (cpu, rq) in rqs.iter().enumerate() {
            match rq_state(&self.k, core, rqo, cpu as u32, *rq) {
                Ok(s) => {
                    tally.ok();
                    if s.runnable_truncated {
                        self.lost(format!(
                            "rq {cpu}: runnable list truncated at {}",
                            crate::lists::LIST_CAP
                        ));
                    }
                    self.r.rq_scx_states.push(s);
                }
                Err(e) => tally.failed(format_args!("rq {cpu}: {e}")),
            }
        }
        if let Some(n) = tally.note() {
            self.lost(n);
        }
        if rqo.ops_qseq.is_none() && !self.r.rq_scx_states.is_empty() {
            self.lost(reasons::OPS_QSEQ_NOT_IN_KERNEL.to_string());
        }
        if let Some(n) = crate::rq::absent_fields_note(rqo)
            && !self.r.rq_scx_states.is_empty()
        {
            self.lost(n);
        }
    }

    /// Every DSQ found; losses are noted only while a scheduler is attached (without
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
            for e in errs {
                self.lost(e);
            }
        }
        // One tally per kind of DSQ (`local`, `bypass`, `global`, `user`).
        let mut tallies: Vec<(String, Tally)> = Vec::new();
        for l in locs {
            let kind = l.origin.split(' ').next().unwrap_or("").to_string();
            let i = match tallies.iter().position(|(k, _)| *k == kind) {
                Some(i) => i,
                None => {
                    tallies.push((kind.clone(), Tally::new(format!("{kind} DSQs"))));
                    tallies.len() - 1
                }
            };
            match dsq_state(&self.k, core, dso, l.kva, l.origin.clone()) {
                Ok(d) => {
                    tallies[i].1.ok();
                    if d.truncated {
                        self.lost(format!(
                            "DSQ {} {:#x}: task list truncated at {}",
                            d.origin,
                            d.id,
                            crate::lists::LIST_CAP
                        ));
                    } else if attached && d.nr as usize != d.task_kvas.len() {
                        self.lost(format!(
                            "DSQ {} {:#x}: nr says {} tasks, {} on its list",
                            d.origin,
                            d.id,
                            d.nr,
                            d.task_kvas.len()
                        ));
                    }
                    self.r.dsq_states.push(d);
                }
                Err(e) => tallies[i]
                    .1
                    .failed(format_args!("{} {}: {e}", l.origin, l.kva)),
            }
        }
        if attached {
            for (_, t) in tallies {
                if let Some(n) = t.note() {
                    self.lost(n);
                }
            }
        }
    }

    fn walker_unavailable(&self, detached: Option<&'static str>) -> Option<String> {
        if !self.missing.is_empty() {
            Some(self.missing.reason())
        } else if let Some(reason) = detached {
            Some(reason.to_string())
        } else if self.r.scx_sched_state.is_none() && self.r.rq_scx_states.is_empty() {
            Some(why::SCX_WALKER_NO_STATE.to_string())
        } else {
            None
        }
    }

    /// Phase `events`: the timeline taken while the guest ran, plus one sample now.
    fn events(&mut self, found: &SchedFound, pc: &PerCpu) {
        self.r.event_counter_timeline = self.opts.timeline.clone();
        let no_counters = self
            .k
            .types
            .offset_of("scx_event_stats", "SCX_EV_SELECT_CPU_FALLBACK")
            .is_none();
        if no_counters && found.sch_ref.is_some() {
            self.lost(reasons::EVENTS_NOT_IN_KERNEL.to_string());
        } else if let (Ok(so), Some(s)) = (&found.so, &found.sch_ref) {
            match EventOffsets::resolve(self.k.types, so)
                .and_then(|eo| sample_events(&self.k, &eo, pc, s.kva, self.opts.elapsed_ms))
            {
                Ok(sample) => self.r.event_counter_timeline.push(sample),
                Err(e) => self.lost(format!("event counters: no sample at the freeze ({e})")),
            }
        }
        self.phase("events");
    }

    /// Phase `tasks`: the ones the dump refers to first, then everything on scx_tasks.
    fn tasks(&mut self, core: &CoreOffsets, found: &SchedFound) {
        match TaskOffsets::resolve(self.k.types) {
            Ok(to) => self.enrich_tasks(core, &to, found),
            Err(e) => {
                self.lost(format!("tasks: not walked ({e})"));
                self.r.task_enrichments_unavailable = Some(why::NO_TASK_WALKER.into());
            }
        }
        self.phase("tasks");
    }

    fn enrich_tasks(&mut self, core: &CoreOffsets, to: &TaskOffsets, found: &SchedFound) {
        let k = self.k;
        let mut stacks = match StackScanner::new(&k) {
            Ok(s) => Some(s),
            Err(e) => {
                self.lost(format!("{}{e}", reasons::NO_STACK_SCAN_PREFIX));
                None
            }
        };
        let first = self.referenced_tasks(found, stacks.as_mut());
        let cap = self.opts.caps.tasks;
        let list = all_tasks_partial(&k, core, to, cap);
        for n in list.notes {
            self.lost(n);
        }
        if list.truncated {
            self.lost(format!("tasks: task list truncated at {cap}"));
        }
        let clock = &self.clock;
        let got = enrich_all_with(
            &k,
            to,
            first,
            list.tasks,
            cap,
            &|| clock.passed(),
            stacks.as_ref(),
        );
        if got.failed > 0 {
            self.lost(format!(
                "tasks: {} of {} unreadable ({})",
                got.failed,
                got.failed + got.tasks.len(),
                got.first_error.as_deref().unwrap_or("no reason")
            ));
        }
        if got.stopped {
            if self.clock.passed() {
                self.truncated_at.get_or_insert(self.clock.elapsed_us());
                self.lost(format!(
                    "tasks: the deadline passed after {} tasks; the rest not enriched",
                    got.tasks.len()
                ));
            } else {
                self.lost(format!("tasks: cap of {cap} enriched tasks reached"));
            }
        }
        self.check_task_count(got.tasks.iter().filter(|t| t.pid > 0).count());
        self.check_detached(&got.tasks);
        if got.tasks.is_empty() {
            self.r.task_enrichments_unavailable = Some(why::TASK_WALKER_ZERO_TASKS.into());
        }
        self.r.task_enrichments = got.tasks;
    }

    /// Each runnable task's wait (`runnable_age_jiffies`): `jiffies` minus its
    /// `scx.runnable_at`, for the tasks on a CPU's runnable list.
    fn runnable_ages(&mut self, found: &SchedFound) {
        let Ok(rqo) = &found.rqo else { return };
        let runnable: Vec<u64> = (self.r.rq_scx_states.iter())
            .flat_map(|q| q.runnable_task_kvas.iter().copied())
            .collect();
        if runnable.is_empty() {
            return;
        }
        let now = match jiffies_symbol(&self.k).and_then(|s| self.k.u64(s, "jiffies")) {
            Ok(n) => n,
            Err(e) => {
                return self.lost(format!(
                    "runnable ages: jiffies unreadable ({e}); no task's wait recorded"
                ));
            }
        };
        let mut tally = Tally::new("runnable ages");
        let mut ages = HashMap::new();
        for kva in runnable {
            match runnable_age(&self.k, rqo, Kva(kva), now) {
                Ok(age) => {
                    tally.ok();
                    ages.insert(kva, age);
                }
                Err(e) => tally.failed(format_args!("task {kva:#x}: {e}")),
            }
        }
        if let Some(n) = tally.note() {
            self.lost(n);
        }
        for t in &mut self.r.task_enrichments {
            if let Some(&age) = ages.get(&t.task_kva) {
                t.runnable_age_jiffies = Some(age);
            }
        }
    }

    /// `scx_root` NULL says no scheduler is attached; tasks in the ext scheduling class
    /// say one is (they go back to fair when it detaches): then the NULL is doubtful.
    fn check_detached(&mut self, tasks: &[dump_schema::TaskEnrichment]) {
        let detached = [why::SCX_ROOT_NULL, reasons::OPS_DISABLED];
        if !detached.contains(&self.r.scx_walker_unavailable.as_deref().unwrap_or("")) {
            return;
        }
        let ext = tasks.iter().filter(|t| t.sched_class == "ext").count();
        if ext > 0 {
            self.lost(format!(
                "scx_root: NULL (no scheduler attached), yet {ext} of {} tasks are in the ext scheduling class; scx_root doubtful, the scheduler's state, DSQs and event counters absent",
                tasks.len()
            ));
        }
    }

    /// Compares the tasks enriched with the kernel's own count (`nr_threads`: every
    /// thread but the idle tasks): fewer means some were lost on the way.
    fn check_task_count(&mut self, enriched: usize) {
        let Some(sym) = self.k.syms.symbol("nr_threads") else {
            return;
        };
        let Ok(n) = self.k.i32(sym, "nr_threads") else {
            return;
        };
        let n = usize::try_from(n).unwrap_or(0);
        if n > 0 && enriched < n.min(self.opts.caps.tasks) {
            self.lost(format!(
                "tasks: {enriched} of {n} threads enriched (nr_threads says {n})"
            ));
        }
    }

    /// Tasks the report already names: each CPU's current task (whose stack is scanned
    /// from its vCPU's registers, CPU n = vCPU n) and idle task (`init_task` for CPU 0 is
    /// on no task list), then runnable and queued tasks.
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
                if let Some(off) = rqo.idle
                    && let Ok(idle) = self.k.ptr(Kva(rq.0.wrapping_add(off)), "rq.idle")
                {
                    first.push(idle);
                }
            }
        }
        if let Some(init) = self.k.syms.symbol("init_task") {
            first.push(init);
        }
        for s in &self.r.rq_scx_states {
            first.extend(s.runnable_task_kvas.iter().map(|&t| Kva(t)));
        }
        for d in &self.r.dsq_states {
            first.extend(d.task_kvas.iter().map(|&t| Kva(t)));
        }
        first
    }

    /// Phases `cputime`, `numa` and `psi`: the system-wide sections.
    fn system(&mut self, core: &CoreOffsets, pc: &PerCpu) {
        let k = self.k;
        match CpuTimeOffsets::resolve(k.types).and_then(|o| per_cpu_time(&k, &o, pc)) {
            Ok(v) => self.r.per_cpu_time = v,
            Err(e) => self.lost(format!("per-CPU time: not read ({e})")),
        }
        self.phase("cputime");
        match NumaOffsets::resolve(k.types).and_then(|o| per_node_numa(&k, &o, pc)) {
            Ok(v) if !v.is_empty() => self.r.per_node_numa = v,
            Ok(_) => self.r.per_node_numa_unavailable = Some(reasons::NUMA_NO_NODES.into()),
            Err(e) => {
                self.lost(format!("NUMA: not read ({e})"));
                self.r.per_node_numa_unavailable =
                    Some(format!("{}{e}", reasons::NUMA_FAILED_PREFIX))
            }
        }
        self.phase("numa");
        match PsiOffsets::resolve(k.types).and_then(|o| cgroup_psi(&k, core, &o)) {
            Ok((v, trunc)) => {
                if trunc {
                    self.lost(format!("cgroup PSI: cgroup walk truncated at {CGROUP_CAP}"));
                }
                self.r.cgroup_psi = v;
            }
            Err(e) => self.lost(format!("cgroup PSI: not read ({e})")),
        }
        self.phase("psi");
    }

    /// Phase `sdt`: the scheduler's arena allocations.
    fn sdt(&mut self) {
        let clock = &self.clock;
        let sdt = sdt::capture_sdt(&self.r, self.target.renderer, &self.k, &|| clock.passed());
        self.r.sdt_allocations = sdt.allocations;
        self.r.scx_static_ranges = sdt.static_ranges;
        self.r.sdt_alloc_unavailable = sdt.unavailable;
        for l in sdt.log {
            self.lost(l);
        }
        if sdt.deadline_hit {
            self.truncated_at.get_or_insert(self.clock.elapsed_us());
            self.lost("sdt: the deadline stopped an allocator walk".into());
        }
        self.phase("sdt");
    }

    fn finish(mut self) -> CaptureOutput {
        self.r.dump_truncated_at_us = self.truncated_at;
        let details: Vec<String> = self.missing.details().to_vec();
        for d in details {
            self.lost(format!("missing offsets: {d}"));
        }
        self.r.capture_notes = self.notes.into_lines();
        CaptureOutput {
            report: self.r,
            phases: self.clock.phases,
            log: self.log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const B: u64 = 0xffff_ffff_8100_0000;

    /// The core types and the `scx_sched` members every capture reads.
    fn sched_types() -> FakeTypes {
        FakeTypes::core()
            .members(
                "scx_sched",
                &[
                    ("ops", 0),
                    ("aborting", 0x100),
                    ("bypass_depth", 0x104),
                    ("exit_kind", 0x108),
                    ("watchdog_timeout", 0x110),
                    ("dsq_hash", 0x200),
                ],
            )
            .member("sched_ext_ops", "name", 0)
    }

    /// One CPU (per-CPU offset 0) and `scx_root` pointing at `sch`.
    fn one_cpu(sch: u64) -> (FakeSyms, FakeMem) {
        let s = FakeSyms::default()
            .with("nr_cpu_ids", B)
            .with("__per_cpu_offset", B + 0x100)
            .with("scx_root", B + 0x200);
        let mut m = FakeMem::default();
        m.w32(B, 1);
        m.w64(B + 0x100, 0);
        m.w64(B + 0x200, sch);
        (s, m)
    }

    fn target<'a>(
        m: &'a FakeMem,
        s: &'a FakeSyms,
        t: &'a FakeTypes,
        vcpu_regs: Vec<Option<CpuRegs>>,
    ) -> Target<'a> {
        Target {
            kernel: KernelView {
                mem: m,
                syms: s,
                types: t,
            },
            renderer: None,
            vcpu_regs,
            second_thread: None,
        }
    }

    /// A kernel whose BTF lacks one rq member and every map/task type: the rq group is
    /// named in the stable reason, the other sections say why they are empty, and the
    /// capture still returns the vCPU registers.
    #[test]
    fn missing_groups_degrade_their_sections_only() {
        let t = sched_types().members("rq", &[("curr", 0x10), ("scx.nr_running", 0x20)]);
        let (s, m) = one_cpu(0); // no scheduler attached
        let s = s.with("runqueues", B + 0x1000);
        let regs = CpuRegs {
            rip: 0xffff_ffff_8100_1234,
            rsp: 0xffff_c900_0000_0ff0,
            cr3: 0x1000,
            ..Default::default()
        };
        let target = target(&m, &s, &t, vec![Some(regs), None]);
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

    /// A garbage `scx_sched` (0xff) and a user DSQ table with a broken chain: the state
    /// is kept but noted as doubtful (no known exit kind), the DSQs that were reachable
    /// are kept and the lost ones counted against `rhashtable.nelems`.
    #[test]
    fn garbage_and_broken_chains_are_noted_with_counts() {
        let t = sched_types().with_dsq();
        let sch = B + 0x10_000;
        let (s, mut m) = one_cpu(sch);
        m.write(sch, &[0xff; 0x200]);
        m.write(sch, b"garbage\0");
        // dsq_hash: tbl at +0x200 -> bucket table of 2 buckets, nelems 3.
        let tbl = B + 0x20_000;
        m.w64(sch + 0x200, tbl);
        m.w32(sch + 0x208, 3);
        m.w32(tbl, 2);
        m.w32(tbl + 4, 0);
        m.w64(tbl + 32, 0);
        let dsq = B + 0x30_000;
        m.w64(tbl + 64, dsq + 0x30); // bucket 0: one DSQ, chain ends (nulls marker)
        m.w64(dsq + 0x30, 1);
        m.w64(dsq + 0x10, dsq + 0x10); // empty task list
        m.w64(dsq + 0x28, 0x42);
        m.w64(tbl + 72, 0xdead_0000_0000); // bucket 1: unreadable
        let target = target(&m, &s, &t, vec![]);
        let out = capture(&target, &CaptureOptions::default());
        let r = &out.report;
        let st = r.scx_sched_state.as_ref().expect("state kept");
        assert_eq!(st.exit_kind, u32::MAX);
        let notes = &r.capture_notes;
        let has = |needle: &str| notes.iter().any(|n| n.contains(needle));
        assert!(
            has("scx_sched.exit_kind: 4294967295 is not a known exit kind"),
            "{notes:#?}"
        );
        assert!(
            has("scx_sched.aborting: byte 0xff is not a bool"),
            "{notes:#?}"
        );
        assert!(
            has("scx_sched.bypass_depth: -1 is implausible"),
            "{notes:#?}"
        );
        assert!(
            has("user DSQs: 2 of 3 unreadable (reading rhash_head.next"),
            "{notes:#?}"
        );
        assert_eq!(
            r.dsq_states.iter().filter(|d| d.origin == "user").count(),
            1,
            "the reachable DSQ is kept"
        );
        // Every note is in the log as well (a long one whole there).
        for n in notes {
            let head = n.trim_end_matches('…');
            assert!(
                out.log.iter().any(|l| l.starts_with(head)),
                "{n} not logged"
            );
        }
    }
}
