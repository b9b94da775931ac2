//! scx-walk end to end: a real 7.3 sched_ext guest under QEMU runs a real BPF scheduler
//! (`stall`, `error`, `scx_bpfland`) and a workload; just before the freeze it prints what
//! it sees itself (`bpftool`, `/proc`, `/sys/kernel/sched_ext`). The host freezes it (on
//! the scheduler's error exit, or on demand), captures a full `FailureDumpReport` from the
//! shared guest RAM and asserts that the dump agrees with the guest's own view and, for
//! error exits, with the kernel's own `scx_dump_state` text.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision`); without QEMU the tests print
//! why they skip. CI provisions both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use btf_walk::Btf;
use dump_schema::{FailureDumpReport, RenderedValue};
use freeze::lab::{
    ConsoleLog, GuestCommand, HookPoint, KernelAssets, Lab, RunEnd, RunSpec, SchedulerChoice,
    TestScheduler, TestSchedulerParams,
};
use freeze::qemu::{QemuConfig, QemuEngine};
use freeze::watch::{
    ExitInfoOffsets, ExitKindTrigger, WatchOptions, WatchOutcome, watch_exit_kind,
};
use freeze::{Engine, FreezeOutcome};
use guest_mem::{Kernel as GuestKernel, KernelOptions, Kva, PhysMem};
use scx_walk::render::BtfRenderer;
use scx_walk::{
    CaptureOptions, CaptureOutput, DualTracker, Kernel, RunnableScanner, Target, TriggerLocation,
};
use serde_json::Value;

/// Labels of the guest's own view, printed at `WorkloadRunning`.
const LAST_VIEW_LABEL: &str = "sched-ext-sysfs";

fn qemu_available() -> bool {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn lab() -> Option<(Lab, KernelAssets)> {
    if !qemu_available() {
        eprintln!("SKIP: qemu-system-x86_64 not installed (cargo xtask provision installs it)");
        return None;
    }
    let lab = Lab::open().expect("opening the guest lab cache");
    let kernel = lab.kernel().expect("provisioning the sched_ext kernel");
    Some((lab, kernel))
}

/// The guest's view commands, run while the workload runs (before any freeze).
fn with_guest_view(spec: RunSpec) -> RunSpec {
    spec.bpf_stats(true)
        .command(HookPoint::WorkloadRunning, GuestCommand::bpftool_map_show())
        .command(
            HookPoint::WorkloadRunning,
            GuestCommand::bpftool_prog_show(),
        )
        .command(HookPoint::WorkloadRunning, GuestCommand::bpftool_bss_dump())
        .command(HookPoint::WorkloadRunning, GuestCommand::proc_pid_stats())
        .command(HookPoint::WorkloadRunning, GuestCommand::proc_stat())
        .command(HookPoint::WorkloadRunning, GuestCommand::sched_ext_sysfs())
        .end(RunEnd::Hold)
}

fn boot(lab: &Lab, kernel: &KernelAssets, spec: &RunSpec) -> QemuEngine {
    let initrd = lab.initramfs(spec).expect("building the initramfs");
    let mut cfg = QemuConfig::new(
        &kernel.vmlinuz,
        Some(initrd.path().to_path_buf()),
        "console=ttyS0 panic=-1 loglevel=4",
    );
    // The size the benchmark figures are quoted for.
    cfg.memory_mib = 512;
    cfg.vcpus = 2;
    QemuEngine::launch(&cfg).expect("launching QEMU")
}

/// Waits for a console line containing `needle`; panics with the console tail if not.
fn wait_console(engine: &QemuEngine, needle: &str, timeout: Duration) {
    let c = engine.console();
    if let Err(e) = c.wait_contains(Default::default(), timeout, needle) {
        panic!(
            "waiting for {needle:?} on the guest console: {e:?}\n--- console tail ---\n{}",
            engine.console_tail()
        );
    }
}

fn console_log(engine: &QemuEngine) -> ConsoleLog {
    let (lines, _) = engine.console().lines_since(Default::default());
    ConsoleLog::parse(&lines.join("\n"))
}

/// A kernel view of the guest's RAM (live or frozen).
fn guest_kernel(engine: &QemuEngine, regs: &[Option<freeze::CpuRegs>]) -> GuestKernel {
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).expect("mapping guest RAM");
    let opts = KernelOptions {
        cpus: regs.iter().flatten().copied().collect(),
        ..Default::default()
    };
    GuestKernel::new(phys, opts).expect("finding the kernel in guest RAM")
}

