//! Every offset group resolves against the real 7.3 sched_ext kernel's BTF.
//!
//! The BTF comes from the guest lab's cache (`freeze::lab`), or `SCX_WALK_BTF` names a
//! raw BTF / vmlinux / bzImage file.

use btf_walk::Btf;
use scx_walk::KernelTypes;

fn kernel_btf() -> Option<Btf> {
    let path = std::env::var("SCX_WALK_BTF").ok()?;
    Some(Btf::from_file(&path).unwrap_or_else(|e| panic!("loading {path}: {e}")))
}

#[test]
fn every_group_resolves_on_7_3() {
    let Some(btf) = kernel_btf() else {
        eprintln!("SKIP: SCX_WALK_BTF not set (no 7.3 kernel BTF available)");
        return;
    };
    let t: &dyn KernelTypes = &btf;
    scx_walk::lists::CoreOffsets::resolve(t).unwrap();
    let so = scx_walk::sched::SchedOffsets::resolve(t).unwrap();
    assert!(
        so.pnode.is_some() && so.pnode_global_dsq.is_some(),
        "7.3 has per-node DSQs"
    );
    assert!(so.pcpu_bypass_dsq.is_some());
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
}
