//! Human rendering of one [`FailureDumpMap`] block.

use std::fmt::{self, Write};

use super::text::spaces;
use super::value::{Cx, inline_string, is_scalar, is_zero, visible_members, write_block};
use crate::{FailureDumpEntry, FailureDumpMap, RenderedValue, map_type};

/// Writes the block of one map: its header line, then its content indented 2.
pub(crate) fn write_map(cx: &mut Cx, m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    write_header(m, out)?;
    if let Some(v) = &m.value {
        write_block(cx, v, 0, 2, "", out)?;
    }
    write_entries(cx, &m.entries, out)?;
    write_array_entries(cx, m, out)?;
    for e in &m.percpu_entries {
        write_per_cpu(cx, &format!("key {}", e.key), &e.per_cpu, out)?;
    }
    for e in &m.percpu_hash_entries {
        let key = match &e.key {
            Some(k) => inline_string(k),
            None => e.key_hex.clone(),
        };
        write_per_cpu(cx, &format!("key={key}"), &e.per_cpu, out)?;
    }
    write_arena(m, out)?;
    write_ringbuf(m, out)?;
    write_stack_trace(m, out)?;
    write_fd_array(m, out)
}

/// `map <name> (type=<name>, value_size=N, max_entries=N)[ [error: …]]`.
fn write_header(m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    write!(out, "map {} (type=", m.name)?;
    match map_type::name(m.map_type) {
        Some(n) => out.write_str(n)?,
        None => write!(out, "{}", m.map_type)?,
    }
    write!(
        out,
        ", value_size={}, max_entries={})",
        m.value_size, m.max_entries
    )?;
    if let Some(e) = &m.error {
        write!(out, " [error: {e}]")?;
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

/// `0-3,5,7-8` from ascending numbers.
pub(crate) struct RangeList<'a>(pub(crate) &'a [usize]);

impl fmt::Display for RangeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while let Some(&lo) = self.0.get(i) {
            // The run of consecutive numbers from `lo`.
            let run = self.0[i..]
                .iter()
                .enumerate()
                .take_while(|&(k, &n)| n.checked_sub(lo) == Some(k))
                .count();
            let hi = self.0[i + run - 1];
            if i > 0 {
                f.write_char(',')?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
            i += run;
        }
        Ok(())
    }
}

fn write_entries(cx: &mut Cx, entries: &[FailureDumpEntry], out: &mut dyn Write) -> fmt::Result {
    if let Some((headers, cols, split)) = entries_table(entries) {
        return write_table(2, &headers, &cols, split, out);
    }
    for e in entries {
        match &e.key {
            Some(k) => write_block(cx, k, 0, 2, "entry: key=", out)?,
            None => writeln!(out, "  entry: key={}", e.key_hex)?,
        }
        match &e.value {
            Some(v) => write_block(cx, v, 0, 4, "value: ", out)?,
            None => writeln!(out, "    value: {}", e.value_hex)?,
        }
        if let Some(p) = &e.payload {
            write_block(cx, p, 0, 4, ".data ", out)?;
        }
    }
    Ok(())
}

/// Headers, cells and key-column count of the table two or more entries print as, when their
/// values are flat structs of one type and their keys are scalars or flat structs.
fn entries_table(entries: &[FailureDumpEntry]) -> Option<(Vec<String>, Vec<Vec<String>>, usize)> {
    if entries.len() < 2 || entries.iter().any(|e| e.payload.is_some()) {
        return None;
    }
    let keys: Vec<&RenderedValue> = entries
        .iter()
        .map(|e| e.key.as_ref())
        .collect::<Option<_>>()?;
    let values: Vec<&RenderedValue> = entries
        .iter()
        .map(|e| e.value.as_ref())
        .collect::<Option<_>>()?;
    flat_struct_type(&values)?;
    let (mut headers, mut cols) = if flat_struct_type(&keys).is_some() {
        struct_columns(&keys)
    } else if keys.iter().all(|k| is_scalar(k)) {
        (
            vec!["key".to_string()],
            vec![keys.iter().map(|k| inline_string(k)).collect()],
        )
    } else {
        return None;
    };
    if headers.is_empty() {
        return None;
    }
    let split = headers.len();
    let (vh, vc) = struct_columns(&values);
    headers.extend(vh);
    cols.extend(vc);
    Some((headers, cols, split))
}

fn write_array_entries(cx: &mut Cx, m: &FailureDumpMap, out: &mut dyn Write) -> fmt::Result {
    let entries = &m.array_entries;
    let mut i = 0;
    while i < entries.len() {
        // Runs of consecutive zero elements collapse into one line.
        let run = entries[i..]
            .iter()
            .enumerate()
            .take_while(|(j, e)| {
                e.key as usize == entries[i].key as usize + j
                    && e.value.as_ref().is_some_and(is_zero)
            })
            .count();
        if run >= 2 {
            let last = entries[i + run - 1].key;
            writeln!(out, "  keys {}-{last}: zero", entries[i].key)?;
            i += run;
            continue;
        }
        let e = &entries[i];
        match &e.value {
            Some(v) => write_block(cx, v, 0, 2, &format!("key {}: ", e.key), out)?,
            None => writeln!(out, "  key {}: <unreadable>", e.key)?,
        }
        i += 1;
    }
    Ok(())
}

