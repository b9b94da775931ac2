//! guest-mem against the real 7.3 sched_ext kernel under QEMU (TCG), with 5-level
//! (`-cpu max`, LA57) and 4-level (`-cpu max,-la57`) page tables and real KASLR:
//!
//! One boot of the lab guest prints its own `/proc/kallsyms` lines for a list of
//! symbols; then, with the guest still running, guest-mem reads its live RAM through
//! the shared `memory-backend-file` (VMCOREINFO found by scanning); then QMP `stop` and
//! `dump-guest-memory` (ELF, paging=false) make a vmcore, which guest-mem reads with
//! VMCOREINFO from QEMU's note and again by scanning its RAM. Every decoded address
//! must equal the guest's own, `init_task.comm` must read `swapper/0` (offset from the
//! guest's BTF, read through guest-mem), every CPU's `runqueues.cpu` must equal its
//! index (per-CPU addresses through page walks), and our own vmcore writer's output
//! must read back the same (and open in drgn when drgn is installed).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use btf_walk::Btf;
use e2e_tests::guest::{DEFAULT_MEMORY_MIB, GuestLab};
use freeze::qemu::AccelChoice;
use guest_lab::{ConsoleLog, GuestCommand, HookPoint, RunEnd, RunSpec};
use guest_mem::ramfile::{QemuMachine, map_ram_file};
use guest_mem::vmcore::writer::{VmcoreContents, write_vmcore};
use guest_mem::{Kernel, KernelOptions, Kva, KvaReadExt, PagingMode, PhysMem, Vmcore};

const RAM_MIB: u64 = DEFAULT_MEMORY_MIB;
const SYMBOLS: &[&str] = &[
    "_text",
    "_stext",
    "init_task",
    "jiffies",
    "runqueues",
    "__per_cpu_offset",
    "nr_cpu_ids",
    "scx_root",
    "page_offset_base",
    "init_top_pgt",
    "schedule",
    "ext_sched_class",
    "map_idr",
    "prog_idr",
    "kallsyms_num_syms",
    "__start_BTF",
    "__stop_BTF",
    "init_uts_ns",
];

fn kallsyms_from_console(log: &ConsoleLog) -> BTreeMap<String, u64> {
    let out = log
        .output("kallsyms")
        .unwrap_or_else(|| panic!("no kallsyms output on the console:\n{log:?}"));
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let mut it = line.split_whitespace();
        if let (Some(a), Some(_t), Some(name)) = (it.next(), it.next(), it.next()) {
            // Keep the first (lowest-address) one, as SymbolTable::lookup does.
            let a = u64::from_str_radix(a, 16).unwrap();
            m.entry(name.to_string())
                .and_modify(|v: &mut u64| *v = (*v).min(a))
                .or_insert(a);
        }
    }
    m
}

/// What a test asserts about any `Kernel` view of this guest.
fn check_kernel(
    what: &str,
    k: &Kernel,
    expected: &BTreeMap<String, u64>,
    btf: &Btf,
    mode: PagingMode,
) {
    assert_eq!(k.paging_mode(), mode, "{what}");
    for (name, addr) in expected {
        assert_eq!(
            k.symbol(name),
            Some(Kva(*addr)),
            "{what}: {name}: guest says {addr:#x}"
        );
    }
    assert!(
        k.symbols().len() > 100_000,
        "{what}: {} symbols",
        k.symbols().len()
    );
    let task = btf.struct_by_name("task_struct").unwrap();
    let comm = btf.field(task, "comm").unwrap().offset();
    let it = k.require_symbol("init_task").unwrap();
    assert_eq!(
        k.read_cstr(Kva(it.0 + comm), 16).unwrap(),
        "swapper/0",
        "{what}"
    );
    let rq = btf.struct_by_name("rq").unwrap();
    let cpu_off = btf.field(rq, "cpu").unwrap().offset();
    assert_eq!(k.nr_cpu_ids(), 2, "{what}");
    for cpu in 0..2 {
        let a = k.per_cpu_symbol("runqueues", cpu).unwrap();
        // Per-CPU areas are outside the image: this goes through the page tables.
        assert_eq!(
            k.read_u32(Kva(a.0 + cpu_off)).unwrap(),
            cpu as u32,
            "{what}"
        );
    }
    // A pointer into a symbol decodes to that symbol.
    let esc = k.require_symbol("ext_sched_class").unwrap();
    let n = k.nearest_symbol(Kva(esc.0 + 8)).unwrap();
    assert_eq!((n.symbol.name, n.offset), ("ext_sched_class", 8), "{what}");
}

/// `-cpu max` offers LA57: the kernel runs 5-level page tables.
#[test]
fn guest_kernel_5_level_live_ram_and_vmcore() {
    real_kernel_live_ram_and_vmcore("max", PagingMode::Level5);
}

/// Without LA57 the same kernel runs 4-level page tables.
#[test]
fn guest_kernel_4_level_live_ram_and_vmcore() {
    real_kernel_live_ram_and_vmcore("max,-la57", PagingMode::Level4);
}

