//! `cargo xtask <task>`: project chores that are not part of the product.

mod bench;
mod bench_dump;
mod guest_tests;
mod provision;
mod rust_scan;
mod schema;
mod soak;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, rest)) => (t.as_str(), rest),
        None => return usage(),
    };
    let result = match task {
        "schema" => schema::run(rest),
        "provision" => provision::run(rest),
        "bench" if rest.first().is_some_and(|a| a == "dump") => bench_dump::run(&rest[1..]),
        "bench" => bench::run(rest),
        "test" => test(rest),
        "soak" => soak::run(rest),
        "guest-tests" => guest_tests::run(rest),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <task>\n\
         \n  schema [--check]   write (or check) the JSON Schemas under schema/\
         \n  provision          install host packages and build the cached guest assets\
         \n  bench              run the project's benchmarks and print their ratios\
         \n  bench dump [VMCORE] [--runs N] [--make]\
         \n                     whole-process dump of a vmcore vs drgn and eager symbols\
         \n  soak trigger [--runs N] [--scheduler stall|error]\n                     repeated real runs: how often the capture is exact\
         \n  test [ARGS..]      provision, then run every test (cargo nextest run --workspace ARGS..)\
         \n  guest-tests        list the guest tests (they reach QEMU or the lab) and check that\
         \n                     exactly those are named guest_* (a test checks it too)"
    );
    ExitCode::from(2)
}

/// The README's test command: provision what the tests need (idempotent, cached), then run
/// the whole workspace's tests with nextest (extra arguments are passed on).
fn test(args: &[String]) -> Result<(), String> {
    provision::run(&[])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = std::process::Command::new(cargo)
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(args)
        .status()
        .map_err(|e| format!("cannot start cargo nextest: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}
