//! No orphan QEMU and no leftover file on any path: drop, panic in capture code, a
//! failed launch, Ctrl-C (SIGINT) with the helper handler, and the host process killed
//! outright (SIGKILL: the kernel's parent-death signal takes QEMU down).

mod qemu_common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::qemu::{QemuConfig, QemuEngine, teardown};
use guest_lab::{RunEnd, RunSpec, testing};
use qemu_common::{BOOT_TIMEOUT, CMDLINE, boot, lab};

/// Whether `pid` is a live (not reaped) process other than a zombie of ours.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; Z is a zombie (dead, not reaped).
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn wait_dead(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

fn holding_spec() -> RunSpec {
    RunSpec::new().end(RunEnd::Hold)
}

#[test]
fn guest_drop_kills_qemu_and_removes_its_files() {
    let Some(g) = boot(&holding_spec(), 1, 256) else {
        return;
    };
    let (pid, dir) = (g.engine.pid(), g.engine.private_dir().to_path_buf());
    assert!(alive(pid));
    assert!(dir.join("ram").exists());
    let before = teardown::registered_count();
    drop(g);
    assert!(!alive(pid), "QEMU {pid} outlived the engine");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(teardown::registered_count() < before);
}

#[test]
fn guest_panic_in_capture_code_tears_down() {
    let Some((lab, kernel)) = lab() else {
        return;
    };
    let initramfs = lab.initramfs(&holding_spec()).unwrap();
    let cfg = QemuConfig::new(
        &kernel.vmlinuz,
        Some(initramfs.path().to_path_buf()),
        CMDLINE,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let mut e = QemuEngine::launch(&cfg).unwrap();
        tx.send((e.pid(), e.private_dir().to_path_buf())).unwrap();
        e.freeze(Duration::from_secs(10)).unwrap();
        panic!("capture code failed while the guest was frozen");
    });
    assert!(result.is_err());
    let (pid, dir) = rx.recv().unwrap();
    assert!(!alive(pid), "QEMU {pid} outlived the panic");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn guest_failed_launch_leaves_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let Some((lab, kernel)) = lab() else {
        return;
    };
    let initramfs = lab.initramfs(&holding_spec()).unwrap();
    // QEMU starts, then rejects the option: its error must come back, nothing stays.
    let mut cfg = QemuConfig::new(
        &kernel.vmlinuz,
        Some(initramfs.path().to_path_buf()),
        CMDLINE,
    );
    cfg.temp_parent = Some(parent.path().to_path_buf());
    cfg.extra_args = vec!["-no-such-option".into()];
    let err = QemuEngine::launch(&cfg).unwrap_err().to_string();
    assert!(err.contains("no-such-option"), "{err}");
    // A kernel that does not exist.
    cfg.extra_args.clear();
    cfg.kernel = parent.path().join("missing-vmlinuz");
    let err = QemuEngine::launch(&cfg).unwrap_err().to_string();
    assert!(err.contains("missing-vmlinuz"), "{err}");
    // A QEMU binary that does not exist.
    cfg.qemu = parent.path().join("no-qemu");
    assert!(QemuEngine::launch(&cfg).is_err());
    let left: Vec<PathBuf> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Runs this test binary's `guest_child_process` in a child process that launches a guest,
/// prints `READY <qemu pid> <dir>` and waits; returns it with the pid and dir (`None`:
/// the test skips, no QEMU).
fn spawn_child(mode: &str) -> Option<(std::process::Child, u32, PathBuf)> {
    if !testing::need_qemu() {
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "guest_child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KTSTR_TEARDOWN_CHILD", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have written `test guest_child_process ... ` on the same line.
            if let Some((_, rest)) = line.split_once("READY ") {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    let ready = rx
        .recv_timeout(BOOT_TIMEOUT)
        .expect("the child process never launched its guest");
    let (pid, dir) = ready.split_once(' ').unwrap();
    Some((child, pid.parse().unwrap(), PathBuf::from(dir)))
}

fn wait_child(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("child process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn guest_ctrl_c_with_the_helper_handler_tears_down() {
    let Some((mut child, pid, dir)) = spawn_child("sigint") else {
        return;
    };
    assert!(alive(pid));
    // SAFETY: a signal to a child process we started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_child(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(
        wait_dead(pid, Duration::from_secs(10)),
        "QEMU {pid} orphaned"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn guest_host_process_killed_takes_qemu_down() {
    let Some((mut child, pid, dir)) = spawn_child("sigkill") else {
        return;
    };
    assert!(alive(pid));
    child.kill().unwrap(); // SIGKILL: no handler, no Drop runs.
    wait_child(&mut child, Duration::from_secs(30));
    assert!(
        wait_dead(pid, Duration::from_secs(10)),
        "QEMU {pid} survived its host process"
    );
    // Nobody was left to remove the directory; the next launch's sweep does (here
    // called directly on the same parent).
    assert!(dir.exists());
    let parent = dir.parent().unwrap();
    assert!(teardown::sweep_stale(parent) >= 1);
    assert!(!dir.exists(), "{} survived the sweep", dir.display());
}

/// The child side of the two tests above (ignored: it only runs when spawned by them).
#[test]
#[ignore = "helper process for the Ctrl-C and SIGKILL tests"]
fn guest_child_process() {
    let Ok(mode) = std::env::var("KTSTR_TEARDOWN_CHILD") else {
        return;
    };
    if mode == "sigint" {
        teardown::install_interrupt_handler().unwrap();
    }
    let Some(g) = boot(&holding_spec(), 1, 256) else {
        return;
    };
    println!(
        "READY {} {}",
        g.engine.pid(),
        g.engine.private_dir().display()
    );
    std::thread::sleep(Duration::from_secs(600));
    drop(g);
}