fn real_kernel_live_ram_and_vmcore(cpu: &str, mode: PagingMode) {
    let Some(lab) = GuestLab::open() else { return };
    let kernel = &lab.kernel;
    let spec = RunSpec::new()
        .command(HookPoint::BeforeScheduler, GuestCommand::kallsyms(SYMBOLS))
        .end(RunEnd::Hold);
    let mut guest = lab.boot_with(&spec, |cfg| {
        // The paging depth is the CPU model's: TCG, where `-cpu` is ours to choose (the
        // last `-cpu` on QEMU's command line wins).
        cfg.accel = AccelChoice::Tcg;
        cfg.extra_args = vec!["-cpu".into(), cpu.into()];
    });
    guest.wait_console("KTSTR-END kallsyms", Duration::from_secs(240));
    let log = guest.console_log();
    let expected = kallsyms_from_console(&log);
    for s in SYMBOLS {
        assert!(
            expected.contains_key(*s),
            "guest printed no line for {s}:\n{log:?}"
        );
    }

    // 1. Live RAM, guest running: VMCOREINFO by scan, translation, BTF through us.
    let gm = map_ram_file(&guest.ram_file(), &QemuMachine::Pc.layout(RAM_MIB << 20)).unwrap();
    let live = Kernel::new(
        PhysMem::from_guest_memory(&gm).unwrap(),
        KernelOptions::default(),
    )
    .expect("kernel from live RAM");
    let btf = Btf::from_guest_symbols(&live, live.symbols()).expect("BTF from guest memory");
    check_kernel("live", &live, &expected, &btf, mode);
    // The guest is running: jiffies moves (HZ=250) and we see it without any copy.
    let jiffies = live.require_symbol("jiffies").unwrap();
    let j0 = live.read_u64(jiffies).unwrap();
    let mut j1 = j0;
    let until = Instant::now() + Duration::from_secs(20);
    while j1 == j0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        j1 = live.read_u64(jiffies).unwrap();
    }
    assert!(j1 > j0, "jiffies did not move in live RAM: {j0}");

    // 2. Freeze and dump.
    let f = guest.freeze_now();
    assert!(f.all_parked());
    let dir = guest.private_dir().to_path_buf();
    let vmcore = dir.join("vmcore");
    guest
        .dump_vmcore(&vmcore)
        .expect("QMP dump-guest-memory (ELF, paging=false)");
    let core = Vmcore::open(&vmcore).expect("QEMU's vmcore");
    assert_eq!(core.cpus().len(), 2, "NT_PRSTATUS + QEMU note per vCPU");
    let info = core
        .vmcoreinfo()
        .expect("QEMU wrote the guest's VMCOREINFO note (vmcoreinfo device + qemu_fw_cfg)");
    assert_eq!(info.osrelease(), Some(kernel.release.as_str()));
    let k = core
        .kernel(KernelOptions::default())
        .expect("kernel from vmcore");
    check_kernel("vmcore", &k, &expected, &btf, mode);
    // QEMU's note gives each vCPU's CR3, and CR4.LA57 matches the paging depth.
    for c in core.cpus() {
        assert_ne!(c.cr3, 0);
        assert_eq!(c.cr4 & (1 << 12) != 0, mode == PagingMode::Level5, "LA57");
    }
    assert_eq!(
        k.translate(k.require_symbol("init_top_pgt").unwrap())
            .unwrap(),
        k.page_table_root().unwrap()
    );

    // 3. The same vmcore with its note ignored: VMCOREINFO found by scanning its RAM.
    let scanned = Kernel::new(
        core.phys().clone(),
        KernelOptions {
            cpus: core.cpus().to_vec(),
            ..Default::default()
        },
    )
    .expect("kernel from vmcore RAM by scan");
    assert_eq!(scanned.kaslr_offset(), k.kaslr_offset());
    check_kernel("vmcore-scan", &scanned, &expected, &btf, mode);

    // 4. Our writer: a vmcore of the same memory reads back the same.
    let ours = dir.join("ours.vmcore");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&ours).unwrap());
        write_vmcore(
            &mut f,
            core.phys(),
            &VmcoreContents {
                vmcoreinfo: Some(info),
                cpus: core.cpus(),
                page_offset: Some(k.page_offset_base()),
            },
        )
        .unwrap();
        f.flush().unwrap();
    }
    let back = Vmcore::open(&ours).unwrap();
    assert_eq!(back.cpus(), core.cpus());
    assert_eq!(back.vmcoreinfo(), core.vmcoreinfo());
    let kb = back.kernel(KernelOptions::default()).unwrap();
    check_kernel("our vmcore", &kb, &expected, &btf, mode);
    drgn_reads(
        &ours,
        expected["init_task"]
            + btf
                .field(btf.struct_by_name("task_struct").unwrap(), "comm")
                .unwrap()
                .offset(),
    );
}

/// drgn (a tool nobody here wrote) opens our vmcore and reads `init_task.comm` by
/// address, translating through the kernel's page tables from our VMCOREINFO.
fn drgn_reads(core: &Path, comm_addr: u64) {
    if let Err(why) = e2e_tests::drgn::available() {
        // The rest of the test has run; only this check is left out (CI installs drgn).
        guest_lab::testing::skip(format!("the drgn check: {why}"));
        return;
    }
    let script = format!(
        "{}print(p.read({comm_addr:#x}, 16, False).split(b'\\0')[0].decode())\n",
        e2e_tests::drgn::program_on(core)
    );
    assert_eq!(e2e_tests::drgn::run(&script).trim(), "swapper/0");
}
