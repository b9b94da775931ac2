//! Human rendering of [`RenderedValue`].
//!
//! Two forms: *inline* (`Type{f=v, g=w}`), used whenever the whole line fits in the width
//! ([`DisplayOptions::width`]), and *block* (`Type:` then one `f=v` per line, 2 more spaces per
//! level; a data section's scalars in aligned columns). Recursion stops at
//! [`MAX_DISPLAY_DEPTH`] levels with `…`, so any value prints without exhausting the stack.
//!
//! Unless [`DisplayOptions::full`], zero-valued struct members are hidden and runs of equal
//! array elements are folded (`0 ×4093` inline, `[3..4095]=0` in block form).

use std::fmt::{self, Write};

use super::DisplayOptions;
use super::layout::{Cell, write_grid};
use super::names::{NO_NAMES, Names};
use super::text::{Bounded, Out, esc, quoted, spaces};
use crate::rendered::MAX_DISPLAY_DEPTH;
use crate::{RenderedMember, RenderedValue};

/// Printed where a value nests deeper than [`MAX_DISPLAY_DEPTH`].
const ELIDED: &str = "…";

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
pub(crate) fn inline(
    v: &RenderedValue,
    depth: usize,
    o: &Style<'_>,
    out: &mut dyn Write,
) -> fmt::Result {
    use RenderedValue as V;
    if depth >= MAX_DISPLAY_DEPTH {
        return out.write_str(ELIDED);
    }
    match v {
        // A 64-bit integer holding a captured task's address is that task.
        V::Int { bits: 64, value } if o.names.task(*value as u64).is_some() => {
            o.names.write_task(*value as u64, out)
        }
        V::Uint { bits: 64, value } if o.names.task(*value).is_some() => {
            o.names.write_task(*value, out)
        }
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
            Some(name) => write!(out, "{} ({value})", esc(name)),
            None => write!(out, "{value}"),
        },
        V::Struct { type_name, members } => {
            inline_struct(type_name.as_deref(), members, depth, o, out)
        }
        V::Array { len, elements } => inline_array(*len, elements, depth, o, out),
        V::CpuList { cpus } => write!(out, "cpus={{{}}}", esc(cpus)),
        V::Ptr {
            value,
            deref,
            deref_skipped_reason,
            cast_annotation,
        } => {
            ptr_head(out, *value, cast_annotation.as_deref(), o.names)?;
            if let Some(d) = deref {
                out.write_str(" → ")?;
                return inline(d, depth + 1, o, out);
            }
            match deref_skipped_reason {
                Some(r) => write_skip(out, r),
                None => Ok(()),
            }
        }
        V::Bytes { hex } => write_bytes(out, hex, o.full),
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            inline(partial, depth + 1, o, out)?;
            write!(out, " [truncated: had {had} of {needed} bytes]")
        }
        V::Unsupported { reason } => write!(out, "<unsupported: {}>", esc(reason)),
    }
}

fn inline_struct(
    type_name: Option<&str>,
    members: &[RenderedMember],
    depth: usize,
    o: &Style<'_>,
    out: &mut dyn Write,
) -> fmt::Result {
    esc(type_name.unwrap_or("")).write_to(out)?;
    out.write_char('{')?;
    for (i, (name, mv)) in visible_members(members, o.full).into_iter().enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        esc(name).write_to(out)?;
        out.write_char('=')?;
        inline(mv, depth + 1, o, out)?;
    }
    out.write_char('}')
}

fn inline_array(
    len: usize,
    elements: &[RenderedValue],
    depth: usize,
    o: &Style<'_>,
    out: &mut dyn Write,
) -> fmt::Result {
    if let Some(s) = char_string(elements) {
        write!(out, "{}", quoted(&s))?;
        return not_rendered(out, len, elements.len(), " ");
    }
    if !o.full && elements.iter().all(is_zero) {
        write!(out, "[all {} zero]", elements.len())?;
        return not_rendered(out, len, elements.len(), " ");
    }
    out.write_char('[')?;
    let mut i = 0;
    while let Some(e) = elements.get(i) {
        if i > 0 {
            out.write_str(", ")?;
        }
        inline(e, depth + 1, o, out)?;
        let run = run_len(elements, i, o);
        if run >= 2 {
            write!(out, " ×{run}")?;
        }
        i += run;
    }
    not_rendered(out, len, elements.len(), if i > 0 { ", " } else { "" })?;
    out.write_char(']')
}

