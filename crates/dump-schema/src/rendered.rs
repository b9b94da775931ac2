//! `RenderedValue`: guest memory rendered through BTF.

use serde::{Deserialize, Serialize};

/// A value read from guest memory and rendered through BTF.
///
/// Internally tagged on the wire by `"kind"` with the snake_case variant name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RenderedValue {
    /// Signed integer of `bits` width.
    Int { bits: u32, value: i64 },
    /// Unsigned integer of `bits` width.
    Uint { bits: u32, value: u64 },
    Bool { value: bool },
    Char { value: u8 },
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
    Unsupported { reason: String },
}

/// One member of a rendered struct; anonymous members have `name == ""`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedMember {
    pub name: String,
    pub value: RenderedValue,
}
