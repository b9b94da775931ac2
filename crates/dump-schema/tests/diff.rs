//! `ReportDiff` on synthetic reports: what changed between two snapshots of a stall (tasks
//! that wait longer, moved, appeared and went; DSQs by task name; CPUs; programs; map values
//! by name, key, owner and element; event counters), identical reports, reports of other
//! kinds, hostile strings; the text's caps and the JSON against `schema/diff.json`.

mod common;

use common::{chars, int, m, map, uint};
use dump_schema::diff::{Change, MapDiff, TaskDiff};
use dump_schema::*;

const VICTIM: u64 = 0xffff_8880_0149_0000;
const SH148: u64 = 0xffff_8880_0148_0000;
const SH150: u64 = 0xffff_8880_0150_0000;
const SH151: u64 = 0xffff_8880_0151_0000;
const KDAMOND: u64 = 0xffff_8880_0051_0000;
const KWORKER: u64 = 0xffff_8880_0038_0000;

fn task(pid: i32, comm: &str, kva: u64, utime: u64, age: Option<u64>) -> TaskEnrichment {
    TaskEnrichment {
        pid,
        tgid: pid,
        comm: comm.into(),
        weight: 100,
        prio: 120,
        sched_class: "ext".into(),
        utime,
        nvcsw: utime / 1000,
        task_kva: kva,
        runnable_age_jiffies: age,
        ..Default::default()
    }
}

fn rq(cpu: u32, curr: (i32, &str), runnable: Vec<u64>) -> RqScxState {
    RqScxState {
        cpu,
        nr_running: runnable.len() as u32 + 1,
        curr_pid: curr.0,
        curr_comm: curr.1.into(),
        runnable_task_kvas: runnable,
        ..Default::default()
    }
}

fn dsq(id: u64, tasks: Vec<u64>) -> DsqState {
    DsqState {
        id,
        origin: "user".into(),
        nr: tasks.len() as u32,
        task_kvas: tasks,
        ..Default::default()
    }
}

fn bss(enqueued: u64, slots: &[u64]) -> FailureDumpMap {
    let elements = slots.iter().map(|&v| uint(32, v)).collect();
    FailureDumpMap {
        value: Some(RenderedValue::named_struct(
            ".bss",
            vec![
                m("nr_enqueued", uint(64, enqueued)),
                m("victim_pid", int(32, 149)),
                m("label", chars("ktstr-sched", 16)),
                m(
                    "slots",
                    RenderedValue::Array {
                        len: slots.len(),
                        elements,
                    },
                ),
            ],
        )),
        ..map("stall.bss", map_type::ARRAY)
    }
}

/// A task storage entry keyed by the task's address (little-endian), as the kernel keys it.
fn storage(kva: u64, runs: u64) -> FailureDumpEntry {
    FailureDumpEntry {
        key_hex: hex(&kva.to_le_bytes()),
        value: Some(RenderedValue::named_struct(
            "task_ctx",
            vec![m("runs", uint(64, runs))],
        )),
        value_hex: hex(&runs.to_le_bytes()),
        ..Default::default()
    }
}

fn prog(name: &str, cnt: u64, nsecs: u64) -> ProgRuntimeStats {
    ProgRuntimeStats {
        name: name.into(),
        cnt,
        nsecs,
        ..Default::default()
    }
}

fn events(elapsed_ms: u64, keep_last: i64) -> EventCounterSample {
    EventCounterSample {
        elapsed_ms,
        dispatch_keep_last: keep_last,
        bypass_dispatch: 3,
        ..Default::default()
    }
}