/// The shared type name when every value is a struct of the same type whose members are all
/// scalars (after flattening anonymous members).
fn flat_struct_type<'a>(values: &[&'a RenderedValue]) -> Option<&'a str> {
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
            .all(|(_, v)| is_scalar(v))
        {
            return None;
        }
    }
    name
}

/// Column headers and cells (column-major) of flat structs; columns zero in every row are left
/// out.
fn struct_columns(values: &[&RenderedValue]) -> (Vec<String>, Vec<Vec<String>>) {
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
        if cells.iter().all(|c| c.is_none_or(is_zero)) {
            continue;
        }
        headers.push(n.to_string());
        cols.push(
            cells
                .into_iter()
                .map(|c| c.map(inline_string).unwrap_or_default())
                .collect(),
        );
    }
    (headers, cols)
}

/// A right-aligned table; `split` key columns, then `|`, then the value columns.
pub(crate) fn write_table(
    indent: usize,
    headers: &[String],
    cols: &[Vec<String>],
    split: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    let widths: Vec<usize> = headers
        .iter()
        .zip(cols)
        .map(|(h, c)| {
            c.iter()
                .map(|s| s.chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rows = cols.first().map_or(0, Vec::len);
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut dyn Write| -> fmt::Result {
        spaces(out, indent)?;
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.write_str(if i == split { " | " } else { "  " })?;
            }
            spaces(out, w.saturating_sub(cell.chars().count()))?;
            out.write_str(cell)?;
        }
        out.write_char('\n')
    };
    line(&mut headers.iter().map(String::as_str), out)?;
    for r in 0..rows {
        line(&mut cols.iter().map(|c| c[r].as_str()), out)?;
    }
    Ok(())
}

/// One per-CPU key: identical CPUs grouped; flat structs that differ as a `common:` block plus
/// a `per-cpu:` table.
fn write_per_cpu(
    cx: &mut Cx,
    label: &str,
    per_cpu: &[Option<RenderedValue>],
    out: &mut dyn Write,
) -> fmt::Result {
    // (cpus, value) groups of equal values, in order of their first CPU.
    let mut groups: Vec<(Vec<usize>, Option<&RenderedValue>)> = Vec::new();
    for (cpu, v) in per_cpu.iter().enumerate() {
        match groups.iter_mut().find(|(_, g)| *g == v.as_ref()) {
            Some((cpus, _)) => cpus.push(cpu),
            None => groups.push((vec![cpu], v.as_ref())),
        }
    }
    match groups.as_slice() {
        [] => return writeln!(out, "  {label}: no CPUs"),
        [(_, v)] => {
            let head = format!("{label}: all CPUs: ");
            return match v {
                Some(v) => write_block(cx, v, 0, 2, &head, out),
                None => writeln!(out, "  {head}<unreadable>"),
            };
        }
        _ => {}
    }
    writeln!(out, "  {label}:")?;
    let values: Option<Vec<&RenderedValue>> = groups.iter().map(|(_, v)| *v).collect();
    if let Some(values) = values
        && let Some(type_name) = flat_struct_type(&values)
    {
        return per_cpu_table(type_name, &groups, &values, out);
    }
    for (cpus, v) in &groups {
        let head = if cpus.len() == 1 {
            format!("cpu {}: ", cpus[0])
        } else {
            format!("cpus {}: ", RangeList(cpus))
        };
        match v {
            Some(v) => write_block(cx, v, 0, 4, &head, out)?,
            None => writeln!(out, "    {head}<unreadable>")?,
        }
    }
    Ok(())
}

/// Groups of CPUs holding flat structs of `type_name`: the fields equal in every group as
/// `common:`, the others as a `per-cpu:` table, one row per group.
fn per_cpu_table(
    type_name: &str,
    groups: &[(Vec<usize>, Option<&RenderedValue>)],
    values: &[&RenderedValue],
    out: &mut dyn Write,
) -> fmt::Result {
    let (headers, cols) = struct_columns(values);
    // Columns equal in every group are common to all CPUs.
    let (common, varying): (Vec<usize>, Vec<usize>) =
        (0..headers.len()).partition(|&c| cols[c].iter().all(|s| *s == cols[c][0]));
    if !common.is_empty() {
        let fields: Vec<String> = common
            .iter()
            .map(|&c| format!("{}={}", headers[c], cols[c][0]))
            .collect();
        writeln!(out, "    common: {type_name}{{{}}}", fields.join(", "))?;
    }
    let mut h = vec!["cpus".to_string()];
    let mut c = vec![
        groups
            .iter()
            .map(|(cpus, _)| RangeList(cpus).to_string())
            .collect(),
    ];
    for &i in &varying {
        h.push(headers[i].clone());
        c.push(cols[i].clone());
    }
    out.write_str("    per-cpu:\n")?;
    write_table(6, &h, &c, 1, out)
}
