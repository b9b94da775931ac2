//! Write → frozen: the watchpoint path against the poll path, on the same guest.
//!
//! One guest, started with the gdbstub, attaches the `error` test scheduler again and
//! again; each attach fails 500 ms later, writing `scx_sched.exit_kind` `NONE → 1025`
//! (`scx_claim_exit`). The exits take turns:
//! - **poll**: the product's poll path, [`freeze::watch::watch_u32`] with scx-walk's rule (a real-time
//!   thread reading `exit_kind` in guest RAM every 100 µs, then QMP `stop`);
//! - **watchpoint**: the engine arms a 4-byte write watchpoint on `exit_kind`;
//!   `wait_write` returns when QEMU reports the hit (the guest already frozen).
//!
//! What is measured, all on the host's wall clock:
//! - *frozen* is QEMU's `STOP` QMP event timestamp (QEMU emits it once every vCPU is
//!   paused; microsecond resolution, the same clock as the host's `SystemTime`);
//! - the write itself is not observable. In both paths a separate *bracket* thread
//!   (real-time, reading `exit_kind` every 50 µs) notes the last read that still saw
//!   `NONE` (*last old*): the write came after it. So **write → frozen ≤ frozen − last
//!   old**, an upper bound whose slack is one bracket gap (printed). That bound is the
//!   figure compared between the two paths, with their ratio;
//! - beside it: poll: the watch's own flip → frozen (from the poll that saw the flip to
//!   QMP `stop` answered) and whether it was *late* (the window missed, `exit_kind`
//!   already `DONE`); watchpoint: the stop reply parsed on the host → `wait_write`
//!   returned with every vCPU's registers;
//! - fidelity: `exit_info->kind` read while frozen is still 0 when the kernel had not yet
//!   gone past the write (`scx_vexit` sets it a few steps later).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use freeze::Engine;
use freeze::GuestRam;
use freeze::qemu::LineMark;
use freeze::watch::{WatchOptions, WatchOutcome, watch_u32};
use freeze::watchpoint::{WatchEngine, WatchLen, WriteWatch};
use guest_lab::TestScheduler;
use guest_mem::{Kernel, Kva, KvaReadExt};
use scx_walk::exit_kind::SCX_EXIT_ERROR_BPF;
use vm_memory::{Bytes, GuestAddress};

use super::qemu_common::{
    BOOT_TIMEOUT, Booted, SchedOffsets, boot_with, median_max, ops_name, sched_offsets,
};

/// Error exits per path.
const PER_PATH: usize = 15;
/// Bound on waiting for the next scheduler, or its exit.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What the bracket thread saw around the write.
struct Bracket {
    /// The last read that still saw `NONE` (the instant before it).
    last_old: SystemTime,
    /// From that read to the next one (the slack of the bound).
    gap: Duration,
}

/// Reads the `u32` at `gpa` every 50 µs, at real-time priority when the host allows it,
/// until it is not 0, `stop` is set, or `deadline`.
fn bracket(ram: &GuestRam, gpa: GuestAddress, stop: &AtomicBool, deadline: Instant) -> Bracket {
    let rt = libc::sched_param { sched_priority: 10 };
    // SAFETY: sets the calling thread's own policy (pid 0) from a valid pointer; the
    // thread ends with the bracket. Refused without privilege: then it polls at the
    // normal policy.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt);
    }
    let mut last_old = SystemTime::now();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let before = SystemTime::now();
        let v: u32 = ram.read_obj(gpa).unwrap_or(0);
        if v != 0 {
            return Bracket {
                last_old,
                gap: since(before, last_old),
            };
        }
        last_old = before;
        std::thread::sleep(Duration::from_micros(50));
    }
    Bracket {
        last_old,
        gap: Duration::ZERO,
    }
}

fn spawn_bracket(
    ram: &GuestRam,
    gpa: GuestAddress,
    stop: &Arc<AtomicBool>,
    deadline: Instant,
) -> std::thread::JoinHandle<Bracket> {
    let (ram, stop) = (ram.clone(), stop.clone());
    std::thread::spawn(move || bracket(&ram, gpa, &stop, deadline))
}

