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

/// A fresh directory to run `ktstr` in.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn ktstr(&self, args: &[&str]) -> Output {
        ktstr(args, self.path())
    }

    /// `ktstr ARGS` here is a usage error (exit 2) saying `needle` in one line.
    fn refused(&self, args: &[&str], needle: &str) -> Output {
        let o = self.ktstr(args);
        assert_one_line_error(&o, 2, needle);
        o
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path().join(name), bytes).unwrap();
    }

    /// Every entry (sorted), to check that nothing was left behind.
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

const ET_CORE: u16 = 4;

/// A 64-bit little-endian ELF header of type `e_type` for `e_machine`, in `len` bytes.
fn elf64(e_type: u16, e_machine: u16, len: usize) -> Vec<u8> {
    let mut elf = vec![0u8; len];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little endian
    elf[6] = 1; // EV_CURRENT
    elf[16..18].copy_from_slice(&e_type.to_le_bytes());
    elf[18..20].copy_from_slice(&e_machine.to_le_bytes());
    elf
}

#[test]
fn missing_file_is_usage_error() {
    let d = Dir::new();
    for cmd in ["render", "validate"] {
        d.refused(
            &[cmd, "no-such.json"],
            "no-such.json: No such file or directory",
        );
    }
    d.refused(
        &[
            "capture",
            "--vmcore",
            "no-such.vmcore",
            "--out",
            "dump.json",
        ],
        "no-such.vmcore",
    );
    assert!(d.entries().is_empty(), "{:?}", d.entries());
}

#[test]
fn non_json_to_render_names_line_and_column() {
    let d = Dir::new();
    d.write("x.txt", "not json at all\n");
    let o = d.refused(&["render", "x.txt"], "x.txt: invalid JSON at line 1");
    assert!(o.stdout.is_empty());
}

#[test]
fn corrupt_vmcore_leaves_no_output() {
    let d = Dir::new();
    // An ELF header that claims program headers far past the end of the file.
    let mut bytes = elf64(ET_CORE, 62, 4096); // EM_X86_64
    bytes[32..40].copy_from_slice(&0xffff_ffffu64.to_le_bytes()); // e_phoff
    bytes[54] = 56; // e_phentsize
    bytes[56] = 200; // e_phnum
    d.write("bad.vmcore", &bytes);
    d.write("noise.vmcore", vec![0x5au8; 8192]);
    for f in ["bad.vmcore", "noise.vmcore"] {
        d.refused(
            &["capture", "--vmcore", f, "--out", "dump.json"],
            &format!("{f}: not a usable vmcore"),
        );
    }
    assert_eq!(d.entries(), ["bad.vmcore", "noise.vmcore"]);
}

#[test]
fn unknown_scheduler_is_usage_error_before_anything_runs() {
    let d = Dir::new();
    for (scheduler, needle) in [
        ("nope", "unknown scheduler \"nope\""),
        // A .bpf.o that does not exist is refused before provisioning or booting.
        ("missing.bpf.o", "missing.bpf.o: no such file"),
    ] {
        d.refused(&["run", "--scheduler", scheduler, "--out", "out"], needle);
    }
    assert!(d.entries().is_empty(), "{:?}", d.entries());
}

#[test]
fn bad_option_values_are_usage_errors() {
    let d = Dir::new();
    for (args, needle) in [
        (&["run", "--timeout", "soon"][..], "invalid duration"),
        (&["run", "--memory", "12Q"][..], "invalid size"),
        (&["run", "--engine", "xen"][..], "unknown engine"),
        (&["schema", "triple"][..], "unknown schema \"triple\""),
        (&["capture"][..], "capture needs either --vmcore"),
    ] {
        d.refused(args, needle);
    }
}

