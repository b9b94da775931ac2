//! Human rendering of [`RenderedValue`].
//!
//! Two forms: *inline* (`Type{f=v, g=w}`), used whenever the whole line fits in [`WIDTH`]
//! columns, and *block* (`Type:` then one `f=v` per line, 2 more spaces per level). Recursion
//! stops at [`MAX_DISPLAY_DEPTH`] levels with `…`, so any value prints without exhausting the
//! stack.

use std::fmt::{self, Write};

use super::text::{Bounded, Out, spaces};
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

/// Writes the inline form of `v`. Into a [`Bounded`] buffer, an error means the line got too
/// long (the caller then falls back to the block form).
pub(crate) fn inline(v: &RenderedValue, depth: usize, out: &mut dyn Write) -> fmt::Result {
    use RenderedValue as V;
    if depth >= MAX_DISPLAY_DEPTH {
        return out.write_str(ELIDED);
    }
    match v {
        V::Int { value, .. } => write!(out, "{value}"),
        V::Uint { value, .. } => write!(out, "{value}"),
        V::Bool { value } => write!(out, "{value}"),
        V::Char { value } => write_char_value(out, *value),
        // Shortest form that reads back as the same value of the rendered width.
        V::Float { bits: 32, value } if f64::from(*value as f32) == *value => {
            write!(out, "{:?}", *value as f32)
        }
        V::Float { value, .. } => write!(out, "{value:?}"),
        V::Enum { value, variant, .. } => match variant {
            Some(name) => write!(out, "{name} ({value})"),
            None => write!(out, "{value}"),
        },
        V::Struct { type_name, members } => {
            inline_struct(type_name.as_deref(), members, depth, out)
        }
        V::Array { len, elements } => inline_array(*len, elements, depth, out),
        V::CpuList { cpus } => write!(out, "cpus={{{cpus}}}"),
        V::Ptr {
            value,
            deref,
            deref_skipped_reason,
            cast_annotation,
        } => {
            ptr_head(out, *value, cast_annotation.as_deref())?;
            if let Some(d) = deref {
                out.write_str(" → ")?;
                return inline(d, depth + 1, out);
            }
            match deref_skipped_reason {
                Some(r) => write_skip(out, r),
                None => Ok(()),
            }
        }
        V::Bytes { hex } => out.write_str(hex),
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            inline(partial, depth + 1, out)?;
            write!(out, " [truncated: had {had} of {needed} bytes]")
        }
        V::Unsupported { reason } => write!(out, "<unsupported: {reason}>"),
    }
}

fn inline_struct(
    type_name: Option<&str>,
    members: &[RenderedMember],
    depth: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    out.write_str(type_name.unwrap_or(""))?;
    out.write_char('{')?;
    for (i, (name, mv)) in visible_members(members, false).into_iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        out.write_str(name)?;
        out.write_char('=')?;
        inline(mv, depth + 1, out)?;
    }
    out.write_char('}')
}

fn inline_array(
    len: usize,
    elements: &[RenderedValue],
    depth: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    if let Some(s) = char_string(elements) {
        return write_quoted(out, &s);
    }
    if elements.iter().all(is_zero) {
        return write!(out, "[all {} zero]", elements.len());
    }
    let shown = shown_elements(elements);
    out.write_char('[')?;
    for (i, e) in elements[..shown].iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        inline(e, depth + 1, out)?;
    }
    if shown < elements.len() {
        write!(out, ", …+{} zero", elements.len() - shown)?;
    }
    if len > elements.len() {
        write!(out, ", …+{} not rendered", len - elements.len())?;
    }
    out.write_char(']')
}

fn ptr_head(out: &mut dyn Write, value: u64, cast: Option<&str>) -> fmt::Result {
    write!(out, "{value:#x}")?;
    if let Some(c) = cast {
        write!(out, " (cast→{c})")?;
    }
    Ok(())
}

fn write_skip(out: &mut dyn Write, reason: &str) -> fmt::Result {
    if reason.starts_with(crate::reasons::DEREF_CYCLE) {
        out.write_str(" [cycle]")
    } else {
        write!(out, " [chase: {reason}]")
    }
}