/// The last `STOP` event QEMU sent (the freeze or the hit), from the engine's queue.
fn last_stop_event(g: &mut Booted) -> SystemTime {
    // A no-op command reads whatever QEMU sent meanwhile into the queue.
    g.engine.run_state().expect("query-status");
    g.engine
        .qmp()
        .take_events()
        .into_iter()
        .rev()
        .find(|e| e.name == "STOP")
        .and_then(|e| e.timestamp)
        .expect("a timestamped STOP event for the freeze")
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// The next live `error` scheduler: `scx_root` set, its `exit_kind` still `NONE` (the
/// lab's `ok` scheduler that starts the run is skipped by name).
fn next_sched(g: &mut Booted, kernel: &Kernel, root: Kva, off: &SchedOffsets) -> Kva {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(sched) = kernel.read_ptr(root)
            && sched.0 != 0
            && matches!(kernel.read_u32(Kva(sched.0 + off.exit_kind)), Ok(0))
            && ops_name(kernel, sched, off) == TestScheduler::Error.ops_name()
        {
            return sched;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduler attached (scx_root {:?}, run state {:?})\n--- console ---\n{}",
            kernel.read_ptr(root),
            g.engine.qmp().run_state(),
            g.console_text_tail()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One error exit, measured.
struct Exit {
    /// frozen − last old: the upper bound on write → frozen.
    bound: Duration,
    /// The bracket's slack: its gap around the write.
    gap: Duration,
    /// Poll: the watch's flip → frozen. Watchpoint: stop reply → `wait_write` returned.
    own: Duration,
    /// `exit_info->kind` read while frozen was still 0.
    at_write: bool,
    /// Poll only: the window was missed (`exit_kind` already `DONE`).
    late: bool,
}

fn exit_info_kind(kernel: &Kernel, sched: Kva, off: &SchedOffsets) -> u32 {
    let info = kernel
        .read_ptr(Kva(sched.0 + off.exit_info))
        .expect("scx_sched.exit_info");
    kernel
        .read_u32(Kva(info.0 + off.exit_info_kind))
        .expect("exit_info->kind")
}

/// The watchpoint path on `sched`'s exit.
fn by_watchpoint(g: &mut Booted, kernel: &Kernel, sched: Kva, off: &SchedOffsets) -> Exit {
    let kind_kva = Kva(sched.0 + off.exit_kind);
    let gpa = GuestAddress(kernel.translate(kind_kva).expect("exit_kind's GPA").0);
    let stop = Arc::new(AtomicBool::new(false));
    let w = WriteWatch::new(kind_kva.0, WatchLen::B4).expect("atomic_t is 4-aligned");
    g.engine.arm_write_watch(w).expect("arm");
    let bracket = spawn_bracket(
        &g.engine.guest_ram(),
        gpa,
        &stop,
        Instant::now() + STEP_TIMEOUT,
    );
    // A watchpoint fires on any write to those bytes, also one that leaves NONE there
    // (seen once, before `next_sched` checked the ops name: `scx_root` still pointed at
    // a freed `scx_sched` whose memory had been reused). Say where it came from, go on.
    let (hit, returned, kind) = loop {
        let hit = g
            .engine
            .wait_write(STEP_TIMEOUT)
            .expect("wait_write")
            .expect("the scheduler's exit writes exit_kind");
        let returned = SystemTime::now();
        let kind = kernel.read_u32(kind_kva).expect("exit_kind");
        if kind != 0 {
            break (hit, returned, kind);
        }
        let rip = hit.vcpu.and_then(|v| hit.freeze.vcpus[v]).map(|r| r.rip);
        let at = rip.and_then(|r| kernel.nearest_symbol(Kva(r)));
        eprintln!(
            "watchpoint: a write left exit_kind NONE: vCPU {:?} RIP {rip:#x?} ({})",
            hit.vcpu,
            at.map_or("?".to_string(), |s| format!(
                "{}+{:#x}",
                s.symbol.name, s.offset
            ))
        );
        g.engine.thaw().expect("thaw after a write of NONE");
    };
    stop.store(true, Ordering::Relaxed);
    let b = bracket.join().expect("bracket thread");
    assert!(hit.freeze.all_parked(), "{:?}", hit.freeze);
    assert_eq!(
        kind, SCX_EXIT_ERROR_BPF,
        "the first write that changes it is the error"
    );
    let timing = g.engine.last_hit_timing().expect("hit timing");
    let frozen = last_stop_event(g);
    let info_kind = exit_info_kind(kernel, sched, off);
    g.engine.disarm_write_watch().expect("disarm");
    let e = Exit {
        bound: since(frozen, b.last_old),
        gap: b.gap,
        own: since(returned, timing.stop_reply),
        at_write: info_kind == 0,
        late: false,
    };
    eprintln!(
        "watchpoint: exit_kind {kind}, exit_info->kind {info_kind}: write→frozen ≤ {:?} \
         (bracket gap {:?}); stop reply→wait_write returned {:?}",
        e.bound, e.gap, e.own
    );
    e
}

/// The poll path (the product's watch) on `sched`'s exit.
fn by_poll(g: &mut Booted, kernel: &Kernel, root: Kva, sched: Kva, off: &SchedOffsets) -> Exit {
    let kind_kva = Kva(sched.0 + off.exit_kind);
    let gpa = GuestAddress(kernel.translate(kind_kva).expect("exit_kind's GPA").0);
    let stop = Arc::new(AtomicBool::new(false));
    let bracket = spawn_bracket(
        &g.engine.guest_ram(),
        gpa,
        &stop,
        Instant::now() + STEP_TIMEOUT,
    );
    let (mut polled, rule) = crate::qemu_common::error_exit_watch(kernel, off);
    polled.pointer = root;
    let opts = WatchOptions {
        timeout: Some(STEP_TIMEOUT),
        stop: Some(g.engine.exited_flag()),
        ..Default::default()
    };
    let out = watch_u32(&mut g.engine, polled, |k| kernel.translate(k), rule, &opts);
    stop.store(true, Ordering::Relaxed);
    let b = bracket.join().expect("bracket thread");
    let t = match out.expect("watch") {
        WatchOutcome::Triggered(t) => t,
        other => panic!("no trigger: {other:?}\n{}", g.console_text_tail()),
    };
    assert_eq!(t.object, sched, "the watch fired on another scheduler");
    assert!(t.freeze.all_parked(), "{:?}", t.freeze);
    let frozen = last_stop_event(g);
    let info_kind = exit_info_kind(kernel, sched, off);
    let e = Exit {
        bound: since(frozen, b.last_old),
        gap: b.gap,
        own: t.flip_to_frozen,
        at_write: info_kind == 0,
        late: t.fire.late,
    };
    eprintln!(
        "poll: exit_kind {} (late {}), exit_info->kind {info_kind}: write→frozen ≤ {:?} \
         (bracket gap {:?}); flip→frozen {:?}",
        t.fire.value, t.fire.late, e.bound, e.gap, e.own
    );
    e
}

pub fn watchpoint_vs_poll() {
    let spec = super::reattach_spec(&super::attach_loop(2 * PER_PATH as u32 + 6));
    let Some(mut g) = boot_with(&spec, 2, 1024, |cfg| cfg.gdbstub = true) else {
        return;
    };
    let off = sched_offsets(&g.btf());
    g.phase(LineMark::START, "scheduler-start", BOOT_TIMEOUT);
    let kernel = g.kernel_view_frozen(|_| {});
    let root = kernel.require_symbol("scx_root").unwrap();

    let mut poll: Vec<Exit> = Vec::new();
    let mut watch: Vec<Exit> = Vec::new();
    while poll.len() < PER_PATH || watch.len() < PER_PATH {
        let sched = next_sched(&mut g, &kernel, root, &off);
        if watch.len() < poll.len() {
            watch.push(by_watchpoint(&mut g, &kernel, sched, &off));
        } else {
            poll.push(by_poll(&mut g, &kernel, root, sched, &off));
        }
        g.engine.thaw().expect("thaw");
    }

    let stats = |v: &[Exit], f: fn(&Exit) -> Duration| {
        let mut d: Vec<Duration> = v.iter().map(f).collect();
        median_max(&mut d)
    };
    let (pb, pbx) = stats(&poll, |e| e.bound);
    let (pg, pgx) = stats(&poll, |e| e.gap);
    let (po, pox) = stats(&poll, |e| e.own);
    let (wb, wbx) = stats(&watch, |e| e.bound);
    let (wg, wgx) = stats(&watch, |e| e.gap);
    let (wo, wox) = stats(&watch, |e| e.own);
    let at_write = |v: &[Exit]| v.iter().filter(|e| e.at_write).count();
    let late = poll.iter().filter(|e| e.late).count();
    println!(
        "write → frozen on one guest ({} accel, 2 vCPUs), {PER_PATH} `error` exits per path \
         taking turns; frozen = QEMU's STOP event; bound = frozen − the bracket thread's last \
         read of NONE (slack: the bracket gap):",
        g.engine.accel().accel
    );
    println!(
        "  poll (watch_exit_kind, 100 µs, then QMP stop): write→frozen ≤ median {pb:?}, max {pbx:?} \
         (bracket gap median {pg:?}, max {pgx:?}); flip→frozen median {po:?}, max {pox:?}; \
         late {late}/{PER_PATH}; exit_info->kind still 0 at the freeze: {}/{PER_PATH}",
        at_write(&poll)
    );
    println!(
        "  watchpoint (gdbstub Z2 on exit_kind): write→frozen ≤ median {wb:?}, max {wbx:?} \
         (bracket gap median {wg:?}, max {wgx:?}); stop reply→wait_write returned median {wo:?}, \
         max {wox:?}; exit_info->kind still 0 at the hit: {}/{PER_PATH}",
        at_write(&watch)
    );
    println!(
        "  ratio of the write→frozen bounds, poll / watchpoint (medians): {:.1}x; \
         watchpoint reports of an unarmed address continued past: {}",
        pb.as_secs_f64() / wb.as_secs_f64().max(1e-9),
        g.engine.spurious_watch_stops()
    );
}
