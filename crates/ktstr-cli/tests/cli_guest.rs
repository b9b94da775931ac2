//! `ktstr run` and `ktstr capture --vmcore` on a real 7.3 sched_ext guest under QEMU:
//! the default run (`stall`) exits 1 with a dump that validates and names the starved
//! task; its vmcore gives the same verdict through `capture` and opens in drgn; `ok` with
//! a timeout exits 0.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision`); without QEMU the tests print
//! why they skip. CI provisions both (and `pip install drgn` for the drgn check).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use btf_walk::Btf;
use dump_schema::{FailureDumpReport, FailureDumpReportAny};
use guest_mem::{KernelOptions, Vmcore};

fn qemu_available() -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: qemu-system-x86_64 not installed (cargo xtask provision installs it)");
    }
    ok
}

fn ktstr(args: &[&str], cwd: &Path) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running ktstr");
    eprintln!(
        "--- ktstr {args:?}: {} ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The one dump in `dir`; fails if a temporary or partial file is there too.
fn the_dump(dir: &Path) -> (std::path::PathBuf, String) {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let dumps: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".failure-dump.json"))
        .collect();
    assert_eq!(dumps.len(), 1, "one dump expected in {files:?}");
    assert!(
        files
            .iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')),
        "temporary file left behind: {files:?}"
    );
    let json = std::fs::read_to_string(dumps[0]).unwrap();
    e2e_tests::validate_report_json(&json).expect("the dump validates against schema/any.json");
    (dumps[0].clone(), json)
}

fn late(r: &FailureDumpReportAny) -> &FailureDumpReport {
    match r {
        FailureDumpReportAny::Single(r) => r,
        FailureDumpReportAny::Dual(d) => &d.late,
        FailureDumpReportAny::Degraded(_) => panic!("degraded report: the freeze did not complete"),
    }
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

#[test]
fn run_stall_exits_1_and_names_the_starved_task() {
    if !qemu_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let core = d.path().join("stall.vmcore");
    let o = ktstr(
        &["run", "--out", "out", "--vmcore-out", "stall.vmcore"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1), "a stall is a captured failure");
    let (path, json) = the_dump(&out);
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
    // The rendering on stdout is the file's Display, and names the task too.
    let stdout = String::from_utf8_lossy(&o.stdout);
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
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1), "the vmcore shows the error exit");
    let from_core = std::fs::read_to_string(d.path().join("from-vmcore.json")).unwrap();
    e2e_tests::validate_report_json(&from_core).unwrap();
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

    drgn_reads_tasks(&core, victim_pid);
}

/// drgn opens the vmcore and reads `init_task.comm` and the task list (`init_task.tasks`),
/// by addresses and offsets this test takes from the vmcore's own symbols and BTF.
fn drgn_reads_tasks(core: &Path, victim_pid: i32) {
    let have = Command::new("python3")
        .args(["-c", "import drgn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("SKIP drgn check: python3 cannot import drgn (CI: pip install drgn)");
        return;
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
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drgn: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
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
fn run_ok_with_timeout_exits_0() {
    if !qemu_available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let o = ktstr(
        &[
            "run",
            "--scheduler",
            "ok",
            "--timeout",
            "20s",
            "--out",
            "out",
            "--json",
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(0), "no failure under `ok`");
    let (_, json) = the_dump(&d.path().join("out"));
    // --json prints the same document that was written.
    let printed = FailureDumpReportAny::from_slice(&o.stdout).expect("stdout is the JSON dump");
    let written = FailureDumpReportAny::from_json(&json).unwrap();
    assert_eq!(printed, written);
    let r = late(&written);
    let st = r
        .scx_sched_state
        .as_ref()
        .expect("the ok scheduler is attached at the capture");
    assert!(st.exit_kind < 1024, "no error exit: {st:?}");
    assert!(
        r.task_enrichments.iter().any(|t| t.sched_class == "ext"),
        "tasks run on sched_ext"
    );
}

/// Ctrl-C (SIGINT) while the guest runs means "capture now": the dump is written and the
/// exit code says whether it shows a failure (`ok`: 0).
#[test]
fn run_interrupted_captures_on_demand() {
    use std::io::{BufRead, BufReader};
    if !qemu_available() {
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
