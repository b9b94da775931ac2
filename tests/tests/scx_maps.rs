//! Map walkers on real maps, and the kernel-stack scan behind `lock_slowpath_match`, on a
//! real sched_ext guest under QEMU: each test on both kernel lines, the 7.3 kernel and
//! the 6.12 LTS (`guest_scx_612_*`, `KernelLine`), with the same assertions, plus what
//! the dump says of its line (`KernelLine::assert_layout`: on 6.12 the missing event
//! counters and `aborting` flag are in `capture_notes`).
//!
//! The `ok` test scheduler (crates/freeze/lab/sched/ktstr_sched.bpf.h) keeps a ring
//! buffer, a stack-trace map, task and cgroup storage and a prog array, and counts what it
//! put in them in `.bss`. The guest prints its own view (`bpftool`, `/proc`, cgroup ids)
//! while a workload runs; the host then freezes it, captures a dump and checks every such
//! map against the scheduler's counters, the guest's view and the frozen kernel's own
//! objects (a storage entry's owner task/cgroup). Then it checks the stack scan: a task
//! sleeping in `nanosleep` has the nanosleep path in its scanned frames, and writers
//! contending on one pipe's mutex are found in a lock slow path.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision`); without QEMU it prints why it
//! skips.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dump_schema::{FailureDumpMap, FailureDumpReport, RenderedValue};
use e2e_tests::guest::view::{ProcStat, assert_maps_agree, json_output};
use e2e_tests::guest::{Guest, GuestLab, KernelLine, LoadedKernel};
use freeze::FreezeOutcome;
use freeze::perf::{Counter, VcpuCounters, VcpuPerf};
use freeze::qemu::QemuEngine;
use guest_lab::{
    ConsoleLog, GuestCommand, HookPoint, RunEnd, RunSpec, SPLIT_JSON_OBJECTS, SchedulerChoice,
    TestScheduler, TestSchedulerParams,
};
use guest_mem::Kva;
use scx_walk::lists::CoreOffsets;
use scx_walk::render::BtfRenderer;
use scx_walk::stackscan::StackScanner;
use scx_walk::tasks::{TaskOffsets, all_tasks};
use scx_walk::{CaptureOptions, Target};
use serde_json::Value;

/// Bytes one ring-buffer record takes (8-byte header + 16-byte record), as in the
/// scheduler's `KTSTR_RB_SLOT`.
const RB_SLOT: u64 = 24;
/// The scheduler's `KTSTR_TAIL_SLOT`.
const TAIL_SLOT: u32 = 1;
/// The last label of the guest's view.
const LAST_VIEW: &str = "cgroup-ids";

/// The workload: a child cgroup (for cgroup storage), a long `sleep` (in nanosleep),
/// one spinner, and four writers contending on one pipe's mutex.
/// (The guest's /init mounts cgroup2 at /sys/fs/cgroup.)
const WORKLOAD: &str = "mkdir -p /sys/fs/cgroup/ktstr && echo $$ > /sys/fs/cgroup/ktstr/cgroup.procs; \
     sleep 900 & ktstr_spin 1 900 & \
     (yes ktstr-pipe & yes ktstr-pipe & yes ktstr-pipe & yes ktstr-pipe & wait) | cat > /dev/null";

fn spec() -> RunSpec {
    // `bpftool -j` prints one line; the console cuts lines at 4 KiB, so entries go one
    // per line.
    let stacks = format!("bpftool -j map dump name ktstr_stacks | {SPLIT_JSON_OBJECTS}");
    let cgroups =
        "for d in /sys/fs/cgroup /sys/fs/cgroup/ktstr; do echo \"$d $(stat -c %i $d)\"; done";
    RunSpec::new()
        .scheduler(SchedulerChoice::Test {
            which: TestScheduler::Ok,
            params: TestSchedulerParams::default(),
        })
        .workload(WORKLOAD)
        .settle_ms(2000)
        .commands(
            HookPoint::WorkloadRunning,
            [
                GuestCommand::bpftool_map_show(),
                GuestCommand::bpftool_bss_dump(),
                GuestCommand::proc_pid_stats(),
                GuestCommand::new("stacks", stacks),
                GuestCommand::new("prog-array", "bpftool -j map dump name ktstr_tail"),
                GuestCommand::new(LAST_VIEW, cgroups),
            ],
        )
        .end(RunEnd::Hold)
}

