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

/// The host's BTF; `None` after the skip where it has none.
pub fn need_host_btf() -> Option<PathBuf> {
    let p = host_btf();
    if p.is_none() {
        guest_lab::testing::skip("no /sys/kernel/btf/vmlinux on this host");
    }
    p
}

/// Tool `name`; `None` after the skip where it is not installed (`package` says from
/// where it comes).
pub fn need_tool(name: &str, package: &str) -> Option<PathBuf> {
    let p = tool(name);
    if p.is_none() {
        guest_lab::testing::skip(format!("{name} not installed ({package})"));
    }
    p
}

/// The guest kernel's image and its ELF vmlinux (which tools such as bpftool and pahole
/// read the `.BTF` of), the ELF in a scratch directory removed on drop.
pub struct GuestVmlinux {
    pub vmlinuz: PathBuf,
    pub elf: PathBuf,
    _dir: guest_lab::testing::ScratchDir,
}

/// [`GuestVmlinux`] of [`guest_kernel`]; `None` after the skip where it is not there.
pub fn guest_vmlinux() -> Option<GuestVmlinux> {
    let Some(vmlinuz) = guest_kernel() else {
        guest_lab::testing::skip("sched_ext guest kernel not provisioned (guest lab)");
        return None;
    };
    let image = std::fs::read(&vmlinuz).unwrap();
    let elf = btf_walk::decompress(btf_walk::bzimage_payload(&image).unwrap()).unwrap();
    let dir = guest_lab::testing::ScratchDir::new("btf-walk-vmlinux");
    let elf_path = dir.p("vmlinux");
    std::fs::write(&elf_path, &elf).unwrap();
    Some(GuestVmlinux {
        vmlinuz,
        elf: elf_path,
        _dir: dir,
    })
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
