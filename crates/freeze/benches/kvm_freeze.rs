//! Freeze and thaw latency of the native KVM engine for 1, 2, 4 and 8 vCPUs (median and
//! p99), against the QEMU engine on the same machine in the same run: raw QMP `stop`/`cont`
//! round trips and the QEMU engine's full freeze (`stop` + `info registers -a`).
//!
//! Both engines run the same guest: a PVH ELF whose boot processor starts the others with
//! INIT/SIPI; every vCPU then spins. `cargo bench -p freeze --bench kvm_freeze`
//! (`KVM_BENCH_ITERS` overrides the iteration count, default 500).
//!
//! The watch path of the KVM engine beside it: a tiny guest whose vCPU 0 clears a flag the
//! host sets (the watched write) while the others spin; the time from the writer's debug
//! exit to every vCPU parked, against the request-freeze path on the same guest. Where the
//! host's KVM does not deliver data breakpoints (`kvm_pvm`), an instruction breakpoint on
//! the clearing store stands in (the same debug-exit → park path), and the bench says so.
//!
//! Also kvmclock across freezes: how much of the frozen time it counts (none, by design).

#[path = "../tests/kvm_common/mod.rs"]
mod kvm_common;

use std::io::Write;
use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::kvm::{
    CpuMode, HwBreakpoint, KvmEngine, LinuxBoot, PageTables, VcpuStart, VmBuilder, VmConfig,
};
use freeze::qemu::{AccelChoice, QemuConfig, QemuEngine};
use freeze::watchpoint::{WatchEngine, WatchLen, WriteWatch};
use vm_memory::{Bytes, GuestAddress};

