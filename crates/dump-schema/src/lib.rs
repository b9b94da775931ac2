//! Wire types of sched_ext failure dumps.
//!
//! The JSON contract is specified in `shared/spec/wire-format.md` (compatible with
//! ktstr 0.50 dumps). External tools depend on this crate alone.
//!
//! # Reading and writing
//! - [`FailureDumpReportAny::from_json`] reads any of the three reports, dispatching on the
//!   top-level `schema` key (`single`, `dual`, `degraded`; no fallback). Its [`Error`] names
//!   the line and column, and for a type mismatch the JSON path of the offending field.
//! - Every type is `Serialize`/`Deserialize` with exactly the wire rules: keys in the order of
//!   the spec, optional fields dropped when empty/false/zero, `null` written for
//!   `VcpuPerfSample::task_clock_ns` and `RenderedValue::Enum::variant`, unknown keys ignored,
//!   duplicate keys an error, an explicit `null` accepted only for `Option` fields. (Unknown
//!   keys are skipped unread, so a duplicated *unknown* key is skipped twice rather than
//!   reported; when `schema` is not the first key, every duplicate is reported.)
//! - Types are plain structs with public fields and `Default`:
//!   `FailureDumpReport { maps, ..Default::default() }`.
//!
//! ```
//! use dump_schema::{
//!     Error, FailureDumpMap, FailureDumpReport, FailureDumpReportAny, RenderedMember,
//!     RenderedValue, map_type,
//! };
//!
//! let bss = RenderedValue::named_struct(
//!     ".bss",
//!     vec![RenderedMember::new("nr_queued", RenderedValue::Uint { bits: 64, value: 3 })],
//! );
//! let report = FailureDumpReport {
//!     maps: vec![FailureDumpMap {
//!         name: "sched.bss".into(),
//!         map_type: map_type::ARRAY,
//!         value_size: 8,
//!         max_entries: 1,
//!         value: Some(bss),
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! };
//! let json = report.to_json().unwrap();
//! assert_eq!(FailureDumpReportAny::from_json(&json).unwrap(), report.clone().into());
//! assert_eq!(
//!     report.to_string(),
//!     "map sched.bss (type=array, value_size=8, max_entries=1)\n  .bss{nr_queued=3}"
//! );
//!
//! let err = FailureDumpReportAny::from_json(r#"{"schema":"single","maps":[{"name":7}]}"#);
//! assert!(matches!(err, Err(Error::Invalid { ref path, .. }) if path == "maps[0].name"));
//! ```
//!
//! # Depth and untrusted input
//! Reading refuses documents nested deeper than 128 levels (serde_json's limit) with
//! [`Error::TooDeep`]. Values built in code may be deeper: see [`rendered`](RenderedValue) for
//! what is safe at any depth.
//!
//! # Stable reason strings
//! In [`reasons`], one constant each.
//!
//! # Display
//! `Display` of the three reports and of [`RenderedValue`] follows
//! `shared/spec/display-format.md` (the layout ktstr 0.50 prints). Where this crate goes
//! further, to help a reader:
//! - `char[]` arrays print as the C string they hold (`comm="kworker/0:1"`); other arrays drop a
//!   trailing run of 4 or more zero elements as `…+N zero` and say `…+N not rendered` when the
//!   map held more elements than were rendered. In block form, runs of zero elements collapse to
//!   `[i..=j] zero`.
//! - A named enumerator stays visible at value 0 (`state=SCX_TASK_NONE (0)`): only unnamed
//!   zeros are hidden. A struct whose members are all zero prints as `Type{}`; an anonymous
//!   struct's block header is `<anon>:`.
//! - A pointer whose `deref_skipped_reason` starts with [`reasons::DEREF_CYCLE`] prints
//!   ` [cycle]`; any other reason ` [chase: reason]`.
//! - Array maps collapse runs of consecutive all-zero entries to `keys a-b: zero`.
//! - The arena line is followed by `declared_pages`, `kern_vm_start` and `user_vm_start`.
//! - Per-CPU tables label rows by CPU ranges (`0-1`), each row a group of identical CPUs.
//! - After the counts: `scheduler: <active_obj_name> (N active maps)`, `cgroup_psi: N cgroups
//!   captured`, and under `task_enrichments` a table of the first 32 tasks (pid, tgid, comm,
//!   class, prio, context switches, times).
//! - Under `scx_walker:` the `scx_sched` state, every run queue with something running
//!   (`nr_running`, `curr=pid (comm)`, runnable count, `+` when truncated), and every non-empty
//!   DSQ (`id`, origin, `nr`, `seq`).
//! - `probe_counters:` with its non-zero counters on one line.
//! - `vcpu_regs` shows `tcr_el1` when set; a partially filled placeholder still prints the
//!   `*_unavailable` reasons that differ from the `capture unavailable` one.
//! - Sparklines are at most 64 columns wide (longer timelines are bucketed by maximum); a
//!   constant counter draws a flat `▄` line.
//! - Values nested deeper than [`MAX_DISPLAY_DEPTH`] print `…`.

mod any;
mod display;
pub mod json_schema;
mod maps;
pub mod reasons;
mod rendered;
mod rendered_serde;
mod report;
mod sections;
#[cfg(feature = "validate")]
pub mod validate;
mod wire;

pub use any::{Error, FailureDumpReportAny};
pub use json_schema::SchemaKind;
pub use maps::{
    ArenaPage, ArenaSnapshot, FailureDumpArrayEntry, FailureDumpEntry, FailureDumpFdArray,
    FailureDumpMap, FailureDumpPercpuEntry, FailureDumpPercpuHashEntry, FailureDumpRingbuf,
    FailureDumpStackTrace, FailureDumpStackTraceEntry, map_type,
};
pub use rendered::{MAX_DISPLAY_DEPTH, MAX_JSON_DEPTH, RenderedMember, RenderedValue};
pub use report::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, KNOWN_SCHEMAS,
    SCHEMA_DEGRADED, SCHEMA_DUAL, SCHEMA_SINGLE,
};
pub use sections::{
    BacktraceFrame, CgroupPsiStat, DsqState, EventCounterSample, ExitInfo, ExitTrigger,
    GuestSetupFailureContext, PerCpuTimeStats, PerNodeNumaStats, ProbeBssCounters,
    ProgRuntimeStats, RqScxState, SOFTIRQ_NAMES, ScxSchedState, ScxStaticRange, ScxStaticSnapshot,
    SdtAllocEntry, SdtAllocatorSnapshot, TaskEnrichment, VcpuPerfSample, VcpuRegSnapshot,
};
pub use wire::{hex, parse_hex};
