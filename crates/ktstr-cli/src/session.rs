//! The live part of `ktstr run`: watch the running guest for its scheduler's error exit
//! (with the early snapshot of a dual capture taken between polls), then capture the
//! frozen guest.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dump_schema::{EventCounterSample, FailureDumpReport, FailureDumpReportAny};
use freeze::watch::{ExitKindTrigger, Tick, WatchOptions, WatchOutcome, watch_exit_kind_with};
use freeze::{Engine, FreezeOutcome};
use guest_lab::ConsoleLog;
use guest_mem::{CpuRegs, KernelOptions, PhysMem};
use scx_walk::{CaptureOptions, EventSampler, KernelView, TriggerLocation};

use crate::Error;
use crate::dual::{EarlySnapshot, SCAN_EVERY};
use crate::frozen::{capture_freeze, export_vmcore, guest_btf, guest_kernel};
use crate::guest::RunGuest;
use crate::run::{RunOptions, RunOutcome};

/// How long a freeze may take before it counts as a rendezvous timeout (degraded).
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the event counters are sampled while the guest runs.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most samples kept (the oldest are dropped): a bounded timeline.
const MAX_SAMPLES: usize = 600;
/// Soft deadline of one capture.
const CAPTURE_DEADLINE: Duration = Duration::from_secs(60);

pub(crate) enum Watched {
    Frozen {
        freeze: FreezeOutcome,
        outcome: RunOutcome,
        timeline: Vec<EventCounterSample>,
        elapsed_ms: u64,
        early: Box<EarlySnapshot>,
    },
    SetupFailed {
        what: String,
        /// The engine, not the guest, could not go on (see `GuestExitInfo::engine_fault`).
        engine_fault: bool,
    },
}

