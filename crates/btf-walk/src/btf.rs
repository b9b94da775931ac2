//! [`Btf`]: a loaded BTF (base, or split on top of a base) and type queries.

use std::sync::{Arc, OnceLock};

use crate::error::{BtfError, Result};
use std::hash::BuildHasher as _;

use crate::table::{EnumValue, Kind, Member, SecVar, Strings, Table, Ty, TypeId, Types};

/// Longest chain of typedefs/qualifiers (or nested arrays) followed before the type graph
/// is declared malformed. Real kernels need fewer than 10; loops hit this bound.
pub(crate) const MAX_CHAIN: usize = 64;

/// A loaded BTF: a base (vmlinux, or a standalone BPF object's BTF) or a split BTF on top
/// of a base (a kernel module, or a BPF object loaded with a base).
///
/// Cheap to clone (reference counted) and `Send + Sync`, so one load serves every walker.
///
/// # Choosing among types that share a name
/// BTF may hold several types of one name (deduplication is not perfect, and a split BTF
/// may redefine a base type). Lookups by name use one rule everywhere: the split part is
/// searched before its base (a BPF object's own definition wins); within a part, complete
/// definitions win over forward declarations, then the **lowest type id** wins. All
/// candidates are available through [`Btf::ids_by_name`].
#[derive(Clone)]
pub struct Btf {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) table: Table,
    pub(crate) base: Option<Btf>,
    /// `(hash of the name, index into the table's enumerators)` over this part's enums,
    /// sorted; built on first use: walkers ask for dozens of enumerators, and a scan of
    /// every type per question adds up.
    pub(crate) enumerators: OnceLock<Vec<(u64, u32)>>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("first_id", &self.inner.table.first_id)
            .field("types", &self.inner.table.types.len())
            .field("split", &self.inner.base.is_some())
            .finish()
    }
}

impl Btf {
    /// A base from raw BTF bytes (header checked).
    pub(crate) fn parse_base(bytes: &[u8]) -> Result<Btf> {
        Ok(Btf {
            inner: Arc::new(Inner {
                table: Table::parse(bytes, None)?,
                base: None,
                enumerators: OnceLock::new(),
            }),
        })
    }

    /// A base from its type section and its string section (header checked).
    pub(crate) fn base_from_sections(types: Types<'_>, strings: Strings) -> Result<Btf> {
        Ok(Btf {
            inner: Arc::new(Inner {
                table: Table::parse_sections(types, strings, None)?,
                base: None,
                enumerators: OnceLock::new(),
            }),
        })
    }

    /// Split BTF on top of `self` from raw bytes (header checked).
    pub(crate) fn parse_split(&self, bytes: &[u8]) -> Result<Btf> {
        Ok(Btf {
            inner: Arc::new(Inner {
                table: Table::parse(bytes, Some(&self.inner.table))?,
                base: Some(self.clone()),
                enumerators: OnceLock::new(),
            }),
        })
    }

    /// The base this split BTF sits on, if it is split.
    pub fn base(&self) -> Option<&Btf> {
        self.inner.base.as_ref()
    }

    /// One past the last type id (ids `0..type_count()` exist, base included).
    pub fn type_count(&self) -> u32 {
        self.inner.table.end_id()
    }

    pub(crate) fn table_of(&self, id: TypeId) -> Result<&Table> {
        let t = &self.inner.table;
        if id.0 >= t.first_id {
            if id.0 < t.end_id() {
                return Ok(t);
            }
            return Err(BtfError::NoSuchTypeId(id.0));
        }
        match &self.inner.base {
            Some(b) => b.table_of(id),
            None => Err(BtfError::NoSuchTypeId(id.0)),
        }
    }

    pub(crate) fn ty(&self, id: TypeId) -> Result<&Ty> {
        // No `ok_or(error)`: the error would be built, and dropped out of line, on every
        // call (a renderer asks for kinds and names per value).
        match self.table_of(id)?.get(id) {
            Some(ty) => Ok(ty),
            None => Err(BtfError::NoSuchTypeId(id.0)),
        }
    }

    /// The kind and layout data of a type.
    pub fn kind(&self, id: TypeId) -> Result<Kind> {
        Ok(self.ty(id)?.kind)
    }

