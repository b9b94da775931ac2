//! Dispatch queues: every CPU's local DSQ, every CPU's bypass DSQ (7.x, in
//! `scx_sched_pcpu`), the global DSQ of every NUMA node (`scx_sched.pnode[n]` on 7.x,
//! `scx_sched.global_dsqs[n]` before) and the scheduler's user DSQs (the `dsq_hash`
//! rhashtable), each with its queued tasks in list order.

use dump_schema::DsqState;
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use crate::lists::{
    CoreOffsets, LIST_CAP, Links, RHASHTABLE_CAP, rhashtable_nelems, rhashtable_objects_partial,
};
use crate::offsets::resolve_group;
use crate::sched::SchedOffsets;

/// Offsets of `struct scx_dispatch_q` and the task's DSQ list node (group `dsq`).
#[derive(Debug, Clone, Copy)]
pub struct DsqOffsets {
    pub list: u64,
    pub nr: u64,
    pub seq: u64,
    pub id: u64,
    pub hash_node: u64,
    /// `task_struct.scx.dsq_list.node`.
    pub task_node: u64,
    /// `scx_dsq_list_node.flags` relative to `scx_dsq_list_node.node`.
    pub lnode_flags: u64,
    /// `SCX_DSQ_LNODE_ITER_CURSOR`: such list nodes are BPF iterators, not tasks.
    pub iter_cursor: u32,
}

impl DsqOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<DsqOffsets> {
        resolve_group(t, "dsq", |r| {
            let node_in_lnode = r.off("scx_dsq_list_node", "node");
            let flags_in_lnode = r.off("scx_dsq_list_node", "flags");
            DsqOffsets {
                list: r.off("scx_dispatch_q", "list"),
                nr: r.off("scx_dispatch_q", "nr"),
                seq: r.off("scx_dispatch_q", "seq"),
                id: r.off("scx_dispatch_q", "id"),
                hash_node: r.off("scx_dispatch_q", "hash_node"),
                task_node: r.off("task_struct", "scx.dsq_list.node"),
                lnode_flags: flags_in_lnode.wrapping_sub(node_in_lnode),
                iter_cursor: t
                    .enum_value("SCX_DSQ_LNODE_ITER_CURSOR")
                    .map(|v| v as u32)
                    .unwrap_or(1),
            }
        })
    }
}

/// Reads the DSQ at `dsq` with its tasks.
pub fn dsq_state(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &DsqOffsets,
    dsq: Kva,
    origin: String,
) -> Result<DsqState> {
    let id = k.u64(dsq.checked_offset(o.id)?, "dsq.id")?;
    let nr = k.u32(dsq.checked_offset(o.nr)?, "dsq.nr")?;
    let seq = k.u32(dsq.checked_offset(o.seq)?, "dsq.seq")?;
    let nodes = Links::List
        .walk(k, c, dsq.checked_offset(o.list)?, LIST_CAP, "dsq.list")
        .strict()?;
    let mut task_kvas = Vec::with_capacity(nodes.nodes.len());
    for n in &nodes.nodes {
        let flags = k.u32(n.checked_offset(o.lnode_flags)?, "dsq list node flags")?;
        if flags & o.iter_cursor != 0 {
            continue;
        }
        task_kvas.push(n.0.wrapping_sub(o.task_node));
    }
    Ok(DsqState {
        id,
        origin,
        nr,
        seq,
        task_kvas,
        truncated: nodes.truncated,
    })
}

/// Where each DSQ lives, before reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsqLocation {
    pub kva: Kva,
    pub origin: String,
}

/// Where to look for DSQs.
#[derive(Debug, Clone, Copy)]
pub struct DsqSources<'a> {
    /// Every CPU's `struct rq`.
    pub rqs: &'a [Kva],
    /// `rq.scx.local_dsq`, when the rq group resolved.
    pub local_dsq_off: Option<u64>,
    /// The attached scheduler; without one only the local DSQs exist.
    pub sch: Option<Kva>,
}

