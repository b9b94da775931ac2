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
        match &self.btf {
            Some(p) => {
                crate::input::check_size(p, crate::input::MAX_BTF_FILE_BYTES)?;
                Btf::from_file(p).map_err(|source| Error::BtfFile {
                    path: p.clone(),
                    source,
                })
            }
            None => guest_btf(k),
        }
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
    };
    let mut out = scx_walk::capture(&target, opts);
    let t0 = std::time::Instant::now();
    match scx_walk::exit_info::capture(&target.kernel, exit.source, exit.trigger_cpu) {
        Ok(info) => out.report.exit_info = info,
        Err(e) => out.log.push(format!("exit_info: {e}")),
    }
    out.phases.push(scx_walk::Phase {
        name: "exit_info",
        elapsed: t0.elapsed(),
    });
    out
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
        VcpuPerf::Absent(why) => out.log.push(format!("vcpu_perf_at_freeze absent: {why}")),
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
    let k = core
        .kernel(sources.kernel_options()?)
        .map_err(|e| Error::Kernel {
            what: format!("{}: finding the kernel", path.display()),
            detail: e.to_string(),
        })?;
    let btf = sources.load_btf(&k)?;
    let regs = core.cpus().iter().map(|r| Some(*r)).collect();
    Ok(capture_frozen(&k, &btf, regs, opts, ExitSource::VMCORE))
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

/// True when the report shows a scheduler error exit (`exit_kind >= SCX_EXIT_ERROR`), in
/// the late snapshot for a dual report. A degraded report (the freeze did not complete)
/// counts as a failure too: something kept a vCPU from parking.
pub fn report_has_error_exit(r: &FailureDumpReportAny) -> bool {
    let single = |r: &FailureDumpReport| {
        r.scx_sched_state
            .as_ref()
            .is_some_and(|s| scx_walk::exit_kind::is_error(s.exit_kind))
            || r.guest_setup_failure.is_some()
    };
    match r {
        FailureDumpReportAny::Single(r) => single(r),
        FailureDumpReportAny::Dual(d) => single(&d.late),
        FailureDumpReportAny::Degraded(_) => true,
    }
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
}
