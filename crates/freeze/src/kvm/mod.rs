//! The native KVM engine: a small VMM with a freeze coordinator.
//!
//! A VM with N vCPUs, one thread each, guest RAM in a [`vm_memory::GuestMemoryMmap`] that is
//! handed out as [`GuestRam`] (the same mappings KVM runs the guest on: no copies), a COM1
//! serial console captured into a bounded [`ConsoleTail`], and Linux boot (bzImage, ELF
//! with the 64-bit boot protocol, ELF with the PVH entry) with an initramfs and a command
//! line, see [`LinuxBoot`]. Guests can also be started from code the caller put in guest
//! RAM ([`VmBuilder::start`]), which is how the tests run on hosts whose KVM cannot boot
//! Linux.
//!
//! # Freezing
//! [`Engine::freeze`] kicks every vCPU out of `KVM_RUN` (`immediate_exit` plus the
//! [`kick_signal`] sent to its thread); each vCPU captures its own registers
//! (`KVM_GET_REGS`/`KVM_GET_SREGS`) on its own thread and parks; the coordinator waits for
//! all acknowledgements until the timeout. vCPUs that did not acknowledge are `None` in the
//! [`FreezeOutcome`] (the capture session turns such an outcome into a degraded report).
//! kvmclock is read (`KVM_GET_CLOCK`) before the kick and written back
//! (`KVM_SET_CLOCK`) before the vCPUs resume, so guest time does not jump by the length of
//! the freeze. Freeze and thaw repeat any number of times. [`Engine::thaw`] returns once
//! every parked vCPU has left its park (so its latency includes the host scheduling each
//! vCPU thread, which dominates when vCPUs outnumber host CPUs).
//!
//! ```no_run
//! use std::time::Duration;
//! use freeze::Engine;
//! use freeze::kvm::{LinuxBoot, VmBuilder, VmConfig};
//! let boot = LinuxBoot {
//!     kernel: "vmlinuz".into(),
//!     initramfs: Some("initramfs.cpio".into()),
//!     cmdline: "console=ttyS0 panic=-1".into(),
//!     ..Default::default()
//! };
//! let config = VmConfig { vcpus: 2, mem_bytes: 1 << 30, ..Default::default() };
//! let mut vm = VmBuilder::new(config)?.boot_linux(&boot)?;
//! let outcome = vm.freeze(Duration::from_secs(1))?;
//! if !outcome.all_parked() {
//!     eprintln!("{} of {} vCPUs parked", outcome.parked(), outcome.vcpus.len());
//! }
//! vm.thaw()?;
//! # Ok::<(), freeze::EngineError>(())
//! ```
//!
//! # Breakpoints
//! [`KvmEngine`] implements [`crate::watchpoint::WatchEngine`] with the debug registers
//! (`KVM_SET_GUEST_DEBUG`), and also arms instruction breakpoints
//! ([`KvmEngine::arm_breakpoint`]): the vCPU that hits freezes the others. Whether the
//! host's KVM delivers data breakpoints is probed with [`probe_write_watch`]. See
//! `breakpoint.rs`.
//!
//! # Guest-physical layout
//! See [`layout`]: the VMM owns `0x500..0x1000` (GDT, IDT), `0x6000..0xf000` (PVH info,
//! zero page, identity page tables when asked for), `0x20000..0x30000` (command line) and
//! `0x9fc00..0xa0000` (MP table). Tiny guests should put code and data elsewhere.

mod acpi;
mod breakpoint;
mod console;
mod coordinator;
mod devices;
mod error;
pub mod layout;
mod linux;
mod mptable;
mod vcpu;
pub mod x86;

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{KVM_MP_STATE_RUNNABLE, KVM_PIT_SPEAKER_DUMMY, kvm_clock_data, kvm_mp_state};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

