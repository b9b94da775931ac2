//! Hardware breakpoints on the native KVM engine, with tiny guests: a write watchpoint
//! (`WatchEngine`) freezes every vCPU at the write, the writer reported with its RIP just
//! past the writing instruction; the same machinery with an instruction breakpoint.
//!
//! Every vCPU runs its own copy of one loop: count in its counter, and every `period`
//! iterations store the counter (1, 2, 4 or 8 bytes) at the address its config block names
//! (the watched address, a neighbour, or its own scratch). The host changes a vCPU's target
//! while it runs by writing its config block.
//!
//! Write-watch tests run where the host's KVM delivers data breakpoints
//! (`freeze::kvm::probe_write_watch`) and SKIP elsewhere with the probe's reason (on
//! `kvm_pvm`, the guest runs in KVM's instruction emulator, which checks instruction
//! breakpoints only). Instruction-breakpoint tests exercise the same debug-exit → park →
//! hit → thaw path and run wherever instruction breakpoints work (they do on `kvm_pvm`).

mod kvm_common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use freeze::kvm::{CpuMode, HwBreakpoint, KvmEngine, PageTables, VcpuStart};
use freeze::watchpoint::{WatchEngine, WatchLen, WriteWatch};
use freeze::{CpuRegs, Engine, FreezeOutcome};
use kvm_common::*;
use vm_memory::{Bytes, GuestAddress};

const HIT_TIMEOUT: Duration = Duration::from_secs(20);
const LONG_LENS: [WatchLen; 4] = [WatchLen::B1, WatchLen::B2, WatchLen::B4, WatchLen::B8];
const REAL_LENS: [WatchLen; 3] = [WatchLen::B1, WatchLen::B2, WatchLen::B4];
/// The guest most scenarios run: long mode, 8-byte stores.
const LONG_B8: Guest = Guest {
    mode: Mode::Long,
    len: WatchLen::B8,
};

/// The guest's layout and code for one mode and store width.
#[derive(Clone, Copy)]
struct Guest {
    mode: Mode,
    len: WatchLen,
}

/// The loop's code and where its store is.
struct Code {
    bytes: Vec<u8>,
    /// Offset of the store instruction.
    store: u64,
    /// Offset just past it.
    after_store: u64,
}

impl Guest {
    fn new(mode: Mode, len: WatchLen) -> Self {
        Guest { mode, len }
    }

    fn base(&self) -> u64 {
        match self.mode {
            Mode::Real => 0x1000,
            Mode::Long => 0x10_0000,
        }
    }

    fn data(&self) -> u64 {
        match self.mode {
            Mode::Real => 0x3000,
            Mode::Long => 0x20_0000,
        }
    }

    fn code_addr(&self, vcpu: usize) -> u64 {
        self.base() + 0x100 * vcpu as u64
    }

    fn counter_addr(&self, vcpu: usize) -> u64 {
        self.data() + 64 * vcpu as u64
    }

    /// Its config block: the period (u64), then the store target (u64).
    fn config_addr(&self, vcpu: usize) -> u64 {
        self.data() + 0x1000 + 64 * vcpu as u64
    }

    /// The watched address (with room for neighbours on both sides).
    fn watched(&self) -> u64 {
        self.data() + 0x2000 + 0x40
    }

    fn scratch(&self, vcpu: usize) -> u64 {
        self.data() + 0x2400 + 64 * vcpu as u64
    }