/// The early snapshot of a stall: the victim has waited 252 jiffies on DSQ 0x101.
fn early() -> FailureDumpReport {
    FailureDumpReport {
        active_obj_name: Some("ktstr_ops".into()),
        scx_sched_state: Some(ScxSchedState {
            watchdog_timeout: 500,
            ..Default::default()
        }),
        task_enrichments: vec![
            task(148, "sh", SH148, 5_000_000, None),
            task(149, "ktstr-victim", VICTIM, 1_000_000, Some(252)),
            task(150, "sh", SH150, 2_000_000, None),
            task(151, "sh", SH151, 3_000_000, Some(3)),
            task(51, "kdamond.0", KDAMOND, 0, None),
        ],
        rq_scx_states: vec![
            rq(0, (148, "sh"), vec![SH151]),
            rq(1, (0, "swapper/1"), vec![VICTIM]),
        ],
        dsq_states: vec![dsq(0x100, vec![SH151]), dsq(0x101, vec![VICTIM])],
        maps: vec![
            bss(1862, &[0; 8]),
            FailureDumpMap {
                entries: vec![storage(VICTIM, 12), storage(SH150, 7)],
                ..map("ktstr_task_ctx", map_type::TASK_STORAGE)
            },
        ],
        prog_runtime_stats: vec![
            prog("ktstr_dispatch", 1925, 227_000_000),
            prog("ktstr_enqueue", 10, 10),
        ],
        event_counter_timeline: vec![events(10_848, 23)],
        ..Default::default()
    }
}

/// The late snapshot: the victim still waits (504 jiffies, it did not run), sh[151] moved
/// from DSQ 0x100 to running on CPU 1, sh[150] is gone, kworker/u8:2[38] appeared, and the
/// scheduler exited with SCX_EXIT_ERROR_STALL.
fn late() -> FailureDumpReport {
    let mut r = early();
    r.scx_sched_state = Some(ScxSchedState {
        exit_kind: 1026,
        aborting: true,
        watchdog_timeout: 500,
        ..Default::default()
    });
    r.task_enrichments = vec![
        task(148, "sh", SH148, 6_000_000, Some(40)),
        task(149, "ktstr-victim", VICTIM, 1_000_000, Some(504)),
        task(151, "sh", SH151, 3_500_000, None),
        task(51, "kdamond.0", KDAMOND, 0, Some(2)),
        task(38, "kworker/u8:2", KWORKER, 10, None),
    ];
    r.rq_scx_states = vec![
        rq(0, (38, "kworker/u8:2"), vec![KDAMOND, SH148]),
        rq(1, (151, "sh"), vec![VICTIM]),
    ];
    r.dsq_states = vec![dsq(0x100, vec![KDAMOND, SH148]), dsq(0x101, vec![VICTIM])];
    r.maps = vec![
        bss(2040, &[0, 1, 1, 1, 1, 0, 7, 0]),
        FailureDumpMap {
            entries: vec![storage(VICTIM, 12), storage(KWORKER, 1)],
            ..map("ktstr_task_ctx", map_type::TASK_STORAGE)
        },
    ];
    r.prog_runtime_stats = vec![
        prog("ktstr_dispatch", 2101, 247_000_000),
        prog("ktstr_enqueue", 10, 10),
    ];
    r.aux_prog_runtime_stats = vec![ProgRuntimeStats {
        prog_type: "syscall".into(),
        ..prog("ktstr_probe", 4, 400)
    }];
    r.event_counter_timeline = vec![events(10_848, 23), events(12_185, 56)];
    r
}

fn stall_diff() -> ReportDiff {
    let d = DualFailureDumpReport {
        early: Some(early()),
        early_max_age_jiffies: 252,
        early_threshold_jiffies: 250,
        ..DualFailureDumpReport::new(late())
    };
    ReportDiff::early_late(&d).expect("an early snapshot")
}

fn task_of(d: &ReportDiff, pid: i32) -> &TaskDiff {
    d.tasks
        .iter()
        .find(|t| t.pid == pid)
        .unwrap_or_else(|| panic!("no change of pid {pid}: {:#?}", d.tasks))
}

fn map_of<'d>(d: &'d ReportDiff, name: &str) -> &'d MapDiff {
    d.maps.iter().find(|x| x.name == name).expect("map changed")
}

/// The JSON validates against `schema/diff.json` and reads back to the same diff.
fn json_round_trip(d: &ReportDiff) {
    let json = d.to_json().unwrap();
    dump_schema::validate::validate_json_against("diff", &json).unwrap();
    assert_eq!(&ReportDiff::from_json(&json).unwrap(), d);
    let pretty = d.to_json_pretty().unwrap();
    assert_eq!(&ReportDiff::from_json(&pretty).unwrap(), d);
}

