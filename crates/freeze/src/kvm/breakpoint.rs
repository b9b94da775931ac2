//! Hardware breakpoints on the native KVM engine: write watchpoints (the exact-instant
//! trigger, [`WatchEngine`]) and instruction breakpoints, with the debug registers loaded
//! through `KVM_SET_GUEST_DEBUG` (`KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP`).
//!
//! Every vCPU loads the same state on its own thread (see `coordinator.rs`). The vCPU that
//! touches the address leaves `KVM_RUN` with `KVM_EXIT_DEBUG`, DR6.B0 set; it records the
//! hit and freezes the others, as [`Engine::freeze`] does. A data breakpoint is a trap: the
//! writer stops just past the writing instruction, and continuing needs nothing more. An
//! instruction breakpoint is a fault: the vCPU stops at the instruction, and on thaw steps
//! over it once with the breakpoint off before loading it again.
//!
//! While a breakpoint is armed, the guest's own hardware breakpoints are inactive (KVM uses
//! the VMM's DR7), and its own #DB exceptions are handed back to it without their DR6 bits.
//!
//! # Hosts that cannot
//! Whether a KVM delivers data breakpoints is known only by trying: [`probe_write_watch`].
//! `kvm_pvm` (the nested KVM of the project's build machines) reports
//! `KVM_CAP_SET_GUEST_DEBUG` and takes the state, but a guest's write to the watched address
//! never exits; instruction breakpoints and single-steps do. That is what KVM's instruction
//! emulator does (it checks instruction breakpoints only), and the guest there runs through
//! the emulator (which is also why Linux cannot boot on it).

use std::time::{Duration, Instant};

use kvm_bindings::{
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, kvm_clock_data,
    kvm_guest_debug,
};
use vm_memory::{Bytes, GuestAddress};

use super::{CpuMode, Frozen, KvmEngine, PageTables, VcpuStart, VmBuilder, VmConfig, error};
use crate::watchpoint::{WatchEngine, WatchHit, WatchLen, WriteWatch};
use crate::{CpuRegs, Engine, EngineError, FreezeOutcome};

// DR7 (Intel SDM Vol. 3, "Debug Registers"): L0 enables breakpoint 0 (local); bit 10 is
// reserved and reads as 1; R/W0 (bits 16–17) is the condition: 00 instruction execution,
// 01 data writes, 10 I/O, 11 data reads or writes; LEN0 (bits 18–19) the size: 00 1 byte,
// 01 2 bytes, 10 8 bytes, 11 4 bytes (instruction breakpoints: 00). The address in DR0 is
// linear and aligned to the size.
const DR7_L0: u64 = 1;
const DR7_FIXED_1: u64 = 1 << 10;
const DR7_RW0_SHIFT: u32 = 16;
const DR7_LEN0_SHIFT: u32 = 18;
const DR7_RW_EXECUTE: u64 = 0b00;
const DR7_RW_WRITE: u64 = 0b01;

// DR6 as KVM reports it in a debug exit (bits set when true): B0 (bit 0) breakpoint 0
// matched; BS (bit 14) a single-step.
pub(crate) const DR6_B0: u64 = 1;
pub(crate) const DR6_BS: u64 = 1 << 14;

/// How long arming waits for every vCPU to load the debug registers.
const DEBUG_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a hit the engine waits for the other vCPUs to park.
const HIT_PARK_TIMEOUT: Duration = Duration::from_secs(5);

/// A hardware breakpoint (debug-register slot 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwBreakpoint {
    /// Stop just past any instruction that writes the watched bytes.
    Write(WriteWatch),
    /// Stop at the instruction at this linear address, before it runs. (On thaw the vCPU
    /// single-steps over it; a guest taking an interrupt on that step runs the
    /// instruction after the handler, and stops at it once more.)
    Execute(u64),
}

impl HwBreakpoint {
    /// The linear address in DR0.
    pub fn addr(self) -> u64 {
        match self {
            HwBreakpoint::Write(w) => w.addr,
            HwBreakpoint::Execute(addr) => addr,
        }
    }

    /// DR7 arming this breakpoint in slot 0.
    pub fn dr7(self) -> u64 {
        let (rw, len) = match self {
            HwBreakpoint::Write(w) => (
                DR7_RW_WRITE,
                match w.len {
                    WatchLen::B1 => 0b00,
                    WatchLen::B2 => 0b01,
                    WatchLen::B8 => 0b10,
                    WatchLen::B4 => 0b11,
                },
            ),
            HwBreakpoint::Execute(_) => (DR7_RW_EXECUTE, 0b00),
        };
        DR7_L0 | DR7_FIXED_1 | rw << DR7_RW0_SHIFT | len << DR7_LEN0_SHIFT
    }
}

