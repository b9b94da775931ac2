//! Synthetic guests for unit tests: sparse memory, a symbol table and member offsets.
//! Only compiled for tests; the end-to-end tests use real guests.

use std::collections::{BTreeMap, HashMap};

use guest_mem::{Kva, KvaRead, MemError};

use btf_walk::MemberOffsets;

use crate::kernel::{KernelTypes, SymbolLookup};

/// Sparse byte-addressed memory: unwritten bytes are holes (reads fail).
#[derive(Default)]
pub struct FakeMem {
    pages: HashMap<u64, Box<[u8; 4096]>>,
}

impl FakeMem {
    pub fn write(&mut self, kva: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = kva + i as u64;
            let page = self
                .pages
                .entry(a & !0xfff)
                .or_insert_with(|| Box::new([0u8; 4096]));
            page[(a & 0xfff) as usize] = *b;
        }
    }
    pub fn w64(&mut self, kva: u64, v: u64) {
        self.write(kva, &v.to_le_bytes());
    }
    pub fn w32(&mut self, kva: u64, v: u32) {
        self.write(kva, &v.to_le_bytes());
    }
}

impl KvaRead for FakeMem {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError> {
        let len = buf.len();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = kva
                .0
                .checked_add(i as u64)
                .ok_or(MemError::Overflow { addr: kva.0, len })?;
            let page = self.pages.get(&(a & !0xfff)).ok_or(MemError::NotPresent {
                kva: Kva(a),
                level: 1,
                entry: 0,
            })?;
            *b = page[(a & 0xfff) as usize];
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeSyms {
    pub by_name: HashMap<String, u64>,
    /// [`SymbolLookup::ranges_of`] answers `None` (as kallsyms without its name-sorted
    /// table does).
    pub no_ranges: bool,
}

impl FakeSyms {
    pub fn with(mut self, name: &str, addr: u64) -> Self {
        self.by_name.insert(name.to_string(), addr);
        self
    }
}

impl SymbolLookup for FakeSyms {
    fn symbol(&self, name: &str) -> Option<Kva> {
        self.by_name.get(name).map(|&a| Kva(a))
    }
    fn nearest(&self, kva: Kva) -> Option<(String, u64)> {
        let sorted: BTreeMap<u64, &String> = self.by_name.iter().map(|(n, a)| (*a, n)).collect();
        sorted
            .range(..=kva.0)
            .next_back()
            .map(|(a, n)| ((*n).clone(), kva.0 - a))
    }
    fn ranges_of(&self, bases: &[&str]) -> Option<Vec<(u64, u64)>> {
        if self.no_ranges {
            return None;
        }
        let addrs: std::collections::BTreeSet<u64> = self.by_name.values().copied().collect();
        let mut out = Vec::new();
        for (n, &a) in &self.by_name {
            if bases.contains(&n.split('.').next().unwrap_or(n)) {
                let end = addrs.range(a + 1..).next().copied().unwrap_or(u64::MAX);
                out.push((a, end));
            }
        }
        Some(out)
    }
}

#[derive(Default)]
pub struct FakeTypes {
    pub members: HashMap<(String, String), u64>,
    pub sizes: HashMap<String, u64>,
    pub enums: HashMap<String, i64>,
}

impl FakeTypes {
    /// The members of the core offset group (lists, xarray, rhashtable) every walker
    /// needs, at the layout the synthetic tests build their memory for.
    pub fn core() -> Self {
        FakeTypes::default()
            .member("list_head", "next", 0)
            .member("hlist_head", "first", 0)
            .member("hlist_node", "next", 0)
            .member("xarray", "xa_head", 8)
            .members("xa_node", &[("shift", 0), ("slots", 40)])
            .member("idr", "idr_rt", 0)
            .members("rhashtable", &[("tbl", 0), ("nelems", 8)])
            .members(
                "bucket_table",
                &[
                    ("size", 0),
                    ("nest", 4),
                    ("buckets", 64),
                    ("future_tbl", 32),
                ],
            )
            .member("rhash_head", "next", 0)
    }
    pub fn member(mut self, ty: &str, path: &str, off: u64) -> Self {
        self.members.insert((ty.into(), path.into()), off);
        self
    }
    /// The DSQ members (group `dsq`), at the layout the DSQ tests build their memory for.
    pub fn with_dsq(self) -> Self {
        self.members(
            "scx_dispatch_q",
            &[
                ("list", 0x10),
                ("nr", 0x20),
                ("seq", 0x24),
                ("id", 0x28),
                ("hash_node", 0x30),
            ],
        )
        .members("scx_dsq_list_node", &[("node", 0), ("flags", 0x10)])
        .member("task_struct", "scx.dsq_list.node", 0x100)
    }

    /// Members of `ty`: `(path, offset)` each.
    pub fn members(self, ty: &str, members: &[(&str, u64)]) -> Self {
        members
            .iter()
            .fold(self, |t, &(path, off)| t.member(ty, path, off))
    }
    pub fn size(mut self, ty: &str, size: u64) -> Self {
        self.sizes.insert(ty.into(), size);
        self
    }
}

impl MemberOffsets for FakeTypes {
    fn offset_of(&self, ty: &str, path: &str) -> Option<u64> {
        self.members
            .get(&(ty.to_string(), path.to_string()))
            .copied()
    }
    fn size_of(&self, ty: &str) -> Option<u64> {
        self.sizes.get(ty).copied()
    }
}

impl KernelTypes for FakeTypes {
    fn enum_value(&self, variant: &str) -> Option<i64> {
        self.enums.get(variant).copied()
    }
}
