//! The crate's own compact type table, parsed once straight from raw BTF.
//!
//! Each type becomes a plain `Copy` kind with spans into flat vectors, so offset
//! resolution and rendering do no allocation per type visited. The string section is
//! kept whole (borrowed from a vmcore's mapping for the kernel's own BTF, with the type
//! section: no copy of 5 MB); the names of types found by name are copied out of it into
//! one string, functions' names are left in place. Enumerators own their names, and so
//! do members (they are public API), made on first use of their enum or struct: a
//! capture looks at a few hundred of a kernel's tens of thousands of structs, and naming
//! every member up front was a fifth of the BTF load.
//!
//! Why not `btf-rs`: in the whole-vmcore dump benchmark most of the BTF phase went to
//! converting its parse (a `Type` with a cloned member vector and a `String` name per
//! lookup), plus a temporary file for its memory-mapped backend (its cached backend holds
//! much more memory). The format is twenty fixed record layouts; parsing it here, every
//! record and string bounds-checked, is what `cargo bench -p btf-walk` measures against
//! `bpftool`.

mod record;

use std::hash::BuildHasher as _;

use record::{Names, Record, qualifier, read_u32, word_at};

/// Hash maps over names read from the guest: foldhash is keyed per process (no crafted
/// collisions) and several times faster than the default SipHash on short names.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::error::{BtfError, Result};

/// A BTF type id. `TypeId(0)` is `void`. In split BTF, ids continue after the base's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TypeId(pub u32);

impl std::fmt::Display for TypeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A range into one of the table's flat vectors (members, enum values, section vars).
/// Six bytes (its start in two halves, its length a record's 16-bit `vlen`), which keeps
/// [`Kind`] at 12 bytes: a vmlinux has 120,000 types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: [u16; 2],
    pub(crate) len: u16,
}

impl Span {
    /// Number of items (members, enumerators, variables).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn new(start: u32, len: u16) -> Span {
        Span {
            start: [start as u16, (start >> 16) as u16],
            len,
        }
    }

    /// Index of the first item.
    pub(crate) fn start(&self) -> usize {
        self.start[0] as usize | (self.start[1] as usize) << 16
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start()..self.start() + self.len as usize
    }
}

/// Which modifier a [`Kind::Qualifier`] is; all are transparent for layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier {
    Const,
    Volatile,
    Restrict,
    TypeTag,
}

/// The kind of a BTF type with its layout data. Cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    Void,
    /// `size` in bytes.
    Int {
        size: u32,
        signed: bool,
        is_char: bool,
        is_bool: bool,
    },
    Float {
        size: u32,
    },
    Ptr {
        target: TypeId,
    },
    Array {
        elem: TypeId,
        len: u32,
    },
    /// A struct or a union; members through [`crate::Btf::members`].
    Struct {
        size: u32,
        is_union: bool,
        members: Span,
    },
    /// An enum or enum64; enumerators through [`crate::Btf::enum_values`].
    Enum {
        size: u32,
        signed: bool,
        values: Span,
    },
    Fwd {
        is_union: bool,
    },
    Typedef {
        target: TypeId,
    },
    Qualifier {
        target: TypeId,
        which: Qualifier,
    },
    Func {
        proto: TypeId,
    },
    FuncProto,
    Var {
        target: TypeId,
    },
    /// A data section; its variables through [`crate::Btf::datasec_vars`].
    Datasec {
        size: u32,
        vars: Span,
    },
    DeclTag {
        target: TypeId,
    },
}

impl Kind {
    /// A short name of the kind, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Void => "void",
            Kind::Int { .. } => "int",
            Kind::Float { .. } => "float",
            Kind::Ptr { .. } => "pointer",
            Kind::Array { .. } => "array",
            Kind::Struct {
                is_union: false, ..
            } => "struct",
            Kind::Struct { is_union: true, .. } => "union",
            Kind::Enum { .. } => "enum",
            Kind::Fwd { .. } => "forward declaration",
            Kind::Typedef { .. } => "typedef",
            Kind::Qualifier { .. } => "qualifier",
            Kind::Func { .. } => "function",
            Kind::FuncProto => "function prototype",
            Kind::Var { .. } => "variable",
            Kind::Datasec { .. } => "data section",
            Kind::DeclTag { .. } => "decl tag",
        }
    }
}