fn write_char_value(out: &mut dyn Write, c: u8) -> fmt::Result {
    if c.is_ascii_graphic() || c == b' ' {
        out.write_char('\'')?;
        if c == b'\'' || c == b'\\' {
            out.write_char('\\')?;
        }
        out.write_char(c as char)?;
        out.write_char('\'')
    } else {
        write!(out, "{c}")
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

fn write_quoted(out: &mut dyn Write, s: &[u8]) -> fmt::Result {
    out.write_char('"')?;
    for &b in s {
        match b {
            b'"' => out.write_str("\\\"")?,
            b'\\' => out.write_str("\\\\")?,
            0x20..=0x7e => out.write_char(b as char)?,
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    out.write_char('"')
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

/// What a rendering carries along: a buffer reused by every attempt at the inline form.
#[derive(Default)]
pub(crate) struct Cx {
    scratch: String,
}

/// Writes `v` as lines: `indent` spaces, then `head` (e.g. `name=`), then the value — inline
/// when it fits in [`WIDTH`] columns, else in block form with children 2 columns further in.
pub(crate) fn write_block(
    cx: &mut Cx,
    v: &RenderedValue,
    depth: usize,
    indent: usize,
    head: &str,
    out: &mut dyn Write,
) -> fmt::Result {
    use RenderedValue as V;
    if depth >= MAX_DISPLAY_DEPTH {
        spaces(out, indent)?;
        return writeln!(out, "{head}{ELIDED}");
    }
    let limit = WIDTH.saturating_sub(indent + head.chars().count());
    let mut line = std::mem::take(&mut cx.scratch);
    let fits = inline(v, depth, &mut Bounded::new(&mut line, limit)).is_ok();
    if fits {
        spaces(out, indent)?;
        writeln!(out, "{head}{line}")?;
    }
    cx.scratch = line;
    if fits {
        return Ok(());
    }
    if let V::Ptr {
        value,
        deref: Some(d),
        cast_annotation,
        ..
    } = v
    {
        // The pointer joins the head of its pointee's block.
        let mut h = String::from(head);
        ptr_head(&mut h, *value, cast_annotation.as_deref())?;
        h.push_str(" → ");
        return write_block(cx, d, depth + 1, indent, &h, out);
    }
    spaces(out, indent)?;
    out.write_str(head)?;
    match v {
        V::Struct { type_name, members } => {
            writeln!(out, "{}:", type_name.as_deref().unwrap_or("<anon>"))?;
            for (name, mv) in visible_members(members, false) {
                write_block(cx, mv, depth + 1, indent + 2, &format!("{name}="), out)?;
            }
            Ok(())
        }
        V::Array { len, elements } => block_array(cx, *len, elements, depth, indent, out),
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            writeln!(out, "[truncated: had {had} of {needed} bytes]")?;
            write_block(cx, partial, depth + 1, indent + 2, "", out)
        }
        // Scalars are as short as they get: print them inline even past the width.
        _ => {
            inline(v, depth, out)?;
            out.write_char('\n')
        }
    }
}

/// The lines of an array in block form, after its head.
fn block_array(
    cx: &mut Cx,
    len: usize,
    elements: &[RenderedValue],
    depth: usize,
    indent: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    writeln!(out, "[{len}]:")?;
    let mut i = 0;
    while i < elements.len() {
        let run = elements[i..].iter().take_while(|e| is_zero(e)).count();
        if run >= 2 {
            spaces(out, indent + 2)?;
            writeln!(out, "[{}..={}] zero", i, i + run - 1)?;
            i += run;
            continue;
        }
        write_block(
            cx,
            &elements[i],
            depth + 1,
            indent + 2,
            &format!("[{i}]="),
            out,
        )?;
        i += 1;
    }
    if len > elements.len() {
        spaces(out, indent + 2)?;
        writeln!(out, "…+{} not rendered", len - elements.len())?;
    }
    Ok(())
}

/// The inline form of `v`, with no width limit (for table cells and one-line summaries).
pub(crate) struct Inline<'a>(pub(crate) &'a RenderedValue);

impl fmt::Display for Inline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        inline(self.0, 0, f)
    }
}

/// The inline form of `v` as a `String` (table cells are measured before they are written).
pub(crate) fn inline_string(v: &RenderedValue) -> String {
    Inline(v).to_string()
}

impl fmt::Display for RenderedValue {
    /// Inline when it fits in 120 columns, else the block form (multi-line, no trailing
    /// newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Out::new(f);
        write_block(&mut Cx::default(), self, 0, 0, "", &mut out)?;
        out.finish()
    }
}

impl fmt::Display for RenderedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<anon>"
        } else {
            &self.name
        };
        let mut out = Out::new(f);
        write_block(
            &mut Cx::default(),
            &self.value,
            0,
            0,
            &format!("{name}="),
            &mut out,
        )?;
        out.finish()
    }
}
