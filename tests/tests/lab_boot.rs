//! Real boots of the lab guest under QEMU (TCG): the kernel reaches /init, each test
//! scheduler attaches, and `stall`/`error` exit with the kinds they are built for.

use freeze::qemu::QuickBoot;
use guest_lab::{
    ConsoleLog, GuestCommand, HookPoint, Lab, RunSpec, SchedulerChoice, TestScheduler,
    TestSchedulerParams, testing,
};
use std::time::Duration;

/// The lab with its host packages; `None` (the test skips) without QEMU.
#[track_caller]
fn lab() -> Option<Lab> {
    if !testing::need_qemu() {
        return None;
    }
    let lab = testing::open_lab();
    lab.ensure_host_packages().expect("host packages");
    Some(lab)
}

fn boot(lab: &Lab, spec: &RunSpec, timeout: Duration) -> freeze::qemu::BootOutcome {
    let kernel = lab.kernel().expect("kernel");
    let initrd = lab.initramfs(spec).expect("initramfs");
    let mut qb = QuickBoot::new(&kernel.vmlinuz, initrd.path(), guest_lab::DEFAULT_APPEND);
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
fn guest_boots_to_init_and_powers_off() {
    let Some(lab) = lab() else { return };
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
    let log = ConsoleLog::parse(&out.console);
    let kernel = lab.kernel().unwrap();
    assert!(out.exited, "QEMU did not exit on its own");
    let init = log.phase("init").expect("init phase");
    assert_eq!(init.field("release"), Some(kernel.release.as_str()));
    assert_eq!(log.phase_field("modules", "fw_cfg"), Some("ok"));
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
) -> (freeze::qemu::BootOutcome, guest_lab::ConsoleLog) {
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Test { which, params })
        .bpf_stats(true)
        .workload(workload)
        .settle_ms(300)
        .command(HookPoint::AfterAttach, GuestCommand::sched_ext_sysfs())
        .commands(
            HookPoint::WorkloadRunning,
            [
                GuestCommand::bpftool_map_show(),
                GuestCommand::bpftool_bss_dump(),
            ],
        )
        .command(
            HookPoint::AfterWorkload,
            GuestCommand::bpftool_bss_dump().labeled("bss-after"),
        );
    let out = boot(lab, &spec, Duration::from_secs(240));
    let at = |phase: &str| {
        out.time_of(&format!("KTSTR-PHASE: {phase}"))
            .map(|t| format!("{:.2}s", t.as_secs_f64()))
            .unwrap_or_else(|| "-".into())
    };
    eprintln!(
        "timing {}: QEMU start to init {}, scheduler-start {}, scheduler-attached {}, exited {}",
        which.name(),
        at("init"),
        at("scheduler-start"),
        at("scheduler-attached"),
        at("scheduler-exited"),
    );
    let log = ConsoleLog::parse(&out.console);
    (out, log)
}

