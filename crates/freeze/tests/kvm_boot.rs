//! The Linux boot path with synthetic kernels: a bzImage and an ELF (PVH note + 64-bit entry)
//! whose "kernel" prints what the boot protocol handed it (command line, initramfs, memory
//! map) to COM1 and pulls the i8042 reset line. Also: exits (triple fault, reset), HLT
//! without irqchip, the bounded console tail, and errors that name the failing step.

mod kvm_common;

use std::io::Write;
use std::time::Duration;

use freeze::Engine;
use freeze::kvm::{
    CpuMode, GuestExit, KernelFormat, LinuxBoot, PageTables, VcpuStart, VmBuilder, VmConfig,
};
use freeze::{CpuRegs, EngineError};
use kvm_common::*;
use vm_memory::{Bytes, GuestAddress};

const CMDLINE: &str = "console=ttyS0 ktstr.test=boot";
const INITRD: &[u8] = b"INITRAMFS-CONTENT";
const LOAD_ADDR: u64 = 0x10_0000;

/// 64-bit "kernel" entered with RSI = zero page: prints the command line, `|`, the initramfs,
/// a newline and the e820 entry count, then resets through the i8042.
const KERNEL64: &[u8] = &[
    0x8b, 0xbe, 0x28, 0x02, 0x00, 0x00, // mov edi, [rsi+0x228]   cmd_line_ptr
    0x66, 0xba, 0xf8, 0x03, //             mov dx, 0x3f8
    0x8a, 0x07, //                         l1: mov al, [rdi]
    0x84, 0xc0, //                         test al, al
    0x74, 0x06, //                         jz d1
    0xee, //                               out dx, al
    0x48, 0xff, 0xc7, //                   inc rdi
    0xeb, 0xf4, //                         jmp l1
    0xb0, b'|', //                         d1: mov al, '|'
    0xee, //                               out dx, al
    0x8b, 0xbe, 0x18, 0x02, 0x00, 0x00, // mov edi, [rsi+0x218]   ramdisk_image
    0x8b, 0x8e, 0x1c, 0x02, 0x00, 0x00, // mov ecx, [rsi+0x21c]   ramdisk_size
    0x85, 0xc9, //                         l2: test ecx, ecx
    0x74, 0x0a, //                         jz d2
    0x8a, 0x07, //                         mov al, [rdi]
    0xee, //                               out dx, al
    0x48, 0xff, 0xc7, //                   inc rdi
    0xff, 0xc9, //                         dec ecx
    0xeb, 0xf2, //                         jmp l2
    0xb0, b'\n', //                        d2: mov al, '\n'
    0xee,  //                               out dx, al
    0x8a, 0x86, 0xe8, 0x01, 0x00, 0x00, // mov al, [rsi+0x1e8]    e820_entries
    0x04, b'0', //                         add al, '0'
    0xee, //                               out dx, al
    0xb0, 0xfe, //                         mov al, 0xfe
    0x66, 0xba, 0x64, 0x00, //             mov dx, 0x64
    0xee, //                               out dx, al (reset)
    0xf4, //                               hlt
    0xeb, 0xfd, //                         jmp hlt
];

