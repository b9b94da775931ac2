//! The QEMU engine on the real guest-lab kernel: boot, freeze (all vCPUs stopped,
//! registers, memory and console still), thaw, many cycles, vmcore, clean power-off.

mod qemu_common;

use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::qemu::LineMark;
use guest_lab::{ConsoleLog, RunSpec};
use guest_mem::{KernelOptions, Vmcore};
use qemu_common::{BOOT_TIMEOUT, boot_workload, median_max, ram_fingerprint};

/// A workload that prints `SEQ 0` .. `SEQ n-1`, one line every `ms` milliseconds.
fn seq_workload(n: u32, ms: u32) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do echo \"SEQ $i\"; i=$((i+1)); usleep {}; done",
        ms * 1000
    )
}

/// The `SEQ` numbers on the console, in order.
fn seq_numbers(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("SEQ "))
        .map(|n| n.trim().parse().expect("a SEQ line is a number"))
        .collect()
}

#[test]
fn guest_freeze_stops_everything_and_thaw_resumes() {
    let Some((mut g, m)) = boot_workload(seq_workload(150, 50), 2, 512) else {
        return;
    };
    g.engine
        .console()
        .wait_contains(m, BOOT_TIMEOUT, "SEQ 5")
        .expect("workload output");

    let out = g.engine.freeze(Duration::from_secs(10)).expect("freeze");
    assert!(g.engine.is_frozen());
    assert_eq!(out.vcpus.len(), 2);
    assert!(out.all_parked(), "{out:?}");
    for (i, r) in out.vcpus.iter().enumerate() {
        let r = r.expect("parked");
        // Every vCPU runs a 64-bit kernel or user task with paging on.
        assert_ne!(r.rip, 0, "vCPU {i}");
        assert_ne!(r.rsp, 0, "vCPU {i}");
        assert_ne!(r.cr3 & !0xfff, 0, "vCPU {i}: CR3 {:#x}", r.cr3);
        assert_ne!(r.cr0 & (1 << 31), 0, "vCPU {i}: CR0.PG");
        assert_ne!(r.efer & (1 << 10), 0, "vCPU {i}: EFER.LMA");
    }
    assert_eq!(g.engine.run_state().unwrap(), "paused");

    // Frozen: guest RAM and the console do not change.
    let ram = g.engine.guest_ram();
    let mark = g.engine.console().mark();
    let f1 = ram_fingerprint(&ram);
    std::thread::sleep(Duration::from_millis(300));
    let f2 = ram_fingerprint(&ram);
    assert_eq!(f1, f2, "guest RAM changed while frozen");
    assert_eq!(
        g.engine.console().mark(),
        mark,
        "console output while frozen"
    );

    // The live kernel is readable while frozen.
    let kernel = g.kernel_view();
    assert_eq!(kernel.osrelease(), g.kernel.release);

    g.engine.thaw().expect("thaw");
    assert!(!g.engine.is_frozen());
    assert_eq!(g.engine.run_state().unwrap(), "running");
    g.engine
        .console()
        .wait_line(mark, Duration::from_secs(60), |l| l.starts_with("SEQ "))
        .expect("output resumes after thaw");
    assert_ne!(
        ram_fingerprint(&ram),
        f2,
        "guest RAM never changes after thaw"
    );

    let (done, _) = g.phase(mark, "workload-done", BOOT_TIMEOUT);
    assert!(done.contains("rc=0"), "{done}");
    g.expect_clean_poweroff();
    let seq = seq_numbers(&g.console_lines());
    assert_eq!(seq, (0..150).collect::<Vec<_>>());
}

