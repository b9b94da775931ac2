//! Guest-lab provisioning: the sched_ext kernel, the initramfs, the test schedulers and
//! the sched_ext project's published schedulers, cached by version under one directory.
//!
//! Everything the real-guest tests and the `ktstr run` command boot comes from here:
//!
//! ```no_run
//! use guest_lab::{Lab, RunSpec, SchedulerChoice, TestScheduler};
//! let lab = Lab::open()?;
//! lab.ensure_host_packages()?;
//! let kernel = lab.kernel()?;
//! let spec = RunSpec::new()
//!     .scheduler(SchedulerChoice::test(TestScheduler::Stall))
//!     .workload("ktstr_spin 4 20");
//! let initrd = lab.initramfs(&spec)?;
//! // qemu-system-x86_64 -kernel {kernel.vmlinuz} -initrd {initrd.path()} -append ...
//! # Ok::<(), guest_lab::LabError>(())
//! ```
//!
//! Cache contract (`$KTSTR_CACHE`, default `~/.cache/ktstr`):
//! - every entry is a directory whose name carries the versions it was built from; it is
//!   built in `tmp/` and renamed into place, so an entry that exists is complete;
//! - concurrent callers (tests run in parallel, several processes) are serialized per entry
//!   with a file lock under `locks/`; the second caller finds the entry and reuses it;
//! - a failed download or build returns a [`LabError`] naming the step, with the tail of
//!   the tool's output, and leaves no entry behind.
//!
//! Entries: `kernel/<release>/` ([`KernelAssets`]; a kernel built from source:
//! `kernel/<source version>-ktstr-<config hash>/`), `sched/<kernel entry>/<hash>/` (the test
//! schedulers, [`SchedulerAssets`]), `loader/<hash>/ktstr-loader`,
//! `scx/<crate>/<version>/bin/<crate>` (published schedulers, [`ScxCrateAssets`]; built in
//! the shared cargo target directory `scx-build-target/`),
//! `initramfs/<release>-<hash>/base.cpio` and `initramfs/scx-<crate>-<version>-<hash>/layer.cpio`
//! (a published scheduler with its libraries); hashes cover the embedded sources
//! and tool versions, so editing a scheduler or `/init` makes a new entry. Private apt
//! state lives in `apt/`, per-run archives in `runs/` (removed on drop), locks in
//! `locks/`, builds in progress in `tmp/`. `bpfland/<version>` and `p2dq/<version>` are
//! symbolic links left by the move to `scx/` (see [`ScxCrate`]).
//!
//! What the guest does and prints is described in [`RunSpec`]'s module
//! (`KTSTR-PHASE:` / `KTSTR-OUT` lines, parsed by [`ConsoleLog`]).
//!
//! Environment: `KTSTR_CACHE` (cache directory), `KTSTR_KERNEL_VERSION` (an exact
//! kernel, e.g. `7.3.4+deb13`), `KTSTR_<NAME>_VERSION` (the crates.io version of
//! `scx_<name>`, e.g. `KTSTR_BPFLAND_VERSION`).

mod apt;

mod cache;
mod cpio;
pub mod elf_deps;
mod host;
mod initramfs;
mod kernel;
mod kernel_src;
mod progress;
mod prune;
mod runspec;
mod sched;
mod scx_crate;
#[cfg(feature = "test-util")]
pub mod testing;
mod tool;
mod workload;

pub use host::{HostPackage, MissingPackage, REQUIRED_PACKAGES};
pub use initramfs::{HELPERS, Initramfs, SCHED_SH};
pub use kernel::{DEFAULT_KERNEL_VERSION, KernelAssets};
pub use kernel_src::{GUEST_OPTIONS, SOURCE_LINES, SourceLine, source_line};
pub use progress::{Progress, QuietProgress, StderrProgress};
pub use runspec::{
    ConsoleLog, ENVIRONMENT_FIELDS, GuestCommand, HookPoint, OUT_PREFIX, PHASE_PREFIX, Phase,
    RunEnd, RunSpec, SPLIT_JSON_OBJECTS, SchedulerChoice, SchedulerProcessExit, TestScheduler,
    TestSchedulerParams,
};
pub use sched::SchedulerAssets;
pub use scx_crate::{
    BPFLAND_VERSION, CORPUS, P2DQ_VERSION, PINNED_VERSIONS, ScxCrate, ScxCrateAssets,
};
pub use workload::MixedWorkload;