/// The report of the guest frozen by `f`, read through `view` (a view made at an
/// earlier freeze serves: symbols and BTF do not move), with `f`'s vCPU registers.
fn capture(view: &LoadedKernel, f: &FreezeOutcome) -> FailureDumpReport {
    let renderer = BtfRenderer::new(&view.btf);
    let target = Target {
        kernel: view.view(),
        renderer: Some(&renderer),
        vcpu_regs: f.vcpus.clone(),
        second_thread: Some(scx_walk::SecondThread {
            kernel: &view.k,
            types: &view.btf,
            renderer: Some(&renderer),
        }),
    };
    let r = scx_walk::capture(&target, &CaptureOptions::default()).report;
    dump_schema::validate::validate_report_json(&r.to_json().unwrap()).expect("the dump validates");
    r
}

/// The map's `part`, which must be there (`what` names it).
fn present<'m, T>(m: &'m FailureDumpMap, part: &'m Option<T>, what: &str) -> &'m T {
    part.as_ref()
        .unwrap_or_else(|| panic!("{what} of {} missing: {:?}", m.name, m.error))
}

fn map<'r>(r: &'r FailureDumpReport, name: &str, map_type: u32) -> &'r FailureDumpMap {
    let m = r.maps.iter().find(|m| m.name == name).unwrap_or_else(|| {
        panic!(
            "map {name} not in the dump: {:?}",
            r.maps.iter().map(|m| &m.name).collect::<Vec<_>>()
        )
    });
    assert_eq!(m.map_type, map_type, "type of {name}");
    m
}

/// A struct member of a rendered value, as a number.
fn member(v: &RenderedValue, name: &str) -> u64 {
    let RenderedValue::Struct { members, .. } = v else {
        panic!("not a rendered struct: {v:?}");
    };
    let m = members
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name} in {v:?}"));
    match &m.value {
        RenderedValue::Uint { value, .. } => *value,
        RenderedValue::Int { value, .. } => *value as u64,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// A `.bss` variable of the scheduler, from the dump.
fn bss(r: &FailureDumpReport, var: &str) -> u64 {
    let m = r
        .maps
        .iter()
        .find(|m| m.name.ends_with(".bss"))
        .expect(".bss in the dump");
    member(m.value.as_ref().expect(".bss rendered"), var)
}

/// The same `.bss` variable as the guest printed it (bpftool's formatted dump).
fn guest_bss(log: &ConsoleLog, var: &str) -> u64 {
    let text = log.output("bpftool-bss-dump").expect("guest .bss dump");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect(".bss dump line is JSON");
        let e = &v["dump"][0];
        let vars = e["formatted"]["value"][".bss"]
            .as_array()
            .or_else(|| e["value"][".bss"].as_array());
        for x in vars.into_iter().flatten() {
            if let Some(n) = x.get(var).and_then(Value::as_u64) {
                return n;
            }
        }
    }
    panic!("guest printed no .bss {var}")
}

/// bpftool's hex byte array (`["0x01", ...]`) as bytes.
fn hex_bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("hex byte array")
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

fn le_u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// `/proc/<pid>/stat` lines as pid → comm.
fn guest_pids(log: &ConsoleLog) -> BTreeMap<i32, String> {
    let text = log.output("proc-pid-stat").expect("guest /proc view");
    text.lines()
        .filter_map(ProcStat::parse)
        .map(|p| (p.pid, p.comm))
        .collect()
}

