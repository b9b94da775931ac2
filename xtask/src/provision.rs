//! `cargo xtask provision`.

pub fn run(_args: &[String]) -> Result<(), String> {
    Err("not implemented yet".to_string())
}