pub use breakpoint::{
    BreakpointHit, HwBreakpoint, probe_instruction_breakpoint, probe_write_watch,
};
pub use console::ConsoleTail;
pub use coordinator::GuestExit;
pub use devices::PioHandler;
pub use linux::{KernelFormat, LinuxBoot};
pub use x86::{CpuMode, PageTables};

use self::console::{COM1_IRQ, IrqLine, SerialDevice};
use self::coordinator::Control;
use self::devices::PioBus;
use self::vcpu::{RunMap, Vcpu};
use crate::{CpuRegs, Engine, EngineError, FreezeOutcome, GuestRam};

/// Most vCPUs a VM may have (the MP table and APIC IDs are 8-bit; the I/O APIC takes one).
pub const MAX_VCPUS: usize = 254;

/// How long [`Engine::thaw`] waits for parked vCPUs to leave their park.
const THAW_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The real-time signal used to kick vCPU threads out of `KVM_RUN` (`SIGRTMIN`). The engine
/// installs a no-op handler for it, process-wide, the first time a VM starts; nothing else in
/// the process should use this signal.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

fn install_kick_handler() -> Result<(), EngineError> {
    static RESULT: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = RESULT.get_or_init(|| {
        vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
            .map_err(|e| e.errno())
    });
    result.map_err(|errno| {
        error::io(
            "install the vCPU kick signal handler",
            std::io::Error::from_raw_os_error(errno),
        )
    })
}

/// Whether this host's KVM can run VMs at all: opens `/dev/kvm` and checks the capabilities
/// the engine needs. `Err` says what is missing. (Whether it can boot Linux is another
/// question, answered only by trying: see [`LinuxBoot`].)
pub fn probe() -> Result<(), EngineError> {
    let kvm = Kvm::new().map_err(|e| error::io("open /dev/kvm", e))?;
    check_caps(&kvm)
}

fn check_caps(kvm: &Kvm) -> Result<(), EngineError> {
    let api = kvm.get_api_version();
    if api != 12 {
        return Err(error::failed(
            "check KVM API version",
            format!("KVM API version {api}, expected 12"),
        ));
    }
    for (cap, name) in [
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
        (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(error::failed(
                "check KVM capabilities",
                format!("{name} is missing"),
            ));
        }
    }
    Ok(())
}

/// Shape of a VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Number of vCPUs, 1..=[`MAX_VCPUS`].
    pub vcpus: usize,
    /// Guest RAM in bytes (multiple of 4 KiB, at least [`layout::MIN_MEM_BYTES`]).
    pub mem_bytes: u64,
    /// How many console bytes to keep.
    pub console_tail_bytes: usize,
    /// Create the in-kernel interrupt controllers (PIC, I/O APIC, local APICs) and PIT, as
    /// Linux needs. Without them `HLT` exits to the VMM and the vCPU stays halted.
    pub irqchip: bool,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            vcpus: 1,
            mem_bytes: 256 << 20,
            console_tail_bytes: 64 << 10,
            irqchip: true,
        }
    }
}

/// How one vCPU starts when the caller provides the guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuStart {
    pub mode: CpuMode,
    /// General-purpose registers, RIP and RFLAGS (segment and control registers come from
    /// `mode`; the other fields are ignored).
    pub regs: CpuRegs,
}

/// A created VM whose RAM can be filled before its vCPUs start.
pub struct VmBuilder {
    kvm: Kvm,
    vm: VmFd,
    ram: GuestRam,
    config: VmConfig,
    pio: Option<Arc<dyn PioHandler>>,
    serial_irq: IrqLine,
}

