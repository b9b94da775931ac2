//! The command line: clap definitions, help texts with examples.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ktstr_cli::{EngineChoice, RunOptions, SchedulerArg, parse_duration, parse_size_mib};

#[derive(Parser, Debug)]
#[command(
    name = "ktstr",
    version,
    about = "Run sched_ext schedulers in a VM and capture failure dumps of the frozen guest",
    after_help = concat!(
        "Examples:\n",
        "  ktstr run                                  # boot, stall the `stall` scheduler, capture\n",
        "  ktstr run --scheduler ok --timeout 60s     # no failure: exit 0 after 60 s\n",
        "  ktstr capture --vmcore guest.vmcore        # the same report from a vmcore\n",
        "  ktstr render ktstr-out/*.failure-dump.json # read a dump\n",
        "  ktstr validate dump.json && echo ok\n",
        "  ktstr schema any > failure-dump.schema.json\n\n",
        "Exit codes: 0 no failure, 1 failure captured (or invalid document for `validate`),\n",
        "2 usage or unusable input, 3 infrastructure error."
    )
)]
pub struct Cli {
    /// More diagnostics on stderr (accelerator, timings, walker log); repeat for more.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot a sched_ext guest, attach a scheduler, run a workload and capture a dump
    #[command(after_help = concat!(
        "Provisions what is missing first (host packages, the 7.3 sched_ext kernel, the\n",
        "test schedulers; cached under $KTSTR_CACHE or ~/.cache/ktstr), with progress on\n",
        "stderr. The guest is frozen the moment the scheduler's exit kind turns into an\n",
        "error (SCX_EXIT_ERROR*), or at --timeout, at the end of the workload, or on\n",
        "Ctrl-C (a second Ctrl-C aborts). Meanwhile the runnable tasks' waiting times\n",
        "are scanned from the host; when the oldest passes half the scheduler's watchdog\n",
        "timeout (or at --early-at), an early snapshot is taken (freeze, capture, thaw)\n",
        "and the guest runs on. The dump is a dual report (schema \"dual\": `early` and `late`; without an\n",
        "early snapshot `early_skipped_reason` says why) written to\n",
        "DIR/<scheduler>-<UTC time>.failure-dump.json (atomically), its rendering to\n",
        "stdout. A guest that fails before a capture is possible (panic, scheduler\n",
        "refusing to attach) yields a placeholder report with guest_setup_failure filled,\n",
        "and exit code 1; an engine that cannot run the kernel (--engine kvm on a host\n",
        "whose KVM cannot emulate it) the same placeholder and exit code 3.\n\n",
        "Examples:\n",
        "  ktstr run                                       # `stall`: exit 1, names the starved task\n",
        "  ktstr run --scheduler error --out /tmp/dumps\n",
        "  ktstr run --scheduler ok --timeout 45s          # exit 0\n",
        "  ktstr run --scheduler ok --early-at 20s --timeout 45s   # a mid-run snapshot too\n",
        "  ktstr run --scheduler bpfland --workload 'ktstr_spin 4 30'\n",
        "  ktstr run --scheduler ./my_sched.bpf.o --cpus 4 --memory 1G --vmcore-out guest.vmcore\n",
        "  ktstr run --scheduler scx_cosmos@1.1.7 --timeout 60s   # any published scx_* crate\n",
        "  ktstr run --scheduler ./target/release/scx_mine -- --slice-us 5000   # your own build\n",
        "  ktstr run --json | jq .late.dsq_states\n\n",
        "Exit codes: 0 no failure, 1 failure captured, 2 usage, 3 infrastructure error."
    ))]
    Run(Box<RunArgs>),
    /// Capture a report from a vmcore, or from a running QEMU guest (QMP + shared RAM)
    #[command(after_help = concat!(
        "With --vmcore no VM is needed: the kernel is found through the vmcore's\n",
        "VMCOREINFO (or a scan of its RAM), symbols from kallsyms in guest memory and types\n",
        "from the kernel's own BTF; --btf and --system-map are fallbacks. With --qmp/--ram\n",
        "the guest (started with -qmp unix:SOCKET,server=on,wait=off and\n",
        "-object memory-backend-file,id=ram,share=on,mem-path=FILE -machine memory-backend=ram)\n",
        "is stopped, captured and resumed.\n\n",
        "Examples:\n",
        "  ktstr capture --vmcore guest.vmcore\n",
        "  ktstr capture --vmcore guest.vmcore --btf vmlinux --out dump.json\n",
        "  ktstr capture --qmp /tmp/qmp.sock --ram /dev/shm/guest-ram --json\n\n",
        "Exit codes: 0 no scheduler error in the dump, 1 the dump shows a scheduler error\n",
        "exit, 2 usage or unusable input, 3 infrastructure error."
    ))]
    Capture(CaptureArgs),
    /// Print the human rendering of a failure dump (single, dual or degraded)
    #[command(after_help = concat!(
        "Examples:\n",
        "  ktstr render dump.failure-dump.json | less\n",
        "  ktstr render --json dump.json    # normalized JSON (--pretty: indented)\n",
        "  ktstr render --full --width 200 dump.json   # nothing folded\n",
        "  ktstr render --section runqueues --task ktstr-victim dump.json\n",
        "  ktstr render --map bss dump.json             # every .bss map, uncapped\n",
        "  ktstr render --html dump.html dump.json      # one self-contained page for a browser\n\n",
        "Without a filter every section prints, long parts cut short, each saying which\n",
        "filter (--section, --map, --task) or --full shows the rest.\n\n",
        "Exit codes: 0 rendered, 2 the file is missing or not a failure dump."
    ))]
    Render {
        /// The JSON failure dump.
        file: PathBuf,
        /// Print the report as normalized JSON instead.
        #[arg(long)]
        json: bool,
        /// Indent the JSON for people.
        #[arg(long, requires = "json")]
        pretty: bool,
        /// Fold and hide nothing: every array element, zero member, key, CPU and task.
        #[arg(long, conflicts_with = "json")]
        full: bool,
        /// Keep lines within this many columns where the content allows (default 120).
        #[arg(long, conflicts_with = "json")]
        width: Option<usize>,
        /// Print only this section (repeatable): summary, setup, runqueues, exit, tasks,
        /// maps, vcpu_regs, sdt, programs, scheduler, cpu_time, cgroups, numa, timeline,
        /// vcpu_perf, probe_counters, notes.
        #[arg(long = "section", value_name = "NAME", conflicts_with = "json")]
        sections: Vec<String>,
        /// Print only the maps whose name contains NAME (repeatable).
        #[arg(long = "map", value_name = "NAME", conflicts_with = "json")]
        maps: Vec<String>,
        /// Print everything about one task: a pid, or an exact comm (repeatable).
        #[arg(long = "task", value_name = "PID|COMM", conflicts_with = "json")]
        tasks: Vec<String>,
        /// Write one self-contained HTML page instead (`-`: standard output): the summary,
        /// who runs and who waits, the event-counter chart, sortable tables, the maps
        /// collapsible and searchable; nothing fetched.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "full", "width", "sections", "maps", "tasks"])]
        html: Option<PathBuf>,
    },
    /// Check that a file is a valid failure dump; says where it is not
    #[command(after_help = concat!(
        "The error names the line, column and JSON path of the offending field,\n",
        "e.g. `maps[3].value.members[0].value.bits`.\n\n",
        "Examples:\n",
        "  ktstr validate dump.json\n",
        "  ktstr validate --json dump.json   # {\"valid\":false,\"error\":…,\"path\":…}\n\n",
        "Exit codes: 0 valid, 1 invalid, 2 the file cannot be read."
    ))]
    Validate {
        file: PathBuf,
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema (draft 2020-12) of a report kind
    #[command(after_help = concat!(
        "Examples:\n",
        "  ktstr schema                 # `any`: a oneOf told apart by `schema`\n",
        "  ktstr schema single > single.json\n\n",
        "Exit codes: 0, or 2 for an unknown kind."
    ))]
    Schema {
        /// single, dual, degraded, any, or diff (what `ktstr diff --json` writes).
        #[arg(default_value = "any")]
        kind: String,
    },
    /// What changed between two dumps, or from a dual dump's early snapshot to its late one
    #[command(after_help = concat!(
        "Compares tasks (by pid: appeared, gone, moved between DSQs or CPUs, waiting\n",
        "longer), DSQs (their tasks by name), CPUs (current task), programs' counters,\n",
        "map values (by map name and key; data sections by variable name) and the event\n",
        "counters. A dual dump is compared by its late snapshot; one file alone must be a\n",
        "dual dump, compared early -> late. The text shows the most significant changes\n",
        "first and counts the rest (--full: everything); --json writes the diff\n",
        "(`ktstr schema diff`).\n\n",
        "Examples:\n",
        "  ktstr diff ktstr-out/stall-*.failure-dump.json   # early -> late of one run\n",
        "  ktstr diff before.json after.json --full\n",
        "  ktstr diff a.json b.json --json | jq '.tasks[] | select(.moved)'\n\n",
        "Exit codes: 0 no differences, 1 differences, 2 a file is missing or not a failure\n",
        "dump, or one file that is not a dual dump with an early snapshot."
    ))]
    Diff(DiffArgs),
    /// Freeze a running QEMU guest and write it as an ELF vmcore (drgn and crash read it)
    #[command(after_help = concat!(
        "Examples:\n",
        "  ktstr export-vmcore --qmp /tmp/qmp.sock --ram /dev/shm/guest-ram --out guest.vmcore\n",
        "  drgn -c guest.vmcore -e 'print(prog[\"init_task\"].comm)'\n",
        "(`ktstr run --vmcore-out FILE` writes one at the capture.)\n\n",
        "Exit codes: 0 written, 2 usage or unusable input, 3 infrastructure error."
    ))]
    ExportVmcore(ExportArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// ok, stall, error (test schedulers); bpfland, p2dq or scx_NAME[@VERSION] (a published
    /// sched_ext scheduler, built from crates.io once); or a PATH with a `/`: a .bpf.o, or
    /// your own scheduler executable (it goes into the guest with its libraries)
    #[arg(long, default_value = "stall", value_parser = parse_scheduler)]
    pub scheduler: SchedulerArg,
    /// Arguments for the scheduler, after `--` (published schedulers and executables).
    #[arg(last = true, value_name = "SCHEDULER_ARGS")]
    pub scheduler_args: Vec<String>,
    /// vCPUs of the guest.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Guest RAM, e.g. 512M, 2G.
    #[arg(long, default_value = "512M", value_parser = parse_size_mib)]
    pub memory: u64,
    /// auto (the native KVM engine when a probe boots the kernel on it, else QEMU), kvm (the
    /// native engine; exit 3 with a placeholder report where KVM cannot run the kernel), or
    /// qemu (KVM accelerator when it boots the kernel, else TCG).
    #[arg(long, default_value = "auto", value_parser = parse_engine)]
    pub engine: EngineChoice,
    /// Boot this kernel image instead of the provisioned 7.3 sched_ext kernel.
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// The lab's kernel to boot: `6.12` (the 6.12 LTS, built from Debian's
    /// linux-source-6.12 on first use, about 4 minutes on 2 cores) or an exact Debian
    /// ABI version of a packaged 7.x kernel (`7.3.4+deb13`, the default).
    #[arg(long, value_name = "VERSION")]
    pub kernel_version: Option<String>,
    /// Guest shell command (busybox sh; helpers `ktstr_spin N SECS`, `ktstr_victim SECS`).
    #[arg(long)]
    pub workload: Option<String>,
    /// Capture after this long without an error exit (e.g. 90s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Take the early snapshot this long after the watch is armed (the guest is up),
    /// whether or not a task has waited half the watchdog timeout: a mid-run state of a
    /// scheduler that does not stall, to diff with the end (`ktstr diff`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub early_at: Option<Duration>,
    /// Directory for the dump.
    #[arg(long, default_value = "ktstr-out")]
    pub out: PathBuf,
    /// Also write the frozen guest as an ELF vmcore.
    #[arg(long)]
    pub vmcore_out: Option<PathBuf>,
    /// Print the report as JSON instead of its rendering.
    #[arg(long)]
    pub json: bool,
    /// Indent the JSON (the file and --json) for people; compact otherwise.
    #[arg(long)]
    pub pretty: bool,
}

