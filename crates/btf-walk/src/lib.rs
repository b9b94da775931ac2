//! The guest kernel's BTF: loading (files, ELF, bzImage, guest memory, split BTF),
//! member offsets resolved by name, and rendering guest memory as
//! [`dump_schema::RenderedValue`].
//!
//! Layouts change between kernel versions; every offset the project uses comes from here,
//! never from a hard-coded layout.
//!
//! - Load: [`Btf::from_file`] (raw BTF, ELF `.BTF`, bzImage with zstd/xz/gzip payload),
//!   [`Btf::from_bytes`], [`Btf::from_guest`] (`__start_BTF..__stop_BTF`),
//!   [`Btf::split_from_raw`].
//! - Types: [`Btf::struct_by_name`] (duplicate-name rule documented on [`Btf`]),
//!   [`Btf::kind`], [`Btf::size_of`], [`Btf::members`], [`Btf::enum_value`],
//!   [`Btf::enum_variant_name`], [`Btf::section_var`].
//! - Offsets: [`Btf::field`] / [`Btf::field_by_path`] / [`Btf::offset_of`] by path through
//!   anonymous members, typedefs, qualifiers and array indices; bitfields via
//!   [`Field::extract`].
//! - Offset groups: [`OffsetGroup`] resolves a walker's members together and reports every
//!   missing one; it asks any [`MemberOffsets`] (the [`Btf`], or synthetic types in tests).
//!
//! - Guest memory: [`GuestBtfCache`] loads BPF objects' `struct btf` (standalone, or split
//!   on vmlinux) once per address.
//! - Rendering: [`Renderer`] turns bytes or an object at a kernel address into
//!   [`dump_schema::RenderedValue`] under [`RenderOptions`].
//!
//! Nothing read from the guest is trusted: sizes are capped, type-graph walks are bounded,
//! errors name what failed, and nothing panics on bad input.
//!
//! # Example: a walker's offsets
//! ```no_run
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use btf_walk::{Btf, Field, OffsetGroup};
//! let btf = Btf::from_file("/sys/kernel/btf/vmlinux")?;
//! struct ScxSched { exit_kind: Field, ops_name: u64, bypass_depth: u64 }
//! let mut g = OffsetGroup::new(&btf, "scx_sched");
//! g.require_struct("scx_sched");
//! let off = ScxSched {
//!     exit_kind: g.field("scx_sched", "exit_kind"),
//!     ops_name: g.off("scx_sched", "ops.name"),
//!     bypass_depth: g.off("scx_sched", "bypass_depth"),
//! };
//! // Err names every missing member, e.g. ["scx_sched"] on a kernel without sched_ext.
//! let off = g.finish(off)?;
//! let stall = btf.enum_value("scx_exit_kind", "SCX_EXIT_ERROR_STALL")?;
//! # let _ = (off.exit_kind, stall); Ok(()) }
//! ```
//!
//! # Reason strings this crate writes
//! `deref_skipped_reason` of a `ptr`, and `reason` of `unsupported`, one constant each:
//!
//! | constant | text | when |
//! |---|---|---|
//! | [`dump_schema::reasons::DEREF_CYCLE`] | `cycle` | the pointee was already rendered by this renderer (a cycle, or an object reached twice) |
//! | [`REASON_DEPTH`] | `dereference depth limit reached` | [`RenderOptions::max_deref_depth`] pointers deep |
//! | [`REASON_OPAQUE`] | `pointee has no layout (void, function or forward declaration)` | `void *`, function pointers, opaque structs |
//! | [`REASON_BUDGET`] | `render budget exhausted` | [`RenderOptions::max_values`] values produced |
//! | [`REASON_TOO_DEEP`] | `nested deeper than the wire format allows` | beyond [`dump_schema::MAX_JSON_DEPTH`] |
//!
//! Other reasons carry details and start with a fixed prefix: `read failed: …` (guest
//! memory), `pointee has no size: …`, `pointee of N bytes exceeds the M-byte read cap`,
//! `cannot render a <kind>`, `bitfield wider than 64 bits`, `member not byte-aligned`.
//! A `truncated` value holds what fit: struct members wholly past the available bytes are
//! left out, a member cut in the middle is itself `truncated`.

mod btf;
mod error;
mod group;
mod guest;
mod load;
mod offsets;
mod render;
mod table;

#[doc(hidden)]
#[cfg(any(test, feature = "test-util"))]
pub mod synth;

pub use btf::Btf;
pub use error::{BtfError, MissingMembers, Result};
pub use group::{MemberOffsets, OffsetGroup};
pub use guest::{GuestBtfCache, MAX_CACHED_BTFS, START_BTF, STOP_BTF};
pub use load::{
    InputFormat, MAX_BTF_BYTES, MAX_DECOMPRESSED_BYTES, MAX_INPUT_BYTES, bzimage_payload,
    decompress, elf_btf_section,
};
pub use offsets::Field;
pub use render::{
    REASON_BUDGET, REASON_DEPTH, REASON_OPAQUE, REASON_TOO_DEEP, RenderOptions, Renderer,
    Symbolize, cpu_list,
};
pub use table::{EnumValue, Kind, Member, Qualifier, SecVar, Span, TypeId};
