//! `scx_bpfland`, the real third-party scheduler, built once from crates.io and cached.

use super::{Lab, LabError};
use std::path::PathBuf;

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
    super::scx_crate::crate_version("KTSTR_BPFLAND_VERSION", BPFLAND_VERSION)
}

impl Lab {
    /// `scx_bpfland`, built with `cargo install --locked` on first use (about 5 minutes
    /// on 2 cores), from the cache after.
    pub fn bpfland(&self) -> Result<BpflandAssets, LabError> {
        let version = bpfland_version();
        let built = self.scx_crate("scx_bpfland", &version, &format!("bpfland/{version}"))?;
        Ok(BpflandAssets {
            version,
            binary: built.binary,
        })
    }
}
