//! A line from the host to the guest, for tests that must tell the guest when to go on
//! (e.g. interrupt its scheduler only after the host captured it), instead of guessing
//! with a sleep: a second serial port (`/dev/ttyS1` in the guest) backed by a unix
//! socket QEMU listens on. The guest reads the port from boot on; a guest command waits
//! for a line to have come; the host connects and writes one.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use guest_lab::GuestCommand;

/// The guest's end of the line.
pub const GUEST_TTY: &str = "/dev/ttyS1";
/// Where the guest keeps what came over the line.
pub const GUEST_FILE: &str = "/tmp/ktstr-host-line";

/// The host's end: a socket path QEMU serves (see [`HostLine::qemu_args`]).
pub struct HostLine {
    socket: PathBuf,
}

impl Default for HostLine {
    fn default() -> Self {
        Self::new()
    }
}

impl HostLine {
    /// A fresh socket path in the temporary directory (short: unix socket paths are
    /// limited to 107 bytes).
    pub fn new() -> HostLine {
        static N: AtomicU64 = AtomicU64::new(0);
        let socket = std::env::temp_dir().join(format!(
            "ktstr-line-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        HostLine { socket }
    }

    /// QEMU arguments adding the port: a listening socket chardev (QEMU does not wait for
    /// the host to connect) on a second ISA serial port, the guest's `ttyS1`.
    pub fn qemu_args(&self) -> Vec<OsString> {
        let mut chardev = OsString::from("socket,id=ktstr-line,server=on,wait=off,path=");
        chardev.push(&self.socket);
        vec![
            "-chardev".into(),
            chardev,
            "-device".into(),
            "isa-serial,chardev=ktstr-line".into(),
        ]
    }

    /// The guest command that opens the port, early (run it at
    /// [`HookPoint::BeforeScheduler`](guest_lab::HookPoint::BeforeScheduler)): a
    /// background `cat` appends what arrives to [`GUEST_FILE`]. Held open from boot on,
    /// the port drops nothing (bytes reaching a port nobody has open are dropped when it
    /// opens: the driver clears its FIFO).
    pub fn listen(&self) -> GuestCommand {
        GuestCommand::new(
            "host-line",
            format!("cat {GUEST_TTY} > {GUEST_FILE} 2>/dev/null & echo listening"),
        )
    }

    /// A guest command that waits for the host's line ([`listen`](Self::listen) must
    /// run first), prints [`HostLine::READ`] (under `label`), then runs `then`.
    pub fn wait_then(&self, label: &str, then: &str) -> GuestCommand {
        GuestCommand::new(
            label,
            format!(
                "while ! grep -q go {GUEST_FILE} 2>/dev/null; do usleep 100000; done; \
                 echo {}; {then}",
                Self::READ
            ),
        )
    }

    /// What [`wait_then`](Self::wait_then)'s command prints once it read the line.
    pub const READ: &str = "host-line-read";

    /// Sends the line until `read` says the guest got it (`guest.has_line(HostLine::READ)`),
    /// again every half second (a line is cheap; losing one would hang the guest's
    /// command). False when `timeout` passed first (the caller fails with the guest's
    /// console).
    pub fn send_until(&self, read: impl Fn() -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stream = loop {
            match UnixStream::connect(&self.socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    panic!("connecting to {}: {e}", self.socket.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        while !read() {
            if Instant::now() >= deadline {
                return false;
            }
            stream
                .write_all(b"go\n")
                .expect("writing to the guest's ttyS1");
            std::thread::sleep(Duration::from_millis(500));
        }
        true
    }
}

impl Drop for HostLine {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}
