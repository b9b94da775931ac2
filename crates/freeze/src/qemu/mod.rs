//! The QEMU engine: qemu-system-x86_64 (KVM or TCG) with shared RAM, QMP freeze/thaw.
//!
//! One [`QemuEngine`] owns one QEMU process and a private directory holding the guest
//! RAM file (`memory-backend-file,share=on` on the `pc` machine, mapped read-only and
//! shared by `guest_mem::ramfile` as [`GuestRam`]: writing through it faults) and the
//! QMP socket. Freeze is QMP `stop`, whose answer comes after QEMU paused every vCPU;
//! registers are read while stopped with `info registers -a`. The serial console is
//! captured from QEMU's stdout ([`Console`]). With [`QemuConfig::gdbstub`] the engine
//! also speaks to QEMU's gdbstub ([`gdb`]) and implements
//! [`WatchEngine`](crate::watchpoint::WatchEngine): write watchpoints that stop the
//! guest at the writing instruction ([`watchpoint`] has how, and what changes for
//! freeze and thaw).
//!
//! Teardown on every path: `Drop` kills and reaps QEMU and removes the directory; QEMU
//! dies with the host process even on `SIGKILL` ([`teardown`] has the details).
//!
//! Other pieces, usable alone: [`AttachedQemu`] (an engine over a QEMU someone else
//! started, from its QMP socket and RAM file; no watchpoints; the engine's own QMP side
//! too), [`QmpClient`],
//! [`gdb::GdbClient`], [`accel::decide`] (the KVM-or-TCG probe),
//! [`regs::parse_info_registers`], [`Console`].
//!
//! ```no_run
//! use std::time::Duration;
//! use freeze::Engine;
//! use freeze::qemu::{LineMark, QemuConfig, QemuEngine};
//! let cfg = QemuConfig::new("vmlinuz", Some("initramfs.cpio".into()), "console=ttyS0 panic=-1");
//! let mut vm = QemuEngine::launch(&cfg)?;
//! vm.console().wait_contains(LineMark::START, Duration::from_secs(120), "KTSTR-PHASE: init")
//!     .expect("booted");
//! let frozen = vm.freeze(Duration::from_secs(10))?; // every vCPU stopped, registers read
//! let ram = vm.guest_ram(); // read the guest here (guest_mem::PhysMem::from_guest_memory)
//! vm.dump_vmcore("vmcore".as_ref())?;
//! vm.thaw()?;
//! # let _ = (frozen, ram);
//! # Ok::<(), freeze::EngineError>(())
//! ```

pub mod accel;
pub mod attach;
pub mod command;
pub mod console;
pub mod gdb;
pub mod qmp;
pub mod quick_boot;
pub mod regs;
pub mod teardown;
pub mod watchpoint;

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use guest_mem::ramfile::QemuMachine;
use serde_json::json;

pub use accel::{Accel, AccelChoice, AccelDecision};
pub use attach::AttachedQemu;
pub use command::QemuCommand;
pub use console::{Console, LineMark, WaitError};
pub use qmp::{QmpClient, QmpError, QmpEvent};
pub use quick_boot::{BootOutcome, QuickBoot};

use crate::perf::VcpuCounters;
use crate::{CpuRegs, Engine, EngineError, FreezeOutcome, GuestRam};

/// How to start a guest.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// The QEMU binary (looked up in `PATH` when relative).
    pub qemu: PathBuf,
    /// The kernel image (bzImage or ELF vmlinux).
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// The kernel command line. `console=ttyS0` is needed for the console capture.
    pub cmdline: String,
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    pub accel: AccelChoice,
    /// Raw console bytes kept for [`Engine::console_tail`].
    pub console_tail_bytes: usize,
    /// Where the private directory is created (default: the system temp dir).
    pub temp_parent: Option<PathBuf>,
    /// Bound on QEMU's start (until QMP answers).
    pub start_timeout: Duration,
    /// Appended to QEMU's command line as is.
    pub extra_args: Vec<OsString>,
    /// Start QEMU's gdbstub on a socket in the private directory and attach to it, for
    /// write watchpoints ([`crate::watchpoint::WatchEngine`]). Freeze and thaw then go
    /// through the stub too (see [`watchpoint`]). Default: off.
    pub gdbstub: bool,
}