fn check_ringbuf(r: &FailureDumpReport, log: &ConsoleLog) {
    let m = map(r, "ktstr_events", dump_schema::map_type::RINGBUF);
    let rb = present(m, &m.ringbuf, "ringbuf positions");
    let (records, full) = (bss(r, "nr_rb_records"), bss(r, "nr_rb_full"));
    eprintln!("ringbuf: {rb:?}; .bss records {records}, refused {full}");
    assert_eq!(rb.capacity, 16384, "ring size");
    assert_eq!(rb.consumer_pos, 0, "nobody consumes the ring");
    assert_eq!(rb.producer_pos % RB_SLOT, 0, "whole records only");
    // A record is counted right after its commit: a vCPU frozen in between leaves the
    // producer at most one record per vCPU ahead of the counter.
    let reserved = rb.producer_pos / RB_SLOT;
    assert!(
        (records..=records + 2).contains(&reserved),
        "producer at {reserved} records, the scheduler counted {records}"
    );
    assert!(rb.pending_pos <= rb.producer_pos);
    assert_eq!(rb.pending_bytes, rb.producer_pos - rb.consumer_pos);
    if full > 0 {
        assert!(
            rb.producer_pos + RB_SLOT > rb.capacity - 1,
            "records were refused but the ring has room: {rb:?}"
        );
    }
    assert!(records > 0, "the scheduler submitted no record");
    let seen = guest_bss(log, "nr_rb_records");
    assert!(records >= seen, "dump {records} < guest's {seen}");
}

fn check_stacks(r: &FailureDumpReport, log: &ConsoleLog, f: &LoadedKernel) {
    let m = map(r, "ktstr_stacks", dump_schema::map_type::STACK_TRACE);
    let st = present(m, &m.stack_trace, "stack traces");
    assert_eq!(st.n_buckets, 256);
    assert_eq!(st.buckets_unreadable, 0);
    assert!(!st.truncated);
    let by_id: BTreeMap<u32, &Vec<u64>> =
        st.entries.iter().map(|e| (e.bucket_id, &e.pcs)).collect();
    assert!(!by_id.is_empty(), "no stack recorded");
    // Every stack the guest saw is in the dump, unchanged (without BPF_F_REUSE_STACKID a
    // bucket is never replaced).
    let guest = json_output(log, "stacks");
    let guest = guest.as_array().expect("stack map dump: array");
    for e in guest {
        let key = hex_bytes(&e["key"]);
        let id = u32::from_le_bytes(key[..4].try_into().unwrap());
        let mut pcs = le_u64s(&hex_bytes(&e["value"]));
        while pcs.last() == Some(&0) {
            pcs.pop();
        }
        let d = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("stack id {id} the guest saw is not in the dump"));
        assert_eq!(**d, pcs, "stack id {id}");
    }
    // Stack ids resolve to kernel text: the sched_switch tracepoint fires in __schedule.
    let mut schedule = 0;
    let mut seen = Vec::new();
    for (id, pcs) in &by_id {
        let named: Vec<String> = pcs
            .iter()
            .filter_map(|pc| f.k.nearest_symbol(Kva(*pc)))
            .filter(|n| n.offset < 0x10000)
            .map(|n| n.symbol.name.to_string())
            .collect();
        assert!(
            !named.is_empty(),
            "stack {id}: no pc in kernel text: {pcs:x?}"
        );
        if named.iter().any(|n| n == "__schedule") {
            schedule += 1;
        }
        seen.push(named);
    }
    assert!(
        schedule > 0,
        "no stack passes through __schedule: {:#?}",
        &seen[..seen.len().min(3)]
    );
    let e = st.entries.first().unwrap();
    assert_eq!(e.nr as usize, e.pcs.len());
    eprintln!(
        "stacks: {} in the dump, {} seen by the guest, {schedule} through __schedule",
        by_id.len(),
        guest.len()
    );
}

/// The owner of a storage entry (`key_hex`: the owner's address, little-endian).
fn owner(e: &dump_schema::FailureDumpEntry) -> u64 {
    let b: Vec<u8> = e
        .key_hex
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    u64::from_le_bytes(b[..8].try_into().expect("8-byte owner"))
}

