//! Shared helpers of the end-to-end tests (tests live in `tests/tests/`).
//!
//! Reports are validated against the committed JSON Schemas with
//! `dump_schema::validate` (the `validate` feature of `dump-schema`).
//!
//! [`guest`] is the shared set-up of the tests that boot a real sched_ext guest under QEMU
//! (lab, boot, waits, freeze, capture, the guest's own view and the assertions against it);
//! [`drgn`] runs drgn on a vmcore as an independent reader.

pub mod drgn;
pub mod guest;
