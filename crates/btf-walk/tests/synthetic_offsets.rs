//! Offsets, bitfields, duplicates and malformed graphs on BTF built in the test.

use btf_walk::synth::{BtfBuilder, INT_BOOL, INT_SIGNED};
use btf_walk::{Btf, BtfError, Field, Kind, OffsetGroup, TypeId};

/// struct inner { int a; unsigned long b; };
/// struct outer {
///     int x;                                 // 0
///     union { u32 u1; struct { u16 s1; u16 s2; }; };   // 4 (anonymous)
///     const volatile struct inner in;        // 8
///     struct inner arr[3];                   // 24
///     unsigned int f1:3, f2:13, f3:1;        // 72 bits 576.., bitfields
///     bool flag;                             // 76
///     my_u64 tail;                           // 80 (typedef)
///     int flex[];                            // 88
/// };  size 88
fn sample() -> (Btf, u32) {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED); // 1
    let ulong = b.int("long unsigned int", 8, 0); // 2
    let u32_ = b.int("unsigned int", 4, 0); // 3
    let u16_ = b.int("short unsigned int", 2, 0); // 4
    let boolean = b.int("_Bool", 1, INT_BOOL); // 5
    let inner = b.struct_("inner", 16, &[("a", int, 0, 0), ("b", ulong, 64, 0)]); // 6
    let anon_s = b.struct_("", 4, &[("s1", u16_, 0, 0), ("s2", u16_, 16, 0)]); // 7
    let anon_u = b.union_("", 4, &[("u1", u32_, 0, 0), ("", anon_s, 0, 0)]); // 8
    let cinner = b.const_(inner); // 9
    let vcinner = b.volatile(cinner); // 10
    let arr = b.array(inner, int, 3); // 11
    let my_u64 = b.typedef("my_u64", ulong); // 12
    let flex = b.array(int, int, 0); // 13
    let outer = b.struct_(
        "outer",
        88,
        &[
            ("x", int, 0, 0),
            ("", anon_u, 32, 0),
            ("in", vcinner, 64, 0),
            ("arr", arr, 192, 0),
            ("f1", u32_, 576, 3),
            ("f2", u32_, 579, 13),
            ("f3", u32_, 592, 1),
            ("flag", boolean, 608, 0),
            ("tail", my_u64, 640, 0),
            ("flex", flex, 704, 0),
        ],
    );
    (
        Btf::from_raw(&b.build()).expect("synthetic BTF loads"),
        outer,
    )
}

#[test]
fn paths_through_anonymous_typedef_const_and_arrays() {
    let (btf, outer) = sample();
    let outer = TypeId(outer);
    assert_eq!(btf.field(outer, "x").unwrap().offset(), 0);
    assert_eq!(btf.field(outer, "u1").unwrap().offset(), 4);
    assert_eq!(btf.field(outer, "s2").unwrap().offset(), 6);
    assert_eq!(btf.field(outer, "in.b").unwrap().offset(), 16);
    assert_eq!(btf.field(outer, "arr[0].a").unwrap().offset(), 24);
    assert_eq!(btf.field(outer, "arr[2].b").unwrap().offset(), 24 + 32 + 8);
    let tail = btf.field(outer, "tail").unwrap();
    assert_eq!((tail.offset(), tail.size), (80, 8));
    assert_eq!(btf.name(tail.ty).unwrap(), "my_u64");
    // Flexible array members accept any index.
    assert_eq!(btf.field(outer, "flex[5]").unwrap().offset(), 88 + 20);
    assert_eq!(btf.offset_of("outer.arr[1].b").unwrap(), 24 + 16 + 8);
    assert_eq!(btf.size_of(outer).unwrap(), 88);
}

