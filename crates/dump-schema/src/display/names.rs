//! Names for addresses: a `task_struct` address the report has a task for prints as
//! `comm[pid]`, the owner of a storage-map entry as its task or cgroup.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use super::text::esc;
use crate::{CgroupPsiStat, FailureDumpReport, TaskEnrichment, map_type};

/// The report's tasks by `task_kva` and cgroups by address.
pub(crate) struct Names<'r> {
    tasks: BTreeMap<u64, &'r TaskEnrichment>,
    cgroups: BTreeMap<u64, &'r CgroupPsiStat>,
}

/// No names: what a value rendered on its own uses.
pub(crate) static NO_NAMES: Names<'static> = Names {
    tasks: BTreeMap::new(),
    cgroups: BTreeMap::new(),
};

impl<'r> Names<'r> {
    pub(crate) fn of(r: &'r FailureDumpReport) -> Self {
        Names {
            tasks: r
                .task_enrichments
                .iter()
                .filter(|t| t.task_kva != 0)
                .map(|t| (t.task_kva, t))
                .collect(),
            cgroups: r
                .cgroup_psi
                .iter()
                .filter(|c| c.cgroup_kva != 0)
                .map(|c| (c.cgroup_kva, c))
                .collect(),
        }
    }

    /// The task at `kva`, when the report has it.
    pub(crate) fn task(&self, kva: u64) -> Option<&'r TaskEnrichment> {
        self.tasks.get(&kva).copied()
    }

    /// `comm[pid]` when `kva` is a captured task, else `0x…`.
    pub(crate) fn write_task(&self, kva: u64, out: &mut dyn Write) -> fmt::Result {
        match self.task(kva) {
            Some(t) => write_name(t, out),
            None => write!(out, "{kva:#x}"),
        }
    }

    /// The owner of a storage map's entry (`key_hex` is its 8-byte little-endian address):
    /// `comm[pid]` for a captured task, `task 0x…`, `cgroup 0x…` (with its PSI serial number
    /// when the report has the cgroup), `inode 0x…`, `sock 0x…`. `None` for other maps.
    pub(crate) fn storage_owner(&self, map_type: u32, key_hex: &str) -> Option<String> {
        let kind = match map_type {
            map_type::TASK_STORAGE => "task",
            map_type::CGRP_STORAGE => "cgroup",
            map_type::INODE_STORAGE => "inode",
            map_type::SK_STORAGE => "sock",
            _ => return None,
        };
        let bytes: [u8; 8] = crate::parse_hex(key_hex)?.try_into().ok()?;
        let kva = u64::from_le_bytes(bytes);
        let mut s = String::new();
        match (kind, self.task(kva), self.cgroups.get(&kva)) {
            ("task", Some(t), _) => write_name(t, &mut s).ok()?,
            ("cgroup", _, Some(c)) => write!(s, "cgroup {kva:#x} (serial {})", c.serial_nr).ok()?,
            _ => write!(s, "{kind} {kva:#x}").ok()?,
        }
        Some(s)
    }
}

/// `comm[pid]`, the comm escaped.
pub(crate) fn write_name(t: &TaskEnrichment, out: &mut dyn Write) -> fmt::Result {
    write!(out, "{}[{}]", esc(&t.comm), t.pid)
}

/// `comm[pid]` as a `String`.
pub(crate) fn name(t: &TaskEnrichment) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_name(t, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_owners_are_named() {
        let r = FailureDumpReport {
            task_enrichments: vec![TaskEnrichment {
                pid: 7,
                comm: "w\n".into(),
                task_kva: 0xffff_8880_0000_1000,
                ..TaskEnrichment::default()
            }],
            cgroup_psi: vec![CgroupPsiStat {
                cgroup_kva: 0xffff_8880_0000_2000,
                serial_nr: 4,
                ..CgroupPsiStat::default()
            }],
            ..FailureDumpReport::default()
        };
        let n = Names::of(&r);
        let key = |kva: u64| crate::hex(&kva.to_le_bytes());
        let own = |t, kva| n.storage_owner(t, &key(kva));
        assert_eq!(
            own(map_type::TASK_STORAGE, 0xffff_8880_0000_1000).unwrap(),
            "w\\n[7]"
        );
        assert_eq!(own(map_type::TASK_STORAGE, 0x10).unwrap(), "task 0x10");
        assert_eq!(
            own(map_type::CGRP_STORAGE, 0xffff_8880_0000_2000).unwrap(),
            "cgroup 0xffff888000002000 (serial 4)"
        );
        assert_eq!(own(map_type::SK_STORAGE, 1).unwrap(), "sock 0x1");
        assert_eq!(own(map_type::INODE_STORAGE, 1).unwrap(), "inode 0x1");
        assert_eq!(own(map_type::HASH, 1), None);
        // A key that is not 8 bytes keeps its hex.
        assert_eq!(n.storage_owner(map_type::TASK_STORAGE, "01 02"), None);
        let mut s = String::new();
        n.write_task(0x20, &mut s).unwrap();
        assert_eq!(s, "0x20");
    }
}
