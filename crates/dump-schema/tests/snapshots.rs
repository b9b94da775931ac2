//! Display and JSON of every case, pinned by insta snapshots. Each JSON is also validated
//! against the committed schema and read back.

mod common;

use dump_schema::{FailureDumpReportAny, RenderedValue};

fn check_json(name: &str, json: &str) {
    if let Err(e) = dump_schema::validate::validate_report_json(json) {
        panic!("{name}: JSON does not match schema/any.json: {e}\n{json}");
    }
}

/// A report whose one map holds `value_json`, to validate a bare value against the schema.
fn in_report(value_json: &str) -> String {
    format!(
        r#"{{"schema":"single","maps":[{{"name":"m","map_type":2,"value_size":8,"max_entries":1,"value":{value_json}}}]}}"#
    )
}

#[test]
fn reports_display_and_json() {
    for (name, report) in common::every_report() {
        let json = report.to_json_pretty().unwrap();
        check_json(&name, &json);
        let back = FailureDumpReportAny::from_json(&json).unwrap();
        assert_eq!(back, report, "{name}: round trip");
        insta::assert_snapshot!(format!("{name}_display"), report.to_string());
        insta::assert_snapshot!(format!("{name}_json"), json);
    }
}

/// The scheduler-shaped report: its rendering is snapshotted; its JSON (large arrays, nearly
/// 1 MB pretty-printed) is validated and read back but not kept as a snapshot.
#[test]
fn scheduler_report_display() {
    let report = FailureDumpReportAny::from(common::scheduler_report());
    let json = report.to_json().unwrap();
    check_json("scheduler", &json);
    assert_eq!(FailureDumpReportAny::from_json(&json).unwrap(), report);
    insta::assert_snapshot!("scheduler_display", report.to_string());
}

#[test]
fn every_rendered_value_kind() {
    for (name, v) in common::every_kind() {
        let json = serde_json::to_string_pretty(&v).unwrap();
        check_json(name, &in_report(&json));
        let back: RenderedValue = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v, "{name}: round trip");
        insta::assert_snapshot!(
            format!("value_{name}"),
            format!("display: {v}\njson:\n{json}")
        );
    }
}

#[test]
fn wide_values_use_the_block_form() {
    let v = common::wide_struct();
    let text = v.to_string();
    assert!(text.lines().count() > 1);
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    check_json("wide", &in_report(&serde_json::to_string(&v).unwrap()));
    insta::assert_snapshot!("value_wide_block", text);
}
