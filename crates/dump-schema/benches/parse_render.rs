//! Parse and render a generated 10 MB report.
//!
//! Criterion measures typed parsing (`FailureDumpReportAny::from_json`), untyped parsing of the
//! same bytes (`serde_json::from_str::<serde_json::Value>`), serialization, `Display` and the
//! HTML page (`html::page`, whose size is printed too).
//! Then, in the same run, typed and untyped parses are timed in alternating blocks (medians of
//! 15 each; see [`ratio`]) and the ratio of their throughputs is printed: `typed/untyped throughput ratio: R` (goal
//! ≥ 1.0: the typed parse is not slower than an untyped one). The ratio uses the thread's
//! on-CPU time (`CLOCK_THREAD_CPUTIME_ID`) so that other load on the machine does not skew
//! it; wall-clock figures are printed too.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use dump_schema::FailureDumpReportAny;

const SIZE: usize = 10 << 20;

fn bench(c: &mut Criterion, json: &str, report: &FailureDumpReportAny) {
    let mut g = c.benchmark_group("report_10mb");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_typed", |b| {
        b.iter(|| FailureDumpReportAny::from_json(black_box(json)).unwrap())
    });
    g.bench_function("parse_untyped_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(json)).unwrap())
    });
    g.bench_function("serialize", |b| {
        b.iter(|| black_box(report).to_json().unwrap())
    });
    g.bench_function("display", |b| b.iter(|| black_box(report).to_string()));
    g.bench_function("html_page", |b| {
        b.iter(|| dump_schema::html::page(black_box(report)))
    });
    g.finish();
}

/// Nanoseconds this thread has spent on a CPU: unlike wall time, it does not count the time
/// other processes hold the CPU, so the ratio stays meaningful on a busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// One timing of `f`: (wall, on-CPU when known).
fn time<T>(f: impl FnOnce() -> T) -> (Duration, Option<Duration>) {
    let cpu = thread_cpu_ns();
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    let cpu = cpu
        .zip(thread_cpu_ns())
        .map(|(a, b)| Duration::from_nanos(b - a));
    drop(black_box(out));
    (wall, cpu)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Medians of alternating blocks of typed and untyped parses: `(typed, untyped)` wall times
/// and on-CPU times. Each block's first parse only warms up: the first parse after the other
/// kind's result was freed pays for the allocator reorganising the other kind's free chunks
/// (measured here: a typed parse right after freeing a `Value` takes ~3x its steady time), which
/// says nothing about either parser.
fn ratio(json: &str, blocks: usize) -> ((Duration, Duration), Option<(Duration, Duration)>) {
    const PER_BLOCK: usize = 4;
    let (mut tw, mut uw, mut tc, mut uc) = (vec![], vec![], vec![], vec![]);
    for _ in 0..blocks {
        for i in 0..PER_BLOCK {
            let (w, c) =
                time(|| serde_json::from_str::<serde_json::Value>(black_box(json)).unwrap());
            if i > 0 || PER_BLOCK == 1 {
                uw.push(w);
                uc.extend(c);
            }
        }
        for i in 0..PER_BLOCK {
            let (w, c) = time(|| FailureDumpReportAny::from_json(black_box(json)).unwrap());
            if i > 0 || PER_BLOCK == 1 {
                tw.push(w);
                tc.extend(c);
            }
        }
    }
    let cpu = (tc.len() == tw.len() && uc.len() == uw.len()).then(|| (median(tc), median(uc)));
    ((median(tw), median(uw)), cpu)
}

fn main() {
    let report: FailureDumpReportAny = common::big_report(SIZE).into();
    let json = report.to_json().unwrap();
    // `cargo bench` passes `--bench`; under `cargo test --benches` run everything once.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &json, &report);
    c.final_summary();

    let ((typed, untyped), cpu) = ratio(&json, if benching { 5 } else { 1 });
    let mbps = |d: Duration| json.len() as f64 / d.as_secs_f64() / 1e6;
    println!("document: {:.1} MB", json.len() as f64 / 1e6);
    let (page_time, _) = time(|| dump_schema::html::page(&report));
    println!(
        "html page: {:.2} MB in {page_time:.2?} (goal <= 2 MB for a real scheduler's dump)",
        dump_schema::html::page(&report).len() as f64 / 1e6
    );
    if !benching {
        println!("(test mode: one block, possibly unoptimized; `cargo bench` gives the figures)");
    }
    println!(
        "wall:   typed parse {:.0} MB/s ({typed:.2?}), untyped Value parse {:.0} MB/s ({untyped:.2?}), ratio {:.2}",
        mbps(typed),
        mbps(untyped),
        untyped.as_secs_f64() / typed.as_secs_f64()
    );
    // The reported ratio is on-CPU time where the kernel tells it (robust to other load).
    let (typed, untyped) = match cpu {
        Some((t, u)) => {
            println!(
                "on-CPU: typed parse {:.0} MB/s ({t:.2?}), untyped Value parse {:.0} MB/s ({u:.2?})",
                mbps(t),
                mbps(u)
            );
            (t, u)
        }
        None => (typed, untyped),
    };
    println!(
        "typed/untyped throughput ratio: {:.2} (goal >= 1.0)",
        untyped.as_secs_f64() / typed.as_secs_f64()
    );
}
