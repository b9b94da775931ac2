//! The workspace's one skip policy, and the tests' way into QEMU and the lab (behind the
//! `test-util` feature: for test suites, not part of the API).
//!
//! - A test that cannot run on this host (no `/dev/kvm`, no QEMU, a tool missing) calls
//!   [`skip`] and returns: it prints `SKIP: <reason>`. Under CI (`CI=true`), which
//!   provides everything the tests need, [`skip`] panics with the reason instead: there a
//!   skip is a failure.
//! - One exception, [`skip_kvm_cannot_run_linux`]: this project's hosts have a nested KVM
//!   that runs tiny guests but whose instruction emulator fails on a Linux kernel
//!   (`shared/guest-lab.md`). A native-KVM Linux boot that ends in exactly that failure
//!   skips, also under CI; any other boot error fails. The same emulator checks
//!   instruction breakpoints only, so the native engine's write-watch tests skip on
//!   exactly that probe result ([`skip_kvm_without_data_breakpoints`]), also under CI.
//! - Guest tests (those that boot a guest or provision the lab) are named `guest_*`: the
//!   prefix puts them in nextest's `guest` group (one at a time, one retry;
//!   `.config/nextest.toml`) and keeps them out of `cargo xtask test --fast`. They come in
//!   through [`need_qemu`], [`open_lab`] or [`lab_at`], which also check, when nextest
//!   runs them, that they are in that group. `cargo xtask test` checks the naming rule
//!   on the source tree.
//!
//! Why here: every crate whose tests may skip already depends on `guest-lab` (freeze and
//! btf-walk as a dev-dependency), and `guest-lab` depends on no other crate of the
//! workspace, so this adds no arrow and no cycle (a policy in `e2e-tests` would need
//! `freeze → e2e-tests → freeze`).

use std::fmt::Display;
use std::path::PathBuf;

use crate::Lab;

/// The prefix of every guest test's name (the function's name; nextest may show a module
/// path before it).
pub const GUEST_TEST_PREFIX: &str = "guest_";

/// The nextest test group of the guest tests.
pub const GUEST_GROUP: &str = "guest";

/// How the native KVM engine (`freeze::kvm`) words the failure of this project's nested
/// KVM: `KVM_EXIT_INTERNAL_ERROR` with suberror `KVM_INTERNAL_ERROR_EMULATION` (1).
pub const KVM_EMULATION_FAILURE: &str = "KVM internal error, suberror 1 (emulation failure)";

/// How the native KVM engine's write-watch probe (`freeze::kvm::probe_write_watch`) says
/// that this host's KVM ignores data breakpoints while honouring instruction breakpoints:
/// it runs the guest's instructions in its emulator (kvm_pvm).
pub const KVM_NO_DATA_BREAKPOINTS: [&str; 2] = [
    "without a debug exit",
    "an instruction breakpoint in the same guest does stop it",
];

/// Whether the tests run under CI (`CI=true` or `CI=1`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test cannot run here: prints `SKIP: <reason>` (the caller then returns, or leaves
/// out the part that cannot run). Under CI it panics with the reason.
#[track_caller]
pub fn skip(reason: impl Display) {
    skip_unless_ci(in_ci(), reason);
}

#[track_caller]
fn skip_unless_ci(ci: bool, reason: impl Display) {
    if ci {
        panic!("CI=true: every test must run here, but: {reason}");
    }
    eprintln!("SKIP: {reason}");
}

