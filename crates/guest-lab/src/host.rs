//! Host packages the lab needs, detected with dpkg and installed with apt from the
//! machine's release plus its backports suite (private source list and lists dir).

use super::{Lab, LabError, tool};
use std::process::Command;
use std::time::Duration;

/// A Debian package the lab needs on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPackage {
    pub name: &'static str,
    /// The oldest acceptable version (dpkg syntax), if any.
    pub min_version: Option<&'static str>,
    /// Why the project needs it (printed before installing).
    pub why: &'static str,
}

/// Everything the lab, its tests and the QEMU engine need.
pub const REQUIRED_PACKAGES: &[HostPackage] = &[
    HostPackage {
        name: "qemu-system-x86",
        min_version: Some("1:10.0"),
        why: "runs the sched_ext guest (QEMU 10 from backports; the release's 7.2 conflicts with the preinstalled qemu-utils)",
    },
    HostPackage {
        name: "busybox-static",
        min_version: None,
        why: "the guest's userland in the initramfs",
    },
    HostPackage {
        name: "cpio",
        min_version: None,
        why: "tests list the initramfs archives with cpio -t",
    },
    HostPackage {
        name: "zstd",
        min_version: None,
        why: "decompresses the kernel image's payload into vmlinux",
    },
    HostPackage {
        name: "xz-utils",
        min_version: None,
        why: "decompresses the qemu_fw_cfg module",
    },
    HostPackage {
        name: "clang-19",
        min_version: None,
        why: "compiles the BPF test schedulers and scx_bpfland's BPF part",
    },
    HostPackage {
        name: "libbpf-dev",
        min_version: Some("1:1.4"),
        why: "BPF headers and libbpf for the scheduler loader (1.4 from backports: arenas, struct_ops links)",
    },
    HostPackage {
        name: "bpftool",
        min_version: Some("7.5"),
        why: "generates vmlinux.h and reports maps/programs inside the guest (7.5 from backports)",
    },
    HostPackage {
        name: "dwarves",
        min_version: None,
        why: "pahole: generates the BTF of the 6.12 kernels the lab builds, and cross-checks BTF layouts in the btf-walk tests",
    },
    HostPackage {
        name: "libelf-dev",
        min_version: None,
        why: "links libbpf when building scx_bpfland; objtool and resolve_btfids when building the 6.12 kernel",
    },
    HostPackage {
        name: "zlib1g-dev",
        min_version: None,
        why: "links libbpf when building scx_bpfland",
    },
    HostPackage {
        name: "libseccomp-dev",
        min_version: None,
        why: "links scx_rustland (its user-space part confines itself with seccomp)",
    },
    HostPackage {
        name: "libzstd-dev",
        min_version: None,
        why: "links libelf/libbpf when building scx_bpfland",
    },
    HostPackage {
        name: "pkg-config",
        min_version: None,
        why: "locates C libraries when building scx_bpfland",
    },
    HostPackage {
        name: "gcc",
        min_version: None,
        why: "builds the scheduler loader and the 6.12 kernel",
    },
    HostPackage {
        name: "make",
        min_version: None,
        why: "builds the 6.12 kernel from Debian's linux-source-6.12",
    },
    HostPackage {
        name: "flex",
        min_version: None,
        why: "the kernel's Kconfig and dtc lexers, when building the 6.12 kernel",
    },
    HostPackage {
        name: "bison",
        min_version: None,
        why: "the kernel's Kconfig parser, when building the 6.12 kernel",
    },
    HostPackage {
        name: "bc",
        min_version: None,
        why: "the kernel build computes its timeconst header with bc (6.12 kernel)",
    },
    HostPackage {
        name: "chromium",
        min_version: None,
        why: "the HTML report's browser test loads pages in headless Chromium (console errors, chart, screenshot)",
    },
];

/// A required package that is absent or too old.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPackage {
    pub package: HostPackage,
    /// The installed version, when one is installed but too old.
    pub installed: Option<String>,
}

impl std::fmt::Display for MissingPackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.package;
        match (&self.installed, p.min_version) {
            (Some(v), Some(min)) => write!(f, "{} {v} (need >= {min}): {}", p.name, p.why),
            _ => write!(f, "{}: {}", p.name, p.why),
        }
    }
}

/// The installed version of `name`, if installed.
fn installed_version(name: &str) -> Option<String> {
    let (ok, out) = tool::probe(
        Command::new("dpkg-query")
            .arg("-W")
            .arg("-f=${Status}\t${Version}")
            .arg(name),
    )?;
    if !ok {
        return None;
    }
    let (status, version) = out.split_once('\t')?;
    status
        .ends_with(" installed")
        .then(|| version.trim().to_string())
}