impl VmBuilder {
    /// Opens `/dev/kvm`, creates the VM, allocates and registers guest RAM, and creates the
    /// interrupt controllers when configured.
    pub fn new(config: VmConfig) -> Result<Self, EngineError> {
        if !(1..=MAX_VCPUS).contains(&config.vcpus) {
            return Err(error::failed(
                "configure VM",
                format!(
                    "{} vCPUs requested; 1..={MAX_VCPUS} supported",
                    config.vcpus
                ),
            ));
        }
        let kvm = Kvm::new().map_err(|e| error::io("open /dev/kvm", e))?;
        check_caps(&kvm)?;
        let max = kvm.get_max_vcpus();
        if config.vcpus > max {
            return Err(error::failed(
                "configure VM",
                format!("{} vCPUs requested; this KVM allows {max}", config.vcpus),
            ));
        }
        let vm = kvm.create_vm().map_err(|e| error::io("KVM_CREATE_VM", e))?;
        vm.set_tss_address(layout::KVM_TSS_ADDRESS as usize)
            .map_err(|e| error::io("KVM_SET_TSS_ADDR", e))?;
        let ram = layout::create_guest_ram(config.mem_bytes)?;
        for (slot, region) in ram.iter().enumerate() {
            let mem_region = kvm_bindings::kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the region is a live mapping of exactly `memory_size` bytes owned by
            // `ram`; the engine keeps a clone of `ram` (and so the mapping) alive for as long
            // as the VM fd, which it drops first.
            unsafe { vm.set_user_memory_region(mem_region) }
                .map_err(|e| error::io("KVM_SET_USER_MEMORY_REGION", e))?;
        }
        let serial_irq = if config.irqchip {
            vm.create_irq_chip()
                .map_err(|e| error::io("KVM_CREATE_IRQCHIP", e))?;
            let pit = kvm_bindings::kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit)
                .map_err(|e| error::io("KVM_CREATE_PIT2", e))?;
            let evt = EventFd::new(EFD_NONBLOCK).map_err(|e| error::io("eventfd for COM1", e))?;
            vm.register_irqfd(&evt, COM1_IRQ)
                .map_err(|e| error::io("KVM_IRQFD (COM1)", e))?;
            IrqLine::Irqfd(evt)
        } else {
            IrqLine::None
        };
        Ok(Self {
            kvm,
            vm,
            ram,
            config,
            pio: None,
            serial_irq,
        })
    }

    /// Guest RAM, to put code and data in before starting.
    pub fn guest_ram(&self) -> &GuestRam {
        &self.ram
    }

    /// Adds a handler for ports the VMM does not emulate itself.
    pub fn pio_handler(mut self, handler: Arc<dyn PioHandler>) -> Self {
        self.pio = Some(handler);
        self
    }

    /// Starts vCPU `i` as `starts[i]` (one entry per vCPU) running the code the caller put
    /// in guest RAM. With an irqchip, every vCPU starts runnable (not waiting for a SIPI).
    pub fn start(self, starts: &[VcpuStart]) -> Result<KvmEngine, EngineError> {
        if starts.len() != self.config.vcpus {
            return Err(error::failed(
                "start vCPUs",
                format!(
                    "{} start states for {} vCPUs",
                    starts.len(),
                    self.config.vcpus
                ),
            ));
        }
        x86::write_gdt_idt(&self.ram)?;
        let mut fds = Vec::with_capacity(starts.len());
        for (i, start) in starts.iter().enumerate() {
            let fd = self.create_vcpu(i)?;
            x86::setup_sregs(&self.ram, &fd, start.mode)?;
            x86::setup_regs(&fd, &start.regs)?;
            if self.config.irqchip && i != 0 {
                fd.set_mp_state(kvm_mp_state {
                    mp_state: KVM_MP_STATE_RUNNABLE,
                })
                .map_err(|e| error::io("KVM_SET_MP_STATE (runnable)", e))?;
            }
            fds.push(fd);
        }
        self.launch(fds)
    }

    /// Loads and boots a Linux kernel: vCPU 0 enters the kernel, the others wait for the
    /// kernel's INIT/SIPI (found through the MP table). Needs `irqchip`.
    pub fn boot_linux(self, boot: &LinuxBoot) -> Result<KvmEngine, EngineError> {
        if !self.config.irqchip {
            return Err(error::failed(
                "boot Linux",
                "Linux needs the in-kernel irqchip (VmConfig::irqchip)",
            ));
        }
        let entry = linux::load(&self.ram, boot, self.config.vcpus)?;
        x86::write_gdt_idt(&self.ram)?;
        let mut fds = Vec::with_capacity(self.config.vcpus);
        for i in 0..self.config.vcpus {
            let fd = self.create_vcpu(i)?;
            if i == 0 {
                x86::setup_sregs(&self.ram, &fd, entry.mode)?;
                x86::setup_regs(&fd, &entry.regs)?;
            }
            fds.push(fd);
        }
        self.launch(fds)
    }

    fn create_vcpu(&self, i: usize) -> Result<VcpuFd, EngineError> {
        let fd = self
            .vm
            .create_vcpu(i as u64)
            .map_err(|e| error::io("KVM_CREATE_VCPU", e))?;
        let cpuid = x86::cpuid_for(&self.kvm, i as u8)?;
        fd.set_cpuid2(&cpuid)
            .map_err(|e| error::io("KVM_SET_CPUID2", e))?;
        x86::setup_boot_msrs(&fd)?;
        x86::setup_fpu(&fd)?;
        if self.config.irqchip {
            x86::setup_lapic(&fd)?;
        }
        Ok(fd)
    }

    fn launch(self, fds: Vec<VcpuFd>) -> Result<KvmEngine, EngineError> {
        install_kick_handler()?;
        let map_len = self
            .kvm
            .get_vcpu_mmap_size()
            .map_err(|e| error::io("KVM_GET_VCPU_MMAP_SIZE", e))?;
        let maps = fds
            .iter()
            .map(|fd| RunMap::new(fd, map_len))
            .collect::<Result<Vec<_>, _>>()?;
        let ctl = Arc::new(Control::new(maps, kick_signal()));
        let console = ConsoleTail::new(self.config.console_tail_bytes);
        let serial = SerialDevice::new(self.serial_irq, console.clone());
        let bus = Arc::new(PioBus::new(serial, self.pio));
        let clock_supported = self.vm.check_extension(Cap::AdjustClock);
        let guest_debug_supported = self.kvm.check_extension(Cap::SetGuestDebug);
        let mut engine = KvmEngine {
            vm: self.vm,
            _kvm: self.kvm,
            ram: self.ram,
            ctl: ctl.clone(),
            threads: Vec::with_capacity(fds.len()),
            console,
            frozen: None,
            clock_supported,
            guest_debug_supported,
            armed: None,
            perf: crate::perf::VcpuCounters::Unavailable("vCPU threads not started".into()),
        };
        // Each vCPU thread reports its thread id (for the perf counters) as it starts.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        for (id, fd) in fds.into_iter().enumerate() {
            let vcpu = Vcpu {
                id,
                fd,
                ctl: ctl.clone(),
                bus: bus.clone(),
                debug: Default::default(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("kvm-vcpu-{id}"))
                .spawn({
                    let tid_tx = tid_tx.clone();
                    move || {
                        let _ = tid_tx.send((id, crate::perf::gettid()));
                        vcpu.run()
                    }
                });
            match handle {
                Ok(h) => engine.threads.push(h),
                // Dropping `engine` stops and joins the threads started so far.
                Err(e) => return Err(error::io("spawn vCPU thread", e)),
            }
        }
        use std::os::unix::thread::JoinHandleExt;
        ctl.set_threads(
            engine
                .threads
                .iter()
                .map(|h| (h.as_pthread_t(), h.thread().clone()))
                .collect(),
        );
        drop(tid_tx);
        let mut tids = vec![0; engine.threads.len()];
        for _ in 0..tids.len() {
            match tid_rx.recv_timeout(Duration::from_secs(5)) {
                Ok((id, tid)) => tids[id] = tid,
                Err(_) => break,
            }
        }
        engine.perf = if tids.contains(&0) {
            crate::perf::VcpuCounters::Unavailable("a vCPU thread did not report its id".into())
        } else {
            crate::perf::VcpuCounters::open(&tids)
        };
        Ok(engine)
    }
}

