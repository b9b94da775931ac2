//! The walkers' view of a frozen kernel: memory, symbols and types.
//!
//! Walkers depend on three small traits rather than on concrete loaders, so the same code
//! reads a live QEMU guest, a native-KVM guest or a vmcore, and unit tests can feed
//! synthetic memory. Adapters for `guest-mem` and `btf-walk` live in [`crate::adapters`].

use std::collections::HashSet;

use btf_walk::MemberOffsets;
use dump_schema::RenderedValue;
use guest_mem::{Kva, KvaRead, MAX_CPUS};

use crate::error::{Result, WalkError};

/// Kernel symbols by name and by address.
pub trait SymbolLookup {
    /// Address of the symbol `name` (per-CPU symbols: their link-time address, to which
    /// `__per_cpu_offset[cpu]` is added).
    fn symbol(&self, name: &str) -> Option<Kva>;
    /// The symbol at or below `kva` and the offset into it.
    fn nearest(&self, kva: Kva) -> Option<(String, u64)>;
    /// `[start, end)` of every symbol whose name, up to its first `.` (compiler suffixes
    /// such as `.constprop.0`), is one of `bases`; `end` is where the next symbol starts.
    /// `None` when the symbols cannot list them all (callers then ask [`Self::nearest`]
    /// address by address).
    fn ranges_of(&self, bases: &[&str]) -> Option<Vec<(u64, u64)>> {
        let _ = bases;
        None
    }
}

/// The kernel's own type information (its BTF), by name: member offsets and struct sizes
/// ([`MemberOffsets`], what an [`btf_walk::OffsetGroup`] asks), and enumerators.
pub trait KernelTypes: MemberOffsets {
    /// Value of the enumerator `variant` (enums are looked up by variant name alone).
    fn enum_value(&self, variant: &str) -> Option<i64>;
}

/// The values of the enumerators `variants`, each its position in `variants` where the
/// BTF lacks it (for enums whose order has not changed in a long time).
pub fn enum_values_or_order<const N: usize>(t: &dyn KernelTypes, variants: &[&str; N]) -> [u64; N] {
    std::array::from_fn(|i| t.enum_value(variants[i]).map_or(i as u64, |v| v as u64))
}

/// Renders BPF map values and keys with BTF: the map's own (split) BTF, or the kernel's.
pub trait ValueRenderer {
    /// Renders `bytes` as type `type_id` of the BTF object at `btf` (a `struct btf *` in
    /// guest memory, split over the kernel's BTF); `btf == None` means the kernel's BTF.
    fn render(
        &self,
        btf: Option<Kva>,
        type_id: u32,
        bytes: &[u8],
        mem: &dyn KvaRead,
    ) -> std::result::Result<RenderedValue, String>;
    /// Type id of the struct named `name` in the BTF object at `btf`, if it declares one.
    fn find_struct(&self, btf: Kva, name: &str, mem: &dyn KvaRead) -> Option<u32>;
    /// The BTF object at `btf` itself (split over the kernel's), for walkers that need a
    /// program's own layouts (the sdt allocator); `None` when this renderer cannot load it.
    fn program_btf(&self, _btf: Kva, _mem: &dyn KvaRead) -> Option<btf_walk::Btf> {
        None
    }
}

/// Everything a walker reads through.
#[derive(Clone, Copy)]
pub struct KernelView<'a> {
    pub mem: &'a dyn KvaRead,
    pub syms: &'a dyn SymbolLookup,
    pub types: &'a dyn KernelTypes,
}

/// Longest string read from the guest (names, comms).
pub const MAX_STR: usize = 256;

impl<'a> KernelView<'a> {
    /// Address of a symbol the walker cannot do without.
    pub fn sym(&self, name: &'static str) -> Result<Kva> {
        self.syms.symbol(name).ok_or(WalkError::NoSymbol(name))
    }

    pub fn read(&self, kva: Kva, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.mem.read_kva(kva, buf).map_err(WalkError::mem(what))
    }

    pub fn bytes(&self, kva: Kva, len: usize, what: &'static str) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(kva, &mut v, what)?;
        Ok(v)
    }

    /// The `N` bytes at `kva`.
    fn array<const N: usize>(&self, kva: Kva, what: &'static str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read(kva, &mut b, what)?;
        Ok(b)
    }

