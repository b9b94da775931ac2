//! The directories of `/etc/ld.so.conf`, which `ldconfig` puts into the loader's cache:
//! one directory per line, `#` comments, `include GLOB...` (relative globs are relative to
//! the including file's directory; `*`, `?` and `[...]`-free patterns in the last path
//! component only, matched files read in name order), `hwcap` lines ignored, the legacy
//! `DIR=TYPE` form read as `DIR`.

use std::path::{Path, PathBuf};

/// Nested includes followed (a file including itself stops here).
const MAX_DEPTH: usize = 8;
/// Configuration files read in all.
const MAX_FILES: usize = 256;
/// Directories kept.
const MAX_DIRS: usize = 256;
/// Bytes read of one configuration file.
const MAX_CONF_BYTES: u64 = 1 << 20;

/// The directories of the configuration at `path` (missing files contribute nothing),
/// in order, without duplicates.
pub(crate) fn ld_so_conf_dirs(path: &Path) -> Vec<PathBuf> {
    let mut state = State::default();
    state.read(path, 0);
    state.dirs
}

#[derive(Default)]
struct State {
    dirs: Vec<PathBuf>,
    files: usize,
}

impl State {
    fn read(&mut self, path: &Path, depth: usize) {
        if depth > MAX_DEPTH || self.files >= MAX_FILES {
            return;
        }
        self.files += 1;
        let Ok(file) = std::fs::File::open(path) else {
            return;
        };
        let mut text = String::new();
        if std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_CONF_BYTES), &mut text)
            .is_err()
        {
            return;
        }
        let base = path.parent().unwrap_or(Path::new("/"));
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("include") => {
                    for pattern in words {
                        for file in glob(base, pattern) {
                            self.read(&file, depth + 1);
                        }
                    }
                }
                Some("hwcap") => {}
                _ => {
                    let dir = line.split('=').next().unwrap_or("").trim();
                    let dir = PathBuf::from(dir.trim_end_matches('/'));
                    if dir.is_absolute() && !self.dirs.contains(&dir) && self.dirs.len() < MAX_DIRS
                    {
                        self.dirs.push(dir);
                    }
                }
            }
        }
    }
}

/// The files matching `pattern` (relative to `base` unless absolute), sorted by name.
fn glob(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let Some(name) = full.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = full.parent().unwrap_or(Path::new("/"));
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            vec![full]
        } else {
            Vec::new()
        };
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .take(MAX_FILES)
        .filter(|e| wildcard(name.as_bytes(), e.file_name().as_encoded_bytes()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Shell-style `*` and `?` matching (a leading `.` is matched only by a literal `.`, as
/// glob(3) does).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    // Iterative matcher with one backtrack point: linear in practice, never recursive.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*.conf", b"libc.conf"));
        assert!(wildcard(b"x86_64-*.conf", b"x86_64-linux-gnu.conf"));
        assert!(!wildcard(b"*.conf", b"libc.conf.bak"));
        assert!(!wildcard(b"*.conf", b".hidden.conf"));
        assert!(wildcard(b"a?c", b"abc"));
        assert!(wildcard(b"**", b"x"));
        assert!(!wildcard(b"a", b"ab"));
    }

    #[test]
    fn includes_comments_order_cycles_and_duplicates() {
        let dir = std::env::temp_dir().join(format!(
            "ktstr-ldconf-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("ld.so.conf"),
            "/first\ninclude conf.d/*.conf\n# /commented\n/last # trailing\nhwcap 0 nosegneg\n",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "/from-b\n/first\n").unwrap();
        std::fs::write(
            dir.join("conf.d/a.conf"),
            "/from-a/\n/legacy=libc5\nrelative\n",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/skip.txt"), "/not-included\n").unwrap();
        // A file that includes itself (and its directory): bounded.
        std::fs::write(
            dir.join("conf.d/c.conf"),
            format!("include {}\n/from-c\n", dir.join("conf.d/c.conf").display()),
        )
        .unwrap();
        let dirs = ld_so_conf_dirs(&dir.join("ld.so.conf"));
        let want: Vec<PathBuf> = [
            "/first", "/from-a", "/legacy", "/from-b", "/from-c", "/last",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, want);
        assert!(ld_so_conf_dirs(&dir.join("missing.conf")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
