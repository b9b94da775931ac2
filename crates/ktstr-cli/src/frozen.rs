//! Capturing a frozen guest (or a vmcore): find the kernel, load its BTF, run the walkers;
//! and writing a frozen guest out as an ELF vmcore.

use std::path::{Path, PathBuf};

use btf_walk::Btf;
use dump_schema::{FailureDumpReport, FailureDumpReportAny};
use freeze::perf::VcpuPerf;
use guest_mem::vmcore::writer::{VmcoreContents, write_vmcore};
use guest_mem::{CpuRegs, Kernel as GuestKernel, KernelOptions, PhysMem, SymbolTable, Vmcore};
use scx_walk::render::BtfRenderer;
use scx_walk::{CaptureOptions, CaptureOutput, KernelView, Target};

use crate::{Error, write_atomic};

/// Host-side fallbacks for what is normally read from guest memory.
#[derive(Debug, Clone, Default)]
pub struct CaptureSources {
    /// BTF of the guest kernel (raw BTF, ELF vmlinux or bzImage) instead of the
    /// `__start_BTF..__stop_BTF` section in guest memory.
    pub btf: Option<PathBuf>,
    /// A System.map instead of kallsyms decoded from guest memory.
    pub system_map: Option<PathBuf>,
}

impl CaptureSources {
    pub(crate) fn kernel_options(&self) -> Result<KernelOptions, Error> {
        let mut opts = KernelOptions::default();
        if let Some(p) = &self.system_map {
            let bytes = crate::input::read_bounded(p, crate::input::MAX_SYSTEM_MAP_BYTES)?;
            let text = String::from_utf8_lossy(&bytes);
            let table = SymbolTable::from_system_map(&text).map_err(|e| Error::SystemMap {
                path: p.clone(),
                detail: e.to_string(),
            })?;
            opts.system_map = Some(table);
        }
        Ok(opts)
    }

    pub(crate) fn load_btf(&self, k: &GuestKernel) -> Result<Btf, Error> {
        let btf = match &self.btf {
            Some(p) => {
                crate::input::check_size(p, crate::input::MAX_BTF_FILE_BYTES)?;
                Btf::from_file(p).map_err(|source| Error::BtfFile {
                    path: p.clone(),
                    source,
                })?
            }
            None => guest_btf(k)?,
        };
        check_kernel_btf(&btf).map_err(|detail| Error::Kernel {
            what: match &self.btf {
                Some(p) => format!("checking the BTF of {}", p.display()),
                None => "checking the kernel's BTF from guest memory".into(),
            },
            detail,
        })?;
        Ok(btf)
    }
}

/// Types every kernel's BTF declares and every walker starts from: a BTF without them
/// is damaged or not a kernel's, and a dump from it would only say "missing offset
/// groups" for every section.
const KERNEL_BTF_TYPES: [&str; 3] = ["list_head", "task_struct", "rq"];

fn check_kernel_btf(btf: &Btf) -> Result<(), String> {
    let missing: Vec<&str> = KERNEL_BTF_TYPES
        .iter()
        .copied()
        .filter(|t| btf.struct_by_name(t).is_err())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} types, no struct {}: damaged or not a kernel's BTF",
            btf.type_count(),
            missing.join(", struct ")
        ))
    }
}

/// The kernel's own BTF from guest memory.
pub(crate) fn guest_btf(k: &GuestKernel) -> Result<Btf, Error> {
    let kerr = |what: &str, e: &dyn std::fmt::Display| Error::Kernel {
        what: what.to_string(),
        detail: e.to_string(),
    };
    let start = k
        .require_symbol(btf_walk::START_BTF)
        .map_err(|e| kerr("locating the kernel's BTF", &e))?;
    let stop = k
        .require_symbol(btf_walk::STOP_BTF)
        .map_err(|e| kerr("locating the kernel's BTF", &e))?;
    Btf::from_guest(k, start, stop)
        .map_err(|e| kerr("reading the kernel's BTF from guest memory", &e))
}

/// Builds the kernel view of `phys` (VMCOREINFO scanned from RAM unless `opts` has it).
pub(crate) fn guest_kernel(phys: PhysMem, opts: KernelOptions) -> Result<GuestKernel, Error> {
    GuestKernel::new(phys, opts).map_err(|e| Error::Kernel {
        what: "finding the kernel in guest memory".into(),
        detail: e.to_string(),
    })
}

/// How the exit info of a capture was obtained (the report's `exit_info.source`) and
/// the vCPU that wrote the exit kind, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitSource {
    pub source: &'static str,
    pub trigger_cpu: Option<u32>,
}

