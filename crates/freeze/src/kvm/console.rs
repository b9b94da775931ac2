//! The serial console (COM1, ports 0x3f8..0x400, IRQ 4) and its bounded tail buffer.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use vm_superio::{Serial, Trigger, serial::NoEvents};
use vmm_sys_util::eventfd::EventFd;

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Number of COM1 registers.
pub const COM1_LEN: u16 = 8;
/// ISA IRQ of COM1.
pub const COM1_IRQ: u32 = 4;

/// The last bytes a guest wrote to its console. Cloning shares the buffer.
///
/// Keeps at most `capacity` bytes (older bytes are dropped first), so a chatty guest
/// cannot grow host memory; `total` counts every byte ever written.
#[derive(Clone)]
pub struct ConsoleTail {
    inner: Arc<(Mutex<TailState>, Condvar)>,
}

struct TailState {
    bytes: VecDeque<u8>,
    capacity: usize,
    total: u64,
}

impl ConsoleTail {
    /// An empty tail keeping at most `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Arc::new((
                Mutex::new(TailState {
                    bytes: VecDeque::with_capacity(capacity.min(1 << 20)),
                    capacity,
                    total: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TailState> {
        // A panic while holding this lock leaves the buffer consistent (plain bytes).
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends bytes, dropping the oldest beyond the capacity.
    pub fn push(&self, data: &[u8]) {
        let mut st = self.lock();
        st.total += data.len() as u64;
        let cap = st.capacity;
        let data = &data[data.len().saturating_sub(cap)..];
        let overflow = (st.bytes.len() + data.len()).saturating_sub(cap);
        st.bytes.drain(..overflow);
        st.bytes.extend(data);
        drop(st);
        self.inner.1.notify_all();
    }

    /// The kept bytes, oldest first.
    pub fn bytes(&self) -> Vec<u8> {
        self.lock().bytes.iter().copied().collect()
    }

    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Bytes written since the start, including dropped ones.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Waits until the kept text contains `needle`, at most `timeout`. Returns whether it did.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let absent = |st: &mut TailState| {
            !String::from_utf8_lossy(st.bytes.make_contiguous()).contains(needle)
        };
        let (st, waited) = self
            .inner
            .1
            .wait_timeout_while(self.lock(), timeout, absent)
            .unwrap_or_else(PoisonError::into_inner);
        drop(st);
        !waited.timed_out()
    }
}

impl io::Write for ConsoleTail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How the UART raises its interrupt: an irqfd on the in-kernel IOAPIC, or nothing when the
/// VM has no interrupt controller (tiny guests poll).
pub enum IrqLine {
    Irqfd(EventFd),
    None,
}

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        match self {
            IrqLine::Irqfd(evt) => evt.write(1),
            IrqLine::None => Ok(()),
        }
    }
}

/// The UART model from vm-superio writing into a [`ConsoleTail`].
pub type SerialDevice = Serial<IrqLine, NoEvents, ConsoleTail>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_last_bytes() {
        let t = ConsoleTail::new(8);
        t.push(b"hello ");
        t.push(b"world");
        assert_eq!(t.bytes(), b"lo world");
        t.push(b"0123456789abcdef");
        assert_eq!(t.bytes(), b"89abcdef");
        assert_eq!(t.total(), 6 + 5 + 16);
        assert!(t.wait_for("cdef", Duration::ZERO));
        assert!(!t.wait_for("nope", Duration::from_millis(10)));
    }

    #[test]
    fn waiters_wake_on_new_output() {
        let t = ConsoleTail::new(64);
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.wait_for("ready", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        t.push(b"rea");
        t.push(b"dy\n");
        assert!(h.join().unwrap());
    }
}
