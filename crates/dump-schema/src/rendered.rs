//! `RenderedValue`: guest memory rendered through BTF.
//!
//! The wire form is internally tagged by `"kind"` (see the crate docs). Serialization and
//! deserialization are hand-written (`rendered_serde.rs`): serde's derived internally-tagged
//! enums buffer every object before dispatching, which made typed parsing slower than parsing
//! into `serde_json::Value`.
//!
//! # Depth
//! Values come from untrusted guest memory and may nest deeply (pointer chains, nested
//! structs). Everything this crate does with a value is safe at any depth:
//! - `Drop`, `Clone`, `PartialEq` and [`RenderedValue::json_depth`] are iterative;
//! - `Display` and `Debug` stop descending at [`MAX_DISPLAY_DEPTH`] and print `…`;
//! - `Serialize` replaces a sub-value that would nest more than [`MAX_JSON_DEPTH`] JSON levels
//!   by an `unsupported` value, so every written document can be read back (serde_json refuses
//!   documents nested deeper than 128 levels);

use schemars::JsonSchema;

/// Deepest JSON nesting, counted inside one [`RenderedValue`], that serialization writes.
///
/// A report puts a value at most 8 JSON levels deep, and serde_json reads at most 128 levels, so
/// a written dump can always be read back. One struct level costs 3 JSON levels (object,
/// `members` array, member object), an array level 2, a pointer or truncated level 1.
pub const MAX_JSON_DEPTH: usize = 112;

/// Deepest [`RenderedValue`] nesting that `Display` and `Debug` descend into.
pub const MAX_DISPLAY_DEPTH: usize = 64;

/// A value read from guest memory and rendered through BTF.
///
/// Internally tagged on the wire by `"kind"` with the snake_case variant name.
///
/// `RenderedValue` implements `Drop` (iteratively, so that dropping a deep value cannot overflow
/// the stack); match it by reference (`match &value`) or use the accessor methods rather than
/// moving fields out of it.
#[derive(JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schemars(
    title = "RenderedValue",
    description = "Guest memory rendered through BTF, tagged by `kind`."
)]
pub enum RenderedValue {
    /// Signed integer of `bits` width.
    Int { bits: u32, value: i64 },
    /// Unsigned integer of `bits` width.
    Uint { bits: u32, value: u64 },
    /// A `_Bool`.
    Bool { value: bool },
    /// A `char` (one byte).
    Char { value: u8 },
    /// A float of `bits` width; always finite on the wire.
    Float { bits: u32, value: f64 },
    /// `variant` is `None` (written as `null`) when no enumerator matches.
    Enum {
        bits: u32,
        value: i64,
        variant: Option<String>,
        #[serde(default)]
        is_signed: bool,
    },
    /// `type_name` is `None` (written as `null`) for anonymous structs/unions.
    Struct {
        type_name: Option<String>,
        members: Vec<RenderedMember>,
    },
    /// `len` is the declared length; at most 4096 `elements` are rendered.
    Array {
        len: usize,
        elements: Vec<RenderedValue>,
    },
    /// A cpumask as a range list, e.g. `0-2,5`.
    CpuList { cpus: String },
    /// A pointer; `deref` is the pointee when it was followed.
    Ptr {
        value: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deref: Option<Box<RenderedValue>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deref_skipped_reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cast_annotation: Option<String>,
    },
    /// Lowercase hex, two digits per byte, separated by one space.
    Bytes { hex: String },
    /// Fewer bytes (`had`) were available than the type needs (`needed`).
    Truncated {
        needed: usize,
        had: usize,
        partial: Box<RenderedValue>,
    },
    /// A type that cannot be rendered, and why.
    Unsupported { reason: String },
}

/// One member of a rendered struct; anonymous members have `name == ""`.
#[derive(Clone, PartialEq, JsonSchema, serde::Deserialize)]
pub struct RenderedMember {
    pub name: String,
    pub value: RenderedValue,
}

impl RenderedMember {
    /// A member named `name` (`""` for an anonymous member).
    pub fn new(name: impl Into<String>, value: RenderedValue) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }
}

