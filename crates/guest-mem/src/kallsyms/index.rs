//! Symbol lookups served straight from the kernel's kallsyms tables, without decoding
//! and storing every name.
//!
//! Decoding ~200k names into a table sorted twice (by address, by name) cost most of a
//! whole-vmcore dump's time and memory (`cargo xtask bench dump` measures it against this
//! index: its `--eager-symbols` baseline), while a dump asks for a few dozen names and a
//! few hundred addresses. [`KallsymsIndex::build`] makes one pass over
//! `kallsyms_names` that reads entry lengths only: it checks that every entry has
//! tokens and reads whole, and remembers where every 16th entry starts (every 256th
//! as the kernel's own `kallsyms_markers`, recomputed so that the structure rests on
//! VMCOREINFO's tables only). Names are expanded only on demand, a block of 256 at a
//! time, cached for the index's lifetime so lookups can lend `&str`s; what a name
//! expands to (at most KSYM_NAME_LEN bytes, UTF-8) is checked then.
//!
//! By name, lookups binary-search the kernel's `kallsyms_seqs_of_names` (Linux ≥ 6.2)
//! when it is where `scripts/kallsyms.c` puts it and looks sorted, expanding only the
//! probed names. A name it does not find — or where it shows it is not sorted as
//! assumed — is looked up in a hash of every name, built on that first need from
//! per-token hash parts (a polynomial hash composes over concatenation:
//! `H(a ‖ b) = H(a)·B^|b| + H(b)`). Found names are always compared exactly.
//!
//! The answers equal those of [`SymbolTable`] built from the same tables: by name the
//! lowest address (then the first in kallsyms order) among duplicates; by address the
//! last symbol at or below it in (stable) address order, `None` more than 1 MiB past the
//! last symbol.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::{
    AddrTable, KallsymsAddrs, KallsymsError, KallsymsLayout, read_head, read_upto, unreadable,
};
use crate::symbols::SymbolTableBuilder;
use crate::symbols::{MAX_NAME_LEN, NearestSymbol, Symbol, SymbolTable};
use crate::{Kva, KvaRead, MemError};

/// Multiplier of the polynomial name hash (odd, so powers never vanish mod 2^64).
const HASH_BASE: u64 = 0x0000_0100_0000_01b3;
/// Entries per name block (as the kernel's markers).
const BLOCK: usize = 256;
/// Entries per remembered start within a block.
const STRIDE: usize = 16;
/// Past the last symbol, addresses this far off still belong to it.
const TAIL: u64 = 1 << 20;

/// One token's expansion and its hash parts.
#[derive(Clone, Copy, Default)]
struct TokenHash {
    /// `B^len`: what the hash so far is multiplied by when this token follows.
    mul: u64,
    /// `H(expansion)`.
    add: u64,
    /// `H(expansion[1..])`: the token that starts a name carries the type letter.
    first_add: u64,
    len: u32,
}

/// The token table: 256 expansions in one buffer.
pub(super) struct Tokens {
    bytes: Vec<u8>,
    /// `(start, len)` of each token in `bytes`.
    spans: [(u32, u32); 256],
    hash: [TokenHash; 256],
    /// Whether the table looks as `scripts/kallsyms.c` writes it: 256 distinct,
    /// non-empty ASCII expansions at increasing offsets. Every name of such a table
    /// expands to ASCII and is not empty.
    plausible: bool,
}

impl Tokens {
    pub(super) fn read<R: KvaRead + ?Sized>(
        r: &R,
        layout: &KallsymsLayout,
    ) -> Result<Tokens, KallsymsError> {
        let mut idx_bytes = [0u8; 512];
        r.read_kva(layout.token_index, &mut idx_bytes)
            .map_err(unreadable("kallsyms_token_index"))?;
        let index: Vec<usize> = idx_bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
            .collect();
        let max_idx = index.iter().copied().max().unwrap_or(0);
        let table = read_upto(r, layout.token_table, max_idx + 256)
            .map_err(unreadable("kallsyms_token_table"))?;
        let mut t = Tokens {
            bytes: Vec::with_capacity(table.len()),
            spans: [(0, 0); 256],
            hash: [TokenHash::default(); 256],
            plausible: index.windows(2).all(|w| w[0] < w[1]),
        };
        for (tok, &i) in index.iter().enumerate() {
            let rest = table
                .get(i..)
                .ok_or(KallsymsError::BadToken { token: tok })?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(KallsymsError::BadToken { token: tok })?;
            let exp = &rest[..end];
            t.plausible &= !exp.is_empty() && exp.is_ascii();
            t.spans[tok] = (t.bytes.len() as u32, end as u32);
            t.bytes.extend_from_slice(exp);
            t.hash[tok] = TokenHash {
                mul: exp.iter().fold(1u64, |m, _| m.wrapping_mul(HASH_BASE)),
                add: hash_bytes(0, exp),
                first_add: hash_bytes(0, exp.get(1..).unwrap_or(&[])),
                len: end as u32,
            };
        }
        Ok(t)
    }