#[test]
fn the_victims_wait_grows_and_it_did_not_run() {
    let d = stall_diff();
    assert_eq!((d.a.label.as_str(), d.b.label.as_str()), ("early", "late"));
    let v = task_of(&d, 149);
    assert_eq!(v.comm, "ktstr-victim");
    assert_eq!(v.change, Change::Changed);
    let w = v.wait_jiffies.as_ref().expect("the wait");
    assert_eq!(
        (w.a.as_deref(), w.b.as_deref(), w.delta),
        (Some("252"), Some("504"), Some(252))
    );
    assert_eq!(v.ran, Some(false));
    assert!(!v.moved);
    let p = v.place_b.as_ref().unwrap();
    assert_eq!((p.dsq, p.cpu, p.running), (Some(0x101), Some(1), false));
    json_round_trip(&d);
    // The text names it first among the tasks.
    let text = d.to_string();
    let line = text
        .lines()
        .find(|l| l.contains("ktstr-victim"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        line,
        "  ktstr-victim[149]: waits 252j → 504j (+252j), dsq 0x101 (user) on cpu 1; did not run"
    );
    let tasks_at = text.lines().position(|l| l.starts_with("tasks:")).unwrap();
    assert_eq!(text.lines().nth(tasks_at + 1), Some(line), "{text}");
}

#[test]
fn moved_appeared_and_gone_tasks() {
    let d = stall_diff();
    let sh = task_of(&d, 151);
    assert!(sh.moved, "{sh:#?}");
    assert_eq!(sh.ran, Some(true));
    let (a, b) = (sh.place_a.as_ref().unwrap(), sh.place_b.as_ref().unwrap());
    assert_eq!((a.dsq, a.cpu, a.running), (Some(0x100), Some(0), false));
    assert_eq!((b.dsq, b.cpu, b.running), (None, Some(1), true));
    assert_eq!(task_of(&d, 150).change, Change::Gone);
    let kw = task_of(&d, 38);
    assert_eq!(
        (kw.change, kw.comm.as_str()),
        (Change::Appeared, "kworker/u8:2")
    );
    assert!(kw.place_b.as_ref().unwrap().running);
    // Tasks that did not change are not listed.
    assert!(d.tasks.iter().all(|t| t.pid != 0));
    let text = d.to_string();
    for want in [
        "  sh[151]: waited 3j (no longer runnable), dsq 0x100 (user) on cpu 0 → running on cpu 1\n",
        "  appeared (1): kworker/u8:2[38]\n",
        "  gone (1): sh[150]\n",
    ] {
        assert!(
            text.lines().any(|l| l == want.trim_end()),
            "{want:?} in\n{text}"
        );
    }
}

#[test]
fn dsqs_by_task_name_and_cpus_by_current_task() {
    let d = stall_diff();
    assert_eq!(d.dsqs.len(), 1, "0x101 holds the same task: {:#?}", d.dsqs);
    let q = &d.dsqs[0];
    assert_eq!((q.id, q.change), (0x100, Change::Changed));
    let names = |v: &[dump_schema::diff::TaskRef]| -> Vec<String> {
        v.iter()
            .map(|t| format!("{}[{}]", t.comm.as_deref().unwrap(), t.pid.unwrap()))
            .collect()
    };
    assert_eq!(names(&q.appeared), ["kdamond.0[51]", "sh[148]"]);
    assert_eq!(names(&q.left), ["sh[151]"]);
    assert_eq!(q.fields[0].delta, Some(1));
    let cpu0 = d.cpus.iter().find(|c| c.cpu == 0).unwrap();
    assert!(cpu0.curr_changed);
    assert_eq!(
        cpu0.curr_b.as_ref().unwrap().comm.as_deref(),
        Some("kworker/u8:2")
    );
    let text = d.to_string();
    for want in [
        "  dsq 0x100 (user): nr 1 → 2 (+1); queued kdamond.0[51], sh[148]; left sh[151]\n",
        "  cpu 0: curr sh[148] → kworker/u8:2[38], nr_running 2 → 3 (+1), runnable 1 → 2 (+1)\n",
        "  cpu 1: curr swapper/1[0] → sh[151]\n",
    ] {
        assert!(
            text.lines().any(|l| l == want.trim_end()),
            "{want:?} in\n{text}"
        );
    }
}

#[test]
fn map_values_by_member_key_owner_and_folded_elements() {
    let d = stall_diff();
    let bss = map_of(&d, "stall.bss");
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<i128>);
    let paths: Vec<Row> = bss
        .values
        .iter()
        .map(|v| (v.path.as_str(), v.a.as_deref(), v.b.as_deref(), v.delta))
        .collect();
    assert_eq!(
        paths,
        [
            ("nr_enqueued", Some("1862"), Some("2040"), Some(178)),
            // Four elements that changed alike: one change.
            ("slots[1..4]", Some("0"), Some("1"), Some(1)),
            ("slots[6]", Some("0"), Some("7"), Some(7)),
        ]
    );
    // Task storage: entries by owner; the victim's did not change.
    let ts = map_of(&d, "ktstr_task_ctx");
    let keys: Vec<(Option<&str>, bool, bool)> = ts
        .values
        .iter()
        .map(|v| (v.key.as_deref(), v.a.is_some(), v.b.is_some()))
        .collect();
    assert_eq!(
        keys,
        [
            (Some("kworker/u8:2[38]"), false, true),
            (Some("sh[150]"), true, false)
        ]
    );
    let text = d.to_string();
    assert!(
        text.contains(
            "  stall.bss (array), 3 changes: nr_enqueued 1862 → 2040 (+178); slots[1..4] 0 → 1 (+1); slots[6] 0 → 7 (+7)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("key kworker/u8:2[38]: appeared task_ctx{runs=1}"),
        "{text}"
    );
}

#[test]
fn task_storage_of_two_runs_matches_by_owner() {
    // Another run: the same tasks at other addresses.
    let moved = |r: &mut FailureDumpReport| {
        for t in &mut r.task_enrichments {
            t.task_kva += 0x1000;
        }
        let kvas = r
            .rq_scx_states
            .iter_mut()
            .flat_map(|q| q.runnable_task_kvas.iter_mut());
        let kvas = kvas.chain(r.dsq_states.iter_mut().flat_map(|d| d.task_kvas.iter_mut()));
        kvas.for_each(|k| *k += 0x1000);
        r.maps[1].entries = vec![storage(VICTIM + 0x1000, 13)];
    };
    let (a, mut b) = (early(), early());
    moved(&mut b);
    let mut a2 = a.clone();
    a2.maps[1].entries.truncate(1);
    let d = ReportDiff::of_snapshots(&a2, "a", &b, "b");
    let ts = map_of(&d, "ktstr_task_ctx");
    assert_eq!(ts.values.len(), 1, "{:#?}", ts.values);
    let v = &ts.values[0];
    assert_eq!(
        (v.key.as_deref(), v.path.as_str(), v.delta),
        (Some("ktstr-victim[149]"), "runs", Some(1))
    );
    // Addresses differ, pids and names do not: no task changed.
    assert!(d.tasks.is_empty(), "{:#?}", d.tasks);
}

#[test]
fn program_counters_and_events() {
    let d = stall_diff();
    let names: Vec<(&str, Change)> = d
        .programs
        .iter()
        .map(|p| (p.name.as_str(), p.change))
        .collect();
    assert_eq!(
        names,
        [
            ("ktstr_dispatch", Change::Changed),
            ("ktstr_probe", Change::Appeared)
        ]
    );
    let cnt = &d.programs[0].counters[0];
    assert_eq!((cnt.name.as_str(), cnt.delta), ("cnt", Some(176)));
    assert_eq!(d.events.len(), 1);
    assert_eq!(
        (d.events[0].name.as_str(), d.events[0].delta),
        ("dispatch_keep_last", Some(33))
    );
    let report: Vec<&str> = d.report.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(report, ["exit_kind", "aborting", "elapsed_ms"]);
    let text = d.to_string();
    for want in [
        "  ktstr_probe (syscall) appeared, cnt=4, nsecs=400, misses=0\n",
        "  ktstr_dispatch: cnt 1925 → 2101 (+176), nsecs 227000000 → 247000000 (+20000000); 113636 ns/run in between\n",
        "event counters: dispatch_keep_last 23 → 56 (+33)\n",
        "  exit_kind 0 → 1026 (+1026)\n",
    ] {
        assert!(
            text.lines().any(|l| l == want.trim_end()),
            "{want:?} in\n{text}"
        );
    }
}

#[test]
fn identical_reports_have_no_differences() {
    for (name, r) in common::every_report() {
        let d = ReportDiff::between(&r, "x.json", &r, "y.json");
        assert!(d.is_empty(), "{name}: {d:#?}");
        let text = d.to_string();
        assert!(text.ends_with("\nno differences"), "{name}: {text}");
        json_round_trip(&d);
    }
    let d = ReportDiff::of_snapshots(&late(), "a", &late(), "b");
    assert_eq!(d.to_string(), "diff a → b\nno differences");
}

#[test]
fn reports_of_other_kinds() {
    let single = FailureDumpReportAny::Single(early());
    let dual = FailureDumpReportAny::Dual(DualFailureDumpReport::new(late()));
    // A dual report is compared by its late snapshot: early vs late again.
    let d = ReportDiff::between(&single, "s.json", &dual, "d.json");
    assert_eq!(
        d.notes,
        [
            "different kinds of report: a is single, b is dual",
            "b is a dual report: its late snapshot compared"
        ]
    );
    assert_eq!(d.b.snapshot.as_deref(), Some("late"));
    assert_eq!(
        task_of(&d, 149).wait_jiffies.as_ref().unwrap().delta,
        Some(252)
    );
    assert!(
        d.to_string()
            .starts_with("diff s.json → d.json (single → dual)\n  note: different kinds")
    );
    json_round_trip(&d);

    // A degraded report holds no snapshot: the exit kind and the vCPUs only.
    let degraded = FailureDumpReportAny::Degraded(DegradedFailureDumpReport {
        reason: "vCPU rendezvous timed out".into(),
        exit_kind: Some(1026),
        vcpu_regs: vec![None],
        ..Default::default()
    });
    let d = ReportDiff::between(&single, "s.json", &degraded, "g.json");
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = d
        .report
        .iter()
        .map(|f| (f.name.as_str(), f.a.as_deref(), f.b.as_deref()))
        .collect();
    assert_eq!(
        fields,
        [
            ("exit_kind", Some("0"), Some("1026")),
            ("vcpu 0", None, Some("not parked"))
        ]
    );
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("b is a degraded report")),
        "{:?}",
        d.notes
    );
    assert!(d.tasks.is_empty() && d.maps.is_empty());
    json_round_trip(&d);

    let mut other = match &degraded {
        FailureDumpReportAny::Degraded(g) => g.clone(),
        _ => unreachable!(),
    };
    other.watchpoint_hit = true;
    let d = ReportDiff::between(
        &degraded,
        "g.json",
        &FailureDumpReportAny::Degraded(other),
        "h.json",
    );
    assert_eq!(d.report.len(), 1);
    assert_eq!(d.report[0].name, "watchpoint_hit");

    // One report alone must be dual with an early snapshot.
    assert!(ReportDiff::early_late(&DualFailureDumpReport::new(late())).is_none());
}

