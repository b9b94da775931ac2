//! Trigger watch: freeze the guest as soon as its sched_ext scheduler exits with an error.
//!
//! The host polls two values in live guest RAM, with no help from the guest: the
//! pointer `scx_root` (a `struct scx_sched *`, in the kernel image) and the `exit_kind`
//! (`atomic_t`) of the `scx_sched` it points at. When `exit_kind` reaches
//! [`SCX_EXIT_ERROR`] (1024; 1025 is `SCX_EXIT_ERROR_BPF`, 1026 `SCX_EXIT_ERROR_STALL`)
//! the engine freezes, and the time from seeing the flip to all vCPUs stopped is
//! measured and reported.
//!
//! The window is short. On an error exit the kernel sets `exit_kind`, dumps its own
//! state from an irq_work, then its disable worker copies the kind to
//! `exit_info->kind` and replaces `exit_kind` with `SCX_EXIT_DONE` (1) (seen on 7.3:
//! `(1025, 0)` → `(1025, 1025)` → `(1, 1025)` for `(exit_kind, exit_info->kind)`);
//! `scx_root` may stay pointing at the dead scheduler until the next one attaches, or
//! become NULL. On the lab's TCG guests the window lasted longer than the ~25 ms
//! worst flip-to-frozen measured, but a host thread descheduled for longer misses
//! it. So the poll runs at ≥ 1 kHz (every 100 µs by default) on a
//! thread raised to real-time priority when the host allows it (a loaded host would
//! otherwise deschedule it for longer than the window). When the caller also gives the
//! `exit_info` offsets, a window missed anyway still triggers, *late*: `exit_kind` is
//! `SCX_EXIT_DONE` and `exit_info->kind` is an error; [`Triggered::late`] says so.
//!
//! This module knows no symbols and no BTF: the caller gives the address of `scx_root`
//! (guest-mem's symbol table), the member offsets (btf-walk), and a KVA→GPA translation
//! (guest-mem's translator; `scx_sched` and its `exit_info` are kmalloc'd, so a
//! direct-map translation suffices for the pointer targets).
//!
//! # Work between polls
//! [`watch_exit_kind_with`] runs a caller's callback between polls, at most every
//! [`WatchOptions::tick_every`] (default 10 ms), with the engine in hand: the capture
//! session scans the runnable tasks' ages there and, when they cross its threshold,
//! freezes, captures and thaws (the early snapshot of a dual capture) before the watch
//! goes on. The callback runs at the caller's normal priority (the real-time policy is
//! dropped around it, so a heavy capture does not hog a host CPU at `SCHED_FIFO`), and its
//! time is kept out of [`WatchStats::max_gap`] and counted in [`WatchStats::tick_time`].
//! It must leave the guest running: a tick that returns with the engine frozen ends the
//! watch with [`WatchError::LeftFrozen`] (a frozen guest cannot flip its `exit_kind`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use guest_mem::{Gpa, Kva, MemError};
use vm_memory::{Bytes, GuestAddress};

use crate::{Engine, EngineError, FreezeOutcome, GuestRam};

/// `SCX_EXIT_NONE`: a scheduler that has not exited.
pub const SCX_EXIT_NONE: u32 = 0;
/// `SCX_EXIT_DONE`: what the disable worker leaves in `exit_kind` once it has taken over.
pub const SCX_EXIT_DONE: u32 = 1;
/// `SCX_EXIT_ERROR`: exit kinds at or above it are errors.
pub const SCX_EXIT_ERROR: u32 = 1024;
/// `SCX_EXIT_ERROR_BPF`: the scheduler called `scx_bpf_error()`.
pub const SCX_EXIT_ERROR_BPF: u32 = 1025;
/// `SCX_EXIT_ERROR_STALL`: the watchdog found a runnable task starved.
pub const SCX_EXIT_ERROR_STALL: u32 = 1026;

/// What to watch; the caller resolves the addresses and the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitKindTrigger {
    /// Address of the kernel variable `scx_root`.
    pub root_ptr: Kva,
    /// `offsetof(struct scx_sched, exit_kind)`.
    pub exit_kind_offset: u64,
    /// Freeze when `exit_kind >= threshold` (normally [`SCX_EXIT_ERROR`]).
    pub threshold: u32,
    /// `offsetof(struct scx_sched, exit_info)` and `offsetof(struct scx_exit_info, kind)`:
    /// when given, a missed window still triggers (late) through `exit_info->kind`.
    pub exit_info: Option<ExitInfoOffsets>,
}

