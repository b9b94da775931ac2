//! [`ValueRenderer`] over `btf-walk`: the kernel's BTF plus the BTF objects of BPF
//! programs and maps (`bpf_map.btf`), loaded from guest memory and cached per address by
//! [`btf_walk::GuestBtfCache`].
//!
//! Values are rendered without following pointers (a map value's pointers are shown as
//! addresses): what a map holds, not what it points at, and bounded work per value.

use std::sync::Mutex;

use btf_walk::{Btf, GuestBtfCache, RenderOptions, Renderer, TypeId};
use dump_schema::RenderedValue;
use guest_mem::{Kva, KvaRead};

use crate::kernel::ValueRenderer;

/// Renders with the kernel's BTF and BPF objects' BTF.
pub struct BtfRenderer {
    vmlinux: Btf,
    cache: Option<Mutex<GuestBtfCache>>,
    opts: RenderOptions,
    why_no_cache: Option<String>,
}

impl BtfRenderer {
    /// `vmlinux` is the guest kernel's BTF (cheap to clone).
    pub fn new(vmlinux: &Btf) -> BtfRenderer {
        let (cache, why_no_cache) = match GuestBtfCache::new(vmlinux.clone()) {
            Ok(c) => (Some(Mutex::new(c)), None),
            Err(e) => (
                None,
                Some(format!("kernel BTF lacks struct btf members: {e}")),
            ),
        };
        BtfRenderer {
            vmlinux: vmlinux.clone(),
            cache,
            opts: RenderOptions::default(),
            why_no_cache,
        }
    }

    /// Sets the CPUs shown in rendered cpumasks (the guest's `nr_cpu_ids`).
    pub fn with_nr_cpus(mut self, n: u32) -> BtfRenderer {
        self.opts.nr_cpus = Some(n);
        self
    }

    fn object_btf(&self, btf: Kva, mem: &dyn KvaRead) -> Result<Btf, String> {
        let Some(cache) = &self.cache else {
            return Err(self.why_no_cache.clone().unwrap_or_default());
        };
        // Held while one BTF object loads: the maps' threads share what is loaded. A
        // thread that panicked while loading left nothing half-made (`get` inserts
        // only what it fully loaded), so a poisoned cache is still good.
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(mem, btf)
            .map_err(|e| format!("BTF at {btf}: {e}"))
    }
}

impl ValueRenderer for BtfRenderer {
    fn render(
        &self,
        btf: Option<Kva>,
        type_id: u32,
        bytes: &[u8],
        _mem: &dyn KvaRead,
    ) -> Result<RenderedValue, String> {
        let obj;
        let b = match btf {
            None => &self.vmlinux,
            Some(kva) => {
                obj = self.object_btf(kva, _mem)?;
                &obj
            }
        };
        let mut r = Renderer::bytes_only(b, self.opts.clone());
        Ok(r.render_bytes(TypeId(type_id), bytes))
    }

    fn find_struct(&self, btf: Kva, name: &str, mem: &dyn KvaRead) -> Option<u32> {
        let b = self.object_btf(btf, mem).ok()?;
        b.struct_by_name(name).ok().map(|id| id.0)
    }

    fn program_btf(&self, btf: Kva, mem: &dyn KvaRead) -> Option<Btf> {
        self.object_btf(btf, mem).ok()
    }
}
