//! Private apt configurations derived from the machine's own Debian sources, so the
//! project can fetch packages from other suites without touching the machine's apt setup
//! and without naming any mirror host in the repository.

use super::{Lab, LabError};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the machine's Debian sources are (deb822 format).
const MACHINE_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";

/// One deb822 stanza's fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    pub signed_by: Option<String>,
}

/// Parse deb822 sources text into stanzas with `URIs` and `Suites`. Unknown fields are
/// ignored; comments and blank-line separated stanzas follow deb822.
pub(crate) fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let flush = |fields: &mut Vec<(String, String)>, out: &mut Vec<Source>| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim().to_string())
        };
        if let (Some(uris), Some(suites)) = (get("URIs"), get("Suites")) {
            let enabled = get("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
            let types = get("Types").unwrap_or_else(|| "deb".into());
            if enabled && types.split_whitespace().any(|t| t == "deb") {
                for uri in uris.split_whitespace() {
                    out.push(Source {
                        uri: uri.to_string(),
                        suites: suites.split_whitespace().map(String::from).collect(),
                        signed_by: get("Signed-By").filter(|s| !s.contains('\n')),
                    });
                }
            }
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
        } else if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    flush(&mut fields, &mut out);
    out
}

/// The main archive (not security) and the security archive of the machine's sources.
#[derive(Debug, Clone)]
pub(crate) struct Mirrors {
    pub main: Source,
    pub security: Option<Source>,
    /// The machine's release codename (`bookworm`).
    pub codename: String,
}

pub(crate) fn machine_mirrors() -> Result<Mirrors, LabError> {
    let step = "reading the machine's Debian sources";
    let text = std::fs::read_to_string(MACHINE_SOURCES)
        .map_err(|e| LabError::io(step, Path::new(MACHINE_SOURCES), e))?;
    let sources = parse_deb822(&text);
    let is_security = |s: &Source| s.suites.iter().any(|x| x.ends_with("-security"));
    let main = sources
        .iter()
        .find(|s| !is_security(s))
        .cloned()
        .ok_or_else(|| LabError::invalid(step, format!("no main archive in {MACHINE_SOURCES}")))?;
    let security = sources.iter().find(|s| is_security(s)).cloned();
    let codename = main
        .suites
        .iter()
        .find(|s| !s.contains('-'))
        .cloned()
        .ok_or_else(|| LabError::invalid(step, format!("no release suite in {MACHINE_SOURCES}")))?;
    Ok(Mirrors {
        main,
        security,
        codename,
    })
}

fn line(src: &Source, suite: &str) -> String {
    match &src.signed_by {
        Some(key) => format!("deb [signed-by={key}] {} {suite} main\n", src.uri),
        None => format!("deb {} {suite} main\n", src.uri),
    }
}

/// A private apt configuration: `-o` options pointing apt at a directory of ours.
#[derive(Debug, Clone)]
pub(crate) struct AptConfig {
    pub dir: PathBuf,
    opts: Vec<String>,
}

impl AptConfig {
    /// The `-o NAME=VALUE` arguments of this configuration.
    pub fn option_args(&self) -> Vec<String> {
        self.opts
            .iter()
            .flat_map(|o| ["-o".to_string(), o.clone()])
            .collect()
    }

