//! The ELF resolver on real binaries: the same libraries as `ldd` for host programs and
//! for programs compiled here (system libraries, our own libraries found through
//! `$ORIGIN`, a cycle), nothing for static ones, and clear errors for missing libraries
//! and broken files.

use guest_lab::elf_deps::{ElfError, ElfKind, FoundVia, RuntimeDeps, elf_kind, runtime_deps};
use guest_lab::testing::{CCode, ScratchDir};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory for `name`, removed on drop.
/// A library of our own that needs libz.
const DEMO_LIB: CCode = CCode {
    source: "#include <zlib.h>\nconst char *ktstr_demo(void) { return zlibVersion(); }\n",
    flags: &["-lz"],
};

fn scratch(name: &str) -> ScratchDir {
    ScratchDir::new(&format!("elf-{name}"))
}

/// What `ldd` prints: (interpreter, canonical library paths).
fn ldd(exe: &Path) -> (Option<PathBuf>, BTreeSet<PathBuf>) {
    let out = Command::new("ldd")
        .arg(exe)
        // cargo sets it for tests; the resolver does not use it, so neither may ldd.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {}: {text}", exe.display());
    let mut interp = None;
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((_, rest)) = line.split_once("=>") {
            let path = rest.split_whitespace().next().unwrap();
            assert!(path.starts_with('/'), "ldd: {line}");
            libs.insert(std::fs::canonicalize(path).unwrap());
        } else if line.starts_with('/') {
            interp = Some(PathBuf::from(line.split_whitespace().next().unwrap()));
        }
    }
    (interp, libs)
}

fn canonical_libs(deps: &RuntimeDeps) -> BTreeSet<PathBuf> {
    deps.libraries
        .iter()
        .map(|l| std::fs::canonicalize(&l.path).unwrap())
        .collect()
}

