//! 1,000 freeze/thaw cycles: no lost vCPU, no leaked thread or file descriptor.
//!
//! Alone in its test binary so that no other test's threads or fds disturb the counts.

mod kvm_common;

use std::time::Duration;

use freeze::Engine;
use kvm_common::*;

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).expect(path).count()
}

fn threads() -> usize {
    count_dir("/proc/self/task")
}

/// Threads the engine named `kvm-vcpu-N`. (KVM itself may add a worker thread to the
/// process, `kvm-nx-lpage-recovery`, which the totals below include.)
fn vcpu_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("kvm-vcpu-"))
        .count()
}

fn fds() -> usize {
    count_dir("/proc/self/fd")
}

#[test]
fn thousand_cycles_no_lost_vcpu_no_leak() {
    if !kvm_or_skip() {
        return;
    }
    const VCPUS: usize = 4;
    const CYCLES: usize = 1000;
    let (threads0, fds0) = (threads(), fds());
    let (mut engine, layout) = counting(Mode::Long, VCPUS);
    let (_, loop_range) = layout.code_bytes();
    let all: Vec<usize> = (0..VCPUS).collect();
    let (threads1, fds1) = (threads(), fds());
    assert_eq!(vcpu_threads(), VCPUS, "one thread per vCPU");

    let mut worst = Duration::ZERO;
    for cycle in 0..CYCLES {
        let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
        assert!(
            outcome.all_parked(),
            "cycle {cycle}: {}/{VCPUS} parked",
            outcome.parked()
        );
        worst = worst.max(outcome.elapsed);
        for (i, regs) in outcome.vcpus.iter().enumerate() {
            let rip = regs.unwrap().rip;
            assert!(
                loop_range.contains(&rip),
                "cycle {cycle}: vCPU {i} RIP {rip:#x}"
            );
        }
        let frozen = counters(&engine, &layout, VCPUS);
        engine.thaw().expect("thaw");
        // Every vCPU really runs again before the next freeze.
        wait_counters_above(&engine, &layout, &all, &frozen);
        if cycle % 100 == 0 {
            assert_eq!((threads(), fds()), (threads1, fds1), "cycle {cycle}: leak");
        }
    }
    assert_eq!(
        (threads(), fds()),
        (threads1, fds1),
        "after {CYCLES} cycles"
    );
    assert_eq!(engine.exit_status(), None);
    eprintln!("{CYCLES} cycles with {VCPUS} vCPUs; slowest freeze {worst:?}");
    drop(engine);
    assert_eq!(
        (threads(), fds()),
        (threads0, fds0),
        "threads or fds left after the engine was dropped"
    );
}
