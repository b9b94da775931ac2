//! The live part of `ktstr run`: watch the running guest for its scheduler's error exit
//! (with the early snapshot of a dual capture taken between polls), then capture the
//! frozen guest.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dump_schema::{EventCounterSample, FailureDumpReport, FailureDumpReportAny};
use freeze::watch::Tick;
use freeze::{Engine, FreezeOutcome};
use guest_mem::{CpuRegs, KernelOptions, Kva, PhysMem};
use scx_walk::{CaptureOptions, KernelView, TriggerLocation};

use crate::Error;
use crate::dual::EarlySnapshot;
use crate::frozen::{capture_freeze, export_vmcore, guest_btf, guest_kernel};
use crate::guest::RunGuest;
use crate::run::{RunOptions, RunOutcome};

mod monitor;
mod second_stop;
mod trigger;

use monitor::{Monitor, Shared, StopReason};
pub(crate) use second_stop::second_stop;
pub(crate) use trigger::How;
use trigger::{ExitRule, TriggerEnd};

/// How long a freeze may take before it counts as a rendezvous timeout (degraded).
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);
/// Soft deadline of one capture.
const CAPTURE_DEADLINE: Duration = Duration::from_secs(60);

pub(crate) enum Watched {
    Frozen {
        freeze: FreezeOutcome,
        outcome: RunOutcome,
        /// How the exit was caught and the address of the `exit_kind` it was read from,
        /// when an exit triggered the freeze (else a timeout, interrupt or end of the
        /// workload froze the guest).
        caught: Option<(How, Kva)>,
        timeline: Vec<EventCounterSample>,
        elapsed_ms: u64,
        early: Box<EarlySnapshot>,
        /// What the late snapshot reuses.
        loaded: Box<Loaded>,
    },
    SetupFailed {
        what: String,
        /// The engine, not the guest, could not go on (see `GuestExitInfo::engine_fault`).
        engine_fault: bool,
    },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches the live guest from before the scheduler attaches until its error exit
/// (frozen by the watch itself, within one continuous poll so that a fast
/// error → disable → free sequence cannot slip between polls), or until the watcher
/// thread stops the watch: interrupt, `--timeout`, end of the workload (frozen here), or
/// a guest that fails first (not frozen: nothing to capture). Between polls, runnable
/// ages are scanned and the early snapshot is taken when they cross the threshold.
pub(crate) fn watch(
    engine: &mut RunGuest,
    opts: &RunOptions,
    attach_budget: Duration,
    log: &mut Vec<String>,
) -> Result<Watched, Error> {
    let started = Instant::now();
    if let Some(failed) = wait_for_userspace(engine, opts, attach_budget, started)? {
        return Ok(failed);
    }
    let live = live_kernel(engine)?;
    let btf = guest_btf(&live)?;
    let lk = KernelView {
        mem: &live,
        syms: &live,
        types: &btf,
    };
    let trig = TriggerLocation::resolve(&lk).map_err(|e| Error::Kernel {
        what: "locating the scheduler's exit_kind".into(),
        detail: e.to_string(),
    })?;
    let mut early = EarlySnapshot::new(&lk, opts.early_at.map(|d| Instant::now() + d));
    // What the early snapshot reuses instead of finding it again while the guest is frozen.
    let loaded = Loaded {
        vmcoreinfo: live.vmcoreinfo().clone(),
        symbols: live.symbol_source(),
        btf: btf.clone(),
    };
    log.push(format!(
        "watch armed {:.1} s after launch",
        started.elapsed().as_secs_f64()
    ));
    let shared = Shared::default();
    let monitor = Monitor {
        shared: &shared,
        opts,
        console: engine.console(),
        exited: engine.exit_watch(),
        ram: engine.guest_ram(),
        btf: &btf,
        started,
        attach_budget,
    };
    let mut early_log: Vec<String> = Vec::new();
    let console = engine.console();
    let rule = ExitRule {
        trig: &trig,
        live: &live,
        console: &console,
    };
    let mut trigger_log: Vec<String> = Vec::new();
    let (result, sampler_err) = std::thread::scope(|s| {
        let watcher = s.spawn(move || monitor.run());
        let on_tick = |eng: &mut RunGuest| {
            if shared.stop.load(Ordering::Relaxed) {
                return Tick::Stop;
            }
            let taken = early.tick(&lk, |scan| {
                let r = take_early(eng, &loaded, shared.timeline_now(), &mut early_log);
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
        let r = trigger::watch_exit(engine, &rule, on_tick, &mut trigger_log);
        // Ends the watcher thread when the watch ended by itself.
        shared.stop.store(true, Ordering::Relaxed);
        (r, watcher.join().unwrap_or_default())
    });
    log.append(&mut early_log);
    log.append(&mut trigger_log);
    log.push(early.summary());
    if let Some(e) = sampler_err {
        log.push(format!("event sampler unavailable: {e}"));
    }
    let ended = Ended::collect(shared, engine, log);
    finish(
        engine,
        result,
        ended,
        Box::new(early),
        Box::new(loaded),
        &trig,
    )
}

/// Waits until the guest's /init prints its first phase (the kernel is fully up, so its
/// symbols and BTF can be read): `Some` when the run cannot go on.
fn wait_for_userspace(
    engine: &mut RunGuest,
    opts: &RunOptions,
    attach_budget: Duration,
    started: Instant,
) -> Result<Option<Watched>, Error> {
    // The watch is set up as early as possible, so it is armed before the scheduler can
    // attach and fail (a debug build on a loaded TCG host takes seconds to decode
    // kallsyms and BTF).
    loop {
        if !engine.console_log().phases.is_empty() {
            return Ok(None);
        }
        if let Some(x) = engine.exit_info() {
            return Ok(Some(Watched::SetupFailed {
                what: format!("the guest exited during boot: {}", x.what),
                engine_fault: x.engine_fault,
            }));
        }
        if started.elapsed() > attach_budget {
            return Ok(Some(Watched::SetupFailed {
                what: format!(
                    "the guest did not reach its scheduler start within {} s",
                    attach_budget.as_secs()
                ),
                engine_fault: false,
            }));
        }
        if opts.interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("before the guest started its scheduler"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kernel view of the running guest (translations not cached: they could go stale).
fn live_kernel(engine: &RunGuest) -> Result<guest_mem::Kernel, Error> {
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    let live = guest_kernel(phys, KernelOptions::default())?;
    live.set_translation_cache(false);
    Ok(live)
}

/// What the watcher thread left when the watch ended.
struct Ended {
    reason: Option<StopReason>,
    timeline: Vec<EventCounterSample>,
    /// The freeze-time event sample's time, on the same clock as the running samples.
    elapsed_ms: u64,
}

impl Ended {
    fn collect(shared: Shared, engine: &RunGuest, log: &mut Vec<String>) -> Ended {
        let timeline = shared
            .timeline
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        log.push(format!(
            "event counter samples while running: {}",
            timeline.len()
        ));
        let attached_at = shared
            .attached
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(l, at)| {
                log.push(l);
                at
            });
        // The kernel's own sched_ext messages, for -v.
        let cl = engine.console_log();
        log.extend(
            cl.other
                .iter()
                .filter(|l| l.contains("sched_ext"))
                .take(20)
                .map(|l| format!("guest: {}", l.trim())),
        );
        Ended {
            reason: shared
                .reason
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            timeline,
            elapsed_ms: attached_at.map_or(0, |at| at.elapsed().as_millis() as u64),
        }
    }
}

/// Turns how the watch ended into the run's next step: frozen (an exit caught, or frozen
/// here for a timeout/interrupt/workload end) or a setup failure.
fn finish(
    engine: &mut RunGuest,
    result: Result<TriggerEnd, String>,
    ended: Ended,
    early: Box<EarlySnapshot>,
    loaded: Box<Loaded>,
    trig: &TriggerLocation,
) -> Result<Watched, Error> {
    let reason = match result {
        Ok(TriggerEnd::Caught(c)) => {
            let outcome = if scx_walk::exit_kind::is_error(c.kind) {
                RunOutcome::ErrorExit { exit_kind: c.kind }
            } else {
                RunOutcome::SchedulerExited { exit_kind: c.kind }
            };
            return Ok(Watched::Frozen {
                freeze: c.freeze,
                outcome,
                caught: trig.exit_kind_at(c.sched).ok().map(|at| (c.how, at)),
                timeline: ended.timeline,
                elapsed_ms: ended.elapsed_ms,
                early,
                loaded,
            });
        }
        Ok(TriggerEnd::Stopped) => ended.reason,
        Err(e) => match engine.exit_info() {
            Some(x) => Some(StopReason::SetupFailed {
                what: format!("the guest exited before a capture: {} ({e})", x.what),
                engine_fault: x.engine_fault,
            }),
            None => return Err(Error::Infrastructure(format!("watching the guest: {e}"))),
        },
    };
    match reason {
        Some(StopReason::Outcome(outcome)) => {
            let freeze = engine
                .freeze(FREEZE_TIMEOUT)
                .map_err(Error::engine("freeze"))?;
            Ok(Watched::Frozen {
                freeze,
                outcome,
                caught: None,
                timeline: ended.timeline,
                elapsed_ms: ended.elapsed_ms,
                early,
                loaded,
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

/// What a run found once, before any freeze, and its snapshots reuse (the kernel's BTF,
/// symbols and VMCOREINFO do not change while it runs), so that the guest stays frozen
/// only for the walk and the late snapshot does not find them again.
pub(crate) struct Loaded {
    pub vmcoreinfo: guest_mem::VmcoreInfo,
    /// The kallsyms index, built once per run.
    pub symbols: guest_mem::SymbolSource,
    pub btf: btf_walk::Btf,
}

/// The early snapshot: freeze, capture (the late snapshot's path), thaw. Returns the
/// report and how long the guest stayed frozen; the guest runs again either way (a thaw
/// that fails is an error the watch then reports).
fn take_early(
    engine: &mut RunGuest,
    loaded: &Loaded,
    timeline: (Vec<EventCounterSample>, u64),
    log: &mut Vec<String>,
) -> Result<(FailureDumpReport, Duration), String> {
    let t0 = Instant::now();
    let freeze = engine.freeze(FREEZE_TIMEOUT).map_err(|e| e.to_string())?;
    let frozen = t0.elapsed();
    let report = if freeze.all_parked() {
        let exit = crate::ExitSource::POLL;
        capture_single(engine, &freeze, Some(loaded), timeline, exit, log)
            .map(|(r, _)| r)
            .map_err(|e| e.to_string())
    } else {
        Err(crate::degraded_reason(&freeze))
    };
    let walked = t0.elapsed();
    engine.thaw().map_err(|e| format!("thaw: {e}"))?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    log.push(format!(
        "early snapshot: freeze {:.1} ms, walk {:.1} ms, thaw {:.1} ms",
        ms(frozen),
        ms(walked - frozen),
        ms(t0.elapsed() - walked)
    ));
    report.map(|r| (r, t0.elapsed()))
}

/// A kernel view of the frozen guest, with the vCPUs' registers.
pub(crate) fn frozen_kernel(
    engine: &RunGuest,
    vcpus: &[Option<CpuRegs>],
    vmcoreinfo: Option<guest_mem::VmcoreInfo>,
    symbols: Option<guest_mem::SymbolSource>,
) -> Result<guest_mem::Kernel, Error> {
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    guest_kernel(
        phys,
        KernelOptions {
            cpus: vcpus.iter().flatten().copied().collect(),
            vmcoreinfo,
            symbols,
            ..Default::default()
        },
    )
}

/// Walks a frozen guest whose every vCPU parked: the report and the kernel view (for a
/// vmcore export). VMCOREINFO and BTF come from `loaded`, else from guest memory.
fn capture_single(
    engine: &RunGuest,
    freeze: &FreezeOutcome,
    loaded: Option<&Loaded>,
    (timeline, elapsed_ms): (Vec<EventCounterSample>, u64),
    exit: crate::ExitSource,
    log: &mut Vec<String>,
) -> Result<(FailureDumpReport, guest_mem::Kernel), Error> {
    let t = Instant::now();
    let k = frozen_kernel(
        engine,
        &freeze.vcpus,
        loaded.map(|l| l.vmcoreinfo.clone()),
        loaded.map(|l| l.symbols.clone()),
    )?;
    let kernel = scx_walk::Phase {
        name: "kernel",
        elapsed: t.elapsed(),
    };
    let t = Instant::now();
    let found;
    let btf = match loaded {
        Some(l) => &l.btf,
        None => {
            found = guest_btf(&k)?;
            &found
        }
    };
    let btf_phase = scx_walk::Phase {
        name: "btf",
        elapsed: t.elapsed(),
    };
    let copts = CaptureOptions {
        deadline: Some(CAPTURE_DEADLINE),
        timeline,
        elapsed_ms,
        ..Default::default()
    };
    let out = capture_freeze(&k, btf, freeze, &copts, exit);
    for p in [&kernel, &btf_phase].into_iter().chain(&out.phases) {
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
/// vCPU parked) with the VMCOREINFO, symbols and BTF the watch `loaded`, wraps it with the
/// early one into the dual report, and exports the vmcore when asked.
pub(crate) fn capture_late(
    engine: &RunGuest,
    freeze: &FreezeOutcome,
    timeline: (Vec<EventCounterSample>, u64),
    (early, loaded): (EarlySnapshot, &Loaded),
    exit: crate::ExitSource,
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
    let (late, k) = match capture_single(engine, freeze, Some(loaded), timeline, exit, log) {
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
