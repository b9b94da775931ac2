//! What the kernel's own debug dump (`exit_info.kernel_dump`, `scx_dump_state`) says about
//! each task and the report has no field for: its state marker, its runnable age, its slice.
//! The runqueue states show them beside the report's own facts when a dump was captured.
//!
//! A task's block in the kernel's dump starts with ` *R comm[pid] … +12ms` (`*` marks the
//! CPU's current task, `R` is the task's state, the last token its age relative to the dump)
//! and goes on with indented `key=value` lines (`dsq_id=0x101`, `slice=20000000`, …) up to a
//! blank line. Anything else is ignored; nothing here fails.

use std::collections::HashMap;

/// Most task blocks read (a dump is at most a few tens of KiB).
const MAX_TASKS: usize = 4096;

/// One task as the kernel's dump shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KernelTask {
    /// `*R`, ` R`, …: the current-task marker and the state.
    pub(crate) state: String,
    /// `+12ms`, `-2320ms`: when it became runnable, relative to the dump.
    pub(crate) age: String,
    /// `dsq_id=` (`0x101`, `(n/a)`).
    pub(crate) dsq_id: Option<String>,
    /// `slice=` in ns.
    pub(crate) slice: Option<u64>,
}

/// The tasks of a kernel dump by pid.
pub(crate) fn tasks(dump: &str) -> HashMap<i32, KernelTask> {
    let mut out = HashMap::new();
    let mut current: Option<(i32, KernelTask)> = None;
    for line in dump.lines() {
        if let Some((pid, task)) = header(line) {
            if let Some((p, t)) = current.take() {
                out.insert(p, t);
            }
            if out.len() >= MAX_TASKS {
                break;
            }
            current = Some((pid, task));
            continue;
        }
        let Some((_, task)) = current.as_mut() else {
            continue;
        };
        if line.trim().is_empty() || !line.starts_with("      ") {
            if let Some((p, t)) = current.take() {
                out.insert(p, t);
            }
            continue;
        }
        for (key, value) in line.split_whitespace().filter_map(|w| w.split_once('=')) {
            match key {
                "dsq_id" => task.dsq_id = Some(value.to_string()),
                "slice" => task.slice = value.parse().ok(),
                _ => {}
            }
        }
    }
    if let Some((p, t)) = current {
        out.insert(p, t);
    }
    out
}

/// ` *R comm[pid] … +12ms`: the pid, the marker and state, the age.
fn header(line: &str) -> Option<(i32, KernelTask)> {
    let b = line.as_bytes();
    if b.len() < 8 || b[0] != b' ' || !matches!(b[1], b' ' | b'*') || b[3] != b' ' {
        return None;
    }
    if !b[2].is_ascii_alphabetic() {
        return None;
    }
    let (rest, age) = line[4..].rsplit_once(' ')?;
    let digits = age.strip_suffix("ms")?;
    let sign_ok = digits.starts_with(['+', '-']) && digits[1..].bytes().all(|c| c.is_ascii_digit());
    if !sign_ok || digits.len() < 2 {
        return None;
    }
    // The pid is the last `[digits]` followed by a space or the end (a comm may hold
    // brackets too).
    let pid = rest
        .match_indices('[')
        .filter_map(|(i, _)| {
            let tail = &rest[i + 1..];
            let end = tail.find(']')?;
            let after = &tail[end + 1..];
            if !(after.is_empty() || after.starts_with(' ')) {
                return None;
            }
            tail[..end].parse::<i32>().ok()
        })
        .next_back()?;
    Some((
        pid,
        KernelTask {
            state: line[1..3].to_string(),
            age: age.to_string(),
            ..KernelTask::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
CPU 0   : nr_run=4 flags=0x1 cpu_rel=0 ksync=2005
          curr=kworker/u8:2[38] class=ext_sched_class

 *R kworker/u8:2[38] *root +0ms
      scx_state/flags=4/0x5 dsq_flags=0x0 ops_state/qseq=0/0
      sticky/holding_cpu=-1/-1 dsq_id=(n/a)
      dsq_vtime=5376988785 slice=20000000 weight=100

    ktstr-dump-task: pid=38 runs=15 slice=7

  R ktstr-victim[149] *root -2320ms
      sticky/holding_cpu=-1/-1 dsq_id=0x101
      dsq_vtime=4198965342 slice=20000000 weight=100
  R odd[1] name[7] -5ms
      dsq_id=0x100
";

    #[test]
    fn reads_each_tasks_state_age_dsq_and_slice() {
        let t = tasks(DUMP);
        assert_eq!(t.len(), 3, "{t:?}");
        let k = &t[&38];
        assert_eq!((k.state.as_str(), k.age.as_str()), ("*R", "+0ms"));
        assert_eq!(k.dsq_id.as_deref(), Some("(n/a)"));
        // The scheduler's own line after the blank line is not the kernel's.
        assert_eq!(k.slice, Some(20_000_000));
        let v = &t[&149];
        assert_eq!((v.state.as_str(), v.age.as_str()), (" R", "-2320ms"));
        assert_eq!(v.dsq_id.as_deref(), Some("0x101"));
        // A comm holding brackets: the last `[pid]`.
        assert_eq!(t[&7].dsq_id.as_deref(), Some("0x100"));
    }

    #[test]
    fn ignores_what_is_not_a_task_block() {
        for text in [
            "",
            "R x[1] +1ms",
            " *R x[] +1ms",
            " *R x[1] 1ms",
            " *R x[1] +ms",
            "\u{e9}",
        ] {
            assert!(tasks(text).is_empty(), "{text:?}");
        }
    }
}