impl ExitSource {
    pub const POLL: ExitSource = ExitSource {
        source: "poll",
        trigger_cpu: None,
    };
    pub const VMCORE: ExitSource = ExitSource {
        source: "vmcore",
        trigger_cpu: None,
    };
}

/// Runs every walker over a frozen kernel view, and reads the scheduler's exit info
/// (`exit_info`, when it has exited) as `exit`.
pub fn capture_frozen(
    k: &GuestKernel,
    btf: &Btf,
    vcpu_regs: Vec<Option<CpuRegs>>,
    opts: &CaptureOptions,
    exit: ExitSource,
) -> CaptureOutput {
    let renderer = BtfRenderer::new(btf);
    let target = Target {
        kernel: KernelView {
            mem: k,
            syms: k,
            types: btf,
        },
        renderer: Some(&renderer),
        vcpu_regs,
        second_thread: Some(scx_walk::SecondThread {
            kernel: k,
            types: btf,
            renderer: Some(&renderer),
        }),
    };
    let mut out = scx_walk::capture(&target, opts);
    // What finding the kernel replaced or doubted comes first: it explains the rest.
    prepend_notes(&mut out, k.caveats());
    let t0 = std::time::Instant::now();
    match scx_walk::exit_info::capture(&target.kernel, exit.source, exit.trigger_cpu) {
        Ok(info) => out.report.exit_info = info,
        Err(e) => {
            let line = format!("exit_info: not read ({e})");
            out.report.capture_notes.push(line.clone());
            out.log.push(line);
        }
    }
    out.phases.push(scx_walk::Phase {
        name: "exit_info",
        elapsed: t0.elapsed(),
    });
    out
}

/// Puts `lines` (caveats of the layers below the walkers) before the walkers' notes, in
/// the report and in the log.
fn prepend_notes(out: &mut CaptureOutput, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut notes = lines.to_vec();
    notes.append(&mut out.report.capture_notes);
    out.report.capture_notes = notes;
    out.log.extend(lines.iter().cloned());
}

/// [`capture_frozen`] of the guest frozen by `freeze`: its vCPU registers, and its host
/// perf counters put into the report ([`apply_vcpu_perf`]).
pub fn capture_freeze(
    k: &GuestKernel,
    btf: &Btf,
    freeze: &freeze::FreezeOutcome,
    opts: &CaptureOptions,
    exit: ExitSource,
) -> CaptureOutput {
    let mut out = capture_frozen(k, btf, freeze.vcpus.clone(), opts, exit);
    apply_vcpu_perf(&mut out, &freeze.vcpu_perf);
    out
}

/// Puts the engine's host perf counters of the vCPU threads (read at the freeze) into
/// the report, and replaces scx-walk's generic log line about them with what happened:
/// how many vCPU threads were sampled, or the precise reason none was (e.g.
/// `vcpu_perf_at_freeze absent: vCPU thread counters: perf_event_open(cycles) on thread
/// 1234: No such file or directory (os error 2)` on a host without a hardware PMU).
pub fn apply_vcpu_perf(out: &mut CaptureOutput, perf: &VcpuPerf) {
    out.log.retain(|l| l != scx_walk::reasons::NO_VCPU_PERF);
    match perf {
        VcpuPerf::Sampled(s) => {
            out.report.vcpu_perf_at_freeze = s.iter().map(|v| v.map(perf_sample)).collect();
            out.log.push(format!(
                "vcpu_perf_at_freeze: {} of {} vCPU threads sampled",
                s.iter().flatten().count(),
                s.len()
            ));
        }
        VcpuPerf::Absent(why) => {
            let line = format!("vcpu_perf_at_freeze absent: {why}");
            out.report.capture_notes.push(line.clone());
            out.log.push(line);
        }
    }
}

/// The wire format's sample of an engine's perf sample (the same counts).
fn perf_sample(s: freeze::perf::PerfSample) -> dump_schema::VcpuPerfSample {
    dump_schema::VcpuPerfSample {
        cycles: s.cycles,
        instructions: s.instructions,
        cache_misses: s.cache_misses,
        branch_misses: s.branch_misses,
        time_enabled_ns: s.time_enabled_ns,
        time_running_ns: s.time_running_ns,
        task_clock_ns: s.task_clock_ns,
    }
}

/// A report from a post-mortem vmcore (QEMU `dump-guest-memory`, kdump, or ours).
pub fn capture_vmcore(
    path: &Path,
    sources: &CaptureSources,
    opts: &CaptureOptions,
) -> Result<CaptureOutput, Error> {
    let core = Vmcore::open(path).map_err(|source| match source {
        guest_mem::VmcoreError::Io { source, .. } => Error::Read {
            path: path.to_path_buf(),
            source,
        },
        guest_mem::VmcoreError::NotRegular { kind, .. } => Error::NotRegular {
            path: path.to_path_buf(),
            kind,
        },
        source => Error::Vmcore {
            path: path.to_path_buf(),
            source,
        },
    })?;
    capture_core(&core, path, sources, opts)
}

