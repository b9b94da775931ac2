//! `cargo xtask bench [PACKAGE...]`: run the project's Criterion benchmarks, each of which
//! prints its ratio against a baseline measured in the same run.
//!
//! The list is plain on purpose: a crate with benchmarks adds its package name to [`BENCHED`].
//! Packages without a `benches/` directory (yet) are skipped with a note.

/// Packages whose `cargo bench` is part of `cargo xtask bench`, and their directories.
const BENCHED: &[(&str, &str)] = &[
    ("dump-schema", "crates/dump-schema"),
    ("guest-mem", "crates/guest-mem"),
    ("btf-walk", "crates/btf-walk"),
    ("scx-walk", "crates/scx-walk"),
    ("freeze", "crates/freeze"),
];

pub fn run(args: &[String]) -> Result<(), String> {
    for a in args {
        if !BENCHED.iter().any(|(p, _)| p == a) {
            let known: Vec<&str> = BENCHED.iter().map(|(p, _)| *p).collect();
            return Err(format!(
                "unknown package {a:?}; known: {}",
                known.join(", ")
            ));
        }
    }
    let root = crate::workspace::root();
    let mut failed = Vec::new();
    for (pkg, dir) in BENCHED {
        if !args.is_empty() && !args.iter().any(|a| a == pkg) {
            continue;
        }
        if !root.join(dir).join("benches").is_dir() {
            println!("== {pkg}: no benches/ yet, skipped");
            continue;
        }
        println!("== cargo bench -p {pkg}");
        let status = crate::workspace::run_cargo(["bench", "-p", pkg])?;
        if !status.success() {
            failed.push(*pkg);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("benchmarks failed: {}", failed.join(", ")))
    }
}