    /// The name of a type; empty for anonymous types.
    pub fn name(&self, id: TypeId) -> Result<&str> {
        let t = self.table_of(id)?;
        match t.get(id) {
            Some(ty) => Ok(t.name_of(ty)),
            None => Err(BtfError::NoSuchTypeId(id.0)),
        }
    }

    /// Members of a struct or union (`id` may be a typedef or qualified; it is stripped).
    pub fn members(&self, id: TypeId) -> Result<&[Member]> {
        let id = self.strip(id)?;
        match self.kind(id)? {
            Kind::Struct { members, .. } => {
                let t = self.table_of(id)?;
                Ok(t.members(members, self.own_base(t)))
            }
            k => Err(self.not_a(id, k, "a struct or union")),
        }
    }

    /// The table whose strings names in `t` may use besides `t`'s own: only a split
    /// part's own records may name a base string.
    fn own_base(&self, t: &Table) -> Option<&Table> {
        match &self.inner.base {
            Some(b) if std::ptr::eq(t, &self.inner.table) => Some(&b.inner.table),
            _ => None,
        }
    }

    /// `id` (of kind `k`) is not the `wanted` kind.
    fn not_a(&self, id: TypeId, k: Kind, wanted: &str) -> BtfError {
        BtfError::BadPath {
            path: self.display_name(id),
            why: format!("is a {}, not {wanted}", k.describe()),
        }
    }

    /// Enumerators of an enum (`id` may be a typedef or qualified).
    pub fn enum_values(&self, id: TypeId) -> Result<&[EnumValue]> {
        let id = self.strip(id)?;
        match self.kind(id)? {
            Kind::Enum { values, .. } => {
                let t = self.table_of(id)?;
                Ok(t.enum_values(values, self.own_base(t)))
            }
            k => Err(self.not_a(id, k, "an enum")),
        }
    }

    /// Variables of a data section.
    pub fn datasec_vars(&self, id: TypeId) -> Result<&[SecVar]> {
        match self.kind(id)? {
            Kind::Datasec { vars, .. } => Ok(self.table_of(id)?.vars(vars)),
            k => Err(self.not_a(id, k, "a data section")),
        }
    }

    /// Follows typedefs, qualifiers and type tags to the underlying type.
    pub fn strip(&self, mut id: TypeId) -> Result<TypeId> {
        for _ in 0..MAX_CHAIN {
            match self.kind(id)? {
                Kind::Typedef { target }
                | Kind::Qualifier { target, .. }
                | Kind::DeclTag { target } => id = target,
                _ => return Ok(id),
            }
        }
        Err(BtfError::Malformed {
            id: id.0,
            why: "typedef/qualifier chain too long (a loop?)",
        })
    }

    /// Size in bytes of a value of type `id`.
    ///
    /// Errors for types without a size (void, functions, forward declarations) and for sizes
    /// that overflow 64 bits (corrupt array lengths).
    pub fn size_of(&self, id: TypeId) -> Result<u64> {
        let mut id = id;
        let mut mult: u64 = 1;
        for _ in 0..MAX_CHAIN {
            id = self.strip(id)?;
            let k = self.kind(id)?;
            let unit = match k {
                Kind::Int { size, .. }
                | Kind::Float { size }
                | Kind::Struct { size, .. }
                | Kind::Enum { size, .. }
                | Kind::Datasec { size, .. } => size as u64,
                Kind::Ptr { .. } => 8,
                Kind::Array { elem, len } => {
                    let Some(m) = mult.checked_mul(len as u64) else {
                        return Err(size_overflow(id));
                    };
                    mult = m;
                    id = elem;
                    continue;
                }
                Kind::Var { target } => {
                    id = target;
                    continue;
                }
                k => {
                    return Err(BtfError::BadPath {
                        path: self.display_name(id),
                        why: format!("a {} has no size", k.describe()),
                    });
                }
            };
            // Errors built only on failure (this runs per rendered value).
            return match unit.checked_mul(mult) {
                Some(n) => Ok(n),
                None => Err(size_overflow(id)),
            };
        }
        Err(BtfError::Malformed {
            id: id.0,
            why: "arrays nested too deeply (a loop?)",
        })
    }

