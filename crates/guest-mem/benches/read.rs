//! Read throughput of guest-mem against the physical limit, in one run:
//!
//! - random 8-byte reads at kernel virtual addresses (direct map; and vmalloc through
//!   page walks with a warm translation cache, and with the cache off), per second,
//!   vs an 8-byte `memcpy` of the same bytes from the same host mapping;
//! - random 4 KiB page reads through translation, bytes per second, vs `memcpy` of
//!   the same pages from the same mapping.
//!
//! Memory is live-style (`GuestMemoryMmap`, volatile copies), as engines hand it over.
//! `cargo bench -p guest-mem --bench read` prints the figures and ratios. With
//! `GUESTMEM_BENCH_VMCORE=<vmcore>` it also measures a real kernel's vmcore (its RAM
//! copied into a `GuestMemoryMmap`, walks through the kernel's own page tables to
//! every CPU's `runqueues`).

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
/// `ours` on the KVA of each `(kva, host offset)` sample against the baseline, a copy of
/// `len` bytes at the sample's offset in the host mapping at `host`; both in operations
/// per second ([`rate`]).
///
/// # Safety
/// `offset + len` of every sample is inside the mapping at `host`.
unsafe fn against_memcpy(
    samples: &[(u64, usize)],
    dur: Duration,
    host: *const u8,
    len: usize,
    mut ours: impl FnMut(u64),
) -> (f64, f64) {
    let ours = rate(samples, dur, |&(kva, _)| ours(kva));
    let mut buf = vec![0u8; len];
    let base = rate(samples, dur, |&(_, off)| {
        // SAFETY: the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(host.add(off), buf.as_mut_ptr(), len) };
        black_box(&buf);
    });
    (ours, base)
}

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

/// A kernel to measure: its RAM (one range at GPA 0), and addresses reached by walks.
struct Subject {
    name: String,
    gm: GuestMemoryMmap,
    ram: u64,
    /// Page-walked KVAs of pages to sample 8-byte reads from.
    walked_pages: Vec<u64>,
}

fn synthetic(mode: PagingMode) -> Subject {
    let sk = SynthKernel::build(SynthKernelSpec {
        mode,
        form: KallsymsForm::PcRelative,
        ..Default::default()
    });
    let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), image::RAM)]).unwrap();
    gm.write_slice(&sk.guest.ram, GuestAddress(0)).unwrap();
    // Per-CPU areas in vmalloc space: 4 CPUs x 16 pages, all fit in the cache.
    let walked_pages = (0..4u64)
        .flat_map(|cpu| (0..16u64).map(move |p| (cpu, p)))
        .map(|(cpu, p)| sk.vmalloc_base + cpu * 0x20_0000 + p * 4096)
        .collect();
    Subject {
        name: format!("synthetic {mode:?}"),
        gm,
        ram: image::RAM as u64,
        walked_pages,
    }
}

fn real(path: &str) -> Subject {
    let core = guest_mem::Vmcore::open(path.as_ref()).expect("GUESTMEM_BENCH_VMCORE");
    let k = core
        .kernel(KernelOptions::default())
        .expect("kernel in vmcore");
    let low = core.phys().ranges()[0];
    let mut bytes = vec![0u8; low.len as usize];
    guest_mem::PhysRead::read_phys(core.phys(), low.start, &mut bytes).unwrap();
    let gm = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), bytes.len())]).unwrap();
    gm.write_slice(&bytes, GuestAddress(0)).unwrap();
    // Mapped pages of the vmalloc area (vmap'd stacks, BPF, module data): reached
    // only through the kernel's page tables. Per-CPU areas would not do: x86_64
    // embeds them in the direct map.
    let vmalloc = k
        .read_u64(k.symbol("vmalloc_base").expect("vmalloc_base"))
        .unwrap();
    let walked_pages: Vec<u64> = (0..1u64 << 20)
        .map(|i| vmalloc + i * 4096)
        .filter(|&a| k.translate(Kva(a)).is_ok_and(|g| g.0 + 4096 <= low.len))
        .take(64)
        .collect();
    assert!(!walked_pages.is_empty(), "no mapped vmalloc page found");
    Subject {
        name: format!("vmcore {} ({:?})", k.osrelease(), k.paging_mode()),
        gm,
        ram: low.len,
        walked_pages,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dur = Duration::from_millis(if quick { 50 } else { 2000 });
    if quick {
        println!("(smoke run without --bench: figures are not measurements)");
    }
    let mut subjects: Vec<Box<dyn Fn() -> Subject>> = vec![
        Box::new(|| synthetic(PagingMode::Level4)),
        Box::new(|| synthetic(PagingMode::Level5)),
    ];
    if let Ok(p) = std::env::var("GUESTMEM_BENCH_VMCORE") {
        subjects.push(Box::new(move || real(&p)));
    }
    for make in subjects {
        let Subject {
            name: mode,
            gm,
            ram,
            walked_pages,
        } = make();
        let host = gm.iter().next().unwrap().as_ptr() as *const u8;
        let k = Kernel::new(
            PhysMem::from_guest_memory(&gm).unwrap(),
            KernelOptions::default(),
        )
        .unwrap();
        let po = k.page_offset_base();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

        // 8-byte reads, direct map: (kva, host offset).
        let small: Vec<(u64, usize)> = (0..1 << 16)
            .map(|_| {
                let off = (rng.next() % ram) & !7;
                (po + off, off as usize)
            })
            .collect();
        let read_u64 = |kva| {
            black_box(k.read_u64(Kva(kva)).unwrap());
        };
        // SAFETY: off + 8 <= RAM, inside the mapping.
        let (ours, base) = unsafe { against_memcpy(&small, dur, host, 8, read_u64) };
        println!(
            "{mode} 8-byte reads, direct map:        {:7.1} M/s   memcpy {:7.1} M/s   ratio {:.2}",
            ours / 1e6,
            base / 1e6,
            ours / base
        );

        // 8-byte reads through page walks (a few dozen pages: all fit in the
        // translation cache).
        let walked: Vec<(u64, usize)> = (0..1 << 16)
            .map(|_| {
                let page = walked_pages[(rng.next() % walked_pages.len() as u64) as usize];
                let within = (rng.next() % 4096) & !7;
                let kva = page + within;
                let pa = k.translate(Kva(kva)).unwrap().0;
                (kva, pa as usize)
            })
            .collect();
        // SAFETY: translated GPAs lie inside the mapping.
        let (ours, base) = unsafe { against_memcpy(&walked, dur, host, 8, read_u64) };
        k.set_translation_cache(false);
        let cold = rate(&walked, dur, |&(kva, _)| read_u64(kva));
        k.set_translation_cache(true);
        println!(
            "{mode} 8-byte reads, page-walked, warm: {:7.1} M/s   memcpy {:7.1} M/s   ratio {:.2}   (cache off: {:.1} M/s)",
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
        let read_page = |kva| {
            k.read_kva(Kva(kva), &mut buf).unwrap();
            black_box(&buf);
        };
        // SAFETY: off + 4096 <= RAM.
        let (ours, base) = unsafe { against_memcpy(&pages, dur, host, 4096, read_page) };
        println!(
            "{mode} 4 KiB page reads:                {:7.2} GB/s  memcpy {:7.2} GB/s  ratio {:.2}",
            ours * 4096.0 / 1e9,
            base * 4096.0 / 1e9,
            ours / base
        );
    }
}
