//! Where the kernel keeps its scheduler: the one abstraction the walkers, the trigger and
//! the exit-info reader share, so that none of them asks which kernel it reads.
//!
//! Two layouts exist, told apart by what the kernel's BTF and symbols say (never by a
//! version number):
//! - **`scx_sched`** (7.x): the scheduler is a `struct scx_sched` that the pointer
//!   `scx_root` points at (NULL when none is attached); its state is members of it.
//!   Chosen when the BTF has `struct scx_sched` with `exit_kind`.
//! - **globals** (the first sched_ext kernels, 6.12 LTS): no `struct scx_sched`, no
//!   `scx_root`; the state is kernel globals — `scx_ops` (the `sched_ext_ops`),
//!   `scx_exit_kind` (an `atomic_t`, `SCX_EXIT_DONE` while none is enabled),
//!   `scx_exit_info` (a pointer), `scx_ops_enable_state_var`, `scx_ops_bypass_depth`,
//!   `scx_watchdog_timeout`, `global_dsqs`, `dsq_hash`. Chosen when there is no such
//!   struct and the symbol `scx_exit_kind` exists. They are static data: the kernel lists
//!   them in kallsyms only with `CONFIG_KALLSYMS_ALL`. A scheduler is attached while
//!   `scx_ops_enable_state_var` is not `SCX_OPS_DISABLED`; the report's `sched_kva` is
//!   then the address of `scx_ops`.
//!
//! Each piece of state is a [`Loc`]: a member of the `scx_sched` the root points at, or a
//! global at a fixed address. [`Anchor::locate`] finds the root (`None`: no scheduler).

use guest_mem::{Kva, KvaRead, KvaReadExt};

use crate::error::{Result, WalkError};
use crate::kernel::KernelView;

/// Where one piece of the scheduler's state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// A member of `struct scx_sched`, at this offset from the root.
    Member(u64),
    /// A kernel global at this address (kernels without `struct scx_sched`).
    Global(Kva),
}

impl Loc {
    /// The address of this piece for the scheduler whose root is `root`.
    pub fn at(self, root: Kva) -> Result<Kva> {
        match self {
            Loc::Member(off) => Ok(root.checked_offset(off)?),
            Loc::Global(a) => Ok(a),
        }
    }

    /// This piece, `off` bytes further (a member of a member).
    pub fn plus(self, off: u64) -> Loc {
        match self {
            Loc::Member(o) => Loc::Member(o.wrapping_add(off)),
            Loc::Global(a) => Loc::Global(Kva(a.0.wrapping_add(off))),
        }
    }
}

/// How the kernel finds its scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The `scx_root` pointer variable at this address; the root is what it points at.
    ScxRoot(Kva),
    /// Globals: attached while the `u32` at `enable_state` is not `disabled`; the root is
    /// `ops` (the address of `scx_ops`).
    Globals {
        enable_state: Kva,
        disabled: u32,
        ops: Kva,
    },
}

/// `SCX_OPS_DISABLED` when the BTF does not say (its place in `enum scx_ops_enable_state`
/// on 6.12: ENABLING, ENABLED, DISABLING, DISABLED).
const OPS_DISABLED_DEFAULT: u32 = 3;

impl Anchor {
    /// The root of the attached scheduler, read through `mem`; `None` when none is.
    pub fn locate(
        &self,
        mem: &dyn KvaRead,
    ) -> std::result::Result<Option<Kva>, guest_mem::MemError> {
        match *self {
            Anchor::ScxRoot(p) => {
                let v = mem.read_u64(p)?;
                Ok((v != 0).then_some(Kva(v)))
            }
            Anchor::Globals {
                enable_state,
                disabled,
                ops,
            } => {
                let v = mem.read_u32(enable_state)?;
                Ok((v != disabled).then_some(ops))
            }
        }
    }

    /// What the report's reason says when no scheduler is attached.
    pub fn detached_reason(&self) -> &'static str {
        match self {
            Anchor::ScxRoot(_) => dump_schema::reasons::SCX_ROOT_NULL,
            Anchor::Globals { .. } => crate::reasons::OPS_DISABLED,
        }
    }

    /// The name of what [`Anchor::locate`] reads, for messages.
    pub fn what(&self) -> &'static str {
        match self {
            Anchor::ScxRoot(_) => "scx_root",
            Anchor::Globals { .. } => "scx_ops_enable_state_var",
        }
    }
}