/// A struct or union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Empty for anonymous members.
    pub name: Box<str>,
    pub ty: TypeId,
    /// Offset from the start of the containing struct, in bits.
    pub bit_offset: u32,
    /// Width of a bitfield in bits; 0 when the member is not a bitfield.
    pub bitfield_size: u8,
}

/// One enumerator. `value` holds the bits of the value: sign-extended for signed enums,
/// zero-extended otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumValue {
    pub name: Box<str>,
    pub value: u64,
}

/// One variable of a data section (`DATASEC`): per-CPU variables of vmlinux, `.bss` of a
/// BPF object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecVar {
    /// The `VAR` type id.
    pub var: TypeId,
    pub offset: u32,
    pub size: u32,
}

/// A type's name: `names[off..off + len]` of its table, or, when `len` is
/// [`NameRef::RAW`], the NUL-terminated string at `off` of its own string section
/// (functions' names: tens of thousands, of which a capture uses none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NameRef {
    off: u32,
    len: u32,
}

impl NameRef {
    /// The empty name (name offset 0, whatever the string section holds there).
    const NONE: NameRef = NameRef { off: 0, len: 0 };
    const RAW: u32 = u32::MAX;
}

/// The bytes of a table's string space: read or copied into this process, or borrowed
/// from a vmcore's mapping (the kernel's own BTF, which is most of it).
#[derive(Debug)]
pub(crate) enum Strings {
    Owned(Box<[u8]>),
    Guest(guest_mem::StableBytes),
}

impl Default for Strings {
    fn default() -> Self {
        Strings::Owned(Box::default())
    }
}

impl Strings {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Strings::Owned(b) => b,
            Strings::Guest(b) => b,
        }
    }
}

/// A type section to parse: borrowed for the parse only, or from a vmcore (kept).
pub(crate) enum Types<'a> {
    Slice(&'a [u8]),
    Guest(guest_mem::StableBytes),
}

/// The bytes before the first NUL of `b` (all of `b` without one).
fn until_nul(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

#[derive(Debug)]
pub(crate) struct Ty {
    pub(crate) name: NameRef,
    pub(crate) kind: Kind,
}

/// A member record of the type section: name offset, type, offset (and bitfield size
/// when the struct's kind flag is set). Its name offset was checked when parsed.
#[derive(Debug, Clone, Copy)]
struct RawMember {
    name_off: u32,
    ty: u32,
    offset: u32,
}

/// A struct's members: where its records are (an index into `raw_members`, or the byte
/// offset of the first in the kept type section), and the members once made.
#[derive(Debug)]
struct StructSlot {
    first: u32,
    kflag: bool,
    made: std::sync::OnceLock<Box<[Member]>>,
}

/// An enumerator record of the type section: its name offset (checked when parsed) and
/// its value, sign- or zero-extended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEnumerator {
    name_off: u32,
    pub(crate) value: u64,
}

/// An enum's enumerators: where its records are, and the enumerators once made (with
/// owned names: few of a kernel's 19,000 enumerators are ever listed).
#[derive(Debug)]
struct EnumSlot {
    first: u32,
    made: std::sync::OnceLock<Box<[EnumValue]>>,
}

/// The types of one BTF section (a base, or the split part on top of one).
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Id of `types[0]`: 0 for a base section (whose first entry is `void`).
    pub(crate) first_id: u32,
    pub(crate) types: Vec<Ty>,
    /// Every struct's and union's member records as read (flat, in type order), unless
    /// the type section is kept.
    raw_members: Vec<RawMember>,
    /// The type section when it is borrowed (from a vmcore): member records are then
    /// read from it when their struct's members are made, not copied at load.
    kept_types: Option<guest_mem::StableBytes>,
    /// While parsing: whether the type section will be kept.
    keeping_types: bool,
    /// One per struct or union (`Kind::Struct`'s span starts at its index here).
    structs: Vec<StructSlot>,
    /// Every enum's enumerator records (flat, in type order).
    pub(crate) raw_enumerators: Vec<RawEnumerator>,
    /// One per enum (`Kind::Enum`'s span starts at its index here).
    enums: Vec<EnumSlot>,
    pub(crate) vars: Vec<SecVar>,
    /// Named types worth finding by name (not functions): `(hash of the name, id)`,
    /// sorted. A sorted vector rather than a map of names: no allocation per name, and
    /// one name's ids come out in id order.
    pub(crate) by_name: Vec<(u64, u32)>,
    /// Keyed per table, so guest-chosen names cannot be made to collide.
    pub(crate) hasher: foldhash::fast::RandomState,
    /// The raw string section (NUL-separated, checked to be UTF-8; kept whole because
    /// split BTF on top of this part refers to it by offset).
    pub(crate) strings: Strings,
    /// The names of the types found by name (and base names a split part uses), copied
    /// out of the string sections: a name is then a slice, found without a scan.
    names: Box<str>,
    /// Length of the raw string section at the start of `strings`.
    pub(crate) str_len: u32,
    /// String offset where this part's section starts (the base's end; 0 for a base).
    pub(crate) str_base: u32,
}

