//! Every type of the host's and the 7.3 guest's BTF against `bpftool btf dump … format raw`
//! (libbpf's parser): ids, kinds, names, sizes, struct/union members (type, bit offset,
//! bitfield width), enumerators, array lengths and reference targets.

use std::path::Path;
use std::process::Command;

use btf_walk::{Btf, Kind, Qualifier, TypeId};
use guest_lab::testing;

/// `key=value` of a bpftool line.
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_end_matches(','))
}

fn num(line: &str, key: &str) -> u64 {
    kv(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

/// Our `what` (members, enumerators) beside bpftool's lines for them, in order; a
/// difference in number is `bad`.
fn paired<'a, T>(
    ours: &'a [T],
    theirs: &'a [&'a str],
    what: &str,
    bad: &mut impl FnMut(String),
) -> std::iter::Zip<std::slice::Iter<'a, T>, std::slice::Iter<'a, &'a str>> {
    if ours.len() != theirs.len() {
        bad(format!("{} {what} vs {}", ours.len(), theirs.len()));
    }
    ours.iter().zip(theirs)
}

/// Whether a bpftool line says `size` bytes and the signedness `signed`.
fn size_and_sign(line: &str, size: u32, signed: bool) -> bool {
    u64::from(size) == num(line, "size") && signed == (kv(line, "encoding") == Some("SIGNED"))
}

/// The quoted name of a bpftool line; `(anon)` is our empty name.
fn qname(line: &str) -> &str {
    let start = line.find('\'').unwrap() + 1;
    let end = start + line[start..].find('\'').unwrap();
    match &line[start..end] {
        "(anon)" => "",
        n => n,
    }
}

struct Tally {
    types: usize,
    members: usize,
    enumerators: usize,
    bad: Vec<String>,
}

