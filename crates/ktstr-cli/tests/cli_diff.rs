//! `ktstr diff`: two dumps, or a dual dump's early snapshot against its late one, as text
//! and as JSON (schema `diff`), with its exit codes; and on a real stall (`ktstr run`, whose
//! dump is a dual report with an early snapshot), the diff names the victim's growing wait.

mod support;

use std::path::Path;

use dump_schema::diff::Change;
use dump_schema::{
    DegradedFailureDumpReport, DsqState, DualFailureDumpReport, FailureDumpReport,
    FailureDumpReportAny, ReportDiff, RqScxState, TaskEnrichment,
};
use guest_lab::testing::need_qemu;
use support::{ktstr, the_dump};

const VICTIM: u64 = 0xffff_8880_0149_0000;

/// A snapshot where `ktstr-victim[149]` has waited `age` jiffies on DSQ 0x101.
fn snapshot(age: u64) -> FailureDumpReport {
    FailureDumpReport {
        task_enrichments: vec![TaskEnrichment {
            pid: 149,
            tgid: 149,
            comm: "ktstr-victim".into(),
            task_kva: VICTIM,
            runnable_age_jiffies: Some(age),
            ..Default::default()
        }],
        rq_scx_states: vec![RqScxState {
            cpu: 1,
            runnable_task_kvas: vec![VICTIM],
            ..Default::default()
        }],
        dsq_states: vec![DsqState {
            id: 0x101,
            origin: "user".into(),
            nr: 1,
            task_kvas: vec![VICTIM],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, r: FailureDumpReportAny) {
    std::fs::write(dir.join(name), r.to_json().unwrap()).unwrap();
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn diff_of_two_dumps_and_of_a_dual_dump() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    write(p, "a.json", snapshot(252).into());
    write(p, "b.json", snapshot(504).into());
    let dual = DualFailureDumpReport {
        early: Some(snapshot(252)),
        ..DualFailureDumpReport::new(snapshot(504))
    };
    write(p, "dual.json", dual.into());
    write(
        p,
        "late-only.json",
        DualFailureDumpReport::new(snapshot(9)).into(),
    );
    let degraded = DegradedFailureDumpReport {
        exit_kind: Some(1026),
        ..Default::default()
    };
    write(p, "degraded.json", degraded.into());

    // Two dumps: exit 1, the victim's wait on top.
    let o = ktstr(&["diff", "a.json", "b.json"], p);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.starts_with("diff a.json → b.json\n"), "{text}");
    assert!(
        text.contains("  ktstr-victim[149]: waits 252j → 504j (+252j), dsq 0x101 (user) on cpu 1; did not run\n"),
        "{text}"
    );

    // One dual dump: early → late, the same change; as JSON too.
    let o = ktstr(&["diff", "dual.json", "--json"], p);
    assert_eq!(o.status.code(), Some(1));
    let json = stdout(&o);
    dump_schema::validate::validate_json_against("diff", &json).unwrap();
    let diff = ReportDiff::from_json(&json).unwrap();
    assert_eq!(
        (diff.a.label.as_str(), diff.b.label.as_str()),
        ("early", "late")
    );
    assert_eq!(diff.tasks.len(), 1);
    assert_eq!(
        diff.tasks[0].wait_jiffies.as_ref().unwrap().delta,
        Some(252)
    );
    let o = ktstr(&["diff", "dual.json", "--json", "--pretty"], p);
    assert_eq!(ReportDiff::from_json(&stdout(&o)).unwrap(), diff);

    // Identical: exit 0.
    let o = ktstr(&["diff", "a.json", "a.json"], p);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "diff a.json → a.json\nno differences\n");

    // Different kinds: said, and compared by what they share.
    let o = ktstr(&["diff", "a.json", "degraded.json"], p);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("note: different kinds of report: a is single, b is degraded"));

    // One dump that has no early snapshot, or is not dual: exit 2, one line saying why.
    for (file, why) in [
        ("a.json", "a.json: a single report has one snapshot"),
        (
            "late-only.json",
            "late-only.json: the dual dump has no early snapshot",
        ),
        ("missing.json", "missing.json: No such file or directory"),
    ] {
        let o = ktstr(&["diff", file], p);
        assert_eq!(o.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("ktstr: error: ") && err.contains(why),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let o = ktstr(&["diff", "a.json", "b.json", "--full", "--json"], p);
    assert_eq!(o.status.code(), Some(2), "--full is for the text");

    // The schema of the JSON.
    let o = ktstr(&["schema", "diff"], p);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        dump_schema::SchemaKind::Diff.schema_text(),
        "ktstr schema diff"
    );
}

/// The stall, for real: `ktstr run` (the `stall` scheduler; the dump is a dual report whose
/// early snapshot caught the victim waiting), then `ktstr diff` on that dump names the
/// victim first, waiting longer, on the same DSQ, not having run in between.
#[test]
fn guest_diff_of_the_stall_names_the_victims_growing_wait() {
    if !need_qemu() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let o = ktstr(&["run", "--out", "out"], d.path());
    assert_eq!(o.status.code(), Some(1), "a stall is a captured failure");
    let (path, json) = the_dump(&d.path().join("out"));
    let report = FailureDumpReportAny::from_json(&json).unwrap();
    let FailureDumpReportAny::Dual(dual) = &report else {
        panic!("expected a dual report, got {}", report.schema());
    };
    assert!(dual.early.is_some(), "{:?}", dual.early_skipped_reason);
    let path = path.to_str().unwrap();

    let o = ktstr(&["diff", path, "--json"], d.path());
    assert_eq!(o.status.code(), Some(1), "early and late differ");
    let json = stdout(&o);
    dump_schema::validate::validate_json_against("diff", &json).unwrap();
    let diff = ReportDiff::from_json(&json).unwrap();
    let victim = diff
        .tasks
        .iter()
        .find(|t| t.comm == "ktstr-victim")
        .unwrap_or_else(|| panic!("the victim is not in the diff: {:#?}", diff.tasks));
    assert_eq!(victim.change, Change::Changed);
    let w = victim.wait_jiffies.as_ref().expect("the victim's wait");
    let growth = w.delta.expect("a wait in both snapshots");
    assert!(growth > 0, "the victim's wait grew: {w:?}");
    let early_wait: u64 = w.a.as_deref().unwrap().parse().unwrap();
    assert!(
        early_wait >= dual.early_threshold_jiffies,
        "early wait {early_wait} below the threshold {}",
        dual.early_threshold_jiffies
    );
    assert_eq!(victim.ran, Some(false), "the victim did not run in between");
    let late_dsq = victim.place_b.as_ref().and_then(|p| p.dsq);
    assert_eq!(late_dsq, Some(0x101), "it still waits on the stall's DSQ");
    assert!(
        diff.report
            .iter()
            .any(|f| f.name == "exit_kind" && f.b.as_deref() == Some("1026")),
        "{:?}",
        diff.report
    );

    assert_wait_is_the_kernels(dual, w.b.as_deref().unwrap().parse().unwrap());

    // The text names it as the first task.
    let o = ktstr(&["diff", path], d.path());
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 60, "{} lines", lines.len());
    let tasks = lines
        .iter()
        .position(|l| l.starts_with("tasks:"))
        .expect("tasks");
    let first = lines[tasks + 1];
    let want = format!(
        "  ktstr-victim[{}]: waits {}j → {}j (+{growth}j), dsq 0x101 (user)",
        victim.pid,
        early_wait,
        w.b.as_deref().unwrap()
    );
    assert!(
        first.starts_with(&want),
        "{first:?} does not start with {want:?}"
    );
    assert!(first.ends_with("; did not run"), "{first}");
}

