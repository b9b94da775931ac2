//! Reports used by the tests and the benchmark: each case the snapshots cover, built in code.
#![allow(dead_code)]

use dump_schema::*;

mod scheduler;
// Not every test binary that includes `common` renders it.
#[allow(unused_imports)]
pub use scheduler::scheduler_report;

pub fn int(bits: u32, value: i64) -> RenderedValue {
    RenderedValue::Int { bits, value }
}

pub fn uint(bits: u32, value: u64) -> RenderedValue {
    RenderedValue::Uint { bits, value }
}

pub fn m(name: &str, value: RenderedValue) -> RenderedMember {
    RenderedMember::new(name, value)
}

pub fn chars(s: &str, len: usize) -> RenderedValue {
    let mut elements: Vec<RenderedValue> = s
        .bytes()
        .map(|b| RenderedValue::Char { value: b })
        .collect();
    elements.resize(len, RenderedValue::Char { value: 0 });
    RenderedValue::Array { len, elements }
}

/// A flat `struct task_ctx` as a scheduler would keep per task.
pub fn task_ctx(pid: i64, slice: u64, state: i64, variant: Option<&str>) -> RenderedValue {
    RenderedValue::named_struct(
        "task_ctx",
        vec![
            m("pid", int(32, pid)),
            m("slice_ns", uint(64, slice)),
            m(
                "state",
                RenderedValue::Enum {
                    bits: 32,
                    value: state,
                    variant: variant.map(String::from),
                    is_signed: false,
                },
            ),
            m("pad", uint(32, 0)),
        ],
    )
}

/// One value of every `kind`, as named members of one struct.
pub fn every_kind() -> Vec<(&'static str, RenderedValue)> {
    let node = RenderedValue::named_struct(
        "list_node",
        vec![m(
            "next",
            RenderedValue::Ptr {
                value: 0xffff_8880_0000_1000,
                deref: None,
                deref_skipped_reason: Some(reasons::DEREF_CYCLE.to_string()),
                cast_annotation: None,
            },
        )],
    );
    vec![
        ("int", int(32, -42)),
        ("uint", uint(64, u64::MAX)),
        ("bool", RenderedValue::Bool { value: true }),
        ("char", RenderedValue::Char { value: b'x' }),
        ("char_unprintable", RenderedValue::Char { value: 7 }),
        (
            "float",
            RenderedValue::Float {
                bits: 64,
                value: 0.1,
            },
        ),
        (
            "float_whole",
            RenderedValue::Float {
                bits: 32,
                value: 3.0,
            },
        ),
        (
            "float_32",
            RenderedValue::Float {
                bits: 32,
                value: f64::from(0.1f32),
            },
        ),
        (
            "float_big",
            RenderedValue::Float {
                bits: 64,
                value: 1e21,
            },
        ),
        (
            "enum_named",
            RenderedValue::Enum {
                bits: 32,
                value: 2,
                variant: Some("SCX_TASK_ENABLED".into()),
                is_signed: false,
            },
        ),
        (
            "enum_unknown",
            RenderedValue::Enum {
                bits: 32,
                value: -7,
                variant: None,
                is_signed: true,
            },
        ),
        (
            "struct",
            RenderedValue::named_struct("pair", vec![m("a", int(32, 1)), m("b", int(32, 0))]),
        ),
        (
            "anonymous_struct",
            RenderedValue::anon_struct(vec![m("x", uint(8, 3)), m("y", uint(8, 4))]),
        ),
        (
            "struct_with_anon_member",
            RenderedValue::named_struct(
                "outer",
                vec![
                    m("id", uint(32, 9)),
                    m(
                        "",
                        RenderedValue::anon_struct(vec![
                            m("u_a", uint(32, 5)),
                            m("u_b", uint(32, 0)),
                        ]),
                    ),
                ],
            ),
        ),
        (
            "array",
            RenderedValue::Array {
                len: 8,
                elements: vec![
                    uint(32, 1),
                    uint(32, 2),
                    uint(32, 0),
                    uint(32, 0),
                    uint(32, 0),
                    uint(32, 0),
                ],
            },
        ),
        (
            "array_zero",
            RenderedValue::Array {
                len: 4,
                elements: vec![uint(8, 0); 4],
            },
        ),
        ("char_array", chars("kworker/0:1", 16)),
        (
            "cpu_list",
            RenderedValue::CpuList {
                cpus: "0-2,5".into(),
            },
        ),
        ("ptr_null", RenderedValue::ptr(0)),
        (
            "ptr_skipped",
            RenderedValue::Ptr {
                value: 0xffff_8880_dead_0000,
                deref: None,
                deref_skipped_reason: Some("unmapped".into()),
                cast_annotation: None,
            },
        ),
        (
            "ptr_chain",
            RenderedValue::Ptr {
                value: 0xffff_8880_0000_2000,
                deref: Some(Box::new(RenderedValue::Ptr {
                    value: 0xffff_8880_0000_3000,
                    deref: Some(Box::new(int(32, 77))),
                    deref_skipped_reason: None,
                    cast_annotation: None,
                })),
                deref_skipped_reason: None,
                cast_annotation: Some("struct task_ctx".into()),
            },
        ),
        (
            "ptr_cycle",
            RenderedValue::Ptr {
                value: 0xffff_8880_0000_1000,
                deref: Some(Box::new(node)),
                deref_skipped_reason: None,
                cast_annotation: None,
            },
        ),
        (
            "bytes",
            RenderedValue::Bytes {
                hex: hex(&[0xde, 0xad, 0xbe, 0xef]),
            },
        ),
        (
            "truncated",
            RenderedValue::Truncated {
                needed: 16,
                had: 8,
                partial: Box::new(RenderedValue::named_struct(
                    "half",
                    vec![m("lo", uint(64, 1))],
                )),
            },
        ),
        (
            "unsupported",
            RenderedValue::unsupported("BTF_KIND_FUNC_PROTO"),
        ),
    ]
}

