//! A plain QEMU boot with a deadline, for checking that a kernel, an initramfs and the
//! schedulers in it work (the engine with freeze/thaw is [`super::QemuEngine`]; this is
//! only "boot, read the console, wait for the end").

use super::accel::Accel;
use super::command::QemuCommand;
use super::teardown::spawn_tied;
use crate::EngineError;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How to boot.
#[derive(Debug, Clone)]
pub struct QuickBoot {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cpus: u32,
    pub memory_mib: u32,
    /// Kernel command line.
    pub append: String,
    /// Kill QEMU after this long.
    pub timeout: Duration,
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// Everything on the serial console.
    pub console: String,
    /// QEMU exited on its own (the guest powered off or the kernel panicked with
    /// `-no-reboot`) rather than being killed at the deadline.
    pub exited: bool,
    pub elapsed: Duration,
    /// When each line first appeared, relative to the start (for boot timing).
    pub line_times: Vec<(Duration, String)>,
}

impl BootOutcome {
    /// When a line containing `needle` first appeared.
    pub fn time_of(&self, needle: &str) -> Option<Duration> {
        self.line_times
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    }
}

/// At most this much console is kept (the rest is dropped, with a marker line).
const MAX_CONSOLE: usize = 32 << 20;

fn keep(console: &mut String, times: &mut Vec<(Duration, String)>, t: Duration, line: String) {
    if console.len() >= MAX_CONSOLE {
        return;
    }
    if console.len() + line.len() >= MAX_CONSOLE {
        console.push_str("\n[ktstr: console truncated]\n");
        return;
    }
    console.push_str(&line);
    times.push((t, line.trim_end().to_string()));
}

impl QuickBoot {
    /// TCG with `-cpu max`, 2 vCPUs, 1 GiB, 180 s deadline; `append` is the kernel
    /// command line (its console must be `ttyS0`).
    pub fn new(kernel: &Path, initrd: &Path, append: &str) -> Self {
        QuickBoot {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            cpus: 2,
            memory_mib: 1024,
            append: append.to_string(),
            timeout: Duration::from_secs(180),
        }
    }

    /// Boot, collect the console until QEMU exits or the deadline passes (then kill it).
    pub fn run(&self) -> Result<BootOutcome, EngineError> {
        let cmd = QemuCommand::new(&self.qemu, Accel::Tcg)
            .size(self.cpus, u64::from(self.memory_mib))
            .args(["-serial", "stdio"])
            .boot(&self.kernel, Some(&self.initrd), &self.append)
            .into_command();
        let started = Instant::now();
        // Tied to this process: a test killed at its timeout leaves no QEMU behind.
        let mut child = spawn_tied(cmd).map_err(|source| EngineError::Io {
            step: "start qemu-system-x86_64",
            source,
        })?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel::<(Duration, String)>();
        let reader = std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            // Bounded lines: a guest that never prints a newline cannot grow this forever.
            while let Ok(n) = r.by_ref().take(64 * 1024).read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                buf.clear();
                if tx.send((started.elapsed(), line)).is_err() {
                    break;
                }
            }
        });
        let mut console = String::new();
        let mut line_times = Vec::new();
        let deadline = started + self.timeout;
        let mut exited = false;
        loop {
            while let Ok((t, line)) = rx.try_recv() {
                keep(&mut console, &mut line_times, t, line);
            }
            match child.try_wait() {
                Ok(Some(_)) => {
                    exited = true;
                    break;
                }
                Ok(None) => {}
                Err(_) => break,
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            let _ = child.kill();
        }
        let status = child.wait();
        let _ = reader.join();
        while let Ok((t, line)) = rx.try_recv() {
            keep(&mut console, &mut line_times, t, line);
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.by_ref().take(64 * 1024).read_to_string(&mut stderr);
        }
        if exited && console.is_empty() {
            let status = status.map(|s| s.to_string()).unwrap_or_default();
            return Err(EngineError::Failed {
                step: "boot the guest",
                detail: format!(
                    "QEMU exited ({status}) with no console output: {}",
                    tail(&stderr)
                ),
            });
        }
        Ok(BootOutcome {
            console,
            exited,
            elapsed: started.elapsed(),
            line_times,
        })
    }
}

/// The last 2 KiB of a tool's output, on a char boundary.
fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(2048);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].trim()
}