/// The debug state a vCPU asks KVM for (comparable, so that a vCPU issues the ioctl only
/// when it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DebugRegs {
    control: u32,
    dr0: u64,
    dr7: u64,
}

impl DebugRegs {
    /// `breakpoint` armed; while `stepping` over an instruction breakpoint, a single-step
    /// with no breakpoint instead. Neither: guest debugging off (KVM's initial state).
    pub fn new(breakpoint: Option<HwBreakpoint>, stepping: bool) -> Self {
        match breakpoint {
            _ if stepping => DebugRegs {
                control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP,
                dr0: 0,
                dr7: 0,
            },
            Some(bp) => DebugRegs {
                control: KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP,
                dr0: bp.addr(),
                dr7: bp.dr7(),
            },
            None => DebugRegs::default(),
        }
    }

    /// The ioctl argument, with `extra` control bits (e.g. `KVM_GUESTDBG_INJECT_DB`).
    pub fn to_kvm(self, extra: u32) -> kvm_guest_debug {
        let mut dbg = kvm_guest_debug {
            control: self.control | extra,
            ..Default::default()
        };
        dbg.arch.debugreg[0] = self.dr0;
        dbg.arch.debugreg[7] = self.dr7;
        dbg
    }
}

/// A vCPU stopped at the armed breakpoint; the guest is frozen until [`Engine::thaw`].
#[derive(Debug, Clone, PartialEq)]
pub struct BreakpointHit {
    pub breakpoint: HwBreakpoint,
    /// The vCPU that took it.
    pub vcpu: usize,
    /// Every vCPU's registers at the stop; `elapsed` runs from the hitting vCPU's debug
    /// exit to the last vCPU parked.
    pub freeze: FreezeOutcome,
}

impl KvmEngine {
    /// Arms `breakpoint` on every vCPU (replacing any armed one); the guest may be running
    /// or frozen. Returns once every vCPU has loaded it.
    pub fn arm_breakpoint(&mut self, breakpoint: HwBreakpoint) -> Result<(), EngineError> {
        self.set_breakpoint(Some(breakpoint))
    }

    /// Removes the armed breakpoint from every vCPU.
    pub fn disarm_breakpoint(&mut self) -> Result<(), EngineError> {
        self.set_breakpoint(None)
    }

    /// The armed breakpoint, if any.
    pub fn armed_breakpoint(&self) -> Option<HwBreakpoint> {
        self.armed
    }

    fn set_breakpoint(&mut self, breakpoint: Option<HwBreakpoint>) -> Result<(), EngineError> {
        const STEP: &str = "load the debug registers (KVM_SET_GUEST_DEBUG) on every vCPU";
        if let Some(exit) = self.ctl.exit() {
            return Err(EngineError::GuestExited(exit.to_string()));
        }
        if breakpoint.is_some() && !self.guest_debug_supported {
            return Err(error::failed(
                STEP,
                "this KVM lacks KVM_CAP_SET_GUEST_DEBUG",
            ));
        }
        let generation = self.ctl.request_debug(breakpoint);
        match self
            .ctl
            .wait_debug_applied(generation, Instant::now() + DEBUG_ACK_TIMEOUT)
        {
            Ok(()) => {
                self.armed = breakpoint;
                Ok(())
            }
            Err(detail) => {
                if breakpoint.is_some() {
                    // Leave no vCPU with the breakpoint that only some of them took.
                    let generation = self.ctl.request_debug(None);
                    let _ = self
                        .ctl
                        .wait_debug_applied(generation, Instant::now() + DEBUG_ACK_TIMEOUT);
                    self.armed = None;
                }
                Err(error::failed(STEP, detail))
            }
        }
    }

    /// Waits at most `timeout` for a vCPU to hit the armed breakpoint. `Ok(Some(hit))`:
    /// the guest is frozen at the hit (it may have hit before this call: a hit keeps the
    /// guest frozen until collected here and thawed). `Ok(None)`: no hit in time, the
    /// guest still runs. An error when the guest is frozen or nothing is armed.
    pub fn wait_breakpoint(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<BreakpointHit>, EngineError> {
        const STEP: &str = "wait for a breakpoint hit";
        if self.frozen.is_some() {
            return Err(error::failed(STEP, "the guest is frozen (thaw it first)"));
        }
        if let Some(exit) = self.ctl.exit() {
            return Err(EngineError::GuestExited(exit.to_string()));
        }
        if self.armed.is_none() && self.ctl.pending_hit().is_none() {
            return Err(error::failed(STEP, "no breakpoint is armed"));
        }
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        let collected = match self.ctl.wait_hit(deadline, HIT_PARK_TIMEOUT) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(exit) => return Err(EngineError::GuestExited(exit.to_string())),
        };
        // On failure the hit stays pending: the guest stays frozen and `thaw` resumes it.
        let clock = self.saved_clock(Some(collected.record.at))?;
        self.ctl.take_hit();
        self.frozen = Some(Frozen { clock });
        let elapsed = collected
            .all_parked_at
            .saturating_duration_since(collected.record.at);
        let freeze = self.freeze_outcome(collected.acks, elapsed)?;
        Ok(Some(BreakpointHit {
            breakpoint: collected.record.breakpoint,
            vcpu: collected.record.vcpu,
            freeze,
        }))
    }

