//! Bounded walks over the kernel's linked structures: `list_head`, `hlist`,
//! `hlist_nulls`, xarray/IDR and rhashtable. Every walk has a node cap and a visited
//! set; a loop is an error, a cap is a `truncated` flag, never an endless walk.

use guest_mem::Kva;

use crate::error::{Result, WalkError};
use crate::kernel::{KernelTypes, KernelView, Visited};
use crate::offsets::resolve_group;

/// Default cap on list nodes (wire format's Caps table).
pub const LIST_CAP: usize = 4096;
/// Default cap on rhashtable nodes.
pub const RHASHTABLE_CAP: usize = 8192;

/// Offsets of the generic containers, resolved once per capture.
#[derive(Debug, Clone, Copy)]
pub struct CoreOffsets {
    pub list_next: u64,
    pub hlist_first: u64,
    pub hlist_node_next: u64,
    pub xa_head: u64,
    pub xa_node_shift: u64,
    pub xa_node_slots: u64,
    pub idr_rt: u64,
    pub rht_tbl: u64,
    pub rht_nelems: u64,
    pub bt_size: u64,
    pub bt_nest: u64,
    pub bt_buckets: u64,
    pub bt_future: u64,
    pub rhash_next: u64,
}

impl CoreOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<CoreOffsets> {
        resolve_group(t, "containers", |r| CoreOffsets {
            list_next: r.off("list_head", "next"),
            hlist_first: r.off("hlist_head", "first"),
            hlist_node_next: r.off("hlist_node", "next"),
            xa_head: r.off("xarray", "xa_head"),
            xa_node_shift: r.off("xa_node", "shift"),
            xa_node_slots: r.off("xa_node", "slots"),
            idr_rt: r.off("idr", "idr_rt"),
            rht_tbl: r.off("rhashtable", "tbl"),
            rht_nelems: r.off("rhashtable", "nelems"),
            bt_size: r.off("bucket_table", "size"),
            bt_nest: r.off("bucket_table", "nest"),
            bt_buckets: r.off("bucket_table", "buckets"),
            bt_future: r.off("bucket_table", "future_tbl"),
            rhash_next: r.off("rhash_head", "next"),
        })
    }
}

/// Nodes reached by a walk, in order, and whether the cap cut it short.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Walked {
    pub nodes: Vec<Kva>,
    pub truncated: bool,
}

/// The linked lists the kernel embeds in objects; [`Links::walk`] follows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A circular `list_head`; the head is not itself a node.
    List,
    /// An `hlist_head`, NULL-terminated.
    Hlist,
    /// An `hlist_nulls_head`: the chain ends at a pointer with bit 0 set.
    /// (`hlist_nulls_head.first` and `hlist_nulls_node.next` are at the same offsets as
    /// in `hlist`; both are single-pointer heads.)
    HlistNulls,
}

impl Links {
    /// Walks the list whose head is at `head`, until its end, a revisit (a cycle: an
    /// error) or `cap` nodes (`truncated`). Returns the addresses of the embedded links
    /// (subtract the member offset to get the containing object), including those
    /// reached before an unreadable or looping node; [`Partial::strict`] for the nodes
    /// or the error.
    pub fn walk(
        self,
        k: &KernelView<'_>,
        c: &CoreOffsets,
        head: Kva,
        cap: usize,
        what: &'static str,
    ) -> Partial {
        let (first_off, next_off) = match self {
            Links::List => (c.list_next, c.list_next),
            Links::Hlist | Links::HlistNulls => (c.hlist_first, c.hlist_node_next),
        };
        let is_end = |p: Kva| match self {
            // NULL in a `list_head`: a half-initialised or poisoned list: stop, keep what
            // we have.
            Links::List => p == head || p.0 == 0,
            Links::Hlist => p.0 == 0,
            Links::HlistNulls => p.0 == 0 || p.0 & 1 != 0,
        };
        let mut out = Partial::default();
        let first = head
            .checked_offset(first_off)
            .map_err(WalkError::from)
            .and_then(|a| k.ptr(a, what));
        let res = first.and_then(|first| {
            let mut seen = Visited::new(cap);
            let mut p = first;
            while !is_end(p) {
                if !seen.visit(p, what)? {
                    out.walked.truncated = true;
                    break;
                }
                out.walked.nodes.push(p);
                p = k.ptr(p.checked_offset(next_off)?, what)?;
            }
            Ok(())
        });
        out.error = res.err();
        out
    }
}