/// A value far wider than a line, to exercise the block form.
pub fn wide_struct() -> RenderedValue {
    let members = (0..12)
        .map(|i| {
            m(
                &format!("field_number_{i}"),
                RenderedValue::named_struct(
                    "inner",
                    vec![m("a", uint(64, 1000 + i)), m("b", chars("name", 8))],
                ),
            )
        })
        .collect();
    RenderedValue::named_struct("wide", members)
}

pub fn map(name: &str, map_type: u32) -> FailureDumpMap {
    FailureDumpMap {
        name: name.into(),
        map_kva: 0xffff_c900_0001_0000,
        map_type,
        value_size: 16,
        max_entries: 64,
        ..Default::default()
    }
}

pub fn hash_entry(k: u32, v: RenderedValue) -> FailureDumpEntry {
    FailureDumpEntry {
        key: Some(uint(32, u64::from(k))),
        key_hex: hex(&k.to_le_bytes()),
        value: Some(v),
        value_hex: "00 11".into(),
        payload: None,
    }
}

/// One map of every kind the format knows, by name.
pub fn every_map() -> Vec<(&'static str, FailureDumpMap)> {
    let bss = FailureDumpMap {
        value: Some(RenderedValue::named_struct(
            ".bss",
            every_kind().into_iter().map(|(n, v)| m(n, v)).collect(),
        )),
        ..map("sched.bss", map_type::ARRAY)
    };
    let hash_table = FailureDumpMap {
        entries: vec![
            hash_entry(1, task_ctx(101, 5_000_000, 1, Some("QUEUED"))),
            hash_entry(2, task_ctx(202, 20_000_000, 2, Some("RUNNING"))),
            hash_entry(3, task_ctx(3, 0, 0, None)),
        ],
        ..map("task_ctxs", map_type::HASH)
    };
    let hash_entries = FailureDumpMap {
        entries: vec![
            FailureDumpEntry {
                key: Some(uint(64, 0xffff_8880_0000_4000)),
                key_hex: "00 40 00 00 80 88 ff ff".into(),
                value: Some(RenderedValue::Ptr {
                    value: 0x1_0000_0040,
                    deref: None,
                    deref_skipped_reason: None,
                    cast_annotation: Some("struct task_ctx".into()),
                }),
                value_hex: "40 00 00 00 01 00 00 00".into(),
                payload: Some(task_ctx(55, 1, 1, Some("QUEUED"))),
            },
            FailureDumpEntry {
                key: None,
                key_hex: "01 02".into(),
                value: None,
                value_hex: "ff ff".into(),
                payload: None,
            },
        ],
        ..map("task_storage", map_type::TASK_STORAGE)
    };
    let array = FailureDumpMap {
        array_entries: vec![
            FailureDumpArrayEntry {
                key: 0,
                value: Some(uint(64, 17)),
            },
            FailureDumpArrayEntry {
                key: 1,
                value: Some(uint(64, 0)),
            },
            FailureDumpArrayEntry {
                key: 2,
                value: Some(uint(64, 0)),
            },
            FailureDumpArrayEntry {
                key: 3,
                value: Some(uint(64, 0)),
            },
            FailureDumpArrayEntry {
                key: 4,
                value: None,
            },
            FailureDumpArrayEntry {
                key: 5,
                value: Some(wide_struct()),
            },
        ],
        ..map("counters", map_type::ARRAY)
    };
    let stat = |a: u64, b: u64| {
        RenderedValue::named_struct(
            "cpu_stat",
            vec![m("nr_enq", uint(64, a)), m("nr_disp", uint(64, b))],
        )
    };
    let percpu = FailureDumpMap {
        percpu_entries: vec![
            // All CPUs equal.
            FailureDumpPercpuEntry {
                key: 0,
                per_cpu: vec![Some(stat(5, 5)); 4],
            },
            // Flat structs that differ: common + per-cpu table.
            FailureDumpPercpuEntry {
                key: 1,
                per_cpu: vec![
                    Some(stat(7, 1)),
                    Some(stat(7, 1)),
                    Some(stat(7, 2)),
                    Some(stat(7, 3)),
                ],
            },
            // Scalars with an unreadable CPU: grouped lines.
            FailureDumpPercpuEntry {
                key: 2,
                per_cpu: vec![
                    Some(uint(64, 1)),
                    Some(uint(64, 1)),
                    None,
                    Some(uint(64, 9)),
                ],
            },
        ],
        ..map("cpu_stats", map_type::PERCPU_ARRAY)
    };
    let percpu_hash = FailureDumpMap {
        percpu_hash_entries: vec![
            FailureDumpPercpuHashEntry {
                key: Some(uint(32, 7)),
                key_hex: "07 00 00 00".into(),
                per_cpu: vec![Some(uint(64, 3)), Some(uint(64, 4))],
            },
            FailureDumpPercpuHashEntry {
                key: None,
                key_hex: "08 00 00 00".into(),
                per_cpu: vec![None, None],
            },
        ],
        ..map("pcpu_hash", map_type::PERCPU_HASH)
    };
    let arena = FailureDumpMap {
        arena: Some(ArenaSnapshot {
            pages: vec![
                ArenaPage {
                    user_addr: 0x1_0000_0000,
                    bytes: vec![1, 2, 3, 4],
                },
                ArenaPage {
                    user_addr: 0x1_0000_1000,
                    bytes: vec![0; 8],
                },
            ],
            truncated: true,
            declared_pages: 1024,
            span_capped: true,
            kern_vm_start: 0xffff_c900_0000_0000,
            user_vm_start: 0x1_0000_0000,
        }),
        ..map("arena", map_type::ARENA)
    };
    let ringbuf = FailureDumpMap {
        ringbuf: Some(FailureDumpRingbuf {
            capacity: 4096,
            consumer_pos: 1000,
            producer_pos: 1128,
            pending_pos: 1128,
            pending_bytes: 128,
        }),
        ..map("events", map_type::RINGBUF)
    };
    let stack = FailureDumpMap {
        stack_trace: Some(FailureDumpStackTrace {
            n_buckets: 128,
            entries: vec![FailureDumpStackTraceEntry {
                bucket_id: 3,
                nr: 2,
                pcs: vec![0xffff_ffff_8100_0000, 0xffff_ffff_8100_0100],
                data_hex: hex(&[0; 16]),
            }],
            truncated: true,
            buckets_unreadable: 1,
        }),
        ..map("stacks", map_type::STACK_TRACE)
    };
    let fd = FailureDumpMap {
        fd_array: Some(FailureDumpFdArray {
            populated: 4,
            scanned: 64,
            indices: vec![0, 1, 2, 7],
            truncated: true,
            indices_truncated: true,
            unreadable: 2,
        }),
        ..map("progs", map_type::PROG_ARRAY)
    };
    let error = FailureDumpMap {
        error: Some(reasons::hash_map_truncated(4096)),
        map_type: 99,
        ..map("broken", 99)
    };
    vec![
        ("value", bss),
        ("entries_table", hash_table),
        ("entries", hash_entries),
        ("array", array),
        ("percpu", percpu),
        ("percpu_hash", percpu_hash),
        ("arena", arena),
        ("ringbuf", ringbuf),
        ("stack_trace", stack),
        ("fd_array", fd),
        ("error", error),
    ]
}

