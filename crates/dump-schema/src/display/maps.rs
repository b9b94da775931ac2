//! Human rendering of one [`FailureDumpMap`] block.

use std::fmt::Write;

use super::value::{inline_string, is_scalar, is_zero, push_indent, visible_members, write_block};
use crate::{FailureDumpEntry, FailureDumpMap, RenderedValue, map_type};

/// Writes the block of one map: its header line, then its content indented 2.
pub(crate) fn write_map(m: &FailureDumpMap, out: &mut String) {
    write!(out, "map {} (type=", m.name).unwrap();
    match map_type::name(m.map_type) {
        Some(n) => out.push_str(n),
        None => write!(out, "{}", m.map_type).unwrap(),
    }
    write!(
        out,
        ", value_size={}, max_entries={})",
        m.value_size, m.max_entries
    )
    .unwrap();
    if let Some(e) = &m.error {
        write!(out, " [error: {e}]").unwrap();
    }
    out.push('\n');

    if let Some(v) = &m.value {
        write_block(v, 0, 2, "", out);
    }
    write_entries(&m.entries, out);
    write_array_entries(m, out);
    for e in &m.percpu_entries {
        write_per_cpu(&format!("key {}", e.key), &e.per_cpu, out);
    }
    for e in &m.percpu_hash_entries {
        let key = match &e.key {
            Some(k) => inline_string(k),
            None => e.key_hex.clone(),
        };
        write_per_cpu(&format!("key={key}"), &e.per_cpu, out);
    }
    if let Some(a) = &m.arena {
        let bytes: usize = a.pages.iter().map(|p| p.bytes.len()).sum();
        write!(
            out,
            "  arena: {} pages captured ({} KiB)",
            a.pages.len(),
            bytes.div_ceil(1024)
        )
        .unwrap();
        if a.truncated {
            out.push_str(", truncated");
        }
        if a.span_capped {
            out.push_str(", span capped");
        }
        writeln!(
            out,
            "\n    declared_pages={} kern_vm_start={:#x} user_vm_start={:#x}",
            a.declared_pages, a.kern_vm_start, a.user_vm_start
        )
        .unwrap();
    }
    if let Some(r) = &m.ringbuf {
        write!(
            out,
            "  ringbuf: capacity={}B, pending={}B",
            r.capacity, r.pending_bytes
        )
        .unwrap();
        if r.capacity > 0 {
            let pct = r.pending_bytes as f64 * 100.0 / r.capacity as f64;
            write!(out, " ({pct:.1}%)").unwrap();
        }
        writeln!(
            out,
            ", consumer_pos={}, producer_pos={}, pending_pos={}",
            r.consumer_pos, r.producer_pos, r.pending_pos
        )
        .unwrap();
    }
    if let Some(s) = &m.stack_trace {
        write!(
            out,
            "  stack_trace: {} stacks in {} buckets",
            s.entries.len(),
            s.n_buckets
        )
        .unwrap();
        if s.buckets_unreadable > 0 {
            write!(out, ", {} buckets unreadable", s.buckets_unreadable).unwrap();
        }
        if s.truncated {
            out.push_str(", truncated");
        }
        out.push('\n');
    }
    if let Some(f) = &m.fd_array {
        write!(
            out,
            "  fd_array: {} of {} slots populated",
            f.populated, f.scanned
        )
        .unwrap();
        if !f.indices.is_empty() {
            write!(
                out,
                " [{}]",
                range_list(f.indices.iter().map(|&i| i as usize))
            )
            .unwrap();
        }
        if f.indices_truncated {
            out.push_str(", indices truncated");
        }
        if f.unreadable > 0 {
            write!(out, ", {} unreadable", f.unreadable).unwrap();
        }
        if f.truncated {
            out.push_str(", truncated");
        }
        out.push('\n');
    }
}

/// `0-3,5,7-8` from ascending numbers.
pub(crate) fn range_list(mut it: impl Iterator<Item = usize>) -> String {
    let mut s = String::new();
    let Some(mut lo) = it.next() else {
        return s;
    };
    let mut hi = lo;
    let flush = |s: &mut String, lo: usize, hi: usize| {
        if !s.is_empty() {
            s.push(',');
        }
        if lo == hi {
            write!(s, "{lo}").unwrap();
        } else {
            write!(s, "{lo}-{hi}").unwrap();
        }
    };
    for n in it {
        if n == hi + 1 {
            hi = n;
        } else {
            flush(&mut s, lo, hi);
            lo = n;
            hi = n;
        }
    }
    flush(&mut s, lo, hi);
    s
}