#[test]
fn bad_paths_are_errors_naming_the_problem() {
    let (btf, outer) = sample();
    let outer = TypeId(outer);
    let msg = |p: &str| btf.field(outer, p).unwrap_err().to_string();
    assert!(msg("nope").contains("no member `nope`"), "{}", msg("nope"));
    assert!(
        msg("arr[3].a").contains("out of bounds"),
        "{}",
        msg("arr[3].a")
    );
    assert!(msg("x.y").contains("asked of a int"), "{}", msg("x.y"));
    assert!(msg("x[1]").contains("not an array"));
    assert!(msg("arr[zz]").contains("not a number"));
    assert!(msg("f1.q").contains("follows a bitfield"));
    assert!(msg("").contains("empty path"));
    assert!(msg("a..b").contains("empty member name"));
    assert!(
        btf.offset_of("outer.f2")
            .unwrap_err()
            .to_string()
            .contains("bitfield")
    );
    assert!(matches!(
        btf.field_by_path("nosuch.x"),
        Err(BtfError::NoSuchType { .. })
    ));
}

#[test]
fn bitfields_read_little_endian() {
    let (btf, outer) = sample();
    let outer = TypeId(outer);
    let f1 = btf.field(outer, "f1").unwrap();
    let f2 = btf.field(outer, "f2").unwrap();
    let f3 = btf.field(outer, "f3").unwrap();
    assert_eq!((f1.bit_offset, f1.bit_size), (576, 3));
    assert_eq!((f2.bit_offset, f2.bit_size, f2.offset()), (579, 13, 72));
    let mut obj = vec![0u8; 88];
    // f1 = 5, f2 = 0x1abc, f3 = 1 packed LSB-first from byte 72.
    let word: u32 = 5 | (0x1abc << 3) | (1 << 16);
    obj[72..76].copy_from_slice(&word.to_le_bytes());
    assert_eq!(f1.extract(&obj), Some(5));
    assert_eq!(f2.extract(&obj), Some(0x1abc));
    assert_eq!(f3.extract(&obj), Some(1));
    assert_eq!(f2.extract_signed(&obj), Some(0x1abc - 0x2000));
    assert_eq!(
        f2.extract(&obj[..73]),
        None,
        "too short is None, not a panic"
    );
}

#[test]
fn offset_group_reports_every_missing_member() {
    let (btf, _) = sample();
    let mut g = OffsetGroup::new(&btf, "outer");
    assert!(g.require_struct("outer"));
    let x = g.field("outer", "x");
    let _ = g.field("outer", "ops_qseq");
    let alt = g.field_any("outer", &["old_name", "tail"]);
    let _ = g.field_any("outer", &["gone1", "gone2"]);
    let opt = g.opt_field("outer", "absent");
    assert_eq!(x.offset(), 0);
    assert_eq!(alt.offset(), 80);
    assert!(opt.is_none());
    assert_eq!(g.size("outer"), 88);
    // Byte offsets through the same group, and the same spelling of what is missing.
    assert_eq!(g.off_any("outer", &["old_name", "tail"]), 80);
    assert_eq!(g.opt("outer", "absent"), None);
    let _ = g.off("outer", "gone3");
    let _ = g.size("no_such_struct");
    let err = g.finish(()).unwrap_err();
    assert_eq!(err.group, "outer");
    assert_eq!(
        err.missing,
        vec![
            "outer.ops_qseq",
            "outer.gone1|gone2",
            "outer.gone3",
            "sizeof(no_such_struct)"
        ]
    );

    // A struct the BTF lacks, once checked, is reported by name, its members not again.
    let mut g = OffsetGroup::new(&btf, "rq_scx");
    assert!(!g.require_struct("scx_rq"));
    assert!(!g.require_struct("scx_rq"));
    assert_eq!(g.field("scx_rq", "nr_running"), Field::MISSING);
    assert_eq!(g.off("scx_rq", "flags"), 0);
    assert_eq!(g.finish(()).unwrap_err().missing, vec!["scx_rq"]);

    let mut g = OffsetGroup::new(&btf, "inner");
    let v = (g.field("inner", "a"), g.field("inner", "b"));
    assert_eq!(g.finish(v).unwrap().1.offset(), 8);
}

