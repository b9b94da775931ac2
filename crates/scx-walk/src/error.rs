//! Errors of the walkers. Each names what was being read, so a section's reason string
//! tells a person where the walk stopped.

use btf_walk::MissingMembers;
use guest_mem::{AddrOverflow, Kva, MemError};

/// Why a walk (or one step of it) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// Guest memory could not be read.
    #[error("reading {what}: {source}")]
    Mem {
        what: &'static str,
        #[source]
        source: MemError,
    },
    /// A kernel symbol the walker needs is not in the symbol table.
    #[error("kernel symbol `{0}` not found")]
    NoSymbol(&'static str),
    /// Members the walker needs are missing from this kernel's BTF.
    #[error("missing offset group {group}: {members:?}")]
    MissingOffsets {
        group: &'static str,
        members: Vec<String>,
    },
    /// A list, tree or table in guest memory loops back on itself.
    #[error("cycle in {what} at {at}")]
    Cycle { what: &'static str, at: Kva },
    /// A count or size from guest memory is not plausible.
    #[error("{what}: implausible value {value}")]
    Implausible { what: &'static str, value: u64 },
    /// The capture deadline passed before this step.
    #[error("deadline exceeded before {0}")]
    Deadline(&'static str),
}

impl WalkError {
    /// Wraps a memory error with what was being read.
    pub fn mem(what: &'static str) -> impl FnOnce(MemError) -> WalkError {
        move |source| WalkError::Mem { what, source }
    }
}

/// A guest pointer plus an offset that leaves the address space is implausible.
impl From<AddrOverflow> for WalkError {
    fn from(e: AddrOverflow) -> WalkError {
        WalkError::Implausible {
            what: "address + offset",
            value: e.base,
        }
    }
}

/// An offset group that lacks members fails its walker's section.
impl From<MissingMembers> for WalkError {
    fn from(m: MissingMembers) -> WalkError {
        WalkError::MissingOffsets {
            group: m.group,
            members: m.missing,
        }
    }
}

/// Result of a walker step.
pub type Result<T, E = WalkError> = std::result::Result<T, E>;
