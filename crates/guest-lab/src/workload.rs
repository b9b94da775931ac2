//! Named workloads: shell helpers of the guest (`lab/helpers.sh`, sourced by the
//! workload's shell) with a typed way to ask for them. [`RunSpec::workload`] still takes
//! any shell command line; `ktstr_spin N SECS` and `ktstr_victim SECS` are the others.

use crate::RunSpec;

/// The mixed workload real schedulers are captured under (`ktstr_mixed`): CPU hogs,
/// sleepers, a pipe pair and a CPU-limited cgroup, each with its own comm
/// ([`MixedWorkload::COMMS`]) so that a test finds its tasks in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedWorkload {
    /// How long every part runs.
    pub secs: u32,
    /// Busy loops (`ktstr-hog`); `None`: one per CPU.
    pub hogs: Option<u32>,
    /// Tasks waking every 10 ms (`ktstr-sleeper`).
    pub sleepers: u32,
    /// `cpu.max` of the cgroup [`MixedWorkload::CGROUP`], in percent of one CPU; a busy
    /// loop (`ktstr-limited`) runs in it.
    pub limit_percent: u32,
}

impl MixedWorkload {
    /// The comms of its tasks: hogs, sleepers, the two ends of the pipe pair, the
    /// CPU-limited loop.
    pub const COMMS: [&'static str; 5] = [
        "ktstr-hog",
        "ktstr-sleeper",
        "ktstr-ping",
        "ktstr-pong",
        "ktstr-limited",
    ];
    /// The CPU-limited cgroup.
    pub const CGROUP: &'static str = "/sys/fs/cgroup/ktstr-limited";

    /// `secs` seconds: a hog per CPU, 2 sleepers, the pipe pair, 20 % of a CPU for the
    /// cgroup.
    pub fn new(secs: u32) -> Self {
        MixedWorkload {
            secs,
            hogs: None,
            sleepers: 2,
            limit_percent: 20,
        }
    }

    /// The guest command line (`ktstr_mixed SECS HOGS SLEEPERS LIMIT_PCT`; HOGS 0 means one
    /// per CPU). It exits 0, or 1 when the cgroup could not be set up.
    pub fn command(&self) -> String {
        format!(
            "ktstr_mixed {} {} {} {}",
            self.secs,
            self.hogs.unwrap_or(0),
            self.sleepers,
            self.limit_percent.clamp(1, 100 * 1024)
        )
    }

    /// The `cpu.max` line the cgroup gets.
    pub fn cpu_max(&self) -> String {
        format!("{} 100000", self.limit_percent.clamp(1, 100 * 1024) * 1000)
    }
}

impl RunSpec {
    /// Run the mixed workload (see [`MixedWorkload`]).
    pub fn mixed_workload(self, w: MixedWorkload) -> Self {
        self.workload(w.command())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let w = MixedWorkload::new(30);
        assert_eq!(w.command(), "ktstr_mixed 30 0 2 20");
        assert_eq!(w.cpu_max(), "20000 100000");
        let w = MixedWorkload {
            hogs: Some(3),
            sleepers: 0,
            limit_percent: 0,
            ..MixedWorkload::new(5)
        };
        assert_eq!(w.command(), "ktstr_mixed 5 3 0 1");
        let spec = RunSpec::new().mixed_workload(w);
        assert_eq!(spec.workload.as_deref(), Some("ktstr_mixed 5 3 0 1"));
    }
}