fn guest_btf(k: &GuestKernel) -> Btf {
    let start = k.require_symbol("__start_BTF").expect("__start_BTF");
    let stop = k.require_symbol("__stop_BTF").expect("__stop_BTF");
    Btf::from_guest(k, start, stop).expect("loading BTF from guest memory")
}

/// Captures the frozen guest.
fn capture_frozen(engine: &QemuEngine, freeze: &FreezeOutcome) -> (CaptureOutput, Frozen) {
    capture_frozen_with(engine, freeze, &CaptureOptions::default())
}

fn capture_frozen_with(
    engine: &QemuEngine,
    freeze: &FreezeOutcome,
    opts: &CaptureOptions,
) -> (CaptureOutput, Frozen) {
    let k = guest_kernel(engine, &freeze.vcpus);
    let btf = guest_btf(&k);
    let out = {
        let renderer = BtfRenderer::new(&btf);
        let target = Target {
            kernel: Kernel {
                mem: &k,
                syms: &k,
                types: &btf,
            },
            renderer: Some(&renderer),
            vcpu_regs: freeze.vcpus.clone(),
        };
        scx_walk::capture(&target, opts)
    };
    for p in &out.phases {
        eprintln!(
            "capture phase {:<16} {:>8.2} ms",
            p.name,
            p.elapsed.as_secs_f64() * 1e3
        );
    }
    for l in &out.log {
        eprintln!("capture log: {l}");
    }
    let json = out.report.to_json().expect("serializing the report");
    e2e_tests::validate_report_json(&json).expect("the dump validates against the schema");
    let frozen = Frozen::read(&k, &btf, &out.report);
    (out, frozen)
}

/// The same frozen guest captured with a deadline that has already passed: the heavy
/// phases stop and the report says where.
fn capture_past_deadline(engine: &QemuEngine, freeze: &FreezeOutcome) -> FailureDumpReport {
    let k = guest_kernel(engine, &freeze.vcpus);
    let btf = guest_btf(&k);
    let renderer = BtfRenderer::new(&btf);
    let target = Target {
        kernel: Kernel {
            mem: &k,
            syms: &k,
            types: &btf,
        },
        renderer: Some(&renderer),
        vcpu_regs: freeze.vcpus.clone(),
    };
    let opts = CaptureOptions {
        deadline: Some(Duration::ZERO),
        ..Default::default()
    };
    scx_walk::capture(&target, &opts).report
}

/// Facts the test reads from the frozen guest itself, to relate task addresses in the
/// dump to pids.
struct Frozen {
    pid_of: BTreeMap<u64, i32>,
}

impl Frozen {
    fn read(k: &GuestKernel, btf: &Btf, r: &FailureDumpReport) -> Frozen {
        use guest_mem::KvaReadExt;
        let pid_off = btf.offset_of("task_struct.pid").expect("task_struct.pid");
        let mut kvas: BTreeSet<u64> = BTreeSet::new();
        for rq in &r.rq_scx_states {
            kvas.extend(&rq.runnable_task_kvas);
        }
        for d in &r.dsq_states {
            kvas.extend(&d.task_kvas);
        }
        let pid_of = kvas
            .into_iter()
            .filter_map(|t| {
                let v = k.read_u32(Kva(t + pid_off)).ok()?;
                Some((t, v as i32))
            })
            .collect();
        Frozen { pid_of }
    }
}

// ---------------------------------------------------------------------------------------
// The guest's own view and the comparisons.

fn json_output(log: &ConsoleLog, label: &str) -> Value {
    let text = log
        .output(label)
        .unwrap_or_else(|| panic!("guest printed no {label} output"));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{label} is not JSON: {e}: {text}"))
}

