//! The guest's initramfs: a cached base archive (busybox, /init, bpftool, the loader, the
//! test schedulers, the kernel module and config, and their libraries), an optional cached
//! layer with a published scheduler, and a small per-run archive with the run script. Linux unpacks
//! concatenated cpio archives in order, so a run costs one file copy, not a rebuild.

use super::cache::fnv64;
use super::cpio::CpioWriter;
use super::runspec::sh_quote;
use super::{KernelAssets, Lab, LabError, RunSpec, SchedulerChoice, ScxCrateAssets, tool};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const INIT: &str = include_str!("../lab/init");
/// The workload helpers (`ktstr_spin`, `ktstr_victim`, `ktstr_mixed`). Public for
/// host-side tests.
pub const HELPERS: &str = include_str!("../lab/helpers.sh");
/// Starting and following schedulers; sourced by `/init`. Public for host-side tests of
/// the console protocol (the functions run under the host's busybox too).
pub const SCHED_SH: &str = include_str!("../lab/sched.sh");
const BUSYBOX: &str = "/bin/busybox";
const BPFTOOL: &str = "/usr/sbin/bpftool";
/// How binaries are placed (in the cache keys: a change here makes new entries).
/// 2: interpreter and libraries resolved by `elf_deps` instead of `ldd`.
const LAYOUT: &str = "layout-2";
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

fn read(path: &Path, step: &str) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::io(step, path, e))
}

fn cpio_err(path: &Path) -> impl Fn(std::io::Error) -> LabError + '_ {
    move |e| LabError::io("writing the initramfs", path, e)
}

/// Top-level names the guest mounts over (`/tmp`, `/proc`, `/sys`, `/dev`) or owns
/// (`/ktstr`, `/init`): host files there go under [`RELOCATED`] instead.
const SHADOWED: [&str; 6] = ["tmp", "proc", "sys", "dev", "ktstr", "init"];
/// Where host files of shadowed paths go in the guest.
const RELOCATED: &str = "ktstr/host";
/// The guest's launcher of the user's executable.
pub(crate) const USER_LAUNCHER: &str = "ktstr/user/launch";

/// Where the host file `host` goes in the guest (no leading `/`): the same path,
/// lexically normalized, except that paths under [`SHADOWED`] names move under
/// `/ktstr/host/` (the relative layout, so `$ORIGIN` paths, is kept).
pub(crate) fn guest_path(host: &Path) -> Result<String, LabError> {
    use std::path::Component;
    let mut parts: Vec<&str> = Vec::new();
    for c in host.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().ok_or_else(|| {
                LabError::invalid(
                    "placing a file in the guest",
                    format!("{}: the path is not UTF-8", host.display()),
                )
            })?),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        return Err(LabError::invalid(
            "placing a file in the guest",
            format!("{}: not a file path", host.display()),
        ));
    }
    let joined = parts.join("/");
    Ok(if SHADOWED.contains(&parts[0]) {
        format!("{RELOCATED}/{joined}")
    } else {
        joined
    })
}

/// What [`add_executable`] put into an archive.
pub(crate) struct PlacedExecutable {
    /// The executable's guest path (absolute).
    pub guest_path: String,
    /// Guest directories of its libraries outside the loader's system directories, in
    /// the order found: what `LD_LIBRARY_PATH` must hold for the guest's loader (it has
    /// no `ld.so.cache`, and some paths moved, see [`guest_path`]).
    pub library_dirs: Vec<String>,
}

