//! A report shaped like a real scheduler's dump (scx_p2dq/bpfland style): data sections with
//! many scalars, format strings in `.rodata`, large mostly-zero arrays, a per-CPU map of nested
//! structs, and guest strings holding control characters.

use dump_schema::*;

use super::{chars, int, m, map, uint};

fn u32s(values: impl IntoIterator<Item = u64>, len: usize) -> RenderedValue {
    let mut elements: Vec<RenderedValue> = values.into_iter().map(|v| uint(32, v)).collect();
    elements.resize(len, uint(32, 0));
    RenderedValue::Array { len, elements }
}

fn u64s(values: impl IntoIterator<Item = u64>, len: usize) -> RenderedValue {
    let mut elements: Vec<RenderedValue> = values.into_iter().map(|v| uint(64, v)).collect();
    elements.resize(len, uint(64, 0));
    RenderedValue::Array { len, elements }
}

fn rodata() -> RenderedValue {
    RenderedValue::named_struct(
        ".rodata",
        vec![
            m("nr_cpu_ids", uint(32, 8)),
            m("slice_ns", uint(64, 20_000_000)),
            m("slice_min_ns", uint(64, 500_000)),
            m("min_llc_runs_pick2", uint(32, 1)),
            m("nr_dsqs_per_llc", uint(32, 3)),
            m("dsq_shift", uint(32, 2)),
            m("smt_enabled", RenderedValue::Bool { value: true }),
            m("autoslice", RenderedValue::Bool { value: true }),
            m("kthreads_local", RenderedValue::Bool { value: false }),
            m("debug", uint(32, 2)),
            m("lb_slack_factor", int(32, 5)),
            m("interactive_ratio", int(32, 10)),
            m("root_cgid", uint(64, 1)),
            m(
                "____p2dq_init.____fmt",
                chars("scx_lib_init_probe: nr_cpus=%d smt=%d dsq_shift=%d\n", 85),
            ),
            m(
                "____dispatch.____fmt",
                chars("dispatch: cpu=%d dsq=%llx\t(%s) \x1b[31mfull\x1b[0m\n", 64),
            ),
            m(
                "____p2dq_lb.____fmt",
                chars(
                    "load balance: llc=%d from_dsq=%llx to_dsq=%llx nr_queued=%u load=%llu \
                     pick2=%d reason=%s (slack %d%%) interactive=%d\n",
                    128,
                ),
            ),
            m("cpu_llc_ids", u32s([0, 0, 0, 0, 1, 1, 1, 1], 512)),
            m("dsq_time_slices", u64s([20_000_000; 4], 8)),
        ],
    )
}

fn bss() -> RenderedValue {
    let counters = [
        "nr_enqueued",
        "nr_dispatched",
        "nr_direct",
        "nr_local",
        "nr_global",
        "nr_idle",
        "nr_lb_pick2",
        "nr_lb_wakeup",
        "nr_dsq_change",
        "nr_same_dsq",
        "nr_kicks",
        "nr_select_cpu",
        "nr_wake_sync",
        "nr_exec_balance",
        "nr_fork_balance",
        "nr_llc_migrations",
        "nr_node_migrations",
        "nr_keep",
    ];
    let mut members: Vec<RenderedMember> = counters
        .iter()
        .enumerate()
        .map(|(i, n)| m(n, uint(64, (i as u64 * 7919 + 13) % 100_000)))
        .collect();
    members.push(m("stall_count", uint(32, 0)));
    members.push(m("nr_running", uint(32, 3)));
    members.push(m(
        "uei",
        RenderedValue::named_struct(
            "user_exit_info",
            vec![
                m("kind", int(32, 1026)),
                m("exit_code", int(64, 0)),
                m(
                    "reason",
                    chars(
                        "runnable task stall (ktstr-victim[131] failed to run for 5.02s)",
                        128,
                    ),
                ),
                m(
                    "msg",
                    chars(
                        "CPU 1: kworker/1:2[57] \r\nwatchdog failed\x07 (ctrl: \x1b]0;x\x07)\n",
                        1024,
                    ),
                ),
            ],
        ),
    ));
    members.push(m("llc_loads", u64s([5, 5, 5, 5, 5, 5, 5, 5], 32)));
    RenderedValue::named_struct(".bss", members)
}

