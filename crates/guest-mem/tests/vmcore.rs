//! ELF vmcores: our writer's output read back, VMCOREINFO by note and by scan,
//! kdump-style overlaps and excluded pages, PN_XNUM, and corrupt files.

use guest_mem::synth::{KallsymsForm, SynthKernel, SynthKernelSpec, image};
use guest_mem::vmcore::writer::{VmcoreContents, write_vmcore};
use guest_mem::vmcore::{Vmcore, VmcoreError, VmcoreLayout};
use guest_mem::{CpuRegs, Gpa, KernelOptions, Kva, KvaReadExt, PagingMode, PhysRead, VmcoreInfo};

fn regs(i: u64, cr3: u64) -> CpuRegs {
    CpuRegs {
        rax: 0x1000 + i,
        rbx: 0x2000 + i,
        rsp: 0xffff_c900_0001_0000 + i,
        rbp: 0xffff_c900_0001_0800 + i,
        rip: 0xffff_ffff_8100_0000 + i,
        rflags: 0x246,
        cs: 0x10,
        ss: 0x18,
        gs_base: 0xffff_8880_0000_0000 + i * 0x1000,
        cr0: 0x8005_0033,
        cr3,
        cr4: 0x3506f0,
        r15: 0xf15 + i,
        ..Default::default()
    }
}

fn synth(mode: PagingMode) -> SynthKernel {
    SynthKernel::build(SynthKernelSpec {
        mode,
        form: KallsymsForm::PcRelative,
        ..Default::default()
    })
}

