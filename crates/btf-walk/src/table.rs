//! The crate's own compact type table, built once from `btf-rs`'s parse.
//!
//! `btf-rs` hands out types by cloning them (a struct's member vector included) on every
//! lookup; rendering thousands of values through it would allocate on every member. We
//! convert each type once into plain `Copy` kinds with spans into flat vectors, so
//! offset resolution and rendering do no allocation per type visited.

use std::collections::HashMap;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    /// Number of items (members, enumerators, variables).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
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

#[derive(Debug)]
pub(crate) struct Ty {
    pub(crate) name: Box<str>,
    pub(crate) kind: Kind,
}

/// The types of one BTF section (a base, or the split part on top of one).
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// Id of `types[0]`: 0 for a base section (whose first entry is `void`).
    pub(crate) first_id: u32,
    pub(crate) types: Vec<Ty>,
    pub(crate) members: Vec<Member>,
    pub(crate) enum_values: Vec<EnumValue>,
    pub(crate) vars: Vec<SecVar>,
    /// Named types worth finding by name (not functions), in id order per name.
    pub(crate) by_name: HashMap<Box<str>, Vec<TypeId>>,
}

impl Table {
    pub(crate) fn get(&self, id: TypeId) -> Option<&Ty> {
        let idx = id.0.checked_sub(self.first_id)?;
        self.types.get(idx as usize)
    }

    pub(crate) fn end_id(&self) -> u32 {
        self.first_id + self.types.len() as u32
    }

    pub(crate) fn members(&self, span: Span) -> &[Member] {
        self.members.get(span.range()).unwrap_or(&[])
    }

    pub(crate) fn enum_values(&self, span: Span) -> &[EnumValue] {
        self.enum_values.get(span.range()).unwrap_or(&[])
    }

    pub(crate) fn vars(&self, span: Span) -> &[SecVar] {
        self.vars.get(span.range()).unwrap_or(&[])
    }

    /// Converts the types `first..=last` of a parsed `btf-rs` object.
    pub(crate) fn build(raw: &btf_rs::Btf, first: u32, last: u32) -> Result<Table> {
        let mut t = Table {
            first_id: first,
            ..Table::default()
        };
        let count = (last as u64 + 1).saturating_sub(first as u64);
        t.types.reserve(count.min(1 << 22) as usize);
        for id in first..=last {
            let rt = raw.resolve_type_by_id(id).map_err(|e| BtfError::Format {
                what: "type section",
                detail: format!("type id {id}: {e}"),
            })?;
            let (name, kind) = t.convert(raw, id, &rt)?;
            if !name.is_empty() && indexed(&kind) {
                t.by_name.entry(name.clone()).or_default().push(TypeId(id));
            }
            t.types.push(Ty { name, kind });
        }
        Ok(t)
    }