    fn code(&self) -> Code {
        let (mut bytes, store): (Vec<u8>, &[u8]) = match self.mode {
            Mode::Long => (
                vec![
                    0xee, // out dx, al
                    0x48, 0xff, 0x03, // l: inc qword [rbx]
                    0x48, 0xff, 0xc9, // dec rcx
                    0x75, 0xf8, // jnz l
                    0x48, 0x8b, 0x0f, // mov rcx, [rdi]      (period)
                    0x48, 0x8b, 0x77, 0x08, // mov rsi, [rdi+8]   (target)
                    0x48, 0x8b, 0x03, // mov rax, [rbx]      (counter)
                ],
                match self.len {
                    WatchLen::B1 => &[0x88, 0x06],       // mov [rsi], al
                    WatchLen::B2 => &[0x66, 0x89, 0x06], // mov [rsi], ax
                    WatchLen::B4 => &[0x89, 0x06],       // mov [rsi], eax
                    WatchLen::B8 => &[0x48, 0x89, 0x06], // mov [rsi], rax
                },
            ),
            Mode::Real => (
                vec![
                    0xee, // out dx, al
                    0x66, 0xff, 0x07, // l: inc dword [bx]
                    0x66, 0x49, // dec ecx
                    0x75, 0xf9, // jnz l
                    0x66, 0x8b, 0x0d, // mov ecx, [di]
                    0x66, 0x8b, 0x75, 0x08, // mov esi, [di+8]
                    0x66, 0x8b, 0x07, // mov eax, [bx]
                ],
                match self.len {
                    WatchLen::B1 => &[0x88, 0x04],       // mov [si], al
                    WatchLen::B2 => &[0x89, 0x04],       // mov [si], ax
                    WatchLen::B4 => &[0x66, 0x89, 0x04], // mov [si], eax
                    WatchLen::B8 => panic!("no 8-byte store in real mode"),
                },
            ),
        };
        let store_at = bytes.len() as u64;
        bytes.extend_from_slice(store);
        let after_store = bytes.len() as u64;
        // jmp l (offset 1)
        let rel = 1 - (bytes.len() as i64 + 2);
        bytes.extend_from_slice(&[0xeb, rel as i8 as u8]);
        Code {
            bytes,
            store: store_at,
            after_store,
        }
    }

    fn store_rip(&self, vcpu: usize) -> u64 {
        self.code_addr(vcpu) + self.code().store
    }

    fn after_store_rip(&self, vcpu: usize) -> u64 {
        self.code_addr(vcpu) + self.code().after_store
    }

    fn loop_range(&self, vcpu: usize) -> std::ops::Range<u64> {
        self.code_addr(vcpu) + 1..self.code_addr(vcpu) + self.code().bytes.len() as u64
    }

    /// Starts one vCPU per `(period, target)`.
    fn start(&self, plan: &[(u64, u64)]) -> KvmEngine {
        let b = builder(plan.len());
        let ram = b.guest_ram();
        let code = self.code();
        for (i, &(period, target)) in plan.iter().enumerate() {
            ram.write_slice(&code.bytes, GuestAddress(self.code_addr(i)))
                .unwrap();
            ram.write_obj(period, GuestAddress(self.config_addr(i)))
                .unwrap();
            ram.write_obj(target, GuestAddress(self.config_addr(i) + 8))
                .unwrap();
        }
        let starts: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(i, &(period, _))| VcpuStart {
                mode: match self.mode {
                    Mode::Real => CpuMode::Real { cs_selector: 0 },
                    Mode::Long => CpuMode::Long(PageTables::Identity4G),
                },
                regs: CpuRegs {
                    rip: self.code_addr(i),
                    rbx: self.counter_addr(i),
                    rdi: self.config_addr(i),
                    rcx: period,
                    rdx: u64::from(IDLE_PORT),
                    rsp: 0x8000,
                    rflags: 2,
                    ..Default::default()
                },
            })
            .collect();
        b.start(&starts).expect("start vCPUs")
    }

    /// Points vCPU `vcpu`'s stores at `target` (an atomic store: the guest reads it live).
    fn set_target(&self, engine: &KvmEngine, vcpu: usize, target: u64) {
        engine
            .guest_ram()
            .store(
                target,
                GuestAddress(self.config_addr(vcpu) + 8),
                Ordering::SeqCst,
            )
            .unwrap();
    }

    fn counter(&self, engine: &KvmEngine, vcpu: usize) -> u64 {
        let ram = engine.guest_ram();
        let at = GuestAddress(self.counter_addr(vcpu));
        match self.mode {
            Mode::Real => u64::from(ram.read_obj::<u32>(at).unwrap()),
            Mode::Long => ram.read_obj::<u64>(at).unwrap(),
        }
    }

    fn counters(&self, engine: &KvmEngine) -> Vec<u64> {
        (0..engine.vcpu_count())
            .map(|i| self.counter(engine, i))
            .collect()
    }

    /// The `len` bytes at `addr`, as a number.
    fn read(&self, engine: &KvmEngine, addr: u64) -> u64 {
        let mut buf = [0u8; 8];
        let n = self.len.bytes() as usize;
        engine
            .guest_ram()
            .read_slice(&mut buf[..n], GuestAddress(addr))
            .unwrap();
        u64::from_le_bytes(buf)
    }

    /// `value` as the guest stores it (its low `len` bytes).
    fn truncate(&self, value: u64) -> u64 {
        match self.len {
            WatchLen::B8 => value,
            len => value & ((1u64 << (8 * len.bytes())) - 1),
        }
    }

    fn watch(&self) -> WriteWatch {
        WriteWatch::new(self.watched(), self.len).expect("aligned")
    }
}