fn write_entries(entries: &[FailureDumpEntry], out: &mut String) {
    if entries.len() >= 2 && entries.iter().all(|e| e.payload.is_none()) {
        let keys: Option<Vec<&RenderedValue>> = entries.iter().map(|e| e.key.as_ref()).collect();
        let values: Option<Vec<&RenderedValue>> =
            entries.iter().map(|e| e.value.as_ref()).collect();
        if let (Some(keys), Some(values)) = (keys, values)
            && flat_struct_type(&values).is_some()
        {
            let (mut headers, mut cols) = if flat_struct_type(&keys).is_some() {
                struct_columns(&keys)
            } else if keys.iter().all(|k| is_scalar(k)) {
                (
                    vec!["key".to_string()],
                    vec![keys.iter().map(|k| inline_string(k)).collect()],
                )
            } else {
                (Vec::new(), Vec::new())
            };
            if !headers.is_empty() {
                let split = headers.len();
                let (vh, vc) = struct_columns(&values);
                headers.extend(vh);
                cols.extend(vc);
                write_table(2, &headers, &cols, split, out);
                return;
            }
        }
    }
    for e in entries {
        match &e.key {
            Some(k) => write_block(k, 0, 2, "entry: key=", out),
            None => writeln!(out, "  entry: key={}", e.key_hex).unwrap(),
        }
        match &e.value {
            Some(v) => write_block(v, 0, 4, "value: ", out),
            None => writeln!(out, "    value: {}", e.value_hex).unwrap(),
        }
        if let Some(p) = &e.payload {
            write_block(p, 0, 4, ".data ", out);
        }
    }
}

fn write_array_entries(m: &FailureDumpMap, out: &mut String) {
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
            writeln!(out, "  keys {}-{last}: zero", entries[i].key).unwrap();
            i += run;
            continue;
        }
        let e = &entries[i];
        match &e.value {
            Some(v) => write_block(v, 0, 2, &format!("key {}: ", e.key), out),
            None => writeln!(out, "  key {}: <unreadable>", e.key).unwrap(),
        }
        i += 1;
    }
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
    out: &mut String,
) {
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
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        push_indent(out, indent);
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str(if i == split { " | " } else { "  " });
            }
            let pad = w.saturating_sub(cell.chars().count());
            push_indent(out, pad);
            out.push_str(cell);
        }
        out.push('\n');
    };
    line(&mut headers.iter().map(String::as_str), out);
    for r in 0..rows {
        line(&mut cols.iter().map(|c| c[r].as_str()), out);
    }
}

/// One per-CPU key: identical CPUs grouped; flat structs that differ as a `common:` block plus
/// a `per-cpu:` table.
fn write_per_cpu(label: &str, per_cpu: &[Option<RenderedValue>], out: &mut String) {
    // (cpus, value) groups of equal values, in order of their first CPU.
    let mut groups: Vec<(Vec<usize>, Option<&RenderedValue>)> = Vec::new();
    for (cpu, v) in per_cpu.iter().enumerate() {
        match groups.iter_mut().find(|(_, g)| *g == v.as_ref()) {
            Some((cpus, _)) => cpus.push(cpu),
            None => groups.push((vec![cpu], v.as_ref())),
        }
    }
    match groups.as_slice() {
        [] => {
            writeln!(out, "  {label}: no CPUs").unwrap();
            return;
        }
        [(_, v)] => {
            let head = format!("{label}: all CPUs: ");
            match v {
                Some(v) => write_block(v, 0, 2, &head, out),
                None => writeln!(out, "  {head}<unreadable>").unwrap(),
            }
            return;
        }
        _ => {}
    }
    writeln!(out, "  {label}:").unwrap();
    let cpus_label = |cpus: &[usize]| {
        if cpus.len() == 1 {
            format!("cpu {}", cpus[0])
        } else {
            format!("cpus {}", range_list(cpus.iter().copied()))
        }
    };
    let values: Option<Vec<&RenderedValue>> = groups.iter().map(|(_, v)| *v).collect();
    if let Some(values) = values
        && let Some(type_name) = flat_struct_type(&values)
    {
        let (headers, cols) = struct_columns(&values);
        // Columns equal in every group are common to all CPUs.
        let (common, varying): (Vec<usize>, Vec<usize>) =
            (0..headers.len()).partition(|&c| cols[c].iter().all(|s| *s == cols[c][0]));
        if !common.is_empty() {
            let fields: Vec<String> = common
                .iter()
                .map(|&c| format!("{}={}", headers[c], cols[c][0]))
                .collect();
            writeln!(out, "    common: {type_name}{{{}}}", fields.join(", ")).unwrap();
        }
        let mut h = vec!["cpus".to_string()];
        let mut c = vec![
            groups
                .iter()
                .map(|(cpus, _)| range_list(cpus.iter().copied()))
                .collect(),
        ];
        for &i in &varying {
            h.push(headers[i].clone());
            c.push(cols[i].clone());
        }
        out.push_str("    per-cpu:\n");
        write_table(6, &h, &c, 1, out);
        return;
    }
    for (cpus, v) in &groups {
        let head = format!("{}: ", cpus_label(cpus));
        match v {
            Some(v) => write_block(v, 0, 4, &head, out),
            None => writeln!(out, "    {head}<unreadable>").unwrap(),
        }
    }
}
