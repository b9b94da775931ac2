//! The trigger: freeze the guest when its scheduler exits, at the write itself where the
//! engine can stop at a write (a watchpoint on `scx_sched.exit_kind`), else by polling it.
//!
//! What counts as an exit to capture is scx-walk's rule ([`TriggerLocation::judge`]): an
//! error exit always; an unregistration (`SCX_EXIT_UNREG*`: the scheduler's user-space
//! part exited or detached it) too, unless the guest's run already ended (the guest
//! detaches the scheduler at its end).
//!
//! The watchpoint path arms on the exit kind of the scheduler attached now — the
//! `scx_sched` that `scx_root` points at (re-arming when a new scheduler attaches), or,
//! on kernels without it (6.12), the global `scx_exit_kind` (`scx_walk::root`) — waits
//! for writes in slices between the session's ticks, and on a hit reads the value in the
//! frozen guest: a write that is not an exit to capture (a
//! fresh `scx_sched`, an unrelated write to the same bytes) is let pass. Each slice also
//! reads the value once: a write lost to a concurrent freeze (QEMU drops the writer's stop
//! when a QMP stop lands first), or an exit before the watch was armed, is still caught —
//! then as a poll ([`How::Poll`] with `late` when the disable worker had taken over).

use std::time::{Duration, Instant};

use freeze::watch::{Fire, Polled, Tick, WatchOptions, WatchOutcome, watch_u32_with};
use freeze::watchpoint::{WatchEngine, WatchLen, WriteWatch};
use freeze::{Engine, FreezeOutcome};
use guest_lab::ConsoleLog;
use guest_mem::{Kva, KvaReadExt};
use scx_walk::TriggerLocation;
use scx_walk::exit_kind::{ExitVerdict, SCX_EXIT_NONE};

use super::FREEZE_TIMEOUT;
use crate::dual::SCAN_EVERY;
use crate::guest::{GuestConsole, RunGuest};

/// How the exit was caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// Stopped at the writing instruction; `vcpu` wrote it.
    Watchpoint { vcpu: Option<usize> },
    /// Seen by a read of the value, then frozen; `late` when `exit_kind` already read
    /// `SCX_EXIT_DONE` and the kind came from `exit_info->kind`.
    Poll { late: bool },
}

impl How {
    /// `exit_info.source` of the report.
    pub fn source(self) -> &'static str {
        match self {
            How::Watchpoint { .. } => "watchpoint",
            How::Poll { .. } => "poll",
        }
    }
}

/// An exit caught, with the guest frozen at it.
#[derive(Debug)]
pub(crate) struct Caught {
    pub freeze: FreezeOutcome,
    pub kind: u32,
    /// The `scx_sched` whose `exit_kind` it is (the watch stays armed on it).
    pub sched: Kva,
    pub how: How,
}

/// How the trigger ended.
pub(crate) enum TriggerEnd {
    Caught(Box<Caught>),
    /// A tick stopped it (the watcher thread's reason) or it timed out.
    Stopped,
}

/// What the rule needs besides the value: the live kernel (for `exit_info->kind`) and
/// the console (whether the run already ended).
pub(crate) struct ExitRule<'a> {
    pub trig: &'a TriggerLocation,
    pub live: &'a guest_mem::Kernel,
    pub console: &'a GuestConsole,
}

impl ExitRule<'_> {
    /// The verdict on `exit_kind` read from the `scx_sched` at `sched`.
    pub fn judge(&self, sched: Kva, exit_kind: u32) -> ExitVerdict {
        let v = self.trig.judge(sched, exit_kind, self.live, true);
        match v {
            ExitVerdict::Capture { kind, .. }
                if scx_walk::exit_kind::is_unregistration(kind) && self.run_ended() =>
            {
                ExitVerdict::Ignore
            }
            v => v,
        }
    }

    /// The guest's run script is past its workload: it detaches the scheduler itself.
    fn run_ended(&self) -> bool {
        let log = ConsoleLog::parse(&self.console.text());
        log.phase("workload-done").is_some() || log.phase("end").is_some()
    }
}

