//! The project's BPF test schedulers and their loader, built against the guest kernel's
//! `vmlinux.h` and cached by the hash of their sources, the kernel and the compiler.

use super::cache::fnv64;
use super::{KernelAssets, Lab, LabError, TestScheduler, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHED_HEADER: &str = include_str!("../lab/sched/ktstr_sched.bpf.h");
const SCHED_SOURCES: [(&str, &str); 3] = [
    ("ok", include_str!("../lab/sched/ok.bpf.c")),
    ("stall", include_str!("../lab/sched/stall.bpf.c")),
    ("error", include_str!("../lab/sched/error.bpf.c")),
];
const LOADER_SOURCE: &str = include_str!("../lab/loader.c");

/// The BPF compiler and the flags 7.x kernels' anonymous structs need.
const CLANG: &str = "clang-19";
const BPF_FLAGS: &[&str] = &[
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-D__TARGET_ARCH_x86",
    "-fms-extensions",
    "-Wno-microsoft-anon-tag",
    "-Wall",
    "-Werror",
];

/// A built test scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerAssets {
    pub which: TestScheduler,
    /// The BPF object (`SEC(".struct_ops.link")`), for `ktstr-loader` or `bpftool struct_ops register`.
    pub object: PathBuf,
    /// The name the kernel shows in `/sys/kernel/sched_ext/root/ops` once attached.
    pub ops_name: String,
    /// The kernel release it was built against.
    pub kernel_release: String,
}

impl Lab {
    /// The cache entry with all test schedulers for `kernel`.
    pub(crate) fn scheduler_dir(&self, kernel: &KernelAssets) -> Result<PathBuf, LabError> {
        let clang = tool::program_version("finding clang-19", CLANG)?;
        let mut parts: Vec<&[u8]> = vec![SCHED_HEADER.as_bytes(), clang.as_bytes()];
        for (_, src) in &SCHED_SOURCES {
            parts.push(src.as_bytes());
        }
        let key = fnv64(&parts);
        // The kernel's cache entry names its build (release, and the config hash of a
        // source build), so a rebuilt kernel gets schedulers built from its own vmlinux.h.
        let rel = format!("sched/{}/{key}", kernel.entry_name());
        self.entry(&rel, "test schedulers", |tmp| {
            build_schedulers(self, kernel, tmp)
        })
    }

    /// A test scheduler built for the lab's kernel (builds the kernel first if needed).
    pub fn scheduler(&self, which: TestScheduler) -> Result<SchedulerAssets, LabError> {
        let kernel = self.kernel()?;
        let dir = self.scheduler_dir(&kernel)?;
        Ok(SchedulerAssets {
            which,
            object: dir.join(format!("{}.bpf.o", which.name())),
            ops_name: which.ops_name(),
            kernel_release: kernel.release,
        })
    }

    /// The `ktstr-loader` binary (dynamically linked against the host's libbpf; the
    /// initramfs carries the libraries `ldd` lists).
    pub fn loader(&self) -> Result<PathBuf, LabError> {
        let libbpf = tool::dpkg_version("libbpf-dev");
        let key = fnv64(&[LOADER_SOURCE.as_bytes(), libbpf.as_bytes()]);
        let dir = self.entry(&format!("loader/{key}"), "the scheduler loader", |tmp| {
            let src = tmp.join("loader.c");
            std::fs::write(&src, LOADER_SOURCE)
                .map_err(|e| LabError::io("writing loader.c", &src, e))?;
            tool::run_logged(
                self.progress(),
                "compiling the scheduler loader",
                Command::new("gcc")
                    .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
                    .arg(tmp.join("ktstr-loader"))
                    .arg(&src)
                    .arg("-lbpf"),
                &tmp.join("build.log"),
            )
        })?;
        Ok(dir.join("ktstr-loader"))
    }
}

fn build_schedulers(lab: &Lab, kernel: &KernelAssets, out: &Path) -> Result<(), LabError> {
    let src = out.join("src");
    std::fs::create_dir_all(&src)
        .map_err(|e| LabError::io("writing scheduler sources", &src, e))?;
    let write = |name: &str, text: &str| {
        let p = src.join(name);
        std::fs::write(&p, text).map_err(|e| LabError::io("writing scheduler sources", &p, e))
    };
    write("ktstr_sched.bpf.h", SCHED_HEADER)?;
    std::fs::copy(&kernel.vmlinux_h, src.join("vmlinux.h"))
        .map_err(|e| LabError::io("copying vmlinux.h", &kernel.vmlinux_h, e))?;
    for (name, text) in SCHED_SOURCES {
        write(&format!("{name}.bpf.c"), text)?;
    }
    for (name, _) in SCHED_SOURCES {
        lab.progress()
            .step(&format!("compiling the {name} scheduler with {CLANG}"));
        tool::run_logged(
            lab.progress(),
            &format!("compiling the {name} scheduler"),
            Command::new(CLANG)
                .args(BPF_FLAGS)
                .arg("-I")
                .arg(&src)
                .arg("-c")
                .arg(src.join(format!("{name}.bpf.c")))
                .arg("-o")
                .arg(out.join(format!("{name}.bpf.o"))),
            &out.join("build.log"),
        )?;
    }
    std::fs::remove_dir_all(&src).map_err(|e| LabError::io("cleaning up", &src, e))?;
    Ok(())
}
