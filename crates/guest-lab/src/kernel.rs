//! The Debian sched_ext kernel: downloaded from trixie-backports with a private apt
//! configuration, unpacked, and turned into what boots and what builds against it.

use super::{Lab, LabError, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The kernel the lab uses unless told otherwise ([`Lab::with_kernel_version`], the Debian
/// ABI name without the flavour). When it is no longer in the archive the newest 7.x
/// cloud kernel is taken instead.
pub const DEFAULT_KERNEL_VERSION: &str = "7.3.4+deb13";
const FLAVOUR: &str = "cloud-amd64";
const SUITE: &str = "trixie-backports";

/// A provisioned kernel. All paths are inside the cache entry `kernel/<release>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelAssets {
    /// `uname -r` of the guest, e.g. `7.3.4+deb13-cloud-amd64`.
    pub release: String,
    /// The Debian package version, e.g. `7.3.4-1~bpo13+1`.
    pub package_version: String,
    /// The bzImage (what `-kernel` boots; KASLR applies unless `nokaslr`).
    pub vmlinuz: PathBuf,
    /// The decompressed (stripped) ELF vmlinux from the bzImage payload.
    pub vmlinux_elf: PathBuf,
    /// The raw `.BTF` section of the vmlinux.
    pub btf: PathBuf,
    /// The kernel's `.config`.
    pub config: PathBuf,
    /// `bpftool btf dump ... format c` of the BTF.
    pub vmlinux_h: PathBuf,
    /// `qemu_fw_cfg.ko`, decompressed (needed for QEMU's `-device vmcoreinfo`); `None`
    /// for a kernel with `CONFIG_FW_CFG_SYSFS=y` built in (the lab's source builds).
    pub fw_cfg_module: Option<PathBuf>,
    /// The cache entry.
    pub dir: PathBuf,
}

impl KernelAssets {
    pub(crate) fn from_dir(dir: &Path) -> Result<KernelAssets, LabError> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .map_err(|e| LabError::io("reading the cached kernel", &p, e))
        };
        Ok(KernelAssets {
            release: read("release")?,
            package_version: read("package-version")?,
            vmlinuz: dir.join("vmlinuz"),
            vmlinux_elf: dir.join("vmlinux"),
            btf: dir.join("vmlinux.btf"),
            config: dir.join("config"),
            vmlinux_h: dir.join("vmlinux.h"),
            fw_cfg_module: Some(dir.join("qemu_fw_cfg.ko")).filter(|p| p.is_file()),
            dir: dir.to_path_buf(),
        })
    }

    /// The name of its cache entry (`7.3.4+deb13-cloud-amd64`, `6.12.117-ktstr-<hash>`):
    /// unlike the release, it tells apart builds of one release with other configs.
    pub fn entry_name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.release.clone(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The value of `CONFIG_<name>` in the kernel config (`y`, `m`, a number, a quoted
    /// string), `None` when unset.
    pub fn config_value(&self, name: &str) -> Result<Option<String>, LabError> {
        let text = std::fs::read_to_string(&self.config)
            .map_err(|e| LabError::io("reading the kernel config", &self.config, e))?;
        Ok(config_lookup(&text, name))
    }
}

pub(crate) fn config_lookup(text: &str, name: &str) -> Option<String> {
    let key = format!("CONFIG_{name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(str::to_string)
}

/// `7.3.4+deb13` → (7, 3, 4); anything unparsable sorts first.
pub(crate) fn version_key(abi: &str) -> (u32, u32, u32) {
    let nums: Vec<u32> = abi
        .split(['+', '-'])
        .next()
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        nums.get(2).copied().unwrap_or(0),
    )
}

/// From `apt-cache search` output, the ABI names (`7.3.4+deb13`) of 7.x cloud kernels.
fn available_abis(search_output: &str) -> Vec<String> {
    let prefix = "linux-binary-";
    let suffix = format!("-{FLAVOUR}");
    search_output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|pkg| pkg.strip_prefix(prefix)?.strip_suffix(&suffix))
        .filter(|abi| version_key(abi).0 >= 7)
        .map(String::from)
        .collect()
}

/// Pick `wanted` if available, else the newest.
fn pick_abi(available: &[String], wanted: &str) -> Option<String> {
    if available.iter().any(|a| a == wanted) {
        return Some(wanted.to_string());
    }
    available.iter().max_by_key(|a| version_key(a)).cloned()
}

