//! Checks the test suites share (behind the `test-util` feature: for tests, not part of
//! the API).

use crate::perf::VcpuPerf;

/// The engine's own counters at a freeze of a guest with `vcpus` vCPUs: on a host with a
/// PMU every vCPU's group was read with plausible counts and clocks; otherwise they are
/// absent with the failing event and errno named.
#[track_caller]
pub fn check_vcpu_perf(perf: &VcpuPerf, vcpus: usize) {
    match perf {
        VcpuPerf::Sampled(s) => {
            eprintln!("vcpu_perf at the freeze: {s:?}");
            assert_eq!(s.len(), vcpus);
            for x in s {
                let x = x.as_ref().expect("every vCPU group read");
                assert!(x.time_enabled_ns >= x.time_running_ns && x.time_enabled_ns > 0);
                assert!(x.cycles > 0 && x.instructions > 0, "{x:?}");
                assert!(x.task_clock_ns.unwrap() > 0);
            }
        }
        VcpuPerf::Absent(why) => {
            eprintln!("vcpu_perf at the freeze absent: {why}");
            assert!(
                why.starts_with("vCPU thread counters: perf_event_open(cycles) on thread "),
                "{why}"
            );
            assert!(why.contains("(os error "), "{why}");
        }
    }
}
