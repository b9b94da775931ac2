//! The `error` test scheduler: `scx_bpf_error()` after a while (`SCX_EXIT_ERROR_BPF`).

use guest_lab::TestScheduler;

use crate::run::{ErrorRun, error_run};

#[test]
fn guest_scx_error_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run(TestScheduler::Error, "ktstr_spin 2 240", 90_000) else {
        return;
    };
    eprintln!("error: {}", assert_error_run(&run));
}

/// What an error run asserts on every kernel line.
pub fn assert_error_run(run: &ErrorRun) -> String {
    // SCX_EXIT_ERROR_BPF
    let checked = run.assert_agrees_with_guest_and_kernel("ktstr_error", 1025);
    // No task starves under the error scheduler: the dual report says why it has no
    // early snapshot, in the stable shape.
    if run.dual.early.is_none() {
        let why = run.dual.early_skipped_reason.as_deref().unwrap();
        assert!(
            why.starts_with("max_age never crossed threshold (peak="),
            "{why}"
        );
    }
    checked
}
