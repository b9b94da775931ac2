//! Freeze and thaw of tiny guests on the native KVM engine: counters stop while frozen,
//! every vCPU's registers are captured inside its loop, counters move again after thaw.

mod kvm_common;

use std::time::{Duration, Instant};

use freeze::Engine;
use kvm_common::*;

fn freeze_thaw_roundtrip(mode: Mode, vcpus: usize) {
    let (mut engine, layout) = counting(mode, vcpus);
    let (_, loop_range) = layout.code_bytes();
    assert_eq!(engine.vcpu_count(), vcpus);
    let all: Vec<usize> = (0..vcpus).collect();

    for round in 0..3 {
        let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
        assert!(engine.is_frozen());
        assert!(
            outcome.all_parked(),
            "{mode:?} round {round}: only {}/{vcpus} parked",
            outcome.parked()
        );
        for (i, regs) in outcome.vcpus.iter().enumerate() {
            let regs = regs.expect("parked vCPU has registers");
            assert!(
                loop_range.contains(&regs.rip),
                "{mode:?} round {round}: vCPU {i} RIP {:#x} outside the loop {loop_range:x?}",
                regs.rip
            );
            assert_eq!(regs.rbx, layout.counter_addr(i), "vCPU {i} RBX");
            match mode {
                Mode::Long => {
                    assert_ne!(regs.efer & (1 << 10), 0, "vCPU {i} not in long mode");
                    assert_eq!(regs.cr3, freeze::kvm::layout::PML4_START);
                }
                Mode::Real => assert_eq!(regs.cr0 & 1, 0, "vCPU {i} not in real mode"),
            }
        }
        let frozen = counters(&engine, &layout, vcpus);
        std::thread::sleep(Duration::from_millis(50));
        let later = counters(&engine, &layout, vcpus);
        assert_eq!(
            frozen, later,
            "{mode:?} on {vcpus} vCPUs, round {round}: counters moved while frozen"
        );

        engine.thaw().expect("thaw");
        assert!(!engine.is_frozen());
        wait_counters_above(&engine, &layout, &all, &frozen);
    }
    assert_eq!(engine.exit_status(), None);
}

#[test]
fn long_and_real_mode_on_1_2_and_4_vcpus() {
    if !kvm_or_skip() {
        return;
    }
    for mode in [Mode::Long, Mode::Real] {
        for vcpus in [1, 2, 4] {
            freeze_thaw_roundtrip(mode, vcpus);
        }
    }
}

/// kvmclock runs with host time while the guest runs, but not across a freeze: it is saved
/// before the kick and restored before the vCPUs resume. Checked against the host's clock
/// read around each step (not against a bound, so a slow or loaded host changes nothing):
/// while running it advances at least as much as the host time between the two reads;
/// across a freeze at most the host time the guest was not frozen. The `kvm_freeze` bench
/// prints the figures.
#[test]
fn kvmclock_does_not_count_the_freeze() {
    if !kvm_or_skip() {
        return;
    }
    let (mut engine, _) = counting(Mode::Long, 2);
    let pause = Duration::from_millis(400);
    let ns = |d: Duration| d.as_nanos() as u64;

    let c0 = engine.kvmclock_ns().expect("KVM_GET_CLOCK");
    let after_c0 = Instant::now();
    std::thread::sleep(pause);
    let before_c1 = Instant::now();
    let c1 = engine.kvmclock_ns().unwrap();
    let ran = before_c1 - after_c0;
    assert!(
        c1 - c0 + CLOCK_SLACK_NS >= ns(ran),
        "kvmclock advanced {} ns while the host clock moved {ran:?} between the reads",
        c1 - c0
    );

    let before_c2 = Instant::now();
    let c2 = engine.kvmclock_ns().unwrap();
    let outcome = engine.freeze(Duration::from_secs(5)).unwrap();
    // kvmclock was saved inside freeze(), before this; it is restored inside thaw(),
    // after `frozen_until`.
    let frozen_from = Instant::now();
    assert!(outcome.all_parked());
    std::thread::sleep(pause);
    let frozen_until = Instant::now();
    engine.thaw().unwrap();
    let c3 = engine.kvmclock_ns().unwrap();
    let after_c3 = Instant::now();
    let outside = (frozen_from - before_c2) + (after_c3 - frozen_until);
    eprintln!(
        "kvmclock: +{} ns over {ran:?} running; +{} ns across a {:?} freeze with {outside:?} outside it",
        c1 - c0,
        c3.saturating_sub(c2),
        frozen_until - frozen_from
    );
    assert!(c3 >= c2, "kvmclock went backwards");
    assert!(
        c3 - c2 <= ns(outside) + CLOCK_SLACK_NS,
        "kvmclock advanced {} ns across a freeze of {:?}, more than the {outside:?} the guest \
         was not frozen: it counted the freeze",
        c3 - c2,
        frozen_until - frozen_from
    );
}

/// What kvmclock and `Instant` (both from the host's timekeeping) may disagree by over the
/// second this test measures: far below the 400 ms a clock counting the freeze would add.
const CLOCK_SLACK_NS: u64 = 1_000_000;

/// vCPUs that exit to the VMM all the time (an `OUT` to COM1 per iteration): kicks land
/// during exit handling, and a pending I/O is completed before registers are read. Freeze
/// and thaw back to back, many times: every vCPU parks each time, and nothing is written
/// to the console while frozen.
#[test]
fn freeze_while_vcpus_do_port_io() {
    if !kvm_or_skip() {
        return;
    }
    use freeze::CpuRegs;
    use freeze::kvm::{CpuMode, PageTables, VcpuStart};
    use vm_memory::{Bytes, GuestAddress};
    const VCPUS: usize = 3;
    let b = builder(VCPUS);
    // mov dx, 0x3f8 ; l: mov al, 'x' ; out dx, al ; jmp l
    let code = [0x66, 0xba, 0xf8, 0x03, 0xb0, b'x', 0xee, 0xeb, 0xfb];
    let base = 0x10_0000u64;
    b.guest_ram()
        .write_slice(&code, GuestAddress(base))
        .unwrap();
    let start = VcpuStart {
        mode: CpuMode::Long(PageTables::Identity4G),
        regs: CpuRegs {
            rip: base,
            rflags: 2,
            ..Default::default()
        },
    };
    let mut engine = b.start(&[start; VCPUS]).unwrap();
    assert!(engine.console().wait_for("xxxx", Duration::from_secs(20)));
    // The output may come from one vCPU only so far: wait until every vCPU got past its
    // first instruction.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = engine.freeze(Duration::from_secs(10)).expect("freeze");
        engine.thaw().expect("thaw");
        if outcome
            .vcpus
            .iter()
            .all(|r| r.is_some_and(|r| r.rip != base))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "vCPUs did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    for round in 0..300 {
        let outcome = engine.freeze(Duration::from_secs(10)).expect("freeze");
        assert!(
            outcome.all_parked(),
            "round {round}: {}/{VCPUS}",
            outcome.parked()
        );
        for (i, r) in outcome.vcpus.iter().enumerate() {
            let rip = r.unwrap().rip;
            assert!(
                (base + 4..base + 9).contains(&rip),
                "round {round}: vCPU {i} RIP {rip:#x}"
            );
        }
        if round % 50 == 0 {
            let total = engine.console().total();
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(engine.console().total(), total, "output while frozen");
        }
        engine.thaw().expect("thaw");
    }
    let total = engine.console().total();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while engine.console().total() == total {
        assert!(std::time::Instant::now() < deadline, "no output after thaw");
        std::thread::sleep(Duration::from_millis(1));
    }
}