/// A report with every section and every field filled.
pub fn full_report() -> FailureDumpReport {
    let regs = |i: u64| VcpuRegSnapshot {
        instruction_pointer: 0xffff_ffff_8100_0000 + i,
        stack_pointer: 0xffff_c900_0000_8000 + i,
        page_table_root: 0x1000 * (i + 1),
        user_page_table_root: Some(0x2000),
        tcr_el1: Some(0x3000),
    };
    let sample = |ms: u64, k: i64| EventCounterSample {
        elapsed_ms: ms,
        select_cpu_fallback: k,
        dispatch_local_dsq_offline: 1,
        dispatch_keep_last: 2 * k,
        enq_skip_exiting: 3,
        enq_skip_migration_disabled: 4,
        reenq_immed: 5,
        reenq_local_repeat: 6,
        refill_slice_dfl: 7 * k,
        bypass_duration: 8,
        bypass_dispatch: 9,
        bypass_activate: 10,
        insert_not_owned: 11,
        sub_bypass_dispatch: -k,
    };
    FailureDumpReport {
        maps: every_map().into_iter().map(|(_, m)| m).collect(),
        vcpu_regs: vec![Some(regs(0)), None, Some(regs(2))],
        active_obj_name: Some("scx_simple".into()),
        active_map_kvas: vec![0xffff_c900_0001_0000, u64::MAX],
        sdt_allocations: vec![SdtAllocatorSnapshot {
            allocator_name: "task_allocator".into(),
            entries: vec![SdtAllocEntry {
                idx: 3,
                genn: 1,
                user_addr: 0x0000_4000,
                payload: task_ctx(9, 10, 1, Some("QUEUED")),
            }],
            truncated: true,
            skipped_subtrees: 2,
            elem_size: 64,
            target_type_id: 1234,
            payload_type_reason: "payload type guessed from size".into(),
        }],
        scx_static_ranges: ScxStaticSnapshot {
            ranges: vec![ScxStaticRange {
                instance_name: "scx_static".into(),
                start_low32: 0x1000,
                size: 4096,
                capacity: 8192,
            }],
            skipped: 1,
        },
        sdt_alloc_unavailable: Some(reasons::NO_SCX_ALLOCATOR_INSTANCE.into()),
        prog_runtime_stats: vec![
            ProgRuntimeStats {
                name: "simple_enqueue".into(),
                cnt: 3,
                nsecs: 1000,
                misses: 1,
                prog_type: String::new(),
            },
            ProgRuntimeStats {
                name: "simple_init".into(),
                cnt: 0,
                nsecs: 0,
                misses: 0,
                prog_type: String::new(),
            },
        ],
        prog_runtime_stats_unavailable: Some(reasons::PROG_ACCESSOR_UNAVAILABLE.into()),
        per_cpu_time: vec![PerCpuTimeStats {
            cpu: 0,
            cpustat_user_ns: 1,
            cpustat_nice_ns: 2,
            cpustat_system_ns: 3,
            cpustat_softirq_ns: 4,
            cpustat_irq_ns: 5,
            cpustat_idle_ns: 6,
            cpustat_iowait_ns: 7,
            cpustat_steal_ns: 8,
            softirqs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            irqs_sum: 55,
            iowait_sleeptime_ns: Some(99),
        }],
        cgroup_psi: vec![CgroupPsiStat {
            cgroup_kva: 0xffff_8880_0001_0000,
            total_ns: 100,
            avg10_raw: 2,
            serial_nr: 1,
        }],
        per_node_numa: vec![PerNodeNumaStats {
            node: 0,
            numa_hit: 1,
            numa_miss: 2,
            numa_foreign: 3,
            numa_interleave_hit: 4,
            numa_local: 5,
            numa_other: 6,
        }],
        per_node_numa_unavailable: Some(reasons::NO_NUMA_WALKER.into()),
        task_enrichments: vec![TaskEnrichment {
            pid: 42,
            tgid: 42,
            comm: "stress".into(),
            weight: 100,
            prio: 120,
            static_prio: 120,
            normal_prio: 120,
            rt_priority: 0,
            pi_boosted_out_of_scx: true,
            nvcsw: 10,
            nivcsw: 20,
            utime: 30,
            stime: 40,
            group_leader_pid: 42,
            real_parent_pid: 1,
            pgid: 42,
            sid: 1,
            nr_threads: 1,
            real_parent_comm: "init".into(),
            sched_class: reasons::sched_class::EXT.into(),
            lock_slowpath_match: "queued_spin_lock_slowpath".into(),
            core_cookie: 5,
            signal_nvcsw: 6,
            signal_nivcsw: 7,
            signal_utime: 8,
            signal_stime: 9,
            task_kva: 0xffff_8880_0123_4000,
            runnable_age_jiffies: Some(250),
        }],
        task_enrichments_unavailable: Some(reasons::TASK_WALKER_ZERO_TASKS.into()),
        event_counter_timeline: vec![sample(0, 0), sample(500, 3), sample(1000, 9)],
        rq_scx_states: vec![RqScxState {
            cpu: 0,
            nr_running: 2,
            flags: 0x3,
            cpu_released: true,
            ops_qseq: 77,
            kick_sync: 5,
            nr_immed: 1,
            rq_clock: 123_456_789,
            curr_pid: 42,
            curr_comm: "stress".into(),
            runnable_task_kvas: vec![0xffff_8880_0000_5000],
            runnable_truncated: true,
        }],
        dsq_states: vec![DsqState {
            id: 0x8000_0000_0000_0002,
            origin: "local cpu 0".into(),
            nr: 1,
            seq: 3,
            task_kvas: vec![0xffff_8880_0000_5000],
            truncated: true,
        }],
        scx_sched_state: Some(ScxSchedState {
            aborting: true,
            bypass_depth: 1,
            exit_kind: 1025,
            watchdog_timeout: 30_000,
            source: reasons::sched_source::LIVE.into(),
            sched_kva: 0xffff_8880_0000_6000,
        }),
        scx_walker_unavailable: Some(reasons::scx_walker_partial(&["dsq", "rq"])),
        vcpu_perf_at_freeze: vec![
            Some(VcpuPerfSample {
                cycles: 1000,
                instructions: 1500,
                cache_misses: 3,
                branch_misses: 4,
                time_enabled_ns: 100,
                time_running_ns: 90,
                task_clock_ns: Some(80),
            }),
            None,
        ],
        dump_truncated_at_us: Some(250_000),
        maps_truncated: 2,
        probe_counters: Some(ProbeBssCounters {
            probe_count: 1,
            kprobe_returns: 2,
            meta_miss: 3,
            ringbuf_drops: 4,
            timeline_count: 5,
            timeline_drops: 6,
            pi_count: 7,
            pi_orphan_fexits: 8,
            pi_class_change_count: 9,
            pi_drops: 10,
            lock_contend_count: 11,
            lock_contend_drops: 12,
            preempt_disable_count: 13,
            preempt_enable_count: 14,
            trigger_count: 15,
        }),
        guest_setup_failure: Some(GuestSetupFailureContext {
            init_stage: "mount".into(),
            final_guest_phase: "sched_attach".into(),
            guest_exit_code: -2,
            scheduler_attach_outcome: "timeout".into(),
            console_tail: "[    1.0] booting\n[    2.0] panic".into(),
            init_log_tail: "init: started".into(),
            scheduler_log_tail: "scx_simple: attach failed".into(),
        }),
        is_placeholder: true,
        exit_info: Some(ExitInfo {
            kind: 1026,
            kind_name: "SCX_EXIT_ERROR_STALL".into(),
            source: "watchpoint".into(),
            exit_code: Some(0),
            reason: Some("runnable task stall".into()),
            msg: Some("ktstr-victim[131] failed to run for 5.02s".into()),
            trigger: Some(ExitTrigger {
                cpu: 1,
                pid: Some(57),
                comm: Some("kworker/1:2".into()),
            }),
            backtrace: vec![
                BacktraceFrame {
                    addr: 0xffff_ffff_8113_4f43,
                    symbol: Some("scx_watchdog_workfn".into()),
                    offset: Some(0x143),
                    size: Some(0x1d0),
                },
                BacktraceFrame {
                    addr: 0xffff_ffff_a000_1234,
                    ..Default::default()
                },
            ],
            kernel_dump: Some(
                "kworker/1:2[57] triggered exit kind 1026:\n  runnable task stall\n".into(),
            ),
            kernel_dump_truncated: true,
            unavailable: Some("exit_info.dump: 32768 bytes read of 40000".into()),
        }),
        capture_notes: vec!["arena: 256 of 295 pages not captured (cap 128 KiB)".into()],
        aux_prog_runtime_stats: vec![ProgRuntimeStats {
            name: "ktstr_on_switch".into(),
            cnt: 9987,
            nsecs: 123_456,
            misses: 0,
            prog_type: "tracing".into(),
        }],
        ..FailureDumpReport::default()
    }
}