/// Boots Linux and waits until its console shows `expect` (e.g. `"Linux version"`, which
/// needs `loglevel>=5`, or an init's first line). Whether a host's KVM can boot a kernel is
/// only known by trying, so this is the probe callers (the CLI's engine choice, tests) use:
/// `Err` says why not: the VMM could not start it, the guest stopped (e.g. `KVM internal
/// error ... emulation failure`, with the instruction bytes and RIP), or no output within
/// `budget`, with where vCPU 0 was at that point (frozen to read its registers).
pub fn boot_and_wait(
    config: VmConfig,
    boot: &LinuxBoot,
    expect: &str,
    budget: Duration,
) -> Result<KvmEngine, String> {
    let mut engine = VmBuilder::new(config)
        .and_then(|b| b.boot_linux(boot))
        .map_err(|e| format!("the VMM could not start the kernel: {e}"))?;
    let last_line = |text: &str| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    };
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline {
        if let Some(exit) = engine.exit_status() {
            return Err(format!(
                "the guest stopped before printing {expect:?}: {exit}; last console line: {:?}",
                last_line(&engine.console_tail())
            ));
        }
        if engine.console.wait_for(expect, Duration::from_millis(50)) {
            return Ok(engine);
        }
    }
    let at = match engine.freeze(Duration::from_secs(5)) {
        Ok(o) => o.vcpus[0].map_or("vCPU 0 did not park".to_string(), |r| {
            format!(
                "vCPU 0 at RIP {:#x} CR0 {:#x} CR3 {:#x}",
                r.rip, r.cr0, r.cr3
            )
        }),
        Err(e) => format!("freeze failed: {e}"),
    };
    Err(format!(
        "no {expect:?} on the console within {budget:?} ({at}); last console line: {:?}",
        last_line(&engine.console_tail())
    ))
}

