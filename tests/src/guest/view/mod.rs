//! The guest's own view of itself, printed on its console before the freeze, and
//! assertions that a dump agrees with it.
//!
//! [`with_guest_view`] adds the standard view commands to a [`RunSpec`] (run at
//! [`HookPoint::WorkloadRunning`]); [`VIEW_END`] is the console line after the last one.
//! The `assert_*` functions compare a [`FailureDumpReport`] with the parsed
//! [`ConsoleLog`]: the dump is taken later than the guest's print, so counters may have
//! grown, but names, sizes, parents and sessions must be equal. Each returns how many
//! facts it checked (for the test's summary line) and panics on the first disagreement.

mod globals;
mod proc;
mod scx_dump;
#[cfg(test)]
mod tests;

use dump_schema::{FailureDumpReport, RenderedValue};
use guest_lab::{ConsoleLog, GuestCommand, HookPoint, RunEnd, RunSpec};
use serde_json::Value;

pub use globals::{Global, assert_globals_agree, globals};
pub use proc::{
    ProcStat, assert_cputime_agrees, assert_sysfs_agrees, assert_task_classes_agree,
    assert_tasks_agree,
};
pub use scx_dump::{assert_scx_dump_agrees, assert_timeline_monotone, bracket_pid};

/// Label of the last command [`with_guest_view`] adds.
pub const LAST_VIEW_LABEL: &str = "sched-ext-sysfs";
/// The console line the guest prints once its whole view is out.
pub const VIEW_END: &str = "KTSTR-END sched-ext-sysfs";

/// The `ops` name the guest reported when its scheduler attached (the
/// `scheduler-attached` phase); panics when it never attached.
pub fn attached_ops(log: &ConsoleLog) -> String {
    log.phase_field("scheduler-attached", "ops")
        .unwrap_or_else(|| {
            panic!(
                "no scheduler attached; phases: {:?}",
                log.phases.iter().map(|p| &p.name).collect::<Vec<_>>()
            )
        })
        .to_string()
}

/// The guest's view commands, run while the workload runs (before any freeze).
pub fn with_guest_view(spec: RunSpec) -> RunSpec {
    with_view(spec, [GuestCommand::bpftool_bss_dump()])
}

/// The guest's view of a real scheduler: as [`with_guest_view`], but instead of the whole
/// `.bss` as JSON (a real scheduler's is tens of KiB, printed as megabytes), the scalars
/// of its `.rodata`/`.data` maps ([`GuestCommand::bpftool_globals`]), and each task's
/// sched_ext flag ([`GuestCommand::proc_pid_ext`]).
pub fn with_real_scheduler_view(spec: RunSpec) -> RunSpec {
    with_view(
        spec,
        [
            GuestCommand::bpftool_globals(),
            GuestCommand::proc_pid_ext(),
        ],
    )
}

/// Maps, programs, `extra`, tasks, CPU times, then sysfs ([`VIEW_END`]).
fn with_view<const N: usize>(spec: RunSpec, extra: [GuestCommand; N]) -> RunSpec {
    let maps_progs = [
        GuestCommand::bpftool_map_show(),
        GuestCommand::bpftool_prog_show(),
    ];
    let tasks_cpus_sysfs = [
        GuestCommand::proc_pid_stats(),
        GuestCommand::proc_stat(),
        GuestCommand::sched_ext_sysfs(),
    ];
    let running = maps_progs.into_iter().chain(extra).chain(tasks_cpus_sysfs);
    spec.bpf_stats(true)
        .commands(HookPoint::WorkloadRunning, running)
        .end(RunEnd::Hold)
}

// ---------------------------------------------------------------------------------------
// The guest's own view and the comparisons.

pub fn json_output(log: &ConsoleLog, label: &str) -> Value {
    let text = log
        .output(label)
        .unwrap_or_else(|| panic!("guest printed no {label} output"));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{label} is not JSON: {e}: {text}"))
}

/// Same maps (by name and type) with the same value size and max_entries.
pub fn assert_maps_agree(log: &ConsoleLog, r: &FailureDumpReport) -> usize {
    let maps = json_output(log, "bpftool-map-show");
    let maps = maps.as_array().expect("bpftool map show: array");
    let mut checked = 0;
    for m in maps {
        let Some(name) = m["name"].as_str() else {
            continue;
        };
        let ty = m["type"].as_str().unwrap_or_default();
        let found = r.maps.iter().find(|d| {
            d.name == name && dump_schema::map_type::name(d.map_type).unwrap_or("") == ty
        });
        let d = found.unwrap_or_else(|| {
            panic!(
                "guest map {name} ({ty}) missing from the dump; dump has {:?}",
                r.maps.iter().map(|d| &d.name).collect::<Vec<_>>()
            )
        });
        assert_eq!(
            u64::from(d.value_size),
            m["bytes_value"].as_u64().unwrap(),
            "{name} value size"
        );
        assert_eq!(
            u64::from(d.max_entries),
            m["max_entries"].as_u64().unwrap(),
            "{name} max_entries"
        );
        checked += 1;
    }
    checked
}

