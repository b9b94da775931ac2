//! Decoding the kernel's compressed kallsyms tables out of guest memory.
//!
//! Layout (facts from the kernel's `scripts/kallsyms.c`): `kallsyms_names` is a
//! sequence of entries, each a length (one byte, or two when the first has bit 7
//! set: `(b0 & 0x7f) | b1 << 7`) followed by that many token numbers; token `t`
//! expands to the NUL-terminated string at `kallsyms_token_table +
//! kallsyms_token_index[t]`. The first expanded character is the symbol type.
//! Addresses come in three generations, see [`KallsymsAddrs`].

mod index;

pub use index::KallsymsIndex;

use crate::symbols::{MAX_NAME_LEN, MAX_SYMBOLS, SymbolError, SymbolTable, SymbolTableBuilder};
use crate::vmcoreinfo::VmcoreInfo;
use crate::{Kva, KvaRead, MemError};

/// How symbol addresses are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KallsymsAddrs {
    /// `kallsyms_addresses[i]`: absolute 64-bit addresses (old kernels).
    Absolute { addresses: Kva },
    /// `kallsyms_offsets[i]` relative to the value of `kallsyms_relative_base`
    /// (before 6.15-ish). With `KALLSYMS_ABSOLUTE_PERCPU` non-negative offsets are
    /// absolute and negative ones are `base - 1 - off`; we detect that form by the
    /// presence of negative offsets.
    RelativeBase { offsets: Kva, relative_base: Kva },
    /// `kallsyms_offsets[i]` is a signed offset from the entry's own address
    /// (`&kallsyms_offsets[i] + off`), as in 7.x kernels.
    PcRelative { offsets: Kva },
}

/// Where the kallsyms tables are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsLayout {
    /// Address of `kallsyms_num_syms` (a `u32`).
    pub num_syms: Kva,
    pub names: Kva,
    pub token_table: Kva,
    pub token_index: Kva,
    pub addrs: KallsymsAddrs,
}

impl KallsymsLayout {
    /// The layout from VMCOREINFO's `SYMBOL(kallsyms_*)` lines (Linux ≥ 6.0).
    pub fn from_vmcoreinfo(info: &VmcoreInfo) -> Option<KallsymsLayout> {
        let s = |n: &str| info.symbol(n).map(Kva);
        let addrs = if let Some(a) = s("kallsyms_addresses") {
            KallsymsAddrs::Absolute { addresses: a }
        } else if let Some(base) = s("kallsyms_relative_base") {
            KallsymsAddrs::RelativeBase {
                offsets: s("kallsyms_offsets")?,
                relative_base: base,
            }
        } else {
            KallsymsAddrs::PcRelative {
                offsets: s("kallsyms_offsets")?,
            }
        };
        Some(KallsymsLayout {
            num_syms: s("kallsyms_num_syms")?,
            names: s("kallsyms_names")?,
            token_table: s("kallsyms_token_table")?,
            token_index: s("kallsyms_token_index")?,
            addrs,
        })
    }
}