impl QemuConfig {
    /// Defaults: 2 vCPUs, 1 GiB, accelerator probed, 64 KiB console tail.
    pub fn new(kernel: impl Into<PathBuf>, initrd: Option<PathBuf>, cmdline: &str) -> Self {
        QemuConfig {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: kernel.into(),
            initrd,
            cmdline: cmdline.to_string(),
            vcpus: 2,
            memory_mib: 1024,
            accel: AccelChoice::Auto,
            console_tail_bytes: 64 << 10,
            temp_parent: None,
            start_timeout: Duration::from_secs(30),
            extra_args: Vec::new(),
            gdbstub: false,
        }
    }
}

/// Bound on `stop`/`cont`/`info registers` when the caller gives none.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a graceful `quit` before SIGKILL.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running QEMU guest. See the module docs.
#[derive(Debug)]
pub struct QemuEngine {
    child: Child,
    /// The QMP session, guest RAM, freeze state and vCPU perf counters.
    session: AttachedQemu,
    console: Console,
    stderr: Console,
    readers: Vec<JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
    _registration: teardown::Registration,
    accel: AccelDecision,
    exit_status: Option<ExitStatus>,
    /// The gdbstub session, when launched with [`QemuConfig::gdbstub`] (boxed: most
    /// engines have none, and the engine is moved around by value).
    gdb: Option<Box<watchpoint::GdbSession>>,
}

fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { step, source }
}

/// An error of a connection to QEMU (QMP, the gdbstub).
pub(crate) trait ConnectionError: std::fmt::Display {
    /// The connection's name in messages.
    const NAME: &'static str;
    /// QEMU closed the connection.
    fn is_closed(&self) -> bool;
}

impl ConnectionError for QmpError {
    const NAME: &'static str = "QMP";
    fn is_closed(&self) -> bool {
        matches!(self, QmpError::Closed)
    }
}

/// The engine's error for a connection error at `step`: a closed connection means the
/// guest (QEMU) is gone.
fn conn_err<E: ConnectionError>(step: &'static str) -> impl FnOnce(E) -> EngineError {
    move |e| {
        if e.is_closed() {
            EngineError::GuestExited(format!("{step}: {} connection closed", E::NAME))
        } else {
            EngineError::Failed {
                step,
                detail: e.to_string(),
            }
        }
    }
}

