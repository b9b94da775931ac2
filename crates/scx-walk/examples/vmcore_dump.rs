//! Full dump of a vmcore as one process: open → symbols → BTF → every section.
//!
//! ```text
//! cargo run --release -p scx-walk --example vmcore_dump -- VMCORE [--btf FILE] [--json OUT]
//! ```
//! Prints the per-phase breakdown on stderr (the benchmark's figures); `--json` writes the
//! report. BTF comes from guest memory (`__start_BTF..__stop_BTF`) unless `--btf` names a
//! file.

use std::time::Instant;

use btf_walk::Btf;
use guest_mem::{KernelOptions, Vmcore};
use scx_walk::render::BtfRenderer;
use scx_walk::{CaptureOptions, Kernel, Target, capture};

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
    let core = Vmcore::open(vmcore.as_ref())?;
    let t_open = t0.elapsed();
    hwm.push(("open", peak_rss_kib()));
    let kernel = core.kernel(KernelOptions::default())?;
    let t_syms = t0.elapsed();
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
    hwm.push(("btf", peak_rss_kib()));
    let renderer = BtfRenderer::new(&btf);
    let target = Target {
        kernel: Kernel {
            mem: &kernel,
            syms: &kernel,
            types: &btf,
        },
        renderer: Some(&renderer),
        vcpu_regs: core.cpus().iter().map(|r| Some(*r)).collect(),
    };
    let out = capture(&target, &CaptureOptions::default());
    let t_cap = t0.elapsed();
    hwm.push(("capture", peak_rss_kib()));
    let json = out.report.to_json()?;
    if let Some(p) = opt("--json") {
        std::fs::write(p, &json)?;
    }
    let t_all = t0.elapsed();
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
    for l in &out.log {
        eprintln!("log: {l}");
    }
    Ok(())
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
