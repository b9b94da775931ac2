//! The baseline of `cargo xtask bench dump`'s validate figure: reads a JSON file and
//! parses it into a `serde_json::Value`, nothing more, as one process (the same reading
//! and process costs as `ktstr validate`).
//!
//! ```text
//! cargo run --release -p dump-schema --example parse_value -- FILE
//! ```

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_value FILE");
        std::process::exit(2);
    };
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => println!(
            "{}: {} top-level keys",
            path.to_string_lossy(),
            v.as_object().map_or(0, |o| o.len())
        ),
        Err(e) => {
            eprintln!("parse_value: {e}");
            std::process::exit(1);
        }
    }
}