const VCPU_COUNTS: [usize; 4] = [1, 2, 4, 8];
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
struct Stats {
    n: usize,
    median: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        n: samples.len(),
        median: at(0.5),
        p99: at(0.99),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(engine: &str, vcpus: usize, op: &str, s: Stats) {
    println!(
        "{engine:<5} {vcpus:>5}  {op:<44} {:>6} {:>12.1} {:>12.1}",
        s.n,
        us(s.median),
        us(s.p99)
    );
}

fn wait_running(ram: &freeze::GuestRam, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ram
        .read_obj::<u32>(GuestAddress(kvm_common::BSP_COUNTER))
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "{what}: the guest does not run");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn bench_kvm(kernel: &std::path::Path, vcpus: usize, iters: usize) -> (Stats, Stats) {
    let mut engine: KvmEngine = VmBuilder::new(VmConfig {
        vcpus,
        mem_bytes: 64 << 20,
        ..VmConfig::default()
    })
    .expect("create VM")
    .boot_linux(&LinuxBoot {
        kernel: kernel.to_owned(),
        ..Default::default()
    })
    .expect("boot the bench guest");
    assert!(engine.console().wait_for("ready", Duration::from_secs(60)));
    wait_running(&engine.guest_ram(), "kvm");
    let mut freezes = Vec::with_capacity(iters);
    let mut thaws = Vec::with_capacity(iters);
    for i in 0..iters + 20 {
        let t0 = Instant::now();
        let outcome = engine.freeze(FREEZE_TIMEOUT).expect("freeze");
        let t1 = Instant::now();
        assert!(outcome.all_parked(), "{}/{vcpus} parked", outcome.parked());
        engine.thaw().expect("thaw");
        let t2 = Instant::now();
        if i >= 20 {
            freezes.push(t1 - t0);
            thaws.push(t2 - t1);
        }
        // Let every vCPU get back into the guest before the next kick.
        std::thread::sleep(Duration::from_millis(1));
    }
    (stats(freezes), stats(thaws))
}

// The watch guest (long mode): every vCPU runs
//   l: inc qword [rbx] ; cmp qword [rsi], 0 ; je l ; mov qword [rsi], 0 ; jmp l
// with RSI its own flag; the host sets vCPU 0's flag, vCPU 0 clears it: the watched write.
const WATCH_CODE: u64 = 0x10_0000;
const WATCH_STORE: u64 = WATCH_CODE + 9;
const WATCH_FLAGS: u64 = 0x20_0000;
const WATCH_COUNTERS: u64 = 0x20_1000;
const WATCH_GUEST: [u8; 18] = [
    0x48, 0xff, 0x03, // l: inc qword [rbx]
    0x48, 0x83, 0x3e, 0x00, // cmp qword [rsi], 0
    0x74, 0xf7, // je l
    0x48, 0xc7, 0x06, 0x00, 0x00, 0x00, 0x00, // mov qword [rsi], 0
    0xeb, 0xee, // jmp l
];

/// Which breakpoint the watch bench uses.
#[derive(Clone, Copy)]
enum WatchKind {
    /// A write watch on vCPU 0's flag (`WatchEngine`).
    Write,
    /// An instruction breakpoint on the clearing store (hosts without data breakpoints).
    Instruction,
}

struct WatchStats {
    /// The hit's own figure: the writer's debug exit → every vCPU parked.
    hit: Stats,
    /// The host's view: flag set → `wait_*` returned with the guest frozen.
    host: Stats,
    /// The request-freeze path on the same guest.
    freeze: Stats,
}

fn bench_watch(vcpus: usize, iters: usize, kind: WatchKind) -> WatchStats {
    let builder = kvm_common::builder(vcpus);
    builder
        .guest_ram()
        .write_slice(&WATCH_GUEST, GuestAddress(WATCH_CODE))
        .expect("write the watch guest");
    let starts: Vec<_> = (0..vcpus)
        .map(|i| VcpuStart {
            mode: CpuMode::Long(PageTables::Identity4G),
            regs: freeze::CpuRegs {
                rip: WATCH_CODE,
                rbx: WATCH_COUNTERS + 64 * i as u64,
                rsi: WATCH_FLAGS + 64 * i as u64,
                rsp: 0x8000,
                rflags: 2,
                ..Default::default()
            },
        })
        .collect();
    let mut engine = builder.start(&starts).expect("start the watch guest");
    let ram = engine.guest_ram();
    let flag = GuestAddress(WATCH_FLAGS);
    match kind {
        WatchKind::Write => engine
            .arm_write_watch(WriteWatch::new(WATCH_FLAGS, WatchLen::B8).expect("aligned"))
            .expect("arm the write watch"),
        WatchKind::Instruction => engine
            .arm_breakpoint(HwBreakpoint::Execute(WATCH_STORE))
            .expect("arm the instruction breakpoint"),
    }
    let mut hits = Vec::with_capacity(iters);
    let mut host = Vec::with_capacity(iters);
    let mut freezes = Vec::with_capacity(iters);
    for i in 0..iters + 20 {
        // The previous write done (an instruction breakpoint stops before it: the writer
        // stores after the thaw), and every vCPU back in the guest.
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        while ram
            .load::<u64>(flag, std::sync::atomic::Ordering::SeqCst)
            .expect("read the flag")
            != 0
        {
            assert!(
                Instant::now() < deadline,
                "the writer did not clear its flag"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_millis(1));
        let t0 = Instant::now();
        ram.store(1u64, flag, std::sync::atomic::Ordering::SeqCst)
            .expect("set the flag");
        let (vcpu, outcome) = match kind {
            WatchKind::Write => {
                let hit = engine.wait_write(FREEZE_TIMEOUT).expect("wait_write");
                let hit = hit.expect("no write within the timeout");
                (hit.vcpu, hit.freeze)
            }
            WatchKind::Instruction => {
                let hit = engine.wait_breakpoint(FREEZE_TIMEOUT).expect("wait");
                let hit = hit.expect("no hit within the timeout");
                (Some(hit.vcpu), hit.freeze)
            }
        };
        let t1 = Instant::now();
        assert_eq!(vcpu, Some(0), "the writer");
        assert!(outcome.all_parked(), "{}/{vcpus} parked", outcome.parked());
        engine.thaw().expect("thaw");
        if i >= 20 {
            hits.push(outcome.elapsed);
            host.push(t1 - t0);
        }
    }
    for i in 0..iters + 20 {
        std::thread::sleep(Duration::from_millis(1));
        let t0 = Instant::now();
        let outcome = engine.freeze(FREEZE_TIMEOUT).expect("freeze");
        let t1 = Instant::now();
        assert!(outcome.all_parked(), "{}/{vcpus} parked", outcome.parked());
        engine.thaw().expect("thaw");
        if i >= 20 {
            freezes.push(t1 - t0);
        }
    }
    WatchStats {
        hit: stats(hits),
        host: stats(host),
        freeze: stats(freezes),
    }
}

struct QemuStats {
    accel: String,
    stop: Stats,
    cont: Stats,
    engine_freeze: Stats,
}

fn launch_qemu(
    kernel: &std::path::Path,
    vcpus: usize,
    accel: AccelChoice,
) -> Result<QemuEngine, String> {
    let mut cfg = QemuConfig::new(kernel, None, "");
    cfg.vcpus = vcpus as u32;
    cfg.memory_mib = 64;
    cfg.accel = accel;
    let engine = QemuEngine::launch(&cfg).map_err(|e| e.to_string())?;
    engine
        .console()
        .wait_contains(freeze::qemu::LineMark(0), Duration::from_secs(30), "ready")
        .map_err(|e| {
            format!(
                "no 'ready' from the guest: {e}; stderr: {}",
                engine.qemu_stderr_tail()
            )
        })?;
    Ok(engine)
}

fn bench_qemu(kernel: &std::path::Path, vcpus: usize, iters: usize) -> Result<QemuStats, String> {
    // The same accelerator choice as the QEMU engine would make for a real guest is made
    // by booting Linux; for this tiny guest, try KVM and fall back to TCG.
    let (mut engine, accel) = match launch_qemu(kernel, vcpus, AccelChoice::Kvm) {
        Ok(e) => (e, "kvm".to_string()),
        Err(kvm_err) => match launch_qemu(kernel, vcpus, AccelChoice::Tcg) {
            Ok(e) => {
                let why = kvm_err
                    .lines()
                    .find(|l| l.contains("error"))
                    .unwrap_or(&kvm_err)
                    .to_string();
                (e, format!("tcg; QEMU with KVM failed here: {why}"))
            }
            Err(e) => return Err(format!("QEMU could not run the guest: {e}")),
        },
    };
    wait_running(&engine.guest_ram(), "qemu");
    let mut stops = Vec::with_capacity(iters);
    let mut conts = Vec::with_capacity(iters);
    for i in 0..iters + 10 {
        let t0 = Instant::now();
        engine
            .qmp()
            .execute("stop", None)
            .map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        engine
            .qmp()
            .execute("cont", None)
            .map_err(|e| e.to_string())?;
        let t2 = Instant::now();
        if i >= 10 {
            stops.push(t1 - t0);
            conts.push(t2 - t1);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // What the QEMU engine's freeze does: `stop`, then `info registers -a` for the
    // registers (timed over QMP directly: the engine's parser expects 64-bit register
    // names and this guest's boot processor is in 32-bit mode).
    let mut freezes = Vec::new();
    for _ in 0..(iters / 5).max(10) {
        let t0 = Instant::now();
        engine
            .qmp()
            .execute("stop", None)
            .map_err(|e| e.to_string())?;
        let regs = engine
            .qmp()
            .execute(
                "human-monitor-command",
                Some(serde_json::json!({ "command-line": "info registers -a" })),
            )
            .map_err(|e| e.to_string())?;
        freezes.push(t0.elapsed());
        let cpus = regs.as_str().unwrap_or_default().matches("CPU#").count();
        if cpus != vcpus {
            return Err(format!("info registers listed {cpus}/{vcpus} vCPUs"));
        }
        engine
            .qmp()
            .execute("cont", None)
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(QemuStats {
        accel,
        stop: stats(stops),
        cont: stats(conts),
        engine_freeze: stats(freezes),
    })
}

/// kvmclock across `rounds` freezes of `pause` on the 2-vCPU bench guest, as figures (the
/// test `kvmclock_does_not_count_the_freeze` checks the rule): how far it advanced across
/// each freeze against the host time the guest ran around it, and the share of the frozen
/// time it counted (0% when the freeze is not counted at all).
fn kvmclock_across_freezes(kernel: &std::path::Path, rounds: usize, pause: Duration) {
    let mut engine: KvmEngine = VmBuilder::new(VmConfig {
        vcpus: 2,
        mem_bytes: 64 << 20,
        ..VmConfig::default()
    })
    .and_then(|b| {
        b.boot_linux(&LinuxBoot {
            kernel: kernel.to_owned(),
            ..Default::default()
        })
    })
    .expect("boot the bench guest");
    assert!(engine.console().wait_for("ready", Duration::from_secs(60)));
    wait_running(&engine.guest_ram(), "kvm");
    let (mut advance, mut outside, mut counted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = Instant::now();
        let Ok(c0) = engine.kvmclock_ns() else {
            println!("kvmclock: not measured (KVM_GET_CLOCK failed)");
            return;
        };
        engine.freeze(FREEZE_TIMEOUT).expect("freeze");
        let from = Instant::now();
        std::thread::sleep(pause);
        let until = Instant::now();
        engine.thaw().expect("thaw");
        let c1 = engine.kvmclock_ns().expect("KVM_GET_CLOCK");
        let after = Instant::now();
        let ran = (from - before) + (after - until);
        let adv = Duration::from_nanos(c1.saturating_sub(c0));
        counted.push((adv.as_secs_f64() - ran.as_secs_f64()) / (until - from).as_secs_f64());
        advance.push(adv);
        outside.push(ran);
        std::thread::sleep(Duration::from_millis(10));
    }
    counted.sort_by(f64::total_cmp);
    let (a, o) = (stats(advance), stats(outside));
    println!(
        "kvmclock across {rounds} freezes of {pause:?}: advanced median {:.1} µs (p99 {:.1}) while \
         the guest ran median {:.1} µs (p99 {:.1}) around the freeze; share of the frozen time \
         counted: median {:.2}%, max {:.2}% (≤ 0: none; the host time around it is an upper bound)",
        us(a.median),
        us(a.p99),
        us(o.median),
        us(o.p99),
        100.0 * counted[counted.len() / 2],
        100.0 * counted[counted.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run passes nothing and
    // should stay quick.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let iters: usize = std::env::var("KVM_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench_mode { 500 } else { 20 });
    if let Err(e) = freeze::kvm::probe() {
        println!("SKIP: no usable KVM on this host: {e}");
        return;
    }
    let mut kernel = tempfile::NamedTempFile::new().expect("temp file");
    kernel
        .write_all(&kvm_common::smp_pvh_guest())
        .expect("write the bench guest");
    let qemu_iters = (iters / 2).max(10);
    let watch_kind = match freeze::kvm::probe_write_watch() {
        Ok(()) => Some(WatchKind::Write),
        Err(e) => {
            println!("watch (write) not measured: {e}");
            match freeze::kvm::probe_instruction_breakpoint() {
                Ok(()) => {
                    println!(
                        "watch rows use an instruction breakpoint on the writing store instead \
                         (the same debug exit → park path)"
                    );
                    Some(WatchKind::Instruction)
                }
                Err(e) => {
                    println!("watch not measured at all: {e}");
                    None
                }
            }
        }
    };
    let watch_label = match watch_kind {
        Some(WatchKind::Write) | None => "watch: write → all parked (debug exit)",
        Some(WatchKind::Instruction) => "watch: instr. bp → all parked (no data bp)",
    };
    println!(
        "{:<5} {:>5}  {:<44} {:>6} {:>12} {:>12}",
        "eng", "vcpus", "operation", "n", "median µs", "p99 µs"
    );
    let mut summary = Vec::new();
    let mut watch_summary = Vec::new();
    for vcpus in VCPU_COUNTS {
        let (freeze, thaw) = bench_kvm(kernel.path(), vcpus, iters);
        row("kvm", vcpus, "freeze (kick → all parked + regs)", freeze);
        row("kvm", vcpus, "thaw (clock restore → all resumed)", thaw);
        if let Some(kind) = watch_kind {
            let w = bench_watch(vcpus, iters, kind);
            row("kvm", vcpus, watch_label, w.hit);
            row(
                "kvm",
                vcpus,
                "watch: flag set → wait returned frozen",
                w.host,
            );
            row("kvm", vcpus, "freeze on the watch guest", w.freeze);
            watch_summary.push((vcpus, freeze, w));
        }
        match bench_qemu(kernel.path(), vcpus, qemu_iters) {
            Ok(q) => {
                row("qemu", vcpus, "QMP stop round trip", q.stop);
                row("qemu", vcpus, "QMP cont round trip", q.cont);
                row(
                    "qemu",
                    vcpus,
                    "engine freeze (stop + info registers)",
                    q.engine_freeze,
                );
                summary.push((vcpus, freeze, q));
            }
            Err(e) => println!("qemu  {vcpus:>5}  not measured: {e}"),
        }
    }
    println!();
    kvmclock_across_freezes(
        kernel.path(),
        (iters / 10).max(10),
        Duration::from_millis(100),
    );
    println!();
    for (vcpus, kvm, q) in &summary {
        println!(
            "{vcpus} vCPUs: QMP stop median / KVM freeze median = {:.1}x; QEMU engine freeze / KVM freeze = {:.1}x (qemu accel: {})",
            us(q.stop.median) / us(kvm.median),
            us(q.engine_freeze.median) / us(kvm.median),
            q.accel
        );
    }
    for (vcpus, pvh_freeze, w) in &watch_summary {
        println!(
            "{vcpus} vCPUs: {watch_label} median / request-freeze median on the same guest = {:.2}x ({:.1} / {:.1} µs; / the PVH guest's freeze {:.2}x)",
            us(w.hit.median) / us(w.freeze.median),
            us(w.hit.median),
            us(w.freeze.median),
            us(w.hit.median) / us(pvh_freeze.median),
        );
    }
}
