//! Wire types of sched_ext failure dumps.
//!
//! The JSON contract is specified in `shared/spec/wire-format.md` (compatible with
//! ktstr 0.50 dumps). External tools depend on this crate alone.

mod rendered;

pub use rendered::{RenderedMember, RenderedValue};
