//! Per-section types of a [`crate::FailureDumpReport`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RenderedValue;
use crate::wire::is_default;

/// Registers of one parked vCPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VcpuRegSnapshot {
    pub instruction_pointer: u64,
    pub stack_pointer: u64,
    /// CR3 on x86_64, TTBR1_EL1 on aarch64.
    pub page_table_root: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_page_table_root: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcr_el1: Option<u64>,
}

/// One `struct scx_allocator` instance of the scheduler and its live allocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SdtAllocatorSnapshot {
    pub allocator_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<SdtAllocEntry>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub truncated: bool,
    pub skipped_subtrees: u32,
    pub elem_size: u64,
    pub target_type_id: u32,
    /// Why payloads are not rendered with their type, when they are not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload_type_reason: String,
}

/// One live sdt allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SdtAllocEntry {
    pub idx: i32,
    pub genn: i32,
    /// Low 32 bits of the user address.
    pub user_addr: u64,
    pub payload: RenderedValue,
}

/// Static arena ranges declared by the scheduler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScxStaticSnapshot {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<ScxStaticRange>,
    pub skipped: u32,
}

impl ScxStaticSnapshot {
    /// No ranges and nothing skipped: the section is not written.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.skipped == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScxStaticRange {
    pub instance_name: String,
    pub start_low32: u32,
    pub size: u64,
    pub capacity: u64,
}

/// Run-time statistics of one BPF program: sums over CPUs of `bpf_prog->stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProgRuntimeStats {
    pub name: String,
    pub cnt: u64,
    pub nsecs: u64,
    pub misses: u64,
    /// Extension: the program type (`tracing`, `syscall`, …), written only in
    /// `aux_prog_runtime_stats`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prog_type: String,
}

/// CPU time of one CPU (`kernel_cpustat`, softirq and irq counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PerCpuTimeStats {
    pub cpu: u32,
    pub cpustat_user_ns: u64,
    pub cpustat_nice_ns: u64,
    pub cpustat_system_ns: u64,
    pub cpustat_softirq_ns: u64,
    pub cpustat_irq_ns: u64,
    pub cpustat_idle_ns: u64,
    pub cpustat_iowait_ns: u64,
    pub cpustat_steal_ns: u64,
    /// In the order of [`SOFTIRQ_NAMES`]; exactly 10 on the wire.
    pub softirqs: [u64; 10],
    pub irqs_sum: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iowait_sleeptime_ns: Option<u64>,
}

/// Names of [`PerCpuTimeStats::softirqs`], in order.
pub const SOFTIRQ_NAMES: [&str; 10] = [
    "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU",
];

/// PSI of one cgroup (raw kernel values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CgroupPsiStat {
    pub cgroup_kva: u64,
    pub total_ns: u64,
    pub avg10_raw: u64,
    pub serial_nr: u64,
}

/// NUMA event counters of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PerNodeNumaStats {
    pub node: u32,
    pub numa_hit: u64,
    pub numa_miss: u64,
    pub numa_foreign: u64,
    pub numa_interleave_hit: u64,
    pub numa_local: u64,
    pub numa_other: u64,
}

/// One task with what helps explain a stall.
///
/// The fields from `real_parent_comm` on are always written but default when absent on read,
/// so dumps with or without them read either way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskEnrichment {
    pub pid: i32,
    pub tgid: i32,
    pub comm: String,
    pub weight: u32,
    pub prio: i32,
    pub static_prio: i32,
    pub normal_prio: i32,
    pub rt_priority: u32,
    pub pi_boosted_out_of_scx: bool,
    pub nvcsw: u64,
    pub nivcsw: u64,
    pub utime: u64,
    pub stime: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub group_leader_pid: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub real_parent_pid: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pgid: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub sid: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub nr_threads: i32,
    #[serde(default)]
    pub real_parent_comm: String,
    /// See [`crate::reasons::sched_class`].
    #[serde(default)]
    pub sched_class: String,
    #[serde(default)]
    pub lock_slowpath_match: String,
    #[serde(default)]
    pub core_cookie: u64,
    #[serde(default)]
    pub signal_nvcsw: u64,
    #[serde(default)]
    pub signal_nivcsw: u64,
    #[serde(default)]
    pub signal_utime: u64,
    #[serde(default)]
    pub signal_stime: u64,
    /// Extension: the `task_struct` address, so that DSQ lists, runnable lists and
    /// pointers resolve to tasks (0: not recorded).
    #[serde(default, skip_serializing_if = "is_default")]
    pub task_kva: u64,
    /// Extension: how long the task had been runnable without running, in jiffies
    /// (`jiffies - scx.runnable_at` at the capture), for a task on a CPU's runnable list
    /// (absent otherwise: running, sleeping, or not recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runnable_age_jiffies: Option<u64>,
}

