//! The real kernels' BTF (host 6.x and the 7.3 sched_ext guest): loading through every
//! container, the walkers' offsets, and rendering thousands of real types over garbage
//! memory without a panic, within the wire format.

mod common;

use btf_walk::synth::RegionMem;
use btf_walk::{Btf, Kind, OffsetGroup, RenderOptions, Renderer, TypeId};
use dump_schema::RenderedValue as V;
use guest_lab::testing;

fn guest() -> Option<(std::path::PathBuf, Btf)> {
    let Some(vmlinuz) = common::guest_kernel() else {
        testing::skip("sched_ext guest kernel not provisioned (guest lab)");
        return None;
    };
    let btf = Btf::from_file(&vmlinuz).expect("BTF from the bzImage");
    Some((vmlinuz, btf))
}

#[test]
fn guest_btf_same_from_bzimage_elf_and_raw() {
    let Some((vmlinuz, from_bz)) = guest() else {
        return;
    };
    let image = std::fs::read(&vmlinuz).unwrap();
    assert_eq!(
        btf_walk::InputFormat::detect(&image),
        Some(btf_walk::InputFormat::BzImage)
    );
    let elf = btf_walk::decompress(btf_walk::bzimage_payload(&image).unwrap()).unwrap();
    assert_eq!(
        btf_walk::InputFormat::detect(&elf),
        Some(btf_walk::InputFormat::Elf)
    );
    let from_elf = Btf::from_bytes(&elf).unwrap();
    let raw = btf_walk::elf_btf_section(&elf).unwrap();
    let from_raw = Btf::from_raw(raw).unwrap();
    assert_eq!(from_bz.type_count(), from_raw.type_count());
    assert_eq!(from_elf.type_count(), from_raw.type_count());
    assert!(from_raw.type_count() > 50_000);
    for p in [
        "scx_sched.exit_kind",
        "rq.scx.runnable_list",
        "task_struct.scx.dsq_list",
    ] {
        assert_eq!(
            from_bz.offset_of(p).unwrap(),
            from_raw.offset_of(p).unwrap()
        );
    }
    // Corrupt and truncated images: errors, not panics.
    let e = Btf::from_bytes(&image[..image.len() / 2]).unwrap_err();
    println!("half a bzImage: {e}");
    let e = Btf::from_bytes(&elf[..4096]).unwrap_err();
    println!("4 KiB of the ELF: {e}");
    let e = Btf::from_raw(&raw[..raw.len() - 100]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn guest_walker_layouts_from_btf() {
    let Some((_, btf)) = guest() else {
        return;
    };
    // What guest-lab.md records of 7.3: scx_rq has these, and no ops_qseq (per task).
    let mut g = OffsetGroup::new(&btf, "rq_scx");
    for m in [
        "local_dsq",
        "reject_dsq",
        "runnable_list",
        "nr_running",
        "cpu_released",
        "flags",
        "nr_immed",
        "clock",
        "kick_sync",
    ] {
        let _ = g.field("scx_rq", m);
    }
    g.finish(()).expect("7.3 scx_rq members");
    let mut g = OffsetGroup::new(&btf, "rq_scx");
    let _ = g.field("scx_rq", "ops_qseq");
    assert_eq!(g.finish(()).unwrap_err().missing, vec!["scx_rq.ops_qseq"]);
    assert!(btf.field_by_path("task_struct.scx.ops_qseq").is_ok());
    // rq.scx is struct scx_rq embedded in struct rq.
    let rq_scx = btf.offset_of("rq.scx").unwrap();
    assert_eq!(
        btf.offset_of("rq.scx.nr_running").unwrap(),
        rq_scx + btf.offset_of("scx_rq.nr_running").unwrap()
    );
    // Exit kinds the trigger watcher compares against.
    assert_eq!(
        btf.enum_value("scx_exit_kind", "SCX_EXIT_ERROR").unwrap(),
        1024
    );
    assert_eq!(
        btf.enum_value("scx_exit_kind", "SCX_EXIT_ERROR_BPF")
            .unwrap(),
        1025
    );
    assert_eq!(
        btf.enum_value("scx_exit_kind", "SCX_EXIT_ERROR_STALL")
            .unwrap(),
        1026
    );
    // Enumerators by name alone (indexed on first use), as scx-walk asks for them.
    assert_eq!(btf.enumerator("SCX_EXIT_ERROR_BPF").unwrap(), 1025);
    assert_eq!(btf.enumerator("BPF_MAP_TYPE_ARENA").unwrap(), 33);
    assert!(btf.enumerator("NO_SUCH_ENUMERATOR_X").is_err());
    let mt = btf.enum_by_name("bpf_map_type").unwrap();
    assert_eq!(btf.enum_variant_name(mt, 2), Some("BPF_MAP_TYPE_ARRAY"));
    assert_eq!(
        btf.enum_variant_name(mt, 26),
        Some("BPF_MAP_TYPE_STRUCT_OPS")
    );
    assert_eq!(btf.enum_variant_name(mt, 33), Some("BPF_MAP_TYPE_ARENA"));
    // Per-CPU runqueues: a VAR in .data..percpu.
    let (rq_ty, off) = btf.section_var("runqueues").unwrap();
    assert_eq!(btf.name(rq_ty).unwrap(), "rq");
    assert!(off > 0);
    // exit_kind is an atomic_t: a struct with an int `counter`.
    let f = btf.field_by_path("scx_sched.exit_kind.counter").unwrap();
    assert_eq!(f.size, 4);
}

/// Renders every `step`-th struct/union of `btf` over pseudo-random memory.
fn render_many(label: &str, btf: &Btf, step: u32) {
    // xorshift: deterministic garbage, with some values that look like kernel pointers
    // into the one mapped region so that dereferences happen.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let base = 0xffff_8880_0000_0000u64;
    let mut bytes = vec![0u8; 1 << 16];
    for c in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = if x.is_multiple_of(4) {
            base + (x >> 48) * 8
        } else {
            x
        };
        c.copy_from_slice(&v.to_le_bytes());
    }
    let mut mem = RegionMem::new();
    mem.add(base, bytes.clone());
    let opts = RenderOptions {
        max_deref_depth: 2,
        max_values: 20_000,
        ..RenderOptions::default()
    };
    let mut rendered = 0;
    let mut r = Renderer::new(btf, &mem, opts);
    let mut id = 1;
    while id < btf.type_count() {
        let ty = TypeId(id);
        id += step;
        if !matches!(btf.kind(ty), Ok(Kind::Struct { .. })) {
            continue;
        }
        let size = btf.size_of(ty).unwrap() as usize;
        let v = r.render_bytes(ty, &bytes[..size.min(bytes.len())]);
        let json = serde_json::to_string(&v).unwrap();
        let back: V = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        r.reset();
        rendered += 1;
    }
    println!("{label}: rendered {rendered} struct/union types over garbage memory");
    assert!(rendered > 300);
}

#[test]
fn guest_types_render_over_garbage() {
    let Some((_, btf)) = guest() else {
        return;
    };
    render_many("guest 7.3", &btf, 7);
    // And a realistic one: task_struct from garbage bytes has its comm as 16 chars.
    let ts = btf.struct_by_name("task_struct").unwrap();
    let size = btf.size_of(ts).unwrap() as usize;
    let mut bytes = vec![0u8; size];
    let comm = btf.offset_of("task_struct.comm").unwrap() as usize;
    bytes[comm..comm + 9].copy_from_slice(b"swapper/0");
    let v = Renderer::bytes_only(&btf, RenderOptions::default()).render_bytes(ts, &bytes);
    let V::Struct { members, .. } = &v else {
        panic!()
    };
    let comm = &members.iter().find(|m| m.name == "comm").unwrap().value;
    let V::Array { len: 16, elements } = comm else {
        panic!("{comm:?}")
    };
    assert_eq!(elements[0], V::Char { value: b's' });
    // cpus_mask is a cpumask_t: a cpu_list.
    let m = &members
        .iter()
        .find(|m| m.name == "cpus_mask")
        .unwrap()
        .value;
    assert_eq!(
        m,
        &V::CpuList {
            cpus: String::new()
        }
    );
}

#[test]
fn host_types_render_over_garbage() {
    let Some(path) = common::host_btf() else {
        return testing::skip("no /sys/kernel/btf/vmlinux on this host");
    };
    let btf = Btf::from_file(path).unwrap();
    render_many("host", &btf, 11);
}
