//! The three reports: [`FailureDumpReport`], [`DualFailureDumpReport`],
//! [`DegradedFailureDumpReport`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::maps::FailureDumpMap;
use crate::sections::*;
use crate::wire::is_default;

/// `schema` of a [`FailureDumpReport`].
pub const SCHEMA_SINGLE: &str = "single";
/// `schema` of a [`DualFailureDumpReport`].
pub const SCHEMA_DUAL: &str = "dual";
/// `schema` of a [`DegradedFailureDumpReport`].
pub const SCHEMA_DEGRADED: &str = "degraded";
/// Every known `schema` value.
pub const KNOWN_SCHEMAS: &[&str] = &[SCHEMA_SINGLE, SCHEMA_DUAL, SCHEMA_DEGRADED];

/// A failure dump taken with every vCPU parked (`schema: "single"`).
///
/// Build one with `FailureDumpReport { maps, ..Default::default() }`; `default()` has
/// `schema = "single"`. Each `*_unavailable` field says why its section is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpReport {
    /// Always [`SCHEMA_SINGLE`].
    #[schemars(extend("const" = "single"))]
    pub schema: String,
    pub maps: Vec<FailureDumpMap>,
    /// Index = vCPU id; `None` where the vCPU's registers are unavailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpu_regs: Vec<Option<VcpuRegSnapshot>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_obj_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_map_kvas: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sdt_allocations: Vec<SdtAllocatorSnapshot>,
    #[serde(default, skip_serializing_if = "ScxStaticSnapshot::is_empty")]
    pub scx_static_ranges: ScxStaticSnapshot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdt_alloc_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prog_runtime_stats: Vec<ProgRuntimeStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog_runtime_stats_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_cpu_time: Vec<PerCpuTimeStats>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroup_psi: Vec<CgroupPsiStat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_node_numa: Vec<PerNodeNumaStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node_numa_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub task_enrichments: Vec<TaskEnrichment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_enrichments_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_counter_timeline: Vec<EventCounterSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rq_scx_states: Vec<RqScxState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dsq_states: Vec<DsqState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scx_sched_state: Option<ScxSchedState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scx_walker_unavailable: Option<String>,
    /// Index = vCPU id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpu_perf_at_freeze: Vec<Option<VcpuPerfSample>>,
    /// Set when the dump deadline was crossed, in µs since the capture started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_truncated_at_us: Option<u64>,
    /// Maps skipped because of the deadline.
    #[serde(default, skip_serializing_if = "is_default")]
    pub maps_truncated: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_counters: Option<ProbeBssCounters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_setup_failure: Option<GuestSetupFailureContext>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub is_placeholder: bool,
    /// Extension: why the scheduler exited (the kernel's `scx_exit_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_info: Option<ExitInfo>,
    /// Extension: every part of the capture that was dropped, capped or doubtful, in
    /// words with counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capture_notes: Vec<String>,
    /// Extension: the scheduler's programs that are not struct_ops, each with its
    /// `prog_type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aux_prog_runtime_stats: Vec<ProgRuntimeStats>,
}

impl Default for FailureDumpReport {
    fn default() -> Self {
        Self {
            schema: SCHEMA_SINGLE.to_string(),
            maps: Vec::new(),
            vcpu_regs: Vec::new(),
            active_obj_name: None,
            active_map_kvas: Vec::new(),
            sdt_allocations: Vec::new(),
            scx_static_ranges: ScxStaticSnapshot::default(),
            sdt_alloc_unavailable: None,
            prog_runtime_stats: Vec::new(),
            prog_runtime_stats_unavailable: None,
            per_cpu_time: Vec::new(),
            cgroup_psi: Vec::new(),
            per_node_numa: Vec::new(),
            per_node_numa_unavailable: None,
            task_enrichments: Vec::new(),
            task_enrichments_unavailable: None,
            event_counter_timeline: Vec::new(),
            rq_scx_states: Vec::new(),
            dsq_states: Vec::new(),
            scx_sched_state: None,
            scx_walker_unavailable: None,
            vcpu_perf_at_freeze: Vec::new(),
            dump_truncated_at_us: None,
            maps_truncated: 0,
            probe_counters: None,
            guest_setup_failure: None,
            is_placeholder: false,
            exit_info: None,
            capture_notes: Vec::new(),
            aux_prog_runtime_stats: Vec::new(),
        }
    }
}

impl FailureDumpReport {
    /// A report standing in for a capture that could not happen: the default report with
    /// `is_placeholder = true` and `reason` in all five `*_unavailable` fields.
    pub fn placeholder(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            sdt_alloc_unavailable: Some(reason.clone()),
            prog_runtime_stats_unavailable: Some(reason.clone()),
            per_node_numa_unavailable: Some(reason.clone()),
            task_enrichments_unavailable: Some(reason.clone()),
            scx_walker_unavailable: Some(reason),
            is_placeholder: true,
            ..Self::default()
        }
    }

    /// JSON, compact. Fails only for a `RenderedValue` that `serde_json` cannot write, which
    /// this crate's serializers rule out; the `Result` is kept for safety.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// JSON, pretty-printed (2-space indent).
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

/// Two snapshots of one failure (`schema: "dual"`): an optional early one taken half-way to the
/// stall threshold, and the late one taken at the error exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DualFailureDumpReport {
    /// Always [`SCHEMA_DUAL`].
    #[schemars(extend("const" = "dual"))]
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early: Option<FailureDumpReport>,
    pub late: FailureDumpReport,
    #[serde(default, skip_serializing_if = "is_default")]
    pub early_max_age_jiffies: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub early_threshold_jiffies: u64,
    /// Why there is no early snapshot (see [`crate::reasons`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_skipped_reason: Option<String>,
}

impl Default for DualFailureDumpReport {
    fn default() -> Self {
        Self {
            schema: SCHEMA_DUAL.to_string(),
            early: None,
            late: FailureDumpReport::default(),
            early_max_age_jiffies: 0,
            early_threshold_jiffies: 0,
            early_skipped_reason: None,
        }
    }
}

impl DualFailureDumpReport {
    /// A dual report around `late`, with no early snapshot yet.
    pub fn new(late: FailureDumpReport) -> Self {
        Self {
            late,
            ..Self::default()
        }
    }
}

/// Written when the freeze was triggered but not every vCPU parked (`schema: "degraded"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DegradedFailureDumpReport {
    /// Always [`SCHEMA_DEGRADED`].
    #[schemars(extend("const" = "degraded"))]
    pub schema: String,
    /// Starts with a stable prefix (see [`crate::reasons::degraded_reason`]).
    pub reason: String,
    /// Index = vCPU id; `None` = that vCPU never parked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpu_regs: Vec<Option<VcpuRegSnapshot>>,
    pub watchpoint_hit: bool,
    /// One of [`crate::reasons::bss_latch::ALL`].
    #[schemars(extend("enum" = ["triggered", "not_triggered", "out_of_bounds", "not_resolved"]))]
    pub bss_latch_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_kind: Option<u32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub elapsed_ms: u64,
}

impl Default for DegradedFailureDumpReport {
    fn default() -> Self {
        Self {
            schema: SCHEMA_DEGRADED.to_string(),
            reason: String::new(),
            vcpu_regs: Vec::new(),
            watchpoint_hit: false,
            bss_latch_state: crate::reasons::bss_latch::NOT_RESOLVED.to_string(),
            exit_kind: None,
            elapsed_ms: 0,
        }
    }
}