/// Locations of all DSQs: local (per rq), bypass (per CPU), global (per node), user.
/// Errors locating one kind are returned alongside the locations found.
pub fn locate_dsqs(
    k: &KernelView<'_>,
    c: &CoreOffsets,
    o: &DsqOffsets,
    so: &SchedOffsets,
    pc: &PerCpu,
    src: &DsqSources<'_>,
) -> (Vec<DsqLocation>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    if let Some(ld) = src.local_dsq_off {
        for (cpu, rq) in src.rqs.iter().enumerate() {
            if let Ok(kva) = rq.checked_offset(ld) {
                out.push(DsqLocation {
                    kva,
                    origin: format!("local cpu {cpu}"),
                });
            }
        }
    }
    let Some(sch) = src.sch else {
        return (out, errors);
    };
    if let (Some(pcpu_off), Some(bd)) = (so.pcpu, so.pcpu_bypass_dsq) {
        match k.ptr(Kva(sch.0.wrapping_add(pcpu_off)), "scx_sched.pcpu") {
            Ok(pcpu) => {
                for cpu in 0..pc.nr_cpus() {
                    if let Some(base) = pc.addr(pcpu, cpu) {
                        out.push(DsqLocation {
                            kva: Kva(base.0.wrapping_add(bd)),
                            origin: format!("bypass cpu {cpu}"),
                        });
                    }
                }
            }
            Err(e) => errors.push(format!("bypass DSQs: {e}")),
        }
    }
    match global_dsqs(k, so, sch) {
        Ok(g) => out.extend(g),
        Err(e) => errors.push(format!("global DSQs: {e}")),
    }
    let ht = match so.dsq_hash.at(sch) {
        Ok(a) => a,
        Err(e) => {
            errors.push(format!("user DSQs: {e}"));
            return (out, errors);
        }
    };
    let w = rhashtable_objects_partial(k, c, ht, o.hash_node, RHASHTABLE_CAP);
    let found = w.walked.nodes.len();
    // What the table says it holds: the count a damaged chain is measured against.
    let nelems = rhashtable_nelems(k, c, ht).ok().map(|n| n as usize);
    if w.walked.truncated {
        errors.push(format!(
            "user DSQs: rhashtable walk truncated at {RHASHTABLE_CAP} (nelems {})",
            nelems.map_or("unreadable".into(), |n| n.to_string())
        ));
    }
    match (&w.error, nelems) {
        (Some(e), Some(n)) if n > found => {
            errors.push(format!("user DSQs: {} of {n} unreadable ({e})", n - found))
        }
        (Some(e), _) => errors.push(format!(
            "user DSQs: {} hash chains unreadable, {found} DSQs found ({e})",
            w.broken.max(1)
        )),
        (None, Some(n)) if n != found && !w.walked.truncated => errors.push(format!(
            "user DSQs: rhashtable nelems says {n}, {found} found"
        )),
        _ => {}
    }
    out.extend(w.walked.nodes.into_iter().map(|kva| DsqLocation {
        kva,
        origin: "user".into(),
    }));
    (out, errors)
}

/// Upper bound on NUMA nodes walked (`MAX_NUMNODES` with NODES_SHIFT=10).
const MAX_NODES: u32 = 1024;

fn global_dsqs(k: &KernelView<'_>, so: &SchedOffsets, sch: Kva) -> Result<Vec<DsqLocation>> {
    let nr_nodes = match k.syms.symbol("nr_node_ids") {
        Some(s) => k.u32(s, "nr_node_ids")?.clamp(1, MAX_NODES),
        None => 1,
    };
    let mut out = Vec::new();
    // 7.x: scx_sched.pnode[node]->global_dsq; 6.13–6.19: scx_sched.global_dsqs[node];
    // 6.12: the global global_dsqs[node].
    let (arr_loc, inner) = match (so.pnode, so.pnode_global_dsq, so.global_dsqs) {
        (Some(p), Some(g), _) => (crate::root::Loc::Member(p), g),
        (_, _, Some(g)) => (g, 0),
        _ => return Ok(out),
    };
    let arr = k.ptr(arr_loc.at(sch)?, "global DSQ array")?;
    if arr.0 == 0 {
        return Ok(out);
    }
    for node in 0..nr_nodes {
        let p = k.ptr(arr.checked_offset(u64::from(node) * 8)?, "pnode[node]")?;
        if p.0 == 0 {
            continue;
        }
        out.push(DsqLocation {
            kva: p.checked_offset(inner)?,
            origin: format!("global node {node}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const B: u64 = 0xffff_8880_0000_0000;

    fn types() -> FakeTypes {
        FakeTypes::core().with_dsq().size("scx_dispatch_q", 0x40)
    }

    #[test]
    fn dsq_tasks_in_order_without_iterator_cursors() {
        let t = types();
        let s = FakeSyms::default().with("nr_node_ids", B + 0x9000);
        let mut m = FakeMem::default();
        let dsq = B;
        let (t1, t2, cursor) = (B + 0x1000, B + 0x2000, B + 0x3000);
        // dsq.list -> t1.node -> cursor -> t2.node -> dsq.list
        m.w64(dsq + 0x10, t1 + 0x100);
        m.w64(t1 + 0x100, cursor);
        m.w64(cursor, t2 + 0x100);
        m.w64(t2 + 0x100, dsq + 0x10);
        m.w32(cursor + 0x10, 1); // SCX_DSQ_LNODE_ITER_CURSOR
        m.w32(dsq + 0x20, 2);
        m.w32(dsq + 0x24, 7);
        m.w64(dsq + 0x28, 0x8000_0000_0000_0002);
        let k = KernelView {
            mem: &m,
            syms: &s,
            types: &t,
        };
        let c = CoreOffsets::resolve(&t).unwrap();
        let o = DsqOffsets::resolve(&t).unwrap();
        let d = dsq_state(&k, &c, &o, Kva(dsq), "local cpu 0".into()).unwrap();
        assert_eq!(d.task_kvas, vec![t1, t2]);
        assert_eq!((d.nr, d.seq, d.id), (2, 7, 0x8000_0000_0000_0002));
        assert!(!d.truncated);
        // A list that loops without returning to the head is an error, not a hang.
        m.w64(t2 + 0x100, t1 + 0x100);
        let k = KernelView {
            mem: &m,
            syms: &s,
            types: &t,
        };
        assert!(dsq_state(&k, &c, &o, Kva(dsq), "x".into()).is_err());
    }

    #[test]
    fn missing_member_fails_the_dsq_group_naming_it() {
        let mut t = types();
        t.members
            .remove(&("scx_dispatch_q".to_string(), "seq".to_string()));
        match DsqOffsets::resolve(&t) {
            Err(crate::WalkError::MissingOffsets { group, members }) => {
                assert_eq!(group, "dsq");
                assert_eq!(members, vec!["scx_dispatch_q.seq".to_string()]);
            }
            other => panic!("expected missing offsets, got {other:?}"),
        }
    }
}
