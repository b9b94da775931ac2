//! Pressure stall information per cgroup (cgroup v2 hierarchy from `cgrp_dfl_root`).
//!
//! Each `CgroupPsiStat` carries the raw kernel values of the **CPU some** state:
//! `total_ns = psi->total[PSI_AVGS][PSI_CPU_SOME]` and
//! `avg10_raw = psi->avg[PSI_CPU_SOME][0]` (fixed point, FIXED_1 = 2048), with the
//! cgroup's `self.serial_nr`. CPU pressure is what a misbehaving scheduler causes.
//! The root cgroup has no `psi` of its own; its entry is `psi_system`.

use dump_schema::CgroupPsiStat;
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, Visited};
use crate::lists::{CoreOffsets, Links};
use crate::offsets::resolve_group;

/// Cap on cgroups walked.
pub const CGROUP_CAP: usize = 4096;

/// Offsets (group `psi`).
#[derive(Debug, Clone, Copy)]
pub struct PsiOffsets {
    pub root_cgrp: u64,
    pub cgrp_self: u64,
    pub css_children: u64,
    pub css_sibling: u64,
    pub css_serial_nr: u64,
    pub cgrp_psi: u64,
    pub psi_total: u64,
    pub psi_avg: u64,
    pub cpu_some: u64,
}

impl PsiOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<PsiOffsets> {
        resolve_group(t, "psi", |r| PsiOffsets {
            root_cgrp: r.off("cgroup_root", "cgrp"),
            cgrp_self: r.off("cgroup", "self"),
            css_children: r.off("cgroup_subsys_state", "children"),
            css_sibling: r.off("cgroup_subsys_state", "sibling"),
            css_serial_nr: r.off("cgroup_subsys_state", "serial_nr"),
            cgrp_psi: r.off("cgroup", "psi"),
            psi_total: r.off("psi_group", "total"),
            psi_avg: r.off("psi_group", "avg"),
            cpu_some: t.enum_value("PSI_CPU_SOME").unwrap_or(4).clamp(0, 16) as u64,
        })
    }
}

/// Walks the default hierarchy depth-first from the root cgroup.
pub fn cgroup_psi(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &PsiOffsets,
) -> Result<(Vec<CgroupPsiStat>, bool)> {
    let root = k.sym("cgrp_dfl_root")?.checked_offset(o.root_cgrp)?;
    let mut out = Vec::new();
    let mut seen = Visited::new(CGROUP_CAP);
    let mut stack = vec![root];
    let mut truncated = false;
    while let Some(cg) = stack.pop() {
        if !seen.visit(cg, "cgroup tree")? {
            truncated = true;
            break;
        }
        let css = cg.checked_offset(o.cgrp_self)?;
        let serial_nr = k.u64(css.checked_offset(o.css_serial_nr)?, "css.serial_nr")?;
        let mut psi = k.ptr(cg.checked_offset(o.cgrp_psi)?, "cgroup.psi")?;
        if psi.0 == 0 && cg == root {
            // The root cgroup's pressure is the system-wide group.
            psi = k.syms.symbol("psi_system").unwrap_or(Kva(0));
        }
        if psi.0 != 0 {
            // total[PSI_AVGS][state]: row 0 is the averaging aggregator.
            let total_ns = k.u64(
                psi.checked_offset(o.psi_total + o.cpu_some * 8)?,
                "psi.total",
            )?;
            let avg10_raw = k.u64(
                psi.checked_offset(o.psi_avg + o.cpu_some * 3 * 8)?,
                "psi.avg",
            )?;
            out.push(CgroupPsiStat {
                cgroup_kva: cg.0,
                total_ns,
                avg10_raw,
                serial_nr,
            });
        }
        let children = css.checked_offset(o.css_children)?;
        let kids = Links::List
            .walk(k, c, children, CGROUP_CAP, "css.children")
            .strict()?;
        truncated |= kids.truncated;
        // Children are linked through css.sibling; the cgroup is `self` minus its offset.
        for n in kids.nodes.iter().rev() {
            stack.push(Kva(n
                .0
                .wrapping_sub(o.css_sibling)
                .wrapping_sub(o.cgrp_self)));
        }
    }
    Ok((out, truncated))
}
