//! Layouts shared by the sections: right-aligned tables, aligned `name=value` columns, and
//! CPU range lists.

use std::fmt::{self, Write};

use super::text::spaces;

/// Most columns a grid is tried with.
const MAX_GRID_COLUMNS: usize = 64;

/// Gap between grid and table columns.
const GAP: usize = 2;

/// One `name=value` of a grid (both already escaped).
pub(crate) struct Cell {
    name: String,
    value: String,
    name_w: usize,
    value_w: usize,
}

impl Cell {
    pub(crate) fn new(name: String, value: String) -> Self {
        let name_w = name.chars().count();
        let value_w = value.chars().count();
        Self {
            name,
            value,
            name_w,
            value_w,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    fn width(&self) -> usize {
        self.name_w + 1 + self.value_w
    }
}

/// `cells` in aligned columns, row by row in their order, as many per line as fit in `width`
/// at `indent`, each column as wide as its widest cell. A cell wider than half the line gets a
/// line of its own, after the others.
pub(crate) fn write_grid(
    cells: &[Cell],
    indent: usize,
    width: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    let avail = width.saturating_sub(indent);
    let (narrow, wide): (Vec<&Cell>, Vec<&Cell>) =
        cells.iter().partition(|c| c.width() <= avail / 2);
    let n = grid_columns(&narrow, avail);
    let widths = column_widths(&narrow, n);
    for row in narrow.chunks(n) {
        spaces(out, indent)?;
        for (j, c) in row.iter().enumerate() {
            write!(out, "{}={}", c.name, c.value)?;
            if j + 1 < row.len() {
                spaces(out, widths[j] - c.width() + GAP)?;
            }
        }
        out.write_char('\n')?;
    }
    for c in wide {
        spaces(out, indent)?;
        writeln!(out, "{}={}", c.name, c.value)?;
    }
    Ok(())
}

/// The most columns (at least 1) whose aligned layout of `cells` fits in `avail` columns.
fn grid_columns(cells: &[&Cell], avail: usize) -> usize {
    let most = cells.len().clamp(1, MAX_GRID_COLUMNS);
    (1..=most)
        .rev()
        .find(|&n| {
            let widths = column_widths(cells, n);
            widths.iter().sum::<usize>() + GAP * (n - 1) <= avail
        })
        .unwrap_or(1)
}

/// The widest cell of each of `n` columns.
fn column_widths(cells: &[&Cell], n: usize) -> Vec<usize> {
    let mut widths = vec![0; n];
    for (k, c) in cells.iter().enumerate() {
        widths[k % n] = widths[k % n].max(c.width());
    }
    widths
}

/// A right-aligned table; `split` key columns, then `|`, then the value columns.
pub(crate) fn write_table(
    indent: usize,
    headers: &[String],
    cols: &[Vec<String>],
    split: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    let widths = table_widths(headers, cols);
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

/// Width of each table column: its widest cell or header.
pub(crate) fn table_widths(headers: &[String], cols: &[Vec<String>]) -> Vec<usize> {
    headers
        .iter()
        .zip(cols)
        .map(|(h, c)| {
            c.iter()
                .map(|s| s.chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect()
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