/// Which layout this kernel has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `struct scx_sched` behind `scx_root`.
    ScxSched,
    /// Globals (no `struct scx_sched`).
    Globals,
}

/// The layout the kernel's BTF and symbols say it has; `None` when they say neither (no
/// sched_ext, or a BTF without the scheduler's types).
pub fn layout(k: &KernelView<'_>) -> Option<Layout> {
    if k.types.offset_of("scx_sched", "exit_kind").is_some() {
        Some(Layout::ScxSched)
    } else if k.syms.symbol("scx_exit_kind").is_some() {
        Some(Layout::Globals)
    } else {
        None
    }
}

/// The symbols of the globals layout, each resolved or named as missing.
pub(crate) struct GlobalSyms<'k, 'a> {
    k: &'k KernelView<'a>,
    missing: Vec<String>,
}

impl<'k, 'a> GlobalSyms<'k, 'a> {
    pub fn new(k: &'k KernelView<'a>) -> Self {
        GlobalSyms {
            k,
            missing: Vec::new(),
        }
    }

    /// A required global (recorded as missing when absent; a dummy address returned).
    pub fn req(&mut self, name: &str) -> Kva {
        self.k.syms.symbol(name).unwrap_or_else(|| {
            self.missing.push(format!("symbol {name}"));
            Kva(0)
        })
    }

    /// An optional global.
    pub fn opt(&self, name: &str) -> Option<Kva> {
        self.k.syms.symbol(name)
    }

    /// The anchor of the globals layout.
    pub fn anchor(&mut self) -> Anchor {
        let disabled = self
            .k
            .types
            .enum_value("SCX_OPS_DISABLED")
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(OPS_DISABLED_DEFAULT);
        Anchor::Globals {
            enable_state: self.req("scx_ops_enable_state_var"),
            disabled,
            ops: self.req("scx_ops"),
        }
    }

    /// `value`, or the group's missing-offsets error naming every missing symbol.
    pub fn finish<T>(self, group: &'static str, value: T) -> Result<T> {
        if self.missing.is_empty() {
            Ok(value)
        } else {
            Err(WalkError::MissingOffsets {
                group,
                members: self.missing,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const B: u64 = 0xffff_ffff_8200_0000;

    #[test]
    fn the_layout_comes_from_btf_and_symbols() {
        let m = FakeMem::default();
        let s = FakeSyms::default().with("scx_exit_kind", B);
        let t7 = FakeTypes::default().member("scx_sched", "exit_kind", 8);
        let t6 = FakeTypes::default();
        let k = |t: &FakeTypes, s: &FakeSyms| {
            layout(&KernelView {
                mem: &m,
                syms: s,
                types: t,
            })
        };
        assert_eq!(k(&t7, &s), Some(Layout::ScxSched));
        assert_eq!(k(&t6, &s), Some(Layout::Globals));
        assert_eq!(k(&t6, &FakeSyms::default()), None);
    }

    #[test]
    fn anchors_locate_the_root_or_none() {
        let mut m = FakeMem::default();
        m.w64(B, 0);
        assert_eq!(Anchor::ScxRoot(Kva(B)).locate(&m).unwrap(), None);
        m.w64(B, B + 0x1000);
        assert_eq!(
            Anchor::ScxRoot(Kva(B)).locate(&m).unwrap(),
            Some(Kva(B + 0x1000))
        );
        let g = Anchor::Globals {
            enable_state: Kva(B + 0x100),
            disabled: 3,
            ops: Kva(B + 0x200),
        };
        m.w32(B + 0x100, 3);
        assert_eq!(g.locate(&m).unwrap(), None);
        m.w32(B + 0x100, 1);
        assert_eq!(g.locate(&m).unwrap(), Some(Kva(B + 0x200)));
        assert_eq!(Loc::Global(Kva(B)).at(Kva(1)).unwrap(), Kva(B));
        assert_eq!(Loc::Member(8).at(Kva(B)).unwrap(), Kva(B + 8));
        assert_eq!(Loc::Member(8).plus(4), Loc::Member(12));
        assert!(Loc::Member(8).at(Kva(u64::MAX)).is_err());
    }
}
