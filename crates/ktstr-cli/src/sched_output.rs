//! What the scheduler said of itself, from the guest's console: its process' exit status
//! (`scheduler-process-exit`, for a scheduler that is its own process) and its last output
//! lines (`sched-tail` when the process ended, else `sched-log`, printed after it attached
//! or when it failed to). It goes where the report has a place for it (a placeholder's
//! `guest_setup_failure.scheduler_log_tail`) and into the run's `-v` log in every case.

use std::time::{Duration, Instant};

use guest_lab::{ConsoleLog, SchedulerProcessExit};

use crate::guest::RunGuest;

/// Output lines of the scheduler the `-v` log keeps (the guest keeps 60).
const LOG_LINES: usize = 40;

/// The scheduler's exit status, if it ended, and its last lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SchedulerOutput {
    pub exit: Option<SchedulerProcessExit>,
    /// The process' last lines when it ended, else what the guest printed of its log.
    pub lines: Vec<String>,
}

impl SchedulerOutput {
    pub fn from_console(log: &ConsoleLog) -> SchedulerOutput {
        match log.scheduler_process_exit() {
            Some(exit) => SchedulerOutput {
                lines: exit.tail.clone(),
                exit: Some(exit),
            },
            None => SchedulerOutput {
                exit: None,
                lines: log.outputs.get("sched-log").cloned().unwrap_or_default(),
            },
        }
    }

    /// `exit status 0` / `killed by signal 9 (status 137)` / `still running`.
    pub fn status(&self) -> String {
        match &self.exit {
            Some(x) => match x.signal() {
                Some(sig) => format!("killed by signal {sig} (status {})", x.rc),
                None => format!("exit status {}", x.rc),
            },
            None => "no exit reported (still running, or not a process of its own)".into(),
        }
    }

    /// The text for `guest_setup_failure.scheduler_log_tail`: the exit status (when the
    /// process ended) on the first line, then the output lines.
    pub fn tail_text(&self) -> String {
        let mut s = String::new();
        if self.exit.is_some() {
            s.push_str(&format!("[ktstr] scheduler process: {}\n", self.status()));
        }
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// Lines for the run's `-v` log: the status, then the last [`LOG_LINES`] lines.
    pub fn log_lines(&self) -> Vec<String> {
        let mut v = vec![format!("scheduler: {}", self.status())];
        let skip = self.lines.len().saturating_sub(LOG_LINES);
        if skip > 0 {
            v.push(format!("scheduler: ({skip} earlier lines not shown)"));
        }
        v.extend(
            self.lines[skip..]
                .iter()
                .map(|l| format!("scheduler| {}", printable(l))),
        );
        v
    }
}

/// `line` for a terminal: colour and other CSI sequences (`ESC [ … final`) removed, any
/// other control character shown as `?` (the guest's output is not trusted).
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in 0x40..=0x7e.
            for f in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&f) {
                    break;
                }
            }
        } else if c.is_control() && c != '\t' {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The console once the scheduler's process reported its end, or `wait` passed: a
/// process scheduler leaves shortly after the kernel disabled it, and its status and last
/// lines come after.
pub(crate) fn await_process_exit(engine: &RunGuest, wait: Duration) -> ConsoleLog {
    let deadline = Instant::now() + wait;
    loop {
        let log = engine.console_log();
        if log.exit_codes.contains_key("sched-tail") || Instant::now() >= deadline {
            return log;
        }
        if engine.exit_watch().exited().is_some() {
            return engine.console_log();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_and_the_tail_win_over_the_log_printed_at_attach() {
        let log = ConsoleLog::parse(
            "KTSTR-OUT sched-log: 11:00:00 [INFO] scx_flash attached\n\
             KTSTR-END sched-log rc=0\n\
             KTSTR-PHASE: scheduler-process-exit rc=137 signal=9\n\
             KTSTR-OUT sched-tail: one\nKTSTR-OUT sched-tail: two\nKTSTR-END sched-tail rc=137\n",
        );
        let out = SchedulerOutput::from_console(&log);
        assert_eq!(out.status(), "killed by signal 9 (status 137)");
        assert_eq!(
            out.tail_text(),
            "[ktstr] scheduler process: killed by signal 9 (status 137)\none\ntwo\n"
        );
        assert_eq!(
            out.log_lines(),
            [
                "scheduler: killed by signal 9 (status 137)",
                "scheduler| one",
                "scheduler| two"
            ]
        );
    }

    #[test]
    fn log_lines_lose_colour_and_control_characters() {
        let out = SchedulerOutput::from_console(&ConsoleLog::parse(
            "KTSTR-OUT sched-log: 11:32:02 \u{1b}[0m\u{1b}[34m[INFO] \u{1b}[0mNUMA nodes: 1\u{7}x\u{1b}\n",
        ));
        assert_eq!(
            out.log_lines()[1],
            "scheduler| 11:32:02 [INFO] NUMA nodes: 1?x?"
        );
        // The report keeps the output as it was.
        assert!(out.tail_text().contains("\u{1b}[34m"));
    }

    #[test]
    fn a_running_scheduler_has_its_log_and_no_status() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("KTSTR-OUT sched-log: line {i}\n"));
        }
        let out = SchedulerOutput::from_console(&ConsoleLog::parse(&text));
        assert_eq!(out.exit, None);
        assert_eq!(out.tail_text().lines().count(), 50);
        let v = out.log_lines();
        assert!(v[0].starts_with("scheduler: no exit reported"), "{v:?}");
        assert_eq!(v[1], "scheduler: (10 earlier lines not shown)");
        assert_eq!(v.len(), 2 + LOG_LINES);
        assert_eq!(v.last().map(String::as_str), Some("scheduler| line 49"));
        let clean = SchedulerOutput::from_console(&ConsoleLog::parse(
            "KTSTR-PHASE: scheduler-process-exit rc=0\n",
        ));
        assert_eq!(clean.status(), "exit status 0");
        assert_eq!(
            clean.tail_text(),
            "[ktstr] scheduler process: exit status 0\n"
        );
    }
}