/// The lab guest's kernel command line: serial console (the console protocol runs on
/// `ttyS0`), no reboot on panic, quiet.
pub const DEFAULT_APPEND: &str = "console=ttyS0 panic=-1 loglevel=4";

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why provisioning failed; every variant names the step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A file-system operation failed.
    #[error("{step}: {path}: {source}")]
    Io {
        step: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An external tool (apt-get, clang, cargo, ...) could not be started or failed.
    #[error("{step}: `{command}` failed ({status}){}", tail_suffix(.output_tail))]
    Tool {
        step: String,
        command: String,
        status: String,
        /// The last lines the tool printed.
        output_tail: String,
    },
    /// Something required is missing or not as expected (a package, a file in a package,
    /// a kernel without sched_ext, ...).
    #[error("{step}: {detail}")]
    Invalid { step: String, detail: String },
    /// An executable (or one of its libraries) could not be read or resolved.
    #[error("resolving what an executable needs: {0}")]
    Elf(#[from] elf_deps::ElfError),
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("; last output:\n{tail}")
    }
}

impl LabError {
    pub(crate) fn io(step: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        LabError::Io {
            step: step.into(),
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(step: impl Into<String>, detail: impl Into<String>) -> Self {
        LabError::Invalid {
            step: step.into(),
            detail: detail.into(),
        }
    }
}

/// The guest lab: a cache directory plus a progress sink.
///
/// Cheap to clone; every method is safe to call from several threads and processes at
/// once (per-entry file locks).
#[derive(Clone)]
pub struct Lab {
    root: PathBuf,
    progress: Arc<dyn Progress>,
    /// An exact kernel ABI version (`7.3.4+deb13`) to use instead of the default.
    kernel_version: Option<String>,
    /// Config options the kernel must have besides the ones sched_ext needs.
    required_config: Vec<(String, String)>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("root", &self.root).finish()
    }
}

impl Lab {
    /// The lab at `$KTSTR_CACHE`, else `$HOME/.cache/ktstr`; progress goes to stderr.
    /// `$KTSTR_KERNEL_VERSION`, when set, asks for an exact kernel (see
    /// [`Lab::with_kernel_version`]).
    pub fn open() -> Result<Lab, LabError> {
        let root = match std::env::var_os("KTSTR_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let home = std::env::var_os("HOME").ok_or_else(|| {
                    LabError::invalid("locating the cache", "neither KTSTR_CACHE nor HOME is set")
                })?;
                PathBuf::from(home).join(".cache").join("ktstr")
            }
        };
        let lab = Lab::at(root)?;
        Ok(match std::env::var("KTSTR_KERNEL_VERSION") {
            Ok(v) if !v.is_empty() => lab.with_kernel_version(&v),
            _ => lab,
        })
    }

    /// The lab at an explicit cache directory (created if missing).
    pub fn at(root: impl Into<PathBuf>) -> Result<Lab, LabError> {
        let root = root.into();
        for sub in ["", "tmp", "locks"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| LabError::io("creating the cache directory", &dir, e))?;
        }
        Ok(Lab {
            root,
            progress: Arc::new(StderrProgress),
            kernel_version: None,
            required_config: Vec::new(),
        })
    }

    /// Replace the progress sink.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Lab {
        self.progress = progress;
        self
    }

    /// Use exactly this Debian kernel ABI version (e.g. `7.3.4+deb13`, cloud flavour);
    /// [`Lab::kernel`] fails if the archive does not have it or it lacks sched_ext.
    /// A line of [`SOURCE_LINES`] (`6.12`) is built from Debian's source package
    /// instead (`kernel_src`: tinyconfig + [`GUEST_OPTIONS`]).
    /// Without it the lab takes [`DEFAULT_KERNEL_VERSION`], or the newest 7.x cloud
    /// kernel once that one has left the archive.
    pub fn with_kernel_version(mut self, abi: &str) -> Lab {
        self.kernel_version = Some(abi.to_string());
        self
    }

    /// Also require `CONFIG_<name>=<value>` of the kernel (checked when it is built and
    /// when it is taken from the cache). `SCHED_CLASS_EXT`, `DEBUG_INFO_BTF` and
    /// `BPF_SYSCALL` = `y` are always required.
    pub fn with_required_config(mut self, name: &str, value: &str) -> Lab {
        self.required_config
            .push((name.to_string(), value.to_string()));
        self
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn progress(&self) -> &dyn Progress {
        &*self.progress
    }

    /// Everything a full test run needs: host packages, kernel, the three test schedulers,
    /// a base initramfs, and the published schedulers named in `published`
    /// (`scx_NAME[@VERSION]`, e.g. [`CORPUS`]), each built once in the shared cargo target
    /// directory, with its initramfs layer.
    pub fn provision_all(&self, published: &[&str]) -> Result<(), LabError> {
        self.ensure_host_packages()?;
        let kernel = self.kernel()?;
        self.progress()
            .step(&format!("kernel {} ready", kernel.release));
        for which in TestScheduler::ALL {
            self.scheduler(which)?;
        }
        for name in published {
            let krate: ScxCrate = name
                .parse()
                .map_err(|e| LabError::invalid("provisioning published schedulers", e))?;
            let built = self.scx_crate(&krate)?;
            self.scx_layer(&built)?;
        }
        let spec = RunSpec::new();
        self.initramfs(&spec)?;
        Ok(())
    }
}
