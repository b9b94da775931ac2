//! Any bytes → `Btf::from_bytes` (raw BTF, ELF, bzImage, gzip/xz/zstd containers).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(btf) = btf_walk::Btf::from_bytes(data) {
        let _ = btf.struct_by_name("task_struct");
    }
});
