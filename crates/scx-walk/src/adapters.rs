//! [`KernelTypes`] for `btf-walk`'s [`btf_walk::Btf`] (its member offsets come with
//! btf-walk: [`btf_walk::MemberOffsets`]), [`SymbolLookup`] for `guest-mem`'s
//! [`guest_mem::Kernel`].

use btf_walk::Btf;

use guest_mem::Kva;

use crate::kernel::{KernelTypes, SymbolLookup};

impl KernelTypes for Btf {
    fn enum_value(&self, variant: &str) -> Option<i64> {
        self.enumerator(variant).ok()
    }
}

impl SymbolLookup for guest_mem::Kernel {
    fn symbol(&self, name: &str) -> Option<Kva> {
        guest_mem::Kernel::symbol(self, name)
    }

    fn nearest(&self, kva: Kva) -> Option<(String, u64)> {
        self.nearest_symbol(kva)
            .map(|n| (n.symbol.name.to_string(), n.offset))
    }

    fn ranges_of(&self, bases: &[&str]) -> Option<Vec<(u64, u64)>> {
        /// More symbols than this under one base name is not a function's variants.
        const MAX_PER_BASE: usize = 64;
        let mut out = Vec::new();
        for base in bases {
            for (s, end) in self.symbols_with_prefix(base, MAX_PER_BASE)? {
                if s.name.split('.').next() == Some(base) {
                    out.push((s.addr.0, end.map_or(u64::MAX, |e| e.0)));
                }
            }
        }
        Some(out)
    }
}
