//! Published schedulers of the sched_ext project: any `scx_*` scheduler crate on
//! crates.io, built once with `cargo install --locked` and cached by crate and version.
//!
//! - **Names.** `scx_NAME[@VERSION]` ([`ScxCrate`]); `bpfland` and `p2dq` are short for
//!   `scx_bpfland` and `scx_p2dq`.
//! - **Version.** An explicit `@VERSION` (exact `MAJOR.MINOR.PATCH`), else the environment
//!   variable `KTSTR_<NAME>_VERSION` (`KTSTR_BPFLAND_VERSION`, `KTSTR_COSMOS_VERSION`, …),
//!   else the version pinned in [`PINNED_VERSIONS`] (ones this project has built and
//!   attached on its kernel), else the newest version crates.io offers, asked with
//!   `cargo info` (once per process; when that fails, e.g. offline, the newest version
//!   already in the cache is taken, with a note on the progress sink).
//! - **Is it a scheduler?** Before the (minutes-long) build, `cargo info -v` must list
//!   `scx_utils` among the crate's dependencies: every scheduler of the project loads
//!   and attaches its BPF skeleton through it, and the project's library crates
//!   (`scx_utils` itself, `scx_stats`, `scx_loader`, …) do not depend on it. After the
//!   build, the crate must have installed a binary named like the crate (the binary the
//!   guest runs). Either failing is a [`LabError::Invalid`] saying which.
//! - **Cache.** `scx/<crate>/<version>/bin/<crate>`; one cargo target directory shared by
//!   all of them (`scx-build-target/`, most of the dependency tree is common). Entries of
//!   the layout before this one (`bpfland/<version>/`, `p2dq/<version>/`) are moved into
//!   place on first use and a symbolic link is left behind for older checkouts.
//!
//! `scx_p2dq` matters to the walkers because it links the sdt arena allocator
//! (`lib/sdt_alloc.bpf.c`, shipped inside its crate): its per-task contexts live in
//! `scx_task_allocator`, its topology, queues and heaps in `scx_static`.

use super::{Lab, LabError, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The version of `scx_bpfland` the lab builds unless told otherwise.
pub const BPFLAND_VERSION: &str = "1.1.4";
/// The version of `scx_p2dq` the lab builds unless told otherwise.
pub const P2DQ_VERSION: &str = "1.1.4";

/// Known-good versions: built here with clang-19 and attached on the lab's 7.3 kernel
/// (the corpus tests, `tests/tests/scx_corpus.rs`, run each under TCG). A crate not
/// listed gets the newest version crates.io offers.
pub const PINNED_VERSIONS: &[(&str, &str)] = &[
    ("scx_bpfland", BPFLAND_VERSION),
    ("scx_p2dq", P2DQ_VERSION),
    ("scx_cosmos", "1.1.7"),
    ("scx_flash", "1.1.4"),
    ("scx_rusty", "1.1.4"),
    ("scx_beerland", "1.1.4"),
    ("scx_tickless", "1.1.4"),
    ("scx_rustland", "1.1.4"),
    ("scx_layered", "1.1.4"),
];

/// The corpus: the published schedulers the end-to-end tests run (one test each), in the
/// order `cargo xtask provision` builds them (`scx_bpfland` first: it builds most of the
/// shared dependency tree). Each is pinned in [`PINNED_VERSIONS`].
pub const CORPUS: [&str; 9] = [
    "scx_bpfland",
    "scx_p2dq",
    "scx_cosmos",
    "scx_flash",
    "scx_rusty",
    "scx_beerland",
    "scx_tickless",
    "scx_rustland",
    "scx_layered",
];

/// Short names accepted for published schedulers.
const ALIASES: &[(&str, &str)] = &[("bpfland", "scx_bpfland"), ("p2dq", "scx_p2dq")];

/// The cache's shared cargo target directory for the scx crates' builds.
pub(crate) const SHARED_TARGET: &str = "scx-build-target";
/// The cache directory of published schedulers (`scx/<crate>/<version>/`).
pub(crate) const SCX_DIR: &str = "scx";
/// The one dependency every scheduler of the sched_ext project has.
const SCHEDULER_MARKER_DEP: &str = "scx_utils";
/// Crate names (crates.io allows 64 characters).
const MAX_NAME: usize = 64;

/// A published scheduler crate, optionally at an exact version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScxCrate {
    name: String,
    version: Option<String>,
}

