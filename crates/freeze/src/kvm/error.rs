//! Error helpers: every failure names the step that failed.

use std::fmt::Display;

use crate::EngineError;

/// An OS or KVM error during `step`.
pub(crate) fn io(step: &'static str, e: impl Into<std::io::Error>) -> EngineError {
    EngineError::Io {
        step,
        source: e.into(),
    }
}

/// A failure without an OS error.
pub(crate) fn failed(step: &'static str, detail: impl Display) -> EngineError {
    EngineError::Failed {
        step,
        detail: detail.to_string(),
    }
}
