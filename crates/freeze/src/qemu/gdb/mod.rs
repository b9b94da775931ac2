//! A small client of the GDB remote serial protocol, for QEMU's gdbstub.
//!
//! Only what write watchpoints need: the handshake (`qSupported`, `QStartNoAckMode` when
//! the stub offers it), the halt reason (`?`), write watchpoints (`Z2`/`z2`), continue
//! (`c`), the interrupt byte (0x03) and stop replies parsed into [`StopReply`]. The
//! crates on crates.io are servers (`gdbstub`, `gdb-protocol`'s `GdbServer`): none is a
//! maintained client, so this one is ours.
//!
//! What QEMU's gdbstub does, as seen with qemu-system-x86_64 10.0.2 (and why this client
//! and the engine work the way they do):
//! - Accepting a connection stops the VM (run state `paused`); the client continues it.
//! - It never offers `QStartNoAckMode` in system emulation: every packet is acknowledged
//!   both ways. Its `+` for a packet comes before it handles the packet, from the same
//!   main-loop step, so a QMP command sent after the `+` of a `c` sees the guest running.
//! - While the VM runs, any byte but 0x03 stops it (run state `paused`) and is dropped: no
//!   packet can be sent to a running guest. To set a watchpoint on a running guest,
//!   interrupt, set, continue.
//! - It sends a stop reply only after a command that asks for one (`c`, `?`, the
//!   interrupt): one per stop, then none until the next. A QMP `stop` of a continued guest
//!   shows as `T02thread:NN;`; a guest resumed by QMP `cont` afterwards stops silently at
//!   the next watchpoint hit (run state `debug`, no stop reply), so a guest with the stub
//!   attached must be resumed through the stub.
//! - A watchpoint hit is `T05thread:NN;watch:ADDR;` (thread ids are vCPU index + 1; with
//!   the multiprocess extension, which this client does not ask for, `pPID.TID`), sent
//!   after every vCPU is paused; the writing vCPU's RIP is just past the store.
//!
//! Everything the peer sends is bounded (packet size, queue of unsolicited stop replies,
//! read timeouts on the socket) and checked: garbage is an error, never a panic.

pub mod packet;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use packet::{Frame, FrameError, hex_u8};
pub use packet::{SIGINT, SIGQUIT, SIGTRAP, StopReply, ThreadId, WatchKind};

/// Stop replies kept while waiting for a command's answer; more is a broken peer.
const MAX_QUEUED_STOPS: usize = 16;
/// Retransmissions of one packet after `-`, and damaged packets accepted in a row.
const MAX_RETRIES: u32 = 3;
/// Bytes read from the socket at once.
const READ_CHUNK: usize = 4096;

/// Why an exchange with the stub failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GdbError {
    #[error("gdb {step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("gdb {step}: no answer within {timeout:?}")]
    Timeout {
        step: &'static str,
        timeout: Duration,
    },
    #[error("gdb connection closed by the stub")]
    Closed,
    #[error("gdb {step}: {source}")]
    Frame {
        step: &'static str,
        #[source]
        source: FrameError,
    },
    #[error("gdb {step}: {detail}")]
    Protocol { step: &'static str, detail: String },
    #[error("gdb {command}: the stub answered error {code:#04x}")]
    Command { command: String, code: u8 },
    #[error("gdb {command}: not supported by the stub (empty answer)")]
    Unsupported { command: String },
}

/// `O` packets carry console output (hex) while the target runs.
fn is_console_output(p: &[u8]) -> bool {
    p.len() > 1
        && p[0] == b'O'
        && (p.len() - 1).is_multiple_of(2)
        && p[1..].iter().all(u8::is_ascii_hexdigit)
}

fn shown(p: &[u8]) -> String {
    const MAX: usize = 120;
    let s = String::from_utf8_lossy(&p[..p.len().min(MAX)]).into_owned();
    if p.len() > MAX { format!("{s}…") } else { s }
}

/// A frame as the client sees it: damaged packets are dealt with underneath.
enum Got {
    Ack,
    Nack,
    Packet(Vec<u8>),
}

