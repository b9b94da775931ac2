//! The task table, and one block per task a `--task` filter selects: every field, where it
//! runs or waits, the storage-map entries it owns and the map values that hold its address.

use std::fmt::{self, Write};

use super::filter::{View, task_matches};
use super::layout::{Cell, write_grid, write_table};
use super::names::name;
use super::report::columns;
use super::text::esc;
use super::value::{Cx, write_block};
use crate::rendered::MAX_DISPLAY_DEPTH;
use crate::{FailureDumpReport, RenderedValue, TaskEnrichment};

/// Rows of the task table in the default view.
const MAX_TASK_ROWS: usize = 32;
/// Map values named per task as holding its address.
const MAX_REFS: usize = 16;
/// Values looked at per map value when searching for a task's address.
const MAX_VISIT: usize = 1 << 16;

/// `tasks: N captured` and the table: the first [`MAX_TASK_ROWS`] rows of the main columns in
/// the default view; every row when selected; every field when `full`.
pub(crate) fn table(r: &FailureDumpReport, v: &View<'_>, out: &mut dyn Write) -> fmt::Result {
    if r.task_enrichments.is_empty() {
        return Ok(());
    }
    let n = r.task_enrichments.len();
    let shown = if v.caps() { n.min(MAX_TASK_ROWS) } else { n };
    write!(out, "tasks: {n} captured")?;
    if !v.opts.full {
        out.write_str(" (--full: every field; --task PID|COMM: one task)")?;
    }
    out.write_char('\n')?;
    let rows = &r.task_enrichments[..shown];
    let (headers, cols) = if v.opts.full {
        all_columns(rows)
    } else {
        main_columns(rows)
    };
    write_table(2, &headers, &cols, usize::MAX, out)?;
    if shown < n {
        v.note_cut();
        writeln!(out, "  … {} more (--section tasks)", n - shown)?;
    }
    Ok(())
}

fn main_columns(rows: &[TaskEnrichment]) -> (Vec<String>, Vec<Vec<String>>) {
    type T = TaskEnrichment;
    columns(
        rows,
        &[
            ("pid", &|t: &T| t.pid.to_string()),
            ("tgid", &|t: &T| t.tgid.to_string()),
            ("comm", &|t: &T| esc(&t.comm).to_string()),
            ("class", &|t: &T| esc(&t.sched_class).to_string()),
            ("prio", &|t: &T| t.prio.to_string()),
            ("weight", &|t: &T| t.weight.to_string()),
            ("nvcsw", &|t: &T| t.nvcsw.to_string()),
            ("nivcsw", &|t: &T| t.nivcsw.to_string()),
            ("utime", &|t: &T| t.utime.to_string()),
            ("stime", &|t: &T| t.stime.to_string()),
        ],
    )
}

/// Every field the wire format has for a task (`pid`, `tgid`, `comm` first, then the others
/// by name): the JSON object's own keys, so that none is left out.
fn fields(t: &TaskEnrichment) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(t) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = obj
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => esc(s).to_string(),
                serde_json::Value::Number(n) if k.ends_with("_kva") => {
                    format!("{:#x}", n.as_u64().unwrap_or(0))
                }
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    out.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
    out
}

/// `pid`, `tgid`, `comm` first; the other fields by name.
fn rank(field: &str) -> u8 {
    match field {
        "pid" => 0,
        "tgid" => 1,
        "comm" => 2,
        _ => 3,
    }
}

