//! Full dump of a vmcore as one process: open → symbols → BTF → every section.
//!
//! ```text
//! cargo run --release -p scx-walk --example vmcore_dump -- VMCORE [--btf FILE] [--json OUT]
//!     [--eager-symbols] [--drgn-script OUT.py]
//! ```
//! Prints the per-phase breakdown on stderr (the benchmark's figures, `cargo xtask bench
//! dump` parses them); `--json` writes the report. BTF comes from guest memory
//! (`__start_BTF..__stop_BTF`) unless `--btf` names a file.
//!
//! Baselines for the benchmark:
//! - `--eager-symbols` also decodes the whole symbol table in the symbols phase, as
//!   `Kernel::new` did before symbols were looked up lazily.
//! - `--drgn-script OUT.py` writes a drgn script doing the smaller walk the benchmark's
//!   issue compares with (every task's pid, comm and `scx` entity; every map's metadata
//!   from `map_idr`; every CPU's `rq->scx`) with the addresses and offsets this process
//!   found, since drgn 0.3.0 reads types only from DWARF; then exits.

use std::time::Instant;

use btf_walk::Btf;
use guest_mem::{KernelOptions, Vmcore};
use scx_walk::render::BtfRenderer;
use scx_walk::{CaptureOptions, KernelView, Target, capture};

