//! Write watchpoints: the guest stops at the instruction that writes a watched address.
//!
//! The exact-instant trigger of a failure dump: instead of polling guest memory and
//! stopping the guest some milliseconds after a value changed, the engine arms a write
//! watchpoint on the address (QEMU: its gdbstub's `Z2`, which uses TCG watchpoints or, under
//! KVM, the debug registers; the native KVM engine: `KVM_SET_GUEST_DEBUG` with DR0–DR3/DR7)
//! and every vCPU stops when any of them writes it, before the next instruction runs.
//! Not every KVM delivers data breakpoints (`kvm_pvm` takes them and never stops):
//! [`crate::kvm::probe_write_watch`] says whether this host's does.
//!
//! Engines know nothing of what the address means: the caller (the capture session) says
//! which address to watch and decides, from what it reads in the frozen guest, whether a
//! hit is the one it waits for or a write to let pass ([`Engine::thaw`] continues).

use std::time::Duration;

use crate::{Engine, EngineError, FreezeOutcome};

/// How many bytes a watchpoint covers: 1, 2, 4 or 8, aligned to its length (the x86
/// debug-register rule, which QEMU's gdbstub follows too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchLen {
    B1 = 1,
    B2 = 2,
    B4 = 4,
    B8 = 8,
}

impl WatchLen {
    /// Bytes covered.
    pub fn bytes(self) -> u64 {
        self as u64
    }
}

/// A write watchpoint on a guest virtual address (a kernel address; the engines watch
/// linear addresses, as the CPU's debug registers do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteWatch {
    pub addr: u64,
    pub len: WatchLen,
}

impl WriteWatch {
    /// `None` when `addr` is not aligned to `len` (the hardware cannot watch it).
    pub fn new(addr: u64, len: WatchLen) -> Option<WriteWatch> {
        addr.is_multiple_of(len.bytes())
            .then_some(WriteWatch { addr, len })
    }
}

/// The guest stopped at a write to a watched address. The guest is frozen (as after
/// [`Engine::freeze`]) until [`Engine::thaw`], which continues past the write.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchHit {
    /// The watchpoint that fired.
    pub watch: WriteWatch,
    /// The vCPU whose write fired it, when the engine can tell.
    pub vcpu: Option<usize>,
    /// Every vCPU's registers at the stop (the writer's RIP is just past the writing
    /// instruction), the elapsed time from the write to the last vCPU stopped (zero when
    /// every vCPU stopped at the same instant, or when the engine cannot time it: QEMU
    /// reports the hit only once every vCPU is paused), and the perf counters.
    pub freeze: FreezeOutcome,
}

/// An engine that can stop the guest at a write.
pub trait WatchEngine: Engine {
    /// Arms `watch` (at most one at a time: arming again replaces it). The guest may be
    /// running or frozen.
    fn arm_write_watch(&mut self, watch: WriteWatch) -> Result<(), EngineError>;

    /// Removes the armed watchpoint, if any.
    fn disarm_write_watch(&mut self) -> Result<(), EngineError>;

    /// Waits at most `timeout` for a write to the armed address. `Ok(Some(hit))`: the guest
    /// is frozen at the write. `Ok(None)`: nothing was written in time; the guest is still
    /// running. An error when no watchpoint is armed or the guest is frozen — except when
    /// a [`Engine::freeze`] found the guest already stopped at a watched write (the write
    /// raced the freeze): then, until the thaw, that hit is returned.
    fn wait_write(&mut self, timeout: Duration) -> Result<Option<WatchHit>, EngineError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_must_be_aligned_to_their_length() {
        assert!(WriteWatch::new(0xffff_ffff_8100_0008, WatchLen::B8).is_some());
        assert!(WriteWatch::new(0xffff_ffff_8100_0004, WatchLen::B8).is_none());
        assert!(WriteWatch::new(0xffff_ffff_8100_0004, WatchLen::B4).is_some());
        assert!(WriteWatch::new(0xffff_ffff_8100_0003, WatchLen::B2).is_none());
        assert!(WriteWatch::new(0xffff_ffff_8100_0003, WatchLen::B1).is_some());
    }
}
