//! Shared by the QEMU engine's end-to-end tests: provision the guest lab, boot a run
//! spec, wait for the guest's phases, find the kernel in guest memory.
//!
//! Real everything: the lab's 7.3 sched_ext kernel, its initramfs and schedulers, QEMU.
//! Without QEMU a test skips (`guest_lab::testing`: under CI that fails); provisioning
//! failures fail the test (CI provides everything).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::qemu::{LineMark, QemuConfig, QemuEngine};
use guest_lab::{Initramfs, KernelAssets, Lab, PHASE_PREFIX, RunSpec, testing};
use guest_mem::{Kernel, KernelOptions, Kva, PhysMem};

/// TCG boots in seconds, but a Rust scheduler takes tens of seconds to attach and the
/// machine is shared: generous bounds, never asserted as performance.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
pub const END_TIMEOUT: Duration = Duration::from_secs(240);

/// The kernel command line the tests boot with.
pub const CMDLINE: &str = "console=ttyS0 panic=-1 loglevel=4";

pub struct Booted {
    pub engine: QemuEngine,
    pub kernel: KernelAssets,
    /// Kept alive while QEMU may still read it.
    pub initramfs: Initramfs,
    pub launched_at: Instant,
}

/// The lab, with the host packages and kernel present; `None` (the test skips) without
/// QEMU.
#[track_caller]
pub fn lab() -> Option<(Lab, KernelAssets)> {
    if !testing::need_qemu() {
        return None;
    }
    let lab = testing::open_lab();
    lab.ensure_host_packages()
        .expect("installing the host packages");
    let kernel = lab.kernel().expect("provisioning the kernel");
    Some((lab, kernel))
}

/// Boots `spec` with `vcpus` vCPUs and `memory_mib` of RAM; `None` (the test skips)
/// without QEMU.
#[track_caller]
pub fn boot(spec: &RunSpec, vcpus: u32, memory_mib: u64) -> Option<Booted> {
    boot_with(spec, vcpus, memory_mib, |_| {})
}

/// Boots a guest running `workload` with `vcpus` vCPUs and `memory_mib` of RAM and waits
/// for the workload to start; returns the guest and the console mark past that line.
/// `None` (the test skips) without QEMU.
#[track_caller]
pub fn boot_workload(
    workload: impl Into<String>,
    vcpus: u32,
    memory_mib: u64,
) -> Option<(Booted, LineMark)> {
    let g = boot(&RunSpec::new().workload(workload), vcpus, memory_mib)?;
    let (_, m) = g.phase(LineMark::START, "workload-start", BOOT_TIMEOUT);
    Some((g, m))
}

/// [`boot`] with the configuration adjusted by `tweak` before launch.
#[track_caller]
pub fn boot_with(
    spec: &RunSpec,
    vcpus: u32,
    memory_mib: u64,
    tweak: impl FnOnce(&mut QemuConfig),
) -> Option<Booted> {
    let (lab, kernel) = lab()?;
    let initramfs = lab.initramfs(spec).expect("building the initramfs");
    let mut cfg = QemuConfig::new(
        &kernel.vmlinuz,
        Some(initramfs.path().to_path_buf()),
        CMDLINE,
    );
    cfg.vcpus = vcpus;
    cfg.memory_mib = memory_mib;
    cfg.console_tail_bytes = 1 << 20;
    tweak(&mut cfg);
    let launched_at = Instant::now();
    let engine = QemuEngine::launch(&cfg).expect("launching QEMU");
    eprintln!(
        "qemu pid {} accel {} ({})",
        engine.pid(),
        engine.accel().accel,
        engine.accel().reason
    );
    Some(Booted {
        engine,
        kernel,
        initramfs,
        launched_at,
    })
}

impl Booted {
    /// Waits for `KTSTR-PHASE: <name>` at or after `from`; panics with the console tail
    /// when it does not come (or a `scheduler-failed` / `error` phase comes instead).
    pub fn phase(&self, from: LineMark, name: &str, timeout: Duration) -> (String, LineMark) {
        let want = format!("{PHASE_PREFIX}{name}");
        let fail = [
            format!("{PHASE_PREFIX}scheduler-failed"),
            format!("{PHASE_PREFIX}error"),
        ];
        let res = self.engine.console().wait_line(from, timeout, |l| {
            let l = l.trim_start();
            (l.starts_with(&want)
                && l[want.len()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace))
                || fail.iter().any(|f| l.starts_with(f.as_str()))
        });
        match res {
            Ok((line, mark)) if line.trim_start().starts_with(&want) => (line, mark),
            other => panic!(
                "waiting for phase {name}: {other:?}\n--- console tail ---\n{}\n--- qemu stderr ---\n{}",
                self.console_text_tail(),
                self.engine.qemu_stderr_tail()
            ),
        }
    }

