//! The guest tests, marked one way: a test that boots a guest (QEMU, or the native KVM
//! engine with the lab's kernel) or provisions the guest lab is named `guest_*`; nextest's
//! `guest` group (`.config/nextest.toml`) is exactly the tests so named, and
//! `cargo xtask test --fast` runs all the others.
//!
//! The rule is checked on the source tree (the test at the end of this file): every test
//! of every test target of the workspace that reaches one of [`ENTRIES`] — directly, or
//! through functions of its own target (and of the `e2e-tests` library, for the targets
//! that use it) — must be named `guest_*`, and every test named so must reach one. A
//! new way into QEMU or the lab adds its entry here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::rust_scan::{Func, calls, functions};

/// The prefix of a guest test's function name.
pub const GUEST_PREFIX: &str = "guest_";

/// The nextest group of the guest tests.
pub const GUEST_GROUP: &str = "guest";
/// The filter that fills it: the function's name (the last segment of nextest's test
/// name) starts with [`GUEST_PREFIX`].
pub const GUEST_FILTER: &str = "test(/(^|::)guest_[^:]*$/)";

/// Calls that reach QEMU or the guest lab, and what they do.
pub const ENTRIES: &[(&str, &str)] = &[
    (
        "need_qemu",
        "guest_lab::testing::need_qemu: the test boots QEMU",
    ),
    (
        "open_lab",
        "guest_lab::testing::open_lab: the test provisions",
    ),
    ("lab_at", "guest_lab::testing::lab_at: the test provisions"),
    ("Lab::open", "guest_lab::Lab::open: provisions"),
    ("QemuEngine::launch", "starts QEMU"),
    ("QuickBoot::new", "boots QEMU"),
];

/// The workspace library that test targets may call into for their guest set-up.
const SUPPORT_LIB: (&str, &str) = ("e2e-tests", "tests/src");

/// One compiled test target: its own files and the files whose functions it can call.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub own: Vec<PathBuf>,
    pub support: Vec<PathBuf>,
}

/// A test and, when it reaches QEMU or the lab, how.
#[derive(Debug)]
pub struct TestInfo {
    pub target: String,
    pub file: PathBuf,
    pub line: usize,
    pub name: String,
    pub reaches: Option<String>,
}

/// The workspace's members (`members = [...]` of the root manifest).
fn members(root: &Path) -> Result<Vec<PathBuf>, String> {
    let manifest = read(&root.join("Cargo.toml"))?;
    let list = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .ok_or("no `members = [...]` in the workspace manifest")?
        .0;
    Ok(list
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root.join(m))
        .collect())
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `mod name;` declarations of a file (modules in their own files).
fn declared_modules(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// The unit-test target (`src/`) and the integration-test targets (`tests/`) of every
/// member.
pub fn targets(root: &Path) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    for m in members(root)? {
        let crate_name = m
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into());
        let manifest = read(&m.join("Cargo.toml"))?;
        let support = if manifest.contains(SUPPORT_LIB.0) || m == root.join("tests") {
            rust_files(&root.join(SUPPORT_LIB.1))
        } else {
            Vec::new()
        };
        out.push(Target {
            name: format!("{crate_name} (src)"),
            own: rust_files(&m.join("src")),
            support: Vec::new(),
        });
        let tests = m.join("tests");
        let Ok(entries) = std::fs::read_dir(&tests) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let (name, mut own) = if p.is_dir() && p.join("main.rs").is_file() {
                (p.clone(), rust_files(&p))
            } else if p.extension().is_some_and(|x| x == "rs") {
                (p.with_extension(""), vec![p.clone()])
            } else {
                continue; // a shared module directory, or data
            };
            let entry = if p.is_dir() {
                p.join("main.rs")
            } else {
                p.clone()
            };
            for module in declared_modules(&read(&entry)?) {
                let dir = tests.join(&module);
                if dir.is_dir() && !p.is_dir() {
                    own.extend(rust_files(&dir));
                }
            }
            let name = name
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into());
            out.push(Target {
                name: format!("{crate_name} --test {name}"),
                own,
                support: support.clone(),
            });
        }
    }
    Ok(out)
}

