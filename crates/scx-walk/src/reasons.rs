//! Reason strings this crate adds to the wire format's table (one constant each;
//! consumers may match on them).
//!
//! | where | reason |
//! |---|---|
//! | `per_node_numa_unavailable` | [`NUMA_NO_NODES`] · [`NUMA_FAILED_PREFIX`]`{error}` |
//! | `sdt_alloc_unavailable` | [`SDT_BTF_UNAVAILABLE`] (plus the wire format's own) |
//! | `scx_walker_unavailable` | [`OPS_DISABLED`] (kernels without `scx_root`) |
//! | capture log | [`NO_VCPU_PERF`] |
//! | `capture_notes` (and the log) | [`NO_STACK_SCAN_PREFIX`]`{error}` · [`OPS_QSEQ_NOT_IN_KERNEL`] · [`ABORTING_NOT_IN_KERNEL`] · [`EVENTS_NOT_IN_KERNEL`] |
//!
//! `probe_counters` is always absent: this project runs no in-guest probe program.
//! `RqScxState.ops_qseq` is 0 on kernels without `scx_rq.ops_qseq` (7.x keep it per
//! task); see [`crate::rq::OPS_QSEQ_ABSENT`].

/// `node_data[]` has no node (a kernel built without NUMA has none to report).
pub const NUMA_NO_NODES: &str = "NUMA walker found no node in node_data";
/// The NUMA walk failed; the error follows.
pub const NUMA_FAILED_PREFIX: &str = "NUMA walker failed: ";
/// The scheduler declares `struct scx_allocator`, but its BTF object could not be loaded
/// from guest memory, so the allocator's layout is unknown.
pub const SDT_BTF_UNAVAILABLE: &str =
    "scheduler declares struct scx_allocator; its BTF could not be loaded";
/// Logged by every capture: the walkers read guest memory only, so the report's
/// `vcpu_perf_at_freeze` stays empty unless the caller adds the engine's host counters
/// (`freeze::FreezeOutcome::vcpu_perf`; `ktstr_cli::apply_vcpu_perf` replaces this line
/// with the outcome).
pub const NO_VCPU_PERF: &str =
    "vcpu_perf_at_freeze absent: host perf counters of vCPU threads are not sampled";
/// Logged when kernel stacks cannot be scanned (`lock_slowpath_match` stays empty for
/// every task); the error follows.
pub const NO_STACK_SCAN_PREFIX: &str = "lock_slowpath_match empty: kernel stacks not scanned: ";
/// Noted when the kernel's `scx_rq` has no `ops_qseq` (7.x keep it per task): every
/// `RqScxState.ops_qseq` is then [`crate::rq::OPS_QSEQ_ABSENT`], not a reading.
pub const OPS_QSEQ_NOT_IN_KERNEL: &str = "ops_qseq: not in this kernel's scx_rq; written as 0";
/// `scx_walker_unavailable` on a kernel without `scx_root` (the 6.12 globals layout,
/// [`crate::root`]) when `scx_ops_enable_state_var` says no scheduler is enabled: the
/// counterpart of the wire format's `scx_root is NULL (no scheduler attached)`.
pub const OPS_DISABLED: &str =
    "scx_ops_enable_state_var is SCX_OPS_DISABLED (no scheduler attached)";
/// Noted when the kernel keeps no `aborting` flag (the 6.12 globals layout):
/// `ScxSchedState.aborting` is then written as false, not read.
pub const ABORTING_NOT_IN_KERNEL: &str = "scx_sched_state.aborting: this kernel has no aborting flag (no struct scx_sched); written as false";
/// Noted when the kernel has no sched_ext event counters (`struct scx_event_stats`, 6.15
/// and later): `event_counter_timeline` stays empty.
pub const EVENTS_NOT_IN_KERNEL: &str = "event_counter_timeline: this kernel has no sched_ext event counters (no struct scx_event_stats); empty";
