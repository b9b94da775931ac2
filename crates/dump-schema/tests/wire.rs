//! The wire rules of `shared/spec/wire-format.md`, one test each.

mod common;

use common::{int, m, uint};
use dump_schema::*;
use serde_json::{Value, json};

fn parse(json: &str) -> Result<FailureDumpReportAny, Error> {
    FailureDumpReportAny::from_json(json)
}

fn single(json: &str) -> FailureDumpReport {
    match parse(json) {
        Ok(FailureDumpReportAny::Single(r)) => r,
        other => panic!("expected a single report, got {other:?}"),
    }
}

fn invalid(json: &str) -> (String, String) {
    match parse(json) {
        Err(Error::Invalid { path, message, .. }) => (path, message),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

/// Serializes `v`, checks the document against the schema when it is a report, and returns
/// the JSON value.
fn to_value<T: serde::Serialize>(v: &T) -> Value {
    let s = serde_json::to_string(v).unwrap();
    if s.contains("\"schema\"") {
        dump_schema::validate::validate_report_json(&s).unwrap();
    }
    serde_json::from_str(&s).unwrap()
}

/// A rendered value read from `json`, which must be one.
fn value(json: &str) -> RenderedValue {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Why `json` is not a rendered value.
fn not_a_value(json: &str) -> serde_json::Error {
    serde_json::from_str::<RenderedValue>(json).unwrap_err()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// Keys in written order (serde_json's `Value` would sort them).
fn written_keys(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    struct V<'a>(&'a mut Vec<String>);
    impl<'de> serde::de::Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while let Some(k) = a.next_key::<String>()? {
                a.next_value::<serde::de::IgnoredAny>()?;
                self.0.push(k);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut de, V(&mut out)).unwrap();
    out
}

#[test]
fn only_schema_and_maps_parses() {
    let r = single(r#"{"schema":"single","maps":[]}"#);
    assert_eq!(r, FailureDumpReport::default());
    assert_eq!(r.schema, "single");
}

#[test]
fn default_and_placeholder() {
    assert_eq!(
        FailureDumpReport::default().to_json().unwrap(),
        r#"{"schema":"single","maps":[]}"#
    );
    let p = FailureDumpReport::placeholder("why");
    assert!(p.is_placeholder);
    for f in [
        &p.sdt_alloc_unavailable,
        &p.prog_runtime_stats_unavailable,
        &p.per_node_numa_unavailable,
        &p.task_enrichments_unavailable,
        &p.scx_walker_unavailable,
    ] {
        assert_eq!(f.as_deref(), Some("why"));
    }
    let v = to_value(&p);
    assert_eq!(v["is_placeholder"], true);
    assert_eq!(
        DualFailureDumpReport::default().schema,
        SCHEMA_DUAL,
        "dual carries its tag"
    );
    assert_eq!(DegradedFailureDumpReport::default().schema, SCHEMA_DEGRADED);
}

#[test]
fn keys_are_written_in_spec_order() {
    let json = common::full_report().to_json().unwrap();
    assert_eq!(
        written_keys(&json),
        [
            "schema",
            "maps",
            "vcpu_regs",
            "active_obj_name",
            "active_map_kvas",
            "sdt_allocations",
            "scx_static_ranges",
            "sdt_alloc_unavailable",
            "prog_runtime_stats",
            "prog_runtime_stats_unavailable",
            "per_cpu_time",
            "cgroup_psi",
            "per_node_numa",
            "per_node_numa_unavailable",
            "task_enrichments",
            "task_enrichments_unavailable",
            "event_counter_timeline",
            "rq_scx_states",
            "dsq_states",
            "scx_sched_state",
            "scx_walker_unavailable",
            "vcpu_perf_at_freeze",
            "dump_truncated_at_us",
            "maps_truncated",
            "probe_counters",
            "guest_setup_failure",
            "is_placeholder",
            // Extensions (spec "Extensions"), after the seed's fields.
            "exit_info",
            "capture_notes",
            "aux_prog_runtime_stats",
        ]
    );
    let v = serde_json::to_string(&common::dual_with_early()).unwrap();
    assert_eq!(
        written_keys(&v),
        [
            "schema",
            "early",
            "late",
            "early_max_age_jiffies",
            "early_threshold_jiffies"
        ]
    );
    let v = serde_json::to_string(&common::degraded()).unwrap();
    assert_eq!(
        written_keys(&v),
        [
            "schema",
            "reason",
            "vcpu_regs",
            "watchpoint_hit",
            "bss_latch_state",
            "exit_kind",
            "elapsed_ms"
        ]
    );
    let e = RenderedValue::Enum {
        bits: 8,
        value: 1,
        variant: None,
        is_signed: true,
    };
    assert_eq!(
        written_keys(&serde_json::to_string(&e).unwrap()),
        ["kind", "bits", "value", "variant", "is_signed"]
    );
    let map_keys = written_keys(&serde_json::to_string(&common::every_map()[0].1).unwrap());
    assert_eq!(
        map_keys,
        [
            "name",
            "map_kva",
            "map_type",
            "value_size",
            "max_entries",
            "value"
        ]
    );
}

#[test]
fn missing_required_field_is_named() {
    let (path, msg) = invalid(r#"{"schema":"single"}"#);
    assert_eq!(path, ".");
    assert!(msg.contains("missing field `maps`"), "{msg}");

    let (path, msg) =
        invalid(r#"{"schema":"single","maps":[{"name":"m","map_type":1,"max_entries":1}]}"#);
    assert_eq!(path, "maps[0]");
    assert!(msg.contains("`value_size`"), "{msg}");

    let (path, msg) = invalid(
        r#"{"schema":"single","maps":[{"name":"m","map_type":1,"value_size":4,"max_entries":1,
            "value":{"kind":"struct","type_name":"t","members":[{"name":"a","value":{"kind":"int","value":1}}]}}]}"#,
    );
    assert_eq!(path, "maps[0].value.members[0].value");
    assert!(msg.contains("missing field `bits`"), "{msg}");

    let (_, msg) = invalid(r#"{"schema":"degraded","reason":"r","bss_latch_state":"triggered"}"#);
    assert!(msg.contains("`watchpoint_hit`"), "{msg}");
    let (_, msg) = invalid(r#"{"schema":"dual"}"#);
    assert!(msg.contains("`late`"), "{msg}");
    let e = parse(r#"{"schema":"single","maps":[],"per_cpu_time":[{"cpu":0}]}"#).unwrap_err();
    assert!(e.to_string().contains("per_cpu_time[0]"), "{e}");
}

#[test]
fn error_path_names_the_offending_field() {
    let doc = json!({"schema": "single", "maps": [
        {"name": "a", "map_type": 2, "value_size": 4, "max_entries": 1},
        {"name": "b", "map_type": 2, "value_size": 4, "max_entries": 1},
        {"name": "c", "map_type": 2, "value_size": 4, "max_entries": 1},
        {"name": "d", "map_type": 2, "value_size": 4, "max_entries": 1,
         "value": {"kind": "struct", "type_name": null, "members": [
             {"name": "x", "value": {"kind": "uint", "bits": -1, "value": 0}}]}}]});
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let e = parse(&text).unwrap_err();
    let Error::Invalid {
        schema,
        path,
        line,
        message,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*schema, "single");
    assert_eq!(path, "maps[3].value.members[0].value.bits");
    assert!(*line > 20, "line {line}");
    assert!(message.contains("invalid value: integer `-1`"), "{message}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("invalid single report at `maps[3].value.members[0].value.bits` (line"),
        "{shown}"
    );
}

#[test]
fn null_is_written_for_task_clock_and_enum_variant() {
    let p = VcpuPerfSample::default();
    assert_eq!(to_value(&p)["task_clock_ns"], Value::Null);
    assert!(keys(&to_value(&p)).contains(&"task_clock_ns"));
    let e = RenderedValue::Enum {
        bits: 32,
        value: 3,
        variant: None,
        is_signed: false,
    };
    let v = to_value(&e);
    assert_eq!(v["variant"], Value::Null);
    assert_eq!(v["is_signed"], false);
    let s = RenderedValue::anon_struct(vec![]);
    assert_eq!(to_value(&s)["type_name"], Value::Null);
    // Absent on read: `None` / default.
    let back = value(r#"{"kind":"enum","bits":8,"value":1}"#);
    assert_eq!(
        back,
        RenderedValue::Enum {
            bits: 8,
            value: 1,
            variant: None,
            is_signed: false
        }
    );
    let back: VcpuPerfSample = serde_json::from_str(
        r#"{"cycles":1,"instructions":2,"cache_misses":3,"branch_misses":4,"time_enabled_ns":5,"time_running_ns":6}"#,
    )
    .unwrap();
    assert_eq!(back.task_clock_ns, None);
}

#[test]
fn empty_false_and_zero_fields_are_absent() {
    let map = FailureDumpMap {
        name: "m".into(),
        ..Default::default()
    };
    assert_eq!(
        keys(&to_value(&map)),
        ["map_type", "max_entries", "name", "value_size"]
    );
    let st = FailureDumpStackTrace::default();
    assert_eq!(keys(&to_value(&st)), ["entries", "n_buckets"]);
    let fd = FailureDumpFdArray::default();
    assert_eq!(keys(&to_value(&fd)), ["populated", "scanned"]);
    let a = ArenaSnapshot::default();
    assert_eq!(
        keys(&to_value(&a)),
        ["declared_pages", "kern_vm_start", "user_vm_start"]
    );
    let rq = RqScxState::default();
    assert_eq!(
        keys(&to_value(&rq)),
        [
            "cpu",
            "cpu_released",
            "flags",
            "nr_running",
            "ops_qseq",
            "runnable_task_kvas"
        ],
        "runnable_task_kvas is always written"
    );
    let g = GuestSetupFailureContext::default();
    assert!(keys(&to_value(&g)).is_empty());
    let d = DualFailureDumpReport::default();
    assert_eq!(
        keys(&to_value(&d)),
        ["late", "schema"],
        "a dual's early: null is dropped"
    );
    let dg = DegradedFailureDumpReport::default();
    assert_eq!(
        keys(&to_value(&dg)),
        ["bss_latch_state", "reason", "schema", "watchpoint_hit"]
    );
    let p = RenderedValue::ptr(5);
    assert_eq!(keys(&to_value(&p)), ["kind", "value"]);
    // scx_static_ranges: dropped only with no ranges and skipped == 0.
    let mut r = FailureDumpReport::default();
    assert!(!keys(&to_value(&r)).contains(&"scx_static_ranges"));
    r.scx_static_ranges.skipped = 1;
    assert_eq!(to_value(&r)["scx_static_ranges"], json!({"skipped": 1}));
}

#[test]
fn explicit_null_only_for_options() {
    let r = single(
        r#"{"schema":"single","maps":[],"active_obj_name":null,"scx_sched_state":null,
            "dump_truncated_at_us":null,"probe_counters":null}"#,
    );
    assert_eq!(r, FailureDumpReport::default());
    let v = value(
        r#"{"kind":"ptr","value":1,"deref":null,"deref_skipped_reason":null,"cast_annotation":null}"#,
    );
    assert_eq!(v, RenderedValue::ptr(1));
    for (field, value) in [
        ("maps", "null"),
        ("vcpu_regs", "null"),
        ("active_map_kvas", "null"),
        ("is_placeholder", "null"),
        ("maps_truncated", "null"),
        ("scx_static_ranges", "null"),
    ] {
        let doc = if field == "maps" {
            format!(r#"{{"schema":"single","maps":{value}}}"#)
        } else {
            format!(r#"{{"schema":"single","maps":[],"{field}":{value}}}"#)
        };
        let (path, msg) = invalid(&doc);
        assert_eq!(path, field);
        assert!(msg.starts_with("invalid type: null"), "{field}: {msg}");
        assert!(
            dump_schema::validate::validate_report_json(&doc).is_err(),
            "{field}"
        );
    }
    not_a_value(r#"{"kind":"int","bits":null,"value":1}"#);
    not_a_value(r#"{"kind":"struct","type_name":null,"members":null}"#);
}

#[test]
fn duplicate_keys_are_errors() {
    let (_, msg) = invalid(r#"{"schema":"single","maps":[],"maps":[]}"#);
    assert!(msg.contains("duplicate field `maps`"), "{msg}");
    let (path, msg) = invalid(
        r#"{"schema":"single","maps":[{"name":"a","name":"b","map_type":1,"value_size":1,"max_entries":1}]}"#,
    );
    assert_eq!(path, "maps[0]");
    assert!(msg.contains("duplicate field `name`"), "{msg}");
    for v in [
        r#"{"kind":"int","bits":1,"bits":2,"value":0}"#,
        r#"{"kind":"int","kind":"int","bits":1,"value":0}"#,
        r#"{"bits":1,"bits":2,"kind":"int","value":0}"#,
        r#"{"bits":1,"kind":"int","bits":2,"value":0}"#,
    ] {
        let e = not_a_value(v);
        assert!(e.to_string().contains("duplicate field"), "{v}: {e}");
    }
    // `schema` given twice, and `schema` not first with a duplicate.
    assert!(parse(r#"{"schema":"single","schema":"single","maps":[]}"#).is_err());
    assert!(parse(r#"{"maps":[],"schema":"single","maps":[]}"#).is_err());
}

#[test]
fn unknown_keys_are_ignored() {
    let r = single(
        r#"{"future":{"a":[1,2]},"schema":"single","maps":[{"name":"m","map_type":1,"value_size":4,
            "max_entries":1,"new_field":true,"value":{"later":1,"kind":"uint","bits":8,"value":3,
            "members":[1]}}],"another":null}"#,
    );
    assert_eq!(r.maps[0].value, Some(uint(8, 3)));
}

#[test]
fn kind_need_not_be_first() {
    let v = value(
        r#"{"type_name":"t","members":[{"value":{"value":-5,"bits":16,"kind":"int"},"name":"x"}],"kind":"struct"}"#,
    );
    assert_eq!(
        v,
        RenderedValue::named_struct("t", vec![m("x", int(16, -5))])
    );
    let e = not_a_value(r#"{"bits":"x","kind":"int","value":1}"#);
    assert!(e.to_string().contains("invalid type"), "{e}");
}

#[test]
fn unknown_kind_names_the_known_ones() {
    let e = not_a_value(r#"{"kind":"quux"}"#);
    let s = e.to_string();
    assert!(
        s.contains("unknown variant `quux`") && s.contains("cpu_list"),
        "{s}"
    );
    let e = not_a_value(r#"{"value":1}"#);
    assert!(e.to_string().contains("missing field `kind`"), "{e}");
    let e = not_a_value(r#"[1]"#);
    assert!(e.to_string().contains("expected a rendered value"), "{e}");
}

#[test]
fn softirqs_has_exactly_ten_entries() {
    let doc = |n: usize| {
        let list = vec!["7"; n].join(",");
        format!(
            r#"{{"schema":"single","maps":[],"per_cpu_time":[{{"cpu":0,"cpustat_user_ns":0,"cpustat_nice_ns":0,
            "cpustat_system_ns":0,"cpustat_softirq_ns":0,"cpustat_irq_ns":0,"cpustat_idle_ns":0,
            "cpustat_iowait_ns":0,"cpustat_steal_ns":0,"softirqs":[{list}],"irqs_sum":0}}]}}"#
        )
    };
    assert_eq!(single(&doc(10)).per_cpu_time[0].softirqs, [7; 10]);
    for n in [0, 9, 11] {
        let (path, msg) = invalid(&doc(n));
        assert_eq!(path, "per_cpu_time[0].softirqs", "{n}");
        assert!(
            msg.contains("length") || msg.contains("more elements"),
            "{n}: {msg}"
        );
    }
}

#[test]
fn floats_carry_a_fraction_or_exponent_and_round_trip() {
    let f = |v: f64| RenderedValue::Float { bits: 64, value: v };
    let text = |v: f64| serde_json::to_string(&f(v)).unwrap();
    assert_eq!(text(3.0), r#"{"kind":"float","bits":64,"value":3.0}"#);
    assert_eq!(text(1e21), r#"{"kind":"float","bits":64,"value":1e+21}"#);
    assert_eq!(text(-0.0), r#"{"kind":"float","bits":64,"value":-0.0}"#);
    for v in [
        0.1 + 0.2,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        -1.5e-300,
        123_456_789.123_456_78,
        1.0 / 3.0,
        9_007_199_254_740_992.0,
    ] {
        let s = text(v);
        let number = s.rsplit(':').next().unwrap().trim_end_matches('}');
        assert!(number.contains(['.', 'e', 'E']), "{s}");
        let RenderedValue::Float { value, .. } = serde_json::from_str(&s).unwrap() else {
            panic!()
        };
        assert_eq!(value.to_bits(), v.to_bits(), "{s}");
    }
    // NaN and infinities cannot be written as numbers: they become `unsupported`.
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let back = value(&text(v));
        assert_eq!(back, RenderedValue::unsupported(reasons::NON_FINITE_FLOAT));
    }
    // An integer where a float is expected still reads.
    let back = value(r#"{"kind":"float","bits":32,"value":2}"#);
    assert_eq!(
        back,
        RenderedValue::Float {
            bits: 32,
            value: 2.0
        }
    );
}

#[test]
fn u64_max_round_trips_as_an_integer() {
    let r = FailureDumpReport {
        maps: vec![FailureDumpMap {
            map_kva: u64::MAX,
            value: Some(RenderedValue::Ptr {
                value: u64::MAX,
                deref: Some(Box::new(uint(64, u64::MAX))),
                deref_skipped_reason: None,
                cast_annotation: None,
            }),
            ..Default::default()
        }],
        active_map_kvas: vec![u64::MAX],
        dump_truncated_at_us: Some(u64::MAX),
        ..Default::default()
    };
    let json = r.to_json().unwrap();
    assert!(json.contains("18446744073709551615"));
    assert!(!json.contains("\"18446744073709551615\""), "never a string");
    assert_eq!(single(&json), r);
    let i = int(64, i64::MIN);
    let back: RenderedValue = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(back, i);
}

#[test]
fn schema_dispatch_has_no_fallback() {
    assert_eq!(parse(r#"{"maps":[]}"#).unwrap_err(), Error::MissingSchema);
    assert_eq!(
        parse(r#"{"schema":null,"maps":[]}"#).unwrap_err(),
        Error::MissingSchema
    );
    let e = parse(r#"{"schema":"double","maps":[]}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"unknown schema "double": expected one of "single", "dual", "degraded""#
    );
    let e = parse(r#"{"maps":[],"schema":7}"#).unwrap_err();
    assert_eq!(e, Error::UnknownSchema { found: "7".into() });
    // `schema` after other keys still dispatches.
    let r = parse(r#"{"late":{"maps":[],"schema":"single"},"schema":"dual"}"#).unwrap();
    assert!(matches!(r, FailureDumpReportAny::Dual(_)));
    let r = parse(
        r#"{"reason":"x","watchpoint_hit":true,"bss_latch_state":"triggered","schema":"degraded"}"#,
    )
    .unwrap();
    assert_eq!(r.schema(), "degraded");
}

#[test]
fn hex_helpers() {
    assert_eq!(hex(&[0, 0xab, 0x10]), "00 ab 10");
    assert_eq!(hex(&[]), "");
    assert_eq!(parse_hex("00 ab 10"), Some(vec![0, 0xab, 0x10]));
    assert_eq!(parse_hex(""), Some(vec![]));
    for bad in ["0", "AB", "00  01", "zz", "00 "] {
        assert_eq!(parse_hex(bad), None, "{bad}");
    }
}

#[test]
fn reason_strings_are_byte_exact() {
    assert_eq!(
        reasons::degraded_reason(reasons::RENDEZVOUS_ABORTED, 12, 3, 4),
        "vCPU rendezvous aborted by external kill before parked acknowledgement: 12ms; 3/4 vCPUs parked"
    );
    assert_eq!(
        reasons::scx_walker_partial(&["a", "b"]),
        "scx walker partial: missing offset groups [a, b]"
    );
    assert_eq!(
        reasons::early_max_age_never_crossed(5, 10),
        "max_age never crossed threshold (peak=5j, threshold=10j)"
    );
    assert_eq!(
        reasons::SCX_ROOT_NULL,
        "scx_root is NULL (no scheduler attached)"
    );
    assert_eq!(
        reasons::USER_VM_START_UNALIGNED,
        "user_vm_start is not 4 GiB-aligned; low-32 keying disabled"
    );
    assert_eq!(
        reasons::EARLY_SCX_TICK_STALL,
        "scx_tick stall — no per-task runnable_at data"
    );
    assert_eq!(map_type::name(map_type::ARENA), Some("arena"));
    assert_eq!(map_type::name(map_type::STRUCT_OPS), Some("struct_ops"));
    assert_eq!(map_type::name(1000), None);
}
