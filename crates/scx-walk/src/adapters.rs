//! [`KernelTypes`] for `btf-walk`'s [`btf_walk::Btf`], [`SymbolLookup`] for `guest-mem`'s
//! [`guest_mem::Kernel`].

use btf_walk::Btf;

use guest_mem::Kva;

use crate::kernel::{KernelTypes, SymbolLookup};

impl KernelTypes for Btf {
    fn offset_of(&self, ty: &str, path: &str) -> Option<u64> {
        let f = self.field_by_path(&format!("{ty}.{path}")).ok()?;
        // Walkers read whole members; a bitfield needs `Field::extract`, not an offset.
        (!f.is_bitfield()).then(|| f.offset())
    }

    fn size_of(&self, ty: &str) -> Option<u64> {
        let id = self.struct_by_name(ty).ok()?;
        Btf::size_of(self, id).ok()
    }

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