/// Same maps (by name and type) with the same value size and max_entries.
fn assert_maps_agree(log: &ConsoleLog, r: &FailureDumpReport) -> usize {
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

/// Every struct_ops program the guest saw is in `prog_runtime_stats` with at least the
/// run count and run time the guest saw.
fn assert_progs_agree(log: &ConsoleLog, r: &FailureDumpReport) -> usize {
    let progs = json_output(log, "bpftool-prog-show");
    let mut checked = 0;
    for p in progs.as_array().expect("prog show: array") {
        if p["type"].as_str() != Some("struct_ops") {
            continue;
        }
        let name = p["name"].as_str().unwrap_or_default();
        // aux->name holds at most 15 bytes; bpftool prints the full BTF function name.
        let s = r
            .prog_runtime_stats
            .iter()
            .find(|s| !s.name.is_empty() && name.starts_with(&s.name))
            .unwrap_or_else(|| panic!("struct_ops prog {name} not in prog_runtime_stats"));
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
fn rendered_number(v: &RenderedValue) -> Option<i128> {
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

/// How a `.bss` member may change between the guest's print and the freeze.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BssRule {
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
fn assert_bss_agrees(
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

/// One `/proc/<pid>/stat` line: (pid, comm, ppid, pgrp, session).
fn parse_stat(line: &str) -> Option<(i32, String, i32, i32, i32)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    Some((
        pid,
        comm,
        rest.get(1)?.parse().ok()?,
        rest.get(2)?.parse().ok()?,
        rest.get(3)?.parse().ok()?,
    ))
}

/// Same pids with the same comm, parent, process group and session. Processes that can
/// have exited between the guest's print and the freeze (the guest's own short-lived
/// commands) may be missing; kernel threads and the workload may not.
fn assert_tasks_agree(log: &ConsoleLog, r: &FailureDumpReport, must_have: &[&str]) -> usize {
    let text = log
        .output("proc-pid-stat")
        .expect("guest printed no /proc/<pid>/stat");
    let by_pid: BTreeMap<i32, &dump_schema::TaskEnrichment> =
        r.task_enrichments.iter().map(|t| (t.pid, t)).collect();
    let mut checked = 0;
    for line in text.lines() {
        let Some((pid, comm, ppid, pgrp, sid)) = parse_stat(line) else {
            continue;
        };
        let Some(t) = by_pid.get(&pid) else {
            let kernel_thread = ppid == 2 || pid <= 2;
            assert!(
                !kernel_thread && !must_have.contains(&comm.as_str()),
                "pid {pid} ({comm}) not in the dump"
            );
            continue;
        };
        // /proc shows a kernel worker's comm with its workqueue appended
        // (`kworker/0:1-events`) and a kernel thread's full name beyond the 15 bytes of
        // `task_struct.comm`; the dump has the task's own comm.
        if comm.starts_with("kworker/") || (ppid == 2 && t.comm.len() == 15) {
            assert!(
                comm.starts_with(&t.comm),
                "pid {pid} comm {comm} vs {}",
                t.comm
            );
        } else {
            assert_eq!(t.comm, comm, "pid {pid} comm");
        }
        assert_eq!(t.real_parent_pid, ppid, "pid {pid} ({comm}) parent");
        assert_eq!(t.pgid, pgrp, "pid {pid} ({comm}) pgrp");
        assert_eq!(t.sid, sid, "pid {pid} ({comm}) session");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} tasks matched");
    checked
}

/// Per-CPU times: the dump (later) shows at least what `/proc/stat` showed, and not more
/// than the time that can have passed since (a unit error would be far off).
fn assert_cputime_agrees(log: &ConsoleLog, r: &FailureDumpReport, since_view: Duration) {
    let text = log
        .output("proc-stat")
        .expect("guest printed no /proc/stat");
    // USER_HZ is 100: one tick is 10 ms.
    let tick_ns = 10_000_000u64;
    let slack = (since_view.as_secs() + 5) * 100;
    let mut cpus = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(cpu) = f
            .first()
            .and_then(|c| c.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let d = r
            .per_cpu_time
            .iter()
            .find(|p| p.cpu == cpu)
            .unwrap_or_else(|| panic!("cpu{cpu} missing from per_cpu_time"));
        for (what, guest, dump_ns) in [
            ("user", n(1), d.cpustat_user_ns),
            ("nice", n(2), d.cpustat_nice_ns),
            ("system", n(3), d.cpustat_system_ns),
            ("softirq", n(7), d.cpustat_softirq_ns),
        ] {
            let dump = dump_ns / tick_ns;
            assert!(
                dump >= guest,
                "cpu{cpu} {what}: dump {dump} ticks < guest {guest}"
            );
            assert!(
                dump <= guest + slack,
                "cpu{cpu} {what}: dump {dump} ticks >> guest {guest}"
            );
        }
        cpus += 1;
    }
    assert_eq!(cpus, r.per_cpu_time.len(), "CPU count");
    if let Some(line) = text.lines().find(|l| l.starts_with("softirq ")) {
        let g: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        for (i, gv) in g.iter().enumerate().take(10) {
            let dv: u64 = r.per_cpu_time.iter().map(|p| p.softirqs[i]).sum();
            assert!(dv >= *gv, "softirq {i}: dump {dv} < guest {gv}");
        }
    }
}

/// `/sys/kernel/sched_ext`: the scheduler is attached, and the events the guest saw are at
/// most what the dump's freeze sample shows.
fn assert_sysfs_agrees(log: &ConsoleLog, r: &FailureDumpReport, ops: &str) {
    let text = log
        .output(LAST_VIEW_LABEL)
        .expect("guest printed no sysfs view");
    let kv: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim_start_matches("/sys/kernel/sched_ext/"), v.trim()))
        .collect();
    assert_eq!(kv.get("state"), Some(&"enabled"), "sysfs: {kv:?}");
    assert_eq!(kv.get("root/ops"), Some(&ops), "sysfs: {kv:?}");
    assert!(r.scx_sched_state.is_some(), "no scx_sched_state");
    let last = r
        .event_counter_timeline
        .last()
        .expect("a freeze-time event sample");
    if let Some(ev) = kv.get("root/events") {
        // First line: `SCX_EV_SELECT_CPU_FALLBACK <n>`.
        if let Some(n) = ev
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<i64>().ok())
        {
            assert!(
                last.select_cpu_fallback >= n,
                "select_cpu_fallback {} < {n}",
                last.select_cpu_fallback
            );
        }
    }
}

/// The kernel's `scx_dump_state` text (printed by the guest after the scheduler left):
/// per CPU `CPU <n>: nr_run=… flags=… ksync=…`, `curr=<comm>[<pid>]`, then its runnable
/// tasks as `R <comm>[<pid>]` (`*R` for the current one). The kernel writes it from an
/// irq_work right after the exit kind flips, and the host freezes within milliseconds of
/// the flip: the two moments are close but not identical, so stable facts must be equal
/// (ONLINE flag, every listed task known to the dump) and moving ones close (most listed
/// tasks on the same CPU's runqueue, `kick_sync` within a few thousand kicks).
fn assert_scx_dump_agrees(log: &ConsoleLog, r: &FailureDumpReport, f: &Frozen) -> usize {
    let text = log.output("scx-dump").unwrap_or_default();
    assert!(
        !text.trim().is_empty(),
        "the kernel printed no scx_dump_state text"
    );
    eprintln!("--- kernel scx_dump_state ---\n{text}\n---");
    let rq_of = |c: u32| {
        r.rq_scx_states
            .iter()
            .find(|s| s.cpu == c)
            .unwrap_or_else(|| panic!("CPU {c} missing from rq_scx_states"))
    };
    let on_cpu = |c: u32, pid: i32| {
        let rq = rq_of(c);
        rq.curr_pid == pid
            || rq
                .runnable_task_kvas
                .iter()
                .any(|t| f.pid_of.get(t) == Some(&pid))
    };
    let mut checked = 0;
    let (mut listed, mut same_cpu) = (0, 0);
    let mut cpus = 0;
    let mut cpu: Option<u32> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("CPU ") {
            let (n, tail) = rest.split_once(':').unwrap_or((rest, ""));
            cpu = n.trim().parse().ok();
            let Some(c) = cpu else { continue };
            let rq = rq_of(c);
            cpus += 1;
            for kv in tail.split_whitespace() {
                if let Some(v) = kv.strip_prefix("flags=") {
                    // SCX_RQ_ONLINE (bit 0) is stable; the other bits (CLK_VALID,
                    // IN_WAKEUP, ...) come and go with every rq lock section.
                    let v = u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap();
                    assert_eq!(rq.flags & 1, v & 1, "CPU {c} rq.scx.flags ONLINE");
                    checked += 1;
                }
                if let Some(v) = kv
                    .strip_prefix("ksync=")
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    assert!(
                        rq.kick_sync.abs_diff(v) <= 5000,
                        "CPU {c} kick_sync {} vs kernel's {v}",
                        rq.kick_sync
                    );
                    checked += 1;
                }
            }
            continue;
        }
        let Some(c) = cpu else { continue };
        let task = l
            .strip_prefix("R ")
            .or_else(|| l.strip_prefix("*R "))
            .and_then(|t| t.split_whitespace().next())
            .or_else(|| l.split_whitespace().find_map(|w| w.strip_prefix("curr=")));
        let Some(pid) = task.and_then(bracket_pid) else {
            continue;
        };
        assert!(
            r.task_enrichments.iter().any(|t| t.pid == pid),
            "pid {pid} (CPU {c} in the kernel's dump) not enriched"
        );
        listed += 1;
        if on_cpu(c, pid) {
            same_cpu += 1;
        }
        checked += 1;
    }
    assert!(
        cpus as usize == r.rq_scx_states.len(),
        "the kernel listed {cpus} CPUs"
    );
    assert!(listed > 0, "no task in the kernel's dump");
    assert!(
        same_cpu * 2 >= listed,
        "only {same_cpu} of the {listed} tasks the kernel listed are on the same CPU in the dump"
    );
    checked
}