#[test]
fn validate_reports_the_json_path() {
    let d = Dir::new();
    let bad = r#"{"schema":"single","maps":[{"name":"a","map_type":1,"key_size":4,"value_size":4,"max_entries":1},{"name":7}]}"#;
    d.write("bad.json", bad);
    let o = d.ktstr(&["validate", "bad.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("at `maps[1].name`"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = d.ktstr(&["validate", "--json", "bad.json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["path"], "maps[1].name");

    d.write("ok.json", r#"{"schema":"single","maps":[]}"#);
    let o = d.ktstr(&["validate", "--json", "ok.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"valid": true, "schema": "single"}));
}

#[test]
fn render_shows_every_kind() {
    let d = Dir::new();
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
        d.write(name, &json);
        let expected = dump_schema::FailureDumpReportAny::from_json(&json)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_string();
        let o = d.ktstr(&["render", name]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim_end(),
            expected.trim_end(),
            "{name}"
        );
        let o = d.ktstr(&["render", "--json", name]);
        let back = dump_schema::FailureDumpReportAny::from_slice(&o.stdout).unwrap();
        assert_eq!(
            back,
            dump_schema::FailureDumpReportAny::from_json(&json).unwrap()
        );
    }
}

#[test]
fn schema_prints_the_committed_schemas() {
    let d = Dir::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema");
    for kind in ["single", "dual", "degraded", "any"] {
        let o = d.ktstr(&["schema", kind]);
        assert_eq!(o.status.code(), Some(0));
        let committed = std::fs::read_to_string(root.join(format!("{kind}.json"))).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), committed, "{kind}");
    }
    let o = d.ktstr(&["schema"]);
    let any = std::fs::read_to_string(root.join("any.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), any);
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let d = Dir::new();
    for sub in [
        "run",
        "capture",
        "render",
        "validate",
        "schema",
        "export-vmcore",
    ] {
        let o = d.ktstr(&[sub, "--help"]);
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
    let d = Dir::new();
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
        d.refused(&args, "not a regular file (a FIFO)");
    }
    for args in [
        vec!["validate", "/dev/zero"],
        vec!["render", "/dev/zero"],
        vec!["capture", "--vmcore", "/dev/zero"],
    ] {
        d.refused(&args, "a character device");
    }
    d.refused(
        &["capture", "--vmcore", "."],
        "not a regular file (a directory)",
    );
    // The fallbacks too: a System.map or BTF that never ends.
    d.write("core", b"\x7fELF");
    for flag in ["--system-map", "--btf"] {
        let o = d.ktstr(&["capture", "--vmcore", "core", flag, "/dev/zero"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    }
    assert_eq!(d.entries(), ["core", "f"]);
}

#[test]
fn a_bom_and_missing_arguments_are_named() {
    let d = Dir::new();
    d.write(
        "bom.json",
        b"\xef\xbb\xbf{\"schema\":\"single\",\"maps\":[]}",
    );
    for cmd in ["render", "validate"] {
        d.refused(&[cmd, "bom.json"], "byte-order mark");
    }
    for cmd in ["render", "validate"] {
        d.refused(&[cmd], "<FILE>");
    }
}

#[test]
fn out_targets_are_checked_before_the_work() {
    let d = Dir::new();
    // Not a vmcore: if --out were checked after the capture, the error would be this one.
    d.write("core", b"\x7fELF");
    for (out, needle) in [
        (".", "is a directory"),
        ("no/such/dir/x.json", "does not exist"),
    ] {
        d.refused(&["capture", "--vmcore", "core", "--out", out], needle);
    }
    assert_eq!(d.entries(), ["core"]);
}

/// An ARM64 vmcore (e_machine 183) is refused by name, not read as x86_64.
#[test]
fn another_architectures_vmcore_is_refused() {
    let d = Dir::new();
    let elf = elf64(ET_CORE, 183, 64); // EM_AARCH64
    d.write("arm.vmcore", &elf);
    d.refused(
        &["capture", "--vmcore", "arm.vmcore"],
        "e_machine 183 is not x86_64",
    );
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
