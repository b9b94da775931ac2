//! QEMU engine latencies on the real guest lab, printed (never asserted):
//!
//! - trigger → frozen over real error exits: one guest attaches the `error` test
//!   scheduler 20 times in a row (`scx_bpf_error`, 1025), another the `stall` one 5 times
//!   (the watchdog, 1026); the host watch freezes on each flip, thaws, waits for the next.
//!   Besides the latency it prints the two goals the trigger tests used to assert: the
//!   poll rate against 1 kHz, and how often the freeze beat the kernel's disable worker
//!   (`exit_kind` still the error, not `SCX_EXIT_DONE`, when read while frozen) — a race
//!   the write watchpoint removes;
//! - freeze (QMP `stop`) and thaw (`cont`) over 50 cycles on a running guest, against
//!   the baseline of a no-op QMP round trip (`query-status`) in the same run;
//! - boot → scheduler attached (the C test scheduler via the lab's loader);
//! - write → frozen, watchpoint path against poll path, on one guest (with the gdbstub)
//!   whose `error` scheduler exits again and again, the two paths taking turns (see
//!   [`watchpoint_vs_poll`] for exactly what is measured).
//!
//! Run: `cargo bench -p freeze --bench qemu_latency` (all sections), or name sections:
//! `cargo bench -p freeze --bench qemu_latency -- triggers freeze watchpoint`. Without
//! `--bench` (as under `cargo test --all-targets`) it only says how to run it.

#[path = "../tests/qemu_common/mod.rs"]
mod qemu_common;
#[path = "qemu_latency/watchpoint.rs"]
mod watchpoint;

use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::qemu::LineMark;
use freeze::watch::{WatchOptions, WatchOutcome, watch_u32};
use guest_lab::{RunSpec, SchedulerChoice, TestScheduler, TestSchedulerParams};
use qemu_common::{BOOT_TIMEOUT, boot, error_exit_watch, median_max, sched_offsets};
use scx_walk::exit_kind::SCX_EXIT_NONE;

const CYCLES: usize = 50;
/// The poll rate the watch is built for (one poll per millisecond at least).
const POLL_GOAL_HZ: f64 = 1000.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("qemu_latency: run with `cargo bench -p freeze --bench qemu_latency`");
        return;
    }
    let sections = ["triggers", "freeze", "watchpoint"];
    let chosen: Vec<&str> = sections
        .into_iter()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let run = |s: &str| chosen.is_empty() || chosen.contains(&s);
    if run("triggers") {
        triggers(TestScheduler::Error, 20, "--set after_ms=500", "");
        // The stall scheduler stops dispatching `ktstr-victim`, which runs all along; the
        // watchdog fires after timeout_ms.
        triggers(
            TestScheduler::Stall,
            5,
            "--set after_ms=500 --set timeout_ms=1000",
            "ktstr_victim 3600 & sleep 1; ",
        );
    }
    if run("freeze") {
        freeze_thaw();
    }
    if run("watchpoint") {
        watchpoint::watchpoint_vs_poll();
    }
}

/// The guest loads `error` (fails 500 ms after attaching) `n` times, each once the
/// previous one is fully disabled, then prints `BENCH-DONE`.
fn attach_loop(n: u32) -> String {
    trigger_workload(TestScheduler::Error, n, "--set after_ms=500", "")
}

/// The guest loads `which` with the loader arguments `set` `n` times, each once the
/// previous one is fully disabled, then prints `BENCH-DONE`; `before` runs first (in the
/// background if it should). The loader pins the scheduler's other links at
/// `PIN_<program>`: they go too, or the next pin fails.
fn trigger_workload(which: TestScheduler, n: u32, set: &str, before: &str) -> String {
    format!(
        "{before}i=1; while [ $i -le {n} ]; do \
           rm -f /sys/fs/bpf/ktstr_bench /sys/fs/bpf/ktstr_bench_*; \
           ktstr-loader /sched/{name}.bpf.o --pin /sys/fs/bpf/ktstr_bench {set} \
             >/tmp/bench.log 2>&1 || {{ echo BENCH-LOAD-FAILED $i; cat /tmp/bench.log; }}; \
           while [ \"$(cat /sys/kernel/sched_ext/state)\" != disabled ]; do usleep 20000; done; \
           i=$((i+1)); \
         done; echo BENCH-DONE",
        name = which.name()
    )
}

