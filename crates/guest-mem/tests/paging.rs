//! Page walks over synthetic page tables: every level and page size, both depths,
//! holes, self-referencing tables, entries pointing outside RAM, garbage bits.

use guest_mem::synth::{PageSize, SynthGuest};
use guest_mem::x86::paging::{PagingMode, Translation, walk};
use guest_mem::{Gpa, Kva, MemError};

const MB: u64 = 1 << 20;

fn guest(mode: PagingMode) -> SynthGuest {
    SynthGuest::new(mode, 8 * MB as usize, 0x10_0000, 0x10_0000)
}

/// A 4-level guest with `kva` mapped to `gpa` by one page of `size`.
fn level4_with(kva: Kva, gpa: u64, size: PageSize) -> SynthGuest {
    let mut g = guest(PagingMode::Level4);
    g.map(kva, Gpa(gpa), size);
    g
}

fn high(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::Level4 => 0xffff_8000_0000_0000,
        PagingMode::Level5 => 0xff00_0000_0000_0000,
    }
}

#[test]
fn every_page_size_translates_in_both_modes() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let mut g = guest(mode);
        let base = high(mode);
        let k4 = Kva(base + 0x1234_5000);
        let k2m = Kva(base + 0x4000_0000 + 6 * 2 * MB);
        let k1g = Kva(base + 0x80_0000_0000);
        g.map(k4, Gpa(0x40_3000), PageSize::Size4K);
        g.map(k2m, Gpa(0x20_0000), PageSize::Size2M);
        g.map(k1g, Gpa(0), PageSize::Size1G);
        let mem = g.phys(&[]);
        let w = |kva| walk(&mem, Gpa(g.root), mode, kva);
        assert_eq!(
            w(Kva(k4.0 + 0x7f8)).unwrap(),
            Translation {
                gpa: Gpa(0x40_37f8),
                page_size: 4096
            }
        );
        assert_eq!(
            w(Kva(k2m.0 + 0x1_2345)).unwrap(),
            Translation {
                gpa: Gpa(0x21_2345),
                page_size: 2 * MB
            }
        );
        assert_eq!(
            w(Kva(k1g.0 + 0x3456_789a)).unwrap(),
            Translation {
                gpa: Gpa(0x3456_789a),
                page_size: 1 << 30
            }
        );
        // The next 4K page was never mapped: its PTE is not present (level 1).
        assert!(matches!(
            w(Kva(k4.0 + 0x1000)),
            Err(MemError::NotPresent { level: 1, .. })
        ));
    }
}

#[test]
fn not_present_at_every_level_names_the_level() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let top = mode.levels();
        let mut g = guest(mode);
        let base = high(mode);
        let kva = Kva(base + 0x1_0000_0000 + 0x20_3000);
        g.map(kva, Gpa(0x50_0000), PageSize::Size4K);
        for level in 1..=top {
            let mut g2 = g.clone();
            let old = g2.edit_entry(kva, level, |old| old & !1);
            let mem = g2.phys(&[]);
            match walk(&mem, Gpa(g2.root), mode, kva) {
                Err(MemError::NotPresent {
                    kva: k,
                    level: l,
                    entry,
                }) => {
                    assert_eq!((k, l, entry), (kva, level, old & !1), "mode {mode:?}");
                }
                other => panic!("level {level}: {other:?}"),
            }
        }
        // An address whose top-level entry was never filled.
        let mem = g.phys(&[]);
        let other = Kva(base + (5u64 << (12 + 9 * (u32::from(top) - 1))));
        assert!(matches!(
            walk(&mem, Gpa(g.root), mode, other),
            Err(MemError::NotPresent { level, .. }) if level == top
        ));
    }
}

