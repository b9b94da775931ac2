//! `ktstr run` and `ktstr capture --vmcore` on a real 7.3 sched_ext guest under QEMU (and
//! the stall run again on the 6.12 LTS, `--kernel-version 6.12`):
//! the default run (`stall`) exits 1 with a dual dump that validates, names the starved
//! task, and whose early snapshot (taken when the oldest runnable task passed half the
//! watchdog timeout) already shows it waiting on the scheduler's DSQ; its vmcore gives the
//! same verdict through `capture` and opens in drgn; `ok` with a timeout exits 0 with a
//! dual dump whose early snapshot was skipped, in the stable reason shape.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision`); without QEMU the tests print
//! why they skip. CI provisions both (and `pip install drgn` for the drgn check).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use btf_walk::Btf;
use dump_schema::{DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny};
use guest_lab::testing::{self, need_qemu};
use guest_mem::{KernelOptions, Kva, KvaReadExt, Vmcore};
use support::{GuestRun, dual, ktstr, late, the_dump};

/// `DSQ 0x101`'s waiting tasks in `r`.
fn stall_dsq_tasks(r: &FailureDumpReport) -> Vec<u64> {
    r.dsq_states
        .iter()
        .filter(|d| d.id == 0x101)
        .flat_map(|d| d.task_kvas.iter().copied())
        .collect()
}

/// The starved task: enriched by name, and waiting on the `stall` scheduler's
/// never-consumed DSQ 0x101.
fn assert_names_victim(r: &FailureDumpReport) -> i32 {
    let victim = r
        .task_enrichments
        .iter()
        .find(|t| t.comm == "ktstr-victim")
        .unwrap_or_else(|| panic!("no ktstr-victim among {} tasks", r.task_enrichments.len()));
    let dsq = r
        .dsq_states
        .iter()
        .find(|d| d.id == 0x101)
        .expect("user DSQ 0x101");
    assert!(
        dsq.nr >= 1 && !dsq.task_kvas.is_empty(),
        "nothing waits on DSQ 0x101: {dsq:?}"
    );
    victim.pid
}

/// A kernel line the runs are checked on.
struct Line {
    /// `--kernel-version` (none: the lab's default, 7.3).
    version: Option<&'static str>,
    /// What the trigger watches there.
    exit_kind: &'static str,
    /// Whether the kernel has sched_ext event counters.
    events: bool,
}

/// 7.3: `struct scx_sched` behind `scx_root`, event counters.
const LINE_7: Line = Line {
    version: None,
    exit_kind: "scx_sched.exit_kind",
    events: true,
};

/// The 6.12 LTS (built by the lab): the scheduler is globals, no event counters.
const LINE_612: Line = Line {
    version: Some("6.12"),
    exit_kind: "scx_exit_kind",
    events: false,
};

#[test]
fn guest_run_stall_exits_1_and_names_the_starved_task() {
    stall_run(&LINE_7);
}

/// The same run on 6.12: exit kind 1026 from the global `scx_exit_kind`, the victim on
/// its DSQ, the same offline verdict from the vmcore.
#[test]
fn guest_run_612_stall_exits_1_and_names_the_starved_task() {
    stall_run(&LINE_612);
}

