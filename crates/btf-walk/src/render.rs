//! Rendering guest memory through BTF into [`RenderedValue`].
//!
//! Contract: rendering never fails and never panics. What cannot be shown becomes
//! `unsupported` with a reason; fewer bytes than the type needs become `truncated` with the
//! part that fit; pointers are followed only within [`RenderOptions::max_deref_depth`], and
//! a pointer to an object already rendered in this [`Renderer`] is reported as
//! [`dump_schema::reasons::DEREF_CYCLE`] instead of being followed again. Work is bounded by
//! [`RenderOptions::max_values`] and by the wire format's nesting limit
//! ([`dump_schema::MAX_JSON_DEPTH`]).

use std::collections::HashSet;

use dump_schema::{MAX_JSON_DEPTH, RenderedMember, RenderedValue, reasons};
use guest_mem::{Kva, KvaRead};

use crate::btf::{Btf, normalize};
use crate::offsets::{bits_le, sign_extend};
use crate::table::{Kind, TypeId};

/// `deref_skipped_reason` when the dereference depth limit is reached.
pub const REASON_DEPTH: &str = "dereference depth limit reached";
/// `deref_skipped_reason` for `void *`, function pointers and pointers to opaque types.
pub const REASON_OPAQUE: &str = "pointee has no layout (void, function or forward declaration)";
/// Reason of `unsupported` once [`RenderOptions::max_values`] values were produced.
pub const REASON_BUDGET: &str = "render budget exhausted";
/// Reason of `unsupported` for values nested deeper than the wire format allows.
pub const REASON_TOO_DEEP: &str = "nested deeper than the wire format allows";

/// How much to render.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Pointers followed from the top value: 0 renders pointers as addresses only.
    pub max_deref_depth: u32,
    /// Array elements rendered (the wire format's cap is 4096); `len` keeps the declared length.
    pub array_cap: usize,
    /// Render `struct cpumask` / `cpumask_t` as a `cpu_list` range list.
    pub cpumask_as_list: bool,
    /// CPUs shown in a cpumask (the guest's `nr_cpu_ids`); `None` uses every bit of the mask.
    pub nr_cpus: Option<u32>,
    /// Largest object read from guest memory for one dereference.
    pub max_deref_bytes: u64,
    /// Most rendered values (all kinds, all nesting levels) one [`Renderer`] produces before
    /// further values become `unsupported` with [`REASON_BUDGET`]. The default, 131,072,
    /// holds an array of 4096 structs of 30 members and bounds one value's JSON to about
    /// 10 MB however its type nests (a few bytes of memory can describe a huge tree).
    pub max_values: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            max_deref_depth: 0,
            array_cap: 4096,
            cpumask_as_list: true,
            nr_cpus: None,
            max_deref_bytes: 1 << 20,
            max_values: 1 << 17,
        }
    }
}

/// Gives pointer values a name (e.g. the kernel symbol a function pointer points at),
/// written as `cast_annotation`.
pub trait Symbolize {
    fn symbolize(&self, addr: u64) -> Option<String>;
}

impl<F: Fn(u64) -> Option<String>> Symbolize for F {
    fn symbolize(&self, addr: u64) -> Option<String> {
        self(addr)
    }
}

/// Renders values of one BTF, reading pointees through an optional guest memory.
///
/// The visited set (objects dereferenced so far) and the value budget live as long as the
/// renderer: reuse one renderer to share them across related values (e.g. all entries of
/// a map), or call [`Renderer::reset`] between unrelated ones.
pub struct Renderer<'a> {
    btf: &'a Btf,
    mem: Option<&'a dyn KvaRead>,
    opts: RenderOptions,
    symbolizer: Option<&'a dyn Symbolize>,
    visited: HashSet<(u64, TypeId)>,
    values: usize,
}

