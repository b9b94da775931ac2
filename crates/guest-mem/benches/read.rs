//! Read throughput of guest-mem against the physical limit, in one run:
//!
//! - random 8-byte reads at kernel virtual addresses (direct map; and vmalloc through
//!   page walks with a warm translation cache, and with the cache off), per second,
//!   vs an 8-byte `memcpy` of the same bytes from the same host mapping;
//! - random 4 KiB page reads through translation, bytes per second, vs `memcpy` of
//!   the same pages from the same mapping.
//!
//! Memory is live-style (`GuestMemoryMmap`, volatile copies), as engines hand it over.
//! `cargo bench -p guest-mem --bench read` prints the figures and ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use guest_mem::synth::{KallsymsForm, SynthKernel, SynthKernelSpec, image};
use guest_mem::{Kernel, KernelOptions, Kva, KvaRead, PagingMode, PhysMem};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// xorshift64*: deterministic addresses without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// CPU time of this thread: the machine is shared, and time spent descheduled would
/// otherwise count against whichever side of a comparison it happened to hit.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` over the inputs repeatedly for about `dur` of CPU time; returns
/// operations per CPU-second.
fn rate<T>(inputs: &[T], dur: Duration, mut f: impl FnMut(&T)) -> f64 {
    // Warm up (caches, translation cache, page faults of the mapping).
    for x in inputs {
        f(x);
    }
    let wall = Instant::now();
    let start = thread_cpu();
    let mut ops = 0u64;
    while thread_cpu() - start < dur && wall.elapsed() < dur * 20 {
        for x in inputs {
            f(x);
        }
        ops += inputs.len() as u64;
    }
    ops as f64 / (thread_cpu() - start).as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dur = Duration::from_millis(if quick { 50 } else { 2000 });
    for mode in [PagingMode::Level4, PagingMode::Level5] {
        let sk = SynthKernel::build(SynthKernelSpec {
            mode,
            form: KallsymsForm::PcRelative,
            ..Default::default()
        });
        let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), image::RAM)]).unwrap();
        gm.write_slice(&sk.guest.ram, GuestAddress(0)).unwrap();
        let host = gm.iter().next().unwrap().as_ptr() as *const u8;
        let k = Kernel::new(
            PhysMem::from_guest_memory(&gm).unwrap(),
            KernelOptions::default(),
        )
        .unwrap();
        let po = k.page_offset_base();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let ram = image::RAM as u64;

        // 8-byte reads, direct map: (kva, host offset).
        let small: Vec<(u64, usize)> = (0..1 << 16)
            .map(|_| {
                let off = (rng.next() % ram) & !7;
                (po + off, off as usize)
            })
            .collect();
        let ours = rate(&small, dur, |&(kva, _)| {
            black_box(k.read_u64(Kva(kva)).unwrap());
        });
        let base = rate(&small, dur, |&(_, off)| {
            let mut b = [0u8; 8];
            // SAFETY: off + 8 <= RAM, inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(host.add(off), b.as_mut_ptr(), 8) };
            black_box(b);
        });
        println!(
            "{mode:?} 8-byte reads, direct map:        {:7.1} M/s   memcpy {:7.1} M/s   ratio {:.2}",
            ours / 1e6,
            base / 1e6,
            ours / base
        );

        // 8-byte reads through page walks (per-CPU areas in vmalloc, 4 CPUs x 16
        // pages = 64 pages: all fit in the translation cache).
        let walked: Vec<(u64, usize)> = (0..1 << 16)
            .map(|_| {
                let cpu = rng.next() % 4;
                let page = rng.next() % 16;
                let within = (rng.next() % 4096) & !7;
                let kva = sk.vmalloc_base + cpu * 0x20_0000 + page * 4096 + within;
                let pa = k.translate(Kva(kva)).unwrap().0;
                (kva, pa as usize)
            })
            .collect();
        let ours = rate(&walked, dur, |&(kva, _)| {
            black_box(k.read_u64(Kva(kva)).unwrap());
        });
        let base = rate(&walked, dur, |&(_, off)| {
            let mut b = [0u8; 8];
            // SAFETY: translated GPAs lie inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(host.add(off), b.as_mut_ptr(), 8) };
            black_box(b);
        });
        k.set_translation_cache(false);
        let cold = rate(&walked, dur, |&(kva, _)| {
            black_box(k.read_u64(Kva(kva)).unwrap());
        });
        k.set_translation_cache(true);
        println!(
            "{mode:?} 8-byte reads, page-walked, warm: {:7.1} M/s   memcpy {:7.1} M/s   ratio {:.2}   (cache off: {:.1} M/s)",
            ours / 1e6,
            base / 1e6,
            ours / base,
            cold / 1e6
        );

        // 4 KiB page reads, direct map, random pages over all RAM.
        let pages: Vec<(u64, usize)> = (0..4096)
            .map(|_| {
                let off = (rng.next() % ram) & !0xfff;
                (po + off, off as usize)
            })
            .collect();
        let mut buf = vec![0u8; 4096];
        let ours = rate(&pages, dur, |&(kva, _)| {
            k.read_kva(Kva(kva), &mut buf).unwrap();
            black_box(&buf);
        });
        let mut buf2 = vec![0u8; 4096];
        let base = rate(&pages, dur, |&(_, off)| {
            // SAFETY: off + 4096 <= RAM.
            unsafe { std::ptr::copy_nonoverlapping(host.add(off), buf2.as_mut_ptr(), 4096) };
            black_box(&buf2);
        });
        println!(
            "{mode:?} 4 KiB page reads:                {:7.2} GB/s  memcpy {:7.2} GB/s  ratio {:.2}",
            ours * 4096.0 / 1e9,
            base * 4096.0 / 1e9,
            ours / base
        );
    }
}
