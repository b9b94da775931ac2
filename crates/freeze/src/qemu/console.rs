//! The guest's serial console, read from QEMU's stdout by a thread.
//!
//! Everything is bounded: the byte tail (for reports), the window of complete lines
//! kept for waiters, the length of one line, and each subscriber's queue. A guest that
//! floods its console loses old output, never host memory.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Complete lines kept for [`Console::wait_line`].
const LINE_WINDOW: usize = 4096;
/// A longer line is cut (the rest starts a new line).
const MAX_LINE: usize = 4096;
/// Lines queued per subscriber before new ones are dropped for it.
const SUBSCRIBER_QUEUE: usize = 4096;

/// A position in the console's line sequence: "lines from here on".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LineMark(pub u64);

impl LineMark {
    /// The very first line of the console.
    pub const START: LineMark = LineMark(0);
}

/// Why waiting for a console line ended without a match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    #[error("no matching console line within {0:?}")]
    Timeout(Duration),
    #[error("the console closed (QEMU exited) before a matching line")]
    Closed,
}

#[derive(Debug, Default)]
struct State {
    tail: VecDeque<u8>,
    tail_cap: usize,
    /// Complete lines, the first one numbered `first_line`.
    lines: VecDeque<String>,
    first_line: u64,
    partial: Vec<u8>,
    closed: bool,
    subscribers: Vec<SyncSender<String>>,
    dropped_for_subscribers: u64,
}

impl State {
    fn next_line(&self) -> u64 {
        self.first_line + self.lines.len() as u64
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.tail.len() == self.tail_cap {
                self.tail.pop_front();
            }
            if self.tail_cap > 0 {
                self.tail.push_back(b);
            }
            match b {
                b'\n' => self.finish_line(),
                b'\r' => {}
                _ => {
                    self.partial.push(b);
                    if self.partial.len() >= MAX_LINE {
                        self.finish_line();
                    }
                }
            }
        }
    }

    fn finish_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        let mut dropped = 0;
        self.subscribers
            .retain(|tx| match tx.try_send(line.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        self.dropped_for_subscribers += dropped;
        if self.lines.len() == LINE_WINDOW {
            self.lines.pop_front();
            self.first_line += 1;
        }
        self.lines.push_back(line);
    }
}

/// Shared view of the console. Cloning is cheap; all clones see the same output.
#[derive(Debug, Clone)]
pub struct Console {
    inner: Arc<(Mutex<State>, Condvar)>,
    /// Set with `State::closed`, readable without the lock (e.g. by a poll loop).
    closed: Arc<AtomicBool>,
}

