//! The sdt pass on synthetic guests: a program BTF built type by type (the allocator's
//! real member names, both element layouts) and arena memory laid out by the test,
//! including the garbage a torn or hostile guest can hold.

use btf_walk::synth::{BtfBuilder, INT_SIGNED};
use btf_walk::{Btf, RenderOptions, Renderer, TypeId};
use dump_schema::reasons as why;
use dump_schema::{ArenaSnapshot, FailureDumpMap, FailureDumpReport, RenderedValue, map_type};
use guest_mem::{Kva, KvaRead};

use super::*;
use crate::kernel::{KernelView, ValueRenderer};
use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

const MAP: u64 = 0xffff_8880_0100_0000;
const BTF_KVA: u64 = 0xffff_8880_0200_0000;
const BSS: u64 = MAP + 0x200;
const ARENA_MAP: u64 = 0xffff_8880_0300_0000;
const KERN: u64 = 0xffff_c900_1000_0000;
const USER: u64 = 0x7f12_0000_0000;
/// Element size of the test allocator: a 16-byte `task_ctx` plus the 16-byte tailer.
const ELEM: u64 = 32;

/// Renders with one synthetic program BTF.
struct TestRenderer(Btf);

impl ValueRenderer for TestRenderer {
    fn render(
        &self,
        _btf: Option<Kva>,
        type_id: u32,
        bytes: &[u8],
        _mem: &dyn KvaRead,
    ) -> Result<RenderedValue, String> {
        let mut r = Renderer::bytes_only(&self.0, RenderOptions::default());
        Ok(r.render_bytes(TypeId(type_id), bytes))
    }
    fn find_struct(&self, _btf: Kva, name: &str, _mem: &dyn KvaRead) -> Option<u32> {
        self.0.struct_by_name(name).ok().map(|t| t.0)
    }
    fn program_btf(&self, _btf: Kva, _mem: &dyn KvaRead) -> Option<Btf> {
        Some(self.0.clone())
    }
}

/// Which `struct sdt_data` the program declares.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Header,
    Tailer,
}

/// How much of the allocator the program BTF defines.
#[derive(Clone, Copy, PartialEq)]
enum Sdt {
    /// No sdt types at all.
    None,
    /// Every struct defined (`form` picks `struct sdt_data`).
    Full,
    /// `scx_allocator` defined, `sdt_desc`, `sdt_chunk` and `sdt_data` only declared (as a
    /// linked scheduler object has them).
    Declared,
}

