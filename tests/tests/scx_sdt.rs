//! The sdt arena allocator walk on a real scheduler: `scx_p2dq` (crates.io; it links the
//! sched_ext project's `lib/sdt_alloc.bpf.c`) runs in the real 7.3 guest under a CPU
//! workload; the guest prints its own view (the scheduler's `.bss` as `bpftool` shows it,
//! and `/proc`), the host freezes it on demand and captures a dump, and the test asserts
//! that `sdt_allocations` and `scx_static_ranges` agree with what the guest and the
//! scheduler themselves say:
//! - the allocator's `elem_size` and the static region (`memory`, `max_alloc_bytes`,
//!   `off`) equal the guest's `bpftool map dump` of `.bss`;
//! - the live entries over all allocators equal the allocator's own counter
//!   (`alloc_stats.active_allocs` in `.bss`, at the same frozen instant);
//! - every `scx_task_allocator` payload is rendered as p2dq's `struct task_p2dq`, its
//!   `pid` is a task of the dump, every task on sched_ext has one, and so do the
//!   workload's processes the guest listed in `/proc`;
//! - `tid.idx` values are unique and `tid.genn` non-negative.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision` builds scx_p2dq too, about 5
//! minutes on 2 cores); without QEMU the test prints why it skips.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dump_schema::{FailureDumpReport, RenderedValue, SdtAllocatorSnapshot};
use e2e_tests::guest::GuestLab;
use e2e_tests::guest::view::{ProcStat, rendered_number};
use guest_lab::{ConsoleLog, GuestCommand, HookPoint, RunEnd, RunSpec, SchedulerChoice};

/// The `.bss` variables the test reads from the guest's own dump.
const VARS: &str = "scx_task_allocator|scx_static|alloc_stats";
/// vCPUs that may be inside an allocation or a free at the freeze.
const IN_FLIGHT: i128 = 2;

/// The guest's pretty-printed `.bss` (short lines: the console keeps 4 KiB per line),
/// cut down to the blocks of [`VARS`].
fn bss_blocks() -> GuestCommand {
    GuestCommand::new(
        "sdt-bss",
        format!(
            "bpftool map show | awk '$3==\"name\"{{print $1, $4}}' | tr -d : \
             | while read id name; do case \"$name\" in *.bss) bpftool -p map dump id $id \
             | awk '/\"({VARS})\": [{{]/ {{on=1; d=0}} \
                    on {{print; d+=gsub(/[{{]/,\"{{\"); d-=gsub(/[}}]/,\"}}\"); if (d<=0) on=0}}';; \
             esac; done"
        ),
    )
}

/// `var.member.member` → value, from the pretty-printed blocks (numbers, or `0x…`
/// strings for pointers).
fn parse_blocks(text: &str) -> BTreeMap<String, u64> {
    let mut path: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('}') {
            path.pop();
            continue;
        }
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let key = key.trim_matches('"').to_string();
        let value = value.trim_end_matches(',').trim_matches('"');
        if value.starts_with('{') {
            path.push(key);
            continue;
        }
        let n = match value.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => value.parse::<u64>().ok(),
        };
        if let Some(n) = n {
            let mut full = path.join(".");
            if !full.is_empty() {
                full.push('.');
            }
            full.push_str(&key);
            out.entry(full).or_insert(n);
        }
    }
    out
}

fn member<'a>(v: &'a RenderedValue, name: &str) -> Option<&'a RenderedValue> {
    match v {
        RenderedValue::Struct { members, .. } => {
            members.iter().find(|m| m.name == name).map(|m| &m.value)
        }
        _ => None,
    }
}

/// `alloc_stats.active_allocs` as the dump rendered the scheduler's `.bss`.
fn dump_active_allocs(r: &FailureDumpReport) -> i128 {
    r.maps
        .iter()
        .filter(|m| m.name.ends_with(".bss"))
        .filter_map(|m| m.value.as_ref())
        .filter_map(|v| member(v, "alloc_stats"))
        .filter_map(|s| member(s, "active_allocs"))
        .find_map(rendered_number)
        .expect("the dump renders alloc_stats.active_allocs of .bss")
}

