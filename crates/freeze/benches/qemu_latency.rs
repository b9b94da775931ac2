//! QEMU engine latencies on the real guest lab, printed (never asserted):
//!
//! - trigger → frozen over 20 real error exits: one guest attaches the `error` test
//!   scheduler 20 times in a row; the host watch freezes on each flip, thaws, waits for
//!   the next;
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
use scx_walk::exit_kind::{SCX_EXIT_ERROR_BPF, SCX_EXIT_NONE};

const TRIGGERS: u32 = 20;
const CYCLES: usize = 50;

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
        triggers();
    }
    if run("freeze") {
        freeze_thaw();
    }
    if run("watchpoint") {
        watchpoint::watchpoint_vs_poll();
    }
}

/// The guest loads `error` (fails 500 ms after attaching) `TRIGGERS` times, each once
/// the previous one is fully disabled.
fn trigger_workload() -> String {
    attach_loop(TRIGGERS)
}

/// The guest loads `error` (fails 500 ms after attaching) `n` times, each once the
/// previous one is fully disabled, then prints `BENCH-DONE`. The loader pins the
/// scheduler's other links at `PIN_<program>`: they go too, or the next pin fails.
fn attach_loop(n: u32) -> String {
    format!(
        "i=1; while [ $i -le {n} ]; do \
           rm -f /sys/fs/bpf/ktstr_bench /sys/fs/bpf/ktstr_bench_*; \
           ktstr-loader /sched/error.bpf.o --pin /sys/fs/bpf/ktstr_bench --set after_ms=500 \
             >/tmp/bench.log 2>&1 || {{ echo BENCH-LOAD-FAILED $i; cat /tmp/bench.log; }}; \
           while [ \"$(cat /sys/kernel/sched_ext/state)\" != disabled ]; do usleep 20000; done; \
           i=$((i+1)); \
         done; echo BENCH-DONE"
    )
}

fn triggers() {
    // The first attach goes through the lab's normal path (timed as boot → attached),
    // the rest through the workload.
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::Test {
            which: TestScheduler::Ok,
            params: TestSchedulerParams::default(),
        })
        .workload(format!(
            "sleep 3; rm -f /sys/fs/bpf/ktstr_sched /sys/fs/bpf/ktstr_sched_*; \
             while [ \"$(cat /sys/kernel/sched_ext/state)\" != disabled ]; do usleep 20000; done; {}",
            trigger_workload()
        ));
    let Some(mut g) = boot(&spec, 2, 1024) else {
        return;
    };
    let off = sched_offsets(&g.btf());
    let (_, m) = g.phase(LineMark::START, "scheduler-start", BOOT_TIMEOUT);
    // Hold the guest while the host decodes kallsyms, so no exit happens unwatched.
    g.engine
        .freeze(Duration::from_secs(10))
        .expect("freeze for setup");
    let kernel = g.kernel_view();
    g.engine.thaw().expect("thaw after setup");
    let (_, m) = g.phase(m, "scheduler-attached", BOOT_TIMEOUT);
    let boot_to_attached = g.launched_at.elapsed();
    let (polled, mut rule) = error_exit_watch(&kernel, &off);
    let mut lat = Vec::new();
    let mut stops = Vec::new();
    let mut late = 0;
    let mut realtime = true;
    let mut min_rate = f64::MAX;
    let mut max_gap = Duration::ZERO;
    let mut ignore = None;
    for i in 0..TRIGGERS {
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
        eprintln!(
            "trigger {i}: sched {} after {:?} ({} polls, max gap {:?}): flip→frozen {:?}, late {}, root cleared {}",
            t.object,
            t.stats.watched,
            t.stats.polls,
            t.stats.max_gap,
            t.flip_to_frozen,
            t.fire.late,
            t.root_cleared
        );
        assert_eq!(t.fire.value, SCX_EXIT_ERROR_BPF, "trigger {i}");
        if t.fire.late {
            late += 1;
        } else {
            lat.push(t.flip_to_frozen);
            stops.push(t.freeze.elapsed);
        }
        realtime &= t.realtime;
        min_rate = min_rate.min(t.stats.rate_hz());
        max_gap = max_gap.max(t.stats.max_gap);
        ignore = Some(t.object);
        g.engine.thaw().expect("thaw");
    }
    g.engine
        .console()
        .wait_contains(m, BOOT_TIMEOUT, "BENCH-DONE")
        .expect("the guest finished its attach loop");
    let (lm, lx) = median_max(&mut lat);
    let (sm, sx) = median_max(&mut stops);
    println!(
        "accel: {} ({})",
        g.engine.accel().accel,
        g.engine.accel().reason
    );
    println!("boot → scheduler attached (ktstr_ok via the lab loader): {boot_to_attached:.2?}");
    println!(
        "trigger → frozen over {} error exits caught in the window: median {lm:?}, max {lx:?} \
         (QMP stop part: median {sm:?}, max {sx:?}); late: {late}/{TRIGGERS}; \
         poll ≥ {min_rate:.0} Hz, max gap {max_gap:?}, real-time poll: {realtime}",
        lat.len()
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
