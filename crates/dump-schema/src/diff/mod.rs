//! What changed between two failure dumps: [`ReportDiff`] (`schema: "diff"`).
//!
//! [`ReportDiff::between`] compares two reports of any kind (a dual report by its late
//! snapshot); [`ReportDiff::early_late`] compares a dual report's early snapshot with its
//! late one. `Display` (through [`ReportDiff::display_with`]) prints the most significant
//! changes first and counts the rest; `full` prints every change. The JSON form is the
//! types below, serialized with serde; `schema/diff.json` is their JSON Schema
//! ([`crate::SchemaKind::Diff`]). The shape is stable: fields may be added, none is
//! removed or changes meaning.
//!
//! How things are matched:
//! - tasks by pid (idle tasks, pid 0, by pid and comm); a pid whose `task_kva` *and* comm
//!   both differ is a reused pid: the old task is gone and a new one appeared;
//! - DSQs by id and origin (every local DSQ has the same id), their tasks by pid where the
//!   snapshot names the task (`task_kva`), else by address;
//! - CPUs by number; programs by name (and `prog_type`), the n-th of a name with the n-th;
//! - maps by name (the n-th of a name with the n-th); a single value (`.bss`, `.data`,
//!   `.rodata`, struct_ops) member by member, by name (data sections: by variable name);
//!   array maps by key, per-CPU maps by key and CPU; hash-like maps by key bytes, task
//!   storage by owner (`comm[pid]`) where the snapshot names it, so that two runs compare;
//!   arrays element by element, consecutive elements with the same change folded into one
//!   `[a..b]` change; `char` arrays as strings;
//! - event counters at the last sample of each timeline.
//!
//! Texts: a [`ValueChange`] (inside a map) holds its `key`, `path`, `a` and `b` as the
//! rendering writes them inline (guest text already escaped, `char` arrays as quoted
//! strings, enums as `NAME (N)`); a [`FieldChange`], comms, DSQ origins, map and program
//! names hold the report's own text (escaped only when displayed). Both carry
//! `delta = b - a` when the two values are integers.

mod maps;
mod sched;
mod tasks;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::wire::is_default;
use crate::{DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny};

/// `schema` of a [`ReportDiff`].
pub const SCHEMA_DIFF: &str = "diff";

/// What changed from report `a` to report `b` (`schema: "diff"`). Every list holds only
/// what changed; two reports that agree give a diff where [`ReportDiff::is_empty`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportDiff {
    /// Always [`SCHEMA_DIFF`].
    #[schemars(extend("const" = "diff"))]
    pub schema: String,
    /// The report compared from.
    pub a: DiffSide,
    /// The report compared to.
    pub b: DiffSide,
    /// How the two were compared, when it needs saying (different kinds of report, a
    /// snapshot missing), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The scheduler's state and the report's own fields: `exit_kind`, `aborting`,
    /// `exit_info.msg`, `elapsed_ms` (of the last event sample), counts, vCPU registers,
    /// and a degraded report's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report: Vec<FieldChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskDiff>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dsqs: Vec<DsqDiff>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<CpuDiff>,
    /// `prog_runtime_stats` and `aux_prog_runtime_stats`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramDiff>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maps: Vec<MapDiff>,
    /// sched_ext event counters (named as in `EventCounterSample`) at the last sample of
    /// each timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<FieldChange>,
}

/// One side of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffSide {
    /// What the caller calls it: a file name, `early`, `late`.
    pub label: String,
    /// The report's `schema`: `single`, `dual` or `degraded`.
    pub schema: String,
    /// Of a dual report, the snapshot compared: `early` or `late`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Whether a thing is in `b` only, in `a` only, or in both with changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in `b`.
    Appeared,
    /// Only in `a`.
    Gone,
    /// In both, different.
    Changed,
}

/// One field that differs, as the report's own text (not escaped). `a`/`b` absent: the
/// field is absent on that side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldChange {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    /// `b - a` when both are integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i128>,
}

/// A task as a snapshot names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRef {
    /// Absent when the snapshot has no task at this address (only `task_kva` is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The `task_struct` address (0: not known).
    #[serde(default, skip_serializing_if = "is_default")]
    pub task_kva: u64,
}

/// Where a task was in one snapshot: on a CPU (running, or on its runnable list) and/or
/// queued on a DSQ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskPlace {
    /// The CPU it runs on, or whose runnable list holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// It is that CPU's current task.
    #[serde(default, skip_serializing_if = "is_default")]
    pub running: bool,
    /// The DSQ it is queued on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsq: Option<u64>,
    /// That DSQ's origin (`user`, `local cpu N`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsq_origin: Option<String>,
}

