//! Rendering on BTF and memory built in the test: every RenderedValue kind, pointers,
//! cycles, truncation, caps.

use btf_walk::synth::{BtfBuilder, INT_BOOL, INT_CHAR, INT_SIGNED, RegionMem};
use btf_walk::{Btf, REASON_BUDGET, REASON_DEPTH, REASON_OPAQUE, RenderOptions, Renderer, TypeId};
use dump_schema::reasons::DEREF_CYCLE;
use dump_schema::{RenderedMember, RenderedValue as V};

struct Types {
    btf: Btf,
    value: u32,
    node: u32,
    big_array: u32,
    ptr_void_holder: u32,
    datasec: u32,
}

/// struct value {                       size 64
///   int i; u8 c8; char ch; bool b;      0, 4, 5, 6
///   enum kind k;                         8
///   union { u32 raw; struct { u16 lo, hi; }; };   12 (anonymous)
///   struct cpumask mask;                 16 (8 bytes)
///   unsigned int bf:4; int sbf:4;        24 (bitfields)
///   double d;                            32
///   long s64;                            40
///   char name[8];                        48
///   struct node *next;                   56
/// }
/// struct node { u64 val; struct node *next; }
fn types() -> Types {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let uchar = b.int("unsigned char", 1, 0);
    let u8_ = b.typedef("u8", uchar);
    let ch = b.int("char", 1, INT_CHAR);
    let boolean = b.int("_Bool", 1, INT_BOOL);
    let uint = b.int("unsigned int", 4, 0);
    let ushort = b.int("short unsigned int", 2, 0);
    let ulong = b.int("long unsigned int", 8, 0);
    let long = b.int("long int", 8, INT_SIGNED);
    let dbl = b.float("double", 8);
    let kind = b.enum_("kind", 4, false, &[("K_A", 1), ("K_B", 1024)]);
    let anon_s = b.struct_("", 4, &[("lo", ushort, 0, 0), ("hi", ushort, 16, 0)]);
    let anon_u = b.union_("", 4, &[("raw", uint, 0, 0), ("", anon_s, 0, 0)]);
    let bits_arr = b.array(ulong, int, 1);
    let cpumask = b.struct_("cpumask", 8, &[("bits", bits_arr, 0, 0)]);
    let name_arr = b.array(ch, int, 8);
    let node_id = b.next_id();
    let node_ptr = b.ptr(node_id + 1);
    let node = b.struct_(
        "node",
        16,
        &[("val", ulong, 0, 0), ("next", node_ptr, 64, 0)],
    );
    assert_eq!(node, node_id + 1);
    let value = b.struct_(
        "value",
        64,
        &[
            ("i", int, 0, 0),
            ("c8", u8_, 32, 0),
            ("ch", ch, 40, 0),
            ("b", boolean, 48, 0),
            ("k", kind, 64, 0),
            ("", anon_u, 96, 0),
            ("mask", cpumask, 128, 0),
            ("bf", uint, 192, 4),
            ("sbf", int, 196, 4),
            ("d", dbl, 256, 0),
            ("s64", long, 320, 0),
            ("name", name_arr, 384, 0),
            ("next", node_ptr, 448, 0),
        ],
    );
    let big_array = b.array(int, int, 10_000);
    let void_ptr = b.ptr(0);
    let proto = b.func_proto(int, &[]);
    let fn_ptr = b.ptr(proto);
    let ptr_void_holder = b.struct_("holder", 16, &[("p", void_ptr, 0, 0), ("f", fn_ptr, 64, 0)]);
    let v1 = b.var("counter", ulong);
    let v2 = b.var("nr_cpus", int);
    let datasec = b.datasec(".bss", 16, &[(v1, 0, 8), (v2, 8, 4)]);
    Types {
        btf: Btf::from_raw(&b.build()).unwrap(),
        value,
        node,
        big_array,
        ptr_void_holder,
        datasec,
    }
}