/// Samples taken while the guest ran, then the one at the freeze: time goes forward and
/// the cumulative counters never go back.
fn assert_timeline_monotone(r: &FailureDumpReport) {
    let tl = &r.event_counter_timeline;
    assert!(
        tl.len() >= 2,
        "expected running samples plus the freeze sample: {tl:?}"
    );
    for w in tl.windows(2) {
        assert!(w[1].elapsed_ms >= w[0].elapsed_ms, "{w:?}");
        for ((name, a), (_, b)) in w[0].counters().iter().zip(w[1].counters().iter()) {
            assert!(b >= a, "{name} went back from {a} to {b}");
        }
    }
}

fn bracket_pid(s: &str) -> Option<i32> {
    let open = s.rfind('[')?;
    let close = s.rfind(']')?;
    s.get(open + 1..close)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Runs.

struct ErrorRun {
    log: ConsoleLog,
    late: CaptureOutput,
    frozen: Frozen,
    exit_kind: u32,
    since_view: Duration,
    dual: dump_schema::DualFailureDumpReport,
    early_frozen: Option<Frozen>,
    truncated: FailureDumpReport,
}

/// Boots with a failing scheduler, waits for the guest's view, then watches for the
/// error exit; meanwhile scans runnable ages and takes the early snapshot of a dual
/// capture when the oldest passes half the watchdog timeout. After the late capture the
/// guest is thawed so the kernel prints its own dump.
/// The file the guest creates once it has printed its view (gates the stall's victim).
const VIEW_DONE: &str = "/tmp/ktstr-view-done";

fn error_run(which: TestScheduler, workload: &str, after_ms: u32) -> Option<ErrorRun> {
    let (lab, kernel) = lab()?;
    let params = TestSchedulerParams {
        after_ms: Some(after_ms),
        ..Default::default()
    };
    let spec = with_guest_view(
        RunSpec::new()
            .scheduler(SchedulerChoice::Test { which, params })
            .workload(workload)
            .settle_ms(1000),
    )
    .command(
        HookPoint::WorkloadRunning,
        GuestCommand::new("view-done", format!("touch {VIEW_DONE}")),
    );
    let mut engine = boot(&lab, &kernel, &spec);
    // Symbols and BTF are ready well before the failure: the watch must not miss it.
    wait_console(
        &engine,
        "KTSTR-PHASE: scheduler-attached",
        Duration::from_secs(240),
    );

    let live = guest_kernel(&engine, &[]);
    live.set_translation_cache(false);
    let btf = guest_btf(&live);
    let lk = Kernel {
        mem: &live,
        syms: &live,
        types: &btf,
    };
    let trig = TriggerLocation::resolve(&lk).expect("trigger location");
    let mut tracker = DualTracker::new();
    let scanner = RunnableScanner::new(&lk)
        .inspect_err(|e| tracker.prerequisites_unavailable(e))
        .ok();
    // Event counters sampled while the guest runs (about once a second).
    let sampler = scx_walk::EventSampler::new(&lk).expect("event sampler");
    let run_start = Instant::now();
    let mut timeline = Vec::new();
    let mut last_sample: Option<Instant> = None;
    let mut early_frozen = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_scan = String::new();
    let view_line = format!("KTSTR-END {LAST_VIEW_LABEL}");
    let mut view_at: Option<Instant> = None;
    let triggered = loop {
        if view_at.is_none()
            && engine
                .console()
                .wait_contains(Default::default(), Duration::ZERO, &view_line)
                .is_ok()
        {
            view_at = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            panic!(
                "no error exit within 300 s; exit_kind now {:?}; last scan {last_scan}\n--- console tail ---\n{}",
                trig.read_exit_kind(&lk),
                engine.console_tail()
            );
        }
        let opts = WatchOptions {
            // Scan runnable ages every 50 ms between polls of the trigger.
            timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        };
        let t = ExitKindTrigger {
            root_ptr: trig.scx_root,
            exit_kind_offset: trig.exit_kind_offset,
            threshold: scx_walk::sched::SCX_EXIT_ERROR,
            exit_info: trig
                .exit_info
                .map(|(exit_info, kind)| ExitInfoOffsets { exit_info, kind }),
        };
        match watch_exit_kind(&mut engine, t, |kva| live.translate(kva), &opts).expect("watch") {
            WatchOutcome::Triggered(t) => break t,
            WatchOutcome::TimedOut(_) | WatchOutcome::Stopped(_) => {}
        }
        if last_sample.is_none_or(|l| l.elapsed() >= Duration::from_secs(1)) {
            last_sample = Some(Instant::now());
            // A torn read of a running guest is retried at the next second.
            if let Ok(Some(s)) = sampler.sample(&lk, run_start.elapsed().as_millis() as u64) {
                timeline.push(s);
            }
        }
        if let Some(sc) = &scanner {
            let scan = sc.scan(&lk);
            last_scan = format!("{scan:?}");
            if let Ok(scan) = scan
                && tracker.observe(&scan)
            {
                let f = engine
                    .freeze(Duration::from_secs(10))
                    .expect("early freeze");
                let (early, fz) = capture_frozen(&engine, &f);
                engine.thaw().expect("thaw after the early snapshot");
                eprintln!(
                    "early snapshot: oldest runnable pid {:?} age {}j threshold {}j",
                    scan.oldest.map(|o| o.pid),
                    scan.max_age_jiffies(),
                    scan.threshold_jiffies
                );
                tracker.set_early(early.report, &scan);
                early_frozen = Some(fz);
            }
        }
    };
    // The guest's view must be complete before the freeze (the console stops with it).
    let view_at = view_at.or_else(|| {
        engine
            .console()
            .wait_contains(Default::default(), Duration::ZERO, &view_line)
            .ok()
            .map(|_| Instant::now())
    });
    let view_at = view_at.unwrap_or_else(|| {
        panic!(
            "the failure came before the guest printed its view; raise after_ms\n--- console tail ---\n{}",
            engine.console_tail()
        )
    });
    eprintln!(
        "trigger: exit_kind {} flip→frozen {:?} ({} polls, {:.0} Hz)",
        triggered.exit_kind,
        triggered.flip_to_frozen,
        triggered.stats.polls,
        triggered.stats.rate_hz()
    );
    let late_opts = CaptureOptions {
        timeline: timeline.clone(),
        elapsed_ms: run_start.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let (late, frozen) = capture_frozen_with(&engine, &triggered.freeze, &late_opts);
    let since_view = view_at.elapsed();
    let truncated = capture_past_deadline(&engine, &triggered.freeze);
    // For the whole-process benchmark (crates/scx-walk/examples/vmcore_dump.rs): keep a
    // vmcore of this frozen guest when asked.
    if let Ok(dir) = std::env::var("SCX_E2E_VMCORE_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{}.vmcore", which.name()));
        engine.dump_vmcore(&path).expect("dump-guest-memory");
        eprintln!("vmcore written to {}", path.display());
    }
    engine.thaw().expect("thaw");
    wait_console(&engine, "KTSTR-END scx-dump", Duration::from_secs(60));
    let log = console_log(&engine);
    let dual = tracker.finish(late.report.clone());
    let json = serde_json::to_string(&dual).unwrap();
    e2e_tests::validate_report_json(&json).expect("the dual dump validates");
    Some(ErrorRun {
        log,
        late,
        frozen,
        exit_kind: triggered.exit_kind,
        since_view,
        dual,
        early_frozen,
        truncated,
    })
}

