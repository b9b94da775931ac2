//! What an ELF executable needs to run in the guest: its program interpreter
//! (`PT_INTERP`) and the shared libraries it needs (`DT_NEEDED`, recursively), resolved
//! on the host the way glibc's dynamic loader resolves them, without running anything
//! (`ldd` runs the program's loader, and can run the program itself).
//!
//! For a name without `/`, in this order (glibc `_dl_map_object`):
//! 1. when the object that needs it has no `DT_RUNPATH`: the `DT_RPATH` of that object,
//!    then of the object that loaded it, and so on up to the executable (an object
//!    with a `DT_RUNPATH` has its `DT_RPATH` ignored everywhere);
//! 2. (`LD_LIBRARY_PATH` is deliberately not used: the host's environment is not the
//!    guest's);
//! 3. the `DT_RUNPATH` of the object that needs it;
//! 4. unless that object is linked `-z nodeflib`: the directories of `/etc/ld.so.conf`
//!    (what the loader's cache holds), then the loader's system directories
//!    ([`SYSTEM_DIRS`], Debian's x86-64 glibc; `/lib64` is not one of them, it only
//!    holds the interpreter's link).
//!
//! `$ORIGIN` (and `${ORIGIN}`) is the directory of the object whose path list it is in:
//! the canonical directory of the executable, the directory a library was found in
//! (as found, like the loader). Entries with other dynamic string tokens (`$LIB`,
//! `$PLATFORM`), empty entries and relative ones (the loader reads those relative to
//! the process' working directory) are skipped. A name that is already loaded — by the
//! name it was asked for, by its `DT_SONAME`, or the same file under another name — is
//! not searched again, which also ends cycles. A candidate of another class or machine
//! is skipped, as the loader skips it; a candidate that is not ELF at all is an error,
//! as it is for the loader. The `glibc-hwcaps` subdirectories are not searched: the
//! guest runs on another CPU model, and gets the baseline library the host would fall
//! back to.
//!
//! Everything is bounded: file size, program headers, dynamic entries, names per object,
//! objects in all, search directories per list, string lengths.

mod ldconf;
mod object;

pub use object::ElfKind;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// The loader's built-in search path on Debian x86-64 (`ld.so --help`: "system search
/// path").
pub const SYSTEM_DIRS: [&str; 4] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];
/// The loader's configuration (its cache is built from these directories).
pub const LD_SO_CONF: &str = "/etc/ld.so.conf";
/// Libraries of one executable, in all.
const MAX_OBJECTS: usize = 1024;
/// Entries of one `DT_RPATH`/`DT_RUNPATH` list.
const MAX_PATH_ENTRIES: usize = 128;
/// The index standing for the program interpreter in the "already loaded" maps.
const INTERPRETER: usize = usize::MAX;
/// Directories named in a "not found" error.
const MAX_REPORTED_DIRS: usize = 32;

/// Why an executable's files could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElfError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ELF file")]
    NotElf { path: PathBuf },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: malformed ELF: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: more than {limit} {what}")]
    Limit {
        path: PathBuf,
        what: &'static str,
        limit: usize,
    },
    /// A needed library is nowhere on the search path.
    #[error("library {name} (needed by {needed_by}) not found; searched {}", show_dirs(.searched))]
    LibraryNotFound {
        name: String,
        needed_by: PathBuf,
        searched: Vec<PathBuf>,
    },
}

fn show_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "nothing".into();
    }
    let v: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    v.join(", ")
}

/// Where a library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundVia {
    /// The name is a path.
    Path,
    Rpath,
    Runpath,
    /// A directory of `/etc/ld.so.conf`.
    LdSoConf,
    /// One of [`SYSTEM_DIRS`].
    SystemDir,
}

/// One needed library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The `DT_NEEDED` name.
    pub name: String,
    /// The path it was found at (a search directory joined with the name, as the
    /// loader opens it; may be a symbolic link).
    pub path: PathBuf,
    /// The object that needed it first.
    pub needed_by: PathBuf,
    pub found_via: FoundVia,
}

/// What an executable needs at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDeps {
    /// The executable's canonical path.
    pub executable: PathBuf,
    /// `PT_INTERP` as written (`None`: statically linked, static-pie included).
    pub interpreter: Option<PathBuf>,
    /// Needed libraries, breadth first (the loader's order).
    pub libraries: Vec<Library>,
}

/// Where the search looks besides the objects' own paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDirs {
    /// The loader cache's directories, in order.
    pub ld_so_conf: Vec<PathBuf>,
    /// The loader's system directories, in order.
    pub system: Vec<PathBuf>,
}