struct Frozen {
    clock: Option<kvm_clock_data>,
}

/// A running VM. Dropping it stops every vCPU thread and releases every fd.
pub struct KvmEngine {
    // Field order is drop order: the VM fd goes before the RAM mapping it points into.
    vm: VmFd,
    _kvm: Kvm,
    ram: GuestRam,
    ctl: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
    console: ConsoleTail,
    /// Frozen by [`Engine::freeze`] or by a collected breakpoint hit. (A hit not yet
    /// collected keeps the guest frozen too: see [`Control::pending_hit`].)
    frozen: Option<Frozen>,
    clock_supported: bool,
    guest_debug_supported: bool,
    /// The breakpoint every vCPU has loaded.
    armed: Option<HwBreakpoint>,
    /// Host perf counters on the vCPU threads, from their start to each freeze.
    perf: crate::perf::VcpuCounters,
}

/// A handle that tells, from any thread, whether and how the guest exited (the engine
/// itself may be borrowed elsewhere, e.g. by a trigger watch).
#[derive(Clone)]
pub struct ExitWatch(Arc<Control>);

impl ExitWatch {
    /// How the guest exited, if it has.
    pub fn exit(&self) -> Option<GuestExit> {
        self.0.exit()
    }
}

impl KvmEngine {
    /// A cloneable, thread-safe view of [`KvmEngine::exit_status`].
    pub fn exit_watch(&self) -> ExitWatch {
        ExitWatch(self.ctl.clone())
    }

    /// The console tail (to wait for output, or read it whole).
    pub fn console(&self) -> &ConsoleTail {
        &self.console
    }

    /// How the guest exited, if it has.
    pub fn exit_status(&self) -> Option<GuestExit> {
        self.ctl.exit()
    }

    /// Waits at most `timeout` for the guest to exit.
    pub fn wait_exit(&self, timeout: Duration) -> Option<GuestExit> {
        self.ctl.wait_exit(timeout)
    }

