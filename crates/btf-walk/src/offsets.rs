//! Member offsets by path (`scx.runnable_list`, `cpus[3].flags`), and groups of offsets
//! resolved together with every missing member reported.

use guest_mem::{Kva, KvaRead, MemError};

use crate::btf::Btf;
use crate::error::{BtfError, Result};
use crate::table::{Kind, TypeId};

/// Deepest nesting of anonymous structs/unions searched for a member name.
const MAX_ANON_DEPTH: usize = 32;
/// Most structs visited while searching one member name through anonymous members. Real
/// kernels visit a few dozen; a malformed graph (a struct holding itself, or a chain of
/// structs each holding the next one twice) would otherwise cost exponential time.
const MAX_ANON_VISITS: usize = 10_000;
/// Most components in one path (protects against absurd inputs).
const MAX_PATH_COMPONENTS: usize = 64;

/// Where a member lives in its root struct, and its type.
///
/// `bit_offset` counts from the start of the root struct. For ordinary members it is a
/// multiple of 8 and [`Field::offset`] is the byte offset. For bitfields `bit_size` is the
/// width and [`Field::extract`] reads it (little-endian, the x86_64 layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub bit_offset: u64,
    /// Width of a bitfield; 0 when the member is not a bitfield.
    pub bit_size: u32,
    /// The member's declared type (typedefs and qualifiers kept).
    pub ty: TypeId,
    /// Size in bytes of `ty` (for bitfields, of the declared storage type).
    pub size: u64,
}

impl Field {
    /// Placeholder returned by [`crate::OffsetGroup::field`] for a missing member; never escapes a
    /// group whose [`crate::OffsetGroup::finish`] result is checked.
    pub const MISSING: Field = Field {
        bit_offset: 0,
        bit_size: 0,
        ty: TypeId(0),
        size: 0,
    };

    /// Byte offset from the start of the root struct (for a bitfield, of the byte holding
    /// its first bit).
    pub fn offset(&self) -> u64 {
        self.bit_offset / 8
    }

    pub fn is_bitfield(&self) -> bool {
        self.bit_size != 0
    }

    /// The address of the member in the object at `base`.
    pub fn kva(&self, base: Kva) -> Result<Kva, MemError> {
        Ok(base.checked_offset(self.offset())?)
    }

    /// Bytes this member spans (for a bitfield, the bytes holding its bits).
    pub fn span_bytes(&self) -> u64 {
        if self.is_bitfield() {
            (self.bit_offset % 8 + self.bit_size as u64).div_ceil(8)
        } else {
            self.size
        }
    }

    /// Reads an integer member (at most 8 bytes) or a bitfield from `obj`, the bytes of
    /// the root struct. `None` when `obj` is too short or the member is wider than 8 bytes.
    /// The value is zero-extended; see [`Field::extract_signed`].
    pub fn extract(&self, obj: &[u8]) -> Option<u64> {
        let start = usize::try_from(self.offset()).ok()?;
        let span = usize::try_from(self.span_bytes()).ok()?;
        if span == 0 || span > 9 || (!self.is_bitfield() && span > 8) {
            return None;
        }
        let bytes = obj.get(start..start.checked_add(span)?)?;
        Some(bits_le(
            bytes,
            (self.bit_offset % 8) as u32,
            self.width_bits(),
        ))
    }

    /// Like [`Field::extract`], sign-extending from the member's width.
    pub fn extract_signed(&self, obj: &[u8]) -> Option<i64> {
        let v = self.extract(obj)?;
        Some(sign_extend(v, self.width_bits()))
    }

    /// Reads the member from the object at `base` in guest memory (integers up to 8 bytes
    /// and bitfields), zero-extended.
    pub fn read_u64(&self, mem: &dyn KvaRead, base: Kva) -> Result<u64, MemError> {
        let span = self.span_bytes();
        if span == 0 || span > 9 || (!self.is_bitfield() && span > 8) {
            return Err(MemError::Overflow {
                addr: base.0,
                len: span as usize,
            });
        }
        let mut buf = [0u8; 9];
        let buf = &mut buf[..span as usize];
        mem.read_kva(self.kva(base)?, buf)?;
        Ok(bits_le(
            buf,
            (self.bit_offset % 8) as u32,
            self.width_bits(),
        ))
    }