/// The program BTF and the id of its `.bss` data section.
fn program_btf(form: Form, sdt: Sdt, extra_16: &[&str]) -> (Btf, u32) {
    let mut b = BtfBuilder::new();
    let u64_ = b.int("unsigned long long", 8, 0);
    let s32 = b.int("int", 4, INT_SIGNED);
    let u32_ = b.int("unsigned int", 4, 0);
    let vp = b.ptr(0);
    let task = b.struct_(
        "task_ctx",
        16,
        &[
            ("pid", s32, 0, 0),
            ("weight", u32_, 32, 0),
            ("vtime", u64_, 64, 0),
        ],
    );
    for name in extra_16 {
        b.struct_(name, 16, &[("a", u64_, 0, 0), ("b", u64_, 64, 0)]);
    }
    let stat = b.struct_(
        "scx_static",
        24,
        &[
            ("max_alloc_bytes", u64_, 0, 0),
            ("memory", vp, 64, 0),
            ("off", u64_, 128, 0),
        ],
    );
    if sdt == Sdt::None {
        let v = b.var("scx_static", stat);
        let ds = b.datasec(".bss", 24, &[(v, 0, 24)]);
        return (Btf::from_raw(&b.build()).unwrap(), ds);
    }
    let pool = b.struct_(
        "sdt_pool",
        40,
        &[
            ("slab", vp, 0, 0),
            ("reserve", vp, 64, 0),
            ("elem_size", u64_, 128, 0),
            ("max_elems", u64_, 192, 0),
            ("idx", u64_, 256, 0),
        ],
    );
    let finish = |mut b: BtfBuilder, alloc: u32| {
        let va = b.var("scx_task_allocator", alloc);
        let vs = b.var("scx_static", stat);
        let ds = b.datasec(".bss", 72, &[(va, 0, 48), (vs, 48, 24)]);
        (Btf::from_raw(&b.build()).unwrap(), ds)
    };
    if sdt == Sdt::Declared {
        let desc = b.fwd("sdt_desc", false);
        let desc_ptr = b.ptr(desc);
        let alloc = b.struct_(
            "scx_allocator",
            48,
            &[("pool", pool, 0, 0), ("root", desc_ptr, 320, 0)],
        );
        b.fwd("sdt_chunk", false);
        b.fwd("sdt_data", false);
        return finish(b, alloc);
    }
    // Forward references by id, checked below.
    let desc_id = b.next_id() + 4;
    let desc_ptr = b.ptr(desc_id);
    let alloc = b.struct_(
        "scx_allocator",
        48,
        &[("pool", pool, 0, 0), ("root", desc_ptr, 320, 0)],
    );
    let bitmap = b.array(u64_, u32_, 8);
    let chunk_id = b.next_id() + 5;
    let chunk_ptr = b.ptr(chunk_id);
    let desc = b.struct_(
        "sdt_desc",
        80,
        &[
            ("allocated", bitmap, 0, 0),
            ("nr_free", u64_, 512, 0),
            ("chunk", chunk_ptr, 576, 0),
        ],
    );
    assert_eq!(desc, desc_id);
    let slots = b.array(desc_ptr, u32_, 512);
    let datas = b.array(vp, u32_, 512);
    let un = b.union_("", 4096, &[("descs", slots, 0, 0), ("data", datas, 0, 0)]);
    let chunk = b.struct_("sdt_chunk", 4096, &[("", un, 0, 0)]);
    assert_eq!(chunk, chunk_id);
    let ids = b.struct_("", 8, &[("idx", s32, 0, 0), ("genn", s32, 32, 0)]);
    let sdt_id = b.union_("sdt_id", 8, &[("val", u64_, 0, 0), ("", ids, 0, 0)]);
    match form {
        Form::Tailer => b.struct_(
            "sdt_data",
            16,
            &[("tid", sdt_id, 0, 0), ("urcu_link", u64_, 64, 0)],
        ),
        Form::Header => {
            let flex = b.array(u64_, u32_, 0);
            b.struct_(
                "sdt_data",
                8,
                &[("tid", sdt_id, 0, 0), ("payload", flex, 64, 0)],
            )
        }
    };
    let _ = task;
    finish(b, alloc)
}

/// A guest with the `.bss` map, the arena map and an allocator tree of three levels.
struct Guest {
    mem: FakeMem,
    types: FakeTypes,
    report: FailureDumpReport,
}

fn a(off: u64) -> u64 {
    USER + off
}

impl Guest {
    fn new(datasec: u32) -> Guest {
        let types = FakeTypes::default()
            .member("bpf_map", "btf", 0x40)
            .member("bpf_map", "btf_value_type_id", 0x50)
            .member("bpf_array", "value", 0x200);
        let mut mem = FakeMem::default();
        mem.w64(MAP + 0x40, BTF_KVA);
        mem.w32(MAP + 0x50, datasec);
        mem.write(BSS, &[0u8; 72]);
        let report = FailureDumpReport {
            maps: vec![
                FailureDumpMap {
                    name: "p2dq.bss".into(),
                    map_kva: MAP,
                    map_type: map_type::ARRAY,
                    ..FailureDumpMap::default()
                },
                FailureDumpMap {
                    name: "arena".into(),
                    map_kva: ARENA_MAP,
                    map_type: map_type::ARENA,
                    arena: Some(ArenaSnapshot {
                        kern_vm_start: KERN,
                        user_vm_start: USER,
                        declared_pages: 1024,
                        ..ArenaSnapshot::default()
                    }),
                    ..FailureDumpMap::default()
                },
            ],
            ..FailureDumpReport::default()
        };
        Guest { mem, types, report }
    }