    /// The guest's kvmclock now (`KVM_GET_CLOCK`), in nanoseconds.
    pub fn kvmclock_ns(&self) -> Result<u64, EngineError> {
        self.vm
            .get_clock()
            .map(|c| c.clock)
            .map_err(|e| error::io("KVM_GET_CLOCK", e))
    }

    fn stop_threads(&mut self) {
        self.ctl.stop_all();
        for h in self.threads.drain(..) {
            // A vCPU thread that panicked has nothing left to clean up.
            let _ = h.join();
        }
    }
}

impl Engine for KvmEngine {
    fn guest_ram(&self) -> GuestRam {
        self.ram.clone()
    }

    fn vcpu_count(&self) -> usize {
        self.threads.len()
    }

    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError> {
        if self.frozen.is_some() {
            return Err(error::failed("freeze", "the guest is already frozen"));
        }
        if let Some(exit) = self.ctl.exit() {
            return Err(EngineError::GuestExited(exit.to_string()));
        }
        let start = Instant::now();
        // A breakpoint hit nobody collected already froze the guest: this freeze takes it
        // over (and the guest's clock stopped at the hit).
        let pending = self.ctl.pending_hit();
        let clock = self.saved_clock(pending.map(|h| h.at))?;
        let epoch = self.ctl.request_pause();
        let acks = self.ctl.wait_parked(epoch, start + timeout);
        let elapsed = start.elapsed();
        self.frozen = Some(Frozen { clock });
        self.ctl.take_hit();
        let acks = match acks {
            Ok(acks) => acks,
            Err(exit) => {
                let _ = self.thaw();
                return Err(EngineError::GuestExited(exit.to_string()));
            }
        };
        self.freeze_outcome(acks, elapsed)
    }

    fn thaw(&mut self) -> Result<(), EngineError> {
        let clock = match self.frozen.take() {
            Some(frozen) => Ok(frozen.clock),
            // Frozen by a breakpoint hit nobody collected.
            None => match self.ctl.pending_hit() {
                Some(hit) => self.saved_clock(Some(hit.at)),
                None => return Ok(()),
            },
        };
        // Restore the clock before any vCPU runs again; resume even if that fails.
        let clock_result = match clock {
            Ok(Some(saved)) => self
                .vm
                .set_clock(&kvm_clock_data {
                    clock: saved.clock,
                    ..Default::default()
                })
                .map_err(|e| error::io("KVM_SET_CLOCK (restore kvmclock on thaw)", e)),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let still = self.ctl.resume(THAW_ACK_TIMEOUT);
        clock_result?;
        if !still.is_empty() {
            return Err(error::failed(
                "thaw",
                format!(
                    "vCPUs {still:?} did not resume within {} s",
                    THAW_ACK_TIMEOUT.as_secs()
                ),
            ));
        }
        Ok(())
    }

    fn is_frozen(&self) -> bool {
        self.frozen.is_some() || self.ctl.pending_hit().is_some()
    }

    fn console_tail(&self) -> String {
        self.console.text()
    }
}

impl KvmEngine {
    /// The outcome of a freeze from its acknowledgements; a vCPU that could not read its
    /// registers fails the freeze (and the guest is thawed).
    fn freeze_outcome(
        &mut self,
        acks: Vec<coordinator::Ack>,
        elapsed: Duration,
    ) -> Result<FreezeOutcome, EngineError> {
        let mut vcpus = Vec::with_capacity(acks.len());
        for (i, ack) in acks.into_iter().enumerate() {
            match ack {
                Some(Ok(regs)) => vcpus.push(Some(regs)),
                None => vcpus.push(None),
                Some(Err(e)) => {
                    let _ = self.thaw();
                    return Err(error::failed(
                        "capture vCPU registers",
                        format!("vCPU {i}: {e}"),
                    ));
                }
            }
        }
        Ok(FreezeOutcome {
            vcpus,
            elapsed,
            vcpu_perf: self.perf.read(),
        })
    }
}

impl Drop for KvmEngine {
    fn drop(&mut self) {
        self.stop_threads();
    }
}
