//! The radix-tree walk of one `struct scx_allocator`, through the arena's kernel mapping.
//!
//! Liveness: at the leaf level a set bit in `sdt_desc.allocated` is a live element (the
//! allocator sets it on allocation and clears it on free; freed elements keep their
//! `chunk->data[pos]` pointer for reuse). At the inner levels a bit means "that subtree
//! is full", not "it exists", so inner levels are enumerated by non-NULL child pointers.
//!
//! Nothing read here is trusted: arena pointers must carry the arena's upper 32 bits,
//! every descriptor and element is visited once (a second reference, a cycle, counts as
//! a skipped subtree), the descriptor and entry counts are capped, and an unreadable
//! descriptor or element is skipped and counted rather than failing the allocator.

use std::collections::HashSet;

use guest_mem::Kva;

use super::layout::{DataLayout, LEVELS, SHIFT, SdtLayout};
use crate::kernel::KernelView;

/// Largest element the walker reads (the allocator carves elements from page runs; a
/// larger value is garbage).
pub const MAX_ELEM_SIZE: u64 = 64 * 1024;

/// The arena's two views: BPF programs and user space address it at `user_vm_start`, the
/// kernel maps the same pages at `kern_vm_start`; both are 4 GiB windows, so the low 32
/// bits of an arena pointer are its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaWindow {
    pub kern_vm_start: u64,
    pub user_vm_start: u64,
}

impl ArenaWindow {
    /// The kernel address of the arena pointer `p`; `None` for NULL or a value outside
    /// the arena's 4 GiB user window.
    pub fn kva(&self, p: u64) -> Option<Kva> {
        if p == 0 || p >> 32 != self.user_vm_start >> 32 {
            return None;
        }
        Kva(self.kern_vm_start).checked_offset(p & 0xffff_ffff).ok()
    }
}

/// Caps of one allocator walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCaps {
    /// Live entries returned; more set `truncated`.
    pub entries: usize,
    /// Descriptors visited (inner and leaf); more set `truncated`.
    pub descs: usize,
}

impl Default for TreeCaps {
    fn default() -> Self {
        TreeCaps {
            entries: 4096,
            descs: 1024,
        }
    }
}

/// One live element as found in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The index the element's position in the tree spells.
    pub tree_idx: u64,
    /// `chunk->data[pos]`, the pointer the scheduler holds.
    pub user_addr: u64,
    /// The whole element (`elem_size` bytes).
    pub bytes: Vec<u8>,
}

impl RawEntry {
    /// `tid.idx`, `tid.genn` and the payload bytes under `data`; `None` when the element
    /// is too small for it.
    pub fn decode(&self, data: DataLayout) -> Option<(i32, i32, &[u8])> {
        let (tid, start, len) = data.place(self.bytes.len() as u64)?;
        let tid = usize::try_from(tid).ok()?;
        let start = usize::try_from(start).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let word = |at: usize| -> Option<i32> {
            Some(i32::from_le_bytes(
                self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
            ))
        };
        Some((word(tid)?, word(tid + 4)?, self.bytes.get(start..end)?))
    }
}

/// The result of one allocator walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub elem_size: u64,
    pub entries: Vec<RawEntry>,
    pub truncated: bool,
    /// Descriptors, chunks and elements that could not be read or were reached twice.
    pub skipped_subtrees: u32,
    /// What went wrong, one line each (for the capture log).
    pub notes: Vec<String>,
}

struct Walk<'a, 'k> {
    k: &'a KernelView<'k>,
    arena: ArenaWindow,
    l: &'a SdtLayout,
    caps: TreeCaps,
    stop: &'a dyn Fn() -> bool,
    seen: HashSet<u64>,
    descs: usize,
    out: Tree,
}

fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// Walks the allocator whose `struct scx_allocator` bytes are `alloc`. `stop` is polled
/// between descriptors (the capture deadline); when it says stop, the result is
/// `truncated`.
pub fn walk_allocator(
    k: &KernelView<'_>,
    arena: ArenaWindow,
    l: &SdtLayout,
    alloc: &[u8],
    caps: TreeCaps,
    stop: &dyn Fn() -> bool,
) -> Tree {
    let elem_size = u64_at(alloc, l.elem_size).unwrap_or(0);
    let root = u64_at(alloc, l.root).unwrap_or(0);
    let mut w = Walk {
        k,
        arena,
        l,
        caps,
        stop,
        seen: HashSet::new(),
        descs: 0,
        out: Tree {
            elem_size,
            ..Tree::default()
        },
    };
    if root == 0 {
        // Never initialized (`scx_alloc_init` not run): nothing allocated.
        return w.out;
    }
    // The smallest element is an 8-byte tid plus an 8-byte payload.
    if elem_size < 16 || !elem_size.is_multiple_of(8) || elem_size > MAX_ELEM_SIZE {
        w.out.skipped_subtrees = 1;
        w.out.notes.push(format!(
            "implausible elem_size {elem_size}; tree not walked"
        ));
        return w.out;
    }
    w.desc(0, root, 0);
    w.out
}

impl Walk<'_, '_> {
    fn skip(&mut self, why: String) {
        self.out.skipped_subtrees = self.out.skipped_subtrees.saturating_add(1);
        if self.out.notes.len() < 16 {
            self.out.notes.push(why);
        }
    }

    /// Reads `len` bytes at arena pointer `p`, once per address.
    fn read_once(&mut self, p: u64, len: u64, what: &'static str) -> Option<Vec<u8>> {
        let Some(kva) = self.arena.kva(p) else {
            self.skip(format!("{what} pointer {p:#x} outside the arena"));
            return None;
        };
        if !self.seen.insert(kva.0) {
            self.skip(format!("{what} at {p:#x} reached twice (cycle or shared)"));
            return None;
        }
        match self.k.bytes(kva, len as usize, what) {
            Ok(b) => Some(b),
            Err(e) => {
                self.skip(format!("{what} at {p:#x}: {e}"));
                None
            }
        }
    }

    /// Descriptor `p` at `level`; `prefix` is the index bits of the levels above.
    fn desc(&mut self, level: usize, p: u64, prefix: u64) {
        if self.out.truncated {
            return;
        }
        if self.descs >= self.caps.descs || (self.stop)() {
            self.out.truncated = true;
            return;
        }
        self.descs += 1;
        let l = self.l;
        let Some(desc) = self.read_once(p, l.desc_size, "sdt_desc") else {
            return;
        };
        let chunk = u64_at(&desc, l.chunk).unwrap_or(0);
        let slots_len = u64::from(l.slots) * 8;
        let Some(slots) = self.read_once(chunk, l.slots_off + slots_len, "sdt_chunk") else {
            return;
        };
        let slot = |pos: u64| u64_at(&slots, l.slots_off + pos * 8).unwrap_or(0);
        if level + 1 < LEVELS {
            for pos in 0..u64::from(l.slots) {
                let child = slot(pos);
                if child != 0 {
                    self.desc(level + 1, child, (prefix << SHIFT) | pos);
                }
                if self.out.truncated {
                    return;
                }
            }
            return;
        }
        for word in 0..u64::from(l.bitmap_words) {
            let mut bits = u64_at(&desc, l.allocated + word * 8).unwrap_or(0);
            while bits != 0 {
                let pos = word * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                if pos >= u64::from(l.slots) {
                    break;
                }
                let data = slot(pos);
                if data == 0 {
                    // Allocation in progress: the bit is set before the element is hung.
                    continue;
                }
                if self.out.entries.len() >= self.caps.entries {
                    self.out.truncated = true;
                    return;
                }
                self.element(data, (prefix << SHIFT) | pos);
            }
        }
    }

    fn element(&mut self, p: u64, tree_idx: u64) {
        let elem_size = self.out.elem_size;
        let Some(bytes) = self.read_once(p, elem_size, "sdt element") else {
            return;
        };
        self.out.entries.push(RawEntry {
            tree_idx,
            user_addr: p & 0xffff_ffff,
            bytes,
        });
    }
}