impl Lab {
    /// The private apt configuration for the kernel's suite (lists refreshed every 6 h)
    /// and the 7.x cloud kernels it offers.
    fn kernel_index(&self) -> Result<(super::apt::AptConfig, Vec<String>), LabError> {
        let apt = {
            let _lock = self.lock(&format!("apt-{SUITE}"))?;
            let apt = super::apt::download_config(self, SUITE)?;
            apt.update(self, SUITE, Duration::from_secs(6 * 3600))?;
            apt
        };
        let search = tool::output(
            "listing the sched_ext kernels",
            apt.command("apt-cache")
                .args(["search", "--names-only"])
                .arg(format!("^linux-binary-7\\..*-{FLAVOUR}$")),
        )?;
        let available = available_abis(&String::from_utf8_lossy(&search));
        Ok((apt, available))
    }

    /// The Debian ABI versions (`7.3.4+deb13`) of the 7.x cloud kernels the archive
    /// offers now, oldest first (not all of them have sched_ext: the lab checks the
    /// config of the one it builds).
    pub fn available_kernels(&self) -> Result<Vec<String>, LabError> {
        let mut v = self.kernel_index()?.1;
        v.sort_by_key(|a| version_key(a));
        Ok(v)
    }

    /// The sched_ext kernel, downloaded and unpacked on first use, from the cache after.
    pub fn kernel(&self) -> Result<KernelAssets, LabError> {
        if let Some(line) = self
            .kernel_version
            .as_deref()
            .and_then(super::kernel_src::source_line)
        {
            let k = self.source_kernel(line)?;
            let text = std::fs::read_to_string(&k.config)
                .map_err(|e| LabError::io("reading the kernel config", &k.config, e))?;
            check_config(&text, &k.release, &self.required_config)?;
            return Ok(k);
        }
        let exact = self.kernel_version.clone();
        let wanted = exact
            .clone()
            .unwrap_or_else(|| DEFAULT_KERNEL_VERSION.to_string());
        let cached = self
            .root()
            .join("kernel")
            .join(format!("{wanted}-{FLAVOUR}"));
        if cached.is_dir() {
            let k = KernelAssets::from_dir(&cached)?;
            let text = std::fs::read_to_string(&k.config)
                .map_err(|e| LabError::io("reading the kernel config", &k.config, e))?;
            check_config(&text, &k.release, &self.required_config)?;
            return Ok(k);
        }
        let (apt, available) = self.kernel_index()?;
        let abi = match &exact {
            Some(v) if available.contains(v) => v.clone(),
            Some(v) => {
                return Err(LabError::invalid(
                    "choosing a kernel",
                    format!("no linux-binary-{v}-{FLAVOUR} package in {SUITE}"),
                ));
            }
            None => pick_abi(&available, &wanted).ok_or_else(|| {
                LabError::invalid(
                    "choosing a kernel",
                    format!("no linux-binary-7.x-{FLAVOUR} package in {SUITE}"),
                )
            })?,
        };
        if abi != wanted {
            self.progress()
                .step(&format!("kernel {wanted} is not in {SUITE}; using {abi}"));
        }
        let release = format!("{abi}-{FLAVOUR}");
        let rel = format!("kernel/{release}");
        let dir = self.entry(&rel, &format!("kernel {release}"), |tmp| {
            let _lock = self.lock(&format!("apt-{SUITE}"))?;
            build_kernel(self, &apt, &release, tmp)
        })?;
        KernelAssets::from_dir(&dir)
    }
}

