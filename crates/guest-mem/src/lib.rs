//! Guest memory for the failure-dump walkers: guest-physical sources (live VM RAM, a
//! RAM file shared with QEMU, ELF vmcores), x86_64 kernel-virtual translation, VMCOREINFO
//! and kallsyms.
//!
//! Nothing read from the guest is trusted: every read returns a `Result` naming the
//! address and the cause, and lengths taken from guest memory are capped before use.

mod addr;
mod error;
mod regs;

pub use addr::{Gpa, Kva};
pub use error::MemError;
pub use regs::CpuRegs;

/// Reads guest-physical memory.
///
/// Implemented by every source (in-process RAM, shared RAM file, vmcore). A read
/// that touches a hole or runs past the end of guest RAM is an error naming the
/// address; it never yields zeros.
pub trait PhysRead {
    fn read_phys(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError>;
}

/// Reads kernel virtual memory (translation included).
///
/// This is what btf-walk renders from and what scx-walk walks with.
pub trait KvaRead {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError>;
}
