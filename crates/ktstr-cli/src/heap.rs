//! Fresh memory for a capture, faulted in on the idle core.
//!
//! A capture of a real scheduler's vmcore allocates tens of MiB (the BTF, the symbol
//! index, hundreds of thousands of rendered values) and, on a VM, the first touch of each
//! fresh page costs about as much as what is stored in it: half of all page faults of
//! `ktstr capture` were the main thread's first touches of its own heap. The first phases
//! run on one thread, so the second core can take those faults ahead of time:
//! [`prefault_for_capture`] makes the main heap keep what it frees and not hand out big
//! blocks as fresh mappings of their own, grows it by [`PREFAULT`] bytes and frees them
//! (they stay the heap's free top), then asks the kernel on another thread to populate
//! those pages (`MADV_POPULATE_WRITE`: page tables filled as if written, contents
//! unchanged). The main thread's allocations then land in pages already present. Peak
//! memory grows by what the capture would not have used of [`PREFAULT`] (`cargo xtask
//! bench dump` prints it).
//!
//! glibc only (`mallopt`); elsewhere nothing is done.

/// Heap made ready. Measured on the lab's vmcores (`perf stat`, `/usr/bin/time`): 8 MiB
/// takes most of the gain (scx_layered 27.1 → 25.3 ms, the stall 15.1 → 13.5 ms) for
/// +1.4 and +3 MiB of peak memory; 16 MiB gains nothing more and costs +9 and +12 MiB.
pub const PREFAULT: usize = 8 << 20;

/// See the module documentation. Call once, before the capture allocates.
pub fn prefault_for_capture() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    prefault_glibc(PREFAULT);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn prefault_glibc(len: usize) {
    // SAFETY: `mallopt` only tunes the allocator (the values are in range). The block
    // is allocated and freed before anything else sees it; afterwards only its address
    // range is used, by `madvise`, which never changes memory contents: populating a page
    // the main thread meanwhile allocated and wrote is a no-op, and the range stays part
    // of the heap (trimming is off), so no other mapping can appear there. A failed call
    // (a kernel without MADV_POPULATE_WRITE, 5.14) just leaves the faults to first use.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, (len * 4) as libc::c_int) == 0
            || libc::mallopt(libc::M_TRIM_THRESHOLD, (len * 32) as libc::c_int) == 0
        {
            return;
        }
        let p = libc::malloc(len);
        if p.is_null() {
            return;
        }
        libc::free(p);
        const PAGE: usize = 4096;
        let start = (p as usize).div_ceil(PAGE) * PAGE;
        let end = (p as usize + len) / PAGE * PAGE;
        if end <= start {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("prefault".into())
            .spawn(move || {
                libc::madvise(
                    start as *mut libc::c_void,
                    end - start,
                    libc::MADV_POPULATE_WRITE,
                );
            });
        // No thread (out of resources): the faults are taken at first use, as without.
        drop(spawned);
    }
}
