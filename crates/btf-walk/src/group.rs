//! The one offsets API: a walker's members resolved together as a named group, every
//! missing member reported (not just the first).
//!
//! A group asks a [`MemberOffsets`]: the guest's [`Btf`], or a test's synthetic table (so
//! walkers can be tested without a kernel). With a `Btf` the group can also hand out whole
//! [`Field`]s (type, size, bitfield position).

use crate::btf::Btf;
use crate::error::MissingMembers;
use crate::offsets::Field;

/// Types that can say where a member lives.
pub trait MemberOffsets {
    /// Byte offset of the member at `path` (dot-separated, through anonymous members,
    /// `a[3]` for array elements) inside `struct ty`; `None` when absent. A bitfield has no
    /// byte offset (read it through a [`Field`]).
    fn offset_of(&self, ty: &str, path: &str) -> Option<u64>;
    /// Size in bytes of `struct ty` (or union); `None` when the type is absent.
    fn size_of(&self, ty: &str) -> Option<u64>;
}

impl MemberOffsets for Btf {
    fn offset_of(&self, ty: &str, path: &str) -> Option<u64> {
        let f = self.field(self.struct_by_name(ty).ok()?, path).ok()?;
        (!f.is_bitfield()).then(|| f.offset())
    }

    fn size_of(&self, ty: &str) -> Option<u64> {
        Btf::size_of(self, self.struct_by_name(ty).ok()?).ok()
    }
}

/// Resolves the members one walker needs, collecting every one this kernel lacks.
///
/// ```no_run
/// # fn f(btf: &btf_walk::Btf) -> Result<(), btf_walk::MissingMembers> {
/// use btf_walk::{Field, OffsetGroup};
/// struct RqScx { nr_running: u64, flags: Field, kick_sync: Option<u64> }
/// let mut g = OffsetGroup::new(btf, "rq_scx");
/// let o = RqScx {
///     nr_running: g.off("scx_rq", "nr_running"),
///     flags: g.field("scx_rq", "flags"),
///     kick_sync: g.opt("scx_rq", "kick_sync"),
/// };
/// let o = g.finish(o)?; // Err lists e.g. ["scx_rq.nr_running", "scx_rq.flags"]
/// # Ok(()) }
/// ```
///
/// Missing entries read `<struct>.<path>`, `<struct>.<a>|<b>` for alternatives (members
/// renamed across kernel versions) and `sizeof(<struct>)` for a size. A struct checked with
/// [`OffsetGroup::require_struct`] and absent is listed once as `<struct>`, its members not
/// again. Required lookups return a placeholder (0, or [`Field::MISSING`]) until
/// [`OffsetGroup::finish`] reports them.
pub struct OffsetGroup<'a, T: ?Sized + 'a> {
    types: &'a T,
    group: &'static str,
    absent_structs: Vec<String>,
    missing: Vec<String>,
}

impl<'a, T: ?Sized + MemberOffsets> OffsetGroup<'a, T> {
    /// An empty group named `group` (the name reports carry).
    pub fn new(types: &'a T, group: &'static str) -> Self {
        OffsetGroup {
            types,
            group,
            absent_structs: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Whether `struct ty` exists; when it does not it is recorded missing (once) and its
    /// members are not listed one by one.
    pub fn require_struct(&mut self, ty: &str) -> bool {
        if self.types.size_of(ty).is_some() {
            return true;
        }
        if !self.absent_structs.iter().any(|s| s == ty) {
            self.absent_structs.push(ty.to_string());
            self.missing.push(ty.to_string());
        }
        false
    }

    /// A required member's byte offset (0 when missing; `finish` then fails).
    pub fn off(&mut self, ty: &str, path: &str) -> u64 {
        self.types.offset_of(ty, path).unwrap_or_else(|| {
            self.record(ty, || format!("{ty}.{path}"));
            0
        })
    }

    /// The first of several alternative member paths that exists.
    pub fn off_any(&mut self, ty: &str, paths: &[&str]) -> u64 {
        paths
            .iter()
            .find_map(|p| self.types.offset_of(ty, p))
            .unwrap_or_else(|| {
                self.record(ty, || format!("{ty}.{}", paths.join("|")));
                0
            })
    }

    /// An optional member's offset: `None` when absent, not reported.
    pub fn opt(&self, ty: &str, path: &str) -> Option<u64> {
        self.types.offset_of(ty, path)
    }

    /// A required struct size (0 when missing; `finish` then fails).
    pub fn size(&mut self, ty: &str) -> u64 {
        self.types.size_of(ty).unwrap_or_else(|| {
            self.record(ty, || format!("sizeof({ty})"));
            0
        })
    }

    /// Entries missing so far.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// `Ok(value)` when everything required resolved, else every missing entry.
    pub fn finish<V>(self, value: V) -> Result<V, MissingMembers> {
        if self.missing.is_empty() {
            Ok(value)
        } else {
            Err(MissingMembers {
                group: self.group,
                missing: self.missing,
            })
        }
    }

    fn record(&mut self, ty: &str, entry: impl FnOnce() -> String) {
        if !self.absent_structs.iter().any(|s| s == ty) {
            self.missing.push(entry());
        }
    }
}

impl OffsetGroup<'_, Btf> {
    /// A required member as a [`Field`] ([`Field::MISSING`] when absent; `finish` then
    /// fails).
    pub fn field(&mut self, ty: &str, path: &str) -> Field {
        self.opt_field(ty, path).unwrap_or_else(|| {
            self.record(ty, || format!("{ty}.{path}"));
            Field::MISSING
        })
    }

    /// The first of several alternative member paths that exists, as a [`Field`].
    pub fn field_any(&mut self, ty: &str, paths: &[&str]) -> Field {
        paths
            .iter()
            .find_map(|p| self.opt_field(ty, p))
            .unwrap_or_else(|| {
                self.record(ty, || format!("{ty}.{}", paths.join("|")));
                Field::MISSING
            })
    }

    /// An optional member as a [`Field`]: `None` when absent, not reported.
    pub fn opt_field(&self, ty: &str, path: &str) -> Option<Field> {
        self.types
            .field(self.types.struct_by_name(ty).ok()?, path)
            .ok()
    }
}
