//! Human rendering of a [`ReportDiff`]: a header saying what was compared, then one section
//! per kind of change, the most significant first (tasks that wait longer, moved tasks, the
//! DSQs whose queues changed most, the programs that ran most), each cut to a few lines with
//! counts of the rest, so that a diff fits a screen; [`DisplayOptions::full`] prints every
//! change. Guest text is escaped.

use std::fmt::{self, Write};

use super::DisplayOptions;
use super::text::{esc, safe};
use crate::diff::{
    Change, CpuDiff, DsqDiff, FieldChange, MapDiff, ProgramDiff, ReportDiff, TaskDiff, TaskPlace,
    TaskRef, ValueChange,
};

/// Report fields listed (vCPU registers come last).
const MAX_FIELDS: usize = 5;
/// Tasks listed one per line (those waiting longer, then moved ones).
const MAX_TASKS: usize = 6;
/// Names per list of tasks (appeared, gone, queued, left).
const MAX_NAMES: usize = 6;
const MAX_DSQS: usize = 4;
const MAX_CPUS: usize = 4;
const MAX_PROGRAMS: usize = 4;
const MAX_MAPS: usize = 5;
/// Event counters on their line.
const MAX_EVENTS: usize = 6;

pub(super) fn write_diff(d: &ReportDiff, o: &DisplayOptions, out: &mut dyn Write) -> fmt::Result {
    let cx = Cx { o: *o };
    write!(out, "diff {} → {}", esc(&d.a.label), esc(&d.b.label))?;
    if d.a.schema != "single" || d.b.schema != "single" {
        write!(out, " ({} → {})", esc(&d.a.schema), esc(&d.b.schema))?;
    }
    out.write_char('\n')?;
    for n in &d.notes {
        writeln!(out, "  note: {}", esc(n))?;
    }
    if d.is_empty() {
        return out.write_str("no differences\n");
    }
    counts(d, out)?;
    cx.report(&d.report, out)?;
    cx.tasks(&d.tasks, out)?;
    cx.dsqs(&d.dsqs, out)?;
    cx.cpus(&d.cpus, out)?;
    cx.programs(&d.programs, out)?;
    cx.maps(&d.maps, out)?;
    cx.events(&d.events, out)
}

