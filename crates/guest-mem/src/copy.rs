//! Copies out of guest memory that may change while we read it.
//!
//! Live guest RAM (a running KVM or QEMU guest) is written by other threads and
//! processes behind Rust's back, so plain `memcpy` from it would be a data race in
//! the language's model. These copies use volatile loads: each aligned 8-byte word
//! is read with one instruction (an aligned `u64` read is single-copy atomic on
//! x86_64, so a pointer read this way is never torn), larger copies use 16-byte
//! vector loads for bandwidth.

/// Copies `dst.len()` bytes from `src` using volatile loads.
///
/// # Safety
/// `src..src + dst.len()` must be readable memory for the duration of the call
/// (it may be concurrently modified by others).
#[inline]
pub(crate) unsafe fn copy_volatile(dst: &mut [u8], src: *const u8) {
    let len = dst.len();
    let d = dst.as_mut_ptr();
    if len == 8 && (src as usize) & 7 == 0 {
        // SAFETY: aligned and readable per the caller's contract; `d` is valid for 8 bytes.
        unsafe {
            let v = std::ptr::read_volatile(src as *const u64);
            std::ptr::write_unaligned(d as *mut u64, v);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if len >= 256 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked); the range contract is the caller's.
        unsafe { copy_volatile_avx2(dst, src) };
        return;
    }
    // SAFETY: the caller's range contract; `u128` is 16 bytes, 16-aligned.
    unsafe { copy_blocks::<u128>(d, src, len) }
}

/// Page-sized copies with 32-byte volatile loads (one `vmovdqa` each): twice the width
/// of the SSE blocks, which is what keeps page reads of live memory near `memcpy` speed.
///
/// # Safety
/// As [`copy_volatile`], and the CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_volatile_avx2(dst: &mut [u8], src: *const u8) {
    // SAFETY: the caller's range contract; `__m256i` is 32 bytes, 32-aligned. Inlined
    // here, its loads compile to AVX2 instructions.
    unsafe { copy_blocks::<std::arch::x86_64::__m256i>(dst.as_mut_ptr(), src, dst.len()) }
}

/// Copies `len` bytes from `src` to `d` with volatile loads of blocks of `T`: bytes until
/// `src` is aligned to a block, four blocks per round (so the loop overhead does not
/// halve the bandwidth of page-sized copies), single blocks, 8-byte words, then bytes.
///
/// # Safety
/// `src..src + len` readable and `d..d + len` writable; `T` a plain vector or integer
/// type whose alignment is its size (a power of two, at least 8).
#[inline(always)]
unsafe fn copy_blocks<T: Copy>(d: *mut u8, src: *const u8, len: usize) {
    let block = std::mem::size_of::<T>();
    let mut i = 0usize;
    while i < len && (src as usize).wrapping_add(i) & (block - 1) != 0 {
        // SAFETY: i < len, within the caller's readable range and `d`.
        unsafe { *d.add(i) = std::ptr::read_volatile(src.add(i)) };
        i += 1;
    }
    while i + 4 * block <= len {
        // SAFETY: `src + i` is block-aligned and `i + 4 blocks <= len`: in range.
        unsafe {
            let p = src.add(i) as *const T;
            let a = std::ptr::read_volatile(p);
            let b = std::ptr::read_volatile(p.add(1));
            let c = std::ptr::read_volatile(p.add(2));
            let e = std::ptr::read_volatile(p.add(3));
            let q = d.add(i) as *mut T;
            std::ptr::write_unaligned(q, a);
            std::ptr::write_unaligned(q.add(1), b);
            std::ptr::write_unaligned(q.add(2), c);
            std::ptr::write_unaligned(q.add(3), e);
        }
        i += 4 * block;
    }
    while i + block <= len {
        // SAFETY: `src + i` is block-aligned and in range; the store is unaligned-safe.
        unsafe {
            let v = std::ptr::read_volatile(src.add(i) as *const T);
            std::ptr::write_unaligned(d.add(i) as *mut T, v);
        }
        i += block;
    }
    while i + 8 <= len {
        // SAFETY: `src + i` is 8-aligned here (the block-aligned body ended), in range.
        unsafe {
            let v = std::ptr::read_volatile(src.add(i) as *const u64);
            std::ptr::write_unaligned(d.add(i) as *mut u64, v);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: i < len.
        unsafe { *d.add(i) = std::ptr::read_volatile(src.add(i)) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_alignment_and_length() {
        let src: Vec<u8> = (0..320u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..20 {
            for len in [
                0usize, 1, 7, 8, 9, 15, 16, 17, 31, 64, 100, 250, 256, 257, 280,
            ] {
                let mut dst = vec![0u8; len];
                // SAFETY: start + len <= 300.
                unsafe { copy_volatile(&mut dst, src.as_ptr().add(start)) };
                assert_eq!(
                    &dst[..],
                    &src[start..start + len],
                    "start {start} len {len}"
                );
            }
        }
    }
}
