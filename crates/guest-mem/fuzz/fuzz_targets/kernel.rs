//! A synthetic kernel whose image (kallsyms tables, page tables, per-CPU offsets,
//! VMCOREINFO note) the fuzzer overwrites: set-up and reads must fail cleanly.
#![no_main]

use std::sync::{Mutex, OnceLock};

use guest_mem::synth::{KallsymsForm, SynthKernel, SynthKernelSpec, image};
use guest_mem::{Kernel, KernelOptions, Kva, KvaRead, PagingMode, PhysMem};
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

struct Base {
    kernels: Vec<(SynthKernel, GuestMemoryMmap)>,
}

fn base() -> &'static Mutex<Base> {
    static B: OnceLock<Mutex<Base>> = OnceLock::new();
    B.get_or_init(|| {
        let mut kernels = Vec::new();
        for (mode, form) in [
            (PagingMode::Level4, KallsymsForm::PcRelative),
            (PagingMode::Level5, KallsymsForm::RelativeBase),
            (PagingMode::Level4, KallsymsForm::RelativeBaseAbsolutePercpu),
            (PagingMode::Level5, KallsymsForm::Absolute),
        ] {
            let sk = SynthKernel::build(SynthKernelSpec {
                mode,
                form,
                ..Default::default()
            });
            let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), image::RAM)]).unwrap();
            gm.write_slice(&sk.guest.ram, GuestAddress(0)).unwrap();
            kernels.push((sk, gm));
        }
        Mutex::new(Base { kernels })
    })
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let b = base().lock().unwrap();
    let (sk, gm) = &b.kernels[usize::from(data[0] & 3)];
    // Records of 8 bytes: 3-byte offset into a target area, then 5 value bytes.
    let areas = [
        image::PHYS + image::KALLSYMS,
        image::PHYS + image::TABLES,
        image::PHYS + image::DATA,
        image::NOTE_GPA,
    ];
    let mut undo = Vec::new();
    for rec in data[1..].chunks_exact(8).take(64) {
        let area = areas[usize::from(rec[0] & 3)];
        let off = u64::from(u16::from_le_bytes([rec[1], rec[2]])) | (u64::from(rec[0] >> 2) << 16);
        let at = GuestAddress(area + off);
        let mut old = [0u8; 5];
        if gm.read_slice(&mut old, at).is_ok() {
            undo.push((at, old));
            let _ = gm.write_slice(&rec[3..8], at);
        }
    }
    let mem = PhysMem::from_guest_memory(gm).unwrap();
    if let Ok(k) = Kernel::new(mem, KernelOptions::default()) {
        let mut buf = [0u8; 256];
        for s in ["init_task", "runqueues", "page_offset_base"] {
            if let Some(a) = k.symbol(s) {
                let _ = k.read_kva(a, &mut buf);
            }
        }
        for cpu in 0..4 {
            if let Ok(a) = k.per_cpu_symbol("runqueues", cpu) {
                let _ = k.read_kva(a, &mut buf);
            }
        }
        let _ = k.read_kva(Kva(sk.vmalloc_base), &mut buf);
    }
    for (at, old) in undo.into_iter().rev() {
        gm.write_slice(&old, at).unwrap();
    }
});