    /// Arena bytes at offset `off` (the kernel mapping).
    fn w64(&mut self, off: u64, v: u64) {
        self.mem.w64(KERN + off, v);
    }

    /// A descriptor at `off` with its chunk at `chunk`, leaf bitmap word 0 = `bits`.
    fn desc(&mut self, off: u64, chunk: u64, bits: u64) {
        self.mem.write(KERN + off, &[0u8; 80]);
        self.w64(off, bits);
        self.w64(off + 72, a(chunk));
        self.mem.write(KERN + chunk, &[0u8; 4096]);
    }

    /// The allocator with elements `(pos, idx, genn, pid)` hung at leaf slots `pos`;
    /// `live` bits say which are allocated. Returns element arena offsets.
    fn tree(&mut self, form: Form, elems: &[(u64, i32, i32, i32)], live: u64) -> Vec<u64> {
        self.mem.w64(BSS + 16, ELEM);
        self.mem.w64(BSS + 40, a(0x1000));
        self.desc(0x1000, 0x2000, 0);
        self.w64(0x2000, a(0x3000));
        self.desc(0x3000, 0x4000, 0);
        self.w64(0x4000, a(0x5000));
        self.desc(0x5000, 0x6000, live);
        let mut offs = Vec::new();
        for (i, &(pos, idx, genn, pid)) in elems.iter().enumerate() {
            let e = 0x8000 + i as u64 * ELEM;
            let mut bytes = vec![0u8; ELEM as usize];
            let (tid, payload) = match form {
                Form::Tailer => (16, 0),
                Form::Header => (0, 8),
            };
            bytes[tid..tid + 4].copy_from_slice(&idx.to_le_bytes());
            bytes[tid + 4..tid + 8].copy_from_slice(&genn.to_le_bytes());
            bytes[payload..payload + 4].copy_from_slice(&pid.to_le_bytes());
            bytes[payload + 4..payload + 8].copy_from_slice(&100u32.to_le_bytes());
            self.mem.write(KERN + e, &bytes);
            self.w64(0x6000 + pos * 8, a(e));
            offs.push(e);
        }
        offs
    }

    fn static_range(&mut self, cap: u64, memory: u64, used: u64) {
        self.mem.w64(BSS + 48, cap);
        self.mem.w64(BSS + 56, memory);
        self.mem.w64(BSS + 64, used);
    }

    fn run(&self, btf: &Btf, deadline: &dyn Fn() -> bool) -> SdtCapture {
        let syms = FakeSyms::default();
        let k = KernelView {
            mem: &self.mem,
            syms: &syms,
            types: &self.types,
        };
        let r = TestRenderer(btf.clone());
        capture_sdt(&self.report, Some(&r), &k, deadline)
    }
}

fn never() -> bool {
    false
}

fn member<'a>(v: &'a RenderedValue, name: &str) -> &'a RenderedValue {
    match v {
        RenderedValue::Struct { members, .. } => {
            &members.iter().find(|m| m.name == name).unwrap().value
        }
        other => panic!("not a struct: {other:?}"),
    }
}

