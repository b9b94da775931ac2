//! The `Kernel` view over synthetic kernels: VMCOREINFO (given or scanned), kallsyms
//! in every address form, both paging depths, translation paths, per-CPU data,
//! System.map, caches, typed reads.

use guest_mem::synth::{KallsymsForm, PageSize, SynthKernel, SynthKernelSpec, image};
use guest_mem::{
    Gpa, Kernel, KernelError, KernelOptions, Kva, KvaRead, KvaReadExt, MemError, PagingMode,
    PhysMem, SymbolTable, VmcoreInfo,
};

/// The kernel in `mem` with `info` as its VMCOREINFO (given, not scanned for).
fn kernel_given(mem: PhysMem, info: VmcoreInfo) -> Result<Kernel, KernelError> {
    let opts = KernelOptions {
        vmcoreinfo: Some(info),
        ..Default::default()
    };
    Kernel::new(mem, opts)
}

fn spec(mode: PagingMode, form: KallsymsForm) -> SynthKernelSpec {
    SynthKernelSpec {
        mode,
        form,
        page_offset: match mode {
            PagingMode::Level4 => 0xffff_9c00_0000_0000,
            PagingMode::Level5 => 0xff2d_0000_4000_0000,
        },
        extra_symbols: vec![
            ("a_very_long_symbol_name_".repeat(8), 't'),
            ("dup".into(), 't'),
            ("dup".into(), 'T'),
        ],
        ..Default::default()
    }
}

fn all_specs() -> Vec<SynthKernelSpec> {
    let mut v = Vec::new();
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        for form in [
            KallsymsForm::Absolute,
            KallsymsForm::RelativeBase,
            KallsymsForm::RelativeBaseAbsolutePercpu,
            KallsymsForm::PcRelative,
        ] {
            v.push(spec(mode, form));
        }
    }
    v
}

#[test]
fn decodes_every_symbol_in_every_form_and_mode() {
    for s in all_specs() {
        let sk = SynthKernel::build(s.clone());
        let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default())
            .unwrap_or_else(|e| panic!("{:?}/{:?}: {e}", s.mode, s.form));
        assert_eq!(k.paging_mode(), s.mode);
        assert_eq!(k.osrelease(), "7.3.0-synthetic");
        assert_eq!(k.kaslr_offset(), s.kaslr);
        assert_eq!(k.phys_base() as i64, sk.phys_base);
        assert_eq!(k.page_offset_base(), s.page_offset);
        assert_eq!(k.page_table_root(), Some(Gpa(image::PHYS + image::TABLES)));
        assert_eq!(k.symbols().len(), sk.symbols.len(), "{:?}", s.form);
        for (name, addr, kind) in &sk.symbols {
            let found: Vec<_> = k.symbols().all(name).map(|x| (x.addr.0, x.kind)).collect();
            assert!(
                found.contains(&(*addr, *kind)),
                "{name} {addr:#x} {kind}: {found:x?}"
            );
        }
        assert_eq!(k.symbols().all("dup").count(), 2);
        let long = "a_very_long_symbol_name_".repeat(8);
        assert!(k.symbol(&long).is_some(), "two-byte length entry");
        // init_task.comm through the image mapping.
        let comm = k
            .read_cstr(Kva(k.symbol("init_task").unwrap().0 + image::COMM), 16)
            .unwrap();
        assert_eq!(comm, "swapper/0");
    }
}

/// A second view of the same kernel given the first one's symbols (its kallsyms index,
/// not built again) resolves every symbol alike.
#[test]
fn a_second_view_reuses_the_first_ones_symbols() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let first = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    let opts = KernelOptions {
        vmcoreinfo: Some(first.vmcoreinfo().clone()),
        symbols: Some(first.symbol_source()),
        ..Default::default()
    };
    let second = Kernel::new(sk.guest.phys(&[]), opts).unwrap();
    for (name, addr, _) in &sk.symbols {
        assert_eq!(
            second.symbol(name).map(|a| a.0),
            first.symbol(name).map(|a| a.0)
        );
        assert!(first.symbol(name).is_some_and(|a| a.0 == *addr) || name == "dup");
    }
    assert_eq!(second.symbols().len(), first.symbols().len());
    assert!(format!("{:?}", first.symbol_source()).contains("kallsyms"));
}

