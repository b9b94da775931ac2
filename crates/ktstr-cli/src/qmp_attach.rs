//! Attaching to a QEMU guest started by someone else: its QMP socket and its shared RAM
//! file (`-object memory-backend-file,share=on,mem-path=FILE`). Freeze with `stop`, read
//! registers with `info registers -a`, capture, `cont`.
//!
//! Host perf counters of QEMU's vCPU threads (`query-cpus-fast` thread ids) are opened
//! on attach and count for [`PERF_WINDOW`] before the `stop`: the report's
//! `vcpu_perf_at_freeze` is what each vCPU thread did just before the freeze (or the
//! log says why there is none).

use std::path::{Path, PathBuf};
use std::time::Duration;

use freeze::perf::VcpuCounters;
use freeze::qemu::QmpClient;
use guest_mem::ramfile::{QemuMachine, map_ram_file};
use guest_mem::{CpuRegs, PhysMem};
use scx_walk::{CaptureOptions, CaptureOutput};

use crate::Error;
use crate::frozen::{CaptureSources, apply_vcpu_perf, capture_frozen, export_vmcore, guest_kernel};

/// What to attach to.
#[derive(Debug, Clone)]
pub struct QmpAttachOptions {
    pub qmp: PathBuf,
    pub ram: PathBuf,
    /// How QEMU laid the RAM file out around the PCI hole.
    pub machine: QemuMachine,
    pub sources: CaptureSources,
    /// Also write the frozen guest as an ELF vmcore here.
    pub vmcore_out: Option<PathBuf>,
}

const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the vCPU threads' perf counters count before the freeze.
pub const PERF_WINDOW: Duration = Duration::from_millis(100);

/// Resumes the guest when dropped, so every path out of the capture (errors, panics in the
/// walkers) thaws it — unless it was already paused when we came.
struct Resume<'a> {
    qmp: &'a mut QmpClient,
    armed: bool,
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.qmp.execute_timeout("cont", None, QMP_TIMEOUT);
        }
    }
}

fn qmp_err(step: &'static str) -> impl FnOnce(freeze::qemu::QmpError) -> Error {
    move |e| Error::Qmp {
        step,
        detail: e.to_string(),
    }
}

/// Freezes the guest behind `opts.qmp`, captures it from `opts.ram`, thaws it.
pub fn capture_qmp(
    opts: &QmpAttachOptions,
    capture: &CaptureOptions,
) -> Result<CaptureOutput, Error> {
    let mut qmp = QmpClient::connect(&opts.qmp, Duration::from_secs(5))
        .map_err(|e| Error::Usage(format!("{}: cannot attach to QMP: {e}", opts.qmp.display())))?;
    let phys = ram_phys(&opts.ram, opts.machine)?;
    let was_running = qmp.run_state().map_err(qmp_err("query-status"))? == "running";
    let counters = freeze::qemu::open_vcpu_counters(&mut qmp);
    if was_running && matches!(counters, VcpuCounters::Counting(_)) {
        std::thread::sleep(PERF_WINDOW);
    }
    qmp.execute_timeout("stop", None, QMP_TIMEOUT)
        .map_err(qmp_err("stop"))?;
    let perf = counters.read();
    let guard = Resume {
        qmp: &mut qmp,
        armed: was_running,
    };
    let vcpus = freeze::qemu::read_registers(guard.qmp).map_err(|e| Error::Qmp {
        step: "info registers",
        detail: e.to_string(),
    })?;
    let cpus: Vec<CpuRegs> = vcpus.iter().flatten().copied().collect();
    let mut kopts = opts.sources.kernel_options()?;
    kopts.cpus = cpus.clone();
    let k = guest_kernel(phys, kopts)?;
    let btf = opts.sources.load_btf(&k)?;
    let mut out = capture_frozen(&k, &btf, vcpus, capture, crate::ExitSource::POLL);
    apply_vcpu_perf(&mut out, &perf);
    if let Some(p) = &opts.vmcore_out {
        export_vmcore(&k, &cpus, p)?;
    }
    drop(guard);
    Ok(out)
}

/// Maps a QEMU RAM file read-only as guest-physical memory.
pub(crate) fn ram_phys(path: &Path, machine: QemuMachine) -> Result<PhysMem, Error> {
    let len = std::fs::metadata(path)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let ram = map_ram_file(path, &machine.layout(len)).map_err(|source| Error::RamFile {
        path: path.to_path_buf(),
        source,
    })?;
    PhysMem::from_guest_memory(&ram).map_err(|e| Error::Kernel {
        what: format!("{}: mapping guest RAM", path.display()),
        detail: e.to_string(),
    })
}