    #[inline]
    pub(super) fn expansion(&self, t: u8) -> &[u8] {
        let (s, l) = self.spans[usize::from(t)];
        &self.bytes[s as usize..s as usize + l as usize]
    }
}

#[inline]
fn hash_bytes(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        h.wrapping_mul(HASH_BASE).wrapping_add(u64::from(b))
    })
}

/// A name's 32-bit tag: its polynomial hash, finally mixed (splitmix64's finalizer) so
/// that the top bits, which pick the bucket, depend on every byte.
#[inline]
fn tag(mut h: u64) -> u32 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    ((h ^ (h >> 31)) >> 32) as u32
}

/// Reads `kallsyms_names` in large chunks and lends slices of it, so that the pass
/// over every entry does no per-byte bookkeeping.
struct Window<'a, R: KvaRead + ?Sized> {
    r: &'a R,
    base: Kva,
    /// Offset (from `base`) of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
}

impl<'a, R: KvaRead + ?Sized> Window<'a, R> {
    const CHUNK: usize = 64 * 1024;

    fn new(r: &'a R, base: Kva) -> Self {
        Window {
            r,
            base,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// `len` bytes at offset `off`; reads a new chunk from `off` when they are not in
    /// the current one (less than a chunk when memory ends sooner, never less than
    /// `len`).
    #[inline]
    fn get(&mut self, off: u64, len: usize) -> Result<&[u8], MemError> {
        let have = off
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o.checked_add(len).is_some_and(|e| e <= self.buf.len()));
        let o = match have {
            Some(o) => o,
            None => {
                self.refill(off, len)?;
                0
            }
        };
        Ok(&self.buf[o..o + len])
    }

    #[inline(never)]
    fn refill(&mut self, off: u64, need: usize) -> Result<(), MemError> {
        let at = Kva(self.base.0.wrapping_add(off));
        let mut len = Self::CHUNK.max(need);
        loop {
            self.buf.resize(len, 0);
            match self.r.read_kva(at, &mut self.buf) {
                Ok(()) => break,
                Err(e) if len <= need => {
                    self.buf.clear();
                    return Err(e);
                }
                Err(_) => len = (len / 2).max(need),
            }
        }
        self.start = off;
        Ok(())
    }
}

/// 256 consecutive names, expanded.
struct Block {
    text: String,
    /// End of each name in `text` (a name starts where the previous one ends).
    ends: Vec<u32>,
    kinds: Vec<u8>,
}

impl Block {
    fn name(&self, i: usize) -> Option<(&str, char)> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // As `SymbolTableBuilder::push`: a type letter outside ASCII reads as `?`.
        let k = self.kinds[i];
        let kind = if k.is_ascii() { char::from(k) } else { '?' };
        Some((self.text.get(start..end)?, kind))
    }
}

/// Lazily decoded kallsyms: see the module documentation.
pub struct KallsymsIndex {
    names: Kva,
    names_len: u64,
    tokens: Tokens,
    /// Address of each symbol, in kallsyms order.
    addrs: AddrTable,
    /// Symbol indices in stable address order, only when kallsyms order is not
    /// already sorted by address (it is in every real kernel).
    by_addr: Option<Vec<u32>>,
    /// Offset in `kallsyms_names` of entries `0, 256, 512, ...`.
    markers: Vec<u64>,
    /// Offset of every [`STRIDE`]th entry from its block's marker.
    starts: Vec<u32>,
    /// `kallsyms_seqs_of_names` (3-byte big-endian symbol indices sorted by name),
    /// when found where the kernel puts it ([`KallsymsIndex::find_seqs`]).
    seqs: Option<Kva>,
    /// Names found through `seqs`, with their symbol (repeated lookups are common).
    found: Mutex<HashMap<Box<str>, u32>>,
    /// The name hash over every entry, built on the first name `seqs` cannot answer.
    by_name: OnceLock<Option<NameHash>>,
    blocks: Box<[OnceLock<Option<Block>>]>,
}