/// One task that appeared, is gone, or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TaskDiff {
    pub pid: i32,
    /// Its comm in `b` (in `a` when gone).
    pub comm: String,
    pub change: Change,
    /// Where it was in `a` (absent: nowhere the snapshot records, e.g. sleeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_a: Option<TaskPlace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_b: Option<TaskPlace>,
    /// Its CPU or DSQ differs between two places it had.
    #[serde(default, skip_serializing_if = "is_default")]
    pub moved: bool,
    /// How long it had been runnable without running (`runnable_age_jiffies`), when either
    /// snapshot says; `delta` is the growth of its wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_jiffies: Option<FieldChange>,
    /// In both and none of `nvcsw`, `nivcsw`, `utime`, `stime` changed: it did not run in
    /// between (absent unless the task is in both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran: Option<bool>,
    /// Every other field of its `TaskEnrichment` that changed (`comm`, `sched_class`,
    /// `prio`, `weight`, `nvcsw`, `utime`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// One dispatch queue that appeared, is gone, or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DsqDiff {
    pub id: u64,
    pub origin: String,
    pub change: Change,
    /// `nr`, `seq` and `truncated` when they changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// Tasks queued in `b` and not in `a`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appeared: Vec<TaskRef>,
    /// Tasks queued in `a` and not in `b`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<TaskRef>,
}

/// One CPU whose runqueue changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CpuDiff {
    pub cpu: u32,
    pub change: Change,
    /// The current task changed: `curr_a` → `curr_b` (absent: none).
    #[serde(default, skip_serializing_if = "is_default")]
    pub curr_changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curr_a: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curr_b: Option<TaskRef>,
    /// `nr_running`, `runnable` (the runnable list's length), `flags`, `cpu_released`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// One BPF program whose counters changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProgramDiff {
    pub name: String,
    /// As in `aux_prog_runtime_stats` (empty for the struct_ops programs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prog_type: String,
    pub change: Change,
    /// `cnt` (runs), `nsecs` (run time), `misses`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<FieldChange>,
}

/// One map that appeared, is gone, or whose content changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MapDiff {
    pub name: String,
    /// The map type's name (`array`, `task_storage`, …) in `b` (in `a` when gone).
    pub map_type: String,
    pub change: Change,
    /// In the order of the map: its header fields (`map_type`, `error`, …), then values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueChange>,
    /// Changes beyond the cap ([`MAX_MAP_CHANGES`]) that are counted, not listed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub values_omitted: u64,
}

/// Changes listed per map; the rest are counted in [`MapDiff::values_omitted`].
pub const MAX_MAP_CHANGES: usize = 4096;

/// One value in a map that differs; every text as the rendering writes it (escaped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValueChange {
    /// The key: an array index, a hash key as rendered (or its bytes in hex), a task
    /// storage key as its owner `comm[pid]`; absent for a map's single value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Of a per-CPU map: the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Inside the value: `nr_queued`, `stats.dispatched`, `slots[3]`, `slots[4..9]` (every
    /// element of the run changed the same way), `ctx->pid`; empty for the whole value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Absent: the key (or member) is only in `b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    /// Absent: the key (or member) is only in `a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i128>,
}

impl ReportDiff {
    /// The differences from `a` to `b`, each labelled as the caller says (file names).
    /// A dual report is compared by its late snapshot; a degraded report (no snapshot) only
    /// by what it holds (exit kind, vCPUs, its own fields). `notes` say so.
    pub fn between(
        a: &FailureDumpReportAny,
        a_label: &str,
        b: &FailureDumpReportAny,
        b_label: &str,
    ) -> ReportDiff {
        let (sa, sb) = (side(a, a_label), side(b, b_label));
        let mut d = ReportDiff::empty(sa, sb);
        if a.schema() != b.schema() {
            d.notes.push(format!(
                "different kinds of report: a is {}, b is {}",
                a.schema(),
                b.schema()
            ));
        }
        for (r, which) in [(a, "a"), (b, "b")] {
            match r {
                FailureDumpReportAny::Dual(_) => d
                    .notes
                    .push(format!("{which} is a dual report: its late snapshot compared")),
                FailureDumpReportAny::Degraded(_) => d.notes.push(format!(
                    "{which} is a degraded report (no snapshot): only the exit kind, the vCPUs and the degraded fields compared"
                )),
                FailureDumpReportAny::Single(_) => {}
            }
        }
        use FailureDumpReportAny::Degraded;
        match (a, b, snapshot(a), snapshot(b)) {
            (Degraded(x), Degraded(y), _, _) => sched::degraded_fields(x, y, &mut d.report),
            (Degraded(x), _, _, Some(s)) => sched::degraded_vs_snapshot(x, s, false, &mut d.report),
            (_, Degraded(y), Some(s), _) => sched::degraded_vs_snapshot(y, s, true, &mut d.report),
            (_, _, Some(sa), Some(sb)) => d.compare(sa, sb),
            // Every report is degraded or has a snapshot.
            _ => {}
        }
        d
    }

    /// The dual report's early snapshot compared with its late one, labelled `early` and
    /// `late`; `None` when it has no early snapshot.
    pub fn early_late(d: &DualFailureDumpReport) -> Option<ReportDiff> {
        let early = d.early.as_ref()?;
        let side = |label: &str| DiffSide {
            label: label.to_string(),
            schema: crate::SCHEMA_DUAL.to_string(),
            snapshot: Some(label.to_string()),
        };
        let mut diff = ReportDiff::empty(side("early"), side("late"));
        diff.compare(early, &d.late);
        Some(diff)
    }