fn check_task_storage(r: &FailureDumpReport, log: &ConsoleLog, f: &LoadedKernel) {
    let m = map(r, "ktstr_task_ctx", dump_schema::map_type::TASK_STORAGE);
    assert!(!m.entries.is_empty(), "no task storage: {:?}", m.error);
    let mut by_pid = BTreeMap::new();
    for e in &m.entries {
        let task = owner(e);
        let v = e.value.as_ref().expect("rendered value");
        let pid = f.u32_at(task, "task_struct.pid");
        let tgid = f.u32_at(task, "task_struct.tgid");
        assert_eq!(member(v, "pid"), u64::from(pid), "owner {task:#x}");
        assert_eq!(member(v, "tgid"), u64::from(tgid), "owner {task:#x}");
        by_pid.insert(pid as i32, member(v, "runs"));
    }
    // The workload's long-lived processes each have their storage.
    let guest = guest_pids(log);
    for comm in ["sleep", "yes", "cat"] {
        let pids: Vec<i32> = guest
            .iter()
            .filter(|(_, c)| c.as_str() == comm)
            .map(|(p, _)| *p)
            .collect();
        assert!(!pids.is_empty(), "guest shows no {comm}");
        for p in pids {
            assert!(by_pid.contains_key(&p), "{comm} {p} has no task storage");
        }
    }
    // runs counts ops.running like task_stats' runs: equal, but for tasks a vCPU was
    // running the scheduler for at the freeze.
    let stats = map(r, "task_stats", dump_schema::map_type::HASH);
    let (mut same, mut differ) = (0, Vec::new());
    for e in &stats.entries {
        let Some(RenderedValue::Uint { value: pid, .. }) = e.key else {
            continue;
        };
        let Some(runs) = by_pid.get(&(pid as i32)) else {
            continue;
        };
        let st = member(e.value.as_ref().unwrap(), "runs");
        if st == *runs {
            same += 1;
        } else {
            differ.push((pid, st, *runs));
        }
    }
    assert!(
        same >= 10,
        "only {same} tasks in both task_stats and storage"
    );
    assert!(differ.len() <= 2, "runs differ: {differ:?}");
    assert!(bss(r, "nr_task_ctx") >= m.entries.len() as u64);
    eprintln!(
        "task storage: {} entries, {same} runs equal to task_stats",
        m.entries.len()
    );
}

fn check_cgroup_storage(r: &FailureDumpReport, log: &ConsoleLog, f: &LoadedKernel) {
    let m = map(r, "ktstr_cgrp_ctx", dump_schema::map_type::CGRP_STORAGE);
    let mut ids = BTreeSet::new();
    for e in &m.entries {
        let cgrp = owner(e);
        let kn = f.u64_at(cgrp, "cgroup.kn");
        let id = f.u64_at(kn, "kernfs_node.id");
        let v = e.value.as_ref().expect("rendered value");
        assert_eq!(member(v, "id"), id, "cgroup {cgrp:#x}");
        assert!(member(v, "switches") > 0);
        ids.insert(id);
    }
    let text = log.output(LAST_VIEW).expect("guest cgroup ids");
    for line in text.lines() {
        let (dir, ino) = line.split_once(' ').expect("dir ino");
        let ino: u64 = ino.trim().parse().unwrap_or_else(|_| panic!("{line}"));
        assert!(
            ids.contains(&ino),
            "cgroup {dir} (id {ino}) has no storage: {ids:?}"
        );
    }
    eprintln!("cgroup storage: ids {ids:?}");
}

fn check_prog_array(r: &FailureDumpReport, log: &ConsoleLog) {
    let m = map(r, "ktstr_tail", dump_schema::map_type::PROG_ARRAY);
    let fa = present(m, &m.fd_array, "fd array");
    assert_eq!(fa.scanned, 4);
    assert_eq!(fa.populated, 1);
    assert_eq!(fa.indices, vec![TAIL_SLOT]);
    let guest = json_output(log, "prog-array");
    let keys: Vec<u32> = guest
        .as_array()
        .expect("prog array dump")
        .iter()
        .map(|e| u32::from_le_bytes(hex_bytes(&e["key"])[..4].try_into().unwrap()))
        .collect();
    assert_eq!(keys, fa.indices, "the guest's populated slots");
    assert!(bss(r, "nr_tail_calls") > 0);
}

#[test]
fn guest_scx_maps_agree_with_guest_and_scheduler() {
    maps_agree(KernelLine::Current);
}

#[test]
fn guest_scx_612_maps_agree_with_guest_and_scheduler() {
    maps_agree(KernelLine::Lts612);
}