/// What the tests arm.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A write watch on the watched address.
    Write,
    /// An instruction breakpoint on the writer's store: it stops before the store.
    AtStore { writer: usize },
    /// An instruction breakpoint just past the writer's store: the state a write watch
    /// stops in (which checks the write tests' guest and expectations on hosts without
    /// data breakpoints).
    AfterStore { writer: usize },
}

impl Kind {
    fn breakpoint(self, guest: &Guest) -> HwBreakpoint {
        match self {
            Kind::Write => HwBreakpoint::Write(guest.watch()),
            Kind::AtStore { writer } => HwBreakpoint::Execute(guest.store_rip(writer)),
            Kind::AfterStore { writer } => HwBreakpoint::Execute(guest.after_store_rip(writer)),
        }
    }

    /// Where the writer stops.
    fn rip(self, guest: &Guest, writer: usize) -> u64 {
        match self {
            Kind::Write | Kind::AfterStore { .. } => guest.after_store_rip(writer),
            Kind::AtStore { .. } => guest.store_rip(writer),
        }
    }
}

fn arm(engine: &mut KvmEngine, guest: &Guest, kind: Kind) {
    match kind {
        Kind::Write => engine
            .arm_write_watch(guest.watch())
            .expect("arm write watch"),
        _ => engine
            .arm_breakpoint(kind.breakpoint(guest))
            .expect("arm instruction breakpoint"),
    }
}

/// Waits for a hit; returns the vCPU that took it and the freeze.
fn wait_hit(
    engine: &mut KvmEngine,
    guest: &Guest,
    kind: Kind,
    timeout: Duration,
) -> Option<(usize, FreezeOutcome)> {
    match kind {
        Kind::Write => {
            let hit = engine.wait_write(timeout).expect("wait_write")?;
            assert_eq!(hit.watch, guest.watch(), "the watch that fired");
            Some((hit.vcpu.expect("the writer is known"), hit.freeze))
        }
        _ => {
            let hit = engine.wait_breakpoint(timeout).expect("wait_breakpoint")?;
            assert_eq!(hit.breakpoint, kind.breakpoint(guest));
            Some((hit.vcpu, hit.freeze))
        }
    }
}

impl Kind {
    /// Whether this host's KVM stops a guest for this kind; when not, a SKIP line.
    fn supported_or_skip(self) -> bool {
        match self {
            Kind::Write => match freeze::kvm::probe_write_watch() {
                Ok(()) => true,
                Err(e) => {
                    guest_lab::testing::skip_kvm_without_data_breakpoints(&e.to_string());
                    false
                }
            },
            Kind::AtStore { .. } | Kind::AfterStore { .. } => {
                match freeze::kvm::probe_instruction_breakpoint() {
                    Ok(()) => true,
                    Err(e) => {
                        guest_lab::testing::skip(format!(
                            "this host's KVM does not stop a guest at a breakpoint: {e}"
                        ));
                        false
                    }
                }
            }
        }
    }
}