impl RenderedValue {
    /// The wire `kind` of this value (`"int"`, `"struct"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Int { .. } => "int",
            Self::Uint { .. } => "uint",
            Self::Bool { .. } => "bool",
            Self::Char { .. } => "char",
            Self::Float { .. } => "float",
            Self::Enum { .. } => "enum",
            Self::Struct { .. } => "struct",
            Self::Array { .. } => "array",
            Self::CpuList { .. } => "cpu_list",
            Self::Ptr { .. } => "ptr",
            Self::Bytes { .. } => "bytes",
            Self::Truncated { .. } => "truncated",
            Self::Unsupported { .. } => "unsupported",
        }
    }

    /// A named struct.
    pub fn named_struct(type_name: impl Into<String>, members: Vec<RenderedMember>) -> Self {
        Self::Struct {
            type_name: Some(type_name.into()),
            members,
        }
    }

    /// An anonymous struct or union.
    pub fn anon_struct(members: Vec<RenderedMember>) -> Self {
        Self::Struct {
            type_name: None,
            members,
        }
    }

    /// A pointer that was not followed.
    pub fn ptr(value: u64) -> Self {
        Self::Ptr {
            value,
            deref: None,
            deref_skipped_reason: None,
            cast_annotation: None,
        }
    }

    /// An `unsupported` value.
    pub fn unsupported(reason: impl Into<String>) -> Self {
        Self::Unsupported {
            reason: reason.into(),
        }
    }

    /// The member `name` of a struct (searching anonymous members too), if any.
    pub fn member(&self, name: &str) -> Option<&RenderedValue> {
        let Self::Struct { members, .. } = self else {
            return None;
        };
        // Anonymous members nest at most as deep as the value itself; an explicit stack keeps
        // the search iterative.
        let mut stack: Vec<&[RenderedMember]> = vec![members];
        while let Some(ms) = stack.pop() {
            for m in ms {
                if m.name == name {
                    return Some(&m.value);
                }
                if m.name.is_empty()
                    && let Self::Struct { members, .. } = &m.value
                {
                    stack.push(members);
                }
            }
        }
        None
    }

    /// The value as an unsigned number, for integer-like kinds (`int`, `uint`, `bool`, `char`,
    /// `enum`, `ptr`); signed values are reinterpreted as two's complement.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Int { value, .. } | Self::Enum { value, .. } => Some(*value as u64),
            Self::Uint { value, .. } | Self::Ptr { value, .. } => Some(*value),
            Self::Bool { value } => Some(u64::from(*value)),
            Self::Char { value } => Some(u64::from(*value)),
            _ => None,
        }
    }

    /// Direct children of this value, in wire order.
    pub(crate) fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a RenderedValue)) {
        match self {
            Self::Struct { members, .. } => members.iter().for_each(|m| f(&m.value)),
            Self::Array { elements, .. } => elements.iter().for_each(f),
            Self::Ptr { deref: Some(d), .. } => f(d),
            Self::Truncated { partial, .. } => f(partial),
            _ => {}
        }
    }

    /// JSON levels this value occupies when serialized (a scalar value is 1), computed without
    /// recursion.
    pub fn json_depth(&self) -> usize {
        let mut max = 0;
        let mut stack = vec![(self, 1usize)];
        while let Some((v, d)) = stack.pop() {
            max = max.max(d);
            let step = child_json_step(v);
            v.for_each_child(|c| stack.push((c, d + step)));
        }
        max
    }

    fn has_grandchildren(&self) -> bool {
        let mut any = false;
        self.for_each_child(|c| any |= c.is_container());
        any
    }

    fn is_container(&self) -> bool {
        match self {
            Self::Struct { members, .. } => !members.is_empty(),
            Self::Array { elements, .. } => !elements.is_empty(),
            Self::Ptr { deref, .. } => deref.is_some(),
            Self::Truncated { .. } => true,
            _ => false,
        }
    }

    /// Moves this value's children onto `out`, leaving it childless.
    fn take_children(&mut self, out: &mut Vec<RenderedValue>) {
        match self {
            Self::Struct { members, .. } => {
                out.extend(std::mem::take(members).into_iter().map(|m| m.value))
            }
            Self::Array { elements, .. } => out.append(elements),
            Self::Ptr { deref, .. } => {
                if let Some(d) = deref.take() {
                    out.push(*d);
                }
            }
            Self::Truncated { partial, .. } => {
                out.push(std::mem::replace(&mut **partial, PLACEHOLDER_LEAF));
            }
            _ => {}
        }
    }
}

