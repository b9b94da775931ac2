//! Shared set-up of the tests that boot a real sched_ext guest under QEMU (the 7.3 kernel,
//! or the 6.12 LTS: [`KernelLine`]).
//!
//! Every guest test does the same few things: find QEMU and the guest lab (or say why it
//! skips), boot a [`RunSpec`] (scheduler, workload, guest commands printing the guest's own
//! view), wait for the guest's phases, freeze, read the frozen RAM as a kernel with its BTF,
//! capture a dump with the real adapters, thaw, and compare the dump with what the guest
//! printed. This module does each of those once:
//!
//! - [`GuestLab::open`]: QEMU + lab cache + kernel, or `None` when the test skips
//!   ([`guest_lab::testing`]: the one skip policy; a guest test's name starts with
//!   `guest_`); [`GuestLab::open_line`] for a [`KernelLine`], whose
//!   [`assert_layout`](KernelLine::assert_layout) checks what the dump says of the line.
//! - [`GuestLab::boot`] / [`boot_with`](GuestLab::boot_with): a [`Guest`] (a
//!   [`QemuEngine`] with waits that panic with the console tail). One guest at a time per
//!   test process, also under plain `cargo test`.
//! - [`Guest::wait_phase`], [`Guest::wait_console`], [`Guest::console_log`].
//! - [`LoadedKernel`]: guest RAM (live or frozen) as a `guest_mem::Kernel` plus its BTF;
//!   [`LoadedKernel::capture`] runs `scx_walk::capture` and validates the JSON against the
//!   schema; [`LoadedKernel::error_exit_trigger`] and [`Guest::wait_error_exit`] watch for
//!   the scheduler's error exit.
//! - [`view`]: the guest's own view (`bpftool`, `/proc`, sysfs, the kernel's
//!   `scx_dump_state`) as [`RunSpec`] commands, and assertions that a dump agrees with it.
//! - [`corpus`]: a real scheduler of the sched_ext project under the mixed workload,
//!   captured at a timeout and compared with the guest's view (the corpus tests).
//!
//! A new guest test in about twenty lines (it runs as `tests/tests/scx_e2e/ok.rs`):
//!
//! ```no_run
//! use std::time::Duration;
//! use e2e_tests::guest::{GuestLab, view};
//! use guest_lab::{RunSpec, SchedulerChoice, TestScheduler};
//!
//! let Some(lab) = GuestLab::open() else { return }; // prints why it skips
//! let spec = view::with_guest_view(
//!     RunSpec::new()
//!         .scheduler(SchedulerChoice::test(TestScheduler::Ok))
//!         .workload("ktstr_spin 2 600")
//!         .settle_ms(2000),
//! );
//! let mut guest = lab.boot(&spec);
//! guest.wait_console(view::VIEW_END, Duration::from_secs(600));
//! let out = guest.freeze_and_capture(&Default::default());
//! guest.thaw_now();
//! let log = guest.console_log();
//! let r = &out.report;
//! assert_eq!(view::attached_ops(&log), "ktstr_ok");
//! assert!(r.scx_sched_state.is_some());
//! view::assert_maps_agree(&log, r);
//! view::assert_progs_agree(&log, r);
//! // The spinners run under busybox `timeout` for the whole run.
//! view::assert_tasks_agree(&log, r, &["timeout"]);
//! ```
//!
//! Everything here panics with context (it is test support): a failed step names the
//! step and shows the console tail.

pub mod corpus;
mod host_line;
mod kernel;
mod line;
pub mod view;

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use freeze::qemu::{LineMark, QemuConfig, QemuEngine};
use freeze::watch::{Fire, Polled, Triggered, WatchOptions, WatchOutcome, watch_u32};
use freeze::{Engine, FreezeOutcome};
use guest_lab::{ConsoleLog, DEFAULT_APPEND, KernelAssets, Lab, PHASE_PREFIX, RunSpec, testing};
use scx_walk::TriggerLocation;
use scx_walk::exit_kind::{ExitVerdict, SCX_EXIT_NONE};
use scx_walk::{CaptureOptions, CaptureOutput};

pub use host_line::HostLine;
pub use kernel::LoadedKernel;
pub use line::KernelLine;

/// Guest RAM the tests boot with unless they say otherwise (the size the benchmark
/// figures are quoted for).
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// vCPUs the tests boot with unless they say otherwise.
pub const DEFAULT_VCPUS: u32 = 2;
/// Bound on a freeze (QMP `stop` plus reading the registers).
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// The guest lab with its sched_ext kernel provisioned.
pub struct GuestLab {
    pub lab: Lab,
    pub kernel: KernelAssets,
}

impl GuestLab {
    /// QEMU, the lab cache and the kernel; `None` (the test skips, see
    /// [`guest_lab::testing::skip`]) when QEMU is not installed. A lab that exists but
    /// cannot provision the kernel is a failure, not a skip: CI provisions it.
    #[track_caller]
    pub fn open() -> Option<GuestLab> {
        Self::open_line(KernelLine::Current)
    }

