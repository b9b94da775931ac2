//! The sdt arena allocator: `sdt_allocations` and `scx_static_ranges`.
//!
//! Schedulers that link the sched_ext project's `lib/sdt_alloc.bpf.c` keep their per-task
//! (and other) contexts in a BPF arena, handed out by `struct scx_allocator` instances in
//! their `.bss` (`scx_task_allocator`, `scx_atq_allocator`, …), plus one bump region
//! `struct scx_static scx_static` for objects that live as long as the scheduler.
//!
//! # How the walk finds them
//! 1. The scheduler's `.bss` maps (ARRAY maps named `*.bss`, among the active scheduler's
//!    maps when it is known) and, for each, its program BTF (`bpf_map.btf`, split over
//!    vmlinux) and data section (`bpf_map.btf_value_type_id`).
//! 2. Every `.bss` variable of type `struct scx_allocator` is an allocator, named after
//!    the variable; every one of type `struct scx_static` is a static range.
//! 3. Arena pointers are translated through the active arena map's `kern_vm_start`
//!    (low 32 bits = offset; see [`ArenaWindow`]).
//! 4. The radix tree is walked ([`tree`]); payloads are rendered with the type
//!    [`payload`] picks, or as bytes with `payload_type_reason`.
//!
//! # Fields
//! - `SdtAllocEntry.idx` / `genn`: the element's own `tid`; `user_addr`: the low 32 bits
//!   of `chunk->data[pos]` (the pointer the scheduler holds).
//! - `skipped_subtrees`: descriptors, chunks or elements that could not be read, pointed
//!   outside the arena or were reached twice; `truncated`: a cap or the deadline stopped
//!   the walk.
//! - `ScxStaticRange`: `start_low32` = low 32 bits of `scx_static.memory`, `size` =
//!   `off` (bytes handed out), `capacity` = `max_alloc_bytes`; an instance that was never
//!   initialized or is inconsistent counts in `skipped`.
//!
//! `sdt_alloc_unavailable` is `None` once at least one allocator instance was found;
//! otherwise it carries the wire format's reason (or [`reasons::SDT_BTF_UNAVAILABLE`]).

pub mod layout;
pub mod payload;
#[cfg(test)]
mod tests;
pub mod tree;

use btf_walk::{Btf, Kind, TypeId};
use dump_schema::reasons as why;
use dump_schema::{
    FailureDumpReport, RenderedValue, ScxStaticRange, ScxStaticSnapshot, SdtAllocEntry,
    SdtAllocatorSnapshot, map_type,
};
use guest_mem::Kva;

pub use layout::{DataLayout, SdtLayout, StaticLayout};
pub use payload::{PayloadType, payload_type};
pub use tree::{ArenaWindow, RawEntry, Tree, TreeCaps, walk_allocator};

use crate::WalkError;
use crate::kernel::{KernelView, ValueRenderer, hex};
use crate::reasons;

/// Allocator and static instances considered per capture.
pub const MAX_INSTANCES: usize = 64;

/// What the sdt pass produced.
#[derive(Debug, Clone, Default)]
pub struct SdtCapture {
    pub allocations: Vec<SdtAllocatorSnapshot>,
    pub static_ranges: ScxStaticSnapshot,
    /// `sdt_alloc_unavailable`.
    pub unavailable: Option<String>,
    /// Capture-log lines.
    pub log: Vec<String>,
    /// The deadline stopped a walk.
    pub deadline_hit: bool,
}

impl SdtCapture {
    fn reason(reason: &str) -> SdtCapture {
        SdtCapture {
            unavailable: Some(reason.to_string()),
            ..SdtCapture::default()
        }
    }
}

/// One `.bss` whose program declares the allocator.
struct Program {
    map_name: String,
    btf_kva: Kva,
    btf: Btf,
    /// Guest address of the `.bss` bytes.
    value: Kva,
    datasec: TypeId,
}

