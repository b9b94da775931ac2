//! What one guest run does, and how to read what it reported on its console.
//!
//! The guest's `/init` (project-owned, `crates/guest-lab/lab/init`) mounts the usual file
//! systems, loads `qemu_fw_cfg`, then sources `/ktstr/run.sh`, which [`RunSpec::script`]
//! generates. Everything the guest reports goes to the console with fixed prefixes, one
//! per line (anything else on the console is the kernel's or a program's own output):
//!
//! - `KTSTR-PHASE: <name>[ key=value...]` — progress, in this order when all goes well:
//!   `init` (`release=`, `cpus=`), `environment` (`bpffs=`, `tracefs=`, `debugfs=`,
//!   `cgroup2=`, `boot_config=`, `kallsyms=`, each `ok` or `missing`; see
//!   [`ConsoleLog::environment_missing`]), `modules` (`fw_cfg=ok|failed`),
//!   `scheduler-start` (`name=`), `scheduler-attached` (`ops=` the kernel's `root/ops`)
//!   or `scheduler-failed` (`reason=`), `workload-start`, `workload-done` (`rc=`), `end`
//!   (`action=`). Hooks run between them (see [`HookPoint`]). At any time after
//!   `scheduler-attached`: `scheduler-exited` (`state=`, the kernel left the scheduler);
//!   for a scheduler that is its own process, when that process ends:
//!   `scheduler-process-exit` (`rc=`, `signal=`; see [`ConsoleLog::scheduler_process_exit`]).
//! - `KTSTR-OUT <label>: <line>` — one output line of the [`GuestCommand`] `label`
//!   (stdout and stderr), and after the last one `KTSTR-END <label> rc=<exit code>`.
//!   The guest's own labels: `sched-log` (the scheduler's last lines when it failed to
//!   attach), `sched-tail` (its last lines when its process ended), `scx-dump` (the
//!   kernel's exit dump), `insmod`.
//!
//! The scheduler's stdout and stderr are kept in the guest as a bounded tail (the last
//! 200 to 400 lines, each cut to 1,024 bytes: `/tmp/sched.log.old` + `/tmp/sched.log`),
//! which [`GuestCommand::scheduler_log`] prints.
//!
//! Values are single words (no spaces). [`ConsoleLog::parse`] reads all of it back.

use crate::elf_deps::ElfKind;
use crate::{LabError, ScxCrate};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The prefix of a phase line.
pub const PHASE_PREFIX: &str = "KTSTR-PHASE: ";
/// The prefix of a command output line.
pub const OUT_PREFIX: &str = "KTSTR-OUT ";
const END_PREFIX: &str = "KTSTR-END ";

/// The project's own BPF test schedulers (`crates/guest-lab/lab/sched/*.bpf.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TestScheduler {
    /// A correct global-FIFO/vtime scheduler; never exits on its own.
    Ok,
    /// After `after_ms` stops dispatching the victim task (comm `victim_comm`); the kernel
    /// watchdog then exits it with `SCX_EXIT_ERROR_STALL` (1026).
    Stall,
    /// Calls `scx_bpf_error()` `after_ms` after attaching: `SCX_EXIT_ERROR_BPF` (1025).
    Error,
}

impl TestScheduler {
    pub const ALL: [TestScheduler; 3] = [
        TestScheduler::Ok,
        TestScheduler::Stall,
        TestScheduler::Error,
    ];

    /// The scheduler's name (its source file stem and its `sched_ext_ops.name`, which the
    /// kernel reports as `ktstr_<name>` in `root/ops`).
    pub fn name(self) -> &'static str {
        match self {
            TestScheduler::Ok => "ok",
            TestScheduler::Stall => "stall",
            TestScheduler::Error => "error",
        }
    }

    /// The ops name the kernel shows once it is attached.
    pub fn ops_name(self) -> String {
        format!("ktstr_{}", self.name())
    }

    /// The exit kind the kernel records when it fails as designed (`None` for `Ok`).
    pub fn expected_exit_kind(self) -> Option<u32> {
        match self {
            TestScheduler::Ok => None,
            TestScheduler::Stall => Some(1026),
            TestScheduler::Error => Some(1025),
        }
    }
}

impl std::str::FromStr for TestScheduler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TestScheduler::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("unknown test scheduler {s:?} (ok, stall, error)"))
    }
}

