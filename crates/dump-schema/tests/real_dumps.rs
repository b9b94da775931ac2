//! The rendering of real dumps from the guest lab, pinned by insta snapshots: the stall run
//! (`ktstr run`, a dual report), an error run (`ktstr run --scheduler error`) and the largest
//! real scheduler's dump of the corpus (`scx_layered` under the mixed workload, captured at a
//! timeout). Each renders in its default view and through a filter or two; the properties
//! issue 14 asks of the default view are checked on each: at most 1,500 lines, no line a
//! single `char` element, no captured task shown only as its address, the first lines saying
//! what failed and who waits, every map and task within reach of a filter.
//!
//! The dumps are committed compressed (`tests/data/*.json.zst`, zstd of the compact JSON;
//! `tests/data/README.md` says how each was made), since real dumps differ from run to run.

use std::io::Read;

use dump_schema::{DisplayOptions, FailureDumpReport, FailureDumpReportAny, Filter};

/// Most lines the default view of a real scheduler's dump may take (issue 14).
const MAX_DEFAULT_LINES: usize = 1500;

fn load(name: &str) -> FailureDumpReportAny {
    let path = format!("{}/tests/data/{name}.json.zst", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut json = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(bytes.as_slice())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .read_to_end(&mut json)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    FailureDumpReportAny::from_slice(&json).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn snapshots(r: &FailureDumpReportAny) -> Vec<&FailureDumpReport> {
    match r {
        FailureDumpReportAny::Single(r) => vec![r],
        FailureDumpReportAny::Dual(d) => d.early.iter().chain([&d.late]).collect(),
        FailureDumpReportAny::Degraded(_) => Vec::new(),
    }
}

fn render(r: &FailureDumpReportAny, filter: &Filter, full: bool) -> String {
    filter.check(r).expect("the filter's names are in the dump");
    let opts = DisplayOptions {
        full,
        ..DisplayOptions::default()
    };
    r.display_filtered(&opts, filter).to_string()
}

fn filter(sections: &[&str], maps: &[&str], tasks: &[&str]) -> Filter {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    Filter {
        sections: v(sections),
        maps: v(maps),
        tasks: v(tasks),
    }
}

/// What issue 14 asks of the default view of a real dump.
fn check_default(name: &str, r: &FailureDumpReportAny, text: &str) {
    let lines = text.lines().count();
    let full = render(r, &Filter::default(), true);
    eprintln!(
        "{name}: default view {lines} lines, --full {} lines",
        full.lines().count()
    );
    assert!(lines <= MAX_DEFAULT_LINES, "{name}: {lines} lines");
    assert!(full.lines().count() >= lines, "{name}");
    // No line is one element of a char array (`[3]='s'`).
    let single_char = |l: &str| {
        let t = l.trim();
        t.starts_with('[') && t.ends_with('\'') && t.contains("]='") && t.len() <= 12
    };
    for text in [text, full.as_str()] {
        assert!(!text.lines().any(single_char), "{name}: a char per line");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{name}");
    }
    // The first line says what failed.
    assert!(text.starts_with("scheduler "), "{name}: {text:.200}");
    let snaps = snapshots(r);
    for (i, snap) in snaps.iter().enumerate() {
        check_names(name, i, snap, snaps.len(), &full);
    }
}

/// Every task address a DSQ or runnable list holds is printed by name when the dump has the
/// task, and that task's address appears nowhere in the text.
fn check_names(name: &str, snap: usize, r: &FailureDumpReport, tables: usize, full: &str) {
    let listed = r.dsq_states.iter().flat_map(|d| d.task_kvas.iter()).chain(
        r.rq_scx_states
            .iter()
            .flat_map(|q| q.runnable_task_kvas.iter()),
    );
    for kva in listed {
        if let Some(t) = r.task_enrichments.iter().find(|t| t.task_kva == *kva) {
            let shown = format!("{}[{}]", t.comm, t.pid);
            assert!(full.contains(&shown), "{name}[{snap}]: {shown} not named");
        }
    }
    for t in r.task_enrichments.iter().filter(|t| t.task_kva != 0) {
        let addr = format!("{:#x}", t.task_kva);
        // Only the task's own `task_kva` field shows it: once per snapshot's task table.
        let mentions = full.matches(&addr).count();
        assert!(
            mentions <= tables,
            "{name}[{snap}]: {addr} ({}) shown {mentions}×",
            t.comm
        );
    }
}

/// Every map and every task of the dump can be selected by a filter, and a filter prints
/// what it selects.
fn check_reach(name: &str, r: &FailureDumpReportAny) {
    for snap in snapshots(r) {
        for m in &snap.maps {
            let text = render(r, &filter(&[], &[&m.name], &[]), false);
            assert!(
                text.contains(&format!("map {} (", m.name)),
                "{name}: {}",
                m.name
            );
        }
        for t in snap.task_enrichments.iter().take(8) {
            let text = render(r, &filter(&[], &[], &[&t.pid.to_string()]), false);
            assert!(
                text.contains(&format!("task_kva={:#x}", t.task_kva)),
                "{name}"
            );
        }
    }
    for (section, _) in Filter::SECTIONS {
        render(r, &filter(&[section], &[], &[]), false);
    }
}

/// Loads `name`, checks its default view and the reach of its filters, and snapshots the
/// default view (`<name>_default`).
fn real(name: &str) -> (FailureDumpReportAny, String) {
    let r = load(name);
    let text = r.to_string();
    check_default(name, &r, &text);
    check_reach(name, &r);
    insta::assert_snapshot!(format!("{name}_default"), text.as_str());
    (r, text)
}

#[test]
fn stall_run() {
    let (r, text) = real("stall");
    // Who waits, by name, in the first lines.
    let head: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
    assert!(head.contains("SCX_EXIT_ERROR_STALL"), "{head}");
    assert!(
        head.contains("waiting on dsq 0x101 (user): 1 queued: ktstr-victim["),
        "{head}"
    );
    let victim = render(&r, &filter(&["runqueues"], &[], &["ktstr-victim"]), false);
    assert!(victim.contains("queued on DSQ 0x101 (user)"), "{victim}");
    insta::assert_snapshot!("stall_runqueues_and_victim", victim);
}

#[test]
fn error_run() {
    let (r, text) = real("error");
    assert!(
        text.starts_with("scheduler ktstr_ops: SCX_EXIT_ERROR_BPF (1025)"),
        "{text}"
    );
    let exit = render(&r, &filter(&["exit", "programs"], &[], &[]), false);
    insta::assert_snapshot!("error_exit_and_programs", exit);
}

#[test]
fn scx_layered() {
    let (r, _) = real("scx_layered");
    let tasks_and_bss = render(&r, &filter(&["tasks"], &["bss"], &[]), false);
    assert!(
        tasks_and_bss.contains("tasks: 99 captured"),
        "{tasks_and_bss}"
    );
    insta::assert_snapshot!("scx_layered_tasks_and_bss", tasks_and_bss);
}

/// The fast compact writer (what `ktstr` writes dumps with) writes each real dump byte for
/// byte as serde_json does.
#[test]
fn fast_compact_writer_on_real_dumps() {
    for name in ["stall", "error", "scx_layered"] {
        let r = load(name);
        let mut fast = Vec::new();
        dump_schema::to_writer_compact(&mut fast, &r).unwrap();
        let plain = r.to_json().unwrap();
        assert!(fast == plain.as_bytes(), "{name}: the fast writer differs");
        assert!(plain.len() > 10_000, "{name}");
    }
}
