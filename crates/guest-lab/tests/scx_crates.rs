//! Published schedulers by name, without building one: names that are not crates or not
//! schedulers are refused with a clear error before any build, entries of the old cache
//! layout are moved into the new one, and the versions follow the documented order.
//! (Asks crates.io through `cargo info`, a few seconds.)

use guest_lab::testing::ScratchDir;
use guest_lab::{Lab, LabError, QuietProgress, RunSpec, SchedulerChoice, ScxCrate};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh cache directory, removed on drop.
struct TempCache(ScratchDir);

impl TempCache {
    fn new(name: &str) -> Self {
        TempCache(ScratchDir::new(&format!("scx-{name}")))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn lab(&self) -> Lab {
        Lab::at(self.path())
            .unwrap()
            .with_progress(Arc::new(QuietProgress))
    }
}

/// A lab over a fresh cache named after `name`.
fn lab_in(name: &str) -> (TempCache, Lab) {
    let cache = TempCache::new(name);
    let lab = cache.lab();
    (cache, lab)
}

/// Why `lab` refuses the scheduler crate `spec` (`name` or `name@version`).
fn refusal(lab: &Lab, spec: &str) -> LabError {
    let krate: ScxCrate = spec.parse().unwrap();
    lab.scx_crate(&krate).unwrap_err()
}

fn assert_no_entry(cache: &Path) {
    let scx = cache.join("scx");
    let entries: Vec<_> = walk(&scx);
    assert!(entries.is_empty(), "entries left: {entries:?}");
    let tmp: Vec<_> = std::fs::read_dir(cache.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "build leftovers: {tmp:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_crate_that_does_not_exist_is_named_in_the_error() {
    let (cache, lab) = lab_in("missing");
    // Unpinned: resolving the newest version fails.
    let msg = refusal(&lab, "scx_ktstr_no_such_scheduler").to_string();
    assert!(
        msg.contains("there is no crate scx_ktstr_no_such_scheduler on crates.io"),
        "{msg}"
    );
    // An exact version of a real scheduler that was never published.
    let msg = refusal(&lab, "scx_bpfland@0.0.1").to_string();
    assert!(
        msg.contains("there is no crate scx_bpfland@0.0.1 on crates.io"),
        "{msg}"
    );
    assert_no_entry(cache.path());
}

#[test]
fn a_crate_of_the_project_that_is_not_a_scheduler_is_refused_before_building() {
    let (cache, lab) = lab_in("notsched");
    let started = std::time::Instant::now();
    let err = refusal(&lab, "scx_utils@1.1.4");
    assert!(matches!(err, LabError::Invalid { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("scx_utils 1.1.4 is not a sched_ext scheduler")
            && msg.contains("does not depend on scx_utils"),
        "{msg}"
    );
    eprintln!(
        "refused in {:.1}s (no build)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !cache.path().join("scx-build-target").exists(),
        "cargo install never ran"
    );
    assert_no_entry(cache.path());
}

#[test]
fn versions_follow_explicit_then_pinned_then_newest() {
    let (_cache, lab) = lab_in("versions");
    let pinned = lab.scx_version(&ScxCrate::bpfland()).unwrap();
    assert_eq!(pinned, guest_lab::BPFLAND_VERSION);
    let explicit = lab
        .scx_version(&"scx_bpfland@1.0.0".parse().unwrap())
        .unwrap();
    assert_eq!(explicit, "1.0.0");
    // scx_lavd is not pinned: the newest version on crates.io, an exact version.
    let newest = lab.scx_version(&"scx_lavd".parse().unwrap()).unwrap();
    let parts: Vec<&str> = newest.split('.').collect();
    assert_eq!(parts.len(), 3, "{newest}");
    assert!(parts[0].parse::<u32>().unwrap() >= 1, "{newest}");
}

#[test]
fn old_layout_entries_move_into_scx_and_leave_a_link() {
    let (cache, lab) = lab_in("migrate");
    let v = guest_lab::BPFLAND_VERSION;
    let old = cache.path().join("bpfland").join(v);
    std::fs::create_dir_all(old.join("bin")).unwrap();
    std::fs::write(old.join("bin/scx_bpfland"), b"\x7fELF built earlier").unwrap();
    // No build: the moved entry is found.
    let built = lab.bpfland().expect("the old entry is reused");
    let new = cache.path().join("scx/scx_bpfland").join(v);
    assert_eq!(built.binary, new.join("bin/scx_bpfland"));
    assert_eq!(
        std::fs::read(&built.binary).unwrap(),
        b"\x7fELF built earlier"
    );
    let link = std::fs::read_link(&old).expect("a link at the old place");
    assert_eq!(link, Path::new("..").join("scx/scx_bpfland").join(v));
    assert!(
        old.join("bin/scx_bpfland").is_file(),
        "old checkouts still find it"
    );
    assert_eq!(lab.cached_scx_crates(), vec![built.clone()]);
    // A second call changes nothing.
    assert_eq!(lab.bpfland().unwrap(), built);
}

#[test]
fn a_published_scheduler_runs_as_a_daemon_with_quoted_args() {
    let spec = RunSpec::new().scheduler(SchedulerChoice::Published {
        krate: "scx_cosmos@1.1.7".parse().unwrap(),
        args: vec!["--slice-us".into(), "5000".into(), "it's".into()],
    });
    let script = spec.script();
    assert!(
        script.contains(
            "ktstr_sched_daemon cosmos 120 /bin/scx_cosmos '--slice-us' '5000' 'it'\\''s'\n"
        ),
        "{script}"
    );
    assert_eq!(SchedulerChoice::bpfland().name(), "bpfland");
}