impl SearchDirs {
    /// This host's: `/etc/ld.so.conf` and [`SYSTEM_DIRS`].
    pub fn host() -> SearchDirs {
        SearchDirs {
            ld_so_conf: ldconf::ld_so_conf_dirs(Path::new(LD_SO_CONF)),
            system: SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    /// The directories of the loader configuration file `path` and [`SYSTEM_DIRS`].
    pub fn from_ld_so_conf(path: &Path) -> SearchDirs {
        SearchDirs {
            ld_so_conf: ldconf::ld_so_conf_dirs(path),
            ..SearchDirs::host_system_only()
        }
    }

    fn host_system_only() -> SearchDirs {
        SearchDirs {
            ld_so_conf: Vec::new(),
            system: SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The kind of ELF file at `path`, from its header (`NotElf` for anything else).
pub fn elf_kind(path: &Path) -> Result<ElfKind, ElfError> {
    let head = object::read_head(path)?;
    object::ident(&head)
        .map(|i| i.kind())
        .ok_or_else(|| ElfError::NotElf {
            path: path.to_path_buf(),
        })
}

/// One loaded object of the search.
struct Node {
    path: PathBuf,
    /// `$ORIGIN` for its paths.
    origin: PathBuf,
    info: object::DynamicInfo,
    /// The object that loaded it (`None` for the executable).
    loader: Option<usize>,
}

/// Resolve what the executable at `exe` needs, with this host's search directories.
pub fn runtime_deps(exe: &Path) -> Result<RuntimeDeps, ElfError> {
    runtime_deps_with(exe, &SearchDirs::host())
}

/// Resolve what the executable at `exe` needs, searching `dirs` after the objects' own
/// paths.
pub fn runtime_deps_with(exe: &Path, dirs: &SearchDirs) -> Result<RuntimeDeps, ElfError> {
    let io = |source| ElfError::Io {
        path: exe.to_path_buf(),
        source,
    };
    let canonical = std::fs::canonicalize(exe).map_err(io)?;
    let data = object::read_bounded(&canonical)?;
    let id = object::ident(&data).ok_or_else(|| ElfError::NotElf {
        path: exe.to_path_buf(),
    })?;
    if id.kind() != ElfKind::Executable {
        return Err(ElfError::Unsupported {
            path: exe.to_path_buf(),
            detail: format!("not an x86-64 executable ({:?})", id.kind()),
        });
    }
    let info = object::parse(&data, exe)?;
    drop(data);
    let interpreter = info.interpreter.as_ref().map(PathBuf::from);
    if let Some(interp) = &interpreter {
        check_interpreter(exe, interp)?;
    } else if !info.needed.is_empty() {
        return Err(ElfError::Unsupported {
            path: exe.to_path_buf(),
            detail: "needs shared libraries but has no program interpreter (PT_INTERP): \
                     a shared library, not an executable"
                .into(),
        });
    }
    let origin = canonical
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut nodes = vec![Node {
        path: canonical.clone(),
        origin,
        info,
        loader: None,
    }];
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_file: HashMap<(u64, u64), usize> = HashMap::new();
    if let Ok(id) = file_id(&canonical) {
        by_file.insert(id, 0);
    }
    // The interpreter is loaded before anything else: libc's need of
    // `ld-linux-x86-64.so.2` is met by it (by its DT_SONAME or as the same file).
    if let Some(interp) = &interpreter {
        let data = object::read_bounded(interp)?;
        if let Some(so) = object::parse(&data, interp)?.soname {
            by_name.insert(so, INTERPRETER);
        }
        if let Ok(id) = file_id(interp) {
            by_file.insert(id, INTERPRETER);
        }
    }
    let mut libraries = Vec::new();
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let needed = nodes[i].info.needed.clone();
        for name in needed {
            if by_name.contains_key(&name) {
                continue;
            }
            let (path, found_via) = search(&nodes, i, &name, dirs)?;
            let id = file_id(&path).map_err(|source| ElfError::Io {
                path: path.clone(),
                source,
            })?;
            if let Some(&same) = by_file.get(&id) {
                by_name.insert(name, same);
                continue;
            }
            if nodes.len() > MAX_OBJECTS {
                return Err(ElfError::Limit {
                    path: exe.to_path_buf(),
                    what: "shared libraries",
                    limit: MAX_OBJECTS,
                });
            }
            let data = object::read_bounded(&path)?;
            let info = object::parse(&data, &path)?;
            let idx = nodes.len();
            by_name.insert(name.clone(), idx);
            if let Some(so) = &info.soname {
                by_name.entry(so.clone()).or_insert(idx);
            }
            by_file.insert(id, idx);
            libraries.push(Library {
                name,
                path: path.clone(),
                needed_by: nodes[i].path.clone(),
                found_via,
            });
            nodes.push(Node {
                origin: path
                    .parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
                path,
                info,
                loader: Some(i),
            });
            queue.push_back(idx);
        }
    }
    Ok(RuntimeDeps {
        executable: canonical,
        interpreter,
        libraries,
    })
}

/// The interpreter must be an absolute path to an x86-64 ELF file.
fn check_interpreter(exe: &Path, interp: &Path) -> Result<(), ElfError> {
    if !interp.is_absolute() {
        return Err(ElfError::Unsupported {
            path: exe.to_path_buf(),
            detail: format!("relative program interpreter {}", interp.display()),
        });
    }
    let head = object::read_head(interp).map_err(|_| ElfError::Unsupported {
        path: exe.to_path_buf(),
        detail: format!(
            "its program interpreter {} does not exist on this host",
            interp.display()
        ),
    })?;
    match object::ident(&head) {
        Some(id) if id.is_x86_64() => Ok(()),
        _ => Err(ElfError::Unsupported {
            path: exe.to_path_buf(),
            detail: format!(
                "its program interpreter {} is not an x86-64 ELF file",
                interp.display()
            ),
        }),
    }
}

/// Device and inode, to recognise one file under two names.
fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// The directories of a `DT_RPATH`/`DT_RUNPATH` list with `$ORIGIN` substituted.
fn expand(list: &str, origin: &Path, owner: &Path) -> Result<Vec<PathBuf>, ElfError> {
    let entries: Vec<&str> = list.split(':').collect();
    if entries.len() > MAX_PATH_ENTRIES {
        return Err(ElfError::Limit {
            path: owner.to_path_buf(),
            what: "search path entries",
            limit: MAX_PATH_ENTRIES,
        });
    }
    let origin = origin.to_string_lossy();
    Ok(entries
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(|e| e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .filter(|e| !e.contains('$') && e.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// The loader's search for `name`, needed by node `i`.
fn search(
    nodes: &[Node],
    i: usize,
    name: &str,
    dirs: &SearchDirs,
) -> Result<(PathBuf, FoundVia), ElfError> {
    let requester = &nodes[i];
    if name.contains('/') {
        if !name.starts_with('/') {
            return Err(ElfError::Unsupported {
                path: requester.path.clone(),
                detail: format!(
                    "needs {name}, a path relative to the working directory (unsupported)"
                ),
            });
        }
        let path = PathBuf::from(name);
        return match candidate(&path)? {
            true => Ok((path, FoundVia::Path)),
            false => Err(ElfError::LibraryNotFound {
                name: name.to_string(),
                needed_by: requester.path.clone(),
                searched: vec![],
            }),
        };
    }
    let mut order: Vec<(PathBuf, FoundVia)> = Vec::new();
    if requester.info.runpath.is_none() {
        let mut at = Some(i);
        let mut hops = 0;
        while let Some(n) = at {
            let node = &nodes[n];
            // An object with a DT_RUNPATH has its DT_RPATH ignored, also up the chain.
            if let (Some(rpath), None) = (&node.info.rpath, &node.info.runpath) {
                for d in expand(rpath, &node.origin, &node.path)? {
                    order.push((d, FoundVia::Rpath));
                }
            }
            at = node.loader;
            hops += 1;
            if hops > nodes.len() {
                break;
            }
        }
    }
    if let Some(runpath) = &requester.info.runpath {
        for d in expand(runpath, &requester.origin, &requester.path)? {
            order.push((d, FoundVia::Runpath));
        }
    }
    if !requester.info.nodeflib {
        order.extend(
            dirs.ld_so_conf
                .iter()
                .map(|d| (d.clone(), FoundVia::LdSoConf)),
        );
        order.extend(dirs.system.iter().map(|d| (d.clone(), FoundVia::SystemDir)));
    }
    let mut searched: Vec<PathBuf> = Vec::new();
    for (dir, via) in order {
        if searched.contains(&dir) {
            continue;
        }
        let path = dir.join(name);
        if candidate(&path)? {
            return Ok((path, via));
        }
        searched.push(dir);
    }
    searched.truncate(MAX_REPORTED_DIRS);
    Err(ElfError::LibraryNotFound {
        name: name.to_string(),
        needed_by: requester.path.clone(),
        searched,
    })
}

/// Whether `path` is a library the loader would take: `false` when it does not exist or
/// is of another class or machine (skipped), an error when it is not ELF at all.
fn candidate(path: &Path) -> Result<bool, ElfError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        _ => return Ok(false),
    }
    let head = object::read_head(path)?;
    match object::ident(&head) {
        Some(id) => Ok(id.is_x86_64() && id.e_type == elf::abi::ET_DYN),
        None => Err(ElfError::NotElf {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests;
