//! BPF programs from `prog_idr`: run-time statistics of the struct_ops programs
//! (`bpf_prog->stats`, per CPU, summed) and the maps a program uses.

use dump_schema::ProgRuntimeStats;
use guest_mem::Kva;

use crate::error::Result;
use crate::kernel::{KernelTypes, KernelView, PerCpu};
use crate::lists::{CoreOffsets, xarray_entries};
use crate::offsets::resolve_group;

/// Offsets (group `bpf_prog`).
#[derive(Debug, Clone, Copy)]
pub struct ProgOffsets {
    pub ty: u64,
    pub aux: u64,
    pub stats: u64,
    pub aux_name: u64,
    pub aux_used_maps: u64,
    pub aux_used_map_cnt: u64,
    pub cnt: u64,
    pub nsecs: u64,
    pub misses: u64,
    pub struct_ops_type: u32,
    /// `bpf_prog_aux.btf`, `.func_info` and `.func_info_cnt`: the program's own BTF and
    /// its function records, for the full name (as bpftool shows it).
    pub aux_btf: Option<u64>,
    pub aux_func_info: Option<u64>,
    pub aux_func_info_cnt: Option<u64>,
}

impl ProgOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<ProgOffsets> {
        resolve_group(t, "bpf_prog", |r| ProgOffsets {
            ty: r.off("bpf_prog", "type"),
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
            aux_btf: r.opt("bpf_prog_aux", "btf"),
            aux_func_info: r.opt("bpf_prog_aux", "func_info"),
            aux_func_info_cnt: r.opt("bpf_prog_aux", "func_info_cnt"),
        })
    }
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

/// `bpf_prog.type`.
pub fn prog_type(k: &KernelView<'_>, o: &ProgOffsets, prog: Kva) -> Result<u32> {
    k.u32(prog.checked_offset(o.ty)?, "bpf_prog.type")
}

/// Program types by their uapi name (`BPF_PROG_TYPE_` + upper case), as bpftool writes
/// them; the value is looked up in the guest's BTF.
const PROG_TYPES: [&str; 33] = [
    "unspec",
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

/// The name of program type `ty` (`tracing`, `syscall`, …), or its number.
pub fn prog_type_name(t: &dyn KernelTypes, ty: u32) -> String {
    PROG_TYPES
        .iter()
        .find(|n| {
            t.enum_value(&format!("BPF_PROG_TYPE_{}", n.to_uppercase()))
                .is_some_and(|v| v == i64::from(ty))
        })
        .map_or_else(|| ty.to_string(), |n| n.to_string())
}

/// `bpf_prog_aux.btf`: the program's own BTF object (NULL when loaded without BTF).
pub fn prog_btf(k: &KernelView<'_>, o: &ProgOffsets, prog: Kva) -> Option<Kva> {
    let aux = k
        .ptr(prog.checked_offset(o.aux).ok()?, "bpf_prog.aux")
        .ok()?;
    let b = k
        .ptr(aux.checked_offset(o.aux_btf?).ok()?, "bpf_prog_aux.btf")
        .ok()?;
    (b.0 != 0).then_some(b)
}

/// The program's full name: the name of the BTF function its first `func_info` record
/// names (what bpftool shows), `None` without BTF or func_info. `btf` is the program's
/// BTF, loaded by the caller.
pub fn full_name(
    k: &KernelView<'_>,
    o: &ProgOffsets,
    prog: Kva,
    btf: &btf_walk::Btf,
) -> Option<String> {
    let aux = k
        .ptr(prog.checked_offset(o.aux).ok()?, "bpf_prog.aux")
        .ok()?;
    let cnt = k
        .u32(
            aux.checked_offset(o.aux_func_info_cnt?).ok()?,
            "func_info_cnt",
        )
        .ok()?;
    let fi = k
        .ptr(
            aux.checked_offset(o.aux_func_info?).ok()?,
            "bpf_prog_aux.func_info",
        )
        .ok()?;
    if cnt == 0 || fi.0 == 0 {
        return None;
    }
    // struct bpf_func_info { u32 insn_off; u32 type_id; }: record 0 is the program.
    let type_id = k
        .u32(fi.checked_offset(4).ok()?, "bpf_func_info.type_id")
        .ok()?;
    let name = btf.name(btf_walk::TypeId(type_id)).ok()?;
    (!name.is_empty() && name.len() <= crate::kernel::MAX_STR).then(|| name.to_string())
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