fn stall_run(line: &Line) {
    let mut args = vec!["-v", "run", "--out", "out", "--vmcore-out", "stall.vmcore"];
    if let Some(v) = line.version {
        args.extend(["--kernel-version", v]);
    }
    let Some(run) = GuestRun::new(&args) else {
        return;
    };
    let core = run.path().join("stall.vmcore");
    assert_eq!(run.code(), Some(1), "a stall is a captured failure");
    let stderr = run.stderr();
    assert_engine_rule(&stderr);
    let (path, json) = run.dump();
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("stall-")
    );
    let report = FailureDumpReportAny::from_json(&json).unwrap();
    let r = late(&report);
    let st = r.scx_sched_state.as_ref().expect("scx_sched_state");
    assert_eq!(st.exit_kind, 1026, "SCX_EXIT_ERROR_STALL");
    let victim_pid = assert_names_victim(r);
    assert_exit_info_of_the_stall(r, &stderr, victim_pid, line);
    let early_kvas = assert_early_snapshot(dual(&report), &stderr, victim_pid, line);
    // The rendering on stdout is the file's Display, and names the task too.
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert_eq!(stdout.trim_end(), report.to_string().trim_end());
    assert!(
        stdout.contains("ktstr-victim"),
        "the rendering does not name the victim"
    );

    // The vmcore written at the freeze: `capture` gives the same verdict, offline.
    let o = ktstr(
        &[
            "capture",
            "--vmcore",
            "stall.vmcore",
            "--json",
            "--out",
            "from-vmcore.json",
        ],
        run.path(),
    );
    assert_eq!(o.status.code(), Some(1), "the vmcore shows the error exit");
    let from_core = std::fs::read_to_string(run.path().join("from-vmcore.json")).unwrap();
    dump_schema::validate::validate_report_json(&from_core).unwrap();
    assert_eq!(
        from_core.trim_end(),
        String::from_utf8_lossy(&o.stdout).trim_end()
    );
    let rc = FailureDumpReportAny::from_json(&from_core).unwrap();
    let rc = late(&rc);
    assert_eq!(rc.scx_sched_state.as_ref().unwrap().exit_kind, 1026);
    assert_eq!(assert_names_victim(rc), victim_pid, "same victim offline");
    assert_eq!(
        rc.task_enrichments.len(),
        r.task_enrichments.len(),
        "same tasks"
    );

    // The early snapshot's waiting task is the victim: its task_struct, read from the
    // late freeze's vmcore (the victim still exists then), holds the victim's pid.
    let pids = pids_at(&core, &early_kvas);
    assert!(
        pids.contains(&victim_pid),
        "early snapshot: DSQ 0x101 holds pids {pids:?}, not the victim {victim_pid}"
    );

    drgn_reads_tasks(&core, victim_pid);
}

/// The exact instant and the reason: frozen at the write of the exit kind (the raw value
/// in guest memory 1026, not the disable worker's DONE), and `exit_info` read at the
/// second stop: the kernel's message naming the victim, the backtrace, and the kernel's
/// debug dump with the scheduler's own `ops.dump*` lines and the victim's task line.
fn assert_exit_info_of_the_stall(
    r: &FailureDumpReport,
    stderr: &str,
    victim_pid: i32,
    line: &Line,
) {
    assert!(
        stderr.contains(&format!("trigger: write watchpoint on {}", line.exit_kind)),
        "{stderr}"
    );
    assert!(
        stderr.contains("trigger (watchpoint): exit_kind 1026 (kind 1026)"),
        "stage 1 must read 1026 in guest memory: {stderr}"
    );
    assert!(
        stderr.contains("second stop at the disable worker's write"),
        "{stderr}"
    );
    let ei = r.exit_info.as_ref().expect("exit_info");
    assert_eq!(
        (ei.kind, ei.kind_name.as_str()),
        (1026, "SCX_EXIT_ERROR_STALL")
    );
    assert_eq!(ei.source, "watchpoint");
    assert_eq!(ei.reason.as_deref(), Some("runnable task stall"));
    let msg = ei.msg.as_deref().expect("exit_info.msg");
    assert!(
        msg.contains(&format!("ktstr-victim[{victim_pid}]")) && msg.contains("failed to run"),
        "{msg}"
    );
    assert!(
        ei.backtrace
            .iter()
            .any(|f| f.symbol.as_deref() == Some("scx_watchdog_workfn")),
        "{:?}",
        ei.backtrace
    );
    let t = ei.trigger.as_ref().expect("who triggered");
    assert!(t.pid.is_some() && t.comm.is_some(), "{t:?}");
    let dump = ei.kernel_dump.as_deref().expect("the kernel's debug dump");
    for (line, what) in [
        ("triggered exit kind 1026".to_string(), "the exit"),
        ("ktstr-dump: mode=1".into(), "the scheduler's ops.dump line"),
        ("ktstr-dump-cpu: cpu=0".into(), "ops.dump_cpu"),
        (format!("R ktstr-victim[{victim_pid}]"), "the victim's task"),
        (
            format!("ktstr-dump-task: pid={victim_pid} "),
            "the scheduler's ops.dump_task line for the victim",
        ),
    ] {
        assert!(dump.contains(&line), "{what} ({line:?}): {dump}");
    }
    assert_eq!(ei.unavailable, None);
}

