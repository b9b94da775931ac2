//! A real third-party scheduler (`scx_bpfland` from crates.io) under a CPU workload:
//! freeze on demand, read the truth from guest memory, thaw, the workload completes.

mod qemu_common;

use std::time::Duration;

use freeze::Engine;
use freeze::qemu::LineMark;
use guest_lab::{ConsoleLog, RunSpec, SchedulerChoice};
use guest_mem::KvaReadExt;
use qemu_common::{BOOT_TIMEOUT, boot, lab, ops_name, sched_offsets};

#[test]
fn guest_bpfland_freeze_on_demand_reads_scx_root() {
    let Some((lab, _)) = lab() else {
        return;
    };
    lab.bpfland().expect("provisioning scx_bpfland");
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::bpfland())
        .workload("ktstr_spin 2 15 && echo SPIN-OK");
    let Some(mut g) = boot(&spec, 2, 1024) else {
        return;
    };
    let (attached, m) = g.phase(LineMark::START, "scheduler-attached", BOOT_TIMEOUT);
    let boot_to_attached = g.launched_at.elapsed();
    eprintln!("bpfland attached {boot_to_attached:.1?} after launch ({attached})");
    let (_, m) = g.phase(m, "workload-start", BOOT_TIMEOUT);
    std::thread::sleep(Duration::from_secs(2));

    let out = g.engine.freeze(Duration::from_secs(10)).expect("freeze");
    assert!(out.all_parked(), "{out:?}");
    eprintln!("on-demand freeze: stop took {:?}", out.elapsed);

    let kernel = g.kernel_view();
    let off = sched_offsets(&g.btf());
    let root = kernel
        .read_ptr(kernel.require_symbol("scx_root").unwrap())
        .expect("reading scx_root");
    assert_ne!(root.0, 0, "scx_root is NULL with bpfland attached");
    let name = ops_name(&kernel, root, &off);
    assert!(name.starts_with("bpfland"), "ops name {name:?}");
    // The guest said the same through sysfs before the freeze.
    let log = ConsoleLog::parse(&g.engine.console_tail());
    let sysfs_ops = log
        .phase("scheduler-attached")
        .and_then(|p| p.fields.get("ops"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(name, sysfs_ops);
    // No error exit: exit_kind is below SCX_EXIT_ERROR.
    let kind = kernel
        .read_u32(guest_mem::Kva(root.0 + off.exit_kind))
        .unwrap();
    assert!(!scx_walk::exit_kind::is_error(kind), "exit_kind {kind}");

    g.engine.thaw().unwrap();
    let (done, _) = g.phase(m, "workload-done", BOOT_TIMEOUT);
    assert!(done.contains("rc=0"), "{done}");
    assert!(g.console_lines().iter().any(|l| l.trim() == "SPIN-OK"));
    g.expect_clean_poweroff();
}