fn assert_same_as_ldd(exe: &Path) -> RuntimeDeps {
    let deps = runtime_deps(exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let (interp, libs) = ldd(exe);
    assert_eq!(deps.interpreter, interp, "{}", exe.display());
    assert_eq!(canonical_libs(&deps), libs, "{}", exe.display());
    deps
}

#[test]
fn host_programs_resolve_like_ldd() {
    let deps = assert_same_as_ldd(Path::new("/bin/ls"));
    assert!(
        deps.libraries.iter().any(|l| l.name == "libc.so.6"),
        "{deps:?}"
    );
    assert_eq!(deps.executable, std::fs::canonicalize("/bin/ls").unwrap());
    // Bigger dependency trees: bpftool (libbpf, libelf, libz, libzstd, libcap, ...) and
    // QEMU (dozens).
    for exe in ["/usr/sbin/bpftool", "/usr/bin/qemu-system-x86_64"] {
        let deps = assert_same_as_ldd(Path::new(exe));
        eprintln!("{exe}: {} libraries", deps.libraries.len());
    }
}

#[test]
fn static_programs_need_nothing() {
    // busybox-static, which the guest runs as its shell.
    assert_eq!(
        elf_kind(Path::new("/bin/busybox")).unwrap(),
        ElfKind::Executable
    );
    let deps = runtime_deps(Path::new("/bin/busybox")).unwrap();
    assert_eq!((deps.interpreter, deps.libraries.len()), (None, 0));
    // One of ours, static and static-pie.
    let s = scratch("static");
    s.write("hello.c", "int main(void) { return 0; }\n");
    s.gcc(&["-static", "-o", "hello-static", "hello.c"]);
    s.gcc(&["-static-pie", "-o", "hello-static-pie", "hello.c"]);
    for exe in ["hello-static", "hello-static-pie"] {
        let deps = runtime_deps(&s.p(exe)).unwrap();
        assert_eq!((deps.interpreter, deps.libraries.len()), (None, 0), "{exe}");
    }
}

#[test]
fn our_own_dynamic_program_resolves_like_ldd() {
    let s = scratch("dyn");
    // libz and libm from the system; libktstrdemo of our own, next to the executable's
    // directory, found through $ORIGIN; it needs libz too (loaded once).
    let main = CCode {
        source: "#include <math.h>\n#include <stdio.h>\n#include <zlib.h>\n\
         const char *ktstr_demo(void);\n\
         int main(int argc, char **argv) {\n\
           printf(\"zlib %s demo %s sqrt %.1f\\n\", zlibVersion(), ktstr_demo(), sqrt((double)argc + 3));\n\
           return 0;\n}\n",
        flags: &["-lz", "-lm"],
    };
    let exe = s.app_with_own_library("demo", main, "ktstrdemo", DEMO_LIB);
    let deps = assert_same_as_ldd(&exe);
    let by_name = |n: &str| {
        deps.libraries
            .iter()
            .find(|l| l.name == n)
            .unwrap_or_else(|| panic!("{n} in {deps:?}"))
    };
    let demo = by_name("libktstrdemo.so");
    assert_eq!(demo.found_via, FoundVia::Runpath);
    assert_eq!(demo.path, s.p("app/bin/../lib/libktstrdemo.so"));
    assert_eq!(by_name("libz.so.1").found_via, FoundVia::LdSoConf);
    by_name("libm.so.6");
    // It runs, and prints what it loaded.
    let out = Command::new(&exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("zlib "));
}

#[test]
fn a_cycle_of_our_own_libraries_is_followed_once() {
    let s = scratch("cycle");
    s.write(
        "a.c",
        "int kb(void); int ka(void) { return 1; } int ka2(void) { return kb(); }\n",
    );
    s.write("b.c", "int ka(void); int kb(void) { return ka() + 1; }\n");
    s.write(
        "main.c",
        "int ka2(void); int main(void) { return ka2() == 2 ? 0 : 1; }\n",
    );
    // b first without a, then a against b, then b again against a: a cycle.
    s.gcc(&["-shared", "-fPIC", "-o", "libkb.so", "b.c"]);
    s.gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        "libka.so",
        "a.c",
        "-L.",
        "-lkb",
        "-Wl,-rpath,$ORIGIN",
    ]);
    s.gcc(&[
        "-shared",
        "-fPIC",
        "-o",
        "libkb.so",
        "b.c",
        "-L.",
        "-lka",
        "-Wl,-rpath,$ORIGIN",
    ]);
    s.gcc(&["-o", "main", "main.c", "-L.", "-lka", "-Wl,-rpath,$ORIGIN"]);
    let deps = assert_same_as_ldd(&s.p("main"));
    let ours: Vec<&str> = deps
        .libraries
        .iter()
        .map(|l| l.name.as_str())
        .filter(|n| n.starts_with("libk"))
        .collect();
    assert_eq!(ours, ["libka.so", "libkb.so"]);
    assert!(Command::new(s.p("main")).status().unwrap().success());
}

#[test]
fn a_missing_library_is_named() {
    let s = scratch("missing");
    s.write("gone.c", "int kg(void) { return 0; }\n");
    s.write("main.c", "int kg(void); int main(void) { return kg(); }\n");
    s.gcc(&["-shared", "-fPIC", "-o", "libktstrgone.so", "gone.c"]);
    s.gcc(&["-o", "main", "main.c", "-L.", "-lktstrgone"]);
    std::fs::remove_file(s.p("libktstrgone.so")).unwrap();
    let err = runtime_deps(&s.p("main")).unwrap_err();
    assert!(matches!(err, ElfError::LibraryNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("library libktstrgone.so (needed by ")
            && msg.contains("/usr/lib/x86_64-linux-gnu"),
        "{msg}"
    );
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let s = scratch("garbage");
    let ls = std::fs::read("/bin/ls").unwrap();
    for cut in [0usize, 3, 20, 63, 64, 200, 4096, ls.len() / 2] {
        let p = s.p(&format!("ls-{cut}"));
        std::fs::write(&p, &ls[..cut.min(ls.len())]).unwrap();
        match runtime_deps(&p) {
            Ok(d) => panic!("{cut} bytes of ls resolved: {d:?}"),
            Err(e) => eprintln!("{cut} bytes: {e}"),
        }
    }
    let junk = s.p("junk");
    std::fs::write(&junk, b"#!/bin/sh\necho not elf\n").unwrap();
    assert!(matches!(
        runtime_deps(&junk).unwrap_err(),
        ElfError::NotElf { .. }
    ));
    assert!(matches!(
        runtime_deps(&s.p("nonexistent")).unwrap_err(),
        ElfError::Io { .. }
    ));
}
