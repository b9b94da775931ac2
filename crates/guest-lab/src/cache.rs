//! Cache entries: built in a temporary directory, renamed into place, serialized by a
//! per-entry file lock so concurrent callers build once and reuse.

use super::{Lab, LabError};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A stable 64-bit FNV-1a hash, for cache keys derived from embedded sources and tool
/// versions (std's hasher is explicitly allowed to change between releases).
pub(crate) fn fnv64(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate parts so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Turn a relative entry path into one file-name component.
fn flat(rel: &str) -> String {
    rel.chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect()
}

/// Held while an entry is being checked or built; released on drop (the OS releases it
/// too if the process dies).
pub(crate) struct EntryLock {
    _file: File,
}

impl Lab {
    /// Take the exclusive lock named `name` (blocking; says so when it has to wait).
    pub(crate) fn lock(&self, name: &str) -> Result<EntryLock, LabError> {
        let path = self.root.join("locks").join(format!("{}.lock", flat(name)));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LabError::io("opening a cache lock", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                self.progress()
                    .step(&format!("waiting for another process preparing {name}"));
                file.lock()
                    .map_err(|e| LabError::io("locking the cache", &path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LabError::io("locking the cache", &path, e));
            }
        }
        Ok(EntryLock { _file: file })
    }

    /// The cache entry `rel` (a directory), built by `build` into an empty temporary
    /// directory if it does not exist yet. `what` names the entry in progress and errors.
    pub(crate) fn entry(
        &self,
        rel: &str,
        what: &str,
        build: impl FnOnce(&Path) -> Result<(), LabError>,
    ) -> Result<PathBuf, LabError> {
        let done = self.root.join(rel);
        if done.is_dir() {
            return Ok(done);
        }
        let _lock = self.lock(rel)?;
        if done.is_dir() {
            return Ok(done);
        }
        let prefix = format!("{}.", flat(rel));
        self.remove_stale_tmp(&prefix);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{prefix}{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&tmp)
            .map_err(|e| LabError::io(format!("{what}: creating a build directory"), &tmp, e))?;
        self.progress().step(&format!("preparing {what}"));
        let started = std::time::Instant::now();
        if let Err(e) = build(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            self.progress().step(&format!("{what} failed: {e}"));
            return Err(e);
        }
        if let Some(parent) = done.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                LabError::io(format!("{what}: creating the entry's parent"), parent, e)
            })?;
        }
        if let Err(e) = std::fs::rename(&tmp, &done) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(LabError::io(
                format!("{what}: moving into the cache"),
                &done,
                e,
            ));
        }
        self.progress().step(&format!(
            "{what} ready in {:.1}s: {}",
            started.elapsed().as_secs_f64(),
            done.display()
        ));
        Ok(done)
    }

    /// Remove leftovers of builds of this entry that died (we hold the entry's lock, so
    /// nobody else is building it now).
    fn remove_stale_tmp(&self, prefix: &str) {
        let tmp = self.root.join("tmp");
        let Ok(dir) = std::fs::read_dir(&tmp) else {
            return;
        };
        for ent in dir.flatten() {
            if ent.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_dir_all(ent.path());
            }
        }
    }
}

/// Write `bytes` to `path` atomically (temporary file in the same directory + rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], step: &str) -> Result<(), LabError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| LabError::io(step, &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LabError::io(step, path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_lab(name: &str) -> (Lab, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ktstr-cache-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let lab = Lab::at(&dir)
            .unwrap()
            .with_progress(std::sync::Arc::new(crate::QuietProgress));
        (lab, dir)
    }

    #[test]
    fn a_failed_build_leaves_no_entry_and_no_leftovers() {
        let (lab, dir) = temp_lab("fail");
        let err = lab
            .entry("thing/v1", "a thing", |tmp| {
                std::fs::write(tmp.join("half"), b"written").unwrap();
                Err(LabError::invalid("building a thing", "it broke"))
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "building a thing: it broke");
        assert!(!dir.join("thing/v1").exists());
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        // The next attempt builds from scratch and succeeds.
        let done = lab
            .entry("thing/v1", "a thing", |tmp| {
                assert_eq!(
                    std::fs::read_dir(tmp).unwrap().count(),
                    0,
                    "a clean build dir"
                );
                std::fs::write(tmp.join("whole"), b"ok").map_err(|e| LabError::io("w", tmp, e))
            })
            .unwrap();
        assert_eq!(std::fs::read(done.join("whole")).unwrap(), b"ok");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_callers_build_once() {
        let (lab, dir) = temp_lab("race");
        let builds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (lab, builds) = (lab.clone(), builds.clone());
                std::thread::spawn(move || {
                    lab.entry("shared/v1", "shared", |tmp| {
                        builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        std::fs::write(tmp.join("f"), b"x").map_err(|e| LabError::io("w", tmp, e))
                    })
                    .unwrap()
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().join("f").is_file());
        }
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn leftovers_of_a_dead_build_are_removed() {
        let (lab, dir) = temp_lab("stale");
        let stale = dir.join("tmp").join("thing_v2.999999.1");
        std::fs::create_dir_all(&stale).unwrap();
        lab.entry("thing/v2", "a thing", |_| Ok(())).unwrap();
        assert!(!stale.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fnv_separates_parts() {
        assert_ne!(fnv64(&[b"ab", b"c"]), fnv64(&[b"a", b"bc"]));
        assert_eq!(fnv64(&[b"x"]), fnv64(&[b"x"]));
        assert_eq!(fnv64(&[b"x"]).len(), 16);
    }
}
