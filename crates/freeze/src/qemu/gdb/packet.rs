//! What travels on the wire of the GDB remote serial protocol: framing (`$payload#cs`
//! packets, `+`/`-` acknowledgements, the `}` escape and the `*` run-length encoding of
//! replies) and the one kind of packet the client interprets, stop replies.
//!
//! The checksum is the sum of the bytes between `$` and `#` (as sent: escaped and
//! run-length encoded) modulo 256, written as two hex digits. Inside a payload `}`
//! escapes the next byte (XOR 0x20) and `X*n` repeats `X` a further `n - 29` times (`n`
//! printable, neither `#` nor `$`). Everything here works on bytes the peer sent, so
//! every length is capped and every malformed input is a [`FrameError`], never a panic.

/// Longest packet accepted on the wire (between `$` and `#`). QEMU announces
/// `PacketSize=1000` (4,096 bytes); a reply longer than this is not from a sane stub.
pub const MAX_WIRE_PACKET: usize = 64 << 10;
/// Longest payload after run-length decoding (each `*` can multiply by up to 97).
pub const MAX_PAYLOAD: usize = 256 << 10;

/// What the peer sent, one unit at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+`: the last packet arrived intact.
    Ack,
    /// `-`: the last packet arrived damaged; send it again.
    Nack,
    /// A packet with a good checksum, escapes and run-length encoding decoded.
    Packet(Vec<u8>),
    /// A packet whose checksum does not match (answer `-` in acknowledged mode).
    BadChecksum { sent: u8, computed: u8 },
}

/// Bytes that cannot be a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("unexpected byte {0:#04x} outside a packet")]
    Stray(u8),
    #[error("packet longer than {MAX_WIRE_PACKET} bytes without its end")]
    TooLong,
    #[error("checksum {0:?} is not two hex digits")]
    BadChecksumText([u8; 2]),
    #[error("packet payload: {0}")]
    Payload(&'static str),
    #[error("payload longer than {MAX_PAYLOAD} bytes once run-length decoded")]
    PayloadTooLong,
    #[error("notification packets (`%`) belong to non-stop mode, which this client never asks for")]
    Notification,
}

/// `SIGINT`: the stop after an interrupt (or a QMP `stop`).
pub const SIGINT: u8 = 2;
/// `SIGQUIT`: QEMU's stop reply when the guest shuts down.
pub const SIGQUIT: u8 = 3;
/// `SIGTRAP`: a breakpoint or watchpoint.
pub const SIGTRAP: u8 = 5;

/// A thread id as the stub names it: QEMU's are vCPU index + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadId {
    /// The process (`pPID.TID` form, multiprocess extension), if given.
    pub pid: Option<u64>,
    pub tid: u64,
}

impl ThreadId {
    /// The vCPU index QEMU means by this thread (its threads are numbered from 1);
    /// `None` for thread 0 ("any thread").
    pub fn vcpu_index(&self) -> Option<usize> {
        self.tid
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
    }
}

/// Which accesses a watchpoint reported in a stop reply fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// `watch:` (writes).
    Write,
    /// `rwatch:` (reads).
    Read,
    /// `awatch:` (reads and writes).
    Access,
}

/// A stop reply: why the guest stopped (or ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReply {
    /// `S AA` or `T AA n:r;...`: stopped with signal `AA`.
    Signal {
        signal: u8,
        /// The `thread:` field: the vCPU that stopped (for a watchpoint, the writer).
        thread: Option<ThreadId>,
        /// The `watch:`/`rwatch:`/`awatch:` field: the watchpoint's address.
        watch: Option<(WatchKind, u64)>,
    },
    /// `W AA`: the target exited with status `AA`.
    Exited { status: u8 },
    /// `X AA`: the target was terminated by signal `AA`.
    Terminated { signal: u8 },
}