impl<'a> Renderer<'a> {
    /// A renderer that can follow pointers through `mem`.
    pub fn new(btf: &'a Btf, mem: &'a dyn KvaRead, opts: RenderOptions) -> Self {
        Renderer {
            btf,
            mem: Some(mem),
            opts,
            symbolizer: None,
            visited: HashSet::new(),
            values: 0,
        }
    }

    /// A renderer for bytes only; pointers are shown as addresses.
    pub fn bytes_only(btf: &'a Btf, opts: RenderOptions) -> Self {
        Renderer {
            btf,
            mem: None,
            opts,
            symbolizer: None,
            visited: HashSet::new(),
            values: 0,
        }
    }

    /// Annotates function pointers with names from `s`.
    pub fn with_symbolizer(mut self, s: &'a dyn Symbolize) -> Self {
        self.symbolizer = Some(s);
        self
    }

    /// Forgets visited objects and resets the value budget.
    pub fn reset(&mut self) {
        self.visited.clear();
        self.values = 0;
    }

    /// Values produced since creation or the last [`Renderer::reset`].
    pub fn values_rendered(&self) -> usize {
        self.values
    }

    /// Renders a value of type `ty` held in `bytes` (e.g. a map value read by the caller).
    pub fn render_bytes(&mut self, ty: TypeId, bytes: &[u8]) -> RenderedValue {
        self.top(ty, bytes, 0, 0)
    }

    /// Renders the object of type `ty` at `kva` (e.g. `*scx_root`); the object counts as
    /// visited, so pointers back to it are reported as cycles.
    pub fn render_at(&mut self, ty: TypeId, kva: Kva) -> RenderedValue {
        let Some(mem) = self.mem else {
            return unsupported("no guest memory to read from");
        };
        let size = match self.btf.size_of(ty) {
            Ok(s) => s,
            Err(e) => return unsupported(&format!("type has no size: {e}")),
        };
        if size > self.opts.max_deref_bytes {
            return unsupported(&format!(
                "object of {size} bytes exceeds the {}-byte read cap",
                self.opts.max_deref_bytes
            ));
        }
        let mut buf = vec![0u8; size as usize];
        if let Err(e) = mem.read_kva(kva, &mut buf) {
            return unsupported(&format!("read failed: {e}"));
        }
        self.visited.insert((kva.0, self.strip_or(ty)));
        self.top(ty, &buf, 0, 0)
    }

    fn strip_or(&self, ty: TypeId) -> TypeId {
        self.btf.strip(ty).unwrap_or(ty)
    }

    /// Entry for a value with its own byte slice: handles `truncated`.
    fn top(&mut self, ty: TypeId, bytes: &[u8], depth: u32, jd: usize) -> RenderedValue {
        let needed = match self.btf.size_of(ty) {
            Ok(n) => n,
            Err(e) => return unsupported(&e.to_string()),
        };
        if (bytes.len() as u64) < needed {
            if jd + 2 > MAX_JSON_DEPTH {
                return unsupported(REASON_TOO_DEEP);
            }
            let partial = self.value(ty, bytes, depth, jd + 1);
            return RenderedValue::Truncated {
                needed: needed.min(usize::MAX as u64) as usize,
                had: bytes.len(),
                partial: Box::new(partial),
            };
        }
        self.value(ty, &bytes[..needed as usize], depth, jd)
    }

