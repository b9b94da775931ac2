//! A small QMP (QEMU Machine Protocol) client over a UNIX socket.
//!
//! QMP is line-delimited JSON: a greeting, then `qmp_capabilities`, then commands whose
//! answers (`return` or `error`) arrive in order, interleaved with asynchronous events.
//! The client tags each command with an `id` and queues events it reads on the way (a
//! bounded queue: QEMU is a separate process and nothing it sends may grow our memory
//! without limit).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Longest QMP message accepted. `dump-guest-memory` and `info registers -a` answers
/// are far smaller; a longer line means something is wrong.
const MAX_LINE: usize = 16 << 20;
/// Events kept for [`QmpClient::take_events`]; older ones are dropped.
const MAX_EVENTS: usize = 256;

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QmpError {
    #[error("QMP {step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("QMP {step}: malformed message: {detail}")]
    Protocol { step: &'static str, detail: String },
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP command {command}: no answer within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("QMP connection closed by QEMU")]
    Closed,
}

/// An asynchronous QMP event (`STOP`, `RESUME`, `SHUTDOWN`, `DUMP_COMPLETED`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
    /// When QEMU emitted it (its `timestamp`, host wall clock at microsecond
    /// resolution); `None` when absent or malformed.
    pub timestamp: Option<SystemTime>,
}

/// A connected, capability-negotiated QMP session.
#[derive(Debug)]
pub struct QmpClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<QmpEvent>,
    next_id: u64,
    /// Default bound on one command's answer.
    pub timeout: Duration,
}

impl QmpClient {
    /// Connects to `path`, retrying until `connect_timeout` (QEMU creates the socket a
    /// little after it starts), reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path, connect_timeout: Duration) -> Result<Self, QmpError> {
        let stream = super::connect_unix(path, connect_timeout).map_err(|source| QmpError::Io {
            step: "connect",
            source,
        })?;
        Self::from_stream(stream, connect_timeout)
    }

    /// Negotiates on an already connected stream.
    pub fn from_stream(stream: UnixStream, greeting_timeout: Duration) -> Result<Self, QmpError> {
        let writer = stream.try_clone().map_err(|source| QmpError::Io {
            step: "clone socket",
            source,
        })?;
        let mut client = QmpClient {
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
            next_id: 1,
            timeout: Duration::from_secs(30),
        };
        let deadline = Instant::now() + greeting_timeout;
        let greeting = client.read_message("greeting", deadline)?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol {
                step: "greeting",
                detail: truncate(&greeting.to_string()),
            });
        }
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let timeout = self.timeout;
        self.execute_timeout(command, arguments, timeout)
    }

    /// Like [`execute`](Self::execute) with an explicit bound on the answer.
    pub fn execute_timeout(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| QmpError::Io {
                step: "send",
                source,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.read_before(deadline, "answer", || command.to_string(), timeout)?;
            if let Some(event) = parse_event(&msg) {
                self.push_event(event);
                continue;
            }
            // Answers carry our id back; one without an id (never sent by us) is skipped.
            if msg.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: err
                        .get("class")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    desc: err
                        .get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                });
            }
            return Err(QmpError::Protocol {
                step: "answer",
                detail: truncate(&msg.to_string()),
            });
        }
    }

    /// Runs a human-monitor (HMP) command line and returns its text output.
    pub fn hmp(&mut self, command_line: &str) -> Result<String, QmpError> {
        let ret = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )?;
        ret.as_str()
            .map(str::to_string)
            .ok_or_else(|| QmpError::Protocol {
                step: "human-monitor-command",
                detail: truncate(&ret.to_string()),
            })
    }

    /// `query-status`: the run state (`running`, `paused`, `internal-error`, `shutdown`, ...).
    pub fn run_state(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status", None)?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| QmpError::Protocol {
                step: "query-status",
                detail: truncate(&ret.to_string()),
            })
    }

    /// Events received so far (oldest first), removed from the queue.
    pub fn take_events(&mut self) -> Vec<QmpEvent> {
        self.events.drain(..).collect()
    }

    /// Waits until an event named `name` arrives (or was already queued), up to `timeout`.
    /// Other events stay queued.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<QmpEvent, QmpError> {
        if let Some(pos) = self.events.iter().position(|e| e.name == name) {
            return Ok(self.events.remove(pos).expect("position is in range"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.read_before(
                deadline,
                "event",
                || format!("wait for event {name}"),
                timeout,
            )?;
            if let Some(event) = parse_event(&msg) {
                if event.name == name {
                    return Ok(event);
                }
                self.push_event(event);
            }
        }
    }

    fn push_event(&mut self, event: QmpEvent) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Reads one JSON line, waiting until `deadline`.
    /// [`Self::read_message`], with running out of time (the socket's read timeout) told as
    /// [`QmpError::Timeout`] for `command` (named only then) after `timeout`.
    fn read_before(
        &mut self,
        deadline: Instant,
        step: &'static str,
        command: impl FnOnce() -> String,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        match self.read_message(step, deadline) {
            Err(QmpError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(QmpError::Timeout {
                    command: command(),
                    timeout,
                })
            }
            other => other,
        }
    }

    fn read_message(&mut self, step: &'static str, deadline: Instant) -> Result<Value, QmpError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // A zero read timeout means "block forever" to the socket API.
        let remaining = remaining.max(Duration::from_millis(1));
        self.reader
            .get_ref()
            .set_read_timeout(Some(remaining))
            .map_err(|source| QmpError::Io {
                step: "set timeout",
                source,
            })?;
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| QmpError::Io { step, source })?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        if line.len() > MAX_LINE {
            return Err(QmpError::Protocol {
                step,
                detail: format!("message longer than {MAX_LINE} bytes"),
            });
        }
        serde_json::from_slice(&line).map_err(|e| QmpError::Protocol {
            step,
            detail: format!("{e}: {}", truncate(&String::from_utf8_lossy(&line))),
        })
    }
}