    /// Every type id with this exact name (any kind but functions), split part first, each
    /// part in id order.
    pub fn ids_by_name(&self, name: &str) -> Vec<TypeId> {
        let mut out = Vec::new();
        let mut cur = Some(self);
        while let Some(b) = cur {
            out.extend(b.inner.table.ids_named(name));
            cur = b.inner.base.as_ref();
        }
        out
    }

    /// Finds a type by name with the documented duplicate rule (see [`Btf`]), among types
    /// for which `want` holds. Forward declarations are candidates only when no complete
    /// definition exists.
    pub fn find_type(&self, name: &str, want: impl Fn(&Kind) -> bool) -> Option<TypeId> {
        let mut cur = Some(self);
        while let Some(b) = cur {
            let mut fwd = None;
            for id in b.inner.table.ids_named(name) {
                let Some(ty) = b.inner.table.get(id) else {
                    continue;
                };
                if !want(&ty.kind) {
                    continue;
                }
                if matches!(ty.kind, Kind::Fwd { .. }) {
                    fwd.get_or_insert(id);
                } else {
                    return Some(id);
                }
            }
            if fwd.is_some() {
                return fwd;
            }
            cur = b.inner.base.as_ref();
        }
        None
    }

    /// The struct or union named `name` (C `struct name` / `union name`), or, failing
    /// that, a typedef of that name that resolves to one (`cpumask_t`).
    pub fn struct_by_name(&self, name: &str) -> Result<TypeId> {
        self.named(name, "struct or union", |k| {
            matches!(k, Kind::Struct { .. })
        })
    }

    /// The enum (or enum64) named `name`.
    pub fn enum_by_name(&self, name: &str) -> Result<TypeId> {
        self.named(name, "enum", |k| matches!(k, Kind::Enum { .. }))
    }

    /// The type named `name` whose kind `is` (called `what` in the error), or, failing
    /// that, a typedef of that name that resolves to one.
    fn named(&self, name: &str, what: &'static str, is: fn(&Kind) -> bool) -> Result<TypeId> {
        if let Some(id) = self.find_type(name, is) {
            return Ok(id);
        }
        if let Some(td) = self.find_type(name, |k| matches!(k, Kind::Typedef { .. })) {
            let id = self.strip(td)?;
            if is(&self.kind(id)?) {
                return Ok(id);
            }
        }
        Err(BtfError::NoSuchType {
            kind: what,
            name: name.to_string(),
        })
    }

    /// Any named type (struct, union, enum, typedef, int, float, var, datasec) by the
    /// duplicate rule; for C-style lookups such as `u64` or `cpumask_t`.
    pub fn type_by_name(&self, name: &str) -> Result<TypeId> {
        self.find_type(name, |_| true)
            .ok_or_else(|| BtfError::NoSuchType {
                kind: "type",
                name: name.to_string(),
            })
    }

    /// The value of enumerator `variant`, searched in every enum (the kernel's enumerator
    /// names are unique in C). Signed enums' values come back sign-extended.
    pub fn enumerator(&self, variant: &str) -> Result<i64> {
        let mut cur = Some(self);
        while let Some(b) = cur {
            let t = &b.inner.table;
            let base = b.own_base(t);
            let index = b.inner.enumerators.get_or_init(|| {
                // Enumerators are stored in type id order, so among equal names the
                // lowest index is the first definition in id order, which wins.
                let mut v: Vec<(u64, u32)> = (t.raw_enumerators.iter().enumerate())
                    .map(|(i, e)| (t.hasher.hash_one(t.enumerator_name(e, base)), i as u32))
                    .collect();
                crate::table::sort_by_hash(&mut v);
                v
            });
            let h = t.hasher.hash_one(variant.as_bytes());
            let lo = index.partition_point(|e| e.0 < h);
            let found = index[lo..]
                .iter()
                .take_while(|e| e.0 == h)
                .filter_map(|e| t.raw_enumerators.get(e.1 as usize))
                .find(|e| t.enumerator_name(e, base) == variant.as_bytes());
            if let Some(e) = found {
                return Ok(e.value as i64);
            }
            cur = b.inner.base.as_ref();
        }
        Err(BtfError::NoSuchType {
            kind: "enumerator",
            name: variant.to_string(),
        })
    }