impl QemuEngine {
    /// Starts QEMU and returns once QMP answers and guest RAM is mapped; the guest is
    /// already running (booting).
    pub fn launch(cfg: &QemuConfig) -> Result<Self, EngineError> {
        if cfg.vcpus == 0 || cfg.memory_mib == 0 {
            return Err(EngineError::Failed {
                step: "launch",
                detail: "vcpus and memory must be non-zero".into(),
            });
        }
        let ram_size = cfg
            .memory_mib
            .checked_mul(1 << 20)
            .ok_or_else(|| EngineError::Failed {
                step: "launch",
                detail: format!("{} MiB of RAM overflows", cfg.memory_mib),
            })?;
        let accel = match cfg.accel {
            AccelChoice::Auto => accel::decide(&cfg.qemu, &cfg.kernel),
            AccelChoice::Kvm => AccelDecision {
                accel: Accel::Kvm,
                reason: "requested".into(),
            },
            AccelChoice::Tcg => AccelDecision {
                accel: Accel::Tcg,
                reason: "requested".into(),
            },
        };
        let parent = cfg.temp_parent.clone().unwrap_or_else(std::env::temp_dir);
        teardown::sweep_stale(&parent);
        let dir = tempfile::Builder::new()
            .prefix(teardown::DIR_PREFIX)
            .tempdir_in(&parent)
            .map_err(io("create the private directory"))?;
        teardown::write_owner(dir.path()).map_err(io("record the directory's owner"))?;
        let ram_path = dir.path().join("ram");
        let qmp_path = dir.path().join("qmp.sock");
        let gdb_path = dir.path().join("gdb.sock");

        let mut cmd = QemuCommand::new(&cfg.qemu, accel.accel)
            .size(cfg.vcpus, cfg.memory_mib)
            .shared_ram(cfg.memory_mib, &ram_path)
            .qmp_socket(&qmp_path);
        if cfg.gdbstub {
            cmd = cmd.gdb_socket(&gdb_path);
        }
        let cmd = cmd
            .serial_stdout()
            .args(["-device", "vmcoreinfo"])
            .boot(&cfg.kernel, cfg.initrd.as_deref(), &cfg.cmdline)
            .args(&cfg.extra_args)
            .into_command();

        let mut child = teardown::spawn_tied(cmd).map_err(io("start qemu-system-x86_64"))?;
        let registration = teardown::register(child.id(), dir.path().to_path_buf());
        let console = Console::new(cfg.console_tail_bytes);
        let stderr = Console::new(16 << 10);
        let readers = vec![
            console.spawn_reader(child.stdout.take().expect("stdout is piped")),
            stderr.spawn_reader(child.stderr.take().expect("stderr is piped")),
        ];
        // From here on, an early return drops `child` without killing it: wrap the
        // rest so that a failure kills and reaps QEMU and removes the directory.
        let mut partial = Partial { child: Some(child) };
        let qmp = connect_qmp(&qmp_path, partial.child(), &stderr, cfg.start_timeout)?;
        let vcpus = cfg.vcpus as usize;
        let session = AttachedQemu::over(qmp, &ram_path, QemuMachine::Pc, ram_size, vcpus, false)?;
        // Attaching stops the guest for a moment (QEMU pauses it for a new debugger)
        // and continues it through the stub.
        let gdb = if cfg.gdbstub {
            Some(Box::new(watchpoint::GdbSession::attach(
                &gdb_path,
                cfg.start_timeout,
            )?))
        } else {
            None
        };
        let child = partial.child.take().expect("still owned");
        Ok(QemuEngine {
            child,
            session,
            console,
            stderr,
            readers,
            dir: Some(dir),
            _registration: registration,
            accel,
            exit_status: None,
            gdb,
        })
    }

    /// KVM or TCG, and why.
    pub fn accel(&self) -> &AccelDecision {
        &self.accel
    }

