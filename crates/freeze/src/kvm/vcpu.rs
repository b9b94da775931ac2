//! vCPU threads: the run loop, exit handling, and the vCPU side of the freeze protocol.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use kvm_bindings::{
    KVM_GUESTDBG_INJECT_DB, KVM_INTERNAL_ERROR_EMULATION, KVM_SYSTEM_EVENT_CRASH,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, kvm_debug_exit_arch, kvm_run,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::breakpoint::{DR6_B0, DR6_BS, DebugRegs, HwBreakpoint};
use super::coordinator::{Control, GuestExit};
use super::devices::{PioAction, PioBus};
use super::error;
use super::x86::capture_regs;
use crate::EngineError;

/// A second mapping of a vCPU's `kvm_run` page, owned independently of the `VcpuFd`.
///
/// The coordinator writes `immediate_exit` from its own thread while the vCPU thread owns
/// the `VcpuFd` (and its mapping). Mapping the page again gives the coordinator a pointer
/// whose lifetime it controls: the mapping outlives the fd if need be, so a kick can never
/// touch unmapped memory, whatever order threads end in.
pub(crate) struct RunMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the only field accessed through it
// (`immediate_exit`) is accessed atomically.
unsafe impl Send for RunMap {}
// SAFETY: as above.
unsafe impl Sync for RunMap {}

impl RunMap {
    /// Maps the `kvm_run` structure of `vcpu` (`len` = `KVM_GET_VCPU_MMAP_SIZE`).
    pub fn new(vcpu: &VcpuFd, len: usize) -> Result<Self, EngineError> {
        use std::os::fd::AsRawFd;
        if len < std::mem::size_of::<kvm_run>() {
            return Err(error::failed(
                "map kvm_run",
                format!("KVM_GET_VCPU_MMAP_SIZE is {len}, smaller than struct kvm_run"),
            ));
        }
        // SAFETY: a fresh shared mapping of a vCPU fd at offset 0, which KVM documents as the
        // `kvm_run` area; no existing memory is affected; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(error::io(
                "map kvm_run for the freeze coordinator",
                std::io::Error::last_os_error(),
            ));
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| error::failed("map kvm_run", "mmap returned NULL"))?;
        Ok(Self { ptr, len })
    }

    fn immediate_exit(&self) -> &AtomicU8 {
        let offset = std::mem::offset_of!(kvm_run, immediate_exit);
        // SAFETY: the mapping is `len >= size_of::<kvm_run>()` bytes and lives as long as
        // `self`; a `u8` field has no alignment requirement beyond 1, which `AtomicU8` shares.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU8>() }
    }

    pub fn set_immediate_exit(&self, on: bool) {
        self.immediate_exit().store(u8::from(on), Ordering::SeqCst);
    }
}