fn task_allocator(r: &FailureDumpReport) -> &SdtAllocatorSnapshot {
    r.sdt_allocations
        .iter()
        .find(|a| a.allocator_name == "scx_task_allocator")
        .unwrap_or_else(|| {
            panic!(
                "no scx_task_allocator in {:?}",
                r.sdt_allocations
                    .iter()
                    .map(|a| &a.allocator_name)
                    .collect::<Vec<_>>()
            )
        })
}

/// Pids of the workload's busy loops as the guest listed them: `ktstr_spin 3` forks
/// three `sh` children of the workload's `sh` (each running its loop under `timeout`).
fn guest_spinners(log: &ConsoleLog) -> Vec<i32> {
    let text = log.output("proc-pid-stat").expect("guest printed /proc");
    let procs: Vec<ProcStat> = text.lines().filter_map(ProcStat::parse).collect();
    let comm: BTreeMap<i32, &str> = procs.iter().map(|p| (p.pid, p.comm.as_str())).collect();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in procs.iter().filter(|p| p.comm == "sh") {
        if comm.get(&p.ppid) == Some(&"sh") {
            children.entry(p.ppid).or_default().push(p.pid);
        }
    }
    children
        .into_values()
        .find(|c| c.len() == 3)
        .unwrap_or_default()
}

