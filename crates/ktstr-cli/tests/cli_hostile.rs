//! The hostile-input suite: `ktstr capture --vmcore` on a real lab vmcore damaged in
//! every way `hostile/mod.rs` generates (ELF and program headers, notes, VMCOREINFO
//! values, page tables, the kernel's BTF, kallsyms, the scheduler's `scx_sched`, task
//! lists, runqueues, maps, truncations and seeded random pages).
//!
//! For each case: no panic and no signal; the process ends within [`TIME_LIMIT`] (it is
//! killed past it: a hang guard, not a speed test) and its peak RSS stays under
//! [`RSS_LIMIT_KIB`]; and either a clean error — one line `ktstr: error: …` on stderr,
//! exit 2, no output file — or a dump that validates against the schema, whose exit code
//! follows its content (1 only for a known error kind, 4 exactly when its core is
//! unread, else 0), and whose every loss against the undamaged dump (fewer vCPU
//! registers, runqueues, DSQs or queued tasks, tasks, maps or map contents, programs,
//! CPU-time, PSI or NUMA entries, event samples, a missing scheduler state, exit info or
//! active object) is named in its `capture_notes`.
//!
//! The lab vmcore: `$KTSTR_HOSTILE_VMCORE`, else the benchmark's cached one
//! (`$KTSTR_CACHE/bench/stall.vmcore`, default cache `~/.cache/ktstr`), else one made
//! here with `ktstr run --scheduler stall --vmcore-out` (boots a guest once, about a
//! minute under TCG) and cached there. Run it against the release binary:
//! `cargo test --release -p ktstr-cli --test cli_hostile -- --nocapture`.

mod hostile;
mod support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dump_schema::{FailureDumpReport, FailureDumpReportAny};
use hostile::{Case, Map};

/// A capture that runs longer is killed and fails its case (the undamaged capture takes
/// well under a second in release).
const TIME_LIMIT: Duration = Duration::from_secs(120);
/// Peak resident set of one capture, file-backed pages of the mapped vmcore included.
const RSS_LIMIT_KIB: u64 = 2 << 20;

fn cache_dir() -> PathBuf {
    std::env::var_os("KTSTR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/ktstr")))
        .unwrap_or_else(|| PathBuf::from(".cache/ktstr"))
}

/// The lab vmcore, made (and cached) when there is none.
fn lab_vmcore() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KTSTR_HOSTILE_VMCORE") {
        return Some(PathBuf::from(p));
    }
    stall_vmcore("stall.vmcore", &[])
}