/// Which functions of `funcs` reach an entry, and how (`a -> b -> Lab::open: ...`).
fn reaching(funcs: &[Func]) -> BTreeMap<usize, String> {
    let mut reach = BTreeMap::new();
    loop {
        let mut changed = false;
        for (i, f) in funcs.iter().enumerate() {
            if reach.contains_key(&i) {
                continue;
            }
            let direct = ENTRIES
                .iter()
                .find(|(call, _)| calls(&f.body, call))
                .map(|(call, why)| format!("{call} ({why})"));
            let via = || {
                reach.iter().find_map(|(&j, how): (&usize, &String)| {
                    let g = &funcs[j];
                    let hit = match &g.owner {
                        None => calls(&f.body, &g.name),
                        Some(ty) => {
                            calls(&f.body, &format!("{ty}::{}", g.name))
                                || (f.owner == g.owner
                                    && calls(&f.body, &format!("Self::{}", g.name)))
                        }
                    };
                    let name = match &g.owner {
                        Some(ty) => format!("{ty}::{}", g.name),
                        None => g.name.clone(),
                    };
                    hit.then(|| format!("{name} -> {how}"))
                })
            };
            if let Some(how) = direct.or_else(via) {
                reach.insert(i, how);
                changed = true;
            }
        }
        if !changed {
            return reach;
        }
    }
}

/// Every test of `target` and whether it reaches QEMU or the lab.
pub fn tests_of(target: &Target) -> Result<Vec<TestInfo>, String> {
    let mut funcs = Vec::new();
    let mut origin = Vec::new();
    for (file, own) in target
        .own
        .iter()
        .map(|f| (f, true))
        .chain(target.support.iter().map(|f| (f, false)))
    {
        for f in functions(&read(file)?) {
            origin.push((file.clone(), own));
            funcs.push(f);
        }
    }
    let reach = reaching(&funcs);
    Ok(funcs
        .iter()
        .enumerate()
        .filter(|(i, f)| f.is_test && origin[*i].1)
        .map(|(i, f)| TestInfo {
            target: target.name.clone(),
            file: origin[i].0.clone(),
            line: f.line,
            name: f.name.clone(),
            reaches: reach.get(&i).cloned(),
        })
        .collect())
}

/// The workspace's guest tests (`file:line (target): name <- how`) and every test whose
/// name and reach disagree, said as a sentence each.
pub fn check(root: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut guest, mut bad) = (Vec::new(), Vec::new());
    for t in targets(root)? {
        for test in tests_of(&t)? {
            let named = test.name.starts_with(GUEST_PREFIX);
            let at = format!(
                "{}:{} ({})",
                test.file.strip_prefix(root).unwrap_or(&test.file).display(),
                test.line,
                test.target
            );
            match (&test.reaches, named) {
                (Some(how), true) => guest.push(format!("{at}: {} <- {how}", test.name)),
                (None, false) => {}
                (Some(how), false) => bad.push(format!(
                    "{at}: test {} reaches QEMU or the lab ({how}) but is not named {GUEST_PREFIX}*",
                    test.name
                )),
                (None, true) => bad.push(format!(
                    "{at}: test {} is named {GUEST_PREFIX}* but reaches neither QEMU nor the lab",
                    test.name
                )),
            }
        }
    }
    Ok((guest, bad))
}

/// `cargo xtask guest-tests`: lists the guest tests the rule finds and fails when a test
/// breaks it or the nextest group is not the rule's.
pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err(format!("unexpected arguments {args:?}; usage: guest-tests"));
    }
    let root = crate::workspace::root();
    let (guest, mut bad) = check(&root)?;
    for g in &guest {
        println!("{g}");
    }
    let config = root.join(".config/nextest.toml");
    match nextest_guest_filter(&read(&config)?) {
        Ok(f) if f == GUEST_FILTER => {}
        Ok(f) => bad.push(format!(
            "{}: the guest group's filter is {f}, the rule's is {GUEST_FILTER}",
            config.display()
        )),
        Err(e) => bad.push(format!("{}: {e}", config.display())),
    }
    println!(
        "{} guest tests (nextest group {GUEST_GROUP}, filter {GUEST_FILTER})",
        guest.len()
    );
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the guest-test rule is broken:\n{}",
            bad.join("\n")
        ))
    }
}

