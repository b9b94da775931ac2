//! Maps: header fields, values member by member and element by element, entries by key.

use super::tasks::{Side, Snapshots};
use super::{Change, MAX_MAP_CHANGES, MapDiff, ValueChange, pair_by_key};
use crate::display::text::esc;
use crate::display::value::{char_string, inline_string, is_scalar, visible_members};
use crate::rendered::MAX_DISPLAY_DEPTH;
use crate::{
    DisplayOptions, FailureDumpEntry, FailureDumpMap, FailureDumpReport, RenderedValue, map_type,
    parse_hex,
};

/// Longest value text kept in a change (longer ones end in `…`).
const MAX_TEXT: usize = 4096;

/// Every map that appeared, went, or whose content changed, in `b`'s order, then the ones
/// gone.
pub(super) fn maps(
    ctx: &Snapshots<'_>,
    a: &FailureDumpReport,
    b: &FailureDumpReport,
) -> Vec<MapDiff> {
    let mut out = Vec::new();
    for pair in pair_by_key(&a.maps, &b.maps, |m| m.name.clone()) {
        let (x, y) = (pair.0.map(|i| &a.maps[i]), pair.1.map(|j| &b.maps[j]));
        let Some(m) = y.or(x) else { continue };
        let change = match (x, y) {
            (Some(x), Some(y)) => {
                let mut s = Sink::default();
                map_content(ctx, x, y, &mut s);
                if s.values.is_empty() && s.omitted == 0 {
                    continue;
                }
                out.push(map_diff(m, Change::Changed, s));
                continue;
            }
            (None, _) => Change::Appeared,
            (_, None) => Change::Gone,
        };
        out.push(map_diff(m, change, Sink::default()));
    }
    out
}

fn map_diff(m: &FailureDumpMap, change: Change, s: Sink) -> MapDiff {
    MapDiff {
        name: m.name.clone(),
        map_type: type_name(m.map_type),
        change,
        values: s.values,
        values_omitted: s.omitted,
    }
}

fn type_name(t: u32) -> String {
    map_type::name(t).map_or_else(|| t.to_string(), str::to_string)
}

/// The changes of one map, up to [`MAX_MAP_CHANGES`]; the rest counted.
#[derive(Default)]
struct Sink {
    values: Vec<ValueChange>,
    omitted: u64,
}

impl Sink {
    fn push(&mut self, v: ValueChange) {
        if self.values.len() < MAX_MAP_CHANGES {
            self.values.push(v);
        } else {
            self.omitted += 1;
        }
    }

    /// A change of a header field or a position (no key).
    fn field(&mut self, path: &str, a: impl ToString, b: impl ToString, delta: Option<i128>) {
        let (a, b) = (a.to_string(), b.to_string());
        if a != b {
            self.push(ValueChange {
                path: path.to_string(),
                a: Some(a),
                b: Some(b),
                delta,
                ..Default::default()
            });
        }
    }

    fn num(&mut self, path: &str, a: u64, b: u64) {
        self.field(path, a, b, Some(i128::from(b) - i128::from(a)));
    }
}

/// Where in a map a value is: its key (as labelled) and CPU.
#[derive(Clone, Copy, Default)]
struct At<'k> {
    key: Option<&'k str>,
    cpu: Option<u32>,
}

fn map_content(ctx: &Snapshots<'_>, x: &FailureDumpMap, y: &FailureDumpMap, s: &mut Sink) {
    s.field(
        "map_type",
        type_name(x.map_type),
        type_name(y.map_type),
        None,
    );
    s.num("value_size", x.value_size.into(), y.value_size.into());
    s.num("max_entries", x.max_entries.into(), y.max_entries.into());
    let err = |m: &FailureDumpMap| m.error.clone().unwrap_or_default();
    s.field("error", err(x), err(y), None);
    let mut path = String::new();
    values(
        s,
        At::default(),
        &mut path,
        x.value.as_ref(),
        y.value.as_ref(),
    );
    entries(ctx, x, y, s);
    array_entries(x, y, s);
    percpu(x, y, s);
    positions(x, y, s);
}