fn build_kernel(
    lab: &Lab,
    apt: &super::apt::AptConfig,
    release: &str,
    out: &Path,
) -> Result<(), LabError> {
    let debs = out.join("debs");
    let unpacked = out.join("unpacked");
    for d in [&debs, &unpacked] {
        std::fs::create_dir_all(d).map_err(|e| LabError::io("kernel: creating dirs", d, e))?;
    }
    let packages: Vec<String> = ["binary", "base", "modules"]
        .iter()
        .map(|kind| format!("linux-{kind}-{release}"))
        .collect();
    lab.progress()
        .step(&format!("downloading {} from {SUITE}", packages.join(", ")));
    let mut cmd = apt.command("apt-get");
    cmd.current_dir(&debs)
        .arg("-q")
        .arg("download")
        .args(&packages);
    tool::run_logged(
        lab.progress(),
        "downloading the kernel",
        &mut cmd,
        &out.join("download.log"),
    )?;
    let entries =
        std::fs::read_dir(&debs).map_err(|e| LabError::io("kernel: listing", &debs, e))?;
    let mut package_version = None;
    for ent in entries.flatten() {
        let path = ent.path();
        let name = ent.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".deb") {
            continue;
        }
        if name.starts_with("linux-binary-") {
            // linux-binary-<release>_<version>_amd64.deb; ~ is kept, : is %3a.
            package_version = name.split('_').nth(1).map(|v| v.replace("%3a", ":"));
        }
        tool::output(
            "unpacking the kernel packages",
            Command::new("dpkg-deb").arg("-x").arg(&path).arg(&unpacked),
        )?;
    }
    let moddir = unpacked.join("usr/lib/modules").join(release);
    let need = |p: PathBuf| -> Result<PathBuf, LabError> {
        if p.is_file() {
            Ok(p)
        } else {
            Err(LabError::invalid(
                "unpacking the kernel packages",
                format!("{} is not in the packages", p.display()),
            ))
        }
    };
    let vmlinuz = need(moddir.join("vmlinuz"))?;
    let config = need(moddir.join("config"))?;
    let fw_cfg = need(moddir.join("kernel/drivers/firmware/qemu_fw_cfg.ko.xz"))?;
    let config_text = std::fs::read_to_string(&config)
        .map_err(|e| LabError::io("reading the kernel config", &config, e))?;
    check_config(&config_text, release, &lab.required_config)?;
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, out.join(to))
            .map(|_| ())
            .map_err(|e| LabError::io("kernel: copying", from, e))
    };
    copy(&vmlinuz, "vmlinuz")?;
    copy(&config, "config")?;
    let module = tool::output(
        "decompressing qemu_fw_cfg.ko.xz",
        Command::new("xz").arg("-dc").arg(&fw_cfg),
    )?;
    write(&out.join("qemu_fw_cfg.ko"), &module)?;

    lab.progress().step("extracting vmlinux and its BTF");
    let image =
        std::fs::read(&vmlinuz).map_err(|e| LabError::io("reading vmlinuz", &vmlinuz, e))?;
    let payload = bzimage_payload(&image)
        .map_err(|detail| LabError::invalid("reading the bzImage header", detail))?;
    if !payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(LabError::invalid(
            "reading the bzImage payload",
            "the payload is not zstd (expected CONFIG_KERNEL_ZSTD)",
        ));
    }
    let zst = out.join("payload.zst");
    write(&zst, payload)?;
    let vmlinux = tool::output(
        "decompressing the kernel payload",
        Command::new("zstd").arg("-dcq").arg(&zst),
    )?;
    let _ = std::fs::remove_file(&zst);
    write(&out.join("vmlinux"), &vmlinux)?;
    write_btf_and_header(&vmlinux, out)?;
    write_assets_meta(out, release, &package_version.unwrap_or_default())?;
    for d in [&debs, &unpacked] {
        std::fs::remove_dir_all(d).map_err(|e| LabError::io("kernel: cleaning up", d, e))?;
    }
    Ok(())
}

/// `vmlinux.btf` (the `.BTF` section of `vmlinux`) and `vmlinux.h` generated from it.
pub(crate) fn write_btf_and_header(vmlinux: &[u8], out: &Path) -> Result<(), LabError> {
    let btf = elf_section(vmlinux, ".BTF")
        .map_err(|detail| LabError::invalid("finding .BTF in vmlinux", detail))?;
    write(&out.join("vmlinux.btf"), btf)?;
    let header = tool::output(
        "generating vmlinux.h",
        Command::new("bpftool")
            .args(["btf", "dump", "file"])
            .arg(out.join("vmlinux.btf"))
            .args(["format", "c"]),
    )?;
    write(&out.join("vmlinux.h"), &header)
}

/// The entry's `release` (`uname -r` of the guest) and `package-version` files.
pub(crate) fn write_assets_meta(
    out: &Path,
    release: &str,
    package_version: &str,
) -> Result<(), LabError> {
    write(&out.join("release"), format!("{release}\n").as_bytes())?;
    write(
        &out.join("package-version"),
        format!("{package_version}\n").as_bytes(),
    )
}

