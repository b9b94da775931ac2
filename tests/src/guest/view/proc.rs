//! `/proc` and `/sys/kernel/sched_ext` as the guest printed them, against the dump.

use std::collections::BTreeMap;
use std::time::Duration;

use dump_schema::FailureDumpReport;
use guest_lab::ConsoleLog;

use super::LAST_VIEW_LABEL;

/// The fields of one `/proc/<pid>/stat` line the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

impl ProcStat {
    /// Parses `pid (comm) state ppid pgrp session ...`; the comm may hold spaces and
    /// parentheses (the last `)` ends it). `None` for anything else.
    pub fn parse(line: &str) -> Option<ProcStat> {
        let open = line.find('(')?;
        let close = line.rfind(')')?;
        let pid = line[..open].trim().parse().ok()?;
        let comm = line.get(open + 1..close)?.to_string();
        let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
        Some(ProcStat {
            pid,
            comm,
            ppid: rest.get(1)?.parse().ok()?,
            pgrp: rest.get(2)?.parse().ok()?,
            session: rest.get(3)?.parse().ok()?,
        })
    }
}

/// Same pids with the same comm, parent, process group and session. Processes that can
/// have exited between the guest's print and the freeze (the guest's own short-lived
/// commands) may be missing; kernel threads and the workload may not.
pub fn assert_tasks_agree(log: &ConsoleLog, r: &FailureDumpReport, must_have: &[&str]) -> usize {
    let text = log
        .output("proc-pid-stat")
        .expect("guest printed no /proc/<pid>/stat");
    let by_pid: BTreeMap<i32, &dump_schema::TaskEnrichment> =
        r.task_enrichments.iter().map(|t| (t.pid, t)).collect();
    let mut checked = 0;
    for line in text.lines() {
        let Some(ProcStat {
            pid,
            comm,
            ppid,
            pgrp,
            session: sid,
        }) = ProcStat::parse(line)
        else {
            continue;
        };
        let Some(t) = by_pid.get(&pid) else {
            let kernel_thread = ppid == 2 || pid <= 2;
            assert!(
                !kernel_thread && !must_have.contains(&comm.as_str()),
                "pid {pid} ({comm}) not in the dump"
            );
            continue;
        };
        // /proc shows a kernel worker's comm with its workqueue appended
        // (`kworker/0:1-events`) and a kernel thread's full name beyond the 15 bytes of
        // `task_struct.comm`; the dump has the task's own comm.
        if comm.starts_with("kworker/") || (ppid == 2 && t.comm.len() == 15) {
            assert!(
                comm.starts_with(&t.comm),
                "pid {pid} comm {comm} vs {}",
                t.comm
            );
        } else {
            assert_eq!(t.comm, comm, "pid {pid} comm");
        }
        assert_eq!(t.real_parent_pid, ppid, "pid {pid} ({comm}) parent");
        assert_eq!(t.pgid, pgrp, "pid {pid} ({comm}) pgrp");
        assert_eq!(t.sid, sid, "pid {pid} ({comm}) session");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} tasks matched");
    checked
}

/// Each task's class: `ext` in the dump exactly where the guest's `/proc/<pid>/sched` says
/// `ext.enabled 1` ([`GuestCommand::proc_pid_ext`]), for every pid in both. Tasks that
/// exited in between are skipped (see [`assert_tasks_agree`] for which may). Returns how
/// many were compared (at least 20) and how many of them run on sched_ext.
///
/// [`GuestCommand::proc_pid_ext`]: guest_lab::GuestCommand::proc_pid_ext
pub fn assert_task_classes_agree(log: &ConsoleLog, r: &FailureDumpReport) -> (usize, usize) {
    let text = log
        .output("proc-pid-ext")
        .expect("guest printed no proc-pid-ext");
    let by_pid: BTreeMap<i32, &dump_schema::TaskEnrichment> =
        r.task_enrichments.iter().map(|t| (t.pid, t)).collect();
    let (mut checked, mut ext) = (0, 0);
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(pid), Some(on)) = (
            w.next().and_then(|p| p.parse::<i32>().ok()),
            w.next().and_then(|e| e.parse::<u8>().ok()),
        ) else {
            panic!("proc-pid-ext line {line:?}");
        };
        let Some(t) = by_pid.get(&pid) else { continue };
        assert_eq!(
            t.sched_class == "ext",
            on == 1,
            "pid {pid} ({}): class {} in the dump, ext.enabled {on} in the guest",
            t.comm,
            t.sched_class
        );
        checked += 1;
        ext += usize::from(on == 1);
    }
    assert!(checked >= 20, "only {checked} task classes compared");
    (checked, ext)
}