/// Every name's hash tag, bucketed: the lookup by name that needs no kernel table
/// beyond VMCOREINFO's.
struct NameHash {
    /// Hash tag of each symbol's name ([`tag`]).
    tags: Vec<u32>,
    /// `order[buckets[b]..buckets[b + 1]]`: symbols whose hash falls in bucket `b`,
    /// in kallsyms order.
    buckets: Vec<u32>,
    order: Vec<u32>,
    bucket_shift: u32,
}

/// At most this many names are remembered in [`KallsymsIndex::found`].
const MAX_FOUND: usize = 4096;

impl std::fmt::Debug for KallsymsIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KallsymsIndex")
            .field("symbols", &self.addrs.len())
            .field("names", &self.names)
            .field("names_len", &self.names_len)
            .field("seqs_of_names", &self.seqs.is_some())
            .finish()
    }
}

/// Entry `i`'s length header at the start of `b`: `(header bytes, token count)`.
#[inline]
fn entry_len(b0: u8, b1: impl FnOnce() -> Result<u8, MemError>) -> Result<(u64, usize), MemError> {
    Ok(if b0 & 0x80 != 0 {
        (2, usize::from(b0 & 0x7f) | (usize::from(b1()?) << 7))
    } else {
        (1, usize::from(b0))
    })
}

impl KallsymsIndex {
    /// Reads and checks the tables (the same checks and errors as [`super::decode`]),
    /// expanding no name. Bounded: at most [`MAX_SYMBOLS`](crate::symbols::MAX_SYMBOLS) entries of at most
    /// [`MAX_NAME_LEN`] bytes.
    pub fn build<R: KvaRead + ?Sized>(
        r: &R,
        layout: &KallsymsLayout,
    ) -> Result<KallsymsIndex, KallsymsError> {
        let (n, tokens) = read_head(r, layout)?;
        let addrs = AddrTable::read(r, &layout.addrs, n)?;
        // A damaged token table spoils every name: then each is checked now, as
        // `decode` does, so that the error says so rather than symbols not being found.
        let check = (!tokens.plausible).then_some(&tokens);
        let (markers, starts, names_len) = scan_names(r, layout.names, n, check)?;
        let by_addr = if addrs.is_sorted() {
            None
        } else {
            let mut v: Vec<u32> = (0..n as u32).collect();
            // Stable: symbols at one address keep kallsyms order, as in `SymbolTable`.
            v.sort_by_key(|&i| addrs.get(i as usize));
            Some(v)
        };
        let blocks = (0..markers.len()).map(|_| OnceLock::new()).collect();
        let mut index = KallsymsIndex {
            names: layout.names,
            names_len,
            tokens,
            addrs,
            by_addr,
            markers,
            starts,
            seqs: None,
            found: Mutex::new(HashMap::new()),
            by_name: OnceLock::new(),
            blocks,
        };
        // The first and last blocks are expanded now: damaged token tables (which spoil
        // every name) and names are reported here, with decode's errors, rather than
        // as symbols that are not found.
        let last = index.blocks.len() - 1;
        for b in std::iter::once(0).chain((last > 0).then_some(last)) {
            let blk = index.decode_block(r, b)?;
            let _ = index.blocks[b].set(Some(blk));
        }
        index.seqs = index.find_seqs(r, layout);
        Ok(index)
    }

    /// The name hash of every entry (read again: the checks were made by `build`).
    /// `None` when guest memory no longer reads as it did.
    fn name_hash<R: KvaRead + ?Sized>(&self, r: &R) -> Option<&NameHash> {
        self.by_name
            .get_or_init(|| self.build_name_hash(r).ok())
            .as_ref()
    }

