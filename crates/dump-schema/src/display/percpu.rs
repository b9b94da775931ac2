//! Per-CPU values: CPUs holding equal values grouped, and structs that differ between CPUs
//! split into what all CPUs share (`common:`) and a table of what differs (`per-cpu:`).

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::layout::{Cell, RangeList, table_widths, write_grid, write_table};
use super::text::esc;
use super::value::Style;
use super::value::{Cx, is_zero, styled_string, visible_members, write_block};
use crate::RenderedValue;
use crate::rendered::MAX_DISPLAY_DEPTH;

/// Most leaves (scalars, arrays, followed pointers) one CPU's struct is split into for the
/// comparison; a bigger value prints whole per group of identical CPUs.
const MAX_LEAVES: usize = 1024;

/// Indentation of a per-CPU key's content.
const INDENT: usize = 4;

/// CPUs holding the same value (or all unreadable), in order of their first CPU.
type Group<'a> = (Vec<usize>, Option<&'a RenderedValue>);

/// One per-CPU key. Unless `full`: identical CPUs grouped (`all CPUs:` when they all agree);
/// structs that differ as a `common:` block plus a `per-cpu:` table of the members that
/// differ, one row per group of identical CPUs.
pub(crate) fn write_per_cpu(
    cx: &mut Cx<'_>,
    label: &str,
    per_cpu: &[Option<RenderedValue>],
    out: &mut dyn Write,
) -> fmt::Result {
    if per_cpu.is_empty() {
        return writeln!(out, "  {label}: no CPUs");
    }
    if cx.opts.full {
        writeln!(out, "  {label}:")?;
        for (cpu, v) in per_cpu.iter().enumerate() {
            cpu_line(cx, &[cpu], v.as_ref(), out)?;
        }
        return Ok(());
    }
    let groups = groups(per_cpu);
    if let [(_, v)] = groups.as_slice() {
        let head = format!("{label}: all CPUs: ");
        return match v {
            Some(v) => write_block(cx, v, 0, 2, &head, out),
            None => writeln!(out, "  {head}<unreadable>"),
        };
    }
    writeln!(out, "  {label}:")?;
    let readable: Vec<(&[usize], &RenderedValue)> = groups
        .iter()
        .filter_map(|(cpus, v)| v.map(|v| (cpus.as_slice(), v)))
        .collect();
    if readable.len() >= 2
        && let Some(split) = Split::of(&readable, &cx.opts)
    {
        split.write(&readable, &cx.opts, out)?;
        for (cpus, _) in groups.iter().filter(|(_, v)| v.is_none()) {
            cpu_line(cx, cpus, None, out)?;
        }
        return Ok(());
    }
    for (cpus, v) in &groups {
        cpu_line(cx, cpus, *v, out)?;
    }
    Ok(())
}

fn groups(per_cpu: &[Option<RenderedValue>]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (cpu, v) in per_cpu.iter().enumerate() {
        match groups.iter_mut().find(|(_, g)| *g == v.as_ref()) {
            Some((cpus, _)) => cpus.push(cpu),
            None => groups.push((vec![cpu], v.as_ref())),
        }
    }
    groups
}

/// `cpu N: <value>` or `cpus a-b: <value>`.
fn cpu_line(
    cx: &mut Cx<'_>,
    cpus: &[usize],
    v: Option<&RenderedValue>,
    out: &mut dyn Write,
) -> fmt::Result {
    let head = if cpus.len() == 1 {
        format!("cpu {}: ", cpus[0])
    } else {
        format!("cpus {}: ", RangeList(cpus))
    };
    match v {
        Some(v) => write_block(cx, v, 0, INDENT, &head, out),
        None => writeln!(out, "{:INDENT$}{head}<unreadable>", ""),
    }
}

/// Structs of one type split into the members all groups share and a table of the others.
/// Nested structs are compared member by member (`layer.weight`); arrays and pointers whole.
struct Split {
    type_name: String,
    common: Vec<Cell>,
    headers: Vec<String>,
    cols: Vec<Vec<String>>,
}