    /// kvmclock as it was at `at` (now, when `None`), estimated from the clock now minus
    /// the host time since; `None` when the VM has no adjustable clock.
    pub(super) fn saved_clock(
        &self,
        at: Option<Instant>,
    ) -> Result<Option<kvm_clock_data>, EngineError> {
        if !self.clock_supported {
            return Ok(None);
        }
        let mut clock = self
            .vm
            .get_clock()
            .map_err(|e| error::io("KVM_GET_CLOCK (save kvmclock at the freeze)", e))?;
        if let Some(at) = at {
            let since = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            clock.clock = clock.clock.saturating_sub(since);
        }
        Ok(Some(clock))
    }
}

impl WatchEngine for KvmEngine {
    fn arm_write_watch(&mut self, watch: WriteWatch) -> Result<(), EngineError> {
        self.arm_breakpoint(HwBreakpoint::Write(watch))
    }

    fn disarm_write_watch(&mut self) -> Result<(), EngineError> {
        self.disarm_breakpoint()
    }

    fn wait_write(&mut self, timeout: Duration) -> Result<Option<WatchHit>, EngineError> {
        const STEP: &str = "wait for a watched write";
        if let Some(HwBreakpoint::Execute(addr)) = self.armed
            && self.ctl.pending_hit().is_none()
        {
            return Err(error::failed(
                STEP,
                format!("an instruction breakpoint ({addr:#x}) is armed, not a write watch"),
            ));
        }
        let Some(hit) = self.wait_breakpoint(timeout)? else {
            return Ok(None);
        };
        match hit.breakpoint {
            HwBreakpoint::Write(watch) => Ok(Some(WatchHit {
                watch,
                vcpu: Some(hit.vcpu),
                freeze: hit.freeze,
            })),
            HwBreakpoint::Execute(addr) => Err(error::failed(
                STEP,
                format!(
                    "vCPU {} stopped at the instruction breakpoint {addr:#x}, not at a write (the guest is frozen)",
                    hit.vcpu
                ),
            )),
        }
    }
}

/// How long a probe waits for its guest to hit the breakpoint (it does within
/// microseconds where breakpoints work).
const PROBE_WAIT: Duration = Duration::from_secs(2);
const PROBE_CODE: u64 = 0x1_0000;
const PROBE_DATA: u64 = 0x1_1000;

/// Whether this host's KVM stops a guest at a write to a watched address (what
/// [`WatchEngine`] needs): runs a one-vCPU guest that writes a watched quadword in a loop.
/// `Err` says why not, precisely (e.g. the guest wrote the address N times without a debug
/// exit, while an instruction breakpoint in the same guest does stop it).
pub fn probe_write_watch() -> Result<(), EngineError> {
    const STEP: &str = "probe write watchpoints";
    let Some(watch) = WriteWatch::new(PROBE_DATA, WatchLen::B8) else {
        return Err(error::failed(STEP, "probe address not aligned"));
    };
    match probe_breakpoint(HwBreakpoint::Write(watch))? {
        ProbeResult::Hit => Ok(()),
        ProbeResult::NoHit { writes } => {
            let instruction = match probe_breakpoint(HwBreakpoint::Execute(PROBE_CODE)) {
                Ok(ProbeResult::Hit) => {
                    "; an instruction breakpoint in the same guest does stop it, so this KVM \
                     runs the guest's instructions in its emulator, which checks instruction \
                     breakpoints only (as kvm_pvm does)"
                        .to_string()
                }
                Ok(ProbeResult::NoHit { .. }) => {
                    "; an instruction breakpoint does not stop it either".to_string()
                }
                Err(e) => format!("; the instruction-breakpoint probe failed: {e}"),
            };
            Err(error::failed(
                STEP,
                format!(
                    "KVM_SET_GUEST_DEBUG took a DR7 write watchpoint (DR0 {PROBE_DATA:#x}, \
                     DR7 {:#x}), but the guest wrote the address {writes} times in {} ms \
                     without a debug exit{instruction}",
                    HwBreakpoint::Write(watch).dr7(),
                    PROBE_WAIT.as_millis()
                ),
            ))
        }
    }
}