/// Every map walker against the scheduler's counters, the guest's view and the frozen
/// kernel's objects, on the kernel of `line`; and what the dump says of the line.
fn maps_agree(line: KernelLine) {
    let Some(mut guest) = booted(line) else {
        return;
    };
    check_vcpu_thread_counters(&mut guest);
    let f = guest.freeze_now();
    assert!(f.all_parked());
    freeze::testing::check_vcpu_perf(&f.vcpu_perf, 2);
    let frozen = guest.frozen_kernel(&f);
    let r = capture(&frozen, &f);
    let log = guest.console_log();
    let maps = assert_maps_agree(&log, &r);
    assert!(maps >= 13, "only {maps} maps compared");
    check_ringbuf(&r, &log);
    check_stacks(&r, &log, &frozen);
    check_task_storage(&r, &log, &frozen);
    check_cgroup_storage(&r, &log, &frozen);
    check_prog_array(&r, &log);
    line.assert_layout(&r);
    guest.thaw_now();
}

/// Boots the guest on the kernel of `line` and waits until it printed its view.
fn booted(line: KernelLine) -> Option<Guest> {
    let lab = GuestLab::open_line(line)?;
    let guest = lab.boot(&spec());
    guest.wait_console(&format!("KTSTR-END {LAST_VIEW}"), Duration::from_secs(600));
    Some(guest)
}

/// Tasks of the frozen guest with this comm.
fn tasks_named(f: &LoadedKernel, comm: &str) -> Vec<Kva> {
    let k = f.view();
    let core = CoreOffsets::resolve(k.types).expect("core offsets");
    let to = TaskOffsets::resolve(k.types).expect("task offsets");
    let (all, _) = all_tasks(&k, &core, &to, 4096).expect("task list");
    all.into_iter()
        .filter(|t| {
            k.cstr(Kva(t.0 + to.comm), 16, "comm")
                .is_ok_and(|c| c == comm)
        })
        .collect()
}

#[test]
fn guest_scx_stack_scan_finds_nanosleep_and_lock_slowpath() {
    stack_scan(KernelLine::Current);
}

#[test]
fn guest_scx_612_stack_scan_finds_nanosleep_and_lock_slowpath() {
    stack_scan(KernelLine::Lts612);
}

/// The stack scan on real stacks: a task sleeping in `nanosleep` shows the nanosleep path
/// under `schedule`; writers contending on one pipe's mutex are found in a mutex slow path
/// (`lock_slowpath_match`) in at least one of several freezes, and that writer's frames
/// show the slow path called from the pipe's write; on the kernel of `line`.
fn stack_scan(line: KernelLine) {
    let Some(mut guest) = booted(line) else {
        return;
    };
    let f = guest.freeze_now();
    let frozen = guest.frozen_kernel(&f);
    let k = frozen.view();
    let sleepers = tasks_named(&frozen, "sleep");
    assert!(!sleepers.is_empty(), "no sleep task");
    let sc = StackScanner::new(&k).expect("stack scanner");
    for t in &sleepers {
        let st = sc.scan(*t).expect("scan").expect("saved stack");
        let syms = st.symbols();
        eprintln!("sleep {:#x}: {} words, frames {syms:?}", t.0, st.words);
        assert!(
            syms.iter()
                .any(|s| s.starts_with("do_nanosleep") || s.starts_with("hrtimer_nanosleep")),
            "no nanosleep frame: {syms:?}"
        );
        assert!(syms.iter().any(|s| s.starts_with("schedule")), "{syms:?}");
        assert_eq!(
            st.lock_slowpath(),
            None,
            "a sleeper holds no lock: {syms:?}"
        );
    }
    guest.thaw_now();

    // Later freezes reuse the kernel view (symbols, BTF) on the live RAM mapping; task
    // stacks come and go, so no cached translation may outlive a freeze.
    frozen.k.set_translation_cache(false);
    let mut found = None;
    for attempt in 1..=100 {
        std::thread::sleep(Duration::from_millis(100));
        let f = guest.freeze_now();
        let r = capture(&frozen, &f);
        let yes: Vec<(i32, &str)> = r
            .task_enrichments
            .iter()
            .filter(|t| t.comm == "yes")
            .map(|t| (t.pid, t.lock_slowpath_match.as_str()))
            .collect();
        eprintln!("freeze {attempt}: yes tasks {yes:?}");
        assert_eq!(yes.len(), 4, "four writers");
        // Only names of the documented list are ever claimed.
        for t in &r.task_enrichments {
            if !t.lock_slowpath_match.is_empty() {
                assert!(
                    scx_walk::stackscan::LOCK_SLOWPATHS.contains(&t.lock_slowpath_match.as_str()),
                    "{t:?}"
                );
            }
        }
        // The writers contend on pipe->mutex; a writer may also be caught in a spinlock
        // slow path on the way (wakeups, wait queues): a genuine match too, but the one
        // this test waits for is the mutex.
        if let Some(w) = r
            .task_enrichments
            .iter()
            .find(|t| t.comm == "yes" && t.lock_slowpath_match.contains("mutex"))
        {
            assert_mutex_is_the_pipes(&frozen, &f, &r, w);
            found = Some((attempt, w.pid));
        }
        guest.thaw_now();
        if found.is_some() {
            break;
        }
    }
    let (attempt, pid) = found.expect("no pipe writer found in a mutex slow path in 100 freezes");
    eprintln!("freeze {attempt}: yes {pid} waits for the pipe's mutex");
}