/// Extension: why and how the scheduler exited, from the kernel's `scx_exit_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExitInfo {
    /// `enum scx_exit_kind` value.
    pub kind: u32,
    /// The kind's kernel name (`SCX_EXIT_ERROR_STALL`), or `unknown (N)`.
    pub kind_name: String,
    /// How it was obtained: `watchpoint` (the second stop, before teardown), `poll`,
    /// `vmcore`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// `exit_info->reason` (`runnable task stall`, `scx_bpf_error`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `exit_info->msg`: the kernel's or the scheduler's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// Who wrote the exit kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<ExitTrigger>,
    /// `exit_info->bt`, symbolized.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backtrace: Vec<BacktraceFrame>,
    /// `exit_info->dump`: the kernel's debug dump (`scx_dump_state`), with the
    /// scheduler's own `ops.dump*` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_dump: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kernel_dump_truncated: bool,
    /// What could not be read, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Extension: the CPU (and task) whose write set the exit kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExitTrigger {
    pub cpu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
}

/// Extension: one backtrace frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BacktraceFrame {
    pub addr: u64,
    /// The symbol (kernel symbol, or a BPF program as the kernel names it:
    /// `bpf_prog_<tag>_<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// sched_ext event counters summed over CPUs at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventCounterSample {
    pub elapsed_ms: u64,
    pub select_cpu_fallback: i64,
    pub dispatch_local_dsq_offline: i64,
    pub dispatch_keep_last: i64,
    pub enq_skip_exiting: i64,
    pub enq_skip_migration_disabled: i64,
    pub reenq_immed: i64,
    pub reenq_local_repeat: i64,
    pub refill_slice_dfl: i64,
    pub bypass_duration: i64,
    pub bypass_dispatch: i64,
    pub bypass_activate: i64,
    pub insert_not_owned: i64,
    pub sub_bypass_dispatch: i64,
}

impl EventCounterSample {
    /// `(name, value)` of every counter, in wire order (without `elapsed_ms`).
    pub fn counters(&self) -> [(&'static str, i64); 13] {
        [
            ("select_cpu_fallback", self.select_cpu_fallback),
            (
                "dispatch_local_dsq_offline",
                self.dispatch_local_dsq_offline,
            ),
            ("dispatch_keep_last", self.dispatch_keep_last),
            ("enq_skip_exiting", self.enq_skip_exiting),
            (
                "enq_skip_migration_disabled",
                self.enq_skip_migration_disabled,
            ),
            ("reenq_immed", self.reenq_immed),
            ("reenq_local_repeat", self.reenq_local_repeat),
            ("refill_slice_dfl", self.refill_slice_dfl),
            ("bypass_duration", self.bypass_duration),
            ("bypass_dispatch", self.bypass_dispatch),
            ("bypass_activate", self.bypass_activate),
            ("insert_not_owned", self.insert_not_owned),
            ("sub_bypass_dispatch", self.sub_bypass_dispatch),
        ]
    }
}

/// sched_ext state of one run queue (`rq->scx`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RqScxState {
    pub cpu: u32,
    pub nr_running: u32,
    pub flags: u32,
    pub cpu_released: bool,
    pub ops_qseq: u64,
    /// Named `pnt_seq` in kernels before 6.19.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kick_sync: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub nr_immed: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub rq_clock: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub curr_pid: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub curr_comm: String,
    /// Always written, even when empty.
    pub runnable_task_kvas: Vec<u64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub runnable_truncated: bool,
}

/// One dispatch queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DsqState {
    pub id: u64,
    /// `local cpu N`, `bypass cpu N`, `global node N` or `user`.
    pub origin: String,
    pub nr: u32,
    pub seq: u32,
    pub task_kvas: Vec<u64>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub truncated: bool,
}

/// The root `struct scx_sched`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScxSchedState {
    pub aborting: bool,
    pub bypass_depth: i32,
    pub exit_kind: u32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub watchdog_timeout: u64,
    /// `live` or `bss_snapshot` (see [`crate::reasons::sched_source`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub sched_kva: u64,
}

/// Host perf counters of one vCPU thread at the freeze.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VcpuPerfSample {
    pub cycles: u64,
    pub instructions: u64,
    pub cache_misses: u64,
    pub branch_misses: u64,
    pub time_enabled_ns: u64,
    pub time_running_ns: u64,
    /// Always written; `null` when unavailable.
    #[serde(default)]
    pub task_clock_ns: Option<u64>,
}

/// Counters of the probe program's `.bss`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeBssCounters {
    pub probe_count: u64,
    pub kprobe_returns: u64,
    pub meta_miss: u64,
    pub ringbuf_drops: u64,
    pub timeline_count: u64,
    pub timeline_drops: u64,
    pub pi_count: u64,
    pub pi_orphan_fexits: u64,
    pub pi_class_change_count: u64,
    pub pi_drops: u64,
    pub lock_contend_count: u64,
    pub lock_contend_drops: u64,
    pub preempt_disable_count: u64,
    pub preempt_enable_count: u64,
    pub trigger_count: u64,
}

/// What is known when the guest failed before the scheduler ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GuestSetupFailureContext {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub init_stage: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub final_guest_phase: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub guest_exit_code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheduler_attach_outcome: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub console_tail: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub init_log_tail: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheduler_log_tail: String,
}