#[test]
fn guest_scx_p2dq_sdt_allocations_agree_with_guest() {
    let Some(lab) = GuestLab::open() else { return };
    lab.lab.p2dq().expect("provisioning scx_p2dq");
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::p2dq())
        .workload("ktstr_spin 3 600")
        .settle_ms(2000)
        .attach_timeout_s(300)
        .command(HookPoint::WorkloadRunning, bss_blocks())
        .command(HookPoint::WorkloadRunning, GuestCommand::proc_pid_stats())
        .end(RunEnd::Hold);
    let mut guest = lab.boot(&spec);
    guest.wait_console("KTSTR-END proc-pid-stat", Duration::from_secs(900));
    let f = guest.freeze_now();
    assert!(f.all_parked());
    let out = guest.frozen_kernel(&f).capture(&Default::default());
    // For the whole-process benchmark (crates/scx-walk/examples/vmcore_dump.rs): keep a
    // vmcore of this frozen guest when asked.
    if let Ok(dir) = std::env::var("SCX_E2E_VMCORE_DIR") {
        let path = std::path::Path::new(&dir).join("p2dq.vmcore");
        guest.dump_vmcore(&path).expect("dump-guest-memory");
        eprintln!("vmcore written to {}", path.display());
    }
    guest.thaw_now();
    let log = guest.console_log();
    let r = &out.report;
    let ops = log
        .phase_field("scheduler-attached", "ops")
        .expect("p2dq attached")
        .to_string();
    assert!(ops.starts_with("p2dq"), "{ops}");
    assert_eq!(r.sdt_alloc_unavailable, None, "log: {:?}", out.log);

    for a in &r.sdt_allocations {
        eprintln!(
            "sdt {}: elem_size {}, {} live, {} skipped, type {} {}",
            a.allocator_name,
            a.elem_size,
            a.entries.len(),
            a.skipped_subtrees,
            a.target_type_id,
            a.payload_type_reason
        );
    }
    eprintln!("capture log: {:?}", out.log);
    // The guest's own .bss view.
    let guest_bss = parse_blocks(&log.output("sdt-bss").expect("guest printed its .bss"));
    let g = |k: &str| {
        *guest_bss
            .get(k)
            .unwrap_or_else(|| panic!("guest .bss lacks {k}: {guest_bss:?}"))
    };

    // The task allocator: its element size as the guest sees it, nothing skipped.
    let ta = task_allocator(r);
    assert_eq!(ta.elem_size, g("scx_task_allocator.pool.elem_size"));
    assert!(!ta.truncated && ta.skipped_subtrees == 0, "{ta:?}");
    assert_eq!(ta.payload_type_reason, "");
    let mut idxs = BTreeSet::new();
    for e in &ta.entries {
        assert!(idxs.insert(e.idx), "idx {} twice", e.idx);
        assert!(e.genn >= 0 && e.idx >= 0, "{e:?}");
        assert!(e.user_addr <= u64::from(u32::MAX));
    }

    // Payloads are p2dq's task contexts, for the dump's tasks.
    let mut payload_pids = BTreeSet::new();
    for e in &ta.entries {
        match &e.payload {
            RenderedValue::Struct { type_name, .. } => {
                assert_eq!(type_name.as_deref(), Some("task_p2dq"))
            }
            other => panic!("payload not rendered as a struct: {other:?}"),
        }
        let pid = member(&e.payload, "pid")
            .and_then(rendered_number)
            .expect("task_p2dq.pid");
        payload_pids.insert(pid as i32);
    }
    let task_pids: BTreeSet<i32> = r.task_enrichments.iter().map(|t| t.pid).collect();
    let ext_pids: BTreeSet<i32> = r
        .task_enrichments
        .iter()
        .filter(|t| t.sched_class == "ext")
        .map(|t| t.pid)
        .collect();
    let orphans: Vec<_> = payload_pids.difference(&task_pids).collect();
    assert!(
        orphans.len() as i128 <= IN_FLIGHT,
        "task contexts of pids the dump has no task for: {orphans:?}"
    );
    let missing: Vec<_> = ext_pids.difference(&payload_pids).collect();
    assert!(
        missing.len() as i128 <= IN_FLIGHT,
        "sched_ext tasks without a task context: {missing:?}"
    );
    let spinners = guest_spinners(&log);
    assert_eq!(spinners.len(), 3, "the guest lists the 3 busy loops");
    for pid in &spinners {
        assert!(
            payload_pids.contains(pid),
            "workload pid {pid} has no context"
        );
    }

    // Every allocator's live entries add up to the allocator's own counter.
    let live: i128 = r
        .sdt_allocations
        .iter()
        .map(|a| {
            assert!(!a.truncated, "{} truncated", a.allocator_name);
            // Typed, or says why not.
            assert!(
                (a.target_type_id != 0) == a.payload_type_reason.is_empty(),
                "{a:?}"
            );
            a.entries.len() as i128
        })
        .sum();
    let counted = dump_active_allocs(r);
    assert!(
        (live - counted).abs() <= IN_FLIGHT,
        "walked {live} live entries, alloc_stats.active_allocs = {counted}"
    );

    // The static region: as the guest printed it (off only grows).
    let st = &r.scx_static_ranges;
    assert_eq!(st.skipped, 0);
    let range = st
        .ranges
        .iter()
        .find(|s| s.instance_name == "scx_static")
        .expect("scx_static range");
    assert_eq!(
        u64::from(range.start_low32),
        g("scx_static.memory") & 0xffff_ffff
    );
    assert_eq!(range.capacity, g("scx_static.max_alloc_bytes"));
    assert!(range.size >= g("scx_static.off") && range.size <= range.capacity);
    eprintln!(
        "p2dq: {} allocators, {live} live entries ({} task contexts, elem_size {}), \
         active_allocs {counted}, static {}/{} bytes",
        r.sdt_allocations.len(),
        ta.entries.len(),
        ta.elem_size,
        range.size,
        range.capacity
    );
}

#[test]
fn pretty_bss_blocks_parse_to_paths() {
    let text = r#"
                    "scx_task_allocator": {
                        "pool": {
                            "slab": 0x100001000,
                            "elem_size": 160,
                            "idx": 3
                        },
                        "root": 4294971392
                    }
                },{
                    "scx_static": {
                        "max_alloc_bytes": 2097152,
                        "memory": "0x100200000",
                        "off": 4096
                    }"#;
    let m = parse_blocks(text);
    assert_eq!(m["scx_task_allocator.pool.elem_size"], 160);
    assert_eq!(m["scx_task_allocator.pool.slab"], 0x1_0000_1000);
    assert_eq!(m["scx_task_allocator.root"], 4_294_971_392);
    assert_eq!(m["scx_static.memory"], 0x1_0020_0000);
    assert_eq!(m["scx_static.off"], 4096);
}