/// Bytes as their hex string; unless `full`, a run of four or more zero bytes at the end as
/// `00 ×N` (a 4 KiB buffer holding a short string stays one short line).
fn write_bytes(out: &mut dyn Write, hex: &str, full: bool) -> fmt::Result {
    // Each byte is "xx" and bytes are separated by one space.
    let zeros = hex.rsplit(' ').take_while(|b| *b == "00").count();
    if full || zeros < 4 || hex.len() % 3 != 2 {
        return write!(out, "{}", esc(hex));
    }
    let keep = hex.len().saturating_sub(zeros * 3);
    if keep > 0 {
        write!(out, "{} ", esc(&hex[..keep]))?;
    }
    write!(out, "00 ×{zeros}")
}

/// `…+N not rendered` after `sep`, when the array declared more elements than it holds.
fn not_rendered(out: &mut dyn Write, len: usize, held: usize, sep: &str) -> fmt::Result {
    if len > held {
        write!(out, "{sep}…+{} not rendered", len - held)?;
    }
    Ok(())
}

/// How many elements from `i` on equal `elements[i]` (1 when nothing is folded).
fn run_len(elements: &[RenderedValue], i: usize, o: &Style<'_>) -> usize {
    if o.full {
        return 1;
    }
    let first = &elements[i];
    1 + elements[i + 1..].iter().take_while(|e| *e == first).count()
}

/// The address, or `comm[pid]` when it is a captured task.
fn ptr_head(out: &mut dyn Write, value: u64, cast: Option<&str>, names: &Names) -> fmt::Result {
    names.write_task(value, out)?;
    if let Some(c) = cast {
        write!(out, " (cast→{})", esc(c))?;
    }
    Ok(())
}

fn write_skip(out: &mut dyn Write, reason: &str) -> fmt::Result {
    if reason.starts_with(crate::reasons::DEREF_CYCLE) {
        out.write_str(" [cycle]")
    } else {
        write!(out, " [chase: {}]", esc(reason))
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

/// The text a `char[]` holds: its bytes up to the last non-NUL one (a NUL before that stays,
/// escaped, so that nothing the buffer holds is hidden). `None` unless every element is a
/// `char` (the BTF's `char`: btf-walk renders `signed char`/`unsigned char`/`u8` as numbers).
pub(crate) fn char_string(elements: &[RenderedValue]) -> Option<Vec<u8>> {
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
    let end = s.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    s.truncate(end);
    Some(s)
}

/// Whether `v` is a `char[]`, printed as one string whatever its length.
pub(crate) fn is_text(v: &RenderedValue) -> bool {
    matches!(v, RenderedValue::Array { elements, .. } if char_string(elements).is_some())
}

/// How values are written: [`DisplayOptions`]' fields, and the names addresses resolve to.
#[derive(Clone, Copy)]
pub(crate) struct Style<'n> {
    pub(crate) full: bool,
    pub(crate) width: usize,
    pub(crate) names: &'n Names<'n>,
}

/// What a rendering carries along: the style, and a buffer reused by every attempt at the
/// inline form.
pub(crate) struct Cx<'n> {
    pub(crate) opts: Style<'n>,
    scratch: String,
}

impl<'n> Cx<'n> {
    pub(crate) fn new(opts: &DisplayOptions, names: &'n Names<'n>) -> Self {
        Self {
            opts: Style {
                full: opts.full,
                width: opts.width,
                names,
            },
            scratch: String::new(),
        }
    }

    /// The inline form of `v` when `head` and it fit in the width at `indent`.
    fn try_inline(
        &mut self,
        v: &RenderedValue,
        depth: usize,
        indent: usize,
        head: &str,
    ) -> Option<&str> {
        let limit = self
            .opts
            .width
            .saturating_sub(indent + head.chars().count());
        let fits = inline(
            v,
            depth,
            &self.opts,
            &mut Bounded::new(&mut self.scratch, limit),
        )
        .is_ok();
        fits.then_some(self.scratch.as_str())
    }
}