/// `--engine auto` (the default) used the native engine only if its probe booted the
/// kernel; otherwise QEMU (`-v` prints both lines).
fn assert_engine_rule(stderr: &str) {
    let engine = stderr
        .lines()
        .find_map(|l| l.strip_prefix("ktstr: engine: "))
        .unwrap_or_else(|| panic!("no `engine:` line on stderr"));
    if stderr.contains("engine auto: native KVM engine not used") {
        assert!(engine.starts_with("qemu, accelerator "), "{engine}");
    } else {
        assert!(
            stderr.contains("engine auto: the native KVM engine printed the kernel banner"),
            "no verdict of the native probe on stderr"
        );
        assert_eq!(engine, "native KVM engine");
    }
}

/// The early snapshot of the stall's dual dump: taken before the error exit, at or past
/// the threshold (half the watchdog timeout of that snapshot's scheduler), with a task
/// waiting on DSQ 0x101 that is still waiting in the late snapshot; the host's scan (on
/// stderr) found the victim the oldest. Returns the early DSQ 0x101 task addresses.
fn assert_early_snapshot(
    d: &DualFailureDumpReport,
    stderr: &str,
    victim_pid: i32,
    line: &Line,
) -> Vec<u64> {
    let early = d
        .early
        .as_ref()
        .unwrap_or_else(|| panic!("no early snapshot: {:?}", d.early_skipped_reason));
    assert_eq!(d.early_skipped_reason, None);
    let st = early
        .scx_sched_state
        .as_ref()
        .expect("early scx_sched_state");
    assert!(
        st.exit_kind < 1024,
        "no error exit yet at the early snapshot: {st:?}"
    );
    assert!(d.early_threshold_jiffies > 0);
    assert_eq!(
        d.early_threshold_jiffies,
        st.watchdog_timeout / 2,
        "threshold = half the watchdog timeout"
    );
    assert!(
        d.early_max_age_jiffies >= d.early_threshold_jiffies,
        "age {} < threshold {}",
        d.early_max_age_jiffies,
        d.early_threshold_jiffies
    );
    let early_kvas = stall_dsq_tasks(early);
    assert!(!early_kvas.is_empty(), "nothing waits on DSQ 0x101 early");
    let late_kvas = stall_dsq_tasks(&d.late);
    assert!(
        early_kvas.iter().all(|k| late_kvas.contains(k)),
        "the early waiter {early_kvas:x?} still waits late ({late_kvas:x?})"
    );
    assert!(
        early
            .task_enrichments
            .iter()
            .any(|t| t.pid == victim_pid && t.comm == "ktstr-victim"),
        "the victim is enriched in the early snapshot"
    );
    // Event samples go on after the early snapshot: its running samples (all but the
    // last, taken at its freeze) begin the late timeline, which has more.
    let (et, lt) = (
        &early.event_counter_timeline,
        &d.late.event_counter_timeline,
    );
    if line.events {
        assert!(
            !et.is_empty() && lt.len() > et.len(),
            "{} / {}",
            et.len(),
            lt.len()
        );
        assert_eq!(et[..et.len() - 1], lt[..et.len() - 1]);
        assert!(lt.last().unwrap().elapsed_ms > et.last().unwrap().elapsed_ms);
    } else {
        assert!(et.is_empty() && lt.is_empty(), "no counters on this kernel");
    }
    let line = format!("early snapshot: oldest runnable pid {victim_pid} on CPU ");
    assert!(
        stderr.contains(&line),
        "the host's scan did not name the victim oldest ({line:?})"
    );
    early_kvas
}

/// `task_struct.pid` at each address, read from the vmcore.
fn pids_at(core: &Path, kvas: &[u64]) -> Vec<i32> {
    let vm = Vmcore::open(core).unwrap();
    let k = vm.kernel(KernelOptions::default()).unwrap();
    let start = k.require_symbol("__start_BTF").unwrap();
    let stop = k.require_symbol("__stop_BTF").unwrap();
    let btf = Btf::from_guest(&k, start, stop).unwrap();
    let off = btf.offset_of("task_struct.pid").unwrap();
    kvas.iter()
        .map(|&t| k.read_obj::<i32>(Kva(t + off)).unwrap())
        .collect()
}