/// Whether this host's KVM stops a guest at an instruction breakpoint.
pub fn probe_instruction_breakpoint() -> Result<(), EngineError> {
    match probe_breakpoint(HwBreakpoint::Execute(PROBE_CODE))? {
        ProbeResult::Hit => Ok(()),
        ProbeResult::NoHit { writes } => Err(error::failed(
            "probe instruction breakpoints",
            format!(
                "the guest ran the breakpointed instruction {writes} times in {} ms without a \
                 debug exit",
                PROBE_WAIT.as_millis()
            ),
        )),
    }
}

enum ProbeResult {
    Hit,
    /// No debug exit; `writes` is how often the guest wrote [`PROBE_DATA`] meanwhile.
    NoHit {
        writes: u64,
    },
}

fn probe_breakpoint(breakpoint: HwBreakpoint) -> Result<ProbeResult, EngineError> {
    let builder = VmBuilder::new(VmConfig {
        vcpus: 1,
        mem_bytes: super::layout::MIN_MEM_BYTES,
        console_tail_bytes: 1024,
        irqchip: false,
    })?;
    // l: inc qword [rbx] ; jmp l
    builder
        .guest_ram()
        .write_slice(&[0x48, 0xff, 0x03, 0xeb, 0xfb], GuestAddress(PROBE_CODE))
        .map_err(|e| error::failed("write the probe guest", e))?;
    let start = VcpuStart {
        mode: CpuMode::Long(PageTables::Identity4G),
        regs: CpuRegs {
            rip: PROBE_CODE,
            rbx: PROBE_DATA,
            rsp: 0x8000,
            rflags: 2,
            ..Default::default()
        },
    };
    let mut engine = builder.start(&[start])?;
    engine.arm_breakpoint(breakpoint)?;
    let hit = engine.wait_breakpoint(PROBE_WAIT)?;
    if hit.is_some() {
        return Ok(ProbeResult::Hit);
    }
    let freeze = engine.freeze(PROBE_WAIT)?;
    let writes = engine
        .guest_ram()
        .read_obj::<u64>(GuestAddress(PROBE_DATA))
        .map_err(|e| error::failed("read the probe guest's counter", e))?;
    if !freeze.all_parked() {
        return Err(error::failed(
            "probe breakpoints",
            "the probe guest's vCPU did not stop",
        ));
    }
    Ok(ProbeResult::NoHit { writes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(addr: u64, len: WatchLen) -> HwBreakpoint {
        HwBreakpoint::Write(WriteWatch::new(addr, len).unwrap())
    }

    #[test]
    fn dr7_encodes_slot_0_write_watches_by_length() {
        // L0 | bit 10 | R/W0 = 01 | LEN0.
        assert_eq!(watch(0x1000, WatchLen::B1).dr7(), 0x0001_0401);
        assert_eq!(watch(0x1000, WatchLen::B2).dr7(), 0x0005_0401);
        assert_eq!(watch(0x1000, WatchLen::B4).dr7(), 0x000d_0401);
        assert_eq!(watch(0x1000, WatchLen::B8).dr7(), 0x0009_0401);
    }

    #[test]
    fn dr7_encodes_instruction_breakpoints_with_rw_and_len_zero() {
        assert_eq!(HwBreakpoint::Execute(0xffff_ffff_8100_0000).dr7(), 0x401);
    }

    #[test]
    fn debug_regs_load_dr0_and_dr7_with_hardware_breakpoints_on() {
        let bp = watch(0xffff_ffff_8200_0040, WatchLen::B4);
        let kvm = DebugRegs::new(Some(bp), false).to_kvm(0);
        assert_eq!(kvm.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP);
        assert_eq!(kvm.arch.debugreg[0], 0xffff_ffff_8200_0040);
        assert_eq!(kvm.arch.debugreg[7], bp.dr7());
        assert_eq!(kvm.arch.debugreg[1..7], [0; 6]);
    }

    #[test]
    fn stepping_over_turns_the_breakpoint_off() {
        let regs = DebugRegs::new(Some(HwBreakpoint::Execute(0x1000)), true);
        let kvm = regs.to_kvm(0);
        assert_eq!(kvm.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
        assert_eq!(kvm.arch.debugreg[7], 0);
    }

    #[test]
    fn nothing_armed_is_guest_debugging_off() {
        assert_eq!(DebugRegs::new(None, false), DebugRegs::default());
        assert_eq!(DebugRegs::default().to_kvm(0).control, 0);
    }
}