/// Hash-like entries, by key (task storage: by owner).
fn entries(ctx: &Snapshots<'_>, x: &FailureDumpMap, y: &FailureDumpMap, s: &mut Sink) {
    let storage = y.map_type == map_type::TASK_STORAGE;
    let keyed = |side: &Side<'_>, m: &FailureDumpMap| -> Vec<(String, String)> {
        m.entries
            .iter()
            .map(|e| entry_key(side, storage, e))
            .collect()
    };
    let (ka, kb) = (keyed(&ctx.a, x), keyed(&ctx.b, y));
    for pair in pair_by_key(&ka, &kb, |k| k.0.clone()) {
        let (p, q) = (pair.0.map(|i| &x.entries[i]), pair.1.map(|j| &y.entries[j]));
        let label = match pair {
            (_, Some(j)) => &kb[j].1,
            (Some(i), None) => &ka[i].1,
            (None, None) => continue,
        };
        let at = At {
            key: Some(label),
            cpu: None,
        };
        let bytes = |e: Option<&FailureDumpEntry>| {
            e.filter(|e| e.value.is_none())
                .map(|e| RenderedValue::Bytes {
                    hex: e.value_hex.clone(),
                })
        };
        let (hp, hq) = (bytes(p), bytes(q));
        fn value(e: Option<&FailureDumpEntry>) -> Option<&RenderedValue> {
            e.and_then(|e| e.value.as_ref())
        }
        let mut path = String::new();
        values(
            s,
            at,
            &mut path,
            value(p).or(hp.as_ref()),
            value(q).or(hq.as_ref()),
        );
        fn payload(e: Option<&FailureDumpEntry>) -> Option<&RenderedValue> {
            e.and_then(|e| e.payload.as_ref())
        }
        if p.is_some() && q.is_some() {
            let mut path = String::from("payload");
            values(s, at, &mut path, payload(p), payload(q));
        }
    }
}

/// `(identity, label)` of a hash-like entry's key: the owner task of a task storage entry
/// when the snapshot has it (`comm[pid]`), else the key's bytes (labelled as rendered).
fn entry_key(side: &Side<'_>, storage: bool, e: &FailureDumpEntry) -> (String, String) {
    if storage
        && let Some(bytes) = parse_hex(&e.key_hex)
        && let Ok(b) = <[u8; 8]>::try_from(bytes.as_slice())
        && let Some(t) = side.task_at(u64::from_le_bytes(b))
    {
        let id = format!("task {} {}", t.pid, if t.pid == 0 { &t.comm } else { "" });
        return (id, format!("{}[{}]", esc(&t.comm), t.pid));
    }
    let label = match &e.key {
        Some(k) => inline_string(k, &DisplayOptions::default()),
        None => e.key_hex.clone(),
    };
    (format!("bytes {}", e.key_hex), label)
}

fn array_entries(x: &FailureDumpMap, y: &FailureDumpMap, s: &mut Sink) {
    let (ea, eb) = (&x.array_entries, &y.array_entries);
    for pair in pair_by_key(ea, eb, |e| e.key) {
        let (p, q) = (pair.0.map(|i| &ea[i]), pair.1.map(|j| &eb[j]));
        let Some(e) = q.or(p) else { continue };
        let key = e.key.to_string();
        let at = At {
            key: Some(&key),
            cpu: None,
        };
        fn v(e: Option<&crate::FailureDumpArrayEntry>) -> Option<&RenderedValue> {
            e.and_then(|e| e.value.as_ref())
        }
        values(s, at, &mut String::new(), v(p), v(q));
    }
}

/// Per-CPU array and hash entries: by key, then CPU by CPU.
fn percpu(x: &FailureDumpMap, y: &FailureDumpMap, s: &mut Sink) {
    let (pa, pb) = (&x.percpu_entries, &y.percpu_entries);
    for pair in pair_by_key(pa, pb, |e| e.key) {
        let (p, q) = (pair.0.map(|i| &pa[i]), pair.1.map(|j| &pb[j]));
        let Some(e) = q.or(p) else { continue };
        fn cpus(e: Option<&crate::FailureDumpPercpuEntry>) -> &[Option<RenderedValue>] {
            e.map_or(&[][..], |e| &e.per_cpu[..])
        }
        per_cpu_values(s, &e.key.to_string(), cpus(p), cpus(q));
    }
    let (ha, hb) = (&x.percpu_hash_entries, &y.percpu_hash_entries);
    for pair in pair_by_key(ha, hb, |e| e.key_hex.clone()) {
        let (p, q) = (pair.0.map(|i| &ha[i]), pair.1.map(|j| &hb[j]));
        let Some(e) = q.or(p) else { continue };
        let key = match &e.key {
            Some(k) => inline_string(k, &DisplayOptions::default()),
            None => e.key_hex.clone(),
        };
        fn cpus(e: Option<&crate::FailureDumpPercpuHashEntry>) -> &[Option<RenderedValue>] {
            e.map_or(&[][..], |e| &e.per_cpu[..])
        }
        per_cpu_values(s, &key, cpus(p), cpus(q));
    }
}

