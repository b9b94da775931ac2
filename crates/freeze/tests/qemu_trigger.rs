//! The trigger watch on real failing schedulers: the host sees `exit_kind` flip in the
//! shared guest RAM, freezes the guest with the error's kind, and reads `scx_sched`
//! consistently while frozen. (Poll rate and whether the freeze beats the kernel's
//! disable worker are measured by the `qemu_latency` bench, not asserted here.)
//! Symbols come from guest-mem (kallsyms decoded from guest RAM), the offset from
//! btf-walk (the kernel's BTF): nothing from the guest's own help.

mod qemu_common;

use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::qemu::LineMark;
use freeze::watch::{WatchOptions, WatchOutcome, watch_u32};
use guest_lab::{RunSpec, SchedulerChoice, TestScheduler, TestSchedulerParams};
use guest_mem::{Kva, KvaReadExt};
use qemu_common::{BOOT_TIMEOUT, boot, error_exit_watch, ops_name, sched_offsets};
use scx_walk::exit_kind::SCX_EXIT_DONE;

fn trigger_test(which: TestScheduler, workload: &str) {
    let expected = which.expected_exit_kind().unwrap();
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Test {
            which,
            params: TestSchedulerParams {
                after_ms: Some(3000),
                timeout_ms: Some(2000),
                victim_comm: None,
            },
        })
        .workload(workload);
    let Some(mut g) = boot(&spec, 2, 1024) else {
        return;
    };
    // Everything the watch needs is ready before the scheduler attaches: the offsets
    // from the BTF file, the symbols from guest RAM once the kernel runs /init.
    let off = sched_offsets(&g.btf());
    let (_, m) = g.phase(LineMark::START, "scheduler-start", BOOT_TIMEOUT);
    // Hold the guest while the host decodes kallsyms (seconds in a debug build on a
    // loaded host): the scheduler must not fail before the watch runs.
    let kernel = g.kernel_view_frozen(|_| {});
    let (polled, rule) = error_exit_watch(&kernel, &off);
    let opts = WatchOptions {
        timeout: Some(Duration::from_secs(180)),
        stop: Some(g.engine.exited_flag()),
        ..Default::default()
    };
    let start = Instant::now();
    let translator = kernel.clone();
    let out = watch_u32(
        &mut g.engine,
        polled,
        |k| translator.translate(k),
        rule,
        &opts,
    )
    .expect("watch");
    let (attached, m) = g.phase(m, "scheduler-attached", Duration::from_secs(1));
    eprintln!(
        "{}: {attached}; watch set up {:.1?} after launch",
        which.name(),
        start - g.launched_at
    );
    let t = match out {
        WatchOutcome::Triggered(t) => t,
        other => panic!(
            "no trigger: {other:?}\n--- console ---\n{}",
            g.console_text_tail()
        ),
    };
    eprintln!(
        "{}: exit_kind {} after {:.1?} of watching; flip→frozen {:?} (stop {:?}); {} polls at {:.0} Hz, max gap {:?}; root cleared: {}; late: {}; realtime poll: {}",
        which.name(),
        t.fire.value,
        start.elapsed(),
        t.flip_to_frozen,
        t.freeze.elapsed,
        t.stats.polls,
        t.stats.rate_hz(),
        t.stats.max_gap,
        t.root_cleared,
        t.fire.late,
        t.realtime
    );
    // The kind reported is the scheduler's error, whether the poll caught exit_kind
    // itself or (late) found it in exit_info.
    assert_eq!(t.fire.value, expected, "the reported exit kind");
    assert!(g.engine.is_frozen());
    assert!(t.freeze.all_parked(), "{:?}", t.freeze);
    assert_eq!(g.engine.run_state().unwrap(), "paused");
    // How fast the watch polls and whether the freeze beats the kernel's disable worker
    // are measurements (the qemu_latency bench prints both); making the freeze land at
    // the exact instant is the write watchpoint's job. What follows holds either way.

    // Frozen: the scx_sched is still there, readable through guest-mem, and says why.
    let sched = t.object;
    let kind = kernel
        .read_u32(Kva(sched.0 + off.exit_kind))
        .expect("scx_sched.exit_kind readable while frozen");
    let info = kernel
        .read_ptr(Kva(sched.0 + off.exit_info))
        .expect("scx_sched.exit_info");
    let info_kind = kernel
        .read_u32(Kva(info.0 + off.exit_info_kind))
        .expect("exit_info->kind");
    match kind {
        // Before the disable worker: scx_vexit() may not have copied the kind into
        // exit_info yet.
        k if k == expected => assert!(
            info_kind == 0 || info_kind == expected,
            "exit_info->kind {info_kind} beside exit_kind {kind}"
        ),
        // The disable worker had taken over: exit_kind is DONE, exit_info keeps the kind.
        SCX_EXIT_DONE => assert_eq!(info_kind, expected, "exit_info->kind beside DONE"),
        other => panic!("scx_sched.exit_kind while frozen: {other}"),
    }
    if t.fire.late {
        assert_eq!(kind, SCX_EXIT_DONE, "a late fire saw DONE, and DONE stays");
    }
    assert_eq!(ops_name(&kernel, sched, &off), which.ops_name());
    // Nothing moves while frozen: the watch's own re-read at the freeze agrees with this
    // one (unless scx_root was already cleared, late in the disable path).
    let at_freeze = t.at_freeze.expect("sample at freeze");
    match at_freeze.object {
        Some(o) => {
            assert_eq!(o, sched, "scx_root points at the scheduler that failed");
            assert_eq!(at_freeze.value, Some(kind), "exit_kind at the freeze");
        }
        None => assert!(kind == SCX_EXIT_DONE, "scx_root cleared before DONE"),
    }

    // Thaw: the kernel finishes disabling the scheduler, the workload ends, the guest
    // powers off by itself.
    g.engine.thaw().unwrap();
    // For the record: what the watch would have seen had it missed the window.
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let now = (
            kernel.read_u32(Kva(sched.0 + off.exit_kind)).ok(),
            kernel.read_u32(Kva(info.0 + off.exit_info_kind)).ok(),
        );
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    eprintln!(
        "{}: after thaw (exit_kind, exit_info->kind): {seen:?}",
        which.name()
    );
    let (done, _) = g.phase(m, "workload-done", BOOT_TIMEOUT);
    assert!(done.contains("rc=0"), "{done}");
    g.expect_clean_poweroff();
}

#[test]
fn guest_stall_triggers_and_freezes_with_exit_kind_1026() {
    trigger_test(TestScheduler::Stall, "ktstr_victim 20");
}

#[test]
fn guest_error_triggers_and_freezes_with_exit_kind_1025() {
    trigger_test(TestScheduler::Error, "ktstr_spin 2 15");
}
