//! Guest memory for the failure-dump walkers: guest-physical sources (live VM RAM, a
//! RAM file shared with QEMU, ELF vmcores), x86_64 kernel-virtual translation,
//! VMCOREINFO and kallsyms.
//!
//! Nothing read from the guest is trusted: every read returns a `Result` naming the
//! address and the cause, and lengths taken from guest memory are capped before use.
//!
//! # Getting a kernel view
//! ```no_run
//! use guest_mem::{Kernel, KernelOptions, KvaReadExt, PhysMem, Vmcore};
//! # fn f(ram: &vm_memory::GuestMemoryMmap) -> Result<(), Box<dyn std::error::Error>> {
//! // From a vmcore (VMCOREINFO and registers from its notes):
//! let core = Vmcore::open("vmcore".as_ref())?;
//! let k = core.kernel(KernelOptions::default())?;
//! // From an engine's live RAM (VMCOREINFO found by scanning):
//! let k = Kernel::new(PhysMem::from_guest_memory(ram)?, KernelOptions::default())?;
//! let comm = k.read_cstr(k.require_symbol("init_task")?, 16)?;
//! # Ok(()) }
//! ```

mod addr;
mod copy;
mod error;
pub mod kallsyms;
pub mod kernel;
pub mod phys;
pub mod ramfile;
mod read;
mod regs;
pub mod symbols;
pub mod synth;
pub mod vmcore;
pub mod vmcoreinfo;
pub mod x86;

pub use addr::{Gpa, Kva};
pub use error::MemError;
pub use kernel::{Kernel, KernelError, KernelOptions};
pub use phys::{PhysMem, PhysMemError, PhysRange, Volatility};
pub use read::KvaReadExt;
pub use regs::CpuRegs;
pub use symbols::{NearestSymbol, Symbol, SymbolTable};
pub use vmcore::{Vmcore, VmcoreError};
pub use vmcoreinfo::VmcoreInfo;
pub use x86::paging::PagingMode;

/// Reads guest-physical memory.
///
/// Implemented by every source (in-process RAM, shared RAM file, vmcore). A read
/// that touches a hole or runs past the end of guest RAM is an error naming the
/// address; it never yields zeros.
pub trait PhysRead {
    fn read_phys(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError>;

    /// Reads a little-endian `u64` (sources override this with a single load).
    fn read_phys_u64(&self, gpa: Gpa) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read_phys(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Reads kernel virtual memory (translation included).
///
/// This is what btf-walk renders from and what scx-walk walks with.
pub trait KvaRead {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError>;
}
