//! A published scheduler run the way a user runs their own build: `scx_flash` from the
//! lab's cache, passed as a path with arguments (so it goes into the guest with the
//! interpreter and libraries `elf_deps` resolved), under the mixed workload, in a guest
//! that has what real schedulers expect (bpffs, tracefs, debugfs, cgroup2,
//! `/boot/config-<release>`, readable kallsyms). It is captured at a timeout while the
//! workload runs and the dump is checked against the guest's view as in the corpus
//! (`e2e_tests::guest::corpus`); then the host tells the guest (over a second serial
//! line) to interrupt the scheduler: the guest reports its exit status and output tail.

use std::time::Duration;

use e2e_tests::guest::view::BssRule;
use e2e_tests::guest::{GuestLab, HostLine, corpus};
use guest_lab::{GuestCommand, HookPoint, MixedWorkload, SchedulerChoice, ScxCrate};

#[test]
fn guest_a_users_build_is_captured_then_interrupted() {
    let Some(lab) = GuestLab::open() else { return };
    let flash = lab
        .lab
        .scx_crate(&ScxCrate::new("scx_flash", None).unwrap())
        .expect("scx_flash (built once, cached)");
    let choice =
        SchedulerChoice::from_path(&flash.binary, vec!["--slice-us".into(), "5000".into()])
            .expect("an executable");
    assert!(matches!(choice, SchedulerChoice::Executable { .. }));
    let line = HostLine::new();
    // Interrupt the scheduler (Rust schedulers unregister and exit 0 on SIGINT) once the
    // host says so, and wait for its process to end.
    let stop = "p=$(cat /tmp/sched.pid); kill -INT \"$p\"; i=0; \
                while kill -0 \"$p\" 2>/dev/null && [ $i -lt 300 ]; do usleep 100000; i=$((i+1)); done";
    let spec = corpus::spec(choice)
        .command(HookPoint::BeforeScheduler, line.listen())
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
        .command(
            HookPoint::WorkloadRunning,
            GuestCommand::new("boot", "ls /boot"),
        )
        .command(HookPoint::WorkloadRunning, line.wait_then("stop", stop));
    let run = corpus::run(&lab, &spec, "scx_flash_user_build", |cfg| {
        cfg.extra_args.extend(line.qemu_args())
    });
    let summary = run.assert_agrees("flash", &|_| BssRule::Equal);
    eprintln!("{summary}");
    eprintln!("scx_flash as a user build: {}", run.metrics());

    // Captured; now the guest may stop it.
    let read = line.send_until(
        || run.guest.has_line(HostLine::READ),
        Duration::from_secs(120),
    );
    if !read {
        // Fails with the console tail.
        run.guest.wait_console(HostLine::READ, Duration::ZERO);
    }
    run.guest
        .wait_console("KTSTR-END sched-tail", Duration::from_secs(120));
    let log = run.guest.console_log();
    assert!(
        log.environment_missing().is_empty(),
        "missing in the guest: {:?}",
        log.environment_missing()
    );
    let kernel = &lab.kernel;
    assert!(
        log.output("boot")
            .unwrap_or_default()
            .lines()
            .any(|l| l == format!("config-{}", kernel.release)),
        "{:?}",
        log.output("boot")
    );
    assert_eq!(
        log.phase_field("scheduler-start", "name"),
        Some("scx_flash")
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
    let work = MixedWorkload::new(corpus::WORKLOAD_SECS);
    assert_eq!(cgroup.first(), Some(&work.cpu_max()), "{cgroup:?}");
    assert_eq!(
        cgroup.get(1).map(String::as_str),
        Some("0::/ktstr-limited"),
        "{cgroup:?}"
    );

    // Interrupted: it unregistered (the kernel left it) and exited cleanly, and its last
    // lines came back.
    let exit = log
        .scheduler_process_exit()
        .expect("scheduler-process-exit reported");
    assert_eq!(exit.rc, 0, "tail: {:#?}", exit.tail);
    assert!(!exit.tail.is_empty());
    assert!(log.phase("scheduler-exited").is_some());
}