#[test]
fn a_reused_pid_is_a_gone_and_an_appeared_task() {
    let a = early();
    let mut b = early();
    b.task_enrichments[2] = task(150, "cc1", 0xffff_8880_0999_0000, 0, None);
    let d = ReportDiff::of_snapshots(&a, "a", &b, "b");
    let changes: Vec<(i32, &str, Change)> = d
        .tasks
        .iter()
        .map(|t| (t.pid, t.comm.as_str(), t.change))
        .collect();
    assert_eq!(
        changes,
        [(150, "sh", Change::Gone), (150, "cc1", Change::Appeared)]
    );
}

#[test]
fn hostile_strings_are_escaped() {
    let evil = "ev\x1b[31mil\n\u{202e}";
    let mut a = early();
    let mut b = early();
    b.task_enrichments
        .push(task(999, evil, 0xffff_8880_0999_0000, 0, None));
    b.dsq_states[1].origin = "user\r".into();
    for r in [&mut a, &mut b] {
        r.maps.push(FailureDumpMap {
            value: Some(RenderedValue::named_struct(
                ".data",
                vec![m("x\x07y", uint(32, 1))],
            )),
            ..map("m\x1b", map_type::ARRAY)
        });
    }
    if let Some(RenderedValue::Struct { members, .. }) = &mut b.maps[2].value {
        members[0] = m("x\x07y", chars(evil, 16));
    }
    b.exit_info = Some(ExitInfo {
        kind: 1026,
        kind_name: "SCX_EXIT_ERROR_STALL".into(),
        msg: Some(evil.into()),
        ..Default::default()
    });
    let d = ReportDiff::of_snapshots(&a, "a\x1b", &b, "b");
    for full in [false, true] {
        let text = d
            .display_with(&DisplayOptions {
                full,
                ..Default::default()
            })
            .to_string();
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains(r"ev\x1b[31mil\n\u{202e}"), "{text}");
        assert!(text.contains(r"m\x1b (array)"), "{text}");
        assert!(text.contains(r"x\x07y"), "{text}");
    }
    // The JSON holds the comm as the report does (serde escapes it).
    json_round_trip(&d);
    assert!(d.to_json().unwrap().contains(r#""comm":"ev\u001b[31mil\n"#));
}

#[test]
fn a_large_diff_fits_a_screen_and_full_lists_everything() {
    let mut a = common::big_report(2 << 20);
    for (i, t) in (0..3000).enumerate() {
        a.task_enrichments.push(task(
            1000 + t,
            "w",
            0xffff_0000_0000 + i as u64 * 0x1000,
            1,
            Some(1),
        ));
    }
    a.dsq_states = (0..100)
        .map(|i| dsq(i, vec![0xffff_0000_0000 + i * 0x1000]))
        .collect();
    a.rq_scx_states = (0..64)
        .map(|c| rq(c, (1000 + c as i32, "w"), vec![]))
        .collect();
    let mut b = a.clone();
    for t in &mut b.task_enrichments {
        t.utime += 1;
        if let Some(w) = &mut t.runnable_age_jiffies {
            *w += 5;
        }
    }
    b.task_enrichments.truncate(2000);
    b.dsq_states = (0..100)
        .map(|i| dsq(i, vec![0xffff_0000_0000 + (i + 1) * 0x1000]))
        .collect();
    b.rq_scx_states = (0..64)
        .map(|c| rq(c, (1001 + c as i32, "w"), vec![]))
        .collect();
    let bump = |v: &mut RenderedValue| {
        if let RenderedValue::Struct { members, .. } = v {
            for x in members {
                if let RenderedValue::Uint { value, .. } = &mut x.value {
                    *value = value.wrapping_add(1);
                }
            }
        }
    };
    for m in &mut b.maps {
        m.value.iter_mut().for_each(bump);
        m.entries
            .iter_mut()
            .flat_map(|e| e.value.as_mut())
            .for_each(bump);
    }
    let d = ReportDiff::of_snapshots(&a, "a", &b, "b");
    let text = d.to_string();
    let lines = text.lines().count();
    assert!(lines <= 60, "{lines} lines:\n{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 200), "{text}");
    assert!(text.contains("more"), "{text}");
    let full = d
        .display_with(&DisplayOptions {
            full: true,
            ..Default::default()
        })
        .to_string();
    assert!(
        full.lines().count() > d.tasks.len(),
        "every task has a line"
    );
    assert!(!full.contains("--full"), "nothing left out");
    json_round_trip(&d);
}