impl ExitKindTrigger {
    /// Fires on any error exit (`exit_kind >= SCX_EXIT_ERROR`); `exit_info` is
    /// `(offsetof(scx_sched, exit_info), offsetof(scx_exit_info, kind))` when known (what
    /// `scx_walk::TriggerLocation` resolves), so a missed window still triggers late.
    pub fn error_exit(root_ptr: Kva, exit_kind_offset: u64, exit_info: Option<(u64, u64)>) -> Self {
        ExitKindTrigger {
            root_ptr,
            exit_kind_offset,
            threshold: SCX_EXIT_ERROR,
            exit_info: exit_info.map(|(exit_info, kind)| ExitInfoOffsets { exit_info, kind }),
        }
    }
}

/// Where the real exit kind stays after the disable worker took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfoOffsets {
    /// `offsetof(struct scx_sched, exit_info)` (a `struct scx_exit_info *`).
    pub exit_info: u64,
    /// `offsetof(struct scx_exit_info, kind)`.
    pub kind: u64,
}

/// One reading of the trigger values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// `scx_root`'s value; `None` when NULL (no scheduler attached).
    pub sched: Option<Kva>,
    /// `sched->exit_kind` when `sched` is set and readable.
    pub exit_kind: Option<u32>,
}

impl Sample {
    /// The error this sample shows, if any: `(kind, late)`. `late` when `exit_kind` was
    /// already `SCX_EXIT_DONE` and the kind came from `exit_info->kind`.
    fn error(
        &self,
        threshold: u32,
        info_kind: impl FnOnce(Kva) -> Option<u32>,
    ) -> Option<(u32, bool)> {
        let sched = self.sched?;
        match self.exit_kind? {
            k if k >= threshold => Some((k, false)),
            SCX_EXIT_DONE => info_kind(sched)
                .filter(|k| *k >= threshold)
                .map(|k| (k, true)),
            _ => None,
        }
    }
}

/// Why the watch could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("cannot translate {what}: {source}")]
    Translate {
        what: &'static str,
        #[source]
        source: MemError,
    },
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: MemError,
    },
    #[error("freeze after the trigger failed: {0}")]
    Freeze(#[source] EngineError),
    /// The tick callback returned with the guest still frozen.
    #[error("the watch's tick callback left the guest frozen")]
    LeftFrozen,
}

/// What the tick callback of [`watch_exit_kind_with`] asks the watch to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Keep polling.
    Continue,
    /// End the watch now ([`WatchOutcome::Stopped`]).
    Stop,
}

/// Reads `scx_root` and `exit_kind` from live guest RAM.
///
/// The translation of `scx_root`'s own address is done once (the kernel image does not
/// move); the pointer's target is translated again only when the pointer changes.
pub struct ExitKindReader<T> {
    ram: GuestRam,
    trigger: ExitKindTrigger,
    root_gpa: Gpa,
    translate: T,
    /// The last non-NULL `scx_root` and the GPA of its `exit_kind`.
    cached: Option<(Kva, Result<Gpa, MemError>)>,
}

impl<T: FnMut(Kva) -> Result<Gpa, MemError>> ExitKindReader<T> {
    /// Translates `scx_root`'s address and checks it is readable.
    pub fn new(
        ram: GuestRam,
        trigger: ExitKindTrigger,
        mut translate: T,
    ) -> Result<Self, WatchError> {
        let root_gpa = translate(trigger.root_ptr).map_err(|source| WatchError::Translate {
            what: "scx_root",
            source,
        })?;
        let reader = ExitKindReader {
            ram,
            trigger,
            root_gpa,
            translate,
            cached: None,
        };
        read_u64(&reader.ram, root_gpa).map_err(|source| WatchError::Read {
            what: "scx_root",
            source,
        })?;
        Ok(reader)
    }

    /// Where `scx_root` lives in guest-physical memory.
    pub fn root_gpa(&self) -> Gpa {
        self.root_gpa
    }

