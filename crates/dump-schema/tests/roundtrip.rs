//! Round-trip properties over every type: serialize → `from_json` → equal, for key orders other
//! writers may use too; every generated document validates against `schema/any.json`.
//!
//! `RenderedValue` has a structural proptest strategy (it is where the hand-written serde
//! lives). The reports have dozens of fields each, so they are generated from a proptest-drawn
//! seed by [`Gen`], which fills every field, biased towards edge values (0, MAX, MIN, empty,
//! escapes).

use dump_schema::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

// ---------------------------------------------------------------------------------------------
// RenderedValue strategy

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_][a-z0-9_]{0,12}",
        any::<String>(),
    ]
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(1e21),
    ]
}

/// The leaves whose inline form depends only on the names drawn from `names()`: bool,
/// char, CPU list, pointer without a deref, bytes, unsupported.
fn named_leaves<N>(names: fn() -> N) -> Vec<BoxedStrategy<RenderedValue>>
where
    N: Strategy<Value = String> + 'static,
{
    let ptr = (
        any::<u64>(),
        proptest::option::of(names()),
        proptest::option::of(names()),
    )
        .prop_map(|(value, r, c)| RenderedValue::Ptr {
            value,
            deref: None,
            deref_skipped_reason: r,
            cast_annotation: c,
        });
    vec![
        any::<bool>()
            .prop_map(|value| RenderedValue::Bool { value })
            .boxed(),
        any::<u8>()
            .prop_map(|value| RenderedValue::Char { value })
            .boxed(),
        "[0-9,-]{0,12}"
            .prop_map(|cpus| RenderedValue::CpuList { cpus })
            .boxed(),
        ptr.boxed(),
        proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| RenderedValue::Bytes { hex: hex(&b) })
            .boxed(),
        names()
            .prop_map(|reason| RenderedValue::Unsupported { reason })
            .boxed(),
    ]
}

/// A struct of the members drawn from `members`, its type name from `type_name`.
fn struct_of(
    type_name: impl Strategy<Value = Option<String>>,
    members: impl Strategy<Value = Vec<(String, RenderedValue)>>,
) -> impl Strategy<Value = RenderedValue> {
    (type_name, members).prop_map(|(type_name, ms)| RenderedValue::Struct {
        type_name,
        members: ms
            .into_iter()
            .map(|(n, v)| RenderedMember::new(n, v))
            .collect(),
    })
}

fn leaf() -> impl Strategy<Value = RenderedValue> {
    let mut leaves = named_leaves(name);
    leaves.extend([
        (any::<u32>(), any::<i64>())
            .prop_map(|(bits, value)| RenderedValue::Int { bits, value })
            .boxed(),
        (any::<u32>(), any::<u64>())
            .prop_map(|(bits, value)| RenderedValue::Uint { bits, value })
            .boxed(),
        (any::<u32>(), finite_f64())
            .prop_map(|(bits, value)| RenderedValue::Float { bits, value })
            .boxed(),
        (
            any::<u32>(),
            any::<i64>(),
            proptest::option::of(name()),
            any::<bool>(),
        )
            .prop_map(|(bits, value, variant, is_signed)| RenderedValue::Enum {
                bits,
                value,
                variant,
                is_signed,
            })
            .boxed(),
    ]);
    proptest::strategy::Union::new(leaves)
}

fn rendered_value() -> impl Strategy<Value = RenderedValue> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            struct_of(
                proptest::option::of(name()),
                proptest::collection::vec((name(), inner.clone()), 0..6)
            ),
            (
                any::<usize>(),
                proptest::collection::vec(inner.clone(), 0..6)
            )
                .prop_map(|(len, elements)| RenderedValue::Array { len, elements }),
            (
                any::<u64>(),
                inner.clone(),
                proptest::option::of(name()),
                proptest::option::of(name())
            )
                .prop_map(|(value, d, r, c)| RenderedValue::Ptr {
                    value,
                    deref: Some(Box::new(d)),
                    deref_skipped_reason: r,
                    cast_annotation: c,
                }),
            (any::<usize>(), any::<usize>(), inner).prop_map(|(needed, had, p)| {
                RenderedValue::Truncated {
                    needed,
                    had,
                    partial: Box::new(p),
                }
            }),
        ]
    })
}

/// The width `Display` keeps lines within where the content allows.
const WIDTH: usize = DisplayOptions::DEFAULT_WIDTH;

/// A short identifier.
fn short_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,12}"
}

