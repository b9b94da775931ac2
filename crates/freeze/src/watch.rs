//! Poll watch: freeze the guest as soon as a value in its memory says so.
//!
//! The host polls, with no help from the guest, a `u32` inside an object that a kernel
//! pointer variable points at — [`Polled`]: `*pointer + offset` (the capture session
//! polls `scx_root->exit_kind`) — and asks a caller's [`Rule`] whether a reading fires.
//! When it does, the engine freezes at once, and the time from the reading to every vCPU
//! stopped is measured and reported ([`Triggered::flip_to_frozen`]).
//!
//! The engine knows nothing of what the value means: the rule does (scx-walk owns the
//! sched_ext exit kinds and their rules). A rule may read further live values with its
//! own reader (the capture session's rule reads `exit_info->kind` when `exit_kind`
//! already says `SCX_EXIT_DONE`) and say that its verdict is *late* (the value had moved
//! on; the rule found what it was through another field).
//!
//! A poll can miss a short window: the thread polling may be descheduled longer than the
//! value stays put. So the poll runs every 100 µs by default on a thread raised to
//! real-time priority when the host allows it. The exact instant comes from a write
//! watchpoint instead ([`crate::watchpoint`]); this watch is the fallback for an engine
//! without one.
//!
//! When the pointer goes NULL between two polls, the rule is asked once more about the
//! object it pointed at ([`Triggered::root_cleared`]): the kernel may unpublish a failed
//! object before the next poll.
//!
//! # Work between polls
//! [`watch_u32_with`] runs a caller's callback between polls, at most every
//! [`WatchOptions::tick_every`] (default 10 ms), with the engine in hand: the capture
//! session scans the runnable tasks' ages there and, when they cross its threshold,
//! freezes, captures and thaws (the early snapshot of a dual capture) before the watch
//! goes on. The callback runs at the caller's normal priority (the real-time policy is
//! dropped around it, so a heavy capture does not hog a host CPU at `SCHED_FIFO`), and its
//! time is kept out of [`WatchStats::max_gap`] and counted in [`WatchStats::tick_time`].
//! It must leave the guest running: a tick that returns with the engine frozen ends the
//! watch with [`WatchError::LeftFrozen`] (a frozen guest cannot change the value).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use guest_mem::{Gpa, Kva, MemError, PhysMem};

use crate::{Engine, EngineError, FreezeOutcome};

/// What to poll: the `u32` at `offset` inside the object the pointer variable at
/// `pointer` points at — or, when `direct`, the `u32` at `pointer + offset` itself (a
/// value that is a kernel global, such as 6.12's `scx_exit_kind`; the object the rule
/// is asked about is then `pointer`, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Polled {
    /// Address of the pointer variable (a kernel global), or of the object when `direct`.
    pub pointer: Kva,
    /// Offset of the `u32` in the object.
    pub offset: u64,
    /// `pointer` is the object itself, not a pointer to it.
    pub direct: bool,
}

/// A reading that fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// The value the rule fired on (for a late verdict: the value it found elsewhere).
    pub value: u32,
    /// The polled value had already moved on; the rule found what it was through
    /// another field.
    pub late: bool,
}

/// Decides whether a reading fires, given the object and the `u32` read from it. Any
/// `FnMut(Kva, u32) -> Option<Fire>` is a rule.
pub trait Rule {
    fn fires(&mut self, object: Kva, value: u32) -> Option<Fire>;
}

impl<F: FnMut(Kva, u32) -> Option<Fire>> Rule for F {
    fn fires(&mut self, object: Kva, value: u32) -> Option<Fire> {
        self(object, value)
    }
}

/// One reading of the polled value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The pointer's value; `None` when NULL.
    pub object: Option<Kva>,
    /// The `u32` when the object is set and readable.
    pub value: Option<u32>,
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
    #[error("cannot map guest RAM: {0}")]
    Map(String),
    #[error("freeze after the trigger failed: {0}")]
    Freeze(#[source] EngineError),
    /// The tick callback returned with the guest still frozen.
    #[error("the watch's tick callback left the guest frozen")]
    LeftFrozen,
}

/// What the tick callback of [`watch_u32_with`] asks the watch to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Keep polling.
    Continue,
    /// End the watch now ([`WatchOutcome::Stopped`]).
    Stop,
}

