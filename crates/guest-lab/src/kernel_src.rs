//! Kernels the lab builds itself from Debian's kernel source packages: for a line whose
//! Debian binary kernels lack sched_ext (6.12 LTS: every 6.12 package in bookworm,
//! bookworm-backports and trixie has `# CONFIG_SCHED_CLASS_EXT is not set`).
//!
//! `linux-source-<line>` is downloaded with a private apt configuration (suite
//! [`SourceLine::suite`]), unpacked, configured from `make tinyconfig` plus
//! [`GUEST_OPTIONS`] (every one checked to be `y` after `make olddefconfig`), built with
//! `make bzImage`, and cached as `kernel/<source version>-ktstr-<config hash>/` with the
//! same files as a packaged kernel ([`KernelAssets`]). The config hash covers the options
//! and the recipe, so changing either makes a new entry; the source version comes from
//! the archive, so a new upload of the package makes one too.
//!
//! Cost, measured on 2 cores (the figures, and this module's first run): unpack
//! about 30 s, `make bzImage` 207–221 s alone; more under load.

use super::{KernelAssets, Lab, LabError, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A kernel line the lab builds from source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLine {
    /// What `--kernel-version` / `KTSTR_KERNEL_VERSION` names (`6.12`).
    pub line: &'static str,
    /// The Debian suite whose `linux-source-<line>` is built.
    pub suite: &'static str,
}

/// The lines the lab builds from source.
pub const SOURCE_LINES: &[SourceLine] = &[SourceLine {
    line: "6.12",
    suite: "trixie",
}];

/// The source line `version` names (`6.12`), if it is one.
pub fn source_line(version: &str) -> Option<SourceLine> {
    SOURCE_LINES.iter().copied().find(|l| l.line == version)
}

/// What a sched_ext guest of the lab needs, on top of `make tinyconfig` (each is checked
/// to be `y` in the final config), with why:
/// - boot and console: 64-bit SMP, serial 8250 console, initramfs (gzip), devtmpfs, ELF
///   and script binaries, PCI/ACPI (QEMU's machine, `poweroff -f`), PVH (direct ELF boot),
///   KVM guest/paravirt, relocatable with KASLR (what the walkers must cope with);
/// - what busybox and the loaders use: multiuser, futex, epoll, signalfd, timerfd,
///   eventfd, shmem/tmpfs, POSIX timers;
/// - sched_ext itself: BPF syscall + JIT, BTF (needs DWARF), `SCHED_CLASS_EXT`, cgroups
///   with the controllers `/init` enables (cpu with bandwidth, cpuset, memory, pids) and
///   `EXT_GROUP_SCHED`;
/// - what the host reads: `KALLSYMS_ALL` (the scheduler globals of kernels without
///   `scx_root` are static data: only KALLSYMS_ALL lists them), `PROC_KCORE` +
///   `CRASH_DUMP` (they bring `VMCOREINFO`, without which the kernel cannot be found in
///   guest memory), `FW_CFG_SYSFS` built in (QEMU's `-device vmcoreinfo`), NUMA and PSI
///   (their report sections);
/// - what schedulers and the guest's view use: tracing, kprobes, BPF events, perf events,
///   debugfs (the `sched_ext_dump` trace event), THP, SMT/MC scheduling domains;
/// - `NET` (+ `UNIX`): libbpf probes what the kernel supports (global data, among others)
///   by loading `BPF_PROG_TYPE_SOCKET_FILTER` programs, which exist only with
///   `CONFIG_NET`. Without it the probe fails, libbpf skips creating `.bss`/`.data`/
///   `.rodata`, and every scheduler fails to load (`fd N is not pointing to valid
///   bpf_map` in its first program's log: seen here, with the lab's own schedulers and
///   with published ones);
/// - `MEMBARRIER`: schedulers call `membarrier(MEMBARRIER_CMD_GLOBAL)` (scx_p2dq 1.1.4
///   exits with `membarrier(GLOBAL) failed: Function not implemented` without it;
///   tinyconfig leaves it out, Debian's kernels have it).
pub const GUEST_OPTIONS: &[&str] = &[
    "64BIT",
    "SMP",
    "PRINTK",
    "TTY",
    "SERIAL_8250",
    "SERIAL_8250_CONSOLE",
    "BLK_DEV_INITRD",
    "RD_GZIP",
    "PROC_FS",
    "SYSFS",
    "DEVTMPFS",
    "DEVTMPFS_MOUNT",
    "BINFMT_ELF",
    "BINFMT_SCRIPT",
    "MULTIUSER",
    "FUTEX",
    "EPOLL",
    "SIGNALFD",
    "TIMERFD",
    "EVENTFD",
    "SHMEM",
    "TMPFS",
    "POSIX_TIMERS",
    "PCI",
    "ACPI",
    "KALLSYMS",
    "KALLSYMS_ALL",
    "BPF",
    "BPF_SYSCALL",
    "BPF_JIT",
    "BPF_JIT_ALWAYS_ON",
    "DEBUG_INFO",
    "DEBUG_INFO_DWARF5",
    "DEBUG_INFO_BTF",
    "CGROUPS",
    "CGROUP_SCHED",
    "FAIR_GROUP_SCHED",
    "EXT_GROUP_SCHED",
    "CFS_BANDWIDTH",
    "CPUSETS",
    "MEMCG",
    "CGROUP_PIDS",
    "SCHED_CLASS_EXT",
    "FTRACE",
    "FUNCTION_TRACER",
    "DYNAMIC_FTRACE",
    "BPF_EVENTS",
    "KPROBES",
    "TRACEPOINTS",
    "PERF_EVENTS",
    "FW_CFG_SYSFS",
    "PVH",
    "HYPERVISOR_GUEST",
    "PARAVIRT",
    "KVM_GUEST",
    "NUMA",
    "X86_64_ACPI_NUMA",
    "RELOCATABLE",
    "RANDOMIZE_BASE",
    "TRANSPARENT_HUGEPAGE",
    "SCHED_MC",
    "SCHED_SMT",
    "NO_HZ_IDLE",
    "HIGH_RES_TIMERS",
    "PSI",
    "DEBUG_FS",
    "TRACING",
    "PROC_KCORE",
    "KEXEC",
    "CRASH_DUMP",
    "NET",
    "UNIX",
    "MEMBARRIER",
];

/// `uname -r` suffix of the lab's own builds.
const LOCALVERSION: &str = "-ktstr";

/// Bump when the recipe (not the option list) changes, to make a new cache entry.
const RECIPE: &str = "tinyconfig+options v1";

/// The cache-key part that covers the configuration: options, local version, recipe.
pub(crate) fn config_hash() -> String {
    let opts = GUEST_OPTIONS.join(" ");
    let full = super::cache::fnv64(&[opts.as_bytes(), LOCALVERSION.as_bytes(), RECIPE.as_bytes()]);
    full[..12].to_string()
}

/// `6.12.117-1` → `6.12.117` (the Debian revision is not part of the source version
/// the cache is keyed by: a rebuild of the same upstream release with other patches
/// still gets its own entry, through the full version in `package-version`).
fn upstream(version: &str) -> &str {
    version.split(['-', '~', '+']).next().unwrap_or(version)
}

/// `<upstream>-ktstr-<hash>` entry names of `line` in `kernel/`, newest first.
fn cached_entries(kernel_dir: &Path, line: &str, hash: &str) -> Vec<String> {
    let suffix = format!("-ktstr-{hash}");
    let mut v: Vec<String> = std::fs::read_dir(kernel_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(&suffix) && n.starts_with(&format!("{line}.")))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|n| std::cmp::Reverse(super::kernel::version_key(n)));
    v
}

