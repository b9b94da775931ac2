//! VM engines that run a guest and freeze it for a failure dump.
//!
//! Two engines implement [`Engine`]: the QEMU engine (`qemu`, works everywhere, TCG
//! or KVM) and the native KVM engine (`kvm`, a small VMM of our own). Engines
//! freeze without knowing what will be read; walkers read without knowing which
//! engine froze the guest. Engines know nothing of reports; the kernels and initramfs
//! they boot come from the `guest-lab` crate.

use std::time::Duration;

pub use guest_mem::CpuRegs;

/// The guest RAM an engine exposes, as guest-physical regions. Cloning is cheap
/// (regions are reference counted); reads through it see the live guest.
pub type GuestRam = vm_memory::GuestMemoryMmap;

/// What one freeze produced.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeOutcome {
    /// Per vCPU (index = vCPU id): its registers when it parked, `None` when it did not
    /// acknowledge before the timeout.
    pub vcpus: Vec<Option<CpuRegs>>,
    /// From the freeze request to the last acknowledgement (or the timeout).
    pub elapsed: Duration,
    /// Host perf counters of the vCPU threads, read at the freeze (or why not); see
    /// [`perf`].
    pub vcpu_perf: perf::VcpuPerf,
}

impl FreezeOutcome {
    /// True when every vCPU parked.
    pub fn all_parked(&self) -> bool {
        self.vcpus.iter().all(Option::is_some)
    }

    /// How many vCPUs parked.
    pub fn parked(&self) -> usize {
        self.vcpus.iter().filter(|v| v.is_some()).count()
    }
}

/// A running guest that can be frozen and thawed any number of times.
///
/// Contract: after `freeze` returns `Ok` with every vCPU parked, guest memory does not
/// change until `thaw`. Dropping an engine tears the guest down (no orphan process,
/// no leftover files), whatever state it is in.
pub trait Engine {
    /// Guest RAM, readable while running (for trigger watching) and while frozen.
    fn guest_ram(&self) -> GuestRam;
    /// Number of vCPUs.
    fn vcpu_count(&self) -> usize;
    /// Stop every vCPU and capture its registers; wait at most `timeout` for them.
    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError>;
    /// Resume every vCPU.
    fn thaw(&mut self) -> Result<(), EngineError>;
    /// Whether the guest is currently frozen.
    fn is_frozen(&self) -> bool;
    /// The last bytes the guest wrote to its serial console (bounded tail); empty for an
    /// engine that does not see the console.
    fn console_tail(&self) -> String {
        String::new()
    }
}

/// Why an engine operation failed; says which step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("{step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{step}: {detail}")]
    Failed { step: &'static str, detail: String },
    #[error("the guest has exited: {0}")]
    GuestExited(String),
}

pub mod kvm;

pub mod perf;
pub mod qemu;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod watch;
pub mod watchpoint;