impl Drop for RunMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`, once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One vCPU, moved onto its thread.
pub(crate) struct Vcpu {
    pub id: usize,
    pub fd: VcpuFd,
    pub ctl: Arc<Control>,
    pub bus: Arc<PioBus>,
    pub debug: VcpuDebug,
}

/// A vCPU's own view of its debug registers (only its thread issues `KVM_SET_GUEST_DEBUG`:
/// KVM wants vCPU ioctls from the thread that runs the vCPU, and never during `KVM_RUN`).
#[derive(Default)]
pub(crate) struct VcpuDebug {
    /// The generation of the coordinator's debug state last acknowledged.
    acked: u64,
    /// The breakpoint loaded as of `acked`.
    armed: Option<HwBreakpoint>,
    /// Stepping over the instruction breakpoint it stopped at: one single-step with the
    /// breakpoint off (an instruction breakpoint is a fault, so resuming at it would stop
    /// again; the emulator some hosts run guests in ignores RFLAGS.RF).
    stepping: bool,
    /// What KVM holds now (KVM starts with guest debugging off).
    loaded: DebugRegs,
}

impl VcpuDebug {
    /// Loads the coordinator's latest debug state (acknowledging it) or the step-over
    /// state, when it differs from what KVM holds. `Err`: a load the coordinator did not
    /// ask for failed (a step-over), and the vCPU cannot go on as asked.
    fn sync(&mut self, id: usize, fd: &VcpuFd, ctl: &Control) -> Result<(), String> {
        let request = (ctl.debug_generation() != self.acked).then(|| ctl.debug_request());
        let armed = request.map_or(self.armed, |(_, bp)| bp);
        let want = DebugRegs::new(armed, self.stepping);
        let result = if want == self.loaded {
            Ok(())
        } else {
            fd.set_guest_debug(&want.to_kvm(0))
                .map(|()| self.loaded = want)
                .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}"))
        };
        match request {
            Some((generation, bp)) => {
                if result.is_ok() {
                    self.armed = bp;
                }
                self.acked = generation;
                ctl.debug_applied(id, generation, result.err());
                Ok(())
            }
            None => result,
        }
    }
}

enum Next {
    Run,
    Halted,
    Debug(kvm_debug_exit_arch),
    Exit(GuestExit),
}

impl Vcpu {
    /// Runs until the guest exits or the engine stops.
    pub fn run(mut self) {
        loop {
            if self.ctl.stop_requested() {
                break;
            }
            let next = match self.debug.sync(self.id, &self.fd, &self.ctl) {
                Err(detail) => Next::Exit(GuestExit::Error {
                    vcpu: self.id,
                    detail,
                }),
                Ok(()) => match self.fd.run() {
                    Ok(exit) => handle_exit(self.id, &self.bus, exit),
                    Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                        self.on_kick();
                        Next::Run
                    }
                    Err(e) => Next::Exit(GuestExit::Error {
                        vcpu: self.id,
                        detail: format!("KVM_RUN failed: {e}"),
                    }),
                },
            };
            let next = match next {
                Next::Debug(arch) => self.on_debug(arch),
                other => other,
            };
            match next {
                Next::Run | Next::Debug(_) => {}
                Next::Halted => {
                    let Vcpu {
                        id, fd, ctl, debug, ..
                    } = &mut self;
                    ctl.halt(
                        *id,
                        || capture_regs(fd).map_err(|e| e.to_string()),
                        &mut || {
                            // Only coordinator requests change while halted; their
                            // failures go back to the coordinator.
                            let _ = debug.sync(*id, fd, ctl);
                        },
                    );
                }
                Next::Exit(exit) => {
                    let exit = self.describe(exit);
                    self.ctl.guest_exited(self.id, exit);
                    break;
                }
            }
        }
        self.ctl.thread_done(self.id);
    }

    /// Left `KVM_RUN` with `EINTR`: park if a freeze is on. Registers read here are
    /// consistent: `KVM_RUN` returned without a pending I/O completion.
    fn on_kick(&mut self) {
        if self.ctl.pause_requested() {
            let regs = capture_regs(&self.fd).map_err(|e| e.to_string());
            self.park(regs);
        }
        let map = self.ctl.run_map(self.id);
        map.set_immediate_exit(false);
        // A freeze requested between the check above and the clear would have set
        // `immediate_exit` before we cleared it: look again, after the clear.
        if self.ctl.pause_requested() || self.ctl.stop_requested() {
            map.set_immediate_exit(true);
        }
    }

    /// Parks for the current freeze; loads new debug states asked for while parked.
    fn park(&mut self, regs: Result<crate::CpuRegs, String>) {
        let Vcpu {
            id, fd, ctl, debug, ..
        } = self;
        ctl.park(*id, regs, &mut || {
            // Only coordinator requests change while parked; their failures go back to
            // the coordinator.
            let _ = debug.sync(*id, fd, ctl);
        });
    }

    /// Left `KVM_RUN` with a debug exit (`KVM_EXIT_DEBUG`). DR6 says why: B0, the armed
    /// breakpoint (slot 0, the only one used), or BS, the end of a step-over. Anything
    /// else is the guest's own #DB (with guest debugging on, KVM hands every #DB to the
    /// VMM), which goes back to the guest.
    fn on_debug(&mut self, arch: kvm_debug_exit_arch) -> Next {
        let at = Instant::now();
        if self.debug.stepping && arch.dr6 & DR6_BS != 0 {
            self.debug.stepping = false;
            return Next::Run;
        }
        let Some(bp) = self.debug.armed.filter(|_| arch.dr6 & DR6_B0 != 0) else {
            return self.reinject_debug();
        };
        if matches!(bp, HwBreakpoint::Execute(_)) {
            self.debug.stepping = true;
        }
        let regs = capture_regs(&self.fd).map_err(|e| e.to_string());
        self.ctl.breakpoint_hit(self.id, bp, at);
        if self.ctl.pause_requested() {
            self.park(regs);
        }
        Next::Run
    }

    /// Passes a #DB that is not the engine's back to the guest (`KVM_GUESTDBG_INJECT_DB`).
    /// The guest's DR6 does not get the debug exit's bits: a guest relying on them (its own
    /// single-stepping or hardware breakpoints while the engine's breakpoint is armed) may
    /// misread the event.
    fn reinject_debug(&mut self) -> Next {
        match self
            .fd
            .set_guest_debug(&self.debug.loaded.to_kvm(KVM_GUESTDBG_INJECT_DB))
        {
            Ok(()) => Next::Run,
            Err(e) => Next::Exit(GuestExit::Error {
                vcpu: self.id,
                detail: format!(
                    "could not pass the guest's own #DB back to it (KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_INJECT_DB): {e}"
                ),
            }),
        }
    }

    /// Adds what `kvm_run` and the registers say to an error exit.
    fn describe(&mut self, exit: GuestExit) -> GuestExit {
        let GuestExit::Error { vcpu, detail } = exit else {
            return exit;
        };
        let mut detail = detail;
        if detail.starts_with("KVM internal error") {
            // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, for which KVM fills the
            // `internal` member of the union.
            let internal = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal };
            let ndata = (internal.ndata as usize).min(internal.data.len());
            detail = format!(
                "KVM internal error, suberror {}{} (data {:x?})",
                internal.suberror,
                if internal.suberror == KVM_INTERNAL_ERROR_EMULATION {
                    " (emulation failure)"
                } else {
                    ""
                },
                &internal.data[..ndata]
            );
        }
        if let Ok(regs) = self.fd.get_regs() {
            detail.push_str(&format!(" at RIP {:#x}", regs.rip));
        }
        GuestExit::Error { vcpu, detail }
    }
}

fn handle_exit(id: usize, bus: &PioBus, exit: VcpuExit<'_>) -> Next {
    match exit {
        VcpuExit::IoIn(port, data) => {
            bus.pio_in(id, port, data);
            Next::Run
        }
        VcpuExit::IoOut(port, data) => match bus.pio_out(id, port, data) {
            PioAction::Continue => Next::Run,
            PioAction::Reset => Next::Exit(GuestExit::Reset {
                vcpu: id,
                how: "the i8042 reset line",
            }),
        },
        // No MMIO devices: reads see all-ones (absent device), writes are dropped.
        VcpuExit::MmioRead(_, data) => {
            data.fill(0xff);
            Next::Run
        }
        VcpuExit::MmioWrite(..) => Next::Run,
        VcpuExit::Hlt => Next::Halted,
        VcpuExit::Debug(arch) => Next::Debug(arch),
        VcpuExit::Intr | VcpuExit::IrqWindowOpen => Next::Run,
        VcpuExit::Shutdown => Next::Exit(GuestExit::Reset {
            vcpu: id,
            how: "a triple fault (KVM_EXIT_SHUTDOWN)",
        }),
        VcpuExit::SystemEvent(kind, _) => Next::Exit(match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => GuestExit::PowerOff { vcpu: id },
            KVM_SYSTEM_EVENT_RESET => GuestExit::Reset {
                vcpu: id,
                how: "KVM_SYSTEM_EVENT_RESET",
            },
            KVM_SYSTEM_EVENT_CRASH => GuestExit::Crash { vcpu: id },
            other => GuestExit::Error {
                vcpu: id,
                detail: format!("unhandled KVM system event {other}"),
            },
        }),
        VcpuExit::InternalError => Next::Exit(GuestExit::Error {
            vcpu: id,
            detail: "KVM internal error".into(),
        }),
        VcpuExit::FailEntry(reason, cpu) => Next::Exit(GuestExit::Error {
            vcpu: id,
            detail: format!("VM entry failed: hardware reason {reason:#x} on host CPU {cpu}"),
        }),
        other => Next::Exit(GuestExit::Error {
            vcpu: id,
            detail: format!("unhandled vCPU exit {other:?}"),
        }),
    }
}
