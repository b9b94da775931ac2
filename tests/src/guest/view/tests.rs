//! The comparisons on small hand-made views and reports: each passes when the two agree
//! and fails on the disagreement it exists to catch.

use std::panic::{AssertUnwindSafe, catch_unwind};

use dump_schema::{
    EventCounterSample, FailureDumpMap, FailureDumpReport, ProgRuntimeStats, RenderedMember,
    RenderedValue,
};
use guest_lab::ConsoleLog;

use std::time::Duration;

use super::*;

/// A console with `label`'s output lines, as the guest prints them.
fn log_of(outputs: &[(&str, &[&str])]) -> ConsoleLog {
    let mut text = String::new();
    for (label, lines) in outputs {
        for l in *lines {
            text.push_str(&format!("KTSTR-OUT {label}: {l}\n"));
        }
        text.push_str(&format!("KTSTR-END {label} rc=0\n"));
    }
    ConsoleLog::parse(&text)
}

fn map(name: &str, map_type: u32, value_size: u32, max_entries: u32) -> FailureDumpMap {
    serde_json::from_value(serde_json::json!({
        "name": name, "map_type": map_type, "value_size": value_size, "max_entries": max_entries
    }))
    .unwrap()
}

fn fails(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

#[test]
fn maps_agree_by_name_type_and_sizes() {
    let log = log_of(&[(
        "bpftool-map-show",
        &[r#"[{"name":"ktstr_dsq","type":"hash","bytes_value":8,"max_entries":64},{"id":3}]"#],
    )]);
    let mut r = FailureDumpReport::default();
    r.maps.push(map("ktstr_dsq", 1, 8, 64));
    assert_eq!(assert_maps_agree(&log, &r), 1);
    r.maps[0].max_entries = 65;
    assert!(fails(|| {
        assert_maps_agree(&log, &r);
    }));
    // Same name, another type: not the guest's map.
    r.maps[0] = map("ktstr_dsq", 2, 8, 64);
    assert!(fails(|| {
        assert_maps_agree(&log, &r);
    }));
    assert!(fails(|| {
        assert_maps_agree(&ConsoleLog::default(), &r);
    }));
}

#[test]
fn progs_agree_when_the_dump_saw_at_least_as_much() {
    let log = log_of(&[(
        "bpftool-prog-show",
        &[
            r#"[{"type":"struct_ops","name":"ktstr_enqueue_long","run_cnt":10,"run_time_ns":500},{"type":"tracing","name":"x"}]"#,
        ],
    )]);
    let mut r = FailureDumpReport::default();
    r.prog_runtime_stats.push(ProgRuntimeStats {
        // aux->name keeps 15 bytes of the BTF name.
        name: "ktstr_enqueue_l".into(),
        cnt: 12,
        nsecs: 500,
        misses: 0,
        prog_type: String::new(),
    });
    assert_eq!(assert_progs_agree(&log, &r), 1);
    r.prog_runtime_stats[0].cnt = 9;
    assert!(fails(|| {
        assert_progs_agree(&log, &r);
    }));
}

#[test]
fn bss_members_follow_their_rule() {
    let line = r#"{"id":5,"name":"ktstr_s.bss","dump":[{"key":[0],"formatted":{"value":{".bss":[{"nr_enqueued":10},{"victim_pid":0},{"mode":3},{"label":"x"}]}}}]}"#;
    let log = log_of(&[("bpftool-bss-dump", &[line])]);
    let uint = |value| RenderedValue::Uint { bits: 64, value };
    let report = |nr, victim, mode| {
        let mut m = map("ktstr_s.bss", 2, 24, 1);
        m.value = Some(RenderedValue::Struct {
            type_name: Some(".bss".into()),
            members: vec![
                RenderedMember::new("nr_enqueued", uint(nr)),
                RenderedMember::new("victim_pid", uint(victim)),
                RenderedMember::new("mode", uint(mode)),
            ],
        });
        let mut r = FailureDumpReport::default();
        r.maps.push(m);
        r
    };
    // The string member is not a number: not compared.
    assert_eq!(
        assert_bss_agrees(&log, &report(11, 42, 3), &test_sched_bss),
        3
    );
    // A counter that went back, a constant that changed.
    assert!(fails(|| {
        assert_bss_agrees(&log, &report(9, 42, 3), &test_sched_bss);
    }));
    assert!(fails(|| {
        assert_bss_agrees(&log, &report(11, 42, 4), &test_sched_bss);
    }));
    // `Any` only wants numbers where the guest printed numbers.
    assert_eq!(
        assert_bss_agrees(&log, &report(0, 0, 9), &|_| BssRule::Any),
        3
    );
}

#[test]
fn sysfs_and_timeline() {
    let log = log_of(&[(
        LAST_VIEW_LABEL,
        &[
            "/sys/kernel/sched_ext/state=enabled",
            "/sys/kernel/sched_ext/root/ops=ktstr_ok",
            "/sys/kernel/sched_ext/root/events=SCX_EV_SELECT_CPU_FALLBACK 7",
        ],
    )]);
    let mut r = FailureDumpReport::default();
    assert!(
        fails(|| assert_sysfs_agrees(&log, &r, "ktstr_ok")),
        "no scx_sched_state"
    );
    r.scx_sched_state = Some(Default::default());
    let sample = |elapsed_ms, select_cpu_fallback| EventCounterSample {
        elapsed_ms,
        select_cpu_fallback,
        ..Default::default()
    };
    r.event_counter_timeline = vec![sample(100, 3), sample(200, 7)];
    assert_sysfs_agrees(&log, &r, "ktstr_ok");
    assert_timeline_monotone(&r);
    assert!(fails(|| assert_sysfs_agrees(&log, &r, "other_ops")));
    r.event_counter_timeline = vec![sample(100, 8), sample(200, 6)];
    assert!(fails(|| assert_sysfs_agrees(&log, &r, "ktstr_ok")));
    assert!(
        fails(|| assert_timeline_monotone(&r)),
        "a counter went back"
    );
    r.event_counter_timeline.truncate(1);
    assert!(fails(|| assert_timeline_monotone(&r)), "one sample only");
}

#[test]
fn attached_ops_and_pids_in_brackets() {
    let log = ConsoleLog::parse("KTSTR-PHASE: scheduler-attached ops=ktstr_stall\n");
    assert_eq!(attached_ops(&log), "ktstr_stall");
    assert!(fails(|| {
        attached_ops(&ConsoleLog::parse("KTSTR-PHASE: scheduler-failed\n"));
    }));
    assert_eq!(bracket_pid("ktstr-victim[311]"), Some(311));
    assert_eq!(bracket_pid("a]b[12"), None);
    assert_eq!(bracket_pid("comm[x]"), None);
}

#[test]
fn tasks_agree_on_comm_parent_group_and_session() {
    use dump_schema::TaskEnrichment;
    // 20 user processes, a kernel worker (its /proc comm carries the workqueue), one
    // process that exited before the freeze.
    let mut lines: Vec<String> = (100..120)
        .map(|pid| format!("{pid} (worker {pid}) S 1 {pid} 1 0 -1"))
        .collect();
    lines.push("7 (kworker/0:1-events) I 2 0 0 0 -1".into());
    lines.push("300 (sh) R 1 300 1 0 -1".into());
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let log = log_of(&[("proc-pid-stat", &line_refs)]);
    let task = |pid: i32, comm: &str, ppid, pgid, sid| TaskEnrichment {
        pid,
        comm: comm.into(),
        real_parent_pid: ppid,
        pgid,
        sid,
        ..Default::default()
    };
    let mut r = FailureDumpReport {
        task_enrichments: (100..120)
            .map(|pid| task(pid, &format!("worker {pid}"), 1, pid, 1))
            .collect(),
        ..Default::default()
    };
    r.task_enrichments.push(task(7, "kworker/0:1", 2, 0, 0));
    assert_eq!(assert_tasks_agree(&log, &r, &[]), 21);
    // The exited `sh` may be missing unless the test needs it.
    assert!(fails(|| {
        assert_tasks_agree(&log, &r, &["sh"]);
    }));
    r.task_enrichments[3].sid = 5;
    assert!(fails(|| {
        assert_tasks_agree(&log, &r, &[]);
    }));
    // A kernel thread may not be missing.
    r.task_enrichments[3].sid = 1;
    r.task_enrichments.pop();
    assert!(fails(|| {
        assert_tasks_agree(&log, &r, &[]);
    }));
}

#[test]
fn cputime_between_the_guest_view_and_what_can_have_passed() {
    use dump_schema::PerCpuTimeStats;
    let log = log_of(&[(
        "proc-stat",
        &[
            "cpu  300 0 200 1000 0 0 10 0 0 0",
            "cpu0 300 0 200 1000 0 0 10 0 0 0",
            "softirq 50 1 2 3 4 5 6 7 8 9 10",
        ],
    )]);
    let cpu = |user_ticks: u64| PerCpuTimeStats {
        cpu: 0,
        cpustat_user_ns: user_ticks * 10_000_000,
        cpustat_system_ns: 200 * 10_000_000,
        cpustat_softirq_ns: 10 * 10_000_000,
        softirqs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ..Default::default()
    };
    let mut r = FailureDumpReport {
        per_cpu_time: vec![cpu(310)],
        ..Default::default()
    };
    assert_cputime_agrees(&log, &r, Duration::from_secs(1));
    // Less than the guest saw earlier, or far more than can have passed.
    r.per_cpu_time = vec![cpu(299)];
    assert!(fails(|| assert_cputime_agrees(
        &log,
        &r,
        Duration::from_secs(1)
    )));
    r.per_cpu_time = vec![cpu(300 + 100 * 60)];
    assert!(fails(|| assert_cputime_agrees(
        &log,
        &r,
        Duration::from_secs(1)
    )));
    // A softirq count that went back.
    let mut c = cpu(310);
    c.softirqs[0] = 0;
    r.per_cpu_time = vec![c];
    assert!(fails(|| assert_cputime_agrees(
        &log,
        &r,
        Duration::from_secs(1)
    )));
}

#[test]
fn progs_of_the_scheduler_pair_in_order_with_their_type() {
    // Two syscall programs whose names share their first 15 bytes, a struct_ops program
    // they share map 16 with, and bpftool's own iterator (its own map only).
    let log = log_of(&[(
        "bpftool-prog-show",
        &[
            r#"[{"id":15,"type":"syscall","name":"scx_userspace_arena_alloc_pages","run_cnt":1,"map_ids":[4,16]},"#,
            r#"{"id":16,"type":"syscall","name":"scx_userspace_arena_free_pages","run_cnt":5,"map_ids":[4,16]},"#,
            r#"{"id":19,"type":"struct_ops","name":"p2dq_stopping","run_cnt":3,"map_ids":[16,17]},"#,
            r#"{"id":40,"type":"tracing","name":"iter","run_cnt":99,"map_ids":[41]}]"#,
        ],
    )]);
    let stats = |name: &str, cnt, ty: &str| ProgRuntimeStats {
        name: name.into(),
        cnt,
        nsecs: 0,
        misses: 0,
        prog_type: ty.into(),
    };
    let mut r = FailureDumpReport::default();
    r.prog_runtime_stats.push(stats("p2dq_stopping", 4, ""));
    r.aux_prog_runtime_stats = vec![
        stats("scx_userspace_a", 1, "syscall"),
        stats("scx_userspace_a", 5, "syscall"),
    ];
    assert_eq!(assert_progs_agree(&log, &r), 3);
    // Paired in order: the second one's count is checked against the second guest prog.
    r.aux_prog_runtime_stats[1].cnt = 4;
    assert!(fails(|| {
        assert_progs_agree(&log, &r);
    }));
    // Another type is not the same program.
    r.aux_prog_runtime_stats[1] = stats("scx_userspace_a", 5, "tracing");
    assert!(fails(|| {
        assert_progs_agree(&log, &r);
    }));
    // A scheduler's program missing from the dump.
    r.aux_prog_runtime_stats.truncate(1);
    assert!(fails(|| {
        assert_progs_agree(&log, &r);
    }));
}

#[test]
fn maps_in_memory_have_the_guests_id_and_key_size() {
    use std::collections::BTreeMap;
    let log = log_of(&[(
        "bpftool-map-show",
        &[
            r#"[{"id":12,"name":"task_llc_pelt","type":"hash","bytes_key":4},"#,
            r#"{"id":13,"name":"task_llc_pelt","type":"hash","bytes_key":8},"#,
            r#"{"id":14,"name":"task_masks","type":"task_storage","bytes_key":4}]"#,
        ],
    )]);
    let mut a = map("task_llc_pelt", 1, 16, 64);
    a.map_kva = 0x1000;
    a.entries.push(dump_schema::FailureDumpEntry {
        key_hex: "01 00 00 00".into(),
        ..Default::default()
    });
    let mut b = map("task_llc_pelt", 1, 16, 64);
    b.map_kva = 0x2000;
    // A task-storage map: the dump keys entries by their owner's address (8 bytes).
    let mut storage = map("task_masks", dump_schema::map_type::TASK_STORAGE, 8, 0);
    storage.map_kva = 0x3000;
    storage.entries.push(dump_schema::FailureDumpEntry {
        key_hex: "00 01 02 03 04 05 06 07".into(),
        ..Default::default()
    });
    let mut r = FailureDumpReport {
        maps: vec![a, b, storage],
        ..Default::default()
    };
    let mut mem = BTreeMap::from([
        (
            0x1000,
            MapInMemory {
                id: 12,
                key_size: 4,
            },
        ),
        (
            0x2000,
            MapInMemory {
                id: 13,
                key_size: 8,
            },
        ),
        (
            0x3000,
            MapInMemory {
                id: 14,
                key_size: 4,
            },
        ),
    ]);
    assert_eq!(assert_maps_in_memory(&log, &r, &mem), 3);
    // A key of another size in the dump.
    r.maps[0].entries[0].key_hex = "01 00".into();
    assert!(fails(|| {
        assert_maps_in_memory(&log, &r, &mem);
    }));
    r.maps[0].entries[0].key_hex = "01 00 00 00".into();
    // The dump's address holds another map.
    mem.insert(
        0x2000,
        MapInMemory {
            id: 15,
            key_size: 8,
        },
    );
    assert!(fails(|| {
        assert_maps_in_memory(&log, &r, &mem);
    }));
}

#[test]
fn globals_compare_by_name_and_occurrence() {
    let log = log_of(&[(
        "bpftool-globals",
        &[
            "bpf_bpf.rodata nr_llcs 1",
            "bpf_bpf.rodata __SCX_SLICE_INF 18446744073709551615",
            "bpf_bpf.rodata smt false",
            "bpf_bpf.rodata base 0x10",
            "bpf_bpf.rodata nr_llcs -3",
        ],
    )]);
    let g = globals(&log);
    assert_eq!(g.len(), 5);
    assert_eq!(
        (g[4].var.as_str(), g[4].nth, g[4].value),
        ("nr_llcs", 1, -3)
    );
    assert_eq!(g[2].value, 0);
    assert_eq!(g[3].value, 16);
    let report = |second: i64| {
        let mut m = map("bpf_bpf.rodata", 2, 64, 1);
        m.value = Some(RenderedValue::Struct {
            type_name: Some(".rodata".into()),
            members: vec![
                RenderedMember::new("nr_llcs", RenderedValue::Uint { bits: 32, value: 1 }),
                RenderedMember::new(
                    "__SCX_SLICE_INF",
                    RenderedValue::Uint {
                        bits: 64,
                        value: u64::MAX,
                    },
                ),
                RenderedMember::new("smt", RenderedValue::Bool { value: false }),
                RenderedMember::new(
                    "base",
                    RenderedValue::Uint {
                        bits: 64,
                        value: 16,
                    },
                ),
                RenderedMember::new(
                    "nr_llcs",
                    RenderedValue::Int {
                        bits: 32,
                        value: second,
                    },
                ),
            ],
        });
        FailureDumpReport {
            maps: vec![m],
            ..Default::default()
        }
    };
    assert_eq!(
        assert_globals_agree(&log, &report(-3), &|_, _| BssRule::Equal),
        5
    );
    // The second `nr_llcs` differs (the first is equal: occurrences are not mixed up).
    assert!(fails(|| {
        assert_globals_agree(&log, &report(1), &|_, _| BssRule::Equal);
    }));
    assert_eq!(
        assert_globals_agree(&log, &report(1), &|_, _| BssRule::Any),
        5
    );
    assert!(fails(|| {
        assert_globals_agree(&log, &FailureDumpReport::default(), &|_, _| BssRule::Any);
    }));
}

#[test]
fn task_classes_follow_the_guests_ext_flag() {
    use dump_schema::TaskEnrichment;
    let lines: Vec<String> = (100..121)
        .map(|pid| format!("{pid} {}", u8::from(pid != 100)))
        .chain(["999 1".to_string()])
        .collect();
    let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let log = log_of(&[("proc-pid-ext", &line_refs)]);
    let task = |pid: i32, class: &str| TaskEnrichment {
        pid,
        comm: "t".into(),
        sched_class: class.into(),
        ..Default::default()
    };
    let mut r = FailureDumpReport {
        task_enrichments: (100..121)
            .map(|pid| task(pid, if pid == 100 { "rt" } else { "ext" }))
            .collect(),
        ..Default::default()
    };
    // pid 999 exited before the freeze: skipped.
    assert_eq!(assert_task_classes_agree(&log, &r), (21, 20));
    r.task_enrichments[0].sched_class = "ext".into();
    assert!(fails(|| {
        assert_task_classes_agree(&log, &r);
    }));
}
