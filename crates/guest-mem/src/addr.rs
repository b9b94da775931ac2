//! Address newtypes: mixing a guest-physical and a kernel-virtual address is a bug.

use std::fmt;

/// A guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gpa(pub u64);

/// A guest kernel virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kva(pub u64);

impl fmt::Display for Gpa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gpa {:#x}", self.0)
    }
}

impl fmt::Display for Kva {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kva {:#x}", self.0)
    }
}

impl Kva {
    /// `self + off`, or `None` on overflow (guest pointers can be anything).
    pub fn checked_add(self, off: u64) -> Option<Kva> {
        self.0.checked_add(off).map(Kva)
    }
}

impl Gpa {
    /// `self + off`, or `None` on overflow.
    pub fn checked_add(self, off: u64) -> Option<Gpa> {
        self.0.checked_add(off).map(Gpa)
    }
}