/// Bytes of bucket heads read in one piece by [`BucketHeads`].
const HEADS_CHUNK: u64 = 16 << 10;

/// The buckets of a hash table's bucket array that may hold nodes, for tables of
/// hundreds of thousands of mostly empty buckets (a BPF hash map's `n_buckets` is its
/// `max_entries` rounded up to a power of two).
///
/// Heads are read [`HEADS_CHUNK`] bytes at a time into one reused buffer; a bucket whose
/// first pointer is an end marker (`NULL`, or for `hlist_nulls` any value with bit 0 set)
/// is skipped. The list head of every other bucket is yielded, to be walked with
/// [`Links::walk`]; so is every bucket's of a chunk that could not be read in one piece
/// (its walk then reports that bucket's own error), and every bucket's when a bucket is
/// larger than a chunk. A head whose address overflows is an error.
pub struct BucketHeads<'k> {
    k: &'k KernelView<'k>,
    /// Address of bucket 0's list head.
    first_head: Kva,
    stride: u64,
    /// Offset of the head's first pointer within the head.
    first_off: u64,
    nulls: bool,
    n: u64,
    next: u64,
    /// Buckets `chunk_start..chunk_end` are in `buf` (when `chunk_ok`).
    chunk_start: u64,
    chunk_end: u64,
    chunk_ok: bool,
    buf: Vec<u8>,
}

impl<'k> BucketHeads<'k> {
    /// `n` buckets, `stride` bytes apart, the list head of bucket 0 at `first_head`.
    pub fn new(
        k: &'k KernelView<'k>,
        c: &CoreOffsets,
        links: Links,
        first_head: Kva,
        stride: u64,
        n: u64,
    ) -> BucketHeads<'k> {
        BucketHeads {
            k,
            first_head,
            stride,
            first_off: c.hlist_first,
            nulls: links == Links::HlistNulls,
            n,
            next: 0,
            chunk_start: 0,
            chunk_end: 0,
            chunk_ok: false,
            buf: Vec::new(),
        }
    }

    /// The address of bucket `b`'s list head.
    fn head(&self, b: u64) -> Result<Kva> {
        let off = b.checked_mul(self.stride).ok_or(WalkError::Implausible {
            what: "bucket offset",
            value: b,
        })?;
        Ok(self.first_head.checked_offset(off)?)
    }

    /// Reads the chunk of heads that starts at bucket `self.next`.
    fn load(&mut self) {
        let fit = HEADS_CHUNK / self.stride.max(1);
        let per_chunk = fit.max(1);
        self.chunk_start = self.next;
        self.chunk_end = self.next.saturating_add(per_chunk).min(self.n);
        self.chunk_ok = false;
        if fit == 0 || self.first_off.saturating_add(8) > self.stride {
            return;
        }
        let len = ((self.chunk_end - self.chunk_start) * self.stride) as usize;
        self.buf.resize(len, 0);
        if let Ok(at) = self.head(self.chunk_start) {
            self.chunk_ok = self.k.read(at, &mut self.buf, "bucket heads").is_ok();
        }
    }

    /// Whether bucket `b` (in the loaded chunk) is certainly empty.
    fn empty(&self, b: u64) -> bool {
        if !self.chunk_ok {
            return false;
        }
        let at = ((b - self.chunk_start) * self.stride + self.first_off) as usize;
        let Some(w) = self.buf.get(at..at + 8) else {
            return false;
        };
        let first = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        first == 0 || (self.nulls && first & 1 != 0)
    }
}