/// Runs `scenario` once for each of `kinds` this host's KVM supports (the others left
/// out with a SKIP line).
fn with_kinds(kinds: &[Kind], scenario: impl Fn(Kind)) {
    if !kvm_or_skip() {
        return;
    }
    for &kind in kinds {
        if kind.supported_or_skip() {
            scenario(kind);
        }
    }
}

/// A write watch, and an instruction breakpoint on the store of vCPU `writer` (the
/// scenario's writer): the same debug-exit → park → hit → thaw path.
fn write_and_store(writer: usize) -> [Kind; 2] {
    [Kind::Write, Kind::AtStore { writer }]
}

/// Checks a hit: the guest is frozen at the writer's store (RIP just past it for a write,
/// at it for an instruction breakpoint, and memory to match), every vCPU parked in its
/// loop, and no counter moves while frozen.
fn check_hit(
    engine: &KvmEngine,
    guest: &Guest,
    kind: Kind,
    writer: usize,
    period: u64,
    hit: &(usize, FreezeOutcome),
    what: &str,
) {
    let (vcpu, freeze) = hit;
    assert!(engine.is_frozen(), "{what}: not frozen after the hit");
    assert_eq!(*vcpu, writer, "{what}: the vCPU that hit");
    assert!(
        freeze.all_parked(),
        "{what}: {}/{} parked",
        freeze.parked(),
        freeze.vcpus.len()
    );
    let regs: Vec<CpuRegs> = freeze.vcpus.iter().map(|r| r.unwrap()).collect();
    let counter = guest.counter(engine, writer);
    assert_eq!(
        regs[writer].rip,
        kind.rip(guest, writer),
        "{what}: writer RIP (its store is at {:#x})",
        guest.store_rip(writer)
    );
    let (watched, want) = (
        guest.read(engine, guest.watched()),
        match kind {
            // The value just stored.
            Kind::Write | Kind::AfterStore { .. } => guest.truncate(counter),
            // Not stored yet: the value from the previous store, a period ago.
            Kind::AtStore { .. } => guest.truncate(counter - period),
        },
    );
    assert_eq!(
        watched, want,
        "{what}: the watched bytes (counter {counter})"
    );
    for (i, r) in regs.iter().enumerate() {
        assert!(
            guest.loop_range(i).contains(&r.rip),
            "{what}: vCPU {i} RIP {:#x} outside its loop {:x?}",
            r.rip,
            guest.loop_range(i)
        );
        assert_eq!(r.rbx, guest.counter_addr(i), "{what}: vCPU {i} RBX");
    }
    let frozen = guest.counters(engine);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        guest.counters(engine),
        frozen,
        "{what}: counters moved while frozen"
    );
}

/// The writer is the last vCPU; the others store to their own scratch.
fn plan(guest: &Guest, vcpus: usize, period: u64) -> Vec<(u64, u64)> {
    (0..vcpus)
        .map(|i| {
            let target = if i == vcpus - 1 {
                guest.watched()
            } else {
                guest.scratch(i)
            };
            (period, target)
        })
        .collect()
}

/// Armed once: every round hits (the breakpoint stays armed across thaws) by the writer,
/// frozen at its store. Disarmed at the end: every vCPU runs on.
fn freezes_at_the_writer(guest: Guest, kind: Kind, vcpus: usize, rounds: usize) {
    const PERIOD: u64 = 50;
    let writer = vcpus - 1;
    let mut engine = guest.start(&plan(&guest, vcpus, PERIOD));
    let all: Vec<usize> = (0..vcpus).collect();
    let layout = Layout {
        mode: guest.mode,
        code: guest.base(),
        counters: guest.data(),
    };
    wait_counters_above(&engine, &layout, &all, &vec![0; vcpus]);
    arm(&mut engine, &guest, kind);
    for round in 0..rounds {
        let what = format!("{:?} {kind:?} {:?} round {round}", guest.mode, guest.len);
        let hit = wait_hit(&mut engine, &guest, kind, HIT_TIMEOUT)
            .unwrap_or_else(|| panic!("{what}: no hit within {HIT_TIMEOUT:?}"));
        check_hit(&engine, &guest, kind, writer, PERIOD, &hit, &what);
        // The writer hits again within PERIOD iterations: the guest may be frozen again
        // (by a hit nobody has collected yet) by the time thaw returns.
        engine.thaw().expect("thaw");
    }
    // Disarmed (maybe frozen at a further hit: disarming works there too), then thawed:
    // every vCPU runs.
    engine.disarm_breakpoint().expect("disarm");
    engine.thaw().expect("thaw");
    let frozen = guest.counters(&engine);
    wait_counters_above(&engine, &layout, &all, &frozen);
    assert!(!engine.is_frozen());
    assert_eq!(engine.exit_status(), None);
}