#[test]
fn direct_map_image_and_walk_agree() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let sk = SynthKernel::build(spec(mode, KallsymsForm::PcRelative));
        let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
        let it = k.symbol("init_task").unwrap();
        let pa = k.translate(it).unwrap();
        assert_eq!(pa, Gpa(image::PHYS + image::INIT_TASK));
        // The same bytes through the direct map.
        let dm = Kva(k.page_offset_base() + pa.0);
        assert_eq!(k.translate(dm).unwrap(), pa);
        assert_eq!(
            k.read_cstr(Kva(dm.0 + image::COMM), 16).unwrap(),
            "swapper/0"
        );
        // And through the page tables (the image is mapped there with 2 MiB pages).
        let w =
            guest_mem::x86::paging::walk(k.phys(), k.page_table_root().unwrap(), mode, it).unwrap();
        assert_eq!((w.gpa, w.page_size), (pa, 2 << 20));
    }
}

#[test]
fn per_cpu_data_is_read_through_page_walks() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let mut sk = SynthKernel::build(spec(mode, KallsymsForm::PcRelative));
        // Write a marker into each CPU's runqueues, physically (areas are mapped
        // page-reversed, so a linear guess would read the wrong page).
        for cpu in 0..4u64 {
            let va = sk
                .symbol("runqueues")
                .0
                .wrapping_add(sk.per_cpu_offsets[cpu as usize]);
            let page_in_area = (va - (sk.vmalloc_base + cpu * 0x20_0000)) / 4096;
            let area_pa = image::PERCPU_PHYS_TOP - (cpu + 1) * image::PERCPU_AREA;
            let pa = area_pa + image::PERCPU_AREA - 4096 - page_in_area * 4096 + (va & 0xfff);
            sk.guest.write_u64(pa, 0xc0ffee00 + cpu);
        }
        let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
        assert_eq!(k.nr_cpu_ids(), 4);
        for cpu in 0..4 {
            let a = k.per_cpu_symbol("runqueues", cpu).unwrap();
            assert_eq!(k.read_u64(a).unwrap(), 0xc0ffee00 + cpu as u64);
            assert_eq!(k.per_cpu_offset(cpu).unwrap(), sk.per_cpu_offsets[cpu]);
        }
        assert_eq!(
            k.per_cpu_symbol("runqueues", 4),
            Err(KernelError::NoSuchCpu { cpu: 4, nr: 4 })
        );
        assert!(matches!(
            k.per_cpu_symbol("nope", 0),
            Err(KernelError::MissingSymbol(_))
        ));
    }
}