/// Whether `qemu-system-x86_64` runs here.
pub fn qemu_available() -> bool {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// For a guest test that boots QEMU: `true` when QEMU runs here, else [`skip`] and
/// `false`.
#[track_caller]
pub fn need_qemu() -> bool {
    check_guest_group();
    if qemu_available() {
        return true;
    }
    skip("qemu-system-x86_64 not installed (cargo xtask provision installs it)");
    false
}

/// For a guest test that provisions: the lab at its usual cache ([`Lab::open`]). Failing
/// to open it fails the test: CI provides the cache.
#[track_caller]
pub fn open_lab() -> Lab {
    check_guest_group();
    Lab::open().unwrap_or_else(|e| panic!("opening the guest lab cache: {e}"))
}

/// For a guest test that provisions into a cache of its own: the lab at `dir`.
#[track_caller]
pub fn lab_at(dir: impl Into<PathBuf>) -> Lab {
    check_guest_group();
    let dir = dir.into();
    Lab::at(&dir).unwrap_or_else(|e| panic!("opening a guest lab at {}: {e}", dir.display()))
}

/// Whether `detail` (a native KVM engine's error) is this host's known emulation failure.
pub fn is_kvm_emulation_failure(detail: &str) -> bool {
    detail.contains(KVM_EMULATION_FAILURE)
}

/// The one skip CI accepts: the native KVM engine could not run a Linux kernel because
/// of this host's emulation failure ([`KVM_EMULATION_FAILURE`] in `detail`). Any other
/// reason is a failure, CI or not.
#[track_caller]
pub fn skip_kvm_cannot_run_linux(detail: &str) {
    assert!(
        is_kvm_emulation_failure(detail),
        "the native KVM engine could not run Linux, and not because of this host's known \
         emulation failure ({KVM_EMULATION_FAILURE}): {detail}"
    );
    eprintln!(
        "SKIP: this host's KVM cannot run Linux (its instruction emulator fails, \
         shared/guest-lab.md): {detail}"
    );
}

/// Whether `detail` (the write-watch probe's error) is this host's known limit: data
/// breakpoints never fire, instruction breakpoints do.
pub fn is_kvm_without_data_breakpoints(detail: &str) -> bool {
    KVM_NO_DATA_BREAKPOINTS.iter().all(|p| detail.contains(p))
}

/// The write-watch tests of the native KVM engine skip, also under CI, when the probe
/// finds this host's known limit ([`KVM_NO_DATA_BREAKPOINTS`]); any other reason is a
/// failure.
#[track_caller]
pub fn skip_kvm_without_data_breakpoints(detail: &str) {
    assert!(
        is_kvm_without_data_breakpoints(detail),
        "the native KVM engine cannot watch writes, and not because of this host's known \
         limit (data breakpoints ignored, instruction breakpoints honoured): {detail}"
    );
    eprintln!(
        "SKIP: this host's KVM ignores data breakpoints (its emulator checks instruction \
         breakpoints only): {detail}"
    );
}

/// Under nextest (which names a test's group in `NEXTEST_TEST_GROUP`), a test that needs
/// QEMU or the lab must be in the guest group; one outside it escaped the naming rule.
#[track_caller]
fn check_guest_group() {
    if let Ok(group) = std::env::var("NEXTEST_TEST_GROUP") {
        let name = std::env::var("NEXTEST_TEST_NAME").unwrap_or_default();
        if let Err(e) = guest_group_ok(&group, &name) {
            panic!("{e}");
        }
    }
}

fn guest_group_ok(group: &str, name: &str) -> Result<(), String> {
    if group == GUEST_GROUP {
        return Ok(());
    }
    Err(format!(
        "test {name} boots a guest or provisions the lab but runs in nextest group {group}, \
         not {GUEST_GROUP}: a guest test's name starts with {GUEST_TEST_PREFIX} \
         (.config/nextest.toml)"
    ))
}

/// Runs `cmd` (a tool the test relies on, called `what` in messages) and returns its
/// stdout; panics with its stderr when it cannot start or does not succeed.
pub fn stdout_of(cmd: &mut std::process::Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh directory `<base>/ktstr-<name>-<pid>-<nanos>` for one test, removed with
/// everything in it on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A fresh directory under the system's temporary directory.
    pub fn new(name: &str) -> ScratchDir {
        ScratchDir::under(&std::env::temp_dir(), name)
    }

    /// A fresh directory under `base`.
    pub fn under(base: &std::path::Path, name: &str) -> ScratchDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = base.join(format!("ktstr-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        ScratchDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `rel` inside the directory.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes `text` to `rel` (creating its parent directories); returns the path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// `gcc ARGS` in the directory; panics with gcc's output on failure.
    pub fn gcc(&self, args: &[&str]) {
        stdout_of(
            std::process::Command::new("gcc")
                .args(args)
                .current_dir(&self.0),
            &format!("gcc {args:?}"),
        );
    }
}

/// C code to build with gcc: the source, and the flags that follow it (`-lz`, ...).
pub struct CCode<'a> {
    pub source: &'a str,
    pub flags: &'a [&'a str],
}

impl ScratchDir {
    /// A program of our own for the library-copying tests: `app/bin/<exe>` built from
    /// `main`, linked against a library of its own, `app/lib/lib<lib>.so` built from
    /// `lib_code`, which it finds through `$ORIGIN/../lib`. Returns the program's path.
    pub fn app_with_own_library(
        &self,
        exe: &str,
        main: CCode<'_>,
        lib: &str,
        lib_code: CCode<'_>,
    ) -> PathBuf {
        for dir in ["app/bin", "app/lib"] {
            let dir = self.p(dir);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        self.write("lib.c", lib_code.source);
        self.write("main.c", main.source);
        let so = format!("app/lib/lib{lib}.so");
        self.gcc(&[&["-shared", "-fPIC", "-o", &so, "lib.c"], lib_code.flags].concat());
        let (bin, link) = (format!("app/bin/{exe}"), format!("-l{lib}"));
        let head = ["-o", &bin, "main.c", "-Lapp/lib", &link];
        self.gcc(&[&head[..], main.flags, &["-Wl,-rpath,$ORIGIN/../lib"]].concat());
        self.p(&bin)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_prints_locally_and_fails_under_ci() {
        skip_unless_ci(false, "nothing to see");
        let caught = std::panic::catch_unwind(|| skip_unless_ci(true, "no /dev/kvm"));
        let msg = caught.expect_err("a skip under CI panics");
        let msg = msg.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains("no /dev/kvm"), "{msg}");
    }

    #[test]
    fn only_the_engines_emulation_failure_is_the_kvm_exception() {
        // As `freeze::kvm` reports it (vCPU exit description, then boot_and_wait's frame).
        let seen = "the guest stopped before printing \"Linux version\": vCPU 0 stopped: \
                    KVM internal error, suberror 1 (emulation failure) (data [1, 2]) at RIP \
                    0xffffffff81000000; last console line: \"\"";
        assert!(is_kvm_emulation_failure(seen));
        skip_kvm_cannot_run_linux(seen);
        for other in [
            "no \"Linux version\" on the console within 60s (vCPU 0 at RIP 0x1000)",
            "vCPU 1 stopped: KVM internal error, suberror 3 (data []) at RIP 0x10",
            "the VMM could not start the kernel: bad bzImage",
            "guest reset by a triple fault (KVM_EXIT_SHUTDOWN) (vCPU 0)",
        ] {
            assert!(!is_kvm_emulation_failure(other), "{other}");
            assert!(std::panic::catch_unwind(|| skip_kvm_cannot_run_linux(other)).is_err());
        }
    }

    #[test]
    fn only_the_probes_own_verdict_is_the_data_breakpoint_exception() {
        let seen = "probe write watchpoints: KVM_SET_GUEST_DEBUG took a DR7 write watchpoint \
                    (DR0 0x11000, DR7 0x90401), but the guest wrote the address 317802 times \
                    in 2000 ms without a debug exit; an instruction breakpoint in the same \
                    guest does stop it, so this KVM runs the guest's instructions in its \
                    emulator, which checks instruction breakpoints only (as kvm_pvm does)";
        assert!(is_kvm_without_data_breakpoints(seen));
        skip_kvm_without_data_breakpoints(seen);
        for other in [
            "probe write watchpoints: KVM_SET_GUEST_DEBUG: Invalid argument (os error 22)",
            "the guest wrote the address 5 times in 2000 ms without a debug exit; the \
             instruction-breakpoint probe failed: no hit",
        ] {
            assert!(!is_kvm_without_data_breakpoints(other), "{other}");
            let caught = std::panic::catch_unwind(|| skip_kvm_without_data_breakpoints(other));
            assert!(caught.is_err());
        }
    }

    #[test]
    fn only_the_guest_group_may_use_the_lab() {
        assert!(guest_group_ok("guest", "a::guest_boots").is_ok());
        let e = guest_group_ok("@global", "boots_quietly").unwrap_err();
        assert!(e.contains("boots_quietly") && e.contains("guest_"), "{e}");
    }
}
