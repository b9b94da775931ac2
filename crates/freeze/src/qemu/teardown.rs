//! No orphan QEMU, whatever happens to the host process.
//!
//! Three layers:
//! - `Drop` of the engine kills and reaps QEMU and removes its directory (normal return,
//!   error, panic unwinding).
//! - Every QEMU is started with `PR_SET_PDEATHSIG = SIGKILL` from a spawner thread that
//!   lives as long as the process, so the kernel kills QEMU when the host process dies
//!   in any way, even `SIGKILL` (the death signal follows the *thread* that forked, hence
//!   the dedicated thread). QEMU also gets its own process group, so a terminal's Ctrl-C
//!   reaches only the host process, which decides what happens (capture first, say).
//! - Each private directory records its owner's pid; launching a new engine removes the
//!   directories whose owner is gone ([`sweep_stale`]) — the one leftover a `SIGKILL`
//!   of the host process can leave.
//! - A registry of live engines that [`teardown_registered`] kills, and an optional
//!   signal handler ([`install_interrupt_handler`]) that calls it on SIGINT/SIGTERM/SIGHUP
//!   and exits, for programs that have no Ctrl-C handling of their own.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

type SpawnRequest = (Command, Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("qemu-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the sender sits in a static.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the qemu spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it dies with this process (see the module docs) and runs in its
/// own process group.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the qemu spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the qemu spawner thread dropped the request"))?
}

#[derive(Debug, Clone)]
struct Entry {
    pid: libc::pid_t,
    dir: PathBuf,
}

fn registry() -> &'static Mutex<HashMap<u64, Entry>> {
    static REG: OnceLock<Mutex<HashMap<u64, Entry>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A live engine's entry in the registry; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration(u64);

/// Records a running QEMU (`pid`) and its private directory for [`teardown_registered`].
pub fn register(pid: u32, dir: PathBuf) -> Registration {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Entry {
            pid: pid as libc::pid_t,
            dir,
        },
    );
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// Number of engines currently registered (live QEMU processes started by this process).
pub fn registered_count() -> usize {
    registry().lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Kills every registered QEMU (SIGKILL, then reaps it) and removes its directory.
/// Meant for interrupt paths where engines will not be dropped (the process is about to
/// exit); engines dropped later find their process gone and do nothing harmful.
pub fn teardown_registered() {
    let entries: Vec<Entry> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, e)| e)
        .collect();
    for e in entries {
        // SAFETY: plain syscalls on a pid we started. The pid cannot have been reused:
        // it stays a zombie until reaped, and only this function or the engine's Drop
        // (which unregisters first) reaps it.
        unsafe {
            libc::kill(e.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(e.pid, &mut status, 0);
        }
        let _ = std::fs::remove_dir_all(&e.dir);
    }
}

/// Installs (once per process) a handler thread for SIGINT, SIGTERM and SIGHUP that
/// tears down every registered engine and exits with status 128 + signal.
///
/// Programs that want Ctrl-C to do something first (capture a dump) should not use this:
/// handle the signal themselves and drop their engines or call [`teardown_registered`].
pub fn install_interrupt_handler() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
            let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
                .map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("qemu-teardown-on-signal".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        teardown_registered();
                        std::process::exit(128 + sig);
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .clone()
        .map_err(io::Error::other)
}

/// Prefix of every engine's private directory.
pub const DIR_PREFIX: &str = "ktstr-qemu-";
const OWNER_FILE: &str = "owner";
/// Directories looked at per sweep (a temp dir can be huge; the sweep is best effort).
const SWEEP_LIMIT: usize = 100_000;

/// Records this process as the owner of `dir` (an engine's private directory).
pub fn write_owner(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join(OWNER_FILE), format!("{}\n", std::process::id()))
}

/// Removes engine directories under `parent` whose owner process no longer exists
/// (its host process was killed before it could clean up); returns how many.
/// Directories without a readable owner are left alone: one may be in creation.
pub fn sweep_stale(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.take(SWEEP_LIMIT).flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        // Never follow a symlink planted under the prefix.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        let Some(pid) = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir_all(&dir).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_dirs_of_dead_owners() {
        let parent = tempfile::tempdir().unwrap();
        let mk = |name: &str, owner: Option<&str>| {
            let d = parent.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("ram"), b"x").unwrap();
            if let Some(o) = owner {
                std::fs::write(d.join(OWNER_FILE), o).unwrap();
            }
            d
        };
        // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
        let dead = mk("ktstr-qemu-dead", Some("99999999\n"));
        let mine = mk("ktstr-qemu-mine", Some(&format!("{}", std::process::id())));
        let init = mk("ktstr-qemu-init", Some("1"));
        let fresh = mk("ktstr-qemu-fresh", None);
        let garbage = mk("ktstr-qemu-garbage", Some("not a pid"));
        let other = mk("other-dead", Some("99999999"));
        assert_eq!(sweep_stale(parent.path()), 1);
        assert!(!dead.exists());
        for d in [mine, init, fresh, garbage, other] {
            assert!(d.exists(), "{}", d.display());
        }
    }
}
