//! Human rendering of one [`FailureDumpMap`] block.

use std::fmt::{self, Write};

use super::layout::{RangeList, write_table};
use super::percpu::write_per_cpu;
use super::text::esc;
use super::value::Style;
use super::value::{Cx, is_scalar, is_text, is_zero, styled_string, visible_members, write_block};
use crate::{FailureDumpEntry, FailureDumpMap, RenderedValue, map_type};

/// Writes the block of one map: its header line, then its content indented 2. With `detail`
/// (the map was selected, or `full`), also the map's address, each arena page (its bytes
/// too when `full`) and each stack of a stack-trace map.
pub(crate) fn write_map(
    cx: &mut Cx<'_>,
    m: &FailureDumpMap,
    detail: bool,
    out: &mut dyn Write,
) -> fmt::Result {
    write_header(m, detail, out)?;
    if let Some(v) = &m.value {
        write_block(cx, v, 0, 2, "", out)?;
    }
    write_entries(cx, m, out)?;
    write_array_entries(cx, m, out)?;
    for e in &m.percpu_entries {
        write_per_cpu(cx, &format!("key {}", e.key), &e.per_cpu, out)?;
    }
    for e in &m.percpu_hash_entries {
        let key = match &e.key {
            Some(k) => styled_string(k, &cx.opts),
            None => esc(&e.key_hex).to_string(),
        };
        write_per_cpu(cx, &format!("key={key}"), &e.per_cpu, out)?;
    }
    write_arena(m, out)?;
    if detail {
        write_arena_pages(m, cx.opts.full, out)?;
    }
    write_ringbuf(m, out)?;
    write_stack_trace(m, out)?;
    if detail {
        write_stacks(m, out)?;
    }
    write_fd_array(m, out)
}

/// `map <name> (type=<name>, value_size=N, max_entries=N)[ [error: …]]`.
fn write_header(m: &FailureDumpMap, kva: bool, out: &mut dyn Write) -> fmt::Result {
    write!(out, "map {} (type=", esc(&m.name))?;
    match map_type::name(m.map_type) {
        Some(n) => out.write_str(n)?,
        None => write!(out, "{}", m.map_type)?,
    }
    write!(
        out,
        ", value_size={}, max_entries={})",
        m.value_size, m.max_entries
    )?;
    if kva && m.map_kva != 0 {
        write!(out, " kva={:#x}", m.map_kva)?;
    }
    if let Some(e) = &m.error {
        write!(out, " [error: {}]", esc(e))?;
    }
    out.write_char('\n')
}

fn write_arena(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let Some(a) = &m.arena else { return Ok(()) };
    let bytes: usize = a.pages.iter().map(|p| p.bytes.len()).sum();
    write!(
        out,
        "  arena: {} pages captured ({} KiB)",
        a.pages.len(),
        bytes.div_ceil(1024)
    )?;
    if a.truncated {
        out.write_str(", truncated")?;
    }
    if a.span_capped {
        out.write_str(", span capped")?;
    }
    writeln!(
        out,
        "\n    declared_pages={} kern_vm_start={:#x} user_vm_start={:#x}",
        a.declared_pages, a.kern_vm_start, a.user_vm_start
    )
}

/// Bytes per row of an arena page's hex dump.
const ROW: usize = 32;

/// One line per captured arena page (how many of its bytes are not zero); with `bytes`, its
/// rows that are not all zero as hex (`+0x0a0: 01 02 …`).
fn write_arena_pages(m: &FailureDumpMap, bytes: bool, out: &mut dyn Write) -> fmt::Result {
    let Some(a) = &m.arena else { return Ok(()) };
    for p in &a.pages {
        let nonzero = p.bytes.iter().filter(|&&b| b != 0).count();
        writeln!(
            out,
            "    page {:#x}: {} bytes, {nonzero} not zero",
            p.user_addr,
            p.bytes.len()
        )?;
        if !bytes {
            continue;
        }
        for (i, row) in p.bytes.chunks(ROW).enumerate() {
            if row.iter().any(|&b| b != 0) {
                writeln!(out, "      +{:#05x}: {}", i * ROW, crate::hex(row))?;
            }
        }
    }
    Ok(())
}