/// The test schedulers' `.bss` (crates/freeze/lab/sched/ktstr_sched.bpf.h).
fn test_sched_bss(name: &str) -> BssRule {
    match name {
        n if n.starts_with("nr_") => BssRule::Grows,
        "vtime_now" => BssRule::Grows,
        "victim_pid" | "error_raised" | "exit_kind" | "exit_code" | "ktstr_magic_seen" => {
            BssRule::SetOnce
        }
        _ => BssRule::Equal,
    }
}

#[test]
fn scx_stall_dump_agrees_with_guest_and_kernel() {
    // The victim starts once the guest has printed its view, so the stall (and the
    // freeze) always come after it, however slow the emulated guest is.
    let workload = format!(
        "ktstr_spin 2 240 & (until [ -e {VIEW_DONE} ]; do sleep 1; done; ktstr_victim 120) & wait"
    );
    let Some(run) = error_run(TestScheduler::Stall, &workload, 1000) else {
        return;
    };
    let r = &run.late.report;
    assert_eq!(run.exit_kind, 1026, "SCX_EXIT_ERROR_STALL");
    assert_eq!(r.scx_sched_state.as_ref().unwrap().exit_kind, 1026);
    assert_eq!(r.scx_walker_unavailable, None);
    assert_eq!(r.active_obj_name.as_deref(), Some("ktstr_ops"));
    assert!(!r.active_map_kvas.is_empty());
    let maps = assert_maps_agree(&run.log, r);
    let progs = assert_progs_agree(&run.log, r);
    let bss = assert_bss_agrees(&run.log, r, &test_sched_bss);
    let tasks = assert_tasks_agree(&run.log, r, &[]);
    assert_cputime_agrees(&run.log, r, run.since_view);
    assert_sysfs_agrees(&run.log, r, "ktstr_stall");
    let dumped = assert_scx_dump_agrees(&run.log, r, &run.frozen);
    assert_timeline_monotone(r);
    // The victim waits on the never-consumed user DSQ 0x101.
    let stall_dsq = r
        .dsq_states
        .iter()
        .find(|d| d.id == 0x101)
        .expect("user DSQ 0x101");
    assert_eq!(stall_dsq.origin, "user");
    let victims: Vec<i32> = stall_dsq
        .task_kvas
        .iter()
        .filter_map(|t| run.frozen.pid_of.get(t).copied())
        .collect();
    let victim_pid = r
        .task_enrichments
        .iter()
        .find(|t| t.comm == "ktstr-victim")
        .expect("victim enriched")
        .pid;
    assert!(
        victims.contains(&victim_pid),
        "victim {victim_pid} not on DSQ 0x101: {victims:?}"
    );
    // Dual capture: the early snapshot already shows the victim waiting.
    let early = run
        .dual
        .early
        .as_ref()
        .expect("an early snapshot was taken");
    assert!(run.dual.early_max_age_jiffies >= run.dual.early_threshold_jiffies);
    let ef = run.early_frozen.as_ref().unwrap();
    let early_waiting: Vec<i32> = early
        .dsq_states
        .iter()
        .filter(|d| d.id == 0x101)
        .flat_map(|d| d.task_kvas.iter().filter_map(|t| ef.pid_of.get(t).copied()))
        .collect();
    assert!(
        early_waiting.contains(&victim_pid),
        "early snapshot: victim not waiting ({early_waiting:?})"
    );
    // Past the deadline: no map captured, all counted, the time of the cut recorded;
    // the scheduler state (read first) is still there.
    let t = &run.truncated;
    assert!(t.maps.is_empty());
    assert_eq!(t.maps_truncated as usize, r.maps.len());
    assert!(t.dump_truncated_at_us.is_some());
    assert!(t.scx_sched_state.is_some() && !t.rq_scx_states.is_empty());
    assert_eq!(
        t.sdt_alloc_unavailable.as_deref(),
        Some(dump_schema::reasons::SDT_ALLOC_DEADLINE)
    );
    e2e_tests::validate_report_json(&t.to_json().unwrap()).unwrap();
    eprintln!(
        "stall: checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks, {dumped} kernel-dump facts"
    );
}

