//! The second stop of a capture caught at the write (issue: the exact instant and the
//! reason). The first stop is at `scx_claim_exit()`'s write of the exit kind: the state at
//! the error, whole, but `exit_info` not written yet. The kernel then fills `exit_info`
//! (message, backtrace), its error irq work writes the debug dump, and its disable worker
//! begins by writing `SCX_EXIT_DONE` over the exit kind — the second write the watch
//! catches, before anything is torn down. Stopped there, the capture reads `exit_info`
//! into the late report.
//!
//! A kernel where that write does not come within [`SECOND_STOP_BOUND`] keeps the first
//! stop's `exit_info`, and the report says why the rest is missing.

use std::time::{Duration, Instant};

use dump_schema::{ExitInfo, ExitTrigger, FailureDumpReport, FailureDumpReportAny};
use freeze::Engine;
use freeze::watchpoint::WatchEngine;
use guest_mem::{Kva, KvaReadExt};
use scx_walk::KernelView;
use scx_walk::exit_kind::SCX_EXIT_DONE;

use super::{How, Loaded, frozen_kernel};
use crate::guest::RunGuest;

/// How long the second stop may take, in wall time (the guest runs under TCG on a
/// loaded host, so this is generous: the kernel takes milliseconds).
pub(crate) const SECOND_STOP_BOUND: Duration = Duration::from_secs(10);

/// At most this many other writes to the exit kind are let pass while waiting.
const MAX_WRITES: u32 = 64;

/// After the late capture of an exit caught at the write: continue to the disable
/// worker's write and read `exit_info` there into the late report. Leaves the guest
/// frozen at that write (or running, when it never came).
pub(crate) fn second_stop(
    engine: &mut RunGuest,
    how: How,
    exit_kind_at: Kva,
    report: &mut FailureDumpReportAny,
    loaded: &Loaded,
    log: &mut Vec<String>,
) {
    let How::Watchpoint { vcpu } = how else {
        return;
    };
    let late = match report {
        FailureDumpReportAny::Dual(d) => &mut d.late,
        FailureDumpReportAny::Single(r) => r,
        FailureDumpReportAny::Degraded(_) => return,
    };
    let t0 = Instant::now();
    match wait_for_done(engine, exit_kind_at, loaded) {
        Ok(()) => match read_exit_info(engine, vcpu, loaded) {
            Ok(Some(mut info)) => {
                fill_trigger(&mut info, late, vcpu);
                log.push(format!(
                    "second stop at the disable worker's write {:.1?} after the first; exit_info read ({} bytes of dump)",
                    t0.elapsed(),
                    info.kernel_dump.as_ref().map_or(0, String::len)
                ));
                late.exit_info = Some(info);
            }
            Ok(None) => note(late, "no scheduler at the second stop", log),
            Err(e) => note(
                late,
                &format!("reading exit_info at the second stop: {e}"),
                log,
            ),
        },
        Err(e) => note(late, &e, log),
    }
}

/// Continues and waits for the write of `SCX_EXIT_DONE` over the exit kind.
fn wait_for_done(engine: &mut RunGuest, at: Kva, loaded: &Loaded) -> Result<(), String> {
    let deadline = Instant::now() + SECOND_STOP_BOUND;
    for _ in 0..MAX_WRITES {
        engine
            .thaw()
            .map_err(|e| format!("continuing to the second stop: {e}"))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let hit = engine
            .wait_write(left)
            .map_err(|e| format!("waiting for the second stop: {e}"))?;
        if hit.is_none() {
            return Err(format!(
                "the disable worker's write did not come within {SECOND_STOP_BOUND:?}; exit_info as read at the exit's claim"
            ));
        }
        let now = read_u32_frozen(engine, at, loaded)?;
        if now == SCX_EXIT_DONE {
            return Ok(());
        }
    }
    Err(format!(
        "{MAX_WRITES} writes to exit_kind without SCX_EXIT_DONE; exit_info as read at the exit's claim"
    ))
}

fn read_u32_frozen(engine: &RunGuest, at: Kva, loaded: &Loaded) -> Result<u32, String> {
    let k = kernel_of(engine, loaded)?;
    k.read_u32(at)
        .map_err(|e| format!("exit_kind at the second stop: {e}"))
}

/// `exit_info` of the frozen guest.
fn read_exit_info(
    engine: &RunGuest,
    vcpu: Option<usize>,
    loaded: &Loaded,
) -> Result<Option<ExitInfo>, String> {
    let k = kernel_of(engine, loaded)?;
    let view = KernelView {
        mem: &k,
        syms: &k,
        types: &loaded.btf,
    };
    scx_walk::exit_info::capture(
        &view,
        How::Watchpoint { vcpu }.source(),
        vcpu.map(|v| v as u32),
    )
    .map_err(|e| e.to_string())
}

/// A view of the frozen guest with what the watch loaded (VMCOREINFO, symbols): nothing
/// is searched for again at each stop.
fn kernel_of(engine: &RunGuest, loaded: &Loaded) -> Result<guest_mem::Kernel, String> {
    frozen_kernel(
        engine,
        &[],
        Some(loaded.vmcoreinfo.clone()),
        Some(loaded.symbols.clone()),
    )
    .map_err(|e| e.to_string())
}

/// The triggering task when the dump's header did not name it: the task current on the
/// writing CPU in the first stop's runqueue states.
fn fill_trigger(info: &mut ExitInfo, late: &FailureDumpReport, vcpu: Option<usize>) {
    let Some(cpu) = vcpu.map(|v| v as u32) else {
        return;
    };
    let t = info.trigger.get_or_insert(ExitTrigger {
        cpu,
        ..Default::default()
    });
    t.cpu = cpu;
    if t.pid.is_none()
        && let Some(rq) = late.rq_scx_states.iter().find(|r| r.cpu == cpu)
        && !rq.curr_comm.is_empty()
    {
        t.pid = Some(rq.curr_pid);
        t.comm = Some(rq.curr_comm.clone());
    }
}

/// Says in the late report's `exit_info` why the second stop's reading is missing.
fn note(late: &mut FailureDumpReport, why: &str, log: &mut Vec<String>) {
    log.push(format!("second stop: {why}"));
    let info = late.exit_info.get_or_insert_with(Default::default);
    info.unavailable = Some(match info.unavailable.take() {
        Some(more) => format!("{why}; {more}"),
        None => why.to_string(),
    });
}
