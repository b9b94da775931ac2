//! The `ktstr` binary on bad input and on the commands that need no guest: each error is
//! one clear line on stderr, the documented exit code, and no output file left behind.

use std::path::Path;
use std::process::{Command, Output};

fn ktstr(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktstr"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running ktstr")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exactly one line, starting `ktstr: error:` and containing `needle`.
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(lines[0].starts_with("ktstr: error: "), "{err:?}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
}

/// Every entry of `dir` (sorted), to check that nothing was left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn missing_file_is_usage_error() {
    let d = tempfile::tempdir().unwrap();
    for cmd in ["render", "validate"] {
        let o = ktstr(&[cmd, "no-such.json"], d.path());
        assert_one_line_error(&o, 2, "no-such.json: No such file or directory");
    }
    let o = ktstr(
        &[
            "capture",
            "--vmcore",
            "no-such.vmcore",
            "--out",
            "dump.json",
        ],
        d.path(),
    );
    assert_one_line_error(&o, 2, "no-such.vmcore");
    assert!(entries(d.path()).is_empty(), "{:?}", entries(d.path()));
}

#[test]
fn non_json_to_render_names_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x.txt"), "not json at all\n").unwrap();
    let o = ktstr(&["render", "x.txt"], d.path());
    assert_one_line_error(&o, 2, "x.txt: invalid JSON at line 1");
    assert!(o.stdout.is_empty());
}

#[test]
fn corrupt_vmcore_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    // An ELF header that claims program headers far past the end of the file.
    let mut bytes = vec![0u8; 4096];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2; // ELFCLASS64
    bytes[5] = 1; // little endian
    bytes[6] = 1;
    bytes[16] = 4; // ET_CORE
    bytes[18] = 62; // EM_X86_64
    bytes[32..40].copy_from_slice(&0xffff_ffffu64.to_le_bytes()); // e_phoff
    bytes[54] = 56; // e_phentsize
    bytes[56] = 200; // e_phnum
    std::fs::write(d.path().join("bad.vmcore"), &bytes).unwrap();
    std::fs::write(d.path().join("noise.vmcore"), vec![0x5au8; 8192]).unwrap();
    for f in ["bad.vmcore", "noise.vmcore"] {
        let o = ktstr(&["capture", "--vmcore", f, "--out", "dump.json"], d.path());
        assert_one_line_error(&o, 2, &format!("{f}: not a usable vmcore"));
    }
    assert_eq!(entries(d.path()), ["bad.vmcore", "noise.vmcore"]);
}

#[test]
fn unknown_scheduler_is_usage_error_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let o = ktstr(&["run", "--scheduler", "nope", "--out", "out"], d.path());
    assert_one_line_error(&o, 2, "unknown scheduler \"nope\"");
    // A .bpf.o that does not exist is refused before provisioning or booting.
    let o = ktstr(
        &["run", "--scheduler", "missing.bpf.o", "--out", "out"],
        d.path(),
    );
    assert_one_line_error(&o, 2, "missing.bpf.o: no such file");
    assert!(entries(d.path()).is_empty(), "{:?}", entries(d.path()));
}

#[test]
fn bad_option_values_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["run", "--timeout", "soon"][..], "invalid duration"),
        (&["run", "--memory", "12Q"][..], "invalid size"),
        (&["run", "--engine", "xen"][..], "unknown engine"),
        (&["schema", "triple"][..], "unknown schema \"triple\""),
        (&["capture"][..], "capture needs either --vmcore"),
    ] {
        let o = ktstr(args, d.path());
        assert_one_line_error(&o, 2, needle);
    }
}

