//! What the fuzz targets (`crates/guest-mem/fuzz`) do with an input, shared with the
//! replay of their past findings (`tests/fuzz_regressions.rs`) so the two cannot drift.

use crate::{Gpa, KernelOptions, Kva, KvaRead, PhysRead, Vmcore};

/// Arbitrary bytes as an ELF vmcore: parse, map, find the kernel, read. Errors are
/// expected; only a panic or a hang is a finding.
pub fn vmcore(data: &[u8]) {
    let Ok(core) = Vmcore::from_bytes(data.to_vec()) else {
        return;
    };
    let mut b = [0u8; 64];
    for r in core.phys().ranges() {
        let _ = core.phys().read_phys(r.start, &mut b);
        let _ = core
            .phys()
            .read_phys(Gpa(r.end().saturating_sub(3)), &mut b);
    }
    if let Ok(k) = core.kernel(KernelOptions::default()) {
        for a in [
            k.page_offset_base(),
            0xffff_ffff_8100_0000,
            0xffff_c900_0000_0000,
        ] {
            let _ = k.read_kva(Kva(a), &mut b);
        }
        let _ = k.nearest_symbol(Kva(0xffff_ffff_8100_0000));
    }
}