impl Lab {
    /// The kernels of [`SOURCE_LINES`] already built with the current configuration (the
    /// newest of each line); never starts a build.
    pub(crate) fn cached_source_kernels(&self) -> Vec<KernelAssets> {
        let kdir = self.root().join("kernel");
        SOURCE_LINES
            .iter()
            .filter_map(|l| {
                cached_entries(&kdir, l.line, &config_hash())
                    .into_iter()
                    .next()
            })
            .filter_map(|name| KernelAssets::from_dir(&kdir.join(name)).ok())
            .collect()
    }

    /// The kernel of `line` built from source: the cached build of the newest source
    /// version when there is one, else the archive's `linux-source-<line>` built now.
    pub(crate) fn source_kernel(&self, line: SourceLine) -> Result<KernelAssets, LabError> {
        let hash = config_hash();
        let kdir = self.root().join("kernel");
        if let Some(name) = cached_entries(&kdir, line.line, &hash).first() {
            return KernelAssets::from_dir(&kdir.join(name));
        }
        let apt = {
            let _lock = self.lock(&format!("apt-{}", line.suite))?;
            let apt = super::apt::download_config(self, line.suite)?;
            apt.update(self, line.suite, Duration::from_secs(6 * 3600))?;
            apt
        };
        let package = format!("linux-source-{}", line.line);
        let version = candidate_version(&apt, &package)?;
        let rel = format!("kernel/{}-ktstr-{hash}", upstream(&version));
        let what = format!("kernel {} built from {package} {version}", line.line);
        let dir = self.entry(&rel, &what, |tmp| {
            let _lock = self.lock(&format!("apt-{}", line.suite))?;
            build_from_source(self, &apt, &package, &version, tmp)
        })?;
        KernelAssets::from_dir(&dir)
    }
}

