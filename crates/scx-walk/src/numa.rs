//! Per-node NUMA allocation counters, as `/sys/devices/system/node/nodeN/numastat`
//! shows them: per zone, `zone.vm_numa_event[]` plus every CPU's not yet folded
//! `per_cpu_zonestats.vm_numa_event[]` (the kernel folds them before printing; a
//! frozen guest cannot, so the walker adds them).

use dump_schema::PerNodeNumaStats;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu, enum_values_or_order};
use crate::offsets::resolve_group;

/// Offsets (group `numa`).
#[derive(Debug, Clone, Copy)]
pub struct NumaOffsets {
    pub node_zones: u64,
    pub zone_size: u64,
    pub nr_zones: u64,
    pub zone_numa: u64,
    pub zone_pcp: u64,
    pub pcp_numa: u64,
    /// Indices of NUMA_HIT, MISS, FOREIGN, INTERLEAVE_HIT, LOCAL, OTHER.
    pub idx: [u64; 6],
}

const ITEMS: [&str; 6] = [
    "NUMA_HIT",
    "NUMA_MISS",
    "NUMA_FOREIGN",
    "NUMA_INTERLEAVE_HIT",
    "NUMA_LOCAL",
    "NUMA_OTHER",
];

impl NumaOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<NumaOffsets> {
        resolve_group(t, "numa", |r| {
            let idx = enum_values_or_order(t, &ITEMS);
            NumaOffsets {
                node_zones: r.off("pglist_data", "node_zones"),
                zone_size: r.size("zone"),
                nr_zones: t.enum_value("__MAX_NR_ZONES").unwrap_or(5).clamp(1, 8) as u64,
                zone_numa: r.off("zone", "vm_numa_event"),
                zone_pcp: r.off("zone", "per_cpu_zonestats"),
                pcp_numa: r.off("per_cpu_zonestat", "vm_numa_event"),
                idx,
            }
        })
    }
}

const MAX_NODES: u32 = 1024;

/// Reads every online node's counters.
pub fn per_node_numa(
    k: &KernelView<'_>,
    o: &NumaOffsets,
    pc: &PerCpu,
) -> Result<Vec<PerNodeNumaStats>> {
    let node_data = k.sym("node_data")?;
    let nr = match k.syms.symbol("nr_node_ids") {
        Some(s) => k.u32(s, "nr_node_ids")?.clamp(1, MAX_NODES),
        None => 1,
    };
    let mut out = Vec::new();
    for node in 0..nr {
        let pgdat = k.ptr(
            node_data.checked_offset(u64::from(node) * 8)?,
            "node_data[]",
        )?;
        if pgdat.0 == 0 {
            continue;
        }
        let mut sums = [0u64; 6];
        for z in 0..o.nr_zones {
            let zone = pgdat.checked_offset(o.node_zones + z * o.zone_size)?;
            let raw = k.bytes(zone.checked_offset(o.zone_numa)?, 48, "zone.vm_numa_event")?;
            let pcp = k.ptr(zone.checked_offset(o.zone_pcp)?, "zone.per_cpu_zonestats")?;
            for (i, s) in sums.iter_mut().enumerate() {
                let j = o.idx[i] as usize * 8;
                if let Some(b) = raw.get(j..j + 8) {
                    *s = s.wrapping_add(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                }
            }
            if pcp.0 == 0 {
                continue;
            }
            for cpu in 0..pc.nr_cpus() {
                let Some(p) = pc.addr(pcp, cpu) else { continue };
                let Ok(raw) = k.bytes(p.checked_offset(o.pcp_numa)?, 48, "pcp vm_numa_event")
                else {
                    continue;
                };
                for (i, s) in sums.iter_mut().enumerate() {
                    let j = o.idx[i] as usize * 8;
                    if let Some(b) = raw.get(j..j + 8) {
                        *s = s.wrapping_add(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                    }
                }
            }
        }
        out.push(PerNodeNumaStats {
            node,
            numa_hit: sums[0],
            numa_miss: sums[1],
            numa_foreign: sums[2],
            numa_interleave_hit: sums[3],
            numa_local: sums[4],
            numa_other: sums[5],
        });
    }
    Ok(out)
}
