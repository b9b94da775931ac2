//! The guest of a `ktstr run` on either engine: QEMU (KVM or TCG accelerator) or the
//! native KVM engine; how one is chosen, booted, and asked what it printed and whether it
//! is still alive.
//!
//! # Engine choice (`--engine`)
//! - `qemu`: QEMU, whose own probe picks its accelerator (KVM when a QEMU+KVM boot of the
//!   kernel prints its banner, else TCG).
//! - `kvm`: the native engine (`freeze::kvm`), no probe: the run itself tells. A host whose
//!   KVM cannot run the kernel (e.g. an instruction its emulator does not handle) ends the
//!   run with a placeholder report ([`GuestExitInfo::engine_fault`]) and exit code 3. No
//!   usable `/dev/kvm` at all (or a VM the VMM cannot create) is exit code 3 with no
//!   report: no guest ever ran.
//! - `auto`: the native engine only when [`probe_native`] boots the kernel to its banner
//!   within [`NATIVE_PROBE_BUDGET`]; QEMU otherwise (as `qemu`). Should the native engine
//!   then still fail with an engine fault before anything was captured, the run starts
//!   over once under QEMU. (On the project's machines the probe fails in about 2 s: the
//!   nested `kvm_pvm` cannot emulate an instruction of the kernel's decompressor.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use freeze::kvm::{ExitWatch, GuestExit, KernelFormat, KvmEngine, LinuxBoot, VmBuilder, VmConfig};
use freeze::qemu::{AccelChoice, QemuConfig, QemuEngine, console::Console};
use freeze::watchpoint::{WatchEngine, WatchHit, WriteWatch};
use freeze::{Engine, EngineError, FreezeOutcome, GuestRam};
use guest_lab::ConsoleLog;

/// How long `--engine auto` lets the native engine try to print the kernel's banner.
pub const NATIVE_PROBE_BUDGET: Duration = Duration::from_secs(10);

/// Console bytes the native engine keeps (the phase protocol needs the early lines too).
const NATIVE_CONSOLE_BYTES: usize = 1 << 20;

/// What to boot.
pub(crate) struct BootSpec<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    pub cpus: u32,
    pub memory_mib: u64,
}

/// The running guest.
pub(crate) enum RunGuest {
    Qemu(QemuEngine),
    Kvm(KvmEngine),
}

impl RunGuest {
    /// QEMU with its accelerator probed (KVM if it boots the kernel, else TCG).
    pub fn boot_qemu(spec: &BootSpec<'_>) -> Result<RunGuest, EngineError> {
        let mut cfg = QemuConfig::new(
            spec.kernel,
            Some(spec.initramfs.to_path_buf()),
            spec.cmdline,
        );
        cfg.vcpus = spec.cpus;
        cfg.memory_mib = spec.memory_mib;
        cfg.accel = AccelChoice::Auto;
        // The exact-instant trigger: a write watchpoint on the scheduler's exit kind.
        cfg.gdbstub = true;
        QemuEngine::launch(&cfg).map(RunGuest::Qemu)
    }

    /// The native KVM engine, booting the kernel with the initramfs.
    pub fn boot_native(spec: &BootSpec<'_>) -> Result<RunGuest, EngineError> {
        let cfg = VmConfig {
            vcpus: spec.cpus as usize,
            mem_bytes: spec.memory_mib.saturating_mul(1 << 20),
            console_tail_bytes: NATIVE_CONSOLE_BYTES,
            irqchip: true,
        };
        let boot = LinuxBoot {
            kernel: spec.kernel.to_path_buf(),
            initramfs: Some(spec.initramfs.to_path_buf()),
            cmdline: spec.cmdline.to_string(),
            format: KernelFormat::Auto,
        };
        VmBuilder::new(cfg)?.boot_linux(&boot).map(RunGuest::Kvm)
    }

    /// One line for the log: which engine and why.
    pub fn describe(&self) -> String {
        match self {
            RunGuest::Qemu(q) => format!(
                "qemu, accelerator {} ({})",
                q.accel().accel,
                q.accel().reason
            ),
            RunGuest::Kvm(_) => "native KVM engine".into(),
        }
    }

    /// A short name: `qemu/tcg`, `qemu/kvm`, `kvm`.
    pub fn short_name(&self) -> String {
        match self {
            RunGuest::Qemu(q) => format!("qemu/{}", q.accel().accel),
            RunGuest::Kvm(_) => "kvm".into(),
        }
    }

    pub fn console(&self) -> GuestConsole {
        match self {
            RunGuest::Qemu(q) => GuestConsole::Qemu(q.console().clone()),
            RunGuest::Kvm(k) => GuestConsole::Kvm(k.console().clone()),
        }
    }

    pub fn exit_watch(&self) -> GuestExitWatch {
        match self {
            RunGuest::Qemu(q) => GuestExitWatch::Qemu(q.exited_flag()),
            RunGuest::Kvm(k) => GuestExitWatch::Kvm(k.exit_watch()),
        }
    }

    /// The phases the guest printed so far.
    pub fn console_log(&self) -> ConsoleLog {
        ConsoleLog::parse(&self.console().text())
    }

    /// How the guest ended, if it has. QEMU's exit status is reaped here.
    pub fn exit_info(&mut self) -> Option<GuestExitInfo> {
        match self {
            RunGuest::Qemu(q) => match q.try_exit_status() {
                Ok(Some(st)) => Some(GuestExitInfo {
                    what: format!("QEMU exited ({st})"),
                    code: st.code().unwrap_or(0),
                    engine_fault: false,
                }),
                _ if q.exited_flag().load(Ordering::Relaxed) => Some(GuestExitInfo {
                    what: "QEMU exited".into(),
                    code: 0,
                    engine_fault: false,
                }),
                _ => None,
            },
            RunGuest::Kvm(k) => k.exit_status().map(GuestExitInfo::from_kvm),
        }
    }
}

