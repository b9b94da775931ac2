//! Hand-written `Serialize`/`Deserialize` of [`RenderedValue`].
//!
//! Reading never buffers: when `kind` is the first key (as every writer of this format puts it),
//! the fields are read straight from the input with the types that kind needs. Keys before
//! `kind` are read with the one type every kind gives them (`bits` is always a `u32`, …); only
//! `value`, whose type depends on the kind, is kept as a number or boolean until `kind` is
//! known. Unknown keys, and keys after `kind` that belong to another kind, are skipped; a key
//! given twice is an error.
//!
//! Writing: `kind` first, then the fields in the order of the wire format. A sub-value that
//! would nest deeper than [`MAX_JSON_DEPTH`] is written as `unsupported`
//! ([`crate::reasons::RENDERED_TOO_DEEP`]), a non-finite float as `unsupported`
//! ([`crate::reasons::NON_FINITE_FLOAT`]): neither can be read back otherwise.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::reasons;
use crate::rendered::{MAX_JSON_DEPTH, RenderedMember, RenderedValue, child_json_step};

// ---------------------------------------------------------------------------------------------
// Serialize

impl Serialize for RenderedValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SerAt(self, 1).serialize(s)
    }
}

impl Serialize for RenderedMember {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SerMember(self, 1).serialize(s)
    }
}

/// A value whose object sits at JSON level `.1` (1-based).
struct SerAt<'a>(&'a RenderedValue, usize);
/// A member whose object sits at JSON level `.1`; its value is one level deeper.
struct SerMember<'a>(&'a RenderedMember, usize);
struct SerMembers<'a>(&'a [RenderedMember], usize);
struct SerElements<'a>(&'a [RenderedValue], usize);

impl Serialize for SerMember<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("value", &SerAt(&self.0.value, self.1 + 1))?;
        m.end()
    }
}

impl Serialize for SerMembers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            seq.serialize_element(&SerMember(m, self.1))?;
        }
        seq.end()
    }
}

impl Serialize for SerElements<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&SerAt(e, self.1))?;
        }
        seq.end()
    }
}

/// Why `v`, at JSON level `level`, is written as `unsupported` instead of itself: its
/// children would nest deeper than [`MAX_JSON_DEPTH`], or it is a non-finite float.
pub(crate) fn written_as_unsupported(v: &RenderedValue, level: usize) -> Option<&'static str> {
    use RenderedValue as V;
    let has_children = match v {
        V::Struct { members, .. } => !members.is_empty(),
        V::Array { elements, .. } => !elements.is_empty(),
        V::Ptr { deref, .. } => deref.is_some(),
        V::Truncated { .. } => true,
        _ => false,
    };
    if has_children && level + child_json_step(v) > MAX_JSON_DEPTH {
        Some(reasons::RENDERED_TOO_DEEP)
    } else if matches!(v, V::Float { value, .. } if !value.is_finite()) {
        Some(reasons::NON_FINITE_FLOAT)
    } else {
        None
    }
}

fn write_unsupported<S: Serializer>(s: S, reason: &str) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("kind", "unsupported")?;
    m.serialize_entry("reason", reason)?;
    m.end()
}