impl Clone for RenderedValue {
    /// Iterative (safe at any depth): children are cloned first, bottom-up, on an explicit
    /// stack.
    fn clone(&self) -> Self {
        enum Step<'a> {
            Visit(&'a RenderedValue),
            Build(&'a RenderedValue),
        }
        let mut steps = vec![Step::Visit(self)];
        // Clones of finished subtrees, in visiting order.
        let mut done: Vec<RenderedValue> = Vec::new();
        while let Some(step) = steps.pop() {
            match step {
                Step::Visit(v) => {
                    steps.push(Step::Build(v));
                    let mut children = Vec::new();
                    v.for_each_child(|c| children.push(c));
                    // Reversed so that they are visited, and finished, in order.
                    steps.extend(children.into_iter().rev().map(Step::Visit));
                }
                Step::Build(v) => {
                    let mut n = 0;
                    v.for_each_child(|_| n += 1);
                    let children = done.split_off(done.len() - n);
                    done.push(v.clone_with(children));
                }
            }
        }
        done.pop().expect("the root was built")
    }
}

impl RenderedValue {
    /// A copy of `self` whose children are `children` (clones of its own, in wire order).
    fn clone_with(&self, children: Vec<RenderedValue>) -> RenderedValue {
        use RenderedValue as V;
        let mut children = children.into_iter();
        match self {
            V::Int { bits, value } => V::Int {
                bits: *bits,
                value: *value,
            },
            V::Uint { bits, value } => V::Uint {
                bits: *bits,
                value: *value,
            },
            V::Bool { value } => V::Bool { value: *value },
            V::Char { value } => V::Char { value: *value },
            V::Float { bits, value } => V::Float {
                bits: *bits,
                value: *value,
            },
            V::Enum {
                bits,
                value,
                variant,
                is_signed,
            } => V::Enum {
                bits: *bits,
                value: *value,
                variant: variant.clone(),
                is_signed: *is_signed,
            },
            V::Struct { type_name, members } => V::Struct {
                type_name: type_name.clone(),
                members: members
                    .iter()
                    .zip(children)
                    .map(|(m, value)| RenderedMember {
                        name: m.name.clone(),
                        value,
                    })
                    .collect(),
            },
            V::Array { len, .. } => V::Array {
                len: *len,
                elements: children.collect(),
            },
            V::CpuList { cpus } => V::CpuList { cpus: cpus.clone() },
            V::Ptr {
                value,
                deref_skipped_reason,
                cast_annotation,
                ..
            } => V::Ptr {
                value: *value,
                deref: children.next().map(Box::new),
                deref_skipped_reason: deref_skipped_reason.clone(),
                cast_annotation: cast_annotation.clone(),
            },
            V::Bytes { hex } => V::Bytes { hex: hex.clone() },
            V::Truncated { needed, had, .. } => V::Truncated {
                needed: *needed,
                had: *had,
                partial: Box::new(children.next().expect("truncated has its partial")),
            },
            V::Unsupported { reason } => V::Unsupported {
                reason: reason.clone(),
            },
        }
    }
}

/// A leaf swapped in where a child is moved out during `Drop`.
const PLACEHOLDER_LEAF: RenderedValue = RenderedValue::Bool { value: false };

/// JSON levels between a value's object and its children's objects.
pub(crate) fn child_json_step(v: &RenderedValue) -> usize {
    match v {
        // object → members array → member object → value object
        RenderedValue::Struct { .. } => 3,
        // object → elements array → element object
        RenderedValue::Array { .. } => 2,
        _ => 1,
    }
}

impl Drop for RenderedValue {
    fn drop(&mut self) {
        // Fast path: values at most two levels deep drop through the usual glue.
        if !self.has_grandchildren() {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut v) = pending.pop() {
            v.take_children(&mut pending);
            // `v` is childless now; dropping it does not recurse.
        }
    }
}

impl PartialEq for RenderedValue {
    /// Structural equality, iterative (safe at any depth). Floats compare with `==`.
    fn eq(&self, other: &Self) -> bool {
        let mut stack = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            let same = if a.is_container_kind() {
                same_container(a, b, &mut stack)
            } else {
                same_leaf(a, b)
            };
            if !same {
                return false;
            }
        }
        true
    }
}

