//! Write watchpoints on the QEMU engine (gdbstub) with the real 7.3 lab kernel under
//! TCG: a watch on `jiffies_64` (written on every timer tick) stops the guest at the
//! store, every vCPU frozen; thaw continues; many cycles; a QMP freeze/thaw in between;
//! disarm. The symbol comes from guest-mem (kallsyms decoded from guest RAM).

mod qemu_common;

use std::collections::BTreeMap;
use std::time::Duration;

use freeze::Engine;
use freeze::qemu::LineMark;
use freeze::watchpoint::{WatchEngine, WatchHit, WatchLen, WriteWatch};
use guest_lab::RunSpec;
use guest_mem::{Kernel, Kva, KvaReadExt};
use qemu_common::{BOOT_TIMEOUT, Booted, boot_with};

const HIT_TIMEOUT: Duration = Duration::from_secs(30);
const CYCLES: usize = 50;

/// The kernel's text, `[_stext, _etext)`.
struct Text {
    start: u64,
    end: u64,
}

/// Checks one hit on `watch` and returns the value of `jiffies_64` read while frozen.
fn check_hit(
    g: &mut Booted,
    kernel: &Kernel,
    text: &Text,
    watch: WriteWatch,
    hit: &WatchHit,
) -> u64 {
    assert_eq!(hit.watch, watch);
    assert!(g.engine.is_frozen());
    assert!(hit.freeze.all_parked(), "{:?}", hit.freeze);
    assert_eq!(hit.freeze.vcpus.len(), 2);
    let vcpu = hit.vcpu.expect("the stub names the writing vCPU");
    let rip = hit.freeze.vcpus[vcpu].expect("parked").rip;
    // The writer stopped just past the store: the instruction that ends at RIP (at
    // least its last byte) lies in the kernel's text.
    assert!(
        rip > text.start && rip <= text.end,
        "vCPU {vcpu}: RIP {rip:#x} is not just past kernel text [{:#x}, {:#x})",
        text.start,
        text.end
    );
    // And it is the store: on this kernel every write of jiffies_64 is an instruction
    // addressing it RIP-relatively, whose displacement ends at RIP.
    let before = kernel.read_bytes(Kva(rip.wrapping_sub(8)), 8, 8);
    assert!(
        rip_relative_to(kernel, rip, watch.addr),
        "vCPU {vcpu}: the instruction ending at RIP {rip:#x} does not address {:#x} \
         (bytes before RIP: {before:02x?})",
        watch.addr
    );
    kernel
        .read_u64(Kva(watch.addr))
        .expect("jiffies_64 readable while frozen")
}

