//! Shared helpers of the end-to-end tests (tests live in `tests/tests/`).
