//! sdt allocator detection: which of the wire format's `sdt_alloc_unavailable` reasons
//! applies. The allocator walk itself is not implemented (see
//! [`crate::reasons::SDT_WALK_UNSUPPORTED`]); the schedulers this project tests with do
//! not link it.

use dump_schema::reasons as why;
use dump_schema::{FailureDumpReport, map_type};
use guest_mem::Kva;

use crate::kernel::{Kernel, ValueRenderer};

/// The reason for `sdt_alloc_unavailable`, and log lines.
pub fn sdt_reason(
    r: &FailureDumpReport,
    renderer: Option<&dyn ValueRenderer>,
    k: &Kernel<'_>,
    deadline_passed: bool,
) -> (String, Vec<String>) {
    if deadline_passed {
        return (why::SDT_ALLOC_DEADLINE.into(), Vec::new());
    }
    let active = |kva: u64| r.active_map_kvas.is_empty() || r.active_map_kvas.contains(&kva);
    let bss = r
        .maps
        .iter()
        .find(|m| m.map_type == map_type::ARRAY && m.name.ends_with(".bss") && active(m.map_kva));
    let Some(bss) = bss else {
        return (why::NO_BSS_MAP.into(), Vec::new());
    };
    let arena = r
        .maps
        .iter()
        .find(|m| m.map_type == map_type::ARENA && active(m.map_kva));
    let Some(renderer) = renderer else {
        return (why::NO_BSS_MAP.into(), vec!["sdt: no BTF renderer".into()]);
    };
    // The map's `struct btf *` is needed to look into the program's BTF.
    let btf = k.types.offset_of("bpf_map", "btf").and_then(|off| {
        k.ptr(Kva(bss.map_kva.wrapping_add(off)), "bpf_map.btf")
            .ok()
    });
    let Some(btf) = btf.filter(|b| b.0 != 0) else {
        return (why::NO_BSS_MAP.into(), Vec::new());
    };
    if renderer.find_struct(btf, "scx_allocator", k.mem).is_none() {
        return (why::NO_SCX_ALLOCATOR_TYPE.into(), Vec::new());
    }
    match arena.and_then(|a| a.arena.as_ref()) {
        None => (why::NO_ARENA_MAP.into(), Vec::new()),
        Some(a) if a.user_vm_start % (1 << 32) != 0 => {
            (why::USER_VM_START_UNALIGNED.into(), Vec::new())
        }
        Some(_) => (crate::reasons::SDT_WALK_UNSUPPORTED.into(), Vec::new()),
    }
}
