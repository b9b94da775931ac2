//! The same suites on the 6.12 LTS kernel (built by the lab from Debian's
//! `linux-source-6.12`): no `struct scx_sched` there, the scheduler's state is kernel
//! globals (`scx_exit_kind`, `scx_exit_info`, `scx_ops`, ...), found from the kernel's BTF
//! and symbols. The stall and error runs assert exactly what the 7.3 runs do, and what
//! the dump says of the line ([`KernelLine::assert_layout`]: no event counters, no
//! `aborting` flag, each noted).

use e2e_tests::guest::KernelLine;
use guest_lab::TestScheduler;

use crate::error::assert_error_run;
use crate::run::error_run_on;
use crate::stall::{assert_stall_run, stall_workload};

/// The kernel line these tests run.
const LTS: KernelLine = KernelLine::Lts612;

#[test]
fn guest_scx_612_stall_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run_on(LTS, TestScheduler::Stall, &stall_workload(), 1000) else {
        return;
    };
    assert!(run.log.phase("init").is_some());
    LTS.assert_layout(&run.late.report);
    eprintln!("6.12 stall: {}", assert_stall_run(&run));
}

#[test]
fn guest_scx_612_error_dump_agrees_with_guest_and_kernel() {
    let Some(run) = error_run_on(LTS, TestScheduler::Error, "ktstr_spin 2 240", 90_000) else {
        return;
    };
    LTS.assert_layout(&run.late.report);
    eprintln!("6.12 error: {}", assert_error_run(&run));
}