fn compare(btf: &Btf, raw_file: &Path) -> Tally {
    let stdout = testing::stdout_of(
        Command::new(crate::common::tool("bpftool").unwrap())
            .args(["btf", "dump", "file"])
            .arg(raw_file)
            .args(["format", "raw"]),
        "bpftool",
    );
    let text = String::from_utf8(stdout).unwrap();
    let mut t = Tally {
        types: 0,
        members: 0,
        enumerators: 0,
        bad: Vec::new(),
    };
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let (id, rest) = rest.split_once("] ").unwrap();
        let id = TypeId(id.parse().unwrap());
        let kind_word = rest.split_whitespace().next().unwrap();
        let sub: Vec<&str> =
            std::iter::from_fn(|| lines.next_if(|l| l.starts_with('\t'))).collect();
        t.types += 1;
        let mut bad = |why: String| t.bad.push(format!("[{}] {kind_word}: {why}", id.0));
        let Ok(kind) = btf.kind(id) else {
            bad("we have no such id".into());
            continue;
        };
        let name = btf.name(id).unwrap();
        let named = matches!(
            kind_word,
            "INT"
                | "STRUCT"
                | "UNION"
                | "ENUM"
                | "ENUM64"
                | "FWD"
                | "TYPEDEF"
                | "FUNC"
                | "VAR"
                | "DATASEC"
                | "FLOAT"
        );
        if named && name != qname(line) {
            bad(format!("name {name:?} vs {:?}", qname(line)));
        }
        match (kind_word, kind) {
            (
                "STRUCT",
                Kind::Struct {
                    size,
                    is_union: false,
                    ..
                },
            )
            | (
                "UNION",
                Kind::Struct {
                    size,
                    is_union: true,
                    ..
                },
            ) => {
                if size as u64 != num(line, "size") {
                    bad(format!("size {size} vs {line}"));
                }
                let ms = btf.members(id).unwrap();
                for (m, l) in paired(ms, &sub, "members", &mut bad) {
                    t.members += 1;
                    let bits = kv(l, "bitfield_size").map_or(0, |v| v.parse().unwrap());
                    if &*m.name != qname(l)
                        || m.ty.0 as u64 != num(l, "type_id")
                        || m.bit_offset as u64 != num(l, "bits_offset")
                        || m.bitfield_size as u64 != bits
                    {
                        bad(format!("member {m:?} vs {l:?}"));
                    }
                }
            }
            ("ENUM" | "ENUM64", Kind::Enum { size, signed, .. }) => {
                if !size_and_sign(line, size, signed) {
                    bad(format!("size/sign {size}/{signed} vs {line}"));
                }
                let vs = btf.enum_values(id).unwrap();
                for (v, l) in paired(vs, &sub, "enumerators", &mut bad) {
                    t.enumerators += 1;
                    let theirs = kv(l, "val")
                        .unwrap()
                        .trim_end_matches("ULL")
                        .trim_end_matches("LL");
                    let ours = if signed {
                        (v.value as i64).to_string()
                    } else {
                        v.value.to_string()
                    };
                    if &*v.name != qname(l) || ours != theirs {
                        bad(format!("enumerator {}={ours} vs {l:?}", v.name));
                    }
                }
            }
            ("INT", Kind::Int { size, signed, .. }) => {
                if !size_and_sign(line, size, signed) {
                    bad(format!("int {size}/{signed} vs {line}"));
                }
            }
            ("FLOAT", Kind::Float { size }) => {
                if size as u64 != num(line, "size") {
                    bad(format!("float {size} vs {line}"));
                }
            }
            ("ARRAY", Kind::Array { elem, len }) => {
                if elem.0 as u64 != num(line, "type_id") || len as u64 != num(line, "nr_elems") {
                    bad(format!("array {elem}[{len}] vs {line}"));
                }
            }
            ("PTR", Kind::Ptr { target })
            | ("TYPEDEF", Kind::Typedef { target })
            | ("VAR", Kind::Var { target })
            | (
                "CONST",
                Kind::Qualifier {
                    target,
                    which: Qualifier::Const,
                },
            )
            | (
                "VOLATILE",
                Kind::Qualifier {
                    target,
                    which: Qualifier::Volatile,
                },
            )
            | (
                "RESTRICT",
                Kind::Qualifier {
                    target,
                    which: Qualifier::Restrict,
                },
            )
            | (
                "TYPE_TAG",
                Kind::Qualifier {
                    target,
                    which: Qualifier::TypeTag,
                },
            )
            | ("DECL_TAG", Kind::DeclTag { target })
            | ("FUNC", Kind::Func { proto: target }) => {
                if target.0 as u64 != num(line, "type_id") {
                    bad(format!("target {target} vs {line}"));
                }
            }
            ("DATASEC", Kind::Datasec { size, .. }) => {
                let vars = btf.datasec_vars(id).unwrap();
                if size as u64 != num(line, "size") || vars.len() != sub.len() {
                    bad(format!(
                        "datasec size {size}, {} vars vs {line}",
                        vars.len()
                    ));
                }
                for (v, l) in vars.iter().zip(&sub) {
                    if v.var.0 as u64 != num(l, "type_id")
                        || v.offset as u64 != num(l, "offset")
                        || v.size as u64 != num(l, "size")
                    {
                        bad(format!("var {v:?} vs {l:?}"));
                    }
                }
            }
            ("FWD", Kind::Fwd { is_union }) => {
                if is_union != (kv(line, "fwd_kind") == Some("union")) {
                    bad(format!("fwd union={is_union} vs {line}"));
                }
            }
            ("FUNC_PROTO", Kind::FuncProto) => {}
            (_, k) => bad(format!("we say {} ({k:?})", k.describe())),
        }
    }
    if t.types + 1 != btf.type_count() as usize {
        t.bad.push(format!(
            "bpftool listed {} types, we have {}",
            t.types,
            btf.type_count() - 1
        ));
    }
    t
}

pub fn check(label: &str, btf: &Btf, raw_file: &Path) {
    let t = compare(btf, raw_file);
    println!(
        "{label}: {} types, {} struct/union members, {} enumerators compared with bpftool; {} mismatches",
        t.types,
        t.members,
        t.enumerators,
        t.bad.len()
    );
    let shown: Vec<&String> = t.bad.iter().take(40).collect();
    assert!(t.bad.is_empty(), "{label}:\n{shown:#?}");
    assert!(t.types > 50_000 && t.members > 50_000 && t.enumerators > 10_000);
}