fn write(sk: &SynthKernel, with_info: bool, cpus: &[CpuRegs]) -> Vec<u8> {
    let info = VmcoreInfo::parse(sk.vmcoreinfo.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mem = sk.guest.phys(&[(0xa_0000, 0x6_0000)]);
    write_vmcore(
        &mut out,
        &mem,
        &VmcoreContents {
            vmcoreinfo: with_info.then_some(&info),
            cpus,
            page_offset: Some(sk.spec.page_offset),
        },
    )
    .unwrap();
    out
}

#[test]
fn written_vmcore_reads_back() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let sk = synth(mode);
        let cpus = [regs(0, sk.guest.root), regs(1, sk.guest.root | 0x1)];
        let bytes = write(&sk, true, &cpus);
        let core = Vmcore::from_bytes(bytes.clone()).unwrap();
        assert_eq!(core.cpus(), &cpus[..]);
        assert_eq!(core.layout().pids, vec![1, 2]);
        assert_eq!(core.vmcoreinfo().unwrap().text(), sk.vmcoreinfo);
        // The hole we cut is a hole in the vmcore.
        let r = core.phys().ranges();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].start, r[0].len), (Gpa(0), 0xa_0000));
        assert_eq!(r[1].start, Gpa(0x10_0000));
        let mut b = [0u8; 8];
        assert!(core.phys().read_phys(Gpa(0xa_0000), &mut b).is_err());
        let k = core.kernel(KernelOptions::default()).unwrap();
        assert_eq!(k.symbol("init_task"), Some(sk.symbol("init_task")));
        assert_eq!(
            k.read_cstr(Kva(sk.symbol("init_task").0 + image::COMM), 16)
                .unwrap(),
            "swapper/0"
        );
        assert_eq!(k.cpus(), &cpus[..]);

        // The same through a file mapping.
        let dir =
            std::env::temp_dir().join(format!("guestmem-vmcore-{}-{mode:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vmcore");
        std::fs::write(&path, &bytes).unwrap();
        let core = Vmcore::open(&path).unwrap();
        let k = core.kernel(KernelOptions::default()).unwrap();
        assert_eq!(k.nr_cpu_ids(), 4);
        assert_eq!(k.page_table_root(), Some(Gpa(sk.guest.root)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn vmcore_without_vmcoreinfo_note_is_found_by_scanning() {
    let sk = synth(PagingMode::Level5);
    let core = Vmcore::from_bytes(write(&sk, false, &[])).unwrap();
    assert!(core.vmcoreinfo().is_none());
    assert!(core.cpus().is_empty());
    let k = core.kernel(KernelOptions::default()).unwrap();
    assert_eq!(k.paging_mode(), PagingMode::Level5);
    assert_eq!(k.symbol("runqueues"), Some(sk.symbol("runqueues")));
}

/// A minimal ELF64 core with the given program headers and payload.
fn elf(phdrs: &[(u32, u64, u64, u64, u64)], payload: &[u8], phnum_field: Option<u16>) -> Vec<u8> {
    // (type, offset, paddr, filesz, memsz); payload appended after headers at 0x1000.
    let mut v = vec![0u8; 0x1000];
    v[0..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    v[0x10..0x12].copy_from_slice(&4u16.to_le_bytes());
    v[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
    v[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    v[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    let n = phnum_field.unwrap_or(phdrs.len() as u16);
    v[0x38..0x3a].copy_from_slice(&n.to_le_bytes());
    for (i, &(t, off, paddr, filesz, memsz)) in phdrs.iter().enumerate() {
        let p = 64 + i * 56;
        v[p..p + 4].copy_from_slice(&t.to_le_bytes());
        v[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
        v[p + 24..p + 32].copy_from_slice(&paddr.to_le_bytes());
        v[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
        v[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    v.extend_from_slice(payload);
    v
}

#[test]
fn kdump_style_overlaps_and_excluded_pages() {
    let payload: Vec<u8> = (0..0x3000u32).map(|i| (i / 0x1000) as u8 + 1).collect();
    // RAM segment 0x100000..0x102000 (data 1,2), an overlapping "kernel text"
    // segment duplicating 0x101000.. (data 3), and a segment whose memsz exceeds
    // its filesz (the excess is not in the file).
    let core = Vmcore::from_bytes(elf(
        &[
            (1, 0x1000, 0x10_0000, 0x2000, 0x2000),
            (1, 0x3000, 0x10_1000, 0x1000, 0x1000),
            (1, 0x3000, 0x20_0000, 0x800, 0x1000),
        ],
        &payload,
        None,
    ))
    .unwrap();
    let mut b = [0u8; 1];
    core.phys().read_phys(Gpa(0x10_1000), &mut b).unwrap();
    assert_eq!(b[0], 2, "the lower, longer segment wins");
    core.phys().read_phys(Gpa(0x20_07ff), &mut b).unwrap();
    assert_eq!(b[0], 3);
    assert!(core.phys().read_phys(Gpa(0x20_0800), &mut b).is_err());
}

#[test]
fn pn_xnum_takes_the_count_from_section_zero() {
    let payload = vec![7u8; 0x1000];
    let mut v = elf(
        &[(1, 0x1000, 0x5000, 0x1000, 0x1000)],
        &payload,
        Some(0xffff),
    );
    // Section header 0 at 0x800 with sh_info = 1.
    v[0x28..0x30].copy_from_slice(&0x800u64.to_le_bytes());
    v[0x800 + 0x2c..0x800 + 0x30].copy_from_slice(&1u32.to_le_bytes());
    let core = Vmcore::from_bytes(v).unwrap();
    assert_eq!(core.layout().segments.len(), 1);
    let mut b = [0u8; 1];
    core.phys().read_phys(Gpa(0x5fff), &mut b).unwrap();
    assert_eq!(b[0], 7);
}

#[test]
fn corrupt_files_are_errors() {
    assert!(matches!(
        Vmcore::from_bytes(vec![]),
        Err(VmcoreError::NotElf)
    ));
    assert!(matches!(
        Vmcore::from_bytes(b"hello".to_vec()),
        Err(VmcoreError::NotElf)
    ));
    // Another architecture's dump (ARM64, e_machine 183) is refused by name.
    let mut arm = elf(&[], &[], None);
    arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    assert!(matches!(
        Vmcore::from_bytes(arm),
        Err(VmcoreError::Machine(183))
    ));
    let mut v32 = elf(&[], &[], None);
    v32[4] = 1;
    assert!(matches!(
        Vmcore::from_bytes(v32),
        Err(VmcoreError::Unsupported(_))
    ));
    // A segment pointing past the end of the file.
    assert!(matches!(
        Vmcore::from_bytes(elf(&[(1, 0x1000, 0, 0x10_0000, 0x10_0000)], &[0; 16], None)),
        Err(VmcoreError::Corrupt { .. })
    ));
    // Address overflow.
    assert!(matches!(
        Vmcore::from_bytes(elf(&[(1, 0x1000, u64::MAX - 4, 16, 16)], &[0; 16], None)),
        Err(VmcoreError::Corrupt { .. })
    ));
    // No memory at all.
    assert!(matches!(
        Vmcore::from_bytes(elf(&[], &[], None)),
        Err(VmcoreError::NoMemory)
    ));
    // A note whose descriptor runs past its segment.
    let mut note = Vec::new();
    note.extend_from_slice(&5u32.to_le_bytes());
    note.extend_from_slice(&0x1000u32.to_le_bytes());
    note.extend_from_slice(&1u32.to_le_bytes());
    note.extend_from_slice(b"CORE\0\0\0\0");
    // …is not fatal: the memory is still read, the notes before it kept, the loss said.
    let l =
        VmcoreLayout::parse(&elf(&[(4, 0x1000, 0, note.len() as u64, 0)], &note, None)).unwrap();
    assert!(l.notes.is_empty() && l.cpus.is_empty());
    assert!(
        l.caveats.iter().any(|c| c.contains(
            "is damaged after 0 notes (truncated or corrupt: note runs past its segment"
        )),
        "{:?}",
        l.caveats
    );
    assert!(l.caveats.iter().any(|c| c.contains("no CPU notes")));

    // Every truncation and many single-byte corruptions of a real written vmcore:
    // errors or a smaller result, never a panic.
    let sk = synth(PagingMode::Level4);
    let full = write(&sk, true, &[regs(0, sk.guest.root)]);
    let data_start = 0x1000;
    for cut in (0..data_start + 64).step_by(7) {
        let _ = VmcoreLayout::parse(&full[..cut]);
    }
    let mut header = full[..data_start].to_vec();
    for pos in 0..data_start {
        let keep = header[pos];
        header[pos] ^= 0xa5;
        let _ = VmcoreLayout::parse(&header);
        header[pos] = keep;
    }
    // A few full round trips with corrupted notes (VMCOREINFO text, registers).
    for pos in [0x200, 0x300, 0x3c0, 0x480, 0x500] {
        let mut v = full.clone();
        v[pos] ^= 0x5a;
        if let Ok(core) = Vmcore::from_bytes(v) {
            let _ = core.kernel(KernelOptions::default());
        }
    }
}

#[test]
fn open_errors_name_the_path_and_mappings_outlive_the_file_name() {
    match Vmcore::open("/nonexistent/guestmem/vmcore".as_ref()) {
        Err(VmcoreError::Io { path, .. }) => assert_eq!(path, "/nonexistent/guestmem/vmcore"),
        other => panic!("{other:?}"),
    }
    let dir = std::env::temp_dir().join(format!("guestmem-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tiny = dir.join("tiny");
    std::fs::write(&tiny, b"\x7fELF").unwrap();
    assert!(matches!(Vmcore::open(&tiny), Err(VmcoreError::NotElf)));
    // Not regular files: refused before opening (a FIFO would block the open forever).
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    match Vmcore::open(&fifo) {
        Err(VmcoreError::NotRegular { kind, .. }) => assert_eq!(kind, "a FIFO"),
        other => panic!("{other:?}"),
    }
    match Vmcore::open(&dir) {
        Err(VmcoreError::NotRegular { kind, .. }) => assert_eq!(kind, "a directory"),
        other => panic!("{other:?}"),
    }
    match Vmcore::open("/dev/zero".as_ref()) {
        Err(e @ VmcoreError::NotRegular { .. }) => {
            assert!(e.to_string().contains("a character device"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Opened, then unlinked (a temporary file): memory stays readable.
    let sk = synth(PagingMode::Level4);
    let path = dir.join("vmcore");
    std::fs::write(&path, write(&sk, true, &[])).unwrap();
    let core = Vmcore::open(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let k = core.kernel(KernelOptions::default()).unwrap();
    assert_eq!(
        k.read_cstr(Kva(sk.symbol("init_task").0 + image::COMM), 16)
            .unwrap(),
        "swapper/0"
    );
}

#[test]
fn a_note_that_does_not_decode_falls_back_to_the_ram_copy() {
    let sk = synth(PagingMode::Level4);
    // The note's VMCOREINFO points kallsyms at nothing; the copy in RAM is right.
    let bad = VmcoreInfo::parse(
        sk.vmcoreinfo
            .replace("SYMBOL(kallsyms_names)=", "SYMBOL(kallsyms_names)=1")
            .as_bytes(),
    )
    .unwrap();
    let mut out = Vec::new();
    write_vmcore(
        &mut out,
        &sk.guest.phys(&[]),
        &VmcoreContents {
            vmcoreinfo: Some(&bad),
            cpus: &[],
            page_offset: None,
        },
    )
    .unwrap();
    let core = Vmcore::from_bytes(out).unwrap();
    assert_eq!(core.vmcoreinfo(), Some(&bad));
    let k = core.kernel(KernelOptions::default()).unwrap();
    assert_eq!(k.vmcoreinfo().text(), sk.vmcoreinfo);
    // Given explicitly, the bad one is used as is and fails.
    assert!(
        core.kernel(KernelOptions {
            vmcoreinfo: Some(bad),
            ..Default::default()
        })
        .is_err()
    );
}

/// CPU notes whose names are damaged: the registers are gone, and the caveats say why
/// (unrecognized notes, no CPU notes), so the report can too.
#[test]
fn unreadable_cpu_notes_are_said() {
    let sk = synth(PagingMode::Level4);
    let mut bytes = write(&sk, true, &[regs(0, sk.guest.root), regs(1, sk.guest.root)]);
    let head = 0x1000.min(bytes.len());
    for name in [&b"CORE\0"[..], &b"QEMU\0"[..]] {
        let mut i = 0;
        while i + name.len() <= head {
            if &bytes[i..i + name.len()] == name {
                bytes[i] = b'X';
            }
            i += 1;
        }
    }
    let core = Vmcore::from_bytes(bytes).unwrap();
    assert!(core.cpus().is_empty());
    let c = core.caveats();
    assert!(
        c.iter()
            .any(|l| l == "vcpu_regs: the vmcore has no CPU notes (NT_PRSTATUS or QEMU)"),
        "{c:?}"
    );
    assert!(
        c.iter()
            .any(|l| l.starts_with("notes: 4 of 5 notes not recognized (\"XORE\"")),
        "{c:?}"
    );
}
