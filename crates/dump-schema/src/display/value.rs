//! Human rendering of [`RenderedValue`].
//!
//! Two forms: *inline* (`Type{f=v, g=w}`), used whenever the whole line fits in [`WIDTH`]
//! columns, and *block* (`Type:` then one `f=v` per line, 2 more spaces per level). Recursion
//! stops at [`MAX_DISPLAY_DEPTH`] levels with `…`, so any value prints without exhausting the
//! stack.

use std::fmt::Write;

use crate::rendered::MAX_DISPLAY_DEPTH;
use crate::{RenderedMember, RenderedValue};

/// Lines are kept within this many columns where the content allows.
pub(crate) const WIDTH: usize = 120;

/// Printed where a value nests deeper than [`MAX_DISPLAY_DEPTH`].
const ELIDED: &str = "…";

/// Trailing runs of at least this many zero elements are summarized.
const ZERO_RUN: usize = 4;

/// Whether `v` would be hidden as a struct member: every scalar in it is zero/false/empty.
/// Iterative, bounded by the value's size.
pub(crate) fn is_zero(v: &RenderedValue) -> bool {
    use RenderedValue as V;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        let zero = match v {
            V::Int { value, .. } => *value == 0,
            V::Uint { value, .. } => *value == 0,
            V::Bool { value } => !*value,
            V::Char { value } => *value == 0,
            V::Float { value, .. } => *value == 0.0,
            // A named enumerator is a state worth seeing, even at 0.
            V::Enum { value, variant, .. } => *value == 0 && variant.is_none(),
            V::Struct { members, .. } => {
                stack.extend(members.iter().map(|m| &m.value));
                true
            }
            V::Array { elements, .. } => {
                stack.extend(elements.iter());
                true
            }
            V::CpuList { cpus } => cpus.is_empty(),
            V::Ptr {
                value,
                deref,
                deref_skipped_reason,
                cast_annotation,
            } => {
                *value == 0
                    && deref.is_none()
                    && deref_skipped_reason.is_none()
                    && cast_annotation.is_none()
            }
            V::Bytes { hex } => hex.split(' ').all(|b| b.is_empty() || b == "00"),
            V::Truncated { .. } | V::Unsupported { .. } => false,
        };
        if !zero {
            return false;
        }
    }
    true
}

/// Whether `v` prints as one short token (no nested struct, array or followed pointer).
pub(crate) fn is_scalar(v: &RenderedValue) -> bool {
    use RenderedValue as V;
    match v {
        V::Struct { .. } | V::Array { .. } | V::Truncated { .. } => false,
        V::Ptr { deref, .. } => deref.is_none(),
        _ => true,
    }
}

/// Members to print: anonymous struct members flattened into their parent, zero-valued ones
/// dropped (unless `keep_zero`).
pub(crate) fn visible_members(
    members: &[RenderedMember],
    keep_zero: bool,
) -> Vec<(&str, &RenderedValue)> {
    let mut out = Vec::new();
    // (members, next index) frames; depth bounded by MAX_DISPLAY_DEPTH.
    let mut stack: Vec<(&[RenderedMember], usize)> = vec![(members, 0)];
    while let Some((ms, i)) = stack.pop() {
        let Some(m) = ms.get(i) else { continue };
        stack.push((ms, i + 1));
        if m.name.is_empty()
            && let RenderedValue::Struct { members, .. } = &m.value
            && stack.len() < MAX_DISPLAY_DEPTH
        {
            stack.push((members, 0));
            continue;
        }
        if keep_zero || !is_zero(&m.value) {
            let name = if m.name.is_empty() { "<anon>" } else { &m.name };
            out.push((name, &m.value));
        }
    }
    out
}