#[test]
fn guest_ok_scheduler_attaches_and_runs_the_workload() {
    let Some(lab) = lab() else { return };
    let (out, log) = run_scheduler(
        &lab,
        TestScheduler::Ok,
        TestSchedulerParams::default(),
        "ktstr_spin 3 3",
    );
    assert!(out.exited);
    let attached = log.phase("scheduler-attached").expect("attached");
    assert_eq!(attached.field("ops"), Some("ktstr_ok"));
    assert_eq!(log.phase_field("workload-done", "rc"), Some("0"));
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

/// The scheduler's own record of its exit (`exit_kind` in its `.bss`, written by its
/// `exit` callback from the kernel's `scx_exit_info`), from the dump after the workload.
fn recorded_exit_kind(log: &guest_lab::ConsoleLog) -> Option<u32> {
    let dump = log.output("bss-after")?;
    let at = dump.find("{\"exit_kind\":")? + "{\"exit_kind\":".len();
    let digits: String = dump[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs the test scheduler `which`, which fails by itself after a second, under
/// `workload`; checks that it attached as `ops`, that the kernel disabled it for `why`
/// and that it recorded exit kind `kind`.
fn fails_after_a_second(
    lab: &Lab,
    which: TestScheduler,
    workload: &str,
    (ops, why, kind): (&str, &str, u32),
) -> (freeze::qemu::BootOutcome, guest_lab::ConsoleLog) {
    let params = TestSchedulerParams {
        after_ms: Some(1000),
        ..Default::default()
    };
    let (out, log) = run_scheduler(lab, which, params, workload);
    assert!(out.exited);
    assert_eq!(log.phase_field("scheduler-attached", "ops"), Some(ops));
    assert!(log.phase("scheduler-exited").is_some());
    let disabled = format!("sched_ext: BPF scheduler \"{ops}\" disabled ({why})");
    assert!(
        out.console.contains(&disabled),
        "kernel exit message missing: {disabled}"
    );
    assert_eq!(recorded_exit_kind(&log), Some(kind));
    (out, log)
}

#[test]
fn guest_stall_scheduler_exits_with_a_stall() {
    let Some(lab) = lab() else { return };
    let workload = "ktstr_spin 2 8 & ktstr_victim 8; wait";
    let stall = ("ktstr_stall", "runnable task stall", 1026);
    let (_, log) = fails_after_a_second(&lab, TestScheduler::Stall, workload, stall);
    assert_eq!(TestScheduler::Stall.expected_exit_kind(), Some(1026));
    let dump = log.output("scx-dump").unwrap_or_default();
    // The victim waits on the stall scheduler's own user DSQ (0x101).
    // (Task entries are `R ktstr-victim[pid] ...` followed by their fields.)
    let on_stall_dsq = dump
        .split("R ktstr-victim[")
        .skip(1)
        .any(|entry| entry.lines().take(4).any(|l| l.contains("dsq_id=0x101")));
    assert!(on_stall_dsq, "victim on STALL_DSQ:\n{dump}");
    assert!(
        dump.contains("ktstr-victim"),
        "the kernel's dump names the victim:\n{dump}"
    );
    assert_eq!(log.phase_field("workload-done", "rc"), Some("0"));
}

#[test]
fn guest_error_scheduler_exits_with_a_bpf_error() {
    let Some(lab) = lab() else { return };
    let error = ("ktstr_error", "scx_bpf_error", 1025);
    let (out, log) = fails_after_a_second(&lab, TestScheduler::Error, "ktstr_spin 2 5", error);
    assert!(
        out.console
            .contains("scx_bpf_error() after 1000 ms as asked"),
        "the --set value reached .rodata"
    );
    assert!(!log.output("scx-dump").unwrap_or_default().is_empty());
    assert_eq!(log.phase_field("workload-done", "rc"), Some("0"));
}

#[test]
fn guest_a_callers_object_attaches_and_set_reaches_ops_and_rodata() {
    let Some(lab) = lab() else { return };
    // The `ok` object, handed over as if it were the caller's own scheduler.
    let object = lab
        .scheduler(TestScheduler::Ok)
        .expect("ok scheduler")
        .object;
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Object { path: object })
        .workload("ktstr_spin 2 2")
        .command(HookPoint::AfterAttach, GuestCommand::scheduler_log());
    let out = boot(&lab, &spec, Duration::from_secs(240));
    let log = ConsoleLog::parse(&out.console);
    assert_eq!(log.phase_field("scheduler-start", "name"), Some("ok.bpf.o"));
    assert_eq!(
        log.phase_field("scheduler-attached", "ops"),
        Some("ktstr_ok")
    );
    assert_eq!(log.phase_field("workload-done", "rc"), Some("0"));

    // --set on an ops member (timeout_ms) and on .rodata (victim_comm).
    let params = TestSchedulerParams {
        after_ms: Some(60_000),
        timeout_ms: Some(1500),
        victim_comm: Some("nobody".into()),
    };
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Test {
            which: TestScheduler::Stall,
            params,
        })
        .command(HookPoint::AfterAttach, GuestCommand::scheduler_log())
        .command(
            HookPoint::AfterAttach,
            GuestCommand::new(
                "ops-dump",
                "bpftool struct_ops dump name ktstr_ops | grep -E 'timeout_ms'",
            ),
        );
    let out = boot(&lab, &spec, Duration::from_secs(240));
    let log = ConsoleLog::parse(&out.console);
    let sched_log = log.output("sched-log").unwrap_or_default();
    for want in [
        "set after_ms=60000",
        "set timeout_ms=1500",
        "set victim_comm=nobody",
        "attached ktstr_ops",
    ] {
        assert!(sched_log.contains(want), "{want} in {sched_log}");
    }
    let ops = log.output("ops-dump").unwrap_or_default();
    assert!(
        ops.contains("1500"),
        "timeout_ms in the kernel's ops: {ops}"
    );
}
