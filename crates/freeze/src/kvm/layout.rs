//! Guest-physical layout of the native KVM engine's VMs, and guest RAM creation.
//!
//! Low memory holds the structures the VMM writes before the first instruction runs; the
//! addresses follow the conventions of the x86 boot protocols (zero page below 0x10000,
//! MP table in the last KiB of conventional memory, kernel at 1 MiB and up).

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::error;
use crate::EngineError;

/// GDT used for protected and long mode starts (4 entries: null, code64, data, code32).
pub const GDT_START: u64 = 0x500;
/// An empty IDT (limit 0), loaded so that early exceptions shut the VM down visibly.
pub const IDT_START: u64 = 0x520;
/// PVH `hvm_start_info`.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (the initramfs).
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map.
pub const PVH_MEMMAP_START: u64 = 0x6100;
/// Linux zero page (`struct boot_params`).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Identity page tables: PML4, PDPT, then four page directories (first 4 GiB, 2 MiB pages).
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table of the identity map.
pub const PDPTE_START: u64 = 0xa000;
/// First of the four page directories of the identity map.
pub const PDE_START: u64 = 0xb000;
/// End (exclusive) of the identity page tables.
pub const PAGE_TABLES_END: u64 = 0xf000;
/// Initial stack pointer for the boot vCPU (grows down, below the zero page area).
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Room for the command line (Linux accepts 2 KiB on x86 by default; its header may say more).
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// Start of the extended BIOS data area: the MP table lives here, reserved in the e820 map.
pub const EBDA_START: u64 = 0x9fc00;
/// End of conventional memory.
pub const EBDA_END: u64 = 0xa0000;
/// Where high memory (and the kernel) starts.
pub const HIGH_MEMORY_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole; RAM above this moves to 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Local APIC base.
pub const APIC_START: u64 = 0xfee0_0000;
/// I/O APIC base.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// TSS for VMX (three pages below the BIOS area at the top of 4 GiB).
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;

/// Smallest guest RAM the engine accepts: the low structures plus room for code.
pub const MIN_MEM_BYTES: u64 = 2 << 20;
/// Largest guest RAM the engine accepts (bounds the allocation a caller can ask for).
pub const MAX_MEM_BYTES: u64 = 1 << 40;

/// The guest RAM ranges for `mem_bytes` of RAM: one range below the MMIO hole, and the rest
/// (if any) from 4 GiB up.
pub fn ram_ranges(mem_bytes: u64) -> Vec<(GuestAddress, usize)> {
    let low = mem_bytes.min(MMIO_GAP_START);
    let mut ranges = vec![(GuestAddress(0), low as usize)];
    if mem_bytes > MMIO_GAP_START {
        ranges.push((
            GuestAddress(MMIO_GAP_END),
            (mem_bytes - MMIO_GAP_START) as usize,
        ));
    }
    ranges
}

/// Allocates guest RAM (anonymous private mappings, not populated until touched).
pub fn create_guest_ram(mem_bytes: u64) -> Result<GuestMemoryMmap, EngineError> {
    if !(MIN_MEM_BYTES..=MAX_MEM_BYTES).contains(&mem_bytes) || !mem_bytes.is_multiple_of(4096) {
        return Err(error::failed(
            "configure guest RAM",
            format!(
                "guest RAM must be a multiple of 4 KiB between {MIN_MEM_BYTES} and {MAX_MEM_BYTES} bytes, got {mem_bytes}"
            ),
        ));
    }
    GuestMemoryMmap::from_ranges(&ram_ranges(mem_bytes))
        .map_err(|e| error::failed("allocate guest RAM", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_around_the_mmio_hole() {
        assert_eq!(ram_ranges(64 << 20), vec![(GuestAddress(0), 64 << 20)]);
        let r = ram_ranges(4 << 30);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], (GuestAddress(0), MMIO_GAP_START as usize));
        assert_eq!(r[1], (GuestAddress(MMIO_GAP_END), (1 << 30) as usize));
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(create_guest_ram(4096).is_err());
        assert!(create_guest_ram((8 << 20) + 1).is_err());
        assert!(create_guest_ram(MAX_MEM_BYTES * 2).is_err());
    }
}
