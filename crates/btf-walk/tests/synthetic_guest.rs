//! BTF read from (test-built) guest memory: the kernel range by symbols, and BPF objects'
//! `struct btf` standalone and split, cached per address.

use btf_walk::synth::{BtfBuilder, INT_BOOL, INT_SIGNED, RegionMem};
use btf_walk::{Btf, GuestBtfCache, RenderOptions, Renderer, TypeId};
use dump_schema::RenderedValue as V;
use guest_mem::{Kva, SymbolTable};

/// A tiny "vmlinux" BTF with the kernel's `struct btf` members this crate reads.
fn vmlinux() -> (Vec<u8>, BtfBuilder) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED); // 1
    let uint = b.int("unsigned int", 4, 0); // 2
    let boolean = b.int("_Bool", 1, INT_BOOL); // 3
    let vptr = b.ptr(0); // 4
    let btf_ptr = b.ptr(6); // 5
    let _btf = b.struct_(
        "btf",
        32,
        &[
            ("data", vptr, 0, 0),
            ("data_size", uint, 64, 0),
            ("base_btf", btf_ptr, 128, 0),
            ("kernel_btf", boolean, 192, 0),
        ],
    ); // 6
    let _ = b.struct_(
        "task_struct",
        8,
        &[("pid", int, 0, 0), ("tgid", int, 32, 0)],
    );
    (b.build(), b)
}

fn struct_btf(data: u64, size: u32, base: u64, kernel: bool) -> Vec<u8> {
    let mut v = vec![0u8; 32];
    v[0..8].copy_from_slice(&data.to_le_bytes());
    v[8..12].copy_from_slice(&size.to_le_bytes());
    v[16..24].copy_from_slice(&base.to_le_bytes());
    v[24] = kernel as u8;
    v
}

#[test]
fn kernel_btf_from_guest_symbols() {
    let (raw, _) = vmlinux();
    let start = 0xffff_ffff_8200_0000u64;
    let mut mem = RegionMem::new();
    mem.add(start, raw.clone());
    let map = format!(
        "{start:016x} R __start_BTF\n{:016x} R __stop_BTF\n",
        start + raw.len() as u64
    );
    let syms = SymbolTable::from_system_map(&map).unwrap();
    let btf = Btf::from_guest_symbols(&mem, &syms).unwrap();
    assert_eq!(btf.offset_of("task_struct.tgid").unwrap(), 4);

    // Missing symbols and unreadable memory are errors naming the cause.
    let e = Btf::from_guest_symbols(&mem, &SymbolTable::from_system_map("").unwrap()).unwrap_err();
    assert!(e.to_string().contains("__start_BTF"), "{e}");
    let e = Btf::from_guest(&mem, Kva(start + 4096), Kva(start + 8192)).unwrap_err();
    assert!(e.to_string().contains("reading kernel BTF"), "{e}");
    let e = Btf::from_guest(&mem, Kva(start + 8), Kva(start)).unwrap_err();
    assert!(e.to_string().contains("below"), "{e}");
    let e = Btf::from_guest(&mem, Kva(0), Kva(u64::MAX)).unwrap_err();
    assert!(e.to_string().contains("above the limit"), "{e}");

    // A header whose type section is empty (type_len 0) is an error, not an empty BTF.
    let mut empty = raw.clone();
    empty[12..16].copy_from_slice(&0u32.to_le_bytes());
    let mut mem = RegionMem::new();
    mem.add(start, empty.clone());
    let e = Btf::from_guest(&mem, Kva(start), Kva(start + empty.len() as u64)).unwrap_err();
    assert!(e.to_string().contains("type section length 0"), "{e}");
}

/// Stable guest memory (as a vmcore's) at `base`, mapped linearly, counting the bytes
/// copied out of it: BTF borrowed from it is not read.
struct StableMem {
    base: u64,
    mem: guest_mem::PhysMem,
    copied: std::cell::Cell<usize>,
}

impl StableMem {
    fn new(base: u64, bytes: Vec<u8>) -> Self {
        let mem = guest_mem::PhysMem::from_buffers(vec![(guest_mem::Gpa(0), bytes)]).unwrap();
        let copied = Default::default();
        StableMem { base, mem, copied }
    }
}

impl guest_mem::KvaRead for StableMem {
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), guest_mem::MemError> {
        use guest_mem::PhysRead;
        self.copied.set(self.copied.get() + buf.len());
        let gpa = guest_mem::Gpa(kva.0.wrapping_sub(self.base));
        self.mem.read_phys(gpa, buf)
    }

    fn stable_bytes(&self, kva: Kva, len: u64) -> Option<guest_mem::StableBytes> {
        let gpa = guest_mem::Gpa(kva.0.wrapping_sub(self.base));
        self.mem.stable_bytes(gpa, usize::try_from(len).ok()?)
    }
}