    /// The differences between two snapshots, labelled as given.
    pub fn of_snapshots(
        a: &FailureDumpReport,
        a_label: &str,
        b: &FailureDumpReport,
        b_label: &str,
    ) -> ReportDiff {
        let side = |label: &str| DiffSide {
            label: label.to_string(),
            schema: crate::SCHEMA_SINGLE.to_string(),
            snapshot: None,
        };
        let mut diff = ReportDiff::empty(side(a_label), side(b_label));
        diff.compare(a, b);
        diff
    }

    fn empty(a: DiffSide, b: DiffSide) -> ReportDiff {
        ReportDiff {
            schema: SCHEMA_DIFF.to_string(),
            a,
            b,
            notes: Vec::new(),
            report: Vec::new(),
            tasks: Vec::new(),
            dsqs: Vec::new(),
            cpus: Vec::new(),
            programs: Vec::new(),
            maps: Vec::new(),
            events: Vec::new(),
        }
    }

    fn compare(&mut self, a: &FailureDumpReport, b: &FailureDumpReport) {
        sched::report_fields(a, b, &mut self.report);
        let ctx = tasks::Snapshots::new(a, b);
        self.tasks = ctx.tasks();
        self.dsqs = ctx.dsqs();
        self.cpus = ctx.cpus();
        self.programs = sched::programs(a, b);
        self.events = sched::events(a, b);
        self.maps = maps::maps(&ctx, a, b);
    }

    /// Nothing changed (notes aside).
    pub fn is_empty(&self) -> bool {
        self.report.is_empty()
            && self.tasks.is_empty()
            && self.dsqs.is_empty()
            && self.cpus.is_empty()
            && self.programs.is_empty()
            && self.maps.is_empty()
            && self.events.is_empty()
    }

    /// JSON, compact.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// JSON, pretty-printed (2-space indent).
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Reads a diff written by [`ReportDiff::to_json`].
    pub fn from_json(json: &str) -> Result<ReportDiff, serde_json::Error> {
        serde_json::from_str(json)
    }
}

fn side(r: &FailureDumpReportAny, label: &str) -> DiffSide {
    DiffSide {
        label: label.to_string(),
        schema: r.schema().to_string(),
        snapshot: matches!(r, FailureDumpReportAny::Dual(_)).then(|| "late".to_string()),
    }
}

/// The snapshot a report is compared by: itself, a dual report's late one; `None` for a
/// degraded report.
fn snapshot(r: &FailureDumpReportAny) -> Option<&FailureDumpReport> {
    match r {
        FailureDumpReportAny::Single(s) => Some(s),
        FailureDumpReportAny::Dual(d) => Some(&d.late),
        FailureDumpReportAny::Degraded(_) => None,
    }
}

/// Pairs the items of `a` and `b` with equal keys, the n-th of a key in `a` with the n-th of
/// that key in `b`: in `b`'s order `(Some(i), Some(j))` for a pair and `(None, Some(j))` for
/// an item of `b` only, then `(Some(i), None)` for each item of `a` left, in `a`'s order.
fn pair_by_key<T, K: Eq + Hash>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<(Option<usize>, Option<usize>)> {
    let mut queues: HashMap<K, VecDeque<usize>> = HashMap::new();
    for (i, x) in a.iter().enumerate() {
        queues.entry(key(x)).or_default().push_back(i);
    }
    let mut paired = vec![false; a.len()];
    let mut out = Vec::with_capacity(b.len());
    for (j, y) in b.iter().enumerate() {
        let i = queues.get_mut(&key(y)).and_then(|q| q.pop_front());
        if let Some(i) = i {
            paired[i] = true;
        }
        out.push((i, Some(j)));
    }
    out.extend(
        (0..a.len())
            .filter(|&i| !paired[i])
            .map(|i| (Some(i), None)),
    );
    out
}

/// A [`FieldChange`] of two integers, or `None` when they are equal.
fn num_change(name: &str, a: impl Into<i128>, b: impl Into<i128>) -> Option<FieldChange> {
    let (a, b) = (a.into(), b.into());
    (a != b).then(|| FieldChange {
        name: name.to_string(),
        a: Some(a.to_string()),
        b: Some(b.to_string()),
        delta: Some(b - a),
    })
}

/// A [`FieldChange`] of two integers either of which may be absent (a text change then).
fn opt_num_change(name: &str, a: Option<i128>, b: Option<i128>) -> Option<FieldChange> {
    match (a, b) {
        (Some(x), Some(y)) => num_change(name, x, y),
        (x, y) => text_change(name, x.map(|v| v.to_string()), y.map(|v| v.to_string())),
    }
}

/// A [`FieldChange`] of two booleans, or `None` when they are equal.
fn bool_change(name: &str, a: bool, b: bool) -> Option<FieldChange> {
    text_change(name, Some(a.to_string()), Some(b.to_string()))
}

/// A [`FieldChange`] of two texts (either may be absent), or `None` when they are equal.
fn text_change(name: &str, a: Option<String>, b: Option<String>) -> Option<FieldChange> {
    (a != b).then(|| FieldChange {
        name: name.to_string(),
        a,
        b,
        delta: None,
    })
}