impl RunArgs {
    pub fn into_options(self) -> RunOptions {
        let mut o = RunOptions::new(self.scheduler);
        o.scheduler_args = self.scheduler_args;
        o.cpus = self.cpus;
        o.memory_mib = self.memory;
        o.engine = self.engine;
        o.kernel = self.kernel;
        o.kernel_version = self.kernel_version;
        o.workload = self.workload;
        o.timeout = self.timeout;
        o.early_at = self.early_at;
        o.out_dir = self.out;
        o.vmcore_out = self.vmcore_out;
        o.json_style = style(self.pretty);
        o
    }
}

/// `--pretty` or not.
pub fn style(pretty: bool) -> ktstr_cli::JsonStyle {
    if pretty {
        ktstr_cli::JsonStyle::Pretty
    } else {
        ktstr_cli::JsonStyle::Compact
    }
}

fn parse_scheduler(s: &str) -> Result<SchedulerArg, String> {
    s.parse()
}

fn parse_engine(s: &str) -> Result<EngineChoice, String> {
    s.parse()
}

/// QEMU's x86 machine types (they place RAM differently around the PCI hole).
#[derive(ValueEnum, Clone, Copy, Debug, Default)]
pub enum Machine {
    #[default]
    Pc,
    Q35,
}

impl From<Machine> for guest_mem::ramfile::QemuMachine {
    fn from(m: Machine) -> Self {
        match m {
            Machine::Pc => guest_mem::ramfile::QemuMachine::Pc,
            Machine::Q35 => guest_mem::ramfile::QemuMachine::Q35,
        }
    }
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// A vmcore (QEMU dump-guest-memory, kdump, `ktstr export-vmcore`).
    #[arg(long, conflicts_with_all = ["qmp", "ram"])]
    pub vmcore: Option<PathBuf>,
    /// QMP socket of a running QEMU guest.
    #[arg(long, requires = "ram")]
    pub qmp: Option<PathBuf>,
    /// That guest's shared RAM file (memory-backend-file,share=on).
    #[arg(long, requires = "qmp")]
    pub ram: Option<PathBuf>,
    /// The QEMU machine type of that guest.
    #[arg(long, value_enum, default_value_t = Machine::Pc)]
    pub machine: Machine,
    /// Kernel BTF (raw BTF, vmlinux or bzImage) instead of the one in guest memory.
    #[arg(long)]
    pub btf: Option<PathBuf>,
    /// A System.map instead of kallsyms in guest memory.
    #[arg(long)]
    pub system_map: Option<PathBuf>,
    /// Write the JSON dump here (atomically; `-` for standard output; a symbolic link's
    /// target is written).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --qmp: also write the frozen guest as an ELF vmcore.
    #[arg(long)]
    pub vmcore_out: Option<PathBuf>,
    /// Print the report as JSON instead of its rendering.
    #[arg(long)]
    pub json: bool,
    /// Indent the JSON (--out and --json) for people; compact otherwise.
    #[arg(long)]
    pub pretty: bool,
}

