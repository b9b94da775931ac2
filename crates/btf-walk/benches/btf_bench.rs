//! Benchmarks with their baseline in the same run (no timed assertions):
//!
//! 1. Cold load of the sched_ext guest kernel's BTF (raw, ≈5 MB) plus resolving every
//!    offset the walkers need, against `bpftool btf dump file … format raw > /dev/null`
//!    on the same file.
//! 2. Rendering 10,000 map values of a realistic scheduler struct (ns per value).
//!
//! `cargo bench -p btf-walk --bench btf_bench`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btf_walk::synth::{BtfBuilder, INT_BOOL, INT_CHAR, INT_SIGNED, RegionMem};
use btf_walk::{Btf, RenderOptions, Renderer, TypeId};

/// Offsets scx-walk, the trigger watcher and map walking read (structure.member paths).
const WALKER_PATHS: &[&str] = &[
    "scx_sched.exit_kind",
    "scx_sched.ops",
    "scx_sched.pcpu",
    "scx_sched.aborting",
    "scx_sched.bypass_depth",
    "scx_sched.watchdog_timeout",
    "scx_sched.exit_info",
    "scx_sched.dsq_hash",
    "scx_sched.pnode",
    "scx_sched_pcpu.event_stats",
    "sched_ext_ops.name",
    "sched_ext_ops.timeout_ms",
    "rq.cpu",
    "rq.nr_running",
    "rq.curr",
    "rq.clock",
    "rq.scx",
    "rq.scx.local_dsq",
    "rq.scx.runnable_list",
    "rq.scx.nr_running",
    "rq.scx.flags",
    "rq.scx.cpu_released",
    "rq.scx.clock",
    "rq.scx.kick_sync",
    "rq.scx.nr_immed",
    "scx_rq.local_dsq",
    "scx_rq.reject_dsq",
    "scx_dispatch_q.list",
    "scx_dispatch_q.nr",
    "scx_dispatch_q.seq",
    "scx_dispatch_q.id",
    "scx_dispatch_q.hash_node",
    "task_struct.pid",
    "task_struct.tgid",
    "task_struct.comm",
    "task_struct.prio",
    "task_struct.static_prio",
    "task_struct.normal_prio",
    "task_struct.rt_priority",
    "task_struct.sched_class",
    "task_struct.nvcsw",
    "task_struct.nivcsw",
    "task_struct.utime",
    "task_struct.stime",
    "task_struct.group_leader",
    "task_struct.real_parent",
    "task_struct.signal",
    "task_struct.se.load.weight",
    "task_struct.se.sum_exec_runtime",
    "task_struct.scx",
    "task_struct.scx.dsq_list",
    "task_struct.scx.runnable_node",
    "task_struct.scx.runnable_at",
    "task_struct.scx.dsq",
    "task_struct.scx.flags",
    "task_struct.scx.weight",
    "task_struct.scx.slice",
    "task_struct.scx.dsq_vtime",
    "task_struct.scx.ops_state",
    "task_struct.scx.ops_qseq",
    "task_struct.tasks",
    "signal_struct.nvcsw",
    "signal_struct.nivcsw",
    "signal_struct.utime",
    "signal_struct.stime",
    "signal_struct.nr_threads",
    "bpf_map.map_type",
    "bpf_map.key_size",
    "bpf_map.value_size",
    "bpf_map.max_entries",
    "bpf_map.name",
    "bpf_map.btf",
    "bpf_map.btf_key_type_id",
    "bpf_map.btf_value_type_id",
    "bpf_array.elem_size",
    "bpf_array.value",
    "bpf_array.pptrs",
    "bpf_prog.aux",
    "bpf_prog.stats",
    "bpf_prog.type",
    "bpf_prog_aux.name",
    "bpf_prog_aux.used_maps",
    "bpf_prog_aux.used_map_cnt",
    "bpf_prog_stats.cnt",
    "bpf_prog_stats.nsecs",
    "bpf_prog_stats.misses",
    "btf.data",
    "btf.data_size",
    "btf.base_btf",
    "idr.idr_rt",
    "xarray.xa_head",
    "xa_node.shift",
    "xa_node.slots",
    "rhashtable.tbl",
    "bucket_table.size",
    "bucket_table.buckets",
    "kernel_cpustat.cpustat",
    "psi_group.total",
    "pglist_data.node_id",
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with `--bench`; keep it quick there too.
    let runs = 7;
    let Some(vmlinuz) = common::guest_kernel() else {
        eprintln!(
            "SKIP: sched_ext guest kernel not provisioned (guest lab); set KTSTR_GUEST_KERNEL"
        );
        return render_bench();
    };
    let image = std::fs::read(&vmlinuz).unwrap();
    let elf = btf_walk::decompress(btf_walk::bzimage_payload(&image).unwrap()).unwrap();
    let raw = btf_walk::elf_btf_section(&elf).unwrap().to_vec();
    let dir = std::env::temp_dir().join(format!("btf-walk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw_path = dir.join("vmlinux.btf");
    std::fs::write(&raw_path, &raw).unwrap();
    println!(
        "input: {} ({} bytes of raw BTF)",
        vmlinuz.display(),
        raw.len()
    );

    // 1. Cold load (file read + parse + table) plus every walker offset.
    let mut ours = Vec::new();
    let mut resolved = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let btf = Btf::from_file(&raw_path).unwrap();
        resolved = 0;
        for p in WALKER_PATHS {
            if black_box(btf.field_by_path(p)).is_ok() {
                resolved += 1;
            }
        }
        ours.push(t.elapsed());
        drop(black_box(btf));
    }
    let ours = median(ours);
    let btf = Btf::from_file(&raw_path).unwrap();
    for p in WALKER_PATHS {
        if let Err(e) = btf.field_by_path(p) {
            println!("  not in this kernel: {e}");
        }
    }
    println!(
        "btf-walk cold load + {resolved}/{} walker offsets: median {:.1} ms over {runs} runs",
        WALKER_PATHS.len(),
        ours.as_secs_f64() * 1e3
    );
    // The offset lookups alone, on a loaded BTF.
    let t = Instant::now();
    for _ in 0..100 {
        for p in WALKER_PATHS {
            black_box(btf.field_by_path(p).ok());
        }
    }
    println!(
        "offset resolution alone: {:.0} ns per path",
        t.elapsed().as_nanos() as f64 / (100 * WALKER_PATHS.len()) as f64
    );

    match common::tool("bpftool") {
        Some(bpftool) => {
            let mut theirs = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let st = Command::new(&bpftool)
                    .args(["btf", "dump", "file"])
                    .arg(&raw_path)
                    .args(["format", "raw"])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                theirs.push(t.elapsed());
                assert!(st.success(), "bpftool failed");
            }
            let theirs = median(theirs);
            println!(
                "bpftool btf dump file … format raw > /dev/null: median {:.1} ms over {runs} runs",
                theirs.as_secs_f64() * 1e3
            );
            println!(
                "ratio btf-walk / bpftool: {:.2}",
                ours.as_secs_f64() / theirs.as_secs_f64()
            );
        }
        None => {
            println!("bpftool not installed: no baseline (Debian bookworm-backports `bpftool`)")
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    render_bench();
}

/// A scheduler's per-task context as BPF schedulers keep it in a map (modelled on
/// scx_bpfland's `task_ctx`), plus a cpumask it points to.
fn sched_btf() -> (Btf, u32) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let u64_ = b.int("long long unsigned int", 8, 0);
    let u32_ = b.int("unsigned int", 4, 0);
    let boolean = b.int("_Bool", 1, INT_BOOL);
    let ch = b.int("char", 1, INT_CHAR);
    let comm = b.array(ch, int, 16);
    let counters = b.array(u64_, int, 8);
    let bits = b.array(u64_, int, 1);
    let cpumask = b.struct_("cpumask", 8, &[("bits", bits, 0, 0)]);
    let bpf_cpumask = b.struct_(
        "bpf_cpumask",
        16,
        &[("cpumask", cpumask, 0, 0), ("usage", u32_, 64, 0)],
    );
    let mask_ptr = b.ptr(bpf_cpumask);
    let state = b.enum_(
        "task_state",
        4,
        false,
        &[("TS_IDLE", 0), ("TS_QUEUED", 1), ("TS_RUNNING", 2)],
    );
    let ctx = b.struct_(
        "task_ctx",
        152,
        &[
            ("llc_mask", mask_ptr, 0, 0),
            ("l2_mask", mask_ptr, 64, 0),
            ("deadline", u64_, 128, 0),
            ("vtime", u64_, 192, 0),
            ("last_run_at", u64_, 256, 0),
            ("exec_runtime", u64_, 320, 0),
            ("prev_cpu", int, 384, 0),
            ("state", state, 416, 0),
            ("is_kthread", boolean, 448, 0),
            ("migrated", u32_, 456, 1),
            ("nr_waits", u32_, 457, 15),
            ("comm", comm, 480, 0),
            ("counters", counters, 608, 0),
        ],
    );
    (Btf::from_raw(&b.build()).unwrap(), ctx)
}

fn render_bench() {
    let (btf, ctx) = sched_btf();
    const N: usize = 10_000;
    let mut values = vec![0u8; 152 * N];
    let mut mem = RegionMem::new();
    let mask_base = 0xffff_8880_1000_0000u64;
    let mut masks = vec![0u8; 16 * 64];
    for (i, m) in masks.chunks_mut(16).enumerate() {
        m[..8].copy_from_slice(&(0xffu64 << (i % 8)).to_le_bytes());
    }
    mem.add(mask_base, masks);
    for (i, v) in values.chunks_mut(152).enumerate() {
        v[0..8].copy_from_slice(&(mask_base + 16 * (i as u64 % 64)).to_le_bytes());
        v[16..24].copy_from_slice(&(i as u64 * 1000).to_le_bytes());
        v[24..32].copy_from_slice(&(i as u64 * 7).to_le_bytes());
        v[48..52].copy_from_slice(&((i % 4) as u32).to_le_bytes());
        v[52..56].copy_from_slice(&((i % 3) as u32).to_le_bytes());
        v[56] = (i % 2) as u8;
        v[57] = 0x3;
        v[60..70].copy_from_slice(b"kworker/0:");
    }
    for (label, depth) in [
        ("no pointer following", 0u32),
        ("following pointers (depth 1)", 1),
    ] {
        let opts = RenderOptions {
            max_deref_depth: depth,
            ..RenderOptions::default()
        };
        let mut best = Duration::MAX;
        let mut produced = 0;
        for _ in 0..5 {
            let mut r = Renderer::new(&btf, &mem, opts.clone());
            let t = Instant::now();
            for v in values.chunks(152) {
                black_box(r.render_bytes(TypeId(ctx), v));
                // Each value is a separate map entry: its pointers are not cycles.
                r.reset();
            }
            best = best.min(t.elapsed());
            produced = N;
        }
        println!(
            "render {produced} task_ctx map values ({label}): {:.0} ns per value (best of 5)",
            best.as_nanos() as f64 / N as f64
        );
    }
    // Baseline in the same run: copying the value bytes into a hex string (the fallback
    // rendering when a map has no BTF).
    let t = Instant::now();
    for v in values.chunks(152) {
        black_box(dump_schema::hex(v));
    }
    println!(
        "baseline hex rendering of the same values: {:.0} ns per value",
        t.elapsed().as_nanos() as f64 / N as f64
    );
}