#[test]
fn live_elements_with_typed_payloads_and_static_range() {
    for form in [Form::Tailer, Form::Header] {
        let (btf, ds) = program_btf(form, Sdt::Full, &[]);
        let mut g = Guest::new(ds);
        // Slot 2 was freed: its element is still hung but its bit is clear.
        let offs = g.tree(
            form,
            &[(0, 0, 0, 11), (1, 1, 3, 22), (2, 2, 1, 33), (5, 5, 0, 55)],
            0b10_0011,
        );
        g.static_range(16 * 4096, a(0x40_0000), 1234);
        let c = g.run(&btf, &never);
        assert_eq!(c.unavailable, None, "{:?}", c.log);
        assert_eq!(c.allocations.len(), 1);
        let s = &c.allocations[0];
        assert_eq!(s.allocator_name, "scx_task_allocator");
        assert_eq!(s.elem_size, ELEM);
        assert!(!s.truncated);
        assert_eq!(s.skipped_subtrees, 0);
        assert_eq!(s.payload_type_reason, "");
        assert_eq!(btf.name(TypeId(s.target_type_id)).unwrap(), "task_ctx");
        let got: Vec<_> = s.entries.iter().map(|e| (e.idx, e.genn)).collect();
        assert_eq!(got, [(0, 0), (1, 3), (5, 0)]);
        assert_eq!(s.entries[1].user_addr, (a(offs[1])) & 0xffff_ffff);
        let pids: Vec<_> = s
            .entries
            .iter()
            .map(|e| member(&e.payload, "pid").clone())
            .collect();
        assert_eq!(
            pids,
            [11, 22, 55].map(|v| RenderedValue::Int { bits: 32, value: v })
        );
        assert_eq!(
            c.static_ranges.ranges,
            [ScxStaticRange {
                instance_name: "scx_static".into(),
                start_low32: 0x40_0000,
                size: 1234,
                capacity: 16 * 4096,
            }]
        );
        assert_eq!(c.static_ranges.skipped, 0);
    }
}

#[test]
fn cycles_and_shared_subtrees_are_skipped_not_followed() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let mut g = Guest::new(ds);
    g.tree(Form::Tailer, &[(0, 0, 0, 1)], 1);
    // Level 1's chunk points back at the root descriptor, and twice at level 2's.
    g.w64(0x4000 + 8, a(0x1000));
    g.w64(0x4000 + 16, a(0x5000));
    // The leaf hangs the same element at two live slots.
    g.w64(0x6000 + 8, a(0x8000));
    g.w64(0x5000, 0b11);
    let c = g.run(&btf, &never);
    let s = &c.allocations[0];
    assert_eq!(s.entries.len(), 1);
    assert_eq!(s.skipped_subtrees, 3, "{:?}", c.log);
    assert!(
        c.log.iter().any(|l| l.contains("reached twice")),
        "{:?}",
        c.log
    );
}

#[test]
fn pointers_outside_the_arena_and_unreadable_memory_are_skipped() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let mut g = Guest::new(ds);
    g.tree(Form::Tailer, &[(0, 0, 0, 1), (1, 1, 0, 2)], 0b111);
    g.w64(0x2000 + 8, 0xdead_0000_1000); // wrong upper half
    g.w64(0x2000 + 16, a(0x7fff_0000)); // inside the window, never mapped
    g.w64(0x6000 + 16, a(0x9_0000)); // live slot 2: an unmapped element
    let c = g.run(&btf, &never);
    let s = &c.allocations[0];
    assert_eq!(s.entries.len(), 2);
    assert_eq!(s.skipped_subtrees, 3, "{:?}", c.log);
}

#[test]
fn garbage_elem_size_and_uninitialized_allocators() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let mut g = Guest::new(ds);
    g.tree(Form::Tailer, &[(0, 0, 0, 1)], 1);
    for bad in [3, 8, u64::MAX, MAX_ELEM_PLUS] {
        g.mem.w64(BSS + 16, bad);
        let c = g.run(&btf, &never);
        let s = &c.allocations[0];
        assert!(s.entries.is_empty(), "elem_size {bad}");
        assert_eq!(s.skipped_subtrees, 1, "elem_size {bad}");
    }
    // root == NULL: listed, empty, nothing skipped.
    g.mem.w64(BSS + 16, 0);
    g.mem.w64(BSS + 40, 0);
    let c = g.run(&btf, &never);
    assert_eq!(c.unavailable, None);
    let s = &c.allocations[0];
    assert!(s.entries.is_empty() && s.skipped_subtrees == 0);
    assert_eq!(s.payload_type_reason, "allocator not initialized");
}

const MAX_ELEM_PLUS: u64 = tree::MAX_ELEM_SIZE + 8;