/// `changed: N tasks, N DSQs, …` (only what changed).
fn counts(d: &ReportDiff, out: &mut dyn Write) -> fmt::Result {
    let parts: Vec<String> = [
        (d.report.len(), "report fields"),
        (d.tasks.len(), "tasks"),
        (d.dsqs.len(), "DSQs"),
        (d.cpus.len(), "CPUs"),
        (d.programs.len(), "programs"),
        (d.maps.len(), "maps"),
        (d.events.len(), "event counters"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    writeln!(out, "  changed: {}", parts.join(", "))
}

struct Cx {
    o: DisplayOptions,
}

impl Cx {
    /// How many of `n` items to list.
    fn cap(&self, n: usize, max: usize) -> usize {
        if self.o.full { n } else { n.min(max) }
    }

    /// A value's text, cut to a third of the width unless `full`.
    fn clip(&self, s: &str) -> String {
        self.clip_to(s, self.o.width / 3)
    }

    /// A value's text, cut to `max` columns (at least 16) unless `full`.
    fn clip_to(&self, s: &str, max: usize) -> String {
        let s = safe(s);
        let max = max.max(16);
        if self.o.full || s.chars().count() <= max {
            return s.into_owned();
        }
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }

    /// `a → b (+d)`, `appeared b`, `gone (was a)`; `raw`: the texts are the report's own
    /// strings (escaped here), else already rendered.
    fn field(&self, name: &str, c: &FieldChange, raw: bool, out: &mut dyn Write) -> fmt::Result {
        let t = |s: &str| {
            if raw {
                self.clip(&esc(s).to_string())
            } else {
                self.clip(s)
            }
        };
        write!(out, "{}", esc(name))?;
        change_text(c.a.as_deref().map(t), c.b.as_deref().map(t), c.delta, out)
    }

    fn report(&self, fields: &[FieldChange], out: &mut dyn Write) -> fmt::Result {
        if fields.is_empty() {
            return Ok(());
        }
        out.write_str("report:\n")?;
        // The vCPUs' registers always differ between two freezes: they come last.
        let mut order: Vec<&FieldChange> = fields
            .iter()
            .filter(|f| !f.name.starts_with("vcpu "))
            .collect();
        order.extend(fields.iter().filter(|f| f.name.starts_with("vcpu ")));
        let n = self.cap(order.len(), MAX_FIELDS);
        // One a line: the texts may take the width (the kernel's message is one).
        let max = self.o.width.saturating_sub(24) / 2;
        for f in &order[..n] {
            let t = |s: &str| self.clip_to(&esc(s).to_string(), max);
            write!(out, "  {}", esc(&f.name))?;
            change_text(f.a.as_deref().map(t), f.b.as_deref().map(t), f.delta, out)?;
            out.write_char('\n')?;
        }
        more(order.len() - n, "report fields", out)
    }

    fn tasks(&self, tasks: &[TaskDiff], out: &mut dyn Write) -> fmt::Result {
        if tasks.is_empty() {
            return Ok(());
        }
        let notable_task = |t: &TaskDiff| waits(t) > 0 || t.moved || t.place_a != t.place_b;
        let mut notable: Vec<&TaskDiff> = tasks
            .iter()
            .filter(|t| t.change == Change::Changed && notable_task(t))
            .collect();
        notable.sort_by_key(|t| (std::cmp::Reverse(waits(t)), !t.moved, t.pid));
        let appeared: Vec<&TaskDiff> = tasks
            .iter()
            .filter(|t| t.change == Change::Appeared)
            .collect();
        let gone: Vec<&TaskDiff> = tasks.iter().filter(|t| t.change == Change::Gone).collect();
        let rest: Vec<&TaskDiff> = tasks
            .iter()
            .filter(|t| t.change == Change::Changed && !notable_task(t))
            .collect();
        writeln!(
            out,
            "tasks: {} wait longer, moved or (un)queued, {} appeared, {} gone, {} other changes",
            notable.len(),
            appeared.len(),
            gone.len(),
            rest.len()
        )?;
        let n = self.cap(notable.len(), MAX_TASKS);
        for t in &notable[..n] {
            self.task(t, out)?;
        }
        more(
            notable.len() - n,
            "tasks that wait longer, moved or were (un)queued",
            out,
        )?;
        self.names(
            "appeared",
            appeared.iter().map(|t| name(t.pid, &t.comm)),
            out,
        )?;
        self.names("gone", gone.iter().map(|t| name(t.pid, &t.comm)), out)?;
        if self.o.full {
            for t in &rest {
                self.task(t, out)?;
            }
        } else if !rest.is_empty() {
            let ran = rest.iter().filter(|t| t.ran == Some(true)).count();
            writeln!(
                out,
                "  +{} more tasks changed ({ran} of them ran; --full lists them)",
                rest.len()
            )?;
        }
        Ok(())
    }

    /// One task's line: its wait, where it is (and was), whether it ran; `full` adds its
    /// other fields.
    fn task(&self, t: &TaskDiff, out: &mut dyn Write) -> fmt::Result {
        write!(out, "  {}:", name(t.pid, &t.comm))?;
        if let Some(w) = &t.wait_jiffies {
            let (a, b) = (w.a.as_deref().map(safe), w.b.as_deref().map(safe));
            match (a, b, w.delta) {
                (Some(a), Some(b), Some(d)) => write!(out, " waits {a}j → {b}j ({d:+}j),")?,
                (Some(a), Some(b), None) => write!(out, " waits {a}j → {b}j,")?,
                (None, Some(b), _) => write!(out, " waits {b}j (runnable now),")?,
                (Some(a), None, _) => write!(out, " waited {a}j (no longer runnable),")?,
                (None, None, _) => {}
            }
        }
        if t.moved || t.place_a != t.place_b {
            write!(
                out,
                " {} → {}",
                place(t.place_a.as_ref()),
                place(t.place_b.as_ref())
            )?;
        } else {
            write!(out, " {}", place(t.place_b.as_ref()))?;
        }
        if t.ran == Some(false) {
            out.write_str("; did not run")?;
        }
        if self.o.full {
            for f in &t.fields {
                out.write_str("; ")?;
                self.field(&f.name, f, true, out)?;
            }
        }
        out.write_char('\n')
    }

    /// `  what (N): a[1], b[2], +N more`.
    fn names(
        &self,
        what: &str,
        names: impl ExactSizeIterator<Item = String>,
        out: &mut dyn Write,
    ) -> fmt::Result {
        let total = names.len();
        if total == 0 {
            return Ok(());
        }
        let n = self.cap(total, MAX_NAMES);
        let shown: Vec<String> = names.take(n).collect();
        write!(out, "  {what} ({total}): {}", shown.join(", "))?;
        if total > n {
            write!(out, ", +{} more", total - n)?;
        }
        out.write_char('\n')
    }

    fn dsqs(&self, dsqs: &[DsqDiff], out: &mut dyn Write) -> fmt::Result {
        if dsqs.is_empty() {
            return Ok(());
        }
        out.write_str("DSQs:\n")?;
        let weight = |d: &DsqDiff| {
            let nr = d
                .fields
                .iter()
                .find(|f| f.name == "nr")
                .and_then(|f| f.delta)
                .unwrap_or(0);
            nr.unsigned_abs() + (d.appeared.len() + d.left.len()) as u128
        };
        let mut order: Vec<&DsqDiff> = dsqs.iter().collect();
        order.sort_by_key(|d| (std::cmp::Reverse(weight(d)), d.id));
        let n = self.cap(order.len(), MAX_DSQS);
        for d in &order[..n] {
            write!(out, "  dsq {:#x} ({})", d.id, esc(&d.origin))?;
            let mut sep = presence(d.change, out)?;
            for f in &d.fields {
                write!(out, "{sep} ")?;
                sep = ",";
                self.field(&f.name, f, true, out)?;
            }
            if !d.fields.is_empty() {
                sep = ";";
            }
            for (what, refs) in [("queued", &d.appeared), ("left", &d.left)] {
                if !refs.is_empty() {
                    write!(out, "{sep} {what} ")?;
                    self.refs(refs, out)?;
                    sep = ";";
                }
            }
            out.write_char('\n')?;
        }
        more(order.len() - n, "DSQs", out)
    }

    /// `a[1], b[2], +N more`.
    fn refs(&self, refs: &[TaskRef], out: &mut dyn Write) -> fmt::Result {
        let n = self.cap(refs.len(), MAX_NAMES);
        let names: Vec<String> = refs[..n].iter().map(task_ref).collect();
        out.write_str(&names.join(", "))?;
        if refs.len() > n {
            write!(out, ", +{} more", refs.len() - n)?;
        }
        Ok(())
    }

    fn cpus(&self, cpus: &[CpuDiff], out: &mut dyn Write) -> fmt::Result {
        if cpus.is_empty() {
            return Ok(());
        }
        out.write_str("CPUs:\n")?;
        let n = self.cap(cpus.len(), MAX_CPUS);
        for c in &cpus[..n] {
            write!(out, "  cpu {}", c.cpu)?;
            let mut sep = presence(c.change, out)?;
            if c.curr_changed {
                let curr = |r: Option<&TaskRef>| r.map_or("-".to_string(), task_ref);
                write!(
                    out,
                    "{sep} curr {} → {}",
                    curr(c.curr_a.as_ref()),
                    curr(c.curr_b.as_ref())
                )?;
                sep = ",";
            }
            for f in &c.fields {
                write!(out, "{sep} ")?;
                self.field(&f.name, f, true, out)?;
                sep = ",";
            }
            out.write_char('\n')?;
        }
        more(cpus.len() - n, "CPUs", out)
    }

    fn programs(&self, progs: &[ProgramDiff], out: &mut dyn Write) -> fmt::Result {
        if progs.is_empty() {
            return Ok(());
        }
        out.write_str("programs:\n")?;
        let runs = |p: &ProgramDiff| {
            p.counters
                .iter()
                .find(|c| c.name == "cnt")
                .and_then(|c| c.delta)
                .unwrap_or(0)
        };
        let mut order: Vec<&ProgramDiff> = progs.iter().collect();
        order.sort_by_key(|p| {
            (
                p.change == Change::Changed,
                std::cmp::Reverse(runs(p).unsigned_abs()),
            )
        });
        let n = self.cap(order.len(), MAX_PROGRAMS);
        for p in &order[..n] {
            write!(out, "  {}", esc(&p.name))?;
            if !p.prog_type.is_empty() {
                write!(out, " ({})", esc(&p.prog_type))?;
            }
            let mut sep = presence(p.change, out)?;
            for c in &p.counters {
                write!(out, "{sep} ")?;
                match c.a.as_deref().xor(c.b.as_deref()) {
                    // Appeared or gone: its counters as they are.
                    Some(v) => write!(out, "{}={}", esc(&c.name), esc(v))?,
                    None => self.field(&c.name, c, true, out)?,
                }
                sep = ",";
            }
            let ns = p
                .counters
                .iter()
                .find(|c| c.name == "nsecs")
                .and_then(|c| c.delta);
            // Counters only grow within one run: a decrease means two runs.
            if let (Some(ns), r) = (ns, runs(p))
                && r > 0
                && ns > 0
            {
                write!(out, "; {} ns/run in between", ns / r)?;
            }
            out.write_char('\n')?;
        }
        more(order.len() - n, "programs", out)
    }

    fn maps(&self, maps: &[MapDiff], out: &mut dyn Write) -> fmt::Result {
        if maps.is_empty() {
            return Ok(());
        }
        out.write_str("maps:\n")?;
        let size = |m: &MapDiff| m.values.len() as u64 + m.values_omitted;
        let mut order: Vec<&MapDiff> = maps.iter().collect();
        order.sort_by_key(|m| (m.change == Change::Changed, std::cmp::Reverse(size(m))));
        let n = self.cap(order.len(), MAX_MAPS);
        for m in &order[..n] {
            self.map(m, out)?;
        }
        more(order.len() - n, "maps", out)
    }

    /// `  name (type): change, change, +N more` on one line (one change a line in `full`).
    fn map(&self, m: &MapDiff, out: &mut dyn Write) -> fmt::Result {
        write!(out, "  {} ({})", esc(&m.name), esc(&m.map_type))?;
        match m.change {
            Change::Appeared => return out.write_str(" appeared\n"),
            Change::Gone => return out.write_str(" gone\n"),
            Change::Changed => {}
        }
        let total = m.values.len() as u64 + m.values_omitted;
        write!(out, ", {total} changes")?;
        if self.o.full {
            out.write_str(":\n")?;
            for v in &m.values {
                out.write_str("    ")?;
                self.value(v, out)?;
                out.write_char('\n')?;
            }
            if m.values_omitted > 0 {
                writeln!(
                    out,
                    "    +{} more (beyond the cap of the diff)",
                    m.values_omitted
                )?;
            }
            return Ok(());
        }
        // As many as fit in the width.
        let mut line = String::new();
        let mut shown = 0;
        for v in &m.values {
            let mut item = String::new();
            self.value(v, &mut item)?;
            if shown > 0 && line.chars().count() + item.chars().count() + 30 > self.o.width {
                break;
            }
            line.push_str(if shown == 0 { ": " } else { "; " });
            line.push_str(&item);
            shown += 1;
        }
        out.write_str(&line)?;
        if total > shown as u64 {
            write!(out, "; +{} more", total - shown as u64)?;
        }
        out.write_char('\n')
    }

    /// `key K cpu N path: a → b (+d)`; the texts are rendered already.
    fn value(&self, v: &ValueChange, out: &mut dyn Write) -> fmt::Result {
        let mut label = Vec::new();
        if let Some(k) = &v.key {
            label.push(format!("key {}", safe(k)));
        }
        if let Some(c) = v.cpu {
            label.push(format!("cpu {c}"));
        }
        if !v.path.is_empty() {
            label.push(safe(&v.path).into_owned());
        }
        out.write_str(&label.join(" "))?;
        let t = |s: &str| self.clip(s);
        change_text(v.a.as_deref().map(t), v.b.as_deref().map(t), v.delta, out)
    }

    fn events(&self, events: &[FieldChange], out: &mut dyn Write) -> fmt::Result {
        if events.is_empty() {
            return Ok(());
        }
        out.write_str("event counters:")?;
        let mut order: Vec<&FieldChange> = events.iter().collect();
        order.sort_by_key(|e| std::cmp::Reverse(e.delta.unwrap_or(0).unsigned_abs()));
        let n = self.cap(order.len(), MAX_EVENTS);
        for (i, e) in order[..n].iter().enumerate() {
            out.write_str(if i == 0 { " " } else { ", " })?;
            self.field(&e.name, e, true, out)?;
        }
        if order.len() > n {
            write!(out, ", +{} more", order.len() - n)?;
        }
        out.write_char('\n')
    }
}

/// How much longer a task waits: the growth of its wait, or its whole wait when it became
/// runnable in between.
fn waits(t: &TaskDiff) -> i128 {
    let Some(w) = &t.wait_jiffies else { return 0 };
    match (w.delta, &w.a, &w.b) {
        (Some(d), _, _) => d,
        (None, None, Some(b)) => b.parse().unwrap_or(0),
        _ => 0,
    }
}

/// `: a → b (+d)`, `: appeared b`, `: gone (was a)`.
fn change_text(
    a: Option<String>,
    b: Option<String>,
    delta: Option<i128>,
    out: &mut dyn Write,
) -> fmt::Result {
    match (a, b) {
        (Some(a), Some(b)) => {
            write!(out, " {a} → {b}")?;
            if let Some(d) = delta {
                write!(out, " ({d:+})")?;
            }
            Ok(())
        }
        (None, Some(b)) => write!(out, ": appeared {b}"),
        (Some(a), None) => write!(out, ": gone (was {a})"),
        (None, None) => out.write_str(": absent"),
    }
}

/// ` appeared` or ` gone` after a name; the separator for what follows.
fn presence(c: Change, out: &mut dyn Write) -> Result<&'static str, fmt::Error> {
    match c {
        Change::Appeared => out.write_str(" appeared").map(|_| ","),
        Change::Gone => out.write_str(" gone").map(|_| ","),
        Change::Changed => Ok(":"),
    }
}

fn more(n: usize, what: &str, out: &mut dyn Write) -> fmt::Result {
    if n > 0 {
        writeln!(out, "  +{n} more {what} (--full lists them)")?;
    }
    Ok(())
}

fn name(pid: i32, comm: &str) -> String {
    format!("{}[{pid}]", esc(comm))
}

fn task_ref(r: &TaskRef) -> String {
    match (r.pid, &r.comm) {
        (Some(pid), Some(comm)) => name(pid, comm),
        (Some(pid), None) => format!("[{pid}]"),
        _ => format!("{:#x}", r.task_kva),
    }
}

/// `dsq 0x101 (user) on cpu 1`, `running on cpu 0`, `runnable on cpu 1`, `not queued`.
fn place(p: Option<&TaskPlace>) -> String {
    let Some(p) = p else {
        return "not queued".to_string();
    };
    let cpu = p.cpu.map(|c| format!("cpu {c}"));
    match (&p.dsq, p.running, cpu) {
        (_, true, Some(c)) => format!("running on {c}"),
        (Some(id), _, c) => {
            let origin = p
                .dsq_origin
                .as_deref()
                .map(|o| format!(" ({})", esc(o)))
                .unwrap_or_default();
            let on = c.map(|c| format!(" on {c}")).unwrap_or_default();
            format!("dsq {id:#x}{origin}{on}")
        }
        (None, _, Some(c)) => format!("runnable on {c}"),
        (None, _, None) => "not queued".to_string(),
    }
}