/// What the frozen kernel says of one map the dump names (the wire format has no key
/// size and no map id: read at the dump's `map_kva`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapInMemory {
    /// `bpf_map.id`, the id bpftool shows.
    pub id: u32,
    /// `bpf_map.key_size`.
    pub key_size: u32,
}

/// Every map the guest saw is the map at the dump's `map_kva` of the same name (same id),
/// whose key size is the guest's; the keys of a hash map's entries in the dump have that
/// many bytes.
/// `in_memory` maps `map_kva` to what the frozen kernel holds there.
pub fn assert_maps_in_memory(
    log: &ConsoleLog,
    r: &FailureDumpReport,
    in_memory: &std::collections::BTreeMap<u64, MapInMemory>,
) -> usize {
    let maps = json_output(log, "bpftool-map-show");
    let mut checked = 0;
    for m in maps.as_array().expect("bpftool map show: array") {
        let (Some(name), Some(id)) = (m["name"].as_str(), m["id"].as_u64()) else {
            continue;
        };
        let key = m["bytes_key"].as_u64().expect("bytes_key");
        let found = r.maps.iter().find(|d| {
            d.name == name && in_memory.get(&d.map_kva).map(|f| u64::from(f.id)) == Some(id)
        });
        let d = found.unwrap_or_else(|| {
            panic!("guest map {name} (id {id}) is not a map of the dump at the address of that id")
        });
        assert_eq!(
            u64::from(in_memory[&d.map_kva].key_size),
            key,
            "{name} key size"
        );
        // Local-storage maps (task, cgroup, …) are keyed by their owner's address in the
        // dump, not by the key the syscall takes.
        use dump_schema::map_type as t;
        if ![t::HASH, t::LRU_HASH, t::PERCPU_HASH, t::LRU_PERCPU_HASH].contains(&d.map_type) {
            checked += 1;
            continue;
        }
        let key_lens = d
            .entries
            .iter()
            .map(|e| &e.key_hex)
            .chain(d.percpu_hash_entries.iter().map(|e| &e.key_hex))
            .map(|h| h.split_whitespace().count() as u64);
        for n in key_lens {
            assert_eq!(n, key, "{name}: a key of {n} bytes");
        }
        checked += 1;
    }
    checked
}

