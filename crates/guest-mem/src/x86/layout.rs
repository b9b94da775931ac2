//! The x86_64 kernel's fixed virtual layout (facts from the kernel's
//! `Documentation/arch/x86/x86_64/mm.rst`).

use super::paging::PagingMode;

/// Start of the kernel image mapping (`__START_KERNEL_map`).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Size of the kernel image mapping (`KERNEL_IMAGE_SIZE` with KASLR: 1 GiB).
pub const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// Default direct-map base with 4-level paging (no `RANDOMIZE_MEMORY`).
pub const PAGE_OFFSET_L4: u64 = 0xffff_8880_0000_0000;
/// Default direct-map base with 5-level paging.
pub const PAGE_OFFSET_L5: u64 = 0xff11_0000_0000_0000;

/// Default direct-map base for `mode`.
pub fn default_page_offset(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::Level4 => PAGE_OFFSET_L4,
        PagingMode::Level5 => PAGE_OFFSET_L5,
    }
}

/// Largest physical address the direct map can cover (`MAX_PHYSMEM_BITS`).
pub fn max_physmem(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::Level4 => 1 << 46,
        PagingMode::Level5 => 1 << 52,
    }
}