/// The stall run's vmcore, cached as `bench/NAME` (made by `ktstr run` with `extra`
/// arguments when absent); `None` (said) without QEMU.
fn stall_vmcore(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let cached = cache_dir().join("bench").join(name);
    if cached.is_file() {
        return Some(cached);
    }
    if !guest_lab::testing::need_qemu() {
        return None;
    }
    std::fs::create_dir_all(cache_dir().join("bench")).unwrap();
    let tmp = cache_dir().join(format!("bench/{name}.{}.tmp", std::process::id()));
    let out = cache_dir().join("bench/out");
    let o = Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(["run", "--scheduler", "stall", "--memory", "512M"])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .arg("--vmcore-out")
        .arg(&tmp)
        .output()
        .expect("running ktstr run");
    assert!(
        tmp.is_file(),
        "ktstr run made no vmcore ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &cached).unwrap();
    Some(cached)
}

/// How one `ktstr capture` ended.
struct Outcome {
    status: ExitStatus,
    stderr: String,
    elapsed: Duration,
    max_rss_kib: u64,
    killed: bool,
}

/// Runs `ktstr capture --vmcore VMCORE --out OUT` and measures it (wait4's rusage).
fn capture(vmcore: &Path, out: &Path, dir: &Path) -> Outcome {
    let err_path = dir.join("stderr.txt");
    let err = std::fs::File::create(&err_path).unwrap();
    let t0 = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(["capture", "--vmcore"])
        .arg(vmcore)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawning ktstr");
    let pid = child.id() as libc::pid_t;
    let mut killed = false;
    let (status, rss) = loop {
        let mut st = 0;
        // SAFETY: rusage is plain data, zero is a valid value; wait4 writes it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not yet reaped; status and ru are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut st, libc::WNOHANG, &mut ru) };
        if r == pid {
            break (ExitStatus::from_raw(st), ru.ru_maxrss as u64);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && t0.elapsed() > TIME_LIMIT {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::mem::forget(child); // reaped above
    Outcome {
        status,
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: t0.elapsed(),
        max_rss_kib: rss,
        killed,
    }
}

/// What a section of the dump holds, counted; a damaged dump holding less must say so
/// in a note containing one of the section's words (or a note that explains every
/// loss: no walker ran, no page-table root).
fn lost_sections(
    base: &FailureDumpReport,
    r: &FailureDumpReport,
    page_tables: bool,
) -> Vec<(String, &'static [&'static str])> {
    type Count = fn(&FailureDumpReport) -> usize;
    const DSQ: &[&str] = &["DSQ", "per-CPU", "runqueues", "scx_root", "scx_sched"];
    let sections: [(&str, Count, &'static [&'static str]); 15] = [
        (
            "vcpu_regs",
            |r| r.vcpu_regs.iter().flatten().count(),
            &["vcpu_regs"],
        ),
        (
            "scx_sched_state",
            |r| usize::from(r.scx_sched_state.is_some()),
            &["scx_sched", "scx_root", "missing offsets"],
        ),
        (
            "rq_scx_states",
            |r| r.rq_scx_states.len(),
            &["runqueue", "rq ", "per-CPU"],
        ),
        ("dsq_states", |r| r.dsq_states.len(), DSQ),
        (
            "queued tasks",
            |r| r.dsq_states.iter().map(|d| d.task_kvas.len()).sum(),
            DSQ,
        ),
        ("task_enrichments", |r| r.task_enrichments.len(), &["tasks"]),
        ("maps", |r| r.maps.len(), &["maps"]),
        (
            "prog_runtime_stats",
            |r| r.prog_runtime_stats.len(),
            &["program"],
        ),
        (
            "aux_prog_runtime_stats",
            |r| r.aux_prog_runtime_stats.len(),
            &["program"],
        ),
        ("per_cpu_time", |r| r.per_cpu_time.len(), &["per-CPU"]),
        ("cgroup_psi", |r| r.cgroup_psi.len(), &["cgroup PSI"]),
        (
            "per_node_numa",
            |r| r.per_node_numa.len(),
            &["NUMA", "per-CPU"],
        ),
        (
            "event_counter_timeline",
            |r| r.event_counter_timeline.len(),
            &["event counters", "scx_root", "scx_sched", "per-CPU"],
        ),
        (
            "exit_info",
            |r| usize::from(r.exit_info.is_some()),
            &["exit_info", "scx_sched", "scx_root"],
        ),
        (
            "active_obj_name",
            |r| usize::from(r.active_obj_name.is_some()),
            &["active scheduler", "maps", "scx_root", "scx_sched"],
        ),
    ];
    let mut out: Vec<(String, &'static [&'static str])> = sections
        .into_iter()
        .filter(|(_, count, _)| count(r) < count(base))
        .map(|(name, _, words)| (name.to_string(), words))
        .collect();
    // Map contents, matched by address: fewer entries need the map's own `error` too.
    for m in &base.maps {
        let Some(d) = r.maps.iter().find(|x| x.map_kva == m.map_kva) else {
            continue;
        };
        let size = |m: &dump_schema::FailureDumpMap| {
            m.entries.len()
                + m.array_entries.len()
                + m.percpu_entries.len()
                + m.percpu_hash_entries.len()
                + usize::from(m.value.is_some())
                + m.arena.as_ref().map_or(0, |a| a.pages.len())
                + m.stack_trace.as_ref().map_or(0, |s| s.entries.len())
                + usize::from(m.ringbuf.is_some())
                + usize::from(m.fd_array.is_some())
        };
        // A zeroed or garbage page table below the arena's window reads as pages
        // never populated: that loss cannot be told from an empty arena.
        let arena_behind_tables = page_tables && m.arena.is_some();
        if size(d) < size(m) && d.error.is_none() && !arena_behind_tables {
            out.push((
                format!("contents of map {} (and its error is empty)", m.name),
                &["\u{0}never"][..],
            ));
        } else if size(d) < size(m) {
            out.push((format!("contents of map {}", m.name), &["maps"][..]));
        }
    }
    out
}

/// Notes that explain every loss of a dump.
const GLOBAL: [&str; 3] = [
    "kernel BTF: no walker ran",
    "page tables: no root maps the kernel image",
    "per-CPU offsets: unreadable",
];

/// Checks one case's outcome; `Err` says what is wrong.
fn check(
    case: &Case,
    o: &Outcome,
    out: &Path,
    base: &FailureDumpReport,
) -> Result<&'static str, String> {
    if o.killed {
        return Err(format!("killed after {:?}", TIME_LIMIT));
    }
    if o.stderr.contains("panicked") || o.status.signal().is_some() || o.status.code() == Some(101)
    {
        return Err(format!("crashed ({}): {}", o.status, o.stderr));
    }
    if o.max_rss_kib > RSS_LIMIT_KIB {
        return Err(format!(
            "peak RSS {} KiB over {RSS_LIMIT_KIB}",
            o.max_rss_kib
        ));
    }
    let code = o.status.code().unwrap_or(-1);
    let lines: Vec<&str> = o.stderr.lines().collect();
    if code == 2 {
        if lines.len() != 1 || !lines[0].starts_with("ktstr: error: ") {
            return Err(format!("exit 2 without one error line: {:?}", o.stderr));
        }
        if out.exists() {
            return Err("exit 2 but a dump was written".into());
        }
        return Ok("error");
    }
    if ![0, 1, 4].contains(&code) {
        return Err(format!("exit {code}: {}", o.stderr));
    }
    let json = std::fs::read_to_string(out).map_err(|e| format!("exit {code}, no dump: {e}"))?;
    dump_schema::validate::validate_report_json(&json).map_err(|e| format!("invalid dump: {e}"))?;
    let any = FailureDumpReportAny::from_slice(json.as_bytes()).map_err(|e| e.to_string())?;
    let FailureDumpReportAny::Single(r) = &any else {
        return Err(format!("not a single report: {}", any.schema()));
    };
    let want = if ktstr_cli::report_has_error_exit(&any) {
        1
    } else if ktstr_cli::report_core_unread(&any).is_some() {
        4
    } else {
        0
    };
    if code != want {
        return Err(format!("exit {code} where the dump says {want}"));
    }
    let notes = &r.capture_notes;
    let global = notes
        .iter()
        .any(|n| GLOBAL.iter().any(|g| n.starts_with(g)));
    let unsaid: Vec<String> = lost_sections(base, r, case.name.starts_with("page tables:"))
        .into_iter()
        .filter(|(_, words)| !global && !notes.iter().any(|n| words.iter().any(|w| n.contains(w))))
        .map(|(s, _)| s)
        .collect();
    if !unsaid.is_empty() {
        return Err(format!(
            "{} lost without a note; notes: {notes:#?}",
            unsaid.join(", ")
        ));
    }
    Ok(match code {
        0 => "dump",
        1 => "dump (error exit)",
        _ => "dump (incomplete)",
    })
}

