//! Output: every file is written atomically (a temporary file next to the target, fsync,
//! rename), reports are serialized straight into it (never through a whole-report
//! `String`), and a temporary file never outlives an interrupted run: the signal handler
//! ([`install_signal_cleanup`]) removes every one still being written before the process
//! exits on SIGINT, SIGTERM or SIGHUP.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dump_schema::FailureDumpReportAny;

use crate::Error;

/// Temporary files being written right now (removed by the signal handler).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file still being written (for a signal handler that is about
/// to end the process). Returns how many it removed.
pub fn remove_pending_temp_files() -> usize {
    let mut n = 0;
    for p in pending().drain(..) {
        if std::fs::remove_file(&p).is_ok() {
            n += 1;
        }
    }
    n
}

/// Unregisters its temporary file when the write ends, whichever way.
struct Registered(PathBuf);

impl Registered {
    fn new(p: &Path) -> Registered {
        pending().push(p.to_path_buf());
        Registered(p.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        pending().retain(|p| p != &self.0);
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP on a thread of their own: with `interrupt` (a run,
/// where Ctrl-C means "capture now"), the first SIGINT or SIGTERM only sets the flag;
/// otherwise, and at the second, every temporary file still being written is removed
/// and the process exits with 128 + the signal's number.
pub fn install_signal_cleanup(interrupt: Option<Arc<AtomicBool>>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Infrastructure(format!("installing the signal handler: {e}")))?;
    std::thread::Builder::new()
        .name("ktstr-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if let Some(flag) = &interrupt
                    && sig != SIGHUP
                    && !flag.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                remove_pending_temp_files();
                std::process::exit(128 + sig);
            }
        })
        .map_err(|e| Error::Infrastructure(format!("starting the signal thread: {e}")))?;
    Ok(())
}

/// Where `--out` writes: standard output (`-`) or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutTarget {
    Stdout,
    File(PathBuf),
}

impl OutTarget {
    /// Checks an `--out` path before any work is done: `-` is standard output; a
    /// symbolic link is followed (its target is written, the link stays); a directory,
    /// or a file in a directory that does not exist, is a usage error.
    pub fn parse(path: &Path) -> Result<OutTarget, Error> {
        Self::parse_flag("--out", path)
    }

    /// [`OutTarget::parse`] for the option `flag` (named in its errors).
    pub fn parse_flag(flag: &str, path: &Path) -> Result<OutTarget, Error> {
        if path.as_os_str() == "-" {
            return Ok(OutTarget::Stdout);
        }
        let mut target = path.to_path_buf();
        // Follow links (bounded: a loop of links is an error, not a hang).
        for _ in 0..40 {
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.file_type().is_symlink() => {
                    let next = std::fs::read_link(&target).map_err(|source| Error::Read {
                        path: target.clone(),
                        source,
                    })?;
                    target = match target.parent() {
                        Some(dir) if next.is_relative() => dir.join(next),
                        _ => next,
                    };
                }
                Ok(m) if m.is_dir() => {
                    return Err(Error::Usage(format!(
                        "{flag} {}: is a directory (give a file name)",
                        path.display()
                    )));
                }
                _ => break,
            }
        }
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Usage(format!(
                "{flag} {}: too many levels of symbolic links",
                path.display()
            )));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{flag} {}: directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
        Ok(OutTarget::File(target))
    }
}

/// How a report is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonStyle {
    /// One line (the default for files and `--json`).
    #[default]
    Compact,
    /// Indented for people (`--pretty`).
    Pretty,
}

/// Serializes `report` straight into `w`, then a newline.
pub fn write_report_json(
    w: &mut dyn Write,
    report: &FailureDumpReportAny,
    style: JsonStyle,
) -> std::io::Result<()> {
    if style == JsonStyle::Compact {
        // Buffered inside: `w` sees chunks of about 64 KiB.
        dump_schema::to_writer_compact(w, report)?;
        w.write_all(b"\n")?;
        return w.flush();
    }
    // The serializer writes many small pieces: a concrete buffered writer in front of
    // `w` keeps those writes inlined, and `w` sees large chunks.
    let mut buf = std::io::BufWriter::with_capacity(1 << 16, w);
    serde_json::to_writer_pretty(&mut buf, report).map_err(std::io::Error::other)?;
    buf.write_all(b"\n")?;
    buf.flush()
}

/// Writes `report` to `target` (atomically for a file).
pub fn write_report(
    target: &OutTarget,
    report: &FailureDumpReportAny,
    style: JsonStyle,
) -> Result<(), Error> {
    write_to(target, |w| write_report_json(w, report, style))
}

