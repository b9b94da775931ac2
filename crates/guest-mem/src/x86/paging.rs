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

/// Most page tables [`present_pages`] reads (a 4 GiB range needs at most 2,053).
pub const MAX_TABLES: usize = 8192;

/// The present 4 KiB pages of a virtual range, as [`present_pages`] found them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresentPages {
    /// Page addresses in ascending order, at most the cap given.
    pub pages: Vec<Kva>,
    /// Present 4 KiB pages in the range, the listed ones included (a 2 MiB or 1 GiB
    /// mapping counts as 512 or 262,144).
    pub total: u64,
    /// Tables that could not be read (outside guest RAM): their pages are not counted.
    pub unreadable_tables: u64,
    /// [`MAX_TABLES`] stopped the walk: `total` is a lower bound.
    pub truncated: bool,
}

/// Lists the present 4 KiB pages of `[start, end)` by walking the tables rooted at
/// `root`, skipping every entry that is not present: a sparse 4 GiB range (a BPF arena)
/// costs a few tables, not a million probes. At most `cap` pages are listed and
/// [`MAX_TABLES`] tables read; entries are never followed twice deeper than the level
/// count, so a self-referencing table cannot loop.
pub fn present_pages<M: PhysRead + ?Sized>(
    mem: &M,
    root: Gpa,
    mode: PagingMode,
    start: Kva,
    end: Kva,
    cap: usize,
) -> Result<PresentPages, MemError> {
    let mut out = PresentPages::default();
    if end.0 <= start.0 {
        return Ok(out);
    }
    for a in [start, Kva(end.0 - 1)] {
        if !mode.is_canonical(a) {
            return Err(MemError::Untranslatable {
                kva: a,
                why: "not canonical",
            });
        }
    }
    // The root itself must be readable: an unreadable root is an error, not a hole.
    mem.read_phys_u64(Gpa(root.0 & PTE_ADDR_MASK))?;
    let mut tables = 0usize;
    let mut w = RangeWalk {
        mem,
        start: start.0,
        end: end.0,
        cap,
        va_bits: mode.va_bits(),
        tables: &mut tables,
        out: &mut out,
    };
    w.table(root.0 & PTE_ADDR_MASK, mode.levels(), 0);
    Ok(out)
}

struct RangeWalk<'m, M: ?Sized> {
    mem: &'m M,
    start: u64,
    end: u64,
    cap: usize,
    va_bits: u32,
    tables: &'m mut usize,
    out: &'m mut PresentPages,
}

impl<M: PhysRead + ?Sized> RangeWalk<'_, M> {
    /// Visits the entries of the table at `gpa` (level `level`) that overlap the range;
    /// `base` is the virtual address the table starts at (before sign extension).
    fn table(&mut self, gpa: u64, level: u8, base: u64) {
        if *self.tables >= MAX_TABLES {
            self.out.truncated = true;
            return;
        }
        *self.tables += 1;
        let mut entries = [0u8; 4096];
        if self.mem.read_phys(Gpa(gpa), &mut entries).is_err() {
            self.out.unreadable_tables += 1;
            return;
        }
        let shift = 12 + 9 * (u32::from(level) - 1);
        let span = 1u64 << shift;
        for i in 0..512u64 {
            let lo = self.canonical(base + (i << shift));
            let hi = lo.wrapping_add(span);
            if hi <= self.start && hi != 0 || lo >= self.end {
                continue;
            }
            let o = (i * 8) as usize;
            let entry = u64::from_le_bytes(entries[o..o + 8].try_into().unwrap_or([0; 8]));
            if entry & PRESENT == 0 {
                continue;
            }
            if level == 1 || (entry & PAGE_SIZE_BIT != 0 && (level == 2 || level == 3)) {
                self.leaf(lo, span);
            } else {
                self.table(entry & PTE_ADDR_MASK, level - 1, base + (i << shift));
                if self.out.truncated {
                    return;
                }
            }
        }
    }

    /// Sign-extends an address built from table indices.
    fn canonical(&self, va: u64) -> u64 {
        let s = 64 - self.va_bits;
        (((va << s) as i64) >> s) as u64
    }

    /// A present mapping of `span` bytes at `lo`: its 4 KiB pages inside the range.
    fn leaf(&mut self, lo: u64, span: u64) {
        let from = lo.max(self.start);
        let to = lo.wrapping_add(span).wrapping_sub(1).min(self.end - 1);
        if to < from {
            return;
        }
        let first = from & !0xfff;
        let n = ((to & !0xfff) - first) / 4096 + 1;
        self.out.total += n;
        let room = self.cap.saturating_sub(self.out.pages.len()) as u64;
        for p in 0..n.min(room) {
            self.out.pages.push(Kva(first + p * 4096));
        }
    }
}
