//! The freeze coordinator's shared state: pause requests, per-vCPU acknowledgements with
//! their registers, resume, stop, and how the guest exited.
//!
//! Protocol (see `vcpu.rs` for the vCPU side). To freeze, the coordinator, under the lock,
//! bumps the epoch and sets `pause`; then, for every vCPU, sets `immediate_exit` in its
//! `kvm_run` and sends the kick signal to its thread. A vCPU leaves `KVM_RUN` with `EINTR`
//! (the signal interrupted it, or `immediate_exit` made it return at once), sees `pause`,
//! captures its own registers, records them with the epoch and waits until `pause` is
//! cleared. A vCPU that clears `immediate_exit` after a park checks `pause` again afterwards,
//! so a kick can never be lost between the check and the next `KVM_RUN`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
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

#[derive(Default)]
struct VcpuState {
    /// Epoch of the freeze this vCPU is parked for, while parked.
    parked: Option<u64>,
    /// What it captured when it parked last.
    regs: Option<Result<CpuRegs, String>>,
    /// Its thread has ended.
    done: bool,
}

struct State {
    epoch: u64,
    vcpus: Vec<VcpuState>,
    exit: Option<GuestExit>,
}

/// Shared between the engine (the coordinator) and the vCPU threads.
pub(crate) struct Control {
    pause: AtomicBool,
    stop: AtomicBool,
    state: Mutex<State>,
    /// vCPUs wait here while parked or halted.
    vcpu_cv: Condvar,
    /// The coordinator waits here for acknowledgements.
    coord_cv: Condvar,
    run_maps: Vec<RunMap>,
    threads: OnceLock<Vec<libc::pthread_t>>,
    signal: libc::c_int,
}

impl Control {
    pub fn new(run_maps: Vec<RunMap>, signal: libc::c_int) -> Self {
        let n = run_maps.len();
        Self {
            pause: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                epoch: 0,
                vcpus: (0..n).map(|_| VcpuState::default()).collect(),
                exit: None,
            }),
            vcpu_cv: Condvar::new(),
            coord_cv: Condvar::new(),
            run_maps,
            threads: OnceLock::new(),
            signal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a single field store; a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the vCPU threads (in vCPU order) so they can be kicked.
    pub fn set_threads(&self, threads: Vec<libc::pthread_t>) {
        let _ = self.threads.set(threads);
    }

    pub fn run_map(&self, vcpu: usize) -> &RunMap {
        &self.run_maps[vcpu]
    }

    pub fn pause_requested(&self) -> bool {
        self.pause.load(Ordering::SeqCst)
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
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
            if let Some(&t) = threads.and_then(|t| t.get(i)) {
                // SAFETY: `t` is a thread spawned by the engine and not joined yet (the
                // engine joins only after `stop`, and never kicks afterwards), so the
                // handle is valid; the signal has a no-op handler installed.
                unsafe {
                    libc::pthread_kill(t, self.signal);
                }
            }
        }
    }

    /// Starts a freeze; returns its epoch.
    pub fn request_pause(&self) -> u64 {
        let epoch = {
            let mut st = self.lock();
            st.epoch += 1;
            self.pause.store(true, Ordering::SeqCst);
            st.epoch
        };
        // Halted vCPUs wait on the condvar, not in KVM_RUN.
        self.vcpu_cv.notify_all();
        self.kick_all(None);
        epoch
    }

    /// Waits until every vCPU acknowledged `epoch` or the deadline passed, or the guest
    /// exited. Returns the acknowledgements (index = vCPU), or the exit.
    pub fn wait_parked(&self, epoch: u64, deadline: Instant) -> Result<Vec<Ack>, GuestExit> {
        let mut st = self.lock();
        loop {
            if let Some(exit) = &st.exit {
                return Err(exit.clone());
            }
            if st.vcpus.iter().all(|v| v.parked == Some(epoch)) {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .coord_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(st
            .vcpus
            .iter()
            .map(|v| {
                if v.parked == Some(epoch) {
                    v.regs.clone()
                } else {
                    None
                }
            })
            .collect())
    }

    /// Ends the freeze; waits (at most `timeout`) until every parked vCPU left its park.
    /// Returns the vCPUs still parked at the end.
    pub fn resume(&self, timeout: Duration) -> Vec<usize> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        self.pause.store(false, Ordering::SeqCst);
        self.vcpu_cv.notify_all();
        loop {
            let still: Vec<usize> = st
                .vcpus
                .iter()
                .enumerate()
                .filter(|(_, v)| v.parked.is_some() && !v.done)
                .map(|(i, _)| i)
                .collect();
            let now = Instant::now();
            if still.is_empty() || now >= deadline || self.stop_requested() {
                return still;
            }
            st = self
                .coord_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// vCPU side: records the registers, acknowledges, and waits until thawed or stopped.
    pub fn park(&self, vcpu: usize, regs: Result<CpuRegs, String>) {
        let mut st = self.lock();
        let mut epoch = st.epoch;
        st.vcpus[vcpu].parked = Some(epoch);
        st.vcpus[vcpu].regs = Some(regs);
        self.coord_cv.notify_all();
        while self.pause_requested() && !self.stop_requested() {
            if st.epoch != epoch {
                // Thawed and frozen again before this thread woke up: it never ran, so the
                // registers it holds are still current; acknowledge the new freeze too.
                epoch = st.epoch;
                st.vcpus[vcpu].parked = Some(epoch);
                self.coord_cv.notify_all();
            }
            st = self
                .vcpu_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.vcpus[vcpu].parked = None;
        self.coord_cv.notify_all();
    }

    /// vCPU side, after `HLT` with no interrupt controller: the vCPU will not run again, but
    /// still parks (with `capture`d registers) for every freeze until the VM stops.
    pub fn halt(&self, vcpu: usize, mut capture: impl FnMut() -> Result<CpuRegs, String>) {
        let mut st = self.lock();
        let mut last_epoch = 0;
        loop {
            if self.stop_requested() {
                return;
            }
            if self.pause_requested() && st.epoch != last_epoch {
                last_epoch = st.epoch;
                drop(st);
                self.park(vcpu, capture());
                st = self.lock();
                continue;
            }
            st = self
                .vcpu_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// vCPU side: the guest cannot go on; record why (first one wins) and stop every vCPU.
    pub fn guest_exited(&self, vcpu: usize, exit: GuestExit) {
        {
            let mut st = self.lock();
            if st.exit.is_none() {
                st.exit = Some(exit);
            }
            self.stop.store(true, Ordering::SeqCst);
        }
        self.vcpu_cv.notify_all();
        self.coord_cv.notify_all();
        self.kick_all(Some(vcpu));
    }

    /// vCPU side: the thread is ending.
    pub fn thread_done(&self, vcpu: usize) {
        self.lock().vcpus[vcpu].done = true;
        self.coord_cv.notify_all();
    }

    /// Engine side: stop every vCPU thread (teardown).
    pub fn stop_all(&self) {
        {
            let _st = self.lock();
            self.stop.store(true, Ordering::SeqCst);
        }
        self.vcpu_cv.notify_all();
        self.coord_cv.notify_all();
        self.kick_all(None);
    }

    pub fn exit(&self) -> Option<GuestExit> {
        self.lock().exit.clone()
    }

    /// Waits for the guest to exit, at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Option<GuestExit> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.exit.is_some() {
                return st.exit.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .coord_cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
