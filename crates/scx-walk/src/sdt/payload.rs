//! Which BTF type an allocator's payload has.
//!
//! The allocator stores no type: `scx_alloc_init(alloc, sizeof(T), align)` keeps only
//! `elem_size = round_up(sizeof(T) + overhead, align)`. So the candidates are the
//! scheduler's own structs (its split BTF, not vmlinux) whose size fits that element:
//! `size + overhead <= elem_size` and within the alignment slack (64 bytes, a cache line,
//! the largest alignment the sched_ext libraries ask for). Among several, a name that
//! contains the allocator's stem (`scx_task_allocator` → `task`, `scx_atq_allocator` →
//! `atq`) decides, then an exact 8-byte fit; when still ambiguous the payload is shown as
//! bytes and `payload_type_reason` says why.

use btf_walk::{Btf, Kind, TypeId};

/// Alignment slack considered when matching sizes.
const MAX_ALIGN_SLACK: u64 = 64;
/// Program BTF types scanned at most (real schedulers have a few thousand).
const MAX_SCAN: u32 = 200_000;

/// The chosen type, or why none was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadType {
    Found {
        id: TypeId,
        size: u64,
    },
    /// `payload_type_reason`.
    Unknown(String),
}

/// The stem of an allocator's variable name: `scx_task_allocator` → `task`.
fn stem(name: &str) -> &str {
    let s = name.strip_suffix("_allocator").unwrap_or(name);
    s.strip_prefix("scx_").unwrap_or(s)
}

/// Picks the payload type of allocator `name` with elements of `elem_size` bytes, of
/// which `overhead` are the allocator's own. `kernel_size(name)` is the size of the
/// kernel's struct of that name: a standalone program BTF carries copies of the kernel
/// types its code touches, and a copy (same name, same size) is never an arena payload.
pub fn payload_type(
    b: &Btf,
    name: &str,
    elem_size: u64,
    overhead: u64,
    kernel_size: &dyn Fn(&str) -> Option<u64>,
) -> PayloadType {
    let Some(room) = elem_size.checked_sub(overhead).filter(|r| *r > 0) else {
        return PayloadType::Unknown(format!(
            "element of {elem_size} bytes has no room for a payload"
        ));
    };
    let first = b.base().map_or(1, Btf::type_count);
    let end = b.type_count().min(first.saturating_add(MAX_SCAN));
    let mut fits: Vec<(TypeId, u64, &str)> = Vec::new();
    for id in (first..end).map(TypeId) {
        let Ok(Kind::Struct {
            size,
            is_union: false,
            ..
        }) = b.kind(id)
        else {
            continue;
        };
        let size = u64::from(size);
        let Ok(tname) = b.name(id) else { continue };
        if tname.is_empty() || size == 0 || size > room || room - size >= MAX_ALIGN_SLACK {
            continue;
        }
        // The allocator's own structs are never its payload, nor the kernel's.
        if matches!(tname, "sdt_data" | "sdt_desc" | "sdt_chunk" | "sdt_pool")
            || kernel_size(tname) == Some(size)
        {
            continue;
        }
        fits.push((id, size, tname));
    }
    let pick = |v: &[(TypeId, u64, &str)]| match v {
        [(id, size, _)] => Some(PayloadType::Found {
            id: *id,
            size: *size,
        }),
        _ => None,
    };
    if let Some(p) = pick(&fits) {
        return p;
    }
    if fits.is_empty() {
        return PayloadType::Unknown(format!(
            "no struct of the scheduler fits a {room}-byte payload"
        ));
    }
    let st = stem(name);
    let named: Vec<_> = fits
        .iter()
        .filter(|(_, _, n)| !st.is_empty() && n.contains(st))
        .copied()
        .collect();
    if let Some(p) = pick(&named) {
        return p;
    }
    let pool = if named.is_empty() { &fits } else { &named };
    let exact: Vec<_> = pool
        .iter()
        .filter(|(_, s, _)| (s + overhead).div_ceil(8) * 8 == elem_size)
        .copied()
        .collect();
    if let Some(p) = pick(&exact) {
        return p;
    }
    let mut names: Vec<&str> = pool.iter().map(|(_, _, n)| *n).collect();
    names.truncate(8);
    PayloadType::Unknown(format!(
        "ambiguous: {} structs fit a {room}-byte payload ({})",
        pool.len(),
        names.join(", ")
    ))
}
