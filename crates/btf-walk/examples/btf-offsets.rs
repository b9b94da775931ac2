//! Prints offsets of `struct.member` paths from a BTF file (raw, ELF or bzImage).
//!
//! `cargo run -p btf-walk --example btf-offsets -- FILE rq.scx.runnable_list ...`

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: btf-offsets FILE struct.member...");
        std::process::exit(2);
    };
    let t = std::time::Instant::now();
    let btf = match btf_walk::Btf::from_file(&file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("loaded {} types in {:?}", btf.type_count(), t.elapsed());
    for path in args {
        match btf.field_by_path(&path) {
            Ok(f) => println!(
                "{path}: offset {} bit_offset {} bits {} size {} type {}",
                f.offset(),
                f.bit_offset,
                f.bit_size,
                f.size,
                btf.display_name(f.ty)
            ),
            Err(e) => println!("{path}: {e}"),
        }
    }
}