/// Reads the pointer and the `u32` behind it from live guest RAM.
///
/// The translation of the pointer variable's own address is done once (the kernel image
/// does not move); the object's is translated again only when the pointer changes.
pub struct PolledReader<T> {
    ram: PhysMem,
    translate: T,
    polled: Polled,
    pointer_gpa: Gpa,
    /// The last non-NULL object and the GPA of its value.
    cached: Option<(Kva, Result<Gpa, MemError>)>,
}

impl<T: FnMut(Kva) -> Result<Gpa, MemError>> PolledReader<T> {
    /// Translates the pointer variable's address and checks it is readable.
    pub fn new(ram: PhysMem, polled: Polled, mut translate: T) -> Result<Self, WatchError> {
        let pointer_gpa = translate(polled.pointer).map_err(|source| WatchError::Translate {
            what: "the polled pointer",
            source,
        })?;
        ram.read_u64(pointer_gpa)
            .map_err(|source| WatchError::Read {
                what: "the polled pointer",
                source,
            })?;
        Ok(PolledReader {
            ram,
            translate,
            polled,
            pointer_gpa,
            cached: None,
        })
    }

    /// Where the pointer variable lives in guest-physical memory.
    pub fn pointer_gpa(&self) -> Gpa {
        self.pointer_gpa
    }

    /// Reads both once. A garbage or unmapped object gives `value: None`, not an error;
    /// only an unreadable pointer variable is an error.
    pub fn sample(&mut self) -> Result<Sample, MemError> {
        if self.polled.direct {
            let object = self.polled.pointer;
            return Ok(Sample {
                object: Some(object),
                value: self.value_of(object),
            });
        }
        let ptr = self.ram.read_u64(self.pointer_gpa)?;
        if ptr == 0 {
            return Ok(Sample {
                object: None,
                value: None,
            });
        }
        let object = Kva(ptr);
        Ok(Sample {
            object: Some(object),
            value: self.value_of(object),
        })
    }

    /// The value in the object at `object` (translation cached for the last one).
    pub fn value_of(&mut self, object: Kva) -> Option<u32> {
        let stale = !matches!(&self.cached, Some((k, _)) if *k == object);
        if stale {
            let gpa = object
                .checked_offset(self.polled.offset)
                .map_err(MemError::from)
                .and_then(|kva| (self.translate)(kva));
            self.cached = Some((object, gpa));
        }
        match &self.cached {
            Some((_, Ok(gpa))) => self.ram.read_u32(*gpa).ok(),
            _ => None,
        }
    }

