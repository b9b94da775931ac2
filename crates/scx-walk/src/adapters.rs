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
}
