//! x86_64 page-table walks (4- and 5-level, 4 KiB / 2 MiB / 1 GiB pages).
//!
//! A walk reads at most five entries, one per level, so a garbage or
//! self-referencing table can only produce a wrong answer or an error, never a
//! loop. Entries pointing outside guest RAM make the next read fail with the
//! address of the table that could not be read.

use crate::{Gpa, Kva, MemError, PhysRead};

/// Physical-address bits of a page-table entry (bits 12..=51).
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;

/// Paging depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// 48-bit virtual addresses (PML4).
    Level4,
    /// 57-bit virtual addresses (PML5, `CR4.LA57`).
    Level5,
}

impl PagingMode {
    /// Number of table levels.
    pub fn levels(self) -> u8 {
        match self {
            PagingMode::Level4 => 4,
            PagingMode::Level5 => 5,
        }
    }

    /// Virtual-address width in bits.
    pub fn va_bits(self) -> u32 {
        match self {
            PagingMode::Level4 => 48,
            PagingMode::Level5 => 57,
        }
    }

    /// Whether `kva` is canonical (its top bits copy bit `va_bits - 1`).
    pub fn is_canonical(self, kva: Kva) -> bool {
        let shift = 64 - self.va_bits();
        (((kva.0 << shift) as i64) >> shift) as u64 == kva.0
    }
}

/// The result of a walk: where `kva` lands and the size of the page holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Guest-physical address of `kva` itself.
    pub gpa: Gpa,
    /// Size of the mapping page: 4 KiB, 2 MiB or 1 GiB.
    pub page_size: u64,
}

/// Walks the page tables rooted at `root` (a CR3 value; PCID and flag bits are
/// ignored) to translate `kva`.
///
/// Errors: [`MemError::Untranslatable`] for non-canonical addresses,
/// [`MemError::NotPresent`] naming the level (5..1) and entry when an entry is not
/// present, and the read error of a table that lies outside guest RAM.
pub fn walk<M: PhysRead + ?Sized>(
    mem: &M,
    root: Gpa,
    mode: PagingMode,
    kva: Kva,
) -> Result<Translation, MemError> {
    if !mode.is_canonical(kva) {
        return Err(MemError::Untranslatable {
            kva,
            why: "not canonical",
        });
    }
    let mut table = root.0 & PTE_ADDR_MASK;
    let mut level = mode.levels();
    loop {
        let shift = 12 + 9 * (u32::from(level) - 1);
        let index = (kva.0 >> shift) & 0x1ff;
        let entry = mem.read_phys_u64(Gpa(table + index * 8))?;
        if entry & PRESENT == 0 {
            return Err(MemError::NotPresent { kva, level, entry });
        }
        // PS on a PDPT (level 3) entry maps 1 GiB, on a PD (level 2) entry 2 MiB;
        // at levels 4 and 5 the bit is reserved and we treat it as a table pointer.
        if level == 1 || (entry & PAGE_SIZE_BIT != 0 && (level == 2 || level == 3)) {
            let page_size = 1u64 << shift;
            let base = entry & PTE_ADDR_MASK & !(page_size - 1);
            return Ok(Translation {
                gpa: Gpa(base | (kva.0 & (page_size - 1))),
                page_size,
            });
        }
        table = entry & PTE_ADDR_MASK;
        level -= 1;
    }
}