/// What the cases must give now (each gave something else before): a page of
/// 0xff in `scx_sched` is no "scheduler error" but an incomplete capture; a BTF header
/// with `type_len` 0 is an error; a wrong page-table root in VMCOREINFO is replaced
/// (nothing lost, and said).
fn expected(case: &Case, kind: &str, out: &Path, base: &FailureDumpReport) -> Result<(), String> {
    let want = match case.name.as_str() {
        "scx_sched page 0xff" => "dump (incomplete)",
        "BTF header: type_len 0" => "error",
        "VMCOREINFO SYMBOL(init_top_pgt): wrong page-table root" => "dump (error exit)",
        _ => return Ok(()),
    };
    if kind != want {
        return Err(format!("{kind}, expected {want}"));
    }
    if case.name.contains("init_top_pgt") {
        let r = dump_schema::validate::single_report(&std::fs::read_to_string(out).unwrap());
        if r.task_enrichments.len() != base.task_enrichments.len()
            || r.maps.len() != base.maps.len()
            || !r
                .capture_notes
                .iter()
                .any(|n| n.starts_with("page tables: the VMCOREINFO"))
        {
            return Err(format!(
                "the root was not replaced cleanly: {} tasks, {} maps, notes {:?}",
                r.task_enrichments.len(),
                r.maps.len(),
                r.capture_notes
            ));
        }
    }
    Ok(())
}

