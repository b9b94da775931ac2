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

/// The counting guest in `mode` on `vcpus` vCPUs (every `OUT` to the idle port), once
/// every counter moved.
pub fn counting(mode: Mode, vcpus: usize) -> (KvmEngine, Layout) {
    let layout = Layout::new(mode);
    let engine = start_counting(builder(vcpus), layout, vcpus, |_| IDLE_PORT);
    let all: Vec<usize> = (0..vcpus).collect();
    wait_counters_above(&engine, &layout, &all, &vec![0; vcpus]);
    (engine, layout)
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

/// How long a running guest's counters may take to move.
pub const COUNT_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits until every listed vCPU's counter is above `floor[i]`; panics after
/// [`COUNT_TIMEOUT`].
pub fn wait_counters_above(engine: &KvmEngine, layout: &Layout, which: &[usize], floor: &[u64]) {
    let timeout = COUNT_TIMEOUT;
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

/// Whether this host has a usable KVM; without one the test skips (see
/// `guest_lab::testing::skip`: under CI that fails, CI hosts have one).
#[track_caller]
pub fn kvm_or_skip() -> bool {
    match freeze::kvm::probe() {
        Ok(()) => true,
        Err(e) => {
            guest_lab::testing::skip(format!("no usable KVM on this host: {e}"));
            false
        }
    }
}

/// An ELF64 x86-64 executable with one PT_LOAD per `(paddr, bytes)` segment and, with
/// `pvh_entry`, a PT_NOTE holding the Xen `PHYS32_ENTRY` note (what QEMU and the KVM engine
/// boot through PVH).
pub fn elf_image(segments: &[(u64, &[u8])], entry: u64, pvh_entry: Option<u32>) -> Vec<u8> {
    let mut note = Vec::new();
    if let Some(pvh) = pvh_entry {
        note.extend_from_slice(&4u32.to_le_bytes()); // namesz
        note.extend_from_slice(&4u32.to_le_bytes()); // descsz
        note.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&pvh.to_le_bytes());
    }
    let phnum = segments.len() + usize::from(pvh_entry.is_some());
    let data_start = 0x1000usize;
    let mut elf = vec![0u8; data_start];
    elf[0..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little endian
    elf[6] = 1; // version
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[24..32].copy_from_slice(&entry.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    assert!(64 + 56 * phnum <= 0x800, "too many segments");
    let phdr = |p_type: u32, off: u64, addr: u64, size: u64| {
        let mut p = Vec::with_capacity(56);
        p.extend_from_slice(&p_type.to_le_bytes());
        p.extend_from_slice(&7u32.to_le_bytes()); // RWX
        p.extend_from_slice(&off.to_le_bytes());
        p.extend_from_slice(&addr.to_le_bytes()); // vaddr
        p.extend_from_slice(&addr.to_le_bytes()); // paddr
        p.extend_from_slice(&size.to_le_bytes()); // filesz
        p.extend_from_slice(&size.to_le_bytes()); // memsz
        p.extend_from_slice(&4u64.to_le_bytes()); // align
        p
    };
    let mut ph_at = 64;
    for (paddr, bytes) in segments {
        let off = elf.len() as u64;
        let p = phdr(1, off, *paddr, bytes.len() as u64);
        elf[ph_at..ph_at + 56].copy_from_slice(&p);
        ph_at += 56;
        elf.extend_from_slice(bytes);
    }
    if pvh_entry.is_some() {
        let note_off = 0x800usize;
        let p = phdr(4, note_off as u64, 0, note.len() as u64);
        elf[ph_at..ph_at + 56].copy_from_slice(&p);
        elf[note_off..note_off + note.len()].copy_from_slice(&note);
    }
    elf
}

/// Where [`smp_pvh_guest`]'s application processors start (real mode, SIPI vector 0x10).
pub const AP_TRAMPOLINE: u64 = 0x1_0000;
/// Where [`smp_pvh_guest`]'s boot processor counts.
pub const BSP_COUNTER: u64 = 0x20_0000;
/// [`smp_pvh_guest`]'s PVH entry.
pub const SMP_GUEST_ENTRY: u64 = 0x10_0000;

/// A PVH guest for any machine with local APICs: the boot processor starts every other
/// processor with INIT/SIPI/SIPI (they spin at [`AP_TRAMPOLINE`] in real mode), prints
/// `ready` on COM1, then increments [`BSP_COUNTER`] forever.
pub fn smp_pvh_guest() -> Vec<u8> {
    let mut bsp: Vec<u8> = vec![
        0x81, 0x0d, 0xf0, 0x00, 0xe0, 0xfe, 0x00, 0x01, 0x00,
        0x00, // or dword [SVR], 0x100 (APIC on)
        0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, // ICR high = 0
        0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0x0c, 0x00, // ICR: INIT, all but self
        0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x10, 0x46, 0x0c, 0x00, // ICR: SIPI vector 0x10
        0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x10, 0x46, 0x0c, 0x00, // ICR: SIPI again
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
    ];
    for b in b"ready\n" {
        bsp.extend_from_slice(&[0xb0, *b, 0xee]); // mov al, b ; out dx, al
    }
    bsp.extend_from_slice(&[0xff, 0x05]); // l: inc dword [BSP_COUNTER]
    bsp.extend_from_slice(&(BSP_COUNTER as u32).to_le_bytes());
    bsp.extend_from_slice(&[0xeb, 0xf8]); // jmp l
    let ap: &[u8] = &[0xeb, 0xfe]; // jmp $
    elf_image(
        &[(SMP_GUEST_ENTRY, &bsp), (AP_TRAMPOLINE, ap)],
        SMP_GUEST_ENTRY,
        Some(SMP_GUEST_ENTRY as u32),
    )
}
