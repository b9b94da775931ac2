//! The guest's shell functions run on the host under the same static busybox the guest
//! runs, with only busybox's applets on `PATH`:
//! - the scheduler functions (`lab/sched.sh`, sourced by `/init`), with a fake
//!   `sched_ext` directory: what they print parses with `ConsoleLog` into the attach, the
//!   kernel-side exit, the process' exit status and a bounded output tail;
//! - the mixed workload (`lab/helpers.sh`), with a plain directory for the cgroup: every
//!   part runs under its comm;
//! - the guest's view commands ([`GuestCommand`]), with a fake `bpftool` printing what
//!   the real one printed in a guest running `scx_p2dq`, and a fake `/proc`.

use guest_lab::testing::ScratchDir;
use guest_lab::{ConsoleLog, GuestCommand, HELPERS, MixedWorkload, SCHED_SH};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

fn scratch(name: &str) -> ScratchDir {
    let scratch = ScratchDir::new(&format!("proto-{name}"));
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::create_dir_all(dir.join("scx/root")).unwrap();
    let ok = Command::new("/bin/busybox")
        .args(["--install", "-s"])
        .arg(dir.join("bin"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "busybox --install");
    std::fs::write(dir.join("sched.sh"), SCHED_SH).unwrap();
    std::fs::write(dir.join("helpers.sh"), HELPERS).unwrap();
    scratch
}

/// Run `body` after sourcing sched.sh as /init does; returns the console text.
fn run(dir: &Path, body: &str) -> String {
    let script = format!(
        "ktstr_phase() {{ echo \"KTSTR-PHASE: $*\"; }}\n\
         KTSTR_SCHED_DIR={d}/run\nKTSTR_SCX_SYSFS={d}/scx\nS={d}/scx\n\
         . {d}/sched.sh\n{body}\nwait\n",
        d = dir.display()
    );
    std::fs::write(dir.join("driver.sh"), script).unwrap();
    let driver = dir.join("driver.sh");
    busybox_sh(dir, &[driver.as_os_str()], &[], "console").1
}

/// `busybox sh ARGS` with nothing in its environment but `PATH` (the test's `bin/`) and
/// `env`; returns its status and stdout, both outputs echoed for the test log under
/// `label`.
fn busybox_sh(
    dir: &Path,
    args: &[&OsStr],
    env: &[(&str, PathBuf)],
    label: &str,
) -> (ExitStatus, String) {
    let out = Command::new("/bin/busybox")
        .arg("sh")
        .args(args)
        .env_clear()
        .env("PATH", dir.join("bin"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "---- {label} ----\n{text}---- stderr ----\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

#[test]
fn a_scheduler_that_exits_before_attaching_reports_its_status_and_output() {
    let s = scratch("early");
    let text = run(
        s.path(),
        "ktstr_sched_daemon fake 20 sh -c 'echo loading; echo \"libbpf: failed to load\" >&2; exit 3'",
    );
    let log = ConsoleLog::parse(&text);
    assert_eq!(log.phase_field("scheduler-start", "name"), Some("fake"));
    assert_eq!(
        log.phase_field("scheduler-failed", "reason"),
        Some("exited")
    );
    let exit = log.scheduler_process_exit().expect("the process exit");
    assert_eq!((exit.rc, exit.signal()), (3, None));
    assert_eq!(exit.tail, ["loading", "libbpf: failed to load"]);
    assert_eq!(log.exit_codes.get("sched-tail"), Some(&3));
}

#[test]
fn an_attached_scheduler_killed_by_a_signal_keeps_a_bounded_tail() {
    let s = scratch("signal");
    // Attaches (the fake sysfs says so), prints 1000 lines and one very long one, then
    // waits in `sleep` (exec: the pid the guest knows is the one that gets the signal).
    std::fs::write(
        s.path().join("fake-sched"),
        "echo enabled > \"$S/state\"; echo fake_ops > \"$S/root/ops\"\n\
         i=0; while [ $i -lt 1000 ]; do echo \"line $i\"; i=$((i+1)); done\n\
         printf '%03000d\\n' 7\necho last\nexec sleep 60\n",
    )
    .unwrap();
    let text = run(
        s.path(),
        &format!(
            "export S\nktstr_sched_daemon fake 20 sh {d}/fake-sched\n\
             while ! grep -q '^last$' {d}/run/sched.log 2>/dev/null; do usleep 20000; done\n\
             echo \"lines kept: $(cat {d}/run/sched.log.old {d}/run/sched.log | wc -l)\"\n\
             kill -TERM \"$KTSTR_SCHED_PID\"\n\
             echo disabled > {d}/scx/state",
            d = s.path().display()
        ),
    );
    let log = ConsoleLog::parse(&text);
    assert_eq!(
        log.phase_field("scheduler-attached", "ops"),
        Some("fake_ops")
    );
    assert_eq!(
        log.phase_field("scheduler-exited", "state"),
        Some("disabled")
    );
    let kept: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("lines kept: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("lines kept");
    assert!((200..=400).contains(&kept), "{kept} lines kept");
    let exit = log.scheduler_process_exit().expect("the process exit");
    assert_eq!((exit.rc, exit.signal()), (143, Some(15)));
    assert_eq!(exit.tail.len(), 60);
    assert_eq!(exit.tail.last().map(String::as_str), Some("last"));
    let long = &exit.tail[exit.tail.len() - 2];
    assert_eq!(long.len(), 1024, "lines are cut to 1024 bytes");
    assert_eq!(exit.tail[0], "line 942");
}

#[test]
fn the_mixed_workload_runs_every_part_under_its_comm() {
    let s = scratch("mixed");
    let w = MixedWorkload {
        hogs: Some(1),
        limit_percent: 30,
        ..MixedWorkload::new(3)
    };
    // The workload's children (the programs `timeout` runs keep its pid, so their parent
    // is the workload's shell), listed while it runs.
    let text = run(
        s.path(),
        &format!(
            "export KTSTR_CGROUP_ROOT={d}/cgroup TMPDIR={d}/run\n\
             . {d}/helpers.sh\n\
             ( {cmd} ) &\nM=$!\n\
             usleep 1500000\n\
             cat /proc/[0-9]*/stat 2>/dev/null | awk -v m=$M '$4 == m {{ print \"child\", $2 }}'\n\
             wait $M\necho \"rc $?\"\n\
             echo \"cpu.max $(cat {d}/cgroup/ktstr-limited/cpu.max)\"\n\
             echo \"procs $(cat {d}/cgroup/ktstr-limited/cgroup.procs)\"\n\
             echo \"left $(ls {d}/run | wc -l)\"",
            d = s.path().display(),
            cmd = w.command()
        ),
    );
    let mut children: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("child "))
        .map(|c| c.trim_matches(['(', ')']))
        .collect();
    children.sort();
    assert_eq!(
        children,
        [
            "ktstr-hog",
            "ktstr-limited",
            "ktstr-ping",
            "ktstr-pong",
            "ktstr-sleeper",
            "ktstr-sleeper"
        ]
    );
    for comm in MixedWorkload::COMMS {
        assert!(children.contains(&comm), "{comm}");
    }
    assert!(text.contains("rc 0\n"), "{text}");
    assert!(
        text.contains(&format!("cpu.max {}\n", w.cpu_max())),
        "{text}"
    );
    let procs = text
        .lines()
        .find_map(|l| l.strip_prefix("procs "))
        .unwrap_or("");
    assert!(procs.trim().parse::<u32>().is_ok(), "{text}");
    assert!(text.contains("left 0\n"), "the FIFOs are removed: {text}");
}

/// Runs a view command's shell under busybox with `bin/` first on `PATH` (a fake
/// `bpftool` there) and `KTSTR_PROC` set; returns its stdout.
fn view_command(dir: &Path, cmd: &GuestCommand) -> String {
    let args = ["-c".as_ref(), cmd.shell.as_ref()];
    let env = [("KTSTR_PROC", dir.join("proc"))];
    let (status, text) = busybox_sh(dir, &args, &env, &cmd.label);
    assert!(status.success(), "{}: {status:?}", cmd.label);
    text
}

/// What bpftool printed for two of `scx_p2dq`'s global-data maps (shortened), with the
/// shapes the filter must step over: strings, arrays, structs, repeated names.
const P2DQ_RODATA_DUMP: &str = r#"[{
        "value": {
            ".rodata": [{
                    "arena_init.____fmt": "NULL guard: reserving pages [0, %u) failed: {x}"
                },{
                    "__SCX_SLICE_DFL": 20000000
                },{
                    "__SCX_SLICE_INF": 18446744073709551615
                },{
                    "nr_llcs": 1
                },{
                    "min_slice_us": -5
                },{
                    "dsq_shift": [0,1,2
                    ]
                },{
                    "topo": {
                        "nr_cpus": 2
                    }
                },{
                    "cpu_llc_ids": [
                        7,
                        8
                    ]
                },{
                    "smt_enabled": false
                },{
                    "arena_base": 0x100000000
                },{
                    "nr_llcs": 3
                }
            ]
        }
    }
]
"#;
const P2DQ_DATA_DUMP: &str = r#"[{
        "value": {
            ".data.LOCK": [{
                    "lock": 0
                }
            ]
        }
    }
]
"#;