    /// Reads both values once. A garbage or unmapped `scx_root` target gives
    /// `exit_kind: None`, not an error; only an unreadable `scx_root` is an error.
    pub fn sample(&mut self) -> Result<Sample, MemError> {
        let root = read_u64(&self.ram, self.root_gpa)?;
        if root == 0 {
            return Ok(Sample {
                sched: None,
                exit_kind: None,
            });
        }
        let sched = Kva(root);
        Ok(Sample {
            sched: Some(sched),
            exit_kind: self.exit_kind_of(sched),
        })
    }

    /// `exit_kind` of the `scx_sched` at `sched` (translation cached for the last one).
    pub fn exit_kind_of(&mut self, sched: Kva) -> Option<u32> {
        let stale = !matches!(&self.cached, Some((k, _)) if *k == sched);
        if stale {
            let gpa = sched
                .checked_offset(self.trigger.exit_kind_offset)
                .map_err(MemError::from)
                .and_then(|kva| (self.translate)(kva));
            self.cached = Some((sched, gpa));
        }
        match &self.cached {
            Some((_, Ok(gpa))) => read_u32(&self.ram, *gpa).ok(),
            _ => None,
        }
    }

    /// `sched->exit_info->kind`, when the trigger has the offsets and both are readable.
    pub fn exit_info_kind_of(&mut self, sched: Kva) -> Option<u32> {
        let off = self.trigger.exit_info?;
        let ptr_gpa = (self.translate)(sched.checked_offset(off.exit_info).ok()?).ok()?;
        let info = read_u64(&self.ram, ptr_gpa).ok()?;
        if info == 0 {
            return None;
        }
        let kind_gpa = (self.translate)(Kva(info).checked_offset(off.kind).ok()?).ok()?;
        read_u32(&self.ram, kind_gpa).ok()
    }

    /// The error `sample` shows, if any: `(kind, late)`.
    fn error_in(&mut self, sample: &Sample) -> Option<(u32, bool)> {
        let threshold = self.trigger.threshold;
        sample.error(threshold, |s| self.exit_info_kind_of(s))
    }
}

fn mem_err(gpa: Gpa, len: usize) -> MemError {
    MemError::Unmapped { gpa, len }
}

fn read_u64(ram: &GuestRam, gpa: Gpa) -> Result<u64, MemError> {
    let addr = GuestAddress(gpa.0);
    if gpa.0.is_multiple_of(8) {
        // One atomic load: the guest may be storing the pointer right now.
        ram.load::<u64>(addr, Ordering::Acquire)
            .map_err(|_| mem_err(gpa, 8))
    } else {
        ram.read_obj::<u64>(addr).map_err(|_| mem_err(gpa, 8))
    }
}

fn read_u32(ram: &GuestRam, gpa: Gpa) -> Result<u32, MemError> {
    let addr = GuestAddress(gpa.0);
    if gpa.0.is_multiple_of(4) {
        ram.load::<u32>(addr, Ordering::Acquire)
            .map_err(|_| mem_err(gpa, 4))
    } else {
        ram.read_obj::<u32>(addr).map_err(|_| mem_err(gpa, 4))
    }
}

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Pause between polls (default 100 µs: well above 1 kHz with the read cost).
    pub period: Duration,
    /// Give up after this long (default: never).
    pub timeout: Option<Duration>,
    /// Bound on the freeze once triggered.
    pub freeze_timeout: Duration,
    /// Set it to end the watch from another thread (e.g. when the guest exited).
    pub stop: Option<Arc<AtomicBool>>,
    /// Do not trigger on this `scx_sched` (one already captured: after a thaw it keeps
    /// showing its error, and `scx_root` may keep pointing at it until the next
    /// scheduler attaches). The address counts again once `scx_root` points elsewhere
    /// or is NULL, or the object there shows `SCX_EXIT_NONE` (a later scheduler
    /// allocated at the same address).
    pub ignore_sched: Option<Kva>,
    /// Poll from a real-time (`SCHED_FIFO`) thread when the host allows it; the
    /// calling thread's policy is restored afterwards.
    pub realtime: bool,
    /// Least time between two calls of [`watch_exit_kind_with`]'s tick callback
    /// (default 10 ms; the first call comes after the first poll).
    pub tick_every: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            period: Duration::from_micros(100),
            timeout: None,
            freeze_timeout: Duration::from_secs(10),
            stop: None,
            ignore_sched: None,
            realtime: true,
            tick_every: Duration::from_millis(10),
        }
    }
}