impl ScxCrate {
    /// `name` must be `scx_` followed by lowercase letters, digits, `_` or `-`; `version`,
    /// when given, an exact `MAJOR.MINOR.PATCH` (with an optional `-pre`/`+build`).
    pub fn new(name: &str, version: Option<&str>) -> Result<ScxCrate, String> {
        let rest = name.strip_prefix("scx_").unwrap_or("");
        let chars_ok = rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if rest.is_empty() || !chars_ok || name.len() > MAX_NAME {
            return Err(format!(
                "{name:?} is not a sched_ext scheduler crate name: expected scx_NAME \
                 (lowercase letters, digits, _ and -)"
            ));
        }
        if let Some(v) = version {
            check_version(v)?;
        }
        Ok(ScxCrate {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }

    /// `scx_bpfland` at its default version.
    pub fn bpfland() -> ScxCrate {
        ScxCrate {
            name: "scx_bpfland".into(),
            version: None,
        }
    }

    /// `scx_p2dq` at its default version.
    pub fn p2dq() -> ScxCrate {
        ScxCrate {
            name: "scx_p2dq".into(),
            version: None,
        }
    }

    /// The same crate at an exact version.
    pub fn at_version(self, version: &str) -> Result<ScxCrate, String> {
        ScxCrate::new(&self.name, Some(version))
    }

    /// The crate name (also the name of its binary), e.g. `scx_cosmos`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version asked for, if any (see the module docs for the default).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The name without `scx_` (`cosmos`), as the guest reports it in `scheduler-start`.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix("scx_").unwrap_or(&self.name)
    }

    /// The version pinned for this crate, if any.
    pub fn pinned_version(&self) -> Option<&'static str> {
        PINNED_VERSIONS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, v)| *v)
    }

    /// The environment variable that overrides the default version
    /// (`KTSTR_COSMOS_VERSION` for `scx_cosmos`).
    pub fn version_env(&self) -> String {
        format!(
            "KTSTR_{}_VERSION",
            self.short_name().to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl std::str::FromStr for ScxCrate {
    type Err = String;
    /// `scx_NAME`, `scx_NAME@VERSION`, or a short name (`bpfland`, `p2dq@1.1.4`).
    fn from_str(s: &str) -> Result<ScxCrate, String> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, full)| full);
        ScxCrate::new(name, version)
    }
}

impl std::fmt::Display for ScxCrate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// An exact semver version: three numeric components, then an optional `-pre`/`+build`
/// of letters, digits, `.`, `-`, `+`.
fn check_version(v: &str) -> Result<(), String> {
    let bad =
        || format!("{v:?} is not an exact crate version: expected MAJOR.MINOR.PATCH, e.g. 1.1.4");
    if v.len() > 64 {
        return Err(bad());
    }
    let core_end = v.find(['-', '+']).unwrap_or(v.len());
    let (core, extra) = v.split_at(core_end);
    let nums: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit());
    if nums.len() != 3 || !nums.iter().all(numeric) {
        return Err(bad());
    }
    if !extra
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
        || extra.len() == 1
    {
        return Err(bad());
    }
    Ok(())
}

/// A scheduler binary built from a crates.io package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScxCrateAssets {
    /// The crate (and binary) name, e.g. `scx_p2dq`.
    pub name: String,
    pub version: String,
    /// The binary (dynamically linked; the initramfs carries its interpreter and
    /// libraries).
    pub binary: PathBuf,
}

/// What `cargo info -v` says about one version of a crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrateInfo {
    pub version: String,
    /// Names of its (normal, not build-) dependencies; `None` when cargo printed no
    /// dependency list at all (an output format this code does not know).
    pub dependencies: Option<Vec<String>>,
}

/// Parse `cargo info -v` output: the `version:` line and the `dependencies:` list
/// (` +scx_utils@1.1.4`; `+` marks enabled dependencies, optional ones have none).
pub(crate) fn parse_cargo_info(text: &str) -> Option<CrateInfo> {
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let mut dependencies = None;
    let mut in_deps = false;
    for line in text.lines() {
        if line == "dependencies:" {
            in_deps = true;
            dependencies.get_or_insert_with(Vec::new);
            continue;
        }
        if in_deps {
            if !line.starts_with(' ') {
                in_deps = false;
                continue;
            }
            let dep = line.trim().trim_start_matches('+');
            let name = dep.split('@').next().unwrap_or("").trim();
            if !name.is_empty()
                && let Some(d) = dependencies.as_mut()
            {
                d.push(name.to_string());
            }
        }
    }
    Some(CrateInfo {
        version,
        dependencies,
    })
}