    fn build_name_hash<R: KvaRead + ?Sized>(&self, r: &R) -> Result<NameHash, MemError> {
        let n = self.addrs.len();
        let mut tags = Vec::with_capacity(n);
        let mut names = Window::new(r, self.names);
        let mut off = 0u64;
        let th = &self.tokens.hash;
        for _ in 0..n {
            let b0 = names.get(off, 1)?[0];
            let (hl, len) = entry_len(b0, || Ok(names.get(off, 2)?[1]))?;
            let toks = names.get(off + hl, len)?;
            off += hl + len as u64;
            let mut h = 0u64;
            let mut started = false;
            for &t in toks {
                let p = &th[usize::from(t)];
                if started {
                    h = h.wrapping_mul(p.mul).wrapping_add(p.add);
                } else if p.len > 0 {
                    // The first expanded byte is the type letter, not part of the name.
                    started = true;
                    h = p.first_add;
                }
            }
            tags.push(tag(h));
        }
        // Counting sort of the symbols into about two per bucket, by the tags' top bits.
        let bits = (usize::BITS - (n - 1).leading_zeros())
            .saturating_sub(1)
            .max(1);
        let bucket_shift = 32 - bits;
        let mut buckets = vec![0u32; (1usize << bits) + 1];
        for &t in &tags {
            buckets[(t >> bucket_shift) as usize] += 1;
        }
        // Inclusive prefix sums: `buckets[b]` is the end of bucket `b`; filling each
        // bucket from its end, in reverse, leaves it at the bucket's start and the
        // symbols of a bucket in kallsyms order.
        for b in 1..buckets.len() {
            buckets[b] += buckets[b - 1];
        }
        let mut order = vec![0u32; n];
        for (i, &t) in tags.iter().enumerate().rev() {
            let slot = &mut buckets[(t >> bucket_shift) as usize];
            *slot -= 1;
            order[*slot as usize] = i as u32;
        }
        Ok(NameHash {
            tags,
            buckets,
            order,
            bucket_shift,
        })
    }

    /// Whether lookups by name use the kernel's `kallsyms_seqs_of_names` (found and
    /// valid), rather than a hash of every name.
    pub fn has_seqs_of_names(&self) -> bool {
        self.seqs.is_some()
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether there are none (never, for a built index).
    pub fn is_empty(&self) -> bool {
        self.addrs.len() == 0
    }

    /// The expanded block `b`, decoded on first use. `None` when guest memory no longer
    /// reads or decodes as it did when the index was built (live memory overwritten).
    fn block<R: KvaRead + ?Sized>(&self, r: &R, b: usize) -> Option<&Block> {
        self.blocks
            .get(b)?
            .get_or_init(|| self.decode_block(r, b).ok())
            .as_ref()
    }

    /// Expands block `b`, checking each name as [`super::decode`] does (with its
    /// errors): at most KSYM_NAME_LEN bytes, not empty, UTF-8 after the type letter.
    fn decode_block<R: KvaRead + ?Sized>(&self, r: &R, b: usize) -> Result<Block, KallsymsError> {
        let start = self.markers[b];
        let end = self.markers.get(b + 1).copied().unwrap_or(self.names_len);
        let count = (self.addrs.len() - b * BLOCK).min(BLOCK);
        let mut raw = vec![0u8; (end - start) as usize];
        r.read_kva(Kva(self.names.0.wrapping_add(start)), &mut raw)
            .map_err(unreadable("kallsyms_names"))?;
        let mut blk = Block {
            text: String::with_capacity(raw.len() * 3),
            ends: Vec::with_capacity(count),
            kinds: Vec::with_capacity(count),
        };
        let mut pos = 0usize;
        let mut name = Vec::with_capacity(64);
        for j in 0..count {
            let i = b * BLOCK + j;
            let changed = || bad(i, "changed since it was indexed");
            let b0 = *raw.get(pos).ok_or_else(changed)?;
            let (hl, len) = entry_len(b0, || Ok(raw.get(pos + 1).copied().unwrap_or(0)))
                .map_err(|_: MemError| changed())?;
            pos += hl as usize;
            let toks = raw.get(pos..pos + len).ok_or_else(changed)?;
            pos += len;
            name.clear();
            for &t in toks {
                name.extend_from_slice(self.tokens.expansion(t));
                if name.len() > MAX_NAME_LEN + 1 {
                    return Err(bad(i, "longer than KSYM_NAME_LEN"));
                }
            }
            let (&kind, rest) = name
                .split_first()
                .ok_or_else(|| bad(i, "empty expansion"))?;
            blk.text
                .push_str(std::str::from_utf8(rest).map_err(|_| bad(i, "not UTF-8"))?);
            blk.ends.push(blk.text.len() as u32);
            blk.kinds.push(kind);
        }
        Ok(blk)
    }

    /// Symbol number `i` (kallsyms order).
    fn symbol_at<R: KvaRead + ?Sized>(&self, r: &R, i: usize) -> Option<Symbol<'_>> {
        let (name, kind) = self.block(r, i / BLOCK)?.name(i % BLOCK)?;
        Some(Symbol {
            name,
            addr: Kva(self.addrs.get(i)),
            kind,
        })
    }