/// Writes `v` as lines: `indent` spaces, then `head` (e.g. `name=`), then the value — inline
/// when it fits in the width, else in block form with children 2 columns further in.
pub(crate) fn write_block(
    cx: &mut Cx<'_>,
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
    if let Some(line) = cx.try_inline(v, depth, indent, head) {
        spaces(out, indent)?;
        return writeln!(out, "{head}{line}");
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
        ptr_head(&mut h, *value, cast_annotation.as_deref(), cx.opts.names)?;
        h.push_str(" → ");
        return write_block(cx, d, depth + 1, indent, &h, out);
    }
    spaces(out, indent)?;
    out.write_str(head)?;
    match v {
        V::Struct { type_name, members } => {
            block_struct(cx, type_name.as_deref(), members, depth, indent, out)
        }
        V::Array { len, elements } if !is_text(v) => {
            block_array(cx, *len, elements, depth, indent, out)
        }
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            writeln!(out, "[truncated: had {had} of {needed} bytes]")?;
            write_block(cx, partial, depth + 1, indent + 2, "", out)
        }
        // Scalars and strings are as short as they get: print them inline even past the width.
        _ => {
            inline(v, depth, &cx.opts, out)?;
            out.write_char('\n')
        }
    }
}

/// A struct in block form, after its head: `Type:` then its members. A data section (`.bss`,
/// `.data`, `.rodata`, …: BTF names them with a leading dot) lays its scalars out in aligned
/// columns first.
fn block_struct(
    cx: &mut Cx<'_>,
    type_name: Option<&str>,
    members: &[RenderedMember],
    depth: usize,
    indent: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    let type_name = type_name.unwrap_or("<anon>");
    writeln!(out, "{}:", esc(type_name))?;
    let visible = visible_members(members, cx.opts.full);
    let (grid, rest): (Vec<_>, Vec<_>) = if type_name.starts_with('.') {
        visible.into_iter().partition(|(_, v)| is_scalar(v))
    } else {
        (Vec::new(), visible)
    };
    if !grid.is_empty() {
        let cells: Vec<Cell> = grid
            .iter()
            .map(|(name, v)| Cell::new(esc(name).to_string(), styled_string(v, &cx.opts)))
            .collect();
        write_grid(&cells, indent + 2, cx.opts.width, out)?;
    }
    for (name, mv) in rest {
        write_block(
            cx,
            mv,
            depth + 1,
            indent + 2,
            &format!("{}=", esc(name)),
            out,
        )?;
    }
    Ok(())
}

/// The lines of an array in block form, after its head: `[len]:` then one line per element,
/// a run of equal elements as one `[a..b]=` line (bounds inclusive).
fn block_array(
    cx: &mut Cx<'_>,
    len: usize,
    elements: &[RenderedValue],
    depth: usize,
    indent: usize,
    out: &mut dyn Write,
) -> fmt::Result {
    writeln!(out, "[{len}]:")?;
    let mut i = 0;
    while let Some(e) = elements.get(i) {
        let run = run_len(elements, i, &cx.opts);
        let head = if run >= 2 {
            format!("[{i}..{}]=", i + run - 1)
        } else {
            format!("[{i}]=")
        };
        write_block(cx, e, depth + 1, indent + 2, &head, out)?;
        i += run;
    }
    if len > elements.len() {
        spaces(out, indent + 2)?;
        writeln!(out, "…+{} not rendered", len - elements.len())?;
    }
    Ok(())
}

/// The inline form of a value, with no width limit.
struct Inline<'a>(&'a RenderedValue, &'a Style<'a>);

impl fmt::Display for Inline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        inline(self.0, 0, self.1, f)
    }
}

/// The inline form of `v` as a `String` in style `o` (table cells are measured before they
/// are written).
pub(crate) fn styled_string(v: &RenderedValue, o: &Style<'_>) -> String {
    Inline(v, o).to_string()
}

/// The inline form of `v` as a `String`, no address named.
pub(crate) fn inline_string(v: &RenderedValue, o: &DisplayOptions) -> String {
    let style = Style {
        full: o.full,
        width: o.width,
        names: &NO_NAMES,
    };
    styled_string(v, &style)
}

impl fmt::Display for RenderedMember {
    /// `name=` and the value as [`RenderedValue`]'s `Display` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "<anon>"
        } else {
            &self.name
        };
        let head = format!("{}=", esc(name));
        let opts = DisplayOptions::default();
        let mut out = Out::new(f);
        write_block(
            &mut Cx::new(&opts, &NO_NAMES),
            &self.value,
            0,
            0,
            &head,
            &mut out,
        )?;
        out.finish()
    }
}