fn per_cpu_values<'v>(
    s: &mut Sink,
    key: &str,
    a: &'v [Option<RenderedValue>],
    b: &'v [Option<RenderedValue>],
) {
    for cpu in 0..a.len().max(b.len()) {
        let at = At {
            key: Some(key),
            cpu: Some(cpu as u32),
        };
        let get = |v: &'v [Option<RenderedValue>]| v.get(cpu).and_then(|v| v.as_ref());
        values(s, at, &mut String::new(), get(a), get(b));
    }
}

/// Ring buffer positions, arena pages, stack traces, fd array slots.
fn positions(x: &FailureDumpMap, y: &FailureDumpMap, s: &mut Sink) {
    if let (Some(p), Some(q)) = (&x.ringbuf, &y.ringbuf) {
        s.num("ringbuf.capacity", p.capacity, q.capacity);
        s.num("ringbuf.consumer_pos", p.consumer_pos, q.consumer_pos);
        s.num("ringbuf.producer_pos", p.producer_pos, q.producer_pos);
        s.num("ringbuf.pending_pos", p.pending_pos, q.pending_pos);
        s.num("ringbuf.pending_bytes", p.pending_bytes, q.pending_bytes);
    }
    if let (Some(p), Some(q)) = (&x.arena, &y.arena) {
        s.num("arena.pages", p.pages.len() as u64, q.pages.len() as u64);
        s.num("arena.declared_pages", p.declared_pages, q.declared_pages);
        for pair in pair_by_key(&p.pages, &q.pages, |g| g.user_addr) {
            if let (Some(i), Some(j)) = pair {
                let (g, h) = (&p.pages[i].bytes, &q.pages[j].bytes);
                let differ =
                    g.iter().zip(h).filter(|(u, v)| u != v).count() + g.len().abs_diff(h.len());
                if differ > 0 {
                    let path = format!("arena.page[{:#x}]", p.pages[i].user_addr);
                    s.field(
                        &path,
                        format!("{} bytes", g.len()),
                        format!("{differ} bytes differ"),
                        None,
                    );
                }
            }
        }
    }
    if let (Some(p), Some(q)) = (&x.stack_trace, &y.stack_trace) {
        s.num(
            "stack_trace.stacks",
            p.entries.len() as u64,
            q.entries.len() as u64,
        );
        s.num(
            "stack_trace.buckets_unreadable",
            p.buckets_unreadable.into(),
            q.buckets_unreadable.into(),
        );
    }
    if let (Some(p), Some(q)) = (&x.fd_array, &y.fd_array) {
        s.num("fd_array.populated", p.populated.into(), q.populated.into());
        s.field(
            "fd_array.indices",
            format!("{:?}", p.indices),
            format!("{:?}", q.indices),
            None,
        );
        s.num(
            "fd_array.unreadable",
            p.unreadable.into(),
            q.unreadable.into(),
        );
    }
}

/// The differences between two optional values at `path` (a value on one side only is one
/// change).
fn values(
    s: &mut Sink,
    at: At<'_>,
    path: &mut String,
    a: Option<&RenderedValue>,
    b: Option<&RenderedValue>,
) {
    match (a, b) {
        (Some(x), Some(y)) => value(s, at, path, x, y, 0),
        (None, None) => {}
        (x, y) => s.push(leaf(at, path, x.map(text), y.map(text), None)),
    }
}