fn value_bytes(next: u64) -> Vec<u8> {
    let mut v = vec![0u8; 64];
    v[0..4].copy_from_slice(&(-7i32).to_le_bytes());
    v[4] = 200;
    v[5] = b'x';
    v[6] = 1;
    v[8..12].copy_from_slice(&1024u32.to_le_bytes());
    v[12..16].copy_from_slice(&0x0002_0001u32.to_le_bytes());
    v[16..24].copy_from_slice(&0b1011_0111u64.to_le_bytes());
    v[24] = 0x9 | (0xe << 4); // bf = 9, sbf = -2
    v[32..40].copy_from_slice(&2.5f64.to_le_bytes());
    v[40..48].copy_from_slice(&(-1i64).to_le_bytes());
    v[48..53].copy_from_slice(b"hello");
    v[56..64].copy_from_slice(&next.to_le_bytes());
    v
}

fn member<'a>(v: &'a V, name: &str) -> &'a V {
    match v {
        V::Struct { members, .. } => {
            &members
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("no member {name} in {v:?}"))
                .value
        }
        other => panic!("not a struct: {other:?}"),
    }
}

#[test]
fn every_scalar_kind_renders() {
    let t = types();
    let mut r = Renderer::bytes_only(&t.btf, RenderOptions::default());
    let v = r.render_bytes(TypeId(t.value), &value_bytes(0));
    let V::Struct { type_name, members } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(type_name.as_deref(), Some("value"));
    assert_eq!(
        member(&v, "i"),
        &V::Int {
            bits: 32,
            value: -7
        }
    );
    assert_eq!(
        member(&v, "c8"),
        &V::Uint {
            bits: 8,
            value: 200
        }
    );
    assert_eq!(member(&v, "ch"), &V::Char { value: b'x' });
    assert_eq!(member(&v, "b"), &V::Bool { value: true });
    assert_eq!(
        member(&v, "k"),
        &V::Enum {
            bits: 32,
            value: 1024,
            variant: Some("K_B".into()),
            is_signed: false
        }
    );
    // Anonymous union member has name "" and a null type name.
    let anon = member(&v, "");
    let V::Struct {
        type_name: None,
        members: um,
    } = anon
    else {
        panic!("{anon:?}")
    };
    assert_eq!(
        um[0],
        RenderedMember {
            name: "raw".into(),
            value: V::Uint {
                bits: 32,
                value: 0x20001
            }
        }
    );
    assert_eq!(member(&um[1].value, "hi"), &V::Uint { bits: 16, value: 2 });
    assert_eq!(
        member(&v, "mask"),
        &V::CpuList {
            cpus: "0-2,4-5,7".into()
        }
    );
    assert_eq!(member(&v, "bf"), &V::Uint { bits: 4, value: 9 });
    assert_eq!(member(&v, "sbf"), &V::Int { bits: 4, value: -2 });
    assert_eq!(
        member(&v, "d"),
        &V::Float {
            bits: 64,
            value: 2.5
        }
    );
    assert_eq!(
        member(&v, "s64"),
        &V::Int {
            bits: 64,
            value: -1
        }
    );
    let V::Array { len: 8, elements } = member(&v, "name") else {
        panic!()
    };
    assert_eq!(elements[1], V::Char { value: b'e' });
    assert_eq!(
        member(&v, "next"),
        &V::Ptr {
            value: 0,
            deref: None,
            deref_skipped_reason: None,
            cast_annotation: None
        }
    );
    assert_eq!(members.len(), 13);
}

#[test]
fn enum_without_matching_variant_is_null() {
    let t = types();
    let mut bytes = value_bytes(0);
    bytes[8..12].copy_from_slice(&77u32.to_le_bytes());
    let mut r = Renderer::bytes_only(&t.btf, RenderOptions::default());
    let v = r.render_bytes(TypeId(t.value), &bytes);
    assert!(matches!(
        member(&v, "k"),
        V::Enum {
            value: 77,
            variant: None,
            ..
        }
    ));
}

