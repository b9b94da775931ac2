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
//! No lock is shared on the hot path: acknowledgements are atomics, and waiting is
//! `thread::park`/`unpark` of the one thread that waits. A shared mutex would make the N
//! vCPUs leave their park one after another (each must be scheduled to hand the mutex to
//! the next), which with more vCPUs than host CPUs costs a scheduler tick per vCPU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

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
    /// What it captured when it parked last (only its own thread writes it).
    regs: Mutex<Ack>,
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
        Ok(self
            .vcpus
            .iter()
            .map(|v| {
                if v.parked.load(SEQ) == epoch {
                    lock(&v.regs).clone()
                } else {
                    None
                }
            })
            .collect())
    }

    fn still_parked(&self) -> Vec<usize> {
        self.vcpus
            .iter()
            .enumerate()
            .filter(|(_, v)| v.parked.load(SEQ) != 0 && !v.done.load(SEQ))
            .map(|(i, _)| i)
            .collect()
    }

    /// Ends the freeze; waits (at most `timeout`) until every parked vCPU left its park.
    /// Returns the vCPUs still parked at the end.
    pub fn resume(&self, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        *lock(&self.waiter) = Some(std::thread::current());
        self.pause.store(false, SEQ);
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

    /// vCPU side: records the registers, acknowledges, and parks until thawed or stopped.
    pub fn park(&self, vcpu: usize, regs: Result<CpuRegs, String>) {
        let slot = &self.vcpus[vcpu];
        *lock(&slot.regs) = Some(regs);
        let mut epoch = self.epoch.load(SEQ);
        slot.parked.store(epoch, SEQ);
        if self.all_parked(epoch) {
            self.wake_waiter();
        }
        while self.pause_requested() && !self.stop_requested() {
            let now = self.epoch.load(SEQ);
            if now != epoch {
                // Thawed and frozen again before this thread woke up: it never ran, so the
                // registers it holds are still current; acknowledge the new freeze too.
                epoch = now;
                slot.parked.store(epoch, SEQ);
                if self.all_parked(epoch) {
                    self.wake_waiter();
                }
            }
            std::thread::park();
        }
        slot.parked.store(0, SEQ);
        if self.still_parked().is_empty() {
            self.wake_waiter();
        }
    }

    /// vCPU side, after `HLT` with no interrupt controller: the vCPU will not run again, but
    /// still parks (with `capture`d registers) for every freeze until the VM stops.
    pub fn halt(&self, vcpu: usize, mut capture: impl FnMut() -> Result<CpuRegs, String>) {
        let mut last_epoch = 0;
        while !self.stop_requested() {
            let epoch = self.epoch.load(SEQ);
            if self.pause_requested() && epoch != last_epoch {
                last_epoch = epoch;
                self.park(vcpu, capture());
                continue;
            }
            std::thread::park();
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
        let deadline = Instant::now() + timeout;
        let mut e = lock(&self.exit);
        loop {
            if e.is_some() {
                return e.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            e = self
                .exit_cv
                .wait_timeout(e, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
