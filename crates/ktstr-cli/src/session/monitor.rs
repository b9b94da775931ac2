//! The watcher thread of a run: reads the guest's console (scheduler attached or failed,
//! workload done), the interrupt flag, the guest's exit and the clocks (`--timeout`,
//! attach budget), samples the event counters once a second, and stops the trigger watch
//! with a reason when the run must end without a trigger.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dump_schema::EventCounterSample;
use guest_lab::ConsoleLog;
use guest_mem::{KernelOptions, PhysMem};
use scx_walk::{EventSampler, KernelView};

use super::lock;
use crate::frozen::guest_kernel;
use crate::guest::{GuestConsole, GuestExitWatch};
use crate::run::{RunOptions, RunOutcome};

/// How often the event counters are sampled while the guest runs.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most samples kept (the oldest are dropped): a bounded timeline.
const MAX_SAMPLES: usize = 600;

/// Why the watcher thread stopped the watch.
pub(crate) enum StopReason {
    Outcome(RunOutcome),
    SetupFailed { what: String, engine_fault: bool },
}

/// What the watcher thread shares with the trigger loop.
#[derive(Default)]
pub(crate) struct Shared {
    /// Set when the watch must end; `reason` says why.
    pub stop: AtomicBool,
    pub reason: Mutex<Option<StopReason>>,
    /// The attach line for the log and when the scheduler attached (the timeline's clock).
    pub attached: Mutex<Option<(String, Instant)>>,
    /// The event-counter samples so far (the early snapshot takes a copy).
    pub timeline: Mutex<Vec<EventCounterSample>>,
}

impl Shared {
    fn set(&self, r: StopReason) {
        *lock(&self.reason) = Some(r);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The timeline so far and the milliseconds since the scheduler attached.
    pub fn timeline_now(&self) -> (Vec<EventCounterSample>, u64) {
        let timeline = lock(&self.timeline).clone();
        let elapsed_ms = lock(&self.attached)
            .as_ref()
            .map_or(0, |(_, at)| at.elapsed().as_millis() as u64);
        (timeline, elapsed_ms)
    }
}

/// The watcher thread's inputs.
pub(crate) struct Monitor<'a> {
    pub shared: &'a Shared,
    pub opts: &'a RunOptions,
    pub console: GuestConsole,
    pub exited: GuestExitWatch,
    pub ram: freeze::GuestRam,
    pub btf: &'a btf_walk::Btf,
    /// When the guest was launched, and how long the scheduler may take to attach.
    pub started: Instant,
    pub attach_budget: Duration,
}

impl Monitor<'_> {
    /// Runs until the watch is stopped (by this thread or by the trigger loop). Returns
    /// why the event sampler could not run, if it could not.
    pub fn run(self) -> Option<String> {
        let mut attached: Option<Instant> = None;
        // The event-counter timeline: sampled from this thread with its own kernel view
        // (a `guest_mem::Kernel` is not shared between threads), built once the scheduler
        // is attached.
        let mut sampler: Option<Result<(guest_mem::Kernel, EventSampler), String>> = None;
        let mut last_sample: Option<Instant> = None;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let cl = ConsoleLog::parse(&self.console.text());
            if attached.is_none()
                && let Some(p) = cl.phase("scheduler-attached")
            {
                attached = Some(Instant::now());
                self.on_attach(p.field("ops").unwrap_or("?"));
            }
            if let Some(a) = attached
                && last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY)
            {
                last_sample = Some(Instant::now());
                let st = sampler.get_or_insert_with(|| event_sampler(&self.ram, self.btf));
                if let Ok((k, es)) = st {
                    self.sample(k, es, a);
                }
            }
            if let Some(r) = self.stop_reason(&cl, attached) {
                self.shared.set(r);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sampler.and_then(|s| s.err())
    }

    fn on_attach(&self, ops: &str) {
        let msg = format!(
            "scheduler attached (ops={ops}) {:.1} s after launch",
            self.started.elapsed().as_secs_f64()
        );
        self.opts
            .progress
            .step(&format!("{msg}; watching for an error exit"));
        *lock(&self.shared.attached) = Some((msg, Instant::now()));
    }

    fn sample(&self, k: &guest_mem::Kernel, es: &EventSampler, attached: Instant) {
        let kk = KernelView {
            mem: k,
            syms: k,
            types: self.btf,
        };
        if let Ok(Some(sample)) = es.sample(&kk, attached.elapsed().as_millis() as u64) {
            let mut tl = lock(&self.shared.timeline);
            if tl.len() == MAX_SAMPLES {
                tl.remove(0);
            }
            tl.push(sample);
        }
    }

    /// Why the run must end now without a trigger, if it must.
    fn stop_reason(&self, cl: &ConsoleLog, attached: Option<Instant>) -> Option<StopReason> {
        if self.opts.interrupt.load(Ordering::Relaxed) {
            return Some(match attached {
                Some(_) => StopReason::Outcome(RunOutcome::Interrupted),
                None => StopReason::SetupFailed {
                    what: "interrupted before the scheduler attached".into(),
                    engine_fault: false,
                },
            });
        }
        if let Some(p) = cl.phase("scheduler-failed") {
            return Some(StopReason::SetupFailed {
                what: format!(
                    "the scheduler did not attach ({})",
                    p.field("reason").unwrap_or("no reason given")
                ),
                engine_fault: false,
            });
        }
        if let Some(x) = self.exited.exited() {
            return Some(StopReason::SetupFailed {
                what: format!("the guest exited before a capture: {}", x.what),
                engine_fault: x.engine_fault,
            });
        }
        if attached.is_none() && self.started.elapsed() > self.attach_budget {
            return Some(StopReason::SetupFailed {
                what: format!(
                    "no scheduler attached within {} s",
                    self.attach_budget.as_secs()
                ),
                engine_fault: false,
            });
        }
        if let (Some(t), Some(a)) = (self.opts.timeout, attached)
            && a.elapsed() >= t
        {
            return Some(StopReason::Outcome(RunOutcome::TimedOut));
        }
        cl.phase("workload-done")
            .map(|_| StopReason::Outcome(RunOutcome::WorkloadDone))
    }
}

/// A second live kernel view and the event sampler over it, for the watcher thread.
fn event_sampler(
    ram: &freeze::GuestRam,
    btf: &btf_walk::Btf,
) -> Result<(guest_mem::Kernel, EventSampler), String> {
    let phys = PhysMem::from_guest_memory(ram).map_err(|e| e.to_string())?;
    let k = guest_kernel(phys, KernelOptions::default()).map_err(|e| e.to_string())?;
    k.set_translation_cache(false);
    let es = EventSampler::new(&KernelView {
        mem: &k,
        syms: &k,
        types: btf,
    })
    .map_err(|e| e.to_string())?;
    Ok((k, es))
}
