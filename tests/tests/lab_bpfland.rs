//! `scx_bpfland` from crates.io: built once (cached), carried in the initramfs layer, and
//! attached for real in a QEMU (TCG) guest.

use freeze::qemu::QuickBoot;
use guest_lab::{ConsoleLog, GuestCommand, HookPoint, RunSpec, SchedulerChoice, testing};
use std::time::Duration;

#[test]
fn guest_bpfland_attaches_in_the_guest() {
    if !testing::need_qemu() {
        return;
    }
    let lab = testing::open_lab();
    lab.ensure_host_packages().expect("host packages");
    let bpfland = lab.bpfland().expect("scx_bpfland");
    assert!(bpfland.binary.is_file());
    let kernel = lab.kernel().expect("kernel");
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::bpfland())
        .attach_timeout_s(180)
        .workload("ktstr_spin 3 4")
        .settle_ms(500)
        .command(HookPoint::WorkloadRunning, GuestCommand::sched_ext_sysfs());
    let initrd = lab.initramfs(&spec).expect("initramfs");
    let mut qb = QuickBoot::new(&kernel.vmlinuz, initrd.path(), guest_lab::DEFAULT_APPEND);
    qb.timeout = Duration::from_secs(300);
    let out = qb.run().expect("boot");
    eprintln!("{}", out.console);
    let log = ConsoleLog::parse(&out.console);
    let attached = log
        .phase("scheduler-attached")
        .unwrap_or_else(|| panic!("bpfland did not attach; last phase {:?}", log.last_phase()));
    let ops = attached.field("ops").unwrap_or_default();
    assert!(ops.starts_with("bpfland"), "ops {ops}");
    let sysfs = log.output("sched-ext-sysfs").unwrap_or_default();
    assert!(
        sysfs.contains("/sys/kernel/sched_ext/state=enabled"),
        "{sysfs}"
    );
    assert_eq!(log.phase_field("workload-done", "rc"), Some("0"));
    assert!(out.exited);
    if let (Some(start), Some(done)) = (
        out.time_of("KTSTR-PHASE: scheduler-start"),
        out.time_of("KTSTR-PHASE: scheduler-attached"),
    ) {
        eprintln!(
            "bpfland: QEMU start to attached {:.1}s, start to attached {:.1}s",
            done.as_secs_f64(),
            (done - start).as_secs_f64()
        );
    }
}
