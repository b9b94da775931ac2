//! Validation of JSON documents against the committed JSON Schemas (`schema/*.json`,
//! generated from these types by `cargo xtask schema`), behind the `validate` feature.
//!
//! Test suites hold every JSON they produce to the published contract with
//! [`validate_report_json`], not only to what the Rust types happen to accept. Enable it in
//! a crate's `[dev-dependencies]`: `dump-schema = { workspace = true, features =
//! ["validate"] }`.

use std::sync::OnceLock;

use jsonschema::Validator;

/// The committed schemas, embedded at build time.
const SCHEMAS: [(&str, &str); 5] = [
    ("single", include_str!("../../../schema/single.json")),
    ("dual", include_str!("../../../schema/dual.json")),
    ("degraded", include_str!("../../../schema/degraded.json")),
    ("any", include_str!("../../../schema/any.json")),
    ("diff", include_str!("../../../schema/diff.json")),
];

/// At most this many schema violations are listed in an error.
const MAX_LISTED: usize = 20;

fn validator(name: &str) -> &'static Validator {
    static VALIDATORS: OnceLock<Vec<(&'static str, Validator)>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(n, text)| {
                let schema: serde_json::Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("schema/{n}.json is not JSON: {e}"));
                let v = jsonschema::draft202012::new(&schema)
                    .unwrap_or_else(|e| panic!("schema/{n}.json is not a valid schema: {e}"));
                (*n, v)
            })
            .collect()
    });
    &all.iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no schema named {name}"))
        .1
}

/// Validates `json` against `schema/any.json`.
///
/// `Err` lists, for a person, why the document is not a failure dump: invalid JSON, or each
/// violation with its JSON pointer. When the document names a known `schema`, violations are
/// reported against that report's own schema, which says more than "matches none of `oneOf`".
pub fn validate_report_json(json: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    if validator("any").is_valid(&doc) {
        return Ok(());
    }
    let named = doc.get("schema").and_then(|s| s.as_str());
    let specific = match named {
        Some(n @ ("single" | "dual" | "degraded")) => n,
        Some(other) => {
            return Err(format!(
                "unknown schema {other:?}: expected \"single\", \"dual\" or \"degraded\""
            ));
        }
        None => "any",
    };
    let errors = violations(specific, &doc);
    if errors.is_empty() {
        // Valid against its own schema but not `any`: cannot happen while `any` is the oneOf
        // of the three, but never report success for an invalid document.
        return Err("does not match schema/any.json".to_string());
    }
    Err(format!(
        "does not match schema/{specific}.json:\n  {}",
        errors.join("\n  ")
    ))
}

/// Validates `json` against `schema/<name>.json` (`single`, `dual`, `degraded`, `any`,
/// `diff`).
pub fn validate_json_against(name: &str, json: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let errors = violations(name, &doc);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "does not match schema/{name}.json:\n  {}",
            errors.join("\n  ")
        ))
    }
}

/// Validates `json` against the schemas and parses it as a single report; panics (with
/// the violations, or the schema it has instead) otherwise. For tests of tools that
/// print one report.
pub fn single_report(json: &str) -> crate::FailureDumpReport {
    if let Err(e) = validate_report_json(json) {
        panic!("the report does not validate: {e}");
    }
    match crate::FailureDumpReportAny::from_json(json) {
        Ok(crate::FailureDumpReportAny::Single(r)) => r,
        Ok(other) => panic!("expected a single report, got {}", other.schema()),
        Err(e) => panic!("the report does not parse: {e}"),
    }
}

fn violations(name: &str, doc: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut total = 0usize;
    for e in validator(name).iter_errors(doc) {
        total += 1;
        if out.len() < MAX_LISTED {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            out.push(format!("at {at}: {e}"));
        }
    }
    if total > out.len() {
        out.push(format!("… and {} more", total - out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_minimal_reports() {
        validate_report_json(r#"{"schema":"single","maps":[]}"#).unwrap();
        validate_report_json(r#"{"schema":"dual","late":{"schema":"single","maps":[]}}"#).unwrap();
        validate_report_json(
            r#"{"schema":"degraded","reason":"r","watchpoint_hit":false,"bss_latch_state":"triggered"}"#,
        )
        .unwrap();
    }

    #[test]
    fn rejects_with_a_pointer_to_the_field() {
        let e = validate_report_json(
            r#"{"schema":"single","maps":[{"name":"m","map_type":2,"value_size":4,"max_entries":1,
                "value":{"kind":"int","bits":"32","value":1}}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("/maps/0/value"), "{e}");
        let e = validate_report_json(r#"{"schema":"single"}"#).unwrap_err();
        assert!(e.contains("maps"), "{e}");
        let e = validate_report_json(r#"{"schema":"triple","maps":[]}"#).unwrap_err();
        assert!(e.contains("unknown schema \"triple\""), "{e}");
        let e = validate_report_json(r#"{"maps":[]}"#).unwrap_err();
        assert!(e.contains("schema/any.json"), "{e}");
        let e = validate_report_json("{").unwrap_err();
        assert!(e.starts_with("not valid JSON"), "{e}");
    }

    #[test]
    fn single_report_parses_only_single() {
        let r = single_report(r#"{"schema":"single","maps":[]}"#);
        assert!(r.maps.is_empty());
        for bad in [
            r#"{"schema":"dual","late":{"schema":"single","maps":[]}}"#,
            r#"{"schema":"single"}"#,
            "{",
        ] {
            let e = std::panic::catch_unwind(|| single_report(bad));
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_wrong_softirq_count_and_null_vectors() {
        let cpu = |n: usize| {
            format!(
                r#"{{"schema":"single","maps":[],"per_cpu_time":[{{"cpu":0,"cpustat_user_ns":0,
                "cpustat_nice_ns":0,"cpustat_system_ns":0,"cpustat_softirq_ns":0,"cpustat_irq_ns":0,
                "cpustat_idle_ns":0,"cpustat_iowait_ns":0,"cpustat_steal_ns":0,
                "softirqs":[{}],"irqs_sum":0}}]}}"#,
                vec!["1"; n].join(",")
            )
        };
        validate_report_json(&cpu(10)).unwrap();
        assert!(validate_report_json(&cpu(9)).is_err());
        assert!(validate_report_json(&cpu(11)).is_err());
        assert!(validate_report_json(r#"{"schema":"single","maps":null}"#).is_err());
        assert!(
            validate_report_json(r#"{"schema":"single","maps":[],"cgroup_psi":null}"#).is_err()
        );
    }
}
