//! The committed JSON Schemas are what the code generates, and they accept what we write.

mod common;

use dump_schema::{FailureDumpReportAny, SchemaKind};

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn committed_schemas_match_the_code() {
    let mut stale = Vec::new();
    for kind in SchemaKind::ALL {
        let path = repo_file(&format!("schema/{}", kind.file_name()));
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != kind.schema_text() {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "committed schemas differ from the code; run `cargo xtask schema`: {stale:?}"
    );
}

#[test]
fn schemas_are_draft_2020_12_and_any_is_a_oneof_on_schema() {
    for kind in SchemaKind::ALL {
        let s = kind.schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }
    let any = SchemaKind::Any.schema();
    let one_of = any["oneOf"].as_array().expect("oneOf");
    let consts: Vec<&str> = one_of
        .iter()
        .map(|r| {
            let name = r["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            any["$defs"][name]["properties"]["schema"]["const"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(consts, ["single", "dual", "degraded"]);
    assert_eq!(SchemaKind::from_name("dual"), Some(SchemaKind::Dual));
    assert_eq!(SchemaKind::from_name("x"), None);
}

/// `schema/examples/sample.json` is the fully filled report of the tests (every section and
/// field), for consumers to try their readers on. `DUMP_SCHEMA_BLESS=1` rewrites it.
#[test]
fn sample_report_is_current_parses_and_validates() {
    let path = repo_file("schema/examples/sample.json");
    let want = FailureDumpReportAny::from(common::full_report())
        .to_json_pretty()
        .unwrap()
        + "\n";
    if std::env::var_os("DUMP_SCHEMA_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text == want,
        "{} is stale; rerun with DUMP_SCHEMA_BLESS=1",
        path.display()
    );
    dump_schema::validate::validate_report_json(&text).unwrap();
    let r = FailureDumpReportAny::from_json(&text).unwrap();
    // The sample is what the writer produces, byte for byte.
    assert_eq!(r.to_json_pretty().unwrap() + "\n", text);
}
