//! The guest's shell functions run on the host under the same static busybox the guest
//! runs, with only busybox's applets on `PATH`:
//! - the scheduler functions (`lab/sched.sh`, sourced by `/init`), with a fake
//!   `sched_ext` directory: what they print parses with `ConsoleLog` into the attach, the
//!   kernel-side exit, the process' exit status and a bounded output tail;
//! - the mixed workload (`lab/helpers.sh`), with a plain directory for the cgroup: every
//!   part runs under its comm.

use guest_lab::testing::ScratchDir;
use guest_lab::{ConsoleLog, HELPERS, MixedWorkload, SCHED_SH};
use std::path::Path;
use std::process::Command;

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
    let out = Command::new("/bin/busybox")
        .arg("sh")
        .arg(dir.join("driver.sh"))
        .env_clear()
        .env("PATH", dir.join("bin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "---- console ----\n{text}---- stderr ----\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_scheduler_that_exits_before_attaching_reports_its_status_and_output() {
    let s = scratch("early");
    let text = run(
        s.path(),
        "ktstr_sched_daemon fake 20 sh -c 'echo loading; echo \"libbpf: failed to load\" >&2; exit 3'",
    );
    let log = ConsoleLog::parse(&text);
    assert_eq!(
        log.phase("scheduler-start").and_then(|p| p.field("name")),
        Some("fake")
    );
    assert_eq!(
        log.phase("scheduler-failed")
            .and_then(|p| p.field("reason")),
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
        log.phase("scheduler-attached").and_then(|p| p.field("ops")),
        Some("fake_ops")
    );
    assert_eq!(
        log.phase("scheduler-exited").and_then(|p| p.field("state")),
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
