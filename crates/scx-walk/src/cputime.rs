//! Per-CPU time: `kernel_cpustat.cpustat[]` (ns), `kstat.softirqs[]` and
//! `kstat.irqs_sum`, the sources of `/proc/stat`.

use dump_schema::PerCpuTimeStats;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu, enum_values_or_order};
use crate::offsets::resolve_group;

/// Offsets (group `cputime`).
#[derive(Debug, Clone, Copy)]
pub struct CpuTimeOffsets {
    pub cpustat: u64,
    pub irqs_sum: u64,
    pub softirqs: u64,
    /// Indices into `cpustat[]`: user, nice, system, softirq, irq, idle, iowait, steal.
    pub idx: [u64; 8],
    pub iowait_sleeptime: Option<u64>,
}

const CPUTIME: [&str; 8] = [
    "CPUTIME_USER",
    "CPUTIME_NICE",
    "CPUTIME_SYSTEM",
    "CPUTIME_SOFTIRQ",
    "CPUTIME_IRQ",
    "CPUTIME_IDLE",
    "CPUTIME_IOWAIT",
    "CPUTIME_STEAL",
];

impl CpuTimeOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<CpuTimeOffsets> {
        resolve_group(t, "cputime", |r| {
            // The enum has been stable since 2.6.
            let idx = enum_values_or_order(t, &CPUTIME);
            CpuTimeOffsets {
                cpustat: r.off("kernel_cpustat", "cpustat"),
                irqs_sum: r.off("kernel_stat", "irqs_sum"),
                softirqs: r.off("kernel_stat", "softirqs"),
                idx,
                iowait_sleeptime: r.opt("tick_sched", "iowait_sleeptime"),
            }
        })
    }
}

/// Reads every CPU's times.
pub fn per_cpu_time(
    k: &KernelView<'_>,
    o: &CpuTimeOffsets,
    pc: &PerCpu,
) -> Result<Vec<PerCpuTimeStats>> {
    let kcs = k.sym("kernel_cpustat")?;
    let kstat = k.sym("kstat")?;
    let tick = k.syms.symbol("tick_cpu_sched");
    let mut out = Vec::with_capacity(pc.nr_cpus());
    for cpu in 0..pc.nr_cpus() {
        let (Some(c), Some(s)) = (pc.addr(kcs, cpu), pc.addr(kstat, cpu)) else {
            continue;
        };
        let raw = k.bytes(
            c.checked_offset(o.cpustat)?,
            8 * 10,
            "kernel_cpustat.cpustat",
        )?;
        let stat = |i: usize| -> u64 {
            let j = o.idx[i] as usize;
            raw.get(j * 8..j * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let sirq = k.bytes(s.checked_offset(o.softirqs)?, 4 * 10, "kstat.softirqs")?;
        let mut softirqs = [0u64; 10];
        for (d, b) in softirqs.iter_mut().zip(sirq.chunks_exact(4)) {
            *d = u64::from(u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
        }
        let iowait_sleeptime_ns = match (tick, o.iowait_sleeptime) {
            (Some(t), Some(off)) => pc.addr(t, cpu).and_then(|a| {
                k.u64(a.checked_offset(off).ok()?, "tick_sched.iowait_sleeptime")
                    .ok()
            }),
            _ => None,
        };
        out.push(PerCpuTimeStats {
            cpu: cpu as u32,
            cpustat_user_ns: stat(0),
            cpustat_nice_ns: stat(1),
            cpustat_system_ns: stat(2),
            cpustat_softirq_ns: stat(3),
            cpustat_irq_ns: stat(4),
            cpustat_idle_ns: stat(5),
            cpustat_iowait_ns: stat(6),
            cpustat_steal_ns: stat(7),
            softirqs,
            irqs_sum: k.u64(s.checked_offset(o.irqs_sum)?, "kstat.irqs_sum")?,
            iowait_sleeptime_ns,
        });
    }
    Ok(out)
}
