//! `cargo xtask provision [--no-corpus | --no-bpfland] [--no-lts] [--prune]`: install the
//! host packages and build every cached guest asset the tests need (kernel, test schedulers,
//! loader, base initramfs, and the published schedulers of the corpus,
//! `guest_lab::CORPUS`, with their initramfs layers), with progress on stderr. The
//! published schedulers are built once each with cargo in one shared target directory
//! (cold, the corpus costs minutes: see the README); each build's time is printed.
//! `--no-corpus` builds only `scx_bpfland` and `scx_p2dq` (what `ktstr run`'s short
//! names and the non-corpus tests use), `--no-bpfland` no published scheduler at all.
//! Then the kernels of `guest_lab::SOURCE_LINES` (the 6.12 LTS, built from Debian's
//! `linux-source-6.12`: about 4 minutes of `make` on 2 cores when cold) with their test
//! schedulers and base initramfs; `--no-lts` leaves them out.
//! Idempotent; a warm cache makes it a no-op. `--prune` then removes entries of older
//! sources.

use guest_lab::{CORPUS, Lab, RunSpec, SOURCE_LINES, ScxCrate, TestScheduler};

const USAGE: &str = "usage: provision [--no-corpus | --no-bpfland] [--no-lts] [--prune]";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut published: &[&str] = &CORPUS;
    let mut prune = false;
    let mut lts = true;
    for a in args {
        match a.as_str() {
            "--no-lts" => lts = false,
            "--no-corpus" => published = &["scx_bpfland", "scx_p2dq"],
            "--no-bpfland" => published = &[],
            "--prune" => prune = true,
            other => return Err(format!("unknown argument {other} ({USAGE})")),
        }
    }
    let started = std::time::Instant::now();
    let lab = Lab::open().map_err(|e| e.to_string())?;
    eprintln!("ktstr-lab: cache {}", lab.root().display());
    lab.provision_all(published).map_err(|e| e.to_string())?;
    if lts {
        provision_lts(&lab)?;
    }
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
    for name in published {
        let krate: ScxCrate = name.parse()?;
        let b = lab.scx_crate(&krate).map_err(|e| e.to_string())?;
        println!("{:<15} {} ({})", b.name, b.binary.display(), b.version);
    }
    eprintln!(
        "ktstr-lab: provisioned in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The kernels the lab builds from source, each with its test schedulers and base
/// initramfs (timed: a cold kernel build is the longest step after the corpus).
fn provision_lts(lab: &Lab) -> Result<(), String> {
    for line in SOURCE_LINES {
        let t = std::time::Instant::now();
        let l = lab.clone().with_kernel_version(line.line);
        let k = l.kernel().map_err(|e| e.to_string())?;
        for which in TestScheduler::ALL {
            l.scheduler(which).map_err(|e| e.to_string())?;
        }
        l.initramfs(&RunSpec::new()).map_err(|e| e.to_string())?;
        println!(
            "kernel {:<4} {} ({}) {}",
            line.line,
            k.release,
            k.package_version,
            k.vmlinuz.display()
        );
        eprintln!(
            "ktstr-lab: kernel {} and its assets ready in {:.1}s",
            line.line,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