impl Split {
    /// `None` unless every value is a struct of the same type, of at most [`MAX_LEAVES`]
    /// leaves.
    fn of(groups: &[(&[usize], &RenderedValue)], o: &Style<'_>) -> Option<Self> {
        let mut type_name: Option<&Option<String>> = None;
        let mut per_group: Vec<Vec<(String, &RenderedValue)>> = Vec::new();
        for (_, v) in groups {
            let RenderedValue::Struct { type_name: t, .. } = v else {
                return None;
            };
            match type_name {
                Some(n) if n != t => return None,
                _ => type_name = Some(t),
            }
            let mut leaves = Vec::new();
            if !collect_leaves(v, "", 0, &mut leaves) {
                return None;
            }
            per_group.push(leaves);
        }
        // Paths in order of first appearance, and each group's leaf at each path.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut paths: Vec<(&str, Vec<Option<&RenderedValue>>)> = Vec::new();
        for (g, leaves) in per_group.iter().enumerate() {
            for (path, v) in leaves {
                let i = *index.entry(path).or_insert_with(|| {
                    paths.push((path, vec![None; groups.len()]));
                    paths.len() - 1
                });
                paths[i].1[g] = Some(v);
            }
        }
        let mut split = Split {
            type_name: esc(type_name.and_then(|t| t.as_deref()).unwrap_or("")).to_string(),
            common: Vec::new(),
            headers: Vec::new(),
            cols: Vec::new(),
        };
        for (path, cells) in paths {
            if !o.full && cells.iter().all(|c| c.is_none_or(is_zero)) {
                continue;
            }
            let texts: Vec<String> = cells
                .iter()
                .map(|c| c.map(|v| styled_string(v, o)).unwrap_or_default())
                .collect();
            if cells.iter().all(Option::is_some) && texts.iter().all(|t| *t == texts[0]) {
                split
                    .common
                    .push(Cell::new(path.to_string(), texts[0].clone()));
            } else {
                split.headers.push(path.to_string());
                split.cols.push(texts);
            }
        }
        Some(split)
    }

    fn write(
        &self,
        groups: &[(&[usize], &RenderedValue)],
        o: &Style<'_>,
        out: &mut dyn Write,
    ) -> fmt::Result {
        self.write_common(o, out)?;
        if self.headers.is_empty() {
            return Ok(());
        }
        let cpus: Vec<String> = groups
            .iter()
            .map(|(cpus, _)| RangeList(cpus).to_string())
            .collect();
        out.write_str("    per-cpu:\n")?;
        // As many columns per table as fit in the width; each table repeats the CPUs.
        let indent = INDENT + 2;
        let widths = table_widths(&self.headers, &self.cols);
        let cpus_w = table_widths(&["cpus".to_string()], std::slice::from_ref(&cpus))[0];
        let mut start = 0;
        while start < self.headers.len() {
            let mut used = indent + cpus_w;
            let mut end = start;
            while let Some(w) = widths.get(end) {
                // ` | ` before the first value column, two spaces before the others.
                let sep = if end == start { 3 } else { 2 };
                if end > start && used + sep + w > o.width {
                    break;
                }
                used += sep + w;
                end += 1;
            }
            let mut h = vec!["cpus".to_string()];
            h.extend_from_slice(&self.headers[start..end]);
            let mut c = vec![cpus.clone()];
            c.extend_from_slice(&self.cols[start..end]);
            write_table(indent, &h, &c, 1, out)?;
            start = end;
        }
        Ok(())
    }

    /// `common: Type{a=1, b=2}` when it fits, else `common: Type:` and aligned columns.
    fn write_common(&self, o: &Style<'_>, out: &mut dyn Write) -> fmt::Result {
        if self.common.is_empty() {
            return Ok(());
        }
        let mut line = format!("{:INDENT$}common: {}{{", "", self.type_name);
        for (i, c) in self.common.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            write!(line, "{}={}", c.name(), c.value())?;
        }
        line.push('}');
        if line.chars().count() <= o.width {
            return writeln!(out, "{line}");
        }
        writeln!(out, "{:INDENT$}common: {}:", "", self.type_name)?;
        write_grid(&self.common, INDENT + 2, o.width, out)
    }
}

/// Appends the leaves of struct `v` (members that are not structs, by dotted path); `false`
/// when there are more than [`MAX_LEAVES`].
fn collect_leaves<'a>(
    v: &'a RenderedValue,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, &'a RenderedValue)>,
) -> bool {
    let RenderedValue::Struct { members, .. } = v else {
        return true;
    };
    for (name, mv) in visible_members(members, true) {
        let path = format!("{prefix}{}", esc(name));
        if matches!(mv, RenderedValue::Struct { .. }) && depth + 1 < MAX_DISPLAY_DEPTH {
            if !collect_leaves(mv, &format!("{path}."), depth + 1, out) {
                return false;
            }
        } else {
            out.push((path, mv));
        }
        if out.len() > MAX_LEAVES {
            return false;
        }
    }
    true
}
