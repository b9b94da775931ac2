//! Inputs shared by the real-BTF tests: the host's BTF and the sched_ext guest kernel.
//! A missing input makes the test skip (`guest_lab::testing::skip`: under CI, a failure).

#![allow(dead_code)]

use std::path::PathBuf;

/// The running host kernel's BTF.
pub fn host_btf() -> Option<PathBuf> {
    let p = PathBuf::from("/sys/kernel/btf/vmlinux");
    p.exists().then_some(p)
}

/// The sched_ext guest kernel image (7.3 bzImage with a zstd payload), provisioned by the
/// guest lab (`guest-lab`, cached under `$KTSTR_CACHE`, downloaded on first use).
/// `KTSTR_GUEST_KERNEL` names another image instead.
pub fn guest_kernel() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KTSTR_GUEST_KERNEL") {
        return Some(PathBuf::from(p));
    }
    match guest_lab::testing::open_lab().kernel() {
        Ok(k) => Some(k.vmlinuz),
        Err(e) => {
            eprintln!("guest lab could not provide the kernel: {e}");
            None
        }
    }
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
