//! Our offsets and sizes against `pahole` (dwarves), a tool nobody here wrote, on the
//! host's `/sys/kernel/btf/vmlinux` and on the sched_ext guest kernel's BTF.
//!
//! pahole prints every member with its absolute byte offset and size (`/* off size */`),
//! bitfields as `/* off: bit size */` relative to their storage unit, and expands anonymous
//! structs and unions inline. We resolve each printed member by name (as C does through
//! anonymous members) and compare absolute bit offsets, byte sizes and bitfield widths.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use btf_walk::{Btf, TypeId};

/// Structs the walkers read, plus a few large general ones with bitfields and nested
/// anonymous unions. Missing ones (no sched_ext on the host) are skipped individually.
const STRUCTS: &[&str] = &[
    "task_struct",
    "rq",
    "scx_rq",
    "scx_dispatch_q",
    "sched_ext_entity",
    "scx_sched",
    "scx_sched_pcpu",
    "scx_event_stats",
    "sched_ext_ops",
    "scx_exit_info",
    "bpf_map",
    "bpf_array",
    "bpf_prog",
    "bpf_prog_aux",
    "bpf_prog_stats",
    "btf",
    "sk_buff",
    "page",
    "cfs_rq",
    "sched_entity",
    "kernel_cpustat",
    "psi_group",
    "psi_group_cpu",
    "cgroup",
    "signal_struct",
    "mm_struct",
    "xarray",
    "xa_node",
    "idr",
    "rhashtable",
    "bucket_table",
    "bpf_ringbuf_map",
    "bpf_arena",
    "pglist_data",
    "per_cpu_nodestat",
];

#[derive(Debug)]
struct PaholeMember {
    path: String,
    bit_offset: u64,
    /// Byte size (for bitfields: of the storage unit).
    size: u64,
    bitfield: Option<u32>,
}

#[derive(Debug, Default)]
struct PaholeStruct {
    size: Option<u64>,
    members: Vec<PaholeMember>,
}