fn all_columns(rows: &[TaskEnrichment]) -> (Vec<String>, Vec<Vec<String>>) {
    let per_row: Vec<Vec<(String, String)>> = rows.iter().map(fields).collect();
    // Fields at their default are not on the wire: the union of every row's, in `fields`'
    // order.
    let mut headers: Vec<String> = Vec::new();
    for (k, _) in per_row.iter().flatten() {
        if !headers.contains(k) {
            headers.push(k.clone());
        }
    }
    headers.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let cols = headers
        .iter()
        .map(|h| {
            per_row
                .iter()
                .map(|f| {
                    f.iter()
                        .find(|(k, _)| k == h)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    (headers, cols)
}

/// One block per task of the report that a `--task` name selects.
pub(crate) fn blocks(
    r: &FailureDumpReport,
    cx: &mut Cx<'_>,
    v: &View<'_>,
    out: &mut dyn Write,
) -> fmt::Result {
    for t in r
        .task_enrichments
        .iter()
        .filter(|t| v.filter.tasks.iter().any(|w| task_matches(w, t)))
    {
        block(r, cx, t, out)?;
    }
    Ok(())
}

fn block(
    r: &FailureDumpReport,
    cx: &mut Cx<'_>,
    t: &TaskEnrichment,
    out: &mut dyn Write,
) -> fmt::Result {
    writeln!(out, "task {}:", name(t))?;
    let cells: Vec<Cell> = fields(t)
        .into_iter()
        .map(|(k, v)| Cell::new(k, v))
        .collect();
    write_grid(&cells, 2, cx.opts.width, out)?;
    whereabouts(r, t, out)?;
    owned_entries(r, cx, t, out)?;
    references(r, t, out)
}

/// Where the task runs or waits: current on a CPU, on a CPU's runnable list, on a DSQ.
fn whereabouts(r: &FailureDumpReport, t: &TaskEnrichment, out: &mut dyn Write) -> fmt::Result {
    let mut any = false;
    for q in r.rq_scx_states.iter().filter(|q| q.curr_pid == t.pid) {
        writeln!(out, "  current on CPU {}", q.cpu)?;
        any = true;
    }
    if t.task_kva != 0 {
        for q in &r.rq_scx_states {
            if let Some(i) = q.runnable_task_kvas.iter().position(|&k| k == t.task_kva) {
                let n = q.runnable_task_kvas.len();
                write!(out, "  runnable on CPU {} ({} of {n})", q.cpu, i + 1)?;
                if let Some(j) = t.runnable_age_jiffies {
                    write!(out, " for {j} jiffies")?;
                }
                out.write_char('\n')?;
                any = true;
            }
        }
        for d in &r.dsq_states {
            if let Some(i) = d.task_kvas.iter().position(|&k| k == t.task_kva) {
                writeln!(
                    out,
                    "  queued on DSQ {:#x} ({}): {} of {}",
                    d.id,
                    esc(&d.origin),
                    i + 1,
                    d.task_kvas.len()
                )?;
                any = true;
            }
        }
    }
    if let Some(k) = r
        .exit_info
        .as_ref()
        .and_then(|e| e.kernel_dump.as_deref())
        .and_then(|d| super::kdump::tasks(d).remove(&t.pid))
    {
        write!(
            out,
            "  in the kernel's dump: {} {}",
            esc(k.state.trim_start()),
            esc(&k.age)
        )?;
        if let Some(d) = &k.dsq_id {
            write!(out, " dsq_id={}", esc(d))?;
        }
        if let Some(s) = k.slice {
            write!(out, " slice={s}")?;
        }
        out.write_char('\n')?;
        any = true;
    }
    if !any {
        out.write_str("  not on a run queue or DSQ of the capture\n")?;
    }
    Ok(())
}

/// The storage-map entries whose owner is the task.
fn owned_entries(
    r: &FailureDumpReport,
    cx: &mut Cx<'_>,
    t: &TaskEnrichment,
    out: &mut dyn Write,
) -> fmt::Result {
    if t.task_kva == 0 {
        return Ok(());
    }
    let key_hex = crate::hex(&t.task_kva.to_le_bytes());
    for m in &r.maps {
        if m.map_type != crate::map_type::TASK_STORAGE {
            continue;
        }
        for e in m.entries.iter().filter(|e| e.key_hex == key_hex) {
            let head = format!("map {} entry: ", esc(&m.name));
            match &e.value {
                Some(v) => write_block(cx, v, 0, 2, &head, out)?,
                None => writeln!(out, "  {head}{}", esc(&e.value_hex))?,
            }
        }
    }
    Ok(())
}

/// Map values that hold the task's address (a pointer or a 64-bit integer), by map, key and
/// member path.
fn references(r: &FailureDumpReport, t: &TaskEnrichment, out: &mut dyn Write) -> fmt::Result {
    if t.task_kva == 0 {
        return Ok(());
    }
    let mut hits = Vec::new();
    for m in &r.maps {
        let name = esc(&m.name).to_string();
        let mut look = |at: String, v: &RenderedValue| {
            if hits.len() <= MAX_REFS {
                for path in paths_to(v, t.task_kva) {
                    hits.push(format!("map {name} {at}{path}"));
                }
            }
        };
        if let Some(v) = &m.value {
            look("value".into(), v);
        }
        for e in &m.entries {
            if let Some(k) = &e.key {
                look(format!("key {}", esc(&e.key_hex)), k);
            }
            if let Some(v) = &e.value {
                look(format!("entry {} value", esc(&e.key_hex)), v);
            }
        }
        for e in &m.array_entries {
            if let Some(v) = &e.value {
                look(format!("key {}", e.key), v);
            }
        }
        for e in &m.percpu_entries {
            for (cpu, v) in e.per_cpu.iter().enumerate() {
                if let Some(v) = v {
                    look(format!("key {} cpu {cpu}", e.key), v);
                }
            }
        }
    }
    for h in hits.iter().take(MAX_REFS) {
        writeln!(out, "  its address is in {h}")?;
    }
    if hits.len() > MAX_REFS {
        writeln!(out, "  … and more (the first {MAX_REFS} are shown)")?;
    }
    Ok(())
}

/// Member paths (`.a.b[3]`, `` for the value itself) inside `v` whose pointer or 64-bit
/// integer equals `kva`; iterative and bounded by [`MAX_VISIT`] values.
fn paths_to(v: &RenderedValue, kva: u64) -> Vec<String> {
    use RenderedValue as V;
    let mut found = Vec::new();
    let mut stack: Vec<(&RenderedValue, String, usize)> = vec![(v, String::new(), 0)];
    let mut visited = 0;
    while let Some((v, path, depth)) = stack.pop() {
        visited += 1;
        if visited > MAX_VISIT || found.len() > MAX_REFS {
            break;
        }
        let hit = match v {
            V::Ptr { value, .. } | V::Uint { bits: 64, value } => *value == kva,
            V::Int { bits: 64, value } => *value as u64 == kva,
            _ => false,
        };
        if hit {
            found.push(path.clone());
        }
        if depth >= MAX_DISPLAY_DEPTH {
            continue;
        }
        match v {
            V::Struct { members, .. } => {
                for m in members.iter().rev() {
                    stack.push((&m.value, format!("{path}.{}", esc(&m.name)), depth + 1));
                }
            }
            V::Array { elements, .. } => {
                for (i, e) in elements.iter().enumerate().rev() {
                    stack.push((e, format!("{path}[{i}]"), depth + 1));
                }
            }
            V::Ptr { deref: Some(d), .. } => stack.push((d, format!("{path}→"), depth + 1)),
            V::Truncated { partial, .. } => stack.push((partial, path.clone(), depth + 1)),
            _ => {}
        }
    }
    found
}