/// The guest group's filter in `.config/nextest.toml`, checked: `[test-groups]` has
/// `guest = { max-threads = 1 }`, and exactly one override puts tests in it, with one retry.
pub fn nextest_guest_filter(config: &str) -> Result<String, String> {
    let group_line = format!("{GUEST_GROUP} = {{ max-threads = 1 }}");
    if !config.lines().any(|l| l.trim() == group_line) {
        return Err(format!("no `{group_line}` in [test-groups]"));
    }
    let group = format!("test-group = \"{GUEST_GROUP}\"");
    let overrides: Vec<&str> = config
        .split("[[profile.default.overrides]]")
        .skip(1)
        .filter(|o| o.lines().any(|l| l.trim() == group))
        .collect();
    let [o] = overrides[..] else {
        return Err(format!(
            "{} overrides with `{group}`, want one",
            overrides.len()
        ));
    };
    let line = |key: &str| o.lines().map(str::trim).find(|l| l.starts_with(key));
    if line("retries") != Some("retries = 1") {
        return Err(format!(
            "the guest override's retries: {:?}, want 1",
            line("retries")
        ));
    }
    let filter = line("filter =")
        .and_then(|l| l.split('\'').nth(1))
        .ok_or("the guest override has no filter = '...'")?;
    Ok(filter.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_test_is_named_guest_and_only_those() {
        let root = crate::workspace::root();
        let (guest, bad) = check(&root).unwrap();
        assert!(bad.is_empty(), "{}", bad.join("\n"));
        // A rule that found no guest test would be checking nothing.
        assert!(guest.len() >= 40, "only {} guest tests found", guest.len());
    }

    #[test]
    fn the_nextest_guest_group_is_the_naming_rule() {
        let config = read(&crate::workspace::root().join(".config/nextest.toml")).unwrap();
        assert_eq!(nextest_guest_filter(&config).unwrap(), GUEST_FILTER);
        assert!(GUEST_FILTER.contains(GUEST_PREFIX));
    }

    #[test]
    fn a_test_reaching_the_lab_through_helpers_is_found() {
        let src = r#"
fn lab() -> Option<Lab> { if !testing::need_qemu() { return None; } Some(x) }
struct Booted;
impl Booted { fn boot() -> Booted { let _ = lab(); Booted } fn phase(&self) {} }
#[test] fn guest_boots() { let b = Booted::boot(); b.phase(); }
#[test] fn sneaks_in() { helper(); }
fn helper() { let _ = Booted::boot(); }
#[test] fn guest_but_idle() { Booted.phase(); }
#[test] fn plain() { Booted.phase(); }
"#;
        let funcs = functions(src);
        let reach = reaching(&funcs);
        let by_name = |n: &str| funcs.iter().position(|f| f.name == n).unwrap();
        assert!(reach[&by_name("guest_boots")].contains("Booted::boot -> lab -> need_qemu"));
        assert!(reach[&by_name("sneaks_in")].contains("helper -> Booted::boot"));
        assert!(!reach.contains_key(&by_name("guest_but_idle")));
        assert!(!reach.contains_key(&by_name("plain")));
        assert!(!reach.contains_key(&by_name("phase")));
    }

    #[test]
    fn nextest_config_checks() {
        let good = "[test-groups]\nguest = { max-threads = 1 }\n\n[[profile.default.overrides]]\nfilter = 'test(/x/)'\ntest-group = \"guest\"\nretries = 1\n";
        assert_eq!(nextest_guest_filter(good).unwrap(), "test(/x/)");
        let no_retry = good.replace("retries = 1", "retries = 0");
        assert!(nextest_guest_filter(&no_retry).is_err());
        let no_limit = good.replace("max-threads = 1", "max-threads = 2");
        assert!(nextest_guest_filter(&no_limit).is_err());
        let twice = format!(
            "{good}\n[[profile.default.overrides]]\nfilter = 'all()'\ntest-group = \"guest\"\nretries = 1\n"
        );
        assert!(nextest_guest_filter(&twice).is_err());
    }
}
