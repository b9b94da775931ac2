//! Bad input: each case a clear error — no panic, no stack overflow. Values nested deeper than
//! anything sane, read from JSON or built in code, are handled without recursion blow-ups.

mod common;

use common::{m, uint};
use dump_schema::*;

fn err(json: &str) -> Error {
    FailureDumpReportAny::from_json(json).expect_err("must be rejected")
}

#[test]
fn empty_input() {
    for s in ["", " ", "\n\t  \r\n"] {
        assert_eq!(err(s), Error::Empty);
    }
    assert_eq!(
        Error::Empty.to_string(),
        "empty input: expected a JSON failure dump (an object with a `schema` key)"
    );
}

#[test]
fn truncated_json_names_line_and_column() {
    let json = common::small_report().to_json_pretty().unwrap();
    // Every prefix of a small report, and a sample of prefixes of the full one.
    for cut in 1..json.len() {
        match err(&json[..cut]) {
            Error::Syntax { line, column, .. } => {
                let want_line = json[..cut].matches('\n').count() + 1;
                assert_eq!(line, want_line, "cut at {cut}");
                assert!(column <= json[..cut].lines().last().unwrap_or("").len() + 1);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let full = common::full_report().to_json().unwrap();
    for cut in (1..full.len()).step_by(211) {
        assert!(
            matches!(err(&full[..cut]), Error::Syntax { .. }),
            "cut at {cut}"
        );
    }
    let e = err("{\"schema\": \"single\",\n \"maps\": [");
    assert_eq!(
        e.to_string(),
        "invalid JSON at line 2, column 10: EOF while parsing a list"
    );
}

#[test]
fn not_json_and_not_objects() {
    assert!(matches!(
        err("schema: single"),
        Error::Syntax {
            line: 1,
            column: 1,
            ..
        }
    ));
    assert!(matches!(
        err("{\"schema\":\"single\",}"),
        Error::Syntax { .. }
    ));
    assert!(matches!(err("{} {}"), Error::Syntax { .. }));
    for (doc, found) in [
        ("[]", "an array"),
        ("\"single\"", "a string"),
        ("42", "a number"),
        ("-1", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ] {
        assert_eq!(err(doc), Error::NotAnObject { found }, "{doc}");
    }
    let e =
        FailureDumpReportAny::from_slice(b"{\"schema\":\"single\",\"maps\":[], \"x\":\"\xff\"}")
            .unwrap_err();
    assert!(e.to_string().contains("invalid UTF-8"), "{e}");
}

#[test]
fn wrong_types_name_the_field() {
    for (doc, path, what) in [
        (
            r#"{"schema":"single","maps":{}}"#,
            "maps",
            "invalid type: map",
        ),
        (
            r#"{"schema":"single","maps":[],"maps_truncated":-1}"#,
            "maps_truncated",
            "invalid value: integer `-1`",
        ),
        (
            r#"{"schema":"single","maps":[],"is_placeholder":"yes"}"#,
            "is_placeholder",
            "invalid type: string",
        ),
        (
            r#"{"schema":"single","maps":[],"dump_truncated_at_us":1.5}"#,
            "dump_truncated_at_us",
            "invalid type: floating point",
        ),
        (
            r#"{"schema":"single","maps":[],"active_map_kvas":[18446744073709551616]}"#,
            "active_map_kvas[0]",
            "invalid type: floating point",
        ),
        (
            r#"{"schema":"dual","late":{"schema":"single","maps":[{"name":1}]}}"#,
            "late.maps[0].name",
            "invalid type: integer",
        ),
        (
            r#"{"schema":"degraded","reason":"r","watchpoint_hit":1,"bss_latch_state":"x"}"#,
            "watchpoint_hit",
            "invalid type: integer",
        ),
        (
            r#"{"schema":"single","maps":[{"name":"m","map_type":1,"value_size":1,"max_entries":1,
               "value":{"kind":"char","value":300}}]}"#,
            "maps[0].value.value",
            "invalid value: integer `300`",
        ),
        (
            r#"{"schema":"single","maps":[{"name":"m","map_type":1,"value_size":1,"max_entries":1,
               "value":{"kind":7}}]}"#,
            "maps[0].value.kind",
            "invalid type: integer",
        ),
        (
            r#"{"schema":"single","maps":[{"name":"m","map_type":1,"value_size":1,"max_entries":1,
               "value":{"kind":"truncated","needed":2,"had":1}}]}"#,
            "maps[0].value",
            "missing field `partial`",
        ),
        (
            r#"{"schema":"single","maps":[{"name":"m","map_type":1,"value_size":1,"max_entries":1,
               "value":{"value":"x","kind":"uint","bits":8}}]}"#,
            "maps[0].value",
            "invalid type: a string, expected u64 in `value`",
        ),
    ] {
        match err(doc) {
            Error::Invalid {
                path: p, message, ..
            } => {
                assert_eq!(p, path, "{doc}");
                assert!(message.starts_with(what), "{doc}: {message}");
            }
            other => panic!("{doc}: {other:?}"),
        }
    }
}

