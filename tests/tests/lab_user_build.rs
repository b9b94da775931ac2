//! A published scheduler run the way a user runs their own build: `scx_flash` from the
//! lab's cache, passed as a path with arguments (so it goes into the guest with the
//! interpreter and libraries `elf_deps` resolved), under the mixed workload, in a guest
//! that has what real schedulers expect (bpffs, tracefs, debugfs, cgroup2,
//! `/boot/config-<release>`, readable kallsyms). At the end its process is interrupted:
//! the guest reports the exit status and the output's tail.

use freeze::qemu::QuickBoot;
use guest_lab::{
    ConsoleLog, GuestCommand, HookPoint, MixedWorkload, RunSpec, SchedulerChoice, ScxCrate, testing,
};
use std::time::Duration;

#[test]
fn guest_a_users_build_attaches_under_the_mixed_workload_and_reports_its_exit() {
    if !testing::need_qemu() {
        return;
    }
    let lab = testing::open_lab();
    lab.ensure_host_packages().expect("host packages");
    let kernel = lab.kernel().expect("kernel");
    let flash = lab
        .scx_crate(&ScxCrate::new("scx_flash", None).unwrap())
        .expect("scx_flash (built once, cached)");
    let choice =
        SchedulerChoice::from_path(&flash.binary, vec!["--slice-us".into(), "5000".into()])
            .expect("an executable");
    assert!(matches!(choice, SchedulerChoice::Executable { .. }));
    // Long enough to be still running when the guest's own view is taken: under TCG with
    // every CPU busy, the hooks can run seconds after the settle time.
    let work = MixedWorkload::new(30);
    // Interrupt the scheduler (Rust schedulers unregister and exit 0 on SIGINT) and wait
    // for its process to end and the guest to report it.
    let stop = "p=$(cat /tmp/sched.pid); kill -INT \"$p\"; i=0; \
                while kill -0 \"$p\" 2>/dev/null && [ $i -lt 300 ]; do usleep 100000; i=$((i+1)); done; \
                usleep 1000000";
    let spec = RunSpec::new()
        .scheduler(choice)
        .attach_timeout_s(240)
        .mixed_workload(work)
        .settle_ms(3000)
        .command(
            HookPoint::WorkloadRunning,
            GuestCommand::new(
                "comms",
                "for f in /proc/[0-9]*/comm; do cat \"$f\"; done 2>/dev/null | sort | uniq -c",
            ),
        )
        .command(
            HookPoint::WorkloadRunning,
            GuestCommand::new(
                "cgroup",
                format!(
                    "cat {}/cpu.max; for p in $(pidof ktstr-limited); do cat /proc/$p/cgroup; done",
                    MixedWorkload::CGROUP
                ),
            ),
        )
        .command(HookPoint::WorkloadRunning, GuestCommand::sched_ext_sysfs())
        .command(
            HookPoint::WorkloadRunning,
            GuestCommand::new("boot", "ls /boot"),
        )
        .command(HookPoint::AfterWorkload, GuestCommand::new("stop", stop));
    let initrd = lab.initramfs(&spec).expect("initramfs");
    let mut qb = QuickBoot::new(&kernel.vmlinuz, initrd.path(), guest_lab::DEFAULT_APPEND);
    qb.timeout = Duration::from_secs(420);
    let out = qb.run().expect("boot");
    eprintln!("{}", out.console);
    let log = ConsoleLog::parse(&out.console);

    assert!(
        log.environment_missing().is_empty(),
        "missing in the guest: {:?}",
        log.environment_missing()
    );
    assert!(
        log.output("boot")
            .unwrap_or_default()
            .lines()
            .any(|l| l == format!("config-{}", kernel.release)),
        "{:?}",
        log.output("boot")
    );
    assert_eq!(
        log.phase("scheduler-start").and_then(|p| p.field("name")),
        Some("scx_flash")
    );
    let attached = log
        .phase("scheduler-attached")
        .unwrap_or_else(|| panic!("did not attach; last phase {:?}", log.last_phase()));
    let ops = attached.field("ops").unwrap_or_default();
    assert!(ops.starts_with("flash"), "ops {ops}");
    let sysfs = log.output("sched-ext-sysfs").unwrap_or_default();
    assert!(
        sysfs.contains("/sys/kernel/sched_ext/state=enabled"),
        "{sysfs}"
    );

    // Every part of the mixed workload ran, the cgroup has its limit and a member.
    let comms = log.output("comms").unwrap_or_default();
    for comm in MixedWorkload::COMMS {
        assert!(
            comms
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(comm)),
            "{comm} in {comms}"
        );
    }
    let cgroup = log.outputs.get("cgroup").cloned().unwrap_or_default();
    assert_eq!(cgroup.first(), Some(&work.cpu_max()), "{cgroup:?}");
    assert_eq!(
        cgroup.get(1).map(String::as_str),
        Some("0::/ktstr-limited"),
        "{cgroup:?}"
    );
    assert_eq!(
        log.phase("workload-done").and_then(|p| p.field("rc")),
        Some("0")
    );

    // Interrupted: it unregistered (the kernel left it) and exited cleanly, and its last
    // lines came back.
    let exit = log
        .scheduler_process_exit()
        .expect("scheduler-process-exit reported");
    assert_eq!(exit.rc, 0, "tail: {:#?}", exit.tail);
    assert!(!exit.tail.is_empty());
    assert!(log.phase("scheduler-exited").is_some());
    assert!(out.exited);
    let at = |phase: &str| {
        out.time_of(&format!("KTSTR-PHASE: {phase}"))
            .map_or(f64::NAN, |t| t.as_secs_f64())
    };
    eprintln!(
        "scx_flash as a user build: scheduler-start {:.1}s, attached {:.1}s, workload-start \
         {:.1}s, its hooks {:.1}s, process exit {:.1}s, whole run {:.1}s",
        at("scheduler-start"),
        at("scheduler-attached"),
        at("workload-start"),
        at("hook point=workload_running"),
        at("scheduler-process-exit"),
        out.elapsed.as_secs_f64()
    );
}