/// A connected, handshaken session with a gdbstub (all-stop mode).
#[derive(Debug)]
pub struct GdbClient {
    stream: UnixStream,
    /// Received bytes not yet framed (bounded by the framing's packet cap).
    inbuf: Vec<u8>,
    /// Whether packets are acknowledged (`+`/`-`); false after `QStartNoAckMode`.
    acks: bool,
    /// Stop replies that arrived while a command waited for its answer.
    stops: VecDeque<StopReply>,
    /// The stub's `qSupported` answer.
    supported: String,
    /// Default bound on one command's answer.
    pub timeout: Duration,
}

impl GdbClient {
    /// Connects to the stub's unix socket, retrying until `timeout` (QEMU creates it a
    /// little after it starts), and handshakes.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, GdbError> {
        let stream = super::connect_unix(path, timeout).map_err(|source| GdbError::Io {
            step: "connect",
            source,
        })?;
        Self::from_stream(stream, timeout)
    }

    /// Handshakes on a connected stream: `qSupported`, then `QStartNoAckMode` when the
    /// stub offers it.
    pub fn from_stream(stream: UnixStream, timeout: Duration) -> Result<Self, GdbError> {
        stream
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|source| GdbError::Io {
                step: "set write timeout",
                source,
            })?;
        let mut c = GdbClient {
            stream,
            inbuf: Vec::new(),
            acks: true,
            stops: VecDeque::new(),
            supported: String::new(),
            timeout,
        };
        let reply = c.request(b"qSupported", "qSupported")?;
        c.supported = String::from_utf8_lossy(&reply).into_owned();
        if c.supported.split(';').any(|f| f == "QStartNoAckMode+") {
            c.expect_ok(b"QStartNoAckMode", "QStartNoAckMode")?;
            c.acks = false;
        }
        Ok(c)
    }

    /// The stub's answer to `qSupported` (its features, `;`-separated).
    pub fn supported(&self) -> &str {
        &self.supported
    }

    /// Whether packets are acknowledged (QEMU never leaves this mode).
    pub fn acknowledged(&self) -> bool {
        self.acks
    }

    /// `?`: why the target is stopped. Only for a stopped target.
    pub fn halt_reason(&mut self) -> Result<StopReply, GdbError> {
        let step = "halt reason (?)";
        self.send(b"?", step)?;
        let deadline = Instant::now() + self.timeout;
        let p = self.read_packet(deadline, step)?;
        StopReply::parse(&p).map_err(|e| GdbError::Protocol {
            step,
            detail: format!("{e}: {}", shown(&p)),
        })
    }

    /// `Z2,addr,len`: a write watchpoint. Only for a stopped target (QEMU drops packets
    /// sent to a running guest, and stops it).
    pub fn insert_write_watch(&mut self, addr: u64, len: u64) -> Result<(), GdbError> {
        self.expect_ok(format!("Z2,{addr:x},{len:x}").as_bytes(), "Z2")
    }

    /// `z2,addr,len`: removes a write watchpoint. Only for a stopped target.
    pub fn remove_write_watch(&mut self, addr: u64, len: u64) -> Result<(), GdbError> {
        self.expect_ok(format!("z2,{addr:x},{len:x}").as_bytes(), "z2")
    }

    /// `c`: continues every vCPU. Returns once the stub acknowledged the packet (in
    /// acknowledged mode); the stop reply comes later, through [`Self::wait_stop`].
    pub fn cont(&mut self) -> Result<(), GdbError> {
        self.send(b"c", "continue")
    }

    /// `vCont;c`: the same through the `vCont` packet.
    pub fn vcont(&mut self) -> Result<(), GdbError> {
        self.send(b"vCont;c", "vCont;c")
    }

    /// The interrupt byte (0x03): asks the stub to stop the running target; the stop
    /// reply comes through [`Self::wait_stop`].
    pub fn interrupt(&mut self) -> Result<(), GdbError> {
        self.stream
            .write_all(&[0x03])
            .map_err(|source| GdbError::Io {
                step: "interrupt",
                source,
            })
    }

    /// Waits at most `timeout` for a stop reply (one queued earlier comes first).
    /// `Ok(None)`: none came. Console output packets are skipped; any other packet is an
    /// error (nothing else may come unasked).
    pub fn wait_stop(&mut self, timeout: Duration) -> Result<Option<StopReply>, GdbError> {
        if let Some(s) = self.stops.pop_front() {
            return Ok(Some(s));
        }
        let step = "wait for a stop reply";
        let deadline = Instant::now() + timeout;
        loop {
            let p = match self.read_packet(deadline, step) {
                Err(GdbError::Timeout { .. }) => return Ok(None),
                other => other?,
            };
            if is_console_output(&p) {
                continue;
            }
            return StopReply::parse(&p)
                .map(Some)
                .map_err(|e| GdbError::Protocol {
                    step,
                    detail: format!("expected a stop reply: {e}: {}", shown(&p)),
                });
        }
    }

    /// Sends a command whose answer is `OK`.
    fn expect_ok(&mut self, payload: &[u8], command: &'static str) -> Result<(), GdbError> {
        let reply = self.request(payload, command)?;
        if reply == b"OK" {
            return Ok(());
        }
        Err(GdbError::Protocol {
            step: command,
            detail: format!("expected OK, got {}", shown(&reply)),
        })
    }

    /// Sends a command and returns its answer; `E NN` and the empty answer become
    /// errors. Stop replies that arrive meanwhile are queued for [`Self::wait_stop`] (no
    /// command sent through here has an answer that parses as one).
    fn request(&mut self, payload: &[u8], command: &'static str) -> Result<Vec<u8>, GdbError> {
        self.send(payload, command)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let p = self.read_packet(deadline, command)?;
            if is_console_output(&p) {
                continue;
            }
            if let Ok(stop) = StopReply::parse(&p) {
                self.queue_stop(stop, command)?;
                continue;
            }
            if p.is_empty() {
                return Err(GdbError::Unsupported {
                    command: command.to_string(),
                });
            }
            if p.len() == 3
                && p[0] == b'E'
                && let Some(code) = std::str::from_utf8(&p[1..]).ok().and_then(hex_u8)
            {
                return Err(GdbError::Command {
                    command: command.to_string(),
                    code,
                });
            }
            return Ok(p);
        }
    }

    fn queue_stop(&mut self, stop: StopReply, step: &'static str) -> Result<(), GdbError> {
        if self.stops.len() >= MAX_QUEUED_STOPS {
            return Err(GdbError::Protocol {
                step,
                detail: format!("more than {MAX_QUEUED_STOPS} unsolicited stop replies"),
            });
        }
        self.stops.push_back(stop);
        Ok(())
    }

    /// Writes a packet and, in acknowledged mode, waits for its `+` (sending it again on
    /// `-`, a few times at most). A stop reply that crosses it is queued.
    fn send(&mut self, payload: &[u8], step: &'static str) -> Result<(), GdbError> {
        let wire = packet::encode(payload);
        self.write(&wire, step)?;
        if !self.acks {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        let mut resent = 0;
        loop {
            match self.read_frame(deadline, step)? {
                Got::Ack => return Ok(()),
                Got::Nack if resent < MAX_RETRIES => {
                    resent += 1;
                    self.write(&wire, step)?;
                }
                Got::Nack => {
                    return Err(GdbError::Protocol {
                        step,
                        detail: format!("packet refused {} times", resent + 1),
                    });
                }
                Got::Packet(p) => match StopReply::parse(&p) {
                    Ok(stop) => self.queue_stop(stop, step)?,
                    Err(_) => {
                        return Err(GdbError::Protocol {
                            step,
                            detail: format!("a packet before the acknowledgement: {}", shown(&p)),
                        });
                    }
                },
            }
        }
    }

    /// The next packet (acks skipped: a stray one means nothing in all-stop mode).
    fn read_packet(&mut self, deadline: Instant, step: &'static str) -> Result<Vec<u8>, GdbError> {
        loop {
            if let Got::Packet(p) = self.read_frame(deadline, step)? {
                return Ok(p);
            }
        }
    }

    /// The next frame. Packets are acknowledged as they are read (the stub sends only
    /// while the guest is stopped, so the `+` cannot stop a running guest); a damaged one
    /// is refused with `-` so the stub sends it again (in acknowledged mode; without
    /// acknowledgements it is an error).
    fn read_frame(&mut self, deadline: Instant, step: &'static str) -> Result<Got, GdbError> {
        let mut damaged = 0;
        loop {
            match packet::next_frame(&mut self.inbuf) {
                Ok(Some(Frame::BadChecksum { sent, computed })) => {
                    if !self.acks || damaged >= MAX_RETRIES {
                        return Err(GdbError::Protocol {
                            step,
                            detail: format!(
                                "checksum {sent:02x} does not match the packet's {computed:02x}"
                            ),
                        });
                    }
                    damaged += 1;
                    self.write(b"-", step)?;
                }
                Ok(Some(Frame::Packet(p))) => {
                    if self.acks {
                        self.write(b"+", step)?;
                    }
                    return Ok(Got::Packet(p));
                }
                Ok(Some(Frame::Ack)) => return Ok(Got::Ack),
                Ok(Some(Frame::Nack)) => return Ok(Got::Nack),
                Ok(None) => self.fill(deadline, step)?,
                Err(source) => return Err(GdbError::Frame { step, source }),
            }
        }
    }

    /// Reads what the socket has (at least one byte), waiting until `deadline`.
    fn fill(&mut self, deadline: Instant, step: &'static str) -> Result<(), GdbError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(GdbError::Timeout {
                step,
                timeout: self.timeout,
            });
        }
        // A zero read timeout means "block forever" to the socket API.
        let remaining = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(remaining))
            .map_err(|source| GdbError::Io {
                step: "set read timeout",
                source,
            })?;
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(GdbError::Closed),
            Ok(n) => {
                self.inbuf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(GdbError::Timeout {
                    step,
                    timeout: self.timeout,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Err(GdbError::Closed),
            Err(source) => Err(GdbError::Io { step, source }),
        }
    }

    fn write(&mut self, bytes: &[u8], step: &'static str) -> Result<(), GdbError> {
        self.stream.write_all(bytes).map_err(|source| {
            if source.kind() == io::ErrorKind::BrokenPipe {
                GdbError::Closed
            } else {
                GdbError::Io { step, source }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::JoinHandle;

    /// One step of a scripted stub.
    #[derive(Clone)]
    enum Step {
        /// Read exactly these bytes from the client.
        Expect(Vec<u8>),
        /// Write these bytes.
        Send(Vec<u8>),
    }
    use Step::*;

    fn pkt(payload: &str) -> Vec<u8> {
        packet::encode(payload.as_bytes())
    }

    /// A packet exactly as given on the wire (for run-length encoded replies).
    fn raw(wire: &str) -> Vec<u8> {
        format!("${wire}#{:02x}", packet::checksum(wire.as_bytes())).into_bytes()
    }

    fn plus() -> Vec<u8> {
        b"+".to_vec()
    }

    /// The client sends packet `payload`; the stub acknowledges it.
    fn to_stub(payload: &str) -> Vec<Step> {
        vec![Expect(pkt(payload)), Send(plus())]
    }

    /// The stub sends packet `payload`; the client acknowledges it.
    fn from_stub(payload: &str) -> Vec<Step> {
        vec![Send(pkt(payload)), Expect(plus())]
    }

    /// The interrupt byte from the client.
    fn interrupt() -> Vec<Step> {
        vec![Expect(vec![0x03])]
    }

    /// A QEMU-like handshake (acknowledged mode, no `QStartNoAckMode`).
    fn handshake() -> Vec<Step> {
        let supported = "PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+";
        [to_stub("qSupported"), from_stub(supported)].concat()
    }

    /// The handshake, then `exchanges` in order.
    fn session<const N: usize>(exchanges: [Vec<Step>; N]) -> Vec<Step> {
        let mut steps = handshake();
        steps.extend(exchanges.into_iter().flatten());
        steps
    }

    /// Runs `steps` as the stub on the other end of a socket pair; the handle's join
    /// fails when the client sent something else.
    fn stub(steps: Vec<Step>) -> (UnixStream, JoinHandle<()>) {
        let (client, mut peer) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || {
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            for step in steps {
                match step {
                    Expect(want) => {
                        let mut got = vec![0u8; want.len()];
                        peer.read_exact(&mut got).unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&got),
                            String::from_utf8_lossy(&want)
                        );
                    }
                    Send(bytes) => peer.write_all(&bytes).unwrap(),
                }
            }
        });
        (client, h)
    }

    fn connect(steps: Vec<Step>) -> (GdbClient, JoinHandle<()>) {
        let (s, h) = stub(steps);
        let c = GdbClient::from_stream(s, Duration::from_secs(5)).unwrap();
        (c, h)
    }

    #[test]
    fn a_qemu_like_session_with_acknowledgements() {
        let steps = session([
            to_stub("?"),
            from_stub("T05thread:01;"),
            to_stub("Z2,ffffffff82807a00,8"),
            from_stub("OK"),
            to_stub("c"),
            from_stub("T05thread:02;watch:ffffffff82807a00;"),
            to_stub("vCont;c"),
            interrupt(),
            from_stub("T02thread:01;"),
            to_stub("z2,ffffffff82807a00,8"),
            from_stub("E22"),
            to_stub("Z2,1000,4"),
            from_stub(""),
        ]);
        let (mut c, h) = connect(steps);
        assert!(c.acknowledged());
        assert!(c.supported().contains("vContSupported+"));
        assert_eq!(
            c.halt_reason().unwrap(),
            StopReply::Signal {
                signal: SIGTRAP,
                thread: Some(ThreadId { pid: None, tid: 1 }),
                watch: None
            }
        );
        c.insert_write_watch(0xffff_ffff_8280_7a00, 8).unwrap();
        c.cont().unwrap();
        let hit = c.wait_stop(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(
            hit.write_watch_hit(),
            Some((Some(1), 0xffff_ffff_8280_7a00))
        );
        c.vcont().unwrap();
        c.interrupt().unwrap();
        let stop = c.wait_stop(Duration::from_secs(5)).unwrap().unwrap();
        assert!(matches!(stop, StopReply::Signal { signal: SIGINT, .. }));
        assert_eq!(stop.write_watch_hit(), None);
        match c.remove_write_watch(0xffff_ffff_8280_7a00, 8) {
            Err(GdbError::Command { code: 0x22, .. }) => {}
            other => panic!("{other:?}"),
        }
        match c.insert_write_watch(0x1000, 4) {
            Err(GdbError::Unsupported { .. }) => {}
            other => panic!("{other:?}"),
        }
        h.join().unwrap();
    }

    #[test]
    fn no_acknowledgements_once_the_stub_offers_to_stop_them() {
        let acked = [
            to_stub("qSupported"),
            from_stub("PacketSize=4000;QStartNoAckMode+"),
            to_stub("QStartNoAckMode"),
            from_stub("OK"),
        ];
        // From here on nothing is acknowledged: the next bytes are the next packet.
        let unacked = [("Z2,1000,4", "OK"), ("c", "S05"), ("z2,1000,4", "OK")]
            .map(|(command, answer)| vec![Expect(pkt(command)), Send(pkt(answer))]);
        let steps = acked.into_iter().chain(unacked).flatten().collect();
        let (mut c, h) = connect(steps);
        assert!(!c.acknowledged());
        c.insert_write_watch(0x1000, 4).unwrap();
        c.cont().unwrap();
        assert_eq!(
            c.wait_stop(Duration::from_secs(5)).unwrap(),
            Some(StopReply::Signal {
                signal: SIGTRAP,
                thread: None,
                watch: None
            })
        );
        c.remove_write_watch(0x1000, 4).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn refused_packets_are_sent_again_and_damaged_ones_refused() {
        let refused = |payload: &str| vec![Expect(pkt(payload)), Send(b"-".to_vec())];
        let steps = session([
            refused("Z2,1000,8"),
            to_stub("Z2,1000,8"),
            // A damaged answer (bad checksum) is refused, then sent again.
            vec![Send(b"$OK#00".to_vec()), Expect(b"-".to_vec())],
            from_stub("OK"),
            // Refused every time: an error after a few tries, not a loop.
            refused("c"),
            refused("c"),
            refused("c"),
            refused("c"),
        ]);
        let (mut c, h) = connect(steps);
        c.insert_write_watch(0x1000, 8).unwrap();
        assert!(matches!(c.cont(), Err(GdbError::Protocol { .. })));
        h.join().unwrap();
    }

    #[test]
    fn run_length_encoded_and_escaped_replies_are_decoded() {
        let steps = session([
            to_stub("c"),
            // ffff + 4 more f (`!` is 33 - 29) = ffffffff82807a00.
            vec![
                Send(raw("T05thread:p01.02;watch:ffff*!82807a00;")),
                Expect(plus()),
            ],
        ]);
        let (mut c, h) = connect(steps);
        c.cont().unwrap();
        let stop = c.wait_stop(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                thread: Some(ThreadId {
                    pid: Some(1),
                    tid: 2
                }),
                watch: Some((WatchKind::Write, 0xffff_ffff_8280_7a00))
            }
        );
        assert_eq!(
            stop.write_watch_hit(),
            Some((Some(1), 0xffff_ffff_8280_7a00))
        );
        h.join().unwrap();
    }

    #[test]
    fn stop_replies_that_cross_a_command_are_kept_for_wait_stop() {
        let steps = session([
            // Before the acknowledgement...
            vec![Expect(pkt("Z2,2000,8"))],
            from_stub("T02thread:01;"),
            vec![Send(plus())],
            // ... and between it and the answer.
            from_stub("T05thread:02;watch:2000;"),
            // Console output while running is skipped.
            from_stub("O6869"),
            from_stub("OK"),
        ]);
        let (mut c, h) = connect(steps);
        c.insert_write_watch(0x2000, 8).unwrap();
        let first = c.wait_stop(Duration::ZERO).unwrap().unwrap();
        assert!(matches!(first, StopReply::Signal { signal: SIGINT, .. }));
        let second = c.wait_stop(Duration::ZERO).unwrap().unwrap();
        assert_eq!(second.write_watch_hit(), Some((Some(1), 0x2000)));
        h.join().unwrap();
        assert!(matches!(
            c.wait_stop(Duration::from_millis(10)),
            Ok(None) | Err(GdbError::Closed)
        ));
    }

    #[test]
    fn silence_is_a_timeout_and_a_partial_packet_is_kept() {
        // The interrupt byte serves as the client's "go on" to the stub: no sleeps.
        let steps = session([
            vec![Send(b"$T05thr".to_vec())],
            interrupt(),
            vec![
                Send(b"ead:01;".to_vec()),
                Send(format!("#{:02x}", packet::checksum(b"T05thread:01;")).into_bytes()),
                Expect(plus()),
            ],
            to_stub("z2,1000,8"),
            interrupt(),
        ]);
        let (mut c, h) = connect(steps);
        let t = Instant::now();
        assert_eq!(c.wait_stop(Duration::from_millis(30)).unwrap(), None);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // Half a packet, then the timeout: nothing is lost.
        c.interrupt().unwrap();
        let stop = c.wait_stop(Duration::from_secs(5)).unwrap().unwrap();
        assert!(matches!(
            stop,
            StopReply::Signal {
                signal: SIGTRAP,
                ..
            }
        ));
        c.timeout = Duration::from_millis(50);
        match c.remove_write_watch(0x1000, 8) {
            Err(GdbError::Timeout { step: "z2", .. }) => {}
            other => panic!("{other:?}"),
        }
        c.interrupt().unwrap();
        h.join().unwrap();
    }

    #[test]
    fn garbage_and_a_closed_socket_are_errors() {
        type Check = fn(&GdbError) -> bool;
        let cases: Vec<(Vec<Step>, Check)> = vec![
            (vec![Send(b"hello".to_vec())], |e| {
                matches!(
                    e,
                    GdbError::Frame {
                        source: FrameError::Stray(b'h'),
                        ..
                    }
                )
            }),
            (vec![Send(pkt("Q1234")), Expect(plus())], |e| {
                matches!(e, GdbError::Protocol { .. })
            }),
            (
                vec![Send(pkt("T05watch:1234567890abcdef0;")), Expect(plus())],
                |e| matches!(e, GdbError::Protocol { .. }),
            ),
            (vec![], |e| matches!(e, GdbError::Closed)),
            (
                vec![Send({
                    let mut v = vec![b'$'];
                    v.extend(std::iter::repeat_n(b'0', packet::MAX_WIRE_PACKET + 2));
                    v
                })],
                |e| {
                    matches!(
                        e,
                        GdbError::Frame {
                            source: FrameError::TooLong,
                            ..
                        }
                    )
                },
            ),
        ];
        for (i, (extra, check)) in cases.into_iter().enumerate() {
            let mut steps = handshake();
            steps.extend(extra);
            let (mut c, h) = connect(steps);
            let e = c.wait_stop(Duration::from_secs(5)).unwrap_err();
            assert!(check(&e), "case {i}: {e}");
            h.join().unwrap();
        }
        // A handshake answered with garbage fails the connection.
        let (s, h) = stub(vec![Expect(pkt("qSupported")), Send(b"\x7fELF".to_vec())]);
        let e = GdbClient::from_stream(s, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, GdbError::Frame { .. }), "{e}");
        h.join().unwrap();
    }
}