/// 32-bit PVH "kernel" entered with EBX = hvm_start_info: prints the command line, `|`, `M`
/// if the magic is right, the module count, the memory map entry count, the first module's
/// bytes, then resets.
const KERNEL_PVH: &[u8] = &[
    0x8b, 0x7b, 0x18, //                   mov edi, [ebx+0x18]    cmdline_paddr
    0x66, 0xba, 0xf8, 0x03, //             mov dx, 0x3f8
    0x8a, 0x07, //                         l1: mov al, [edi]
    0x84, 0xc0, //                         test al, al
    0x74, 0x04, //                         jz d1
    0xee, //                               out dx, al
    0x47, //                               inc edi
    0xeb, 0xf6, //                         jmp l1
    0xb0, b'|', //                         d1: mov al, '|'
    0xee, //                               out dx, al
    0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33, // cmp dword [ebx], 0x336ec578
    0x75, 0x03, //                         jne +3
    0xb0, b'M', //                         mov al, 'M'
    0xee, //                               out dx, al
    0x8a, 0x43, 0x0c, //                   mov al, [ebx+0xc]      nr_modules
    0x04, b'0', //                         add al, '0'
    0xee, //                               out dx, al
    0x8a, 0x43, 0x30, //                   mov al, [ebx+0x30]     memmap_entries
    0x04, b'0', //                         add al, '0'
    0xee, //                               out dx, al
    0x8b, 0x73, 0x10, //                   mov esi, [ebx+0x10]    modlist_paddr
    0x8b, 0x3e, //                         mov edi, [esi]         paddr
    0x8b, 0x4e, 0x08, //                   mov ecx, [esi+8]       size
    0x85, 0xc9, //                         l2: test ecx, ecx
    0x74, 0x07, //                         jz d2
    0x8a, 0x07, //                         mov al, [edi]
    0xee, //                               out dx, al
    0x47, //                               inc edi
    0x49, //                               dec ecx
    0xeb, 0xf5, //                         jmp l2
    0xb0, 0xfe, //                         d2: mov al, 0xfe
    0x66, 0xba, 0x64, 0x00, //             mov dx, 0x64
    0xee, //                               out dx, al (reset)
    0xf4, //                               hlt
    0xeb, 0xfd, //                         jmp hlt
];

/// A bzImage: 4 setup sectors with a boot protocol 2.15 header, then the protected-mode
/// "kernel" whose 64-bit entry (offset 0x200) is [`KERNEL64`].
fn synthetic_bzimage() -> Vec<u8> {
    let setup_sects = 4u8;
    let mut img = vec![0u8; (usize::from(setup_sects) + 1) * 512];
    img[0x1f1] = setup_sects;
    img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x211] = 0x01; // LOADED_HIGH
    img[0x214..0x218].copy_from_slice(&(LOAD_ADDR as u32).to_le_bytes());
    img[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
    img[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes()); // kernel_alignment
    img[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes()); // cmdline_size
    let mut payload = vec![0xf4u8; 0x200]; // hlt: the 32-bit entry is not used
    payload.extend_from_slice(KERNEL64);
    img.extend_from_slice(&payload);
    img
}

/// An ELF64 executable: one PT_LOAD at [`LOAD_ADDR`] holding [`KERNEL64`] (the ELF entry)
/// and, at +0x100, [`KERNEL_PVH`]; with `pvh_note`, a PT_NOTE with the Xen PHYS32_ENTRY note.
fn synthetic_elf(pvh_note: bool) -> Vec<u8> {
    let mut code = KERNEL64.to_vec();
    code.resize(0x100, 0xf4);
    code.extend_from_slice(KERNEL_PVH);
    let pvh = pvh_note.then_some((LOAD_ADDR + 0x100) as u32);
    elf_image(&[(LOAD_ADDR, &code)], LOAD_ADDR, pvh)
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f
}

fn linux_builder() -> VmBuilder {
    VmBuilder::new(VmConfig {
        vcpus: 2,
        mem_bytes: 64 << 20,
        ..VmConfig::default()
    })
    .expect("create VM")
}

fn boot_and_wait(kernel: &[u8], format: KernelFormat) -> freeze::kvm::KvmEngine {
    let kernel = temp_file(kernel);
    let initrd = temp_file(INITRD);
    let boot = LinuxBoot {
        kernel: kernel.path().to_owned(),
        initramfs: Some(initrd.path().to_owned()),
        cmdline: CMDLINE.into(),
        format,
    };
    let engine = linux_builder().boot_linux(&boot).expect("boot");
    let exit = engine.wait_exit(Duration::from_secs(20));
    assert!(
        matches!(
            exit,
            Some(GuestExit::Reset {
                vcpu: 0,
                how: "the i8042 reset line"
            })
        ),
        "exit {exit:?}, console {:?}",
        engine.console_tail()
    );
    engine
}