impl Table {
    pub(crate) fn get(&self, id: TypeId) -> Option<&Ty> {
        let idx = id.0.checked_sub(self.first_id)?;
        self.types.get(idx as usize)
    }

    pub(crate) fn end_id(&self) -> u32 {
        self.first_id + self.types.len() as u32
    }

    /// The members of the struct whose kind holds `span`, made on first use; `base` is
    /// the table a split part's member names may come from.
    pub(crate) fn members(&self, span: Span, base: Option<&Table>) -> &[Member] {
        let Some(slot) = self.structs.get(span.start()) else {
            return &[];
        };
        slot.made.get_or_init(|| {
            let first = slot.first as usize;
            let raw = |i: usize| match &self.kept_types {
                Some(sec) => {
                    let at = first + 12 * i;
                    Some(RawMember {
                        name_off: read_u32(sec, at)?,
                        ty: read_u32(sec, at + 4)?,
                        offset: read_u32(sec, at + 8)?,
                    })
                }
                None => self.raw_members.get(first + i).copied(),
            };
            (0..span.len as usize)
                .map_while(raw)
                .map(|m| {
                    let (bit_offset, bits) = if slot.kflag {
                        (m.offset & 0xff_ffff, m.offset >> 24)
                    } else {
                        (m.offset, 0)
                    };
                    Member {
                        name: self.member_name(m.name_off, base).into(),
                        ty: TypeId(m.ty),
                        bit_offset,
                        bitfield_size: bits.min(255) as u8,
                    }
                })
                .collect()
        })
    }

    /// A member's name (its offset was checked at parse time; "" if it reads otherwise).
    fn member_name<'a>(&'a self, off: u32, base: Option<&'a Table>) -> &'a str {
        if off == 0 {
            return "";
        }
        let found = if off >= self.str_base {
            self.string_at(off)
        } else {
            base.map_or(Err(String::new()), |b| b.string_at(off))
        };
        found.unwrap_or("")
    }

    /// The enumerators of the enum whose kind holds `span`, made on first use; `base`
    /// as for [`Table::members`].
    pub(crate) fn enum_values(&self, span: Span, base: Option<&Table>) -> &[EnumValue] {
        let Some(slot) = self.enums.get(span.start()) else {
            return &[];
        };
        slot.made.get_or_init(|| {
            let first = slot.first as usize;
            let raw = (self.raw_enumerators)
                .get(first..first + span.len as usize)
                .unwrap_or(&[]);
            raw.iter()
                .map(|e| EnumValue {
                    name: self.member_name(e.name_off, base).into(),
                    value: e.value,
                })
                .collect()
        })
    }