impl RenderedValue {
    /// Whether this kind of value can hold other values.
    fn is_container_kind(&self) -> bool {
        matches!(
            self,
            Self::Struct { .. } | Self::Array { .. } | Self::Ptr { .. } | Self::Truncated { .. }
        )
    }
}

/// Equality of two values of kinds that hold no other value.
fn same_leaf(a: &RenderedValue, b: &RenderedValue) -> bool {
    use RenderedValue as V;
    match (a, b) {
        (
            V::Int {
                bits: b1,
                value: v1,
            },
            V::Int {
                bits: b2,
                value: v2,
            },
        ) => b1 == b2 && v1 == v2,
        (
            V::Uint {
                bits: b1,
                value: v1,
            },
            V::Uint {
                bits: b2,
                value: v2,
            },
        ) => b1 == b2 && v1 == v2,
        (V::Bool { value: v1 }, V::Bool { value: v2 }) => v1 == v2,
        (V::Char { value: v1 }, V::Char { value: v2 }) => v1 == v2,
        (
            V::Float {
                bits: b1,
                value: v1,
            },
            V::Float {
                bits: b2,
                value: v2,
            },
        ) => b1 == b2 && v1 == v2,
        (
            V::Enum {
                bits: b1,
                value: v1,
                variant: n1,
                is_signed: s1,
            },
            V::Enum {
                bits: b2,
                value: v2,
                variant: n2,
                is_signed: s2,
            },
        ) => b1 == b2 && v1 == v2 && n1 == n2 && s1 == s2,
        (V::Unsupported { reason: r1 }, V::Unsupported { reason: r2 }) => r1 == r2,
        (V::Bytes { hex: h1 }, V::Bytes { hex: h2 }) => h1 == h2,
        (V::CpuList { cpus: c1 }, V::CpuList { cpus: c2 }) => c1 == c2,
        _ => false,
    }
}

/// Pairs of children: leaves compared here (most are, and the first difference ends the
/// comparison), containers pushed on `stack`. Whether no leaf differed.
fn children<'a>(
    pairs: impl Iterator<Item = (&'a RenderedValue, &'a RenderedValue)>,
    stack: &mut Vec<(&'a RenderedValue, &'a RenderedValue)>,
) -> bool {
    for (x, y) in pairs {
        if x.is_container_kind() {
            stack.push((x, y));
        } else if !same_leaf(x, y) {
            return false;
        }
    }
    true
}

/// Equality of two containers apart from their children, which are pushed on `stack` to be
/// compared next.
fn same_container<'a>(
    a: &'a RenderedValue,
    b: &'a RenderedValue,
    stack: &mut Vec<(&'a RenderedValue, &'a RenderedValue)>,
) -> bool {
    use RenderedValue as V;
    match (a, b) {
        (
            V::Struct {
                type_name: t1,
                members: m1,
            },
            V::Struct {
                type_name: t2,
                members: m2,
            },
        ) => {
            let same = t1 == t2
                && m1.len() == m2.len()
                && m1.iter().zip(m2).all(|(x, y)| x.name == y.name);
            same && children(m1.iter().zip(m2).map(|(x, y)| (&x.value, &y.value)), stack)
        }
        (
            V::Array {
                len: l1,
                elements: e1,
            },
            V::Array {
                len: l2,
                elements: e2,
            },
        ) => l1 == l2 && e1.len() == e2.len() && children(e1.iter().zip(e2), stack),
        (
            V::Ptr {
                value: v1,
                deref: d1,
                deref_skipped_reason: r1,
                cast_annotation: c1,
            },
            V::Ptr {
                value: v2,
                deref: d2,
                deref_skipped_reason: r2,
                cast_annotation: c2,
            },
        ) => {
            let same = v1 == v2 && r1 == r2 && c1 == c2 && d1.is_some() == d2.is_some();
            if let (Some(x), Some(y)) = (d1, d2) {
                stack.push((x, y));
            }
            same
        }
        (
            V::Truncated {
                needed: n1,
                had: h1,
                partial: p1,
            },
            V::Truncated {
                needed: n2,
                had: h2,
                partial: p2,
            },
        ) => {
            stack.push((p1, p2));
            n1 == n2 && h1 == h2
        }
        _ => false,
    }
}