#[test]
fn reads_cross_non_contiguous_pages() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let mut g = sk.guest.clone();
    // Two virtually adjacent pages backed by physical pages in reverse order.
    let va = sk.vmalloc_base; // CPU 0 area
    let pa0 = image::PERCPU_PHYS_TOP - image::PERCPU_AREA + image::PERCPU_AREA - 4096;
    let pa1 = pa0 - 4096;
    g.write(pa0 + 4092, b"ABCD");
    g.write(pa1, b"EFGH");
    let k = Kernel::new(g.phys(&[]), KernelOptions::default()).unwrap();
    let mut b = [0u8; 8];
    k.read_kva(Kva(va + 4092), &mut b).unwrap();
    assert_eq!(&b, b"ABCDEFGH");
    // Bulk read of the whole 64 KiB area equals the page-by-page reads.
    let mut bulk = vec![0u8; 0x10000];
    k.read_pages(Kva(va), &mut bulk).unwrap();
    for p in 0..16u64 {
        let mut one = [0u8; 4096];
        k.read_kva(Kva(va + p * 4096), &mut one).unwrap();
        assert_eq!(&bulk[p as usize * 4096..][..4096], &one[..]);
    }
    // Past the area: the next page is not mapped; the error names the address.
    let mut big = vec![0u8; 0x10001];
    match k.read_kva(Kva(va), &mut big) {
        Err(MemError::NotPresent { kva, level: 1, .. }) => assert_eq!(kva, Kva(va + 0x10000)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn holes_are_errors_not_zeros() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let k = Kernel::new(
        sk.guest.phys(&[(0x200_0000, 0x10_0000)]),
        KernelOptions::default(),
    )
    .unwrap();
    let dm = Kva(k.page_offset_base() + 0x200_0010);
    match k.read_u64(dm) {
        Err(MemError::At { kva, source }) => {
            assert_eq!(kva, dm);
            assert_eq!(
                *source,
                MemError::Unmapped {
                    gpa: Gpa(0x200_0010),
                    len: 8
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // Beyond the end of RAM through the direct map.
    assert!(k.read_u64(Kva(k.page_offset_base() + 0x4000_0000)).is_err());
    // Non-canonical.
    assert!(matches!(
        k.read_u64(Kva(0x8000_0000_0000_0000)),
        Err(MemError::Untranslatable { .. })
    ));
    // Wrap-around of a read near the top of the address space.
    let mut b = [0u8; 16];
    assert!(k.read_kva(Kva(u64::MAX - 7), &mut b).is_err());
}

#[test]
fn vmcoreinfo_given_equals_scanned_and_missing_is_an_error() {
    let sk = SynthKernel::build(spec(PagingMode::Level5, KallsymsForm::RelativeBase));
    let given = VmcoreInfo::parse(sk.vmcoreinfo.as_bytes()).unwrap();
    let a = kernel_given(sk.guest.phys(&[]), given.clone()).unwrap();
    let b = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    assert_eq!(a.vmcoreinfo(), b.vmcoreinfo());
    assert_eq!(a.symbols().len(), b.symbols().len());

    let mut s = spec(PagingMode::Level4, KallsymsForm::PcRelative);
    s.note_in_ram = false;
    let none = SynthKernel::build(s);
    assert_eq!(
        Kernel::new(none.guest.phys(&[]), KernelOptions::default()).unwrap_err(),
        KernelError::NoVmcoreinfo
    );
}

#[test]
fn system_map_replaces_kallsyms_and_is_shifted_by_kaslr() {
    let s = spec(PagingMode::Level4, KallsymsForm::PcRelative);
    let sk = SynthKernel::build(s.clone());
    // A System.map has link-time addresses (KASLR removed).
    let map: String = sk
        .symbols
        .iter()
        .map(|(n, a, t)| format!("{:016x} {t} {n}\n", a - s.kaslr))
        .collect();
    // VMCOREINFO without kallsyms lines: only the System.map can give symbols.
    let text: String = sk
        .vmcoreinfo
        .lines()
        .filter(|l| !l.contains("kallsyms"))
        .map(|l| format!("{l}\n"))
        .collect();
    let info = VmcoreInfo::parse(text.as_bytes()).unwrap();
    let without = kernel_given(sk.guest.phys(&[]), info.clone());
    assert_eq!(without.unwrap_err(), KernelError::NoKallsyms);
    let k = Kernel::new(
        sk.guest.phys(&[]),
        KernelOptions {
            vmcoreinfo: Some(info),
            system_map: Some(SymbolTable::from_system_map(&map).unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(k.symbol("init_task"), Some(sk.symbol("init_task")));
    assert_eq!(k.nr_cpu_ids(), 4);
}

#[test]
fn nearest_symbol_decodes_pointers_into_objects() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    let esc = sk.symbol("ext_sched_class");
    let n = k.nearest_symbol(Kva(esc.0 + 0x18)).unwrap();
    assert_eq!((n.symbol.name, n.offset), ("ext_sched_class", 0x18));
    let n = k
        .nearest_symbol(Kva(sk.symbol("schedule").0 + 0x42))
        .unwrap();
    assert_eq!(n.symbol.name, "schedule");
    assert!(k.nearest_symbol(Kva(0xffff_ffff_0000_0000)).is_none());
}

#[test]
fn translation_cache_is_coherent_after_flush_and_can_be_disabled() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let va = Kva(sk.vmalloc_base + 0x10);
    let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    let before = k.translate(va).unwrap();
    // A different Kernel over memory whose PTE was changed: the cache is per
    // memory snapshot, so model "the guest changed its tables" with a second
    // snapshot and the same cache behaviour through `with_page_table_root`.
    let mut g = sk.guest.clone();
    g.map(Kva(sk.vmalloc_base), Gpa(0x5_0000), PageSize::Size4K);
    let k2 = Kernel::new(g.phys(&[]), KernelOptions::default()).unwrap();
    assert_eq!(k2.translate(va).unwrap(), Gpa(0x5_0010));
    assert_ne!(before, Gpa(0x5_0010));
    // Cached translations survive until flushed; disabling bypasses the cache.
    k2.set_translation_cache(false);
    assert_eq!(k2.translate(va).unwrap(), Gpa(0x5_0010));
    k2.set_translation_cache(true);
    k2.flush_translation_cache();
    assert_eq!(k2.translate(va).unwrap(), Gpa(0x5_0010));
    // Registers of a later freeze: same symbols, new CPUs.
    let regs = vec![guest_mem::CpuRegs {
        rip: 1,
        ..Default::default()
    }];
    let k4 = k2.with_cpus(regs.clone());
    assert_eq!(k4.cpus(), &regs[..]);
    assert_eq!(k4.symbols().len(), k2.symbols().len());
    assert_eq!(k4.translate(va).unwrap(), Gpa(0x5_0010));
    // Another root (e.g. a task's page tables) with nothing mapped.
    let k3 = k2.with_page_table_root(Gpa(0x8_0000));
    assert!(matches!(k3.translate(va), Err(MemError::NotPresent { .. })));
}

#[test]
fn live_memory_cache_staleness_is_handled_by_flush() {
    // Live memory: a GuestMemoryMmap the "guest" keeps writing.
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), image::RAM)]).unwrap();
    gm.write_slice(&sk.guest.ram, GuestAddress(0)).unwrap();
    let k = Kernel::new(
        guest_mem::PhysMem::from_guest_memory(&gm).unwrap(),
        KernelOptions::default(),
    )
    .unwrap();
    let va = Kva(sk.vmalloc_base + 0x10);
    let old = k.translate(va).unwrap();
    // The guest remaps the page.
    let mut g = sk.guest.clone();
    g.map(Kva(sk.vmalloc_base), Gpa(0x5_0000), PageSize::Size4K);
    let pte = g.entry_gpa(Kva(sk.vmalloc_base), 1).unwrap();
    gm.write_obj(g.read_u64(pte), GuestAddress(pte)).unwrap();
    assert_eq!(k.translate(va).unwrap(), old, "cached until flushed");
    k.flush_translation_cache();
    assert_eq!(k.translate(va).unwrap(), Gpa(0x5_0010));
    // Values change under us and are seen without any flush (no data cache).
    let it = k.symbol("init_task").unwrap();
    gm.write_obj(0x1234u64, GuestAddress(image::PHYS + image::INIT_TASK))
        .unwrap();
    assert_eq!(k.read_u64(it).unwrap(), 0x1234);
}

#[test]
fn typed_reads_and_caps() {
    let sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    let pcpu = k.symbol("__per_cpu_offset").unwrap();
    let v: Vec<u64> = k.read_array(pcpu, 4, 16).unwrap();
    assert_eq!(v, sk.per_cpu_offsets);
    assert!(matches!(
        k.read_array::<u64>(pcpu, 1 << 40, 8192),
        Err(MemError::TooLarge { count, cap: 8192, .. }) if count == 1 << 40
    ));
    let nr: u32 = k.read_obj(k.symbol("nr_cpu_ids").unwrap()).unwrap();
    assert_eq!(nr, 4);
    #[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, Debug, PartialEq)]
    #[repr(C)]
    struct Pair {
        a: u64,
        b: u64,
    }
    let p: Pair = k.read_obj(pcpu).unwrap();
    assert_eq!(
        p,
        Pair {
            a: sk.per_cpu_offsets[0],
            b: sk.per_cpu_offsets[1]
        }
    );
    // Through &dyn KvaRead, as btf-walk uses it.
    let dynr: &dyn KvaRead = &k;
    assert_eq!(dynr.read_u32(k.symbol("nr_cpu_ids").unwrap()).unwrap(), 4);
    assert!(dynr.read_bytes(pcpu, 100, 10).is_err());
}

#[test]
fn stale_vmcoreinfo_copies_in_ram_are_skipped() {
    let mut sk = SynthKernel::build(spec(PagingMode::Level4, KallsymsForm::PcRelative));
    // An older kernel's note, lower in RAM than the live one: its kallsyms tables
    // are not where it says (the scan finds it first; decoding it fails).
    let stale = sk
        .vmcoreinfo
        .replace("OSRELEASE=7.3.0-synthetic", "OSRELEASE=6.1.0-stale")
        .replace("SYMBOL(kallsyms_names)=", "SYMBOL(kallsyms_names)=1");
    sk.guest
        .write(0x2_0000, &guest_mem::synth::vmcoreinfo_note(&stale));
    let found = guest_mem::vmcoreinfo::scan_vmcoreinfo_all(&sk.guest.phys(&[]), 8);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].info.osrelease(), Some("6.1.0-stale"));
    let k = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
    assert_eq!(k.osrelease(), "7.3.0-synthetic");
    assert_eq!(k.symbol("init_task"), Some(sk.symbol("init_task")));
}

