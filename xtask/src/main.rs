//! `cargo xtask <task>`: project chores that are not part of the product.

mod bench;
mod provision;
mod schema;

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
        "bench" => bench::run(rest),
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
         \n  bench              run the project's benchmarks and print their ratios"
    );
    ExitCode::from(2)
}