/// What one series of triggers measured.
#[derive(Default)]
struct Series {
    /// Trigger → frozen and its QMP `stop` part, for the triggers caught in the window.
    lat: Vec<Duration>,
    stops: Vec<Duration>,
    /// Fired on `SCX_EXIT_DONE` (the kind read from `exit_info`): the poll was late.
    late: u32,
    /// `exit_kind` still read the error while frozen: the freeze beat the disable worker
    /// (otherwise it reads `SCX_EXIT_DONE`, or `scx_root` is already cleared).
    in_window: u32,
    realtime: bool,
    min_rate: f64,
    max_gap: Duration,
}

fn triggers(which: TestScheduler, n: u32, set: &str, before: &str) {
    let expected = which
        .expected_exit_kind()
        .expect("a failing test scheduler");
    // The first attach goes through the lab's normal path (timed as boot → attached),
    // the rest through the workload.
    let spec = reattach_spec(&trigger_workload(which, n, set, before));
    let Some(mut g) = boot(&spec, 2, 1024) else {
        return;
    };
    let off = sched_offsets(&g.btf());
    let (_, m) = g.phase(LineMark::START, "scheduler-start", BOOT_TIMEOUT);
    // Hold the guest while the host decodes kallsyms, so no exit happens unwatched.
    let kernel = g.kernel_view_frozen(|_| {});
    let (_, m) = g.phase(m, "scheduler-attached", BOOT_TIMEOUT);
    let boot_to_attached = g.launched_at.elapsed();
    let (polled, mut rule) = error_exit_watch(&kernel, &off);
    let mut s = Series {
        realtime: true,
        min_rate: f64::MAX,
        ..Default::default()
    };
    let mut ignore = None;
    for i in 0..n {
        let opts = WatchOptions {
            timeout: Some(Duration::from_secs(120)),
            stop: Some(g.engine.exited_flag()),
            ignore_object: ignore,
            fresh_value: Some(SCX_EXIT_NONE),
            ..Default::default()
        };
        let out = watch_u32(
            &mut g.engine,
            polled,
            |k| kernel.translate(k),
            &mut rule,
            &opts,
        )
        .expect("watch");
        let WatchOutcome::Triggered(t) = out else {
            panic!("trigger {i}: {out:?}\n{}", g.console_text_tail());
        };
        let at_freeze = t.at_freeze.and_then(|a| a.value);
        eprintln!(
            "{} trigger {i}: sched {} after {:?} ({} polls, max gap {:?}): flip→frozen {:?}, late {}, exit_kind at freeze {at_freeze:?}, root cleared {}",
            which.name(),
            t.object,
            t.stats.watched,
            t.stats.polls,
            t.stats.max_gap,
            t.flip_to_frozen,
            t.fire.late,
            t.root_cleared
        );
        assert_eq!(t.fire.value, expected, "{} trigger {i}", which.name());
        if t.fire.late {
            s.late += 1;
        } else {
            s.lat.push(t.flip_to_frozen);
            s.stops.push(t.freeze.elapsed);
        }
        if at_freeze == Some(expected) {
            s.in_window += 1;
        }
        s.realtime &= t.realtime;
        s.min_rate = s.min_rate.min(t.stats.rate_hz());
        s.max_gap = s.max_gap.max(t.stats.max_gap);
        ignore = Some(t.object);
        g.engine.thaw().expect("thaw");
    }
    g.engine
        .console()
        .wait_contains(m, BOOT_TIMEOUT, "BENCH-DONE")
        .expect("the guest finished its attach loop");
    println!(
        "accel: {} ({})",
        g.engine.accel().accel,
        g.engine.accel().reason
    );
    println!("boot → scheduler attached (ktstr_ok via the lab loader): {boot_to_attached:.2?}");
    report(which, n, &mut s);
}