    /// Renders `ty` from `bytes`, which may be shorter than the type (then only what fits
    /// is shown).
    fn value(&mut self, ty: TypeId, bytes: &[u8], depth: u32, jd: usize) -> RenderedValue {
        if self.values >= self.opts.max_values {
            return unsupported(REASON_BUDGET);
        }
        self.values += 1;
        if jd + 1 > MAX_JSON_DEPTH {
            return unsupported(REASON_TOO_DEEP);
        }
        if self.opts.cpumask_as_list && self.is_cpumask(ty) {
            return self.cpumask(bytes);
        }
        let sid = match self.btf.strip(ty) {
            Ok(s) => s,
            Err(e) => return unsupported(&e.to_string()),
        };
        let kind = match self.btf.kind(sid) {
            Ok(k) => k,
            Err(e) => return unsupported(&e.to_string()),
        };
        match kind {
            Kind::Int { .. } => match IntLayout::of(self.btf, sid) {
                Some(l) => l.render(bytes),
                None => unsupported("not an integer"),
            },
            Kind::Float { size } => match (size, bytes.len()) {
                (4, 4..) => RenderedValue::Float {
                    bits: 32,
                    value: f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as f64,
                },
                (8, 8..) => RenderedValue::Float {
                    bits: 64,
                    value: f64::from_le_bytes(first8(bytes)),
                },
                _ => raw_bytes(bytes, size as usize),
            },
            Kind::Enum { size, signed, .. } => {
                if !(1..=8).contains(&size) || bytes.len() < size as usize {
                    return raw_bytes(bytes, size as usize);
                }
                let raw = bits_le(&bytes[..size as usize], 0, size * 8);
                let v = normalize(raw, size, signed);
                RenderedValue::Enum {
                    bits: size * 8,
                    value: v as i64,
                    variant: self.btf.enum_variant_name(sid, v).map(str::to_string),
                    is_signed: signed,
                }
            }
            // A struct's members sit 3 JSON levels below it, an array's elements 2; the
            // container itself must give way when its children could not be written.
            Kind::Struct { .. } | Kind::Datasec { .. } if jd + 4 > MAX_JSON_DEPTH => {
                unsupported(REASON_TOO_DEEP)
            }
            Kind::Array { .. } if jd + 3 > MAX_JSON_DEPTH => unsupported(REASON_TOO_DEEP),
            Kind::Ptr { target } => self.pointer(target, bytes, depth, jd),
            Kind::Array { elem, len } => self.array(elem, len, bytes, depth, jd),
            Kind::Struct { .. } => self.aggregate(sid, bytes, depth, jd),
            Kind::Datasec { .. } => self.datasec(sid, bytes, depth, jd),
            Kind::Var { target } => self.value(target, bytes, depth, jd),
            k => unsupported(&format!("cannot render a {}", k.describe())),
        }
    }

    fn is_cpumask(&self, ty: TypeId) -> bool {
        let mut id = ty;
        for _ in 0..8 {
            let Ok(kind) = self.btf.kind(id) else {
                return false;
            };
            let name = self.btf.name(id).unwrap_or("");
            match kind {
                Kind::Typedef { target } => {
                    if name == "cpumask_t" {
                        return true;
                    }
                    id = target;
                }
                Kind::Qualifier { target, .. } => id = target,
                Kind::Struct {
                    is_union: false, ..
                } => return name == "cpumask",
                _ => return false,
            }
        }
        false
    }

    fn cpumask(&self, bytes: &[u8]) -> RenderedValue {
        let max_bits = (bytes.len() as u64) * 8;
        let nbits = self
            .opts
            .nr_cpus
            .map_or(max_bits, |n| (n as u64).min(max_bits));
        RenderedValue::CpuList {
            cpus: cpu_list(bytes, nbits),
        }
    }

