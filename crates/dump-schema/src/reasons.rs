//! Stable reason strings. Consumers match on these: they are byte-exact and part of the
//! public API.
//!
//! | field | constants |
//! |---|---|
//! | `DegradedFailureDumpReport::reason` (prefix) | [`RENDEZVOUS_TIMED_OUT`], [`RENDEZVOUS_ABORTED`]; see [`degraded_reason`] |
//! | `prog_runtime_stats_unavailable` | [`NO_STRUCT_OPS_PROGRAMS`], [`PROG_ACCESSOR_UNAVAILABLE`] |
//! | `task_enrichments_unavailable` | [`TASK_WALKER_ZERO_TASKS`], [`NO_TASK_WALKER`] |
//! | `scx_walker_unavailable` | [`SCX_ROOT_NULL`], [`SCX_WALKER_NO_STATE`], [`NO_SCX_WALKER_CAPTURE`], [`SCX_WALKER_PARTIAL_PREFIX`] (see [`scx_walker_partial`]) |
//! | `per_node_numa_unavailable` | [`NO_NUMA_WALKER`] |
//! | `sdt_alloc_unavailable` | [`USER_VM_START_UNALIGNED`], [`NO_BSS_MAP`], [`NO_ARENA_MAP`], [`NO_SCX_ALLOCATOR_TYPE`], [`NO_SCX_ALLOCATOR_INSTANCE`], [`SDT_ALLOC_DEADLINE`] |
//! | `DualFailureDumpReport::early_skipped_reason` (prefixes) | [`EARLY_SCAN_PREREQUISITES_PREFIX`], [`EARLY_MAX_AGE_NEVER_CROSSED_PREFIX`], [`EARLY_SCX_TICK_STALL`]; see [`early_max_age_never_crossed`] |
//!
//! Reasons this project adds (not in ktstr 0.50):
//!
//! | where | constant | meaning |
//! |---|---|---|
//! | `RenderedValue::Unsupported::reason` | [`RENDERED_TOO_DEEP`] | written instead of a sub-value nested deeper than a reader accepts |
//! | `RenderedValue::Unsupported::reason` | [`NON_FINITE_FLOAT`] | written instead of a NaN or infinite float |
//! | `RenderedValue::Ptr::deref_skipped_reason` | [`DEREF_CYCLE`] | the pointee is already on the path being rendered |
//! | `FailureDumpMap::error` | [`hash_map_truncated`] | a map capped at a number of entries |

/// Degraded prefix: the freeze rendezvous timed out.
pub const RENDEZVOUS_TIMED_OUT: &str = "vCPU rendezvous timed out before parked acknowledgement";
/// Degraded prefix: the freeze rendezvous was aborted by an external kill.
pub const RENDEZVOUS_ABORTED: &str =
    "vCPU rendezvous aborted by external kill before parked acknowledgement";

/// `{prefix}: {ms}ms; {parked}/{total} vCPUs parked`, the full degraded reason.
pub fn degraded_reason(prefix: &str, elapsed_ms: u64, parked: usize, total: usize) -> String {
    format!("{prefix}: {elapsed_ms}ms; {parked}/{total} vCPUs parked")
}

/// `prog_runtime_stats_unavailable`: no struct_ops program is loaded.
pub const NO_STRUCT_OPS_PROGRAMS: &str = "no struct_ops programs loaded";
/// `prog_runtime_stats_unavailable`: programs cannot be enumerated.
pub const PROG_ACCESSOR_UNAVAILABLE: &str = "prog accessor unavailable";

/// `task_enrichments_unavailable`: the walker ran and found nothing.
pub const TASK_WALKER_ZERO_TASKS: &str = "task walker yielded zero tasks";
/// `task_enrichments_unavailable`: no walker could run.
pub const NO_TASK_WALKER: &str = "no task walker available";

/// `scx_walker_unavailable`: no scheduler attached.
pub const SCX_ROOT_NULL: &str = "scx_root is NULL (no scheduler attached)";
/// `scx_walker_unavailable`: the walker ran but captured nothing.
pub const SCX_WALKER_NO_STATE: &str = "scx walker reached no state";
/// `scx_walker_unavailable`: the walker did not run.
pub const NO_SCX_WALKER_CAPTURE: &str = "no scx walker capture";
/// `scx_walker_unavailable` prefix; the full reason is built by [`scx_walker_partial`].
pub const SCX_WALKER_PARTIAL_PREFIX: &str = "scx walker partial: missing offset groups ";