/// With the guest still frozen: the writer `w` the dump found in a mutex slow path waits
/// for the pipe's mutex. Its own frames (read with its vCPU's registers when it is on a
/// CPU, as the capture does) show the slow path called from the pipe's write path
/// (`pipe_write`; `anon_pipe_write` since 6.15).
fn assert_mutex_is_the_pipes(
    frozen: &LoadedKernel,
    f: &FreezeOutcome,
    r: &FailureDumpReport,
    w: &dump_schema::TaskEnrichment,
) {
    assert_ne!(w.task_kva, 0, "the dump records the writer's task_struct");
    let task = Kva(w.task_kva);
    let k = frozen.view();
    let mut sc = StackScanner::new(&k).expect("stack scanner");
    for rq in r.rq_scx_states.iter().filter(|rq| rq.curr_pid == w.pid) {
        let regs = f.vcpus.get(rq.cpu as usize).copied().flatten();
        sc.set_running(task, rq.cpu, regs);
    }
    let st = sc.scan(task).expect("scan").expect("the writer's stack");
    let syms = st.symbols();
    eprintln!(
        "yes {} in {}: frames {syms:?}",
        w.pid, w.lock_slowpath_match
    );
    let slow = syms
        .iter()
        .position(|s| scx_walk::stackscan::slowpath_name(s).is_some_and(|n| n.contains("mutex")));
    let write = syms.iter().position(|s| s.contains("pipe_write"));
    match (slow, write) {
        (Some(slow), Some(write)) => assert!(
            slow < write,
            "the mutex slow path is not under the pipe write: {syms:?}"
        ),
        _ => panic!(
            "yes {} in {}: no mutex slow path under a pipe write in its frames: {syms:?}",
            w.pid, w.lock_slowpath_match
        ),
    }
}

/// The counter machinery on the real vCPU threads: QMP's thread ids are threads of the
/// QEMU process, and software counters on them count the guest's work.
fn check_vcpu_thread_counters(engine: &mut QemuEngine) {
    let pid = engine.pid();
    let tids = freeze::qemu::vcpu_thread_ids(engine.qmp()).expect("vCPU thread ids");
    assert_eq!(tids.len(), 2, "{tids:?}");
    for t in &tids {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}/task/{t}")).exists(),
            "thread {t} is not a thread of QEMU ({pid})"
        );
    }
    let sw = VcpuCounters::open_with(&tids, &[Counter::TaskClock, Counter::ContextSwitches]);
    std::thread::sleep(Duration::from_millis(500));
    let VcpuPerf::Sampled(s) = sw.read() else {
        panic!("software counters on vCPU threads: {sw:?}");
    };
    let clocks: Vec<u64> = s
        .iter()
        .map(|x| x.as_ref().unwrap().task_clock_ns.unwrap())
        .collect();
    eprintln!("vCPU threads {tids:?}: task clock over 500 ms {clocks:?} ns");
    // The workload keeps both vCPUs busy.
    assert!(clocks.iter().all(|c| *c > 1_000_000), "{clocks:?}");
}