impl StopReply {
    /// Parses a stop-reply packet. Unknown `n:r` fields (registers, `core:`, `hwbreak:`)
    /// are skipped; a known one with a bad value is an error.
    pub fn parse(p: &[u8]) -> Result<StopReply, String> {
        let text = std::str::from_utf8(p).map_err(|_| "not ASCII".to_string())?;
        let (kind, rest) = text.split_at_checked(1).ok_or("no stop letter")?;
        let code = rest.get(..2).ok_or("no signal number")?;
        let code = hex_u8(code).ok_or_else(|| format!("bad signal number {code:?}"))?;
        let rest = &rest[2..];
        match kind {
            "S" if rest.is_empty() => Ok(StopReply::Signal {
                signal: code,
                thread: None,
                watch: None,
            }),
            "T" => {
                let mut thread = None;
                let mut watch = None;
                for field in rest.split(';').filter(|f| !f.is_empty()) {
                    let (name, value) = field
                        .split_once(':')
                        .ok_or_else(|| format!("field {field:?} has no `:`"))?;
                    let kind = match name {
                        "thread" => {
                            thread = parse_thread(value)?;
                            continue;
                        }
                        "watch" => WatchKind::Write,
                        "rwatch" => WatchKind::Read,
                        "awatch" => WatchKind::Access,
                        _ => continue,
                    };
                    let addr =
                        hex_u64(value).ok_or_else(|| format!("bad watch address {value:?}"))?;
                    watch = Some((kind, addr));
                }
                Ok(StopReply::Signal {
                    signal: code,
                    thread,
                    watch,
                })
            }
            // `;process:PID` may follow (multiprocess); the pid is not needed.
            "W" if rest.is_empty() || rest.starts_with(';') => {
                Ok(StopReply::Exited { status: code })
            }
            "X" if rest.is_empty() || rest.starts_with(';') => {
                Ok(StopReply::Terminated { signal: code })
            }
            _ => Err("not a stop reply".to_string()),
        }
    }

    /// The watchpoint hit this reply reports: `(vCPU, address)` for a `SIGTRAP` with a
    /// `watch:` field.
    pub fn write_watch_hit(&self) -> Option<(Option<usize>, u64)> {
        match self {
            StopReply::Signal {
                signal: SIGTRAP,
                thread,
                watch: Some((WatchKind::Write, addr)),
            } => Some((thread.and_then(|t| t.vcpu_index()), *addr)),
            _ => None,
        }
    }
}

pub(super) fn hex_u8(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u8::from_str_radix(s, 16).ok())
        .flatten()
}

fn hex_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// `TID`, `pPID.TID`; `-1` (all threads) names no single thread: `None`.
fn parse_thread(s: &str) -> Result<Option<ThreadId>, String> {
    let bad = || format!("bad thread id {s:?}");
    let (pid, tid) = match s.strip_prefix('p') {
        Some(rest) => {
            let (pid, tid) = rest.split_once('.').ok_or_else(bad)?;
            if pid == "-1" {
                return Ok(None);
            }
            (Some(hex_u64(pid).ok_or_else(bad)?), tid)
        }
        None => (None, s),
    };
    if tid == "-1" {
        return Ok(None);
    }
    let tid = hex_u64(tid).ok_or_else(bad)?;
    Ok(Some(ThreadId { pid, tid }))
}

