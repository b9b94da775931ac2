//! Errors of guest memory access.

use crate::{AddrOverflow, Gpa, Kva};

/// Why a guest memory access failed. Every variant names the address involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemError {
    /// The guest-physical range is not backed by any region (hole or past the end).
    #[error("{gpa} (+{len} bytes) is not backed by guest RAM")]
    Unmapped { gpa: Gpa, len: usize },
    /// A page-table entry on the way to `kva` is not present.
    #[error("{kva} is not mapped: level-{level} entry {entry:#x} not present")]
    NotPresent { kva: Kva, level: u8, entry: u64 },
    /// `kva` is not canonical or lies outside every translatable range.
    #[error("{kva} cannot be translated: {why}")]
    Untranslatable { kva: Kva, why: &'static str },
    /// Address arithmetic overflowed (a garbage pointer plus an offset).
    #[error("address overflow at {addr:#x} + {len}")]
    Overflow { addr: u64, len: usize },
    /// A count or length read from the guest exceeds the caller's cap.
    #[error("{kva}: {count} items exceed the cap of {cap}")]
    TooLarge { kva: Kva, count: u64, cap: usize },
    /// Reading `kva` failed because its translation failed at a physical read
    /// (a page table outside guest RAM, or the page itself in a hole).
    #[error("{kva}: {source}")]
    At {
        kva: Kva,
        #[source]
        source: Box<MemError>,
    },
}

impl From<AddrOverflow> for MemError {
    fn from(e: AddrOverflow) -> MemError {
        MemError::Overflow {
            addr: e.base,
            len: e.off as usize,
        }
    }
}
