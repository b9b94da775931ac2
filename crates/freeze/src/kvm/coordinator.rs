//! The freeze coordinator's shared state: pause requests, per-vCPU acknowledgements with
//! their registers, resume, stop, and how the guest exited.
//!
//! Protocol (see `vcpu.rs` for the vCPU side). To freeze, the coordinator bumps the epoch
//! and sets `pause`; then, for every vCPU, sets `immediate_exit` in its `kvm_run` and sends
//! the kick signal to its thread. A vCPU leaves `KVM_RUN` with `EINTR` (the signal
//! interrupted it, or `immediate_exit` made it return at once), sees `pause`, captures its
//! own registers, records them with the epoch and parks until `pause` is cleared. A vCPU
//! that clears `immediate_exit` after a park checks `pause` again afterwards, so a kick can
//! never be lost between the check and the next `KVM_RUN`.
//!
//! Breakpoints (see `breakpoint.rs`) use the same machinery. The coordinator publishes the
//! debug-register state with a generation number and kicks every vCPU; each vCPU loads it
//! with `KVM_SET_GUEST_DEBUG` on its own thread (before its next `KVM_RUN`, or from its
//! park when frozen) and acknowledges the generation. A vCPU that leaves `KVM_RUN` with a
//! debug exit for the armed breakpoint records the hit and starts the freeze itself (new
//! epoch, `pause`, kick the others), then parks like the others; the engine's waiter
//! collects the hit once every vCPU has parked. A recorded hit keeps the guest frozen until
//! the engine thaws it.
//!
//! No lock is shared on the hot path: acknowledgements are atomics, and waiting is
//! `thread::park`/`unpark` of the one thread that waits. A shared mutex would make the N
//! vCPUs leave their park one after another (each must be scheduled to hand the mutex to
//! the next), which with more vCPUs than host CPUs costs a scheduler tick per vCPU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::breakpoint::HwBreakpoint;
use super::vcpu::RunMap;
use crate::CpuRegs;

/// Why the guest stopped running (it never resumes after one of these).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestExit {
    /// The guest powered off (`KVM_SYSTEM_EVENT_SHUTDOWN`).
    PowerOff { vcpu: usize },
    /// The guest reset: a triple fault (`KVM_EXIT_SHUTDOWN`, what `reboot=t` and a crash in
    /// early boot do), the i8042 reset line, or `KVM_SYSTEM_EVENT_RESET`. The engine does
    /// not reboot in place; the run ends.
    Reset { vcpu: usize, how: &'static str },
    /// The guest reported a crash (`KVM_SYSTEM_EVENT_CRASH`).
    Crash { vcpu: usize },
    /// A vCPU could not go on: KVM internal error (e.g. an emulation failure), failed VM
    /// entry, an exit the VMM does not handle, or a failed `KVM_RUN`.
    Error { vcpu: usize, detail: String },
}

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestExit::PowerOff { vcpu } => write!(f, "guest powered off (vCPU {vcpu})"),
            GuestExit::Reset { vcpu, how } => write!(f, "guest reset by {how} (vCPU {vcpu})"),
            GuestExit::Crash { vcpu } => write!(f, "guest reported a crash (vCPU {vcpu})"),
            GuestExit::Error { vcpu, detail } => write!(f, "vCPU {vcpu} stopped: {detail}"),
        }
    }
}

/// The acknowledgement of one vCPU for one freeze.
pub(crate) type Ack = Option<Result<CpuRegs, String>>;

const SEQ: Ordering = Ordering::SeqCst;

#[derive(Default)]
struct VcpuSlot {
    /// Epoch of the freeze this vCPU is parked for; 0 while not parked.
    parked: AtomicU64,
    /// Its thread has ended.
    done: AtomicBool,
    /// Parked when the current thaw began, and has not left its park since. (Not the same
    /// as parked now: a vCPU may leave, hit a breakpoint and park again before the thawing
    /// thread looks.)
    must_leave: AtomicBool,
    /// What it captured when it parked last (only its own thread writes it).
    regs: Mutex<Ack>,
    /// The debug-state generation it has loaded (or failed to load).
    debug_acked: AtomicU64,
    /// Why loading that generation failed, if it did.
    debug_error: Mutex<Option<String>>,
}

