//! JSON Schemas (draft 2020-12) of the reports, generated from the types.
//!
//! `cargo xtask schema` writes them to `schema/<name>.json`; a test fails when the committed
//! files differ. The schemas describe what a reader accepts: a key is `required` exactly when
//! reading fails without it, unknown keys are allowed, `schema` is a constant per report, and
//! the `any` schema is a `oneOf` of the three reports told apart by that constant. `diff` is
//! the schema of [`ReportDiff`] (`ktstr diff --json`), not a report.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

use crate::{
    DegradedFailureDumpReport, DualFailureDumpReport, FailureDumpReport, FailureDumpReportAny,
    ReportDiff,
};

/// Which schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// [`FailureDumpReport`].
    Single,
    /// [`DualFailureDumpReport`].
    Dual,
    /// [`DegradedFailureDumpReport`].
    Degraded,
    /// [`FailureDumpReportAny`]: any of the three.
    Any,
    /// [`ReportDiff`]: what changed between two reports.
    Diff,
}

impl SchemaKind {
    /// All five, in file order.
    pub const ALL: [SchemaKind; 5] = [
        Self::Single,
        Self::Dual,
        Self::Degraded,
        Self::Any,
        Self::Diff,
    ];

    /// `single`, `dual`, `degraded`, `any` or `diff`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Dual => "dual",
            Self::Degraded => "degraded",
            Self::Any => "any",
            Self::Diff => "diff",
        }
    }

    /// The kind named `name` (as [`Self::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The committed file's name under `schema/`, e.g. `single.json`.
    pub fn file_name(self) -> String {
        format!("{}.json", self.name())
    }

    /// The schema as a JSON value.
    pub fn schema(self) -> serde_json::Value {
        let g = SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator();
        let s = match self {
            Self::Single => g.into_root_schema_for::<FailureDumpReport>(),
            Self::Dual => g.into_root_schema_for::<DualFailureDumpReport>(),
            Self::Degraded => g.into_root_schema_for::<DegradedFailureDumpReport>(),
            Self::Any => g.into_root_schema_for::<FailureDumpReportAny>(),
            Self::Diff => g.into_root_schema_for::<ReportDiff>(),
        };
        s.to_value()
    }

    /// The schema as the committed file's text: pretty JSON and a final newline.
    pub fn schema_text(self) -> String {
        let mut s = serde_json::to_string_pretty(&self.schema()).expect("a JSON value serializes");
        s.push('\n');
        s
    }
}

/// The schema of `T` (any type of this crate), draft 2020-12.
pub fn schema_for<T: JsonSchema>() -> serde_json::Value {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}