    /// The name of enumerator record `e` (of this table), as bytes (UTF-8: its offset
    /// was checked when parsed); `base` as for [`Table::members`].
    pub(crate) fn enumerator_name<'a>(
        &'a self,
        e: &RawEnumerator,
        base: Option<&'a Table>,
    ) -> &'a [u8] {
        let off = e.name_off;
        let (t, o) = match off.checked_sub(self.str_base) {
            _ if off == 0 => return &[],
            Some(o) => (self, o),
            None => match base {
                Some(b) => (b, off.saturating_sub(b.str_base)),
                None => return &[],
            },
        };
        let own = t.strings.bytes().get(..t.str_len as usize).unwrap_or(&[]);
        until_nul(own.get(o as usize..).unwrap_or(&[]))
    }

    pub(crate) fn vars(&self, span: Span) -> &[SecVar] {
        self.vars.get(span.range()).unwrap_or(&[])
    }

    /// Ids of the indexed types (every kind but functions) named `name`, in id order.
    pub(crate) fn ids_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = TypeId> + 'a {
        let h = self.hasher.hash_one(name.as_bytes());
        let lo = self.by_name.partition_point(|e| e.0 < h);
        self.by_name[lo..]
            .iter()
            .take_while(move |e| e.0 == h)
            .map(|e| TypeId(e.1))
            .filter(move |&id| self.get(id).is_some_and(|ty| self.name_of(ty) == name))
    }

    /// The name of a type of this table.
    pub(crate) fn name_of(&self, ty: &Ty) -> &str {
        let (off, len) = (ty.name.off as usize, ty.name.len);
        if len != NameRef::RAW {
            return self.names.get(off..off + len as usize).unwrap_or("");
        }
        // The section is UTF-8 (checked when parsed) and a name ends at a NUL, so this
        // fails only for an offset inside a character, which parsing rejected.
        let raw = self.strings.bytes().get(off..).unwrap_or(&[]);
        std::str::from_utf8(until_nul(raw)).unwrap_or("")
    }

    /// Parses the types of raw BTF whose header `load::check_raw` accepted.
    ///
    /// A base (`base == None`) starts at id 0 (`void`, implicit in BTF); split BTF
    /// continues `base`'s ids, and its string offsets continue `base`'s string section.
    /// Everything is bounds-checked: a record or a string outside its section, an unknown
    /// kind, or a string section that is not UTF-8 is an error naming what failed.
    pub(crate) fn parse(bytes: &[u8], base: Option<&Table>) -> Result<Table> {
        let hdr = |o: usize| read_u32(bytes, o).unwrap_or(0) as usize;
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (hdr(4), hdr(8), hdr(12), hdr(16), hdr(20));
        let section = |what: &'static str, off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|s| Some(s..s.checked_add(len)?))
                .and_then(|r| bytes.get(r))
                .ok_or_else(|| BtfError::Format {
                    what,
                    detail: format!("{off}+{len} outside the {} bytes", bytes.len()),
                })
        };
        let types = section("type section", type_off, type_len)?;
        let strings = section("string section", str_off, str_len)?;
        Table::parse_sections(Types::Slice(types), Strings::Owned(strings.into()), base)
    }

    /// [`Table::parse`] on the two sections, the string section given as kept (so a
    /// caller that read it into its own buffer, or borrowed it, saves a copy).
    pub(crate) fn parse_sections(
        types: Types<'_>,
        strings: Strings,
        base: Option<&Table>,
    ) -> Result<Table> {
        let (types, kept) = match types {
            Types::Slice(b) => (b, None),
            Types::Guest(b) => (&[][..], Some(b)),
        };
        let types = kept.as_deref().unwrap_or(types);
        let own = strings.bytes();
        std::str::from_utf8(own).map_err(|e| BtfError::Format {
            what: "string section",
            detail: format!("not UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let (first_id, str_base) = match base {
            None => (0, 0),
            Some(b) => (b.end_id(), b.str_end()),
        };
        let mut t = Table {
            first_id,
            str_len: own.len() as u32,
            keeping_types: kept.is_some(),
            str_base,
            ..Table::default()
        };
        // About 40 bytes of BTF per type in vmlinux; bounded by the input either way.
        t.types.reserve(types.len() / 40 + 1);
        if base.is_none() {
            t.types.push(Ty {
                name: NameRef::NONE,
                kind: Kind::Void,
            });
        }
        let mut names = Names {
            own,
            base,
            str_base,
            copied: Vec::new(),
            base_names: HashMap::default(),
        };
        let mut pos = 0usize;
        while pos < types.len() {
            let id = u32::try_from(first_id as u64 + t.types.len() as u64).map_err(|_| {
                BtfError::Format {
                    what: "type section",
                    detail: "more than 2^32 types".into(),
                }
            })?;
            pos = t.parse_one(types, pos, id, &mut names)?;
        }
        sort_by_hash(&mut t.by_name);
        // Pieces of UTF-8 text, each cut at a character's start and before a NUL.
        t.names = String::from_utf8(std::mem::take(&mut names.copied))
            .map_err(|e| BtfError::Format {
                what: "string section",
                detail: format!("names not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
            })?
            .into_boxed_str();
        drop(names);
        t.strings = strings;
        t.kept_types = kept;
        Ok(t)
    }

    /// One past the last string offset this table's names can use (split BTF on top of
    /// it continues from here).
    pub(crate) fn str_end(&self) -> u32 {
        self.str_base.saturating_add(self.str_len)
    }

    /// Parses the record at `pos` of the type section as type `id`; returns where the
    /// next record starts.
    fn parse_one(
        &mut self,
        sec: &[u8],
        pos: usize,
        id: u32,
        names: &mut Names<'_>,
    ) -> Result<usize> {
        let r = Record::at(sec, pos, id)?;
        // Kinds that carry no name (their name offset is ignored, as the kernel does).
        let named = !matches!(r.kind_id, 2 | 3 | 9 | 10 | 11 | 13 | 17 | 18);
        // Functions are not found by name: their names stay in place.
        let name = if named {
            (names.resolve(r.name_off, r.kind_id != 12)).map_err(|e| r.bad(e))?
        } else {
            NameRef::NONE
        };
        let (extra, kind) = self.parse_kind(sec, &r, names)?;
        let next = r
            .body
            .checked_add(extra)
            .filter(|&n| n <= sec.len())
            .ok_or_else(|| r.past_end())?;
        if name.len > 0 && name.len != NameRef::RAW && indexed(&kind) {
            (self.by_name).push((self.hasher.hash_one(names.get(name)), id));
        }
        self.types.push(Ty { name, kind });
        Ok(next)
    }

    /// The kind of record `r` and the size of its trailing data.
    fn parse_kind(
        &mut self,
        sec: &[u8],
        r: &Record,
        names: &mut Names<'_>,
    ) -> Result<(usize, Kind)> {
        let target = TypeId(r.size_or_type);
        Ok(match r.kind_id {
            1 => {
                let enc = (r.word(sec, 12)? >> 24) & 0xf;
                let kind = Kind::Int {
                    size: r.size_or_type,
                    signed: enc & 1 != 0,
                    is_char: enc & 2 != 0,
                    is_bool: enc & 4 != 0,
                };
                (4, kind)
            }
            2 => (0, Kind::Ptr { target }),
            3 => {
                let kind = Kind::Array {
                    elem: TypeId(r.word(sec, 12)?),
                    len: r.word(sec, 20)?,
                };
                (12, kind)
            }
            4 | 5 => self.parse_members(sec, r, names)?,
            6 | 19 => self.parse_enumerators(sec, r, names)?,
            7 => (0, Kind::Fwd { is_union: r.kflag }),
            8 => (0, Kind::Typedef { target }),
            9 => (0, qualifier(target, Qualifier::Volatile)),
            10 => (0, qualifier(target, Qualifier::Const)),
            11 => (0, qualifier(target, Qualifier::Restrict)),
            18 => (0, qualifier(target, Qualifier::TypeTag)),
            12 => (0, Kind::Func { proto: target }),
            13 => (r.entries(sec, 8)?, Kind::FuncProto),
            14 => (4, Kind::Var { target }),
            15 => self.parse_datasec(sec, r)?,
            16 => (
                0,
                Kind::Float {
                    size: r.size_or_type,
                },
            ),
            17 => (4, Kind::DeclTag { target }),
            k => return Err(r.bad(format!("unsupported kind {k}"))),
        })
    }

    /// A struct or union (kind 4 or 5) and its members.
    fn parse_members(
        &mut self,
        sec: &[u8],
        r: &Record,
        names: &mut Names<'_>,
    ) -> Result<(usize, Kind)> {
        let extra = r.entries(sec, 12)?;
        let first = match self.keeping_types {
            true => r.body,
            false => self.raw_members.len(),
        };
        let first = u32::try_from(first).map_err(|_| r.bad("too many members".into()))?;
        let slot =
            u32::try_from(self.structs.len()).map_err(|_| r.bad("too many structs".into()))?;
        for at in (r.body..r.body + extra).step_by(12) {
            let name_off = word_at(sec, at);
            names.check(name_off).map_err(|e| r.bad(e))?;
            if !self.keeping_types {
                self.raw_members.push(RawMember {
                    name_off,
                    ty: word_at(sec, at + 4),
                    offset: word_at(sec, at + 8),
                });
            }
        }
        self.structs.push(StructSlot {
            first,
            kflag: r.kflag,
            made: std::sync::OnceLock::new(),
        });
        let kind = Kind::Struct {
            size: r.size_or_type,
            is_union: r.kind_id == 5,
            members: r.span(slot),
        };
        Ok((extra, kind))
    }

    /// An enum (kind 6, 32-bit values) or enum64 (kind 19) and its enumerators.
    fn parse_enumerators(
        &mut self,
        sec: &[u8],
        r: &Record,
        names: &mut Names<'_>,
    ) -> Result<(usize, Kind)> {
        let step = if r.kind_id == 6 { 8 } else { 12 };
        let extra = r.entries(sec, step)?;
        let first = u32::try_from(self.raw_enumerators.len())
            .map_err(|_| r.bad("too many enumerators".into()))?;
        let slot = u32::try_from(self.enums.len()).map_err(|_| r.bad("too many enums".into()))?;
        self.raw_enumerators.reserve(r.vlen);
        for at in (r.body..r.body + extra).step_by(step) {
            let lo = word_at(sec, at + 4);
            let value = if r.kind_id == 19 {
                (u64::from(word_at(sec, at + 8)) << 32) | u64::from(lo)
            } else if r.kflag {
                lo as i32 as i64 as u64
            } else {
                u64::from(lo)
            };
            let name_off = word_at(sec, at);
            names.check_name(name_off).map_err(|e| r.bad(e))?;
            self.raw_enumerators.push(RawEnumerator { name_off, value });
        }
        self.enums.push(EnumSlot {
            first,
            made: std::sync::OnceLock::new(),
        });
        let kind = Kind::Enum {
            size: r.size_or_type,
            signed: r.kflag,
            values: r.span(slot),
        };
        Ok((extra, kind))
    }

    /// A data section (kind 15) and its variables.
    fn parse_datasec(&mut self, sec: &[u8], r: &Record) -> Result<(usize, Kind)> {
        let extra = r.entries(sec, 12)?;
        let start = self.vars.len() as u32;
        self.vars.reserve(r.vlen);
        for at in (r.body..r.body + extra).step_by(12) {
            self.vars.push(SecVar {
                var: TypeId(word_at(sec, at)),
                offset: word_at(sec, at + 4),
                size: word_at(sec, at + 8),
            });
        }
        let kind = Kind::Datasec {
            size: r.size_or_type,
            vars: r.span(start),
        };
        Ok((extra, kind))
    }

    /// The NUL-terminated string at offset `off` of this part's own string section.
    fn string_at(&self, off: u32) -> std::result::Result<&str, String> {
        let outside = || format!("name offset {off} outside the string section");
        let o = off.checked_sub(self.str_base).ok_or_else(outside)? as usize;
        let own = self
            .strings
            .bytes()
            .get(..self.str_len as usize)
            .unwrap_or(&[]);
        let rest = own.get(o..).ok_or_else(outside)?;
        // UTF-8 as a whole (checked when parsed): this fails only inside a character.
        std::str::from_utf8(until_nul(rest)).map_err(|_| outside())
    }
}

/// Sorts `(hash, index)` pairs into the order `sort_unstable` gives, in about linear
/// time for a keyed hasher's evenly spread hashes: the pairs are spread into one bucket
/// per top bits of the hash (order kept), then each small bucket is sorted.
pub(crate) fn sort_by_hash(v: &mut Vec<(u64, u32)>) {
    let n = v.len();
    if n < 256 {
        v.sort_unstable();
        return;
    }
    // About one bucket per pair (n is below 2^32: indexes are u32).
    let bits = (usize::BITS - n.leading_zeros()).min(24);
    let shift = 64 - bits;
    let bucket = |h: u64| (h >> shift) as usize;
    let mut ends = vec![0usize; (1 << bits) + 1];
    for e in v.iter() {
        ends[bucket(e.0) + 1] += 1;
    }
    for i in 1..ends.len() {
        ends[i] += ends[i - 1];
    }
    let mut at = ends.clone();
    let mut out = vec![(0u64, 0u32); n];
    for &e in v.iter() {
        let b = bucket(e.0);
        out[at[b]] = e;
        at[b] += 1;
    }
    for w in ends.windows(2) {
        out[w[0]..w[1]].sort_unstable();
    }
    *v = out;
}

/// Kinds a user looks up by name; functions are left out (tens of thousands of them, and
/// nothing here needs them by name).
fn indexed(kind: &Kind) -> bool {
    !matches!(
        kind,
        Kind::Func { .. } | Kind::FuncProto | Kind::DeclTag { .. }
    )
}

#[cfg(test)]
mod tests {
    use crate::synth::BtfBuilder;
    use crate::{Btf, Kind, TypeId};

    /// `int`, then `struct task_struct { int pid; int tgid; }`: type section at 24, the
    /// struct's record at 24 + 16.
    fn base() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, 1);
        b.struct_(
            "task_struct",
            8,
            &[("pid", int, 0, 0), ("tgid", int, 32, 0)],
        );
        b.build()
    }

    const STRUCT_AT: usize = 24 + 16;

    fn err(bytes: &[u8]) -> String {
        Btf::from_raw(bytes).unwrap_err().to_string()
    }

    #[test]
    fn parses_what_it_was_given() {
        let btf = Btf::from_raw(&base()).unwrap();
        assert_eq!(btf.type_count(), 3);
        let id = btf.struct_by_name("task_struct").unwrap();
        assert_eq!(btf.name(id).unwrap(), "task_struct");
        let m = btf.members(id).unwrap();
        assert_eq!((&*m[1].name, m[1].bit_offset), ("tgid", 32));
        assert_eq!(btf.ids_by_name("int"), vec![TypeId(1)]);
        assert!(btf.ids_by_name("nope").is_empty());
    }

    #[test]
    fn malformed_records_are_errors_naming_the_type() {
        let mut b = base();
        b[STRUCT_AT + 7] = 31; // kind
        assert!(
            err(&b).contains("type id 2: unsupported kind 31"),
            "{}",
            err(&b)
        );

        let mut b = base();
        b[STRUCT_AT + 4..STRUCT_AT + 6].copy_from_slice(&60000u16.to_le_bytes()); // vlen
        assert!(
            err(&b).contains("60000 entries run past the end"),
            "{}",
            err(&b)
        );

        let mut b = base();
        b[STRUCT_AT..STRUCT_AT + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(
            err(&b).contains("outside the string section"),
            "{}",
            err(&b)
        );

        // The int's trailing word cut off: the type section ends inside its record.
        let mut b = BtfBuilder::new();
        b.int("int", 4, 1);
        let mut b = b.build();
        let type_len = u32::from_le_bytes(b[12..16].try_into().unwrap()) - 4;
        b[12..16].copy_from_slice(&type_len.to_le_bytes());
        b[16..20].copy_from_slice(&type_len.to_le_bytes()); // strings move up by 4
        b.remove(24 + 12);
        b.remove(24 + 12);
        b.remove(24 + 12);
        b.remove(24 + 12);
        assert!(
            err(&b).contains("runs past the end of the section"),
            "{}",
            err(&b)
        );

        // A member's name offset is checked when parsed, though its name is made later.
        let mut b = base();
        b[STRUCT_AT + 12..STRUCT_AT + 16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(
            err(&b).contains("type id 2: name offset 4294967280 outside"),
            "{}",
            err(&b)
        );
        // ... and must start a character of the (UTF-8) string section.
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, 1);
        b.struct_("s", 4, &[("é", int, 0, 0)]);
        let mut b = b.build();
        let rec = 24 + 16 + 12; // int (16 bytes), the struct's header: its member
        let off = u32::from_le_bytes(b[rec..rec + 4].try_into().unwrap());
        b[rec..rec + 4].copy_from_slice(&(off + 1).to_le_bytes());
        assert!(
            err(&b).contains("outside the string section"),
            "{}",
            err(&b)
        );

        let mut b = base();
        let last = b.len() - 2;
        b[last] = 0xff; // inside "tgid"
        assert!(err(&b).contains("not UTF-8"), "{}", err(&b));
    }

    #[test]
    fn a_type_takes_20_bytes() {
        // Its kind (12: a `Span` of three u16) and its name (8).
        assert_eq!(std::mem::size_of::<Kind>(), 12);
        assert_eq!(std::mem::size_of::<super::Ty>(), 20);
    }

    #[test]
    fn sort_by_hash_sorts_as_sort_unstable() {
        use std::hash::BuildHasher as _;
        let h = foldhash::fast::RandomState::default();
        for n in [0usize, 5, 255, 256, 1000, 40_000] {
            // Spread hashes, repeated ones (names defined twice) and a crowded bucket.
            let mut v: Vec<(u64, u32)> = (0..n as u32)
                .map(|i| match i % 7 {
                    0 => (h.hash_one(i / 14), i),
                    1 => (i as u64, i),
                    _ => (h.hash_one(i), i),
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            super::sort_by_hash(&mut v);
            assert_eq!(v, want, "{n} pairs");
        }
    }

    #[test]
    fn enumerator_names_are_checked_when_parsed_and_made_when_listed() {
        let mut b = BtfBuilder::new();
        b.enum_("color", 4, true, &[("RED", -1), ("GREEN", 2)]);
        let raw = b.build();
        let btf = Btf::from_raw(&raw).unwrap();
        assert_eq!(btf.enumerator("GREEN").unwrap(), 2);
        assert_eq!(btf.enumerator("RED").unwrap(), -1);
        assert!(btf.enumerator("BLUE").is_err());
        let id = btf.enum_by_name("color").unwrap();
        let v = btf.enum_values(id).unwrap();
        assert_eq!((&*v[0].name, v[0].value as i64), ("RED", -1));
        assert_eq!(btf.enum_variant_name(id, 2), Some("GREEN"));
        // The first enumerator's name offset (after the 12-byte enum header).
        let rec = 24 + 12;
        let str_len = u32::from_le_bytes(raw[20..24].try_into().unwrap());
        let mut bad = raw.clone();
        bad[rec..rec + 4].copy_from_slice(&(str_len + 1).to_le_bytes());
        let e = err(&bad);
        assert!(
            e.contains(&format!("type id 1: name offset {} outside", str_len + 1)),
            "{e}"
        );
        // The end of the section is an empty name, as for a type's name.
        let mut end = raw.clone();
        end[rec..rec + 4].copy_from_slice(&str_len.to_le_bytes());
        let btf = Btf::from_raw(&end).unwrap();
        assert_eq!(&*btf.enum_values(TypeId(1)).unwrap()[0].name, "");

        // Split: an enumerator may be named by a base string.
        let str_off = u32::from_le_bytes(raw[16..20].try_into().unwrap()) as usize;
        let strings = &raw[24 + str_off..];
        let green = strings.windows(6).position(|w| w == b"GREEN\0").unwrap() as u32;
        let mut s = BtfBuilder::split(btf.type_count(), strings.len() as u32);
        let own = s.enum_("mine", 4, false, &[("ONE", 1), ("TWO", 7)]);
        let mut sb = s.build();
        sb[24 + 12..24 + 16].copy_from_slice(&green.to_le_bytes());
        let split = Btf::from_raw(&raw).unwrap().split_from_raw(&sb).unwrap();
        let v = split.enum_values(TypeId(own)).unwrap();
        assert_eq!((&*v[0].name, v[0].value), ("GREEN", 1));
        // The split part's GREEN (1) wins over the base's (2); the base's others stay.
        assert_eq!(split.enumerator("GREEN").unwrap(), 1);
        assert_eq!(split.enumerator("TWO").unwrap(), 7);
        assert_eq!(split.enumerator("RED").unwrap(), -1);
    }

    #[test]
    fn split_names_may_come_from_the_base() {
        let raw = base();
        let vml = Btf::from_raw(&raw).unwrap();
        let str_off = u32::from_le_bytes(raw[16..20].try_into().unwrap()) as usize;
        let strings = &raw[24 + str_off..];
        let base_name = strings
            .windows(12)
            .position(|w| w == b"task_struct\0")
            .unwrap() as u32;
        let mut s = BtfBuilder::split(vml.type_count(), strings.len() as u32);
        let td = s.typedef("x", 2);
        let own = s.struct_("own", 4, &[("pid", 1, 0, 0)]);
        let mut sb = s.build();
        // The typedef's name is the base's "task_struct".
        sb[24..28].copy_from_slice(&base_name.to_le_bytes());
        // So may a member's: `own`'s only member (after the typedef's 12 bytes and the
        // struct's 12-byte header).
        let mut member_named = sb.clone();
        member_named[48..52].copy_from_slice(&base_name.to_le_bytes());
        let named = vml.split_from_raw(&member_named).unwrap();
        assert_eq!(&*named.members(TypeId(own)).unwrap()[0].name, "task_struct");
        let split = vml.split_from_raw(&sb).unwrap();
        assert_eq!(split.name(TypeId(td)).unwrap(), "task_struct");
        assert_eq!(split.name(TypeId(own)).unwrap(), "own");
        assert_eq!(&*split.members(TypeId(own)).unwrap()[0].name, "pid");
        // Split part first, then the base.
        assert_eq!(
            split.ids_by_name("task_struct"),
            vec![TypeId(td), TypeId(2)]
        );
        assert!(matches!(
            split.kind(TypeId(td)).unwrap(),
            Kind::Typedef { .. }
        ));
        // A split BTF is not a base for another.
        assert!(split.split_from_raw(&sb).is_err());
    }
}