/// The victim's late wait, in jiffies, is what the kernel's watchdog measured when it ended
/// the scheduler (`ktstr-victim[N] failed to run for 2.368s`, computed from the same
/// `scx.runnable_at` a moment before the freeze), within two jiffies; HZ is the report's
/// own: `watchdog_timeout` (jiffies) over the scheduler's `timeout_ms`.
fn assert_wait_is_the_kernels(dual: &DualFailureDumpReport, late_wait: u64) {
    let late = &dual.late;
    let msg = late
        .exit_info
        .as_ref()
        .and_then(|e| e.msg.as_deref())
        .expect("the kernel's message");
    let secs: f64 = msg
        .split_once("failed to run for ")
        .and_then(|(_, rest)| rest.split_once('s'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {msg:?}"));
    let timeout_ms = late
        .maps
        .iter()
        .filter(|m| m.map_type == dump_schema::map_type::STRUCT_OPS)
        .find_map(|m| {
            m.value
                .as_ref()?
                .member("data")?
                .member("timeout_ms")?
                .as_u64()
        })
        .expect("the scheduler's timeout_ms");
    let watchdog = late.scx_sched_state.as_ref().unwrap().watchdog_timeout;
    let ms_per_jiffy = timeout_ms as f64 / watchdog as f64;
    let ours = late_wait as f64 * ms_per_jiffy;
    assert!(
        (ours - secs * 1000.0).abs() <= 2.0 * ms_per_jiffy,
        "late wait {late_wait}j = {ours} ms, the kernel says {msg:?}"
    );
}