#[test]
fn huge_counts_hit_the_caps() {
    let (btf, _) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let layout = SdtLayout::from_btf(&btf).unwrap();
    let mut g = Guest::new(0);
    // Every inner slot of the root points at its own level-1 descriptor whose chunk is
    // all zero: 512 descriptors, more than the cap of 100.
    g.tree(Form::Tailer, &[], 0);
    for pos in 0..512 {
        let d = 0x10_0000 + pos * 0x2000;
        g.desc(d, d + 0x1000, 0);
        g.w64(0x2000 + pos * 8, a(d));
    }
    let syms = FakeSyms::default();
    let k = KernelView {
        mem: &g.mem,
        syms: &syms,
        types: &g.types,
    };
    let window = ArenaWindow {
        kern_vm_start: KERN,
        user_vm_start: USER,
    };
    let mut alloc = vec![0u8; 48];
    alloc[16..24].copy_from_slice(&ELEM.to_le_bytes());
    alloc[40..48].copy_from_slice(&a(0x1000).to_le_bytes());
    let caps = TreeCaps {
        entries: 4096,
        descs: 100,
    };
    let t = walk_allocator(&k, window, &layout, &alloc, caps, &never);
    assert!(t.truncated);
    assert!(t.entries.is_empty());
    // A full leaf bitmap (512 live bits) with an entry cap of 7.
    let mut g = Guest::new(0);
    let elems: Vec<_> = (0..20).map(|i| (i, i as i32, 0, 1)).collect();
    g.tree(Form::Tailer, &elems, u64::MAX);
    for w in 1..8 {
        g.w64(0x5000 + w * 8, u64::MAX);
    }
    let k = KernelView {
        mem: &g.mem,
        syms: &syms,
        types: &g.types,
    };
    let caps = TreeCaps {
        entries: 7,
        descs: 100,
    };
    let t = walk_allocator(&k, window, &layout, &alloc, caps, &never);
    assert!(t.truncated);
    assert_eq!(t.entries.len(), 7);
    assert_eq!(t.entries[6].tree_idx, 6);
}

#[test]
fn deadline_before_and_during_the_walk() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let mut g = Guest::new(ds);
    g.tree(Form::Tailer, &[(0, 0, 0, 1)], 1);
    let c = g.run(&btf, &|| true);
    assert_eq!(c.unavailable.as_deref(), Some(why::SDT_ALLOC_DEADLINE));
    assert!(c.allocations.is_empty());
    // Passes after the first poll: the walk stops at the first descriptor.
    let polls = std::cell::Cell::new(0);
    let c = g.run(&btf, &|| {
        polls.set(polls.get() + 1);
        polls.get() > 1
    });
    assert!(c.allocations[0].truncated);
    assert!(c.deadline_hit);
}

#[test]
fn each_documented_reason() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let mut g = Guest::new(ds);
    g.report.maps[0].name = "p2dq.data".into();
    assert_eq!(
        g.run(&btf, &never).unavailable.as_deref(),
        Some(why::NO_BSS_MAP)
    );

    // A .bss without program BTF (bpf_map.btf NULL).
    let mut g = Guest::new(ds);
    g.mem.w64(MAP + 0x40, 0);
    assert_eq!(
        g.run(&btf, &never).unavailable.as_deref(),
        Some(why::NO_BSS_MAP)
    );

    let (plain, pds) = program_btf(Form::Tailer, Sdt::None, &[]);
    let mut g = Guest::new(pds);
    g.static_range(4096, a(0x1000), 0);
    let c = g.run(&plain, &never);
    assert_eq!(c.unavailable.as_deref(), Some(why::NO_SCX_ALLOCATOR_TYPE));

    let mut g = Guest::new(ds);
    g.report.maps.truncate(1);
    assert_eq!(
        g.run(&btf, &never).unavailable.as_deref(),
        Some(why::NO_ARENA_MAP)
    );

    let mut g = Guest::new(ds);
    g.report.maps[1].arena.as_mut().unwrap().user_vm_start = USER + 0x1000;
    assert_eq!(
        g.run(&btf, &never).unavailable.as_deref(),
        Some(why::USER_VM_START_UNALIGNED)
    );

    // The type is declared but .bss holds only a scx_static: no instance.
    let mut b = BtfBuilder::new();
    let u64_ = b.int("unsigned long long", 8, 0);
    b.struct_("scx_allocator", 8, &[("root", u64_, 0, 0)]);
    let v = b.var("counter", u64_);
    let ds2 = b.datasec(".bss", 8, &[(v, 0, 8)]);
    let only_type = Btf::from_raw(&b.build()).unwrap();
    let g = Guest::new(ds2);
    let c = g.run(&only_type, &never);
    assert_eq!(
        c.unavailable.as_deref(),
        Some(why::NO_SCX_ALLOCATOR_INSTANCE)
    );

    // Garbage static instances are counted, not shown.
    let mut g = Guest::new(ds);
    g.static_range(4096, a(0x1000), 8192);
    let c = g.run(&btf, &never);
    assert!(c.static_ranges.ranges.is_empty());
    assert_eq!(c.static_ranges.skipped, 1);
}