/// Per-CPU times: the dump (later) shows at least what `/proc/stat` showed, and not more
/// than the time that can have passed since (a unit error would be far off).
pub fn assert_cputime_agrees(log: &ConsoleLog, r: &FailureDumpReport, since_view: Duration) {
    let text = log
        .output("proc-stat")
        .expect("guest printed no /proc/stat");
    // USER_HZ is 100: one tick is 10 ms.
    let tick_ns = 10_000_000u64;
    let slack = (since_view.as_secs() + 5) * 100;
    let mut cpus = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(cpu) = f
            .first()
            .and_then(|c| c.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let d = r
            .per_cpu_time
            .iter()
            .find(|p| p.cpu == cpu)
            .unwrap_or_else(|| panic!("cpu{cpu} missing from per_cpu_time"));
        for (what, guest, dump_ns) in [
            ("user", n(1), d.cpustat_user_ns),
            ("nice", n(2), d.cpustat_nice_ns),
            ("system", n(3), d.cpustat_system_ns),
            ("softirq", n(7), d.cpustat_softirq_ns),
        ] {
            let dump = dump_ns / tick_ns;
            assert!(
                dump >= guest,
                "cpu{cpu} {what}: dump {dump} ticks < guest {guest}"
            );
            assert!(
                dump <= guest + slack,
                "cpu{cpu} {what}: dump {dump} ticks >> guest {guest}"
            );
        }
        cpus += 1;
    }
    assert_eq!(cpus, r.per_cpu_time.len(), "CPU count");
    if let Some(line) = text.lines().find(|l| l.starts_with("softirq ")) {
        let g: Vec<u64> = line
            .split_whitespace()
            .skip(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        for (i, gv) in g.iter().enumerate().take(10) {
            let dv: u64 = r.per_cpu_time.iter().map(|p| p.softirqs[i]).sum();
            assert!(dv >= *gv, "softirq {i}: dump {dv} < guest {gv}");
        }
    }
}

/// `/sys/kernel/sched_ext`: the scheduler is attached, and the events the guest saw are at
/// most what the dump's freeze sample shows.
pub fn assert_sysfs_agrees(log: &ConsoleLog, r: &FailureDumpReport, ops: &str) {
    let text = log
        .output(LAST_VIEW_LABEL)
        .expect("guest printed no sysfs view");
    let kv: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim_start_matches("/sys/kernel/sched_ext/"), v.trim()))
        .collect();
    assert_eq!(kv.get("state"), Some(&"enabled"), "sysfs: {kv:?}");
    assert_eq!(kv.get("root/ops"), Some(&ops), "sysfs: {kv:?}");
    assert!(r.scx_sched_state.is_some(), "no scx_sched_state");
    let Some(ev) = kv.get("root/events") else {
        // A kernel without event counters (6.12) shows no root/events and the dump has
        // no samples.
        assert!(
            r.event_counter_timeline.is_empty(),
            "event samples without root/events: {kv:?}"
        );
        return;
    };
    let last = r
        .event_counter_timeline
        .last()
        .expect("a freeze-time event sample");
    // First line: `SCX_EV_SELECT_CPU_FALLBACK <n>`.
    if let Some(n) = ev
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<i64>().ok())
    {
        assert!(
            last.select_cpu_fallback >= n,
            "select_cpu_fallback {} < {n}",
            last.select_cpu_fallback
        );
    }
}

#[cfg(test)]
mod tests {
    use super::ProcStat;

    #[test]
    fn proc_stat_lines() {
        let s = ProcStat::parse("42 (a (b) c) S 1 42 40 0 -1").unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 42,
                comm: "a (b) c".into(),
                ppid: 1,
                pgrp: 42,
                session: 40
            }
        );
        for bad in ["", "42", "x (y) S 1 2 3", "42 )y( S 1 2 3", "42 (y) S 1 2"] {
            assert_eq!(ProcStat::parse(bad), None, "{bad:?}");
        }
    }
}