/// Add the executable `binary` (at `dest`, or at its own [`guest_path`]), its program
/// interpreter and every library it needs (at their [`guest_path`]s), each path once per
/// archive (`added`).
fn add_executable<W: Write>(
    w: &mut CpioWriter<W>,
    binary: &Path,
    dest: Option<&str>,
    added: &mut std::collections::BTreeSet<String>,
    out: &Path,
) -> Result<PlacedExecutable, LabError> {
    let deps = crate::elf_deps::runtime_deps(binary)?;
    let dest = match dest {
        Some(d) => d.to_string(),
        None => guest_path(&deps.executable)?,
    };
    let mut put = |guest: &str, host: &Path, mode: u32, what: &str| -> Result<(), LabError> {
        if added.insert(guest.to_string()) {
            w.file(guest, mode, &read(host, what)?)
                .map_err(cpio_err(out))?;
        }
        Ok(())
    };
    put(&dest, &deps.executable, 0o755, "reading a guest binary")?;
    if let Some(interp) = &deps.interpreter {
        let guest = guest_path(interp)?;
        // The kernel opens PT_INTERP as written: it must be the same path in the guest.
        if Path::new("/").join(&guest) != *interp {
            return Err(LabError::invalid(
                format!("placing {} in the guest", binary.display()),
                format!(
                    "its program interpreter {} lies where the guest mounts a file system",
                    interp.display()
                ),
            ));
        }
        put(&guest, interp, 0o755, "reading the program interpreter")?;
    }
    let system: Vec<String> = crate::elf_deps::SYSTEM_DIRS
        .iter()
        .map(|d| d.trim_start_matches('/').to_string())
        .collect();
    let mut library_dirs = Vec::new();
    for lib in &deps.libraries {
        let guest = guest_path(&lib.path)?;
        put(&guest, &lib.path, 0o755, "reading a shared library")?;
        let dir = guest.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let abs = format!("/{dir}");
        if !system.contains(&dir) && !library_dirs.contains(&abs) {
            library_dirs.push(abs);
        }
    }
    Ok(PlacedExecutable {
        guest_path: format!("/{dest}"),
        library_dirs,
    })
}

/// The launcher of the user's executable: its library path, then `exec` (the
/// scheduler keeps the launcher's pid).
fn launcher(placed: &PlacedExecutable, host: &Path) -> String {
    let mut s = format!(
        "#!/bin/sh\n# generated by guest-lab: {} with the library path it needs here\n",
        host.display().to_string().replace('\n', " ")
    );
    if placed.library_dirs.is_empty() {
        s.push_str("unset LD_LIBRARY_PATH\n");
    } else {
        s.push_str(&format!(
            "export LD_LIBRARY_PATH={}\n",
            sh_quote(&placed.library_dirs.join(":"))
        ));
    }
    s.push_str(&format!("exec {} \"$@\"\n", sh_quote(&placed.guest_path)));
    s
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
            SCHED_SH.as_bytes(),
            kernel.release.as_bytes(),
            busybox.as_bytes(),
            bpftool.as_bytes(),
            sched.to_string_lossy().as_bytes(),
            loader.to_string_lossy().as_bytes(),
            LAYOUT.as_bytes(),
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
            w.file("etc/ktstr-sched.sh", 0o644, SCHED_SH.as_bytes())
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
            add_executable(
                &mut w,
                Path::new(BPFTOOL),
                Some("bin/bpftool"),
                &mut added,
                &out,
            )?;
            add_executable(&mut w, &loader, Some("bin/ktstr-loader"), &mut added, &out)?;
            if let Some(module) = &kernel.fw_cfg_module {
                w.file(
                    "lib/modules/qemu_fw_cfg.ko",
                    0o644,
                    &read(module, "reading qemu_fw_cfg.ko")?,
                )
                .map_err(&e)?;
            }
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
        let key = fnv64(&[built.binary.to_string_lossy().as_bytes(), LAYOUT.as_bytes()]);
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
                add_executable(&mut w, &built.binary, Some(&dest), &mut added, &out)?;
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
        match &spec.scheduler {
            SchedulerChoice::Object { path } => {
                w.file(
                    "sched/user.bpf.o",
                    0o644,
                    &read(path, "reading the scheduler object")?,
                )
                .map_err(&e)?;
            }
            SchedulerChoice::Executable { path, .. } => {
                let mut added = std::collections::BTreeSet::new();
                let placed = add_executable(&mut w, path, None, &mut added, &run_path)?;
                w.file(USER_LAUNCHER, 0o755, launcher(&placed, path).as_bytes())
                    .map_err(&e)?;
            }
            _ => {}
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