    /// [`open`](Self::open) with the kernel of `line` (the 6.12 LTS is built by the lab
    /// from source; [`KernelLine::Current`] is the lab's default or
    /// `KTSTR_KERNEL_VERSION`).
    #[track_caller]
    pub fn open_line(line: KernelLine) -> Option<GuestLab> {
        if !testing::need_qemu() {
            return None;
        }
        let mut lab = testing::open_lab();
        if let Some(v) = line.version() {
            lab = lab.with_kernel_version(v);
        }
        let kernel = lab.kernel().expect("provisioning the sched_ext kernel");
        Some(GuestLab { lab, kernel })
    }

    /// The QEMU configuration [`boot`](Self::boot) uses for `initrd`: the lab kernel,
    /// [`DEFAULT_APPEND`], [`DEFAULT_MEMORY_MIB`], [`DEFAULT_VCPUS`].
    pub fn qemu_config(&self, initrd: &std::path::Path) -> QemuConfig {
        let mut cfg = QemuConfig::new(
            &self.kernel.vmlinuz,
            Some(initrd.to_path_buf()),
            DEFAULT_APPEND,
        );
        cfg.memory_mib = DEFAULT_MEMORY_MIB;
        cfg.vcpus = DEFAULT_VCPUS;
        cfg
    }

    /// Builds the initramfs for `spec` and boots it with the defaults.
    pub fn boot(&self, spec: &RunSpec) -> Guest {
        self.boot_with(spec, |_| {})
    }

    /// [`boot`](Self::boot) with the configuration adjusted by `adjust` (memory, console
    /// tail, extra QEMU arguments, ...).
    pub fn boot_with(&self, spec: &RunSpec, adjust: impl FnOnce(&mut QemuConfig)) -> Guest {
        // Taken before the (cached) initramfs build so that two tests of one process do
        // not race on it either.
        let one = one_guest();
        let initrd = self.lab.initramfs(spec).expect("building the initramfs");
        let mut cfg = self.qemu_config(initrd.path());
        adjust(&mut cfg);
        let engine = QemuEngine::launch(&cfg).expect("launching QEMU");
        Guest { engine, _one: one }
    }
}

/// One guest at a time per test process, also under plain `cargo test` (nextest runs the
/// `guest` group one at a time itself): two TCG guests on two cores starve each other.
/// Held by every [`Guest`]; a test that needs QEMU without a [`Guest`] can hold it too.
///
/// Booting a second guest while the same thread still holds one would wait forever:
/// that panics instead.
pub fn one_guest() -> OneGuest {
    static ONE_GUEST: Mutex<()> = Mutex::new(());
    if HOLDING.get() {
        panic!("this thread already holds a guest: drop it before booting another");
    }
    // A test that panicked while holding it has dropped its guest already.
    let guard = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    HOLDING.set(true);
    OneGuest { _guard: guard }
}

