//! Arbitrary bytes as an ELF vmcore: parse, map, find the kernel, read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| guest_mem::fuzz::vmcore(data));
