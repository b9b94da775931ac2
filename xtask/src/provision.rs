//! `cargo xtask provision [--no-bpfland] [--prune]`: install the host packages and build
//! every cached guest asset the tests need (kernel, test schedulers, loader, base
//! initramfs, `scx_bpfland` and `scx_p2dq` with their layers), with progress on stderr.
//! Idempotent; a warm cache makes it a no-op. `--prune` then removes entries of older sources.

use guest_lab::{Lab, TestScheduler};

pub fn run(args: &[String]) -> Result<(), String> {
    let mut with_bpfland = true;
    let mut prune = false;
    for a in args {
        match a.as_str() {
            "--no-bpfland" => with_bpfland = false,
            "--prune" => prune = true,
            other => {
                return Err(format!(
                    "unknown argument {other} (usage: provision [--no-bpfland] [--prune])"
                ));
            }
        }
    }
    let started = std::time::Instant::now();
    let lab = Lab::open().map_err(|e| e.to_string())?;
    eprintln!("ktstr-lab: cache {}", lab.root().display());
    lab.provision_all(with_bpfland).map_err(|e| e.to_string())?;
    if prune {
        let removed = lab.prune().map_err(|e| e.to_string())?;
        eprintln!("ktstr-lab: pruned {} stale entries", removed.len());
    }
    let kernel = lab.kernel().map_err(|e| e.to_string())?;
    println!(
        "kernel      {} ({})",
        kernel.release, kernel.package_version
    );
    println!("vmlinuz     {}", kernel.vmlinuz.display());
    println!("vmlinux     {}", kernel.vmlinux_elf.display());
    println!("btf         {}", kernel.btf.display());
    println!("vmlinux.h   {}", kernel.vmlinux_h.display());
    for which in TestScheduler::ALL {
        let s = lab.scheduler(which).map_err(|e| e.to_string())?;
        println!("sched {:<5} {}", which.name(), s.object.display());
    }
    if with_bpfland {
        let b = lab.bpfland().map_err(|e| e.to_string())?;
        println!("bpfland     {} ({})", b.binary.display(), b.version);
        let p = lab.p2dq().map_err(|e| e.to_string())?;
        println!("p2dq        {} ({})", p.binary.display(), p.version);
    }
    eprintln!(
        "ktstr-lab: provisioned in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
