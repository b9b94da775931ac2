//! Offsets from the guest's BTF, resolved per walker as one group.
//!
//! Each walker declares the members it needs as a plain struct and fills it through a
//! [`Resolver`]. Every missing member is recorded (not just the first), and a group with
//! any required member missing fails as a whole: that walker's section degrades with
//! `scx walker partial: missing offset groups [..]`, the others still run. Members a
//! walker can do without (newer or older kernels) are resolved with [`Resolver::opt`].

use crate::error::WalkError;
use crate::kernel::KernelTypes;

/// Collects the offsets of one group and the members this kernel lacks.
pub struct Resolver<'a> {
    types: &'a dyn KernelTypes,
    group: &'static str,
    missing: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub fn new(types: &'a dyn KernelTypes, group: &'static str) -> Resolver<'a> {
        Resolver {
            types,
            group,
            missing: Vec::new(),
        }
    }

    /// A required member's offset (0 placeholder when missing; `finish` then fails).
    pub fn off(&mut self, ty: &str, path: &str) -> u64 {
        match self.types.offset_of(ty, path) {
            Some(o) => o,
            None => {
                self.missing.push(format!("{ty}.{path}"));
                0
            }
        }
    }

    /// The first of several alternative member paths (renamed across kernel versions).
    pub fn off_any(&mut self, ty: &str, paths: &[&str]) -> u64 {
        for p in paths {
            if let Some(o) = self.types.offset_of(ty, p) {
                return o;
            }
        }
        self.missing.push(format!("{ty}.{}", paths.join("|")));
        0
    }

    /// An optional member's offset.
    pub fn opt(&self, ty: &str, path: &str) -> Option<u64> {
        self.types.offset_of(ty, path)
    }

    /// A required struct size.
    pub fn size(&mut self, ty: &str) -> u64 {
        match self.types.size_of(ty) {
            Some(s) => s,
            None => {
                self.missing.push(format!("sizeof({ty})"));
                0
            }
        }
    }

    /// `Ok(value)` when every required member resolved, else the full missing list.
    pub fn finish<T>(self, value: T) -> Result<T, WalkError> {
        if self.missing.is_empty() {
            Ok(value)
        } else {
            Err(WalkError::MissingOffsets {
                group: self.group,
                members: self.missing,
            })
        }
    }
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
        let mut r = Resolver::new(&t, "rq");
        assert_eq!(r.off("rq", "scx.nr_running"), 8);
        r.off("rq", "scx.flags");
        r.off("rq", "curr");
        assert_eq!(r.opt("rq", "scx.kick_sync"), None);
        let err = r.finish(()).unwrap_err();
        let mut m = MissingGroups::default();
        assert!(m.note(&err));
        assert_eq!(m.reason(), "scx walker partial: missing offset groups [rq]");
        assert_eq!(m.details(), ["rq: rq.scx.flags, rq.curr"]);
    }
}