/// Poll statistics, to check the rate held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStats {
    pub polls: u64,
    /// From the first poll to the last.
    pub watched: Duration,
    /// The longest interval between two consecutive polls, not counting the time spent
    /// in tick callbacks.
    pub max_gap: Duration,
    /// Polls whose `scx_root` read failed.
    pub read_errors: u64,
    /// Tick callbacks run.
    pub ticks: u64,
    /// Time spent in tick callbacks, all together.
    pub tick_time: Duration,
    /// The longest single tick callback.
    pub max_tick: Duration,
}

impl WatchStats {
    /// Average polls per second.
    pub fn rate_hz(&self) -> f64 {
        let s = self.watched.as_secs_f64();
        if s > 0.0 { self.polls as f64 / s } else { 0.0 }
    }
}

/// A trigger that fired and the freeze that followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    /// The `exit_kind` seen by the poll that triggered.
    pub exit_kind: u32,
    /// The `scx_sched` it was read from.
    pub sched: Kva,
    /// True when the flip was found on the `scx_sched` that `scx_root` had just stopped
    /// pointing at (the kernel already unpublished it).
    pub root_cleared: bool,
    /// True when the window was missed: `exit_kind` already read `SCX_EXIT_DONE` and
    /// the kind came from `exit_info->kind` (the kernel had begun disabling).
    pub late: bool,
    /// Whether the poll ran at real-time priority.
    pub realtime: bool,
    /// From the poll that saw the flip to QEMU/KVM reporting every vCPU stopped.
    pub flip_to_frozen: Duration,
    pub freeze: FreezeOutcome,
    /// `scx_root` and `exit_kind` re-read while frozen.
    pub at_freeze: Option<Sample>,
    pub stats: WatchStats,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchOutcome {
    Triggered(Box<Triggered>),
    TimedOut(WatchStats),
    Stopped(WatchStats),
}

/// Polls until `exit_kind >= trigger.threshold` (or, with `exit_info` offsets, a missed
/// window shows the error late), then freezes `engine` and returns the record. The
/// guest is left frozen on `Triggered` (the caller captures, then thaws).
pub fn watch_exit_kind<E, T>(
    engine: &mut E,
    trigger: ExitKindTrigger,
    translate: T,
    opts: &WatchOptions,
) -> Result<WatchOutcome, WatchError>
where
    E: Engine + ?Sized,
    T: FnMut(Kva) -> Result<Gpa, MemError>,
{
    watch(engine, trigger, translate, opts, None)
}

/// [`watch_exit_kind`], calling `on_tick` with the engine between polls (at most every
/// [`WatchOptions::tick_every`]) until the trigger fires, a tick returns [`Tick::Stop`],
/// or the watch stops or times out. `on_tick` may freeze and thaw the guest (an early
/// snapshot) but must return with it running, else the watch ends with
/// [`WatchError::LeftFrozen`]. The trigger is checked once more right after every tick,
/// so a flip that happened during a long tick is seen at once.
pub fn watch_exit_kind_with<E, T, F>(
    engine: &mut E,
    trigger: ExitKindTrigger,
    translate: T,
    opts: &WatchOptions,
    mut on_tick: F,
) -> Result<WatchOutcome, WatchError>
where
    E: Engine + ?Sized,
    T: FnMut(Kva) -> Result<Gpa, MemError>,
    F: FnMut(&mut E) -> Tick,
{
    watch(engine, trigger, translate, opts, Some(&mut on_tick))
}

type TickFn<'a, E> = &'a mut dyn FnMut(&mut E) -> Tick;