/// Appends the inline form of `v` to `out`. Returns `false` as soon as `out` grows past
/// `limit` bytes (the caller then falls back to the block form); `out` is then garbage.
pub(crate) fn inline(v: &RenderedValue, depth: usize, out: &mut String, limit: usize) -> bool {
    use RenderedValue as V;
    if depth >= MAX_DISPLAY_DEPTH {
        out.push_str(ELIDED);
        return out.len() <= limit;
    }
    match v {
        V::Int { value, .. } => write!(out, "{value}").unwrap(),
        V::Uint { value, .. } => write!(out, "{value}").unwrap(),
        V::Bool { value } => write!(out, "{value}").unwrap(),
        V::Char { value } => push_char(out, *value),
        // Shortest form that reads back as the same value of the rendered width.
        V::Float { bits: 32, value } if f64::from(*value as f32) == *value => {
            write!(out, "{:?}", *value as f32).unwrap()
        }
        V::Float { value, .. } => write!(out, "{value:?}").unwrap(),
        V::Enum { value, variant, .. } => match variant {
            Some(name) => write!(out, "{name} ({value})").unwrap(),
            None => write!(out, "{value}").unwrap(),
        },
        V::Struct { type_name, members } => {
            out.push_str(type_name.as_deref().unwrap_or(""));
            out.push('{');
            for (i, (name, mv)) in visible_members(members, false).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push('=');
                if out.len() > limit || !inline(mv, depth + 1, out, limit) {
                    return false;
                }
            }
            out.push('}');
        }
        V::Array { len, elements } => {
            if let Some(s) = char_string(elements) {
                push_quoted(out, &s);
            } else if elements.iter().all(is_zero) {
                write!(out, "[all {} zero]", elements.len()).unwrap();
            } else {
                let shown = shown_elements(elements);
                out.push('[');
                for (i, e) in elements[..shown].iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if out.len() > limit || !inline(e, depth + 1, out, limit) {
                        return false;
                    }
                }
                if shown < elements.len() {
                    write!(out, ", …+{} zero", elements.len() - shown).unwrap();
                }
                if *len > elements.len() {
                    write!(out, ", …+{} not rendered", len - elements.len()).unwrap();
                }
                out.push(']');
            }
        }
        V::CpuList { cpus } => write!(out, "cpus={{{cpus}}}").unwrap(),
        V::Ptr {
            value,
            deref,
            deref_skipped_reason,
            cast_annotation,
        } => {
            ptr_head(out, *value, cast_annotation.as_deref());
            if let Some(d) = deref {
                out.push_str(" → ");
                return inline(d, depth + 1, out, limit);
            }
            if let Some(r) = deref_skipped_reason {
                push_skip(out, r);
            }
        }
        V::Bytes { hex } => out.push_str(hex),
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            if !inline(partial, depth + 1, out, limit) {
                return false;
            }
            write!(out, " [truncated: had {had} of {needed} bytes]").unwrap();
        }
        V::Unsupported { reason } => write!(out, "<unsupported: {reason}>").unwrap(),
    }
    out.len() <= limit
}

fn ptr_head(out: &mut String, value: u64, cast: Option<&str>) {
    write!(out, "{value:#x}").unwrap();
    if let Some(c) = cast {
        write!(out, " (cast→{c})").unwrap();
    }
}

fn push_skip(out: &mut String, reason: &str) {
    if reason.starts_with(crate::reasons::DEREF_CYCLE) {
        out.push_str(" [cycle]");
    } else {
        write!(out, " [chase: {reason}]").unwrap();
    }
}

fn push_char(out: &mut String, c: u8) {
    if c.is_ascii_graphic() || c == b' ' {
        out.push('\'');
        if c == b'\'' || c == b'\\' {
            out.push('\\');
        }
        out.push(c as char);
        out.push('\'');
    } else {
        write!(out, "{c}").unwrap();
    }
}

/// A `char[]` as the C string it holds (up to the first NUL); `None` unless every element is
/// a `char`.
fn char_string(elements: &[RenderedValue]) -> Option<Vec<u8>> {
    if elements.is_empty() {
        return None;
    }
    let mut s = Vec::with_capacity(elements.len());
    for e in elements {
        match e {
            RenderedValue::Char { value } => s.push(*value),
            _ => return None,
        }
    }
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    s.truncate(end);
    Some(s)
}

