//! What the tick callback of `watch_exit_kind_with` costs the trigger: the latency from the
//! guest's `exit_kind` store to every vCPU frozen, and the poll rate, without ticks
//! (`watch_exit_kind`, the baseline) and with the tick `ktstr run` uses (every 20 ms, a
//! runnable-age scan of ~60 µs, the mean measured on the lab guest), in the same run.
//!
//! The guest is real: a 2-vCPU counting guest on the native KVM engine; the trigger
//! values (`scx_root`, `exit_kind`) live in its RAM, written by a host thread at a random
//! moment 5–40 ms into each watch. `cargo bench -p freeze --bench watch_tick`
//! (`WATCH_BENCH_FLIPS` overrides the flips per scenario, default 60). Skips with the
//! reason when the host has no usable KVM.

#[path = "../tests/kvm_common/mod.rs"]
mod kvm_common;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::kvm::KvmEngine;
use freeze::watch::{Fire, Polled, Tick, WatchOptions, WatchOutcome, watch_u32, watch_u32_with};
use guest_mem::{Gpa, Kva, MemError};
use kvm_common::{IDLE_PORT, Layout, Mode};
use scx_walk::exit_kind::{SCX_EXIT_ERROR_STALL, is_error};
use vm_memory::{Bytes, GuestAddress};

/// Where the fake kernel variables live (above the tiny guest's code and counters).
const ROOT: u64 = 0x10_0000;
const SCHED: u64 = 0x10_1000;
const EXIT_KIND_OFF: u64 = 0x40;
const IMAGE: u64 = 0xffff_ffff_8000_0000;
const DIRECT: u64 = 0xffff_8880_0000_0000;
/// The scan cost simulated in the tick (mean of 540 scans on the lab guest, debug build).
const SCAN_COST: Duration = Duration::from_micros(60);

fn translate(k: Kva) -> Result<Gpa, MemError> {
    match k.0 {
        IMAGE.. => Ok(Gpa(k.0 - IMAGE)),
        DIRECT..=0xffff_8880_ffff_ffff => Ok(Gpa(k.0 - DIRECT)),
        _ => Err(MemError::Untranslatable {
            kva: k,
            why: "bench",
        }),
    }
}

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Result_ {
    latencies: Vec<Duration>,
    polls: u64,
    watched: Duration,
    ticks: u64,
}

/// `tick`: `None` = plain watch; `Some((every, cost))` = a tick of that cost that often.
fn scenario(engine: &mut KvmEngine, flips: usize, tick: Option<(Duration, Duration)>) -> Result_ {
    let ram = engine.guest_ram();
    let polled = Polled {
        pointer: Kva(IMAGE + ROOT),
        offset: EXIT_KIND_OFF,
        direct: false,
    };
    let rule = |_: Kva, value: u32| is_error(value).then_some(Fire { value, late: false });
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut out = Result_::default();
    for _ in 0..flips {
        ram.store(0u32, GuestAddress(SCHED + EXIT_KIND_OFF), Ordering::Release)
            .unwrap();
        let delay = Duration::from_micros(5_000 + rng.next() % 35_000);
        let (tx, rx) = mpsc::channel();
        let ram2 = ram.clone();
        let flipper = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let at = Instant::now();
            ram2.store(
                SCX_EXIT_ERROR_STALL,
                GuestAddress(SCHED + EXIT_KIND_OFF),
                Ordering::Release,
            )
            .unwrap();
            tx.send(at).unwrap();
        });
        let opts = WatchOptions {
            timeout: Some(Duration::from_secs(5)),
            tick_every: tick.map_or(Duration::from_millis(20), |t| t.0),
            ..Default::default()
        };
        let r = match tick {
            None => watch_u32(engine, polled, translate, rule, &opts),
            Some((_, cost)) => watch_u32_with(engine, polled, translate, rule, &opts, |_| {
                busy(cost);
                Tick::Continue
            }),
        };
        let frozen_at = Instant::now();
        flipper.join().unwrap();
        let stored_at = rx.recv().unwrap();
        let WatchOutcome::Triggered(t) = r.expect("watch") else {
            panic!("no trigger within 5 s")
        };
        assert!(t.freeze.all_parked());
        out.latencies
            .push(frozen_at.saturating_duration_since(stored_at));
        out.polls += t.stats.polls;
        out.watched += t.stats.watched;
        out.ticks += t.stats.ticks;
        engine.thaw().unwrap();
    }
    out
}

fn q(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, r: &mut Result_) -> (Duration, f64) {
    r.latencies.sort();
    let rate = r.polls as f64 / r.watched.as_secs_f64().max(1e-9);
    let med = q(&r.latencies, 0.5);
    println!(
        "{name:<34} store→frozen median {:>8.1} µs  p90 {:>8.1} µs  max {:>8.1} µs  poll rate {:>7.0} Hz  ticks {}",
        med.as_secs_f64() * 1e6,
        q(&r.latencies, 0.9).as_secs_f64() * 1e6,
        r.latencies.last().unwrap().as_secs_f64() * 1e6,
        rate,
        r.ticks
    );
    (med, rate)
}

fn main() {
    if !kvm_common::kvm_or_skip() {
        return;
    }
    let flips: usize = std::env::var("WATCH_BENCH_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let layout = Layout::new(Mode::Real);
    let builder = kvm_common::builder(2);
    builder
        .guest_ram()
        .write_obj(DIRECT + SCHED, GuestAddress(ROOT))
        .unwrap();
    let mut engine = kvm_common::start_counting(builder, layout, 2, |_| IDLE_PORT);
    kvm_common::wait_counters_above(&engine, &layout, &[0, 1], &[0, 0]);

    println!("watch_tick: {flips} flips per scenario, 2-vCPU guest on the native KVM engine");
    let mut base = scenario(&mut engine, flips, None);
    let mut run = scenario(
        &mut engine,
        flips,
        Some((Duration::from_millis(20), SCAN_COST)),
    );
    let mut dense = scenario(
        &mut engine,
        flips,
        Some((Duration::from_millis(1), SCAN_COST)),
    );
    let (b_med, b_rate) = report("baseline (no tick)", &mut base);
    let (r_med, r_rate) = report("tick 60 µs every 20 ms (ktstr run)", &mut run);
    let (d_med, d_rate) = report("tick 60 µs every 1 ms", &mut dense);
    println!(
        "ratio vs baseline: ktstr run's tick: latency {:.2}, poll rate {:.2}; 1 ms tick: latency {:.2}, poll rate {:.2}",
        r_med.as_secs_f64() / b_med.as_secs_f64(),
        r_rate / b_rate,
        d_med.as_secs_f64() / b_med.as_secs_f64(),
        d_rate / b_rate
    );
}
