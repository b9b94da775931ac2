//! Address newtypes: mixing a guest-physical and a kernel-virtual address is a bug.
//!
//! Arithmetic on them is checked: a guest pointer is garbage until proven otherwise, so a
//! pointer plus an offset that leaves the 64-bit space is an error ([`AddrOverflow`]), never
//! a wrap or a panic.

use std::fmt;

/// A guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gpa(pub u64);

/// A guest kernel virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Kva(pub u64);

/// An address plus an offset left the 64-bit address space (a garbage pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("address overflow at {base:#x} + {off:#x}")]
pub struct AddrOverflow {
    /// The address the offset was added to.
    pub base: u64,
    /// The offset.
    pub off: u64,
}

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

macro_rules! address_arithmetic {
    ($t:ident) => {
        impl $t {
            /// `self + off`, or [`AddrOverflow`] when that leaves the address space.
            pub fn checked_offset(self, off: u64) -> Result<$t, AddrOverflow> {
                self.0
                    .checked_add(off)
                    .map($t)
                    .ok_or(AddrOverflow { base: self.0, off })
            }

            /// `self - base`: how far `self` lies above `base`; `None` when it lies below.
            pub fn offset_from(self, base: $t) -> Option<u64> {
                self.0.checked_sub(base.0)
            }

            /// Whether `self` is a multiple of `align` (`false` for `align == 0`).
            pub fn is_aligned(self, align: u64) -> bool {
                self.0.checked_rem(align) == Some(0)
            }

            /// `self` rounded down to a multiple of `align` (unchanged for `align == 0`).
            pub fn align_down(self, align: u64) -> $t {
                $t(self.0 - self.0.checked_rem(align).unwrap_or(0))
            }
        }
    };
}

address_arithmetic!(Kva);
address_arithmetic!(Gpa);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_checked() {
        assert_eq!(Kva(0x1000).checked_offset(0x10), Ok(Kva(0x1010)));
        let e = Kva(u64::MAX - 1).checked_offset(2).unwrap_err();
        assert_eq!(
            e,
            AddrOverflow {
                base: u64::MAX - 1,
                off: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "address overflow at 0xfffffffffffffffe + 0x2"
        );
        assert_eq!(Gpa(7).checked_offset(1), Ok(Gpa(8)));
        assert_eq!(Kva(0x1010).offset_from(Kva(0x1000)), Some(0x10));
        assert_eq!(Kva(0x1000).offset_from(Kva(0x1010)), None);
        assert_eq!(Gpa(5).offset_from(Gpa(5)), Some(0));
    }

    #[test]
    fn alignment() {
        assert!(Kva(0x2000).is_aligned(4096));
        assert!(!Kva(0x2008).is_aligned(4096));
        assert!(Kva(0x2008).is_aligned(8));
        assert!(!Kva(0x2008).is_aligned(0));
        assert_eq!(Kva(0x2fff).align_down(4096), Kva(0x2000));
        assert_eq!(Gpa(0x2fff).align_down(0), Gpa(0x2fff));
        assert_eq!(Gpa(13).align_down(5), Gpa(10));
    }
}