    fn pointer(&mut self, target: TypeId, bytes: &[u8], depth: u32, jd: usize) -> RenderedValue {
        if bytes.len() < 8 {
            return raw_bytes(bytes, 8);
        }
        let value = u64::from_le_bytes(first8(bytes));
        let pointee = self.strip_or(target);
        let pkind = self.btf.kind(pointee).ok();
        let is_fn = matches!(pkind, Some(Kind::FuncProto));
        let cast_annotation = match (self.symbolizer, value) {
            (Some(s), v) if v != 0 && is_fn => s.symbolize(v),
            _ => None,
        };
        let mut deref = None;
        let mut reason = None;
        if value != 0 && self.opts.max_deref_depth > 0 && self.mem.is_some() {
            if depth >= self.opts.max_deref_depth {
                reason = Some(REASON_DEPTH.to_string());
            } else if matches!(
                pkind,
                None | Some(Kind::Void | Kind::FuncProto | Kind::Fwd { .. } | Kind::Func { .. })
            ) {
                reason = Some(REASON_OPAQUE.to_string());
            } else if self.visited.contains(&(value, pointee)) {
                reason = Some(reasons::DEREF_CYCLE.to_string());
            } else if jd + 2 > MAX_JSON_DEPTH {
                reason = Some(REASON_TOO_DEEP.to_string());
            } else {
                match self.read_pointee(target, value) {
                    Ok(buf) => {
                        self.visited.insert((value, pointee));
                        deref = Some(Box::new(self.top(target, &buf, depth + 1, jd + 1)));
                    }
                    Err(why) => reason = Some(why),
                }
            }
        }
        RenderedValue::Ptr {
            value,
            deref,
            deref_skipped_reason: reason,
            cast_annotation,
        }
    }

    fn read_pointee(&self, ty: TypeId, addr: u64) -> Result<Vec<u8>, String> {
        let mem = self.mem.ok_or("no guest memory")?;
        let size = self
            .btf
            .size_of(ty)
            .map_err(|e| format!("pointee has no size: {e}"))?;
        if size > self.opts.max_deref_bytes {
            return Err(format!(
                "pointee of {size} bytes exceeds the {}-byte read cap",
                self.opts.max_deref_bytes
            ));
        }
        let mut buf = vec![0u8; size as usize];
        mem.read_kva(Kva(addr), &mut buf)
            .map_err(|e| format!("read failed: {e}"))?;
        Ok(buf)
    }

    fn array(
        &mut self,
        elem: TypeId,
        len: u32,
        bytes: &[u8],
        depth: u32,
        jd: usize,
    ) -> RenderedValue {
        let esize = match self.btf.size_of(elem) {
            Ok(s) => s,
            Err(e) => return unsupported(&format!("array element: {e}")),
        };
        let mut elements = Vec::new();
        if esize == 0 {
            // Zero-sized elements (empty structs) carry nothing; render none of them.
            return RenderedValue::Array {
                len: len as usize,
                elements,
            };
        }
        let shown = (len as u64)
            .min(self.opts.array_cap as u64)
            .min(bytes.len() as u64 / esize);
        elements.reserve(shown as usize);
        if let Some(layout) = self.int_elements(elem, jd + 2) {
            // An array of integers (the bulk of real schedulers' maps): the element type
            // is looked up once, not per element; the same values as `value` gives.
            for i in 0..shown {
                if self.values >= self.opts.max_values {
                    elements.push(unsupported(REASON_BUDGET));
                    break;
                }
                self.values += 1;
                let off = (i * esize) as usize;
                let b = &bytes[off..off + esize as usize];
                elements.push(layout.render(b));
            }
            return RenderedValue::Array {
                len: len as usize,
                elements,
            };
        }
        for i in 0..shown {
            let off = (i * esize) as usize;
            let v = self.value(elem, &bytes[off..off + esize as usize], depth, jd + 2);
            let over =
                matches!(&v, RenderedValue::Unsupported { reason } if reason == REASON_BUDGET);
            elements.push(v);
            if over {
                break;
            }
        }
        RenderedValue::Array {
            len: len as usize,
            elements,
        }
    }

    /// The integer layout `value` renders elements of type `elem` with, at JSON depth
    /// `jd`, when that is an integer (not a cpumask, not too deep); `None` otherwise.
    fn int_elements(&self, elem: TypeId, jd: usize) -> Option<IntLayout> {
        if jd + 1 > MAX_JSON_DEPTH || (self.opts.cpumask_as_list && self.is_cpumask(elem)) {
            return None;
        }
        IntLayout::of(self.btf, self.btf.strip(elem).ok()?)
    }