/// A small but realistic late report: one `.bss` map and two vCPUs.
pub fn small_report() -> FailureDumpReport {
    FailureDumpReport {
        maps: vec![FailureDumpMap {
            value: Some(RenderedValue::named_struct(
                ".bss",
                vec![m("nr_queued", uint(64, 12)), m("exit_kind", uint(32, 1024))],
            )),
            ..map("scx_simple.bss", map_type::ARRAY)
        }],
        vcpu_regs: vec![
            Some(VcpuRegSnapshot {
                instruction_pointer: 0xffff_ffff_8100_1234,
                stack_pointer: 0xffff_c900_0001_3f00,
                page_table_root: 0x10_0000,
                user_page_table_root: None,
                tcr_el1: None,
            }),
            None,
        ],
        ..FailureDumpReport::default()
    }
}

pub fn dual_with_early() -> DualFailureDumpReport {
    DualFailureDumpReport {
        early: Some(small_report()),
        late: small_report(),
        early_max_age_jiffies: 1500,
        early_threshold_jiffies: 1000,
        ..DualFailureDumpReport::default()
    }
}

pub fn dual_without_early() -> DualFailureDumpReport {
    DualFailureDumpReport {
        early_skipped_reason: Some(reasons::early_max_age_never_crossed(400, 1000)),
        ..DualFailureDumpReport::new(small_report())
    }
}