    /// The value of `variant` in the enum named `enum_name`.
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Result<i64> {
        let id = self.enum_by_name(enum_name)?;
        self.enum_values(id)?
            .iter()
            .find(|v| &*v.name == variant)
            .map(|v| v.value as i64)
            .ok_or_else(|| BtfError::NoSuchType {
                kind: "enumerator",
                name: format!("{enum_name}::{variant}"),
            })
    }

    /// The name of the enumerator of enum `id` whose value is `value` (the first one when
    /// several share it), or `None`.
    pub fn enum_variant_name(&self, id: TypeId, value: u64) -> Option<&str> {
        let (size, signed) = match self.kind(self.strip(id).ok()?).ok()? {
            Kind::Enum { size, signed, .. } => (size, signed),
            _ => return None,
        };
        let value = normalize(value, size, signed);
        self.enum_values(id)
            .ok()?
            .iter()
            .find(|v| normalize(v.value, size, signed) == value)
            .map(|v| &*v.name)
    }

    /// The per-CPU (or other section) variable named `name`: its `VAR` type's target and
    /// its offset in the data section that lists it (for `.data..percpu`, the offset from
    /// `__per_cpu_start`).
    pub fn section_var(&self, name: &str) -> Result<(TypeId, u64)> {
        let var = self
            .find_type(name, |k| matches!(k, Kind::Var { .. }))
            .ok_or_else(|| BtfError::NoSuchType {
                kind: "variable",
                name: name.to_string(),
            })?;
        let target = match self.kind(var)? {
            Kind::Var { target } => target,
            _ => unreachable!("find_type filtered on Var"),
        };
        let mut cur = Some(self);
        while let Some(b) = cur {
            let t = &b.inner.table;
            for ty in &t.types {
                if let Kind::Datasec { vars, .. } = ty.kind
                    && let Some(v) = t.vars(vars).iter().find(|v| v.var == var)
                {
                    return Ok((target, v.offset as u64));
                }
            }
            cur = b.inner.base.as_ref();
        }
        Err(BtfError::NoSuchType {
            kind: "data section entry for variable",
            name: name.to_string(),
        })
    }

    /// A C-like name of a type for messages and annotations: `struct rq`, `u64`, `int *`.
    pub fn display_name(&self, id: TypeId) -> String {
        let mut suffix = String::new();
        let mut id = id;
        for _ in 0..MAX_CHAIN {
            let (Ok(ty), Ok(name)) = (self.ty(id), self.name(id)) else {
                return format!("<bad type {}>{suffix}", id.0);
            };
            let name = if name.is_empty() { "<anon>" } else { name };
            match ty.kind {
                Kind::Void => return format!("void{suffix}"),
                Kind::Struct {
                    is_union: false, ..
                } => return format!("struct {name}{suffix}"),
                Kind::Struct { is_union: true, .. } => return format!("union {name}{suffix}"),
                Kind::Enum { .. } => return format!("enum {name}{suffix}"),
                Kind::Fwd { is_union } => {
                    let k = if is_union { "union" } else { "struct" };
                    return format!("{k} {name}{suffix}");
                }
                Kind::Ptr { target } => {
                    suffix.insert_str(0, " *");
                    id = target;
                }
                Kind::Array { elem, len } => {
                    suffix.push_str(&format!("[{len}]"));
                    id = elem;
                }
                Kind::Qualifier { target, .. } | Kind::DeclTag { target } => id = target,
                Kind::FuncProto => return format!("fn(..){suffix}"),
                _ => return format!("{name}{suffix}"),
            }
        }
        format!("<type chain too long>{suffix}")
    }
}

/// A size that does not fit 64 bits (a corrupt array length).
fn size_overflow(id: TypeId) -> BtfError {
    BtfError::Malformed {
        id: id.0,
        why: "array size overflows",
    }
}

/// Reduces an enum value to the enum's width, sign-extended if signed, so that values read
/// from memory compare equal with enumerators.
pub(crate) fn normalize(value: u64, size: u32, signed: bool) -> u64 {
    let bits = size.clamp(1, 8) * 8;
    if bits >= 64 {
        return value;
    }
    let mask = (1u64 << bits) - 1;
    let v = value & mask;
    if signed && (v >> (bits - 1)) & 1 == 1 {
        v | !mask
    } else {
        v
    }
}