fn main() {
    if let Err(e) = run() {
        eprintln!("vmcore_dump: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vmcore = args
        .first()
        .ok_or("usage: vmcore_dump VMCORE [--btf FILE] [--json OUT]")?;
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mut hwm = Vec::new();
    let t0 = Instant::now();
    let mut cpu = vec![("start", cpu_ns())];
    let core = Vmcore::open(vmcore.as_ref())?;
    let t_open = t0.elapsed();
    cpu.push(("open", cpu_ns()));
    hwm.push(("open", peak_rss_kib()));
    let kernel = core.kernel(KernelOptions::default())?;
    if args.iter().any(|a| a == "--eager-symbols") {
        std::hint::black_box(kernel.symbols().len());
    }
    let t_syms = t0.elapsed();
    cpu.push(("symbols", cpu_ns()));
    hwm.push(("symbols", peak_rss_kib()));
    let btf = match opt("--btf") {
        Some(p) => Btf::from_file(&p)?,
        None => {
            let start = kernel.require_symbol("__start_BTF")?;
            let stop = kernel.require_symbol("__stop_BTF")?;
            Btf::from_guest(&kernel, start, stop)?
        }
    };
    let t_btf = t0.elapsed();
    cpu.push(("btf", cpu_ns()));
    if let Some(out) = opt("--drgn-script") {
        std::fs::write(&out, drgn_script(vmcore, &kernel, &btf)?)?;
        return Ok(());
    }
    hwm.push(("btf", peak_rss_kib()));
    let renderer = BtfRenderer::new(&btf);
    let target = Target {
        kernel: KernelView {
            mem: &kernel,
            syms: &kernel,
            types: &btf,
        },
        renderer: Some(&renderer),
        vcpu_regs: core.cpus().iter().map(|r| Some(*r)).collect(),
        second_thread: Some(scx_walk::SecondThread {
            kernel: &kernel,
            types: &btf,
            renderer: Some(&renderer),
        }),
    };
    let out = capture(&target, &CaptureOptions::default());
    let t_cap = t0.elapsed();
    cpu.push(("capture", cpu_ns()));
    hwm.push(("capture", peak_rss_kib()));
    let json = out.report.to_json()?;
    if let Some(p) = opt("--json") {
        std::fs::write(p, &json)?;
    }
    let t_all = t0.elapsed();
    cpu.push(("json", cpu_ns()));
    hwm.push(("json", peak_rss_kib()));
    eprintln!("phase open          {:>8.2} ms", t_open.as_secs_f64() * 1e3);
    eprintln!(
        "phase symbols       {:>8.2} ms",
        (t_syms - t_open).as_secs_f64() * 1e3
    );
    eprintln!(
        "phase btf           {:>8.2} ms",
        (t_btf - t_syms).as_secs_f64() * 1e3
    );
    for p in &out.phases {
        eprintln!(
            "phase {:<14}{:>8.2} ms",
            p.name,
            p.elapsed.as_secs_f64() * 1e3
        );
    }
    eprintln!(
        "phase json          {:>8.2} ms",
        (t_all - t_cap).as_secs_f64() * 1e3
    );
    eprintln!("total               {:>8.2} ms", t_all.as_secs_f64() * 1e3);
    // On-CPU time per phase: what the wall time would be on an idle machine (the
    // benchmark host is shared; wall times swing with its load, these do not).
    for w in cpu.windows(2) {
        eprintln!(
            "cpu {:<16}{:>8.2} ms",
            w[1].0,
            w[1].1.saturating_sub(w[0].1) as f64 / 1e6
        );
    }
    eprintln!("cpu_ms {:.2}", cpu.last().map_or(0, |c| c.1) as f64 / 1e6);
    eprintln!(
        "sections: maps={} rq={} dsq={} tasks={} cpus={} numa={} psi={} events={} progs={}",
        out.report.maps.len(),
        out.report.rq_scx_states.len(),
        out.report.dsq_states.len(),
        out.report.task_enrichments.len(),
        out.report.per_cpu_time.len(),
        out.report.per_node_numa.len(),
        out.report.cgroup_psi.len(),
        out.report.event_counter_timeline.len(),
        out.report.prog_runtime_stats.len(),
    );
    let peaks: Vec<String> = hwm
        .iter()
        .map(|(p, k)| format!("{p}={:.1}MiB", *k as f64 / 1024.0))
        .collect();
    eprintln!("peak RSS after: {}", peaks.join(" "));
    eprintln!("rss now: {}", rss_now());
    for l in &out.log {
        eprintln!("log: {l}");
    }
    eprintln!("peak_kib {}", peak_rss_kib());
    // Exit without dropping the symbols, types and report: freeing ~100k allocations
    // and unmapping took ~15% of the whole process, and the kernel reclaims it all
    // at exit anyway (ripgrep and rustc end the same way).
    std::process::exit(0)
}

/// The drgn baseline's script: the smaller walk, by raw reads at addresses and offsets
/// taken from this vmcore's kallsyms and BTF. Prints counts and its own peak RSS.
fn drgn_script(
    vmcore: &str,
    k: &guest_mem::Kernel,
    btf: &Btf,
) -> Result<String, Box<dyn std::error::Error>> {
    let off = |p: &str| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(btf
            .offset_of(p)
            .map_err(|e| format!("offset of {p}: {e}"))?)
    };
    let size = |t: &str| -> Result<u64, Box<dyn std::error::Error>> {
        let id = btf.struct_by_name(t)?;
        Ok(btf.size_of(id)?)
    };
    let sym = |n: &str| -> Result<u64, Box<dyn std::error::Error>> { Ok(k.require_symbol(n)?.0) };
    Ok(format!(
        r#"import drgn
p = drgn.Program()
p.set_core_dump({vmcore:?})
u64 = lambda a: p.read_u64(a, False)
u32 = lambda a: p.read_u32(a, False)
head = {init_task} + {tasks}
tasks = []
node = u64(head)
while node != head and len(tasks) < 100000:
    t = node - {tasks}
    tasks.append((u32(t + {pid}), p.read(t + {comm}, 16, False).split(b"\0")[0], p.read(t + {scx}, {scx_size}, False)))
    node = u64(node)
maps = []
def walk(e, depth):
    if e == 0 or depth > 8:
        return
    if e & 3 == 2:
        if e > 4096:
            n = e - 2
            for i in range(64):
                walk(u64(n + {slots} + 8 * i), depth + 1)
        return
    maps.append((p.read(e + {map_name}, 16, False).split(b"\0")[0], u32(e + {map_type}), u32(e + {key_size}), u32(e + {value_size}), u32(e + {max_entries})))
walk(u64({map_idr} + {idr_rt} + {xa_head}), 0)
nr = u32({nr_cpu_ids})
rqs = [p.read(({runqueues} + u64({per_cpu_offset} + 8 * c) + {rq_scx}) & (2**64 - 1), {scx_rq_size}, False) for c in range(min(nr, 8192))]
hwm = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print("drgn walk: tasks", len(tasks), "maps", len(maps), "rqs", len(rqs))
import sys
print("peak_kib", hwm, file=sys.stderr)
import time
print("cpu_ms", time.process_time() * 1e3, file=sys.stderr)
"#,
        init_task = sym("init_task")?,
        tasks = off("task_struct.tasks")?,
        pid = off("task_struct.pid")?,
        comm = off("task_struct.comm")?,
        scx = off("task_struct.scx")?,
        scx_size = size("sched_ext_entity")?,
        slots = off("xa_node.slots")?,
        map_name = off("bpf_map.name")?,
        map_type = off("bpf_map.map_type")?,
        key_size = off("bpf_map.key_size")?,
        value_size = off("bpf_map.value_size")?,
        max_entries = off("bpf_map.max_entries")?,
        map_idr = sym("map_idr")?,
        idr_rt = off("idr.idr_rt")?,
        xa_head = off("xarray.xa_head")?,
        nr_cpu_ids = sym("nr_cpu_ids")?,
        runqueues = sym("runqueues")?,
        per_cpu_offset = sym("__per_cpu_offset")?,
        rq_scx = off("rq.scx")?,
        scx_rq_size = size("scx_rq")?,
    ))
}

/// Current resident set split by kind (anonymous, file pages such as the mapped vmcore,
/// shared memory), from `/proc/self/status`.
fn rss_now() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("Rss"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Nanoseconds this thread has run on a CPU since it started (`/proc/thread-self/schedstat`;
/// 0 when unavailable). The main thread started at exec, so this includes loading.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `VmHWM` of this process in KiB (0 when unavailable).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
