//! [`ValueRenderer`] over `btf-walk`: the kernel's BTF plus the split BTF of BPF objects,
//! read from guest memory (`struct btf`: `data`, `data_size`) and cached per address.

use std::cell::RefCell;
use std::collections::HashMap;

use btf_walk::Btf;
use dump_schema::RenderedValue;
use guest_mem::{Kva, KvaRead};

use crate::kernel::{KernelTypes, ValueRenderer};

/// Largest BPF object BTF read from the guest.
const MAX_SPLIT_BTF: u64 = 16 << 20;

/// Renders with the kernel's BTF and BPF objects' split BTF.
pub struct BtfRenderer<'a> {
    base: &'a Btf,
    data_off: Option<u64>,
    size_off: Option<u64>,
    cache: RefCell<HashMap<u64, Result<Btf, String>>>,
}

impl<'a> BtfRenderer<'a> {
    pub fn new(base: &'a Btf) -> BtfRenderer<'a> {
        BtfRenderer {
            base,
            data_off: KernelTypes::offset_of(base, "btf", "data"),
            size_off: KernelTypes::offset_of(base, "btf", "data_size"),
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn load_split(&self, btf: Kva, mem: &dyn KvaRead) -> Result<Btf, String> {
        let (Some(d), Some(s)) = (self.data_off, self.size_off) else {
            return Err("kernel BTF lacks btf.data/btf.data_size".into());
        };
        let mut b8 = [0u8; 8];
        mem.read_kva(Kva(btf.0.wrapping_add(d)), &mut b8)
            .map_err(|e| format!("btf.data: {e}"))?;
        let data = Kva(u64::from_le_bytes(b8));
        let mut b4 = [0u8; 4];
        mem.read_kva(Kva(btf.0.wrapping_add(s)), &mut b4)
            .map_err(|e| format!("btf.data_size: {e}"))?;
        let size = u64::from(u32::from_le_bytes(b4));
        if size == 0 || size > MAX_SPLIT_BTF {
            return Err(format!("implausible BTF size {size}"));
        }
        let mut raw = vec![0u8; size as usize];
        mem.read_kva(data, &mut raw)
            .map_err(|e| format!("BTF data: {e}"))?;
        self.base
            .split_from_raw(&raw)
            .map_err(|e| format!("split BTF at {btf}: {e}"))
    }

    /// Runs `f` with the split BTF at `btf` (loaded once).
    fn with_split<T>(
        &self,
        btf: Kva,
        mem: &dyn KvaRead,
        f: impl FnOnce(&Btf) -> T,
    ) -> Result<T, String> {
        let mut cache = self.cache.borrow_mut();
        let entry = cache
            .entry(btf.0)
            .or_insert_with(|| self.load_split(btf, mem));
        match entry {
            Ok(b) => Ok(f(b)),
            Err(e) => Err(e.clone()),
        }
    }
}

impl ValueRenderer for BtfRenderer<'_> {
    fn render(
        &self,
        btf: Option<Kva>,
        type_id: u32,
        bytes: &[u8],
        mem: &dyn KvaRead,
    ) -> Result<RenderedValue, String> {
        match btf {
            None => render_with(self.base, type_id, bytes, mem),
            Some(b) => self.with_split(b, mem, |s| render_with(s, type_id, bytes, mem))?,
        }
    }

    fn find_struct(&self, btf: Kva, name: &str, mem: &dyn KvaRead) -> Option<u32> {
        self.with_split(btf, mem, |s| s.struct_by_name(name).ok().map(|id| id.0))
            .ok()
            .flatten()
    }
}

fn render_with(
    _btf: &Btf,
    _type_id: u32,
    _bytes: &[u8],
    _mem: &dyn KvaRead,
) -> Result<RenderedValue, String> {
    Err("btf-walk renderer not available yet".into())
}