/// Waits for the next hit on `watch` (`what` names it in messages) and checks it
/// ([`check_hit`]); returns the hit and `jiffies_64` read while frozen.
fn next_hit(
    g: &mut Booted,
    kernel: &Kernel,
    text: &Text,
    watch: WriteWatch,
    what: &str,
) -> (WatchHit, u64) {
    let hit = g
        .engine
        .wait_write(HIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: wait: {e}"))
        .unwrap_or_else(|| panic!("{what}: no hit within {HIT_TIMEOUT:?}"));
    let jiffies = check_hit(g, kernel, text, watch, &hit);
    (hit, jiffies)
}

/// Whether the instruction ending at `rip` addresses `target` RIP-relatively (its last
/// four bytes are the displacement: `mov %reg, sym(%rip)`, `add %reg, sym(%rip)`).
fn rip_relative_to(kernel: &Kernel, rip: u64, target: u64) -> bool {
    kernel
        .read_u32(Kva(rip.wrapping_sub(4)))
        .map(|d| rip.wrapping_add(i64::from(d as i32) as u64) == target)
        .unwrap_or(false)
}

#[test]
fn guest_write_watch_on_jiffies_64_freezes_at_the_store() {
    let spec = RunSpec::new().workload("ktstr_spin 1 600");
    let Some(mut g) = boot_with(&spec, 2, 512, |cfg| cfg.gdbstub = true) else {
        return;
    };
    assert!(g.engine.has_gdbstub());
    let (_, _) = g.phase(LineMark::START, "workload-start", BOOT_TIMEOUT);

    // Freeze/thaw through QMP with the stub attached (and the symbols meanwhile).
    let kernel = g.kernel_view_frozen(|g| assert_eq!(g.engine.run_state().unwrap(), "paused"));
    let addr = kernel.require_symbol("jiffies_64").unwrap().0;
    let text = Text {
        start: kernel.require_symbol("_stext").unwrap().0,
        end: kernel.require_symbol("_etext").unwrap().0,
    };
    eprintln!(
        "jiffies_64 at {addr:#x}, text [{:#x}, {:#x})",
        text.start, text.end
    );
    let watch = WriteWatch::new(addr, WatchLen::B8).expect("jiffies_64 is 8-aligned");

    // Nothing armed: waiting is an error, not a silent timeout.
    assert!(g.engine.wait_write(Duration::from_millis(10)).is_err());

    // Armed on a running guest: the next tick's store stops it there.
    let t = std::time::Instant::now();
    g.engine.arm_write_watch(watch).expect("arm");
    eprintln!(
        "armed a running guest (interrupt, Z2, continue) in {:?}",
        t.elapsed()
    );
    assert!(!g.engine.is_frozen());
    let (hit, first) = next_hit(&mut g, &kernel, &text, watch, "a tick writes jiffies_64");
    assert_eq!(g.engine.run_state().unwrap(), "debug");
    let timing = g.engine.last_hit_timing().expect("hit timing");
    eprintln!(
        "first hit: vCPU {:?} RIP {:#x}, jiffies_64 {first}; registers read in {:?}",
        hit.vcpu,
        hit.freeze.vcpus[hit.vcpu.unwrap()].unwrap().rip,
        timing.capture
    );
    // Frozen means frozen: the tick does not advance.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        kernel.read_u64(Kva(addr)).unwrap(),
        first,
        "jiffies_64 moved while frozen"
    );
    // Waiting on a frozen guest is an error.
    assert!(g.engine.wait_write(Duration::from_millis(10)).is_err());

    // Thaw continues past the store; every later tick stops it again.
    let mut last = first;
    let mut by_vcpu: BTreeMap<usize, usize> = BTreeMap::new();
    for cycle in 0..CYCLES {
        g.engine
            .thaw()
            .unwrap_or_else(|e| panic!("cycle {cycle}: thaw: {e}"));
        assert!(!g.engine.is_frozen());
        let (hit, now) = next_hit(&mut g, &kernel, &text, watch, &format!("cycle {cycle}"));
        assert!(
            now >= last,
            "cycle {cycle}: jiffies_64 went back {last} -> {now}"
        );
        last = now;
        *by_vcpu.entry(hit.vcpu.unwrap()).or_default() += 1;
    }
    assert!(
        last > first,
        "jiffies_64 did not advance over {CYCLES} ticks"
    );
    eprintln!("{CYCLES} cycles: jiffies_64 {first} -> {last}; hits per vCPU {by_vcpu:?}");

    // A QMP freeze/thaw while armed. A tick's store may win the race with the QMP
    // stop: then the freeze is the hit, and wait_write (still frozen) returns it.
    g.engine.thaw().expect("thaw");
    let f = g
        .engine
        .freeze(Duration::from_secs(10))
        .expect("QMP freeze while armed");
    assert!(f.all_parked(), "{f:?}");
    assert!(g.engine.is_frozen());
    let state = g.engine.run_state().unwrap();
    match state.as_str() {
        "paused" => assert!(
            g.engine.wait_write(Duration::from_millis(10)).is_err(),
            "a plain freeze has no hit to report"
        ),
        "debug" => {
            let raced = g
                .engine
                .wait_write(Duration::ZERO)
                .unwrap()
                .expect("the raced hit");
            check_hit(&mut g, &kernel, &text, watch, &raced);
            eprintln!("the QMP stop found the guest stopped at a store");
        }
        other => panic!("run state {other} after a freeze"),
    }
    let frozen_at = kernel.read_u64(Kva(addr)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(kernel.read_u64(Kva(addr)).unwrap(), frozen_at);
    g.engine.thaw().expect("thaw after the QMP freeze");
    next_hit(&mut g, &kernel, &text, watch, "after a QMP freeze/thaw");

    // A vmcore dump of the running, armed guest (QEMU pauses it for the dump and
    // resumes it): no stray stop on the stub, the watch still fires.
    g.engine.thaw().unwrap();
    let core = tempfile::NamedTempFile::new().unwrap();
    // Usually "running"; "debug" when a tick's store came first (then the dump finds
    // the guest stopped and the hit below is that store).
    let before_dump = g.engine.run_state().unwrap();
    g.engine
        .dump_vmcore(core.path())
        .expect("vmcore while armed");
    eprintln!("dumped a vmcore of the armed guest (run state before: {before_dump})");
    assert!(!g.engine.is_frozen());
    next_hit(&mut g, &kernel, &text, watch, "after a dump");
    drop(core);

    // Re-arming the same watch on a frozen guest, then disarming a running one.
    g.engine
        .arm_write_watch(watch)
        .expect("re-arm while frozen");
    g.engine.thaw().unwrap();
    g.engine
        .wait_write(HIT_TIMEOUT)
        .unwrap()
        .expect("re-armed watch fires");
    g.engine.thaw().unwrap();
    g.engine.disarm_write_watch().expect("disarm while running");
    assert!(!g.engine.is_frozen());
    let before = kernel.read_u64(Kva(addr)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // Ticks went on writing jiffies_64 and nothing stopped the guest.
    assert_eq!(g.engine.run_state().unwrap(), "running");
    assert!(!g.engine.is_frozen());
    let after = kernel.read_u64(Kva(addr)).unwrap();
    assert!(
        after > before,
        "jiffies_64 {before} -> {after} over 1 s after disarm"
    );
    assert!(
        g.engine.wait_write(Duration::from_millis(10)).is_err(),
        "nothing armed after disarm"
    );
    // Disarming twice is harmless; freeze/thaw still work.
    g.engine.disarm_write_watch().unwrap();
    let f = g.engine.freeze(Duration::from_secs(10)).unwrap();
    assert!(f.all_parked());
    g.engine.thaw().unwrap();
    assert_eq!(g.engine.run_state().unwrap(), "running");
}