    /// Asks `rule` about `object` (its value read now); `None` when unreadable.
    fn judge(&mut self, object: Kva, rule: &mut dyn Rule) -> Option<Fire> {
        let value = self.value_of(object)?;
        rule.fires(object, value)
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
    /// Never fire on this object (one already captured: after a thaw it keeps showing
    /// what fired, and the pointer may keep pointing at it). The address counts again
    /// once the pointer points elsewhere or is NULL, or the object there shows
    /// [`WatchOptions::fresh_value`] (a new object allocated at the same address).
    pub ignore_object: Option<Kva>,
    /// The value a newly created object starts with (the capture session: `SCX_EXIT_NONE`).
    pub fresh_value: Option<u32>,
    /// Poll from a real-time (`SCHED_FIFO`) thread when the host allows it; the
    /// calling thread's policy is restored afterwards.
    pub realtime: bool,
    /// Least time between two calls of [`watch_u32_with`]'s tick callback
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
            ignore_object: None,
            fresh_value: None,
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
    /// Polls whose pointer read failed.
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
    /// What the rule fired on.
    pub fire: Fire,
    /// The object it was read from.
    pub object: Kva,
    /// True when it fired on the object the pointer had just stopped pointing at.
    pub root_cleared: bool,
    /// Whether the poll ran at real-time priority.
    pub realtime: bool,
    /// From the poll that fired to the engine reporting every vCPU stopped.
    pub flip_to_frozen: Duration,
    pub freeze: FreezeOutcome,
    /// The pointer and the value re-read while frozen.
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

/// Polls `polled` until `rule` fires, then freezes `engine` and returns the record. The
/// guest is left frozen on `Triggered` (the caller captures, then thaws).
pub fn watch_u32<E, T, R>(
    engine: &mut E,
    polled: Polled,
    translate: T,
    rule: R,
    opts: &WatchOptions,
) -> Result<WatchOutcome, WatchError>
where
    E: Engine + ?Sized,
    T: FnMut(Kva) -> Result<Gpa, MemError>,
    R: Rule,
{
    watch_u32_with(engine, polled, translate, rule, opts, |_: &mut E| {
        Tick::Continue
    })
}

/// [`watch_u32`], calling `on_tick` with the engine between polls (at most every
/// [`WatchOptions::tick_every`]) until the rule fires, a tick returns [`Tick::Stop`], or
/// the watch stops or times out. `on_tick` may freeze and thaw the guest (an early
/// snapshot) but must return with it running, else the watch ends with
/// [`WatchError::LeftFrozen`]. The value is polled once more right after every tick, so a
/// change during a long tick is seen at once.
pub fn watch_u32_with<E, T, R, F>(
    engine: &mut E,
    polled: Polled,
    translate: T,
    mut rule: R,
    opts: &WatchOptions,
    mut on_tick: F,
) -> Result<WatchOutcome, WatchError>
where
    E: Engine + ?Sized,
    T: FnMut(Kva) -> Result<Gpa, MemError>,
    R: Rule,
    F: FnMut(&mut E) -> Tick,
{
    let ram = PhysMem::from_guest_memory(&engine.guest_ram())
        .map_err(|e| WatchError::Map(e.to_string()))?;
    let mut poller = Poller {
        reader: PolledReader::new(ram, polled, translate)?,
        last_object: None,
        ignore: opts.ignore_object,
        fresh: opts.fresh_value,
    };
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
    loop {
        let now = Instant::now();
        if stats.polls > 0 {
            stats.max_gap = stats.max_gap.max(now - last_poll);
        }
        last_poll = now;
        stats.polls += 1;
        stats.watched = now - start;
        if let Some((object, fire, root_cleared)) = poller.poll(&mut rule, &mut stats) {
            // `now` is when the firing poll read guest RAM; `freeze.elapsed` runs from
            // the freeze request to every vCPU stopped (register capture, which comes
            // after, is not part of the latency).
            let before_freeze = Instant::now();
            let freeze = engine.freeze(opts.freeze_timeout);
            drop(rt);
            let freeze = freeze.map_err(WatchError::Freeze)?;
            return Ok(WatchOutcome::Triggered(Box::new(Triggered {
                fire,
                object,
                root_cleared,
                realtime,
                flip_to_frozen: (before_freeze - now) + freeze.elapsed,
                freeze,
                at_freeze: poller.reader.sample().ok(),
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
        if now - last_tick < opts.tick_every {
            std::thread::sleep(opts.period);
            continue;
        }
        // Host work at the normal priority; the poll's policy comes back after.
        let was_rt = rt.take().is_some();
        let t0 = Instant::now();
        let next = on_tick(engine);
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
    }
}

/// The state one poll needs from the previous ones.
struct Poller<T> {
    reader: PolledReader<T>,
    /// The object the last poll saw (to judge it once more when the pointer goes NULL).
    last_object: Option<Kva>,
    ignore: Option<Kva>,
    fresh: Option<u32>,
}

impl<T: FnMut(Kva) -> Result<Gpa, MemError>> Poller<T> {
    /// One poll: `(object, fire, root_cleared)` when the rule fires.
    fn poll(&mut self, rule: &mut dyn Rule, stats: &mut WatchStats) -> Option<(Kva, Fire, bool)> {
        match self.reader.sample() {
            Ok(Sample {
                object: Some(object),
                value,
            }) => {
                self.last_object = Some(object);
                if Some(object) == self.ignore {
                    // A new object allocated at the captured one's address shows the
                    // fresh value: from then on the address counts again.
                    if value.is_some() && value == self.fresh {
                        self.ignore = None;
                    }
                    return None;
                }
                self.ignore = None;
                let fire = rule.fires(object, value?)?;
                Some((object, fire, false))
            }
            Ok(Sample { object: None, .. }) => {
                // The pointer went NULL since the last poll: the object it pointed at
                // still shows what it was until it is freed.
                let prev = self.last_object.take().filter(|o| Some(*o) != self.ignore);
                self.ignore = None;
                let object = prev?;
                let fire = self.reader.judge(object, rule)?;
                Some((object, fire, true))
            }
            Err(_) => {
                stats.read_errors += 1;
                None
            }
        }
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
    use crate::GuestRam;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

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

    // Values of the test rule, shaped like the capture session's (scx-walk owns the exit
    // kinds and the rule): fire at ERROR and above; a value that moved on to DONE fires
    // late when the object's `info` pointer leads to an error.
    use scx_walk::exit_kind::{
        SCX_EXIT_DONE as DONE, SCX_EXIT_ERROR as ERROR, SCX_EXIT_ERROR_BPF as ERROR_BPF,
        SCX_EXIT_ERROR_STALL as ERROR_STALL, SCX_EXIT_NONE as NONE,
    };

    fn polled() -> Polled {
        Polled {
            pointer: Kva(0xffff_ffff_8000_0000 + ROOT),
            offset: OFF,
            direct: false,
        }
    }

    /// The rule reading `info` with its own reader of the synthetic RAM.
    fn rule_on(ram: GuestRam) -> impl FnMut(Kva, u32) -> Option<Fire> {
        move |object, value| match value {
            v if v >= ERROR => Some(Fire {
                value: v,
                late: false,
            }),
            DONE => {
                let info: u64 = ram
                    .read_obj(GuestAddress(
                        translate(object.checked_offset(INFO_PTR).ok()?).ok()?.0,
                    ))
                    .ok()?;
                let kind: u32 = ram
                    .read_obj(GuestAddress(translate(Kva(info)).ok()?.0))
                    .ok()?;
                (kind >= ERROR).then_some(Fire {
                    value: kind,
                    late: true,
                })
            }
            _ => None,
        }
    }

    fn run(e: &mut Synthetic, opts: &WatchOptions) -> Result<WatchOutcome, WatchError> {
        let rule = rule_on(e.ram.clone());
        watch_u32(e, polled(), translate, rule, opts)
    }

    /// Stores the scheduler's exit kind as the kernel does (while the watch runs).
    fn store_kind(ram: &GuestRam, kind: u32) {
        ram.store(kind, GuestAddress(SCHED + OFF), Ordering::Release)
            .unwrap();
    }

    /// A scheduler that failed (`ERROR_BPF`) and was captured, and options with `timeout`
    /// that ignore it from now on.
    fn captured(timeout: Duration) -> (Synthetic, WatchOptions) {
        let opts = WatchOptions {
            timeout: Some(timeout),
            ignore_object: Some(Kva(DIRECT + SCHED)),
            ..opts()
        };
        (setup(DIRECT + SCHED, ERROR_BPF), opts)
    }

    /// What fired, when the watch fired.
    fn triggered(out: WatchOutcome) -> Box<Triggered> {
        match out {
            WatchOutcome::Triggered(t) => t,
            other => panic!("{other:?}"),
        }
    }

    /// Watches with `opts` while `guest` changes the guest's memory (in a thread of its
    /// own); what fired.
    fn triggered_while(
        e: &mut Synthetic,
        opts: &WatchOptions,
        guest: impl FnOnce(GuestRam) + Send + 'static,
    ) -> Box<Triggered> {
        let ram = e.ram.clone();
        let t = std::thread::spawn(move || guest(ram));
        let out = run(e, opts).unwrap();
        t.join().unwrap();
        triggered(out)
    }

    /// The rule without the late path.
    fn threshold_only(_: Kva, value: u32) -> Option<Fire> {
        (value >= ERROR).then_some(Fire { value, late: false })
    }

    fn opts() -> WatchOptions {
        WatchOptions {
            fresh_value: Some(NONE),
            ..Default::default()
        }
    }

    fn phys(ram: &GuestRam) -> PhysMem {
        PhysMem::from_guest_memory(ram).unwrap()
    }

    #[test]
    fn fires_on_flip_and_freezes() {
        let mut e = setup(DIRECT + SCHED, 0);
        let t = triggered_while(&mut e, &opts(), |ram| {
            std::thread::sleep(Duration::from_millis(30));
            store_kind(&ram, ERROR_STALL);
        });
        assert_eq!(t.fire.value, ERROR_STALL);
        assert_eq!(t.object, Kva(DIRECT + SCHED));
        assert!(!t.root_cleared);
        assert!(!t.fire.late);
        assert!(e.is_frozen());
        assert_eq!(
            t.at_freeze,
            Some(Sample {
                object: Some(Kva(DIRECT + SCHED)),
                value: Some(ERROR_STALL)
            })
        );
        assert!(t.stats.polls > 1);
        assert!(t.stats.rate_hz() > 0.0);
    }

    /// A value that is itself a global (6.12's `scx_exit_kind`): polled in place, the
    /// rule asked about the global's own address.
    #[test]
    fn a_direct_global_fires_in_place() {
        let mut e = setup(DIRECT + SCHED, 0);
        let ram = e.ram.clone();
        let global = Polled {
            pointer: Kva(DIRECT + SCHED),
            offset: OFF,
            direct: true,
        };
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            ram.store(ERROR_BPF, GuestAddress(SCHED + OFF), Ordering::Release)
                .unwrap();
        });
        let out = watch_u32(&mut e, global, translate, threshold_only, &opts()).unwrap();
        t.join().unwrap();
        let WatchOutcome::Triggered(t) = out else {
            panic!("{out:?}")
        };
        assert_eq!(t.fire.value, ERROR_BPF);
        assert_eq!(t.object, Kva(DIRECT + SCHED));
        assert!(e.is_frozen());
    }

    #[test]
    fn a_missed_window_triggers_late_through_exit_info() {
        // The disable worker already replaced exit_kind with DONE; exit_info keeps 1026.
        let mut e = setup(DIRECT + SCHED, DONE);
        e.ram.write_obj(ERROR_STALL, GuestAddress(INFO)).unwrap();
        let out = run(&mut e, &opts()).unwrap();
        let t = triggered(out);
        assert!(t.fire.late);
        assert_eq!(t.fire.value, ERROR_STALL);
        // A clean exit (DONE after UNREG = 64) never triggers, nor does DONE without
        // the exit_info offsets.
        let mut e = setup(DIRECT + SCHED, DONE);
        e.ram.write_obj(64u32, GuestAddress(INFO)).unwrap();
        let opts = WatchOptions {
            timeout: Some(Duration::from_millis(20)),
            ..opts()
        };
        let out = run(&mut e, &opts).unwrap();
        assert!(matches!(out, WatchOutcome::TimedOut(_)), "{out:?}");
        let mut e = setup(DIRECT + SCHED, DONE);
        e.ram.write_obj(ERROR_STALL, GuestAddress(INFO)).unwrap();
        let out = watch_u32(&mut e, polled(), translate, threshold_only, &opts).unwrap();
        assert!(matches!(out, WatchOutcome::TimedOut(_)), "{out:?}");
    }

    #[test]
    fn ignores_the_captured_sched_and_times_out() {
        let (mut e, opts) = captured(Duration::from_millis(20));
        let out = run(&mut e, &opts).unwrap();
        assert!(
            matches!(out, WatchOutcome::TimedOut(s) if s.polls > 1),
            "{out:?}"
        );
        assert!(!e.is_frozen());
    }

    #[test]
    fn the_ignored_address_counts_again_for_a_new_scheduler() {
        // The captured scheduler, still published with its error, is ignored ...
        let (mut e, opts) = captured(Duration::from_secs(10));
        let t = triggered_while(&mut e, &opts, |ram| {
            std::thread::sleep(Duration::from_millis(20));
            // ... then a new one allocated at the same address attaches (scx_root is
            // never NULL in between) and fails.
            store_kind(&ram, NONE);
            std::thread::sleep(Duration::from_millis(20));
            store_kind(&ram, ERROR_STALL);
        });
        assert_eq!(t.fire.value, ERROR_STALL);
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
                ..opts()
            };
            let out = run(&mut e, &opts).unwrap();
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
        let ram0 = e.ram.clone();
        let mut bad = polled();
        bad.pointer = Kva(0x10);
        let err = watch_u32(&mut e, bad, translate, rule_on(ram0.clone()), &opts()).unwrap_err();
        assert!(matches!(err, WatchError::Translate { .. }), "{err}");
        bad.pointer = Kva(0xffff_ffff_8000_0000 + (1 << 20));
        let err = watch_u32(&mut e, bad, translate, rule_on(ram0.clone()), &opts()).unwrap_err();
        assert!(matches!(err, WatchError::Read { .. }), "{err}");
    }

    #[test]
    fn ticks_run_between_polls_and_may_freeze_and_thaw() {
        let mut e = setup(DIRECT + SCHED, 0);
        let ram0 = e.ram.clone();
        let ram = e.ram.clone();
        let mut calls = 0u32;
        let mut snapshots = 0u32;
        let opts = WatchOptions {
            tick_every: Duration::from_millis(2),
            ..Default::default()
        };
        let rule = rule_on(ram0.clone());
        let out = watch_u32_with(&mut e, polled(), translate, rule, &opts, |eng| {
            calls += 1;
            if calls == 3 {
                // An early snapshot: freeze, "capture", thaw; the watch goes on.
                eng.freeze(Duration::from_secs(1)).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                snapshots += 1;
                eng.thaw().unwrap();
            }
            if calls == 6 {
                store_kind(&ram, ERROR_BPF);
            }
            Tick::Continue
        })
        .unwrap();
        let t = triggered(out);
        assert_eq!(t.fire.value, ERROR_BPF);
        assert_eq!(snapshots, 1);
        // The flip written by the sixth tick is seen by the poll right after it.
        assert_eq!(calls, 6);
        assert_eq!(t.stats.ticks, 6);
        // The 300 ms snapshot is counted as tick time, not as a gap between polls
        // (accounting, not speed: the tick slept 300 ms by construction).
        assert!(
            t.stats.max_tick >= Duration::from_millis(300),
            "{:?}",
            t.stats
        );
        assert!(t.stats.tick_time >= t.stats.max_tick);
        assert!(t.stats.max_gap < t.stats.max_tick, "{:?}", t.stats);
        assert!(e.is_frozen(), "frozen by the trigger");
    }

    #[test]
    fn a_tick_can_stop_the_watch_and_must_not_leave_it_frozen() {
        let mut e = setup(DIRECT + SCHED, 0);
        let ram0 = e.ram.clone();
        let mut n = 0;
        let out = watch_u32_with(
            &mut e,
            polled(),
            translate,
            rule_on(ram0.clone()),
            &WatchOptions {
                tick_every: Duration::ZERO,
                ..opts()
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
        let err = watch_u32_with(
            &mut e,
            polled(),
            translate,
            rule_on(ram0.clone()),
            &opts(),
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
        let ram0 = e.ram.clone();
        let opts = WatchOptions {
            timeout: Some(Duration::from_millis(200)),
            tick_every: Duration::from_millis(50),
            ..Default::default()
        };
        let out = watch_u32_with(
            &mut e,
            polled(),
            translate,
            rule_on(ram0.clone()),
            &opts,
            |_| Tick::Continue,
        )
        .unwrap();
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
        let mut r = PolledReader::new(phys(&e.ram), polled(), translate).unwrap();
        assert_eq!(r.pointer_gpa(), Gpa(ROOT));
        assert_eq!(
            r.sample().unwrap(),
            Sample {
                object: Some(Kva(DIRECT + SCHED)),
                value: Some(1025)
            }
        );
        // An offset that overflows the pointer gives no value, not a panic.
        let mut p = polled();
        p.offset = u64::MAX;
        let mut r = PolledReader::new(phys(&e.ram), p, translate).unwrap();
        assert_eq!(r.sample().unwrap().value, None);
    }

    #[test]
    fn a_cleared_pointer_judges_the_object_it_pointed_at() {
        // The kernel unpublishes the object (pointer NULL) after it failed, between polls.
        let mut e = setup(DIRECT + SCHED, NONE);
        let opts = WatchOptions {
            timeout: Some(Duration::from_secs(10)),
            realtime: false,
            ..opts()
        };
        let t = triggered_while(&mut e, &opts, |ram| {
            std::thread::sleep(Duration::from_millis(20));
            store_kind(&ram, ERROR_BPF);
            ram.store(0u64, GuestAddress(ROOT), Ordering::Release)
                .unwrap();
        });
        assert_eq!(t.fire.value, ERROR_BPF);
        assert_eq!(t.object, Kva(DIRECT + SCHED));
    }
}