/// `cargo info -v NAME[@VERSION]` (talks to crates.io; downloads the crate's sources into
/// cargo's own cache, which `cargo install` reuses).
fn registry_info(lab: &Lab, name: &str, version: Option<&str>) -> Result<CrateInfo, LabError> {
    let spec = match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_string(),
    };
    let step = format!("asking crates.io about {spec}");
    lab.progress().step(&step);
    // From `/`: no project's workspace, lock file or .cargo/config changes the answer.
    let out = tool::output(
        &step,
        Command::new("cargo")
            .args(["info", "-v", &spec])
            .current_dir("/")
            .env_remove("CARGO_TARGET_DIR"),
    );
    let out = match out {
        Ok(out) => out,
        Err(LabError::Tool { output_tail, .. }) if output_tail.contains("could not find") => {
            return Err(LabError::invalid(
                &step,
                format!("there is no crate {spec} on crates.io"),
            ));
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&out);
    parse_cargo_info(&text).ok_or_else(|| {
        LabError::invalid(
            &step,
            format!("no version in `cargo info` output: {}", tool::tail(&text)),
        )
    })
}

/// Refuse a crate that is not a scheduler of the project (see the module docs).
fn check_is_scheduler(lab: &Lab, name: &str, info: &CrateInfo) -> Result<(), LabError> {
    match &info.dependencies {
        Some(deps) if deps.iter().any(|d| d == SCHEDULER_MARKER_DEP) => Ok(()),
        Some(_) => Err(LabError::invalid(
            format!("checking {name} {}", info.version),
            format!(
                "{name} {} is not a sched_ext scheduler: it does not depend on \
                 {SCHEDULER_MARKER_DEP} (every scheduler of the project does)",
                info.version
            ),
        )),
        None => {
            lab.progress().step(&format!(
                "cannot read the dependencies of {name} from `cargo info -v`; building \
                 it and checking for its binary instead"
            ));
            Ok(())
        }
    }
}

impl Lab {
    /// The exact version the lab builds for `krate` (see the module docs for the
    /// order: `@VERSION`, `KTSTR_<NAME>_VERSION`, pinned, newest).
    pub fn scx_version(&self, krate: &ScxCrate) -> Result<String, LabError> {
        if let Some(v) = krate.version() {
            return Ok(v.to_string());
        }
        let env = krate.version_env();
        if let Ok(v) = std::env::var(&env)
            && !v.is_empty()
        {
            check_version(&v).map_err(|e| LabError::invalid(format!("reading {env}"), e))?;
            return Ok(v);
        }
        if let Some(v) = krate.pinned_version() {
            return Ok(v.to_string());
        }
        let name = krate.name().to_string();
        let newest = tool::memo(format!("crates.io-newest:{name}"), || {
            registry_info(self, &name, None).map(|i| i.version)
        });
        match newest {
            Ok(v) => Ok(v),
            Err(e) => match self.newest_cached(&name) {
                Some(v) => {
                    self.progress().step(&format!(
                        "cannot ask crates.io for the newest {name} ({e}); using {v} from the cache"
                    ));
                    Ok(v)
                }
                None => Err(e),
            },
        }
    }

    /// The newest version of `name` built in the cache (by semver order of the
    /// numeric components).
    fn newest_cached(&self, name: &str) -> Option<String> {
        let dir = self.root().join(SCX_DIR).join(name);
        let key = |v: &str| -> Vec<u64> {
            v.split(['-', '+'])
                .next()
                .unwrap_or("")
                .split('.')
                .map(|n| n.parse().unwrap_or(0))
                .collect()
        };
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.path().join("bin").join(name).is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .max_by_key(|v| key(v))
    }