fn fake_bpftool(dir: &Path) {
    std::fs::write(dir.join("rodata.txt"), P2DQ_RODATA_DUMP).unwrap();
    std::fs::write(dir.join("data.txt"), P2DQ_DATA_DUMP).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in\n\
         '-j map show') printf '%s\\n' '[{{\"id\":15,\"type\":\"array\",\"name\":\"bpf_bpf.bss\"}},{{\"id\":16,\"type\":\"array\",\"name\":\"bpf_bpf.rodata\",\"pids\":[{{\"pid\":1}},{{\"pid\":2}}]}}]';;\n\
         '-j prog show') printf '%s\\n' '[{{\"id\":8,\"type\":\"tracing\"}}, {{\"id\":19,\"type\":\"struct_ops\"}}]';;\n\
         'map show') printf '%s\\n' '15: array  name bpf_bpf.bss  flags 0x400' \
         '	key 4B  value 59146B  max_entries 1  memlock 65536B' \
         '16: array  name bpf_bpf.rodata  flags 0x480' \
         '19: array  name .data.LOCK  flags 0x0' '24: struct_ops  name p2dq  flags 0x2000';;\n\
         'map dump id 16') cat {d}/rodata.txt;;\n\
         'map dump id 19') cat {d}/data.txt;;\n\
         *) echo \"unexpected: $*\" >&2; exit 1;;\nesac\n",
        d = dir.display()
    );
    let path = dir.join("bin/bpftool");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn bpftool_json_comes_one_object_per_line_and_parses_joined() {
    let s = scratch("view-json");
    fake_bpftool(s.path());
    for (cmd, ids) in [
        (GuestCommand::bpftool_map_show(), vec![15, 16]),
        (GuestCommand::bpftool_prog_show(), vec![8, 19]),
    ] {
        let text = view_command(s.path(), &cmd);
        // One line per object (nested `pids` objects split too), none longer than one
        // object.
        assert!(text.lines().count() >= ids.len(), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("the joined lines parse");
        let got: Vec<u64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        assert_eq!(got, ids, "{}", cmd.label);
    }
}

#[test]
fn globals_keep_section_level_scalars_in_order() {
    let s = scratch("view-globals");
    fake_bpftool(s.path());
    let text = view_command(s.path(), &GuestCommand::bpftool_globals());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "bpf_bpf.rodata __SCX_SLICE_DFL 20000000",
            "bpf_bpf.rodata __SCX_SLICE_INF 18446744073709551615",
            "bpf_bpf.rodata nr_llcs 1",
            "bpf_bpf.rodata min_slice_us -5",
            "bpf_bpf.rodata smt_enabled false",
            "bpf_bpf.rodata arena_base 0x100000000",
            "bpf_bpf.rodata nr_llcs 3",
            ".data.LOCK lock 0",
        ]
    );
}

#[test]
fn proc_pid_ext_reads_each_tasks_ext_flag() {
    let s = scratch("view-ext");
    for (pid, on) in [(1, 1), (42, 0), (1234, 1)] {
        let d = s.path().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("sched"),
            format!(
                "sh ({pid}, #threads: 1)\n---\nse.exec_start    :   1.0\npolicy   :   0\n\
                 ext.enabled                                  :                    {on}\n"
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(s.path().join("proc/self")).unwrap();
    let text = view_command(s.path(), &GuestCommand::proc_pid_ext());
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["1 1", "1234 1", "42 0"]);
}