#[test]
fn bzimage_64bit_boot_protocol() {
    if !kvm_or_skip() {
        return;
    }
    let mut engine = boot_and_wait(&synthetic_bzimage(), KernelFormat::Auto);
    let initrd = String::from_utf8_lossy(INITRD);
    // 64 MiB: [0, EBDA) RAM, the EBDA reserved, the ACPI area reserved, [1 MiB, 64 MiB) RAM.
    assert_eq!(engine.console_tail(), format!("{CMDLINE}|{initrd}\n4"));
    // The zero page as the boot protocol wants it.
    let ram = engine.guest_ram();
    let zp = freeze::kvm::layout::ZERO_PAGE_START;
    let rd16 = |off: u64| ram.read_obj::<u16>(GuestAddress(zp + off)).unwrap();
    let rd32 = |off: u64| ram.read_obj::<u32>(GuestAddress(zp + off)).unwrap();
    assert_eq!(rd16(0x1fe), 0xaa55, "boot_flag");
    assert_eq!(rd32(0x202), 0x5372_6448, "header");
    assert_eq!(
        ram.read_obj::<u8>(GuestAddress(zp + 0x210)).unwrap(),
        0xff,
        "type_of_loader"
    );
    assert_eq!(rd32(0x21c), INITRD.len() as u32, "ramdisk_size");
    let rsdp = ram.read_obj::<u64>(GuestAddress(zp + 0x70)).unwrap();
    let mut sig = [0u8; 8];
    ram.read_slice(&mut sig, GuestAddress(rsdp)).unwrap();
    assert_eq!(&sig, b"RSD PTR ", "acpi_rsdp_addr points at the RSDP");
    assert_eq!(rd32(0x218) % 4096, 0, "initramfs page aligned");
    assert!(
        u64::from(rd32(0x218)) > LOAD_ADDR,
        "initramfs above the kernel"
    );
    // Frozen after exit: the engine says the guest is gone.
    match engine.freeze(Duration::from_secs(1)) {
        Err(EngineError::GuestExited(why)) => assert!(why.contains("i8042"), "{why}"),
        other => panic!("freeze after exit: {other:?}"),
    }
}

#[test]
fn elf_with_pvh_note_boots_through_pvh() {
    if !kvm_or_skip() {
        return;
    }
    let engine = boot_and_wait(&synthetic_elf(true), KernelFormat::Auto);
    let initrd = String::from_utf8_lossy(INITRD);
    assert_eq!(engine.console_tail(), format!("{CMDLINE}|M14{initrd}"));
}

#[test]
fn elf_64bit_entry_when_asked_or_without_note() {
    if !kvm_or_skip() {
        return;
    }
    let initrd = String::from_utf8_lossy(INITRD);
    for (img, format) in [
        (synthetic_elf(true), KernelFormat::Elf64),
        (synthetic_elf(false), KernelFormat::Auto),
    ] {
        let engine = boot_and_wait(&img, format);
        assert_eq!(engine.console_tail(), format!("{CMDLINE}|{initrd}\n4"));
    }
}

