//! [`FailureDumpReportAny`]: any of the three reports, told apart by `schema`, and the reading
//! errors.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::{BorrowedStrDeserializer, MapAccessDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::report::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, KNOWN_SCHEMAS,
    SCHEMA_DEGRADED, SCHEMA_DUAL, SCHEMA_SINGLE,
};

/// Any failure dump, as dispatched on its top-level `schema` key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // one per document; boxing would only add noise for users
pub enum FailureDumpReportAny {
    Single(FailureDumpReport),
    Dual(DualFailureDumpReport),
    Degraded(DegradedFailureDumpReport),
}

/// Why a document is not a failure dump. The `Display` form is meant for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing but whitespace.
    #[error("empty input: expected a JSON failure dump (an object with a `schema` key)")]
    Empty,
    /// Not valid JSON (including a truncated document).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid so far, but nested deeper than the reader accepts.
    #[error(
        "JSON nested too deeply at line {line}, column {column}: a failure dump is read to at \
         most 128 levels of arrays and objects"
    )]
    TooDeep { line: usize, column: usize },
    /// Valid JSON that is not an object.
    #[error("not a failure dump: the document is {found}, expected an object with a `schema` key")]
    NotAnObject { found: &'static str },
    /// An object without `schema`.
    #[error("missing `schema` key: expected one of {}", quoted(KNOWN_SCHEMAS))]
    MissingSchema,
    /// `schema` is not one of [`KNOWN_SCHEMAS`]; `found` is its JSON text.
    #[error("unknown schema {found}: expected one of {}", quoted(KNOWN_SCHEMAS))]
    UnknownSchema { found: String },
    /// The document does not match the type its `schema` names.
    #[error(
        "invalid {schema} report {} (line {line}, column {column}): {message}",
        at_path(path)
    )]
    Invalid {
        /// The `schema` value.
        schema: &'static str,
        /// JSON path of the offending field, e.g. `maps[3].value.members[0].value.bits`;
        /// `.` for the top-level object.
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

fn at_path(path: &str) -> String {
    if path == "." {
        "at the top level".to_string()
    } else {
        format!("at `{path}`")
    }
}

fn quoted(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    q.join(", ")
}

impl FailureDumpReportAny {
    /// Reads any failure dump, dispatching on its `schema` key.
    ///
    /// There is no fallback: a missing or unknown `schema` is an error. Errors name the line
    /// and column, and for a type mismatch the JSON path of the offending field.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| diagnose(json, e))
    }

    /// [`Self::from_json`] over bytes, which must be UTF-8.
    pub fn from_slice(json: &[u8]) -> Result<Self, Error> {
        let s = std::str::from_utf8(json).map_err(|e| {
            let (line, column) = line_col(&json[..e.valid_up_to()]);
            Error::Syntax {
                line,
                column,
                message: "invalid UTF-8".to_string(),
            }
        })?;
        Self::from_json(s)
    }

    /// The `schema` value of this report.
    pub fn schema(&self) -> &'static str {
        match self {
            Self::Single(_) => SCHEMA_SINGLE,
            Self::Dual(_) => SCHEMA_DUAL,
            Self::Degraded(_) => SCHEMA_DEGRADED,
        }
    }

    /// JSON, compact.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// JSON, pretty-printed (2-space indent).
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

impl From<FailureDumpReport> for FailureDumpReportAny {
    fn from(r: FailureDumpReport) -> Self {
        Self::Single(r)
    }
}

impl From<DualFailureDumpReport> for FailureDumpReportAny {
    fn from(r: DualFailureDumpReport) -> Self {
        Self::Dual(r)
    }
}

impl From<DegradedFailureDumpReport> for FailureDumpReportAny {
    fn from(r: DegradedFailureDumpReport) -> Self {
        Self::Degraded(r)
    }
}

/// 1-based line and column after `prefix`, as serde_json counts them.
fn line_col(prefix: &[u8]) -> (usize, usize) {
    let line = 1 + prefix.iter().filter(|&&b| b == b'\n').count();
    let column = prefix.len()
        - prefix
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
    (line, column)
}

/// serde_json's message without its ` at line L column C` suffix.
fn message_of(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

/// Turns the fast path's error into one that tells a person what is wrong. Runs only on
/// failure, so it may re-read the document.
fn diagnose(json: &str, e: serde_json::Error) -> Error {
    if json.trim_start().is_empty() {
        return Error::Empty;
    }
    // serde_json stops at 128 levels while reading types (its IgnoredAny pass below has no
    // such limit, so look at this first).
    if message_of(&e).contains("recursion limit exceeded") {
        return Error::TooDeep {
            line: e.line(),
            column: e.column(),
        };
    }
    // One pass tells whether it is JSON at all (the typed read may have stopped earlier, at a
    // missing `schema` or a wrong type; an over-long fixed-size array reads as "trailing
    // characters"), what the top level is, and what `schema` holds.
    let schema = match serde_json::from_str::<Probe>(json) {
        Err(se) => {
            return Error::Syntax {
                line: se.line(),
                column: se.column(),
                message: message_of(&se),
            };
        }
        Ok(Probe::NotObject(found)) => return Error::NotAnObject { found },
        Ok(Probe::Object { schema, duplicate }) => {
            if duplicate {
                // Let the typed read name it (`duplicate field `schema``).
                return typed_error::<FailureDumpReport>(SCHEMA_SINGLE, json, e);
            }
            schema
        }
    };
    match schema {
        None | Some(serde_json::Value::Null) => Error::MissingSchema,
        Some(serde_json::Value::String(s)) if s == SCHEMA_SINGLE => {
            typed_error::<FailureDumpReport>(SCHEMA_SINGLE, json, e)
        }
        Some(serde_json::Value::String(s)) if s == SCHEMA_DUAL => {
            typed_error::<DualFailureDumpReport>(SCHEMA_DUAL, json, e)
        }
        Some(serde_json::Value::String(s)) if s == SCHEMA_DEGRADED => {
            typed_error::<DegradedFailureDumpReport>(SCHEMA_DEGRADED, json, e)
        }
        Some(other) => Error::UnknownSchema {
            found: other.to_string(),
        },
    }
}

/// The top level of a document, read without types and without recursion limit.
enum Probe {
    NotObject(&'static str),
    Object {
        schema: Option<serde_json::Value>,
        duplicate: bool,
    },
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProbeVisitor)
    }
}