/// Writes next to the watched bytes (on both sides, every iteration) do not fire; the
/// watch is live all along (a write to it fires at once afterwards).
fn neighbours_do_not_fire(guest: Guest) {
    let len = guest.len.bytes();
    let below = guest.watched() - len;
    let above = guest.watched() + len;
    let mut engine = guest.start(&[(1, below), (1, above)]);
    arm(&mut engine, &guest, Kind::Write);
    let before = (guest.read(&engine, below), guest.read(&engine, above));
    let hit = engine
        .wait_write(Duration::from_millis(300))
        .expect("wait_write");
    assert!(
        hit.is_none(),
        "{:?}: a write next to the watch fired: {hit:?}",
        guest.len
    );
    let after = (guest.read(&engine, below), guest.read(&engine, above));
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "{:?}: the neighbours were not written meanwhile ({before:?} → {after:?})",
        guest.len
    );
    guest.set_target(&engine, 1, guest.watched());
    let hit = engine.wait_write(HIT_TIMEOUT).expect("wait_write");
    let hit = hit.unwrap_or_else(|| panic!("{:?}: the watch did not fire", guest.len));
    assert_eq!(hit.vcpu, Some(1));
    assert_eq!(
        hit.freeze.vcpus[1].unwrap().rip,
        guest.after_store_rip(1),
        "{:?}",
        guest.len
    );
    engine.thaw().unwrap();
}

/// 1,000 times: arm, hit (by the right vCPU, at the right RIP), continue.
fn thousand_cycles(guest: Guest, kind: Kind) {
    const CYCLES: usize = 1000;
    const PERIOD: u64 = 3;
    let vcpus = 3;
    let writer = vcpus - 1;
    let mut engine = guest.start(&plan(&guest, vcpus, PERIOD));
    let mut worst = Duration::ZERO;
    let mut total = Duration::ZERO;
    for cycle in 0..CYCLES {
        arm(&mut engine, &guest, kind);
        let (vcpu, freeze) = wait_hit(&mut engine, &guest, kind, HIT_TIMEOUT)
            .unwrap_or_else(|| panic!("cycle {cycle}: no hit"));
        assert_eq!(vcpu, writer, "cycle {cycle}: the vCPU that hit");
        assert!(
            freeze.all_parked(),
            "cycle {cycle}: {}/{vcpus} parked",
            freeze.parked()
        );
        let rip = freeze.vcpus[writer].unwrap().rip;
        assert_eq!(rip, kind.rip(&guest, writer), "cycle {cycle}: writer RIP");
        worst = worst.max(freeze.elapsed);
        total += freeze.elapsed;
        engine.thaw().expect("thaw");
    }
    assert_eq!(engine.exit_status(), None);
    eprintln!(
        "{CYCLES} {kind:?} cycles with {vcpus} vCPUs: hit → all parked mean {:?}, worst {worst:?}",
        total / CYCLES as u32
    );
}