#[test]
fn scx_error_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run(TestScheduler::Error, "ktstr_spin 2 240", 90_000) else {
        return;
    };
    let r = &run.late.report;
    assert_eq!(run.exit_kind, 1025, "SCX_EXIT_ERROR_BPF");
    assert_eq!(r.scx_sched_state.as_ref().unwrap().exit_kind, 1025);
    assert_eq!(r.scx_walker_unavailable, None);
    let maps = assert_maps_agree(&run.log, r);
    let progs = assert_progs_agree(&run.log, r);
    let bss = assert_bss_agrees(&run.log, r, &test_sched_bss);
    let tasks = assert_tasks_agree(&run.log, r, &[]);
    assert_cputime_agrees(&run.log, r, run.since_view);
    assert_sysfs_agrees(&run.log, r, "ktstr_error");
    let dumped = assert_scx_dump_agrees(&run.log, r, &run.frozen);
    assert_timeline_monotone(r);
    // No task starves under the error scheduler: the dual report says why it has no
    // early snapshot, in the stable shape.
    if run.dual.early.is_none() {
        let why = run.dual.early_skipped_reason.as_deref().unwrap();
        assert!(
            why.starts_with("max_age never crossed threshold (peak="),
            "{why}"
        );
    }
    eprintln!(
        "error: checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks, {dumped} kernel-dump facts"
    );
}