    /// The symbol `name`: the lowest address among duplicates (then the first in
    /// kallsyms order), as [`SymbolTable::get`].
    ///
    /// By binary search over `kallsyms_seqs_of_names` when there is one; a name it does
    /// not find is looked up again in the hash of every name (built then), so that a
    /// table sorted otherwise than this search assumes never hides a symbol. A found
    /// name is always compared exactly.
    pub fn get<R: KvaRead + ?Sized>(&self, r: &R, name: &str) -> Option<Symbol<'_>> {
        if let Some(seqs) = self.seqs {
            let known = self.found.lock().ok().and_then(|m| m.get(name).copied());
            if let Some(i) = known.or_else(|| self.seek(r, seqs, name)) {
                if known.is_none()
                    && let Ok(mut m) = self.found.lock()
                    && m.len() < MAX_FOUND
                {
                    m.insert(name.into(), i);
                }
                return self.symbol_at(r, i as usize);
            }
        }
        self.get_by_hash(r, name)
    }

    /// The symbol `name` by binary search over `seqs` (sorted by name, duplicates by
    /// address then kallsyms order): of the run of equal names, the lowest address,
    /// then the first in kallsyms order. `None` when not found or unreadable.
    fn seek<R: KvaRead + ?Sized>(&self, r: &R, seqs: Kva, name: &str) -> Option<u32> {
        let n = self.addrs.len();
        let want = name.as_bytes();
        let mut buf = Vec::with_capacity(64);
        let mut cmp = |p: usize| -> Option<Ordering> {
            self.expand(r, self.seq_at(r, seqs, p)?, &mut buf)?;
            Some(buf.as_slice().cmp(want))
        };
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cmp(mid)? == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Where the table shows it is not sorted as assumed around the answer, it is
        // not trusted (the caller asks the hash).
        if lo > 0 && cmp(lo - 1)? != Ordering::Less {
            return None;
        }
        let mut best: Option<usize> = None;
        for p in lo..n {
            match cmp(p)? {
                Ordering::Equal => {}
                Ordering::Greater => break,
                Ordering::Less => return None,
            }
            let i = self.seq_at(r, seqs, p)?;
            let key = |i: usize| (self.addrs.get(i), i);
            if best.is_none_or(|b| key(i) < key(b)) {
                best = Some(i);
            }
        }
        best.map(|i| i as u32)
    }

    /// Every symbol whose name starts with `prefix`, in name order, by binary search
    /// over `kallsyms_seqs_of_names`. `None` without that table, with more than `max`
    /// of them, when a name does not read, or where the table shows it is not sorted
    /// around them: the caller then has no complete list.
    pub fn with_prefix<R: KvaRead + ?Sized>(
        &self,
        r: &R,
        prefix: &str,
        max: usize,
    ) -> Option<Vec<Symbol<'_>>> {
        let seqs = self.seqs?;
        let n = self.addrs.len();
        let want = prefix.as_bytes();
        let mut buf = Vec::with_capacity(64);
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.expand(r, self.seq_at(r, seqs, mid)?, &mut buf)?;
            if buf.as_slice() < want {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo > 0 {
            self.expand(r, self.seq_at(r, seqs, lo - 1)?, &mut buf)?;
            if buf.as_slice() >= want {
                return None;
            }
        }
        let mut out = Vec::new();
        for p in lo..n {
            let i = self.seq_at(r, seqs, p)?;
            self.expand(r, i, &mut buf)?;
            if !buf.starts_with(want) {
                // Past the run; a smaller name here would mean the table is unsorted.
                if buf.as_slice() < want {
                    return None;
                }
                break;
            }
            if out.len() == max {
                return None;
            }
            out.push(self.symbol_at(r, i)?);
        }
        Some(out)
    }

    /// The lowest symbol address above `addr` (where the symbol at `addr` ends, as far
    /// as kallsyms knows).
    pub fn next_address(&self, addr: Kva) -> Option<Kva> {
        let pos = self.count_in_addr_order(|a| a <= addr.0);
        Some(Kva(self.addrs.get(self.in_addr_order(pos)?)))
    }

    /// Entry `p` of the `kallsyms_seqs_of_names` at `seqs`: a symbol index (`None`
    /// when unreadable or out of range).
    fn seq_at<R: KvaRead + ?Sized>(&self, r: &R, seqs: Kva, p: usize) -> Option<usize> {
        let mut c = [0u8; 3];
        r.read_kva(Kva(seqs.0.wrapping_add(3 * p as u64)), &mut c)
            .ok()?;
        let i = (usize::from(c[0]) << 16) | (usize::from(c[1]) << 8) | usize::from(c[2]);
        (i < self.addrs.len()).then_some(i)
    }

    /// Symbol `i`'s name without its type letter, into `out` (at most KSYM_NAME_LEN
    /// bytes, not checked for UTF-8). `None` when the entry no longer reads as it did
    /// or expands to too much.
    fn expand<R: KvaRead + ?Sized>(&self, r: &R, i: usize, out: &mut Vec<u8>) -> Option<()> {
        let (b, k) = (i / BLOCK, i / STRIDE);
        let start = self.markers.get(b)? + u64::from(*self.starts.get(k)?);
        let end = match self.starts.get(k + 1) {
            Some(&s) if !(k + 1).is_multiple_of(BLOCK / STRIDE) => self.markers[b] + u64::from(s),
            _ => self.markers.get(b + 1).copied().unwrap_or(self.names_len),
        };
        let mut small = [0u8; 512];
        let mut big = Vec::new();
        let raw = match usize::try_from(end.checked_sub(start)?).ok()? {
            len if len <= small.len() => &mut small[..len],
            len => {
                big.resize(len, 0);
                &mut big[..]
            }
        };
        r.read_kva(Kva(self.names.0.wrapping_add(start)), raw)
            .ok()?;
        // Skip the entries before `i` in its stride.
        let header = |pos: usize| {
            let b0 = *raw.get(pos)?;
            let (hl, len) = entry_len(b0, || Ok(raw.get(pos + 1).copied().unwrap_or(0))).ok()?;
            Some((pos + hl as usize, len))
        };
        let mut pos = 0usize;
        for _ in 0..i % STRIDE {
            let (at, len) = header(pos)?;
            pos = at + len;
        }
        let (at, len) = header(pos)?;
        let toks = raw.get(at..at + len)?;
        out.clear();
        for &t in toks {
            out.extend_from_slice(self.tokens.expansion(t));
            if out.len() > MAX_NAME_LEN + 1 {
                return None;
            }
        }
        // The first expanded byte is the type letter.
        (!out.is_empty()).then(|| {
            out.remove(0);
        })
    }

    /// `kallsyms_seqs_of_names` (Linux ≥ 6.2): not in VMCOREINFO, but
    /// `scripts/kallsyms.c` writes it right after the address tables (≥ 6.4: after
    /// `kallsyms_relative_base` when there is one, else after the offsets or addresses)
    /// or, in 6.2 and 6.3, after `kallsyms_markers` (which follows the names). Each
    /// place is tried as is and aligned to 4 and 8 bytes; the table is taken where its
    /// first 64 entries are distinct symbol indices and 33 entries spread over it are
    /// sorted by name. `None` on older kernels or damaged tables. (It is not read
    /// whole: [`KallsymsIndex::get`] checks what it relies on.)
    fn find_seqs<R: KvaRead + ?Sized>(&self, r: &R, layout: &KallsymsLayout) -> Option<Kva> {
        let n = self.addrs.len();
        let n64 = n as u64;
        let after_addrs = match layout.addrs {
            KallsymsAddrs::Absolute { addresses } => addresses.0.wrapping_add(8 * n64),
            KallsymsAddrs::RelativeBase { relative_base, .. } => relative_base.0.wrapping_add(8),
            KallsymsAddrs::PcRelative { offsets } => offsets.0.wrapping_add(4 * n64),
        };
        let names_end = self.names.0.wrapping_add(self.names_len);
        let align = |a: u64, to: u64| a.wrapping_add(to - 1) & !(to - 1);
        let mut ends = vec![after_addrs];
        for width in [4, 8] {
            for to in [1, 8] {
                ends.push(align(names_end, to).wrapping_add(width * n64.div_ceil(BLOCK as u64)));
            }
        }
        let mut tried = Vec::new();
        for end in ends {
            for to in [1, 4, 8] {
                let at = Kva(align(end, to));
                if !tried.contains(&at) {
                    tried.push(at);
                    if self.looks_like_seqs(r, at) {
                        return Some(at);
                    }
                }
            }
        }
        None
    }

    /// See [`KallsymsIndex::find_seqs`].
    fn looks_like_seqs<R: KvaRead + ?Sized>(&self, r: &R, at: Kva) -> bool {
        let n = self.addrs.len();
        let mut head = vec![0u8; 3 * n.min(64)];
        if r.read_kva(at, &mut head).is_err() || !is_permutation(&head, n) {
            return false;
        }
        let (mut prev, mut name) = (Vec::new(), Vec::new());
        for k in 0..=32 {
            let p = (n - 1) * k / 32;
            let Some(i) = self.seq_at(r, at, p) else {
                return false;
            };
            if self.expand(r, i, &mut name).is_none() || (k > 0 && name < prev) {
                return false;
            }
            std::mem::swap(&mut prev, &mut name);
        }
        true
    }

    /// [`KallsymsIndex::get`] through the hash of every name.
    fn get_by_hash<R: KvaRead + ?Sized>(&self, r: &R, name: &str) -> Option<Symbol<'_>> {
        let h = self.name_hash(r)?;
        let t = tag(hash_bytes(0, name.as_bytes()));
        let b = (t >> h.bucket_shift) as usize;
        let (lo, hi) = (*h.buckets.get(b)?, *h.buckets.get(b + 1)?);
        let mut best: Option<Symbol<'_>> = None;
        for &i in h.order.get(lo as usize..hi as usize)? {
            if h.tags[i as usize] != t {
                continue;
            }
            if let Some(s) = self.symbol_at(r, i as usize)
                && s.name == name
                && best.is_none_or(|b| s.addr < b.addr)
            {
                best = Some(s);
            }
        }
        best
    }

    /// The symbol at or below `addr`, as [`SymbolTable::nearest`] (among aliases, the
    /// first in kallsyms order).
    pub fn nearest<R: KvaRead + ?Sized>(&self, r: &R, addr: Kva) -> Option<NearestSymbol<'_>> {
        let pos = self.count_in_addr_order(|a| a <= addr.0);
        let at = self.addrs.get(self.in_addr_order(pos.checked_sub(1)?)?);
        if pos == self.addrs.len() && addr.0 - at >= TAIL {
            return None;
        }
        let sym = self.in_addr_order(self.count_in_addr_order(|a| a < at))?;
        Some(NearestSymbol {
            symbol: self.symbol_at(r, sym)?,
            offset: addr.0 - at,
        })
    }

    /// How many symbols, in stable address order, have an address for which `below`
    /// holds (`below` must hold for a prefix of that order).
    fn count_in_addr_order(&self, below: impl Fn(u64) -> bool) -> usize {
        match &self.by_addr {
            None => {
                let (mut lo, mut hi) = (0, self.addrs.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if below(self.addrs.get(mid)) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
            Some(v) => v.partition_point(|&i| below(self.addrs.get(i as usize))),
        }
    }

    /// The symbol (kallsyms index) at position `p` of the stable address order.
    fn in_addr_order(&self, p: usize) -> Option<usize> {
        match &self.by_addr {
            None => (p < self.addrs.len()).then_some(p),
            Some(v) => v.get(p).map(|&i| i as usize),
        }
    }

    /// Every symbol decoded into a [`SymbolTable`] (what [`super::decode`] returns),
    /// without keeping the blocks.
    pub fn to_table<R: KvaRead + ?Sized>(&self, r: &R) -> Result<SymbolTable, KallsymsError> {
        let mut out = SymbolTableBuilder::new();
        for b in 0..self.blocks.len() {
            let owned;
            let blk = match self.blocks[b].get() {
                Some(Some(blk)) => blk,
                _ => {
                    owned = self.decode_block(r, b)?;
                    &owned
                }
            };
            for j in 0..blk.ends.len() {
                let (name, kind) = blk
                    .name(j)
                    .ok_or_else(|| bad(b * BLOCK + j, "changed since it was indexed"))?;
                out.push(name, Kva(self.addrs.get(b * BLOCK + j)), kind)?;
            }
        }
        Ok(out.build())
    }
}

/// One pass over `kallsyms_names` reading entry lengths only: where entries start
/// (markers every [`BLOCK`] entries, offsets within the block every [`STRIDE`]) and the table's
/// length. Checks that every entry has tokens and reads whole, with the errors of
/// [`super::decode`]; what the tokens expand to is checked when a block is expanded,
/// or here for every entry when `check` gives the (implausible) token table.
fn scan_names<R: KvaRead + ?Sized>(
    r: &R,
    at: Kva,
    n: usize,
    check: Option<&Tokens>,
) -> Result<(Vec<u64>, Vec<u32>, u64), KallsymsError> {
    let mut found = Starts {
        markers: Vec::with_capacity(n.div_ceil(BLOCK)),
        starts: Vec::with_capacity(n.div_ceil(STRIDE)),
    };
    let mut names = Window::new(r, at);
    let rd = unreadable("kallsyms_names");
    let mut off = 0u64;
    let mut i = 0;
    while i < n {
        // Entries wholly in the window's buffer, without a call each; the first one
        // that is not (or has no tokens) goes the checked way below.
        if let Some(mut o) = off
            .checked_sub(names.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|_| check.is_none())
        {
            let buf = &names.buf;
            while i < n && o + 2 <= buf.len() {
                let b0 = buf[o];
                let (hl, len) = if b0 & 0x80 != 0 {
                    (2, usize::from(b0 & 0x7f) | (usize::from(buf[o + 1]) << 7))
                } else {
                    (1, usize::from(b0))
                };
                if len == 0 || o + hl + len > buf.len() {
                    break;
                }
                found.note(i, off);
                o += hl + len;
                off += (hl + len) as u64;
                i += 1;
            }
            if i == n {
                break;
            }
        }
        found.note(i, off);
        let b0 = names.get(off, 1).map_err(rd)?[0];
        let (hl, len) = entry_len(b0, || Ok(names.get(off, 2)?[1])).map_err(rd)?;
        if len == 0 {
            return Err(bad(i, "zero-length entry"));
        }
        let toks = names.get(off + hl, len).map_err(rd)?;
        if let Some(tokens) = check {
            check_entry(i, toks, tokens)?;
        }
        off += hl + len as u64;
        i += 1;
    }
    Ok((found.markers, found.starts, off))
}

/// Where entries start, as the length pass finds them.
struct Starts {
    /// Offset of entries `0, BLOCK, 2 * BLOCK, ...`.
    markers: Vec<u64>,
    /// Offset of entries `0, STRIDE, 2 * STRIDE, ...` from their block's marker.
    starts: Vec<u32>,
}

impl Starts {
    /// Entry `i` starts at `off` (entries noted in order).
    #[inline]
    fn note(&mut self, i: usize, off: u64) {
        if i.is_multiple_of(BLOCK) {
            self.markers.push(off);
        }
        if i.is_multiple_of(STRIDE) {
            let marker = self.markers.last().copied().unwrap_or(0);
            // Fits: a block is at most 256 entries of 2 + 0x7fff bytes.
            self.starts.push((off - marker) as u32);
        }
    }
}

/// Entry `i`'s expansion is 1..=KSYM_NAME_LEN bytes and UTF-8 after its type letter:
/// [`super::decode`]'s checks and errors, for every entry of an implausible token table.
fn check_entry(i: usize, toks: &[u8], tokens: &Tokens) -> Result<(), KallsymsError> {
    let total: usize = toks.iter().map(|&t| tokens.expansion(t).len()).sum();
    if total > MAX_NAME_LEN + 1 {
        return Err(bad(i, "longer than KSYM_NAME_LEN"));
    }
    if total == 0 {
        return Err(bad(i, "empty expansion"));
    }
    let mut full = Vec::with_capacity(total);
    for &t in toks {
        full.extend_from_slice(tokens.expansion(t));
    }
    std::str::from_utf8(&full[1..]).map_err(|_| bad(i, "not UTF-8"))?;
    Ok(())
}

/// Whether the 3-byte big-endian numbers of `raw` are distinct and below `n`.
fn is_permutation(raw: &[u8], n: usize) -> bool {
    let mut seen = vec![0u64; n.div_ceil(64)];
    raw.chunks_exact(3).all(|c| {
        let i = (usize::from(c[0]) << 16) | (usize::from(c[1]) << 8) | usize::from(c[2]);
        let Some(w) = seen.get_mut(i / 64).filter(|_| i < n) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        let fresh = *w & bit == 0;
        *w |= bit;
        fresh
    })
}

fn bad(index: usize, why: &'static str) -> KallsymsError {
    KallsymsError::BadName { index, why }
}