/// drgn opens the vmcore and reads `init_task.comm` and the task list (`init_task.tasks`),
/// by addresses and offsets this test takes from the vmcore's own symbols and BTF.
fn drgn_reads_tasks(core: &Path, victim_pid: i32) {
    if let Err(why) = e2e_tests::drgn::available() {
        // The rest of the test has run; only this check is left out (CI installs drgn).
        return guest_lab::testing::skip(format!("the drgn check: {why}"));
    }
    let vm = Vmcore::open(core).unwrap();
    let k = vm.kernel(KernelOptions::default()).unwrap();
    let start = k.require_symbol("__start_BTF").unwrap();
    let stop = k.require_symbol("__stop_BTF").unwrap();
    let btf = Btf::from_guest(&k, start, stop).unwrap();
    let init_task = k.require_symbol("init_task").unwrap().0;
    let off = |f: &str| btf.offset_of(&format!("task_struct.{f}")).unwrap();
    let script = format!(
        r#"
import drgn
p = drgn.Program()
p.set_core_dump({core:?})
def comm(t): return p.read(t + {comm}, 16, False).split(b'\0')[0].decode()
head = {init_task} + {tasks}
print(comm({init_task}))
node = p.read_u64(head, False)
n = 0
while node != head and n < 100000:
    t = node - {tasks}
    print(p.read_u32(t + {pid}, False), comm(t))
    node = p.read_u64(node, False)
    n += 1
"#,
        core = core.display().to_string(),
        comm = off("comm"),
        tasks = off("tasks"),
        pid = off("pid"),
    );
    let stdout = testing::stdout_of(Command::new("python3").args(["-c", &script]), "drgn");
    let text = String::from_utf8_lossy(&stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("swapper/0"), "init_task.comm");
    let tasks: Vec<(i32, String)> = lines
        .filter_map(|l| {
            let (pid, comm) = l.split_once(' ')?;
            Some((pid.parse().ok()?, comm.to_string()))
        })
        .collect();
    assert!(
        tasks.iter().any(|(p, c)| *p == 1 && !c.is_empty()),
        "pid 1 in {tasks:?}"
    );
    assert!(
        tasks
            .iter()
            .any(|(p, c)| *p == victim_pid && c == "ktstr-victim"),
        "drgn's task list lacks the victim {victim_pid}: {tasks:?}"
    );
    eprintln!("drgn read {} tasks from the vmcore", tasks.len());
}

#[test]
fn guest_run_ok_with_timeout_exits_0() {
    let Some(run) = GuestRun::with_timeout("ok", "20s") else {
        return;
    };
    let (_, json) = run.dump();
    // --json prints the same document that was written.
    let printed =
        FailureDumpReportAny::from_slice(&run.output.stdout).expect("stdout is the JSON dump");
    let written = FailureDumpReportAny::from_json(&json).unwrap();
    assert_eq!(printed, written);
    let r = late(&written);
    let st = r
        .scx_sched_state
        .as_ref()
        .expect("the ok scheduler is attached at the capture");
    assert!(st.exit_kind < 1024, "no error exit: {st:?}");
    // No exit, no exit_info (and no second stop).
    assert_eq!(r.exit_info, None);
    // Nothing starves under `ok`: a dual report without its early half, and why, in the
    // stable shape, with the late scheduler's threshold (half its watchdog timeout).
    let d = dual(&written);
    assert!(d.early.is_none());
    let why = d
        .early_skipped_reason
        .as_deref()
        .expect("early_skipped_reason");
    let threshold = st.watchdog_timeout / 2;
    assert!(
        why.starts_with("max_age never crossed threshold (peak=")
            && why.ends_with(&format!("j, threshold={threshold}j)")),
        "{why}"
    );
    assert!(
        r.task_enrichments.iter().any(|t| t.sched_class == "ext"),
        "tasks run on sched_ext"
    );
}