/// The real third-party scheduler `scx_bpfland` (crates.io) under a CPU workload: no
/// error exit, so the host freezes on demand right after the guest printed its view.
#[test]
fn scx_bpfland_dump_agrees_with_guest() {
    let Some((lab, kernel)) = lab() else { return };
    lab.bpfland().expect("provisioning scx_bpfland");
    let spec = with_guest_view(
        RunSpec::new()
            .scheduler(SchedulerChoice::bpfland())
            .workload("ktstr_spin 3 600")
            .settle_ms(2000)
            .attach_timeout_s(300),
    );
    let mut engine = boot(&lab, &kernel, &spec);
    wait_console(
        &engine,
        &format!("KTSTR-END {LAST_VIEW_LABEL}"),
        Duration::from_secs(600),
    );
    let view_at = Instant::now();
    let f = engine.freeze(Duration::from_secs(10)).expect("freeze");
    assert!(f.all_parked());
    let (out, _frozen) = capture_frozen(&engine, &f);
    let since_view = view_at.elapsed();
    engine.thaw().expect("thaw");
    let log = console_log(&engine);
    let r = &out.report;
    let ops = log
        .phase("scheduler-attached")
        .and_then(|p| p.field("ops"))
        .expect("bpfland attached")
        .to_string();
    assert!(ops.starts_with("bpfland"), "{ops}");
    assert_eq!(r.scx_walker_unavailable, None);
    let st = r.scx_sched_state.as_ref().expect("scx_sched_state");
    assert!(
        st.exit_kind < scx_walk::sched::SCX_EXIT_ERROR,
        "no error exit: {st:?}"
    );
    assert!(
        r.active_obj_name.is_some(),
        "struct_ops map of bpfland found"
    );
    for origin in [
        "local cpu 0",
        "local cpu 1",
        "bypass cpu 0",
        "global node 0",
    ] {
        assert!(
            r.dsq_states.iter().any(|d| d.origin == origin),
            "no {origin} DSQ in {:?}",
            r.dsq_states.iter().map(|d| &d.origin).collect::<Vec<_>>()
        );
    }
    assert!(
        r.dsq_states.iter().any(|d| d.origin == "user"),
        "bpfland creates user DSQs"
    );
    let maps = assert_maps_agree(&log, r);
    let progs = assert_progs_agree(&log, r);
    // bpfland's .bss holds gauges and counters that move while it runs: check that every
    // member the guest printed is rendered as a number.
    let bss = assert_bss_agrees(&log, r, &|_| BssRule::Any);
    let tasks = assert_tasks_agree(&log, r, &[]);
    assert_cputime_agrees(&log, r, since_view);
    assert_sysfs_agrees(&log, r, &ops);
    // Workload tasks run under sched_ext.
    assert!(r.task_enrichments.iter().any(|t| t.sched_class == "ext"));
    eprintln!("bpfland: checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks");
}