impl CaptureArgs {
    pub fn sources(&self) -> ktstr_cli::CaptureSources {
        ktstr_cli::CaptureSources {
            btf: self.btf.clone(),
            system_map: self.system_map.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// QMP socket of the running QEMU guest.
    #[arg(long)]
    pub qmp: PathBuf,
    /// Its shared RAM file.
    #[arg(long)]
    pub ram: PathBuf,
    #[arg(long, value_enum, default_value_t = Machine::Pc)]
    pub machine: Machine,
    /// The vmcore to write (atomically).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The dump compared from; alone, a dual dump compared early -> late.
    pub a: PathBuf,
    /// The dump compared to.
    pub b: Option<PathBuf>,
    /// Print the diff as JSON (schema `diff`).
    #[arg(long)]
    pub json: bool,
    /// Indent the JSON for people.
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Every change, none counted only.
    #[arg(long, conflicts_with = "json")]
    pub full: bool,
    /// Keep lines within this many columns where the content allows (default 120).
    #[arg(long, conflicts_with = "json")]
    pub width: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_examples() {
        for sub in Cli::command().get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Examples:"),
                "{} has no examples",
                sub.get_name()
            );
            assert!(
                help.contains("Exit codes:"),
                "{} has no exit codes",
                sub.get_name()
            );
        }
    }