    fn width_bits(&self) -> u32 {
        if self.is_bitfield() {
            self.bit_size.min(64)
        } else {
            (self.size.min(8) * 8) as u32
        }
    }
}

/// Little-endian bits `[shift, shift + width)` of `bytes` (at most 9 bytes).
pub(crate) fn bits_le(bytes: &[u8], shift: u32, width: u32) -> u64 {
    let mut raw: u128 = 0;
    for (i, b) in bytes.iter().take(16).enumerate() {
        raw |= (*b as u128) << (8 * i);
    }
    let v = raw >> shift;
    if width >= 64 {
        v as u64
    } else {
        (v as u64) & ((1u64 << width) - 1)
    }
}

pub(crate) fn sign_extend(v: u64, width: u32) -> i64 {
    if width == 0 || width >= 64 {
        return v as i64;
    }
    let shift = 64 - width;
    ((v << shift) as i64) >> shift
}

/// One parsed path component: a member name and the array indices after it.
struct Component<'p> {
    name: &'p str,
    indices: Vec<u64>,
}

fn parse_path(path: &str) -> Result<Vec<Component<'_>>> {
    let bad = |why: &str| BtfError::BadPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    if path.is_empty() {
        return Err(bad("empty path"));
    }
    let mut out = Vec::new();
    for part in path.split('.') {
        if out.len() >= MAX_PATH_COMPONENTS {
            return Err(bad("too many components"));
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return Err(bad("empty member name"));
        }
        let mut indices = Vec::new();
        while !rest.is_empty() {
            let close = rest.find(']').ok_or_else(|| bad("unclosed `[`"))?;
            if !rest.starts_with('[') {
                return Err(bad("text after `]`"));
            }
            let idx: u64 = rest[1..close]
                .parse()
                .map_err(|_| bad("array index is not a number"))?;
            indices.push(idx);
            rest = &rest[close + 1..];
        }
        out.push(Component { name, indices });
    }
    Ok(out)
}

impl Btf {
    /// Resolves `path` (members separated by `.`, array indices as `[n]`) inside the struct
    /// or union `root`. Members of anonymous structs and unions are found as if they were
    /// members of the parent (as in C); typedefs and qualifiers are looked through.
    ///
    /// An index must be below the array's length, except for a flexible array member
    /// (declared length 0), which accepts any index.
    pub fn field(&self, root: TypeId, path: &str) -> Result<Field> {
        let comps = parse_path(path)?;
        let mut cur = root;
        let mut bit_offset: u64 = 0;
        let mut bit_size: u32 = 0;
        let err = |why: String| BtfError::BadPath {
            path: format!("{}.{path}", self.name(root).unwrap_or("<bad type>")),
            why,
        };
        for (i, c) in comps.iter().enumerate() {
            if bit_size != 0 {
                return Err(err(format!("`{}` follows a bitfield", c.name)));
            }
            let sid = self.strip(cur)?;
            match self.kind(sid)? {
                Kind::Struct { .. } => {}
                Kind::Ptr { .. } => {
                    return Err(err(format!(
                        "component {i} (`{}`) would cross a pointer; resolve the pointee's type separately",
                        c.name
                    )));
                }
                k => {
                    return Err(err(format!(
                        "`{}` asked of a {} ({})",
                        c.name,
                        k.describe(),
                        self.display_name(sid)
                    )));
                }
            }
            let mut visits = 0;
            let (off, ty, bits) =
                self.find_member(sid, c.name, 0, &mut visits)?
                    .ok_or_else(|| {
                        err(format!(
                            "no member `{}` in {}",
                            c.name,
                            self.display_name(sid)
                        ))
                    })?;
            bit_offset = bit_offset
                .checked_add(off)
                .ok_or_else(|| err("offset overflows".into()))?;
            bit_size = bits;
            cur = ty;
            for &idx in &c.indices {
                let aid = self.strip(cur)?;
                let (elem, len) = match self.kind(aid)? {
                    Kind::Array { elem, len } => (elem, len),
                    k => {
                        return Err(err(format!(
                            "`{}` is a {}, not an array",
                            c.name,
                            k.describe()
                        )));
                    }
                };
                if len != 0 && idx >= len as u64 {
                    return Err(err(format!(
                        "index {idx} out of bounds of `{}[{len}]`",
                        c.name
                    )));
                }
                let esize = self.size_of(elem)?;
                let add = idx
                    .checked_mul(esize)
                    .and_then(|b| b.checked_mul(8))
                    .ok_or_else(|| err("offset overflows".into()))?;
                bit_offset = bit_offset
                    .checked_add(add)
                    .ok_or_else(|| err("offset overflows".into()))?;
                cur = elem;
            }
        }
        let size = self
            .size_of(cur)
            .map_err(|e| err(format!("member has no size: {e}")))?;
        Ok(Field {
            bit_offset,
            bit_size,
            ty: cur,
            size,
        })
    }