/// The debug-register state the coordinator asks every vCPU to load.
#[derive(Default)]
struct DebugRequest {
    generation: u64,
    breakpoint: Option<HwBreakpoint>,
}

/// A breakpoint hit recorded by the vCPU that took it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HitRecord {
    /// The epoch of the freeze the hit started.
    pub epoch: u64,
    pub vcpu: usize,
    pub breakpoint: HwBreakpoint,
    /// When the vCPU's `KVM_RUN` returned with the debug exit.
    pub at: Instant,
}

/// A collected hit: the record, every vCPU's acknowledgement, and when the last vCPU
/// parked (or when the wait for parking gave up).
pub(crate) struct CollectedHit {
    pub record: HitRecord,
    pub acks: Vec<Ack>,
    pub all_parked_at: Instant,
}

/// Shared between the engine (the coordinator) and the vCPU threads.
pub(crate) struct Control {
    pause: AtomicBool,
    stop: AtomicBool,
    epoch: AtomicU64,
    vcpus: Vec<VcpuSlot>,
    /// The thread waiting for acknowledgements, if any.
    waiter: Mutex<Option<Thread>>,
    exit: Mutex<Option<GuestExit>>,
    exit_cv: Condvar,
    run_maps: Vec<RunMap>,
    /// The vCPU threads, in vCPU order, for signals and unparking.
    threads: OnceLock<Vec<(libc::pthread_t, Thread)>>,
    signal: libc::c_int,
    debug: Mutex<DebugRequest>,
    /// `debug.generation`, readable without the lock (checked before every `KVM_RUN`).
    debug_generation: AtomicU64,
    /// The breakpoint hit that froze the guest, until collected or thawed. Its lock also
    /// orders hits against `resume` (which clears it before clearing `pause`).
    hit: Mutex<Option<HitRecord>>,
    /// When every vCPU had parked for an epoch (recorded by the last one to park).
    all_parked_at: Mutex<Option<(u64, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single store; a panic cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Control {
    pub fn new(run_maps: Vec<RunMap>, signal: libc::c_int) -> Self {
        Self {
            pause: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            vcpus: run_maps.iter().map(|_| VcpuSlot::default()).collect(),
            waiter: Mutex::new(None),
            exit: Mutex::new(None),
            exit_cv: Condvar::new(),
            run_maps,
            threads: OnceLock::new(),
            signal,
            debug: Mutex::new(DebugRequest::default()),
            debug_generation: AtomicU64::new(0),
            hit: Mutex::new(None),
            all_parked_at: Mutex::new(None),
        }
    }

    /// Records the vCPU threads (in vCPU order) so they can be kicked and unparked.
    pub fn set_threads(&self, threads: Vec<(libc::pthread_t, Thread)>) {
        let _ = self.threads.set(threads);
    }

    pub fn run_map(&self, vcpu: usize) -> &RunMap {
        &self.run_maps[vcpu]
    }

    pub fn pause_requested(&self) -> bool {
        self.pause.load(SEQ)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(SEQ)
    }

    fn unpark_vcpus(&self) {
        for (_, t) in self.threads.get().into_iter().flatten() {
            t.unpark();
        }
    }

    fn wake_waiter(&self) {
        if let Some(t) = lock(&self.waiter).as_ref() {
            t.unpark();
        }
    }

    /// Makes every vCPU (but `except`) leave `KVM_RUN` soon: `immediate_exit` covers a vCPU
    /// about to enter, the signal one already inside.
    fn kick_all(&self, except: Option<usize>) {
        let threads = self.threads.get();
        for (i, map) in self.run_maps.iter().enumerate() {
            if Some(i) == except {
                continue;
            }
            map.set_immediate_exit(true);
            if let Some(&(t, _)) = threads.and_then(|t| t.get(i)) {
                // SAFETY: `t` is a thread spawned by the engine and not joined yet (the
                // engine joins only after `stop`, and never kicks afterwards), so the
                // handle is valid; the signal has a no-op handler installed.
                unsafe {
                    libc::pthread_kill(t, self.signal);
                }
            }
        }
    }

    /// Starts a freeze; returns its epoch. The calling thread becomes the waiter.
    pub fn request_pause(&self) -> u64 {
        *lock(&self.waiter) = Some(std::thread::current());
        let epoch = self.epoch.fetch_add(1, SEQ) + 1;
        self.pause.store(true, SEQ);
        // Halted vCPUs park in the VMM, not in KVM_RUN.
        self.unpark_vcpus();
        self.kick_all(None);
        epoch
    }

    fn all_parked(&self, epoch: u64) -> bool {
        self.vcpus.iter().all(|v| v.parked.load(SEQ) == epoch)
    }

    /// Waits until every vCPU acknowledged `epoch` or the deadline passed, or the guest
    /// exited. Returns the acknowledgements (index = vCPU), or the exit.
    pub fn wait_parked(&self, epoch: u64, deadline: Instant) -> Result<Vec<Ack>, GuestExit> {
        *lock(&self.waiter) = Some(std::thread::current());
        loop {
            if let Some(exit) = self.exit() {
                return Err(exit);
            }
            if self.all_parked(epoch) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        Ok(self.acks(epoch))
    }

    /// Every vCPU's acknowledgement of `epoch` (index = vCPU).
    fn acks(&self, epoch: u64) -> Vec<Ack> {
        self.vcpus
            .iter()
            .map(|v| {
                if v.parked.load(SEQ) == epoch {
                    lock(&v.regs).clone()
                } else {
                    None
                }
            })
            .collect()
    }

    /// The vCPUs that were parked when the thaw began and have not left their park.
    fn still_parked(&self) -> Vec<usize> {
        self.vcpus
            .iter()
            .enumerate()
            .filter(|(_, v)| v.must_leave.load(SEQ) && !v.done.load(SEQ))
            .map(|(i, _)| i)
            .collect()
    }

    /// Ends the freeze; waits (at most `timeout`) until every parked vCPU left its park.
    /// Returns the vCPUs still parked at the end.
    pub fn resume(&self, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        *lock(&self.waiter) = Some(std::thread::current());
        for v in &self.vcpus {
            v.must_leave.store(v.parked.load(SEQ) != 0, SEQ);
        }
        {
            // A vCPU taking a debug exit now sees either the old hit (and parks for it) or
            // no hit and no pause (and records a new one): never a hit that is then lost.
            let mut hit = lock(&self.hit);
            *hit = None;
            self.pause.store(false, SEQ);
        }
        self.unpark_vcpus();
        loop {
            let still = self.still_parked();
            let now = Instant::now();
            if still.is_empty() || now >= deadline || self.stop_requested() {
                return still;
            }
            std::thread::park_timeout(deadline - now);
        }
    }

    /// vCPU side, having parked for `epoch`: records when the last vCPU parked and wakes
    /// the waiter once every vCPU has.
    fn parked_for(&self, epoch: u64) {
        if self.all_parked(epoch) {
            let mut at = lock(&self.all_parked_at);
            if at.is_none_or(|(e, _)| e != epoch) {
                *at = Some((epoch, Instant::now()));
            }
            drop(at);
            self.wake_waiter();
        }
    }

    /// vCPU side: records the registers, acknowledges, and parks until thawed or stopped.
    /// `on_wake` runs each time the thread wakes while parked (the vCPU loads a new debug
    /// state there: it is out of `KVM_RUN`).
    pub fn park(&self, vcpu: usize, regs: Result<CpuRegs, String>, on_wake: &mut dyn FnMut()) {
        let slot = &self.vcpus[vcpu];
        *lock(&slot.regs) = Some(regs);
        let mut epoch = self.epoch.load(SEQ);
        slot.parked.store(epoch, SEQ);
        self.parked_for(epoch);
        while self.pause_requested() && !self.stop_requested() {
            let now = self.epoch.load(SEQ);
            if now != epoch {
                // Thawed and frozen again before this thread woke up (by another vCPU's
                // breakpoint hit, or a freeze right after a thaw): it never ran, so the
                // registers it holds are still current; acknowledge the new freeze too.
                // For the thaw, it counts as resumed.
                epoch = now;
                slot.parked.store(epoch, SEQ);
                if slot.must_leave.swap(false, SEQ) && self.still_parked().is_empty() {
                    self.wake_waiter();
                }
                self.parked_for(epoch);
            }
            on_wake();
            std::thread::park();
        }
        slot.parked.store(0, SEQ);
        slot.must_leave.store(false, SEQ);
        if self.still_parked().is_empty() {
            self.wake_waiter();
        }
    }

    /// vCPU side, after `HLT` with no interrupt controller: the vCPU will not run again, but
    /// still parks (with `capture`d registers) for every freeze until the VM stops.
    /// `on_wake` as for [`Control::park`].
    pub fn halt(
        &self,
        vcpu: usize,
        mut capture: impl FnMut() -> Result<CpuRegs, String>,
        on_wake: &mut dyn FnMut(),
    ) {
        let mut last_epoch = 0;
        while !self.stop_requested() {
            on_wake();
            let epoch = self.epoch.load(SEQ);
            if self.pause_requested() && epoch != last_epoch {
                last_epoch = epoch;
                self.park(vcpu, capture(), on_wake);
                continue;
            }
            std::thread::park();
        }
    }

    /// Publishes a new debug state for every vCPU to load; returns its generation. The
    /// calling thread becomes the waiter. Running vCPUs are kicked out of `KVM_RUN` (they
    /// load it before re-entering); parked and halted ones are woken.
    pub fn request_debug(&self, breakpoint: Option<HwBreakpoint>) -> u64 {
        *lock(&self.waiter) = Some(std::thread::current());
        let generation = {
            let mut d = lock(&self.debug);
            d.generation += 1;
            d.breakpoint = breakpoint;
            self.debug_generation.store(d.generation, SEQ);
            d.generation
        };
        self.unpark_vcpus();
        self.kick_all(None);
        generation
    }

    /// Waits until every vCPU (whose thread still runs) has loaded `generation`, or the
    /// deadline. `Err` says which vCPUs failed to load it and why, or did not answer.
    pub fn wait_debug_applied(&self, generation: u64, deadline: Instant) -> Result<(), String> {
        *lock(&self.waiter) = Some(std::thread::current());
        let answered = |v: &VcpuSlot| v.done.load(SEQ) || v.debug_acked.load(SEQ) >= generation;
        loop {
            if self.vcpus.iter().all(answered) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        let mut problems = Vec::new();
        for (i, v) in self.vcpus.iter().enumerate() {
            if v.done.load(SEQ) {
                continue;
            }
            if v.debug_acked.load(SEQ) < generation {
                problems.push(format!("vCPU {i} did not answer"));
            } else if let Some(e) = lock(&v.debug_error).as_ref() {
                problems.push(format!("vCPU {i}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// vCPU side: the generation of the latest debug state (cheap: checked before every
    /// `KVM_RUN`).
    pub fn debug_generation(&self) -> u64 {
        self.debug_generation.load(SEQ)
    }

    /// vCPU side: the latest debug state and its generation.
    pub fn debug_request(&self) -> (u64, Option<HwBreakpoint>) {
        let d = lock(&self.debug);
        (d.generation, d.breakpoint)
    }

    /// vCPU side: `generation` is loaded (`error`: or failed to load, and why).
    pub fn debug_applied(&self, vcpu: usize, generation: u64, error: Option<String>) {
        let slot = &self.vcpus[vcpu];
        *lock(&slot.debug_error) = error;
        slot.debug_acked.store(generation, SEQ);
        self.wake_waiter();
    }

    /// vCPU side: `vcpu` took a debug exit for `breakpoint`. When that is still the armed
    /// breakpoint (not disarmed or replaced meanwhile; re-arming the same one keeps it) and
    /// no freeze is on, records the hit and freezes every other vCPU. The caller parks
    /// afterwards if a freeze is on (this one, another vCPU's hit, or the coordinator's): a
    /// write that lands while a freeze is already requested is part of that freeze, not a
    /// new hit.
    pub fn breakpoint_hit(&self, vcpu: usize, breakpoint: HwBreakpoint, at: Instant) {
        let mut hit = lock(&self.hit);
        if hit.is_some()
            || self.pause_requested()
            || lock(&self.debug).breakpoint != Some(breakpoint)
        {
            return;
        }
        let epoch = self.epoch.fetch_add(1, SEQ) + 1;
        *hit = Some(HitRecord {
            epoch,
            vcpu,
            breakpoint,
            at,
        });
        self.pause.store(true, SEQ);
        drop(hit);
        self.unpark_vcpus();
        self.kick_all(Some(vcpu));
        self.wake_waiter();
    }

    /// The hit that froze the guest, if one did and it was not collected or thawed.
    pub fn pending_hit(&self) -> Option<HitRecord> {
        *lock(&self.hit)
    }

    /// Forgets the pending hit (the guest stays frozen): it was collected, or a freeze
    /// took it over.
    pub fn take_hit(&self) -> Option<HitRecord> {
        lock(&self.hit).take()
    }

    /// Waits until a hit is recorded and every vCPU parked for it. No hit before
    /// `deadline`: `Ok(None)`. Once a hit is recorded, waits for parking until
    /// `park_timeout` after the hit, whatever `deadline` says; vCPUs that have not parked
    /// by then are `None` in the acknowledgements.
    pub fn wait_hit(
        &self,
        deadline: Instant,
        park_timeout: Duration,
    ) -> Result<Option<CollectedHit>, GuestExit> {
        *lock(&self.waiter) = Some(std::thread::current());
        loop {
            if let Some(exit) = self.exit() {
                return Err(exit);
            }
            let now = Instant::now();
            match self.pending_hit() {
                Some(record) => {
                    let parked = self.all_parked(record.epoch);
                    let give_up = record.at + park_timeout;
                    if parked || now >= give_up {
                        let all_parked_at = match *lock(&self.all_parked_at) {
                            Some((e, at)) if parked && e == record.epoch => at,
                            _ => now,
                        };
                        return Ok(Some(CollectedHit {
                            record,
                            acks: self.acks(record.epoch),
                            all_parked_at,
                        }));
                    }
                    std::thread::park_timeout(give_up - now);
                }
                None if now >= deadline => return Ok(None),
                None => std::thread::park_timeout(deadline - now),
            }
        }
    }

    /// vCPU side: the guest cannot go on; record why (first one wins) and stop every vCPU.
    pub fn guest_exited(&self, vcpu: usize, exit: GuestExit) {
        {
            let mut e = lock(&self.exit);
            if e.is_none() {
                *e = Some(exit);
            }
            self.stop.store(true, SEQ);
        }
        self.exit_cv.notify_all();
        self.unpark_vcpus();
        self.wake_waiter();
        self.kick_all(Some(vcpu));
    }

    /// vCPU side: the thread is ending.
    pub fn thread_done(&self, vcpu: usize) {
        self.vcpus[vcpu].done.store(true, SEQ);
        self.wake_waiter();
    }

    /// Engine side: stop every vCPU thread (teardown).
    pub fn stop_all(&self) {
        self.stop.store(true, SEQ);
        self.unpark_vcpus();
        self.kick_all(None);
    }

    pub fn exit(&self) -> Option<GuestExit> {
        lock(&self.exit).clone()
    }

    /// Waits for the guest to exit, at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Option<GuestExit> {
        let (exit, _) = self
            .exit_cv
            .wait_timeout_while(lock(&self.exit), timeout, |e| e.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        exit.clone()
    }
}