    /// Every published scheduler built in the cache.
    pub fn cached_scx_crates(&self) -> Vec<ScxCrateAssets> {
        let mut out = Vec::new();
        let Ok(names) = std::fs::read_dir(self.root().join(SCX_DIR)) else {
            return out;
        };
        for n in names.flatten() {
            let name = n.file_name().to_string_lossy().into_owned();
            let Ok(versions) = std::fs::read_dir(n.path()) else {
                continue;
            };
            for v in versions.flatten() {
                let binary = v.path().join("bin").join(&name);
                if binary.is_file() {
                    out.push(ScxCrateAssets {
                        name: name.clone(),
                        version: v.file_name().to_string_lossy().into_owned(),
                        binary,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }

    /// The published scheduler `krate`, built with `cargo install --locked` on first use
    /// (minutes: the first one builds the shared dependency tree, each further one reuses
    /// it; the README has the measured figures), from the cache after.
    pub fn scx_crate(&self, krate: &ScxCrate) -> Result<ScxCrateAssets, LabError> {
        let name = krate.name();
        let version = self.scx_version(krate)?;
        let rel = format!("{SCX_DIR}/{name}/{version}");
        self.migrate_legacy_entry(krate, &version, &rel)?;
        let what = format!("{name} {version} (cargo install, minutes on a cold cache)");
        let step = format!("building {name} {version}");
        let dir = self.entry(&rel, &what, |tmp| {
            let info = registry_info(self, name, Some(&version))?;
            check_is_scheduler(self, name, &info)?;
            self.cargo_install(name, &version, tmp, &step)?;
            let binary = tmp.join("bin").join(name);
            if !binary.is_file() {
                let installed: Vec<String> = std::fs::read_dir(tmp.join("bin"))
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(LabError::invalid(
                    &step,
                    format!(
                        "{name} {version} is not a sched_ext scheduler: it installed no \
                         binary named {name} (installed: {})",
                        if installed.is_empty() {
                            "nothing".to_string()
                        } else {
                            installed.join(", ")
                        }
                    ),
                ));
            }
            Ok(())
        })?;
        Ok(ScxCrateAssets {
            name: name.to_string(),
            version,
            binary: dir.join("bin").join(name),
        })
    }

    /// `cargo install --locked NAME --version VERSION --root OUT` with the shared target
    /// directory and LLVM 19 for the BPF side.
    fn cargo_install(
        &self,
        name: &str,
        version: &str,
        out: &Path,
        step: &str,
    ) -> Result<(), LabError> {
        // One build directory for every scx crate: they share most of their dependency
        // tree (libbpf-sys, scx_utils, …), so the second cold build reuses the first
        // one's artifacts. Kept after the build (it only matters for cold builds);
        // `prune` removes it. Its own lock serialises builds and prune.
        let _target_lock = self.lock(SHARED_TARGET)?;
        let target = self.root().join(SHARED_TARGET);
        // scx's build compiles BPF with clang and links libbpf through libclang: point
        // all of them at LLVM 19.
        let path = format!(
            "/usr/lib/llvm-19/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "--locked", name, "--version", version, "--root"])
            .arg(out)
            .env("PATH", path)
            .env("BPF_CLANG", "/usr/lib/llvm-19/bin/clang")
            .env("LIBCLANG_PATH", "/usr/lib/llvm-19/lib")
            .env("CARGO_TARGET_DIR", &target)
            // The caller may be a cargo build script or test: do not inherit its
            // toolchain choices for this unrelated crate.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET_DIR");
        tool::run_logged(self.progress(), step, &mut cmd, &out.join("build.log"))
    }

    /// Move an entry of the old layout (`bpfland/<version>/`, `p2dq/<version>/`) to
    /// `rel`, leaving a symbolic link at the old place for checkouts that still look
    /// there.
    fn migrate_legacy_entry(
        &self,
        krate: &ScxCrate,
        version: &str,
        rel: &str,
    ) -> Result<(), LabError> {
        let legacy_rel = match krate.name() {
            "scx_bpfland" => format!("bpfland/{version}"),
            "scx_p2dq" => format!("p2dq/{version}"),
            _ => return Ok(()),
        };
        let new = self.root().join(rel);
        let old = self.root().join(&legacy_rel);
        let is_real_dir = |p: &Path| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
                && p.join("bin").join(krate.name()).is_file()
        };
        if new.is_dir() || !is_real_dir(&old) {
            return Ok(());
        }
        let _new_lock = self.lock(rel)?;
        let _old_lock = self.lock(&legacy_rel)?;
        if new.is_dir() || !is_real_dir(&old) {
            return Ok(());
        }
        let step = format!("moving {legacy_rel} to {rel}");
        if let Some(parent) = new.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io(&step, parent, e))?;
        }
        std::fs::rename(&old, &new).map_err(|e| LabError::io(&step, &old, e))?;
        // Relative, so the cache directory can move: bpfland/1.1.4 → ../scx/scx_bpfland/1.1.4.
        let target = Path::new("..").join(rel);
        std::os::unix::fs::symlink(&target, &old).map_err(|e| LabError::io(&step, &old, e))?;
        self.progress()
            .step(&format!("moved {legacy_rel} to {rel}"));
        Ok(())
    }

    /// `scx_bpfland` ([`BPFLAND_VERSION`] unless `KTSTR_BPFLAND_VERSION`).
    pub fn bpfland(&self) -> Result<ScxCrateAssets, LabError> {
        self.scx_crate(&ScxCrate::bpfland())
    }

    /// `scx_p2dq` ([`P2DQ_VERSION`] unless `KTSTR_P2DQ_VERSION`; links the sdt
    /// allocator).
    pub fn p2dq(&self) -> Result<ScxCrateAssets, LabError> {
        self.scx_crate(&ScxCrate::p2dq())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_aliases_and_versions() {
        let c: ScxCrate = "scx_cosmos@1.1.7".parse().unwrap();
        assert_eq!((c.name(), c.version()), ("scx_cosmos", Some("1.1.7")));
        assert_eq!(c.short_name(), "cosmos");
        assert_eq!(c.version_env(), "KTSTR_COSMOS_VERSION");
        assert_eq!(c.to_string(), "scx_cosmos@1.1.7");
        let b: ScxCrate = "bpfland".parse().unwrap();
        assert_eq!(b, ScxCrate::bpfland());
        assert_eq!(b.pinned_version(), Some(BPFLAND_VERSION));
        assert_eq!(b.version_env(), "KTSTR_BPFLAND_VERSION");
        let p: ScxCrate = "p2dq@1.1.3".parse().unwrap();
        assert_eq!((p.name(), p.version()), ("scx_p2dq", Some("1.1.3")));
        assert_eq!(
            "scx_x@1.0.0-rc.1".parse::<ScxCrate>().unwrap().version(),
            Some("1.0.0-rc.1")
        );
        assert_eq!(
            "scx_lavd".parse::<ScxCrate>().unwrap().pinned_version(),
            None
        );
    }

    #[test]
    fn the_corpus_is_pinned() {
        for name in CORPUS {
            let c: ScxCrate = name.parse().unwrap();
            let v = c
                .pinned_version()
                .unwrap_or_else(|| panic!("{name} not pinned"));
            assert!(check_version(v).is_ok(), "{name} {v}");
        }
        assert_eq!(CORPUS[0], "scx_bpfland");
    }

    #[test]
    fn bad_names_and_versions_are_refused() {
        for bad in [
            "cosmos",
            "scx_",
            "scx_Cosmos",
            "scx_a/b",
            "scx_a b",
            "scx_a;rm",
            "scx_cosmos@1.1",
            "scx_cosmos@^1.1.4",
            "scx_cosmos@1.1.x",
            "scx_cosmos@",
            "scx_cosmos@1.1.4-",
            "scx_cosmos@1.1.4 --path=/",
        ] {
            assert!(bad.parse::<ScxCrate>().is_err(), "{bad} accepted");
        }
        let long = format!("scx_{}", "a".repeat(MAX_NAME));
        assert!(long.parse::<ScxCrate>().is_err());
    }

    #[test]
    fn cargo_info_output_parses() {
        let text = "scx_cosmos\nLightweight scheduler.\nversion: 1.1.4 (latest 1.1.7)\n\
                    license: GPL-2.0-only\nfeatures:\n  gpu-topology     = []\n\
                    dependencies:\n +anyhow@1\n +libbpf-rs@=0.27.2\n  scx_cargo@1.1.4\n \
                    +scx_utils@1.1.4\nbuild-dependencies:\n +scx_cargo@1.1.4\n";
        let info = parse_cargo_info(text).unwrap();
        assert_eq!(info.version, "1.1.4");
        assert_eq!(
            info.dependencies.as_deref(),
            Some(&["anyhow", "libbpf-rs", "scx_cargo", "scx_utils"].map(String::from)[..])
        );
        // A library with no dependencies section at all, and no version line.
        let lib = parse_cargo_info("scx_loader\nversion: 1.1.3\nlicense: GPL\n").unwrap();
        assert_eq!(lib.dependencies, None);
        assert_eq!(parse_cargo_info("error: nothing"), None);
        // Build-dependencies do not count as dependencies.
        let only_build =
            parse_cargo_info("version: 1.0.0\ndependencies:\nbuild-dependencies:\n +scx_utils@1\n")
                .unwrap();
        assert_eq!(only_build.dependencies, Some(vec![]));
    }
}