#[test]
fn cpumask_respects_nr_cpus_and_can_be_disabled() {
    let t = types();
    let opts = RenderOptions {
        nr_cpus: Some(3),
        ..RenderOptions::default()
    };
    let v = Renderer::bytes_only(&t.btf, opts).render_bytes(TypeId(t.value), &value_bytes(0));
    assert_eq!(member(&v, "mask"), &V::CpuList { cpus: "0-2".into() });
    let opts = RenderOptions {
        cpumask_as_list: false,
        ..RenderOptions::default()
    };
    let v = Renderer::bytes_only(&t.btf, opts).render_bytes(TypeId(t.value), &value_bytes(0));
    assert!(matches!(member(&v, "mask"), V::Struct { .. }));
    assert_eq!(btf_walk::cpu_list(&[0xff, 0x01], 16), "0-8");
    assert_eq!(btf_walk::cpu_list(&[], 16), "");
}

#[test]
fn pointers_follow_within_depth_and_report_cycles() {
    let t = types();
    // A two-node ring: 0x1000 -> 0x2000 -> 0x1000.
    let node = |val: u64, next: u64| {
        let mut b = val.to_le_bytes().to_vec();
        b.extend_from_slice(&next.to_le_bytes());
        b
    };
    let mut mem = RegionMem::new();
    mem.add(0xffff_8000_0000_1000, node(1, 0xffff_8000_0000_2000));
    mem.add(0xffff_8000_0000_2000, node(2, 0xffff_8000_0000_1000));
    let opts = RenderOptions {
        max_deref_depth: 8,
        ..RenderOptions::default()
    };
    let mut r = Renderer::new(&t.btf, &mem, opts);
    let v = r.render_bytes(TypeId(t.value), &value_bytes(0xffff_8000_0000_1000));
    let V::Ptr {
        deref: Some(n1), ..
    } = member(&v, "next")
    else {
        panic!("{v:?}")
    };
    assert_eq!(member(n1, "val"), &V::Uint { bits: 64, value: 1 });
    let V::Ptr {
        deref: Some(n2), ..
    } = member(n1, "next")
    else {
        panic!()
    };
    assert_eq!(member(n2, "val"), &V::Uint { bits: 64, value: 2 });
    let V::Ptr {
        deref: None,
        deref_skipped_reason: Some(why),
        value,
        ..
    } = member(n2, "next")
    else {
        panic!()
    };
    assert_eq!((why.as_str(), *value), (DEREF_CYCLE, 0xffff_8000_0000_1000));

    // Depth 1: the first node renders, its pointer says why it stops.
    let opts = RenderOptions {
        max_deref_depth: 1,
        ..RenderOptions::default()
    };
    let v = Renderer::new(&t.btf, &mem, opts)
        .render_bytes(TypeId(t.value), &value_bytes(0xffff_8000_0000_1000));
    let V::Ptr {
        deref: Some(n1), ..
    } = member(&v, "next")
    else {
        panic!()
    };
    assert!(
        matches!(member(n1, "next"), V::Ptr { deref_skipped_reason: Some(w), .. } if w == REASON_DEPTH)
    );

    // render_at marks the root visited: a pointer back to it is a cycle.
    let opts = RenderOptions {
        max_deref_depth: 8,
        ..RenderOptions::default()
    };
    let v = Renderer::new(&t.btf, &mem, opts)
        .render_at(TypeId(t.node), guest_mem::Kva(0xffff_8000_0000_1000));
    let V::Ptr {
        deref: Some(n2), ..
    } = member(&v, "next")
    else {
        panic!()
    };
    assert!(
        matches!(member(n2, "next"), V::Ptr { deref_skipped_reason: Some(w), .. } if w == DEREF_CYCLE)
    );

    // Unreadable pointee: the reason names the failure.
    let v = Renderer::new(
        &t.btf,
        &mem,
        RenderOptions {
            max_deref_depth: 2,
            ..RenderOptions::default()
        },
    )
    .render_bytes(TypeId(t.value), &value_bytes(0xdead_0000));
    assert!(
        matches!(member(&v, "next"), V::Ptr { deref_skipped_reason: Some(w), .. } if w.starts_with("read failed"))
    );
}