#[test]
fn kernel_btf_borrowed_from_stable_memory_is_the_same() {
    let (raw, _) = vmlinux();
    let start = 0xffff_ffff_8200_0000u64;
    let stop = Kva(start + raw.len() as u64);
    let stable = StableMem::new(start, raw.clone());
    let btf = Btf::from_guest(&stable, Kva(start), stop).unwrap();
    // Only the header was copied: both sections are borrowed.
    assert_eq!(stable.copied.get(), 24);
    drop(stable);
    // Still valid without the reader it came from, and the same as a copied read.
    let mut copied = RegionMem::new();
    copied.add(start, raw.clone());
    let read = Btf::from_guest(&copied, Kva(start), stop).unwrap();
    assert_eq!(btf.type_count(), read.type_count());
    for id in (0..btf.type_count()).map(TypeId) {
        assert_eq!(btf.name(id).unwrap(), read.name(id).unwrap());
        assert_eq!(btf.kind(id).unwrap(), read.kind(id).unwrap());
        // Members are read from the borrowed type section when made.
        if let btf_walk::Kind::Struct { .. } = btf.kind(id).unwrap() {
            assert_eq!(btf.members(id).unwrap(), read.members(id).unwrap());
        }
    }
    let task = btf.struct_by_name("task_struct").unwrap();
    assert_eq!(&*btf.members(task).unwrap()[1].name, "tgid");
    assert_eq!(btf.offset_of("task_struct.tgid").unwrap(), 4);

    // Damaged string sections fail the same way borrowed or copied.
    let str_at = 24 + u32::from_le_bytes(raw[16..20].try_into().unwrap()) as usize;
    for (at, byte, why) in [
        (str_at + 1, 0xff, "not UTF-8"),
        (raw.len() - 1, b'x', "does not end with NUL"),
    ] {
        let mut bad = raw.clone();
        bad[at] = byte;
        let borrowed = Btf::from_guest(&StableMem::new(start, bad.clone()), Kva(start), stop);
        let mut copied = RegionMem::new();
        copied.add(start, bad);
        let read = Btf::from_guest(&copied, Kva(start), stop);
        let (e, r) = (
            borrowed.unwrap_err().to_string(),
            read.unwrap_err().to_string(),
        );
        assert!(e.contains(why), "{e}");
        assert_eq!(e, r);
    }
}

#[test]
fn bpf_object_btf_standalone_split_and_cached() {
    let (raw, vb) = vmlinux();
    let vml = Btf::from_raw(&raw).unwrap();

    // Standalone program BTF: its own ids from 1.
    let mut p = BtfBuilder::new();
    let pint = p.int("int", 4, INT_SIGNED);
    let val = p.struct_(
        "task_ctx",
        8,
        &[("weight", pint, 0, 0), ("slice", pint, 32, 0)],
    );
    let prog = p.build();
    // Split program BTF on vmlinux: uses vmlinux's `int` (id 1).
    let mut s = BtfBuilder::split(vml.type_count(), vb.str_len());
    let sval = s.struct_("split_ctx", 4, &[("cnt", 1, 0, 0)]);
    let split = s.build();

    let (kbtf, pbtf, sbtf, bad) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    let mut mem = RegionMem::new();
    mem.add(kbtf, struct_btf(0xaaaa_0000, 0, 0, true));
    mem.add(pbtf, struct_btf(0x10_0000, prog.len() as u32, 0, false));
    mem.add(sbtf, struct_btf(0x20_0000, split.len() as u32, kbtf, false));
    mem.add(bad, struct_btf(0x30_0000, 64, 0, false)); // data unreadable
    mem.add(0x10_0000, prog);
    mem.add(0x20_0000, split);

    let mut cache = GuestBtfCache::new(vml.clone()).unwrap();
    let k = cache.get(&mem, Kva(kbtf)).unwrap();
    assert_eq!(k.type_count(), vml.type_count());
    let pb = cache.get(&mem, Kva(pbtf)).unwrap();
    assert_eq!(pb.field(TypeId(val), "slice").unwrap().offset(), 4);
    let sb = cache.get(&mem, Kva(sbtf)).unwrap();
    assert_eq!(sb.struct_by_name("split_ctx").unwrap(), TypeId(sval));
    let v = Renderer::bytes_only(&sb, RenderOptions::default())
        .render_bytes(TypeId(sval), &[7, 0, 0, 0]);
    let V::Struct { members, .. } = &v else {
        panic!()
    };
    assert_eq!(members[0].value, V::Int { bits: 32, value: 7 });
    let e = cache.get(&mem, Kva(bad)).unwrap_err();
    assert!(e.to_string().contains("BPF object BTF data"), "{e}");
    // Cached: answers without touching memory again.
    let empty = RegionMem::new();
    assert!(cache.get(&empty, Kva(pbtf)).is_ok());
    assert!(cache.get(&empty, Kva(bad)).is_err());
    assert!(cache.get(&empty, Kva(0x9999)).is_err());

    // A vmlinux without `struct btf` lists what is missing.
    let mut b = BtfBuilder::new();
    b.int("int", 4, INT_SIGNED);
    let e = GuestBtfCache::new(Btf::from_raw(&b.build()).unwrap())
        .err()
        .unwrap();
    assert_eq!(e.missing, vec!["btf"]);
}