/// Scalars whose inline form is at most about 64 columns.
fn narrow_leaf() -> impl Strategy<Value = RenderedValue> {
    let mut leaves = named_leaves(short_name);
    leaves.extend([
        any::<i64>()
            .prop_map(|value| RenderedValue::Int { bits: 64, value })
            .boxed(),
        any::<u64>()
            .prop_map(|value| RenderedValue::Uint { bits: 64, value })
            .boxed(),
        finite_f64()
            .prop_map(|value| RenderedValue::Float { bits: 64, value })
            .boxed(),
        (any::<i64>(), proptest::option::of(short_name()))
            .prop_map(|(value, variant)| RenderedValue::Enum {
                bits: 32,
                value,
                variant,
                is_signed: true,
            })
            .boxed(),
    ]);
    proptest::strategy::Union::new(leaves)
}

/// Structs (some of them data sections, named `.bss`/`.data`) and arrays of narrow leaves,
/// nested at most 4 deep, with short names: every piece fits a line even at the deepest
/// indentation.
fn narrow_value() -> impl Strategy<Value = RenderedValue> {
    let type_name = prop_oneof![
        Just(None),
        short_name().prop_map(Some),
        Just(Some(".bss".to_string())),
        Just(Some(".data".to_string())),
    ];
    narrow_leaf().prop_recursive(4, 256, 24, move |inner| {
        prop_oneof![
            struct_of(
                type_name.clone(),
                proptest::collection::vec((short_name(), inner.clone()), 0..24)
            ),
            (0usize..64, proptest::collection::vec(inner, 0..24)).prop_map(|(extra, elements)| {
                RenderedValue::Array {
                    len: elements.len() + extra,
                    elements,
                }
            }),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Seeded generator for the report types

/// splitmix64 driving every field.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn len(&mut self) -> usize {
        // Mostly empty or short, so absent and present both happen often.
        [0, 0, 1, 2, 3][self.below(5) as usize]
    }
}

trait Arb: Sized {
    fn arb(g: &mut Gen) -> Self;
}

impl Arb for u64 {
    fn arb(g: &mut Gen) -> Self {
        match g.below(5) {
            0 => 0,
            1 => u64::MAX,
            2 => g.below(100),
            _ => g.next(),
        }
    }
}
impl Arb for i64 {
    fn arb(g: &mut Gen) -> Self {
        match g.below(5) {
            0 => 0,
            1 => i64::MIN,
            2 => i64::MAX,
            _ => g.next() as i64,
        }
    }
}
impl Arb for u32 {
    fn arb(g: &mut Gen) -> Self {
        u64::arb(g) as u32
    }
}
impl Arb for i32 {
    fn arb(g: &mut Gen) -> Self {
        i64::arb(g) as i32
    }
}
impl Arb for u8 {
    fn arb(g: &mut Gen) -> Self {
        g.next() as u8
    }
}
impl Arb for bool {
    fn arb(g: &mut Gen) -> Self {
        g.chance(2)
    }
}
impl Arb for String {
    fn arb(g: &mut Gen) -> Self {
        const PIECES: &[&str] = &[
            "", "a", "task", "\"", "\\", "\n", "\u{0}", "\u{1f}", "é", "→", "🦀", "/", " ", "{}",
        ];
        (0..g.len() * 2)
            .map(|_| PIECES[g.below(PIECES.len() as u64) as usize])
            .collect()
    }
}
impl<T: Arb> Arb for Option<T> {
    fn arb(g: &mut Gen) -> Self {
        g.chance(2).then(|| T::arb(g))
    }
}
impl<T: Arb> Arb for Vec<T> {
    fn arb(g: &mut Gen) -> Self {
        (0..g.len()).map(|_| T::arb(g)).collect()
    }
}
impl Arb for [u64; 10] {
    fn arb(g: &mut Gen) -> Self {
        std::array::from_fn(|_| u64::arb(g))
    }
}
impl Arb for RenderedValue {
    fn arb(g: &mut Gen) -> Self {
        // A small value tree; the structural strategy above covers the shapes in depth.
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            proptest::test_runner::Config::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &{
                    let mut seed = [0u8; 32];
                    for chunk in seed.chunks_mut(8) {
                        chunk.copy_from_slice(&g.next().to_le_bytes());
                    }
                    seed
                },
            ),
        );
        rendered_value()
            .new_tree(&mut runner)
            .expect("strategy")
            .current()
    }
}