thread_local! {
    /// Whether this thread holds [`one_guest`].
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The right to run a guest (see [`one_guest`]); released on drop.
pub struct OneGuest {
    _guard: MutexGuard<'static, ()>,
}

impl Drop for OneGuest {
    fn drop(&mut self) {
        HOLDING.set(false);
    }
}

/// A booted guest: the [`QemuEngine`] (through `Deref`), and waits that panic with the
/// console tail. Dropping it tears QEMU down.
pub struct Guest {
    // Field order matters: the engine (QEMU) goes before the guard is released.
    engine: QemuEngine,
    _one: OneGuest,
}

impl Deref for Guest {
    type Target = QemuEngine;
    fn deref(&self) -> &QemuEngine {
        &self.engine
    }
}

impl DerefMut for Guest {
    fn deref_mut(&mut self) -> &mut QemuEngine {
        &mut self.engine
    }
}

impl Guest {
    /// Panics with `what`, the error and the console tail.
    fn fail(&self, what: &str, e: &dyn std::fmt::Debug) -> ! {
        panic!(
            "{what}: {e:?}\n--- console tail ---\n{}\n--- qemu stderr ---\n{}",
            self.engine.console_tail(),
            self.engine.qemu_stderr_tail()
        )
    }

    /// Waits for a console line containing `needle` (from the start of the console);
    /// returns the mark after it.
    pub fn wait_console(&self, needle: &str, timeout: Duration) -> LineMark {
        match self
            .engine
            .console()
            .wait_contains(LineMark::START, timeout, needle)
        {
            Ok((_, mark)) => mark,
            Err(e) => self.fail(&format!("waiting for {needle:?} on the guest console"), &e),
        }
    }

    /// Whether a line containing `needle` has been printed (does not wait).
    pub fn has_line(&self, needle: &str) -> bool {
        self.engine
            .console()
            .wait_contains(LineMark::START, Duration::ZERO, needle)
            .is_ok()
    }

    /// Waits for the phase line `KTSTR-PHASE: <name>` at or after `from`; returns it and
    /// the mark after it. Fails at once on `scheduler-failed` (unless that is the phase
    /// waited for).
    pub fn wait_phase(&self, from: LineMark, name: &str, timeout: Duration) -> (String, LineMark) {
        let want = format!("{PHASE_PREFIX}{name}");
        let failed = format!("{PHASE_PREFIX}scheduler-failed");
        let got = self.engine.console().wait_line(from, timeout, |l| {
            let l = l.trim_start();
            l.starts_with(&want) || l.starts_with(&failed)
        });
        match got {
            Ok((line, mark)) if line.trim_start().starts_with(&want) => (line, mark),
            other => self.fail(&format!("waiting for phase {name}"), &other),
        }
    }

    /// Everything the guest printed that the console still keeps (the last 4096 lines,
    /// each cut at 4 KiB), parsed. For longer lines parse
    /// [`console_tail`](Engine::console_tail) with a larger `console_tail_bytes`.
    pub fn console_log(&self) -> ConsoleLog {
        let (lines, _) = self.engine.console().lines_since(LineMark::START);
        ConsoleLog::parse(&lines.join("\n"))
    }

    /// Freezes the guest (every vCPU stopped, registers read).
    pub fn freeze_now(&mut self) -> FreezeOutcome {
        match self.engine.freeze(FREEZE_TIMEOUT) {
            Ok(f) => f,
            Err(e) => self.fail("freezing the guest", &e),
        }
    }

    /// Resumes a frozen guest.
    pub fn thaw_now(&mut self) {
        if let Err(e) = self.engine.thaw() {
            self.fail("thawing the guest", &e);
        }
    }

    /// The frozen guest's RAM as a kernel, with the vCPUs' registers of `f`.
    pub fn frozen_kernel(&self, f: &FreezeOutcome) -> LoadedKernel {
        LoadedKernel::new(&self.engine.guest_ram(), &f.vcpus)
    }

    /// Freezes the guest (asserting that every vCPU parked) and captures it with `opts`;
    /// the guest stays frozen ([`thaw_now`](Self::thaw_now) resumes it).
    pub fn freeze_and_capture(&mut self, opts: &CaptureOptions) -> CaptureOutput {
        let f = self.freeze_now();
        assert!(f.all_parked(), "not every vCPU parked: {:?}", f.vcpus);
        self.frozen_kernel(&f).capture(opts)
    }

    /// The running guest's RAM as a kernel (translation cache off: page tables change).
    pub fn live_kernel(&self) -> LoadedKernel {
        let v = LoadedKernel::new(&self.engine.guest_ram(), &[]);
        v.k.set_translation_cache(false);
        v
    }

    /// One watch of `trigger` (from [`LoadedKernel::error_exit_trigger`]) for at most
    /// `poll`: `Some` with the guest frozen when the scheduler exited with an error,
    /// `None` when the time passed first.
    pub fn watch_error_exit(
        &mut self,
        live: &LoadedKernel,
        trigger: TriggerLocation,
        poll: Duration,
    ) -> Option<Triggered> {
        let opts = WatchOptions {
            timeout: Some(poll),
            fresh_value: Some(SCX_EXIT_NONE),
            ..Default::default()
        };
        let (pointer, offset, direct) = trigger.poll_target();
        let polled = Polled {
            pointer,
            offset,
            direct,
        };
        let rule = |sched: guest_mem::Kva, exit_kind: u32| match trigger
            .judge(sched, exit_kind, &live.k, false)
        {
            ExitVerdict::Capture { kind, late } => Some(Fire { value: kind, late }),
            ExitVerdict::Ignore => None,
        };
        match watch_u32(
            &mut self.engine,
            polled,
            |kva| live.k.translate(kva),
            rule,
            &opts,
        ) {
            Ok(WatchOutcome::Triggered(t)) => Some(*t),
            Ok(WatchOutcome::TimedOut(_) | WatchOutcome::Stopped(_)) => None,
            Err(e) => self.fail("watching for the error exit", &e),
        }
    }

    /// Waits up to `timeout` for the scheduler's error exit; the guest is frozen when
    /// this returns. Symbols and BTF must be in place (wait for `scheduler-attached`).
    pub fn wait_error_exit(&mut self, live: &LoadedKernel, timeout: Duration) -> Triggered {
        let trigger = live.error_exit_trigger();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let kind = live.error_exit_kind_now();
                self.fail(
                    &format!("no error exit within {timeout:?}"),
                    &format!("exit_kind now {kind:?}"),
                );
            }
            if let Some(t) = self.watch_error_exit(live, trigger, left.min(Duration::from_secs(1)))
            {
                return t;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_guest;

    #[test]
    fn a_second_guest_on_one_thread_panics_instead_of_waiting() {
        let first = one_guest();
        let again = std::panic::catch_unwind(one_guest);
        assert!(again.is_err());
        drop(first);
        // Released: the next test (or guest) gets it.
        drop(one_guest());
        // From another thread it is a wait, not an error.
        let held = one_guest();
        let t = std::thread::spawn(|| drop(one_guest()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!t.is_finished(), "the other thread waits for the guest");
        drop(held);
        t.join().unwrap();
    }
}
