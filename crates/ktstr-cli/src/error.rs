//! The library's error type.

use std::path::PathBuf;

/// Who is at fault, which the binary turns into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller's input: a missing or unreadable file, not a dump, not a vmcore, a bad
    /// option value.
    Input,
    /// The machine: provisioning, QEMU, QMP, writing output.
    Infrastructure,
}

/// Why a command could not do its job. Every variant names what it was working on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    NotADump {
        path: PathBuf,
        #[source]
        source: dump_schema::Error,
    },
    #[error("{}: not a usable vmcore: {source}", path.display())]
    Vmcore {
        path: PathBuf,
        #[source]
        source: guest_mem::VmcoreError,
    },
    #[error("{}: not a System.map: {detail}", path.display())]
    SystemMap { path: PathBuf, detail: String },
    #[error("{}: no usable BTF: {source}", path.display())]
    BtfFile {
        path: PathBuf,
        #[source]
        source: btf_walk::BtfError,
    },
    /// The guest kernel could not be found in memory (no VMCOREINFO, no kallsyms...).
    #[error("{what}: {detail}")]
    Kernel { what: String, detail: String },
    #[error("{}: {source}", path.display())]
    RamFile {
        path: PathBuf,
        #[source]
        source: guest_mem::ramfile::RamFileError,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serializing the report: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("provisioning the guest lab: {0}")]
    Lab(#[from] guest_lab::LabError),
    #[error("{step}: {source}")]
    Engine {
        step: &'static str,
        #[source]
        source: freeze::EngineError,
    },
    #[error("QMP {step}: {detail}")]
    Qmp { step: &'static str, detail: String },
    /// Not a regular file where one is expected.
    #[error("{}: not a regular file ({kind})", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// Larger than the documented limit for its kind.
    #[error("{}: {len} bytes, larger than the {limit}-byte limit", path.display())]
    TooLarge { path: PathBuf, len: u64, limit: u64 },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Infrastructure(String),
    #[error("interrupted {0}")]
    Interrupted(&'static str),
}

impl Error {
    /// Whether the input or the machine is at fault.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Read { .. }
            | Error::NotADump { .. }
            | Error::Vmcore { .. }
            | Error::SystemMap { .. }
            | Error::BtfFile { .. }
            | Error::Kernel { .. }
            | Error::RamFile { .. }
            | Error::NotRegular { .. }
            | Error::TooLarge { .. }
            | Error::Usage(_) => ErrorClass::Input,
            _ => ErrorClass::Infrastructure,
        }
    }

    pub(crate) fn engine(step: &'static str) -> impl FnOnce(freeze::EngineError) -> Error {
        move |source| Error::Engine { step, source }
    }
}
