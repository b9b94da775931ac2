//! `cargo xtask <task>`: project chores that are not part of the product.

mod bench;
mod bench_dump;
mod guest_tests;
mod provision;
mod rust_scan;
mod schema;
mod soak;
mod workspace;

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
         \n  test --fast [ARGS..]\
         \n                     every test but the guest tests (named guest_*: they boot a guest or\
         \n                     provision), without provisioning: the quick check while iterating\
         \n  guest-tests        list the guest tests (they reach QEMU or the lab) and check that\
         \n                     exactly those are named guest_* (a test run by --fast checks it too)"
    );
    ExitCode::from(2)
}

/// The README's test command: provision what the tests need (idempotent, cached), then run
/// the whole workspace's tests with nextest (extra arguments are passed on). With `--fast`:
/// no provisioning, and every test except nextest's guest group (its filter is read from
/// `.config/nextest.toml`, the one place that defines the group).
fn test(args: &[String]) -> Result<(), String> {
    let started = std::time::Instant::now();
    let fast = args.first().is_some_and(|a| a == "--fast");
    let mut nextest: Vec<String> = ["nextest", "run", "--workspace", "--no-fail-fast"]
        .map(String::from)
        .to_vec();
    if fast {
        let config = workspace::root().join(".config/nextest.toml");
        let text =
            std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
        let guest = guest_tests::nextest_guest_filter(&text)
            .map_err(|e| format!("{}: {e}", config.display()))?;
        nextest.extend(["-E".to_string(), format!("not ({guest})")]);
        nextest.extend(args[1..].iter().cloned());
    } else {
        provision::run(&[])?;
        nextest.extend(args.iter().cloned());
    }
    let status = workspace::run_cargo(&nextest)?;
    eprintln!(
        "xtask test{}: {:.0?} in all (build and run)",
        if fast { " --fast" } else { "" },
        started.elapsed()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("tests failed ({status})"))
    }
}

/// The value of `--runs` (in `bench-dump` and `soak`): a positive number.
fn runs_arg(value: Option<&String>) -> Result<usize, String> {
    value
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| "--runs needs a positive number".to_string())
}