/// `impl Arb` for plain structs: every field from its own `Arb`.
macro_rules! arb_struct {
    ($($t:ident { $($f:ident),* $(,)? })*) => {$(
        impl Arb for $t {
            fn arb(g: &mut Gen) -> Self {
                $t { $($f: Arb::arb(g)),* }
            }
        }
    )*};
}

arb_struct! {
    FailureDumpMap { name, map_kva, map_type, value_size, max_entries, value, entries,
        array_entries, percpu_entries, percpu_hash_entries, arena, ringbuf, stack_trace,
        fd_array, error }
    FailureDumpEntry { key, key_hex, value, value_hex, payload }
    FailureDumpArrayEntry { key, value }
    FailureDumpPercpuEntry { key, per_cpu }
    FailureDumpPercpuHashEntry { key, key_hex, per_cpu }
    FailureDumpRingbuf { capacity, consumer_pos, producer_pos, pending_pos, pending_bytes }
    FailureDumpStackTrace { n_buckets, entries, truncated, buckets_unreadable }
    FailureDumpStackTraceEntry { bucket_id, nr, pcs, data_hex }
    FailureDumpFdArray { populated, scanned, indices, truncated, indices_truncated, unreadable }
    ArenaSnapshot { pages, truncated, declared_pages, span_capped, kern_vm_start, user_vm_start }
    ArenaPage { user_addr, bytes }
    VcpuRegSnapshot { instruction_pointer, stack_pointer, page_table_root,
        user_page_table_root, tcr_el1 }
    SdtAllocatorSnapshot { allocator_name, entries, truncated, skipped_subtrees, elem_size,
        target_type_id, payload_type_reason }
    SdtAllocEntry { idx, genn, user_addr, payload }
    ScxStaticSnapshot { ranges, skipped }
    ScxStaticRange { instance_name, start_low32, size, capacity }
    ProgRuntimeStats { name, cnt, nsecs, misses, prog_type }
    PerCpuTimeStats { cpu, cpustat_user_ns, cpustat_nice_ns, cpustat_system_ns,
        cpustat_softirq_ns, cpustat_irq_ns, cpustat_idle_ns, cpustat_iowait_ns,
        cpustat_steal_ns, softirqs, irqs_sum, iowait_sleeptime_ns }
    CgroupPsiStat { cgroup_kva, total_ns, avg10_raw, serial_nr }
    PerNodeNumaStats { node, numa_hit, numa_miss, numa_foreign, numa_interleave_hit,
        numa_local, numa_other }
    TaskEnrichment { pid, tgid, comm, weight, prio, static_prio, normal_prio, rt_priority,
        pi_boosted_out_of_scx, nvcsw, nivcsw, utime, stime, group_leader_pid, real_parent_pid,
        pgid, sid, nr_threads, real_parent_comm, sched_class, lock_slowpath_match, core_cookie,
        signal_nvcsw, signal_nivcsw, signal_utime, signal_stime, task_kva, runnable_age_jiffies }
    ExitInfo { kind, kind_name, source, exit_code, reason, msg, trigger, backtrace,
        kernel_dump, kernel_dump_truncated, unavailable }
    ExitTrigger { cpu, pid, comm }
    BacktraceFrame { addr, symbol, offset, size }
    EventCounterSample { elapsed_ms, select_cpu_fallback, dispatch_local_dsq_offline,
        dispatch_keep_last, enq_skip_exiting, enq_skip_migration_disabled, reenq_immed,
        reenq_local_repeat, refill_slice_dfl, bypass_duration, bypass_dispatch,
        bypass_activate, insert_not_owned, sub_bypass_dispatch }
    RqScxState { cpu, nr_running, flags, cpu_released, ops_qseq, kick_sync, nr_immed,
        rq_clock, curr_pid, curr_comm, runnable_task_kvas, runnable_truncated }
    DsqState { id, origin, nr, seq, task_kvas, truncated }
    ScxSchedState { aborting, bypass_depth, exit_kind, watchdog_timeout, source, sched_kva }
    VcpuPerfSample { cycles, instructions, cache_misses, branch_misses, time_enabled_ns,
        time_running_ns, task_clock_ns }
    ProbeBssCounters { probe_count, kprobe_returns, meta_miss, ringbuf_drops, timeline_count,
        timeline_drops, pi_count, pi_orphan_fexits, pi_class_change_count, pi_drops,
        lock_contend_count, lock_contend_drops, preempt_disable_count, preempt_enable_count,
        trigger_count }
    GuestSetupFailureContext { init_stage, final_guest_phase, guest_exit_code,
        scheduler_attach_outcome, console_tail, init_log_tail, scheduler_log_tail }
    FailureDumpReport { schema, maps, vcpu_regs, active_obj_name, active_map_kvas,
        sdt_allocations, scx_static_ranges, sdt_alloc_unavailable, prog_runtime_stats,
        prog_runtime_stats_unavailable, per_cpu_time, cgroup_psi, per_node_numa,
        per_node_numa_unavailable, task_enrichments, task_enrichments_unavailable,
        event_counter_timeline, rq_scx_states, dsq_states, scx_sched_state,
        scx_walker_unavailable, vcpu_perf_at_freeze, dump_truncated_at_us, maps_truncated,
        probe_counters, guest_setup_failure, is_placeholder, exit_info, capture_notes,
        aux_prog_runtime_stats }
    DualFailureDumpReport { schema, early, late, early_max_age_jiffies,
        early_threshold_jiffies, early_skipped_reason }
    DegradedFailureDumpReport { schema, reason, vcpu_regs, watchpoint_hit, bss_latch_state,
        exit_kind, elapsed_ms }
}

