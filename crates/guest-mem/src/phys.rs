//! `PhysMem`: the one guest-physical memory shape every source turns into.
//!
//! Engines hand over a `vm_memory::GuestMemoryMmap` (in-process KVM RAM, or QEMU's
//! shared RAM file mapped by [`crate::ramfile`]); vmcores map their file and point
//! each `PT_LOAD` at its bytes. `PhysMem` keeps the owner of those mappings alive
//! and answers reads with a short scan over sorted ranges and a volatile copy, so a
//! read costs a few nanoseconds and never blocks.

use std::any::Any;
use std::sync::Arc;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::copy::copy_volatile;
use crate::{Gpa, MemError, PhysRead};

/// One contiguous guest-physical range backed by host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    /// First guest-physical address.
    pub start: Gpa,
    /// Length in bytes (never 0).
    pub len: u64,
}

impl PhysRange {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.start.0 + self.len
    }
}

#[derive(Debug, Clone, Copy)]
struct Mapped {
    start: u64,
    end: u64,
    host: *const u8,
}

impl Mapped {
    /// `len` bytes at guest-physical `start`, backed at `host`; the range must not run
    /// past the end of the address space.
    fn new(start: u64, len: u64, host: *const u8) -> Result<Mapped, PhysMemError> {
        let end = start
            .checked_add(len)
            .ok_or(PhysMemError::Overflow { start, len })?;
        Ok(Mapped { start, end, host })
    }
}

/// Whether the bytes behind a [`PhysMem`] can change while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    /// A running (or thawable) guest writes this memory: reads use volatile loads.
    Live,
    /// A vmcore or a private copy: nothing writes it, plain copies are fine.
    Stable,
}

/// Guest-physical memory made of sorted, non-overlapping host-backed ranges.
///
/// Cloning is cheap (the owner of the mappings is reference counted). Reads of a
/// hole, or past the last range, fail with [`MemError::Unmapped`] naming the first
/// byte that is not backed; they never return zeros.
#[derive(Clone)]
pub struct PhysMem {
    ranges: Arc<[Mapped]>,
    volatility: Volatility,
    _owner: Arc<dyn Any + Send + Sync>,
    /// A read-only private file mapping (address, length) whose resident pages may be
    /// dropped at any time: they are paged in again from the file when read.
    releasable: Option<(usize, usize)>,
}

// SAFETY: the raw host pointers point into mappings owned by `_owner` (kept alive as
// long as any clone exists) and are only read through `copy_volatile`/`copy`, which
// is sound from any thread: nothing here writes through them.
unsafe impl Send for PhysMem {}
// SAFETY: see `Send`; `PhysMem` has no interior mutability.
unsafe impl Sync for PhysMem {}

impl std::fmt::Debug for PhysMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysMem")
            .field("ranges", &self.ranges())
            .field("volatility", &self.volatility)
            .finish()
    }
}

/// Why a [`PhysMem`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhysMemError {
    #[error("no memory ranges")]
    Empty,
    #[error("range at gpa {start:#x} (+{len:#x}) overflows the address space")]
    Overflow { start: u64, len: u64 },
    #[error("range at gpa {start:#x} overlaps the previous range")]
    Overlap { start: u64 },
    #[error("range at gpa {start:#x} (+{len:#x}) lies outside its backing buffer")]
    OutOfBacking { start: u64, len: u64 },
}

impl PhysMem {
    /// Wraps an engine's guest RAM without copying. The result is [`Volatility::Live`]
    /// and keeps `mem`'s regions mapped for as long as it (or a clone) lives.
    pub fn from_guest_memory(mem: &GuestMemoryMmap) -> Result<PhysMem, PhysMemError> {
        let mut ranges = Vec::new();
        for r in mem.iter() {
            let len = r.len();
            if len == 0 {
                continue;
            }
            ranges.push(Mapped::new(r.start_addr().0, len, r.as_ptr() as *const u8)?);
        }
        Self::build(ranges, Volatility::Live, Arc::new(mem.clone()))
    }

    /// Builds memory from owned buffers: `(gpa, bytes)` each. Used by tests, fuzzing,
    /// and anything that has guest RAM in a `Vec`. The result is [`Volatility::Stable`].
    pub fn from_buffers(buffers: Vec<(Gpa, Vec<u8>)>) -> Result<PhysMem, PhysMemError> {
        let mut ranges = Vec::new();
        for (gpa, b) in &buffers {
            if b.is_empty() {
                continue;
            }
            ranges.push(Mapped::new(gpa.0, b.len() as u64, b.as_ptr())?);
        }
        // Moving the Vec of Vecs does not move their heap buffers.
        Self::build(ranges, Volatility::Stable, Arc::new(buffers))
    }

