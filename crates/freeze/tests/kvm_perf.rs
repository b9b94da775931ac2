//! Host perf counters of the native KVM engine's vCPU threads, read at the freeze: every
//! vCPU sampled on a host with a hardware PMU, otherwise absent with the failing event and
//! errno named (this project's VMs have no PMU).

mod kvm_common;

use std::time::Duration;

use freeze::Engine;
use kvm_common::*;

#[test]
fn kvm_freeze_reads_vcpu_thread_counters() {
    if !kvm_or_skip() {
        return;
    }
    let (mut engine, _) = counting(Mode::Long, 2);
    let f = engine.freeze(Duration::from_secs(5)).expect("freeze");
    assert!(f.all_parked());
    freeze::testing::check_vcpu_perf(&f.vcpu_perf, 2);
    engine.thaw().expect("thaw");
}