impl Serialize for SerAt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use RenderedValue as V;
        let SerAt(v, level) = *self;
        let child_level = level + child_json_step(v);
        if let Some(reason) = written_as_unsupported(v, level) {
            return write_unsupported(s, reason);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", v.kind())?;
        if crate::rendered_fast::write_rest(v, level) {
            return m.end();
        }
        match v {
            V::Int { bits, value } => {
                m.serialize_entry("bits", bits)?;
                m.serialize_entry("value", value)?;
            }
            V::Uint { bits, value } => {
                m.serialize_entry("bits", bits)?;
                m.serialize_entry("value", value)?;
            }
            V::Bool { value } => m.serialize_entry("value", value)?,
            V::Char { value } => m.serialize_entry("value", value)?,
            V::Float { bits, value } => {
                m.serialize_entry("bits", bits)?;
                m.serialize_entry("value", value)?;
            }
            V::Enum {
                bits,
                value,
                variant,
                is_signed,
            } => {
                m.serialize_entry("bits", bits)?;
                m.serialize_entry("value", value)?;
                m.serialize_entry("variant", variant)?;
                m.serialize_entry("is_signed", is_signed)?;
            }
            V::Struct { type_name, members } => {
                m.serialize_entry("type_name", type_name)?;
                // The members array is one level below the object, member objects two.
                m.serialize_entry("members", &SerMembers(members, level + 2))?;
            }
            V::Array { len, elements } => {
                m.serialize_entry("len", len)?;
                m.serialize_entry("elements", &SerElements(elements, child_level))?;
            }
            V::CpuList { cpus } => m.serialize_entry("cpus", cpus)?,
            V::Ptr {
                value,
                deref,
                deref_skipped_reason,
                cast_annotation,
            } => {
                m.serialize_entry("value", value)?;
                if let Some(d) = deref {
                    m.serialize_entry("deref", &SerAt(d, child_level))?;
                }
                if let Some(r) = deref_skipped_reason {
                    m.serialize_entry("deref_skipped_reason", r)?;
                }
                if let Some(c) = cast_annotation {
                    m.serialize_entry("cast_annotation", c)?;
                }
            }
            V::Bytes { hex } => m.serialize_entry("hex", hex)?,
            V::Truncated {
                needed,
                had,
                partial,
            } => {
                m.serialize_entry("needed", needed)?;
                m.serialize_entry("had", had)?;
                m.serialize_entry("partial", &SerAt(partial, child_level))?;
            }
            V::Unsupported { reason } => m.serialize_entry("reason", reason)?,
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Deserialize

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int,
    Uint,
    Bool,
    Char,
    Float,
    Enum,
    Struct,
    Array,
    CpuList,
    Ptr,
    Bytes,
    Truncated,
    Unsupported,
}

/// The wire names of every `kind`, in declaration order.
pub(crate) const KINDS: &[&str] = &[
    "int",
    "uint",
    "bool",
    "char",
    "float",
    "enum",
    "struct",
    "array",
    "cpu_list",
    "ptr",
    "bytes",
    "truncated",
    "unsupported",
];

impl Kind {
    fn from_name(s: &str) -> Option<Kind> {
        Some(match s {
            "int" => Kind::Int,
            "uint" => Kind::Uint,
            "bool" => Kind::Bool,
            "char" => Kind::Char,
            "float" => Kind::Float,
            "enum" => Kind::Enum,
            "struct" => Kind::Struct,
            "array" => Kind::Array,
            "cpu_list" => Kind::CpuList,
            "ptr" => Kind::Ptr,
            "bytes" => Kind::Bytes,
            "truncated" => Kind::Truncated,
            "unsupported" => Kind::Unsupported,
            _ => return None,
        })
    }
}

/// Every key any kind knows; the discriminant doubles as the bit in [`Acc::seen`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    Kind,
    Bits,
    Value,
    Variant,
    IsSigned,
    TypeName,
    Members,
    Len,
    Elements,
    Cpus,
    Deref,
    DerefSkippedReason,
    CastAnnotation,
    Hex,
    Needed,
    Had,
    Partial,
    Reason,
    Other,
}