/// Runs the sdt pass over a report whose `maps` (and `active_map_kvas`) are filled.
/// `deadline` says when the capture's soft deadline passed.
pub fn capture_sdt(
    r: &FailureDumpReport,
    renderer: Option<&dyn ValueRenderer>,
    k: &KernelView<'_>,
    deadline: &dyn Fn() -> bool,
) -> SdtCapture {
    if deadline() {
        return SdtCapture::reason(why::SDT_ALLOC_DEADLINE);
    }
    let active = |kva: u64| r.active_map_kvas.is_empty() || r.active_map_kvas.contains(&kva);
    let bss: Vec<_> = r
        .maps
        .iter()
        .filter(|m| m.map_type == map_type::ARRAY && m.name.ends_with(".bss") && active(m.map_kva))
        .collect();
    if bss.is_empty() {
        return SdtCapture::reason(why::NO_BSS_MAP);
    }
    let Some(renderer) = renderer else {
        let mut c = SdtCapture::reason(why::NO_BSS_MAP);
        c.log.push("sdt: no BTF renderer".into());
        return c;
    };
    let mut out = SdtCapture::default();
    let mut programs = Vec::new();
    let mut declared_unloadable = false;
    let mut with_btf = 0;
    for m in bss {
        let Some(btf_kva) = member_ptr(k, m.map_kva, "btf") else {
            continue;
        };
        with_btf += 1;
        let Some(btf) = renderer.program_btf(btf_kva, k.mem) else {
            // A renderer that cannot hand out the BTF may still see the type.
            declared_unloadable |= renderer
                .find_struct(btf_kva, "scx_allocator", k.mem)
                .is_some();
            continue;
        };
        if btf.struct_by_name("scx_allocator").is_err() {
            continue;
        }
        match program(k, m.map_kva, &m.name, btf_kva, btf) {
            Ok(p) => programs.push(p),
            Err(e) => out.log.push(format!("sdt: {}: {e}", m.name)),
        }
    }
    if programs.is_empty() {
        out.unavailable = Some(if with_btf == 0 {
            why::NO_BSS_MAP.into()
        } else if declared_unloadable {
            reasons::SDT_BTF_UNAVAILABLE.into()
        } else {
            why::NO_SCX_ALLOCATOR_TYPE.into()
        });
        return out;
    }
    let arena = r
        .maps
        .iter()
        .filter(|m| m.map_type == map_type::ARENA && active(m.map_kva))
        .find_map(|m| m.arena.as_ref());
    let Some(arena) = arena else {
        out.unavailable = Some(why::NO_ARENA_MAP.into());
        return out;
    };
    if arena.user_vm_start % (1 << 32) != 0 {
        out.unavailable = Some(why::USER_VM_START_UNALIGNED.into());
        return out;
    }
    let window = ArenaWindow {
        kern_vm_start: arena.kern_vm_start,
        user_vm_start: arena.user_vm_start,
    };
    for p in &programs {
        walk_program(k, renderer, window, p, deadline, &mut out);
    }
    if out.allocations.is_empty() {
        out.unavailable = Some(why::NO_SCX_ALLOCATOR_INSTANCE.into());
    }
    out
}

/// `struct bpf_map.<member>` as a pointer, `None` when unknown or NULL.
fn member_ptr(k: &KernelView<'_>, map: u64, member: &str) -> Option<Kva> {
    let off = k.types.offset_of("bpf_map", member)?;
    k.ptr(Kva(map).checked_offset(off).ok()?, "bpf_map member")
        .ok()
        .filter(|p| p.0 != 0)
}

fn program(
    k: &KernelView<'_>,
    map: u64,
    name: &str,
    btf_kva: Kva,
    btf: Btf,
) -> Result<Program, String> {
    let value_off = k
        .types
        .offset_of("bpf_array", "value")
        .ok_or("kernel BTF lacks bpf_array.value")?;
    let vt_off = k
        .types
        .offset_of("bpf_map", "btf_value_type_id")
        .ok_or("kernel BTF lacks bpf_map.btf_value_type_id")?;
    let map = Kva(map);
    let vt = map
        .checked_offset(vt_off)
        .map_err(WalkError::from)
        .and_then(|a| k.u32(a, "bpf_map.btf_value_type_id"));
    let datasec = TypeId(vt.map_err(|e| e.to_string())?);
    if !matches!(btf.kind(datasec), Ok(Kind::Datasec { .. })) {
        return Err(format!("value type {} is not a data section", datasec.0));
    }
    Ok(Program {
        map_name: name.to_string(),
        btf_kva,
        btf,
        value: map
            .checked_offset(value_off)
            .map_err(|e| WalkError::from(e).to_string())?,
        datasec,
    })
}

/// `.bss` variables whose type is `struct <ty>`: (name, address, type).
fn instances(p: &Program, ty: &str) -> Vec<(String, Kva)> {
    let Ok(vars) = p.btf.datasec_vars(p.datasec) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in vars {
        let Ok(Kind::Var { target }) = p.btf.kind(v.var) else {
            continue;
        };
        let Ok(t) = p.btf.strip(target) else { continue };
        let is_ty = matches!(p.btf.kind(t), Ok(Kind::Struct { .. }))
            && p.btf.name(t).is_ok_and(|n| n == ty);
        if !is_ty {
            continue;
        }
        if out.len() >= MAX_INSTANCES {
            break;
        }
        let name = p.btf.name(v.var).unwrap_or("").to_string();
        if let Ok(a) = p.value.checked_offset(u64::from(v.offset)) {
            out.push((name, a));
        }
    }
    out
}