/// The version apt would download of `package`.
fn candidate_version(apt: &super::apt::AptConfig, package: &str) -> Result<String, LabError> {
    let out = tool::output(
        "finding the kernel source package",
        apt.command("apt-cache").args(["policy", package]),
    )?;
    String::from_utf8_lossy(&out)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v != "(none)")
        .ok_or_else(|| {
            LabError::invalid(
                "finding the kernel source package",
                format!("{package} is not in the archive"),
            )
        })
}

fn build_from_source(
    lab: &Lab,
    apt: &super::apt::AptConfig,
    package: &str,
    version: &str,
    out: &Path,
) -> Result<(), LabError> {
    let tree = unpack_source(lab, apt, package, version, out)?;
    configure(lab, &tree, out)?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    lab.progress().step(&format!(
        "building the kernel (make -j{jobs} bzImage; about 4 min on 2 cores)"
    ));
    tool::run_logged(
        lab.progress(),
        "building the kernel",
        Command::new("nice")
            .args(["-n", "10", "make"])
            .arg(format!("-j{jobs}"))
            .arg("bzImage")
            .current_dir(&tree),
        &out.join("build.log"),
    )?;
    let release = String::from_utf8_lossy(&tool::output(
        "reading the kernel release",
        Command::new("make")
            .args(["-s", "kernelrelease"])
            .current_dir(&tree),
    )?)
    .trim()
    .to_string();
    collect(lab, &tree, out)?;
    super::kernel::write_assets_meta(out, &release, version)?;
    std::fs::remove_dir_all(&tree).map_err(|e| LabError::io("kernel: cleaning up", &tree, e))
}

/// Downloads `package` and unpacks its source tarball; returns the source tree.
fn unpack_source(
    lab: &Lab,
    apt: &super::apt::AptConfig,
    package: &str,
    version: &str,
    out: &Path,
) -> Result<PathBuf, LabError> {
    let debs = out.join("debs");
    let unpacked = out.join("unpacked");
    for d in [&debs, &unpacked] {
        std::fs::create_dir_all(d).map_err(|e| LabError::io("kernel: creating dirs", d, e))?;
    }
    lab.progress()
        .step(&format!("downloading {package} {version} (about 150 MB)"));
    tool::run_logged(
        lab.progress(),
        "downloading the kernel source",
        apt.command("apt-get")
            .current_dir(&debs)
            .args(["-q", "download"])
            .arg(format!("{package}={version}")),
        &out.join("download.log"),
    )?;
    let deb = std::fs::read_dir(&debs)
        .map_err(|e| LabError::io("kernel: listing", &debs, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| LabError::invalid("downloading the kernel source", "no .deb downloaded"))?;
    tool::output(
        "unpacking the kernel source package",
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
    )?;
    let tarball = unpacked.join("usr/src").join(format!("{package}.tar.xz"));
    lab.progress().step("unpacking the kernel source");
    tool::output(
        "unpacking the kernel source",
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .current_dir(out),
    )?;
    for d in [&debs, &unpacked] {
        std::fs::remove_dir_all(d).map_err(|e| LabError::io("kernel: cleaning up", d, e))?;
    }
    let tree = out.join(package);
    if !tree.join("Makefile").is_file() {
        return Err(LabError::invalid(
            "unpacking the kernel source",
            format!("{} has no Makefile", tree.display()),
        ));
    }
    Ok(tree)
}

/// `make tinyconfig`, the options, `make olddefconfig`; every option checked.
fn configure(lab: &Lab, tree: &Path, out: &Path) -> Result<(), LabError> {
    lab.progress()
        .step("configuring the kernel (tinyconfig + the lab's options)");
    let log = out.join("config.log");
    let make = |target: &str| {
        tool::run_logged(
            lab.progress(),
            &format!("configuring the kernel (make {target})"),
            Command::new("make").arg(target).current_dir(tree),
            &log,
        )
    };
    make("tinyconfig")?;
    let mut cmd = Command::new(tree.join("scripts/config"));
    cmd.current_dir(tree);
    for o in GUEST_OPTIONS {
        cmd.args(["-e", o]);
    }
    cmd.args(["--set-str", "LOCALVERSION", LOCALVERSION]);
    tool::run_logged(
        lab.progress(),
        "configuring the kernel (scripts/config)",
        &mut cmd,
        &log,
    )?;
    make("olddefconfig")?;
    let text = std::fs::read_to_string(tree.join(".config"))
        .map_err(|e| LabError::io("reading the kernel config", &tree.join(".config"), e))?;
    let lost = missing_options(&text);
    if !lost.is_empty() {
        return Err(LabError::invalid(
            "configuring the kernel",
            format!(
                "make olddefconfig dropped CONFIG_{} (a dependency is missing)",
                lost.join(", CONFIG_")
            ),
        ));
    }
    Ok(())
}

/// The options of [`GUEST_OPTIONS`] that are not `y` in `config`.
fn missing_options(config: &str) -> Vec<&'static str> {
    GUEST_OPTIONS
        .iter()
        .copied()
        .filter(|o| super::kernel::config_lookup(config, o).as_deref() != Some("y"))
        .collect()
}