/// After disarming, the writer keeps storing and nothing stops the guest; a wait is an
/// error (nothing armed); re-arming elsewhere does not bring the old address back.
fn disarm_stops_hits(guest: Guest, kind: Kind) {
    const PERIOD: u64 = 2;
    let vcpus = 2;
    let writer = vcpus - 1;
    let mut engine = guest.start(&plan(&guest, vcpus, PERIOD));
    arm(&mut engine, &guest, kind);
    let hit = wait_hit(&mut engine, &guest, kind, HIT_TIMEOUT).expect("a hit while armed");
    assert_eq!(hit.0, writer);
    engine.disarm_write_watch().expect("disarm");
    assert_eq!(engine.armed_breakpoint(), None);
    engine.thaw().unwrap();

    let watched_before = guest.read(&engine, guest.watched());
    let counters = guest.counters(&engine);
    let deadline = Instant::now() + HIT_TIMEOUT;
    while guest.read(&engine, guest.watched()) == watched_before
        || guest.counter(&engine, writer) <= counters[writer] + 10 * PERIOD
    {
        assert!(
            Instant::now() < deadline,
            "the writer stopped storing after disarm"
        );
        assert!(!engine.is_frozen(), "a hit after disarm");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!engine.is_frozen(), "a hit after disarm");
    assert_eq!(engine.exit_status(), None, "the guest ran on");
    assert!(engine.wait_breakpoint(Duration::from_millis(10)).is_err());
    assert!(engine.wait_write(Duration::from_millis(10)).is_err());

    // Re-armed on the other vCPU's copy (or a scratch address nobody stores to).
    let elsewhere = match kind {
        Kind::Write => HwBreakpoint::Write(WriteWatch::new(guest.scratch(7), guest.len).unwrap()),
        _ => HwBreakpoint::Execute(guest.code_addr(7)),
    };
    engine.arm_breakpoint(elsewhere).unwrap();
    let hit = engine
        .wait_breakpoint(Duration::from_millis(300))
        .expect("wait");
    assert!(hit.is_none(), "the old breakpoint still fired: {hit:?}");
    assert_eq!(engine.exit_status(), None);
}

/// Freeze and thaw still work while armed; arming while frozen works; a hit nobody waited
/// for keeps the guest frozen (is_frozen) and a freeze takes it over.
fn freeze_thaw_while_armed(guest: Guest, kind: Kind) {
    const PERIOD: u64 = 20;
    let vcpus = 2;
    let writer = vcpus - 1;
    let layout = Layout {
        mode: guest.mode,
        code: guest.base(),
        counters: guest.data(),
    };
    let all: Vec<usize> = (0..vcpus).collect();
    // A write watch is armed from the start, and the writer stores to its scratch: no hit
    // yet. (An instruction breakpoint on the store would fire at once: it is armed later.)
    let mut plan = plan(&guest, vcpus, PERIOD);
    if kind == Kind::Write {
        plan[writer].1 = guest.scratch(writer);
    }
    let mut engine = guest.start(&plan);
    wait_counters_above(&engine, &layout, &all, &[0; 2]);
    if kind == Kind::Write {
        arm(&mut engine, &guest, kind);
    }
    for round in 0..3 {
        let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
        assert!(outcome.all_parked(), "round {round}");
        let frozen = guest.counters(&engine);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(guest.counters(&engine), frozen, "round {round}: moved");
        engine.thaw().expect("thaw");
        wait_counters_above(&engine, &layout, &all, &frozen);
    }
    // Armed while frozen; loaded by the parked vCPUs.
    let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
    assert!(outcome.all_parked());
    arm(&mut engine, &guest, kind);
    guest.set_target(&engine, writer, guest.watched());
    engine.thaw().unwrap();
    let check = |engine: &KvmEngine, hit: &(usize, FreezeOutcome), what: &str| {
        check_hit(engine, &guest, kind, writer, PERIOD, hit, what)
    };
    let hit = wait_hit(&mut engine, &guest, kind, HIT_TIMEOUT).expect("hit after arming frozen");
    check(&engine, &hit, "armed while frozen");
    assert!(
        engine.freeze(Duration::from_secs(1)).is_err(),
        "freeze while frozen at a hit"
    );
    assert!(
        engine.wait_breakpoint(Duration::ZERO).is_err(),
        "wait while frozen"
    );
    engine.thaw().unwrap();

    // A hit nobody waits for: the guest stays frozen at it; a freeze takes it over.
    let deadline = Instant::now() + HIT_TIMEOUT;
    while !engine.is_frozen() {
        assert!(Instant::now() < deadline, "no hit without a waiter");
        std::thread::sleep(Duration::from_millis(1));
    }
    let frozen = guest.counters(&engine);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        guest.counters(&engine),
        frozen,
        "moved while frozen at a hit"
    );
    let outcome = engine
        .freeze(Duration::from_secs(5))
        .expect("freeze at a hit");
    check(&engine, &(writer, outcome), "freeze at a hit");
    engine.thaw().unwrap();
    // And a pending hit is collected by a later wait even though it came first.
    while !engine.is_frozen() {
        assert!(Instant::now() < deadline, "no second hit without a waiter");
        std::thread::sleep(Duration::from_millis(1));
    }
    let hit = wait_hit(&mut engine, &guest, kind, Duration::ZERO).expect("the pending hit");
    check(&engine, &hit, "pending hit");
    engine.thaw().unwrap();
    assert_eq!(engine.exit_status(), None);
}

