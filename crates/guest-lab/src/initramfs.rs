//! The guest's initramfs: a cached base archive (busybox, /init, bpftool, the loader, the
//! test schedulers, the kernel module and config, and their libraries), an optional cached
//! layer with a published scheduler, and a small per-run archive with the run script. Linux unpacks
//! concatenated cpio archives in order, so a run costs one file copy, not a rebuild.

use super::cache::fnv64;
use super::cpio::CpioWriter;
use super::{KernelAssets, Lab, LabError, RunSpec, SchedulerChoice, ScxCrateAssets, tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const INIT: &str = include_str!("../lab/init");
const HELPERS: &str = include_str!("../lab/helpers.sh");
const BUSYBOX: &str = "/bin/busybox";
const BPFTOOL: &str = "/usr/sbin/bpftool";
/// Run archives older than this are leftovers (of a process whose pid was reused).
const STALE_RUN: Duration = Duration::from_secs(24 * 3600);

/// A per-run initramfs file; removed when dropped (unless [`Initramfs::keep`]).
#[derive(Debug)]
pub struct Initramfs {
    path: PathBuf,
    keep: bool,
}

impl Initramfs {
    /// What QEMU's `-initrd` (or a VMM's loader) takes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the file after drop; returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for Initramfs {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The shared libraries `ldd` lists for `binary` (absolute paths; the vDSO skipped).
fn shared_libs(binary: &Path) -> Result<Vec<PathBuf>, LabError> {
    let out = tool::output(
        &format!("listing the libraries of {}", binary.display()),
        Command::new("ldd").arg(binary),
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn read(path: &Path, step: &str) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::io(step, path, e))
}

fn cpio_err(path: &Path) -> impl Fn(std::io::Error) -> LabError + '_ {
    move |e| LabError::io("writing the initramfs", path, e)
}

/// Add `binary` at `dest` and every library it needs at its own path.
fn add_binary<W: Write>(
    w: &mut CpioWriter<W>,
    binary: &Path,
    dest: &str,
    added: &mut std::collections::BTreeSet<PathBuf>,
    out: &Path,
) -> Result<(), LabError> {
    w.file(dest, 0o755, &read(binary, "reading a guest binary")?)
        .map_err(cpio_err(out))?;
    for lib in shared_libs(binary)? {
        if added.insert(lib.clone()) {
            let bytes = read(&lib, "reading a shared library")?;
            w.file(&lib.to_string_lossy(), 0o755, &bytes)
                .map_err(cpio_err(out))?;
        }
    }
    Ok(())
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Lab {
    /// The cached base archive for `kernel`.
    pub(crate) fn base_cpio(&self, kernel: &KernelAssets) -> Result<PathBuf, LabError> {
        let sched = self.scheduler_dir(kernel)?;
        let loader = self.loader()?;
        let busybox = tool::dpkg_version("busybox-static");
        let bpftool = tool::dpkg_version("bpftool");
        let key = fnv64(&[
            INIT.as_bytes(),
            HELPERS.as_bytes(),
            kernel.release.as_bytes(),
            busybox.as_bytes(),
            bpftool.as_bytes(),
            sched.to_string_lossy().as_bytes(),
            loader.to_string_lossy().as_bytes(),
        ]);
        let rel = format!("initramfs/{}-{key}", kernel.release);
        let dir = self.entry(&rel, "the base initramfs", |tmp| {
            let out = tmp.join("base.cpio");
            let file = std::fs::File::create(&out)
                .map_err(|e| LabError::io("creating the initramfs", &out, e))?;
            let mut w = CpioWriter::new(std::io::BufWriter::new(file));
            let e = cpio_err(&out);
            for d in [
                "proc", "sys", "dev", "tmp", "run", "root", "sbin", "usr/bin", "usr/sbin", "ktstr",
            ] {
                w.dir(d).map_err(&e)?;
            }
            w.char_dev("dev/console", 0o600, 5, 1).map_err(&e)?;
            w.char_dev("dev/null", 0o666, 1, 3).map_err(&e)?;
            w.file("init", 0o755, INIT.as_bytes()).map_err(&e)?;
            w.file("etc/ktstr-helpers.sh", 0o644, HELPERS.as_bytes())
                .map_err(&e)?;
            w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
                .map_err(&e)?;
            w.file("etc/group", 0o644, b"root:x:0:\n").map_err(&e)?;
            w.file(
                "bin/busybox",
                0o755,
                &read(Path::new(BUSYBOX), "reading busybox (busybox-static)")?,
            )
            .map_err(&e)?;
            w.symlink("bin/sh", "busybox").map_err(&e)?;
            let mut added = std::collections::BTreeSet::new();
            add_binary(&mut w, Path::new(BPFTOOL), "bin/bpftool", &mut added, &out)?;
            add_binary(&mut w, &loader, "bin/ktstr-loader", &mut added, &out)?;
            w.file(
                "lib/modules/qemu_fw_cfg.ko",
                0o644,
                &read(&kernel.fw_cfg_module, "reading qemu_fw_cfg.ko")?,
            )
            .map_err(&e)?;
            w.file(
                &format!("boot/config-{}", kernel.release),
                0o644,
                &read(&kernel.config, "reading the kernel config")?,
            )
            .map_err(&e)?;
            for which in super::TestScheduler::ALL {
                let name = format!("{}.bpf.o", which.name());
                w.file(
                    &format!("sched/{name}"),
                    0o644,
                    &read(&sched.join(&name), "reading a test scheduler")?,
                )
                .map_err(&e)?;
            }
            w.finish().map_err(&e)?.flush().map_err(&e)?;
            Ok(())
        })?;
        Ok(dir.join("base.cpio"))
    }

    /// The cached layer of a published scheduler: its binary at `bin/<crate>` and the
    /// files it needs, as `initramfs/scx-<crate>-<version>-<hash>/layer.cpio`.
    pub(crate) fn scx_layer(&self, built: &ScxCrateAssets) -> Result<PathBuf, LabError> {
        let key = fnv64(&[built.binary.to_string_lossy().as_bytes()]);
        let dir = self.entry(
            &format!("initramfs/scx-{}-{}-{key}", built.name, built.version),
            &format!("the {} {} initramfs layer", built.name, built.version),
            |tmp| {
                let out = tmp.join("layer.cpio");
                let f = std::fs::File::create(&out)
                    .map_err(|e| LabError::io("creating the initramfs", &out, e))?;
                let mut w = CpioWriter::new(std::io::BufWriter::new(f));
                let mut added = std::collections::BTreeSet::new();
                let dest = format!("bin/{}", built.name);
                add_binary(&mut w, &built.binary, &dest, &mut added, &out)?;
                let e = cpio_err(&out);
                w.finish().map_err(&e)?.flush().map_err(&e)?;
                Ok(())
            },
        )?;
        Ok(dir.join("layer.cpio"))
    }

    /// An initramfs for one run: the base (built on first use), the published
    /// scheduler's layer when the spec asks for one (built on first use), and the run's
    /// own archive. The file is removed when the returned value is dropped.
    pub fn initramfs(&self, spec: &RunSpec) -> Result<Initramfs, LabError> {
        let kernel = self.kernel()?;
        let mut layers = vec![self.base_cpio(&kernel)?];
        if let SchedulerChoice::Published { krate, .. } = &spec.scheduler {
            let built = self.scx_crate(krate)?;
            layers.push(self.scx_layer(&built)?);
        }
        let runs = self.root().join("runs");
        std::fs::create_dir_all(&runs)
            .map_err(|e| LabError::io("creating the runs directory", &runs, e))?;
        remove_stale(&runs);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = runs.join(format!(
            "run-{}-{nanos}-{}.cpio",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // From here on the guard removes the file on every error path.
        let initramfs = Initramfs { path, keep: false };
        let mut file = std::fs::File::create(&initramfs.path)
            .map_err(|e| LabError::io("creating the run initramfs", &initramfs.path, e))?;
        for layer in &layers {
            let mut src = std::fs::File::open(layer)
                .map_err(|e| LabError::io("reading an initramfs layer", layer, e))?;
            std::io::copy(&mut src, &mut file)
                .map_err(|e| LabError::io("writing the run initramfs", &initramfs.path, e))?;
        }
        let mut w = CpioWriter::new(std::io::BufWriter::new(&mut file));
        let run_path = initramfs.path.clone();
        let e = cpio_err(&run_path);
        w.file("ktstr/run.sh", 0o644, spec.script().as_bytes())
            .map_err(&e)?;
        if let SchedulerChoice::Object { path } = &spec.scheduler {
            w.file(
                "sched/user.bpf.o",
                0o644,
                &read(path, "reading the scheduler object")?,
            )
            .map_err(&e)?;
        }
        w.finish().map_err(&e)?.flush().map_err(&e)?;
        drop(file);
        Ok(initramfs)
    }
}

fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in entries.flatten() {
        // run-<pid>-...: its process is gone (killed before its drop ran).
        let name = ent.file_name().to_string_lossy().into_owned();
        let orphan = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if orphan {
            let _ = std::fs::remove_file(ent.path());
            continue;
        }
        let old = ent
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_RUN);
        if old {
            let _ = std::fs::remove_file(ent.path());
        }
    }
}