/// Sets every `schema` tag (a random string would be an unknown schema) and a schema-valid
/// `bss_latch_state`.
fn fix_tags(any: &mut FailureDumpReportAny, g: &mut Gen) {
    fn single(r: &mut FailureDumpReport) {
        r.schema = SCHEMA_SINGLE.into();
    }
    match any {
        FailureDumpReportAny::Single(r) => single(r),
        FailureDumpReportAny::Dual(d) => {
            d.schema = SCHEMA_DUAL.into();
            single(&mut d.late);
            if let Some(e) = &mut d.early {
                single(e);
            }
        }
        FailureDumpReportAny::Degraded(d) => {
            d.schema = SCHEMA_DEGRADED.into();
            d.bss_latch_state = reasons::bss_latch::ALL[g.below(4) as usize].into();
        }
    }
}

fn report(seed: u64) -> FailureDumpReportAny {
    let mut g = Gen(seed);
    let mut any = match g.below(3) {
        0 => FailureDumpReportAny::Single(Arb::arb(&mut g)),
        1 => FailureDumpReportAny::Dual(Arb::arb(&mut g)),
        _ => FailureDumpReportAny::Degraded(Arb::arb(&mut g)),
    };
    fix_tags(&mut any, &mut g);
    any
}

/// The same document with every object's keys sorted (as a writer going through a generic
/// JSON tree would produce): `kind` and `schema` are then often not first.
fn sorted_keys(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    serde_json::to_string(&v).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rendered_value_round_trips(v in rendered_value()) {
        let json = serde_json::to_string(&v).unwrap();
        let doc = format!(
            r#"{{"schema":"single","maps":[{{"name":"m","map_type":2,"value_size":8,"max_entries":1,"value":{json}}}]}}"#
        );
        if let Err(e) = dump_schema::validate::validate_report_json(&doc) {
            return Err(TestCaseError::fail(format!("{e}\n{doc}")));
        }
        let back: RenderedValue = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &v);
        let back: RenderedValue = serde_json::from_str(&sorted_keys(&json)).unwrap();
        prop_assert_eq!(&back, &v);
        // Display never panics, whatever the value (the width is checked on narrow values by
        // `narrow_values_fit_the_width`: a long name or scalar cannot be split).
        let _ = v.to_string();
    }

    #[test]
    /// The fast compact writer writes exactly what serde_json writes, alone and in a report.
    fn fast_compact_writer_is_serde_json(v in rendered_value(), seed in any::<u64>()) {
        prop_assert_eq!(fast_json(&v), serde_json::to_string(&v).unwrap());
        let mut r = report(seed);
        if let FailureDumpReportAny::Single(s) = &mut r {
            s.maps.push(FailureDumpMap { name: "v".into(), value: Some(v), ..Default::default() });
        }
        prop_assert_eq!(fast_json(&r), r.to_json().unwrap());
    }

    #[test]
    /// Values whose every name and scalar is short print within the width whatever their
    /// shape: the inline form is used only when it fits, and the block form breaks every
    /// struct and array onto lines of their own.
    fn narrow_values_fit_the_width(v in narrow_value(), full in any::<bool>()) {
        let text = v.display_with(&DisplayOptions { full, width: WIDTH }).to_string();
        if !full {
            prop_assert_eq!(&text, &v.to_string());
        }
        for line in text.lines() {
            prop_assert!(line.chars().count() <= WIDTH, "{} columns:\n{}", line.chars().count(), text);
        }
    }

    #[test]
    fn reports_round_trip(seed in any::<u64>()) {
        let r = report(seed);
        let json = r.to_json().unwrap();
        if let Err(e) = dump_schema::validate::validate_report_json(&json) {
            return Err(TestCaseError::fail(format!("{e}\n{json}")));
        }
        prop_assert_eq!(&FailureDumpReportAny::from_json(&json).unwrap(), &r);
        prop_assert_eq!(&FailureDumpReportAny::from_json(&sorted_keys(&json)).unwrap(), &r);
        let pretty = r.to_json_pretty().unwrap();
        prop_assert_eq!(&FailureDumpReportAny::from_json(&pretty).unwrap(), &r);
        let _ = r.to_string();
    }

    #[test]
    /// A diff of any two reports: no panic; a report compared with itself has no
    /// differences; the JSON validates against `schema/diff.json` and reads back; the text
    /// holds no control character but newlines.
    fn diffs_of_any_reports(s1 in any::<u64>(), s2 in any::<u64>()) {
        let (a, b) = (report(s1), report(s2));
        let same = ReportDiff::between(&a, "a", &a, "a");
        prop_assert!(same.is_empty(), "{:#?}", same);
        let mut diffs = vec![ReportDiff::between(&a, "a", &b, "b")];
        if let FailureDumpReportAny::Dual(d) = &a {
            diffs.extend(ReportDiff::early_late(d));
        }
        for d in diffs {
            let json = d.to_json().unwrap();
            if let Err(e) = dump_schema::validate::validate_json_against("diff", &json) {
                return Err(TestCaseError::fail(format!("{e}\n{json}")));
            }
            prop_assert_eq!(&ReportDiff::from_json(&json).unwrap(), &d);
            for full in [false, true] {
                let text = d.display_with(&DisplayOptions { full, width: WIDTH }).to_string();
                prop_assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{}", text);
            }
        }
    }

    #[test]
    /// Each type alone. (Inside whole reports they are also validated against the schema by
    /// `reports_round_trip`, which reaches every key: see `generator_covers_every_key`.)
    fn section_types_round_trip(seed in any::<u64>()) {
        fn check<T>(g: &mut Gen) -> Result<(), TestCaseError>
        where
            T: Arb + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let v = T::arb(g);
            let json = serde_json::to_string(&v).unwrap();
            let back: T = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, v);
            Ok(())
        }
        let g = &mut Gen(seed);
        check::<FailureDumpMap>(g)?;
        check::<FailureDumpEntry>(g)?;
        check::<FailureDumpArrayEntry>(g)?;
        check::<FailureDumpPercpuEntry>(g)?;
        check::<FailureDumpPercpuHashEntry>(g)?;
        check::<FailureDumpRingbuf>(g)?;
        check::<FailureDumpStackTrace>(g)?;
        check::<FailureDumpFdArray>(g)?;
        check::<ArenaSnapshot>(g)?;
        check::<VcpuRegSnapshot>(g)?;
        check::<SdtAllocatorSnapshot>(g)?;
        check::<ScxStaticSnapshot>(g)?;
        check::<ProgRuntimeStats>(g)?;
        check::<PerCpuTimeStats>(g)?;
        check::<CgroupPsiStat>(g)?;
        check::<PerNodeNumaStats>(g)?;
        check::<TaskEnrichment>(g)?;
        check::<EventCounterSample>(g)?;
        check::<RqScxState>(g)?;
        check::<DsqState>(g)?;
        check::<ScxSchedState>(g)?;
        check::<VcpuPerfSample>(g)?;
        check::<ProbeBssCounters>(g)?;
        check::<GuestSetupFailureContext>(g)?;
    }
}

