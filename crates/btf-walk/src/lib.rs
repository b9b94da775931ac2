//! The guest kernel's BTF: loading (files, ELF, bzImage, guest memory, split BTF),
//! member offsets resolved by name, and rendering guest memory as
//! [`dump_schema::RenderedValue`].
