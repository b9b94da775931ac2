//! Arbitrary bytes as guest RAM holding page tables: walk from any root, at any
//! address, in both paging modes.
#![no_main]

use guest_mem::x86::paging::{PagingMode, walk};
use guest_mem::{Gpa, Kva, PhysMem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let root = u64::from_le_bytes(data[0..8].try_into().unwrap());
    let kva = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let base = u64::from_le_bytes(data[16..24].try_into().unwrap()) & 0xffff_f000;
    let ram = data[24..].to_vec();
    let Ok(mem) = PhysMem::from_buffers(vec![(Gpa(base), ram)]) else {
        return;
    };
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        if let Ok(t) = walk(&mem, Gpa(root), mode, Kva(kva)) {
            assert!(t.page_size == 4096 || t.page_size == 2 << 20 || t.page_size == 1 << 30);
            assert_eq!(t.gpa.0 & (t.page_size - 1), kva & (t.page_size - 1));
        }
        // Neighbouring addresses share tables: exercise every index path too.
        for i in 0..4u64 {
            let _ = walk(&mem, Gpa(root), mode, Kva(kva ^ (i << 21)));
        }
    }
});