pub fn degraded() -> DegradedFailureDumpReport {
    DegradedFailureDumpReport {
        reason: reasons::degraded_reason(reasons::RENDEZVOUS_TIMED_OUT, 5000, 1, 2),
        vcpu_regs: vec![
            Some(VcpuRegSnapshot {
                instruction_pointer: 0xffff_ffff_8100_0000,
                stack_pointer: 0xffff_c900_0000_8000,
                page_table_root: 0x1000,
                user_page_table_root: None,
                tcr_el1: None,
            }),
            None,
        ],
        watchpoint_hit: true,
        bss_latch_state: reasons::bss_latch::TRIGGERED.into(),
        exit_kind: Some(1025),
        elapsed_ms: 5000,
        ..DegradedFailureDumpReport::default()
    }
}

/// Every named report case, as the snapshots name them.
pub fn every_report() -> Vec<(String, FailureDumpReportAny)> {
    let mut v: Vec<(String, FailureDumpReportAny)> = vec![
        ("empty".into(), FailureDumpReport::default().into()),
        (
            "placeholder".into(),
            FailureDumpReport::placeholder(reasons::NO_SCX_WALKER_CAPTURE).into(),
        ),
        ("full".into(), full_report().into()),
        ("dual_early_present".into(), dual_with_early().into()),
        ("dual_early_absent".into(), dual_without_early().into()),
        ("degraded".into(), degraded().into()),
    ];
    for (name, map) in every_map() {
        v.push((
            format!("map_{name}"),
            FailureDumpReport {
                maps: vec![map],
                ..FailureDumpReport::default()
            }
            .into(),
        ));
    }
    v
}