fn boot_err(boot: &LinuxBoot, mem_bytes: u64) -> String {
    let builder = VmBuilder::new(VmConfig {
        mem_bytes,
        ..VmConfig::default()
    })
    .expect("create VM");
    match builder.boot_linux(boot) {
        Ok(_) => panic!("boot of {boot:?} should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn boot_errors_name_the_step() {
    if !kvm_or_skip() {
        return;
    }
    let missing = LinuxBoot {
        kernel: "/nonexistent/vmlinuz".into(),
        ..Default::default()
    };
    let e = boot_err(&missing, 64 << 20);
    assert!(
        e.starts_with("open kernel image: /nonexistent/vmlinuz"),
        "{e}"
    );

    let garbage = temp_file(&[0x55; 4096]);
    let e = boot_err(
        &LinuxBoot {
            kernel: garbage.path().to_owned(),
            ..Default::default()
        },
        64 << 20,
    );
    assert!(e.starts_with("detect kernel image format"), "{e}");

    let no_note = temp_file(&synthetic_elf(false));
    let e = boot_err(
        &LinuxBoot {
            kernel: no_note.path().to_owned(),
            format: KernelFormat::ElfPvh,
            ..Default::default()
        },
        64 << 20,
    );
    assert!(e.starts_with("boot with PVH"), "{e}");

    // An initramfs that cannot fit in 4 MiB of RAM.
    let kernel = temp_file(&synthetic_bzimage());
    let big = temp_file(&vec![0u8; 6 << 20]);
    let e = boot_err(
        &LinuxBoot {
            kernel: kernel.path().to_owned(),
            initramfs: Some(big.path().to_owned()),
            ..Default::default()
        },
        4 << 20,
    );
    assert!(e.starts_with("place initramfs"), "{e}");

    let long_cmdline = "x".repeat(5000);
    let e = boot_err(
        &LinuxBoot {
            kernel: kernel.path().to_owned(),
            cmdline: long_cmdline,
            ..Default::default()
        },
        64 << 20,
    );
    assert!(e.starts_with("build kernel command line"), "{e}");

    let no_irqchip = VmBuilder::new(VmConfig {
        irqchip: false,
        ..VmConfig::default()
    })
    .unwrap();
    let e = no_irqchip
        .boot_linux(&LinuxBoot {
            kernel: kernel.path().to_owned(),
            ..Default::default()
        })
        .err()
        .expect("Linux needs an irqchip")
        .to_string();
    assert!(e.starts_with("boot Linux"), "{e}");

    let e = VmBuilder::new(VmConfig {
        vcpus: 0,
        ..VmConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.starts_with("configure VM"), "{e}");
}

/// `ud2` with an empty IDT: #UD, #DF, then a triple fault, which KVM reports as shutdown.
#[test]
fn triple_fault_ends_the_run() {
    if !kvm_or_skip() {
        return;
    }
    let b = builder(1);
    b.guest_ram()
        .write_slice(&[0x0f, 0x0b], GuestAddress(0x10_0000))
        .unwrap();
    let start = VcpuStart {
        mode: CpuMode::Long(PageTables::Identity4G),
        regs: CpuRegs {
            rip: 0x10_0000,
            rflags: 2,
            ..Default::default()
        },
    };
    let mut engine = b.start(&[start]).unwrap();
    let exit = engine.wait_exit(Duration::from_secs(20));
    assert!(
        matches!(exit, Some(GuestExit::Reset { how, .. }) if how.contains("triple fault")),
        "{exit:?}"
    );
    assert!(matches!(
        engine.freeze(Duration::from_secs(1)),
        Err(EngineError::GuestExited(_))
    ));
    assert!(!engine.is_frozen());
    engine
        .thaw()
        .expect("thaw of a non-frozen engine is a no-op");
}

/// Without an irqchip, HLT exits to the VMM; the halted vCPU still parks for a freeze.
#[test]
fn halted_vcpu_parks_without_irqchip() {
    if !kvm_or_skip() {
        return;
    }
    let b = VmBuilder::new(VmConfig {
        vcpus: 2,
        mem_bytes: 64 << 20,
        irqchip: false,
        ..VmConfig::default()
    })
    .unwrap();
    let layout = Layout::new(Mode::Long);
    // vCPU 0 counts; vCPU 1 increments once and halts (inc qword [rbx]; hlt).
    let (code, loop_range) = layout.code_bytes();
    b.guest_ram()
        .write_slice(&code, GuestAddress(layout.code))
        .unwrap();
    let halt_code = 0x18_0000u64;
    b.guest_ram()
        .write_slice(&[0x48, 0xff, 0x03, 0xf4], GuestAddress(halt_code))
        .unwrap();
    let mut second = layout.start(1, IDLE_PORT);
    second.regs.rip = halt_code;
    let mut engine = b.start(&[layout.start(0, IDLE_PORT), second]).unwrap();
    wait_counters_above(&engine, &layout, &[0, 1], &[0, 0]);
    for _ in 0..3 {
        let outcome = engine.freeze(Duration::from_secs(5)).unwrap();
        assert!(outcome.all_parked());
        assert!(loop_range.contains(&outcome.vcpus[0].unwrap().rip));
        assert_eq!(
            outcome.vcpus[1].unwrap().rip,
            halt_code + 4,
            "RIP after HLT"
        );
        engine.thaw().unwrap();
    }
    assert_eq!(counter(&engine, &layout, 1), 1);
}

/// A guest writing to COM1 forever: the tail keeps only the configured number of bytes.
#[test]
fn console_tail_is_bounded() {
    if !kvm_or_skip() {
        return;
    }
    let b = VmBuilder::new(VmConfig {
        mem_bytes: 64 << 20,
        console_tail_bytes: 1000,
        ..VmConfig::default()
    })
    .unwrap();
    // mov dx, 0x3f8 ; l: mov al, 'a' ; out dx, al ; mov al, 'b' ; out dx, al ; jmp l
    let code = [
        0x66, 0xba, 0xf8, 0x03, 0xb0, b'a', 0xee, 0xb0, b'b', 0xee, 0xeb, 0xf8,
    ];
    b.guest_ram()
        .write_slice(&code, GuestAddress(0x10_0000))
        .unwrap();
    let engine = b
        .start(&[VcpuStart {
            mode: CpuMode::Long(PageTables::Identity4G),
            regs: CpuRegs {
                rip: 0x10_0000,
                rflags: 2,
                ..Default::default()
            },
        }])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while engine.console().total() < 20_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "guest output too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let tail = engine.console_tail();
    assert_eq!(tail.len(), 1000);
    assert!(tail.contains("abab"));
}

/// Linux-style SMP start through PVH: vCPU 0 enters the kernel, the others wait for the
/// INIT/SIPI it sends through its local APIC and then run real-mode code; a freeze captures
/// each where it is.
#[test]
fn pvh_guest_starts_application_processors() {
    if !kvm_or_skip() {
        return;
    }
    let kernel = temp_file(&smp_pvh_guest());
    let mut engine = VmBuilder::new(VmConfig {
        vcpus: 4,
        mem_bytes: 64 << 20,
        ..VmConfig::default()
    })
    .unwrap()
    .boot_linux(&LinuxBoot {
        kernel: kernel.path().to_owned(),
        ..Default::default()
    })
    .expect("boot");
    assert!(
        engine.console().wait_for("ready", Duration::from_secs(20)),
        "console {:?}, exit {:?}",
        engine.console_tail(),
        engine.exit_status()
    );
    let ram = engine.guest_ram();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ram.read_obj::<u32>(GuestAddress(BSP_COUNTER)).unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "BSP does not count");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The APs may need a moment after the SIPI; freeze until all of them are in place.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = engine.freeze(Duration::from_secs(5)).expect("freeze");
        assert!(outcome.all_parked(), "{}/4 parked", outcome.parked());
        let bsp = outcome.vcpus[0].unwrap();
        assert_eq!(bsp.cr0 & 1, 1, "BSP in protected mode");
        let at_trampoline = outcome.vcpus[1..]
            .iter()
            .all(|r| r.map(|r| r.cs == AP_TRAMPOLINE >> 4 && r.rip == 0) == Some(true));
        engine.thaw().unwrap();
        if at_trampoline {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "APs not at the trampoline: {:x?}",
            outcome.vcpus[1..]
                .iter()
                .map(|r| r.map(|r| (r.cs, r.rip)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