    /// `(bit offset, type, bitfield width)` of the member `name` of struct `sid`, searching
    /// anonymous members depth-first in declaration order.
    fn find_member(
        &self,
        sid: TypeId,
        name: &str,
        depth: usize,
        visits: &mut usize,
    ) -> Result<Option<(u64, TypeId, u32)>> {
        if depth > MAX_ANON_DEPTH {
            return Err(BtfError::Malformed {
                id: sid.0,
                why: "anonymous members nested too deeply (a loop?)",
            });
        }
        *visits += 1;
        if *visits > MAX_ANON_VISITS {
            return Err(BtfError::Malformed {
                id: sid.0,
                why: "too many anonymous members to search (a malformed type graph?)",
            });
        }
        let members = self.members(sid)?;
        if let Some(m) = members.iter().find(|m| &*m.name == name) {
            return Ok(Some((m.bit_offset as u64, m.ty, m.bitfield_size as u32)));
        }
        for m in members.iter().filter(|m| m.name.is_empty()) {
            let inner = self.strip(m.ty)?;
            if !matches!(self.kind(inner)?, Kind::Struct { .. }) {
                continue;
            }
            if let Some((off, ty, bits)) = self.find_member(inner, name, depth + 1, visits)? {
                return Ok(Some((m.bit_offset as u64 + off, ty, bits)));
            }
        }
        Ok(None)
    }

    /// Resolves `"struct.path"`: the first component names the struct (by the duplicate
    /// rule of [`Btf`]), the rest is a member path, e.g. `rq.scx.runnable_list`.
    pub fn field_by_path(&self, path: &str) -> Result<Field> {
        let (sname, rest) = path.split_once('.').ok_or_else(|| BtfError::BadPath {
            path: path.to_string(),
            why: "expected `struct.member`".into(),
        })?;
        let root = self.struct_by_name(sname)?;
        self.field(root, rest)
    }

    /// Byte offset of `"struct.path"` (see [`Btf::field_by_path`]).
    pub fn offset_of(&self, path: &str) -> Result<u64> {
        let f = self.field_by_path(path)?;
        if f.is_bitfield() {
            return Err(BtfError::BadPath {
                path: path.to_string(),
                why: "is a bitfield; use field_by_path and Field::extract".into(),
            });
        }
        Ok(f.offset())
    }

    /// The type a pointer points to (through typedefs/qualifiers), or an error when `id`
    /// is not a pointer.
    pub fn pointee(&self, id: TypeId) -> Result<TypeId> {
        let sid = self.strip(id)?;
        match self.kind(sid)? {
            Kind::Ptr { target } => Ok(target),
            k => Err(BtfError::BadPath {
                path: self.display_name(id),
                why: format!("is a {}, not a pointer", k.describe()),
            }),
        }
    }

    /// Element type and declared length of an array type.
    pub fn array_of(&self, id: TypeId) -> Result<(TypeId, u32)> {
        let sid = self.strip(id)?;
        match self.kind(sid)? {
            Kind::Array { elem, len } => Ok((elem, len)),
            k => Err(BtfError::BadPath {
                path: self.display_name(id),
                why: format!("is a {}, not an array", k.describe()),
            }),
        }
    }
}
