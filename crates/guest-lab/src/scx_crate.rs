//! Real third-party schedulers of the sched_ext project, built from their crates.io
//! packages with `cargo install` and cached by crate and version.
//!
//! `scx_p2dq` is here because it links the sdt arena allocator (`lib/sdt_alloc.bpf.c`,
//! shipped inside its crate): its per-task contexts live in `scx_task_allocator`, and its
//! topology, queues and heaps in `scx_static`. The sdt walker's guest test runs it.

use super::{Lab, LabError, tool};
use std::path::PathBuf;
use std::process::Command;

/// The crates.io version of `scx_p2dq` the lab builds (`KTSTR_P2DQ_VERSION` overrides).
pub const P2DQ_VERSION: &str = "1.1.4";

/// The cache's shared cargo target directory for the scx crates' builds.
pub(crate) const SHARED_TARGET: &str = "scx-build-target";

/// A scheduler binary built from a crates.io package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScxCrateAssets {
    /// The crate (and binary) name, e.g. `scx_p2dq`.
    pub name: String,
    pub version: String,
    /// The binary (dynamically linked; the initramfs carries what `ldd` lists).
    pub binary: PathBuf,
}

/// The crates.io version to build: the environment variable `env` when set and not
/// empty, else `default`.
pub(crate) fn crate_version(env: &str, default: &str) -> String {
    std::env::var(env)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

impl Lab {
    /// Builds (first use) or finds (cached) the binary `name` of the crates.io package
    /// `name` at `version`, in the cache entry `rel` (`<rel>/bin/<name>`).
    pub(crate) fn scx_crate(
        &self,
        name: &str,
        version: &str,
        rel: &str,
    ) -> Result<ScxCrateAssets, LabError> {
        let what = format!("{name} {version} (cargo install, about 5 min on 2 cores)");
        let step = format!("building {name}");
        let dir = self.entry(rel, &what, |tmp| {
            // One build directory for every scx crate: bpfland and p2dq share most of
            // their dependency tree (libbpf-sys, scx_utils, …), so the second cold build
            // reuses the first one's artifacts. Kept after the build (it only matters for
            // cold builds); `--prune` removes it. Its own lock serialises builds and prune.
            let _target_lock = self.lock(SHARED_TARGET)?;
            let target = self.root().join(SHARED_TARGET);
            // scx's build compiles BPF with clang and links libbpf through libclang:
            // point all of them at LLVM 19.
            let path = format!(
                "/usr/lib/llvm-19/bin:{}",
                std::env::var("PATH").unwrap_or_default()
            );
            let mut cmd = Command::new("cargo");
            cmd.args(["install", "--locked", name, "--version", version, "--root"])
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
            tool::run_logged(self.progress(), &step, &mut cmd, &tmp.join("build.log"))?;
            if !tmp.join("bin").join(name).is_file() {
                return Err(LabError::invalid(
                    &step,
                    format!("cargo install succeeded but bin/{name} is missing"),
                ));
            }
            Ok(())
        })?;
        Ok(ScxCrateAssets {
            name: name.to_string(),
            version: version.to_string(),
            binary: dir.join("bin").join(name),
        })
    }

    /// `scx_p2dq` (links the sdt allocator), built with `cargo install --locked` on first
    /// use, from the cache (`p2dq/<version>/`) after.
    pub fn p2dq(&self) -> Result<ScxCrateAssets, LabError> {
        let version = crate_version("KTSTR_P2DQ_VERSION", P2DQ_VERSION);
        self.scx_crate("scx_p2dq", &version, &format!("p2dq/{version}"))
    }
}
