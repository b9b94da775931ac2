//! Freeze and thaw latency of the native KVM engine for 1, 2, 4 and 8 vCPUs (median and
//! p99), against the QEMU engine on the same machine in the same run: raw QMP `stop`/`cont`
//! round trips and the QEMU engine's full freeze (`stop` + `info registers -a`).
//!
//! Both engines run the same guest: a PVH ELF whose boot processor starts the others with
//! INIT/SIPI; every vCPU then spins. `cargo bench -p freeze --bench kvm_freeze`
//! (`KVM_BENCH_ITERS` overrides the iteration count, default 500).

#[path = "../tests/kvm_common/mod.rs"]
mod kvm_common;

use std::io::Write;
use std::time::{Duration, Instant};

use freeze::Engine;
use freeze::kvm::{KvmEngine, LinuxBoot, VmBuilder, VmConfig};
use freeze::qemu::{AccelChoice, QemuConfig, QemuEngine};
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
        "{engine:<5} {vcpus:>5}  {op:<38} {:>6} {:>12.1} {:>12.1}",
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
    println!(
        "{:<5} {:>5}  {:<38} {:>6} {:>12} {:>12}",
        "eng", "vcpus", "operation", "n", "median µs", "p99 µs"
    );
    let mut summary = Vec::new();
    for vcpus in VCPU_COUNTS {
        let (freeze, thaw) = bench_kvm(kernel.path(), vcpus, iters);
        row("kvm", vcpus, "freeze (kick → all parked + regs)", freeze);
        row("kvm", vcpus, "thaw (clock restore → all resumed)", thaw);
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
    for (vcpus, kvm, q) in &summary {
        println!(
            "{vcpus} vCPUs: QMP stop median / KVM freeze median = {:.1}x; QEMU engine freeze / KVM freeze = {:.1}x (qemu accel: {})",
            us(q.stop.median) / us(kvm.median),
            us(q.engine_freeze.median) / us(kvm.median),
            q.accel
        );
    }
}