/// Per-run settings of a test scheduler, written into its `.rodata` by the loader before
/// it is loaded. `None` keeps the compiled-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestSchedulerParams {
    /// `stall`/`error`: how long after attaching the failure starts (default 3000 ms).
    pub after_ms: Option<u32>,
    /// `sched_ext_ops.timeout_ms`, the watchdog timeout (default 2000 ms for `stall`; the
    /// kernel's 30 s default for the others).
    pub timeout_ms: Option<u32>,
    /// `stall`: the comm of the task it stops dispatching (default `ktstr-victim`; the
    /// guest's `ktstr_victim` helper runs a task with that name).
    pub victim_comm: Option<String>,
}

impl TestSchedulerParams {
    /// `--set name=value` arguments for the loader.
    pub(crate) fn loader_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(ms) = self.after_ms {
            v.push(format!("after_ms={ms}"));
        }
        if let Some(ms) = self.timeout_ms {
            v.push(format!("timeout_ms={ms}"));
        }
        if let Some(c) = &self.victim_comm {
            v.push(format!("victim_comm={c}"));
        }
        v
    }
}

/// Which scheduler the guest attaches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SchedulerChoice {
    /// None: the guest stays on the kernel's fair class.
    #[default]
    None,
    /// One of the project's test schedulers.
    Test {
        which: TestScheduler,
        params: TestSchedulerParams,
    },
    /// A published scheduler of the sched_ext project (built from crates.io, cached; see
    /// [`ScxCrate`]) started with `args`.
    Published { krate: ScxCrate, args: Vec<String> },
    /// A `SEC(".struct_ops.link")` BPF object of the caller's, loaded by the loader.
    Object { path: PathBuf },
    /// The caller's own scheduler executable (e.g. a Rust or C scheduler with a
    /// user-space part), started with `args`. It goes into the guest with its program
    /// interpreter and shared libraries, resolved on the host ([`crate::elf_deps`]).
    Executable { path: PathBuf, args: Vec<String> },
}

impl SchedulerChoice {
    /// A test scheduler with its default parameters.
    pub fn test(which: TestScheduler) -> Self {
        SchedulerChoice::Test {
            which,
            params: TestSchedulerParams::default(),
        }
    }

    /// A published scheduler with its default arguments.
    pub fn published(krate: ScxCrate) -> Self {
        SchedulerChoice::Published {
            krate,
            args: Vec::new(),
        }
    }

    /// `scx_bpfland` with its default arguments.
    pub fn bpfland() -> Self {
        SchedulerChoice::published(ScxCrate::bpfland())
    }

    /// `scx_p2dq` (links the sdt arena allocator) with its default arguments.
    pub fn p2dq() -> Self {
        SchedulerChoice::published(ScxCrate::p2dq())
    }

    /// The scheduler at `path`, by what the file is: a BPF object (`EM_BPF`) is loaded
    /// by the loader and takes no `args`; an x86-64 executable is started with `args`.
    /// Anything else is refused.
    pub fn from_path(path: impl Into<PathBuf>, args: Vec<String>) -> Result<Self, LabError> {
        let path = path.into();
        let step = format!("choosing the scheduler {}", path.display());
        match crate::elf_deps::elf_kind(&path)? {
            ElfKind::BpfObject if args.is_empty() => Ok(SchedulerChoice::Object { path }),
            ElfKind::BpfObject => Err(LabError::invalid(
                step,
                "a BPF object takes no arguments (the project's loader attaches it)",
            )),
            ElfKind::Executable => Ok(SchedulerChoice::Executable { path, args }),
            ElfKind::Other { .. } => Err(LabError::invalid(
                step,
                "neither an x86-64 executable nor a BPF object",
            )),
        }
    }

    /// The name reported in the `scheduler-start` phase.
    pub fn name(&self) -> String {
        match self {
            SchedulerChoice::None => "none".into(),
            SchedulerChoice::Test { which, .. } => which.name().into(),
            SchedulerChoice::Published { krate, .. } => krate.short_name().into(),
            SchedulerChoice::Object { path } => file_word(path, "object"),
            SchedulerChoice::Executable { path, .. } => file_word(path, "executable"),
        }
    }
}

/// A path's file name as one word (phase values are split at white space).
fn file_word(path: &std::path::Path, fallback: &str) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    one_word(&name, fallback)
}