/// Every program of the scheduler the guest saw is in the dump, with at least the run
/// count and run time the guest saw: struct_ops programs in `prog_runtime_stats`, the
/// others sharing a map with them (its tracing, syscall, … programs) in
/// `aux_prog_runtime_stats` with the same type. Programs are paired in id order (both
/// lists are), by name: the dump has the kernel's 15-byte `aux->name`, bpftool the full
/// BTF name, and two long names can share those 15 bytes.
pub fn assert_progs_agree(log: &ConsoleLog, r: &FailureDumpReport) -> usize {
    let progs = json_output(log, "bpftool-prog-show");
    let progs = progs.as_array().expect("prog show: array");
    let map_ids = |p: &Value| -> Vec<u64> {
        p["map_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let scheduler_maps: std::collections::BTreeSet<u64> = progs
        .iter()
        .filter(|p| p["type"].as_str() == Some("struct_ops"))
        .flat_map(map_ids)
        .collect();
    let mut used = std::collections::BTreeSet::new();
    let mut checked = 0;
    for p in progs {
        let ty = p["type"].as_str().unwrap_or_default();
        let struct_ops = ty == "struct_ops";
        if !struct_ops && !map_ids(p).iter().any(|m| scheduler_maps.contains(m)) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or_default();
        let (list, what) = if struct_ops {
            (&r.prog_runtime_stats, "prog_runtime_stats")
        } else {
            (&r.aux_prog_runtime_stats, "aux_prog_runtime_stats")
        };
        let (i, s) = list
            .iter()
            .enumerate()
            .find(|(i, s)| {
                !used.contains(&(struct_ops, *i))
                    && !s.name.is_empty()
                    && name.starts_with(&s.name)
                    && (struct_ops || s.prog_type == ty)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{ty} prog {name} not in {what}: {:?}",
                    list.iter()
                        .map(|s| (&s.name, &s.prog_type))
                        .collect::<Vec<_>>()
                )
            });
        used.insert((struct_ops, i));
        let cnt = p["run_cnt"].as_u64().unwrap_or(0);
        let ns = p["run_time_ns"].as_u64().unwrap_or(0);
        assert!(
            s.cnt >= cnt,
            "{name}: dump run count {} < guest's {cnt}",
            s.cnt
        );
        assert!(
            s.nsecs >= ns,
            "{name}: dump run time {} < guest's {ns}",
            s.nsecs
        );
        checked += 1;
    }
    checked
}

/// A number from a rendered value (ints, enums, chars, bools).
pub fn rendered_number(v: &RenderedValue) -> Option<i128> {
    match v {
        RenderedValue::Int { value, .. } => Some(i128::from(*value)),
        RenderedValue::Uint { value, .. } => Some(i128::from(*value)),
        RenderedValue::Enum { value, .. } => Some(i128::from(*value)),
        RenderedValue::Char { value } => Some(i128::from(*value)),
        RenderedValue::Bool { value } => Some(i128::from(*value)),
        // bpftool prints pointers as numbers.
        RenderedValue::Ptr { value, .. } => Some(i128::from(*value)),
        _ => None,
    }
}

/// How a global variable (a `.bss`, `.data`, … member) may change between the guest's
/// print and the freeze.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BssRule {
    /// Must be equal.
    Equal,
    /// A counter: the dump shows at least the guest's value.
    Grows,
    /// Set once at run time: 0 in the guest's view, or equal.
    SetOnce,
    /// May move either way (a gauge); only its presence as a number is checked.
    Any,
}

/// `.bss` members the guest printed, as numbers, compared with the dump's rendering
/// according to `rule`.
pub fn assert_bss_agrees(
    log: &ConsoleLog,
    r: &FailureDumpReport,
    rule: &dyn Fn(&str) -> BssRule,
) -> usize {
    let text = log
        .output("bpftool-bss-dump")
        .expect("guest printed no .bss dump");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect(".bss dump line is JSON");
        let name = v["name"].as_str().unwrap();
        let Some(map) = r.maps.iter().find(|m| m.name == name) else {
            panic!("{name} not in the dump");
        };
        let Some(RenderedValue::Struct { members, .. }) = &map.value else {
            panic!(
                "{name}: dump value is not a rendered struct: {:?} (error {:?})",
                map.value, map.error
            );
        };
        let entries = v["dump"].as_array().expect("map dump array");
        let formatted = &entries[0]["formatted"]["value"];
        let vars = formatted[".bss"]
            .as_array()
            .or_else(|| entries[0]["value"][".bss"].as_array());
        let vars = vars.unwrap_or_else(|| panic!("{name}: no formatted .bss in {v}"));
        for var in vars {
            let (vname, gv) = var.as_object().unwrap().iter().next().unwrap();
            let Some(gn) = gv.as_i64().map(i128::from).or(gv.as_u64().map(i128::from)) else {
                continue;
            };
            let m = members
                .iter()
                .find(|m| &m.name == vname)
                .unwrap_or_else(|| panic!("{name}: member {vname} not rendered"));
            let dn = rendered_number(&m.value)
                .unwrap_or_else(|| panic!("{name}.{vname}: not a number: {:?}", m.value));
            match rule(vname) {
                BssRule::Equal => assert_eq!(dn, gn, "{name}.{vname}"),
                BssRule::Grows => assert!(dn >= gn, "{name}.{vname}: dump {dn} < guest {gn}"),
                BssRule::SetOnce => {
                    assert!(gn == 0 || dn == gn, "{name}.{vname}: guest {gn}, dump {dn}")
                }
                BssRule::Any => {}
            }
            checked += 1;
        }
    }
    checked
}

/// The `.bss` rule for the lab's test schedulers (crates/freeze/lab/sched/ktstr_sched.bpf.h):
/// `nr_*` counters and `vtime_now` grow, the values set once at run time may still be 0
/// in the guest's view, everything else is equal.
pub fn test_sched_bss(name: &str) -> BssRule {
    match name {
        n if n.starts_with("nr_") => BssRule::Grows,
        "vtime_now" => BssRule::Grows,
        "victim_pid" | "error_raised" | "exit_kind" | "exit_code" | "ktstr_magic_seen" => {
            BssRule::SetOnce
        }
        _ => BssRule::Equal,
    }
}
