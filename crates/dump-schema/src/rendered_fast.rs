//! Compact JSON of whole reports, faster where they are big: rendered values.
//!
//! A real scheduler's dump is megabytes of [`RenderedValue`]s (one `.bss` array alone held
//! 135,168 integers), and through serde every one of them is a map of three to five entries:
//! each key and each `kind` escaped on its own, a dozen small writes per value. [`to_writer`]
//! serializes a report with `serde_json` as usual, except that every rendered value that
//! serde reaches has its object finished here: serde writes its `{`, its `kind` and its `}`,
//! and everything between (its whole subtree) is appended straight to the same buffer, keys
//! as constants. The bytes are those of `serde_json::to_writer` — the tests compare
//! them on real and generated reports — including its number and string forms (written by
//! `serde_json` itself) and the `unsupported` stand-ins of [`crate::rendered_serde`].
//!
//! The buffer is this thread's, set while [`to_writer`] runs: `serde_json` writes every
//! byte into its writer as it serializes (it buffers nothing), so bytes appended between
//! two of its writes land exactly there. A subtree written here cannot reach the output
//! (only serde's writes can), so what it writes is cut into [`DRAIN_AT`]-byte chunks kept
//! aside until serde's next write hands them over: memory for one top-level value's JSON at
//! most (the renderer caps a value's size), reused from value to value. Anywhere else (`serde_json::to_string`, pretty
//! output, other formats) rendered values serialize through serde as before.

use std::cell::RefCell;
use std::io::Write;

use serde::Serialize;

use crate::rendered::{RenderedMember, RenderedValue, child_json_step};
use crate::rendered_serde::written_as_unsupported;

/// The buffer is handed to the output when it holds this much.
const DRAIN_AT: usize = 64 << 10;

/// This thread's output buffer while a [`to_writer`] runs.
#[derive(Default)]
struct Sink {
    /// Bytes not yet handed over, in order after `done`.
    cur: Vec<u8>,
    /// Full chunks written by a subtree, in order, waiting for serde's next write.
    done: Vec<Vec<u8>>,
    /// Emptied chunks, for reuse.
    spare: Vec<Vec<u8>>,
}

impl Sink {
    /// At a boundary between two values of a subtree: sets `cur` aside when full.
    #[inline]
    fn boundary(&mut self) {
        if self.cur.len() >= DRAIN_AT {
            let next = self.spare.pop().unwrap_or_default();
            self.done.push(std::mem::replace(&mut self.cur, next));
        }
    }

    /// Hands the chunks set aside, then `cur` when it holds at least `at` bytes, to `out`.
    fn drain(&mut self, out: &mut dyn Write, at: usize) -> std::io::Result<()> {
        for mut c in std::mem::take(&mut self.done) {
            let r = out.write_all(&c);
            c.clear();
            self.spare.push(c);
            r?;
        }
        if !self.cur.is_empty() && self.cur.len() >= at {
            let r = out.write_all(&self.cur);
            self.cur.clear();
            r?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Sink {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.cur
    }
}

impl std::ops::DerefMut for Sink {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.cur
    }
}

thread_local! {
    /// The buffer of the [`to_writer`] running on this thread, if any.
    static BUF: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Writes `value` as compact JSON into `out`, byte for byte what `serde_json::to_writer`
/// writes, faster for rendered values (see the module documentation). `out` receives
/// chunks of about 64 KiB; it is not flushed.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    let Some(_active) = Active::enter() else {
        // Called from inside another one's serialization: the plain way.
        return serde_json::to_writer(out, value).map_err(std::io::Error::from);
    };
    let mut front = Front { out };
    serde_json::to_writer(&mut front, value).map_err(std::io::Error::from)?;
    front.drain(1)
}

/// This thread's buffer, present while it lives.
struct Active;

impl Active {
    fn enter() -> Option<Active> {
        BUF.with_borrow_mut(|b| {
            if b.is_some() {
                return None;
            }
            *b = Some(Sink {
                cur: Vec::with_capacity(DRAIN_AT * 2),
                ..Sink::default()
            });
            Some(Active)
        })
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        BUF.with_borrow_mut(|b| *b = None);
    }
}

/// What `serde_json` writes into: this thread's buffer, drained into `out`.
struct Front<'a> {
    out: &'a mut dyn Write,
}

impl Front<'_> {
    /// Hands what is set aside, then the buffer when it holds at least `at` bytes, to
    /// `out`.
    fn drain(&mut self, at: usize) -> std::io::Result<()> {
        BUF.with_borrow_mut(|b| match b {
            Some(b) => b.drain(self.out, at),
            None => Ok(()),
        })
    }
}