#[test]
fn guest_fifty_freeze_thaw_cycles_keep_the_workload_intact() {
    const N: u32 = 400;
    let Some((mut g, mut m)) = boot_workload(seq_workload(N, 25), 2, 512) else {
        return;
    };
    let mut freeze_lat = Vec::new();
    let mut thaw_lat = Vec::new();
    for cycle in 0..50 {
        // Each cycle starts on a running guest that makes progress.
        let (_, next) = g
            .engine
            .console()
            .wait_line(m, Duration::from_secs(60), |l| l.starts_with("SEQ "))
            .unwrap_or_else(|e| panic!("cycle {cycle}: no progress: {e}"));
        m = next;
        let out = g
            .engine
            .freeze(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("cycle {cycle}: freeze: {e}"));
        assert!(out.all_parked(), "cycle {cycle}: {out:?}");
        assert_eq!(g.engine.run_state().unwrap(), "paused", "cycle {cycle}");
        freeze_lat.push(out.elapsed);
        let t = Instant::now();
        g.engine
            .thaw()
            .unwrap_or_else(|e| panic!("cycle {cycle}: thaw: {e}"));
        thaw_lat.push(t.elapsed());
        assert_eq!(g.engine.run_state().unwrap(), "running", "cycle {cycle}");
    }
    let (done, _) = g.phase(m, "workload-done", BOOT_TIMEOUT);
    assert!(done.contains("rc=0"), "{done}");
    g.expect_clean_poweroff();
    let seq = seq_numbers(&g.console_lines());
    assert_eq!(
        seq,
        (0..N).collect::<Vec<_>>(),
        "workload output lost or reordered"
    );
    let (fm, fx) = median_max(&mut freeze_lat);
    let (tm, tx) = median_max(&mut thaw_lat);
    eprintln!(
        "50 cycles ({}): freeze (QMP stop) median {fm:?} max {fx:?}; thaw (QMP cont) median {tm:?} max {tx:?}",
        g.engine.accel().accel
    );
}