/// How a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuestExitInfo {
    pub what: String,
    /// The QEMU process's exit code; 0 for the native engine (no process).
    pub code: i32,
    /// The engine, not the guest, could not go on: a KVM internal error such as an
    /// instruction its emulator does not handle, a failed VM entry, an exit the VMM does
    /// not handle. The host cannot run this kernel; nothing the scheduler did.
    pub engine_fault: bool,
}

impl GuestExitInfo {
    fn from_kvm(e: GuestExit) -> GuestExitInfo {
        GuestExitInfo {
            engine_fault: matches!(e, GuestExit::Error { .. }),
            what: e.to_string(),
            code: 0,
        }
    }
}

/// The console of a running guest, readable from any thread.
#[derive(Clone)]
pub(crate) enum GuestConsole {
    Qemu(Console),
    Kvm(freeze::kvm::ConsoleTail),
}

impl GuestConsole {
    /// Everything kept so far (bounded by the engine), lines separated by `\n`.
    pub fn text(&self) -> String {
        match self {
            GuestConsole::Qemu(c) => c.lines_since(Default::default()).0.join("\n"),
            GuestConsole::Kvm(c) => c.text(),
        }
    }
}

/// Whether the guest exited, readable from any thread.
#[derive(Clone)]
pub(crate) enum GuestExitWatch {
    Qemu(Arc<AtomicBool>),
    Kvm(ExitWatch),
}

impl GuestExitWatch {
    pub fn exited(&self) -> Option<GuestExitInfo> {
        match self {
            GuestExitWatch::Qemu(f) => f.load(Ordering::Relaxed).then(|| GuestExitInfo {
                what: "QEMU exited".into(),
                code: 0,
                engine_fault: false,
            }),
            GuestExitWatch::Kvm(w) => w.exit().map(GuestExitInfo::from_kvm),
        }
    }
}

impl RunGuest {
    fn engine(&self) -> &dyn Engine {
        match self {
            RunGuest::Qemu(e) => e,
            RunGuest::Kvm(e) => e,
        }
    }

    fn engine_mut(&mut self) -> &mut dyn Engine {
        match self {
            RunGuest::Qemu(e) => e,
            RunGuest::Kvm(e) => e,
        }
    }
}

impl Engine for RunGuest {
    fn guest_ram(&self) -> GuestRam {
        self.engine().guest_ram()
    }
    fn vcpu_count(&self) -> usize {
        self.engine().vcpu_count()
    }
    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError> {
        self.engine_mut().freeze(timeout)
    }
    fn thaw(&mut self) -> Result<(), EngineError> {
        self.engine_mut().thaw()
    }
    fn is_frozen(&self) -> bool {
        self.engine().is_frozen()
    }
    fn console_tail(&self) -> String {
        self.engine().console_tail()
    }
}

impl RunGuest {
    /// Whether this guest can stop at a write, else the session polls: QEMU with its
    /// gdbstub; the native engine where the host's KVM delivers data breakpoints (a probe
    /// on a tiny guest says; some nested KVMs take DR7 and never stop the guest).
    pub fn can_watch(&self) -> Result<(), String> {
        match self {
            RunGuest::Qemu(q) if q.has_gdbstub() => Ok(()),
            RunGuest::Qemu(_) => Err("QEMU was started without its gdbstub".into()),
            RunGuest::Kvm(_) => freeze::kvm::probe_write_watch().map_err(|e| e.to_string()),
        }
    }
}

impl WatchEngine for RunGuest {
    fn arm_write_watch(&mut self, watch: WriteWatch) -> Result<(), EngineError> {
        match self {
            RunGuest::Qemu(e) => e.arm_write_watch(watch),
            RunGuest::Kvm(e) => e.arm_write_watch(watch),
        }
    }
    fn disarm_write_watch(&mut self) -> Result<(), EngineError> {
        match self {
            RunGuest::Qemu(e) => e.disarm_write_watch(),
            RunGuest::Kvm(e) => e.disarm_write_watch(),
        }
    }
    fn wait_write(&mut self, timeout: Duration) -> Result<Option<WatchHit>, EngineError> {
        match self {
            RunGuest::Qemu(e) => e.wait_write(timeout),
            RunGuest::Kvm(e) => e.wait_write(timeout),
        }
    }
}

/// Whether the native engine boots `kernel` on this host: `Ok` with how long the banner
/// took, `Err` with why not (no usable `/dev/kvm`, the VMM could not load the kernel, the
/// guest stopped — e.g. an emulation failure — or no banner within `budget`).
pub fn probe_native(kernel: &Path, budget: Duration) -> Result<Duration, String> {
    freeze::kvm::probe().map_err(|e| format!("KVM unusable: {e}"))?;
    let start = Instant::now();
    let boot = LinuxBoot {
        kernel: kernel.to_path_buf(),
        initramfs: None,
        // The banner is a notice: print it, early.
        cmdline: "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 loglevel=7".into(),
        format: KernelFormat::Auto,
    };
    let cfg = VmConfig {
        vcpus: 1,
        mem_bytes: 512 << 20,
        ..Default::default()
    };
    // The probe VM is dropped (torn down) either way.
    freeze::kvm::boot_and_wait(cfg, &boot, "Linux version", budget).map(|_| start.elapsed())
}