impl Write for Front<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        BUF.with_borrow_mut(|b| match b {
            Some(b) => {
                b.cur.extend_from_slice(data);
                if b.cur.len() >= DRAIN_AT || !b.done.is_empty() {
                    b.drain(self.out, DRAIN_AT)?;
                }
                Ok(data.len())
            }
            None => Err(std::io::Error::other("rendered_fast: no buffer")),
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// For `SerAt`: when a [`to_writer`] runs on this thread, appends the fields of `v`'s
/// object that follow `kind` (a value at JSON level `level`, neither too deep nor a
/// non-finite float) and returns `true`; the caller has written the object's `{` and
/// `kind` and writes its `}`.
pub(crate) fn write_rest(v: &RenderedValue, level: usize) -> bool {
    BUF.with_borrow_mut(|b| match b {
        Some(b) => {
            rest(b, v, level);
            true
        }
        None => false,
    })
}

/// A number, string, `null` or bool the way `serde_json` writes it.
fn scalar<T: Serialize + ?Sized>(b: &mut Vec<u8>, x: &T) {
    // Writing into a `Vec` cannot fail, nor can these types' serialization.
    let _ = serde_json::to_writer(b, x);
}

/// `head` (the keys up to `bits`), `bits`, then `,"value":` and `value`.
fn bits_value<V: Serialize>(b: &mut Sink, head: &[u8], bits: &u32, value: &V) {
    b.extend_from_slice(head);
    scalar(b, bits);
    b.extend_from_slice(br#","value":"#);
    scalar(b, value);
}

/// `v` as a whole object at JSON level `level` (what `SerAt(v, level)` writes).
fn value(b: &mut Sink, v: &RenderedValue, level: usize) {
    // The commonest leaves in one piece.
    match v {
        RenderedValue::Uint { bits, value } => {
            bits_value(b, br#"{"kind":"uint","bits":"#, bits, value);
            b.push(b'}');
            return;
        }
        RenderedValue::Int { bits, value } => {
            bits_value(b, br#"{"kind":"int","bits":"#, bits, value);
            b.push(b'}');
            return;
        }
        RenderedValue::Char { value } => {
            b.extend_from_slice(br#"{"kind":"char","value":"#);
            scalar(b, value);
            b.push(b'}');
            return;
        }
        _ => {}
    }
    if let Some(reason) = written_as_unsupported(v, level) {
        b.extend_from_slice(br#"{"kind":"unsupported","reason":"#);
        scalar(b, reason);
        b.push(b'}');
        return;
    }
    b.extend_from_slice(br#"{"kind":""#);
    b.extend_from_slice(v.kind().as_bytes());
    b.push(b'"');
    rest(b, v, level);
    b.push(b'}');
}

/// The fields after `kind` of `v`'s object at JSON level `level`, each with its leading
/// comma.
fn rest(b: &mut Sink, v: &RenderedValue, level: usize) {
    use RenderedValue as V;
    let child_level = level + child_json_step(v);
    match v {
        V::Int { bits, value } => bits_value(b, br#","bits":"#, bits, value),
        V::Uint { bits, value } => bits_value(b, br#","bits":"#, bits, value),
        V::Bool { value } => {
            b.extend_from_slice(br#","value":"#);
            scalar(b, value);
        }
        V::Char { value } => {
            b.extend_from_slice(br#","value":"#);
            scalar(b, value);
        }
        V::Float { bits, value } => bits_value(b, br#","bits":"#, bits, value),
        V::Enum {
            bits,
            value,
            variant,
            is_signed,
        } => {
            bits_value(b, br#","bits":"#, bits, value);
            b.extend_from_slice(br#","variant":"#);
            scalar(b, variant);
            b.extend_from_slice(br#","is_signed":"#);
            scalar(b, is_signed);
        }
        V::Struct { type_name, members } => {
            b.extend_from_slice(br#","type_name":"#);
            scalar(b, type_name);
            list(b, br#","members":["#, members, |b, m| {
                member(b, m, level + 2)
            });
        }
        V::Array { len, elements } => {
            b.extend_from_slice(br#","len":"#);
            scalar(b, len);
            list(b, br#","elements":["#, elements, |b, e| {
                value(b, e, child_level)
            });
        }
        V::CpuList { cpus } => {
            b.extend_from_slice(br#","cpus":"#);
            scalar(b, cpus);
        }
        V::Ptr {
            value: p,
            deref,
            deref_skipped_reason,
            cast_annotation,
        } => {
            b.extend_from_slice(br#","value":"#);
            scalar(b, p);
            if let Some(d) = deref {
                b.extend_from_slice(br#","deref":"#);
                value(b, d, child_level);
            }
            if let Some(r) = deref_skipped_reason {
                b.extend_from_slice(br#","deref_skipped_reason":"#);
                scalar(b, r);
            }
            if let Some(c) = cast_annotation {
                b.extend_from_slice(br#","cast_annotation":"#);
                scalar(b, c);
            }
        }
        V::Bytes { hex } => {
            b.extend_from_slice(br#","hex":"#);
            scalar(b, hex);
        }
        V::Truncated {
            needed,
            had,
            partial,
        } => {
            b.extend_from_slice(br#","needed":"#);
            scalar(b, needed);
            b.extend_from_slice(br#","had":"#);
            scalar(b, had);
            b.extend_from_slice(br#","partial":"#);
            value(b, partial, child_level);
        }
        V::Unsupported { reason } => {
            b.extend_from_slice(br#","reason":"#);
            scalar(b, reason);
        }
    }
}

/// `head` (a key and `[`), `items` written by `each` with commas between, then `]`.
fn list<T>(b: &mut Sink, head: &[u8], items: &[T], mut each: impl FnMut(&mut Sink, &T)) {
    b.extend_from_slice(head);
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        each(b, x);
        b.boundary();
    }
    b.push(b']');
}

/// A member object at JSON level `level` (its value one level deeper).
fn member(b: &mut Sink, m: &RenderedMember, level: usize) {
    b.extend_from_slice(br#"{"name":"#);
    scalar(b, &m.name);
    b.extend_from_slice(br#","value":"#);
    value(b, &m.value, level + 1);
    b.push(b'}');
}
