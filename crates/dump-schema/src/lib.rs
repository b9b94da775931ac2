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
//!   duplicate keys an error, an explicit `null` accepted only for `Option` fields.
//! - Types are plain structs with public fields and `Default`:
//!   `FailureDumpReport { maps, ..Default::default() }`.
//!
//! # Depth and untrusted input
//! Reading refuses documents nested deeper than 128 levels (serde_json's limit) with
//! [`Error::TooDeep`]. Values built in code may be deeper: see [`rendered`](RenderedValue) for
//! what is safe at any depth.
//!
//! # Stable reason strings
//! In [`reasons`], one constant each.

mod any;
mod display;
pub mod json_schema;
mod maps;
pub mod reasons;
mod rendered;
mod rendered_serde;
mod report;
mod sections;
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
    CgroupPsiStat, DsqState, EventCounterSample, GuestSetupFailureContext, PerCpuTimeStats,
    PerNodeNumaStats, ProbeBssCounters, ProgRuntimeStats, RqScxState, SOFTIRQ_NAMES, ScxSchedState,
    ScxStaticRange, ScxStaticSnapshot, SdtAllocEntry, SdtAllocatorSnapshot, TaskEnrichment,
    VcpuPerfSample, VcpuRegSnapshot,
};
pub use wire::{hex, parse_hex};
