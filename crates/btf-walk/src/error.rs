//! Errors of loading BTF and resolving types and members.

use guest_mem::{Kva, MemError};

/// Why BTF could not be loaded or a type or member could not be resolved.
///
/// Every variant carries enough context (the file, the type name, the member path) for a
/// person to see what was asked and what was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BtfError {
    /// Reading an input file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not BTF (or not an ELF/kernel image holding BTF) that we can parse.
    #[error("invalid BTF ({what}): {detail}")]
    Format { what: &'static str, detail: String },
    /// A kernel image or ELF file holds no BTF.
    #[error("no BTF found in {what}: {detail}")]
    NotFound { what: &'static str, detail: String },
    /// A size or count is beyond what this crate accepts (protects time and memory).
    #[error("{what} is {value}, above the limit of {limit}")]
    TooLarge {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// Reading guest memory failed.
    #[error("reading {what} at {kva} failed: {source}")]
    Mem {
        what: &'static str,
        kva: Kva,
        #[source]
        source: MemError,
    },
    /// A type id does not exist in this BTF.
    #[error("type id {0} does not exist")]
    NoSuchTypeId(u32),
    /// No type of the wanted kind has this name.
    #[error("no {kind} named `{name}` in BTF")]
    NoSuchType { kind: &'static str, name: String },
    /// A member path could not be resolved.
    #[error("`{path}`: {why}")]
    BadPath { path: String, why: String },
    /// The type graph is malformed (a typedef loop, a chain too long).
    #[error("malformed type graph at type id {id}: {why}")]
    Malformed { id: u32, why: &'static str },
    /// Members missing from a group resolved with [`crate::OffsetGroup`].
    #[error(transparent)]
    Missing(#[from] MissingMembers),
}

/// Members a walker asked for that this kernel's BTF lacks.
///
/// `group` names the group; `missing` lists every missing entry as [`crate::OffsetGroup`]
/// spells it (`scx_rq.ops_qseq`, `scx_rq.a|b`, `sizeof(scx_rq)`, or `scx_rq` for a whole
/// struct).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset group {group}: missing {}", missing.join(", "))]
pub struct MissingMembers {
    pub group: &'static str,
    pub missing: Vec<String>,
}

pub type Result<T, E = BtfError> = std::result::Result<T, E>;