    pub fn u8(&self, kva: Kva, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(kva, what)?[0])
    }

    pub fn u16(&self, kva: Kva, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(kva, what)?))
    }

    pub fn u32(&self, kva: Kva, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(kva, what)?))
    }

    pub fn i32(&self, kva: Kva, what: &'static str) -> Result<i32> {
        Ok(self.u32(kva, what)? as i32)
    }

    pub fn u64(&self, kva: Kva, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(kva, what)?))
    }

    pub fn i64(&self, kva: Kva, what: &'static str) -> Result<i64> {
        Ok(self.u64(kva, what)? as i64)
    }

    pub fn ptr(&self, kva: Kva, what: &'static str) -> Result<Kva> {
        Ok(Kva(self.u64(kva, what)?))
    }

    /// A NUL-terminated string of at most `max` bytes (lossy UTF-8).
    pub fn cstr(&self, kva: Kva, max: usize, what: &'static str) -> Result<String> {
        let max = max.min(MAX_STR);
        let mut buf = vec![0u8; max];
        // Fixed arrays (`comm`, `name`) are always fully readable; a `char *` may end
        // near a page boundary, so fall back to reading up to the page end.
        if self.mem.read_kva(kva, &mut buf).is_err() {
            let to_page_end = (4096 - (kva.0 % 4096)) as usize;
            buf.truncate(to_page_end.min(max));
            self.read(kva, &mut buf, what)?;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    /// Whether `p` could be a kernel pointer at all (upper half, not NULL-ish).
    pub fn plausible_ptr(p: Kva) -> bool {
        p.0 >= 0xff00_0000_0000_0000 && p.is_aligned(8)
    }
}

/// Per-CPU addressing: `__per_cpu_offset[cpu]` added to a per-CPU symbol or pointer.
#[derive(Debug, Clone, Default)]
pub struct PerCpu {
    offsets: Vec<u64>,
}

impl PerCpu {
    /// Reads `nr_cpu_ids` and `__per_cpu_offset`.
    pub fn load(k: &KernelView<'_>) -> Result<PerCpu> {
        let nr = k.u32(k.sym("nr_cpu_ids")?, "nr_cpu_ids")? as usize;
        if nr == 0 || nr > MAX_CPUS {
            return Err(WalkError::Implausible {
                what: "nr_cpu_ids",
                value: nr as u64,
            });
        }
        let base = k.sym("__per_cpu_offset")?;
        let raw = k.bytes(base, nr * 8, "__per_cpu_offset")?;
        let offsets = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(PerCpu { offsets })
    }

    /// From explicit offsets (tests, or a caller that already has them).
    pub fn from_offsets(offsets: Vec<u64>) -> PerCpu {
        PerCpu { offsets }
    }

    pub fn nr_cpus(&self) -> usize {
        self.offsets.len()
    }

    /// The address of CPU `cpu`'s copy of the per-CPU object at `base`.
    pub fn addr(&self, base: Kva, cpu: usize) -> Option<Kva> {
        let off = *self.offsets.get(cpu)?;
        Some(Kva(base.0.wrapping_add(off)))
    }
}

/// A set of visited addresses with a cap: the guard every guest walk runs under.
#[derive(Debug)]
pub struct Visited {
    seen: HashSet<u64>,
    cap: usize,
}

impl Visited {
    pub fn new(cap: usize) -> Visited {
        Visited {
            seen: HashSet::new(),
            cap,
        }
    }

    /// `Ok(true)` when `kva` is new, `Ok(false)` when the cap is reached,
    /// `Err(Cycle)` when it was seen before.
    pub fn visit(&mut self, kva: Kva, what: &'static str) -> Result<bool> {
        if self.seen.len() >= self.cap {
            return Ok(false);
        }
        if !self.seen.insert(kva.0) {
            return Err(WalkError::Cycle { what, at: kva });
        }
        Ok(true)
    }
}

/// Lowercase hex, two digits per byte, one space between bytes (the wire format's rule).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_wire_rule() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00 ab 0f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn visited_reports_cycle_and_cap() {
        let mut v = Visited::new(2);
        assert!(v.visit(Kva(1), "t").unwrap());
        assert!(matches!(v.visit(Kva(1), "t"), Err(WalkError::Cycle { .. })));
        assert!(v.visit(Kva(2), "t").unwrap());
        assert!(!v.visit(Kva(3), "t").unwrap());
    }
}
