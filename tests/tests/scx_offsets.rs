//! Every scx-walk offset group resolves against the real 7.3 sched_ext kernel's BTF (the
//! guest lab's copy), with the 7.3 layout facts the walkers rely on.

use btf_walk::Btf;
use guest_lab::testing;
use guest_mem::{Kva, KvaRead, MemError};
use scx_walk::{KernelTypes, KernelView, SymbolLookup};

/// No guest: the offsets come from the BTF file alone.
struct Nothing;

impl KvaRead for Nothing {
    fn read_kva(&self, kva: Kva, _buf: &mut [u8]) -> Result<(), MemError> {
        Err(MemError::NotPresent {
            kva,
            level: 4,
            entry: 0,
        })
    }
}

impl SymbolLookup for Nothing {
    fn symbol(&self, _name: &str) -> Option<Kva> {
        None
    }
    fn nearest(&self, _kva: Kva) -> Option<(String, u64)> {
        None
    }
}

#[test]
fn guest_scx_every_offset_group_resolves_on_the_lab_kernel() {
    let lab = testing::open_lab();
    let kernel = lab.kernel().expect("provisioning the sched_ext kernel");
    let btf = Btf::from_file(&kernel.btf).expect("loading the kernel BTF");
    let t: &dyn KernelTypes = &btf;
    let k = KernelView {
        mem: &Nothing,
        syms: &Nothing,
        types: t,
    };
    scx_walk::lists::CoreOffsets::resolve(t).unwrap();
    let so = scx_walk::sched::SchedOffsets::resolve(&k).unwrap();
    assert!(
        so.pnode.is_some() && so.pnode_global_dsq.is_some(),
        "7.3 has per-node global DSQs"
    );
    assert!(so.global_dsqs.is_none(), "the pre-7 layout is gone");
    assert!(so.pcpu_bypass_dsq.is_some(), "7.3 has per-CPU bypass DSQs");
    scx_walk::sched::EventOffsets::resolve(t, &so).unwrap();
    let rq = scx_walk::rq::RqOffsets::resolve(t).unwrap();
    assert!(rq.kick_sync.is_some() && rq.nr_immed.is_some() && rq.clock.is_some());
    assert_eq!(rq.ops_qseq, None, "7.3 keeps ops_qseq per task");
    scx_walk::dsq::DsqOffsets::resolve(t).unwrap();
    scx_walk::tasks::TaskOffsets::resolve(t).unwrap();
    let mo = scx_walk::maps::MapOffsets::resolve(t).unwrap();
    assert!(mo.array.is_some(), "bpf_array");
    assert!(mo.htab.is_some(), "bpf_htab");
    assert!(mo.arena.is_some(), "bpf_arena");
    assert!(mo.ringbuf.is_some(), "bpf_ringbuf");
    assert!(mo.stack.is_some(), "bpf_stack_map");
    assert!(mo.struct_ops.is_some(), "bpf_struct_ops_map");
    assert!(mo.storage.is_some(), "bpf_local_storage");
    scx_walk::progs::ProgOffsets::resolve(t).unwrap();
    scx_walk::cputime::CpuTimeOffsets::resolve(t).unwrap();
    scx_walk::numa::NumaOffsets::resolve(t).unwrap();
    scx_walk::psi::PsiOffsets::resolve(t).unwrap();
    // The offsets agree with the kernel's own BTF through btf-walk's path resolution.
    assert_eq!(
        Some(so.exit_kind),
        btf.offset_of("scx_sched.exit_kind")
            .ok()
            .map(scx_walk::root::Loc::Member)
    );
}

/// The 6.12 LTS (built by the lab from source): no `struct scx_sched` and no event
/// counters in its BTF (the scheduler is kernel globals, found through symbols); the
/// other walkers' groups resolve, `scx_rq.pnt_seq` standing in for `kick_sync`.
#[test]
fn guest_scx_612_offset_groups_resolve_without_scx_sched() {
    let lab = testing::open_lab().with_kernel_version("6.12");
    let kernel = lab.kernel().expect("provisioning the 6.12 kernel");
    let btf = Btf::from_file(&kernel.btf).expect("loading the kernel BTF");
    let t: &dyn KernelTypes = &btf;
    assert_eq!(
        t.offset_of("scx_sched", "exit_kind"),
        None,
        "no struct scx_sched"
    );
    assert_eq!(
        t.offset_of("scx_event_stats", "SCX_EV_SELECT_CPU_FALLBACK"),
        None,
        "no event counters"
    );
    assert!(t.offset_of("sched_ext_ops", "name").is_some());
    assert!(t.offset_of("scx_exit_info", "kind").is_some());
    let k = KernelView {
        mem: &Nothing,
        syms: &Nothing,
        types: t,
    };
    // Without the globals' symbols the layout cannot be told (a vmcore or a live guest
    // gives them); BTF alone still says it is not the scx_sched one.
    assert_eq!(scx_walk::root::layout(&k), None);
    scx_walk::lists::CoreOffsets::resolve(t).unwrap();
    let rq = scx_walk::rq::RqOffsets::resolve(t).unwrap();
    assert_eq!(rq.kick_sync, t.offset_of("rq", "scx.pnt_seq"));
    assert!(rq.kick_sync.is_some(), "6.12 has scx_rq.pnt_seq");
    scx_walk::dsq::DsqOffsets::resolve(t).unwrap();
    scx_walk::tasks::TaskOffsets::resolve(t).unwrap();
    scx_walk::maps::MapOffsets::resolve(t).unwrap();
    scx_walk::progs::ProgOffsets::resolve(t).unwrap();
    scx_walk::cputime::CpuTimeOffsets::resolve(t).unwrap();
    scx_walk::psi::PsiOffsets::resolve(t).unwrap();
    scx_walk::exit_info::ExitInfoOffsets::resolve(&k)
        .expect_err("neither scx_sched.exit_info nor the scx_exit_info symbol");
}
