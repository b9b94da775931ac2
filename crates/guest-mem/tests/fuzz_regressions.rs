//! Inputs the fuzzers (`crates/guest-mem/fuzz`) once crashed on, replayed through the
//! same steps as the fuzz targets. Each file's name says what was wrong.

use std::path::Path;

use guest_mem::{Gpa, PhysMem, PhysRead};

#[test]
fn replay_vmcore_crashes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/vmcore");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        guest_mem::fuzz::vmcore(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn ranges_at_the_top_of_the_address_space_end_the_scan() {
    // The first fuzz finding: a PT_LOAD just below 2^64 made the page-start scan
    // overflow. Build that memory directly.
    for start in [u64::MAX - 99, u64::MAX - 4095 - 40, u64::MAX - 8191] {
        let len = u64::MAX - start;
        let mem = PhysMem::from_buffers(vec![(Gpa(start), vec![0x41; len as usize])]).unwrap();
        assert!(guest_mem::vmcoreinfo::scan_vmcoreinfo(&mem).is_none());
        let mut b = [0u8; 16];
        assert!(mem.read_phys(Gpa(u64::MAX - 8), &mut b).is_err());
    }
}