    /// The guest's serial console (wait for lines, stream them, read the tail).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Becomes true when QEMU exits (its stdout closes): pass it as
    /// [`crate::watch::WatchOptions::stop`] so a watch ends with the guest.
    pub fn exited_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.console.closed_flag()
    }

    /// The last bytes QEMU wrote to its stderr.
    pub fn qemu_stderr_tail(&self) -> String {
        self.stderr.tail()
    }

    /// The QMP session, for commands this type has no method for.
    pub fn qmp(&mut self) -> &mut QmpClient {
        self.session.qmp()
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private directory (RAM file, QMP socket); removed on drop.
    pub fn private_dir(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// The shared guest RAM file.
    pub fn ram_file(&self) -> PathBuf {
        self.private_dir().join("ram")
    }

    /// `query-status`: `running`, `paused`, `shutdown`, `internal-error`, ...
    pub fn run_state(&mut self) -> Result<String, EngineError> {
        self.session
            .qmp
            .run_state()
            .map_err(conn_err("query-status"))
    }

    /// Writes an ELF vmcore of the guest to `path` with QMP `dump-guest-memory` (with
    /// the guest's VMCOREINFO note when the guest loaded `qemu_fw_cfg`). Works frozen
    /// or running (QEMU pauses the guest for the dump and restores its state).
    pub fn dump_vmcore(&mut self, path: &Path) -> Result<(), EngineError> {
        let path = path.to_str().ok_or_else(|| EngineError::Failed {
            step: "dump-guest-memory",
            detail: format!("path {} is not UTF-8", path.display()),
        })?;
        self.session
            .qmp
            .execute_timeout(
                "dump-guest-memory",
                Some(json!({ "paging": false, "protocol": format!("file:{path}") })),
                Duration::from_secs(300),
            )
            .map_err(conn_err("dump-guest-memory"))?;
        Ok(())
    }

    /// Waits until QEMU exits by itself (the guest powered off or rebooted), up to
    /// `timeout`. `Ok(None)` when it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, EngineError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit_status()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// QEMU's exit status if it has exited.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, EngineError> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().map_err(io("wait for qemu"))?;
        }
        Ok(self.exit_status)
    }

    /// Asks QEMU to quit, then kills it if it does not within a few seconds; reaps it,
    /// removes the private directory. Dropping does the same without the polite part.
    pub fn shutdown(mut self) -> Result<Option<ExitStatus>, EngineError> {
        if self.try_exit_status()?.is_none() {
            let _ = self
                .session
                .qmp
                .execute_timeout("quit", None, QUIT_TIMEOUT)
                .map_err(conn_err("quit"));
            self.wait_exit(QUIT_TIMEOUT)?;
        }
        let status = self.exit_status;
        self.teardown();
        Ok(status)
    }

    fn teardown(&mut self) {
        if self.exit_status.is_none() {
            let _ = self.child.kill();
            self.exit_status = self.child.wait().ok();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }

    fn check_alive(&mut self, step: &'static str) -> Result<(), EngineError> {
        if let Some(s) = self.try_exit_status()? {
            return Err(EngineError::GuestExited(format!(
                "{step}: qemu exited with {s}; stderr: {}",
                self.stderr.tail().trim()
            )));
        }
        Ok(())
    }
}

impl Drop for QemuEngine {
    fn drop(&mut self) {
        self.teardown();
    }
}

impl Engine for QemuEngine {
    fn guest_ram(&self) -> GuestRam {
        self.session.ram.clone()
    }

    fn vcpu_count(&self) -> usize {
        self.session.vcpus
    }

    /// QMP `stop` (answered once every vCPU is paused), then `info registers -a`.
    /// `elapsed` covers the `stop` round trip. If the registers cannot be read or
    /// parsed the guest stays frozen and the error is returned. With the gdbstub
    /// attached, the stop reply QEMU sends it for the QMP `stop` is consumed as well.
    fn freeze(&mut self, timeout: Duration) -> Result<FreezeOutcome, EngineError> {
        self.check_alive("freeze")?;
        match self.gdb.as_mut() {
            None => self.session.freeze(timeout),
            Some(gdb) => gdb.freeze(&mut self.session, timeout),
        }
    }

    /// QMP `cont`; with the gdbstub attached, `c` through the stub (a guest resumed
    /// by QMP would stop at the next watchpoint hit without telling the stub's client).
    fn thaw(&mut self) -> Result<(), EngineError> {
        self.check_alive("thaw")?;
        match self.gdb.as_mut() {
            None => self.session.thaw(),
            Some(gdb) => gdb.thaw(&mut self.session),
        }
    }

    fn is_frozen(&self) -> bool {
        self.session.frozen
    }

    fn console_tail(&self) -> String {
        self.console.tail()
    }
}

