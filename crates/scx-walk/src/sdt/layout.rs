//! The sdt allocator's layout, from the scheduler's own BTF.
//!
//! Facts (sched_ext project, `lib/sdt_task_defs.h`): `struct scx_allocator { struct
//! sdt_pool pool; sdt_desc_t *root; }`, `struct sdt_pool { ...; elem_size; max_elems;
//! idx; }`, `struct sdt_desc { u64 allocated[8]; u64 nr_free; struct sdt_chunk *chunk; }`,
//! `struct sdt_chunk { union { sdt_desc_t *descs[512]; void *data[512]; }; }` and a tree
//! of three levels. Each element carries `union sdt_id tid { s32 idx; s32 genn; }` in a
//! `struct sdt_data`, in one of two places depending on the release:
//! - **header** (older): `struct sdt_data { union sdt_id tid; u64 payload[]; }`, the
//!   element starts with it and `chunk->data[pos]` points at it;
//! - **tailer** (newer): `struct sdt_data { union sdt_id tid; u64 urcu_link; }` sits in the
//!   element's last bytes and `chunk->data[pos]` points at the payload.
//!
//! Every offset below comes from BTF by member name, so a release that reorders or grows
//! these structs still walks; one that renames a member fails with the member named.

use btf_walk::{Btf, Kind, TypeId};

/// Tree depth (`SDT_TASK_LEVELS`); not in BTF (an enum constant the compiler folds).
pub const LEVELS: usize = 3;
/// Bits of the index per level (`SDT_TASK_ENTS_PER_PAGE_SHIFT`).
pub const SHIFT: u32 = 9;

/// Where `tid` sits in an element and which bytes are the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    /// `tid` at `tid_off` from the element start, payload from `payload_off` to the end.
    Header { tid_off: u64, payload_off: u64 },
    /// `struct sdt_data` (`size` bytes, `tid` at `tid_off` in it) ends the element; the
    /// payload is everything before it.
    Tailer { size: u64, tid_off: u64 },
}

impl DataLayout {
    /// Offset of `tid` and the payload's `(start, len)` in an element of `elem_size`
    /// bytes; `None` when the element is too small to hold the header.
    pub fn place(&self, elem_size: u64) -> Option<(u64, u64, u64)> {
        match *self {
            DataLayout::Header {
                tid_off,
                payload_off,
            } => {
                let len = elem_size.checked_sub(payload_off)?;
                (tid_off + 8 <= elem_size).then_some((tid_off, payload_off, len))
            }
            DataLayout::Tailer { size, tid_off } => {
                let start = elem_size.checked_sub(size)?;
                Some((start + tid_off, 0, start))
            }
        }
    }

    /// Bytes of an element that are not payload.
    pub fn overhead(&self) -> u64 {
        match *self {
            DataLayout::Header { payload_off, .. } => payload_off,
            DataLayout::Tailer { size, .. } => size,
        }
    }
}

/// Offsets of the allocator's structs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtLayout {
    /// `struct scx_allocator`.
    pub alloc_size: u64,
    pub elem_size: u64,
    pub root: u64,
    /// `struct sdt_desc`.
    pub desc_size: u64,
    pub allocated: u64,
    /// u64 words of `allocated`.
    pub bitmap_words: u32,
    pub chunk: u64,
    /// `struct sdt_chunk`: its pointer array's offset and length.
    pub slots_off: u64,
    pub slots: u32,
    /// `None` when the BTF lacks `struct sdt_data`: the caller infers it from the
    /// elements ([`DataLayout::infer`]).
    pub data: Option<DataLayout>,
    /// Structs the BTF only declares (or lacks) whose layout came from the facts above.
    pub assumed: Vec<&'static str>,
}
/// Offsets of `struct scx_static { size_t max_alloc_bytes; void *memory; size_t off; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticLayout {
    pub size: u64,
    pub max_alloc_bytes: u64,
    pub memory: u64,
    pub off: u64,
}

/// A layout problem: the struct or member the scheduler's BTF lacks.
pub type LayoutError = String;

fn off(b: &Btf, root: TypeId, path: &str) -> Result<u64, LayoutError> {
    let f = b
        .field(root, path)
        .map_err(|e| format!("sdt layout: {}.{path}: {e}", b.display_name(root)))?;
    if f.is_bitfield() {
        return Err(format!("sdt layout: {path} is a bitfield"));
    }
    Ok(f.offset())
}

fn complete_struct(b: &Btf, name: &str) -> Result<TypeId, LayoutError> {
    let id = b
        .struct_by_name(name)
        .map_err(|e| format!("sdt layout: struct {name}: {e}"))?;
    match b.kind(id) {
        Ok(Kind::Struct { .. }) => Ok(id),
        _ => Err(format!("sdt layout: struct {name} is only declared")),
    }
}

fn size(b: &Btf, id: TypeId) -> Result<u64, LayoutError> {
    b.size_of(id)
        .map_err(|e| format!("sdt layout: size of {}: {e}", b.display_name(id)))
}