struct ProbeVisitor;

impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Probe, E> {
        Ok(Probe::NotObject("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Probe, E> {
        Ok(Probe::NotObject("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Probe, E> {
        Ok(Probe::NotObject("a string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Probe, E> {
        Ok(Probe::NotObject("null"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Probe, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Probe::NotObject("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut schema = None;
        let mut duplicate = false;
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if k == "schema" {
                duplicate |= schema.is_some();
                schema = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(Probe::Object { schema, duplicate })
    }
}

fn invalid(schema: &'static str, path: String, e: &serde_json::Error) -> Error {
    let mut message = message_of(e);
    if message == "trailing characters" {
        message = "more elements than this fixed-size array holds".to_string();
    }
    Error::Invalid {
        schema,
        path,
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// Re-reads `json` as `T` tracking the path, to name the offending field.
fn typed_error<T: for<'de> Deserialize<'de>>(
    schema: &'static str,
    json: &str,
    fast: serde_json::Error,
) -> Error {
    let mut de = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => invalid(schema, e.path().to_string(), e.inner()),
        // Cannot happen (both reads are the same), but never hide the first error.
        Ok(_) => invalid(schema, "(unknown)".to_string(), &fast),
    }
}

impl<'de> Deserialize<'de> for FailureDumpReportAny {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = FailureDumpReportAny;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a failure dump (an object with a `schema` key)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key::<Cow<'de, str>>()? else {
            return Err(de::Error::missing_field("schema"));
        };
        if first == "schema" {
            // The common case: writers put `schema` first. Parse the rest straight from the
            // input, replaying `schema` to the typed visitor.
            let tag: Option<String> = map.next_value()?;
            let tag = tag.ok_or_else(|| de::Error::missing_field("schema"))?;
            return dispatch(
                &tag,
                Prefixed {
                    tag: Some(tag.clone()),
                    inner: map,
                },
            );
        }
        // `schema` comes later: buffer the object, then read it as the type it names.
        let mut obj = serde_json::Map::new();
        obj.insert(first.into_owned(), map.next_value()?);
        while let Some(k) = map.next_key::<String>()? {
            let v: serde_json::Value = map.next_value()?;
            if obj.contains_key(&k) {
                return Err(de::Error::custom(format_args!("duplicate field `{k}`")));
            }
            obj.insert(k, v);
        }
        let tag = match obj.get("schema") {
            None | Some(serde_json::Value::Null) => return Err(de::Error::missing_field("schema")),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(de::Error::custom(format_args!(
                    "unknown schema {other}: expected one of {}",
                    quoted(KNOWN_SCHEMAS)
                )));
            }
        };
        let value = serde_json::Value::Object(obj);
        let r = match tag.as_str() {
            SCHEMA_SINGLE => {
                FailureDumpReport::deserialize(value).map(FailureDumpReportAny::Single)
            }
            SCHEMA_DUAL => {
                DualFailureDumpReport::deserialize(value).map(FailureDumpReportAny::Dual)
            }
            SCHEMA_DEGRADED => {
                DegradedFailureDumpReport::deserialize(value).map(FailureDumpReportAny::Degraded)
            }
            _ => return Err(unknown_schema(&tag)),
        };
        r.map_err(de::Error::custom)
    }
}

fn unknown_schema<E: de::Error>(tag: &str) -> E {
    E::custom(format_args!(
        "unknown schema \"{tag}\": expected one of {}",
        quoted(KNOWN_SCHEMAS)
    ))
}

fn dispatch<'de, A: MapAccess<'de>>(
    tag: &str,
    rest: Prefixed<A>,
) -> Result<FailureDumpReportAny, A::Error> {
    let d = MapAccessDeserializer::new(rest);
    match tag {
        SCHEMA_SINGLE => FailureDumpReport::deserialize(d).map(FailureDumpReportAny::Single),
        SCHEMA_DUAL => DualFailureDumpReport::deserialize(d).map(FailureDumpReportAny::Dual),
        SCHEMA_DEGRADED => {
            DegradedFailureDumpReport::deserialize(d).map(FailureDumpReportAny::Degraded)
        }
        _ => Err(unknown_schema(tag)),
    }
}

/// A map whose first entry, `schema`, was already read: it is handed out again, then the rest
/// of the input follows.
struct Prefixed<A> {
    tag: Option<String>,
    inner: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prefixed<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.tag.is_some() {
            return seed
                .deserialize(BorrowedStrDeserializer::<A::Error>::new("schema"))
                .map(Some);
        }
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        match self.tag.take() {
            Some(tag) => seed.deserialize(StringDeserializer::<A::Error>::new(tag)),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner
            .size_hint()
            .map(|n| n + usize::from(self.tag.is_some()))
    }
}

impl JsonSchema for FailureDumpReportAny {
    fn schema_name() -> Cow<'static, str> {
        "FailureDumpReportAny".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Any failure dump; the `schema` key tells which.",
            "oneOf": [
                g.subschema_for::<FailureDumpReport>(),
                g.subschema_for::<DualFailureDumpReport>(),
                g.subschema_for::<DegradedFailureDumpReport>(),
            ]
        })
    }
}