/// The differences between `a` and `b`: structs member by member (by name), arrays element
/// by element, followed pointers into their targets; anything else as one change.
fn value(
    s: &mut Sink,
    at: At<'_>,
    path: &mut String,
    a: &RenderedValue,
    b: &RenderedValue,
    depth: usize,
) {
    use RenderedValue as V;
    if a == b {
        return;
    }
    let len = path.len();
    match (a, b) {
        _ if depth >= MAX_DISPLAY_DEPTH => s.push(change(at, path, a, b)),
        (
            V::Struct {
                type_name: t1,
                members: m1,
            },
            V::Struct {
                type_name: t2,
                members: m2,
            },
        ) if t1 == t2 => {
            let (va, vb) = (visible_members(m1, true), visible_members(m2, true));
            for pair in pair_by_key(&va, &vb, |m| m.0) {
                let (x, y) = (pair.0.map(|i| va[i]), pair.1.map(|j| vb[j]));
                let Some((name, _)) = y.or(x) else { continue };
                if !(path.is_empty() || path.ends_with("->")) {
                    path.push('.');
                }
                path.push_str(&esc(name).to_string());
                match (x, y) {
                    (Some(x), Some(y)) => value(s, at, path, x.1, y.1, depth + 1),
                    (x, y) => values(s, at, path, x.map(|m| m.1), y.map(|m| m.1)),
                }
                path.truncate(len);
            }
        }
        (V::Array { elements: e1, .. }, V::Array { elements: e2, .. })
            if char_string(e1).is_none() && char_string(e2).is_none() =>
        {
            array(s, at, path, e1, e2, depth)
        }
        (
            V::Ptr {
                value: p1,
                deref: Some(d1),
                ..
            },
            V::Ptr {
                value: p2,
                deref: Some(d2),
                ..
            },
        ) if p1 == p2 => {
            path.push_str("->");
            value(s, at, path, d1, d2, depth + 1);
            path.truncate(len);
        }
        _ => s.push(change(at, path, a, b)),
    }
}

/// Element by element; consecutive scalar elements that changed the same way fold into
/// one `[i..j]` change.
fn array(
    s: &mut Sink,
    at: At<'_>,
    path: &mut String,
    a: &[RenderedValue],
    b: &[RenderedValue],
    depth: usize,
) {
    let len = path.len();
    // The run being folded: first and last index, and its change.
    let mut run: Option<(usize, usize, ValueChange)> = None;
    let flush = |s: &mut Sink, path: &mut String, run: &mut Option<(usize, usize, ValueChange)>| {
        if let Some((i, j, mut c)) = run.take() {
            c.path = if i == j {
                format!("{path}[{i}]")
            } else {
                format!("{path}[{i}..{j}]")
            };
            s.push(c);
        }
    };
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x == y {
            flush(s, path, &mut run);
            continue;
        }
        let scalar = x.is_none_or(is_scalar) && y.is_none_or(is_scalar);
        if !scalar {
            flush(s, path, &mut run);
            path.push_str(&format!("[{i}]"));
            match (x, y) {
                (Some(x), Some(y)) => value(s, at, path, x, y, depth + 1),
                (x, y) => values(s, at, path, x, y),
            }
            path.truncate(len);
            continue;
        }
        let c = leaf(
            at,
            "",
            x.map(text),
            y.map(text),
            x.zip(y).and_then(|(x, y)| delta(x, y)),
        );
        match &mut run {
            Some((_, j, r)) if *j + 1 == i && r.a == c.a && r.b == c.b => *j = i,
            _ => {
                flush(s, path, &mut run);
                run = Some((i, i, c));
            }
        }
    }
    flush(s, path, &mut run);
}

fn change(at: At<'_>, path: &str, a: &RenderedValue, b: &RenderedValue) -> ValueChange {
    leaf(at, path, Some(text(a)), Some(text(b)), delta(a, b))
}

fn leaf(
    at: At<'_>,
    path: &str,
    a: Option<String>,
    b: Option<String>,
    delta: Option<i128>,
) -> ValueChange {
    ValueChange {
        key: at.key.map(str::to_string),
        cpu: at.cpu,
        path: path.to_string(),
        a,
        b,
        delta,
    }
}

/// `b - a` of two integers.
fn delta(a: &RenderedValue, b: &RenderedValue) -> Option<i128> {
    let n = |v: &RenderedValue| match v {
        RenderedValue::Int { value, .. } => Some(i128::from(*value)),
        RenderedValue::Uint { value, .. } => Some(i128::from(*value)),
        _ => None,
    };
    Some(n(b)? - n(a)?)
}

/// A value as the rendering writes it inline, at most [`MAX_TEXT`] bytes.
fn text(v: &RenderedValue) -> String {
    let mut t = inline_string(v, &DisplayOptions::default());
    if t.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
        t.push('…');
    }
    t
}