#[test]
fn validate_reports_the_json_path() {
    let d = tempfile::tempdir().unwrap();
    let bad = r#"{"schema":"single","maps":[{"name":"a","map_type":1,"key_size":4,"value_size":4,"max_entries":1},{"name":7}]}"#;
    std::fs::write(d.path().join("bad.json"), bad).unwrap();
    let o = ktstr(&["validate", "bad.json"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("at `maps[1].name`"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = ktstr(&["validate", "--json", "bad.json"], d.path());
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["path"], "maps[1].name");

    std::fs::write(d.path().join("ok.json"), r#"{"schema":"single","maps":[]}"#).unwrap();
    let o = ktstr(&["validate", "--json", "ok.json"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"valid": true, "schema": "single"}));
}

#[test]
fn render_shows_every_kind() {
    let d = tempfile::tempdir().unwrap();
    let placeholder = dump_schema::FailureDumpReport::placeholder("guest setup failed: test");
    let dual = dump_schema::DualFailureDumpReport::new(dump_schema::FailureDumpReport::default());
    let docs = [
        ("single.json", placeholder.to_json().unwrap()),
        ("dual.json", serde_json::to_string(&dual).unwrap()),
        (
            "degraded.json",
            r#"{"schema":"degraded","reason":"vCPU rendezvous timed out","watchpoint_hit":false,"bss_latch_state":"not_resolved"}"#.to_string(),
        ),
    ];
    for (name, json) in docs {
        std::fs::write(d.path().join(name), &json).unwrap();
        let expected = dump_schema::FailureDumpReportAny::from_json(&json)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_string();
        let o = ktstr(&["render", name], d.path());
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim_end(),
            expected.trim_end(),
            "{name}"
        );
        let o = ktstr(&["render", "--json", name], d.path());
        let back = dump_schema::FailureDumpReportAny::from_slice(&o.stdout).unwrap();
        assert_eq!(
            back,
            dump_schema::FailureDumpReportAny::from_json(&json).unwrap()
        );
    }
}

#[test]
fn schema_prints_the_committed_schemas() {
    let d = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema");
    for kind in ["single", "dual", "degraded", "any"] {
        let o = ktstr(&["schema", kind], d.path());
        assert_eq!(o.status.code(), Some(0));
        let committed = std::fs::read_to_string(root.join(format!("{kind}.json"))).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), committed, "{kind}");
    }
    let o = ktstr(&["schema"], d.path());
    let any = std::fs::read_to_string(root.join("any.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), any);
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let d = tempfile::tempdir().unwrap();
    for sub in [
        "run",
        "capture",
        "render",
        "validate",
        "schema",
        "export-vmcore",
    ] {
        let o = ktstr(&[sub, "--help"], d.path());
        assert_eq!(o.status.code(), Some(0), "{sub}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("Examples:") && out.contains("ktstr "),
            "{sub}: {out}"
        );
    }
}

/// Special files where a regular file is expected: clean one-line errors at once (a FIFO
/// never blocks, a device is never read), exit 2.
#[test]
fn special_files_are_refused_without_reading() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("f");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let f = fifo.to_str().unwrap();
    for args in [
        vec!["render", f],
        vec!["validate", f],
        vec!["capture", "--vmcore", f],
    ] {
        let o = ktstr(&args, d.path());
        assert_one_line_error(&o, 2, "not a regular file (a FIFO)");
    }
    for args in [
        vec!["validate", "/dev/zero"],
        vec!["render", "/dev/zero"],
        vec!["capture", "--vmcore", "/dev/zero"],
    ] {
        let o = ktstr(&args, d.path());
        assert_one_line_error(&o, 2, "a character device");
    }
    let o = ktstr(&["capture", "--vmcore", "."], d.path());
    assert_one_line_error(&o, 2, "not a regular file (a directory)");
    // The fallbacks too: a System.map or BTF that never ends.
    std::fs::write(d.path().join("core"), b"\x7fELF").unwrap();
    for flag in ["--system-map", "--btf"] {
        let o = ktstr(
            &["capture", "--vmcore", "core", flag, "/dev/zero"],
            d.path(),
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    assert_eq!(entries(d.path()), ["core", "f"]);
}

#[test]
fn a_bom_and_missing_arguments_are_named() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("bom.json"),
        b"\xef\xbb\xbf{\"schema\":\"single\",\"maps\":[]}",
    )
    .unwrap();
    for cmd in ["render", "validate"] {
        let o = ktstr(&[cmd, "bom.json"], d.path());
        assert_one_line_error(&o, 2, "byte-order mark");
    }
    for cmd in ["render", "validate"] {
        let o = ktstr(&[cmd], d.path());
        assert_one_line_error(&o, 2, "<FILE>");
    }
}

#[test]
fn out_targets_are_checked_before_the_work() {
    let d = tempfile::tempdir().unwrap();
    // Not a vmcore: if --out were checked after the capture, the error would be this one.
    std::fs::write(d.path().join("core"), b"\x7fELF").unwrap();
    let o = ktstr(&["capture", "--vmcore", "core", "--out", "."], d.path());
    assert_one_line_error(&o, 2, "is a directory");
    let o = ktstr(
        &["capture", "--vmcore", "core", "--out", "no/such/dir/x.json"],
        d.path(),
    );
    assert_one_line_error(&o, 2, "does not exist");
    assert_eq!(entries(d.path()), ["core"]);
}

/// An ARM64 vmcore (e_machine 183) is refused by name, not read as x86_64.
#[test]
fn another_architectures_vmcore_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELF64
    elf[5] = 1; // little-endian
    elf[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(d.path().join("arm.vmcore"), &elf).unwrap();
    let o = ktstr(&["capture", "--vmcore", "arm.vmcore"], d.path());
    assert_one_line_error(&o, 2, "e_machine 183 is not x86_64");
}

#[test]
fn render_filters_select_parts_and_refuse_unknown_names() {
    use dump_schema::{DisplayOptions, FailureDumpReport, FailureDumpReportAny, Filter};
    let d = tempfile::tempdir().unwrap();
    let report = FailureDumpReport {
        maps: vec![dump_schema::FailureDumpMap {
            name: "sched.bss".into(),
            map_type: dump_schema::map_type::ARRAY,
            ..Default::default()
        }],
        task_enrichments: vec![dump_schema::TaskEnrichment {
            pid: 7,
            comm: "worker".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    std::fs::write(d.path().join("d.json"), report.to_json().unwrap()).unwrap();
    let any: FailureDumpReportAny = report.into();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for (args, filter) in [
        (
            &["--section", "tasks", "--section", "notes"][..],
            Filter {
                sections: s(&["tasks", "notes"]),
                ..Filter::default()
            },
        ),
        (
            &["--map", "bss", "--task", "worker", "--full"][..],
            Filter {
                maps: s(&["bss"]),
                tasks: s(&["worker"]),
                ..Filter::default()
            },
        ),
    ] {
        let mut argv = vec!["render"];
        argv.extend_from_slice(args);
        argv.push("d.json");
        let o = ktstr(&argv, d.path());
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let opts = DisplayOptions {
            full: args.contains(&"--full"),
            ..DisplayOptions::default()
        };
        let want = any.display_filtered(&opts, &filter).to_string();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim_end(),
            want,
            "{args:?}"
        );
    }
    for (arg, value, needle) in [
        ("--section", "mapz", "unknown section \"mapz\""),
        (
            "--map",
            "nope",
            "no map named like \"nope\": the maps are sched.bss",
        ),
        ("--task", "8", "no task with pid or comm \"8\""),
    ] {
        let o = ktstr(&["render", arg, value, "d.json"], d.path());
        assert_one_line_error(&o, 2, needle);
        assert!(o.stdout.is_empty());
    }
}