/// A VMCOREINFO whose `init_top_pgt` (and `swapper_pg_dir`) point at a page that is no
/// page table: the root is checked against the kernel image, kallsyms' `init_top_pgt`
/// is taken instead, per-CPU (vmalloc) reads work, and the caveat says so. With no
/// usable root at all, the caveat says that too.
#[test]
fn a_wrong_page_table_root_is_replaced_and_said() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let sk = SynthKernel::build(spec(mode, KallsymsForm::PcRelative));
        let good = Kernel::new(sk.guest.phys(&[]), KernelOptions::default()).unwrap();
        assert!(good.caveats().is_empty(), "{:?}", good.caveats());
        let rq1 = good.per_cpu_symbol("runqueues", 1).unwrap();
        let want = good.read_u64(rq1).unwrap();

        let bad_root = sk.text.0 + 0x20_0000; // the data page: not a table
        let text: String = sk
            .vmcoreinfo
            .lines()
            .map(|l| {
                if l.starts_with("SYMBOL(init_top_pgt)=")
                    || l.starts_with("SYMBOL(swapper_pg_dir)=")
                {
                    let (k, _) = l.split_once('=').unwrap();
                    format!("{k}={bad_root:x}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let info = VmcoreInfo::parse(text.as_bytes()).unwrap();
        let k = kernel_given(sk.guest.phys(&[]), info.clone()).unwrap();
        assert_eq!(k.page_table_root(), good.page_table_root());
        assert_eq!(
            k.read_u64(k.per_cpu_symbol("runqueues", 1).unwrap())
                .unwrap(),
            want
        );
        assert_eq!(k.caveats().len(), 1, "{:?}", k.caveats());
        assert!(
            k.caveats()[0]
                .contains("does not map the kernel image; walking from kallsyms' init_top_pgt"),
            "{:?}",
            k.caveats()
        );

        // The real tables zeroed: nothing maps the image, and the caveat says so.
        let mut g = sk.guest.clone();
        let root = good.page_table_root().unwrap().0;
        g.write(root, &[0u8; 4096]);
        let k = kernel_given(g.phys(&[]), info).unwrap();
        assert!(
            k.caveats()
                .iter()
                .any(|c| c.contains("no root maps the kernel image")),
            "{:?}",
            k.caveats()
        );
    }
}