fn parse_event(msg: &Value) -> Option<QmpEvent> {
    let name = msg.get("event")?.as_str()?.to_string();
    let data = msg.get("data").cloned().unwrap_or(Value::Null);
    let timestamp = msg.get("timestamp").and_then(|t| {
        let secs = t.get("seconds")?.as_u64()?;
        let micros = t
            .get("microseconds")?
            .as_u64()
            .filter(|us| *us < 1_000_000)?;
        UNIX_EPOCH.checked_add(Duration::from_secs(secs) + Duration::from_micros(micros))
    });
    Some(QmpEvent {
        name,
        data,
        timestamp,
    })
}

fn truncate(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixStream;

    /// A scripted peer: answers each command line with the next scripted lines, with
    /// `{id}` replaced by the command's id.
    fn peer(script: Vec<Vec<&'static str>>) -> (UnixStream, std::thread::JoinHandle<()>) {
        let (a, b) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || {
            let mut w = b.try_clone().unwrap();
            let mut r = BufReader::new(b);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            for answers in script {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    return;
                }
                let v: Value = serde_json::from_str(&line).unwrap();
                let id = v["id"].as_u64().unwrap();
                for a in answers {
                    let s = a.replace("{id}", &id.to_string());
                    w.write_all(s.as_bytes()).unwrap();
                    w.write_all(b"\n").unwrap();
                }
            }
        });
        (a, h)
    }

    #[test]
    fn handshake_command_events_and_errors() {
        let (s, h) = peer(vec![
            vec![r#"{"return": {}, "id": {id}}"#],
            vec![
                r#"{"event": "STOP", "data": {}, "timestamp": {"seconds": 1, "microseconds": 2}}"#,
                r#"{"return": {}, "id": {id}}"#,
            ],
            vec![r#"{"return": {"status": "paused", "running": false}, "id": {id}}"#],
            vec![r#"{"error": {"class": "GenericError", "desc": "nope"}, "id": {id}}"#],
            vec![r#"{"return": "RAX=1\r\n", "id": {id}}"#],
        ]);
        let mut c = QmpClient::from_stream(s, Duration::from_secs(5)).unwrap();
        c.execute("stop", None).unwrap();
        assert_eq!(c.run_state().unwrap(), "paused");
        match c.execute("bogus", None) {
            Err(QmpError::Command { class, desc, .. }) => {
                assert_eq!(class, "GenericError");
                assert_eq!(desc, "nope");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.hmp("info registers").unwrap(), "RAX=1\r\n");
        let ev = c.wait_event("STOP", Duration::from_secs(1)).unwrap();
        assert_eq!(ev.name, "STOP");
        assert_eq!(
            ev.timestamp,
            Some(UNIX_EPOCH + Duration::from_secs(1) + Duration::from_micros(2))
        );
        h.join().unwrap();
    }

    #[test]
    fn timeout_and_closed_are_errors() {
        let (s, h) = peer(vec![vec![r#"{"return": {}, "id": {id}}"#], vec![]]);
        let mut c = QmpClient::from_stream(s, Duration::from_secs(5)).unwrap();
        let err = c
            .execute_timeout("query-status", None, Duration::from_millis(50))
            .unwrap_err();
        assert!(
            matches!(err, QmpError::Timeout { .. } | QmpError::Closed),
            "{err}"
        );
        h.join().unwrap();
        let err = c.execute("query-status", None).unwrap_err();
        assert!(
            matches!(err, QmpError::Closed | QmpError::Io { .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut w = b.try_clone().unwrap();
        w.write_all(b"not json\n").unwrap();
        let err = QmpClient::from_stream(a, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, QmpError::Protocol { .. }), "{err}");
        drop(b);
    }
}