#[test]
fn duplicate_names_pick_complete_definition_with_lowest_id() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let fwd = b.fwd("dup", false);
    let first = b.struct_("dup", 4, &[("a", int, 0, 0)]);
    let _second = b.struct_("dup", 8, &[("a", int, 0, 0), ("b", int, 32, 0)]);
    let only_fwd = b.fwd("lonely", false);
    let btf = Btf::from_raw(&b.build()).unwrap();
    assert_eq!(btf.struct_by_name("dup").unwrap(), TypeId(first));
    assert_eq!(btf.ids_by_name("dup").len(), 3);
    assert!(btf.ids_by_name("dup").contains(&TypeId(fwd)));
    assert_eq!(
        btf.find_type("lonely", |k| matches!(k, Kind::Fwd { .. })),
        Some(TypeId(only_fwd))
    );
}

#[test]
fn enums_signed_unsigned_and_64() {
    let mut b = BtfBuilder::new();
    let e = b.enum_(
        "scx_exit_kind",
        4,
        false,
        &[
            ("SCX_EXIT_NONE", 0),
            ("SCX_EXIT_ERROR", 1024),
            ("SCX_EXIT_ERROR_STALL", 1026),
        ],
    );
    let s = b.enum_("sgn", 4, true, &[("NEG", -1)]);
    let e64 = b.enum64("big", 8, false, &[("HUGE", 1 << 40)]);
    let btf = Btf::from_raw(&b.build()).unwrap();
    assert_eq!(
        btf.enum_value("scx_exit_kind", "SCX_EXIT_ERROR_STALL")
            .unwrap(),
        1026
    );
    assert_eq!(btf.enumerator("SCX_EXIT_ERROR").unwrap(), 1024);
    assert_eq!(
        btf.enum_variant_name(TypeId(e), 1026),
        Some("SCX_EXIT_ERROR_STALL")
    );
    assert_eq!(btf.enum_variant_name(TypeId(e), 7), None);
    assert_eq!(btf.enum_value("sgn", "NEG").unwrap(), -1);
    assert_eq!(btf.enum_variant_name(TypeId(s), 0xffff_ffff), Some("NEG"));
    assert_eq!(btf.enum_value("big", "HUGE").unwrap(), 1 << 40);
    assert_eq!(btf.enum_variant_name(TypeId(e64), 1 << 40), Some("HUGE"));
    assert!(btf.enum_value("scx_exit_kind", "NOPE").is_err());
}

#[test]
fn loops_and_absurd_sizes_are_errors_not_hangs() {
    let mut b = BtfBuilder::new();
    let t1 = b.next_id();
    let _ = b.typedef("loop_a", t1 + 1);
    let _ = b.typedef("loop_b", t1);
    let int = b.int("int", 4, INT_SIGNED);
    let big = b.array(int, int, 1 << 16);
    let bigger = b.array(big, int, u32::MAX);
    let biggest = b.array(bigger, int, u32::MAX);
    // A struct containing itself anonymously.
    let selfref = b.next_id();
    let _ = b.struct_("selfref", 8, &[("", selfref, 0, 0)]);
    let btf = Btf::from_raw(&b.build()).unwrap();
    assert!(matches!(
        btf.strip(TypeId(t1)),
        Err(BtfError::Malformed { .. })
    ));
    assert!(btf.size_of(TypeId(t1)).is_err());
    assert_eq!(
        btf.size_of(TypeId(bigger)).unwrap(),
        4 * (1 << 16) * u32::MAX as u64
    );
    assert!(matches!(
        btf.size_of(TypeId(biggest)),
        Err(BtfError::Malformed { .. })
    ));
    let e = btf.field(TypeId(selfref), "x").unwrap_err();
    assert!(matches!(e, BtfError::Malformed { .. }), "{e}");
    assert!(btf.kind(TypeId(99999)).is_err());
}

