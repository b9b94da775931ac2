//! Inputs shared by the real-BTF tests: the host's BTF and the sched_ext guest kernel.

#![allow(dead_code)]

use std::path::PathBuf;

/// True under CI (`CI=true`), where every input must be present: a missing one fails the
/// test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (prints why) locally; fails in CI.
pub fn skip_or_fail(why: &str) {
    if in_ci() {
        panic!("required in CI: {why}");
    }
    eprintln!("SKIP: {why}");
}

/// The running host kernel's BTF.
pub fn host_btf() -> Option<PathBuf> {
    let p = PathBuf::from("/sys/kernel/btf/vmlinux");
    p.exists().then_some(p)
}

/// The sched_ext guest kernel image (7.3 bzImage with a zstd payload).
///
/// `KTSTR_GUEST_KERNEL` names it explicitly; otherwise the guest-lab cache
/// (`$KTSTR_CACHE`, default `~/.cache/ktstr`) and `/tmp/btf` are searched for a
/// `vmlinuz` of a 7.x kernel.
pub fn guest_kernel() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KTSTR_GUEST_KERNEL") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var("KTSTR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ktstr")
        });
    for root in [cache, PathBuf::from("/tmp/btf")] {
        if let Some(p) = find_vmlinuz(&root, 0) {
            return Some(p);
        }
    }
    None
}

fn find_vmlinuz(dir: &std::path::Path, depth: u32) -> Option<PathBuf> {
    if depth > 6 {
        return None;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let name = p.file_name()?.to_string_lossy().to_string();
        if p.is_dir() {
            if let Some(found) = find_vmlinuz(&p, depth + 1) {
                return Some(found);
            }
        } else if name.starts_with("vmlinuz") && p.to_string_lossy().contains("7.") {
            return Some(p);
        }
    }
    None
}

/// `which`, without a dependency.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}
