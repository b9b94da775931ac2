//! Running external tools (apt-get, clang, cargo, zstd, ...) with errors that say what
//! failed and show the tool's last output.

use super::{LabError, Progress};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How much of a failed tool's output an error carries.
const TAIL_LINES: usize = 40;
/// How often a long-running tool is reported as still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// The last `TAIL_LINES` lines of `text`.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// Run `cmd` to completion with stdout and stderr appended to `log`; report a heartbeat
/// every 30 s. A non-zero exit is an error carrying the log's tail.
pub(crate) fn run_logged(
    progress: &dyn Progress,
    step: &str,
    cmd: &mut Command,
    log: &Path,
) -> Result<(), LabError> {
    let command = describe(cmd);
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(format!("{step}: opening the log"), log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::io(format!("{step}: opening the log"), log, e))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| not_started(step, &command, e))?;
    let started = Instant::now();
    let mut next_beat = started + HEARTBEAT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::io(format!("{step}: waiting"), log, e));
            }
        }
        if Instant::now() >= next_beat {
            next_beat += HEARTBEAT;
            let last = last_line(log);
            progress.step(&format!(
                "{step}: still running after {}s{}",
                started.elapsed().as_secs(),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(" ({last})")
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    Err(LabError::Tool {
        step: step.to_string(),
        command,
        status: status.to_string(),
        output_tail: tail(&text),
    })
}

/// The last non-empty line of a log file, read from its end (bounded).
fn last_line(log: &Path) -> String {
    let Ok(mut f) = File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(4096);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.take(4096).read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

/// The command could not be started at all.
fn not_started(step: &str, command: &str, e: std::io::Error) -> LabError {
    LabError::Tool {
        step: step.to_string(),
        command: command.to_string(),
        status: format!("could not start: {e}"),
        output_tail: String::new(),
    }
}

/// Run `cmd` and return its stdout; a non-zero exit is an error carrying stderr's tail.
pub(crate) fn output(step: &str, cmd: &mut Command) -> Result<Vec<u8>, LabError> {
    let command = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_started(step, &command, e))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(LabError::Tool {
        step: step.to_string(),
        command,
        status: out.status.to_string(),
        output_tail: tail(&text),
    })
}

/// Run `cmd` and return its stdout and whether it succeeded (for probes whose failure is
/// an answer, like `dpkg-query` on a package that is not installed).
pub(crate) fn probe(cmd: &mut Command) -> Option<(bool, String)> {
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// Process-wide memo of tool and package versions used in cache keys: they do not change
/// while a process runs, and asking dpkg or a compiler costs tens of milliseconds on a
/// loaded machine, on every initramfs request otherwise.
pub(crate) fn memo(
    key: String,
    compute: impl FnOnce() -> Result<String, LabError>,
) -> Result<String, LabError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static MEMO: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let map = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = map.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let v = compute()?;
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    Ok(v)
}

/// The installed version of a Debian package ("" when not installed), memoized.
pub(crate) fn dpkg_version(package: &str) -> String {
    memo(format!("dpkg:{package}"), || {
        Ok(
            probe(Command::new("dpkg-query").args(["-W", "-f=${Version}", package]))
                .map(|(_, v)| v)
                .unwrap_or_default(),
        )
    })
    .unwrap_or_default()
}

/// The first line of `program --version`, memoized.
pub(crate) fn program_version(step: &str, program: &str) -> Result<String, LabError> {
    memo(format!("version:{program}"), || {
        let out = output(step, Command::new(program).arg("--version"))?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or("")
            .to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuietProgress;

    #[test]
    fn a_failing_tool_reports_its_step_status_and_output_tail() {
        let dir = std::env::temp_dir().join(format!("ktstr-tool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let err = run_logged(
            &QuietProgress,
            "making noise",
            Command::new("sh").args(["-c", "echo first; echo boom >&2; exit 3"]),
            &log,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("making noise: `sh -c"), "{err}");
        assert!(
            err.contains("exit status: 3") && err.contains("boom"),
            "{err}"
        );
        run_logged(&QuietProgress, "ok", &mut Command::new("true"), &log).unwrap();
        let missing = output("probing", &mut Command::new("/nonexistent/tool")).unwrap_err();
        assert!(missing.to_string().contains("could not start"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert_eq!(t.lines().count(), TAIL_LINES);
        assert!(t.ends_with("line 99"));
    }
}
