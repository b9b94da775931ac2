//! BPF programs from `prog_idr`: run-time statistics of the struct_ops programs
//! (`bpf_prog->stats`, per CPU, summed), the maps a program uses, and the program type's
//! name as bpftool prints it.

use dump_schema::ProgRuntimeStats;
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use crate::lists::{CoreOffsets, xarray_entries};
use btf_walk::OffsetGroup;

/// Offsets (group `bpf_prog`).
#[derive(Debug, Clone, Copy)]
pub struct ProgOffsets {
    pub ty: u64,
    /// `(value, name)` of every `enum bpf_prog_type` enumerator of [`PROG_TYPE_NAMES`]
    /// this kernel's BTF has (values differ by kernel only in principle, but BTF says).
    pub type_names: [Option<(u32, &'static str)>; PROG_TYPE_NAMES.len()],
    pub aux: u64,
    pub stats: u64,
    pub aux_name: u64,
    pub aux_used_maps: u64,
    pub aux_used_map_cnt: u64,
    pub cnt: u64,
    pub nsecs: u64,
    pub misses: u64,
    pub struct_ops_type: u32,
}

impl ProgOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<ProgOffsets> {
        let mut r = OffsetGroup::new(t, "bpf_prog");
        let mut type_names = [None; PROG_TYPE_NAMES.len()];
        for (slot, name) in type_names.iter_mut().zip(PROG_TYPE_NAMES) {
            let variant = format!("BPF_PROG_TYPE_{}", name.to_ascii_uppercase());
            if let Some(v) = t.enum_value(&variant).and_then(|v| u32::try_from(v).ok()) {
                *slot = Some((v, name));
            }
        }
        let o = ProgOffsets {
            ty: r.off("bpf_prog", "type"),
            type_names,
            aux: r.off("bpf_prog", "aux"),
            stats: r.off("bpf_prog", "stats"),
            aux_name: r.off("bpf_prog_aux", "name"),
            aux_used_maps: r.off("bpf_prog_aux", "used_maps"),
            aux_used_map_cnt: r.off("bpf_prog_aux", "used_map_cnt"),
            cnt: r.off("bpf_prog_stats", "cnt"),
            nsecs: r.off("bpf_prog_stats", "nsecs"),
            misses: r.off("bpf_prog_stats", "misses"),
            struct_ops_type: t
                .enum_value("BPF_PROG_TYPE_STRUCT_OPS")
                .map(|v| v as u32)
                .unwrap_or(27),
        };
        Ok(r.finish(o)?)
    }
}

/// Program types by their uapi name without `BPF_PROG_TYPE_`, lowercase: the names
/// bpftool prints (`prog show`'s `type`).
pub const PROG_TYPE_NAMES: [&str; 32] = [
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

/// The name of program type `ty` (see [`PROG_TYPE_NAMES`]), or `type <n>` for one this
/// kernel's BTF does not name.
pub fn prog_type_name(o: &ProgOffsets, ty: u32) -> String {
    o.type_names
        .iter()
        .flatten()
        .find(|(v, _)| *v == ty)
        .map_or_else(|| format!("type {ty}"), |(_, n)| n.to_string())
}

/// The type of `prog` (`bpf_prog.type`).
pub fn prog_type(k: &KernelView<'_>, o: &ProgOffsets, prog: Kva) -> Result<u32> {
    k.u32(prog.checked_offset(o.ty)?, "bpf_prog.type")
}

/// Programs in `prog_idr`, in id order.
pub fn prog_kvas(k: &KernelView<'_>, c: &CoreOffsets, cap: usize) -> Result<Vec<Kva>> {
    let idr = k.sym("prog_idr")?;
    let (e, _) = xarray_entries(k, c, Kva(idr.0.wrapping_add(c.idr_rt)), cap)?;
    Ok(e.into_iter().map(|(_, p)| p).collect())
}

/// Whether `prog` is a struct_ops program.
pub fn is_struct_ops(k: &KernelView<'_>, o: &ProgOffsets, prog: Kva) -> Result<bool> {
    Ok(prog_type(k, o, prog)? == o.struct_ops_type)
}

/// Name and per-CPU statistics of one program, summed over CPUs.
pub fn runtime_stats(
    k: &KernelView<'_>,
    o: &ProgOffsets,
    pc: &PerCpu,
    prog: Kva,
) -> Result<ProgRuntimeStats> {
    let aux = k.ptr(prog.checked_offset(o.aux)?, "bpf_prog.aux")?;
    let name = k.cstr(aux.checked_offset(o.aux_name)?, 16, "bpf_prog_aux.name")?;
    let stats = k.ptr(prog.checked_offset(o.stats)?, "bpf_prog.stats")?;
    let mut s = ProgRuntimeStats {
        name,
        ..Default::default()
    };
    if stats.0 == 0 {
        return Ok(s);
    }
    for cpu in 0..pc.nr_cpus() {
        let Some(p) = pc.addr(stats, cpu) else {
            continue;
        };
        s.cnt = s
            .cnt
            .wrapping_add(k.u64(p.checked_offset(o.cnt)?, "stats.cnt")?);
        s.nsecs = s
            .nsecs
            .wrapping_add(k.u64(p.checked_offset(o.nsecs)?, "stats.nsecs")?);
        s.misses = s
            .misses
            .wrapping_add(k.u64(p.checked_offset(o.misses)?, "stats.misses")?);
    }
    Ok(s)
}

/// Maps `prog` uses (`aux->used_maps`), capped at 1024.
pub fn used_maps(k: &KernelView<'_>, o: &ProgOffsets, prog: Kva) -> Result<Vec<Kva>> {
    let aux = k.ptr(prog.checked_offset(o.aux)?, "bpf_prog.aux")?;
    let n = k
        .u32(aux.checked_offset(o.aux_used_map_cnt)?, "used_map_cnt")?
        .min(1024);
    let arr = k.ptr(aux.checked_offset(o.aux_used_maps)?, "used_maps")?;
    if n == 0 || arr.0 == 0 {
        return Ok(Vec::new());
    }
    let raw = k.bytes(arr, n as usize * 8, "used_maps[]")?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| Kva(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
        .filter(|p| p.0 != 0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FakeTypes;

    #[test]
    fn type_names_come_from_the_kernels_enum() {
        let mut t = FakeTypes::default();
        for (ty, m) in [
            ("bpf_prog", "type"),
            ("bpf_prog", "aux"),
            ("bpf_prog", "stats"),
            ("bpf_prog_aux", "name"),
            ("bpf_prog_aux", "used_maps"),
            ("bpf_prog_aux", "used_map_cnt"),
            ("bpf_prog_stats", "cnt"),
            ("bpf_prog_stats", "nsecs"),
            ("bpf_prog_stats", "misses"),
        ] {
            t = t.member(ty, m, 0);
        }
        // A kernel whose enum numbers differ from today's uapi: BTF decides.
        t.enums.insert("BPF_PROG_TYPE_SYSCALL".into(), 3);
        t.enums.insert("BPF_PROG_TYPE_STRUCT_OPS".into(), 40);
        t.enums.insert("BPF_PROG_TYPE_TRACING".into(), 26);
        let o = ProgOffsets::resolve(&t).unwrap();
        assert_eq!(o.struct_ops_type, 40);
        assert_eq!(prog_type_name(&o, 3), "syscall");
        assert_eq!(prog_type_name(&o, 26), "tracing");
        assert_eq!(prog_type_name(&o, 40), "struct_ops");
        // Not named by this kernel's BTF (kprobe would be 2 in the uapi).
        assert_eq!(prog_type_name(&o, 2), "type 2");
        assert_eq!(prog_type_name(&o, u32::MAX), "type 4294967295");
    }
}