    /// `apt-get`/`apt-cache` with this configuration.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(self.option_args());
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    /// `apt-get update` unless the lists were refreshed in the last `max_age`.
    pub fn update(
        &self,
        lab: &Lab,
        what: &str,
        max_age: std::time::Duration,
    ) -> Result<(), LabError> {
        let stamp = self.dir.join("updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < max_age);
        if fresh {
            return Ok(());
        }
        lab.progress().step(&format!("apt-get update ({what})"));
        let log = self.dir.join("update.log");
        let _ = std::fs::remove_file(&log);
        super::tool::run_logged(
            lab.progress(),
            &format!("apt-get update ({what})"),
            self.command("apt-get").arg("-q").arg("update"),
            &log,
        )?;
        std::fs::write(&stamp, b"").map_err(|e| LabError::io("apt-get update", &stamp, e))
    }
}

fn mkdirs(dirs: &[&Path]) -> Result<(), LabError> {
    for d in dirs {
        std::fs::create_dir_all(d).map_err(|e| LabError::io("creating apt directories", d, e))?;
    }
    Ok(())
}

/// Options every private configuration shares.
fn common_opts(opts: &mut Vec<String>) {
    opts.push("Acquire::Languages=none".into());
    // apt drops privileges to _apt for downloads, which cannot write into our cache.
    opts.push("APT::Sandbox::User=root".into());
}

/// For installing host packages: the machine's release with updates, security and
/// backports; only the source list and the lists directory are private (the install
/// itself goes to the machine's dpkg, as it must).
pub(crate) fn host_config(lab: &Lab) -> Result<AptConfig, LabError> {
    let m = machine_mirrors()?;
    let dir = lab.root().join("apt").join("host");
    let lists = dir.join("lists");
    mkdirs(&[&dir, &lists.join("partial")])?;
    let mut list = String::new();
    for suffix in ["", "-updates", "-backports"] {
        list.push_str(&line(&m.main, &format!("{}{suffix}", m.codename)));
    }
    if let Some(sec) = &m.security {
        list.push_str(&line(sec, &format!("{}-security", m.codename)));
    }
    let sources = dir.join("sources.list");
    write_if_changed(&sources, &list)?;
    let mut opts = vec![
        format!("Dir::Etc::SourceList={}", sources.display()),
        format!(
            "Dir::Etc::SourceParts={}",
            dir.join("sources.list.d").display()
        ),
        format!("Dir::State::Lists={}", lists.display()),
        // Wait for other installers (other test processes, the machine's own apt).
        "DPkg::Lock::Timeout=600".into(),
    ];
    common_opts(&mut opts);
    mkdirs(&[&dir.join("sources.list.d")])?;
    Ok(AptConfig { dir, opts })
}

/// For downloading (never installing) packages of another suite, e.g. `trixie-backports`:
/// state, cache, sources and preferences all private; an empty dpkg status.
pub(crate) fn download_config(lab: &Lab, suite: &str) -> Result<AptConfig, LabError> {
    let m = machine_mirrors()?;
    let dir = lab.root().join("apt").join(suite);
    let etc = dir.join("etc");
    let lists = dir.join("lists");
    let cache = dir.join("cache");
    mkdirs(&[
        &lists.join("partial"),
        &cache.join("archives").join("partial"),
        &etc.join("sources.list.d"),
        &etc.join("preferences.d"),
    ])?;
    let status = dir.join("status");
    if !status.exists() {
        std::fs::write(&status, b"")
            .map_err(|e| LabError::io("creating apt status", &status, e))?;
    }
    let sources = etc.join("sources.list");
    write_if_changed(&sources, &line(&m.main, suite))?;
    let mut opts = vec![
        format!("Dir::State={}", dir.display()),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::State::status={}", status.display()),
        format!("Dir::Cache={}", cache.display()),
        format!("Dir::Cache::Archives={}", cache.join("archives").display()),
        format!("Dir::Etc::SourceList={}", sources.display()),
        format!(
            "Dir::Etc::SourceParts={}",
            etc.join("sources.list.d").display()
        ),
        format!(
            "Dir::Etc::Preferences={}",
            etc.join("preferences").display()
        ),
        format!(
            "Dir::Etc::PreferencesParts={}",
            etc.join("preferences.d").display()
        ),
        "APT::Architecture=amd64".into(),
        // Our private state is ours alone (callers hold a cache lock), and the machine's
        // locks must not be taken for a download-only configuration.
        "Debug::NoLocking=1".into(),
    ];
    common_opts(&mut opts);
    Ok(AptConfig { dir, opts })
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), LabError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    super::cache::write_atomic(path, text.as_bytes(), "writing a private apt source list")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_machine_style_sources() {
        let text = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n\
                    Signed-By: /usr/share/keyrings/k.gpg\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\n\
                    Suites: bookworm-security\nComponents: main\n\n\
                    Types: deb-src\nURIs: http://src.example/\nSuites: bookworm\n\n\
                    Enabled: no\nTypes: deb\nURIs: http://off.example/\nSuites: sid\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].uri, "http://mirror.example/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/k.gpg"));
        assert_eq!(s[1].suites, ["bookworm-security"]);
        assert_eq!(
            line(&s[0], "trixie-backports"),
            "deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian trixie-backports main\n"
        );
    }

    #[test]
    fn inline_keys_are_not_copied_into_one_line_lists() {
        let text = "Types: deb\nURIs: http://m/\nSuites: bookworm\n\
                    Signed-By: -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n";
        let s = parse_deb822(text);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].signed_by, None);
    }
}
