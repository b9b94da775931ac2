//! Tiny guests for the native KVM engine's tests: each vCPU does one `OUT` to a port it is
//! given in DX, then increments its own counter in guest memory forever.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use freeze::kvm::{CpuMode, KvmEngine, PageTables, VcpuStart, VmBuilder, VmConfig};
use freeze::{CpuRegs, Engine};
use vm_memory::{Bytes, GuestAddress};

/// A port nobody handles (the `OUT` is a no-op).
pub const IDLE_PORT: u16 = 0x510;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Real,
    Long,
}

/// Where a guest's code and counters are.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub mode: Mode,
    pub code: u64,
    pub counters: u64,
}

impl Layout {
    pub fn new(mode: Mode) -> Self {
        match mode {
            // Real mode: everything below 64 KiB, CS = 0.
            Mode::Real => Layout {
                mode,
                code: 0x1000,
                counters: 0x3000,
            },
            Mode::Long => Layout {
                mode,
                code: 0x10_0000,
                counters: 0x20_0000,
            },
        }
    }

    /// The code bytes, and the [start, end) range of the counting loop's instructions.
    pub fn code_bytes(&self) -> (Vec<u8>, std::ops::Range<u64>) {
        let code = match self.mode {
            // out dx, al ; inc dword [bx] ; jmp -5
            Mode::Real => vec![0xee, 0x66, 0xff, 0x07, 0xeb, 0xfb],
            // out dx, al ; inc qword [rbx] ; jmp -5
            Mode::Long => vec![0xee, 0x48, 0xff, 0x03, 0xeb, 0xfb],
        };
        (code, self.code + 1..self.code + 6)
    }

    pub fn counter_addr(&self, vcpu: usize) -> u64 {
        // One cache line each.
        self.counters + 64 * vcpu as u64
    }

    pub fn start(&self, vcpu: usize, port: u16) -> VcpuStart {
        VcpuStart {
            mode: match self.mode {
                Mode::Real => CpuMode::Real { cs_selector: 0 },
                Mode::Long => CpuMode::Long(PageTables::Identity4G),
            },
            regs: CpuRegs {
                rip: self.code,
                rbx: self.counter_addr(vcpu),
                rdx: u64::from(port),
                rsp: 0x8000,
                rflags: 2,
                ..Default::default()
            },
        }
    }
}

/// Builds and starts the counting guest; `port_of(vcpu)` is the port of its first `OUT`.
pub fn start_counting(
    builder: VmBuilder,
    layout: Layout,
    vcpus: usize,
    port_of: impl Fn(usize) -> u16,
) -> KvmEngine {
    let (code, _) = layout.code_bytes();
    builder
        .guest_ram()
        .write_slice(&code, GuestAddress(layout.code))
        .expect("write guest code");
    let starts: Vec<_> = (0..vcpus).map(|i| layout.start(i, port_of(i))).collect();
    builder.start(&starts).expect("start vCPUs")
}

pub fn builder(vcpus: usize) -> VmBuilder {
    VmBuilder::new(VmConfig {
        vcpus,
        mem_bytes: 64 << 20,
        ..VmConfig::default()
    })
    .expect("create VM")
}

pub fn counter(engine: &KvmEngine, layout: &Layout, vcpu: usize) -> u64 {
    let ram = engine.guest_ram();
    match layout.mode {
        Mode::Real => u64::from(
            ram.read_obj::<u32>(GuestAddress(layout.counter_addr(vcpu)))
                .expect("read counter"),
        ),
        Mode::Long => ram
            .read_obj::<u64>(GuestAddress(layout.counter_addr(vcpu)))
            .expect("read counter"),
    }
}

pub fn counters(engine: &KvmEngine, layout: &Layout, vcpus: usize) -> Vec<u64> {
    (0..vcpus).map(|i| counter(engine, layout, i)).collect()
}

/// Waits until every listed vCPU's counter is above `floor[i]`; panics after `timeout`.
pub fn wait_counters_above(
    engine: &KvmEngine,
    layout: &Layout,
    which: &[usize],
    floor: &[u64],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let now: Vec<u64> = which.iter().map(|&i| counter(engine, layout, i)).collect();
        if which.iter().zip(&now).all(|(&i, &c)| c > floor[i]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counters of vCPUs {which:?} did not pass {floor:?} within {timeout:?}: {now:?}; exit: {:?}; console: {:?}",
            engine.exit_status(),
            engine.console_tail()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Skips (with the reason printed) when this host has no usable KVM. CI hosts have one.
pub fn kvm_or_skip() -> bool {
    match freeze::kvm::probe() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIP: no usable KVM on this host: {e}");
            false
        }
    }
}
