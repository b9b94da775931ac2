//! Build (or find in the cache) published schedulers by name and print where they are:
//! `cargo run -p guest-lab --example scx_build -- scx_flash bpfland scx_cosmos@1.1.7`.
//! Progress goes to stderr; the lab's cache is `$KTSTR_CACHE` (default `~/.cache/ktstr`).

use guest_lab::{Lab, ScxCrate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Lab::open()?;
    for arg in std::env::args().skip(1) {
        let krate: ScxCrate = arg.parse()?;
        let started = std::time::Instant::now();
        let built = lab.scx_crate(&krate)?;
        println!(
            "{} {} {} ({:.0}s)",
            built.name,
            built.version,
            built.binary.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