#[test]
fn guest_vmcore_of_the_frozen_guest_opens_with_guest_mem() {
    let Some((mut g, m)) = boot_workload("sleep 30", 2, 512) else {
        return;
    };
    let log = ConsoleLog::parse(&g.engine.console_tail());
    assert_eq!(
        log.phase("modules")
            .and_then(|p| p.fields.get("fw_cfg"))
            .map(String::as_str),
        Some("ok"),
        "qemu_fw_cfg must load for the VMCOREINFO note"
    );
    let frozen = g.engine.freeze(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vmcore");
    g.engine.dump_vmcore(&path).expect("dump-guest-memory");
    assert!(g.engine.is_frozen());
    assert_eq!(
        g.engine.run_state().unwrap(),
        "paused",
        "the dump keeps the guest frozen"
    );

    let core = Vmcore::open(&path).expect("opening the vmcore");
    let info = core
        .vmcoreinfo()
        .expect("the VMCOREINFO note (-device vmcoreinfo)");
    assert_eq!(info.osrelease(), Some(g.kernel.release.as_str()));
    assert_eq!(core.cpus().len(), 2);
    // QEMU's per-CPU notes agree with the registers the engine captured.
    for (i, r) in frozen.vcpus.iter().enumerate() {
        let r = r.unwrap();
        assert!(
            core.cpus().iter().any(|c| c.rip == r.rip && c.cr3 == r.cr3),
            "vCPU {i} rip {:#x} cr3 {:#x} not in the vmcore notes",
            r.rip,
            r.cr3
        );
    }
    let k = core
        .kernel(KernelOptions::default())
        .expect("kernel from the vmcore");
    assert!(k.symbol("scx_root").is_some());
    drop(k);
    drop(core);

    g.engine.thaw().unwrap();
    g.phase(m, "workload-done", BOOT_TIMEOUT);
    g.expect_clean_poweroff();
}

#[test]
fn guest_attach_to_a_running_qemu_freezes_reads_and_leaves_it_running() {
    // A second QMP socket, as a user's own QEMU would offer (one client per socket).
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("user-qmp.sock");
    let spec = RunSpec::new().workload(seq_workload(60, 50));
    let Some((lab, kernel)) = qemu_common::lab() else {
        return;
    };
    let initramfs = lab.initramfs(&spec).unwrap();
    let mut cfg = freeze::qemu::QemuConfig::new(
        &kernel.vmlinuz,
        Some(initramfs.path().to_path_buf()),
        qemu_common::CMDLINE,
    );
    cfg.memory_mib = 512;
    cfg.extra_args = vec![
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", sock.display()).into(),
    ];
    let mut owner = freeze::qemu::QemuEngine::launch(&cfg).unwrap();
    let (_, m) = owner
        .console()
        .wait_contains(LineMark::START, BOOT_TIMEOUT, "SEQ 3")
        .expect("workload output");

    let mut attached = freeze::qemu::AttachedQemu::attach(&sock, &owner.ram_file()).unwrap();
    assert_eq!(attached.vcpu_count(), 2);
    let out = attached.freeze(Duration::from_secs(10)).unwrap();
    assert!(out.all_parked(), "{out:?}");
    assert_eq!(owner.run_state().unwrap(), "paused");
    let phys = guest_mem::PhysMem::from_guest_memory(&attached.guest_ram()).unwrap();
    let k = guest_mem::Kernel::new(phys, KernelOptions::default()).unwrap();
    assert_eq!(k.osrelease(), kernel.release);
    // Dropped while frozen: the guest it found running runs again.
    drop(attached);
    assert_eq!(owner.run_state().unwrap(), "running");
    owner
        .console()
        .wait_contains(m, BOOT_TIMEOUT, "KTSTR-PHASE: workload-done rc=0")
        .expect("the workload completes after the attached engine is gone");
    let st = owner.wait_exit(qemu_common::END_TIMEOUT).unwrap();
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
}

#[test]
fn guest_the_accelerator_probe_matches_reality() {
    let Some((lab, kernel)) = qemu_common::lab() else {
        return;
    };
    let qemu = std::path::Path::new("qemu-system-x86_64");
    let decision = freeze::qemu::accel::decide(qemu, &kernel.vmlinuz);
    eprintln!("probe: {decision:?}");
    assert!(!decision.reason.is_empty());
    // Whatever the probe chose must boot; when it refused KVM, forcing KVM must fail.
    let initramfs = lab.initramfs(&RunSpec::new().workload("true")).unwrap();
    let mut cfg = freeze::qemu::QemuConfig::new(
        &kernel.vmlinuz,
        Some(initramfs.path().to_path_buf()),
        qemu_common::CMDLINE,
    );
    cfg.memory_mib = 512;
    let chosen = freeze::qemu::QemuEngine::launch(&cfg).unwrap();
    assert_eq!(chosen.accel().accel, decision.accel);
    chosen
        .console()
        .wait_contains(LineMark::START, BOOT_TIMEOUT, "KTSTR-PHASE: init")
        .expect("the chosen accelerator boots the kernel to /init");
    drop(chosen);
    if decision.accel == freeze::qemu::Accel::Tcg && decision.reason.contains("KVM boot attempt") {
        cfg.accel = freeze::qemu::AccelChoice::Kvm;
        let booted = match freeze::qemu::QemuEngine::launch(&cfg) {
            Err(e) => {
                eprintln!("forced KVM: launch failed as the probe predicted: {e}");
                false
            }
            Ok(e) => e
                .console()
                .wait_contains(
                    LineMark::START,
                    Duration::from_secs(30),
                    "KTSTR-PHASE: init",
                )
                .is_ok(),
        };
        assert!(!booted, "the probe refused KVM, yet KVM booted the kernel");
    }
}

#[test]
fn guest_ram_above_4g_is_mapped_where_the_guest_has_it() {
    // 5 GiB: QEMU's pc machine puts 3 GiB below 4 GiB and 2 GiB at 4 GiB; memblock
    // allocates top-down, so per-CPU areas land in the high part.
    let Some((mut g, m)) = boot_workload("sleep 5", 2, 5120) else {
        return;
    };
    g.engine.freeze(Duration::from_secs(10)).unwrap();
    {
        use vm_memory::GuestMemoryBackend;
        assert_eq!(g.engine.guest_ram().num_regions(), 2);
    }
    let kernel = g.kernel_view();
    let rq_cpu = g.btf().offset_of("rq.cpu").expect("rq.cpu");
    let mut high = 0;
    for cpu in 0..2usize {
        let rq = kernel.per_cpu_symbol("runqueues", cpu).unwrap();
        let gpa = kernel.translate(rq).unwrap();
        high += usize::from(gpa.0 >= 1 << 32);
        use guest_mem::KvaReadExt;
        let v = kernel
            .read_u32(guest_mem::Kva(rq.0 + rq_cpu))
            .expect("rq->cpu");
        assert_eq!(v as usize, cpu, "runqueues of CPU {cpu} at {gpa}");
    }
    assert!(
        high > 0,
        "no runqueue above 4 GiB: the test checks nothing high"
    );
    g.engine.thaw().unwrap();
    g.phase(m, "workload-done", BOOT_TIMEOUT);
    g.expect_clean_poweroff();
}
