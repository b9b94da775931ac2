//! The guest-lab sched_ext kernel on the native KVM engine.
//!
//! Whether this host's KVM can boot Linux is found out by trying: the test boots the lab's
//! kernel with an initramfs that attaches the `ok` test scheduler and runs a workload. A
//! KVM that cannot because its instruction emulator fails (this project's machines run a
//! nested KVM that does, see `shared/guest-lab.md`) makes the test skip, also under CI:
//! the one exception of the skip policy (`guest_lab::testing::skip_kvm_cannot_run_linux`).
//! Any other boot error fails (a format that only runs out of the banner budget is
//! tolerated when the other one shows the emulation failure). Where it boots: the scheduler attaches, the guest is frozen
//! (every vCPU parked in kernel mode, memory still), thawed, and keeps running.

mod kvm_common;

use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::kvm::{GuestExit, KernelFormat, LinuxBoot, VmConfig, boot_and_wait};
use guest_lab::testing::{self, is_kvm_emulation_failure};
use guest_lab::{DEFAULT_APPEND, PHASE_PREFIX, RunEnd, RunSpec, SchedulerChoice, TestScheduler};
use kvm_common::kvm_or_skip;
use vm_memory::{Bytes, GuestAddress};

/// A KVM that cannot print the kernel banner in this time is of no use to the project
/// (`KTSTR_KVM_BANNER_BUDGET_S` overrides it, to study a slow host).
fn banner_budget() -> Duration {
    let secs = std::env::var("KTSTR_KVM_BANNER_BUDGET_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}
const ATTACH_BUDGET: Duration = Duration::from_secs(240);

#[test]
fn guest_lab_kernel_boots_attaches_and_freezes_or_skips() {
    if !kvm_or_skip() {
        return;
    }
    // The lab is part of the environment CI provides: failing to provision is a failure.
    let lab = testing::open_lab();
    let kernel = lab.kernel().expect("provision the guest-lab kernel");
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::test(TestScheduler::Ok))
        .workload("ktstr_spin 2 600")
        .end(RunEnd::Hold);
    let initrd = lab.initramfs(&spec).expect("build the initramfs");
    // The ELF through PVH first (no decompressor), then the bzImage.
    let mut reasons = Vec::new();
    let mut booted = None;
    for (image, format) in [
        (&kernel.vmlinux_elf, KernelFormat::ElfPvh),
        (&kernel.vmlinuz, KernelFormat::BzImage),
    ] {
        let boot = LinuxBoot {
            kernel: image.clone(),
            initramfs: Some(initrd.path().to_owned()),
            // The banner is a notice: make sure it reaches the console, early.
            cmdline: format!("{DEFAULT_APPEND} nokaslr loglevel=7 earlyprintk=serial,ttyS0,115200"),
            format,
        };
        match boot_and_wait(
            VmConfig {
                vcpus: 2,
                mem_bytes: 1 << 30,
                ..VmConfig::default()
            },
            &boot,
            "Linux version",
            banner_budget(),
        ) {
            Ok(engine) => {
                booted = Some(engine);
                break;
            }
            Err(why) => {
                // A format ends in this host's emulation failure, or runs out of the
                // banner budget (that emulator is also slow: the ELF may not print in
                // time on a loaded host, where the bzImage fails in its decompressor).
                // Any other boot error is a failure.
                let slow = why.starts_with("no \"Linux version\" on the console within");
                assert!(
                    is_kvm_emulation_failure(&why) || slow,
                    "booting {} as {format:?}: {why}",
                    kernel.release
                );
                reasons.push(format!("{format:?}: {why}"));
            }
        }
    }
    let Some(mut engine) = booted else {
        // The skip needs the emulation failure itself; running out of time everywhere
        // is a failure.
        assert!(
            reasons.iter().any(|r| is_kvm_emulation_failure(r)),
            "no format booted: {reasons:?}"
        );
        return testing::skip_kvm_cannot_run_linux(&format!(
            "the guest-lab kernel {}: {}",
            kernel.release,
            reasons.join("; ")
        ));
    };

    let attached = format!("{PHASE_PREFIX}scheduler-attached");
    // Stop waiting as soon as the guest is gone: a KVM that fails does so early.
    let deadline = Instant::now() + ATTACH_BUDGET;
    let ok = loop {
        if engine.console().wait_for(&attached, Duration::from_secs(1)) {
            break true;
        }
        if engine.exit_status().is_some() || Instant::now() >= deadline {
            break false;
        }
    };
    // A KVM that starts the kernel but cannot run it to the end (an instruction its
    // emulator does not handle) is the same verdict, found later.
    if let Some(GuestExit::Error { detail, .. }) = engine.exit_status()
        && is_kvm_emulation_failure(&detail)
    {
        eprintln!("console tail:\n{}", engine.console_tail());
        return testing::skip_kvm_cannot_run_linux(&format!(
            "the guest-lab kernel {} started but not to the scheduler: {detail}",
            kernel.release
        ));
    }
    assert!(
        ok,
        "the scheduler did not attach; exit {:?}; console tail:\n{}",
        engine.exit_status(),
        engine.console_tail()
    );
    assert!(
        engine.console().wait_for(
            &format!("{PHASE_PREFIX}workload-start"),
            Duration::from_secs(60)
        ),
        "no workload"
    );

    let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
    assert!(outcome.all_parked(), "{}/2 parked", outcome.parked());
    for (i, regs) in outcome.vcpus.iter().enumerate() {
        let regs = regs.unwrap();
        assert_ne!(regs.cr3, 0, "vCPU {i}: paging on");
        assert_ne!(regs.efer & (1 << 10), 0, "vCPU {i}: long mode");
    }
    // Guest memory does not change while frozen.
    let ram = engine.guest_ram();
    let mut a = vec![0u8; 64 << 20];
    let mut b = vec![0u8; 64 << 20];
    ram.read_slice(&mut a, GuestAddress(0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ram.read_slice(&mut b, GuestAddress(0)).unwrap();
    assert!(a == b, "guest RAM changed while frozen");
    let before = engine.console().total();
    engine.thaw().expect("thaw");
    assert_eq!(engine.exit_status(), None);
    // Still alive: the second freeze parks everyone again.
    std::thread::sleep(Duration::from_millis(500));
    let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze again");
    assert!(outcome.all_parked());
    engine.thaw().unwrap();
    eprintln!(
        "booted {} on the native KVM engine; console bytes before the first thaw: {before}",
        kernel.release
    );
}
