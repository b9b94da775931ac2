//! Host perf counters of the native KVM engine's vCPU threads, read at the freeze: every
//! vCPU sampled on a host with a hardware PMU, otherwise absent with the failing event and
//! errno named (this project's VMs have no PMU).

mod kvm_common;

use std::time::Duration;

use freeze::Engine;
use freeze::perf::VcpuPerf;
use kvm_common::*;

#[test]
fn kvm_freeze_reads_vcpu_thread_counters() {
    if !kvm_or_skip() {
        return;
    }
    let (mut engine, _) = counting(Mode::Long, 2);
    let f = engine.freeze(Duration::from_secs(5)).expect("freeze");
    assert!(f.all_parked());
    match &f.vcpu_perf {
        VcpuPerf::Sampled(s) => {
            eprintln!("vcpu_perf: {s:?}");
            assert_eq!(s.len(), 2);
            for x in s {
                let x = x.as_ref().expect("each vCPU group read");
                assert!(x.cycles > 0 && x.instructions > 0, "{x:?}");
                assert!(x.task_clock_ns.unwrap() > 0);
                assert!(x.time_enabled_ns >= x.time_running_ns);
            }
        }
        VcpuPerf::Absent(why) => {
            eprintln!("vcpu_perf absent: {why}");
            assert!(
                why.starts_with("vCPU thread counters: perf_event_open(cycles) on thread "),
                "{why}"
            );
            assert!(why.contains("(os error "), "{why}");
        }
    }
    engine.thaw().expect("thaw");
}
