//! Which parts of a report a rendering prints: everything, folded and capped (the default
//! view), or only what a [`Filter`] selects (`ktstr render --section/--map/--task`).

use std::cell::Cell;

use super::DisplayOptions;
use crate::{FailureDumpReport, FailureDumpReportAny, TaskEnrichment};

/// Parts of a report to print instead of the whole default view (`ktstr render --section
/// NAME --map NAME --task PID|COMM`, each repeatable). The empty filter (the default) prints
/// every section, with long parts capped; a non-empty one prints the union of what its
/// names select, uncapped (still folded unless [`DisplayOptions::full`]).
///
/// - `sections`: names of [`Filter::SECTIONS`].
/// - `maps`: maps whose name contains one of these (`bss` selects every `.bss` map).
/// - `tasks`: a pid, or an exact comm; each matching task prints as one block with every
///   field, where it runs or waits, the storage-map entries it owns and the map values
///   holding its address.
///
/// ```
/// use dump_schema::{DisplayOptions, FailureDumpReport, Filter};
///
/// let filter = Filter { sections: vec!["programs".into()], ..Filter::default() };
/// let report = FailureDumpReport::default();
/// assert_eq!(
///     report.display_filtered(&DisplayOptions::default(), &filter).to_string(),
///     "(nothing selected)"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub sections: Vec<String>,
    pub maps: Vec<String>,
    pub tasks: Vec<String>,
}

/// The sections of a rendering, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Summary,
    Setup,
    Runqueues,
    Exit,
    Tasks,
    Maps,
    VcpuRegs,
    Sdt,
    Programs,
    Scheduler,
    CpuTime,
    Cgroups,
    Numa,
    Timeline,
    VcpuPerf,
    ProbeCounters,
    Notes,
}

const ALL: [(Section, &str, &str); 17] = [
    (
        Section::Summary,
        "summary",
        "what failed, who waits, counts",
    ),
    (
        Section::Setup,
        "setup",
        "guest setup failure, placeholder reason",
    ),
    (
        Section::Runqueues,
        "runqueues",
        "scx_sched, each CPU with its tasks, each DSQ with its tasks",
    ),
    (
        Section::Exit,
        "exit",
        "exit info: message, backtrace, the kernel's debug dump",
    ),
    (Section::Tasks, "tasks", "the task table"),
    (Section::Maps, "maps", "every BPF map"),
    (Section::VcpuRegs, "vcpu_regs", "vCPU registers"),
    (Section::Sdt, "sdt", "sdt allocations, scx_static ranges"),
    (
        Section::Programs,
        "programs",
        "run-time statistics of the programs",
    ),
    (
        Section::Scheduler,
        "scheduler",
        "the scheduler object and its active maps",
    ),
    (Section::CpuTime, "cpu_time", "per-CPU time"),
    (Section::Cgroups, "cgroups", "cgroup PSI"),
    (Section::Numa, "numa", "per-node NUMA counters"),
    (
        Section::Timeline,
        "timeline",
        "event counters over time (every sample when selected)",
    ),
    (
        Section::VcpuPerf,
        "vcpu_perf",
        "host perf counters of the vCPUs",
    ),
    (Section::ProbeCounters, "probe_counters", "probe counters"),
    (
        Section::Notes,
        "notes",
        "capture notes, unavailable parts, truncation",
    ),
];

impl Section {
    pub(crate) fn name(self) -> &'static str {
        ALL.iter()
            .find(|(s, _, _)| *s == self)
            .map_or("", |(_, n, _)| n)
    }
}

impl Filter {
    /// `(name, what it holds)` of every section, in display order.
    pub const SECTIONS: [(&'static str, &'static str); 17] = {
        let mut out = [("", ""); 17];
        let mut i = 0;
        while i < ALL.len() {
            out[i] = (ALL[i].1, ALL[i].2);
            i += 1;
        }
        out
    };

    /// Nothing selected: the default view.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty() && self.maps.is_empty() && self.tasks.is_empty()
    }

    /// Checks every name against `report`: an unknown section, or a map or task that no
    /// snapshot of the report has, is an error that says so (and lists what there is).
    pub fn check(&self, report: &FailureDumpReportAny) -> Result<(), String> {
        for s in &self.sections {
            if !ALL.iter().any(|(_, n, _)| n == s) {
                let names: Vec<&str> = ALL.iter().map(|(_, n, _)| *n).collect();
                return Err(format!(
                    "unknown section {s:?}: expected one of {}",
                    names.join(", ")
                ));
            }
        }
        let snapshots: Vec<&FailureDumpReport> = match report {
            FailureDumpReportAny::Single(r) => vec![r],
            FailureDumpReportAny::Dual(d) => d.early.iter().chain([&d.late]).collect(),
            FailureDumpReportAny::Degraded(_) => Vec::new(),
        };
        for name in &self.maps {
            let found = snapshots
                .iter()
                .any(|r| r.maps.iter().any(|m| m.name.contains(name.as_str())));
            if !found {
                let mut names: Vec<&str> = snapshots
                    .iter()
                    .flat_map(|r| r.maps.iter().map(|m| m.name.as_str()))
                    .collect();
                names.sort_unstable();
                names.dedup();
                return Err(format!(
                    "no map named like {name:?}: the maps are {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
        for t in &self.tasks {
            let found = snapshots
                .iter()
                .any(|r| r.task_enrichments.iter().any(|e| task_matches(t, e)));
            if !found {
                return Err(format!(
                    "no task with pid or comm {t:?} in the report's {} tasks",
                    snapshots
                        .iter()
                        .map(|r| r.task_enrichments.len())
                        .max()
                        .unwrap_or(0)
                ));
            }
        }
        Ok(())
    }
}

/// Whether `--task want` selects `t`: a number is a pid, anything else an exact comm.
pub(crate) fn task_matches(want: &str, t: &TaskEnrichment) -> bool {
    match want.parse::<i32>() {
        Ok(pid) => t.pid == pid,
        Err(_) => t.comm == want,
    }
}

/// What one rendering prints: the options and the filter; and whether the default view cut
/// anything short (its last line then says so).
#[derive(Clone, Copy)]
pub(crate) struct View<'f> {
    pub(crate) opts: DisplayOptions,
    pub(crate) filter: &'f Filter,
    pub(crate) cut: &'f Cell<bool>,
}

impl View<'_> {
    /// Records that something was cut short (or left to a filter).
    pub(crate) fn note_cut(&self) {
        self.cut.set(true);
    }

    /// The default view: every section, long parts capped (unless `full`).
    pub(crate) fn is_default(&self) -> bool {
        self.filter.is_empty()
    }

    /// Whether long parts are cut short, each saying which filter shows the rest.
    pub(crate) fn caps(&self) -> bool {
        self.is_default() && !self.opts.full
    }

    /// Whether `s` prints: in the default view, or when `--section` names it.
    pub(crate) fn shows(&self, s: Section) -> bool {
        self.is_default() || self.selected(s)
    }

    /// Whether `--section` names `s`.
    pub(crate) fn selected(&self, s: Section) -> bool {
        self.filter.sections.iter().any(|n| n == s.name())
    }

    /// Whether map `name` prints.
    pub(crate) fn shows_map(&self, name: &str) -> bool {
        self.shows(Section::Maps) || self.filter.maps.iter().any(|m| name.contains(m.as_str()))
    }
}

/// A filter selecting nothing: the default view.
pub(crate) static NO_FILTER: Filter = Filter {
    sections: Vec::new(),
    maps: Vec::new(),
    tasks: Vec::new(),
};