/// `Debug` that stops at [`MAX_DISPLAY_DEPTH`] levels (the derived one would recurse without
/// bound).
struct DebugAt<'a>(&'a RenderedValue, usize);

impl std::fmt::Debug for RenderedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DebugAt(self, 0).fmt(f)
    }
}

impl std::fmt::Debug for RenderedMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DebugMember(self, 0).fmt(f)
    }
}

struct DebugMember<'a>(&'a RenderedMember, usize);

impl std::fmt::Debug for DebugMember<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedMember")
            .field("name", &self.0.name)
            .field("value", &DebugAt(&self.0.value, self.1))
            .finish()
    }
}

impl std::fmt::Debug for DebugAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DebugAt(v, depth) = *self;
        if depth >= MAX_DISPLAY_DEPTH {
            return f.write_str("…");
        }
        let d = depth + 1;
        match v {
            RenderedValue::Int { bits, value } => f
                .debug_struct("Int")
                .field("bits", bits)
                .field("value", value)
                .finish(),
            RenderedValue::Uint { bits, value } => f
                .debug_struct("Uint")
                .field("bits", bits)
                .field("value", value)
                .finish(),
            RenderedValue::Bool { value } => f.debug_struct("Bool").field("value", value).finish(),
            RenderedValue::Char { value } => f.debug_struct("Char").field("value", value).finish(),
            RenderedValue::Float { bits, value } => f
                .debug_struct("Float")
                .field("bits", bits)
                .field("value", value)
                .finish(),
            RenderedValue::Enum {
                bits,
                value,
                variant,
                is_signed,
            } => f
                .debug_struct("Enum")
                .field("bits", bits)
                .field("value", value)
                .field("variant", variant)
                .field("is_signed", is_signed)
                .finish(),
            RenderedValue::Struct { type_name, members } => {
                let ms: Vec<_> = members.iter().map(|m| DebugMember(m, d)).collect();
                f.debug_struct("Struct")
                    .field("type_name", type_name)
                    .field("members", &ms)
                    .finish()
            }
            RenderedValue::Array { len, elements } => {
                let es: Vec<_> = elements.iter().map(|e| DebugAt(e, d)).collect();
                f.debug_struct("Array")
                    .field("len", len)
                    .field("elements", &es)
                    .finish()
            }
            RenderedValue::CpuList { cpus } => {
                f.debug_struct("CpuList").field("cpus", cpus).finish()
            }
            RenderedValue::Ptr {
                value,
                deref,
                deref_skipped_reason,
                cast_annotation,
            } => f
                .debug_struct("Ptr")
                .field("value", value)
                .field("deref", &deref.as_deref().map(|x| DebugAt(x, d)))
                .field("deref_skipped_reason", deref_skipped_reason)
                .field("cast_annotation", cast_annotation)
                .finish(),
            RenderedValue::Bytes { hex } => f.debug_struct("Bytes").field("hex", hex).finish(),
            RenderedValue::Truncated {
                needed,
                had,
                partial,
            } => f
                .debug_struct("Truncated")
                .field("needed", needed)
                .field("had", had)
                .field("partial", &DebugAt(partial, d))
                .finish(),
            RenderedValue::Unsupported { reason } => f
                .debug_struct("Unsupported")
                .field("reason", reason)
                .finish(),
        }
    }
}