/// `text` as one word of `[A-Za-z0-9._-]` (anything else becomes `_`); `fallback` when
/// `text` is empty.
fn one_word(text: &str, fallback: &str) -> String {
    if text.is_empty() {
        return fallback.into();
    }
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// When a hook's commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// After modules are loaded, before the scheduler starts.
    BeforeScheduler,
    /// Once the scheduler is attached (or failed to), before the workload.
    AfterAttach,
    /// `workload_settle_ms` after the workload started, while it runs (the moment the
    /// end-to-end tests take the guest's own view, before the freeze).
    WorkloadRunning,
    /// After the workload finished, before the end.
    AfterWorkload,
}

impl HookPoint {
    fn shell_name(self) -> &'static str {
        match self {
            HookPoint::BeforeScheduler => "before_scheduler",
            HookPoint::AfterAttach => "after_attach",
            HookPoint::WorkloadRunning => "workload_running",
            HookPoint::AfterWorkload => "after_workload",
        }
    }
}

/// A shell command run in the guest, its output reported under `label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCommand {
    /// One word: letters, digits, `-`, `_`, `.`.
    pub label: String,
    /// Run with busybox `sh -c`.
    pub shell: String,
}

impl GuestCommand {
    /// A command; the label is cleaned to one word.
    pub fn new(label: &str, shell: impl Into<String>) -> Self {
        GuestCommand {
            label: one_word(label, "cmd"),
            shell: shell.into(),
        }
    }

    /// The same command under another label (to run it at several points).
    pub fn labeled(self, label: &str) -> Self {
        GuestCommand::new(label, self.shell)
    }

    /// The `/proc/kallsyms` lines (`addr type name [module]`) of exactly these symbols.
    pub fn kallsyms(symbols: &[&str]) -> Self {
        let cond: Vec<String> = symbols
            .iter()
            .map(|s| format!("$3==\"{}\"", s.replace(['"', '\\'], "")))
            .collect();
        let cond = if cond.is_empty() {
            "0".to_string()
        } else {
            cond.join("||")
        };
        GuestCommand::new("kallsyms", format!("awk '{cond}' /proc/kallsyms"))
    }

    /// `bpftool -j map show`: one JSON array, one map per line (bpftool prints it on one
    /// line, and the host's console cuts lines at 4 KiB: a real scheduler's maps are more).
    pub fn bpftool_map_show() -> Self {
        GuestCommand::new(
            "bpftool-map-show",
            format!("bpftool -j map show | {SPLIT_JSON_OBJECTS}"),
        )
    }

    /// `bpftool -j prog show`, one program per line (see
    /// [`bpftool_map_show`](Self::bpftool_map_show); run counts need `RunSpec::bpf_stats`).
    pub fn bpftool_prog_show() -> Self {
        GuestCommand::new(
            "bpftool-prog-show",
            format!("bpftool -j prog show | {SPLIT_JSON_OBJECTS}"),
        )
    }

    /// The scalar variables of every global-data map (names ending in `.rodata` or `.data`,
    /// or with a `.rodata.`/`.data.` section suffix), one per line:
    /// `<map name> <variable> <value>`, in the order of the map's BTF section. Values are
    /// what bpftool's BTF dump prints: decimal integers, `0x…` pointers, `true`/`false`;
    /// strings, enums (printed by name), arrays and structs are left out. The filter runs in
    /// the guest: a real scheduler's `.rodata` dumps to tens of thousands of lines.
    pub fn bpftool_globals() -> Self {
        GuestCommand::new(
            "bpftool-globals",
            format!(
                "bpftool map show | awk '$3==\"name\"{{print $1, $4}}' | tr -d : | \
                 while read id name; do case \"$name\" in \
                 *.rodata|*.data|*.rodata.*|*.data.*) bpftool map dump id \"$id\" | \
                 awk -v m=\"$name\" {};; esac; done",
                sh_quote(GLOBALS_AWK)
            ),
        )
    }

    /// For every map whose name ends in `.bss`: `{"id":<id>,"name":"<name>","dump":<bpftool -j map dump>}`,
    /// one line each.
    pub fn bpftool_bss_dump() -> Self {
        GuestCommand::new(
            "bpftool-bss-dump",
            "bpftool map show | awk '$3==\"name\"{print $1, $4}' \
             | tr -d : | while read id name; do case \"$name\" in *.bss) \
             echo \"{\\\"id\\\":$id,\\\"name\\\":\\\"$name\\\",\\\"dump\\\":$(bpftool -j map dump id $id)}\";; esac; done",
        )
    }