/// One line per stack of a stack-trace map: its bucket, depth and program counters (its raw
/// bytes when it has none).
fn write_stacks(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let Some(s) = &m.stack_trace else {
        return Ok(());
    };
    for e in &s.entries {
        write!(out, "    bucket {}: nr={}", e.bucket_id, e.nr)?;
        if e.pcs.is_empty() {
            write!(out, " data={}", esc(&e.data_hex))?;
        }
        for (i, pc) in e.pcs.iter().enumerate() {
            out.write_str(if i == 0 { " pcs=" } else { ", " })?;
            write!(out, "{pc:#x}")?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

fn write_ringbuf(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let Some(r) = &m.ringbuf else { return Ok(()) };
    write!(
        out,
        "  ringbuf: capacity={}B, pending={}B",
        r.capacity, r.pending_bytes
    )?;
    if r.capacity > 0 {
        let pct = r.pending_bytes as f64 * 100.0 / r.capacity as f64;
        write!(out, " ({pct:.1}%)")?;
    }
    writeln!(
        out,
        ", consumer_pos={}, producer_pos={}, pending_pos={}",
        r.consumer_pos, r.producer_pos, r.pending_pos
    )
}

fn write_stack_trace(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let Some(s) = &m.stack_trace else {
        return Ok(());
    };
    write!(
        out,
        "  stack_trace: {} stacks in {} buckets",
        s.entries.len(),
        s.n_buckets
    )?;
    if s.buckets_unreadable > 0 {
        write!(out, ", {} buckets unreadable", s.buckets_unreadable)?;
    }
    if s.truncated {
        out.write_str(", truncated")?;
    }
    out.write_char('\n')
}

fn write_fd_array(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let Some(f) = &m.fd_array else { return Ok(()) };
    write!(
        out,
        "  fd_array: {} of {} slots populated",
        f.populated, f.scanned
    )?;
    if !f.indices.is_empty() {
        let indices: Vec<usize> = f.indices.iter().map(|&i| i as usize).collect();
        write!(out, " [{}]", RangeList(&indices))?;
    }
    if f.indices_truncated {
        out.write_str(", indices truncated")?;
    }
    if f.unreadable > 0 {
        write!(out, ", {} unreadable", f.unreadable)?;
    }
    if f.truncated {
        out.write_str(", truncated")?;
    }
    out.write_char('\n')
}

/// The key of a hash-like entry: a storage map's owner (`Names::storage_owner`), else
/// the rendered key, else its hex.
enum Key<'a> {
    Owner(String),
    Value(&'a RenderedValue),
    Hex(&'a str),
}

fn entry_keys<'a>(cx: &Cx<'_>, m: &'a FailureDumpMap) -> Vec<Key<'a>> {
    m.entries
        .iter()
        .map(
            |e| match (&e.key, cx.opts.names.storage_owner(m.map_type, &e.key_hex)) {
                (_, Some(owner)) => Key::Owner(owner),
                (Some(k), None) => Key::Value(k),
                (None, None) => Key::Hex(&e.key_hex),
            },
        )
        .collect()
}

fn write_entries(cx: &mut Cx<'_>, m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let keys = entry_keys(cx, m);
    if let Some((headers, cols, split)) = entries_table(&keys, &m.entries, &cx.opts) {
        return write_table(2, &headers, &cols, split, out);
    }
    for (e, k) in m.entries.iter().zip(&keys) {
        match k {
            Key::Owner(owner) => writeln!(out, "  entry: owner={owner}")?,
            Key::Value(k) => write_block(cx, k, 0, 2, "entry: key=", out)?,
            Key::Hex(hex) => writeln!(out, "  entry: key={}", esc(hex))?,
        }
        match &e.value {
            Some(v) => write_block(cx, v, 0, 4, "value: ", out)?,
            None => writeln!(out, "    value: {}", esc(&e.value_hex))?,
        }
        if let Some(p) = &e.payload {
            write_block(cx, p, 0, 4, ".data ", out)?;
        }
    }
    Ok(())
}

/// Headers, cells and key-column count of the table two or more entries print as, when their
/// values are flat structs of one type and their keys are owners, scalars or flat structs.
fn entries_table(
    keys: &[Key<'_>],
    entries: &[FailureDumpEntry],
    o: &Style<'_>,
) -> Option<(Vec<String>, Vec<Vec<String>>, usize)> {
    if entries.len() < 2 || entries.iter().any(|e| e.payload.is_some()) {
        return None;
    }
    let values: Vec<&RenderedValue> = entries
        .iter()
        .map(|e| e.value.as_ref())
        .collect::<Option<_>>()?;
    flat_struct_type(&values)?;
    let owners: Option<Vec<String>> = keys
        .iter()
        .map(|k| match k {
            Key::Owner(o) => Some(o.clone()),
            _ => None,
        })
        .collect();
    let rendered: Option<Vec<&RenderedValue>> = keys
        .iter()
        .map(|k| match k {
            Key::Value(v) => Some(*v),
            _ => None,
        })
        .collect();
    let (mut headers, mut cols) = match (owners, rendered) {
        (Some(owners), _) => (vec!["owner".to_string()], vec![owners]),
        (None, Some(keys)) if flat_struct_type(&keys).is_some() => struct_columns(&keys, o),
        (None, Some(keys)) if keys.iter().all(|k| is_scalar(k)) => (
            vec!["key".to_string()],
            vec![keys.iter().map(|k| styled_string(k, o)).collect()],
        ),
        _ => return None,
    };
    if headers.is_empty() {
        return None;
    }
    let split = headers.len();
    let (vh, vc) = struct_columns(&values, o);
    headers.extend(vh);
    cols.extend(vc);
    Some((headers, cols, split))
}

/// `key N: <value>` per entry; a run of consecutive keys with equal values as one line
/// (`keys a-b: zero` when they are zero, `keys a-b: <value>` otherwise), unless `full`.
fn write_array_entries(cx: &mut Cx<'_>, m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let entries = &m.array_entries;
    let mut i = 0;
    while let Some(e) = entries.get(i) {
        let run = if cx.opts.full {
            1
        } else {
            1 + entries[i + 1..]
                .iter()
                .zip(1..)
                .take_while(|(x, j)| {
                    x.key.checked_sub(e.key) == Some(*j) && x.value.is_some() && x.value == e.value
                })
                .count()
        };
        let head = if run >= 2 {
            format!("keys {}-{}: ", e.key, entries[i + run - 1].key)
        } else {
            format!("key {}: ", e.key)
        };
        match &e.value {
            Some(v) if run >= 2 && is_zero(v) => writeln!(out, "  {head}zero")?,
            Some(v) => write_block(cx, v, 0, 2, &head, out)?,
            None => writeln!(out, "  {head}<unreadable>")?,
        }
        i += run;
    }
    Ok(())
}

/// The shared type name when every value is a struct of the same type whose members are all
/// scalars (after flattening anonymous members).
pub(crate) fn flat_struct_type<'a>(values: &[&'a RenderedValue]) -> Option<&'a str> {
    let mut name: Option<&str> = None;
    for v in values {
        let RenderedValue::Struct { type_name, members } = v else {
            return None;
        };
        let n = type_name.as_deref().unwrap_or("");
        if name.is_some_and(|m| m != n) {
            return None;
        }
        name = Some(n);
        if !visible_members(members, true)
            .iter()
            .all(|(_, v)| is_scalar(v) || is_text(v))
        {
            return None;
        }
    }
    name
}

/// Column headers and cells (column-major) of flat structs; columns zero in every row are left
/// out.
pub(crate) fn struct_columns(
    values: &[&RenderedValue],
    o: &Style<'_>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let rows: Vec<Vec<(&str, &RenderedValue)>> = values
        .iter()
        .map(|v| match v {
            RenderedValue::Struct { members, .. } => visible_members(members, true),
            _ => Vec::new(),
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for r in &rows {
        for (n, _) in r {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    let mut headers = Vec::new();
    let mut cols = Vec::new();
    for n in names {
        let cells: Vec<Option<&RenderedValue>> = rows
            .iter()
            .map(|r| r.iter().find(|(m, _)| *m == n).map(|(_, v)| *v))
            .collect();
        if !o.full && cells.iter().all(|c| c.is_none_or(is_zero)) {
            continue;
        }
        headers.push(esc(n).to_string());
        cols.push(
            cells
                .into_iter()
                .map(|c| c.map(|v| styled_string(v, o)).unwrap_or_default())
                .collect(),
        );
    }
    (headers, cols)
}
