//! Real boots of the lab guest under QEMU (TCG): the kernel reaches /init, each test
//! scheduler attaches, and `stall`/`error` exit with the kinds they are built for.

use freeze::lab::{
    GuestCommand, HookPoint, Lab, QuickBoot, RunSpec, SchedulerChoice, TestScheduler,
    TestSchedulerParams,
};
use std::time::Duration;

fn lab() -> Lab {
    let lab = Lab::open().expect("open the lab cache");
    lab.ensure_host_packages().expect("host packages");
    lab
}

fn boot(lab: &Lab, spec: &RunSpec, timeout: Duration) -> freeze::lab::BootOutcome {
    let kernel = lab.kernel().expect("kernel");
    let initrd = lab.initramfs(spec).expect("initramfs");
    let mut qb = QuickBoot::new(&kernel.vmlinuz, initrd.path());
    qb.timeout = timeout;
    let out = qb.run().expect("boot");
    eprintln!(
        "---- console ({:.1}s) ----\n{}",
        out.elapsed.as_secs_f64(),
        out.console
    );
    out
}

#[test]
fn boots_to_init_and_powers_off() {
    let lab = lab();
    let spec = RunSpec::new()
        .command(HookPoint::AfterAttach, GuestCommand::sched_ext_sysfs())
        .command(
            HookPoint::AfterAttach,
            GuestCommand::kallsyms(&["scx_root", "init_task"]),
        )
        .command(
            HookPoint::AfterAttach,
            GuestCommand::new("uname", "uname -r"),
        );
    let out = boot(&lab, &spec, Duration::from_secs(120));
    let log = out.log();
    let kernel = lab.kernel().unwrap();
    assert!(out.exited, "QEMU did not exit on its own");
    let init = log.phase("init").expect("init phase");
    assert_eq!(init.field("release"), Some(kernel.release.as_str()));
    assert_eq!(
        log.phase("modules").and_then(|p| p.field("fw_cfg")),
        Some("ok")
    );
    assert_eq!(
        log.output("uname").as_deref(),
        Some(kernel.release.as_str())
    );
    let sysfs = log.output("sched-ext-sysfs").unwrap_or_default();
    assert!(
        sysfs.contains("/sys/kernel/sched_ext/state=disabled"),
        "{sysfs}"
    );
    let syms = log.outputs.get("kallsyms").cloned().unwrap_or_default();
    assert_eq!(syms.len(), 2, "{syms:?}");
    assert_eq!(log.last_phase().map(|p| p.name.as_str()), Some("end"));
}

/// Boot with `which` attached under a small workload; return the parsed console.
fn run_scheduler(
    lab: &Lab,
    which: TestScheduler,
    params: TestSchedulerParams,
    workload: &str,
) -> (freeze::lab::BootOutcome, freeze::lab::ConsoleLog) {
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Test { which, params })
        .bpf_stats(true)
        .workload(workload)
        .settle_ms(300)
        .command(HookPoint::AfterAttach, GuestCommand::sched_ext_sysfs())
        .command(HookPoint::WorkloadRunning, GuestCommand::bpftool_map_show())
        .command(HookPoint::WorkloadRunning, GuestCommand::bpftool_bss_dump());
    let out = boot(lab, &spec, Duration::from_secs(240));
    let log = out.log();
    (out, log)
}

#[test]
fn ok_scheduler_attaches_and_runs_the_workload() {
    let lab = lab();
    let (out, log) = run_scheduler(
        &lab,
        TestScheduler::Ok,
        TestSchedulerParams::default(),
        "ktstr_spin 3 3",
    );
    assert!(out.exited);
    let attached = log.phase("scheduler-attached").expect("attached");
    assert_eq!(attached.field("ops"), Some("ktstr_ok"));
    assert_eq!(
        log.phase("workload-done").and_then(|p| p.field("rc")),
        Some("0")
    );
    let sysfs = log.output("sched-ext-sysfs").unwrap_or_default();
    assert!(
        sysfs.contains("/sys/kernel/sched_ext/state=enabled"),
        "{sysfs}"
    );
    assert!(
        sysfs.contains("/sys/kernel/sched_ext/root/ops=ktstr_ok"),
        "{sysfs}"
    );
}

#[test]
fn stall_scheduler_exits_with_a_stall() {
    let lab = lab();
    let params = TestSchedulerParams {
        after_ms: Some(1000),
        ..Default::default()
    };
    let (out, log) = run_scheduler(
        &lab,
        TestScheduler::Stall,
        params,
        "ktstr_spin 2 8 & ktstr_victim 8; wait",
    );
    assert!(out.exited);
    assert_eq!(
        log.phase("scheduler-attached").and_then(|p| p.field("ops")),
        Some("ktstr_stall")
    );
    assert!(out.console.contains("ktstr_stall"), "{}", out.console);
}

#[test]
fn error_scheduler_exits_with_a_bpf_error() {
    let lab = lab();
    let params = TestSchedulerParams {
        after_ms: Some(1000),
        ..Default::default()
    };
    let (out, log) = run_scheduler(&lab, TestScheduler::Error, params, "ktstr_spin 2 5");
    assert!(out.exited);
    assert_eq!(
        log.phase("scheduler-attached").and_then(|p| p.field("ops")),
        Some("ktstr_error")
    );
}