    /// `/proc/<pid>/stat` of every process (one line each).
    pub fn proc_pid_stats() -> Self {
        GuestCommand::new(
            "proc-pid-stat",
            "for f in /proc/[0-9]*/stat; do cat \"$f\" 2>/dev/null; done",
        )
    }

    /// The last 200 lines the scheduler (the loader, or the scheduler's process) printed
    /// so far.
    pub fn scheduler_log() -> Self {
        GuestCommand::new(
            "sched-log",
            "{ cat /tmp/sched.log.old; cat /tmp/sched.log; } 2>/dev/null | tail -n 200",
        )
    }

    /// `/proc/stat`.
    pub fn proc_stat() -> Self {
        GuestCommand::new("proc-stat", "cat /proc/stat")
    }

    /// Every file under `/sys/kernel/sched_ext` as `path=value` (first line of the value).
    pub fn sched_ext_sysfs() -> Self {
        GuestCommand::new(
            "sched-ext-sysfs",
            "find /sys/kernel/sched_ext -type f | sort | while read f; do \
             echo \"$f=$(head -n1 \"$f\" 2>/dev/null)\"; done",
        )
    }

    /// `<pid> <ext.enabled>` for every process: whether the kernel runs it on sched_ext
    /// (`/proc/<pid>/sched`'s `ext.enabled`, `task_on_scx()`). `$KTSTR_PROC` stands in for
    /// `/proc` in the host's tests.
    pub fn proc_pid_ext() -> Self {
        GuestCommand::new(
            "proc-pid-ext",
            "grep -H '^ext.enabled' ${KTSTR_PROC:-/proc}/[0-9]*/sched 2>/dev/null | \
             awk -F: '{n = split($1, p, \"/\"); print p[n - 1], $NF + 0}'",
        )
    }
}

/// Puts each object of a one-line JSON array on its own line (`},{` → `},\n{`; JSON
/// parsers read the joined lines alike).
pub const SPLIT_JSON_OBJECTS: &str = "awk '{gsub(/\\},[ ]*\\{/, \"},\\n{\"); print}'";

/// Keeps the section-level scalars of bpftool's plain BTF dump of a global-data map,
/// which pretty-prints `[{ "value": { ".rodata": [{ "var": value },{ … }] } }]` with four
/// spaces per level: the section's line sets the level of its variables (8 deeper).
const GLOBALS_AWK: &str = r#"{ match($0, /^ */); ind = RLENGTH }
/^ *"\.[^"]*": \[/ { lvl = ind + 8; next }
lvl > 0 && ind == lvl && /^ *"[^"]*": [^ ]+$/ {
    s = substr($0, ind + 2); k = substr(s, 1, index(s, "\"") - 1)
    v = substr(s, index(s, "\": ") + 3)
    if (v ~ /^(-?[0-9]+|0x[0-9a-fA-F]+|true|false)$/) print m, k, v
}"#;

/// How the run ends once the workload is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunEnd {
    /// `poweroff -f` (QEMU exits with `-no-reboot`).
    #[default]
    Poweroff,
    /// Stay up (idle) until the host tears the VM down.
    Hold,
}

/// Everything one guest run does. Build with the methods; turn into the per-run part of
/// the initramfs with [`crate::Lab::initramfs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub scheduler: SchedulerChoice,
    /// A busybox `sh` command line; the helpers `ktstr_spin N SECS` (N busy loops),
    /// `ktstr_victim SECS` (one busy loop named `ktstr-victim`) and `ktstr_mixed`
    /// ([`crate::MixedWorkload`]) are defined.
    pub workload: Option<String>,
    /// Delay between starting the workload and the `WorkloadRunning` hooks.
    pub workload_settle_ms: u32,
    /// How long to wait for the scheduler to attach.
    pub attach_timeout_s: u32,
    /// `kernel.bpf_stats_enabled=1` before the scheduler loads (program run counts).
    pub bpf_stats: bool,
    pub commands: Vec<(HookPoint, GuestCommand)>,
    pub end: RunEnd,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            scheduler: SchedulerChoice::None,
            workload: None,
            workload_settle_ms: 500,
            attach_timeout_s: 120,
            bpf_stats: false,
            commands: Vec::new(),
            end: RunEnd::Poweroff,
        }
    }
}