#[test]
fn non_canonical_addresses_are_untranslatable() {
    let g = guest(PagingMode::Level4);
    let mem = g.phys(&[]);
    for a in [
        0x0000_8000_0000_0000u64,
        0xff00_0000_0000_0000,
        0x8000_0000_0000_0000,
    ] {
        assert!(
            matches!(
                walk(&mem, Gpa(g.root), PagingMode::Level4, Kva(a)),
                Err(MemError::Untranslatable { .. })
            ),
            "{a:#x}"
        );
    }
    // 0xff00.. is canonical with 57-bit addresses.
    let g5 = guest(PagingMode::Level5);
    let mem5 = g5.phys(&[]);
    assert!(matches!(
        walk(
            &mem5,
            Gpa(g5.root),
            PagingMode::Level5,
            Kva(0xff00_0000_0000_0000)
        ),
        Err(MemError::NotPresent { level: 5, .. })
    ));
    assert!(matches!(
        walk(
            &mem5,
            Gpa(g5.root),
            PagingMode::Level5,
            Kva(0xfe00_0000_0000_0000)
        ),
        Err(MemError::Untranslatable { .. })
    ));
}

#[test]
fn self_referencing_tables_terminate() {
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let mut g = guest(mode);
        // Slot 0x1ed of the root points at the root itself (a recursive mapping).
        let slot = 0x1ed_u64;
        let root = g.root;
        g.write_u64(root + slot * 8, root | 3);
        let mem = g.phys(&[]);
        // Using the slot at every level lands on the root page itself.
        let shift_top = 12 + 9 * (u32::from(mode.levels()) - 1);
        let mut a = 0u64;
        for l in 0..mode.levels() {
            a |= slot << (shift_top - 9 * u32::from(l));
        }
        let a = Kva(sign_extend(a | 0x18, mode));
        let t = walk(&mem, Gpa(root), mode, a).unwrap();
        assert_eq!(t.gpa, Gpa(root + 0x18));
        // The recursive entry's own slot reads as a "page" containing the entry.
        assert_eq!(g.read_u64(root + 0x18), 0);
    }
}

fn sign_extend(a: u64, mode: PagingMode) -> u64 {
    let s = 64 - mode.va_bits();
    (((a << s) as i64) >> s) as u64
}

