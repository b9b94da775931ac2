//! Map walkers on synthetic memory: layouts chosen by the test, not the kernel's, so
//! every offset really comes from the types table.

use dump_schema::{RenderedValue, map_type};
use guest_mem::Kva;

use super::{MapCaps, MapCtx, MapOffsets};
use crate::kernel::{KernelView, PerCpu};
use crate::lists::CoreOffsets;
use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

const B: u64 = 0xffff_8880_0000_0000;

fn types() -> FakeTypes {
    FakeTypes::core()
        .members(
            "bpf_map",
            &[
                ("map_type", 0x18),
                ("key_size", 0x1c),
                ("value_size", 0x20),
                ("max_entries", 0x24),
                ("map_flags", 0x30),
                ("name", 0x60),
                ("btf", 0x58),
                ("btf_key_type_id", 0x48),
                ("btf_value_type_id", 0x4c),
                ("btf_vmlinux_value_type_id", 0x50),
            ],
        )
        .members(
            "bpf_array",
            &[("elem_size", 0x100), ("value", 0x140), ("ptrs", 0x140)],
        )
        .members("bpf_htab", &[("buckets", 0x108), ("n_buckets", 0x110)])
        .member("bucket", "head", 0)
        .member("htab_elem", "key", 0x30)
        .size("bucket", 16)
}

fn write_map(m: &mut FakeMem, at: u64, ty: u32, key: u32, value: u32, max: u32, name: &str) {
    m.w32(at + 0x18, ty);
    m.w32(at + 0x1c, key);
    m.w32(at + 0x20, value);
    m.w32(at + 0x24, max);
    m.write(at + 0x60, name.as_bytes());
}

/// Writes `bpf_array.elem_size` of the array map at `array` (the offset [`types`] gives).
fn set_elem_size(m: &mut FakeMem, array: u64, size: u32) {
    m.w32(array + 0x100, size);
}

/// The test types and memory holding one map at `B` ([`write_map`]).
fn map_at_b(ty: u32, key: u32, value: u32, max: u32, name: &str) -> (FakeTypes, FakeMem) {
    let mut m = FakeMem::default();
    write_map(&mut m, B, ty, key, value, max, name);
    (types(), m)
}

fn capture(m: &FakeMem, t: &FakeTypes, map: u64, caps: MapCaps) -> dump_schema::FailureDumpMap {
    let s = FakeSyms::default();
    let k = KernelView {
        mem: m,
        syms: &s,
        types: t,
    };
    let c = CoreOffsets::resolve(t).unwrap();
    let o = MapOffsets::resolve(t).unwrap();
    let pc = PerCpu::from_offsets(vec![0, 0x10_0000]);
    let cx = MapCtx {
        k,
        c: &c,
        o: &o,
        pc: &pc,
        renderer: None,
        caps,
    };
    cx.capture(Kva(map))
}

#[test]
fn hash_entries_follow_nulls_lists_and_cap() {
    let (t, mut m) = map_at_b(map_type::HASH, 4, 8, 16, "counts");
    let map = B;
    let buckets = B + 0x1000;
    m.w64(map + 0x108, buckets);
    m.w32(map + 0x110, 2);
    // bucket 0: e1 -> e2 -> nulls(0); bucket 1: empty (nulls marker 1<<1|1).
    let (e1, e2) = (B + 0x2000, B + 0x3000);
    m.w64(buckets, e1);
    m.w64(e1, e2);
    m.w64(e2, 1);
    m.w64(buckets + 16, 3);
    for (e, key, val) in [(e1, 7u32, 70u64), (e2, 9, 90)] {
        m.w32(e + 0x30, key);
        m.w64(e + 0x38, val); // value at key + round_up(4, 8)
    }
    let d = capture(&m, &t, map, MapCaps::default());
    assert_eq!(d.name, "counts");
    assert_eq!(d.entries.len(), 2);
    assert_eq!(d.entries[0].key_hex, "07 00 00 00");
    assert_eq!(d.entries[1].value_hex, "5a 00 00 00 00 00 00 00");
    // Without BTF the values are hex, and `error` says why.
    assert!(matches!(
        d.entries[0].value,
        Some(RenderedValue::Bytes { .. })
    ));
    assert!(d.error.as_deref().unwrap().contains("rendered as hex"));
    // The cap is reported with the wire format's wording.
    let caps = MapCaps {
        keys: 1,
        ..MapCaps::default()
    };
    let d = capture(&m, &t, map, caps);
    assert_eq!(d.entries.len(), 1);
    assert!(
        d.error
            .as_deref()
            .unwrap()
            .contains("hash map truncated at 1 entries")
    );
    // A chain looping back on itself ends the bucket, not the walk.
    m.w64(e2, e1);
    let d = capture(&m, &t, map, MapCaps::default());
    assert!(d.error.as_deref().unwrap().contains("unreadable"));
}