/// Whether the BTF defines `struct name` completely (a linked BPF object keeps only the
/// types its variables and functions reach: `sdt_chunk` and `sdt_data` are often just
/// declared).
fn defined(b: &Btf, name: &str) -> Option<TypeId> {
    let id = b.struct_by_name(name).ok()?;
    matches!(b.kind(id), Ok(Kind::Struct { .. })).then_some(id)
}

impl SdtLayout {
    /// Resolves the layout from the scheduler's BTF (split over vmlinux or standalone).
    /// `struct scx_allocator` must be defined; `sdt_desc` and `sdt_chunk` fall back to
    /// the facts of `lib/sdt_task_defs.h` when only declared, `sdt_data` to inference.
    pub fn from_btf(b: &Btf) -> Result<SdtLayout, LayoutError> {
        let alloc = complete_struct(b, "scx_allocator")?;
        let mut assumed = Vec::new();
        let (desc_size, allocated, bitmap_words, chunk) = match defined(b, "sdt_desc") {
            Some(desc) => {
                let bitmap_words = b
                    .field(desc, "allocated")
                    .ok()
                    .and_then(|f| b.array_of(f.ty).ok())
                    .map(|(_, n)| n)
                    .ok_or_else(|| "sdt layout: sdt_desc.allocated is not an array".to_string())?;
                (
                    size(b, desc)?,
                    off(b, desc, "allocated")?,
                    bitmap_words,
                    off(b, desc, "chunk")?,
                )
            }
            None => {
                assumed.push("sdt_desc");
                let words = (1u32 << SHIFT) / 64;
                let chunk = u64::from(words) * 8 + 8;
                (chunk + 8, 0, words, chunk)
            }
        };
        let (slots_off, slots) = match defined(b, "sdt_chunk") {
            Some(chunk) => {
                let f = b
                    .field(chunk, "descs")
                    .or_else(|_| b.field(chunk, "data"))
                    .map_err(|e| format!("sdt layout: sdt_chunk: {e}"))?;
                let (_, n) = b
                    .array_of(f.ty)
                    .map_err(|e| format!("sdt layout: sdt_chunk.descs: {e}"))?;
                (f.offset(), n)
            }
            None => {
                assumed.push("sdt_chunk");
                (0, 1 << SHIFT)
            }
        };
        let data = match defined(b, "sdt_data") {
            Some(_) => Some(data_layout(b)?),
            None => {
                assumed.push("sdt_data");
                None
            }
        };
        Ok(SdtLayout {
            alloc_size: size(b, alloc)?,
            elem_size: off(b, alloc, "pool.elem_size")?,
            root: off(b, alloc, "root")?,
            desc_size,
            allocated,
            bitmap_words,
            chunk,
            slots_off,
            slots,
            data,
            assumed,
        })
    }
}

impl DataLayout {
    /// The forms a release may use, for [`infer`](Self::infer): the header, and tailers
    /// of `{tid, urcu_link}` and of `{tid}` alone.
    pub const CANDIDATES: [DataLayout; 3] = [
        DataLayout::Tailer {
            size: 16,
            tid_off: 0,
        },
        DataLayout::Header {
            tid_off: 0,
            payload_off: 8,
        },
        DataLayout::Tailer {
            size: 8,
            tid_off: 0,
        },
    ];

    /// The candidate under which the most elements carry the index their tree position
    /// spells (`elements`: `(tree_idx, element bytes)`); the first candidate on a tie.
    pub fn infer<'a>(elements: impl Iterator<Item = (u64, &'a [u8])> + Clone) -> DataLayout {
        let score = |d: &DataLayout| {
            elements
                .clone()
                .filter(|(idx, bytes)| {
                    d.place(bytes.len() as u64)
                        .and_then(|(tid, _, _)| {
                            let t = usize::try_from(tid).ok()?;
                            Some(i32::from_le_bytes(bytes.get(t..t + 4)?.try_into().ok()?))
                        })
                        .is_some_and(|i| u64::from(i as u32) == *idx)
                })
                .count()
        };
        let mut best = DataLayout::CANDIDATES[0];
        let mut best_score = score(&best);
        for d in &DataLayout::CANDIDATES[1..] {
            let s = score(d);
            if s > best_score {
                best = *d;
                best_score = s;
            }
        }
        best
    }
}

/// Header or tailer, told apart by `struct sdt_data` itself: only the header form has
/// the flexible `payload` member.
fn data_layout(b: &Btf) -> Result<DataLayout, LayoutError> {
    let data = complete_struct(b, "sdt_data")?;
    let tid_off = off(b, data, "tid")?;
    match b.field(data, "payload") {
        Ok(p) => Ok(DataLayout::Header {
            tid_off,
            payload_off: p.offset(),
        }),
        Err(_) => Ok(DataLayout::Tailer {
            size: size(b, data)?,
            tid_off,
        }),
    }
}

impl StaticLayout {
    pub fn from_btf(b: &Btf) -> Result<StaticLayout, LayoutError> {
        let s = complete_struct(b, "scx_static")?;
        Ok(StaticLayout {
            size: size(b, s)?,
            max_alloc_bytes: off(b, s, "max_alloc_bytes")?,
            memory: off(b, s, "memory")?,
            off: off(b, s, "off")?,
        })
    }
}