#[test]
fn unknown_schema_names_value_and_known_ones() {
    let e = err(r#"{"schema":"single-v2","maps":[]}"#);
    assert_eq!(
        e,
        Error::UnknownSchema {
            found: "\"single-v2\"".into()
        }
    );
    let text = e.to_string();
    for s in ["single-v2", "\"single\"", "\"dual\"", "\"degraded\""] {
        assert!(text.contains(s), "{text}");
    }
    assert!(matches!(
        err(r#"{"schema":["single"]}"#),
        Error::UnknownSchema { .. }
    ));
}

/// `{"schema":"single","maps":[{... "value": <v>}]}` around a value's JSON.
fn report_with_value_json(value: &str) -> String {
    format!(
        r#"{{"schema":"single","maps":[{{"name":"m","map_type":2,"value_size":8,"max_entries":1,"value":{value}}}]}}"#
    )
}

#[test]
fn deeply_nested_json_is_refused_clearly() {
    const DEPTH: usize = 10_000;
    // A pointer chain 10,000 levels deep.
    let mut v = String::new();
    for _ in 0..DEPTH {
        v.push_str(r#"{"kind":"ptr","value":1,"deref":"#);
    }
    v.push_str(r#"{"kind":"bool","value":true}"#);
    v.push_str(&"}".repeat(DEPTH));
    let e = err(&report_with_value_json(&v));
    assert!(matches!(e, Error::TooDeep { line: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("nested too deeply"), "{e}");
    // Nested structs, and nested arrays.
    let mut v = String::new();
    for _ in 0..DEPTH {
        v.push_str(r#"{"kind":"struct","type_name":null,"members":[{"name":"a","value":"#);
    }
    let e = err(&report_with_value_json(&v));
    assert!(matches!(e, Error::TooDeep { .. }), "{e:?}");
    let arrays = "[".repeat(DEPTH) + &"]".repeat(DEPTH);
    match err(&report_with_value_json(&arrays)) {
        Error::Invalid { path, message, .. } => {
            assert_eq!(path, "maps[0].value");
            assert!(message.contains("expected a rendered value"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Typed reading of a bare value is bounded the same way.
    let mut v = String::new();
    for _ in 0..DEPTH {
        v.push_str(r#"{"kind":"ptr","value":1,"deref":"#);
    }
    let e = serde_json::from_str::<RenderedValue>(&v).unwrap_err();
    assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
}

/// A pointer chain `depth` levels deep, built without recursion.
fn ptr_chain(depth: usize) -> RenderedValue {
    let mut v = uint(8, 1);
    for i in 0..depth {
        v = RenderedValue::Ptr {
            value: i as u64 + 1,
            deref: Some(Box::new(v)),
            deref_skipped_reason: None,
            cast_annotation: None,
        };
    }
    v
}

/// Structs nested `depth` levels, with arrays and anonymous members on the way.
fn struct_chain(depth: usize) -> RenderedValue {
    let mut v = uint(8, 1);
    for i in 0..depth {
        v = match i % 3 {
            0 => RenderedValue::named_struct("s", vec![m("x", uint(32, 2)), m("next", v)]),
            1 => RenderedValue::Array {
                len: 2,
                elements: vec![uint(8, 3), v],
            },
            _ => RenderedValue::anon_struct(vec![m("", v)]),
        };
    }
    v
}

#[test]
fn deep_values_built_in_code_are_safe() {
    const DEPTH: usize = 100_000;
    for (name, v) in [
        ("ptr", ptr_chain(DEPTH)),
        ("struct", struct_chain(DEPTH)),
        (
            "truncated",
            (0..DEPTH).fold(uint(8, 1), |v, _| RenderedValue::Truncated {
                needed: 2,
                had: 1,
                partial: Box::new(v),
            }),
        ),
    ] {
        // Display and Debug stop at MAX_DISPLAY_DEPTH.
        let shown = v.to_string();
        assert!(shown.contains('…'), "{name}");
        assert!(shown.len() < 1_000_000, "{name}: {}", shown.len());
        let dbg = format!("{v:?}");
        assert!(dbg.contains('…'), "{name}");
        // Equality, cloning and depth are iterative.
        assert!(v == v, "{name}");
        let copy = v.clone();
        assert!(copy == v, "{name}");
        drop(copy);
        assert!(v.json_depth() > DEPTH, "{name}");
        // Writing cuts the value where a reader would refuse it, and the result reads back
        // and validates.
        let report = FailureDumpReport {
            maps: vec![FailureDumpMap {
                name: name.into(),
                value: Some(v),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = report.to_json().unwrap();
        assert!(json.contains(reasons::RENDERED_TOO_DEEP), "{name}");
        let mut fast = Vec::new();
        dump_schema::to_writer_compact(&mut fast, &report).unwrap();
        assert!(fast == json.as_bytes(), "{name}: the fast writer differs");
        let back = FailureDumpReportAny::from_json(&json).unwrap();
        let FailureDumpReportAny::Single(back) = back else {
            panic!()
        };
        let depth = back.maps[0].value.as_ref().unwrap().json_depth();
        assert!(depth <= MAX_JSON_DEPTH, "{name}: {depth}");
        dump_schema::validate::validate_report_json(&json).unwrap();
        // Dropping `report` (and `back`) must not recurse either.
    }
}

#[test]
fn deep_values_in_a_small_stack() {
    // The same operations on a thread with a 256 KiB stack: nothing here may need more.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let v = ptr_chain(50_000);
            let _ = v.to_string();
            let _ = serde_json::to_string(&v).unwrap();
            dump_schema::to_writer_compact(&mut std::io::sink(), &v).unwrap();
            assert!(v == v);
            assert!(v.clone() == v);
            drop(v);
            let v = struct_chain(50_000);
            let _ = v.to_string();
            drop(v);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn values_at_the_write_limit_round_trip_exactly() {
    // The deepest pointer chain written in full: MAX_JSON_DEPTH JSON levels.
    let v = ptr_chain(MAX_JSON_DEPTH - 1);
    assert_eq!(v.json_depth(), MAX_JSON_DEPTH);
    let report = FailureDumpReport {
        maps: vec![FailureDumpMap {
            value: Some(v),
            ..Default::default()
        }],
        ..Default::default()
    };
    let json = report.to_json().unwrap();
    assert!(!json.contains(reasons::RENDERED_TOO_DEEP));
    dump_schema::validate::validate_report_json(&json).unwrap();
    assert_eq!(
        FailureDumpReportAny::from_json(&json).unwrap(),
        report.clone().into()
    );
    // Inside a dual's early report's percpu hash entry (the deepest place a value sits).
    let mut deep = FailureDumpReport::default();
    deep.maps.push(FailureDumpMap {
        percpu_hash_entries: vec![FailureDumpPercpuHashEntry {
            key: None,
            key_hex: String::new(),
            per_cpu: vec![Some(ptr_chain(MAX_JSON_DEPTH - 1))],
        }],
        ..Default::default()
    });
    let dual = DualFailureDumpReport {
        early: Some(deep.clone()),
        ..DualFailureDumpReport::new(deep)
    };
    let json = serde_json::to_string(&dual).unwrap();
    dump_schema::validate::validate_report_json(&json).unwrap();
    let back = FailureDumpReportAny::from_json(&json).unwrap();
    assert_eq!(back, dual.into());
}

#[test]
fn hundred_megabyte_document() {
    const SIZE: usize = 100 << 20;
    // Built as text (building 100 MB of values is slow in debug builds): one busy hash map,
    // repeated.
    let one = common::busy_map(0);
    let one = serde_json::to_string(&one).unwrap();
    let copies = SIZE / (one.len() + 1) + 1;
    let mut json = String::with_capacity(copies * (one.len() + 1) + 64);
    json.push_str(r#"{"schema":"single","maps":["#);
    for i in 0..copies {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&one);
    }
    json.push_str("]}");
    assert!(json.len() >= SIZE);
    // The document is `copies` times the same map: validating one copy validates them all
    // (validating 100 MB through `serde_json::Value` would only cost time).
    dump_schema::validate::validate_report_json(&format!(
        r#"{{"schema":"single","maps":[{one},{one}]}}"#
    ))
    .unwrap();
    let t = std::time::Instant::now();
    // Valid: reads whole.
    let FailureDumpReportAny::Single(back) = FailureDumpReportAny::from_json(&json).unwrap() else {
        panic!()
    };
    assert_eq!(back.maps.len(), copies);
    assert_eq!(serde_json::to_string(&back.maps[copies - 1]).unwrap(), one);
    drop(back);
    eprintln!("valid: {:?}", t.elapsed());
    // Cut short: a syntax error at the very end, with its column.
    let cut = &json[..json.len() - 3];
    match err(cut) {
        Error::Syntax { line, column, .. } => {
            assert_eq!(line, 1);
            assert_eq!(column, cut.len());
        }
        other => panic!("{other:?}"),
    }
    eprintln!("cut: {:?}", t.elapsed());
    // A wrong type early on: the path names the field.
    let i = json.find("\"bits\":32").unwrap();
    json.replace_range(i..i + 9, "\"bits\":-1");
    match err(&json) {
        Error::Invalid { path, .. } => {
            assert_eq!(path, "maps[0].entries[0].key.bits")
        }
        other => panic!("{other:?}"),
    }
    drop(json);
    eprintln!("wrong: {:?}", t.elapsed());
    // A 100 MB string where a name belongs reads (honest sizes have no limit).
    let long = format!(
        r#"{{"schema":"single","maps":[{{"name":"{}","map_type":1,"value_size":1,"max_entries":1}}]}}"#,
        "n".repeat(SIZE)
    );
    let FailureDumpReportAny::Single(r) = FailureDumpReportAny::from_json(&long).unwrap() else {
        panic!()
    };
    assert_eq!(r.maps[0].name.len(), SIZE);
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    /// What a reader may meet: valid dumps with bytes flipped, dropped or inserted. Reading
    /// never panics, and whatever reads renders and writes again.
    fn check(doc: &[u8]) {
        if let Ok(r) = FailureDumpReportAny::from_slice(doc) {
            let _ = r.to_string();
            let json = r.to_json().unwrap();
            assert_eq!(FailureDumpReportAny::from_json(&json).unwrap(), r);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn mutated_documents_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..6)
        ) {
            let mut doc = common::full_report().to_json().unwrap().into_bytes();
            for (at, op, byte) in edits {
                let i = at.index(doc.len());
                // Bytes that keep the document near-valid are the interesting ones.
                const PICKS: &[u8] = b"{}[],:\"0123456789-.eE ntfaul\\";
                let b = PICKS[usize::from(byte) % PICKS.len()];
                match op {
                    0 => doc[i] = b,
                    1 => { doc.remove(i); }
                    _ => doc.insert(i, b),
                }
            }
            check(&doc);
        }
    }
}

/// A writer that fails part way: the compact writer returns its error (a full disk), and
/// the thread can write again afterwards.
#[test]
fn compact_writer_returns_the_outputs_error() {
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let big = RenderedValue::Array {
        len: 4096,
        elements: (0..4096).map(|i| uint(64, i)).collect(),
    };
    let report = FailureDumpReport {
        maps: (0..8)
            .map(|i| FailureDumpMap {
                name: format!("m{i}"),
                value: Some(big.clone()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let e = dump_schema::to_writer_compact(&mut Full(300_000), &report).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
    let mut ok = Vec::new();
    dump_schema::to_writer_compact(&mut ok, &report).unwrap();
    assert!(ok == report.to_json().unwrap().as_bytes());
}