impl Field {
    fn from_name(s: &str) -> Field {
        match s {
            "kind" => Field::Kind,
            "bits" => Field::Bits,
            "value" => Field::Value,
            "variant" => Field::Variant,
            "is_signed" => Field::IsSigned,
            "type_name" => Field::TypeName,
            "members" => Field::Members,
            "len" => Field::Len,
            "elements" => Field::Elements,
            "cpus" => Field::Cpus,
            "deref" => Field::Deref,
            "deref_skipped_reason" => Field::DerefSkippedReason,
            "cast_annotation" => Field::CastAnnotation,
            "hex" => Field::Hex,
            "needed" => Field::Needed,
            "had" => Field::Had,
            "partial" => Field::Partial,
            "reason" => Field::Reason,
            _ => Field::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Kind => "kind",
            Field::Bits => "bits",
            Field::Value => "value",
            Field::Variant => "variant",
            Field::IsSigned => "is_signed",
            Field::TypeName => "type_name",
            Field::Members => "members",
            Field::Len => "len",
            Field::Elements => "elements",
            Field::Cpus => "cpus",
            Field::Deref => "deref",
            Field::DerefSkippedReason => "deref_skipped_reason",
            Field::CastAnnotation => "cast_annotation",
            Field::Hex => "hex",
            Field::Needed => "needed",
            Field::Had => "had",
            Field::Partial => "partial",
            Field::Reason => "reason",
            Field::Other => "(unknown)",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Whether `self` is a field of `kind` (other keys are skipped like unknown ones).
    fn belongs_to(self, kind: Kind) -> bool {
        use Field as F;
        match kind {
            Kind::Int | Kind::Uint | Kind::Float => matches!(self, F::Bits | F::Value),
            Kind::Bool | Kind::Char => self == F::Value,
            Kind::Enum => matches!(self, F::Bits | F::Value | F::Variant | F::IsSigned),
            Kind::Struct => matches!(self, F::TypeName | F::Members),
            Kind::Array => matches!(self, F::Len | F::Elements),
            Kind::CpuList => self == F::Cpus,
            Kind::Ptr => matches!(
                self,
                F::Value | F::Deref | F::DerefSkippedReason | F::CastAnnotation
            ),
            Kind::Bytes => self == F::Hex,
            Kind::Truncated => matches!(self, F::Needed | F::Had | F::Partial),
            Kind::Unsupported => self == F::Reason,
        }
    }
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(Field::from_name(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Field, E> {
        Ok(std::str::from_utf8(v).map_or(Field::Other, Field::from_name))
    }
}

struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = Kind;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KindSeed {
    type Value = Kind;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a rendered value kind (a string)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Kind::from_name(v).ok_or_else(|| E::unknown_variant(v, KINDS))
    }
}

/// A `value` read before `kind` was known: kept as what the input held.
#[derive(Clone, Copy, Debug)]
enum Scalar {
    U(u64),
    I(i64),
    F(f64),
    B(bool),
    /// Anything else (string, object, …): kept only to report it.
    Other(&'static str),
}

impl Scalar {
    fn unexpected(&self) -> de::Unexpected<'static> {
        match *self {
            Scalar::U(v) => de::Unexpected::Unsigned(v),
            Scalar::I(v) => de::Unexpected::Signed(v),
            Scalar::F(v) => de::Unexpected::Float(v),
            Scalar::B(v) => de::Unexpected::Bool(v),
            Scalar::Other(what) => de::Unexpected::Other(what),
        }
    }

    /// Converts to the type `kind` needs, as serde's own number conversions would.
    fn store<E: de::Error>(self, acc: &mut Acc, kind: Kind) -> Result<(), E> {
        // Like serde's own messages, naming the key: the error's path stops at the object.
        let bad = |exp: &str| {
            E::custom(format_args!(
                "invalid type: {}, expected {exp} in `value`",
                self.unexpected()
            ))
        };
        let range = |exp: &str| {
            E::custom(format_args!(
                "invalid value: {}, expected {exp} in `value`",
                self.unexpected()
            ))
        };
        match kind {
            Kind::Int | Kind::Enum => {
                acc.int = match self {
                    Scalar::I(v) => v,
                    Scalar::U(v) => i64::try_from(v).map_err(|_| range("i64"))?,
                    _ => return Err(bad("i64")),
                }
            }
            Kind::Uint | Kind::Ptr => {
                acc.uint = match self {
                    Scalar::U(v) => v,
                    Scalar::I(v) => u64::try_from(v).map_err(|_| range("u64"))?,
                    _ => return Err(bad("u64")),
                }
            }
            Kind::Char => {
                acc.byte = match self {
                    Scalar::U(v) => u8::try_from(v).map_err(|_| range("u8"))?,
                    Scalar::I(v) => u8::try_from(v).map_err(|_| range("u8"))?,
                    _ => return Err(bad("u8")),
                }
            }
            Kind::Bool => {
                acc.boolean = match self {
                    Scalar::B(v) => v,
                    _ => return Err(bad("a boolean")),
                }
            }
            Kind::Float => {
                acc.float = match self {
                    Scalar::F(v) => v,
                    Scalar::U(v) => v as f64,
                    Scalar::I(v) => v as f64,
                    _ => return Err(bad("f64")),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or boolean")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::B(v))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Scalar, E> {
        Ok(Scalar::Other("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null"))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("an object"))
    }
}

/// Fields read so far; which ones were present is in `seen`.
#[derive(Default)]
struct Acc {
    /// `value` when it came before `kind`.
    early_value: Option<Scalar>,
    seen: u32,
    bits: u32,
    int: i64,
    uint: u64,
    boolean: bool,
    byte: u8,
    float: f64,
    variant: Option<String>,
    is_signed: bool,
    type_name: Option<String>,
    members: Vec<RenderedMember>,
    len: usize,
    elements: Vec<RenderedValue>,
    text: String,
    deref: Option<Box<RenderedValue>>,
    deref_skipped_reason: Option<String>,
    cast_annotation: Option<String>,
    needed: usize,
    had: usize,
    partial: Option<RenderedValue>,
}

impl Acc {
    /// Reads the value of `field` from `d`. With `kind` known, keys of other kinds are skipped
    /// and `value` gets the kind's type; before `kind` (`None`) every key is read with the one
    /// type all kinds give it, and `value` is kept as a [`Scalar`].
    fn read<'de, D: Deserializer<'de>>(
        &mut self,
        kind: Option<Kind>,
        field: Field,
        d: D,
    ) -> Result<(), D::Error> {
        use Field as F;
        if field == F::Other || kind.is_some_and(|k| !field.belongs_to(k)) {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(());
        }
        if self.seen & field.bit() != 0 {
            return Err(de::Error::duplicate_field(field.name()));
        }
        self.seen |= field.bit();
        match field {
            F::Bits => self.bits = u32::deserialize(d)?,
            F::Value => match kind {
                None => self.early_value = Some(ScalarSeed.deserialize(d)?),
                Some(Kind::Int | Kind::Enum) => self.int = i64::deserialize(d)?,
                Some(Kind::Uint | Kind::Ptr) => self.uint = u64::deserialize(d)?,
                Some(Kind::Bool) => self.boolean = bool::deserialize(d)?,
                Some(Kind::Char) => self.byte = u8::deserialize(d)?,
                Some(Kind::Float) => self.float = f64::deserialize(d)?,
                Some(_) => unreachable!("`value` belongs to scalar kinds only"),
            },
            F::Variant => self.variant = Option::deserialize(d)?,
            F::IsSigned => self.is_signed = bool::deserialize(d)?,
            F::TypeName => self.type_name = Option::deserialize(d)?,
            F::Members => self.members = Vec::deserialize(d)?,
            F::Len => self.len = usize::deserialize(d)?,
            F::Elements => self.elements = Vec::deserialize(d)?,
            F::Cpus | F::Hex | F::Reason => self.text = String::deserialize(d)?,
            F::Deref => self.deref = Option::<RenderedValue>::deserialize(d)?.map(Box::new),
            F::DerefSkippedReason => self.deref_skipped_reason = Option::deserialize(d)?,
            F::CastAnnotation => self.cast_annotation = Option::deserialize(d)?,
            F::Needed => self.needed = usize::deserialize(d)?,
            F::Had => self.had = usize::deserialize(d)?,
            F::Partial => self.partial = Some(RenderedValue::deserialize(d)?),
            F::Kind | F::Other => unreachable!("handled by the caller / above"),
        }
        Ok(())
    }

    fn require<E: de::Error>(&self, fields: &[Field]) -> Result<(), E> {
        match fields.iter().find(|f| self.seen & f.bit() == 0) {
            Some(f) => Err(E::missing_field(f.name())),
            None => Ok(()),
        }
    }

    fn finish<E: de::Error>(mut self, kind: Kind) -> Result<RenderedValue, E> {
        use Field as F;
        use RenderedValue as V;
        if let Some(v) = self.early_value.take()
            && F::Value.belongs_to(kind)
        {
            v.store(&mut self, kind)?;
        }
        Ok(match kind {
            Kind::Int => {
                self.require(&[F::Bits, F::Value])?;
                V::Int {
                    bits: self.bits,
                    value: self.int,
                }
            }
            Kind::Uint => {
                self.require(&[F::Bits, F::Value])?;
                V::Uint {
                    bits: self.bits,
                    value: self.uint,
                }
            }
            Kind::Bool => {
                self.require(&[F::Value])?;
                V::Bool {
                    value: self.boolean,
                }
            }
            Kind::Char => {
                self.require(&[F::Value])?;
                V::Char { value: self.byte }
            }
            Kind::Float => {
                self.require(&[F::Bits, F::Value])?;
                V::Float {
                    bits: self.bits,
                    value: self.float,
                }
            }
            Kind::Enum => {
                self.require(&[F::Bits, F::Value])?;
                V::Enum {
                    bits: self.bits,
                    value: self.int,
                    variant: self.variant,
                    is_signed: self.is_signed,
                }
            }
            Kind::Struct => {
                self.require(&[F::Members])?;
                V::Struct {
                    type_name: self.type_name,
                    members: self.members,
                }
            }
            Kind::Array => {
                self.require(&[F::Len, F::Elements])?;
                V::Array {
                    len: self.len,
                    elements: self.elements,
                }
            }
            Kind::CpuList => {
                self.require(&[F::Cpus])?;
                V::CpuList { cpus: self.text }
            }
            Kind::Ptr => {
                self.require(&[F::Value])?;
                V::Ptr {
                    value: self.uint,
                    deref: self.deref,
                    deref_skipped_reason: self.deref_skipped_reason,
                    cast_annotation: self.cast_annotation,
                }
            }
            Kind::Bytes => {
                self.require(&[F::Hex])?;
                V::Bytes { hex: self.text }
            }
            Kind::Truncated => {
                self.require(&[F::Needed, F::Had, F::Partial])?;
                V::Truncated {
                    needed: self.needed,
                    had: self.had,
                    partial: Box::new(self.partial.take().expect("required above")),
                }
            }
            Kind::Unsupported => {
                self.require(&[F::Reason])?;
                V::Unsupported { reason: self.text }
            }
        })
    }
}

/// Reads the value of one field straight from the input.
struct ReadField<'a> {
    acc: &'a mut Acc,
    kind: Option<Kind>,
    field: Field,
}

impl<'de> DeserializeSeed<'de> for ReadField<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.acc.read(self.kind, self.field, d)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = RenderedValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a rendered value (an object with a `kind`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RenderedValue, A::Error> {
        let mut acc = Acc::default();
        // Writers put `kind` first; keys before it are read with their kind-independent type
        // (so error paths stay exact), `value` kept until its type is known.
        let kind = loop {
            match map.next_key_seed(FieldSeed)? {
                None => return Err(de::Error::missing_field("kind")),
                Some(Field::Kind) => break map.next_value_seed(KindSeed)?,
                Some(field) => map.next_value_seed(ReadField {
                    acc: &mut acc,
                    kind: None,
                    field,
                })?,
            }
        };
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            if field == Field::Kind {
                return Err(de::Error::duplicate_field("kind"));
            }
            map.next_value_seed(ReadField {
                acc: &mut acc,
                kind: Some(kind),
                field,
            })?;
        }
        acc.finish(kind)
    }
}

impl<'de> Deserialize<'de> for RenderedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}