/// Writes the HTML page of `report` ([`dump_schema::html::page`]) to `path` (`-`: standard
/// output), atomically for a file; `path` is checked as `--html`'s.
pub fn write_html(path: &Path, report: &FailureDumpReportAny) -> Result<(), Error> {
    let target = OutTarget::parse_flag("--html", path)?;
    let page = dump_schema::html::page(report);
    write_to(&target, |w| w.write_all(page.as_bytes()))
}

/// The bytes of `fill` to `target`: standard output (a closed pipe is not an error), or a
/// file through [`write_atomic`].
fn write_to(
    target: &OutTarget,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    match target {
        OutTarget::Stdout => {
            let mut out = std::io::stdout().lock();
            let mut w = std::io::BufWriter::new(&mut out);
            match fill(&mut w).and_then(|_| w.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Write {
                    path: "<stdout>".into(),
                    source: e,
                }),
                _ => Ok(()),
            }
        }
        OutTarget::File(p) => write_atomic(p, fill),
    }
}

/// Writes the bytes produced by `fill` to `path` atomically: they go to a temporary file in
/// the same directory (so the rename cannot cross file systems), which is renamed onto
/// `path` only after `fill` and the flush succeeded. On any error the temporary file is
/// removed and `path` is untouched (absent if it was absent); on SIGINT, SIGTERM or SIGHUP
/// the signal handler removes it ([`install_signal_cleanup`]). A path that names a device
/// or FIFO is written in place (there is nothing to rename over).
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    // A device, FIFO or other special file (`/dev/stdout`, `/dev/null`) is written in
    // place: renaming a regular file over it would replace the device node itself.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        if meta.is_dir() {
            return Err(err(std::io::Error::other("is a directory")));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(err)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w).map_err(err)?;
        return w.flush().map_err(err);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A hidden name, so a half-written file never looks like a finished one.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    let _registered = Registered::new(tmp.path());
    write_beside(EarlyWriteback::new(tmp.as_file_mut()), fill).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Runs `fill` on the calling thread while a second thread hands what it produced to
/// `out`: a real scheduler's dump is megabytes, and the system calls that copy them into
/// the page cache cost a good part of what serializing them does. `fill`'s bytes travel in
/// [`Pipe::CHUNK`]-byte buffers, at most [`Pipe::IN_FLIGHT`] of them at a time, reused
/// (no fresh pages after the first ones). `out`'s first error stops both sides and is
/// the one returned; `fill`'s own error comes first otherwise.
fn write_beside<W: Write + Send>(
    mut out: W,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::sync::mpsc;
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(Pipe::IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<()> {
            for buf in full_rx {
                out.write_all(&buf)?;
                // The filler may be gone (it finished or failed): nothing to give back.
                let _ = empty_tx.send(buf);
            }
            out.flush()
        });
        let mut pipe = Pipe {
            full: Some(full_tx),
            empty: empty_rx,
            buf: Vec::with_capacity(Pipe::CHUNK),
            made: 1,
        };
        let filled = fill(&mut pipe).and_then(|()| pipe.send());
        // Closing the channel ends the writer's loop.
        drop(pipe);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread panicked")));
        match (filled, written) {
            // The filler's error may only be the pipe closed by the writer's failure.
            (_, Err(e)) => Err(e),
            (r, Ok(())) => r,
        }
    })
}

/// The filling side of [`write_beside`].
struct Pipe {
    full: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    empty: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    /// Buffers made so far (at most `IN_FLIGHT + 1`: the rest are reused).
    made: usize,
}

impl Pipe {
    const CHUNK: usize = 256 << 10;
    const IN_FLIGHT: usize = 3;

    /// Hands the current buffer to the writer and takes an empty one.
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = if self.made <= Self::IN_FLIGHT {
            self.made += 1;
            Vec::with_capacity(Self::CHUNK)
        } else {
            // Every buffer is in flight or being written: wait for one back.
            match self.empty.recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => return Err(writer_gone()),
            }
        };
        let full = std::mem::replace(&mut self.buf, next);
        let tx = self.full.as_ref().ok_or_else(writer_gone)?;
        tx.send(full).map_err(|_| writer_gone())
    }
}