/// A hash map of 256 nested `task_ctx` values, as a busy scheduler's dump has.
pub fn busy_map(i: u32) -> FailureDumpMap {
    let entries: Vec<FailureDumpEntry> = (0..256)
        .map(|k| {
            let v = RenderedValue::named_struct(
                "task_ctx",
                vec![
                    m("pid", int(32, i64::from(k) + 1000)),
                    m("comm", chars("worker", 16)),
                    m("slice_ns", uint(64, 20_000_000)),
                    m("vtime", uint(64, 1_000_000_007 * u64::from(k))),
                    m(
                        "state",
                        RenderedValue::Enum {
                            bits: 32,
                            value: 1,
                            variant: Some("QUEUED".into()),
                            is_signed: false,
                        },
                    ),
                    m(
                        "",
                        RenderedValue::anon_struct(vec![
                            m("weight", uint(32, 100)),
                            m(
                                "ratio",
                                RenderedValue::Float {
                                    bits: 64,
                                    value: f64::from(k) / 7.0,
                                },
                            ),
                        ]),
                    ),
                    m("cpumask", RenderedValue::CpuList { cpus: "0-3".into() }),
                    m(
                        "next",
                        RenderedValue::Ptr {
                            value: 0xffff_8880_0000_0000 + u64::from(k) * 64,
                            deref: Some(Box::new(RenderedValue::named_struct(
                                "list_head",
                                vec![m("next", RenderedValue::ptr(0xffff_8880_1000_0000))],
                            ))),
                            deref_skipped_reason: None,
                            cast_annotation: None,
                        },
                    ),
                ],
            );
            hash_entry(k, v)
        })
        .collect();
    FailureDumpMap {
        entries,
        ..map(&format!("task_ctxs_{i}"), map_type::HASH)
    }
}

/// A report of about `target` bytes of JSON: the full report plus [`busy_map`]s.
pub fn big_report(target: usize) -> FailureDumpReport {
    let mut r = full_report();
    let mut i = 0u32;
    let mut size = r.to_json().unwrap().len();
    while size < target {
        let m = busy_map(i);
        size += serde_json::to_string(&m).unwrap().len() + 1;
        r.maps.push(m);
        i += 1;
    }
    r
}