impl Iterator for BucketHeads<'_> {
    type Item = Result<Kva>;

    fn next(&mut self) -> Option<Result<Kva>> {
        while self.next < self.n {
            if self.next >= self.chunk_end {
                self.load();
            }
            let b = self.next;
            self.next += 1;
            if !self.empty(b) {
                return Some(self.head(b));
            }
        }
        None
    }
}

/// A walk that keeps what it reached: the nodes, and the error that stopped it (or
/// broke some of its chains), if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Partial {
    pub walked: Walked,
    pub error: Option<WalkError>,
    /// Chains (rhashtable buckets, bucket pages) given up on; the walk went on past them.
    pub broken: usize,
}

impl Partial {
    /// The strict form: the nodes, or the first error.
    pub fn strict(self) -> Result<Walked> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.walked),
        }
    }
}

/// Entries of an xarray (`struct xarray` at `xa`): `(index, pointer)` in index order.
/// Value entries, retry/sibling/zero entries are skipped: IDRs of maps and programs
/// hold plain pointers.
pub fn xarray_entries(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    xa: Kva,
    cap: usize,
) -> Result<(Vec<(u64, Kva)>, bool)> {
    const XA_CHUNK: u64 = 64;
    let head = k.u64(xa.checked_offset(c.xa_head)?, "xarray head")?;
    let mut out = Vec::new();
    if head == 0 {
        return Ok((out, false));
    }
    if !is_xa_node(head) {
        // The IDRs walked here hold pointers: a head that is a value or an internal
        // entry other than a node is damage, not an empty table.
        if is_xa_internal(head) || head & 1 != 0 || !KernelView::plausible_ptr(Kva(head)) {
            return Err(WalkError::Implausible {
                what: "xarray head",
                value: head,
            });
        }
        out.push((0, Kva(head)));
        return Ok((out, false));
    }
    let mut seen = Visited::new(4096);
    // (node, first index it covers); depth is bounded by the shift check below.
    let mut stack = vec![(Kva(head - 2), 0u64)];
    let mut truncated = false;
    'walk: while let Some((node, base)) = stack.pop() {
        if !seen.visit(node, "xarray node")? {
            truncated = true;
            break;
        }
        let shift = k.u8(node.checked_offset(c.xa_node_shift)?, "xa_node.shift")?;
        if shift > 60 || shift % 6 != 0 {
            return Err(WalkError::Implausible {
                what: "xa_node.shift",
                value: u64::from(shift),
            });
        }
        let raw = k.bytes(
            node.checked_offset(c.xa_node_slots)?,
            (XA_CHUNK * 8) as usize,
            "xa_node.slots",
        )?;
        let mut children = Vec::new();
        for (i, s) in raw.chunks_exact(8).enumerate() {
            let e = u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
            let idx = base.wrapping_add((i as u64) << shift);
            if e == 0 {
                continue;
            }
            if is_xa_node(e) {
                if shift == 0 {
                    return Err(WalkError::Implausible {
                        what: "xa_node below leaf level",
                        value: e,
                    });
                }
                children.push((Kva(e - 2), idx));
            } else if !is_xa_internal(e) && e & 1 == 0 {
                if out.len() >= cap {
                    truncated = true;
                    break 'walk;
                }
                out.push((idx, Kva(e)));
            }
        }
        // Push in reverse so the lowest index is walked first.
        stack.extend(children.into_iter().rev());
    }
    out.sort_by_key(|(i, _)| *i);
    Ok((out, truncated))
}

fn is_xa_internal(e: u64) -> bool {
    e & 3 == 2
}

fn is_xa_node(e: u64) -> bool {
    is_xa_internal(e) && e > 4096
}