/// `text` without its `__attribute__((...))` parts.
fn strip_attrs(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("__attribute__") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "__attribute__".len()..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The member name in a pahole declaration (text before `;`).
fn decl_name(decl: &str) -> Option<(String, Option<u32>)> {
    let d = strip_attrs(decl.trim().trim_end_matches(';'));
    let d = d.trim();
    // Function pointer: `void (*name)(args)`.
    if let Some(i) = d.find("(*") {
        let rest = &d[i + 2..];
        let end = rest.find(')')?;
        return Some((rest[..end].trim().to_string(), None));
    }
    let (d, bits) = match d.rsplit_once(':') {
        Some((l, r)) if r.trim().chars().all(|c| c.is_ascii_digit()) => {
            (l.trim(), r.trim().parse().ok())
        }
        _ => (d, None),
    };
    let d = match d.find('[') {
        Some(i) => &d[..i],
        None => d,
    };
    let name = d
        .rsplit(|c: char| c.is_whitespace() || c == '*')
        .next()?
        .to_string();
    (!name.is_empty()).then_some((name, bits))
}

/// Parses pahole's output for several structs.
fn parse_pahole(out: &str) -> BTreeMap<String, PaholeStruct> {
    let mut all = BTreeMap::new();
    let mut cur: Option<(String, PaholeStruct)> = None;
    // Members collected per open inline block, so a named block can prefix its members.
    let mut blocks: Vec<Vec<PaholeMember>> = Vec::new();
    for line in out.lines() {
        let t = line.trim();
        if cur.is_none() {
            if let Some(rest) = t
                .strip_prefix("struct ")
                .or_else(|| t.strip_prefix("union "))
                && let Some(name) = rest.strip_suffix(" {")
            {
                cur = Some((name.to_string(), PaholeStruct::default()));
                blocks.clear();
                blocks.push(Vec::new());
            }
            continue;
        }
        let (name, st) = cur.as_mut().unwrap();
        // `};` or `} __attribute__((__aligned__(64)));` closes the struct itself.
        if t.starts_with('}') && !t.contains("/*") && blocks.len() == 1 {
            // (pahole prints no offsets on the struct's own closing line.)
            st.members = blocks.pop().unwrap();
            all.insert(name.clone(), std::mem::take(st));
            cur = None;
            continue;
        }
        if let Some(rest) = t.strip_prefix("/* size: ") {
            let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            st.size = n.parse().ok();
            continue;
        }
        if t.starts_with("/*") || t.is_empty() {
            continue;
        }
        if t.ends_with('{') {
            blocks.push(Vec::new());
            continue;
        }
        let Some((decl, comment)) = t.split_once("/*") else {
            continue; // `unsigned int :0;` and similar have no comment
        };
        let body = comment.trim_end_matches("*/").trim();
        let parsed = match body.split_once(':') {
            Some((off, rest)) => {
                let mut it = rest.split_whitespace();
                match (
                    off.trim().parse::<u64>(),
                    it.next().map(str::parse::<u64>),
                    it.next().map(str::parse::<u64>),
                ) {
                    (Ok(off), Some(Ok(bit)), Some(Ok(size))) => Some((off * 8 + bit, size, true)),
                    _ => None,
                }
            }
            None => {
                let mut it = body.split_whitespace();
                match (
                    it.next().map(str::parse::<u64>),
                    it.next().map(str::parse::<u64>),
                    it.next(),
                ) {
                    (Some(Ok(off)), Some(Ok(size)), None) => Some((off * 8, size, false)),
                    _ => None,
                }
            }
        };
        let Some((bit_offset, size, is_bits)) = parsed else {
            continue;
        };
        if decl.trim_start().starts_with('}') {
            // Closing an inline block: `};` anonymous (members stay), `} name;` named.
            let inner = blocks.pop().unwrap_or_default();
            let parent = blocks.last_mut().unwrap();
            let bname = strip_attrs(decl.trim().trim_start_matches('}'));
            let bname = bname.trim().trim_end_matches(';').trim();
            if bname.is_empty() {
                parent.extend(inner);
            } else {
                let bname = match bname.find('[') {
                    Some(i) => &bname[..i],
                    None => bname,
                };
                // Members of a named inline block are reached through its name.
                if !bname.contains('[') {
                    for m in inner {
                        parent.push(PaholeMember {
                            path: format!("{bname}.{}", m.path),
                            ..m
                        });
                    }
                }
                parent.push(PaholeMember {
                    path: bname.to_string(),
                    bit_offset,
                    size,
                    bitfield: None,
                });
            }
            continue;
        }
        let Some((mname, bits)) = decl_name(decl) else {
            continue;
        };
        assert_eq!(is_bits, bits.is_some(), "pahole line {t:?}");
        blocks.last_mut().unwrap().push(PaholeMember {
            path: mname,
            bit_offset,
            size,
            bitfield: bits,
        });
    }
    all
}

struct Report {
    compared: usize,
    bitfields: usize,
    in_anon: usize,
    structs: usize,
    mismatches: Vec<String>,
}

fn compare(btf: &Btf, pahole_input: &Path) -> Report {
    let present: Vec<&str> = STRUCTS
        .iter()
        .copied()
        .filter(|s| btf.struct_by_name(s).is_ok())
        .collect();
    let out = Command::new(crate::common::tool("pahole").unwrap())
        .args(["-F", "btf", "-C", &present.join(",")])
        .arg(pahole_input)
        .output()
        .expect("pahole runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = parse_pahole(&text);
    let mut r = Report {
        compared: 0,
        bitfields: 0,
        in_anon: 0,
        structs: 0,
        mismatches: Vec::new(),
    };
    for sname in &present {
        let Some(ps) = parsed.get(*sname) else {
            r.mismatches
                .push(format!("pahole printed no struct {sname}"));
            continue;
        };
        r.structs += 1;
        let root: TypeId = btf.struct_by_name(sname).unwrap();
        let direct: Vec<&str> = btf
            .members(root)
            .unwrap()
            .iter()
            .map(|m| &*m.name)
            .collect();
        match ps.size {
            Some(sz) if sz == btf.size_of(root).unwrap() => {}
            other => r.mismatches.push(format!(
                "{sname}: size pahole {other:?} vs ours {}",
                btf.size_of(root).unwrap()
            )),
        }
        for m in &ps.members {
            let ours = match btf.field(root, &m.path) {
                Ok(f) => f,
                Err(e) => {
                    r.mismatches
                        .push(format!("{sname}.{}: pahole has it, we: {e}", m.path));
                    continue;
                }
            };
            r.compared += 1;
            if m.bitfield.is_some() {
                r.bitfields += 1;
            }
            if !m.path.contains('.') && !direct.contains(&m.path.as_str()) {
                r.in_anon += 1;
            }
            let ok = ours.bit_offset == m.bit_offset
                && ours.size == m.size
                && m.bitfield.unwrap_or(0) == ours.bit_size;
            if !ok {
                r.mismatches.push(format!(
                    "{sname}.{}: pahole bit_offset {} size {} bits {:?}; ours {} {} {}",
                    m.path,
                    m.bit_offset,
                    m.size,
                    m.bitfield,
                    ours.bit_offset,
                    ours.size,
                    ours.bit_size
                ));
            }
        }
    }
    r
}

pub fn check(label: &str, btf: &Btf, pahole_input: &Path) {
    let r = compare(btf, pahole_input);
    println!(
        "{label}: {} structs, {} members compared with pahole ({} bitfields, {} inside anonymous structs/unions), {} mismatches",
        r.structs,
        r.compared,
        r.bitfields,
        r.in_anon,
        r.mismatches.len()
    );
    assert!(
        r.mismatches.is_empty(),
        "{label} mismatches:\n{}",
        r.mismatches.join("\n")
    );
    assert!(
        r.compared >= 300,
        "{label}: only {} members compared",
        r.compared
    );
    assert!(r.bitfields >= 10, "{label}: only {} bitfields", r.bitfields);
    assert!(
        r.in_anon >= 20,
        "{label}: only {} anonymous-member fields",
        r.in_anon
    );
}