#[test]
fn single_entry_array_is_a_value_and_larger_ones_are_entries() {
    let (t, mut m) = map_at_b(map_type::ARRAY, 4, 12, 1, "sched.bss");
    let bss = B;
    set_elem_size(&mut m, bss, 16);
    m.write(bss + 0x140, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let d = capture(&m, &t, bss, MapCaps::default());
    assert_eq!(
        d.value,
        Some(RenderedValue::Bytes {
            hex: "01 02 03 04 05 06 07 08 09 0a 0b 0c".into()
        })
    );
    assert!(d.array_entries.is_empty());

    let arr = B + 0x10_000;
    write_map(&mut m, arr, map_type::ARRAY, 4, 8, 3, "by_cpu");
    set_elem_size(&mut m, arr, 8);
    for i in 0..3u64 {
        m.w64(arr + 0x140 + 8 * i, 100 + i);
    }
    let d = capture(&m, &t, arr, MapCaps::default());
    assert_eq!(d.array_entries.len(), 3);
    assert_eq!(d.array_entries[2].key, 2);
    // An elem_size smaller than the value is garbage: an error, no entries.
    set_elem_size(&mut m, arr, 4);
    let d = capture(&m, &t, arr, MapCaps::default());
    assert!(d.array_entries.is_empty());
    assert!(d.error.as_deref().unwrap().contains("elem_size"));
}

#[test]
fn percpu_array_reads_every_cpu_copy() {
    let (t, mut m) = map_at_b(map_type::PERCPU_ARRAY, 4, 8, 1, "pcpu");
    let map = B;
    set_elem_size(&mut m, map, 8);
    let pptr = B + 0x5000;
    m.w64(map + 0x140, pptr);
    m.w64(pptr, 11);
    m.w64(pptr + 0x10_0000, 22);
    let d = capture(&m, &t, map, MapCaps::default());
    assert_eq!(d.percpu_entries.len(), 1);
    let hexes: Vec<_> = d.percpu_entries[0]
        .per_cpu
        .iter()
        .map(|v| match v {
            Some(RenderedValue::Bytes { hex }) => hex.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        hexes,
        ["0b 00 00 00 00 00 00 00", "16 00 00 00 00 00 00 00"]
    );
}

#[test]
fn unreadable_header_is_an_error_entry_not_a_panic() {
    let t = types();
    let m = FakeMem::default();
    let d = capture(&m, &t, B, MapCaps::default());
    assert_eq!(d.map_kva, B);
    assert!(d.error.unwrap().contains("map header unreadable"));
}

#[test]
fn arrays_are_taken_biggest_first_unless_order_must_hold() {
    let mut m = FakeMem::default();
    let at = |i: u64| B + i * 0x1000;
    // idr order: a hash, a small array, a big per-CPU array, an unreadable header, a
    // mid-size array, another hash.
    write_map(&mut m, at(0), map_type::HASH, 8, 8, 100_000, "h1");
    write_map(&mut m, at(1), map_type::ARRAY, 4, 8, 4, "small");
    write_map(&mut m, at(2), map_type::PERCPU_ARRAY, 4, 64, 1_000, "big");
    write_map(&mut m, at(4), map_type::ARRAY, 4, 4096, 1, "mid.bss");
    write_map(&mut m, at(5), map_type::HASH, 8, 8, 10, "h2");
    let maps: Vec<Kva> = [at(0), at(1), at(2), 0xdead_0000, at(4), at(5)]
        .into_iter()
        .map(Kva)
        .collect();
    let t = types();
    let s = FakeSyms::default();
    let k = KernelView {
        mem: &m,
        syms: &s,
        types: &t,
    };
    let c = CoreOffsets::resolve(&t).unwrap();
    let o = MapOffsets::resolve(&t).unwrap();
    let pc = PerCpu::from_offsets(vec![0]);
    let cx = MapCtx {
        k,
        c: &c,
        o: &o,
        pc: &pc,
        renderer: None,
        caps: MapCaps::default(),
    };
    assert_eq!(super::take_order(&cx, &maps, false), [2, 4, 1, 0, 3, 5]);
    assert_eq!(super::take_order(&cx, &maps, true), [0, 1, 2, 3, 4, 5]);
    // Whatever the order maps were taken in, the capture lists them in idr order.
    let all = super::capture_all(&cx, None, &maps, None);
    let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["h1", "small", "big", "", "mid.bss", "h2"]);
}
