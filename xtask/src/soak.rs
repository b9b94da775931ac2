//! `cargo xtask soak trigger [--runs N] [--scheduler stall|error]`: runs `ktstr run` N
//! times on the lab guest (release build) and counts, per run, what the exact-instant
//! issue asks of every capture: frozen by the watchpoint, the raw exit kind in guest
//! memory at the first stop is the error (not `SCX_EXIT_DONE`), the second stop read
//! `exit_info`, its message names what it should, and (stall) the victim still waits on
//! the scheduler's DSQ. Not part of CI (20 runs take tens of minutes under TCG); the
//! closing notes quote its table.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One run's verdicts.
#[derive(Default, Debug)]
struct Verdict {
    exit_code: Option<i32>,
    watchpoint: bool,
    raw_is_error: bool,
    second_stop: bool,
    msg_ok: bool,
    dump_has_ops_dump: bool,
    victim_on_dsq: bool,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("trigger") {
        return Err("usage: cargo xtask soak trigger [--runs N] [--scheduler stall|error]".into());
    }
    let mut runs = 20usize;
    let mut sched = "stall".to_string();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = crate::runs_arg(it.next())?,
            "--scheduler" => sched = it.next().ok_or("--scheduler needs a name")?.clone(),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if sched != "stall" && sched != "error" {
        return Err("--scheduler: stall or error".into());
    }
    let st = crate::workspace::run_cargo(["build", "--release", "-p", "ktstr-cli"])?;
    if !st.success() {
        return Err("building ktstr failed".into());
    }
    let ktstr = crate::workspace::target_dir().join("release/ktstr");
    let out = std::env::temp_dir().join(format!("ktstr-soak-{}", std::process::id()));
    let mut verdicts = Vec::new();
    for i in 0..runs {
        let dir = out.join(format!("run{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let v = one(&ktstr, &sched, &dir)?;
        println!("run {i}: {v:?}");
        verdicts.push(v);
    }
    let count = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|v| f(v)).count();
    println!("\n== soak trigger: {runs} runs of `ktstr run --scheduler {sched}`");
    println!("{:<58} {:>6}", "criterion", "runs");
    type Check = fn(&Verdict) -> bool;
    let rows: [(&str, Check); 6] = [
        ("exit code 1 (failure captured)", |v| v.exit_code == Some(1)),
        ("frozen by the watchpoint", |v| v.watchpoint),
        (
            "guest memory shows the error kind at stage 1 (not DONE)",
            |v| v.raw_is_error,
        ),
        ("second stop read exit_info", |v| v.second_stop),
        ("exit_info.msg as expected", |v| v.msg_ok),
        ("kernel dump has the scheduler's ops.dump line", |v| {
            v.dump_has_ops_dump
        }),
    ];
    for (name, f) in rows {
        println!("{name:<58} {:>3}/{runs}", count(f));
    }
    if sched == "stall" {
        println!(
            "{:<58} {:>3}/{runs}",
            "the victim waits on DSQ 0x101 in the late snapshot",
            count(|v| v.victim_on_dsq)
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

fn one(ktstr: &PathBuf, sched: &str, dir: &Path) -> Result<Verdict, String> {
    let o = Command::new(ktstr)
        .args(["-v", "run", "--scheduler", sched, "--out", "."])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running ktstr: {e}"))?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    let kind = if sched == "stall" { 1026 } else { 1025 };
    let mut v = Verdict {
        exit_code: o.status.code(),
        // Caught at the write, or stopped by it just before a read saw it.
        watchpoint: stderr.contains("written by vCPU") || stderr.contains("read (Watchpoint"),
        raw_is_error: stderr.contains(&format!("exit_kind {kind} (kind {kind})")),
        second_stop: stderr.contains("second stop at the disable worker's write"),
        ..Default::default()
    };
    let Some(json) = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".failure-dump.json"))
    else {
        return Ok(v);
    };
    let text = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let late = &doc["late"];
    let ei = &late["exit_info"];
    let msg = ei["msg"].as_str().unwrap_or_default();
    v.msg_ok = if sched == "stall" {
        msg.contains("ktstr-victim[") && msg.contains("failed to run")
    } else {
        msg.starts_with("ktstr error scheduler: scx_bpf_error()")
    };
    v.dump_has_ops_dump = ei["kernel_dump"]
        .as_str()
        .is_some_and(|d| d.contains("ktstr-dump: mode="));
    v.victim_on_dsq = late["dsq_states"].as_array().is_some_and(|d| {
        d.iter()
            .any(|q| q["id"] == 0x101 && q["task_kvas"].as_array().is_some_and(|t| !t.is_empty()))
    });
    Ok(v)
}
