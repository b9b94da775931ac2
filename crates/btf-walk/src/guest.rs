//! BTF that lives in guest memory: the kernel's own (`__start_BTF..__stop_BTF`) and the
//! `struct btf` objects of BPF programs and maps, cached per address.

use std::collections::HashMap;

use guest_mem::{Kva, KvaRead, SymbolTable};

use crate::btf::Btf;
use crate::error::{BtfError, MissingMembers, Result};
use crate::group::OffsetGroup;
use crate::load::read_guest;
use crate::offsets::Field;

/// Symbols bounding the kernel's BTF in its image.
pub const START_BTF: &str = "__start_BTF";
pub const STOP_BTF: &str = "__stop_BTF";

/// Most BTF objects one [`GuestBtfCache`] keeps (a guest has one per loaded BPF object).
pub const MAX_CACHED_BTFS: usize = 4096;

impl Btf {
    /// Loads the kernel's BTF from guest memory, finding its range through `symbols`
    /// (guest-mem's table from kallsyms or a System.map).
    pub fn from_guest_symbols(mem: &dyn KvaRead, symbols: &SymbolTable) -> Result<Btf> {
        let find = |name: &str| {
            symbols.lookup(name).ok_or_else(|| BtfError::NotFound {
                what: "guest kernel",
                detail: format!("symbol {name} unknown (kernel without CONFIG_DEBUG_INFO_BTF?)"),
            })
        };
        Btf::from_guest(mem, find(START_BTF)?, find(STOP_BTF)?)
    }
}

/// Offsets of the kernel's `struct btf` this crate reads.
#[derive(Clone, Copy, Debug)]
struct StructBtf {
    data: Field,
    data_size: Field,
    base_btf: Field,
    kernel_btf: Option<Field>,
}

/// The BTF objects of BPF programs and maps (kernel `struct btf *`, e.g. `bpf_map.btf`),
/// parsed on first use and cached by address.
///
/// A BPF object's BTF is normally standalone (`base_btf == NULL`); when its `base_btf` is
/// the kernel's BTF it is parsed as split BTF on top of the vmlinux [`Btf`] given here.
/// The kernel's own `struct btf` (`kernel_btf` set, no base) maps to that vmlinux `Btf`.
pub struct GuestBtfCache {
    vmlinux: Btf,
    offs: StructBtf,
    loaded: HashMap<u64, Btf>,
    failed: HashMap<u64, String>,
}

impl GuestBtfCache {
    /// Resolves `struct btf`'s members in `vmlinux`; fails listing those the kernel lacks.
    pub fn new(vmlinux: Btf) -> Result<Self, MissingMembers> {
        let mut g = OffsetGroup::new(&vmlinux, "btf");
        g.require_struct("btf");
        let offs = StructBtf {
            data: g.field("btf", "data"),
            data_size: g.field("btf", "data_size"),
            base_btf: g.field("btf", "base_btf"),
            kernel_btf: g.opt_field("btf", "kernel_btf"),
        };
        let offs = g.finish(offs)?;
        Ok(GuestBtfCache {
            vmlinux,
            offs,
            loaded: HashMap::new(),
            failed: HashMap::new(),
        })
    }

    /// The vmlinux BTF everything sits on.
    pub fn vmlinux(&self) -> &Btf {
        &self.vmlinux
    }

    /// The BTF of the `struct btf` at `btf_kva`, loaded and cached on first call. A failure
    /// is cached too (the memory is frozen; retrying would fail the same way).
    pub fn get(&mut self, mem: &dyn KvaRead, btf_kva: Kva) -> Result<Btf> {
        if let Some(b) = self.loaded.get(&btf_kva.0) {
            return Ok(b.clone());
        }
        if let Some(why) = self.failed.get(&btf_kva.0) {
            return Err(BtfError::Format {
                what: "guest struct btf",
                detail: why.clone(),
            });
        }
        let res = self.load(mem, btf_kva);
        if self.loaded.len() + self.failed.len() < MAX_CACHED_BTFS {
            match &res {
                Ok(b) => {
                    self.loaded.insert(btf_kva.0, b.clone());
                }
                Err(e) => {
                    self.failed.insert(btf_kva.0, e.to_string());
                }
            }
        }
        res
    }

    fn load(&self, mem: &dyn KvaRead, at: Kva) -> Result<Btf> {
        let memerr = |what, source| BtfError::Mem {
            what,
            kva: at,
            source,
        };
        let data = self
            .offs
            .data
            .read_u64(mem, at)
            .map_err(|e| memerr("struct btf.data", e))?;
        let size = self
            .offs
            .data_size
            .read_u64(mem, at)
            .map_err(|e| memerr("struct btf.data_size", e))?;
        let base = self
            .offs
            .base_btf
            .read_u64(mem, at)
            .map_err(|e| memerr("struct btf.base_btf", e))?;
        let is_kernel = match self.offs.kernel_btf {
            Some(f) => {
                f.read_u64(mem, at)
                    .map_err(|e| memerr("struct btf.kernel_btf", e))?
                    != 0
            }
            None => false,
        };
        if is_kernel && base == 0 {
            return Ok(self.vmlinux.clone());
        }
        if data == 0 {
            return Err(BtfError::Format {
                what: "guest struct btf",
                detail: format!("struct btf at {at} has a NULL data pointer"),
            });
        }
        let bytes = read_guest(mem, Kva(data), size, "BPF object BTF data")?;
        if base == 0 {
            return Btf::from_raw(&bytes);
        }
        // Split on a base: only the kernel's own BTF is supported as that base (modules'
        // BTF would need the module's split loaded first).
        let base_is_vmlinux = match self.offs.kernel_btf {
            Some(f) => {
                let base_base = self
                    .offs
                    .base_btf
                    .read_u64(mem, Kva(base))
                    .map_err(|e| memerr("base struct btf.base_btf", e))?;
                f.read_u64(mem, Kva(base))
                    .map_err(|e| memerr("base struct btf.kernel_btf", e))?
                    != 0
                    && base_base == 0
            }
            None => true,
        };
        if !base_is_vmlinux {
            return Err(BtfError::Format {
                what: "guest struct btf",
                detail: format!(
                    "struct btf at {at} is split on {:#x}, which is not vmlinux",
                    base
                ),
            });
        }
        self.vmlinux.split_from_raw(&bytes)
    }
}
