//! Our BTF parser (`btf_walk::Btf`, hand-written for speed, see `table.rs`) against the
//! `btf-rs` crate, an independent parser nobody here wrote, on every type of the host's
//! `/sys/kernel/btf/vmlinux` and of the sched_ext guest kernel's BTF: kind, name, size,
//! targets, members (name, type, bit offset, bitfield width), enumerators and data-section
//! variables must all agree.

mod common;

use std::path::Path;

use btf_rs::{BtfType, Type as T};
use btf_walk::{Btf, Kind, Qualifier, TypeId};
use guest_lab::testing;

/// The first disagreement of type `id`, if any.
fn compare(ours: &Btf, theirs: &btf_rs::Btf, id: u32) -> Result<(), String> {
    let rt = theirs
        .resolve_type_by_id(id)
        .map_err(|e| format!("btf-rs cannot resolve {id}: {e}"))?;
    let kind = ours.kind(TypeId(id)).map_err(|e| e.to_string())?;
    let name = ours.name(TypeId(id)).map_err(|e| e.to_string())?;
    let name_of = |x: &dyn BtfType| match x.get_name_offset() {
        None | Some(0) => String::new(),
        Some(_) => theirs.resolve_name(x).unwrap_or_else(|e| format!("<{e}>")),
    };
    let tid = |x: &dyn BtfType| TypeId(x.get_type_id().unwrap_or(0));
    let want_name: String;
    let ok = match (&rt, kind) {
        (T::Void, Kind::Void) => {
            want_name = String::new();
            true
        }
        (
            T::Int(i),
            Kind::Int {
                size,
                signed,
                is_char,
                is_bool,
            },
        ) => {
            want_name = name_of(i);
            size as usize == i.size()
                && signed == i.is_signed()
                && is_char == i.is_char()
                && is_bool == i.is_bool()
        }
        (T::Float(f), Kind::Float { size }) => {
            want_name = name_of(f);
            size as usize == f.size()
        }
        (T::Ptr(p), Kind::Ptr { target }) => {
            want_name = String::new();
            target == tid(p)
        }
        (T::Array(a), Kind::Array { elem, len }) => {
            want_name = String::new();
            elem == tid(a) && len as usize == a.len()
        }
        (T::Struct(s) | T::Union(s), Kind::Struct { size, is_union, .. }) => {
            want_name = name_of(s);
            let members = ours.members(TypeId(id)).map_err(|e| e.to_string())?;
            size as usize == s.size()
                && is_union == matches!(rt, T::Union(_))
                && members.len() == s.members.len()
                && members.iter().zip(&s.members).all(|(m, t)| {
                    *m.name == name_of(t)
                        && m.ty == tid(t)
                        && m.bit_offset == t.bit_offset()
                        && u32::from(m.bitfield_size) == t.bitfield_size().unwrap_or(0)
                })
        }
        (T::Enum(e), Kind::Enum { size, signed, .. }) => {
            want_name = name_of(e);
            let values = ours.enum_values(TypeId(id)).map_err(|e| e.to_string())?;
            size as usize == e.size()
                && signed == e.is_signed()
                && values.len() == e.members.len()
                && values.iter().zip(&e.members).all(|(v, t)| {
                    let want = if e.is_signed() {
                        t.val() as i32 as i64 as u64
                    } else {
                        u64::from(t.val())
                    };
                    *v.name == name_of(t) && v.value == want
                })
        }
        (T::Enum64(e), Kind::Enum { size, .. }) => {
            want_name = name_of(e);
            let values = ours.enum_values(TypeId(id)).map_err(|e| e.to_string())?;
            size as usize == e.size()
                && values.len() == e.members.len()
                && values
                    .iter()
                    .zip(&e.members)
                    .all(|(v, t)| *v.name == name_of(t) && v.value == t.val())
        }
        (T::Fwd(f), Kind::Fwd { is_union }) => {
            want_name = name_of(f);
            is_union == f.is_union()
        }
        (T::Typedef(t), Kind::Typedef { target }) => {
            want_name = name_of(t);
            target == tid(t)
        }
        (
            T::Volatile(q),
            Kind::Qualifier {
                target,
                which: Qualifier::Volatile,
            },
        )
        | (
            T::Const(q),
            Kind::Qualifier {
                target,
                which: Qualifier::Const,
            },
        )
        | (
            T::Restrict(q),
            Kind::Qualifier {
                target,
                which: Qualifier::Restrict,
            },
        ) => {
            want_name = String::new();
            target == tid(q)
        }
        (
            T::TypeTag(q),
            Kind::Qualifier {
                target,
                which: Qualifier::TypeTag,
            },
        ) => {
            // A type tag's name is its tag string; we keep the tag as the type's name.
            want_name = name.to_string();
            target == tid(q)
        }
        (T::Func(f), Kind::Func { proto }) => {
            want_name = name_of(f);
            proto == tid(f)
        }
        (T::FuncProto(_), Kind::FuncProto) => {
            want_name = name.to_string();
            true
        }
        (T::Var(v), Kind::Var { target }) => {
            want_name = name_of(v);
            target == tid(v)
        }
        (T::Datasec(d), Kind::Datasec { size, .. }) => {
            want_name = name_of(d);
            let vars = ours.datasec_vars(TypeId(id)).map_err(|e| e.to_string())?;
            size as usize == d.size()
                && vars.len() == d.variables.len()
                && vars.iter().zip(&d.variables).all(|(v, t)| {
                    v.var == tid(t) && v.offset == t.offset() && v.size as usize == t.size()
                })
        }
        (T::DeclTag(d), Kind::DeclTag { target }) => {
            want_name = name.to_string();
            target == tid(d)
        }
        _ => {
            want_name = String::new();
            false
        }
    };
    if ok && name == want_name {
        Ok(())
    } else {
        Err(format!(
            "type {id}: ours {kind:?} {name:?}, btf-rs {} {want_name:?}",
            rt.name()
        ))
    }
}

fn check(label: &str, raw: &Path) {
    let bytes = std::fs::read(raw).unwrap();
    let ours = Btf::from_bytes(&bytes).unwrap();
    let theirs = btf_rs::Btf::from_bytes(&bytes).unwrap();
    let count = ours.type_count();
    assert!(count > 10_000, "{label}: only {count} types");
    let mut bad = Vec::new();
    for id in 1..count {
        if let Err(e) = compare(&ours, &theirs, id) {
            bad.push(e);
        }
    }
    // One past our last id is out of range for both.
    assert!(ours.kind(TypeId(count)).is_err());
    assert!(theirs.resolve_type_by_id(count).is_err());
    assert!(
        bad.is_empty(),
        "{label}: {} of {count} types differ, first: {:#?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    eprintln!("{label}: {} types agree with btf-rs", count - 1);
}

#[test]
fn host_btf_every_type_matches_btf_rs() {
    let Some(path) = common::host_btf() else {
        return testing::skip("no /sys/kernel/btf/vmlinux on this host");
    };
    check("host", &path);
}

#[test]
fn guest_btf_every_type_matches_btf_rs() {
    let kernel = match testing::open_lab().kernel() {
        Ok(k) => k,
        Err(e) => {
            return testing::skip(format!("sched_ext guest kernel not provisioned: {e}"));
        }
    };
    check("guest 7.3", &kernel.btf);
}