fn push_quoted(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => write!(out, "\\x{b:02x}").unwrap(),
        }
    }
    out.push('"');
}

/// How many leading elements to print: a trailing run of [`ZERO_RUN`] or more zero elements
/// is summarized instead.
fn shown_elements(elements: &[RenderedValue]) -> usize {
    let zeros = elements.iter().rev().take_while(|e| is_zero(e)).count();
    if zeros >= ZERO_RUN {
        elements.len() - zeros
    } else {
        elements.len()
    }
}

/// Writes `v` as lines: `indent` spaces, then `head` (e.g. `name=`), then the value — inline
/// when it fits in [`WIDTH`] columns, else in block form with children 2 columns further in.
pub(crate) fn write_block(
    v: &RenderedValue,
    depth: usize,
    indent: usize,
    head: &str,
    out: &mut String,
) {
    use RenderedValue as V;
    let start = out.len();
    push_indent(out, indent);
    out.push_str(head);
    if depth >= MAX_DISPLAY_DEPTH {
        out.push_str(ELIDED);
        out.push('\n');
        return;
    }
    let line_start = out.len();
    let limit = line_start + WIDTH.saturating_sub(indent + head.chars().count());
    if inline(v, depth, out, limit) {
        out.push('\n');
        return;
    }
    out.truncate(line_start);
    match v {
        V::Struct { type_name, members } => {
            out.push_str(type_name.as_deref().unwrap_or("<anon>"));
            out.push_str(":\n");
            for (name, mv) in visible_members(members, false) {
                write_block(mv, depth + 1, indent + 2, &format!("{name}="), out);
            }
        }
        V::Array { len, elements } => {
            writeln!(out, "[{len}]:").unwrap();
            let mut i = 0;
            while i < elements.len() {
                let run = elements[i..].iter().take_while(|e| is_zero(e)).count();
                if run >= 2 {
                    push_indent(out, indent + 2);
                    writeln!(out, "[{}..={}] zero", i, i + run - 1).unwrap();
                    i += run;
                    continue;
                }
                write_block(&elements[i], depth + 1, indent + 2, &format!("[{i}]="), out);
                i += 1;
            }
            if *len > elements.len() {
                push_indent(out, indent + 2);
                writeln!(out, "…+{} not rendered", len - elements.len()).unwrap();
            }
        }
        V::Ptr {
            value,
            deref: Some(d),
            cast_annotation,
            ..
        } => {
            let mut h = String::new();
            h.push_str(head);
            ptr_head(&mut h, *value, cast_annotation.as_deref());
            h.push_str(" → ");
            out.truncate(start);
            write_block(d, depth + 1, indent, &h, out);
        }
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            writeln!(out, "[truncated: had {had} of {needed} bytes]").unwrap();
            write_block(partial, depth + 1, indent + 2, "", out);
        }
        // Scalars are as short as they get: print them inline even past the width.
        _ => {
            inline(v, depth, out, usize::MAX);
            out.push('\n');
        }
    }
}

pub(crate) fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// The inline form of `v` with no width limit (for table cells and one-line summaries).
pub(crate) fn inline_string(v: &RenderedValue) -> String {
    let mut s = String::new();
    inline(v, 0, &mut s, usize::MAX);
    s
}

impl std::fmt::Display for RenderedValue {
    /// Inline when it fits in 120 columns, else the block form (multi-line, no trailing
    /// newline).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        write_block(self, 0, 0, "", &mut s);
        f.write_str(s.trim_end_matches('\n'))
    }
}

impl std::fmt::Display for RenderedMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let name = if self.name.is_empty() {
            "<anon>"
        } else {
            &self.name
        };
        write_block(&self.value, 0, 0, &format!("{name}="), &mut s);
        f.write_str(s.trim_end_matches('\n'))
    }
}