/// Objects in an rhashtable (`struct rhashtable` at `ht`); `head_off` is the offset of
/// the object's `rhash_head`. Also walks a table being resized (`future_tbl`).
/// Nested bucket tables (only under memory pressure) are not walked: truncated.
pub fn rhashtable_objects(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    ht: Kva,
    head_off: u64,
    cap: usize,
) -> Result<Walked> {
    rhashtable_objects_partial(k, c, ht, head_off, cap).strict()
}

/// [`rhashtable_objects`] that goes on past a broken bucket chain or an unreadable page
/// of buckets (counted in `broken`, the first error kept), so that one damaged object
/// loses only the objects behind it in its own chain.
pub fn rhashtable_objects_partial(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    ht: Kva,
    head_off: u64,
    cap: usize,
) -> Partial {
    let mut p = Partial::default();
    if let Err(e) = rht_walk(k, c, ht, head_off, cap, &mut p) {
        p.error.get_or_insert(e);
    }
    p
}

fn rht_walk(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    ht: Kva,
    head_off: u64,
    cap: usize,
    p: &mut Partial,
) -> Result<()> {
    let out = &mut p.walked;
    let mut seen = Visited::new(cap);
    let mut tables = Visited::new(8);
    let mut tbl = k.ptr(ht.checked_offset(c.rht_tbl)?, "rhashtable.tbl")?;
    while tbl.0 != 0 {
        if !tables.visit(tbl, "rhashtable future_tbl chain")? {
            out.truncated = true;
            break;
        }
        let size = k.u32(tbl.checked_offset(c.bt_size)?, "bucket_table.size")?;
        let nest = k.u32(tbl.checked_offset(c.bt_nest)?, "bucket_table.nest")?;
        if size == 0 || size > (1 << 24) || !size.is_power_of_two() {
            return Err(WalkError::Implausible {
                what: "bucket_table.size",
                value: u64::from(size),
            });
        }
        if nest != 0 {
            out.truncated = true;
        } else {
            // Read the bucket array in pages rather than one pointer at a time.
            let base = tbl.checked_offset(c.bt_buckets)?;
            let mut i = 0u64;
            while i < u64::from(size) {
                let n = (u64::from(size) - i).min(512);
                let raw = match k.bytes(
                    base.checked_offset(i * 8)?,
                    (n * 8) as usize,
                    "rhashtable buckets",
                ) {
                    Ok(raw) => raw,
                    Err(e) => {
                        p.broken += 1;
                        p.error.get_or_insert(e);
                        i += n;
                        continue;
                    }
                };
                for s in raw.chunks_exact(8) {
                    // Bit 0 of a bucket pointer is its lock; an empty bucket is NULL.
                    let mut e = u64::from_le_bytes(s.try_into().unwrap_or([0; 8])) & !1;
                    while e != 0 && e & 1 == 0 {
                        match seen.visit(Kva(e), "rhashtable chain") {
                            Ok(true) => {}
                            Ok(false) => {
                                out.truncated = true;
                                return Ok(());
                            }
                            Err(err) => {
                                p.broken += 1;
                                p.error.get_or_insert(err);
                                break;
                            }
                        }
                        let next = Kva(e)
                            .checked_offset(c.rhash_next)
                            .map_err(WalkError::from)
                            .and_then(|a| k.u64(a, "rhash_head.next"));
                        match next {
                            Ok(next) => {
                                out.nodes.push(Kva(e.wrapping_sub(head_off)));
                                e = next;
                            }
                            Err(err) => {
                                // The object whose link is unreadable is itself
                                // unreadable: it is not listed.
                                p.broken += 1;
                                p.error.get_or_insert(err);
                                break;
                            }
                        }
                    }
                }
                i += n;
            }
        }
        tbl = k.ptr(tbl.checked_offset(c.bt_future)?, "bucket_table.future_tbl")?;
    }
    Ok(())
}

