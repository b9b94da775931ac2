//! The library half of the `ktstr` command: the capture session (watch → freeze → walk →
//! thaw → write), callable by tests and other programs.
//!
//! Everything here returns [`Error`]; the `ktstr` binary decides messages and exit codes
//! ([`Error::class`] tells it whether the caller's input or the machine is at fault).
//!
//! - [`capture_vmcore`]: a report from a post-mortem vmcore (no VM needed);
//!   [`capture_core`] the same from an opened [`guest_mem::Vmcore`]. Whatever the capture
//!   lost is in the report's `capture_notes` (the walkers' notes, after the caveats of
//!   finding the kernel: [`guest_mem::Kernel::caveats`], [`guest_mem::Vmcore::caveats`]);
//!   [`report_has_error_exit`] and [`report_core_unread`] are the verdicts behind exit
//!   codes 1 and 4.
//!
//! # Hostile input
//! `tests/cli_hostile.rs` damages a real lab vmcore in a few hundred named ways
//! (`tests/hostile/mod.rs`) and checks each `ktstr capture --vmcore` outcome: no panic,
//! bounded time and memory, a one-line error (exit 2) or a dump whose every loss is in
//! `capture_notes` — `cargo test --release -p ktstr-cli --test cli_hostile`. The
//! `capture` fuzz target (`fuzz/`, see its README) drives [`capture_core`] over the same
//! vmcore with arbitrary damage: `cd crates/ktstr-cli/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz
//! run capture corpus/capture -- -max_total_time=600 -max_len=2048 -rss_limit_mb=4096`.
//! - [`capture_qmp`]: attach to a running QEMU (QMP socket + shared RAM file), freeze,
//!   capture, thaw.
//! - [`run()`]: provision, boot a sched_ext guest (QEMU, or the native KVM engine where it
//!   boots Linux), attach a scheduler, run a workload, watch for its error exit and capture
//!   (or on timeout / interrupt); with the early snapshot taken while the guest runs, the
//!   result is a dual report.
//! - [`diff_files`]: what changed between two dumps, or from a dual dump's early snapshot
//!   to its late one (`ktstr diff`; [`dump_schema::ReportDiff`]).
//! - [`write_atomic`]: the only way files are written: a temporary file in the target's
//!   directory, renamed into place, so no partial output ever exists under the final name.

mod atomic;
mod degraded;
mod diff;
mod dual;
mod error;
mod frozen;
mod guest;
pub mod heap;
pub mod input;
mod qmp_attach;
mod run;
mod sched_output;
mod session;
mod time;

pub use atomic::{
    JsonStyle, OutTarget, install_signal_cleanup, remove_pending_temp_files, write_atomic,
    write_html, write_report, write_report_json,
};
pub use degraded::{DEGRADED_TIMEOUT_REASON, degraded_reason, degraded_report, reg_snapshot};
pub use diff::diff_files;
pub use dual::{EARLY_SNAPSHOT_FAILED_PREFIX, EarlyTaken, SCAN_EVERY};
pub use error::{Error, ErrorClass};
pub use frozen::{
    CaptureSources, ExitSource, apply_vcpu_perf, capture_core, capture_freeze, capture_frozen,
    capture_vmcore, export_vmcore, report_core_unread, report_has_error_exit,
};
pub use guest::{NATIVE_PROBE_BUDGET, probe_native};
pub use qmp_attach::{QmpAttachOptions, capture_qmp};
pub use run::{
    EngineChoice, RunOptions, RunOutcome, RunResult, SchedulerArg, parse_duration, parse_size_mib,
    run,
};