/// Quote for busybox sh: single quotes, with `'` as `'\''`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl RunSpec {
    pub fn new() -> Self {
        RunSpec::default()
    }

    pub fn scheduler(mut self, s: SchedulerChoice) -> Self {
        self.scheduler = s;
        self
    }

    pub fn workload(mut self, cmd: impl Into<String>) -> Self {
        self.workload = Some(cmd.into());
        self
    }

    pub fn settle_ms(mut self, ms: u32) -> Self {
        self.workload_settle_ms = ms;
        self
    }

    pub fn attach_timeout_s(mut self, s: u32) -> Self {
        self.attach_timeout_s = s;
        self
    }

    pub fn bpf_stats(mut self, on: bool) -> Self {
        self.bpf_stats = on;
        self
    }

    /// Run `cmd` at `point` (commands at one point run in the order added).
    pub fn command(mut self, point: HookPoint, cmd: GuestCommand) -> Self {
        self.commands.push((point, cmd));
        self
    }

    /// Each of `cmds`, in order, at `point`.
    pub fn commands(
        mut self,
        point: HookPoint,
        cmds: impl IntoIterator<Item = GuestCommand>,
    ) -> Self {
        self.commands.extend(cmds.into_iter().map(|c| (point, c)));
        self
    }

    pub fn end(mut self, end: RunEnd) -> Self {
        self.end = end;
        self
    }

    /// The `/ktstr/run.sh` the guest's `/init` sources. It only calls functions `/init`
    /// defines, with every caller-provided string quoted.
    pub fn script(&self) -> String {
        let mut s = String::from("# generated by guest_lab::RunSpec\n");
        let hooks = |s: &mut String, point: HookPoint| {
            s.push_str(&format!("ktstr_hook {}\n", point.shell_name()));
            for (p, c) in &self.commands {
                if *p == point {
                    s.push_str(&format!(
                        "ktstr_cmd {} {}\n",
                        sh_quote(&c.label),
                        sh_quote(&c.shell)
                    ));
                }
            }
        };
        if self.bpf_stats {
            s.push_str("ktstr_bpf_stats\n");
        }
        hooks(&mut s, HookPoint::BeforeScheduler);
        let timeout = self.attach_timeout_s;
        match &self.scheduler {
            SchedulerChoice::None => {}
            SchedulerChoice::Test { which, params } => {
                let mut line = format!(
                    "ktstr_sched_loader {} {timeout} /sched/{}.bpf.o",
                    which.name(),
                    which.name()
                );
                for a in params.loader_args() {
                    line.push_str(" --set ");
                    line.push_str(&sh_quote(&a));
                }
                s.push_str(&line);
                s.push('\n');
            }
            SchedulerChoice::Object { .. } => {
                s.push_str(&format!(
                    "ktstr_sched_loader {} {timeout} /sched/user.bpf.o\n",
                    sh_quote(&self.scheduler.name())
                ));
            }
            SchedulerChoice::Executable { args, .. } => {
                let mut line = format!(
                    "ktstr_sched_daemon {} {timeout} /{}",
                    sh_quote(&self.scheduler.name()),
                    crate::initramfs::USER_LAUNCHER
                );
                for a in args {
                    line.push(' ');
                    line.push_str(&sh_quote(a));
                }
                s.push_str(&line);
                s.push('\n');
            }
            SchedulerChoice::Published { krate, args } => {
                let mut line = format!(
                    "ktstr_sched_daemon {} {timeout} /bin/{}",
                    krate.short_name(),
                    krate.name()
                );
                for a in args {
                    line.push(' ');
                    line.push_str(&sh_quote(a));
                }
                s.push_str(&line);
                s.push('\n');
            }
        }
        hooks(&mut s, HookPoint::AfterAttach);
        if let Some(w) = &self.workload {
            s.push_str(&format!("ktstr_workload_start {}\n", sh_quote(w)));
            s.push_str(&format!("ktstr_sleep_ms {}\n", self.workload_settle_ms));
            hooks(&mut s, HookPoint::WorkloadRunning);
            s.push_str("ktstr_workload_wait\n");
        } else {
            hooks(&mut s, HookPoint::WorkloadRunning);
        }
        hooks(&mut s, HookPoint::AfterWorkload);
        match self.end {
            RunEnd::Poweroff => s.push_str("ktstr_end poweroff\n"),
            RunEnd::Hold => s.push_str("ktstr_end hold\n"),
        }
        s
    }
}

/// One `KTSTR-PHASE:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl Phase {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

