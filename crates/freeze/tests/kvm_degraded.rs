//! The timeout path: a vCPU whose thread is held outside `KVM_RUN` cannot park; the freeze
//! returns after the timeout with that vCPU missing and says how long it waited.

mod kvm_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::kvm::PioHandler;
use kvm_common::*;

const HOLD_PORT: u16 = 0x511;

/// Holds the vCPU thread that writes to `HOLD_PORT` until released.
#[derive(Default)]
struct Hold {
    released: Mutex<bool>,
    cv: Condvar,
    entered: AtomicBool,
}

impl Hold {
    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.cv.notify_all();
    }

    fn wait_entered(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.entered.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "no vCPU reached the hold port");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl PioHandler for Hold {
    fn pio_in(&self, _: usize, _: u16, _: &mut [u8]) -> bool {
        false
    }

    fn pio_out(&self, _vcpu: usize, port: u16, _: &[u8]) -> bool {
        if port != HOLD_PORT {
            return false;
        }
        self.entered.store(true, Ordering::SeqCst);
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.cv.wait(released).unwrap();
        }
        true
    }
}

fn held_vcpu_times_out(vcpus: usize, held: usize) {
    if !kvm_or_skip() {
        return;
    }
    let layout = Layout::new(Mode::Long);
    let (_, loop_range) = layout.code_bytes();
    let hold = Arc::new(Hold::default());
    let builder = builder(vcpus).pio_handler(hold.clone());
    let mut engine = start_counting(builder, layout, vcpus, |i| {
        if i == held { HOLD_PORT } else { IDLE_PORT }
    });
    let others: Vec<usize> = (0..vcpus).filter(|&i| i != held).collect();
    hold.wait_entered(Duration::from_secs(20));
    wait_counters_above(&engine, &layout, &others, &vec![0; vcpus]);

    let timeout = Duration::from_millis(200);
    let outcome = engine
        .freeze(timeout)
        .expect("freeze returns an outcome on timeout");
    assert!(engine.is_frozen());
    assert!(
        outcome.elapsed >= timeout,
        "returned before the timeout: {:?}",
        outcome.elapsed
    );
    assert_eq!(outcome.parked(), vcpus - 1);
    assert!(
        outcome.vcpus[held].is_none(),
        "the held vCPU cannot have parked"
    );
    for &i in &others {
        let rip = outcome.vcpus[i].expect("parked").rip;
        assert!(loop_range.contains(&rip), "vCPU {i} RIP {rip:#x}");
    }
    // The parked vCPUs are stopped; the held one never reached its loop.
    let frozen = counters(&engine, &layout, vcpus);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(frozen, counters(&engine, &layout, vcpus));
    assert_eq!(frozen[held], 0);

    // Release the vCPU and thaw: everyone runs, and the next freeze parks all of them.
    hold.release();
    engine.thaw().expect("thaw");
    let all: Vec<usize> = (0..vcpus).collect();
    wait_counters_above(&engine, &layout, &all, &frozen);
    let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
    assert!(
        outcome.all_parked(),
        "{}/{vcpus} parked after release",
        outcome.parked()
    );
    assert!(loop_range.contains(&outcome.vcpus[held].unwrap().rip));
    engine.thaw().expect("thaw");
}

#[test]
fn one_of_four_vcpus_held() {
    held_vcpu_times_out(4, 2);
}

#[test]
fn the_only_vcpu_held() {
    held_vcpu_times_out(1, 0);
}

/// A vCPU released after the timeout but before thaw parks late; thaw still resumes it.
#[test]
fn late_parker_is_resumed_by_thaw() {
    if !kvm_or_skip() {
        return;
    }
    let layout = Layout::new(Mode::Long);
    let hold = Arc::new(Hold::default());
    let mut engine = start_counting(builder(2).pio_handler(hold.clone()), layout, 2, |i| {
        if i == 1 { HOLD_PORT } else { IDLE_PORT }
    });
    hold.wait_entered(Duration::from_secs(20));
    let outcome = engine.freeze(Duration::from_millis(100)).unwrap();
    assert_eq!(outcome.parked(), 1);
    hold.release();
    // vCPU 1 now finishes its OUT, sees the freeze still on, and parks without running.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(counter(&engine, &layout, 1), 0);
    engine.thaw().expect("thaw resumes the late parker too");
    wait_counters_above(&engine, &layout, &[0, 1], &[0, 0]);
}
