//! KVM or TCG: decided by trying, never assumed.
//!
//! `/dev/kvm` existing says little: on nested hosts it can be a paravirtual KVM
//! (`kvm_pvm`) that runs tiny guests but fails on a Linux kernel (emulation failure in
//! the decompressor) or is far slower than TCG. So the probe boots *the kernel the
//! engine will run* under KVM, without an initramfs: a working KVM takes it through
//! early boot to its "no root file system" panic, which with `panic=-1` and
//! `-no-reboot` makes QEMU exit 0, in well under a second on real hardware. KVM counts
//! as usable when that happens within the probe budget and the console showed the
//! kernel's banner. Anything else (QEMU refusing `-cpu host`, a KVM internal error that
//! leaves the VM paused, a boot slower than the budget) selects TCG, with the reason.
//! Results are cached per (QEMU binary, kernel) for the life of the process.

use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::command::QemuCommand;
use super::console::Console;
use super::teardown::spawn_tied;

/// The accelerator a QEMU guest runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    /// Hardware virtualization (`-accel kvm -cpu host`).
    Kvm,
    /// Software emulation (`-accel tcg,thread=multi -cpu max`).
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM when the probe shows it can boot the kernel, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// The outcome of a probe: the accelerator to use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

/// How long the KVM boot attempt may take. TCG boots this kernel to its root-mount
/// panic in a few seconds; a KVM that cannot beat that is no gain.
pub const PROBE_BUDGET: Duration = Duration::from_secs(10);

/// Decides the accelerator for `kernel` (cached per process).
pub fn decide(qemu: &Path, kernel: &Path) -> AccelDecision {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, PathBuf), AccelDecision>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (qemu.to_path_buf(), kernel.to_path_buf());
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = guard.get(&key) {
        return d.clone();
    }
    let decision = match probe_kvm(qemu, kernel, PROBE_BUDGET) {
        Ok(how) => AccelDecision {
            accel: Accel::Kvm,
            reason: how,
        },
        Err(why) => AccelDecision {
            accel: Accel::Tcg,
            reason: format!("KVM not used: {why}"),
        },
    };
    guard.insert(key, decision.clone());
    decision
}

/// Tries to boot `kernel` under KVM; `Ok` says how it went, `Err` why KVM is unusable.
pub fn probe_kvm(qemu: &Path, kernel: &Path, budget: Duration) -> Result<String, String> {
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Err(format!("cannot open /dev/kvm: {e}"));
    }
    let cmd = QemuCommand::new(qemu, Accel::Kvm)
        .size(1, 512)
        .serial_stdout()
        .boot(
            kernel,
            None,
            "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1 loglevel=7",
        )
        .into_command();
    let mut child = spawn_tied(cmd).map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let console = Console::new(4096);
    let stderr = Console::new(4096);
    let readers = [
        console.spawn_reader(child.stdout.take().expect("piped")),
        stderr.spawn_reader(child.stderr.take().expect("piped")),
    ];
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < budget => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    for r in readers {
        let _ = r.join();
    }
    let banner = console.tail().contains("Linux version");
    let err_tail = last_line(&stderr.tail());
    match status {
        Some(s) if s.success() && banner => Ok(format!(
            "KVM booted the kernel to its root-mount panic in {:.2?}",
            start.elapsed()
        )),
        Some(s) => Err(format!(
            "the KVM boot attempt ended with {s} (kernel banner {}seen): {err_tail}",
            if banner { "" } else { "not " }
        )),
        None => Err(format!(
            "the kernel did not finish booting under KVM within {budget:?} (kernel banner {}seen): {err_tail}",
            if banner { "" } else { "not " }
        )),
    }
}

/// The line of QEMU's stderr that says most: the first one naming an error, else the last.
fn last_line(s: &str) -> String {
    s.lines()
        .find(|l| l.to_ascii_lowercase().contains("error"))
        .or_else(|| s.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}
