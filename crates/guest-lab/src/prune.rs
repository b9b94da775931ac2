//! Removing cache entries that the current sources no longer use (each edit of a test
//! scheduler or of `/init` makes new entries; the old ones stay until pruned).

use super::{Lab, LabError};
use std::path::{Path, PathBuf};

impl Lab {
    /// Build (if needed) the current entries for the lab's kernel, then remove the other
    /// entries of the kinds that are keyed by source hashes: `sched/<kernel entry>/*`,
    /// `loader/*` and `initramfs/*` (the layers of the published schedulers that are
    /// built stay), and the scx crates' shared build directory. Kernels and published
    /// schedulers (keyed by version only, expensive to remake) are kept, and so are the
    /// entries of the kernels built from source that are cached. Returns what was
    /// removed.
    ///
    /// A process of an older checkout still using a removed entry would fail; prune
    /// when no such run is in progress.
    pub fn prune(&self) -> Result<Vec<PathBuf>, LabError> {
        let kernel = self.kernel()?;
        let sched = self.scheduler_dir(&kernel)?;
        let loader = self.loader()?;
        let base = self.base_cpio(&kernel)?;
        let mut keep: Vec<PathBuf> = vec![sched, parent(&loader), parent(&base)];
        // The kernels built from source that are there (pruning never starts a build).
        let others = self.cached_source_kernels();
        for k in &others {
            keep.push(self.scheduler_dir(k)?);
            keep.push(parent(&self.base_cpio(k)?));
        }
        let layers = self.root().join("initramfs");
        // The layers of the schedulers that are built (pruning never starts a build).
        for built in self.cached_scx_crates() {
            keep.push(parent(&self.scx_layer(&built)?));
        }
        let mut removed = Vec::new();
        let mut kinds = vec![self.root().join("loader"), layers];
        for k in std::iter::once(&kernel).chain(&others) {
            kinds.push(self.root().join("sched").join(k.entry_name()));
        }
        for dir in kinds {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for ent in entries.flatten() {
                let path = ent.path();
                if !path.is_dir() || keep.contains(&path) {
                    continue;
                }
                let rel = path
                    .strip_prefix(self.root())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Under the entry's lock: never remove something being built.
                let _lock = self.lock(&rel)?;
                std::fs::remove_dir_all(&path)
                    .map_err(|e| LabError::io("pruning the cache", &path, e))?;
                self.progress().step(&format!("pruned {rel}"));
                removed.push(path);
            }
        }
        // The scx crates' shared build directory: only cold builds use it.
        let target = self.root().join(super::scx_crate::SHARED_TARGET);
        if target.is_dir() {
            let _lock = self.lock(super::scx_crate::SHARED_TARGET)?;
            std::fs::remove_dir_all(&target)
                .map_err(|e| LabError::io("pruning the cache", &target, e))?;
            self.progress()
                .step(&format!("pruned {}", super::scx_crate::SHARED_TARGET));
            removed.push(target);
        }
        Ok(removed)
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}
