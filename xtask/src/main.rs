fn main() {
    eprintln!("usage: cargo xtask <schema|bench>");
    std::process::exit(2);
}