    #[test]
    fn schedulers_parse_by_name_and_path_with_their_arguments() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Run(r) => r.into_options(),
                other => panic!("{other:?}"),
            }
        };
        let o = parse(&["ktstr", "run", "--scheduler", "scx_cosmos@1.1.7"]);
        assert_eq!(
            o.scheduler,
            SchedulerArg::Published("scx_cosmos@1.1.7".parse().unwrap())
        );
        assert!(o.scheduler_args.is_empty());
        let o = parse(&["ktstr", "run", "--scheduler", "bpfland"]);
        assert_eq!(o.scheduler.name(), "bpfland");
        let o = parse(&[
            "ktstr",
            "run",
            "--scheduler",
            "./target/release/scx_mine",
            "--timeout",
            "30s",
            "--",
            "--slice-us",
            "5000",
            "it's",
        ]);
        assert_eq!(
            o.scheduler,
            SchedulerArg::Path("./target/release/scx_mine".into())
        );
        assert_eq!(o.scheduler_args, ["--slice-us", "5000", "it's"]);
        assert_eq!(o.timeout, Some(Duration::from_secs(30)));
        let o = parse(&["ktstr", "run", "--scheduler", "sched.bpf.o"]);
        assert_eq!(o.scheduler, SchedulerArg::Path("sched.bpf.o".into()));
        for bad in ["cosmos", "scx_Bad", "scx_cosmos@1.1"] {
            let err = Cli::try_parse_from(["ktstr", "run", "--scheduler", bad]).unwrap_err();
            assert!(
                err.to_string().contains("unknown scheduler"),
                "{bad}: {err}"
            );
        }
    }
}