/// `scx walker partial: missing offset groups [a, b]`.
pub fn scx_walker_partial<S: AsRef<str>>(groups: &[S]) -> String {
    let list: Vec<&str> = groups.iter().map(AsRef::as_ref).collect();
    format!("{SCX_WALKER_PARTIAL_PREFIX}[{}]", list.join(", "))
}

/// `per_node_numa_unavailable`, kept for compatibility with ktstr 0.50 dumps.
pub const NO_NUMA_WALKER: &str = "no NUMA walker (host-side walker pending)";

/// `sdt_alloc_unavailable`: the arena's user address cannot be keyed by its low 32 bits.
pub const USER_VM_START_UNALIGNED: &str =
    "user_vm_start is not 4 GiB-aligned; low-32 keying disabled";
/// `sdt_alloc_unavailable`: the scheduler has no usable `.bss`.
pub const NO_BSS_MAP: &str = "no scheduler .bss map (or .bss has no program BTF)";
/// `sdt_alloc_unavailable`: no arena map was captured.
pub const NO_ARENA_MAP: &str = "no arena map captured (kern_vm_start unavailable)";
/// `sdt_alloc_unavailable`: the scheduler's BTF lacks `struct scx_allocator`.
pub const NO_SCX_ALLOCATOR_TYPE: &str = "scheduler BTF does not declare struct scx_allocator";
/// `sdt_alloc_unavailable`: `.bss` holds no `scx_allocator`.
pub const NO_SCX_ALLOCATOR_INSTANCE: &str = "no scx_allocator instance in .bss";
/// `sdt_alloc_unavailable`: the dump deadline passed first.
pub const SDT_ALLOC_DEADLINE: &str = "dump deadline exceeded before sdt_alloc pre-pass could run";

/// `early_skipped_reason` prefix: `scan prerequisites unavailable: …`.
pub const EARLY_SCAN_PREREQUISITES_PREFIX: &str = "scan prerequisites unavailable: ";
/// `early_skipped_reason` prefix: see [`early_max_age_never_crossed`].
pub const EARLY_MAX_AGE_NEVER_CROSSED_PREFIX: &str = "max_age never crossed threshold";
/// `early_skipped_reason`: the stall is in `scx_tick`, with no per-task data.
pub const EARLY_SCX_TICK_STALL: &str = "scx_tick stall — no per-task runnable_at data";

/// `max_age never crossed threshold (peak=…j, threshold=…j)`.
pub fn early_max_age_never_crossed(peak_jiffies: u64, threshold_jiffies: u64) -> String {
    format!(
        "{EARLY_MAX_AGE_NEVER_CROSSED_PREFIX} (peak={peak_jiffies}j, threshold={threshold_jiffies}j)"
    )
}

/// Written as an `unsupported` value's reason in place of a sub-value nested deeper than
/// [`crate::MAX_JSON_DEPTH`] JSON levels.
pub const RENDERED_TOO_DEEP: &str = "nested too deep to write";
/// Written as an `unsupported` value's reason in place of a NaN or infinite float, which JSON
/// cannot carry.
pub const NON_FINITE_FLOAT: &str = "non-finite float";

/// `RenderedValue::Ptr::deref_skipped_reason` when the pointee was already rendered on the
/// way here (a cycle). `Display` prints such pointers as `0x… [cycle]`; any reason starting
/// with this word does.
pub const DEREF_CYCLE: &str = "cycle";

/// `FailureDumpMap::error` when a map was capped: `hash map truncated at N entries`.
pub fn hash_map_truncated(cap: usize) -> String {
    format!("hash map truncated at {cap} entries")
}

/// Values of `DegradedFailureDumpReport::bss_latch_state`.
pub mod bss_latch {
    pub const TRIGGERED: &str = "triggered";
    pub const NOT_TRIGGERED: &str = "not_triggered";
    pub const OUT_OF_BOUNDS: &str = "out_of_bounds";
    pub const NOT_RESOLVED: &str = "not_resolved";
    /// All four values.
    pub const ALL: &[&str] = &[TRIGGERED, NOT_TRIGGERED, OUT_OF_BOUNDS, NOT_RESOLVED];
}

/// Values of `TaskEnrichment::sched_class`.
pub mod sched_class {
    pub const FAIR: &str = "fair";
    pub const RT: &str = "rt";
    pub const DL: &str = "dl";
    pub const IDLE: &str = "idle";
    pub const STOP: &str = "stop";
    pub const EXT: &str = "ext";
}

/// Values of `ScxSchedState::source`.
pub mod sched_source {
    pub const LIVE: &str = "live";
    pub const BSS_SNAPSHOT: &str = "bss_snapshot";
}