#[test]
fn opaque_pointers_are_not_followed_and_fn_pointers_annotated() {
    let t = types();
    let mem = RegionMem::new();
    let sym = |a: u64| (a == 0xffff_ffff_8100_0000).then(|| "bpfland_enqueue".to_string());
    let mut bytes = 0x1234u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
    let mut r = Renderer::new(
        &t.btf,
        &mem,
        RenderOptions {
            max_deref_depth: 3,
            ..RenderOptions::default()
        },
    )
    .with_symbolizer(&sym);
    let v = r.render_bytes(TypeId(t.ptr_void_holder), &bytes);
    assert!(
        matches!(member(&v, "p"), V::Ptr { deref_skipped_reason: Some(w), .. } if w == REASON_OPAQUE)
    );
    assert!(
        matches!(member(&v, "f"), V::Ptr { cast_annotation: Some(a), .. } if a == "bpfland_enqueue")
    );
}

#[test]
fn truncated_values_keep_what_fits() {
    let t = types();
    let mut r = Renderer::bytes_only(&t.btf, RenderOptions::default());
    let v = r.render_bytes(TypeId(t.value), &value_bytes(0)[..10]);
    let V::Truncated {
        needed: 64,
        had: 10,
        partial,
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        member(partial, "i"),
        &V::Int {
            bits: 32,
            value: -7
        }
    );
    assert!(matches!(
        member(partial, "k"),
        V::Truncated {
            needed: 4,
            had: 2,
            ..
        }
    ));
    let V::Struct { members, .. } = &**partial else {
        panic!()
    };
    assert!(
        members.iter().all(|m| m.name != "d"),
        "members past the end are left out"
    );
    // Zero bytes: still a truncated struct, no panic.
    assert!(matches!(
        r.render_bytes(TypeId(t.value), &[]),
        V::Truncated { had: 0, .. }
    ));
}

#[test]
fn arrays_are_capped_and_budget_bounds_work() {
    let t = types();
    let bytes = vec![1u8; 40_000];
    let mut r = Renderer::bytes_only(&t.btf, RenderOptions::default());
    let v = r.render_bytes(TypeId(t.big_array), &bytes);
    let V::Array { len, elements } = &v else {
        panic!()
    };
    assert_eq!((*len, elements.len()), (10_000, 4096));
    let mut r = Renderer::bytes_only(
        &t.btf,
        RenderOptions {
            max_values: 100,
            ..RenderOptions::default()
        },
    );
    let v = r.render_bytes(TypeId(t.big_array), &bytes);
    let V::Array { elements, .. } = &v else {
        panic!()
    };
    assert_eq!(elements.len(), 100);
    assert!(matches!(elements.last(), Some(V::Unsupported { reason }) if reason == REASON_BUDGET));
}

#[test]
fn datasec_renders_as_struct_of_variables() {
    let t = types();
    let mut bytes = 42u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&4i32.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let v = Renderer::bytes_only(&t.btf, RenderOptions::default())
        .render_bytes(TypeId(t.datasec), &bytes);
    assert!(matches!(&v, V::Struct { type_name: Some(n), .. } if n == ".bss"));
    assert_eq!(
        member(&v, "counter"),
        &V::Uint {
            bits: 64,
            value: 42
        }
    );
    assert_eq!(member(&v, "nr_cpus"), &V::Int { bits: 32, value: 4 });
}

#[test]
fn deep_self_nesting_stays_within_wire_depth() {
    // struct deep { struct deep2 x; } ... 200 levels of nested structs.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let mut cur = b.struct_("d0", 4, &[("v", int, 0, 0)]);
    for i in 1..200 {
        cur = b.struct_(&format!("d{i}"), 4, &[("x", cur, 0, 0)]);
    }
    let btf = Btf::from_raw(&b.build()).unwrap();
    let v = Renderer::bytes_only(&btf, RenderOptions::default())
        .render_bytes(TypeId(cur), &[1, 0, 0, 0]);
    let json = serde_json::to_string(&v).unwrap();
    let back: V = serde_json::from_str(&json).expect("written value reads back");
    assert_eq!(back, v);
    assert!(json.contains("nested deeper than the wire format allows"));
}
