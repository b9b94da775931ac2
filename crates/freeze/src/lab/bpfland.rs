//! `scx_bpfland`, the real third-party scheduler, built once from crates.io and cached.

use super::{Lab, LabError, tool};
use std::path::PathBuf;
use std::process::Command;

/// The crates.io version the lab builds (`KTSTR_BPFLAND_VERSION` overrides).
pub const BPFLAND_VERSION: &str = "1.1.4";

/// A built `scx_bpfland`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpflandAssets {
    pub version: String,
    /// The binary (dynamically linked; the initramfs carries what `ldd` lists).
    pub binary: PathBuf,
}

/// The version to build: `KTSTR_BPFLAND_VERSION` or [`BPFLAND_VERSION`].
pub(crate) fn bpfland_version() -> String {
    std::env::var("KTSTR_BPFLAND_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| BPFLAND_VERSION.to_string())
}

impl Lab {
    /// `scx_bpfland`, built with `cargo install --locked` on first use (about 5 minutes
    /// on 2 cores), from the cache after.
    pub fn bpfland(&self) -> Result<BpflandAssets, LabError> {
        let version = bpfland_version();
        let dir = self.entry(
            &format!("bpfland/{version}"),
            &format!("scx_bpfland {version} (cargo install, about 5 min on 2 cores)"),
            |tmp| {
                let target = tmp.join("target");
                // scx's build compiles BPF with clang and links libbpf through libclang:
                // point all of them at LLVM 19.
                let path = format!(
                    "/usr/lib/llvm-19/bin:{}",
                    std::env::var("PATH").unwrap_or_default()
                );
                let mut cmd = Command::new("cargo");
                cmd.args(["install", "--locked", "scx_bpfland", "--version"])
                    .arg(&version)
                    .arg("--root")
                    .arg(tmp)
                    .env("PATH", path)
                    .env("BPF_CLANG", "/usr/lib/llvm-19/bin/clang")
                    .env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib")
                    .env("CARGO_TARGET_DIR", &target)
                    // The caller may be a cargo build script or test: do not inherit its
                    // toolchain choices for this unrelated crate.
                    .env_remove("RUSTFLAGS")
                    .env_remove("CARGO_ENCODED_RUSTFLAGS")
                    .env_remove("CARGO_BUILD_TARGET_DIR");
                let result = tool::run_logged(
                    self.progress(),
                    "building scx_bpfland",
                    &mut cmd,
                    &tmp.join("build.log"),
                );
                let _ = std::fs::remove_dir_all(&target);
                result?;
                if !tmp.join("bin/scx_bpfland").is_file() {
                    return Err(LabError::invalid(
                        "building scx_bpfland",
                        "cargo install succeeded but bin/scx_bpfland is missing",
                    ));
                }
                Ok(())
            },
        )?;
        Ok(BpflandAssets {
            version,
            binary: dir.join("bin/scx_bpfland"),
        })
    }
}