    fn convert(
        &mut self,
        raw: &btf_rs::Btf,
        id: u32,
        rt: &btf_rs::Type,
    ) -> Result<(Box<str>, Kind)> {
        use btf_rs::Type as T;
        let name_of = |x: &dyn btf_rs::BtfType| -> Result<Box<str>> {
            match x.get_name_offset() {
                None | Some(0) => Ok(Box::default()),
                Some(_) => raw
                    .resolve_name(x)
                    .map(String::into_boxed_str)
                    .map_err(|e| BtfError::Format {
                        what: "string section",
                        detail: format!("name of type id {id}: {e}"),
                    }),
            }
        };
        let target = |x: &dyn btf_rs::BtfType| TypeId(x.get_type_id().unwrap_or(0));
        let too_big = |what: &'static str, v: usize| BtfError::Format {
            what: "type section",
            detail: format!("type id {id}: {what} {v} does not fit 32 bits"),
        };
        Ok(match rt {
            T::Void => (Box::default(), Kind::Void),
            T::Int(i) => (
                name_of(i)?,
                Kind::Int {
                    size: u32::try_from(i.size()).map_err(|_| too_big("size", i.size()))?,
                    signed: i.is_signed(),
                    is_char: i.is_char(),
                    is_bool: i.is_bool(),
                },
            ),
            T::Float(f) => (
                name_of(f)?,
                Kind::Float {
                    size: u32::try_from(f.size()).map_err(|_| too_big("size", f.size()))?,
                },
            ),
            T::Ptr(p) => (Box::default(), Kind::Ptr { target: target(p) }),
            T::Array(a) => (
                Box::default(),
                Kind::Array {
                    elem: target(a),
                    len: u32::try_from(a.len()).map_err(|_| too_big("length", a.len()))?,
                },
            ),
            T::Struct(s) | T::Union(s) => {
                let start = self.members.len() as u32;
                for m in &s.members {
                    let bits = m.bitfield_size().unwrap_or(0);
                    self.members.push(Member {
                        name: name_of(m)?,
                        ty: target(m),
                        bit_offset: m.bit_offset(),
                        // The kind_flag encoding keeps 8 bits for the width.
                        bitfield_size: bits.min(255) as u8,
                    });
                }
                (
                    name_of(s)?,
                    Kind::Struct {
                        size: u32::try_from(s.size()).map_err(|_| too_big("size", s.size()))?,
                        is_union: matches!(rt, T::Union(_)),
                        members: Span {
                            start,
                            len: s.members.len() as u32,
                        },
                    },
                )
            }
            T::Enum(e) => {
                let start = self.enum_values.len() as u32;
                for v in &e.members {
                    let value = if e.is_signed() {
                        v.val() as i32 as i64 as u64
                    } else {
                        v.val() as u64
                    };
                    self.enum_values.push(EnumValue {
                        name: name_of(v)?,
                        value,
                    });
                }
                (
                    name_of(e)?,
                    Kind::Enum {
                        size: u32::try_from(e.size()).map_err(|_| too_big("size", e.size()))?,
                        signed: e.is_signed(),
                        values: Span {
                            start,
                            len: e.members.len() as u32,
                        },
                    },
                )
            }
            T::Enum64(e) => {
                let start = self.enum_values.len() as u32;
                for v in &e.members {
                    self.enum_values.push(EnumValue {
                        name: name_of(v)?,
                        value: v.val(),
                    });
                }
                (
                    name_of(e)?,
                    Kind::Enum {
                        size: u32::try_from(e.size()).map_err(|_| too_big("size", e.size()))?,
                        signed: e.is_signed(),
                        values: Span {
                            start,
                            len: e.members.len() as u32,
                        },
                    },
                )
            }
            T::Fwd(f) => (
                name_of(f)?,
                Kind::Fwd {
                    is_union: f.is_union(),
                },
            ),
            T::Typedef(td) => (name_of(td)?, Kind::Typedef { target: target(td) }),
            T::Volatile(q) => qual(q, Qualifier::Volatile),
            T::Const(q) => qual(q, Qualifier::Const),
            T::Restrict(q) => qual(q, Qualifier::Restrict),
            T::TypeTag(q) => (
                Box::default(),
                Kind::Qualifier {
                    target: target(q),
                    which: Qualifier::TypeTag,
                },
            ),
            T::Func(f) => (name_of(f)?, Kind::Func { proto: target(f) }),
            T::FuncProto(_) => (Box::default(), Kind::FuncProto),
            T::Var(v) => (name_of(v)?, Kind::Var { target: target(v) }),
            T::Datasec(d) => {
                let start = self.vars.len() as u32;
                for v in &d.variables {
                    self.vars.push(SecVar {
                        var: target(v),
                        offset: v.offset(),
                        size: u32::try_from(v.size()).map_err(|_| too_big("size", v.size()))?,
                    });
                }
                (
                    name_of(d)?,
                    Kind::Datasec {
                        size: u32::try_from(d.size()).map_err(|_| too_big("size", d.size()))?,
                        vars: Span {
                            start,
                            len: d.variables.len() as u32,
                        },
                    },
                )
            }
            T::DeclTag(d) => (Box::default(), Kind::DeclTag { target: target(d) }),
            other => {
                return Err(BtfError::Format {
                    what: "type section",
                    detail: format!("type id {id}: unsupported kind {}", other.name()),
                });
            }
        })
    }
}

fn qual(q: &btf_rs::Volatile, which: Qualifier) -> (Box<str>, Kind) {
    use btf_rs::BtfType;
    (
        Box::default(),
        Kind::Qualifier {
            target: TypeId(q.get_type_id().unwrap_or(0)),
            which,
        },
    )
}

/// Kinds a user looks up by name; functions are left out (tens of thousands of them, and
/// nothing here needs them by name).
fn indexed(kind: &Kind) -> bool {
    !matches!(
        kind,
        Kind::Func { .. } | Kind::FuncProto | Kind::DeclTag { .. }
    )
}
