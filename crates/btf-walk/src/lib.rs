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
//!   [`Field::extract`]; groups with every missing member via [`OffsetGroup`].
//!
//! Nothing read from the guest is trusted: sizes are capped, type-graph walks are bounded,
//! errors name what failed, and nothing panics on bad input.

mod btf;
mod error;
mod guest;
mod load;
mod offsets;
mod render;
mod table;

#[doc(hidden)]
pub mod synth;

pub use btf::Btf;
pub use error::{BtfError, MissingMembers, Result};
pub use guest::{GuestBtfCache, MAX_CACHED_BTFS, START_BTF, STOP_BTF};
pub use load::{
    InputFormat, MAX_BTF_BYTES, MAX_DECOMPRESSED_BYTES, MAX_INPUT_BYTES, bzimage_payload,
    decompress, elf_btf_section,
};
pub use offsets::{Field, OffsetGroup};
pub use render::{
    REASON_BUDGET, REASON_CYCLE, REASON_DEPTH, REASON_OPAQUE, REASON_TOO_DEEP, RenderOptions,
    Renderer, Symbolize, cpu_list,
};
pub use table::{EnumValue, Kind, Member, Qualifier, SecVar, Span, TypeId};
