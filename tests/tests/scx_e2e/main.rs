//! scx-walk end to end: a real 7.3 sched_ext guest under QEMU runs a real BPF scheduler
//! (`stall`, `error`, `scx_bpfland`) and a workload; just before the freeze it prints what
//! it sees itself (`bpftool`, `/proc`, `/sys/kernel/sched_ext`). The host freezes it (on
//! the scheduler's error exit, or on demand), captures a full `FailureDumpReport` from the
//! shared guest RAM and asserts that the dump agrees with the guest's own view and, for
//! error exits, with the kernel's own `scx_dump_state` text.
//!
//! One module per subject: [`stall`] and [`error`] (the lab's failing test schedulers,
//! with the dual capture of [`run`]), [`bpfland`] (the real third-party scheduler frozen
//! on demand), [`ok`] (the `ok` scheduler frozen on demand: the support module's example),
//! [`lts`] (the stall and error runs on the 6.12 LTS kernel, whose scheduler is globals).
//! The set-up and the comparisons are `e2e_tests::guest`.
//!
//! Needs QEMU and the guest lab (`cargo xtask provision`); without QEMU the tests print
//! why they skip. CI provisions both.

mod bpfland;
mod error;
mod lts;
mod ok;
mod run;
mod stall;