/// `--early-at`: a scheduler that does not stall still gets its mid-run snapshot, at the
/// time asked, with the real (uncrossed) wait and threshold, and the guest runs on.
#[test]
fn guest_run_early_at_snapshots_a_healthy_scheduler_mid_run() {
    let args = [
        "-v",
        "run",
        "--scheduler",
        "ok",
        "--early-at",
        "4s",
        "--timeout",
        "20s",
        "--out",
        "out",
        "--json",
    ];
    let Some(run) = GuestRun::new(&args) else {
        return;
    };
    assert_eq!(run.code(), Some(0), "no failure under ok");
    let (_, json) = run.dump();
    let written = FailureDumpReportAny::from_json(&json).unwrap();
    let d = dual(&written);
    let early = d
        .early
        .as_ref()
        .expect("the early snapshot at the requested time");
    assert!(d.early_skipped_reason.is_none());
    assert!(
        d.early_threshold_jiffies > 0 && d.early_max_age_jiffies < d.early_threshold_jiffies,
        "taken before any wait crossed the threshold: {} / {}",
        d.early_max_age_jiffies,
        d.early_threshold_jiffies
    );
    assert!(
        early
            .task_enrichments
            .iter()
            .any(|t| t.sched_class == "ext")
    );
    let stderr = run.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("early snapshot at the requested time (--early-at)"))
        .unwrap_or_else(|| panic!("no early-snapshot line in:\n{stderr}"));
    assert!(line.contains("guest frozen"), "{line}");
    // The guest ran on after it: the late snapshot's clock is later.
    let late_r = late(&written);
    let clock = |r: &dump_schema::FailureDumpReport| {
        r.rq_scx_states
            .iter()
            .map(|q| q.rq_clock)
            .max()
            .unwrap_or(0)
    };
    assert!(
        clock(late_r) > clock(early),
        "the guest ran between the snapshots"
    );
}

/// Ctrl-C (SIGINT) while the guest runs means "capture now": the dump is written and the
/// exit code says whether it shows a failure (`ok`: 0).
#[test]
fn guest_run_interrupted_captures_on_demand() {
    use std::io::{BufRead, BufReader};
    if !need_qemu() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(["run", "--scheduler", "ok", "--out", "out"])
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        eprintln!("{line}");
        let armed = line.contains("watching for an error exit");
        seen.push(line);
        if armed {
            let st = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
            break;
        }
    }
    // Keep draining stderr: a closed pipe would make ktstr's next message fail.
    let rest = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .inspect(|l| eprintln!("{l}"))
            .collect::<Vec<_>>()
    });
    let out = child.wait_with_output().unwrap();
    seen.extend(rest.join().unwrap());
    assert_eq!(out.status.code(), Some(0), "stderr: {seen:?}");
    let (_, json) = the_dump(&d.path().join("out"));
    let r = FailureDumpReportAny::from_json(&json).unwrap();
    assert_eq!(r.schema(), "dual");
    let r = late(&r);
    assert!(!r.is_placeholder);
    assert!(
        r.scx_sched_state
            .as_ref()
            .is_some_and(|s| s.exit_kind < 1024)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        FailureDumpReportAny::from_json(&json)
            .unwrap()
            .to_string()
            .trim_end()
    );
}

/// `error` calls `scx_bpf_error()`: frozen at the write of 1025, and `exit_info` has the
/// scheduler's message verbatim and a backtrace whose BPF frame (the program that called
/// it) is named as the kernel names it, `bpf_prog_<tag>_<name>`.
#[test]
fn guest_run_error_has_the_bpf_message_and_frame() {
    let Some(run) = GuestRun::new(&["-v", "run", "--scheduler", "error", "--out", "out"]) else {
        return;
    };
    assert_eq!(run.code(), Some(1), "an error exit is a captured failure");
    let stderr = run.stderr();
    assert!(
        stderr.contains("trigger (watchpoint): exit_kind 1025 (kind 1025)"),
        "{stderr}"
    );
    let (_, json) = run.dump();
    let report = FailureDumpReportAny::from_json(&json).unwrap();
    let r = late(&report);
    let ei = r.exit_info.as_ref().expect("exit_info");
    assert_eq!((ei.kind, ei.source.as_str()), (1025, "watchpoint"));
    // The error scheduler's format, filled with its after_ms (10 s for `ktstr run`).
    assert_eq!(
        ei.msg.as_deref(),
        Some("ktstr error scheduler: scx_bpf_error() after 10000 ms as asked")
    );
    let bpf = ei
        .backtrace
        .iter()
        .filter_map(|f| f.symbol.as_deref())
        .find(|s| s.starts_with("bpf_prog_"));
    let bpf = bpf.unwrap_or_else(|| panic!("no BPF frame in {:?}", ei.backtrace));
    assert!(
        bpf.starts_with("bpf_prog_") && bpf.contains("_ktstr_"),
        "{bpf}"
    );
    let dump = ei.kernel_dump.as_deref().expect("the kernel's debug dump");
    assert!(dump.contains("ktstr-dump: mode=2"), "{dump}");
}
