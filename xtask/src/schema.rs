//! `cargo xtask schema`.

pub fn run(_args: &[String]) -> Result<(), String> {
    Err("not implemented yet".to_string())
}