    /// The last lines of the console, for failure messages.
    pub fn console_text_tail(&self) -> String {
        let t = self.engine.console_tail();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Every complete console line so far.
    pub fn console_lines(&self) -> Vec<String> {
        self.engine.console().lines_since(LineMark::START).0
    }

    /// Waits for QEMU to exit by itself and asserts it exited 0 (the guest powered off).
    pub fn expect_clean_poweroff(&mut self) {
        let st = self
            .engine
            .wait_exit(END_TIMEOUT)
            .expect("waiting for QEMU to exit");
        match st {
            Some(s) if s.success() => {}
            other => panic!(
                "QEMU did not exit cleanly: {other:?}\n--- console tail ---\n{}\n--- qemu stderr ---\n{}",
                self.console_text_tail(),
                self.engine.qemu_stderr_tail()
            ),
        }
    }

    /// The guest kernel found in live guest RAM (VMCOREINFO scan + kallsyms).
    pub fn kernel_view(&self) -> Kernel {
        let phys =
            PhysMem::from_guest_memory(&self.engine.guest_ram()).expect("guest RAM as PhysMem");
        Kernel::new(phys, KernelOptions::default()).expect("finding the kernel in guest RAM")
    }

    /// [`Self::kernel_view`] with the guest frozen meanwhile: decoding kallsyms takes
    /// seconds in a debug build on a loaded host, and the guest must not run on (a
    /// scheduler exit unwatched) while it does. `check_frozen` runs while frozen.
    pub fn kernel_view_frozen(&mut self, check_frozen: impl FnOnce(&mut Self)) -> Kernel {
        self.engine
            .freeze(Duration::from_secs(10))
            .expect("freeze for setup");
        check_frozen(self);
        let kernel = self.kernel_view();
        self.engine.thaw().expect("thaw after setup");
        kernel
    }

    /// The guest's BTF (the lab's copy of the kernel's `.BTF`).
    pub fn btf(&self) -> btf_walk::Btf {
        btf_walk::Btf::from_file(&self.kernel.btf).expect("loading the kernel BTF")
    }
}

/// `struct scx_sched` members the tests read.
pub struct SchedOffsets {
    pub exit_kind: u64,
    pub ops_name: u64,
    pub exit_info: u64,
    pub exit_info_kind: u64,
}

pub fn sched_offsets(btf: &btf_walk::Btf) -> SchedOffsets {
    SchedOffsets {
        exit_kind: btf
            .offset_of("scx_sched.exit_kind")
            .expect("scx_sched.exit_kind"),
        ops_name: btf
            .offset_of("scx_sched.ops.name")
            .expect("scx_sched.ops.name"),
        exit_info: btf
            .offset_of("scx_sched.exit_info")
            .expect("scx_sched.exit_info"),
        exit_info_kind: btf
            .offset_of("scx_exit_info.kind")
            .expect("scx_exit_info.kind"),
    }
}

/// What the trigger tests watch: `scx_root->exit_kind`, firing on an error exit by
/// scx-walk's rule (a reading of `SCX_EXIT_DONE` defers to `exit_info->kind`).
pub fn error_exit_watch<'k>(
    kernel: &'k Kernel,
    off: &SchedOffsets,
) -> (
    freeze::watch::Polled,
    impl FnMut(Kva, u32) -> Option<freeze::watch::Fire> + 'k,
) {
    use guest_mem::KvaReadExt;
    let polled = freeze::watch::Polled {
        pointer: kernel.require_symbol("scx_root").expect("scx_root"),
        offset: off.exit_kind,
        direct: false,
    };
    let (info, info_kind) = (off.exit_info, off.exit_info_kind);
    let rule = move |sched: Kva, exit_kind: u32| {
        let info_kind_now = || {
            let ei = kernel.read_u64(sched.checked_offset(info).ok()?).ok()?;
            kernel
                .read_u32(Kva(ei).checked_offset(info_kind).ok()?)
                .ok()
        };
        match scx_walk::exit_kind::verdict(exit_kind, info_kind_now, false) {
            scx_walk::exit_kind::ExitVerdict::Capture { kind, late } => {
                Some(freeze::watch::Fire { value: kind, late })
            }
            scx_walk::exit_kind::ExitVerdict::Ignore => None,
        }
    };
    (polled, rule)
}

/// Reads the scheduler's ops name (`char name[SCX_OPS_NAME_LEN]`, 128 bytes) at `sched`.
pub fn ops_name(kernel: &Kernel, sched: Kva, off: &SchedOffsets) -> String {
    use guest_mem::KvaReadExt;
    kernel
        .read_cstr(Kva(sched.0 + off.ops_name), 128)
        .expect("reading scx_sched.ops.name")
}

/// Median and maximum of `v` (which it sorts).
pub fn median_max(v: &mut [Duration]) -> (Duration, Duration) {
    assert!(!v.is_empty());
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// A cheap fingerprint of all guest RAM (to tell whether it changes).
pub fn ram_fingerprint(ram: &freeze::GuestRam) -> u64 {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    let mut acc = 0u64;
    for region in ram.iter() {
        let len = region.len() as usize;
        let slice = region
            .get_slice(vm_memory::MemoryRegionAddress(0), len)
            .expect("whole region slice");
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < len {
            let n = buf.len().min(len - off);
            slice
                .subslice(off, n)
                .expect("subslice")
                .copy_to(&mut buf[..n]);
            for (i, c) in buf[..n].chunks_exact(8).enumerate() {
                let w = u64::from_le_bytes(c.try_into().unwrap());
                acc = acc.rotate_left(5).wrapping_add(w ^ ((off + i * 8) as u64));
            }
            off += n;
        }
    }
    acc
}
