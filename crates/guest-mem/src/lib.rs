//! Guest memory for the failure-dump walkers: guest-physical sources (live VM RAM, a
//! RAM file shared with QEMU, ELF vmcores), x86_64 kernel-virtual translation,
//! VMCOREINFO and kallsyms.
//!
//! Nothing read from the guest is trusted: every read returns a `Result` naming the
//! address and the cause, and lengths taken from guest memory are capped before use.
//!
//! # The pieces
//! - [`PhysMem`]: the one guest-physical shape. Built from an engine's
//!   `vm_memory::GuestMemoryMmap` ([`PhysMem::from_guest_memory`], no copy, volatile
//!   reads), from QEMU's shared RAM file ([`ramfile::map_ram_file`] gives the
//!   `GuestMemoryMmap`), or from a vmcore ([`Vmcore::open`], `PT_LOAD`s pointing into
//!   the mapped file). Holes are errors, never zeros.
//! - [`Kernel`]: the guest kernel over a `PhysMem`: VMCOREINFO (given, from a vmcore
//!   note, or found by scanning RAM), symbols from kallsyms decoded out of guest memory
//!   (or a System.map), translation (direct map, kernel image, page walks from
//!   `init_top_pgt` or a given CR3; 4/5-level; 4K/2M/1G), per-CPU addresses.
//!   Implements [`KvaRead`]; [`KvaReadExt`] adds typed reads to every `KvaRead`,
//!   including `&dyn KvaRead`.
//! - [`vmcore`]: reading ELF vmcores (notes: VMCOREINFO, `NT_PRSTATUS`, QEMU's CPU
//!   state with CR3) and writing one ([`vmcore::writer::write_vmcore`]).
//! - `synth` (feature `test-util`): synthetic guests and kernels for tests in this and
//!   other crates; `fuzz` (feature `test-util`): the fuzz targets' steps, shared with the
//!   replay of their findings.
//! - [`Kva`], [`Gpa`]: address newtypes with checked arithmetic (an overflowing guest
//!   pointer is an [`AddrOverflow`], never a wrap); [`MAX_CPUS`]: the CPU cap every crate
//!   applies to guest data.
//!
//! # Threads and live memory
//! `PhysMem` is `Send + Sync`. `Kernel` is `Send` but not `Sync` (its translation
//! cache is per instance): clone it per thread, clones share memory and symbols.
//! On live memory, reads are volatile copies and aligned `u64` reads are single loads
//! (untorn). The translation cache caches page walks only (never data); after a thaw
//! call [`Kernel::flush_translation_cache`], or turn it off for a watcher that runs
//! while the guest does (direct-map and kernel-image reads never use it).
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
//! let rq1 = k.per_cpu_symbol("runqueues", 1)?;
//! let comm = k.read_cstr(k.require_symbol("init_task")?, 16)?; // + comm offset from BTF
//! # Ok(()) }
//! ```

mod addr;
mod copy;
mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod fuzz;
pub mod kallsyms;
pub mod kernel;
pub mod phys;
pub mod ramfile;
mod read;
mod regs;
pub mod symbols;
#[cfg(any(test, feature = "test-util"))]
pub mod synth;
pub mod vmcore;
pub mod vmcoreinfo;
pub mod x86;

pub use addr::{AddrOverflow, Gpa, Kva};
pub use error::MemError;
pub use kernel::{Kernel, KernelError, KernelOptions, MAX_CPUS, SymbolSource};
pub use phys::{PhysMem, PhysMemError, PhysRange, StableBytes, Volatility};
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

    /// The present 4 KiB pages of `[start, start + len)`, at most `cap` listed, when this
    /// reader can enumerate them (it walks page tables: [`Kernel`]); `None` when it cannot
    /// (the caller then probes page by page).
    fn present_pages(
        &self,
        _start: Kva,
        _len: u64,
        _cap: usize,
    ) -> Option<Result<x86::paging::PresentPages, MemError>> {
        None
    }

    /// A hint between the steps of a long walk: what was read so far need not stay
    /// resident in this process (see [`PhysMem::release_resident`]). No-op by default.
    fn release_resident(&self) {}

    /// `len` bytes at `kva` borrowed without a copy, when this reader's memory is stable
    /// (a vmcore) and they are one physically contiguous run ([`PhysMem::stable_bytes`]);
    /// `None` by default and otherwise: the caller reads them with [`KvaRead::read_kva`].
    fn stable_bytes(&self, _kva: Kva, _len: u64) -> Option<StableBytes> {
        None
    }
}