/// Why kallsyms could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KallsymsError {
    #[error("reading {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: MemError,
    },
    #[error("kallsyms_num_syms is {0}: not plausible (0 or more than {MAX_SYMBOLS})")]
    BadCount(u64),
    #[error("token {token} has no terminating NUL")]
    BadToken { token: usize },
    #[error("symbol {index}: {why}")]
    BadName { index: usize, why: &'static str },
    #[error(transparent)]
    Symbols(#[from] SymbolError),
}

const CHUNK: usize = 64 * 1024;

/// Sequential reader over guest memory that tolerates the end of mapped memory.
struct Stream<'a, R: KvaRead + ?Sized> {
    r: &'a R,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, R: KvaRead + ?Sized> Stream<'a, R> {
    fn new(r: &'a R, at: Kva) -> Self {
        Stream {
            r,
            next: at.0,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn refill(&mut self) -> Result<(), MemError> {
        let mut len = CHUNK;
        loop {
            self.buf.resize(len, 0);
            match self.r.read_kva(Kva(self.next), &mut self.buf) {
                Ok(()) => break,
                Err(e) if len == 1 => return Err(e),
                Err(_) => len /= 2,
            }
        }
        self.next = self.next.wrapping_add(len as u64);
        self.pos = 0;
        Ok(())
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, MemError> {
        if self.pos == self.buf.len() {
            self.refill()?;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }
}

/// Reads up to `max` bytes at `at`, fewer when memory ends before.
fn read_upto<R: KvaRead + ?Sized>(r: &R, at: Kva, max: usize) -> Result<Vec<u8>, MemError> {
    let mut len = max;
    loop {
        let mut v = vec![0u8; len];
        match r.read_kva(at, &mut v) {
            Ok(()) => return Ok(v),
            Err(e) if len <= 1 => return Err(e),
            Err(_) => len /= 2,
        }
    }
}

fn read_u32<R: KvaRead + ?Sized>(r: &R, at: Kva) -> Result<u32, MemError> {
    let mut b = [0u8; 4];
    r.read_kva(at, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// The error of a failed read of the table `what`.
fn unreadable(what: &'static str) -> impl Fn(MemError) -> KallsymsError + Copy {
    move |source| KallsymsError::Read { what, source }
}

/// `kallsyms_num_syms` (checked against [`MAX_SYMBOLS`]) and the token tables: what
/// both the eager decode and the index read first.
fn read_head<R: KvaRead + ?Sized>(
    r: &R,
    layout: &KallsymsLayout,
) -> Result<(usize, index::Tokens), KallsymsError> {
    let n = read_u32(r, layout.num_syms).map_err(unreadable("kallsyms_num_syms"))? as usize;
    if n == 0 || n > MAX_SYMBOLS {
        return Err(KallsymsError::BadCount(n as u64));
    }
    Ok((n, index::Tokens::read(r, layout)?))
}

/// Decodes every symbol. Bounded: at most [`MAX_SYMBOLS`] symbols of at most
/// [`MAX_NAME_LEN`] bytes; every table read is checked.
pub fn decode<R: KvaRead + ?Sized>(
    r: &R,
    layout: &KallsymsLayout,
) -> Result<SymbolTable, KallsymsError> {
    let (n, tokens) = read_head(r, layout)?;
    let addrs = decode_addresses(r, &layout.addrs, n)?;

    let mut out = SymbolTableBuilder::new();
    let mut names = Stream::new(r, layout.names);
    let mut name = Vec::with_capacity(64);
    for (i, &addr) in addrs.iter().enumerate() {
        let b0 = names.byte().map_err(unreadable("kallsyms_names"))?;
        let len = if b0 & 0x80 != 0 {
            let b1 = names.byte().map_err(unreadable("kallsyms_names"))?;
            usize::from(b0 & 0x7f) | (usize::from(b1) << 7)
        } else {
            usize::from(b0)
        };
        if len == 0 {
            return Err(KallsymsError::BadName {
                index: i,
                why: "zero-length entry",
            });
        }
        name.clear();
        for _ in 0..len {
            let t = names.byte().map_err(unreadable("kallsyms_names"))?;
            name.extend_from_slice(tokens.expansion(t));
            if name.len() > MAX_NAME_LEN + 1 {
                return Err(KallsymsError::BadName {
                    index: i,
                    why: "longer than KSYM_NAME_LEN",
                });
            }
        }
        let Some((&kind, rest)) = name.split_first() else {
            return Err(KallsymsError::BadName {
                index: i,
                why: "empty expansion",
            });
        };
        let s = std::str::from_utf8(rest).map_err(|_| KallsymsError::BadName {
            index: i,
            why: "not UTF-8",
        })?;
        out.push(s, Kva(addr), kind as char)?;
    }
    Ok(out.build())
}

fn decode_addresses<R: KvaRead + ?Sized>(
    r: &R,
    addrs: &KallsymsAddrs,
    n: usize,
) -> Result<Vec<u64>, KallsymsError> {
    let t = AddrTable::read(r, addrs, n)?;
    Ok((0..t.len()).map(|i| t.get(i)).collect())
}

/// Symbol addresses as the guest stores them (8 or 4 bytes each), decoded on access:
/// half the memory of decoded addresses for the 32-bit forms, and no second pass.
pub(crate) struct AddrTable {
    raw: Vec<u8>,
    form: AddrForm,
}

#[derive(Clone, Copy)]
enum AddrForm {
    Absolute,
    /// `kallsyms_relative_base` + offset; with absolute per-CPU symbols (some offset is
    /// negative) non-negative offsets are absolute and negative ones `base - 1 - off`.
    RelativeBase {
        base: u64,
        absolute_percpu: bool,
    },
    /// Offset from the table entry's own address.
    PcRelative {
        table: u64,
    },
}

impl AddrTable {
    pub(crate) fn read<R: KvaRead + ?Sized>(
        r: &R,
        addrs: &KallsymsAddrs,
        n: usize,
    ) -> Result<AddrTable, KallsymsError> {
        let (at, width, what) = match *addrs {
            KallsymsAddrs::Absolute { addresses } => (addresses, 8, "kallsyms_addresses"),
            KallsymsAddrs::RelativeBase { offsets, .. } | KallsymsAddrs::PcRelative { offsets } => {
                (offsets, 4, "kallsyms_offsets")
            }
        };
        let mut raw = vec![0u8; n * width];
        r.read_kva(at, &mut raw).map_err(unreadable(what))?;
        let form = match *addrs {
            KallsymsAddrs::Absolute { .. } => AddrForm::Absolute,
            KallsymsAddrs::RelativeBase { relative_base, .. } => {
                let mut b = [0u8; 8];
                r.read_kva(relative_base, &mut b)
                    .map_err(unreadable("kallsyms_relative_base"))?;
                AddrForm::RelativeBase {
                    base: u64::from_le_bytes(b),
                    absolute_percpu: raw.chunks_exact(4).any(|c| c[3] & 0x80 != 0),
                }
            }
            KallsymsAddrs::PcRelative { offsets } => AddrForm::PcRelative { table: offsets.0 },
        };
        Ok(AddrTable { raw, form })
    }

    /// Number of addresses.
    pub(crate) fn len(&self) -> usize {
        match self.form {
            AddrForm::Absolute => self.raw.len() / 8,
            _ => self.raw.len() / 4,
        }
    }

    /// Whether the addresses are in non-decreasing order: one pass over the raw table,
    /// with the form decided once.
    pub(crate) fn is_sorted(&self) -> bool {
        fn sorted(mut addrs: impl Iterator<Item = u64>) -> bool {
            let Some(mut prev) = addrs.next() else {
                return true;
            };
            addrs.all(|a| {
                let ok = prev <= a;
                prev = a;
                ok
            })
        }
        let offs = || {
            self.raw
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match self.form {
            AddrForm::Absolute => sorted(
                self.raw
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
            ),
            AddrForm::PcRelative { table } => sorted(offs().enumerate().map(|(i, o)| {
                table
                    .wrapping_add(4 * i as u64)
                    .wrapping_add(o as i64 as u64)
            })),
            AddrForm::RelativeBase { .. } => sorted((0..self.len()).map(|i| self.get(i))),
        }
    }

    /// Address `i` (`i < len()`; 0 past the end).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        let off = || {
            self.raw
                .get(i * 4..i * 4 + 4)
                .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match self.form {
            AddrForm::Absolute => self
                .raw
                .get(i * 8..i * 8 + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
            AddrForm::RelativeBase {
                base,
                absolute_percpu,
            } => {
                let o = off();
                if !absolute_percpu {
                    base.wrapping_add(u64::from(o as u32))
                } else if o >= 0 {
                    o as u64
                } else {
                    base.wrapping_sub(1).wrapping_sub(o as i64 as u64)
                }
            }
            AddrForm::PcRelative { table } => table
                .wrapping_add(4 * i as u64)
                .wrapping_add(off() as i64 as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{KallsymsForm, encode_kallsyms};

    /// Flat kernel memory: `bytes` at `base`.
    #[derive(Clone)]
    struct Flat {
        base: u64,
        bytes: Vec<u8>,
    }

    impl KvaRead for Flat {
        fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError> {
            let off = kva.0.wrapping_sub(self.base) as usize;
            match self.bytes.get(off..off.wrapping_add(buf.len())) {
                Some(s) if off.checked_add(buf.len()).is_some() => {
                    buf.copy_from_slice(s);
                    Ok(())
                }
                _ => Err(MemError::Untranslatable {
                    kva,
                    why: "outside test memory",
                }),
            }
        }
    }

    const BASE: u64 = 0xffff_ffff_8200_0000;

    fn syms(names: &[&str]) -> Vec<(String, u64, char)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), 0xffff_ffff_8100_0000 + 0x40 * i as u64, 't'))
            .collect()
    }

    fn layout(t: &crate::synth::KallsymsTables) -> KallsymsLayout {
        let a = |n: &str| Kva(t.symbol_addrs.iter().find(|s| s.0 == n).unwrap().1);
        KallsymsLayout {
            num_syms: a("kallsyms_num_syms"),
            names: a("kallsyms_names"),
            token_table: a("kallsyms_token_table"),
            token_index: a("kallsyms_token_index"),
            addrs: t.addrs,
        }
    }

    fn setup(names: &[&str], form: KallsymsForm) -> (Flat, KallsymsLayout) {
        setup_syms(&syms(names), form)
    }

    fn setup_syms(syms: &[(String, u64, char)], form: KallsymsForm) -> (Flat, KallsymsLayout) {
        let t = encode_kallsyms(syms, form, BASE);
        let l = layout(&t);
        (
            Flat {
                base: BASE,
                bytes: t.bytes,
            },
            l,
        )
    }

    fn poke(m: &mut Flat, at: Kva, b: &[u8]) {
        let o = (at.0 - m.base) as usize;
        m.bytes[o..o + b.len()].copy_from_slice(b);
    }

    #[test]
    fn round_trips_every_form() {
        let names = ["schedule", "init_task", "per_cpu_runqueues", "x"];
        for form in [
            KallsymsForm::Absolute,
            KallsymsForm::RelativeBase,
            KallsymsForm::PcRelative,
        ] {
            let (m, l) = setup(&names, form);
            let t = decode(&m, &l).unwrap();
            assert_eq!(t.len(), 4);
            for (n, a, k) in syms(&names) {
                let s = t.get(&n).unwrap();
                assert_eq!((s.addr, s.kind), (Kva(a), k), "{form:?} {n}");
            }
        }
    }

    /// The table a decode could not read, when it failed that way.
    fn unread_table<T>(r: Result<T, KallsymsError>) -> Option<&'static str> {
        match r {
            Err(KallsymsError::Read { what, .. }) => Some(what),
            _ => None,
        }
    }

    #[test]
    fn implausible_counts_are_errors() {
        let (mut m, l) = setup(&["a", "b"], KallsymsForm::PcRelative);
        poke(&mut m, l.num_syms, &0u32.to_le_bytes());
        assert_eq!(decode(&m, &l).unwrap_err(), KallsymsError::BadCount(0));
        poke(&mut m, l.num_syms, &u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&m, &l).unwrap_err(),
            KallsymsError::BadCount(u64::from(u32::MAX))
        );
        // A plausible count larger than the tables: the offsets read runs out.
        poke(&mut m, l.num_syms, &100_000u32.to_le_bytes());
        assert_eq!(unread_table(decode(&m, &l)), Some("kallsyms_offsets"));
    }

    #[test]
    fn corrupt_names_and_tokens_are_errors() {
        let (m0, l) = setup(&["abc", "def"], KallsymsForm::PcRelative);
        // A zero-length entry.
        let mut m = m0.clone();
        poke(&mut m, l.names, &[0]);
        assert!(matches!(
            decode(&m, &l),
            Err(KallsymsError::BadName { index: 0, .. })
        ));
        // A length running past the end of memory.
        let mut m = m0.clone();
        let end = m.base + m.bytes.len() as u64;
        let mut l2 = l;
        l2.names = Kva(end - 2);
        poke(&mut m, l2.names, &[0x7f, 0x41]);
        assert_eq!(unread_table(decode(&m, &l2)), Some("kallsyms_names"));
        // Token index pointing past the table with no NUL.
        let mut m = m0.clone();
        poke(&mut m, l.token_index, &0xfff0u16.to_le_bytes());
        assert!(matches!(
            decode(&m, &l),
            Err(KallsymsError::BadToken { token: 0 })
        ));
        // Names longer than KSYM_NAME_LEN (each token repeated).
        let long = "y".repeat(MAX_NAME_LEN + 10);
        let (m, l) = setup(&[&long], KallsymsForm::PcRelative);
        assert!(matches!(
            decode(&m, &l),
            Err(KallsymsError::BadName { index: 0, .. })
        ));
        // Unreadable tables.
        let (m, mut l) = setup(&["a"], KallsymsForm::PcRelative);
        l.token_table = Kva(1);
        assert_eq!(unread_table(decode(&m, &l)), Some("kallsyms_token_table"));
    }

    /// Every answer of the lazy index equals the eager table's: by name (duplicates
    /// included), by address (between, at and past symbols, ties at one address), in
    /// sorted and unsorted kallsyms order, across block boundaries.
    /// 700 symbols: three blocks, names made of the synthetic tokens, duplicates
    /// (static functions), several symbols at one address.
    fn many_syms() -> Vec<(String, u64, char)> {
        let words = [
            "sched_", "init", "_task", "per_cpu", "x", "run", "queues", "do_", "q",
        ];
        (0..700u64)
            .map(|i| {
                let name = format!(
                    "{}{}{}",
                    words[(i % 9) as usize],
                    words[((i / 9) % 9) as usize],
                    i % 250
                );
                let kind = ['t', 'T', 'D', 'b'][(i % 4) as usize];
                (name, 0xffff_ffff_8100_0000 + 0x40 * (i / 3), kind)
            })
            .collect()
    }

    /// Names absent from [`many_syms`], around and between present ones.
    const ABSENT: [&str; 6] = ["", "nope", "sched_", "x0", "qq249", "zzzz"];

    #[test]
    fn index_answers_as_the_eager_table() {
        let mut syms = many_syms();
        for form in [
            KallsymsForm::Absolute,
            KallsymsForm::RelativeBase,
            KallsymsForm::PcRelative,
        ] {
            for unsorted in [false, true] {
                if unsorted {
                    // Not address order: the index must sort as the table does.
                    syms.swap(10, 500);
                    syms.swap(3, 699);
                }
                let (m, l) = setup_syms(&syms, form);
                let table = decode(&m, &l).unwrap();
                let index = KallsymsIndex::build(&m, &l).unwrap();
                assert_eq!(index.len(), table.len());
                assert!(index.has_seqs_of_names(), "{form:?}");
                for (name, _, _) in &syms {
                    assert_eq!(index.get(&m, name), table.get(name), "{form:?} {name}");
                }
                for probe in ABSENT {
                    assert_eq!(index.get(&m, probe), table.get(probe), "{probe:?}");
                }
                let lo = 0xffff_ffff_8100_0000u64;
                for a in (lo - 0x80..lo + 0x40 * 240).step_by(0x1c).chain([
                    lo + 0x40 * 233 + (1 << 20) - 1,
                    lo + 0x40 * 233 + (1 << 20),
                    u64::MAX,
                    0,
                ]) {
                    assert_eq!(
                        index.nearest(&m, Kva(a)),
                        table.nearest(Kva(a)),
                        "{form:?} unsorted={unsorted} {a:#x}"
                    );
                }
                let whole = index.to_table(&m).unwrap();
                assert!(whole.iter().eq(table.iter()));
            }
        }
    }

    /// `kallsyms_seqs_of_names` absent, damaged or sorted otherwise: the index finds
    /// it unusable or not, and answers by name as the eager table either way.
    #[test]
    fn index_answers_by_name_whatever_seqs_of_names_holds() {
        let syms = many_syms();
        let t = encode_kallsyms(&syms, KallsymsForm::PcRelative, BASE);
        let l = layout(&t);
        let at = Kva(t
            .symbol_addrs
            .iter()
            .find(|s| s.0 == "kallsyms_seqs_of_names")
            .unwrap()
            .1);
        let m0 = Flat {
            base: BASE,
            bytes: t.bytes,
        };
        let table = decode(&m0, &l).unwrap();
        let o = (at.0 - BASE) as usize;
        let seqs = m0.bytes[o..o + 3 * syms.len()].to_vec();
        let entry = |p: usize| seqs[3 * p..3 * p + 3].to_vec();
        let reversed: Vec<u8> = (0..syms.len()).rev().flat_map(entry).collect();
        let mut swapped = seqs.clone();
        for (a, b) in [(1, 698), (100, 101), (350, 20)] {
            for k in 0..3 {
                swapped.swap(3 * a + k, 3 * b + k);
            }
        }
        // Damage among the first 64 entries makes the table unusable; deeper damage
        // is met (or not) by the lookups, which then ask the hash.
        let damaged = |p: usize, v: &[u8]| {
            let mut d = seqs.clone();
            d[3 * p..3 * p + 3].copy_from_slice(v);
            d
        };
        let out_of_range = [0, 2, 0xbc];
        for (what, bytes, usable) in [
            ("intact", seqs.clone(), true),
            ("zeroed", vec![0; seqs.len()], false),
            ("an index twice", damaged(6, &entry(5)), false),
            ("an index out of range", damaged(40, &out_of_range), false),
            ("reversed", reversed, false),
            ("an index twice, deep", damaged(501, &entry(500)), true),
            (
                "an index out of range, deep",
                damaged(600, &out_of_range),
                true,
            ),
            ("three pairs swapped", swapped, true),
        ] {
            let mut m = m0.clone();
            poke(&mut m, at, &bytes);
            let index = KallsymsIndex::build(&m, &l).unwrap();
            assert_eq!(index.has_seqs_of_names(), usable, "{what}");
            for (name, _, _) in &syms {
                assert_eq!(index.get(&m, name), table.get(name), "{what}: {name}");
            }
            for probe in ABSENT {
                assert_eq!(index.get(&m, probe), None, "{what}: {probe:?}");
            }
        }
    }

    /// A names table several times the index's read chunk, with one- and two-byte
    /// entry headers landing across chunk ends: the length pass finds every entry.
    #[test]
    fn index_of_a_large_table_answers_as_the_eager_table() {
        let syms: Vec<(String, u64, char)> = (0..6_000u64)
            .map(|i| {
                let name = if i % 61 == 0 {
                    format!("{}{i}", "z".repeat(130 + (i % 7) as usize))
                } else {
                    format!("symbol_number_{i}_of_many")
                };
                (name, 0xffff_ffff_8100_0000 + 0x10 * i, 't')
            })
            .collect();
        let (m, l) = setup_syms(&syms, KallsymsForm::PcRelative);
        let table = decode(&m, &l).unwrap();
        let index = KallsymsIndex::build(&m, &l).unwrap();
        assert!(index.has_seqs_of_names());
        assert!(index.to_table(&m).unwrap().iter().eq(table.iter()));
        for (name, addr, _) in syms.iter().step_by(13) {
            assert_eq!(index.get(&m, name), table.get(name), "{name}");
            assert_eq!(
                index.nearest(&m, Kva(addr + 5)),
                table.nearest(Kva(addr + 5))
            );
        }
    }

    #[test]
    fn index_rejects_what_decode_rejects() {
        let (m0, l) = setup(&["abc", "def"], KallsymsForm::PcRelative);
        let mut m = m0.clone();
        poke(&mut m, l.names, &[0]);
        assert_eq!(
            KallsymsIndex::build(&m, &l).unwrap_err(),
            decode(&m, &l).unwrap_err()
        );
        let mut m = m0.clone();
        poke(&mut m, l.num_syms, &0u32.to_le_bytes());
        assert_eq!(
            KallsymsIndex::build(&m, &l).unwrap_err(),
            KallsymsError::BadCount(0)
        );
        let long = "y".repeat(MAX_NAME_LEN + 10);
        let (m, l) = setup(&["a", &long], KallsymsForm::PcRelative);
        assert_eq!(
            KallsymsIndex::build(&m, &l).unwrap_err(),
            decode(&m, &l).unwrap_err()
        );
        // A token table not as kallsyms.c writes it (every token at one offset, here
        // the 7-byte `per_cpu`): every name is checked by the build, as by decode.
        let mut names: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
        names[300] = "q".repeat(80);
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let (mut m, l) = setup(&names, KallsymsForm::PcRelative);
        let mut ti = [0u8; 2];
        m.read_kva(Kva(l.token_index.0 + 2 * 0x83), &mut ti)
            .unwrap();
        poke(&mut m, l.token_index, &ti.repeat(256));
        let too_long_300 = KallsymsError::BadName {
            index: 300,
            why: "longer than KSYM_NAME_LEN",
        };
        assert_eq!(decode(&m, &l).unwrap_err(), too_long_300);
        assert_eq!(KallsymsIndex::build(&m, &l).unwrap_err(), too_long_300);
        // Past the first and last blocks, what names expand to is checked when they
        // are expanded, with decode's error: the index answers nothing from that block.
        let mut names: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
        names[300] = long;
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let (m, l) = setup(&names, KallsymsForm::PcRelative);
        let index = KallsymsIndex::build(&m, &l).unwrap();
        assert_eq!(decode(&m, &l).unwrap_err(), too_long_300);
        assert_eq!(index.to_table(&m).unwrap_err(), too_long_300);
        for (name, addr, _) in syms(&names) {
            let blk = (addr - 0xffff_ffff_8100_0000) / 0x40 / 256;
            let sym = index.get(&m, &name);
            assert_eq!(sym.is_none(), blk == 1, "{name:.10}");
            assert_eq!(index.nearest(&m, Kva(addr)).is_none(), blk == 1);
        }
        let (m, mut l) = setup(&["a"], KallsymsForm::PcRelative);
        l.token_table = Kva(1);
        assert_eq!(
            unread_table(KallsymsIndex::build(&m, &l)),
            Some("kallsyms_token_table")
        );
        // Names running past the end of memory.
        let (mut m, mut l) = setup(&["a"], KallsymsForm::PcRelative);
        let end = m.base + m.bytes.len() as u64;
        l.names = Kva(end - 2);
        poke(&mut m, l.names, &[0x7f, 0x41]);
        assert_eq!(
            unread_table(KallsymsIndex::build(&m, &l)),
            Some("kallsyms_names")
        );
    }

    #[test]
    fn index_of_overwritten_names_answers_nothing_instead_of_garbage() {
        let names: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        let (m0, l) = setup(&names, KallsymsForm::PcRelative);
        let index = KallsymsIndex::build(&m0, &l).unwrap();
        // Live memory changed after the index was built: entry lengths in the middle
        // block (the first and last are expanded by the build) now point past it.
        let mut m = m0.clone();
        // Entry `i` is a length byte and the tokens `t`, `s` and one per digit.
        let at: u64 = (0..300).map(|i| 3 + format!("{i}").len() as u64).sum();
        poke(&mut m, Kva(l.names.0 + at), &[0x7f]);
        assert_eq!(index.get(&m, "s300"), None);
        assert_eq!(
            index.nearest(&m, Kva(0xffff_ffff_8100_0000 + 0x40 * 300)),
            None
        );
        for name in ["s3", "s599"] {
            assert!(index.get(&m, name).is_none_or(|s| s.name == name));
        }
        assert!(index.to_table(&m).is_err());
    }

    #[test]
    fn layout_from_vmcoreinfo_picks_the_address_form() {
        let base = "OSRELEASE=x\nSYMBOL(kallsyms_names)=1\nSYMBOL(kallsyms_num_syms)=2\n\
                    SYMBOL(kallsyms_token_table)=3\nSYMBOL(kallsyms_token_index)=4\n";
        let with = |extra: &str| {
            KallsymsLayout::from_vmcoreinfo(
                &VmcoreInfo::parse(format!("{base}{extra}").as_bytes()).unwrap(),
            )
        };
        assert_eq!(with(""), None);
        assert_eq!(
            with("SYMBOL(kallsyms_offsets)=5\n").unwrap().addrs,
            KallsymsAddrs::PcRelative { offsets: Kva(5) }
        );
        assert_eq!(
            with("SYMBOL(kallsyms_offsets)=5\nSYMBOL(kallsyms_relative_base)=6\n")
                .unwrap()
                .addrs,
            KallsymsAddrs::RelativeBase {
                offsets: Kva(5),
                relative_base: Kva(6)
            }
        );
        assert_eq!(
            with("SYMBOL(kallsyms_addresses)=7\n").unwrap().addrs,
            KallsymsAddrs::Absolute { addresses: Kva(7) }
        );
    }
}