/// The options sched_ext guests need, plus the caller's.
fn check_config(text: &str, release: &str, extra: &[(String, String)]) -> Result<(), LabError> {
    let base = [
        ("SCHED_CLASS_EXT", "y"),
        ("DEBUG_INFO_BTF", "y"),
        ("BPF_SYSCALL", "y"),
    ];
    let extra = extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (opt, want) in base.into_iter().chain(extra) {
        if config_lookup(text, opt).as_deref() != Some(want) {
            return Err(LabError::invalid(
                "checking the kernel config",
                format!("{release} does not have CONFIG_{opt}={want}"),
            ));
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LabError> {
    std::fs::write(path, bytes).map_err(|e| LabError::io("writing a kernel asset", path, e))
}

/// The compressed payload of an x86 bzImage, without the 4-byte decompressed-size trailer
/// (boot protocol ≥ 2.08: `payload_offset`/`payload_length` at 0x248/0x24c, relative to
/// the protected-mode code after `setup_sects` + 1 sectors).
pub(crate) fn bzimage_payload(image: &[u8]) -> Result<&[u8], String> {
    let u32_at = |off: usize| -> Result<u32, String> {
        image
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("image too short for the field at {off:#x}"))
    };
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no HdrS boot header".into());
    }
    let version = u16::from_le_bytes([image[0x206], image[0x207]]);
    if version < 0x208 {
        return Err(format!("boot protocol {version:#x} has no payload fields"));
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let base = (setup_sects + 1) * 512;
    let offset = base + u32_at(0x248)? as usize;
    let length = u32_at(0x24c)? as usize;
    if length < 4 {
        return Err("empty payload".into());
    }
    image
        .get(offset..offset + length - 4)
        .ok_or_else(|| format!("payload {offset:#x}+{length:#x} outside the image"))
}

/// The contents of the ELF64 little-endian section named `name`.
pub(crate) fn elf_section<'a>(elf: &'a [u8], name: &str) -> Result<&'a [u8], String> {
    let get = |off: usize, len: usize| -> Result<&'a [u8], String> {
        off.checked_add(len)
            .and_then(|end| elf.get(off..end))
            .ok_or_else(|| format!("ELF field {off:#x}+{len} outside the file"))
    };
    let u16_at = |off| get(off, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at =
        |off| get(off, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as usize);
    let u64_at =
        |off| get(off, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    if get(0, 6)? != b"\x7fELF\x02\x01" {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(0x28)?;
    let shentsize = u16_at(0x3a)?;
    let shnum = u16_at(0x3c)?;
    let shstrndx = u16_at(0x3e)?;
    if shentsize < 0x40 || shstrndx >= shnum {
        return Err("bad section header table".into());
    }
    // Offset of field `off` of section header `i` (i and shentsize are < 2^16).
    let sh = |i: usize, off: usize| {
        shoff
            .checked_add(i * shentsize + off)
            .ok_or_else(|| "section header table outside the file".to_string())
    };
    let strtab_off = u64_at(sh(shstrndx, 0x18)?)?;
    let strtab_len = u64_at(sh(shstrndx, 0x20)?)?;
    let strtab = get(strtab_off, strtab_len)?;
    for i in 0..shnum {
        let name_off = u32_at(sh(i, 0)?)?;
        let Some(rest) = strtab.get(name_off..) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return get(u64_at(sh(i, 0x18)?)?, u64_at(sh(i, 0x20)?)?);
        }
    }
    Err(format!("no section {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_wanted_else_newest() {
        let out = "linux-binary-7.0.10+deb13-cloud-amd64 - x\n\
                   linux-binary-7.3.4+deb13-cloud-amd64 - x\n\
                   linux-binary-7.2.12+deb13-cloud-amd64 - x\n\
                   linux-binary-6.12.1+deb13-cloud-amd64 - x\n\
                   linux-binary-7.3.4+deb13-amd64 - x\n";
        let abis = available_abis(out);
        assert_eq!(abis, ["7.0.10+deb13", "7.3.4+deb13", "7.2.12+deb13"]);
        assert_eq!(
            pick_abi(&abis, "7.2.12+deb13").as_deref(),
            Some("7.2.12+deb13")
        );
        assert_eq!(
            pick_abi(&abis, "7.9.9+deb13").as_deref(),
            Some("7.3.4+deb13")
        );
        assert_eq!(pick_abi(&[], "7.3.4+deb13"), None);
    }

    #[test]
    fn config_lookup_finds_values() {
        let text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_HZ=250\n";
        assert_eq!(config_lookup(text, "A").as_deref(), Some("y"));
        assert_eq!(config_lookup(text, "B"), None);
        assert_eq!(config_lookup(text, "HZ").as_deref(), Some("250"));
    }

    #[test]
    fn bzimage_header_bounds_are_checked() {
        assert!(bzimage_payload(&[0; 16]).is_err());
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x1f1] = 1;
        img[0x248..0x24c].copy_from_slice(&0x10u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&0x20u32.to_le_bytes());
        img[0x410..0x414].copy_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        let p = bzimage_payload(&img).unwrap();
        assert_eq!(p.len(), 0x1c);
        assert_eq!(&p[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        img[0x24c..0x250].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(bzimage_payload(&img).is_err());
    }

    #[test]
    fn elf_section_rejects_garbage() {
        assert!(elf_section(b"nope", ".BTF").is_err());
        let mut elf = vec![0u8; 0x40];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&0x40u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
        assert!(elf_section(&elf, ".BTF").is_err());
    }
}