/// [`capture_vmcore`] of an opened vmcore (`path` names it in errors): the whole
/// vmcore → report pipeline, also what the `capture` fuzz target drives.
pub fn capture_core(
    core: &Vmcore,
    path: &Path,
    sources: &CaptureSources,
    opts: &CaptureOptions,
) -> Result<CaptureOutput, Error> {
    let t = std::time::Instant::now();
    let k = core
        .kernel(sources.kernel_options()?)
        .map_err(|e| Error::Kernel {
            what: format!("{}: finding the kernel", path.display()),
            detail: e.to_string(),
        })?;
    let kernel = scx_walk::Phase {
        name: "kernel",
        elapsed: t.elapsed(),
    };
    let t = std::time::Instant::now();
    let btf = sources.load_btf(&k)?;
    // The BTF is parsed into our own tables: the pages it was read from need not stay.
    core.phys().release_resident();
    let btf_phase = scx_walk::Phase {
        name: "btf",
        elapsed: t.elapsed(),
    };
    let regs = core.cpus().iter().map(|r| Some(*r)).collect();
    let mut out = capture_frozen(&k, &btf, regs, opts, ExitSource::VMCORE);
    // The whole pipeline's phases, in order: finding the kernel, its BTF, then the walk.
    out.phases.splice(0..0, [kernel, btf_phase]);
    prepend_notes(&mut out, core.caveats());
    Ok(out)
}

/// Writes the frozen guest as an ELF vmcore (PT_LOAD per RAM range, NT_PRSTATUS per vCPU,
/// VMCOREINFO) to `out`, atomically. `k` supplies VMCOREINFO and the direct-map base.
pub fn export_vmcore(k: &GuestKernel, cpus: &[CpuRegs], out: &Path) -> Result<u64, Error> {
    let contents = VmcoreContents {
        vmcoreinfo: Some(k.vmcoreinfo()),
        cpus,
        page_offset: Some(k.page_offset_base()),
    };
    let mut written = 0;
    write_atomic(out, |w| {
        let mut w = w;
        written = write_vmcore(&mut w, k.phys(), &contents)?;
        Ok(())
    })?;
    Ok(written)
}

/// True when the report shows a scheduler error exit (`exit_kind` one of the known error
/// kinds, [`scx_walk::exit_kind::KNOWN`]), in the late snapshot for a dual report. An
/// `exit_kind` that is no exit kind (a damaged `scx_sched`: 4294967295) is not an error
/// exit: the dump's `capture_notes` say the state is doubtful, and
/// [`report_core_unread`] makes that exit code 4. A degraded report (the freeze did not
/// complete) counts as a failure too: something kept a vCPU from parking.
pub fn report_has_error_exit(r: &FailureDumpReportAny) -> bool {
    let single = |r: &FailureDumpReport| {
        r.scx_sched_state.as_ref().is_some_and(|s| {
            scx_walk::exit_kind::name(s.exit_kind).is_some()
                && scx_walk::exit_kind::is_error(s.exit_kind)
        }) || r.guest_setup_failure.is_some()
    };
    match r {
        FailureDumpReportAny::Single(r) => single(r),
        FailureDumpReportAny::Dual(d) => single(&d.late),
        FailureDumpReportAny::Degraded(_) => true,
    }
}

