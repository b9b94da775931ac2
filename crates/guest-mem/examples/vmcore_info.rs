//! Prints what guest-mem finds in a vmcore: VMCOREINFO, CPUs, translation setup,
//! and the addresses of the symbols named on the command line.
//!
//! `cargo run -p guest-mem --example vmcore_info -- VMCORE [SYMBOL...]`

use guest_mem::{KernelOptions, KvaReadExt, Vmcore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: vmcore_info VMCORE [SYMBOL...]")?;
    let t = std::time::Instant::now();
    let core = Vmcore::open(path.as_ref())?;
    println!("ranges: {:x?}", core.phys().ranges());
    println!("notes: {}", core.layout().notes.len());
    println!("vmcoreinfo note: {}", core.vmcoreinfo().is_some());
    for (i, c) in core.cpus().iter().enumerate() {
        println!(
            "cpu{i}: rip {:#x} rsp {:#x} cr3 {:#x} cr4 {:#x} gs_base {:#x}",
            c.rip, c.rsp, c.cr3, c.cr4, c.gs_base
        );
    }
    let k = core.kernel(KernelOptions::default())?;
    println!("{k:#?} in {:?}", t.elapsed());
    for name in args {
        match k.symbol(&name) {
            Some(a) => println!("{:016x} {name}", a.0),
            None => println!("{name}: not found"),
        }
    }
    if let Some(it) = k.symbol("init_task") {
        let comm = k.symbols().lookup("init_task").map(|_| ());
        let _ = comm;
        // task_struct.comm offset is not known without BTF; search the first 8 KiB.
        let bytes = k.read_bytes(it, 8192, 8192)?;
        if let Some(p) = bytes.windows(9).position(|w| w == b"swapper/0") {
            println!("init_task: 'swapper/0' at offset {p:#x}");
        }
    }
    Ok(())
}
