//! Offsets from the guest's BTF, resolved per walker as one group.
//!
//! Each walker declares the members it needs as a plain struct and fills it through a
//! [`btf_walk::OffsetGroup`] over the [`crate::KernelTypes`]. Every missing member is
//! recorded (not just the first), and a group with any required member missing fails as a
//! whole: that walker's section degrades with `scx walker partial: missing offset groups
//! [..]`, the others still run. Members a walker can do without (newer or older kernels)
//! are resolved with [`btf_walk::OffsetGroup::opt`].

use btf_walk::OffsetGroup;

use crate::error::{Result, WalkError};
use crate::kernel::KernelTypes;

/// Resolves the offsets of group `group`: `build` fills the walker's struct through the
/// group, which fails as a whole when any required member is missing.
pub fn resolve_group<T>(
    t: &dyn KernelTypes,
    group: &'static str,
    build: impl FnOnce(&mut OffsetGroup<'_, dyn KernelTypes>) -> T,
) -> Result<T> {
    let mut r = OffsetGroup::new(t, group);
    let offsets = build(&mut r);
    Ok(r.finish(offsets)?)
}

/// Names of the offset groups that failed in one capture, for the stable reason
/// `scx walker partial: missing offset groups [a, b]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MissingGroups {
    groups: Vec<&'static str>,
    details: Vec<String>,
}

impl MissingGroups {
    /// Records `err` if it is a missing-offsets error; returns whether it was one.
    pub fn note(&mut self, err: &WalkError) -> bool {
        if let WalkError::MissingOffsets { group, members } = err {
            if !self.groups.contains(group) {
                self.groups.push(group);
                self.details
                    .push(format!("{group}: {}", members.join(", ")));
            }
            true
        } else {
            false
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The stable reason string naming the groups.
    pub fn reason(&self) -> String {
        format!(
            "scx walker partial: missing offset groups [{}]",
            self.groups.join(", ")
        )
    }

    /// Which members each group lacked (for logs).
    pub fn details(&self) -> &[String] {
        &self.details
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FakeTypes;

    #[test]
    fn reports_every_missing_member_of_a_group() {
        let t = FakeTypes::default().member("rq", "scx.nr_running", 8);
        let mut r = OffsetGroup::new(&t, "rq");
        assert_eq!(r.off("rq", "scx.nr_running"), 8);
        r.off("rq", "scx.flags");
        r.off("rq", "curr");
        assert_eq!(r.opt("rq", "scx.kick_sync"), None);
        let err = WalkError::from(r.finish(()).unwrap_err());
        let mut m = MissingGroups::default();
        assert!(m.note(&err));
        assert_eq!(m.reason(), "scx walker partial: missing offset groups [rq]");
        assert_eq!(m.details(), ["rq: rq.scx.flags, rq.curr"]);
    }
}