/// Applies `case` to the working copy (or writes a truncated copy), returning the path
/// to capture and the bytes to restore.
fn apply(case: &Case, work: &Path, pristine: &Path, dir: &Path) -> (PathBuf, Vec<(u64, Vec<u8>)>) {
    use std::io::{Read, Seek, SeekFrom, Write};
    if let Some(n) = case.truncate {
        let p = dir.join("truncated.vmcore");
        let mut src = std::fs::File::open(pristine).unwrap().take(n);
        let mut dst = std::fs::File::create(&p).unwrap();
        std::io::copy(&mut src, &mut dst).unwrap();
        return (p, Vec::new());
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(work)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut undo = Vec::new();
    for (off, bytes) in &case.edits {
        if *off >= len {
            continue;
        }
        let n = (bytes.len() as u64).min(len - off) as usize;
        let mut old = vec![0u8; n];
        f.seek(SeekFrom::Start(*off)).unwrap();
        f.read_exact(&mut old).unwrap();
        f.seek(SeekFrom::Start(*off)).unwrap();
        f.write_all(&bytes[..n]).unwrap();
        undo.push((*off, old));
    }
    (work.to_path_buf(), undo)
}

fn restore(work: &Path, undo: Vec<(u64, Vec<u8>)>) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(work).unwrap();
    // Reverse order: overlapping edits come back to the original bytes.
    for (off, old) in undo.into_iter().rev() {
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&old).unwrap();
    }
}