#[test]
fn payload_type_by_size_then_name_then_ambiguity() {
    let none = |_: &str| None;
    // Two more 16-byte structs: `task_ctx` still wins by the allocator's stem.
    let (btf, _) = program_btf(Form::Tailer, Sdt::Full, &["atq_node", "other"]);
    match payload_type(&btf, "scx_task_allocator", 32, 16, &none) {
        PayloadType::Found { id, size } => {
            assert_eq!(btf.name(id).unwrap(), "task_ctx");
            assert_eq!(size, 16);
        }
        other => panic!("{other:?}"),
    }
    match payload_type(&btf, "scx_atq_allocator", 32, 16, &none) {
        PayloadType::Found { id, .. } => assert_eq!(btf.name(id).unwrap(), "atq_node"),
        other => panic!("{other:?}"),
    }
    match payload_type(&btf, "scx_bitmap_allocator", 32, 16, &none) {
        PayloadType::Unknown(r) => assert!(r.starts_with("ambiguous: 3 structs"), "{r}"),
        other => panic!("{other:?}"),
    }
    // A copy of a kernel struct (same name and size) is not a candidate.
    let kernel_other = |n: &str| (n == "other").then_some(16);
    match payload_type(&btf, "scx_bitmap_allocator", 32, 16, &kernel_other) {
        PayloadType::Unknown(r) => assert!(r.starts_with("ambiguous: 2 structs"), "{r}"),
        other => panic!("{other:?}"),
    }
    match payload_type(&btf, "scx_task_allocator", 4000, 16, &none) {
        PayloadType::Unknown(r) => assert!(r.contains("no struct"), "{r}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        payload_type(&btf, "x", 8, 16, &none),
        PayloadType::Unknown(_)
    ));
}

#[test]
fn arena_window_rejects_foreign_pointers() {
    let w = ArenaWindow {
        kern_vm_start: KERN,
        user_vm_start: USER,
    };
    assert_eq!(w.kva(0), None);
    assert_eq!(w.kva(0x1234), None);
    assert_eq!(w.kva(KERN + 8), None);
    assert_eq!(w.kva(USER + 0xffff_fff8), Some(Kva(KERN + 0xffff_fff8)));
}

/// A linked scheduler's BTF only declares `sdt_desc`, `sdt_chunk` and `sdt_data` (seen
/// with scx_p2dq 1.1.4): the documented layout is used and the element form is inferred
/// from the elements' own indices.
#[test]
fn declared_only_structs_use_the_facts_and_infer_the_element_form() {
    for form in [Form::Tailer, Form::Header] {
        let (btf, ds) = program_btf(form, Sdt::Declared, &[]);
        let layout = SdtLayout::from_btf(&btf).unwrap();
        assert_eq!(layout.assumed, ["sdt_desc", "sdt_chunk", "sdt_data"]);
        assert_eq!(
            (layout.chunk, layout.desc_size, layout.slots),
            (72, 80, 512)
        );
        let mut g = Guest::new(ds);
        g.tree(
            form,
            &[(0, 0, 0, 11), (1, 1, 3, 22), (5, 5, 2, 55)],
            0b10_0011,
        );
        let c = g.run(&btf, &never);
        let s = &c.allocations[0];
        let got: Vec<_> = s.entries.iter().map(|e| (e.idx, e.genn)).collect();
        assert_eq!(got, [(0, 0), (1, 3), (5, 2)]);
        assert_eq!(btf.name(TypeId(s.target_type_id)).unwrap(), "task_ctx");
        assert_eq!(
            member(&s.entries[2].payload, "pid"),
            &RenderedValue::Int {
                bits: 32,
                value: 55
            }
        );
        assert!(
            c.log.iter().any(|l| l.contains("only declares")),
            "{:?}",
            c.log
        );
    }
}