fn data() -> RenderedValue {
    RenderedValue::named_struct(
        ".data",
        vec![
            m("min_slice_us", uint(64, 100)),
            m("max_exec_ns", uint(64, 80_000_000)),
            m("dsq_hist", u64s([812, 77, 3], 4096)),
        ],
    )
}

fn cpu_ctx(cpu: u64) -> RenderedValue {
    RenderedValue::named_struct(
        "cpu_ctx",
        vec![
            m("id", int(32, cpu as i64)),
            m("llc_id", uint(32, cpu / 4)),
            m("node_id", uint(32, 0)),
            m("is_big", RenderedValue::Bool { value: true }),
            m("nr_dispatched", uint(64, 1000 + cpu * 37)),
            m("affn_dsq", uint(64, 0x100 + cpu / 4)),
            m("slice_ns", uint(64, 20_000_000)),
            m(
                "layer",
                RenderedValue::named_struct(
                    "layer_ref",
                    vec![
                        m("id", uint(32, 1)),
                        m("weight", uint(32, 100)),
                        m("name", chars("batch", 16)),
                    ],
                ),
            ),
            m("dsq_load", u64s([3, 3, 3], 8)),
        ],
    )
}

/// A runnable sched_ext task `comm[pid]` with plausible fields.
pub fn task(pid: i32, comm: &str) -> TaskEnrichment {
    TaskEnrichment {
        pid,
        tgid: pid,
        comm: comm.into(),
        weight: 100,
        prio: 120,
        static_prio: 120,
        normal_prio: 120,
        nvcsw: pid as u64 * 3,
        nivcsw: 1,
        utime: 1000,
        stime: 2000,
        real_parent_comm: "init".into(),
        sched_class: reasons::sched_class::EXT.into(),
        ..TaskEnrichment::default()
    }
}

/// The report.
pub fn scheduler_report() -> FailureDumpReport {
    let pcpu = FailureDumpMap {
        percpu_entries: vec![FailureDumpPercpuEntry {
            key: 0,
            per_cpu: (0..8).map(|c| Some(cpu_ctx(c))).collect(),
        }],
        ..map("pcpu_ctxs", map_type::PERCPU_ARRAY)
    };
    FailureDumpReport {
        maps: vec![
            FailureDumpMap {
                value: Some(rodata()),
                ..map("scx_p2dq.rodata", map_type::ARRAY)
            },
            FailureDumpMap {
                value: Some(bss()),
                ..map("scx_p2dq.bss", map_type::ARRAY)
            },
            FailureDumpMap {
                value: Some(data()),
                ..map("scx_p2dq.data", map_type::ARRAY)
            },
            pcpu,
            FailureDumpMap {
                error: Some("guest said \x1b[2Jgone\n".into()),
                ..map("evil\x1b[0m\nmap", map_type::HASH)
            },
        ],
        active_obj_name: Some("scx_p2dq".into()),
        active_map_kvas: vec![0xffff_c900_0001_0000; 5],
        prog_runtime_stats: vec![ProgRuntimeStats {
            name: "p2dq_enqueue\x07".into(),
            cnt: 10,
            nsecs: 5000,
            misses: 0,
            prog_type: String::new(),
        }],
        task_enrichments: vec![
            task(1, "init"),
            task(57, "kworker/1:2"),
            task(131, "ktstr-victim\n"),
            task(140, "bell\x07\x1b[1mbold\r"),
        ],
        rq_scx_states: vec![super::rq(1, (140, "bell\x07\x1b[1mbold\r"), vec![])],
        ..FailureDumpReport::default()
    }
}
