//! A plain QEMU boot of the lab guest with a deadline: the lab's own check that its
//! kernel, initramfs and schedulers work (the QEMU engine with freeze/thaw is
//! [`crate::qemu`]; this is only "boot, read the console, wait for the end").

use super::{ConsoleLog, LabError};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    pub fn log(&self) -> ConsoleLog {
        ConsoleLog::parse(&self.console)
    }

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
        console.push_str("\n[ktstr-lab: console truncated]\n");
        return;
    }
    console.push_str(&line);
    times.push((t, line.trim_end().to_string()));
}

/// The default kernel command line: serial console, no reboot on panic, quiet.
pub const DEFAULT_APPEND: &str = "console=ttyS0 panic=-1 loglevel=4";

impl QuickBoot {
    /// TCG with `-cpu max`, 2 vCPUs, 1 GiB, 180 s deadline.
    pub fn new(kernel: &Path, initrd: &Path) -> Self {
        QuickBoot {
            qemu: PathBuf::from("qemu-system-x86_64"),
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            cpus: 2,
            memory_mib: 1024,
            append: DEFAULT_APPEND.to_string(),
            timeout: Duration::from_secs(180),
        }
    }

    /// Boot, collect the console until QEMU exits or the deadline passes (then kill it).
    pub fn run(&self) -> Result<BootOutcome, LabError> {
        let mut cmd = Command::new(&self.qemu);
        cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max", "-nodefaults"])
            .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
            .arg("-smp")
            .arg(self.cpus.to_string())
            .arg("-m")
            .arg(format!("{}M", self.memory_mib))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(&self.append)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // If this process dies (a test killed at its timeout), QEMU must not live on.
        // SAFETY: the closure runs in the forked child before exec and only calls
        // prctl(2), which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| LabError::Tool {
            step: "starting QEMU".into(),
            command: self.qemu.display().to_string(),
            status: format!("could not start: {e}"),
            output_tail: String::new(),
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
            return Err(LabError::Tool {
                step: "booting the guest".into(),
                command: format!("{cmd:?}"),
                status: status.map(|s| s.to_string()).unwrap_or_default(),
                output_tail: super::tool::tail(&stderr),
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
