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
//! # Comparing reports
//! [`ReportDiff`] (module [`diff`], `schema: "diff"`, JSON Schema [`SchemaKind::Diff`]) says
//! what changed between two reports or between a dual report's snapshots: tasks (by pid:
//! appeared, gone, moved, waiting longer, whether they ran), DSQs (their tasks by name),
//! CPUs, programs' counters, map values (by map name and key, data sections by variable
//! name, arrays element by element with runs folded) and event counters. Its `Display`
//! (beyond `display-format.md`, which has no diff) puts the most significant first and
//! counts the rest so that it fits a screen; `full` lists everything.
//!
//! `TaskEnrichment::runnable_age_jiffies` is an extension of this project: how long a task
//! on a runnable list had waited at the capture (`jiffies - scx.runnable_at`).
//!
//! # Stable reason strings
//! In [`reasons`], one constant each.
//!
//! # Display
//! `Display` of the three reports and of [`RenderedValue`] follows
//! `shared/spec/display-format.md`; [`DisplayOptions`] (through `display_with`, e.g.
//! [`FailureDumpReport::display_with`]) choose the width (default 120 columns, as the spec
//! says) and `full` (nothing folded or hidden, for `ktstr render --full`); `Display` is
//! `display_with` with the defaults.
//!
//! "Values that fit", as this crate does them (the spec leaves the details open):
//! - A `char[]` prints as one string, quoted and escaped, whatever its length (it is never
//!   split into one element per line): its bytes up to the last non-NUL one, a NUL before that
//!   shown as `\x00` (`"sh\x00ker/0:1"`), so that nothing the buffer holds is hidden. Only
//!   elements of kind `char` make a string: btf-walk gives that kind to the BTF's `char` (and
//!   CHAR-encoded integers); `signed char`, `unsigned char` and `u8` arrays stay numbers.
//!   An array holding fewer elements than it declares says `…+N not rendered`, strings too.
//! - Runs of two or more equal elements fold (zeros included): inline as `value ×N`
//!   (`[812, 77, 3, 0 ×4093]`, `[5 ×8, 0 ×24]`), in block form as one `[a..b]=value` line
//!   (bounds inclusive: `[3..4095]=0`). An array of zeros only is `[all N zero]`. Array maps
//!   fold runs of consecutive keys with equal values into `keys a-b: <value>` (`keys a-b:
//!   zero` for zeros).
//! - A data section (a struct whose BTF name starts with `.`: `.bss`, `.data`, `.rodata`,
//!   `.kconfig`, …) in block form lays its scalar members out in aligned columns, row by row in
//!   declaration order, as many per line as fit in the width, each column as wide as its widest
//!   `name=value`; a cell wider than half the line gets a line of its own. Its other members
//!   (structs, arrays, strings) follow, one block each.
//! - Per-CPU values: CPUs with equal values are grouped (`all CPUs: …` when all agree). Structs
//!   that differ print `common:` once — every leaf equal on all CPUs, nested structs flattened
//!   to dotted paths (`layer.weight=100`), arrays and pointers compared whole; inline when it
//!   fits, else in aligned columns — then a `per-cpu:` table of the leaves that differ, one
//!   row per group of identical CPUs, split into several tables (each repeating the `cpus`
//!   column) when wider than the line; unreadable CPUs follow as `cpu N: <unreadable>`.
//!   Structs of more than 1,024 leaves print whole per group.
//! - Every string from the guest or the document is escaped by one function wherever it is
//!   printed (map names and errors, type, member and enumerator names, comms, program and
//!   allocator names, reasons, log tails line by line): `\n`, `\t`, `\r`, `\\`, other ASCII
//!   controls and bytes that are not UTF-8 as `\xNN` (always two hex digits), Unicode controls
//!   and invisible format characters (bidirectional overrides, zero-width) as `\u{N}`; printable
//!   Unicode as is; `"` as `\"` inside quoted strings. A comm ending in `\n` cannot break a
//!   table row and no ESC, BEL or CR reaches the terminal.
//! - `full` shows every array element and struct member (zeros too), every array-map key and
//!   every CPU on its own, every task of `task_enrichments` (otherwise the first 32) and every
//!   run queue and DSQ (otherwise those holding something).
//!
//! Also beyond the spec (kept from the layout ktstr 0.50 prints):
//! - A named enumerator stays visible at value 0 (`state=SCX_TASK_NONE (0)`): only unnamed
//!   zeros are hidden. A struct whose members are all zero prints as `Type{}`; an anonymous
//!   struct's block header is `<anon>:`.
//! - A pointer whose `deref_skipped_reason` starts with [`reasons::DEREF_CYCLE`] prints
//!   ` [cycle]`; any other reason ` [chase: reason]`.
//! - The arena line is followed by `declared_pages`, `kern_vm_start` and `user_vm_start`.
//! - After the counts: `scheduler: <active_obj_name> (N active maps)`, `cgroup_psi: N cgroups
//!   captured`, and under `task_enrichments` a table of the tasks (pid, tgid, comm, class,
//!   prio, context switches, times).
//! - Under `scx_walker:` the `scx_sched` state, every run queue with something running
//!   (`nr_running`, `curr=pid (comm)`, runnable count, `+` when truncated), and every non-empty
//!   DSQ (`id`, origin, `nr`, `seq`).
//! - `probe_counters:` with its non-zero counters on one line.
//! - `vcpu_regs` shows `tcr_el1` when set; a partially filled placeholder still prints the
//!   `*_unavailable` reasons that differ from the `capture unavailable` one.
//! - Sparklines are at most 64 columns wide (longer timelines are bucketed by maximum); a
//!   constant counter draws a flat `▄` line.
//! - Values nested deeper than [`MAX_DISPLAY_DEPTH`] print `…`.
//!
//! # HTML page
//! [`html::page`] makes one self-contained HTML document of any report (`ktstr render
//! --html FILE`), beyond what `shared/spec/display-format.md` asks: the text rendering's
//! summary; a picture of who runs and who waits (a card per busy CPU with its current task
//! and runnable list, each DSQ holding tasks with its queue in order, tasks as `comm[pid]`,
//! each with its `runnable_age_jiffies`); the event-counter timeline as an inline SVG
//! chart (one point per sample, early and late snapshots marked); sortable task and program
//! tables; every map collapsible and searchable, with the text rendering's folding. Nothing
//! is fetched (the page's own Content-Security-Policy forbids it), no framework: the
//! styles and a small script are embedded. Guest strings are escaped as in the text, then
//! HTML-escaped. Caps keep the page small whatever the dump holds (see [`html`]).
//!
//! Not done here yet (display-format.md's "Summary", "Runqueue states", tasks by name,
//! storage-map keys as their owner): they need the report to carry more (issue 14).

mod any;
pub mod diff;
mod display;
pub mod html;
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
pub use diff::{ReportDiff, SCHEMA_DIFF};
pub use display::{DisplayOptions, DisplayWith};
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