fn writer_gone() -> std::io::Error {
    std::io::Error::other("the writing thread stopped")
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > Self::CHUNK && !self.buf.is_empty() {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    /// Hands what is buffered to the writing thread (which writes it without being
    /// waited for).
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A file writer that starts the kernel's writeback of every [`EarlyWriteback::EVERY`]
/// bytes as soon as they are written (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which
/// does not wait), so that the `fsync` after the last byte waits for the tail only
/// instead of the whole file: a real scheduler's dump is megabytes.
struct EarlyWriteback<'f> {
    file: &'f mut std::fs::File,
    written: u64,
    started: u64,
}

impl<'f> EarlyWriteback<'f> {
    const EVERY: u64 = 1 << 20;

    fn new(file: &'f mut std::fs::File) -> Self {
        EarlyWriteback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= Self::EVERY {
            use std::os::fd::AsRawFd as _;
            // SAFETY: a plain system call on an open descriptor; ranges past the end of the
            // file are allowed. It only starts writeback: its result changes nothing of what
            // is written (the fsync after the last byte reports any I/O error).
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_fill_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        let r = write_atomic(&p, |w| {
            w.write_all(b"{\"partial\":")?;
            Err(std::io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn success_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn special_files_are_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, |w| w.write_all(b"through the pipe")).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        let meta = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_atomic(dir.path(), |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn out_targets() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OutTarget::parse(Path::new("-")).unwrap(), OutTarget::Stdout);
        let e = OutTarget::parse(dir.path()).unwrap_err();
        assert!(
            matches!(e, Error::Usage(_)) && e.to_string().contains("is a directory"),
            "{e}"
        );
        let e = OutTarget::parse(&dir.path().join("no/such/x.json")).unwrap_err();
        assert!(
            matches!(e, Error::Usage(_)) && e.to_string().contains("does not exist"),
            "{e}"
        );
        // A link is followed: its target is written and the link stays a link.
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        assert_eq!(
            OutTarget::parse(&link).unwrap(),
            OutTarget::File(real.clone())
        );
        let r = FailureDumpReportAny::Single(Default::default());
        write_report(&OutTarget::parse(&link).unwrap(), &r, JsonStyle::Compact).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(&real).unwrap(),
            "{\"schema\":\"single\",\"maps\":[]}\n"
        );
        // A loop of links is an error, not a hang.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = OutTarget::parse(&a).unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }

    #[test]
    fn pretty_and_compact_hold_the_same_report() {
        let r = FailureDumpReportAny::Single(Default::default());
        let mut c = Vec::new();
        let mut p = Vec::new();
        write_report_json(&mut c, &r, JsonStyle::Compact).unwrap();
        write_report_json(&mut p, &r, JsonStyle::Pretty).unwrap();
        assert_eq!(c.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(p.iter().filter(|b| **b == b'\n').count() > 1);
        let a: serde_json::Value = serde_json::from_slice(&c).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn temp_files_are_registered_only_while_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, |w| {
            let seen = pending().iter().any(|t| t.parent() == Some(dir.path()));
            assert!(seen, "the temporary file is registered during the write");
            w.write_all(b"x")
        })
        .unwrap();
        assert!(!pending().iter().any(|t| t.parent() == Some(dir.path())));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let p = Path::new("/nonexistent-ktstr-dir/out.json");
        let e = write_atomic(p, |w| w.write_all(b"x")).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-ktstr-dir/out.json"),
            "{e}"
        );
    }

    /// Writes at most `cap` bytes, then fails.
    struct Failing {
        got: Vec<u8>,
        cap: usize,
    }

    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.got.len() + b.len() > self.cap {
                return Err(std::io::Error::other("disk full"));
            }
            self.got.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Several megabytes in pieces of every size, the way a serializer writes them.
    fn pieces(w: &mut dyn Write, total: usize) -> std::io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let mut n = 0u32;
        while all.len() < total {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (n >> 8) as usize % 70_000 + 1;
            let piece: Vec<u8> = (0..len).map(|i| (i as u32 ^ n) as u8).collect();
            w.write_all(&piece)?;
            all.extend_from_slice(&piece);
        }
        Ok(all)
    }

    #[test]
    fn written_beside_the_filler_in_order() {
        let mut out = Vec::new();
        let mut sent = Vec::new();
        write_beside(&mut out, |w| {
            sent = pieces(w, 5 << 20)?;
            Ok(())
        })
        .unwrap();
        assert!(sent.len() >= 5 << 20);
        assert!(out == sent, "bytes differ or are reordered");
        // Nothing written at all is fine too.
        let mut out = Vec::new();
        write_beside(&mut out, |_| Ok(())).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn the_writers_error_stops_the_filler_and_is_returned() {
        let mut out = Failing {
            got: Vec::new(),
            cap: 3 << 20,
        };
        let mut filler_saw = None;
        let e = write_beside(&mut out, |w| {
            let r = pieces(w, 64 << 20).map(|_| ());
            filler_saw = Some(r.is_err());
            r
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        // The filler was stopped long before its 64 MiB.
        assert_eq!(filler_saw, Some(true));
        assert!(out.got.len() <= 3 << 20);
    }

    #[test]
    fn the_fillers_error_is_returned() {
        let mut out = Vec::new();
        let e = write_beside(&mut out, |w| {
            pieces(w, 1 << 20)?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "boom");
    }
}
