//! `ktstr capture --qmp/--ram` and `ktstr export-vmcore` against a QEMU guest this test
//! starts itself (as a user would: QMP socket + shared RAM file), running the `ok`
//! scheduler: the guest is captured live and resumed, and the exported vmcore captures the
//! same way offline.
//!
//! Needs QEMU and the guest lab; without QEMU the test prints why it skips.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dump_schema::validate::single_report as single;
use e2e_tests::guest::GuestLab;
use freeze::qemu::{Accel, QemuCommand};
use guest_lab::{DEFAULT_APPEND, RunEnd, RunSpec, SchedulerChoice, TestScheduler};
use support::ktstr;

/// Kills QEMU on every path out of the test.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn guest_capture_qmp_and_export_vmcore_on_a_live_guest() {
    // QEMU is started here as a user would (the engine's own QMP connection would keep
    // `ktstr capture --qmp` out); only the lab comes from the shared support.
    let Some(GuestLab { lab, kernel }) = GuestLab::open() else {
        return;
    };
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::test(TestScheduler::Ok))
        .workload("ktstr_spin 2 900")
        .end(RunEnd::Hold);
    let initrd = lab.initramfs(&spec).expect("initramfs");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let console = dir.join("console.log");
    let child = QemuCommand::new(Path::new("qemu-system-x86_64"), Accel::Tcg)
        .size(2, 512)
        .shared_ram(512, &dir.join("ram"))
        .boot(
            &kernel.vmlinuz,
            Some(initrd.path()),
            &format!("{DEFAULT_APPEND} no_timer_check"),
        )
        .serial_file(&console)
        .qmp_socket(&dir.join("qmp.sock"))
        .into_command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting QEMU");
    let _qemu = Qemu(child);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&console).unwrap_or_default();
        if text.contains("KTSTR-PHASE: workload-start") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(400),
            "the guest did not start its workload; console:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Live: stop, capture, resume (and the vmcore of that moment).
    // How both commands reach the guest: its QMP socket and RAM file, as a user names them.
    let guest = ["--qmp", "qmp.sock", "--ram", "ram"];
    let o = ktstr(
        &[
            &["capture"],
            &guest[..],
            &["--json", "--vmcore-out", "live.vmcore"],
        ]
        .concat(),
        dir,
    );
    assert_eq!(o.status.code(), Some(0), "no error exit under `ok`");
    let live = single(&String::from_utf8_lossy(&o.stdout));
    let st = live
        .scx_sched_state
        .as_ref()
        .expect("the ok scheduler is attached");
    assert!(st.exit_kind < 1024, "{st:?}");
    assert_eq!(live.active_obj_name.as_deref(), Some("ktstr_ops"));
    assert!(live.task_enrichments.iter().any(|t| t.sched_class == "ext"));
    assert_eq!(
        live.vcpu_regs.iter().flatten().count(),
        2,
        "both vCPUs' registers"
    );

    // Let the resumed guest run its spinners a while before the second freeze.
    std::thread::sleep(Duration::from_secs(5));

    // export-vmcore, then the offline capture of it.
    let o = ktstr(
        &[&["export-vmcore"], &guest[..], &["--out", "exp.vmcore"]].concat(),
        dir,
    );
    assert_eq!(o.status.code(), Some(0));
    let busy = |r: &dump_schema::FailureDumpReport| -> u64 {
        r.per_cpu_time
            .iter()
            .map(|c| c.cpustat_user_ns + c.cpustat_system_ns)
            .sum()
    };
    let mut reports = Vec::new();
    for core in ["live.vmcore", "exp.vmcore"] {
        let o = ktstr(&["capture", "--vmcore", core, "--json"], dir);
        assert_eq!(o.status.code(), Some(0), "{core}");
        let r = single(&String::from_utf8_lossy(&o.stdout));
        assert!(
            r.scx_sched_state
                .as_ref()
                .is_some_and(|s| s.exit_kind < 1024),
            "{core}"
        );
        assert_eq!(r.active_obj_name.as_deref(), Some("ktstr_ops"), "{core}");
        assert_eq!(r.vcpu_regs.len(), 2, "{core}: registers from the notes");
        reports.push(r);
    }
    // The vmcore written at the live capture is that capture, offline.
    assert_eq!(
        busy(&reports[0]),
        busy(&live),
        "live.vmcore = the live capture"
    );
    // The guest was resumed after the live capture: its CPUs ran on before the export.
    assert!(
        busy(&reports[1]) > busy(&reports[0]),
        "no CPU time passed between the two freezes: the guest was not resumed"
    );
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|f| !f.starts_with('.')),
        "temporary files left: {files:?}"
    );
}
