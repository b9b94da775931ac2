//! Kernel walkers: from a frozen guest (any engine, or a vmcore) to a
//! [`dump_schema::FailureDumpReport`], each section filled or carrying its reason.
//!
//! # Map of the crate
//! - [`KernelView`] ([`kernel`]) is what every walker reads through: guest memory
//!   ([`guest_mem::KvaRead`]), kernel symbols ([`SymbolLookup`]) and the kernel's types
//!   ([`KernelTypes`]); [`adapters`] implements the latter two for `guest-mem` and
//!   `btf-walk`, [`render`] the map-value renderer over `btf-walk`.
//! - Offsets come from the guest's BTF, one [`btf_walk::OffsetGroup`] per walker; a
//!   missing member degrades that walker's section with
//!   `scx walker partial: missing offset groups [..]` ([`offsets`]), never the whole dump.
//! - Where each walker lives (one module per report section):
//!
//! | module | report sections |
//! |---|---|
//! | [`sched`] | `scx_sched_state`, `event_counter_timeline`; exit kinds and the trigger location |
//! | [`root`] | where the scheduler is: `scx_root → struct scx_sched` (7.x) or the globals of 6.12 (`scx_ops`, `scx_exit_kind`, …), chosen from BTF and symbols |
//! | [`rq`] | `rq_scx_states` |
//! | [`dsq`] | `dsq_states` |
//! | [`tasks`] (+ [`stackscan`]) | `task_enrichments` (+ `lock_slowpath_match`) |
//! | [`maps`] | `maps`, `active_obj_name`, `active_map_kvas` |
//! | [`progs`] | `prog_runtime_stats` |
//! | [`cputime`] | `per_cpu_time` |
//! | [`numa`] | `per_node_numa` |
//! | [`psi`] | `cgroup_psi` |
//! | [`sdt`] | `sdt_allocations`, `scx_static_ranges` |
//!
//! - [`lists`]: the bounded walks they share (`list_head`, `hlist`, xarray, rhashtable).
//! - [`capture()`] runs them all under a soft deadline, one function per phase;
//!   [`live`] holds what runs while the guest runs (event sampler, dual-capture scanner,
//!   trigger location).
//! - [`error`] (what a walk step failed on) and [`reasons`] (reason strings this crate
//!   adds to the wire format's); [`notes`]: `capture_notes`, every part of a capture that
//!   was dropped, capped or doubtful, in words with counts.
//!
//! # Trust
//! Nothing read from the guest is trusted: every list walk has a cap and a visited set,
//! every count is checked before it sizes an allocation, errors are returned (never
//! panics), and one unreadable object degrades only its own entry.
//!
//! # Using it
//! ```no_run
//! use btf_walk::Btf;
//! use guest_mem::{KernelOptions, Vmcore};
//! use scx_walk::render::BtfRenderer;
//! use scx_walk::{CaptureOptions, KernelView, SecondThread, Target, capture};
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let core = Vmcore::open("guest.vmcore".as_ref())?;
//! let k = core.kernel(KernelOptions::default())?;
//! let btf = Btf::from_guest(&k, k.require_symbol("__start_BTF")?, k.require_symbol("__stop_BTF")?)?;
//! let renderer = BtfRenderer::new(&btf);
//! let target = Target {
//!     kernel: KernelView { mem: &k, syms: &k, types: &btf },
//!     renderer: Some(&renderer),
//!     vcpu_regs: core.cpus().iter().map(|r| Some(*r)).collect(),
//!     // Maps are rendered on two threads, each with its own reader of the same memory.
//!     second_thread: Some(SecondThread { kernel: &k, types: &btf, renderer: Some(&renderer) }),
//! };
//! let out = capture(&target, &CaptureOptions::default());
//! println!("{}", out.report.to_json()?);
//! # Ok(()) }
//! ```
//! While the guest runs, the capture session uses [`TriggerLocation`] (what the engines'
//! trigger watch reads: `scx_root` and `scx_sched.exit_kind`, or on 6.12 the global
//! `scx_exit_kind` ([`root`]), plus `exit_info->kind`),
//! [`EventSampler`] (one [`dump_schema::EventCounterSample`] per call, fed back through
//! [`CaptureOptions::timeline`]) and, for a dual capture, [`RunnableScanner`] +
//! [`DualTracker`] (early snapshot once the oldest runnable task waited half the
//! watchdog timeout; the stable `early_skipped_reason` otherwise).
//!
//! `examples/vmcore_dump.rs` is the whole-process dump (per-phase time and peak RSS);
//! `cargo xtask bench dump [VMCORE] [--runs N] [--make]` runs it as a child process
//! against two baselines in the same run (drgn doing the smaller walk: tasks, map
//! metadata, rq->scx; and the same dump with eager kallsyms decoding) and prints the
//! medians, the ratios and the verdict on the dump's time and memory goal. The figures
//! live in that output, not here.
//!
//! # Section notes
//! - `probe_counters` is always absent: the project runs no in-guest probe program.
//! - `vcpu_perf_at_freeze` comes from the engine, not from guest memory: [`capture()`]
//!   leaves it empty and logs [`reasons::NO_VCPU_PERF`]; the CLI fills it from
//!   `freeze::FreezeOutcome::vcpu_perf` (host perf counters of the vCPU threads) or logs
//!   the precise reason they are absent (e.g. no hardware PMU on the host).
//! - `RqScxState.ops_qseq` is 0 on kernels that keep `ops_qseq` per task (7.x).
//! - `TaskEnrichment.lock_slowpath_match` names the innermost lock slow path
//!   ([`stackscan::LOCK_SLOWPATHS`]) found on the task's kernel stack: the saved stack
//!   for a task off CPU, the vCPU's RIP/RSP for a running one; empty otherwise
//!   ([`stackscan`] states the semantics).
//! - Task-local storage entries are keyed by the owner's address (`key_hex`).
//! - `active_obj_name` is the name of the struct_ops map the attached scheduler came
//!   from (its `sched_ext_ops.name` equals `scx_root->ops.name`); `active_map_kvas` are
//!   that map and the maps its programs use.
//! - `cgroup_psi` carries the CPU-some pressure of every cgroup of the default hierarchy
//!   ([`psi`]).
//! - `sdt_allocations` / `scx_static_ranges`: every `struct scx_allocator` and `struct
//!   scx_static` of the scheduler's `.bss`, the allocator's radix tree walked through the
//!   arena's kernel mapping; payloads typed by size and the allocator's name ([`sdt`]).
//! - New reason strings: [`reasons`].

pub mod adapters;
mod capture;
pub mod cputime;
pub mod dsq;
pub mod error;
pub mod exit_info;
pub mod exit_kind;
pub mod kernel;
pub mod lists;
pub mod live;
pub mod maps;
pub mod notes;
pub mod numa;
pub mod offsets;
pub mod progs;
pub mod psi;
pub mod reasons;
pub mod render;
pub mod root;
pub mod rq;
pub mod sched;
pub mod sdt;
pub mod stackscan;
pub mod tasks;
#[cfg(test)]
mod testutil;

pub use capture::{Caps, CaptureOptions, CaptureOutput, Phase, SecondThread, Target, capture};
pub use error::WalkError;
pub use kernel::{KernelTypes, KernelView, PerCpu, SymbolLookup, ValueRenderer};
pub use live::{AgeScan, DualTracker, EventSampler, RunnableScanner, TriggerLocation};
