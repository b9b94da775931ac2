//! Port I/O: COM1, the i8042 reset line, and an optional caller-supplied handler.

use std::sync::{Arc, Mutex, PoisonError};

use super::console::{COM1_BASE, COM1_LEN, SerialDevice};

/// Extra port-I/O devices supplied by the engine's user (e.g. a test device).
///
/// Called on the vCPU thread that executed the `IN`/`OUT`. A handler that blocks keeps that
/// vCPU out of the guest, and a freeze requested meanwhile cannot park it: the freeze then
/// times out and reports that vCPU as not parked (this is how the timeout path is tested).
/// Handlers must tolerate `EINTR` from blocking calls: the engine kicks vCPU threads with a
/// real-time signal.
pub trait PioHandler: Send + Sync {
    /// An `IN` from `port` of `data.len()` bytes. Return `false` when the port is not handled
    /// here (the guest then reads all-ones).
    fn pio_in(&self, vcpu: usize, port: u16, data: &mut [u8]) -> bool;
    /// An `OUT` to `port`. Return `false` when the port is not handled here.
    fn pio_out(&self, vcpu: usize, port: u16, data: &[u8]) -> bool;
}

/// What an `OUT` asks the VMM to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PioAction {
    Continue,
    /// The guest pulsed the i8042 reset line (what Linux's `reboot=k` does).
    Reset,
}

const I8042_DATA: u16 = 0x60;
const I8042_COMMAND: u16 = 0x64;
const I8042_RESET_CMD: u8 = 0xfe;

/// The VMM's port-I/O devices.
pub struct PioBus {
    serial: Mutex<SerialDevice>,
    extra: Option<Arc<dyn PioHandler>>,
}

impl PioBus {
    pub fn new(serial: SerialDevice, extra: Option<Arc<dyn PioHandler>>) -> Self {
        Self {
            serial: Mutex::new(serial),
            extra,
        }
    }

    pub fn pio_in(&self, vcpu: usize, port: u16, data: &mut [u8]) {
        if let Some(offset) = com1_offset(port) {
            // The UART registers are one byte wide; wider accesses read the first register.
            let mut serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
            data.fill(0);
            if let Some(first) = data.first_mut() {
                *first = serial.read(offset);
            }
            return;
        }
        if port == I8042_COMMAND || port == I8042_DATA {
            // Status: output buffer empty, input buffer empty: nothing to read, ready.
            data.fill(0);
            return;
        }
        if let Some(extra) = &self.extra
            && extra.pio_in(vcpu, port, data)
        {
            return;
        }
        data.fill(0xff);
    }

    pub fn pio_out(&self, vcpu: usize, port: u16, data: &[u8]) -> PioAction {
        if let Some(offset) = com1_offset(port) {
            if let Some(&value) = data.first() {
                let mut serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
                // Errors come from raising the interrupt; the byte is already in the tail.
                let _ = serial.write(offset, value);
            }
            return PioAction::Continue;
        }
        if port == I8042_COMMAND && data.first() == Some(&I8042_RESET_CMD) {
            return PioAction::Reset;
        }
        if let Some(extra) = &self.extra {
            extra.pio_out(vcpu, port, data);
        }
        PioAction::Continue
    }
}

fn com1_offset(port: u16) -> Option<u8> {
    (COM1_BASE..COM1_BASE + COM1_LEN)
        .contains(&port)
        .then(|| (port - COM1_BASE) as u8)
}

#[cfg(test)]
mod tests {
    use super::super::console::{ConsoleTail, IrqLine};
    use super::*;

    #[test]
    fn serial_writes_reach_the_tail_and_reset_is_seen() {
        let tail = ConsoleTail::new(64);
        let bus = PioBus::new(SerialDevice::new(IrqLine::None, tail.clone()), None);
        for b in b"hi\n" {
            assert_eq!(bus.pio_out(0, 0x3f8, &[*b]), PioAction::Continue);
        }
        assert_eq!(tail.text(), "hi\n");
        // Line status register: transmitter empty.
        let mut lsr = [0u8; 1];
        bus.pio_in(0, 0x3fd, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0);
        let mut unknown = [0u8; 2];
        bus.pio_in(0, 0x1234, &mut unknown);
        assert_eq!(unknown, [0xff, 0xff]);
        assert_eq!(bus.pio_out(0, 0x64, &[0xfe]), PioAction::Reset);
        assert_eq!(bus.pio_out(0, 0x64, &[0x00]), PioAction::Continue);
    }
}
