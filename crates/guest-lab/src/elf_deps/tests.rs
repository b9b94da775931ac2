//! The search rules on synthetic ELF files in a temporary tree (the integration tests
//! compare with `ldd` on real binaries).

use super::object::tests::dynamic_elf;
use super::*;
use elf::abi;

const DT_SONAME: i64 = 14;
const DT_FLAGS_1: i64 = 0x6fff_fffb;

struct Tree(PathBuf);

/// The dynamic section of a synthetic object (and whether it is an executable).
#[derive(Default)]
struct Dynamic<'a> {
    needed: &'a [&'a str],
    rpath: Option<&'a str>,
    runpath: Option<&'a str>,
    soname: Option<&'a str>,
    flags_1: u64,
    exe: bool,
}

impl<'a> Dynamic<'a> {
    fn needs(needed: &'a [&'a str]) -> Self {
        Dynamic {
            needed,
            ..Default::default()
        }
    }

    fn exe(self) -> Self {
        Dynamic { exe: true, ..self }
    }
}

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!(
            "ktstr-elfdeps-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tree(dir);
        // Every executable below uses this interpreter.
        t.put("interp/ld.so", &dynamic_elf(b"\0", &[], None));
        t
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn put(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    /// A shared library needing `needed`.
    fn lib(&self, rel: &str, needed: &[&str]) -> PathBuf {
        self.obj(rel, Dynamic::needs(needed))
    }

    /// An executable (with the tree's interpreter) needing `needed`.
    fn exe(&self, rel: &str, needed: &[&str]) -> PathBuf {
        self.obj(rel, Dynamic::needs(needed).exe())
    }

    /// An object with dynamic section `d`.
    fn obj(&self, rel: &str, d: Dynamic<'_>) -> PathBuf {
        let Dynamic {
            needed,
            rpath,
            runpath,
            soname,
            flags_1,
            exe,
        } = d;
        let mut strings = vec![0u8];
        let mut add = |s: &str| {
            let off = strings.len() as u64;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let mut entries = Vec::new();
        for n in needed {
            entries.push((abi::DT_NEEDED, add(n)));
        }
        if let Some(r) = rpath {
            entries.push((abi::DT_RPATH, add(r)));
        }
        if let Some(r) = runpath {
            entries.push((abi::DT_RUNPATH, add(r)));
        }
        if let Some(s) = soname {
            entries.push((DT_SONAME, add(s)));
        }
        if flags_1 != 0 {
            entries.push((DT_FLAGS_1, flags_1));
        }
        let interp = format!("{}\0", self.p("interp/ld.so").display());
        let data = dynamic_elf(&strings, &entries, exe.then_some(interp.as_bytes()));
        self.put(rel, &data)
    }

    fn dirs(&self, conf: &[&str], system: &[&str]) -> SearchDirs {
        SearchDirs {
            ld_so_conf: conf.iter().map(|d| self.p(d)).collect(),
            system: system.iter().map(|d| self.p(d)).collect(),
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn found(deps: &RuntimeDeps) -> Vec<(String, PathBuf, FoundVia)> {
    deps.libraries
        .iter()
        .map(|l| (l.name.clone(), l.path.clone(), l.found_via))
        .collect()
}

#[test]
fn order_rpath_chain_runpath_conf_system() {
    let t = Tree::new("order");
    // The same names in several places: the first in the loader's order wins.
    for dir in ["rp", "run", "conf", "sys"] {
        t.lib(&format!("{dir}/liba.so"), &["libb.so"]);
        t.lib(&format!("{dir}/libb.so"), &[]);
        t.lib(&format!("{dir}/libc.so"), &[]);
    }
    // The executable's DT_RPATH (no RUNPATH) applies to its own needs and, up the
    // loader chain, to liba's need of libb.
    let rp = t.p("rp").to_string_lossy().into_owned();
    let exe = t.obj(
        "bin/exe",
        Dynamic {
            rpath: Some(&rp),
            ..Dynamic::needs(&["liba.so"]).exe()
        },
    );
    let dirs = t.dirs(&["conf"], &["sys"]);
    let deps = runtime_deps_with(&exe, &dirs).unwrap();
    assert_eq!(deps.executable, std::fs::canonicalize(&exe).unwrap());
    assert_eq!(deps.interpreter, Some(t.p("interp/ld.so")));
    assert_eq!(
        found(&deps),
        vec![
            ("liba.so".into(), t.p("rp/liba.so"), FoundVia::Rpath),
            ("libb.so".into(), t.p("rp/libb.so"), FoundVia::Rpath),
        ]
    );
    assert_eq!(deps.libraries[1].needed_by, t.p("rp/liba.so"));

    // With a RUNPATH the executable's RPATH is ignored; RUNPATH does not apply to
    // liba's needs, which go to the configured directories.
    let run = t.p("run").to_string_lossy().into_owned();
    let exe = t.obj(
        "bin/exe2",
        Dynamic {
            rpath: Some(&rp),
            runpath: Some(&run),
            ..Dynamic::needs(&["liba.so"]).exe()
        },
    );
    let deps = runtime_deps_with(&exe, &dirs).unwrap();
    assert_eq!(
        found(&deps),
        vec![
            ("liba.so".into(), t.p("run/liba.so"), FoundVia::Runpath),
            ("libb.so".into(), t.p("conf/libb.so"), FoundVia::LdSoConf),
        ]
    );

    // Neither: configured directories before system ones.
    let exe = t.exe("bin/exe3", &["libc.so"]);
    let deps = runtime_deps_with(&exe, &t.dirs(&["conf"], &["sys"])).unwrap();
    assert_eq!(deps.libraries[0].path, t.p("conf/libc.so"));
    let deps = runtime_deps_with(&exe, &t.dirs(&[], &["sys"])).unwrap();
    assert_eq!(deps.libraries[0].found_via, FoundVia::SystemDir);
}

#[test]
fn origin_is_the_objects_own_directory() {
    let t = Tree::new("origin");
    t.obj(
        "app/lib/libx.so",
        Dynamic {
            runpath: Some("${ORIGIN}/deps"),
            ..Dynamic::needs(&["liby.so"])
        },
    );
    t.lib("app/lib/deps/liby.so", &[]);
    let exe = t.obj(
        "app/bin/exe",
        Dynamic {
            runpath: Some("$ORIGIN/../lib:$LIB/skip::rel"),
            ..Dynamic::needs(&["libx.so"]).exe()
        },
    );
    // The executable reached through a symbolic link: $ORIGIN is its real directory.
    std::os::unix::fs::symlink(&exe, t.p("exe-link")).unwrap();
    let deps = runtime_deps_with(&t.p("exe-link"), &t.dirs(&[], &[])).unwrap();
    let paths: Vec<PathBuf> = deps.libraries.iter().map(|l| l.path.clone()).collect();
    assert_eq!(
        paths,
        vec![
            t.p("app/bin/../lib/libx.so"),
            t.p("app/bin/../lib/deps/liby.so"),
        ]
    );
}

#[test]
fn cycles_duplicates_and_sonames_load_once() {
    let t = Tree::new("cycle");
    t.lib("l/liba.so", &["libb.so", "liba.so"]);
    t.lib("l/libb.so", &["liba.so", "libc.so.1"]);
    // libc.so.1 is a link to libc.so.1.2, whose soname is libc.so.1; libz-alias.so is
    // the same file under another name.
    t.obj(
        "l/libc.so.1.2",
        Dynamic {
            soname: Some("libc.so.1"),
            ..Default::default()
        },
    );
    std::os::unix::fs::symlink("libc.so.1.2", t.p("l/libc.so.1")).unwrap();
    std::os::unix::fs::symlink("libc.so.1.2", t.p("l/libc-alias.so")).unwrap();
    let exe = t.exe("exe", &["liba.so", "libb.so", "libc-alias.so", "liba.so"]);
    let deps = runtime_deps_with(&exe, &t.dirs(&["l"], &[])).unwrap();
    let names: Vec<&str> = deps.libraries.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["liba.so", "libb.so", "libc-alias.so"]);
}

#[test]
fn missing_library_is_named_with_its_needer_and_the_search() {
    let t = Tree::new("missing");
    t.lib("l/liba.so", &["libgone.so.7"]);
    let exe = t.exe("exe", &["liba.so"]);
    let err = runtime_deps_with(&exe, &t.dirs(&["l"], &["sys"])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "library libgone.so.7 (needed by {}) not found; searched {}, {}",
            t.p("l/liba.so").display(),
            t.p("l").display(),
            t.p("sys").display()
        )),
        "{msg}"
    );
}

#[test]
fn incompatible_candidates_are_skipped_and_non_elf_ones_are_errors() {
    let t = Tree::new("compat");
    // An ELF32 file of the same name earlier on the path: skipped.
    let mut elf32 = dynamic_elf(b"\0", &[], None);
    elf32[4] = abi::ELFCLASS32;
    t.put("first/libq.so", &elf32);
    t.lib("second/libq.so", &[]);
    let exe = t.exe("exe", &["libq.so"]);
    let deps = runtime_deps_with(&exe, &t.dirs(&["first", "second"], &[])).unwrap();
    assert_eq!(deps.libraries[0].path, t.p("second/libq.so"));
    // A linker script where the library should be: the loader fails there, so do we.
    t.put("first/libq.so", b"/* GNU ld script */ INPUT(libq.so.1)\n");
    let err = runtime_deps_with(&exe, &t.dirs(&["first", "second"], &[])).unwrap_err();
    assert!(matches!(err, ElfError::NotElf { .. }), "{err}");
}

#[test]
fn nodeflib_skips_the_configured_and_system_directories() {
    let t = Tree::new("nodeflib");
    t.lib("sys/libd.so", &[]);
    // DF_1_NODEFLIB.
    let nodeflib = Dynamic {
        flags_1: 0x800,
        ..Dynamic::needs(&["libd.so"]).exe()
    };
    let exe = t.obj("exe", nodeflib);
    let err = runtime_deps_with(&exe, &t.dirs(&[], &["sys"])).unwrap_err();
    assert!(matches!(err, ElfError::LibraryNotFound { .. }), "{err}");
}

#[test]
fn static_executables_need_nothing_and_libraries_are_not_executables() {
    let t = Tree::new("static");
    let exe = t.put(
        "static",
        &super::object::tests::synth(abi::ET_EXEC, &[(abi::PT_LOAD, 0, 0x400000, 1)], b"\x90"),
    );
    let deps = runtime_deps_with(&exe, &t.dirs(&[], &[])).unwrap();
    assert_eq!(deps.interpreter, None);
    assert!(deps.libraries.is_empty());
    // A shared library (needs things, no interpreter) is not something to start.
    let lib = t.lib("libneeds.so", &["libz.so.1"]);
    let err = runtime_deps_with(&lib, &t.dirs(&[], &[])).unwrap_err();
    assert!(err.to_string().contains("no program interpreter"), "{err}");
    // Garbage.
    let junk = t.put("junk", b"not an elf at all");
    assert!(matches!(
        runtime_deps_with(&junk, &t.dirs(&[], &[])).unwrap_err(),
        ElfError::NotElf { .. }
    ));
    assert!(matches!(elf_kind(&junk), Err(ElfError::NotElf { .. })));
    assert_eq!(elf_kind(&exe).unwrap(), ElfKind::Executable);
    // An interpreter that does not exist.
    let mut strings = b"\0".to_vec();
    strings.extend_from_slice(b"libz.so.1\0");
    let data = dynamic_elf(
        &strings,
        &[(abi::DT_NEEDED, 1)],
        Some(b"/nonexistent/ld.so\0"),
    );
    let exe = t.put("badinterp", &data);
    let err = runtime_deps_with(&exe, &t.dirs(&[], &[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/ld.so does not exist"),
        "{err}"
    );
}

#[test]
fn too_many_search_path_entries_are_refused() {
    let t = Tree::new("limits");
    let long: Vec<String> = (0..=MAX_PATH_ENTRIES).map(|i| format!("/d{i}")).collect();
    let runpath = long.join(":");
    let exe = t.obj(
        "exe",
        Dynamic {
            runpath: Some(&runpath),
            ..Dynamic::needs(&["liba.so"]).exe()
        },
    );
    let err = runtime_deps_with(&exe, &t.dirs(&[], &[])).unwrap_err();
    assert!(matches!(err, ElfError::Limit { .. }), "{err}");
}