    /// Builds memory from ranges inside one backing byte slice owned by `owner`
    /// (a file mapping, a `Vec`): `(gpa, offset into backing, len)` each.
    ///
    /// `backing` must stay valid and unmoved for as long as `owner` lives; it is
    /// usually memory that `owner` itself holds (checked: every range lies inside).
    pub(crate) fn from_backing(
        backing: &[u8],
        parts: &[(Gpa, u64, u64)],
        volatility: Volatility,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Result<PhysMem, PhysMemError> {
        let mut ranges = Vec::new();
        for &(gpa, off, len) in parts {
            if len == 0 {
                continue;
            }
            off.checked_add(len)
                .filter(|&e| e <= backing.len() as u64)
                .ok_or(PhysMemError::OutOfBacking { start: gpa.0, len })?;
            // In bounds: checked above.
            ranges.push(Mapped::new(gpa.0, len, backing[off as usize..].as_ptr())?);
        }
        Self::build(ranges, volatility, owner)
    }

    fn build(
        mut ranges: Vec<Mapped>,
        volatility: Volatility,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Result<PhysMem, PhysMemError> {
        if ranges.is_empty() {
            return Err(PhysMemError::Empty);
        }
        ranges.sort_by_key(|r| r.start);
        for w in ranges.windows(2) {
            if w[1].start < w[0].end {
                return Err(PhysMemError::Overlap { start: w[1].start });
            }
        }
        Ok(PhysMem {
            ranges: ranges.into(),
            volatility,
            _owner: owner,
            releasable: None,
        })
    }

    /// Marks `[ptr, ptr + len)`, a read-only private mapping of a file that `_owner`
    /// keeps, as one whose pages [`PhysMem::release_resident`] may drop.
    pub(crate) fn with_releasable(mut self, ptr: *const u8, len: usize) -> PhysMem {
        self.releasable = Some((ptr as usize, len));
        self
    }

    /// Drops the pages of a vmcore file mapping from this process's resident set
    /// (`MADV_DONTNEED`): what was read so far need not stay mapped, and a later read
    /// pages it in again from the file (the page cache, usually). The kernel maps up
    /// to 64 KiB around each page a read faults in, so a walk over scattered pages
    /// keeps many times what it reads resident unless it is released now and then.
    /// A no-op for every other backing (live guest RAM, buffers, an edited mapping).
    pub fn release_resident(&self) {
        if let Some((ptr, len)) = self.releasable {
            // SAFETY: `ptr..ptr + len` is a private read-only file mapping this value's
            // owner keeps mapped; MADV_DONTNEED on it only unmaps pages, which fault
            // back in with the file's unchanged contents (nothing here wrote them).
            unsafe { libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        }
    }

    /// The backed ranges, sorted by address.
    pub fn ranges(&self) -> Vec<PhysRange> {
        self.ranges
            .iter()
            .map(|m| PhysRange {
                start: Gpa(m.start),
                len: m.end - m.start,
            })
            .collect()
    }

    /// Whether reads use volatile loads.
    pub fn volatility(&self) -> Volatility {
        self.volatility
    }

    /// Total backed bytes.
    pub fn total_len(&self) -> u64 {
        self.ranges.iter().map(|m| m.end - m.start).sum()
    }

    #[inline]
    fn find(&self, gpa: u64) -> Option<&Mapped> {
        // Guests have a handful of ranges (below/above 4 GiB, a few vmcore segments):
        // a linear scan beats a binary search there; fall back for many ranges.
        if self.ranges.len() <= 8 {
            self.ranges.iter().find(|m| gpa >= m.start && gpa < m.end)
        } else {
            let i = self.ranges.partition_point(|m| m.end <= gpa);
            self.ranges.get(i).filter(|m| gpa >= m.start)
        }
    }

    /// A host pointer to `len` contiguous bytes at `gpa`, when they lie in one range.
    ///
    /// Used for bulk reads; the pointer is valid while `self` lives.
    #[inline]
    fn contiguous(&self, gpa: u64, len: usize) -> Option<*const u8> {
        let m = self.find(gpa)?;
        if (m.end - gpa) < len as u64 {
            return None;
        }
        // In bounds: gpa in [start, end) and len fits before end.
        Some(m.host.wrapping_add((gpa - m.start) as usize))
    }

    #[inline]
    fn copy_from(&self, dst: &mut [u8], src: *const u8) {
        match self.volatility {
            // SAFETY: `src..src+len` lies inside a mapping kept alive by `_owner`.
            Volatility::Live => unsafe { copy_volatile(dst, src) },
            // SAFETY: as above; nothing writes Stable memory, so a plain copy is race-free.
            Volatility::Stable => unsafe {
                std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len())
            },
        }
    }

    /// The fast path of [`Self::read_u64`]: `None` unless `gpa` is 8-aligned and
    /// inside the first range (where a guest's low RAM, and usually all of it, is).
    #[inline(always)]
    pub(crate) fn try_read_u64(&self, gpa: Gpa) -> Option<u64> {
        let m = self.ranges.first()?;
        let off = gpa.0.wrapping_sub(m.start);
        let len = m.end - m.start;
        if gpa.0 & 7 != 0 || len < 8 || off > len - 8 || (m.host as usize) & 7 != 0 {
            return None;
        }
        // SAFETY: 8 bytes at `off` lie inside the range (checked), the host pointer is
        // 8-aligned (range start checked, gpa aligned), and the mapping is kept alive
        // by `_owner`.
        Some(unsafe { std::ptr::read_volatile(m.host.add(off as usize) as *const u64) })
    }

    /// The fast path of `read_phys`: `false` unless `buf` lies in the first range.
    #[inline(always)]
    pub(crate) fn try_read(&self, gpa: Gpa, buf: &mut [u8]) -> bool {
        let Some(m) = self.ranges.first() else {
            return false;
        };
        let off = gpa.0.wrapping_sub(m.start);
        let len = m.end - m.start;
        if off >= len || len - off < buf.len() as u64 {
            return false;
        }
        self.copy_from(buf, m.host.wrapping_add(off as usize));
        true
    }

    /// Reads one aligned `u64` with a single load (untorn even on live memory).
    /// Unaligned or range-crossing addresses fall back to a byte copy.
    #[inline]
    pub fn read_u64(&self, gpa: Gpa) -> Result<u64, MemError> {
        if gpa.0 & 7 == 0
            && let Some(p) = self.contiguous(gpa.0, 8)
        {
            // SAFETY: 8 readable, 8-aligned bytes (host mappings are page aligned and
            // vmcore segments are read through `read_phys` when they are not).
            if (p as usize) & 7 == 0 {
                return Ok(unsafe { std::ptr::read_volatile(p as *const u64) });
            }
        }
        let mut b = [0u8; 8];
        self.read_phys(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads one aligned `u32` with a single load (untorn even on live memory).
    /// Unaligned or range-crossing addresses fall back to a byte copy.
    #[inline]
    pub fn read_u32(&self, gpa: Gpa) -> Result<u32, MemError> {
        if gpa.0 & 3 == 0
            && let Some(p) = self.contiguous(gpa.0, 4)
            && (p as usize) & 3 == 0
        {
            // SAFETY: 4 readable, 4-aligned bytes inside one mapping kept alive by `self`.
            return Ok(unsafe { std::ptr::read_volatile(p as *const u32) });
        }
        let mut b = [0u8; 4];
        self.read_phys(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

impl PhysRead for PhysMem {
    #[inline]
    fn read_phys(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        let len = buf.len();
        if len == 0 {
            return Ok(());
        }
        if let Some(p) = self.contiguous(gpa.0, len) {
            self.copy_from(buf, p);
            return Ok(());
        }
        gpa.0
            .checked_add(len as u64)
            .ok_or(MemError::Overflow { addr: gpa.0, len })?;
        // Crosses ranges (or a hole): copy piece by piece, failing at the first gap.
        let mut done = 0usize;
        while done < len {
            let at = gpa.0 + done as u64;
            let m = self.find(at).ok_or(MemError::Unmapped {
                gpa: Gpa(at),
                len: len - done,
            })?;
            let n = ((m.end - at) as usize).min(len - done);
            let src = m.host.wrapping_add((at - m.start) as usize);
            self.copy_from(&mut buf[done..done + n], src);
            done += n;
        }
        Ok(())
    }

    #[inline]
    fn read_phys_u64(&self, gpa: Gpa) -> Result<u64, MemError> {
        self.read_u64(gpa)
    }
}

/// Bytes of [`Volatility::Stable`] guest memory borrowed without a copy (from
/// [`PhysMem::stable_bytes`]): a vmcore's file mapping or owned buffers, which nothing
/// writes. Holds a clone of the memory, so the bytes stay valid as long as it lives.
/// Pages of a vmcore mapping dropped by [`PhysMem::release_resident`] fault back in
/// from the file with the same contents.
#[derive(Clone)]
pub struct StableBytes {
    _mem: PhysMem,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are in a mapping kept alive by `_mem` and never written (Stable).
unsafe impl Send for StableBytes {}
// SAFETY: as above; shared reads only.
unsafe impl Sync for StableBytes {}

impl std::ops::Deref for StableBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies in one range of `_mem` (checked when made), whose
        // owner keeps it mapped; Stable memory is not written while it is read.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::fmt::Debug for StableBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StableBytes({} bytes)", self.len)
    }
}

impl PhysMem {
    /// `len` bytes at `gpa` without copying them, when the memory is
    /// [`Volatility::Stable`] and they lie in one range; `None` otherwise (live guest
    /// RAM, a hole, bytes across ranges): the caller then copies with `read_phys`.
    pub fn stable_bytes(&self, gpa: Gpa, len: usize) -> Option<StableBytes> {
        if self.volatility != Volatility::Stable || len == 0 {
            return None;
        }
        let ptr = self.contiguous(gpa.0, len)?;
        Some(StableBytes {
            _mem: self.clone(),
            ptr,
            len,
        })
    }
}

/// Engines' RAM read directly, without building a [`PhysMem`] (vm-memory's own
/// bounds-checked volatile copy). Prefer a `PhysMem` for many reads: it is faster.
impl PhysRead for GuestMemoryMmap {
    fn read_phys(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        use vm_memory::{Bytes, GuestAddress};
        self.read_slice(buf, GuestAddress(gpa.0))
            .map_err(|_| MemError::Unmapped {
                gpa,
                len: buf.len(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_across_and_outside_ranges() {
        let a: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..4096u32).map(|i| (i as u8) ^ 0xff).collect();
        let m = PhysMem::from_buffers(vec![(Gpa(0x1000), a.clone()), (Gpa(0x2000), b.clone())])
            .unwrap();
        let mut buf = [0u8; 16];
        m.read_phys(Gpa(0x1ff8), &mut buf).unwrap();
        assert_eq!(&buf[..8], &a[4088..]);
        assert_eq!(&buf[8..], &b[..8]);
        assert_eq!(
            m.read_phys(Gpa(0xff8), &mut buf),
            Err(MemError::Unmapped {
                gpa: Gpa(0xff8),
                len: 16
            })
        );
        assert_eq!(
            m.read_phys(Gpa(0x2ff8), &mut buf),
            Err(MemError::Unmapped {
                gpa: Gpa(0x3000),
                len: 8
            })
        );
        assert_eq!(
            m.read_u64(Gpa(0x2000)).unwrap(),
            u64::from_le_bytes(b[..8].try_into().unwrap())
        );
        assert!(m.read_u64(Gpa(u64::MAX - 3)).is_err());
    }

    #[test]
    fn stable_bytes_borrow_one_range_of_stable_memory_only() {
        let a: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let m = PhysMem::from_buffers(vec![(Gpa(0x1000), a.clone()), (Gpa(0x2000), a.clone())])
            .unwrap();
        let b = m.stable_bytes(Gpa(0x1010), 32).unwrap();
        assert_eq!(&b[..], &a[0x10..0x30]);
        // Still valid once the memory it came from is dropped (it holds a clone).
        drop(m.clone());
        assert_eq!(b.len(), 32);
        // Across two ranges, in a hole, or empty: not borrowed.
        assert!(m.stable_bytes(Gpa(0x1ff0), 32).is_none());
        assert!(m.stable_bytes(Gpa(0x3000), 1).is_none());
        assert!(m.stable_bytes(Gpa(0x1000), 0).is_none());
        // Live memory is never borrowed: a running guest could change it.
        use vm_memory::GuestAddress;
        let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        let live = PhysMem::from_guest_memory(&gm).unwrap();
        assert!(live.stable_bytes(Gpa(0), 16).is_none());
    }

    #[test]
    fn overlapping_buffers_are_rejected() {
        let e = PhysMem::from_buffers(vec![(Gpa(0), vec![0; 100]), (Gpa(50), vec![0; 10])]);
        assert_eq!(e.unwrap_err(), PhysMemError::Overlap { start: 50 });
    }

    #[test]
    fn wraps_guest_memory_mmap_live() {
        use vm_memory::{Bytes, GuestAddress};
        let gm = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x100000), 0x1000),
        ])
        .unwrap();
        gm.write_obj(0x1122334455667788u64, GuestAddress(0x100008))
            .unwrap();
        let m = PhysMem::from_guest_memory(&gm).unwrap();
        assert_eq!(m.volatility(), Volatility::Live);
        assert_eq!(m.read_u64(Gpa(0x100008)).unwrap(), 0x1122334455667788);
        // A write after wrapping is seen: no copy was taken.
        gm.write_obj(7u64, GuestAddress(0x100008)).unwrap();
        assert_eq!(m.read_u64(Gpa(0x100008)).unwrap(), 7);
        assert!(m.read_u64(Gpa(0x10000)).is_err());
        // The same through vm-memory directly.
        assert_eq!(gm.read_phys_u64(Gpa(0x100008)).unwrap(), 7);
        assert!(gm.read_phys_u64(Gpa(0xfffc)).is_err());
    }
}