/// The registers of every vCPU of a stopped guest (`info registers -a`), index = vCPU
/// (as many as QEMU shows).
pub fn read_registers(qmp: &mut QmpClient) -> Result<Vec<Option<CpuRegs>>, EngineError> {
    let text = qmp
        .execute_timeout(
            "human-monitor-command",
            Some(json!({ "command-line": "info registers -a" })),
            QMP_TIMEOUT,
        )
        .map_err(conn_err("info registers"))?;
    regs::parse_info_registers(text.as_str().unwrap_or_default()).map_err(|e| EngineError::Failed {
        step: "parse info registers",
        detail: e.to_string(),
    })
}

/// Host thread ids of QEMU's vCPUs (`query-cpus-fast` `thread-id`), index = vCPU.
pub fn vcpu_thread_ids(qmp: &mut QmpClient) -> Result<Vec<i32>, String> {
    let cpus = qmp
        .execute_timeout("query-cpus-fast", None, QMP_TIMEOUT)
        .map_err(|e| format!("query-cpus-fast: {e}"))?;
    let cpus = cpus
        .as_array()
        .ok_or_else(|| format!("query-cpus-fast: not a list: {cpus}"))?;
    let mut ids: Vec<(u64, i32)> = Vec::with_capacity(cpus.len());
    for c in cpus {
        let index = c.get("cpu-index").and_then(serde_json::Value::as_u64);
        let tid = c
            .get("thread-id")
            .and_then(serde_json::Value::as_i64)
            .and_then(|t| i32::try_from(t).ok())
            .filter(|t| *t > 0);
        match (index, tid) {
            (Some(i), Some(t)) => ids.push((i, t)),
            _ => return Err(format!("query-cpus-fast: no cpu-index/thread-id in {c}")),
        }
    }
    ids.sort_unstable();
    Ok(ids.into_iter().map(|(_, t)| t).collect())
}

/// Opens the perf counter groups on QEMU's vCPU threads (or says why not).
pub fn open_vcpu_counters(qmp: &mut QmpClient) -> VcpuCounters {
    match vcpu_thread_ids(qmp) {
        Ok(tids) => VcpuCounters::open(&tids),
        Err(e) => VcpuCounters::Unavailable(format!("vCPU thread ids: {e}")),
    }
}

/// Connects to the unix socket at `path`, retrying for `timeout` while it is missing or
/// refuses (QEMU creates its sockets a little after it starts).
fn connect_unix(path: &Path, timeout: Duration) -> std::io::Result<UnixStream> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            // NotFound / ConnectionRefused until QEMU listens.
            Err(_) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
}

/// Owns QEMU while `launch` is still fallible.
struct Partial {
    child: Option<Child>,
}

impl Partial {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("owned until launch succeeds")
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn exited_during_start(status: ExitStatus, stderr: &Console) -> EngineError {
    // Let the stderr reader catch up with QEMU's last words (it ends at EOF).
    let _ = stderr.wait_line(LineMark::START, Duration::from_secs(1), |_| false);
    EngineError::GuestExited(format!(
        "qemu exited during start with {status}: {}",
        stderr.tail().trim()
    ))
}

fn connect_qmp(
    path: &Path,
    child: &mut Child,
    stderr: &Console,
    timeout: Duration,
) -> Result<QmpClient, EngineError> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(io("wait for qemu"))? {
            return Err(exited_during_start(status, stderr));
        }
        match UnixStream::connect(path) {
            Ok(s) => {
                return QmpClient::from_stream(s, timeout.saturating_sub(start.elapsed())).map_err(
                    |e| {
                        // QEMU listens before it loads the kernel: a bad kernel or
                        // option closes the socket. Its stderr says why.
                        let deadline = Instant::now() + Duration::from_secs(2);
                        while Instant::now() < deadline {
                            if let Ok(Some(status)) = child.try_wait() {
                                return exited_during_start(status, stderr);
                            }
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        conn_err("QMP handshake")(e)
                    },
                );
            }
            Err(e) if start.elapsed() >= timeout => {
                return Err(EngineError::Failed {
                    step: "connect to QMP",
                    detail: format!("{} after {timeout:?}: {e}", path.display()),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}