// ---- Each scenario with a write watch (WatchEngine) and an instruction breakpoint ----

#[test]
fn freezes_at_the_writer_long_mode() {
    with_kinds(&write_and_store(2), |kind| {
        freezes_at_the_writer(LONG_B8, kind, 3, 5)
    });
}

#[test]
fn freezes_at_the_writer_real_mode() {
    with_kinds(&write_and_store(1), |kind| {
        freezes_at_the_writer(Guest::new(Mode::Real, WatchLen::B4), kind, 2, 5)
    });
}

/// Every store width; the instruction breakpoint just past the store, the state a write
/// watch stops in (the write tests' guest and expectations on hosts without data
/// breakpoints).
#[test]
fn freezes_at_the_writer_of_each_store_width() {
    with_kinds(&[Kind::Write, Kind::AfterStore { writer: 1 }], |kind| {
        for len in LONG_LENS {
            freezes_at_the_writer(Guest::new(Mode::Long, len), kind, 2, 3);
        }
        for len in REAL_LENS {
            freezes_at_the_writer(Guest::new(Mode::Real, len), kind, 2, 3);
        }
    });
}

#[test]
fn writes_next_to_the_watch_do_not_fire() {
    with_kinds(&[Kind::Write], |_| {
        for len in LONG_LENS {
            neighbours_do_not_fire(Guest::new(Mode::Long, len));
        }
    });
}

#[test]
fn thousand_cycles_of_each_kind() {
    with_kinds(&write_and_store(2), |kind| thousand_cycles(LONG_B8, kind));
}

#[test]
fn disarmed_breakpoints_do_not_fire() {
    with_kinds(&write_and_store(1), |kind| {
        // Two store widths between the two kinds.
        let len = match kind {
            Kind::Write => WatchLen::B4,
            _ => WatchLen::B8,
        };
        disarm_stops_hits(Guest::new(Mode::Long, len), kind)
    });
}

#[test]
fn freeze_and_thaw_while_armed() {
    with_kinds(&write_and_store(1), |kind| {
        freeze_thaw_while_armed(LONG_B8, kind)
    });
}

/// Misuse is an error, not a hang: waiting with nothing armed, and waiting for a write
/// while an instruction breakpoint is armed.
#[test]
fn waiting_without_a_matching_breakpoint_is_an_error() {
    if !kvm_or_skip() {
        return;
    }
    let guest = LONG_B8;
    let mut engine = guest.start(&plan(&guest, 1, 10));
    let e = engine.wait_write(Duration::from_millis(10)).unwrap_err();
    assert!(e.to_string().contains("no breakpoint is armed"), "{e}");
    if freeze::kvm::probe_instruction_breakpoint().is_ok() {
        engine
            .arm_breakpoint(HwBreakpoint::Execute(guest.code_addr(3)))
            .unwrap();
        let e = engine.wait_write(Duration::from_millis(10)).unwrap_err();
        assert!(e.to_string().contains("not a write watch"), "{e}");
    }
    engine.disarm_write_watch().unwrap();
    assert!(!engine.is_frozen());
}