/// The built files into the entry: bzImage, config, the vmlinux without its DWARF (the
/// `.BTF` section stays), its BTF and `vmlinux.h`.
fn collect(lab: &Lab, tree: &Path, out: &Path) -> Result<(), LabError> {
    let copy = |from: &str, to: &str| {
        let from = tree.join(from);
        std::fs::copy(&from, out.join(to))
            .map(|_| ())
            .map_err(|e| LabError::io("kernel: copying a built file", &from, e))
    };
    copy("arch/x86/boot/bzImage", "vmlinuz")?;
    copy(".config", "config")?;
    lab.progress().step("extracting vmlinux and its BTF");
    tool::output(
        "stripping vmlinux",
        Command::new("objcopy")
            .arg("--strip-debug")
            .arg(tree.join("vmlinux"))
            .arg(out.join("vmlinux")),
    )?;
    let vmlinux = std::fs::read(out.join("vmlinux"))
        .map_err(|e| LabError::io("reading vmlinux", &out.join("vmlinux"), e))?;
    super::kernel::write_btf_and_header(&vmlinux, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_versions_and_keys() {
        assert_eq!(source_line("6.12").map(|l| l.suite), Some("trixie"));
        assert_eq!(source_line("7.3.4+deb13"), None);
        assert_eq!(upstream("6.12.117-1"), "6.12.117");
        assert_eq!(upstream("6.12.117"), "6.12.117");
        let h = config_hash();
        assert_eq!(h.len(), 12);
        assert_eq!(h, config_hash(), "stable");
    }

    #[test]
    fn newest_cached_build_of_the_line_with_this_config_wins() {
        let dir = std::env::temp_dir().join(format!("ktstr-ksrc-{}", std::process::id()));
        let h = config_hash();
        for n in [
            format!("6.12.9-ktstr-{h}"),
            format!("6.12.117-ktstr-{h}"),
            "6.12.200-ktstr-000000000000".to_string(),
            "7.3.4+deb13-cloud-amd64".to_string(),
        ] {
            std::fs::create_dir_all(dir.join(n)).unwrap();
        }
        assert_eq!(
            cached_entries(&dir, "6.12", &h),
            [format!("6.12.117-ktstr-{h}"), format!("6.12.9-ktstr-{h}")]
        );
        assert!(cached_entries(&dir, "6.1", &h).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dropped_options_are_named() {
        let all: String = GUEST_OPTIONS
            .iter()
            .map(|o| format!("CONFIG_{o}=y\n"))
            .collect();
        assert!(missing_options(&all).is_empty());
        let without = all.replace(
            "CONFIG_SCHED_CLASS_EXT=y\n",
            "# CONFIG_SCHED_CLASS_EXT is not set\n",
        );
        assert_eq!(missing_options(&without), ["SCHED_CLASS_EXT"]);
    }
}