#[test]
fn entries_pointing_outside_ram_and_into_holes_fail_with_the_address() {
    let mode = PagingMode::Level4;
    let kva = Kva(0xffff_c900_0000_0000);
    let g = level4_with(kva, 0x60_0000, PageSize::Size4K);
    // A PDE pointing far outside guest RAM.
    let pde = g.entry_gpa(kva, 2).unwrap();
    let mut bad = g.clone();
    bad.write_u64(pde, 0x7_0000_0000 | 3);
    let mem = bad.phys(&[]);
    match walk(&mem, Gpa(bad.root), mode, kva) {
        Err(MemError::Unmapped { gpa, len: 8 }) => assert_eq!(gpa, Gpa(0x7_0000_0000)),
        other => panic!("{other:?}"),
    }
    // A root outside RAM.
    assert!(matches!(
        walk(&mem, Gpa(0x9_0000_0000), mode, kva),
        Err(MemError::Unmapped { .. })
    ));
    // The PT itself in a hole.
    let pt = g.entry_gpa(kva, 1).unwrap() & !0xfff;
    let mem = g.phys(&[(pt, 4096)]);
    match walk(&mem, Gpa(g.root), mode, kva) {
        Err(MemError::Unmapped { gpa, .. }) => assert_eq!(gpa.0 & !0xfff, pt),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flag_and_reserved_bits_do_not_leak_into_addresses() {
    let mode = PagingMode::Level4;
    let k2m = Kva(0xffff_8880_0040_0000);
    let mut g = level4_with(k2m, 0x40_0000, PageSize::Size2M);
    // NX (63), protection key bits (59..62), PAT on a large page (bit 12), A/D.
    g.edit_entry(k2m, 2, |v| v | (1 << 63) | (0xf << 59) | (1 << 12) | 0x60);
    let k4 = Kva(0xffff_8880_4000_0000);
    g.map(k4, Gpa(0x70_0000), PageSize::Size4K);
    g.edit_entry(k4, 1, |v| v | (1 << 63) | (0x7f << 52) | 0x1e0);
    let mem = g.phys(&[]);
    assert_eq!(
        walk(&mem, Gpa(g.root), mode, Kva(k2m.0 + 0x1f_fff8))
            .unwrap()
            .gpa,
        Gpa(0x5f_fff8)
    );
    assert_eq!(
        walk(&mem, Gpa(g.root), mode, k4).unwrap().gpa,
        Gpa(0x70_0000)
    );
    // CR3 with PCID bits and the no-flush bit.
    let cr3 = g.root | 0x5 | (1 << 63);
    assert_eq!(walk(&mem, Gpa(cr3), mode, k4).unwrap().gpa, Gpa(0x70_0000));
}

#[test]
fn ps_bit_at_top_levels_is_not_a_huge_page() {
    // PS is reserved in PML4/PML5 entries; a garbage table with it set must still
    // be walked as a table (or fail), never read as a 512 GiB page.
    let mode = PagingMode::Level4;
    let kva = Kva(0xffff_c900_0000_0000);
    let mut g = level4_with(kva, 0x60_0000, PageSize::Size4K);
    g.edit_entry(kva, 4, |v| v | 0x80);
    let mem = g.phys(&[]);
    assert_eq!(
        walk(&mem, Gpa(g.root), mode, kva).unwrap().gpa,
        Gpa(0x60_0000)
    );
}

/// A sparse 4 GiB window (an arena) is enumerated from its tables: 4 KiB and 2 MiB
/// mappings inside it counted, pages outside it ignored, the list capped, a
/// self-referencing table bounded, an unreadable table counted.
#[test]
fn present_pages_of_a_sparse_window() {
    use guest_mem::x86::paging::present_pages;
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let mut g = guest(mode);
        let win = high(mode) + 0x40_0000_0000;
        let end = win + (1 << 32);
        g.map(Kva(win), Gpa(0x40_0000), PageSize::Size4K);
        g.map(Kva(win + 0x1000), Gpa(0x40_1000), PageSize::Size4K);
        g.map(Kva(win + 0x8000_0000), Gpa(0x20_0000), PageSize::Size2M);
        g.map(Kva(win - 0x1000), Gpa(0x40_2000), PageSize::Size4K); // before the window
        g.map(Kva(end), Gpa(0x40_3000), PageSize::Size4K); // after it
        let mem = g.phys(&[]);
        let p = present_pages(&mem, Gpa(g.root), mode, Kva(win), Kva(end), 1000).unwrap();
        assert_eq!(p.total, 2 + 512, "{mode:?}");
        assert_eq!(p.pages.len(), 514);
        assert_eq!(p.pages[..2], [Kva(win), Kva(win + 0x1000)]);
        assert_eq!(p.pages[2], Kva(win + 0x8000_0000));
        assert!(!p.truncated && p.unreadable_tables == 0);
        let capped = present_pages(&mem, Gpa(g.root), mode, Kva(win), Kva(end), 3).unwrap();
        assert_eq!((capped.total, capped.pages.len()), (514, 3));

        // A PTE table pointing outside RAM is counted, not followed.
        g.edit_entry(Kva(win), 2, |v| (v & 0xfff) | 0x7_0000_0000);
        let mem = g.phys(&[]);
        let p = present_pages(&mem, Gpa(g.root), mode, Kva(win), Kva(end), 1000).unwrap();
        assert_eq!((p.total, p.unreadable_tables), (512, 1));

        // Every PDE of the window's PD pointing back at the PD itself: bounded by the
        // level count (a PD taken as a PT maps "pages"), never a loop.
        let pdpte = g.entry_gpa(Kva(win), 3).unwrap();
        let pd_gpa = g.read_u64(pdpte) & 0x000f_ffff_ffff_f000;
        for i in 0..512 {
            g.write_u64(pd_gpa + i * 8, pd_gpa | 3);
        }
        let mem = g.phys(&[]);
        let p = present_pages(&mem, Gpa(g.root), mode, Kva(win), Kva(end), 10).unwrap();
        assert!(p.total > 0 && p.pages.len() == 10);

        // An unreadable root is an error.
        assert!(present_pages(&mem, Gpa(1 << 40), mode, Kva(win), Kva(end), 10).is_err());
    }
}