    fn aggregate(&mut self, sid: TypeId, bytes: &[u8], depth: u32, jd: usize) -> RenderedValue {
        let btf = self.btf;
        let name = btf.name(sid).unwrap_or("");
        let type_name = (!name.is_empty()).then(|| name.to_string());
        let members = match btf.members(sid) {
            Ok(m) => m,
            Err(e) => return unsupported(&e.to_string()),
        };
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            if self.values >= self.opts.max_values {
                out.push(RenderedMember {
                    name: m.name.to_string(),
                    value: unsupported(REASON_BUDGET),
                });
                break;
            }
            let value = if m.bitfield_size != 0 {
                let start = (m.bit_offset / 8) as usize;
                let shift = m.bit_offset % 8;
                let width = m.bitfield_size as u32;
                let span = (shift + width).div_ceil(8) as usize;
                match bytes.get(start..start + span) {
                    Some(b) if span <= 9 => {
                        self.values += 1;
                        self.bitfield(m.ty, bits_le(b, shift, width.min(64)), width)
                    }
                    Some(_) => unsupported("bitfield wider than 64 bits"),
                    // Past the available bytes: leave it out of a truncated struct.
                    None => continue,
                }
            } else {
                if m.bit_offset % 8 != 0 {
                    out.push(RenderedMember {
                        name: m.name.to_string(),
                        value: unsupported("member not byte-aligned"),
                    });
                    continue;
                }
                let start = (m.bit_offset / 8) as usize;
                let size = match btf.size_of(m.ty) {
                    Ok(s) => s,
                    Err(e) => {
                        out.push(RenderedMember {
                            name: m.name.to_string(),
                            value: unsupported(&e.to_string()),
                        });
                        continue;
                    }
                };
                let end = (start as u64).saturating_add(size);
                if end > bytes.len() as u64 {
                    if start < bytes.len() && size > 0 {
                        // Partly present: render what fits as a truncated member.
                        self.top(m.ty, &bytes[start..], depth, jd + 3)
                    } else if size == 0 && start <= bytes.len() {
                        self.value(m.ty, &[], depth, jd + 3)
                    } else {
                        continue;
                    }
                } else {
                    self.value(m.ty, &bytes[start..end as usize], depth, jd + 3)
                }
            };
            out.push(RenderedMember {
                name: m.name.to_string(),
                value,
            });
        }
        RenderedValue::Struct {
            type_name,
            members: out,
        }
    }

    fn bitfield(&self, ty: TypeId, raw: u64, width: u32) -> RenderedValue {
        let sid = self.strip_or(ty);
        match self.btf.kind(sid) {
            Ok(Kind::Int {
                signed, is_bool, ..
            }) => {
                if is_bool {
                    RenderedValue::Bool { value: raw != 0 }
                } else if signed {
                    RenderedValue::Int {
                        bits: width,
                        value: sign_extend(raw, width),
                    }
                } else {
                    RenderedValue::Uint {
                        bits: width,
                        value: raw,
                    }
                }
            }
            Ok(Kind::Enum { signed, .. }) => {
                let v = if signed {
                    sign_extend(raw, width) as u64
                } else {
                    raw
                };
                RenderedValue::Enum {
                    bits: width,
                    value: v as i64,
                    variant: self.btf.enum_variant_name(sid, v).map(str::to_string),
                    is_signed: signed,
                }
            }
            _ => RenderedValue::Uint {
                bits: width,
                value: raw,
            },
        }
    }

    fn datasec(&mut self, sid: TypeId, bytes: &[u8], depth: u32, jd: usize) -> RenderedValue {
        let btf = self.btf;
        let name = btf.name(sid).unwrap_or("");
        let vars = match btf.datasec_vars(sid) {
            Ok(v) => v,
            Err(e) => return unsupported(&e.to_string()),
        };
        let mut out = Vec::with_capacity(vars.len());
        for v in vars {
            let vname = btf.name(v.var).unwrap_or("").to_string();
            let start = v.offset as usize;
            let Some(end) = start.checked_add(v.size as usize) else {
                continue;
            };
            let value = match bytes.get(start..end) {
                Some(b) => self.top(v.var, b, depth, jd + 3),
                None if start < bytes.len() => self.top(v.var, &bytes[start..], depth, jd + 3),
                None => continue,
            };
            out.push(RenderedMember { name: vname, value });
        }
        RenderedValue::Struct {
            type_name: (!name.is_empty()).then(|| name.to_string()),
            members: out,
        }
    }
}