#[test]
fn section_vars_give_percpu_offsets() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let rq = b.struct_("rq", 64, &[("cpu", int, 0, 0)]);
    let v1 = b.var("runqueues", rq);
    let v2 = b.var("other", int);
    let _ = b.datasec(".data..percpu", 4096, &[(v2, 0, 4), (v1, 128, 64)]);
    let btf = Btf::from_raw(&b.build()).unwrap();
    assert_eq!(btf.section_var("runqueues").unwrap(), (TypeId(rq), 128));
    assert!(btf.section_var("nope").is_err());
}

#[test]
fn split_btf_continues_base_ids_and_strings() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let _task = b.struct_("task_struct", 16, &[("pid", int, 0, 0)]);
    let base = Btf::from_raw(&b.build()).unwrap();
    let mut s = BtfBuilder::split(base.type_count(), b.str_len());
    let val = s.struct_("val", 8, &[("cnt", int, 0, 0), ("pid2", int, 32, 0)]);
    // The split redefines `task_struct`: the split definition wins lookups.
    let own = s.struct_("task_struct", 4, &[("pid", int, 0, 0)]);
    let split = base.split_from_raw(&s.build()).unwrap();
    assert_eq!(split.field(TypeId(val), "pid2").unwrap().offset(), 4);
    assert_eq!(split.struct_by_name("task_struct").unwrap(), TypeId(own));
    assert_eq!(split.name(TypeId(int)).unwrap(), "int");
    assert_eq!(split.type_count(), base.type_count() + 2);
    assert!(
        split.split_from_raw(&s.build()).is_err(),
        "no split on split"
    );
}

#[test]
fn truncated_and_corrupt_raw_btf_are_clear_errors() {
    let (_, _) = sample();
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let _ = b.struct_("s", 4, &[("a", int, 0, 0)]);
    let good = b.build();
    for cut in 0..good.len() {
        let e = Btf::from_raw(&good[..cut]);
        assert!(e.is_err(), "prefix of {cut} bytes loaded");
    }
    let mut bad = good.clone();
    bad[0] = 0;
    assert!(
        Btf::from_raw(&bad)
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    let mut bad = good.clone();
    bad[2] = 2;
    assert!(
        Btf::from_raw(&bad)
            .unwrap_err()
            .to_string()
            .contains("version")
    );
    // Member type pointing nowhere loads (ids are checked on use) but resolves to an error.
    let mut b = BtfBuilder::new();
    let s = b.struct_("s", 4, &[("a", 777, 0, 0)]);
    let btf = Btf::from_raw(&b.build()).unwrap();
    assert!(btf.field(TypeId(s), "a").is_err());
    assert!(
        Btf::from_bytes(b"garbage that is no format")
            .unwrap_err()
            .to_string()
            .contains("not raw BTF")
    );
}

#[test]
fn exponential_anonymous_graphs_are_cut_off() {
    // t0 holds t1 anonymously twice, t1 holds t2 twice, ... 30 levels: 2^30 paths.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let mut cur = b.struct_("leaf", 4, &[("v", int, 0, 0)]);
    for i in 0..30 {
        cur = b.struct_(&format!("t{i}"), 8, &[("", cur, 0, 0), ("", cur, 32, 0)]);
    }
    // A struct holding itself anonymously five times.
    let me = b.next_id();
    let selfish = b.struct_(
        "selfish",
        8,
        &[
            ("", me, 0, 0),
            ("", me, 0, 0),
            ("", me, 0, 0),
            ("", me, 0, 0),
            ("", me, 0, 0),
        ],
    );
    let btf = Btf::from_raw(&b.build()).unwrap();
    let e = btf.field(TypeId(cur), "nope").unwrap_err();
    assert!(matches!(e, BtfError::Malformed { .. }), "{e}");
    // Found members still resolve: the first path is searched first.
    assert_eq!(btf.field(TypeId(cur), "v").unwrap().offset(), 0);
    assert!(btf.field(TypeId(selfish), "x").is_err());
    // (Without the visit bound the first call walks 2^30 paths and never returns.)
}