/// `dump_schema::to_writer_compact` of `v`, as a string.
fn fast_json<T: serde::Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    to_writer_compact(&mut out, v).unwrap();
    String::from_utf8(out).unwrap()
}

/// Values bigger than what the fast writer writes in one piece, and escapes in every string
/// it writes: still serde_json's bytes.
#[test]
fn fast_compact_writer_on_big_values() {
    let elem = |i: u64| {
        RenderedValue::named_struct(
            "e\"\n\u{1}\u{7f}é",
            vec![
                RenderedMember::new("a\t", RenderedValue::Uint { bits: 64, value: i }),
                RenderedMember::new(
                    "",
                    RenderedValue::Int {
                        bits: 8,
                        value: -(i as i64),
                    },
                ),
                RenderedMember::new(
                    "f",
                    RenderedValue::Float {
                        bits: 64,
                        value: i as f64 / 3.0,
                    },
                ),
                RenderedMember::new(
                    "nan",
                    RenderedValue::Float {
                        bits: 32,
                        value: f64::NAN,
                    },
                ),
            ],
        )
    };
    let big = RenderedValue::Array {
        len: 5000,
        elements: (0..4096).map(elem).collect(),
    };
    let nested = RenderedValue::anon_struct(vec![
        RenderedMember::new("big", big.clone()),
        RenderedMember::new("again", big),
    ]);
    let json = fast_json(&nested);
    assert_eq!(json, serde_json::to_string(&nested).unwrap());
    assert!(json.contains(reasons::NON_FINITE_FLOAT));
}