fn walk_program(
    k: &KernelView<'_>,
    renderer: &dyn ValueRenderer,
    window: ArenaWindow,
    p: &Program,
    deadline: &dyn Fn() -> bool,
    out: &mut SdtCapture,
) {
    match StaticLayout::from_btf(&p.btf) {
        Ok(sl) => {
            for (name, at) in instances(p, "scx_static") {
                match static_range(k, &sl, &name, at) {
                    Some(range) => out.static_ranges.ranges.push(range),
                    None => out.static_ranges.skipped += 1,
                }
            }
        }
        Err(e) => out.log.push(format!("sdt: {}: {e}", p.map_name)),
    }
    let layout = SdtLayout::from_btf(&p.btf);
    if let Ok(l) = &layout
        && !l.assumed.is_empty()
    {
        out.log.push(format!(
            "sdt: {}: BTF only declares {:?}; their layout is the allocator's documented one",
            p.map_name, l.assumed
        ));
    }
    for (name, at) in instances(p, "scx_allocator") {
        let mut snap = SdtAllocatorSnapshot {
            allocator_name: name.clone(),
            ..SdtAllocatorSnapshot::default()
        };
        let layout = match &layout {
            Ok(l) => l,
            Err(e) => {
                // Listed, not walked: the reader learns the allocator exists and why
                // its tree is missing.
                snap.skipped_subtrees = 1;
                snap.payload_type_reason = e.clone();
                out.allocations.push(snap);
                continue;
            }
        };
        let bytes = match k.bytes(at, layout.alloc_size as usize, "scx_allocator") {
            Ok(b) => b,
            Err(e) => {
                out.log.push(format!("sdt: {name}: {e}"));
                snap.skipped_subtrees = 1;
                out.allocations.push(snap);
                continue;
            }
        };
        let tree = walk_allocator(k, window, layout, &bytes, TreeCaps::default(), deadline);
        out.deadline_hit |= tree.truncated && deadline();
        out.log
            .extend(tree.notes.iter().map(|n| format!("sdt: {name}: {n}")));
        snap.elem_size = tree.elem_size;
        snap.truncated = tree.truncated;
        snap.skipped_subtrees = tree.skipped_subtrees;
        let data = layout.data.unwrap_or_else(|| {
            DataLayout::infer(
                tree.entries
                    .iter()
                    .map(|e| (e.tree_idx, e.bytes.as_slice())),
            )
        });
        let ty = if tree.elem_size == 0 {
            PayloadType::Unknown("allocator not initialized".into())
        } else {
            payload_type(&p.btf, &name, tree.elem_size, data.overhead(), &|n| {
                k.types.size_of(n)
            })
        };
        match &ty {
            PayloadType::Found { id, .. } => snap.target_type_id = id.0,
            PayloadType::Unknown(why) => snap.payload_type_reason = why.clone(),
        }
        let mut torn = 0;
        for e in &tree.entries {
            let Some((idx, genn, payload)) = e.decode(data) else {
                continue;
            };
            torn += usize::from(u64::from(idx as u32) != e.tree_idx);
            snap.entries.push(SdtAllocEntry {
                idx,
                genn,
                user_addr: e.user_addr,
                payload: render_payload(renderer, p.btf_kva, &ty, payload, k),
            });
        }
        if torn > 0 {
            out.log.push(format!(
                "sdt: {name}: {torn} entries whose tid.idx differs from their tree position"
            ));
        }
        out.allocations.push(snap);
    }
}

fn render_payload(
    renderer: &dyn ValueRenderer,
    btf: Kva,
    ty: &PayloadType,
    bytes: &[u8],
    k: &KernelView<'_>,
) -> RenderedValue {
    if let PayloadType::Found { id, size } = ty {
        let n = (*size as usize).min(bytes.len());
        if let Ok(v) = renderer.render(Some(btf), id.0, &bytes[..n], k.mem) {
            return v;
        }
    }
    RenderedValue::Bytes { hex: hex(bytes) }
}

/// One `struct scx_static`; `None` when never initialized or inconsistent.
fn static_range(
    k: &KernelView<'_>,
    l: &StaticLayout,
    name: &str,
    at: Kva,
) -> Option<ScxStaticRange> {
    let b = k.bytes(at, l.size as usize, "scx_static").ok()?;
    let field = |off: u64| {
        let o = usize::try_from(off).ok()?;
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    };
    let (cap, memory, used) = (field(l.max_alloc_bytes)?, field(l.memory)?, field(l.off)?);
    // The arena is a 4 GiB window: a larger region, or more used than reserved, is garbage.
    if memory == 0 || cap == 0 || cap > 1 << 32 || used > cap {
        return None;
    }
    Some(ScxStaticRange {
        instance_name: name.to_string(),
        start_low32: memory as u32,
        size: used,
        capacity: cap,
    })
}