/// A renderer that sees the type but cannot hand out the BTF object.
struct OpaqueRenderer(Btf);

impl ValueRenderer for OpaqueRenderer {
    fn render(
        &self,
        _btf: Option<Kva>,
        _type_id: u32,
        bytes: &[u8],
        _mem: &dyn KvaRead,
    ) -> Result<RenderedValue, String> {
        Ok(RenderedValue::Bytes {
            hex: crate::kernel::hex(bytes),
        })
    }
    fn find_struct(&self, _btf: Kva, name: &str, _mem: &dyn KvaRead) -> Option<u32> {
        self.0.struct_by_name(name).ok().map(|t| t.0)
    }
}

#[test]
fn a_declared_allocator_whose_btf_cannot_be_loaded_says_so() {
    let (btf, ds) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let g = Guest::new(ds);
    let syms = FakeSyms::default();
    let k = KernelView {
        mem: &g.mem,
        syms: &syms,
        types: &g.types,
    };
    let c = capture_sdt(&g.report, Some(&OpaqueRenderer(btf)), &k, &never);
    assert_eq!(
        c.unavailable.as_deref(),
        Some(crate::reasons::SDT_BTF_UNAVAILABLE)
    );
    assert!(c.allocations.is_empty());
}

/// Arena pages full of random words, most of them pointers into the arena window (so the
/// walk goes deep, into cycles and shared subtrees): every walk ends, within its caps,
/// without a panic.
#[test]
fn random_arena_garbage_is_walked_within_caps() {
    let (btf, _) = program_btf(Form::Tailer, Sdt::Full, &[]);
    let layout = SdtLayout::from_btf(&btf).unwrap();
    let window = ArenaWindow {
        kern_vm_start: KERN,
        user_vm_start: USER,
    };
    let syms = FakeSyms::default();
    let types = FakeTypes::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const PAGES: u64 = 12;
    let (mut entries, mut skipped, mut truncated) = (0, 0, 0);
    for round in 0..24 {
        let mut mem = FakeMem::default();
        for w in 0..PAGES * 512 {
            let r = next();
            let v = match r % 8 {
                0 => u64::MAX,
                1 => 0,
                2 => next(),
                _ => a(((r >> 8) % (PAGES * 4096)) & !7),
            };
            mem.w64(KERN + w * 8, v);
        }
        let k = KernelView {
            mem: &mem,
            syms: &syms,
            types: &types,
        };
        let mut alloc = vec![0u8; 48];
        let elem = [16u64, 32, 216, 4096][round % 4];
        alloc[16..24].copy_from_slice(&elem.to_le_bytes());
        alloc[40..48].copy_from_slice(&a((next() % PAGES) * 4096).to_le_bytes());
        let caps = TreeCaps {
            entries: 64,
            descs: 32,
        };
        let t = walk_allocator(&k, window, &layout, &alloc, caps, &never);
        assert!(t.entries.len() <= caps.entries, "round {round}");
        assert!(t.notes.len() <= 16);
        for e in &t.entries {
            assert_eq!(e.bytes.len() as u64, elem);
            assert!(e.tree_idx < 1 << 27);
        }
        entries += t.entries.len();
        skipped += t.skipped_subtrees;
        truncated += usize::from(t.truncated);
    }
    // The garbage really took the walk through every path.
    assert!(
        entries > 0 && skipped > 0 && truncated > 0,
        "{entries} {skipped} {truncated}"
    );
}