/// `rhashtable.nelems`: how many objects the table says it holds.
pub fn rhashtable_nelems(k: &KernelView<'_>, c: &CoreOffsets, ht: Kva) -> Result<u32> {
    k.u32(ht.checked_offset(c.rht_nelems)?, "rhashtable.nelems")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    fn core() -> CoreOffsets {
        CoreOffsets {
            list_next: 0,
            hlist_first: 0,
            hlist_node_next: 0,
            xa_head: 8,
            xa_node_shift: 0,
            xa_node_slots: 40,
            idr_rt: 0,
            rht_tbl: 0,
            rht_nelems: 8,
            bt_size: 0,
            bt_nest: 4,
            bt_buckets: 64,
            bt_future: 32,
            rhash_next: 0,
        }
    }

    fn kernel<'a>(m: &'a FakeMem, s: &'a FakeSyms, t: &'a FakeTypes) -> KernelView<'a> {
        KernelView {
            mem: m,
            syms: s,
            types: t,
        }
    }

    const B: u64 = 0xffff_8880_0000_0000;

    /// 3,000 buckets of 16 bytes (three chunks), heads at offset 8: empty ones hold the
    /// nulls marker or NULL; one page of the array is a hole.
    #[test]
    fn bucket_heads_skip_empty_buckets_and_keep_unreadable_ones() {
        let (stride, n) = (16u64, 3000u64);
        let mut m = FakeMem::default();
        for b in 0..n {
            let first = match b {
                7 | 1500 | 2999 => B + 0x10_0000 + b * 16,
                _ if b % 2 == 0 => 0,
                _ => (b << 1) | 1,
            };
            m.w64(B + b * stride + 8, first);
        }
        // Buckets 256..512 (bytes 4096..8192): not present.
        let hole = B + 4096;
        let mut holed = FakeMem::default();
        for b in 0..n {
            let at = B + b * stride;
            if !(hole..hole + 4096).contains(&at) {
                holed.w64(at + 8, m_first(&m, at + 8));
            }
        }
        let (s, t) = (FakeSyms::default(), FakeTypes::default());
        let heads = |mem: &FakeMem, links| -> Vec<u64> {
            let k = kernel(mem, &s, &t);
            BucketHeads::new(&k, &core(), links, Kva(B + 8), stride, n)
                .map(|h| (h.unwrap().0 - B - 8) / stride)
                .collect()
        };
        assert_eq!(heads(&m, Links::HlistNulls), vec![7, 1500, 2999]);
        // In a plain hlist only NULL ends a chain: the odd markers are nodes.
        let plain = heads(&m, Links::Hlist);
        assert_eq!(plain.len(), 1500 + 1);
        // The unreadable chunk's buckets are all yielded (their walks report the error).
        let with_hole = heads(&holed, Links::HlistNulls);
        assert!(with_hole.contains(&7) && with_hole.contains(&1500) && with_hole.contains(&2999));
        assert!(with_hole.len() >= 256 + 3 && with_hole.len() <= 1024 + 3);
        // A bucket wider than a chunk: every bucket is yielded.
        let k = kernel(&m, &s, &t);
        let wide = BucketHeads::new(&k, &core(), Links::HlistNulls, Kva(B), HEADS_CHUNK + 8, 4);
        assert_eq!(wide.count(), 4);
        // An address past the end of the address space is an error, not a wrap.
        let k = kernel(&m, &s, &t);
        let mut far = BucketHeads::new(
            &k,
            &core(),
            Links::HlistNulls,
            Kva(u64::MAX - 8),
            1 << 40,
            2,
        );
        assert!(far.next().unwrap().is_ok());
        assert!(far.next().unwrap().is_err());
    }

    fn m_first(m: &FakeMem, at: u64) -> u64 {
        let mut b = [0u8; 8];
        guest_mem::KvaRead::read_kva(m, Kva(at), &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    #[test]
    fn list_walk_follows_order_and_detects_cycles() {
        let mut m = FakeMem::default();
        // head -> a -> b -> head
        m.w64(B, B + 0x100);
        m.w64(B + 0x100, B + 0x200);
        m.w64(B + 0x200, B);
        let (s, t) = (FakeSyms::default(), FakeTypes::default());
        let k = kernel(&m, &s, &t);
        let w = Links::List
            .walk(&k, &core(), Kva(B), 10, "t")
            .strict()
            .unwrap();
        assert_eq!(w.nodes, vec![Kva(B + 0x100), Kva(B + 0x200)]);
        // b -> a: a loop that never returns to the head.
        m.w64(B + 0x200, B + 0x100);
        let k = kernel(&m, &s, &t);
        assert!(matches!(
            Links::List.walk(&k, &core(), Kva(B), 10, "t").strict(),
            Err(WalkError::Cycle { .. })
        ));
        let w = Links::List
            .walk(&k, &core(), Kva(B), 1, "t")
            .strict()
            .unwrap();
        assert!(w.truncated);
    }

    #[test]
    fn xarray_two_levels() {
        let mut m = FakeMem::default();
        let xa = B;
        let root = B + 0x1000;
        let leaf = B + 0x2000;
        m.w64(xa + 8, root | 2);
        m.write(root, &[6]); // shift 6
        m.w64(root + 40 + 8, leaf | 2); // covers 64..128
        m.write(leaf, &[0]);
        m.w64(leaf + 40 + 8 * 3, B + 0x5000); // index 67
        m.w64(leaf + 40 + 8 * 4, 0x406); // internal non-node (retry-like): skipped
        m.w64(leaf + 40 + 8 * 5, B + 0x6000); // index 69
        let (s, t) = (FakeSyms::default(), FakeTypes::default());
        let k = kernel(&m, &s, &t);
        let (e, tr) = xarray_entries(&k, &core(), Kva(xa), 100).unwrap();
        assert!(!tr);
        assert_eq!(e, vec![(67, Kva(B + 0x5000)), (69, Kva(B + 0x6000))]);
        let (e, tr) = xarray_entries(&k, &core(), Kva(xa), 1).unwrap();
        assert!(tr);
        assert_eq!(e.len(), 1);
        // A node pointing at itself is a cycle, not a hang.
        m.w64(root + 40, root | 2);
        let k = kernel(&m, &s, &t);
        assert!(xarray_entries(&k, &core(), Kva(xa), 100).is_err());
        // A head that is no pointer and no node (0xff bytes) is damage, not "empty".
        m.w64(xa + 8, u64::MAX);
        let k = kernel(&m, &s, &t);
        assert!(matches!(
            xarray_entries(&k, &core(), Kva(xa), 100),
            Err(WalkError::Implausible {
                what: "xarray head",
                ..
            })
        ));
    }

    #[test]
    fn rhashtable_chains_end_at_nulls_marker() {
        let mut m = FakeMem::default();
        let ht = B;
        let tbl = B + 0x1000;
        m.w64(ht, tbl);
        m.w32(tbl, 4);
        m.w32(tbl + 4, 0);
        m.w64(tbl + 32, 0);
        // bucket 1 (locked): obj1 -> obj2 -> nulls
        m.w64(tbl + 64 + 8, (B + 0x3010) | 1);
        m.w64(B + 0x3010, B + 0x4010);
        m.w64(B + 0x4010, (7 << 1) | 1);
        let (s, t) = (FakeSyms::default(), FakeTypes::default());
        let k = kernel(&m, &s, &t);
        let w = rhashtable_objects(&k, &core(), Kva(ht), 0x10, 100).unwrap();
        assert_eq!(w.nodes, vec![Kva(B + 0x3000), Kva(B + 0x4000)]);
        // Absurd table size is rejected before any allocation.
        m.w32(tbl, 3);
        let k = kernel(&m, &s, &t);
        assert!(rhashtable_objects(&k, &core(), Kva(ht), 0x10, 100).is_err());
    }
}