/// Watches for the scheduler's exit: at the write when the engine can, else by polling.
/// `on_tick` runs between slices (at most every [`SCAN_EVERY`]); it may freeze and thaw
/// but must leave the guest running.
pub(crate) fn watch_exit(
    engine: &mut RunGuest,
    rule: &ExitRule<'_>,
    on_tick: impl FnMut(&mut RunGuest) -> Tick,
    log: &mut Vec<String>,
) -> Result<TriggerEnd, String> {
    match engine.can_watch() {
        Ok(()) => {
            log.push(format!(
                "trigger: write watchpoint on {}",
                rule.trig.exit_kind_name()
            ));
            at_write(engine, rule, on_tick, log)
        }
        Err(why) => {
            log.push(format!(
                "trigger: polling {} (no write watchpoint: {why})",
                rule.trig.exit_kind_name()
            ));
            by_poll(engine, rule, on_tick, log)
        }
    }
}

/// The poll watch with the rule.
fn by_poll(
    engine: &mut RunGuest,
    rule: &ExitRule<'_>,
    on_tick: impl FnMut(&mut RunGuest) -> Tick,
    log: &mut Vec<String>,
) -> Result<TriggerEnd, String> {
    let (pointer, offset, direct) = rule.trig.poll_target();
    let polled = Polled {
        pointer,
        offset,
        direct,
    };
    let fires = |sched: Kva, exit_kind: u32| match rule.judge(sched, exit_kind) {
        ExitVerdict::Capture { kind, late } => Some(Fire { value: kind, late }),
        ExitVerdict::Ignore => None,
    };
    let wopts = WatchOptions {
        freeze_timeout: FREEZE_TIMEOUT,
        tick_every: SCAN_EVERY,
        fresh_value: Some(SCX_EXIT_NONE),
        ..Default::default()
    };
    let live = rule.live;
    let out = watch_u32_with(
        engine,
        polled,
        |kva| live.translate(kva),
        fires,
        &wopts,
        on_tick,
    )
    .map_err(|e| e.to_string())?;
    Ok(match out {
        WatchOutcome::Triggered(t) => {
            log.push(format!(
                "trigger: exit_kind {} (late={}, root_cleared={}), flip to frozen {:?}, {} polls at {:.0} Hz, longest gap {:?}, {} ticks ({:?} in all, longest {:?}), realtime={}",
                t.fire.value,
                t.fire.late,
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
            TriggerEnd::Caught(Box::new(Caught {
                freeze: t.freeze,
                kind: t.fire.value,
                sched: t.object,
                how: How::Poll { late: t.fire.late },
            }))
        }
        WatchOutcome::Stopped(st) | WatchOutcome::TimedOut(st) => {
            log.push(format!(
                "watch stopped: {} polls, {} read errors, longest gap {:?}, {} ticks ({:?} in all)",
                st.polls, st.read_errors, st.max_gap, st.ticks, st.tick_time
            ));
            TriggerEnd::Stopped
        }
    })
}

/// Counts of the watchpoint path, for the log.
#[derive(Default)]
struct AtWriteStats {
    arms: u32,
    hits_let_pass: u32,
    slices: u64,
    ticks: u64,
}

/// The watchpoint path (see the module docs).
fn at_write(
    engine: &mut RunGuest,
    rule: &ExitRule<'_>,
    mut on_tick: impl FnMut(&mut RunGuest) -> Tick,
    log: &mut Vec<String>,
) -> Result<TriggerEnd, String> {
    let mut armed: Option<Kva> = None;
    let mut st = AtWriteStats::default();
    let mut last_tick = Instant::now();
    let started = Instant::now();
    let end = |st: &AtWriteStats, log: &mut Vec<String>, what: &str| {
        log.push(format!(
            "trigger (watchpoint): {what} after {:.1?}; armed {} time(s), {} write(s) let pass, {} slices, {} ticks",
            started.elapsed(),
            st.arms,
            st.hits_let_pass,
            st.slices,
            st.ticks
        ));
    };
    loop {
        st.slices += 1;
        let sched = current_sched(rule);
        if let Some(s) = sched
            && armed != Some(s)
        {
            arm(engine, rule, s)?;
            armed = Some(s);
            st.arms += 1;
        }
        if let Some(s) = armed {
            let hit = engine
                .wait_write(SLICE)
                .map_err(|e| format!("waiting for the write: {e}"))?;
            if let Some(hit) = hit {
                let raw = exit_kind_now(rule, s);
                if let Some(ExitVerdict::Capture { kind, .. }) = raw.map(|v| rule.judge(s, v)) {
                    // The raw value in guest memory at the stop: the claim's kind, never
                    // the disable worker's DONE at a first stop.
                    let raw = raw.unwrap_or_default();
                    end(
                        &st,
                        log,
                        &format!(
                            "exit_kind {raw} (kind {kind}) written by vCPU {:?}",
                            hit.vcpu
                        ),
                    );
                    return Ok(caught(
                        hit.freeze,
                        kind,
                        s,
                        How::Watchpoint { vcpu: hit.vcpu },
                    ));
                }
                st.hits_let_pass += 1;
                engine
                    .thaw()
                    .map_err(|e| format!("continuing past a write: {e}"))?;
            }
        } else {
            // Nothing attached yet: no watch to wait on.
            std::thread::sleep(SLICE);
        }
        // A read each slice: an exit before the watch was armed on this scheduler, or a
        // write lost to a concurrent freeze.
        if let Some(s) = sched
            && let Some(v) = exit_kind_now(rule, s)
            && let ExitVerdict::Capture { kind, late } = rule.judge(s, v)
        {
            let freeze = engine
                .freeze(FREEZE_TIMEOUT)
                .map_err(|e| format!("freeze after the exit was read: {e}"))?;
            // The write may have stopped the guest between the wait and the read: then
            // the engine holds its hit, and the instant is the write's.
            let pending = engine.wait_write(Duration::ZERO).ok().flatten();
            let how = match pending {
                Some(hit) if armed == Some(s) => How::Watchpoint { vcpu: hit.vcpu },
                _ => How::Poll { late },
            };
            end(
                &st,
                log,
                &format!("exit_kind {v} (kind {kind}) read ({how:?})"),
            );
            return Ok(caught(freeze, kind, s, how));
        }
        if last_tick.elapsed() >= SCAN_EVERY {
            st.ticks += 1;
            let next = on_tick(engine);
            last_tick = Instant::now();
            if engine.is_frozen() {
                return Err("the watch's tick callback left the guest frozen".into());
            }
            if next == Tick::Stop {
                end(&st, log, "stopped");
                return Ok(TriggerEnd::Stopped);
            }
        }
    }
}

fn caught(freeze: FreezeOutcome, kind: u32, sched: Kva, how: How) -> TriggerEnd {
    TriggerEnd::Caught(Box::new(Caught {
        freeze,
        kind,
        sched,
        how,
    }))
}

/// How long one wait for a write lasts before the session's other work.
const SLICE: Duration = Duration::from_millis(5);

/// The scheduler attached now, if any: the `scx_sched` `scx_root` points at, or the
/// `scx_ops` of a kernel that keeps its scheduler in globals (`scx_walk::root`).
fn current_sched(rule: &ExitRule<'_>) -> Option<Kva> {
    rule.trig.current(rule.live)
}

/// `exit_kind` of the scheduler at `sched`, read now.
fn exit_kind_now(rule: &ExitRule<'_>, sched: Kva) -> Option<u32> {
    let at = rule.trig.exit_kind_at(sched).ok()?;
    rule.live.read_u32(at).ok()
}

/// Arms the write watch on `sched`'s `exit_kind` (an `atomic_t`: 4 aligned bytes).
fn arm(engine: &mut RunGuest, rule: &ExitRule<'_>, sched: Kva) -> Result<(), String> {
    let at = rule
        .trig
        .exit_kind_at(sched)
        .map_err(|e| format!("exit_kind: {e}"))?;
    let watch = WriteWatch::new(at.0, WatchLen::B4)
        .ok_or_else(|| format!("scx_sched.exit_kind at {at} is not 4-byte aligned"))?;
    engine
        .arm_write_watch(watch)
        .map_err(|e| format!("arming the write watch: {e}"))
}