fn report(which: TestScheduler, n: u32, s: &mut Series) {
    let name = which.name();
    if s.lat.is_empty() {
        println!(
            "{name}: no trigger caught in the window ({} late of {n})",
            s.late
        );
    } else {
        let (lm, lx) = median_max(&mut s.lat);
        let (sm, sx) = median_max(&mut s.stops);
        println!(
            "{name}: trigger → frozen over {} exits caught in the window: median {lm:?}, max {lx:?} \
             (QMP stop part: median {sm:?}, max {sx:?})",
            s.lat.len()
        );
    }
    let beat = s.in_window;
    println!(
        "{name}: the freeze beat the disable worker {beat}/{n} ({:.0}%; exit_kind still the error \
         when read while frozen, not SCX_EXIT_DONE); fired late (already DONE at the poll): {}/{n}",
        100.0 * f64::from(beat) / f64::from(n.max(1)),
        s.late
    );
    println!(
        "{name}: poll ≥ {:.0} Hz ({:.2}x the {POLL_GOAL_HZ:.0} Hz goal), max gap {:?}, real-time poll: {}",
        s.min_rate,
        s.min_rate / POLL_GOAL_HZ,
        s.max_gap,
        s.realtime
    );
}

fn freeze_thaw() {
    let spec = RunSpec::new().workload("ktstr_spin 2 60");
    let Some(mut g) = boot(&spec, 2, 512) else {
        return;
    };
    g.phase(LineMark::START, "workload-start", BOOT_TIMEOUT);
    let mut noop = Vec::new();
    let mut stop = Vec::new();
    let mut cont = Vec::new();
    for _ in 0..CYCLES {
        let t = Instant::now();
        g.engine.run_state().unwrap();
        noop.push(t.elapsed());
        let f = g.engine.freeze(Duration::from_secs(10)).unwrap();
        assert!(f.all_parked());
        stop.push(f.elapsed);
        let t = Instant::now();
        g.engine.thaw().unwrap();
        cont.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (nm, nx) = median_max(&mut noop);
    let (fm, fx) = median_max(&mut stop);
    let (tm, tx) = median_max(&mut cont);
    let ratio = |a: Duration| a.as_secs_f64() / nm.as_secs_f64().max(1e-9);
    println!("{CYCLES} cycles on a running 2-vCPU guest (2 busy loops):");
    println!("  baseline QMP query-status round trip: median {nm:?}, max {nx:?}");
    println!(
        "  freeze (QMP stop, all vCPUs paused):  median {fm:?}, max {fx:?}  ({:.1}x baseline)",
        ratio(fm)
    );
    println!(
        "  thaw (QMP cont):                      median {tm:?}, max {tx:?}  ({:.1}x baseline)",
        ratio(tm)
    );
}

/// The lab attaches the `ok` test scheduler as usual (timed as boot → attached); the
/// workload then detaches it, waits for sched_ext to be disabled, and runs `then`, which
/// attaches schedulers of its own.
fn reattach_spec(then: &str) -> RunSpec {
    RunSpec::new()
        .scheduler(SchedulerChoice::Test {
            which: TestScheduler::Ok,
            params: TestSchedulerParams::default(),
        })
        .workload(format!(
            "sleep 3; rm -f /sys/fs/bpf/ktstr_sched /sys/fs/bpf/ktstr_sched_*; \
             while [ \"$(cat /sys/kernel/sched_ext/state)\" != disabled ]; do usleep 20000; done; {then}"
        ))
}