/// How a scheduler's own process ended, as the guest reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerProcessExit {
    /// The shell's status of the process: its exit code, or 128 + the signal that
    /// killed it (busybox `sh`; an exit code above 128 reads the same).
    pub rc: i32,
    /// Its last output lines (up to 60, each at most 1,024 bytes).
    pub tail: Vec<String>,
}

impl SchedulerProcessExit {
    /// The signal that ended the process, when `rc` says one did.
    pub fn signal(&self) -> Option<i32> {
        (self.rc > 128 && self.rc < 128 + 65).then(|| self.rc - 128)
    }
}

/// The fields of the `environment` phase.
pub const ENVIRONMENT_FIELDS: [&str; 6] = [
    "bpffs",
    "tracefs",
    "debugfs",
    "cgroup2",
    "boot_config",
    "kallsyms",
];

/// What the guest reported on its console, parsed. Lines that are not ours are kept in
/// order in `other` (kernel messages, e.g. the sched_ext exit report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleLog {
    pub phases: Vec<Phase>,
    /// Output lines per command label, in order.
    pub outputs: BTreeMap<String, Vec<String>>,
    /// Exit code per command label that finished.
    pub exit_codes: BTreeMap<String, i32>,
    pub other: Vec<String>,
}

impl ConsoleLog {
    /// Parse console text (any line endings; a prefix may follow other text on the same
    /// line when the kernel's output got interleaved).
    pub fn parse(text: &str) -> ConsoleLog {
        let mut log = ConsoleLog::default();
        for raw in text.split(['\n', '\r']) {
            if raw.is_empty() {
                continue;
            }
            if let Some(i) = raw.find(PHASE_PREFIX) {
                let mut words = raw[i + PHASE_PREFIX.len()..].split_whitespace();
                if let Some(name) = words.next() {
                    let fields = words
                        .filter_map(|w| w.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    log.phases.push(Phase {
                        name: name.to_string(),
                        fields,
                    });
                }
            } else if let Some(i) = raw.find(OUT_PREFIX) {
                let rest = &raw[i + OUT_PREFIX.len()..];
                if let Some((label, line)) = rest.split_once(": ") {
                    log.outputs
                        .entry(label.to_string())
                        .or_default()
                        .push(line.to_string());
                } else if let Some(label) = rest.strip_suffix(':') {
                    log.outputs
                        .entry(label.to_string())
                        .or_default()
                        .push(String::new());
                }
            } else if let Some(i) = raw.find(END_PREFIX) {
                let mut words = raw[i + END_PREFIX.len()..].split_whitespace();
                if let (Some(label), Some(rc)) = (words.next(), words.next())
                    && let Some(rc) = rc.strip_prefix("rc=").and_then(|r| r.parse().ok())
                {
                    log.exit_codes.insert(label.to_string(), rc);
                }
            } else {
                log.other.push(raw.to_string());
            }
        }
        log
    }

    /// The first phase named `name`.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Field `key` of the first phase named `name`.
    pub fn phase_field(&self, name: &str, key: &str) -> Option<&str> {
        self.phase(name).and_then(|p| p.field(key))
    }

    /// The output of command `label` as one string (lines joined with `\n`).
    pub fn output(&self, label: &str) -> Option<String> {
        self.outputs.get(label).map(|l| l.join("\n"))
    }

    /// The last phase reached.
    pub fn last_phase(&self) -> Option<&Phase> {
        self.phases.last()
    }

    /// The scheduler process' end (`scheduler-process-exit` and the `sched-tail`
    /// output), if it was reported.
    pub fn scheduler_process_exit(&self) -> Option<SchedulerProcessExit> {
        let phase = self.phase("scheduler-process-exit")?;
        let rc = phase.field("rc")?.parse().ok()?;
        Some(SchedulerProcessExit {
            rc,
            tail: self.outputs.get("sched-tail").cloned().unwrap_or_default(),
        })
    }

    /// What of [`ENVIRONMENT_FIELDS`] the guest did not report as `ok` (all of them when
    /// the `environment` phase is missing).
    pub fn environment_missing(&self) -> Vec<&'static str> {
        let env = self.phase("environment");
        ENVIRONMENT_FIELDS
            .into_iter()
            .filter(|f| env.and_then(|p| p.field(f)) != Some("ok"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_and_orders() {
        let spec = RunSpec::new()
            .scheduler(SchedulerChoice::Test {
                which: TestScheduler::Stall,
                params: TestSchedulerParams {
                    after_ms: Some(1500),
                    victim_comm: Some("it's".into()),
                    ..Default::default()
                },
            })
            .workload("ktstr_spin 2 5; echo 'x'")
            .bpf_stats(true)
            .command(HookPoint::WorkloadRunning, GuestCommand::proc_stat())
            .command(
                HookPoint::AfterAttach,
                GuestCommand::kallsyms(&["scx_root", "init_task"]),
            );
        let s = spec.script();
        let pos = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in\n{s}"));
        assert!(pos("ktstr_bpf_stats") < pos("ktstr_sched_loader stall 120 /sched/stall.bpf.o"));
        assert!(s.contains("--set 'after_ms=1500' --set 'victim_comm=it'\\''s'"));
        assert!(pos("ktstr_hook after_attach") < pos("ktstr_cmd 'kallsyms'"));
        assert!(pos("ktstr_cmd 'kallsyms'") < pos("ktstr_workload_start"));
        assert!(pos("ktstr_workload_start") < pos("ktstr_cmd 'proc-stat'"));
        assert!(pos("ktstr_cmd 'proc-stat'") < pos("ktstr_workload_wait"));
        assert!(s.ends_with("ktstr_end poweroff\n"));
        assert!(s.contains("$3==\"scx_root\"||$3==\"init_task\""));
    }

    #[test]
    fn labels_are_one_word() {
        assert_eq!(GuestCommand::new("a b/c", "true").label, "a_b_c");
        assert_eq!(GuestCommand::new("", "true").label, "cmd");
    }

    #[test]
    fn parses_console() {
        let text = "[    1.0] Linux version\r\nKTSTR-PHASE: init\n\
                    KTSTR-PHASE: scheduler-attached ops=ktstr_ok\n\
                    KTSTR-OUT kallsyms: ffffffff81000000 T _text\n\
                    noiseKTSTR-OUT kallsyms: ffffffff82000000 D scx_root\n\
                    KTSTR-OUT empty:\n\
                    KTSTR-END kallsyms rc=0\n\
                    KTSTR-END bad rc=x\n\
                    sched_ext: BPF scheduler \"ktstr_stall\" disabled (runnable task stall)\n";
        let log = ConsoleLog::parse(text);
        assert_eq!(log.phases.len(), 2);
        assert_eq!(
            log.phase("scheduler-attached").unwrap().field("ops"),
            Some("ktstr_ok")
        );
        assert_eq!(log.outputs["kallsyms"].len(), 2);
        assert_eq!(log.outputs["empty"], [""]);
        assert_eq!(log.exit_codes.get("kallsyms"), Some(&0));
        assert!(!log.exit_codes.contains_key("bad"));
        assert_eq!(log.other.len(), 2);
        assert_eq!(log.last_phase().unwrap().name, "scheduler-attached");
    }

    #[test]
    fn process_exit_and_environment_parse() {
        let text = "KTSTR-PHASE: environment bpffs=ok tracefs=ok debugfs=ok cgroup2=missing \
                    boot_config=ok kallsyms=ok\n\
                    KTSTR-PHASE: scheduler-process-exit rc=143 signal=15\n\
                    KTSTR-OUT sched-tail: 11:02:03 [INFO] Unregister scx_flash scheduler\n\
                    KTSTR-OUT sched-tail: EXIT: unregistered from user space\n\
                    KTSTR-END sched-tail rc=143\n";
        let log = ConsoleLog::parse(text);
        let exit = log.scheduler_process_exit().unwrap();
        assert_eq!((exit.rc, exit.signal()), (143, Some(15)));
        assert_eq!(exit.tail.len(), 2);
        assert_eq!(log.environment_missing(), ["cgroup2"]);
        let clean = ConsoleLog::parse("KTSTR-PHASE: scheduler-process-exit rc=0\n");
        let exit = clean.scheduler_process_exit().unwrap();
        assert_eq!((exit.rc, exit.signal(), exit.tail.len()), (0, None, 0));
        let none = ConsoleLog::parse("KTSTR-PHASE: init\n");
        assert_eq!(none.scheduler_process_exit(), None);
        assert_eq!(none.environment_missing().len(), ENVIRONMENT_FIELDS.len());
    }

    #[test]
    fn scheduler_names_parse() {
        for t in TestScheduler::ALL {
            assert_eq!(t.name().parse::<TestScheduler>(), Ok(t));
        }
        assert!("nope".parse::<TestScheduler>().is_err());
    }
}