/// The generator reaches every key of every report (else the round trips above would prove
/// little).
#[test]
fn generator_covers_every_key() {
    use std::collections::BTreeSet;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    fn walk(v: &serde_json::Value, prefix: &str, seen: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    let p = format!("{prefix}.{k}");
                    walk(v, &p, seen);
                    seen.insert(p);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, prefix, seen)),
            _ => {}
        }
    }
    for seed in 0..400 {
        let r = report(seed);
        let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        walk(&v, r.schema(), &mut seen);
    }
    for key in [
        "single.maps.arena.pages.bytes",
        "single.maps.percpu_hash_entries.per_cpu",
        "single.maps.stack_trace.entries.pcs",
        "single.maps.fd_array.indices_truncated",
        "single.sdt_allocations.entries.payload",
        "single.per_cpu_time.softirqs",
        "single.task_enrichments.signal_stime",
        "single.rq_scx_states.runnable_truncated",
        "single.vcpu_perf_at_freeze.task_clock_ns",
        "single.guest_setup_failure.scheduler_log_tail",
        "single.is_placeholder",
        "dual.early.maps",
        "dual.early_skipped_reason",
        "degraded.exit_kind",
        "degraded.vcpu_regs.tcr_el1",
    ] {
        assert!(seen.contains(key), "never generated: {key}");
    }
    assert!(seen.len() > 250, "{}", seen.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    /// Equality is structural: a value equals its clone, and changing any one leaf (or
    /// swapping a leaf for a container) makes it differ, wherever the leaf is.
    fn equality_sees_every_leaf(v in rendered_value(), pick in any::<usize>()) {
        prop_assert!(v == v.clone());
        let mut w = v.clone();
        let n = leaf_count(&v);
        let changed = change_leaf(&mut w, &mut (pick % n));
        prop_assert!(changed);
        prop_assert!(v != w, "{:?}\n{:?}", v, w);
        prop_assert!(w != v);
    }
}

fn leaf_count(v: &RenderedValue) -> usize {
    match v {
        RenderedValue::Struct { members, .. } => members
            .iter()
            .map(|m| leaf_count(&m.value))
            .sum::<usize>()
            .max(1),
        RenderedValue::Array { elements, .. } => {
            elements.iter().map(leaf_count).sum::<usize>().max(1)
        }
        RenderedValue::Ptr { deref: Some(d), .. } => leaf_count(d),
        RenderedValue::Truncated { partial, .. } => leaf_count(partial),
        _ => 1,
    }
}

/// Replaces the `n`th leaf (or the `n`th empty container) with something it cannot equal.
fn change_leaf(v: &mut RenderedValue, n: &mut usize) -> bool {
    let kids: Vec<&mut RenderedValue> = match v {
        RenderedValue::Struct { members, .. } => members.iter_mut().map(|m| &mut m.value).collect(),
        RenderedValue::Array { elements, .. } => elements.iter_mut().collect(),
        RenderedValue::Ptr { deref: Some(d), .. } => vec![&mut **d],
        RenderedValue::Truncated { partial, .. } => vec![&mut **partial],
        _ => Vec::new(),
    };
    if kids.is_empty() {
        if *n == 0 {
            *v = match v {
                // A leaf becomes a container (and an empty container a leaf).
                RenderedValue::Struct { .. } | RenderedValue::Array { .. } => {
                    RenderedValue::Bool { value: true }
                }
                _ => RenderedValue::Array {
                    len: 0,
                    elements: Vec::new(),
                },
            };
            return true;
        }
        *n -= 1;
        return false;
    }
    for k in kids {
        if change_leaf(k, n) {
            return true;
        }
    }
    false
}