fn first8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn unsupported(reason: &str) -> RenderedValue {
    RenderedValue::Unsupported {
        reason: reason.to_string(),
    }
}

/// Bytes of a value that has no typed rendering (a 128-bit integer, an odd-sized float).
fn raw_bytes(bytes: &[u8], size: usize) -> RenderedValue {
    RenderedValue::Bytes {
        hex: dump_schema::hex(&bytes[..size.min(bytes.len())]),
    }
}

/// How an integer type renders: its size and sign, and whether it is a char or a bool.
#[derive(Clone, Copy)]
struct IntLayout {
    size: u32,
    signed: bool,
    is_char: bool,
    is_bool: bool,
}

impl IntLayout {
    /// The layout of `sid` (typedefs and qualifiers stripped) when it is an integer; a
    /// plain `char` is a char whatever its encoding says.
    fn of(btf: &Btf, sid: TypeId) -> Option<IntLayout> {
        match btf.kind(sid).ok()? {
            Kind::Int {
                size,
                signed,
                is_char,
                is_bool,
            } => Some(IntLayout {
                size,
                signed,
                is_char: is_char || btf.name(sid).is_ok_and(|n| n == "char"),
                is_bool,
            }),
            _ => None,
        }
    }

    fn render(self, bytes: &[u8]) -> RenderedValue {
        int_value(bytes, self.size, self.signed, self.is_char, self.is_bool)
    }
}

fn int_value(bytes: &[u8], size: u32, signed: bool, is_char: bool, is_bool: bool) -> RenderedValue {
    if !matches!(size, 1 | 2 | 4 | 8) || bytes.len() < size as usize {
        return raw_bytes(bytes, size as usize);
    }
    let raw = bits_le(&bytes[..size as usize], 0, size * 8);
    if is_bool {
        RenderedValue::Bool { value: raw != 0 }
    } else if is_char && size == 1 {
        RenderedValue::Char { value: raw as u8 }
    } else if signed {
        RenderedValue::Int {
            bits: size * 8,
            value: sign_extend(raw, size * 8),
        }
    } else {
        RenderedValue::Uint {
            bits: size * 8,
            value: raw,
        }
    }
}

/// A range list (`0-2,5`) of the bits set among the first `nbits` of a little-endian
/// bitmap (the kernel's `unsigned long` bitmaps on x86_64).
pub fn cpu_list(bitmap: &[u8], nbits: u64) -> String {
    let mut out = String::new();
    let mut run: Option<(u64, u64)> = None;
    let nbits = nbits.min(bitmap.len() as u64 * 8);
    let flush = |run: (u64, u64), out: &mut String| {
        if !out.is_empty() {
            out.push(',');
        }
        if run.0 == run.1 {
            out.push_str(&run.0.to_string());
        } else {
            out.push_str(&format!("{}-{}", run.0, run.1));
        }
    };
    for bit in 0..nbits {
        let set = bitmap[(bit / 8) as usize] >> (bit % 8) & 1 == 1;
        run = match (run, set) {
            (Some((a, b)), true) if b + 1 == bit => Some((a, bit)),
            (Some(r), true) => {
                flush(r, &mut out);
                Some((bit, bit))
            }
            (None, true) => Some((bit, bit)),
            (r, false) => {
                if let Some(r) = r {
                    flush(r, &mut out);
                }
                None
            }
        };
    }
    if let Some(r) = run {
        flush(r, &mut out);
    }
    out
}