impl Console {
    /// A console keeping the last `tail_bytes` bytes of raw output.
    pub fn new(tail_bytes: usize) -> Self {
        let state = State {
            tail_cap: tail_bytes,
            ..State::default()
        };
        Console {
            inner: Arc::new((Mutex::new(state), Condvar::new())),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough data (bytes and
        // lines); keep serving it rather than poisoning every later reader.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a thread that copies `source` (QEMU's stdout) into this console until EOF.
    pub fn spawn_reader<R: Read + Send + 'static>(&self, mut source: R) -> JoinHandle<()> {
        let console = self.clone();
        std::thread::Builder::new()
            .name("qemu-console".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => console.feed(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                console.close();
            })
            .expect("spawning the console reader thread")
    }

    /// Appends raw console output (what the reader thread does; public for tests).
    pub fn feed(&self, bytes: &[u8]) {
        let mut st = self.lock();
        st.push_bytes(bytes);
        drop(st);
        self.inner.1.notify_all();
    }

    /// Marks the end of output: a trailing partial line is completed, waiters wake.
    pub fn close(&self) {
        let mut st = self.lock();
        if !st.partial.is_empty() {
            st.finish_line();
        }
        st.closed = true;
        st.subscribers.clear();
        self.closed.store(true, Ordering::Release);
        drop(st);
        self.inner.1.notify_all();
    }

    /// Whether the output has ended (QEMU closed its stdout, i.e. exited).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A flag that becomes true when the output ends; for loops that must stop when
    /// QEMU exits (e.g. [`crate::watch::WatchOptions::stop`]).
    pub fn closed_flag(&self) -> Arc<AtomicBool> {
        self.closed.clone()
    }

    /// The last bytes of output (up to the configured tail size), lossily decoded.
    pub fn tail(&self) -> String {
        let st = self.lock();
        let (a, b) = st.tail.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }

    /// The mark after the last complete line: waiting from it sees only new lines.
    pub fn mark(&self) -> LineMark {
        LineMark(self.lock().next_line())
    }

    /// Complete lines from `from` on that are still kept (older ones have been dropped),
    /// and the mark after them.
    pub fn lines_since(&self, from: LineMark) -> (Vec<String>, LineMark) {
        let st = self.lock();
        let start = from.0.max(st.first_line);
        let skip = (start - st.first_line) as usize;
        let lines = st.lines.iter().skip(skip).cloned().collect();
        (lines, LineMark(st.next_line()))
    }

    /// Waits for the first complete line at or after `from` for which `pred` holds.
    /// Returns it and the mark just after it (to chain waits). Lines that scrolled out
    /// of the kept window before the call are not seen.
    pub fn wait_line(
        &self,
        from: LineMark,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<(String, LineMark), WaitError> {
        let deadline = Instant::now() + timeout;
        let mut next = from.0;
        let mut st = self.lock();
        loop {
            next = next.max(st.first_line);
            while next < st.next_line() {
                let line = &st.lines[(next - st.first_line) as usize];
                next += 1;
                if pred(line) {
                    return Ok((line.clone(), LineMark(next)));
                }
            }
            if st.closed {
                return Err(WaitError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout(timeout));
            }
            st = self
                .inner
                .1
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// [`wait_line`](Self::wait_line) for a line matching `re`.
    pub fn wait_regex(
        &self,
        from: LineMark,
        timeout: Duration,
        re: &regex::Regex,
    ) -> Result<(String, LineMark), WaitError> {
        self.wait_line(from, timeout, |l| re.is_match(l))
    }

    /// [`wait_line`](Self::wait_line) for a line containing `needle`.
    pub fn wait_contains(
        &self,
        from: LineMark,
        timeout: Duration,
        needle: &str,
    ) -> Result<(String, LineMark), WaitError> {
        self.wait_line(from, timeout, |l| l.contains(needle))
    }

    /// A stream of every complete line from now on. The channel ends when QEMU exits.
    /// A subscriber that falls more than a few thousand lines behind loses new lines
    /// (counted by [`dropped_lines`](Self::dropped_lines)); the console never blocks.
    pub fn subscribe(&self) -> Receiver<String> {
        let (tx, rx) = sync_channel(SUBSCRIBER_QUEUE);
        let mut st = self.lock();
        if !st.closed {
            st.subscribers.push(tx);
        }
        rx
    }

    /// Lines dropped because a subscriber's queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.lock().dropped_for_subscribers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_bounded_and_lines_split() {
        let c = Console::new(8);
        c.feed(b"hello\r\nwor");
        c.feed(b"ld\nabc");
        assert_eq!(c.tail(), "orld\nabc");
        let (lines, mark) = c.lines_since(LineMark::START);
        assert_eq!(lines, vec!["hello", "world"]);
        assert_eq!(mark, LineMark(2));
        c.close();
        let (lines, _) = c.lines_since(mark);
        assert_eq!(lines, vec!["abc"]);
    }

    #[test]
    fn wait_sees_past_and_future_lines() {
        let c = Console::new(1024);
        c.feed(b"KTSTR-PHASE: boot\n");
        let (l, m) = c
            .wait_contains(LineMark::START, Duration::from_secs(1), "PHASE")
            .unwrap();
        assert_eq!(l, "KTSTR-PHASE: boot");
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            c2.feed(b"x 1\nKTSTR-PHASE: ready\n");
        });
        let re = regex::Regex::new(r"^KTSTR-PHASE: (\w+)$").unwrap();
        let (l, _) = c.wait_regex(m, Duration::from_secs(5), &re).unwrap();
        assert_eq!(l, "KTSTR-PHASE: ready");
        t.join().unwrap();
        assert_eq!(
            c.wait_contains(c.mark(), Duration::from_millis(20), "never"),
            Err(WaitError::Timeout(Duration::from_millis(20)))
        );
        let flag = c.closed_flag();
        assert!(!flag.load(Ordering::Acquire));
        c.close();
        assert!(flag.load(Ordering::Acquire) && c.is_closed());
        assert_eq!(
            c.wait_contains(c.mark(), Duration::from_secs(5), "never"),
            Err(WaitError::Closed)
        );
    }

    #[test]
    fn flood_is_bounded() {
        let c = Console::new(100);
        let rx = c.subscribe();
        let line = vec![b'a'; MAX_LINE * 3];
        c.feed(&line);
        for _ in 0..(LINE_WINDOW + SUBSCRIBER_QUEUE) {
            c.feed(b"x\n");
        }
        let (lines, _) = c.lines_since(LineMark::START);
        assert_eq!(lines.len(), LINE_WINDOW);
        assert_eq!(c.tail().len(), 100);
        assert!(c.dropped_lines() > 0);
        assert_eq!(rx.try_iter().count(), SUBSCRIBER_QUEUE);
        // A cut line is at most MAX_LINE bytes.
        let st = c.lock();
        assert!(st.lines.iter().all(|l| l.len() <= MAX_LINE));
    }
}