fn is_root() -> bool {
    tool::probe(Command::new("id").arg("-u")).is_some_and(|(ok, out)| ok && out.trim() == "0")
}

fn version_at_least(version: &str, min: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", version, "ge", min])
        .status()
        .is_ok_and(|s| s.success())
}

/// From `apt-get -s install` output, the packages it would install or upgrade and the
/// versions it would take.
fn parse_simulation(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|rest| {
            let name = rest.split_whitespace().next()?;
            let open = rest.find('(')?;
            let version = rest[open + 1..].split_whitespace().next()?;
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

impl Lab {
    /// What `apt-get install` of `names` would install (package, version), simulated with
    /// the same private configuration and target release [`Lab::ensure_host_packages`]
    /// uses; nothing is changed.
    pub fn plan_host_install(&self, names: &[&str]) -> Result<Vec<(String, String)>, LabError> {
        let apt = super::apt::host_config(self)?;
        {
            let _lock = self.lock("apt-host")?;
            apt.update(self, "host packages", Duration::from_secs(3600))?;
        }
        let codename = super::apt::machine_mirrors()?.codename;
        let out = tool::output(
            "simulating apt-get install",
            apt.command("apt-get")
                .args(["-s", "-q", "--no-install-recommends", "-t"])
                .arg(format!("{codename}-backports"))
                .arg("install")
                .args(names),
        )?;
        Ok(parse_simulation(&String::from_utf8_lossy(&out)))
    }

    /// Which required packages are missing or too old (no side effects).
    pub fn missing_host_packages(&self) -> Vec<MissingPackage> {
        REQUIRED_PACKAGES
            .iter()
            .filter_map(|p| match installed_version(p.name) {
                None => Some(MissingPackage {
                    package: *p,
                    installed: None,
                }),
                Some(v) => match p.min_version {
                    Some(min) if !version_at_least(&v, min) => Some(MissingPackage {
                        package: *p,
                        installed: Some(v),
                    }),
                    _ => None,
                },
            })
            .collect()
    }

    /// Install what [`Lab::missing_host_packages`] reports, saying which and why first.
    /// Idempotent: with nothing missing it runs no apt command at all.
    pub fn ensure_host_packages(&self) -> Result<(), LabError> {
        let missing = self.missing_host_packages();
        if missing.is_empty() {
            self.progress().step("host packages: all present");
            return Ok(());
        }
        let _lock = self.lock("host-packages")?;
        // Another process may have installed them while we waited.
        let missing = self.missing_host_packages();
        if missing.is_empty() {
            return Ok(());
        }
        self.progress()
            .step(&format!("installing {} host package(s):", missing.len()));
        for m in &missing {
            self.progress().step(&format!("  {m}"));
        }
        let apt = super::apt::host_config(self)?;
        {
            let _lock = self.lock("apt-host")?;
            apt.update(self, "host packages", Duration::from_secs(3600))?;
        }
        let codename = super::apt::machine_mirrors()?.codename;
        let log = apt.dir.join("install.log");
        let _ = std::fs::remove_file(&log);
        // Installing needs root: otherwise go through sudo, non-interactively (it fails
        // with a clear message when it would ask for a password).
        let mut cmd = if is_root() {
            apt.command("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"])
                .args(apt.option_args());
            c
        };
        cmd.args(["-y", "-q", "--no-install-recommends", "-t"])
            .arg(format!("{codename}-backports"))
            .arg("install");
        for m in &missing {
            cmd.arg(m.package.name);
        }
        tool::run_logged(self.progress(), "apt-get install", &mut cmd, &log)?;
        let still = self.missing_host_packages();
        if !still.is_empty() {
            let names: Vec<String> = still.iter().map(|m| m.to_string()).collect();
            return Err(LabError::invalid(
                "installing host packages",
                format!("still missing after apt-get install: {}", names.join("; ")),
            ));
        }
        self.progress().step("host packages installed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_lines_parse() {
        let text = "NOTE: simulation\n\
                    Inst libelf1 [0.188-2.1] (0.192-4~bpo12+1 Debian Backports:oldstable-backports [amd64])\n\
                    Inst bpftool (7.5.0+6.12.95-1~bpo12+1 Debian Backports [amd64])\n\
                    Conf bpftool (7.5.0+6.12.95-1~bpo12+1 Debian Backports [amd64])\n\
                    Inst broken\n";
        assert_eq!(
            parse_simulation(text),
            [
                ("libelf1".to_string(), "0.192-4~bpo12+1".to_string()),
                ("bpftool".to_string(), "7.5.0+6.12.95-1~bpo12+1".to_string()),
            ]
        );
    }
}