#[test]
fn guest_damaged_vmcores_give_clean_errors_or_dumps_that_say_what_they_lost() {
    let Some(pristine) = lab_vmcore() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work.vmcore");
    std::fs::copy(&pristine, &work).unwrap();
    let map = Map::new(&work);

    let base_out = dir.path().join("base.json");
    let o = capture(&work, &base_out, dir.path());
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "the undamaged capture: {} {}",
        o.status,
        o.stderr
    );
    let base_json = std::fs::read_to_string(&base_out).unwrap();
    let base = dump_schema::validate::single_report(&base_json);
    assert!(
        !base.task_enrichments.is_empty() && base.scx_sched_state.is_some(),
        "the lab vmcore's dump has tasks and a scheduler"
    );
    // The undamaged dump itself loses nothing but what this kernel lacks.
    for n in &base.capture_notes {
        assert!(
            n == scx_walk::reasons::OPS_QSEQ_NOT_IN_KERNEL,
            "unexpected note on the undamaged vmcore: {n}"
        );
    }

    // Fidelity of the undamaged dump (issue 15): every CPU's idle task (swapper/0 is on
    // no task list), program names as bpftool shows them (longer than the kernel's 15
    // characters), and the scheduler's tp_btf programs with their statistics.
    let idle = base
        .task_enrichments
        .iter()
        .filter(|t| t.pid == 0 && t.comm.starts_with("swapper/"))
        .count();
    assert_eq!(idle, base.rq_scx_states.len(), "one idle task per CPU");
    assert!(
        base.prog_runtime_stats
            .iter()
            .any(|p| p.name == "ktstr_select_cpu"),
        "full program names: {:?}",
        base.prog_runtime_stats
    );
    assert!(
        base.aux_prog_runtime_stats
            .iter()
            .any(|p| p.name == "ktstr_switch" && p.prog_type == "tracing" && p.cnt > 0),
        "the scheduler's tp_btf programs: {:?}",
        base.aux_prog_runtime_stats
    );

    let cases = map.cases(&base);
    let mut problems = Vec::new();
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    let (mut slowest, mut biggest) = (Duration::ZERO, 0u64);
    for case in &cases {
        let out = dir.path().join("case.json");
        let _ = std::fs::remove_file(&out);
        let (path, undo) = apply(case, &work, &pristine, dir.path());
        let o = capture(&path, &out, dir.path());
        restore(&work, undo);
        slowest = slowest.max(o.elapsed);
        biggest = biggest.max(o.max_rss_kib);
        let res = check(case, &o, &out, &base).and_then(|kind| {
            expected(case, kind, &out, &base)?;
            Ok(kind)
        });
        match res {
            Ok(kind) => {
                *kinds.entry(kind).or_default() += 1;
                eprintln!(
                    "ok   {:<60} {kind} ({} ms, {} MiB){}",
                    case.name,
                    o.elapsed.as_millis(),
                    o.max_rss_kib / 1024,
                    o.stderr
                        .lines()
                        .next()
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                );
            }
            Err(e) => {
                eprintln!("FAIL {:<60} {e}", case.name);
                problems.push(format!("{}: {e}", case.name));
            }
        }
    }
    eprintln!(
        "hostile: {} cases, {} clean ({kinds:?}); slowest {} ms, peak RSS {} MiB",
        cases.len(),
        cases.len() - problems.len(),
        slowest.as_millis(),
        biggest / 1024
    );
    assert!(cases.len() >= 150, "{} cases", cases.len());
    assert!(
        problems.is_empty(),
        "{} cases not clean:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// On the lab vmcores of both kernel lines (and the benchmark's scx_layered one when
/// cached): the lazy kallsyms index, which looks names up in the kernel's
/// `kallsyms_seqs_of_names`, answers as the table of every decoded symbol — every 97th
/// name, every 7th name that several symbols share, absent names, addresses around
/// sampled symbols, and every name with a given prefix (the stack scan's lock slow
/// paths).
#[test]
fn guest_kallsyms_lookups_on_lab_vmcores_answer_as_the_full_table() {
    use guest_mem::kallsyms::{KallsymsIndex, KallsymsLayout, decode};
    use guest_mem::{KernelOptions, Kva, Vmcore};
    let Some(stall) = lab_vmcore() else {
        return;
    };
    // The 6.12 LTS writes the name-sorted table at another place (after
    // `kallsyms_relative_base`) than 7.x.
    let Some(lts) = stall_vmcore("stall-612.vmcore", &["--kernel-version", "6.12"]) else {
        return;
    };
    let layered = cache_dir().join("bench/scx_layered.vmcore");
    for path in [stall, lts]
        .into_iter()
        .chain(layered.is_file().then_some(layered))
    {
        let core = Vmcore::open(&path).unwrap();
        let k = core.kernel(KernelOptions::default()).unwrap();
        let layout = KallsymsLayout::from_vmcoreinfo(k.vmcoreinfo()).unwrap();
        let index = KallsymsIndex::build(&k, &layout).unwrap();
        // Both lab kernels are ≥ 6.2: the table must be found, or the fast path is
        // not what this test checks.
        assert!(index.has_seqs_of_names(), "{}", path.display());
        let table = decode(&k, &layout).unwrap();
        assert_eq!(index.len(), table.len());
        let mut names: Vec<&str> = table.iter().map(|s| s.name).collect();
        let sampled: Vec<&str> = names.iter().copied().step_by(97).collect();
        names.sort_unstable();
        let mut shared: Vec<&str> = names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        shared.dedup();
        assert!(shared.len() > 10, "{}: few shared names", path.display());
        let absent = [
            "",
            "no_such_symbol",
            "schedule_",
            "zzzz",
            "\u{1}",
            "init_task\0",
        ];
        for name in sampled
            .iter()
            .chain(shared.iter().step_by(7))
            .chain(absent.iter())
        {
            assert_eq!(
                index.get(&k, name),
                table.get(name),
                "{}: {name:?}",
                path.display()
            );
        }
        for s in table.iter().step_by(997) {
            for a in [s.addr.0.wrapping_sub(1), s.addr.0, s.addr.0 + 3] {
                assert_eq!(index.nearest(&k, Kva(a)), table.nearest(Kva(a)));
            }
            assert_eq!(index.next_address(s.addr), table.next_address(s.addr));
        }
        for prefix in [
            "__mutex_lock",
            "rwsem_down",
            "queued_spin_lock",
            "schedule",
            "zzz",
        ] {
            let mut got: Vec<(&str, u64)> = (index.with_prefix(&k, prefix, 4096))
                .unwrap_or_else(|| panic!("{}: {prefix}", path.display()))
                .iter()
                .map(|s| (s.name, s.addr.0))
                .collect();
            let mut want: Vec<(&str, u64)> = (table.iter())
                .filter(|s| s.name.starts_with(prefix))
                .map(|s| (s.name, s.addr.0))
                .collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{}: {prefix}", path.display());
        }
    }
}