fn watch<E, T>(
    engine: &mut E,
    trigger: ExitKindTrigger,
    translate: T,
    opts: &WatchOptions,
    mut on_tick: Option<TickFn<'_, E>>,
) -> Result<WatchOutcome, WatchError>
where
    E: Engine + ?Sized,
    T: FnMut(Kva) -> Result<Gpa, MemError>,
{
    let mut reader = ExitKindReader::new(engine.guest_ram(), trigger, translate)?;
    let mut rt = if opts.realtime {
        RealtimeGuard::raise()
    } else {
        None
    };
    let realtime = rt.is_some();
    let start = Instant::now();
    let mut last_tick = start;
    let mut stats = WatchStats::default();
    let mut last_poll = start;
    let mut last_sched: Option<Kva> = None;
    let mut ignore = opts.ignore_sched;
    loop {
        let now = Instant::now();
        if stats.polls > 0 {
            stats.max_gap = stats.max_gap.max(now - last_poll);
        }
        last_poll = now;
        stats.polls += 1;
        stats.watched = now - start;
        let hit = match reader.sample() {
            Ok(
                sample @ Sample {
                    sched: Some(sched), ..
                },
            ) => {
                last_sched = Some(sched);
                if Some(sched) == ignore {
                    // A fresh scheduler allocated at the captured one's address shows
                    // SCX_EXIT_NONE: from then on the address counts again.
                    if sample.exit_kind == Some(SCX_EXIT_NONE) {
                        ignore = None;
                    }
                    None
                } else {
                    ignore = None;
                    reader
                        .error_in(&sample)
                        .map(|(kind, late)| (sched, kind, late, false))
                }
            }
            Ok(Sample { sched: None, .. }) => {
                // scx_root went NULL since the last poll: if that scheduler failed,
                // its exit_kind (or exit_info) still says so until it is freed.
                let prev = last_sched.take().filter(|s| Some(*s) != ignore);
                ignore = None;
                prev.and_then(|sched| {
                    let sample = Sample {
                        sched: Some(sched),
                        exit_kind: reader.exit_kind_of(sched),
                    };
                    reader
                        .error_in(&sample)
                        .map(|(kind, late)| (sched, kind, late, true))
                })
            }
            Err(_) => {
                stats.read_errors += 1;
                None
            }
        };
        if let Some((sched, exit_kind, late, root_cleared)) = hit {
            // `now` is when the triggering poll read guest RAM; `freeze.elapsed` runs
            // from the freeze request to every vCPU stopped (register capture, which
            // comes after, is not part of the latency).
            let before_freeze = Instant::now();
            let freeze = engine.freeze(opts.freeze_timeout);
            drop(rt);
            let freeze = freeze.map_err(WatchError::Freeze)?;
            let flip_to_frozen = (before_freeze - now) + freeze.elapsed;
            let at_freeze = reader.sample().ok();
            return Ok(WatchOutcome::Triggered(Box::new(Triggered {
                exit_kind,
                sched,
                root_cleared,
                late,
                realtime,
                flip_to_frozen,
                freeze,
                at_freeze,
                stats,
            })));
        }
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Ok(WatchOutcome::Stopped(stats));
        }
        if opts.timeout.is_some_and(|t| now - start >= t) {
            return Ok(WatchOutcome::TimedOut(stats));
        }
        if let Some(tick) = on_tick.as_mut()
            && now - last_tick >= opts.tick_every
        {
            // Host work at the normal priority; the poll's policy comes back after.
            let was_rt = rt.take().is_some();
            let t0 = Instant::now();
            let next = tick(engine);
            let took = t0.elapsed();
            if was_rt {
                rt = RealtimeGuard::raise();
            }
            stats.ticks += 1;
            stats.tick_time += took;
            stats.max_tick = stats.max_tick.max(took);
            last_tick = Instant::now();
            // The gap to the next poll starts now: the tick is not a missed poll.
            last_poll = last_tick;
            if engine.is_frozen() {
                return Err(WatchError::LeftFrozen);
            }
            if next == Tick::Stop {
                return Ok(WatchOutcome::Stopped(stats));
            }
            // Poll again at once: the tick may have taken long.
            continue;
        }
        std::thread::sleep(opts.period);
    }
}

/// The calling thread at `SCHED_FIFO` priority while alive; the old policy is restored
/// on drop. A thread that sleeps 100 µs per poll uses little CPU, so a real-time
/// policy costs the host nothing noticeable and keeps a loaded host from delaying the
/// poll past the window.
struct RealtimeGuard {
    policy: libc::c_int,
    param: libc::sched_param,
}

impl RealtimeGuard {
    /// `None` when the host refuses (no privilege) or the call fails.
    fn raise() -> Option<RealtimeGuard> {
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscalls on the calling thread (pid 0) with valid pointers.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            if policy < 0 || libc::sched_getparam(0, &mut param) != 0 {
                return None;
            }
            let rt = libc::sched_param { sched_priority: 10 };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt) != 0 {
                return None;
            }
            Some(RealtimeGuard { policy, param })
        }
    }
}