/// Why the watcher thread stopped the watch.
enum StopReason {
    Outcome(RunOutcome),
    SetupFailed { what: String, engine_fault: bool },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches the live guest from before the scheduler attaches until its error exit
/// (frozen by the watch itself, within one continuous poll so that a fast
/// error → disable → free sequence cannot slip between polls), or until a side thread
/// stops the watch: interrupt, `--timeout`, end of the workload (frozen here), or a guest
/// that fails first (not frozen: nothing to capture). Between polls, runnable ages are
/// scanned and the early snapshot is taken when they cross the threshold.
pub(crate) fn watch(
    engine: &mut RunGuest,
    opts: &RunOptions,
    attach_budget: Duration,
    log: &mut Vec<String>,
) -> Result<Watched, Error> {
    let started = Instant::now();
    // Symbols and BTF exist once the guest's userspace runs: set the watch up then, as
    // early as possible, so it is armed before the scheduler can attach and fail (a
    // debug build on a loaded TCG host takes seconds to decode kallsyms and BTF).
    loop {
        // The guest's /init prints its first phase once the kernel is fully up.
        if !engine.console_log().phases.is_empty() {
            break;
        }
        if let Some(x) = engine.exit_info() {
            return Ok(Watched::SetupFailed {
                what: format!("the guest exited during boot: {}", x.what),
                engine_fault: x.engine_fault,
            });
        }
        if started.elapsed() > attach_budget {
            return Ok(Watched::SetupFailed {
                what: format!(
                    "the guest did not reach its scheduler start within {} s",
                    attach_budget.as_secs()
                ),
                engine_fault: false,
            });
        }
        if opts.interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("before the guest started its scheduler"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    let live = guest_kernel(phys, KernelOptions::default())?;
    // The guest runs: cached translations could go stale.
    live.set_translation_cache(false);
    let btf = guest_btf(&live)?;
    let lk = KernelView {
        mem: &live,
        syms: &live,
        types: &btf,
    };
    let trig = TriggerLocation::resolve(&lk).map_err(|e| Error::Kernel {
        what: "locating scx_root.exit_kind".into(),
        detail: e.to_string(),
    })?;
    let trigger = ExitKindTrigger::error_exit(trig.scx_root, trig.exit_kind_offset, trig.exit_info);
    let mut early = EarlySnapshot::new(&lk);
    log.push(format!(
        "watch armed {:.1} s after launch",
        started.elapsed().as_secs_f64()
    ));
    let stop = AtomicBool::new(false);
    let reason: Mutex<Option<StopReason>> = Mutex::new(None);
    let console = engine.console();
    let exited = engine.exit_watch();
    let wopts = WatchOptions {
        freeze_timeout: FREEZE_TIMEOUT,
        tick_every: SCAN_EVERY,
        ..Default::default()
    };
    // Shared with the watcher thread: when the scheduler attached (the timeline's
    // clock), and the event-counter samples so far (the early snapshot takes a copy).
    let attached_log = Mutex::new(None::<(String, Instant)>);
    let timeline: Mutex<Vec<EventCounterSample>> = Mutex::new(Vec::new());
    let ram = engine.guest_ram();
    let btf_ref = &btf;
    let (reason_ref, attached_ref, stop_ref, timeline_ref) =
        (&reason, &attached_log, &stop, &timeline);
    let mut early_log: Vec<String> = Vec::new();
    let result = std::thread::scope(|s| {
        let watcher = s.spawn(move || {
            let mut attached: Option<Instant> = None;
            // The event-counter timeline: sampled from this thread with its own kernel
            // view (a `guest_mem::Kernel` is not shared between threads), built once the
            // scheduler is attached.
            let mut sampler: Option<Result<(guest_mem::Kernel, EventSampler), String>> = None;
            let mut last_sample: Option<Instant> = None;
            let set = |r: StopReason| {
                *lock(reason_ref) = Some(r);
                stop_ref.store(true, Ordering::Relaxed);
            };
            while !stop_ref.load(Ordering::Relaxed) {
                let cl = ConsoleLog::parse(&console.text());
                if attached.is_none()
                    && let Some(p) = cl.phase("scheduler-attached")
                {
                    attached = Some(Instant::now());
                    let msg = format!(
                        "scheduler attached (ops={}) {:.1} s after launch",
                        p.field("ops").unwrap_or("?"),
                        started.elapsed().as_secs_f64()
                    );
                    opts.progress
                        .step(&format!("{msg}; watching for an error exit"));
                    *lock(attached_ref) = Some((msg, Instant::now()));
                }
                if let Some(a) = attached
                    && last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY)
                {
                    last_sample = Some(Instant::now());
                    let st = sampler.get_or_insert_with(|| event_sampler(&ram, btf_ref));
                    if let Ok((k, es)) = st {
                        let kk = KernelView {
                            mem: &*k,
                            syms: &*k,
                            types: btf_ref,
                        };
                        if let Ok(Some(sample)) = es.sample(&kk, a.elapsed().as_millis() as u64) {
                            let mut tl = lock(timeline_ref);
                            if tl.len() == MAX_SAMPLES {
                                tl.remove(0);
                            }
                            tl.push(sample);
                        }
                    }
                }
                if opts.interrupt.load(Ordering::Relaxed) {
                    set(match attached {
                        Some(_) => StopReason::Outcome(RunOutcome::Interrupted),
                        None => StopReason::SetupFailed {
                            what: "interrupted before the scheduler attached".into(),
                            engine_fault: false,
                        },
                    });
                } else if let Some(p) = cl.phase("scheduler-failed") {
                    set(StopReason::SetupFailed {
                        what: format!(
                            "the scheduler did not attach ({})",
                            p.field("reason").unwrap_or("no reason given")
                        ),
                        engine_fault: false,
                    });
                } else if let Some(x) = exited.exited() {
                    set(StopReason::SetupFailed {
                        what: format!("the guest exited before a capture: {}", x.what),
                        engine_fault: x.engine_fault,
                    });
                } else if attached.is_none() && started.elapsed() > attach_budget {
                    set(StopReason::SetupFailed {
                        what: format!("no scheduler attached within {} s", attach_budget.as_secs()),
                        engine_fault: false,
                    });
                } else if let (Some(t), Some(a)) = (opts.timeout, attached)
                    && a.elapsed() >= t
                {
                    set(StopReason::Outcome(RunOutcome::TimedOut));
                } else if cl.phase("workload-done").is_some() {
                    set(StopReason::Outcome(RunOutcome::WorkloadDone));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            sampler.and_then(|s| s.err())
        });
        let on_tick = |eng: &mut RunGuest| {
            if stop_ref.load(Ordering::Relaxed) {
                return Tick::Stop;
            }
            let taken = early.tick(&lk, |scan| {
                let timeline = lock(timeline_ref).clone();
                let elapsed_ms = lock(attached_ref)
                    .as_ref()
                    .map_or(0, |(_, at)| at.elapsed().as_millis() as u64);
                let r = take_early(eng, (timeline, elapsed_ms), &mut early_log);
                if let Err(e) = &r {
                    early_log.push(format!("early snapshot at {scan:?} failed: {e}"));
                }
                r
            });
            if let Some(t) = taken {
                opts.progress.step(&format!("{t}; the guest runs on"));
            }
            Tick::Continue
        };
        let r = watch_exit_kind_with(engine, trigger, |kva| live.translate(kva), &wopts, on_tick);
        // Ends the watcher thread when the watch ended by itself.
        stop.store(true, Ordering::Relaxed);
        let sampler_err = watcher.join().unwrap_or_default();
        (r, sampler_err)
    });
    let (result, sampler_err) = result;
    log.append(&mut early_log);
    log.push(early.summary());
    if let Some(e) = sampler_err {
        log.push(format!("event sampler unavailable: {e}"));
    }
    let timeline = timeline.into_inner().unwrap_or_else(|e| e.into_inner());
    log.push(format!(
        "event counter samples while running: {}",
        timeline.len()
    ));
    let attached_at = attached_log
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .map(|(l, at)| {
            log.push(l);
            at
        });
    // The freeze-time event sample's time, on the same clock as the running samples.
    let elapsed_ms = attached_at.map_or(0, |at| at.elapsed().as_millis() as u64);
    // The kernel's own sched_ext messages, for -v.
    let cl = engine.console_log();
    log.extend(
        cl.other
            .iter()
            .filter(|l| l.contains("sched_ext"))
            .take(20)
            .map(|l| format!("guest: {}", l.trim())),
    );
    let early = Box::new(early);
    let outcome = match result {
        Ok(WatchOutcome::Triggered(t)) => {
            log.push(format!(
                "trigger: exit_kind {} (late={}, root_cleared={}), flip to frozen {:?}, {} polls at {:.0} Hz, longest gap {:?}, {} ticks ({:?} in all, longest {:?}), realtime={}",
                t.exit_kind,
                t.late,
                t.root_cleared,
                t.flip_to_frozen,
                t.stats.polls,
                t.stats.rate_hz(),
                t.stats.max_gap,
                t.stats.ticks,
                t.stats.tick_time,
                t.stats.max_tick,
                t.realtime
            ));
            return Ok(Watched::Frozen {
                freeze: t.freeze,
                outcome: RunOutcome::ErrorExit {
                    exit_kind: t.exit_kind,
                },
                timeline,
                elapsed_ms,
                early,
            });
        }
        Ok(WatchOutcome::Stopped(st) | WatchOutcome::TimedOut(st)) => {
            log.push(format!(
                "watch stopped: {} polls, {} read errors, longest gap {:?}, {} ticks ({:?} in all)",
                st.polls, st.read_errors, st.max_gap, st.ticks, st.tick_time
            ));
            reason.into_inner().unwrap_or_else(|e| e.into_inner())
        }
        Err(e) => match engine.exit_info() {
            Some(x) => Some(StopReason::SetupFailed {
                what: format!("the guest exited before a capture: {} ({e})", x.what),
                engine_fault: x.engine_fault,
            }),
            None => return Err(Error::Infrastructure(format!("watching the guest: {e}"))),
        },
    };
    match outcome {
        Some(StopReason::Outcome(outcome)) => {
            let freeze = engine
                .freeze(FREEZE_TIMEOUT)
                .map_err(Error::engine("freeze"))?;
            Ok(Watched::Frozen {
                freeze,
                outcome,
                timeline,
                elapsed_ms,
                early,
            })
        }
        Some(StopReason::SetupFailed { what, engine_fault }) => {
            Ok(Watched::SetupFailed { what, engine_fault })
        }
        None => Err(Error::Infrastructure(
            "the watch stopped without a reason".into(),
        )),
    }
}

/// The early snapshot: freeze, capture (the late snapshot's path), thaw. Returns the
/// report and how long the guest stayed frozen; the guest runs again either way (a thaw
/// that fails is an error the watch then reports).
fn take_early(
    engine: &mut RunGuest,
    timeline: (Vec<EventCounterSample>, u64),
    log: &mut Vec<String>,
) -> Result<(FailureDumpReport, Duration), String> {
    let t0 = Instant::now();
    let freeze = engine.freeze(FREEZE_TIMEOUT).map_err(|e| e.to_string())?;
    let report = if freeze.all_parked() {
        capture_single(engine, &freeze, timeline, log)
            .map(|(r, _)| r)
            .map_err(|e| e.to_string())
    } else {
        Err(crate::degraded_reason(&freeze))
    };
    engine.thaw().map_err(|e| format!("thaw: {e}"))?;
    report.map(|r| (r, t0.elapsed()))
}

/// A kernel view of the frozen guest, with the vCPUs' registers.
fn frozen_kernel(engine: &RunGuest, vcpus: &[Option<CpuRegs>]) -> Result<guest_mem::Kernel, Error> {
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    guest_kernel(
        phys,
        KernelOptions {
            cpus: vcpus.iter().flatten().copied().collect(),
            ..Default::default()
        },
    )
}

/// Walks a frozen guest whose every vCPU parked: the report and the kernel view (for a
/// vmcore export).
fn capture_single(
    engine: &RunGuest,
    freeze: &FreezeOutcome,
    (timeline, elapsed_ms): (Vec<EventCounterSample>, u64),
    log: &mut Vec<String>,
) -> Result<(FailureDumpReport, guest_mem::Kernel), Error> {
    let k = frozen_kernel(engine, &freeze.vcpus)?;
    let btf = guest_btf(&k)?;
    let copts = CaptureOptions {
        deadline: Some(CAPTURE_DEADLINE),
        timeline,
        elapsed_ms,
        ..Default::default()
    };
    let out = capture_freeze(&k, &btf, freeze, &copts);
    for p in &out.phases {
        log.push(format!(
            "capture phase {:<16} {:>8.2} ms",
            p.name,
            p.elapsed.as_secs_f64() * 1e3
        ));
    }
    log.extend(out.log.iter().map(|l| format!("capture: {l}")));
    Ok((out.report, k))
}

pub(crate) type Captured = (
    Result<FailureDumpReportAny, Error>,
    Result<Option<PathBuf>, Error>,
);

/// The late snapshot: walks the frozen guest (or writes a degraded report when not every
/// vCPU parked), wraps it with the early one into the dual report, and exports the
/// vmcore when asked.
pub(crate) fn capture_late(
    engine: &RunGuest,
    freeze: &FreezeOutcome,
    timeline: (Vec<EventCounterSample>, u64),
    early: EarlySnapshot,
    opts: &RunOptions,
    log: &mut Vec<String>,
) -> Captured {
    if !freeze.all_parked() {
        // The dual report needs a late snapshot; a failed rendezvous is the degraded
        // report alone.
        if early.has_early() {
            log.push("the early snapshot is dropped: the late freeze did not complete".into());
        }
        let d = crate::degraded_report(freeze);
        return (Ok(FailureDumpReportAny::Degraded(d)), Ok(None));
    }
    let (late, k) = match capture_single(engine, freeze, timeline, log) {
        Ok(x) => x,
        Err(e) => return (Err(e), Ok(None)),
    };
    let vmcore = match &opts.vmcore_out {
        Some(p) => {
            let cpus: Vec<CpuRegs> = freeze.vcpus.iter().flatten().copied().collect();
            export_vmcore(&k, &cpus, p).map(|n| {
                log.push(format!("vmcore: {} bytes to {}", n, p.display()));
                Some(p.clone())
            })
        }
        None => Ok(None),
    };
    (Ok(FailureDumpReportAny::Dual(early.finish(late))), vmcore)
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