/// The core of a dump that could not be read at all, if any: the scheduler's state (a
/// scheduler is attached — `scx_root` is not NULL, or tasks are in the ext class — but
/// its `scx_sched` is unreadable, or reads as no known exit kind), every runqueue, or
/// every task — one word each (`scx_sched`, `runqueues`,
/// `tasks`). In the late snapshot for a dual report; `None` for a degraded report or a
/// placeholder (they have their own verdict). The CLI exits 4 for such a dump
/// ("capture incomplete"): it was written, with `capture_notes` saying what was lost.
pub fn report_core_unread(r: &FailureDumpReportAny) -> Option<Vec<&'static str>> {
    let r = match r {
        FailureDumpReportAny::Single(r) => r,
        FailureDumpReportAny::Dual(d) => &d.late,
        FailureDumpReportAny::Degraded(_) => return None,
    };
    if r.is_placeholder || r.guest_setup_failure.is_some() {
        return None;
    }
    let mut lost = Vec::new();
    // scx_root NULL means no scheduler, unless tasks are still in the ext class (then
    // the NULL itself is doubtful, and the dump's notes say so).
    // (On kernels without scx_root: scx_ops_enable_state_var says disabled.)
    let detached = [
        dump_schema::reasons::SCX_ROOT_NULL,
        scx_walk::reasons::OPS_DISABLED,
    ];
    let no_scheduler = detached.contains(&r.scx_walker_unavailable.as_deref().unwrap_or(""))
        && !r.task_enrichments.iter().any(|t| t.sched_class == "ext");
    let sched_ok = r
        .scx_sched_state
        .as_ref()
        .is_some_and(|s| scx_walk::exit_kind::name(s.exit_kind).is_some());
    if !no_scheduler && !sched_ok {
        lost.push("scx_sched");
    }
    if r.rq_scx_states.is_empty() {
        lost.push("runqueues");
    }
    if r.task_enrichments.is_empty() {
        lost.push("tasks");
    }
    (!lost.is_empty()).then_some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dump_schema::VcpuPerfSample;

    fn output() -> CaptureOutput {
        CaptureOutput {
            report: FailureDumpReport::default(),
            phases: Vec::new(),
            log: vec![
                "other".to_string(),
                scx_walk::reasons::NO_VCPU_PERF.to_string(),
            ],
        }
    }

    #[test]
    fn vcpu_perf_goes_into_the_report_or_the_log() {
        let mut out = output();
        let why = "vCPU thread counters: perf_event_open(cycles) on thread 7: No such file or directory (os error 2)";
        apply_vcpu_perf(&mut out, &VcpuPerf::Absent(why.into()));
        assert!(out.report.vcpu_perf_at_freeze.is_empty());
        assert_eq!(
            out.log,
            [
                "other".to_string(),
                format!("vcpu_perf_at_freeze absent: {why}")
            ]
        );
        assert_eq!(
            out.report.capture_notes,
            [format!("vcpu_perf_at_freeze absent: {why}")]
        );

        let mut out = output();
        let s = freeze::perf::PerfSample {
            cycles: 5,
            instructions: 6,
            cache_misses: 7,
            branch_misses: 8,
            time_enabled_ns: 10,
            time_running_ns: 11,
            task_clock_ns: Some(9),
        };
        apply_vcpu_perf(&mut out, &VcpuPerf::Sampled(vec![Some(s), None]));
        let wire = VcpuPerfSample {
            cycles: 5,
            instructions: 6,
            cache_misses: 7,
            branch_misses: 8,
            time_enabled_ns: 10,
            time_running_ns: 11,
            task_clock_ns: Some(9),
        };
        assert_eq!(out.report.vcpu_perf_at_freeze, vec![Some(wire), None]);
        assert_eq!(
            out.log[1],
            "vcpu_perf_at_freeze: 1 of 2 vCPU threads sampled"
        );
    }

    fn state(exit_kind: u32) -> dump_schema::ScxSchedState {
        dump_schema::ScxSchedState {
            exit_kind,
            ..Default::default()
        }
    }

    /// A full report: scheduler state, one runqueue, one task.
    fn whole(exit_kind: u32) -> FailureDumpReport {
        FailureDumpReport {
            scx_sched_state: Some(state(exit_kind)),
            rq_scx_states: vec![Default::default()],
            task_enrichments: vec![Default::default()],
            ..Default::default()
        }
    }

    #[test]
    fn an_unknown_exit_kind_is_no_error_exit_and_an_unread_core() {
        let any = |r| FailureDumpReportAny::Single(r);
        assert!(report_has_error_exit(&any(whole(1026))));
        assert_eq!(report_core_unread(&any(whole(1026))), None);
        // A page of 0xff: exit_kind 4294967295 is not "scheduler error".
        assert!(!report_has_error_exit(&any(whole(u32::MAX))));
        assert!(!report_has_error_exit(&any(whole(2000))));
        assert_eq!(
            report_core_unread(&any(whole(u32::MAX))),
            Some(vec!["scx_sched"])
        );
        // Nothing read at all.
        let empty = FailureDumpReport::default();
        assert_eq!(
            report_core_unread(&any(empty)),
            Some(vec!["scx_sched", "runqueues", "tasks"])
        );
        // No scheduler attached: no scheduler state is expected.
        let mut detached = whole(0);
        detached.scx_sched_state = None;
        detached.scx_walker_unavailable = Some(dump_schema::reasons::SCX_ROOT_NULL.into());
        assert_eq!(report_core_unread(&any(detached)), None);
        // Tasks lost, the rest read.
        let mut no_tasks = whole(0);
        no_tasks.task_enrichments.clear();
        assert_eq!(report_core_unread(&any(no_tasks)), Some(vec!["tasks"]));
    }
}