impl Drop for RealtimeGuard {
    fn drop(&mut self) {
        // SAFETY: restores the calling thread's own policy saved by `raise` (the guard
        // is not Send: it is dropped on the thread that raised it).
        unsafe {
            libc::sched_setscheduler(0, self.policy, &self.param);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Edge cases on synthetic guest RAM; the real-guest tests are in
    //! `tests/qemu_trigger.rs`.
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const ROOT: u64 = 0x1000;
    const SCHED: u64 = 0x8000;
    const OFF: u64 = 0x40;
    const DIRECT: u64 = 0xffff_8880_0000_0000;
    const INFO_PTR: u64 = 0x48;
    const INFO: u64 = 0x9000;

    /// Frozen flag only: the synthetic guest has no vCPUs to stop.
    struct Synthetic {
        ram: GuestRam,
        frozen: bool,
    }

    impl Engine for Synthetic {
        fn guest_ram(&self) -> GuestRam {
            self.ram.clone()
        }
        fn vcpu_count(&self) -> usize {
            1
        }
        fn freeze(&mut self, _t: Duration) -> Result<FreezeOutcome, EngineError> {
            self.frozen = true;
            Ok(FreezeOutcome {
                vcpus: vec![Some(Default::default())],
                elapsed: Duration::from_micros(1),
                vcpu_perf: Default::default(),
            })
        }
        fn thaw(&mut self) -> Result<(), EngineError> {
            self.frozen = false;
            Ok(())
        }
        fn is_frozen(&self) -> bool {
            self.frozen
        }
        fn console_tail(&self) -> String {
            String::new()
        }
    }

    fn setup(root: u64, kind: u32) -> Synthetic {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 16)]).unwrap();
        ram.write_obj(root, GuestAddress(ROOT)).unwrap();
        ram.write_obj(kind, GuestAddress(SCHED + OFF)).unwrap();
        ram.write_obj(DIRECT + INFO, GuestAddress(SCHED + INFO_PTR))
            .unwrap();
        Synthetic { ram, frozen: false }
    }

    fn translate(k: Kva) -> Result<Gpa, MemError> {
        match k.0 {
            0xffff_ffff_8000_0000.. => Ok(Gpa(k.0 - 0xffff_ffff_8000_0000)),
            DIRECT..=0xffff_8880_ffff_ffff => Ok(Gpa(k.0 - DIRECT)),
            _ => Err(MemError::Untranslatable {
                kva: k,
                why: "synthetic",
            }),
        }
    }

    fn trigger() -> ExitKindTrigger {
        ExitKindTrigger::error_exit(Kva(0xffff_ffff_8000_0000 + ROOT), OFF, Some((INFO_PTR, 0)))
    }

    #[test]
    fn fires_on_flip_and_freezes() {
        let mut e = setup(DIRECT + SCHED, 0);
        let ram = e.ram.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            ram.store(
                SCX_EXIT_ERROR_STALL,
                GuestAddress(SCHED + OFF),
                Ordering::Release,
            )
            .unwrap();
        });
        let out = watch_exit_kind(&mut e, trigger(), translate, &WatchOptions::default()).unwrap();
        t.join().unwrap();
        let WatchOutcome::Triggered(t) = out else {
            panic!("{out:?}")
        };
        assert_eq!(t.exit_kind, SCX_EXIT_ERROR_STALL);
        assert_eq!(t.sched, Kva(DIRECT + SCHED));
        assert!(!t.root_cleared);
        assert!(!t.late);
        assert!(e.is_frozen());
        assert_eq!(
            t.at_freeze,
            Some(Sample {
                sched: Some(Kva(DIRECT + SCHED)),
                exit_kind: Some(SCX_EXIT_ERROR_STALL)
            })
        );
        assert!(t.stats.polls > 1);
        assert!(t.stats.rate_hz() > 0.0);
    }

    #[test]
    fn a_missed_window_triggers_late_through_exit_info() {
        // The disable worker already replaced exit_kind with DONE; exit_info keeps 1026.
        let mut e = setup(DIRECT + SCHED, SCX_EXIT_DONE);
        e.ram
            .write_obj(SCX_EXIT_ERROR_STALL, GuestAddress(INFO))
            .unwrap();
        let out = watch_exit_kind(&mut e, trigger(), translate, &WatchOptions::default()).unwrap();
        let WatchOutcome::Triggered(t) = out else {
            panic!("{out:?}")
        };
        assert!(t.late);
        assert_eq!(t.exit_kind, SCX_EXIT_ERROR_STALL);
        // A clean exit (DONE after UNREG = 64) never triggers, nor does DONE without
        // the exit_info offsets.
        let mut e = setup(DIRECT + SCHED, SCX_EXIT_DONE);
        e.ram.write_obj(64u32, GuestAddress(INFO)).unwrap();
        let opts = WatchOptions {
            timeout: Some(Duration::from_millis(20)),
            ..Default::default()
        };
        let out = watch_exit_kind(&mut e, trigger(), translate, &opts).unwrap();
        assert!(matches!(out, WatchOutcome::TimedOut(_)), "{out:?}");
        let mut e = setup(DIRECT + SCHED, SCX_EXIT_DONE);
        e.ram
            .write_obj(SCX_EXIT_ERROR_STALL, GuestAddress(INFO))
            .unwrap();
        let mut no_info = trigger();
        no_info.exit_info = None;
        let out = watch_exit_kind(&mut e, no_info, translate, &opts).unwrap();
        assert!(matches!(out, WatchOutcome::TimedOut(_)), "{out:?}");
    }

    #[test]
    fn ignores_the_captured_sched_and_times_out() {
        let mut e = setup(DIRECT + SCHED, SCX_EXIT_ERROR_BPF);
        let opts = WatchOptions {
            timeout: Some(Duration::from_millis(20)),
            ignore_sched: Some(Kva(DIRECT + SCHED)),
            ..Default::default()
        };
        let out = watch_exit_kind(&mut e, trigger(), translate, &opts).unwrap();
        assert!(
            matches!(out, WatchOutcome::TimedOut(s) if s.polls > 1),
            "{out:?}"
        );
        assert!(!e.is_frozen());
    }

    #[test]
    fn the_ignored_address_counts_again_for_a_new_scheduler() {
        // The captured scheduler, still published with its error, is ignored ...
        let mut e = setup(DIRECT + SCHED, SCX_EXIT_ERROR_BPF);
        let ram = e.ram.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            // ... then a new one allocated at the same address attaches (scx_root is
            // never NULL in between) and fails.
            ram.store(SCX_EXIT_NONE, GuestAddress(SCHED + OFF), Ordering::Release)
                .unwrap();
            std::thread::sleep(Duration::from_millis(20));
            ram.store(
                SCX_EXIT_ERROR_STALL,
                GuestAddress(SCHED + OFF),
                Ordering::Release,
            )
            .unwrap();
        });
        let opts = WatchOptions {
            timeout: Some(Duration::from_secs(10)),
            ignore_sched: Some(Kva(DIRECT + SCHED)),
            ..Default::default()
        };
        let out = watch_exit_kind(&mut e, trigger(), translate, &opts).unwrap();
        t.join().unwrap();
        let WatchOutcome::Triggered(t) = out else {
            panic!("{out:?}")
        };
        assert_eq!(t.exit_kind, SCX_EXIT_ERROR_STALL);
    }

    #[test]
    fn below_threshold_null_and_garbage_never_fire() {
        for root in [0, DIRECT + SCHED, 0x1234, u64::MAX] {
            let mut e = setup(root, 7);
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                s2.store(true, Ordering::Relaxed);
            });
            let opts = WatchOptions {
                stop: Some(stop),
                ..Default::default()
            };
            let out = watch_exit_kind(&mut e, trigger(), translate, &opts).unwrap();
            t.join().unwrap();
            assert!(
                matches!(out, WatchOutcome::Stopped(_)),
                "root {root:#x}: {out:?}"
            );
        }
    }

    #[test]
    fn unreadable_root_is_an_error() {
        let mut e = setup(0, 0);
        let mut bad = trigger();
        bad.root_ptr = Kva(0x10);
        let err = watch_exit_kind(&mut e, bad, translate, &WatchOptions::default()).unwrap_err();
        assert!(matches!(err, WatchError::Translate { .. }), "{err}");
        bad.root_ptr = Kva(0xffff_ffff_8000_0000 + (1 << 20));
        let err = watch_exit_kind(&mut e, bad, translate, &WatchOptions::default()).unwrap_err();
        assert!(matches!(err, WatchError::Read { .. }), "{err}");
    }

    #[test]
    fn ticks_run_between_polls_and_may_freeze_and_thaw() {
        let mut e = setup(DIRECT + SCHED, 0);
        let ram = e.ram.clone();
        let mut calls = 0u32;
        let mut snapshots = 0u32;
        let opts = WatchOptions {
            tick_every: Duration::from_millis(2),
            ..Default::default()
        };
        let out = watch_exit_kind_with(&mut e, trigger(), translate, &opts, |eng| {
            calls += 1;
            if calls == 3 {
                // An early snapshot: freeze, "capture", thaw; the watch goes on.
                eng.freeze(Duration::from_secs(1)).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                snapshots += 1;
                eng.thaw().unwrap();
            }
            if calls == 6 {
                ram.store(
                    SCX_EXIT_ERROR_BPF,
                    GuestAddress(SCHED + OFF),
                    Ordering::Release,
                )
                .unwrap();
            }
            Tick::Continue
        })
        .unwrap();
        let WatchOutcome::Triggered(t) = out else {
            panic!("{out:?}")
        };
        assert_eq!(t.exit_kind, SCX_EXIT_ERROR_BPF);
        assert_eq!(snapshots, 1);
        // The flip written by the sixth tick is seen by the poll right after it.
        assert_eq!(calls, 6);
        assert_eq!(t.stats.ticks, 6);
        assert!(
            t.stats.max_tick >= Duration::from_millis(30),
            "{:?}",
            t.stats
        );
        assert!(t.stats.tick_time >= t.stats.max_tick);
        // The 300 ms snapshot is tick time, not a gap between polls.
        assert!(
            t.stats.max_gap < Duration::from_millis(300),
            "{:?}",
            t.stats
        );
        assert!(e.is_frozen(), "frozen by the trigger");
    }

    #[test]
    fn a_tick_can_stop_the_watch_and_must_not_leave_it_frozen() {
        let mut e = setup(DIRECT + SCHED, 0);
        let mut n = 0;
        let out = watch_exit_kind_with(
            &mut e,
            trigger(),
            translate,
            &WatchOptions {
                tick_every: Duration::ZERO,
                ..Default::default()
            },
            |_| {
                n += 1;
                if n == 4 { Tick::Stop } else { Tick::Continue }
            },
        )
        .unwrap();
        assert!(
            matches!(out, WatchOutcome::Stopped(s) if s.ticks == 4),
            "{out:?}"
        );
        let err = watch_exit_kind_with(
            &mut e,
            trigger(),
            translate,
            &WatchOptions::default(),
            |eng| {
                eng.freeze(Duration::from_secs(1)).unwrap();
                Tick::Continue
            },
        )
        .unwrap_err();
        assert!(matches!(err, WatchError::LeftFrozen), "{err}");
    }

    #[test]
    fn ticks_are_rate_limited() {
        let mut e = setup(DIRECT + SCHED, 0);
        let opts = WatchOptions {
            timeout: Some(Duration::from_millis(200)),
            tick_every: Duration::from_millis(50),
            ..Default::default()
        };
        let out =
            watch_exit_kind_with(&mut e, trigger(), translate, &opts, |_| Tick::Continue).unwrap();
        let WatchOutcome::TimedOut(s) = out else {
            panic!("{out:?}")
        };
        // 200 ms at one tick per 50 ms: at most 4 (the first comes 50 ms in).
        assert!((1..=4).contains(&s.ticks), "{s:?}");
        assert!(s.polls > s.ticks * 5, "polls go on between ticks: {s:?}");
    }

    #[test]
    fn reader_samples() {
        let e = setup(DIRECT + SCHED, 1025);
        let mut r = ExitKindReader::new(e.ram.clone(), trigger(), translate).unwrap();
        assert_eq!(r.root_gpa(), Gpa(ROOT));
        assert_eq!(
            r.sample().unwrap(),
            Sample {
                sched: Some(Kva(DIRECT + SCHED)),
                exit_kind: Some(1025)
            }
        );
        // An offset that overflows the pointer gives no exit_kind, not a panic.
        let mut t = trigger();
        t.exit_kind_offset = u64::MAX;
        let mut r = ExitKindReader::new(e.ram.clone(), t, translate).unwrap();
        assert_eq!(r.sample().unwrap().exit_kind, None);
    }
}