/// The checksum of `wire` (the bytes between `$` and `#`).
pub fn checksum(wire: &[u8]) -> u8 {
    wire.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// `$payload#cs`, with `$`, `#`, `}` and `*` escaped in the payload.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(b'$');
    for &b in payload {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    let cs = checksum(&out[1..]);
    out.push(b'#');
    out.extend_from_slice(format!("{cs:02x}").as_bytes());
    out
}

/// Takes the first complete frame off the front of `buf`. `Ok(None)`: `buf` holds only
/// the beginning of one (read more). Bytes consumed are removed from `buf`, including
/// those of a frame that turned out to be an error.
pub fn next_frame(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    match first {
        b'+' => {
            buf.remove(0);
            Ok(Some(Frame::Ack))
        }
        b'-' => {
            buf.remove(0);
            Ok(Some(Frame::Nack))
        }
        b'$' | b'%' => {
            let Some(hash) = buf.iter().position(|b| *b == b'#') else {
                if buf.len() > MAX_WIRE_PACKET + 1 {
                    buf.clear();
                    return Err(FrameError::TooLong);
                }
                return Ok(None);
            };
            if hash > MAX_WIRE_PACKET + 1 {
                let end = (hash + 3).min(buf.len());
                buf.drain(..end);
                return Err(FrameError::TooLong);
            }
            if buf.len() < hash + 3 {
                return Ok(None);
            }
            let frame: Vec<u8> = buf.drain(..hash + 3).collect();
            if first == b'%' {
                return Err(FrameError::Notification);
            }
            let wire = &frame[1..hash];
            let text = [frame[hash + 1], frame[hash + 2]];
            let sent = std::str::from_utf8(&text)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or(FrameError::BadChecksumText(text))?;
            let computed = checksum(wire);
            if sent != computed {
                return Ok(Some(Frame::BadChecksum { sent, computed }));
            }
            decode(wire).map(|p| Some(Frame::Packet(p)))
        }
        other => {
            buf.remove(0);
            Err(FrameError::Stray(other))
        }
    }
}

/// Undoes the `}` escapes and the `*` run-length encoding of a packet's wire bytes.
pub fn decode(wire: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out: Vec<u8> = Vec::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        match b {
            b'}' => {
                let next = *wire
                    .get(i + 1)
                    .ok_or(FrameError::Payload("escape `}` at the end"))?;
                out.push(next ^ 0x20);
                i += 2;
            }
            b'*' => {
                let last = *out
                    .last()
                    .ok_or(FrameError::Payload("run-length `*` with nothing to repeat"))?;
                let n = *wire
                    .get(i + 1)
                    .ok_or(FrameError::Payload("run-length `*` at the end"))?;
                // The count is printable and never `#` or `$` (a repeat of 6 or 7 is
                // sent otherwise); 29 is the protocol's bias.
                if !(b' '..=b'~').contains(&n) || n == b'#' || n == b'$' {
                    return Err(FrameError::Payload("run-length count out of range"));
                }
                let repeat = usize::from(n - 29);
                if out.len() + repeat > MAX_PAYLOAD {
                    return Err(FrameError::PayloadTooLong);
                }
                out.resize(out.len() + repeat, last);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
        if out.len() > MAX_PAYLOAD {
            return Err(FrameError::PayloadTooLong);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mut buf: Vec<u8>) -> Vec<Result<Frame, FrameError>> {
        let mut out = Vec::new();
        loop {
            match next_frame(&mut buf) {
                Ok(None) => return out,
                Ok(Some(f)) => out.push(Ok(f)),
                Err(e) => out.push(Err(e)),
            }
        }
    }

    #[test]
    fn encoding_checksums_and_escapes() {
        assert_eq!(encode(b"c"), b"$c#63");
        assert_eq!(encode(b"?"), b"$?#3f");
        assert_eq!(encode(b"OK"), b"$OK#9a");
        assert_eq!(encode(b""), b"$#00");
        // `}` `#` `$` `*` go as `}` + byte ^ 0x20; the checksum covers the escaped bytes.
        let e = encode(b"a}b#c$d*");
        assert_eq!(&e[..e.len() - 3], b"$a}]b}\x03c}\x04d}\x0a");
        assert_eq!(
            next_frame(&mut e.clone()),
            Ok(Some(Frame::Packet(b"a}b#c$d*".to_vec())))
        );
    }

    #[test]
    fn acks_packets_and_partial_input() {
        let mut buf = b"+-$OK#9".to_vec();
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Ack)));
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Nack)));
        // Not complete yet: nothing consumed.
        assert_eq!(next_frame(&mut buf), Ok(None));
        assert_eq!(buf, b"$OK#9");
        buf.extend_from_slice(b"a$T05thr");
        assert_eq!(
            next_frame(&mut buf),
            Ok(Some(Frame::Packet(b"OK".to_vec())))
        );
        assert_eq!(next_frame(&mut buf), Ok(None));
        assert_eq!(buf, b"$T05thr");
    }

    #[test]
    fn a_wrong_checksum_is_reported_and_consumed() {
        let got = frames(b"$OK#00$OK#9A".to_vec());
        assert_eq!(
            got,
            [
                Ok(Frame::BadChecksum {
                    sent: 0,
                    computed: 0x9a
                }),
                // Upper-case hex is hex.
                Ok(Frame::Packet(b"OK".to_vec()))
            ]
        );
        assert_eq!(
            frames(b"$OK#zz".to_vec()),
            [Err(FrameError::BadChecksumText(*b"zz"))]
        );
    }

    #[test]
    fn run_length_encoding_is_expanded() {
        // `0*"` = '0' then 34 - 29 = 5 more.
        assert_eq!(decode(b"0*\"").unwrap(), b"000000");
        assert_eq!(decode(b"ab* c").unwrap(), b"abbbbc");
        // The count may itself be escaped content-wise: the repeated byte is the decoded one.
        assert_eq!(decode(b"}]*!").unwrap(), b"}}}}}");
        let wire = b"T05thread:01;watch:ff*!0;";
        let mut buf = Vec::new();
        buf.push(b'$');
        buf.extend_from_slice(wire);
        buf.extend_from_slice(format!("#{:02x}", checksum(wire)).as_bytes());
        assert_eq!(
            next_frame(&mut buf),
            Ok(Some(Frame::Packet(b"T05thread:01;watch:ffffff0;".to_vec())))
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(matches!(decode(b"*!"), Err(FrameError::Payload(_))));
        assert!(matches!(decode(b"a*"), Err(FrameError::Payload(_))));
        assert!(matches!(decode(b"a*\x7f"), Err(FrameError::Payload(_))));
        assert!(matches!(decode(b"a*#"), Err(FrameError::Payload(_))));
        assert!(matches!(decode(b"ab}"), Err(FrameError::Payload(_))));
        // Many maximal repeats: capped, not allocated without bound.
        let bomb: Vec<u8> = std::iter::once(b'x')
            .chain(std::iter::repeat_n(*b"*~", 10_000).flatten())
            .collect();
        assert_eq!(decode(&bomb), Err(FrameError::PayloadTooLong));
    }

    #[test]
    fn garbage_and_oversized_input_are_errors() {
        assert_eq!(frames(b"hello".to_vec())[0], Err(FrameError::Stray(b'h')));
        assert_eq!(
            frames(b"%Stop:T05;#00".to_vec()),
            [Err(FrameError::Notification)]
        );
        let mut long = vec![b'$'];
        long.extend(std::iter::repeat_n(b'a', MAX_WIRE_PACKET + 10));
        assert_eq!(next_frame(&mut long), Err(FrameError::TooLong));
        assert!(long.is_empty());
        let mut long = vec![b'$'];
        long.extend(std::iter::repeat_n(b'a', MAX_WIRE_PACKET + 10));
        long.extend_from_slice(b"#00+");
        assert_eq!(next_frame(&mut long), Err(FrameError::TooLong));
        assert_eq!(next_frame(&mut long), Ok(Some(Frame::Ack)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A fixed pseudo-random stream biased towards the protocol's special bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"$#}*+-%0123456789abcdefT:;\x03";
        for round in 0..2_000 {
            let mut buf = Vec::new();
            for _ in 0..(round % 97) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = if x & 3 == 0 {
                    (x >> 8) as u8
                } else {
                    alphabet[(x >> 8) as usize % alphabet.len()]
                };
                buf.push(b);
            }
            let _ = decode(&buf);
            let mut steps = 0;
            while let Ok(Some(_)) | Err(_) = next_frame(&mut buf) {
                steps += 1;
                assert!(steps <= 200, "no progress on {buf:?}");
                if buf.is_empty() {
                    break;
                }
            }
        }
    }

    #[test]
    fn stop_replies_parse() {
        let p = |s: &str| StopReply::parse(s.as_bytes());
        assert_eq!(
            p("T05thread:01;watch:ffffffff82807a00;")
                .unwrap()
                .write_watch_hit(),
            Some((Some(0), 0xffff_ffff_8280_7a00))
        );
        assert_eq!(
            p("T0506:0000000000000000;07:ffff;thread:p1.3;core:1;hwbreak:;").unwrap(),
            StopReply::Signal {
                signal: SIGTRAP,
                thread: Some(ThreadId {
                    pid: Some(1),
                    tid: 3
                }),
                watch: None
            }
        );
        assert_eq!(
            p("T05thread:01;rwatch:10;").unwrap().write_watch_hit(),
            None,
            "a read watchpoint is not a write"
        );
        assert_eq!(
            p("T02thread:-1;").unwrap(),
            StopReply::Signal {
                signal: SIGINT,
                thread: None,
                watch: None
            }
        );
        assert_eq!(
            p("T00thread:0;").unwrap(),
            StopReply::Signal {
                signal: 0,
                thread: Some(ThreadId { pid: None, tid: 0 }),
                watch: None
            }
        );
        assert_eq!(
            ThreadId { pid: None, tid: 0 }.vcpu_index(),
            None,
            "thread 0 is any thread"
        );
        assert_eq!(p("W00").unwrap(), StopReply::Exited { status: 0 });
        assert_eq!(p("W01;process:1").unwrap(), StopReply::Exited { status: 1 });
        assert_eq!(p("X09").unwrap(), StopReply::Terminated { signal: 9 });
        assert_eq!(
            p("S03").unwrap(),
            StopReply::Signal {
                signal: SIGQUIT,
                thread: None,
                watch: None
            }
        );
        for bad in [
            "",
            "T",
            "T5",
            "Tzz",
            "T05thread",
            "T05thread:;",
            "T05thread:p1;",
            "T05watch:;",
            "T05watch:xyz;",
            "T05watch:1234567890abcdef0;",
            "S05;",
            "W",
            "Wxx",
            "OK",
            "E22",
            "T\u{e9}5",
            "X09garbage",
        ] {
            assert!(p(bad).is_err(), "{bad:?} parsed");
        }
    }
}
