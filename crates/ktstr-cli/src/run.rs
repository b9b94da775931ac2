//! `run`: provision, boot a sched_ext guest (QEMU or the native KVM engine, see
//! `guest.rs`), attach a scheduler, run a workload, watch for the scheduler's error exit,
//! and capture when it comes (or at the timeout, at the end of the workload, or on
//! interrupt).
//!
//! # What is written
//! - A capture: always a **dual** report (`schema: "dual"`). Its `late` half is the
//!   capture above; its `early` half is the snapshot taken while the guest ran, when the
//!   oldest runnable task first waited half the scheduler's watchdog timeout (`dual.rs`),
//!   or absent with `early_skipped_reason` (e.g. `ok` with `--timeout`: nothing starved).
//!   One schema for every capture, so consumers read `.late` whatever ended the run.
//! - A late freeze where not every vCPU parked: the **degraded** report (an early snapshot,
//!   if any, is dropped: the dual report needs a late snapshot).
//! - A guest or engine that failed before any capture: a **single** placeholder with
//!   `guest_setup_failure` ([`RunOutcome::GuestSetupFailed`], exit 1; or
//!   [`RunOutcome::EngineFailed`], exit 3).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use dump_schema::{FailureDumpReport, FailureDumpReportAny, GuestSetupFailureContext};
use freeze::Engine;
use guest_lab::{
    DEFAULT_APPEND, GuestCommand, HookPoint, Lab, Progress, RunEnd, RunSpec, SchedulerChoice,
    ScxCrate, TestScheduler, TestSchedulerParams,
};

/// When `stall` and `error` start failing after they attached.
const FAILURE_AFTER_MS: u32 = 10_000;

/// The guest's command line: the lab's, plus `no_timer_check`, which skips the boot-time
/// check of the timer interrupt that a starved TCG vCPU can fail ("IO-APIC + timer doesn't
/// work" panics were seen on a loaded 2-core host).
fn guest_cmdline() -> String {
    format!("{DEFAULT_APPEND} no_timer_check")
}
use crate::guest::{BootSpec, NATIVE_PROBE_BUDGET, RunGuest, probe_native};
use crate::sched_output::{SchedulerOutput, await_process_exit};
use crate::session::{How, Watched, capture_late, second_stop, watch};
use crate::{Error, write_atomic};

/// The scheduler to attach in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerArg {
    /// One of the project's test schedulers (`ok`, `stall`, `error`).
    Test(TestScheduler),
    /// A published scheduler of the sched_ext project: `bpfland`, `p2dq` or
    /// `scx_NAME[@VERSION]`, built from crates.io once and cached (`scx_p2dq` links the sdt
    /// arena allocator: fills `sdt_allocations`).
    Published(ScxCrate),
    /// A path (it has a `/` or ends in `.bpf.o`): a `SEC(".struct_ops.link")` BPF object,
    /// or the user's own scheduler executable (what the file is decides; see
    /// `SchedulerChoice::from_path`).
    Path(PathBuf),
}

impl FromStr for SchedulerArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ok" => SchedulerArg::Test(TestScheduler::Ok),
            "stall" => SchedulerArg::Test(TestScheduler::Stall),
            "error" => SchedulerArg::Test(TestScheduler::Error),
            p if p.contains('/') || p.ends_with(".bpf.o") => SchedulerArg::Path(PathBuf::from(p)),
            other => SchedulerArg::Published(other.parse().map_err(|e| {
                format!(
                    "unknown scheduler {other:?}: expected ok, stall, error, bpfland, p2dq, \
                     scx_NAME[@VERSION] or a PATH with a `/` ({e})"
                )
            })?),
        })
    }
}

impl SchedulerArg {
    /// A short name for file names.
    pub fn name(&self) -> String {
        match self {
            SchedulerArg::Test(t) => t.name().to_string(),
            SchedulerArg::Published(k) => k.short_name().to_string(),
            SchedulerArg::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".bpf.o").to_string())
                .unwrap_or_else(|| "scheduler".into()),
        }
    }

    /// The default workload: `stall` needs its victim task to starve; the others get
    /// CPU-bound loops on every CPU.
    fn default_workload(&self, cpus: u32) -> String {
        match self {
            SchedulerArg::Test(TestScheduler::Stall) => {
                format!("ktstr_victim 600 & ktstr_spin {cpus} 600")
            }
            _ => format!("ktstr_spin {cpus} 600"),
        }
    }
}

/// Which VM engine runs the guest (the rule is in `guest.rs`'s docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// The native KVM engine when a probe boots the kernel to its banner on it within
    /// 10 s; otherwise QEMU (with KVM when QEMU's own probe boots the kernel, TCG
    /// otherwise).
    #[default]
    Auto,
    /// The native KVM engine, no probe. A host whose KVM cannot run the kernel ends the
    /// run with [`RunOutcome::EngineFailed`] and a placeholder report.
    Kvm,
    /// QEMU (accelerator probed: KVM when it boots the kernel, else TCG).
    Qemu,
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "kvm" => Ok(EngineChoice::Kvm),
            "qemu" => Ok(EngineChoice::Qemu),
            o => Err(format!("unknown engine {o:?}: expected auto, kvm or qemu")),
        }
    }
}

/// The number at the start of `s` (trimmed) and the unit after it; `example` says what
/// a valid `what` looks like.
fn number_and_unit<'a>(s: &'a str, what: &str, example: &str) -> Result<(u64, &'a str), String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n = n
        .parse()
        .map_err(|_| format!("invalid {what} {s:?}: expected e.g. {example}"))?;
    Ok((n, unit))
}

/// `90s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = number_and_unit(s, "duration", "90s, 2m, 500ms")?;
    let s = s.trim();
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unit must be ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_millis(ms))
}

/// `512M`, `1G`, `1024` (MiB) to MiB.
pub fn parse_size_mib(s: &str) -> Result<u64, String> {
    let (n, unit) = number_and_unit(s, "size", "512M or 2G")?;
    let s = s.trim();
    let mib = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" | "M" => n,
        "G" => n.saturating_mul(1024),
        _ => return Err(format!("invalid size {s:?}: unit must be M or G")),
    };
    if mib < 128 {
        return Err(format!("{s}: the guest needs at least 128M"));
    }
    Ok(mib)
}

/// Everything `run` needs.
#[derive(Clone)]
pub struct RunOptions {
    pub scheduler: SchedulerArg,
    /// Arguments for the scheduler (published schedulers and executables only).
    pub scheduler_args: Vec<String>,
    pub cpus: u32,
    pub memory_mib: u64,
    pub engine: EngineChoice,
    /// A kernel image to boot instead of the lab's (it must match the lab's modules'
    /// release for `qemu_fw_cfg`; the dump itself does not need them).
    pub kernel: Option<PathBuf>,
    /// The lab kernel to provision and boot (`6.12`, `7.3.4+deb13`; the lab's default,
    /// or `KTSTR_KERNEL_VERSION`, when `None`).
    pub kernel_version: Option<String>,
    pub workload: Option<String>,
    /// Capture after this long even without an error exit.
    pub timeout: Option<Duration>,
    /// Take the early snapshot this long after the watch is armed, whatever the waits.
    pub early_at: Option<Duration>,
    pub out_dir: PathBuf,
    pub vmcore_out: Option<PathBuf>,
    /// How the dump file is written (compact unless asked).
    pub json_style: crate::JsonStyle,
    /// Set from a signal handler: capture now.
    pub interrupt: Arc<AtomicBool>,
    pub progress: Arc<dyn Progress>,
}

impl RunOptions {
    pub fn new(scheduler: SchedulerArg) -> Self {
        RunOptions {
            scheduler,
            scheduler_args: Vec::new(),
            cpus: 2,
            memory_mib: 512,
            engine: EngineChoice::Auto,
            kernel: None,
            kernel_version: None,
            workload: None,
            timeout: None,
            early_at: None,
            out_dir: PathBuf::from("ktstr-out"),
            vmcore_out: None,
            json_style: crate::JsonStyle::Compact,
            interrupt: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(guest_lab::StderrProgress),
        }
    }
}

/// Why the capture happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The scheduler's error exit (`exit_kind`) triggered the freeze.
    ErrorExit { exit_kind: u32 },
    /// `--timeout` passed without an error exit.
    TimedOut,
    /// The scheduler exited without an error: unregistered by its user-space part (which
    /// exited or detached it), by itself or by the kernel (`SCX_EXIT_UNREG*`), before
    /// the run ended. A failure: the scheduler was meant to run until the run's end.
    SchedulerExited { exit_kind: u32 },
    /// The workload finished without an error exit.
    WorkloadDone,
    /// Interrupted (Ctrl-C): captured on demand.
    Interrupted,
    /// The guest failed before a capture was possible; the report is a placeholder.
    GuestSetupFailed { what: String },
    /// The engine could not run the guest to a capture (e.g. this host's KVM cannot
    /// emulate an instruction the kernel uses); the report is a placeholder with
    /// `guest_setup_failure` filled. An infrastructure error: exit code 3.
    EngineFailed { what: String },
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::ErrorExit { exit_kind } => {
                write!(f, "scheduler error exit {exit_kind}")?;
                match scx_walk::exit_kind::name(*exit_kind) {
                    Some(name) => write!(f, " ({name})"),
                    None => Ok(()),
                }
            }
            RunOutcome::SchedulerExited { exit_kind } => {
                write!(f, "the scheduler exited without an error: {exit_kind}")?;
                match scx_walk::exit_kind::name(*exit_kind) {
                    Some(name) => write!(f, " ({name})"),
                    None => Ok(()),
                }
            }
            RunOutcome::TimedOut => f.write_str("timeout reached without an error exit"),
            RunOutcome::WorkloadDone => f.write_str("workload finished without an error exit"),
            RunOutcome::Interrupted => f.write_str("interrupted: captured on demand"),
            RunOutcome::GuestSetupFailed { what } => write!(f, "guest setup failed: {what}"),
            RunOutcome::EngineFailed { what } => {
                write!(f, "the engine could not run the guest: {what}")
            }
        }
    }
}

/// The result of a run: the report as written, where, and why.
#[derive(Debug)]
pub struct RunResult {
    pub report: FailureDumpReportAny,
    pub json_path: PathBuf,
    pub outcome: RunOutcome,
    pub vmcore: Option<PathBuf>,
    /// Diagnostic lines (accelerator, timings, capture log) for `-v`.
    pub log: Vec<String>,
}

impl RunResult {
    /// True when a failure was captured (exit code 1). An engine failure is not one of
    /// the guest's: see [`RunResult::infrastructure_failure`].
    pub fn failure(&self) -> bool {
        !self.infrastructure_failure()
            && (matches!(
                self.outcome,
                RunOutcome::ErrorExit { .. }
                    | RunOutcome::SchedulerExited { .. }
                    | RunOutcome::GuestSetupFailed { .. }
            ) || crate::report_has_error_exit(&self.report))
    }

    /// True when the engine, not the guest, failed (exit code 3; a placeholder report
    /// was still written).
    pub fn infrastructure_failure(&self) -> bool {
        matches!(self.outcome, RunOutcome::EngineFailed { .. })
    }
}

fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// How long a placeholder waits for a scheduler process that failed to attach to report
/// its exit (it ends before the guest can say so).
const FAILED_PROCESS_EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long, after a capture at the scheduler's exit, the run waits for its process to
/// leave and report its status (a Rust scheduler notices the kernel's exit within a
/// second or two, slower under TCG).
const EXITED_PROCESS_EXIT_WAIT: Duration = Duration::from_secs(10);

/// A placeholder report for a guest that failed before anything could be captured, and
/// what the scheduler said (its status when it is a process of its own, `process`).
fn setup_failure_report(
    engine: &mut RunGuest,
    what: &str,
    process: bool,
) -> (FailureDumpReport, SchedulerOutput) {
    let log = engine.console_log();
    let log = if process && log.phase("scheduler-failed").is_some() {
        await_process_exit(engine, FAILED_PROCESS_EXIT_WAIT)
    } else {
        log
    };
    let sched = SchedulerOutput::from_console(&log);
    let exit_code = engine.exit_info().map_or(0, |x| x.code);
    let phases: Vec<String> = log
        .phases
        .iter()
        .map(|p| {
            let f: Vec<String> = p.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {}", p.name, f.join(" ")).trim_end().to_string()
        })
        .collect();
    let attach = if let Some(p) = log.phase("scheduler-attached") {
        format!("attached ops={}", p.field("ops").unwrap_or("?"))
    } else if let Some(p) = log.phase("scheduler-failed") {
        format!("failed reason={}", p.field("reason").unwrap_or("?"))
    } else if log.phase("scheduler-start").is_some() {
        "started, never attached".into()
    } else {
        "not reached".into()
    };
    let ctx = GuestSetupFailureContext {
        init_stage: if log.phase("init").is_some() {
            "init".into()
        } else {
            "kernel boot".into()
        },
        final_guest_phase: log.last_phase().map(|p| p.name.clone()).unwrap_or_default(),
        guest_exit_code: exit_code,
        scheduler_attach_outcome: attach,
        console_tail: tail(&engine.console_tail(), 8 << 10),
        init_log_tail: tail(&phases.join("\n"), 4 << 10),
        scheduler_log_tail: tail(&sched.tail_text(), 4 << 10),
    };
    let mut r = FailureDumpReport::placeholder(format!("guest setup failed: {what}"));
    r.guest_setup_failure = Some(ctx);
    (r, sched)
}

/// Provisions, boots, watches and captures; writes `<out_dir>/<name>.failure-dump.json`.
pub fn run(opts: &RunOptions) -> Result<RunResult, Error> {
    check_options(opts)?;
    let mut log = Vec::new();
    let progress = &opts.progress;
    let (spec, initrd, vmlinuz) = prepare(opts)?;
    // A scheduler that is its own process reports its exit status and last lines.
    let process = matches!(
        spec.scheduler,
        SchedulerChoice::Published { .. } | SchedulerChoice::Executable { .. }
    );
    let boot = BootSpec {
        kernel: &vmlinuz,
        initramfs: initrd.path(),
        cmdline: &guest_cmdline(),
        cpus: opts.cpus,
        memory_mib: opts.memory_mib,
    };
    let started = Instant::now();
    let mut engine = boot_engine(opts, &boot, &mut log)?;
    log.push(format!("engine: {}", engine.describe()));
    progress.step(&format!(
        "guest running ({}), waiting for the scheduler to attach",
        engine.short_name()
    ));
    let stem = format!("{}-{}", opts.scheduler.name(), crate::time::utc_stamp());
    let json_path = opts.out_dir.join(format!("{stem}.failure-dump.json"));
    let attach_budget = Duration::from_secs(u64::from(spec.attach_timeout_s) + 180);
    let watched = watch_with_fallback(&mut engine, opts, &boot, attach_budget, &mut log)?;
    let frozen = match watched {
        Watched::Frozen {
            freeze,
            outcome,
            caught,
            timeline,
            elapsed_ms,
            early,
            loaded,
        } => Frozen {
            freeze,
            outcome,
            caught,
            timeline: (timeline, elapsed_ms),
            early,
            loaded,
        },
        Watched::SetupFailed { what, engine_fault } => {
            let (report, sched) = setup_failure_report(&mut engine, &what, process);
            log.extend(sched.log_lines());
            let report = FailureDumpReportAny::Single(report);
            write_report(&json_path, &report, opts.json_style)?;
            let outcome = if engine_fault {
                RunOutcome::EngineFailed { what }
            } else {
                RunOutcome::GuestSetupFailed { what }
            };
            return Ok(RunResult {
                report,
                json_path,
                outcome,
                vmcore: None,
                log,
            });
        }
    };
    log.push(format!(
        "run: {:.1} s from launch to freeze",
        started.elapsed().as_secs_f64()
    ));
    progress.step(&format!("frozen: {}; capturing", frozen.outcome));
    let (outcome, report, vmcore) = capture(engine, frozen, opts, process, &mut log);
    let report = report?;
    write_report(&json_path, &report, opts.json_style)?;
    Ok(RunResult {
        report,
        json_path,
        outcome,
        vmcore: vmcore?,
        log,
    })
}

/// Usage errors found before anything is provisioned or booted.
fn check_options(opts: &RunOptions) -> Result<(), Error> {
    if let SchedulerArg::Path(p) = &opts.scheduler
        && !p.is_file()
    {
        return Err(Error::Usage(format!("{}: no such file", p.display())));
    }
    if matches!(opts.scheduler, SchedulerArg::Test(_)) && !opts.scheduler_args.is_empty() {
        return Err(Error::Usage(
            "the test schedulers take no arguments after `--`".into(),
        ));
    }
    if let Some(k) = &opts.kernel
        && !k.is_file()
    {
        return Err(Error::Usage(format!(
            "{}: no such kernel image",
            k.display()
        )));
    }
    if opts.cpus == 0 {
        return Err(Error::Usage("--cpus must be at least 1".into()));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| Error::Write {
        path: opts.out_dir.clone(),
        source,
    })?;
    std::fs::create_dir_all(&opts.out_dir).map_err(|source| Error::Write {
        path: opts.out_dir.clone(),
        source,
    })?;
    Ok(())
}

/// Provisions what the run boots: the run spec, its initramfs and the kernel image.
fn prepare(opts: &RunOptions) -> Result<(RunSpec, guest_lab::Initramfs, PathBuf), Error> {
    let progress = &opts.progress;
    let mut lab = Lab::open()?.with_progress(progress.clone());
    if let Some(v) = &opts.kernel_version {
        lab = lab.with_kernel_version(v);
    }
    lab.ensure_host_packages()?;
    let kernel = lab.kernel()?;
    let choice = match &opts.scheduler {
        SchedulerArg::Test(t) => SchedulerChoice::Test {
            which: *t,
            params: TestSchedulerParams {
                // The failure starts this long after the attach: a margin for the host's
                // watch to be armed on a slow (TCG, loaded) host; the default 3 s is not.
                after_ms: Some(FAILURE_AFTER_MS),
                ..Default::default()
            },
        },
        SchedulerArg::Published(k) => {
            let built = lab.scx_crate(k)?;
            // The version resolved once: the initramfs does not ask crates.io again.
            let krate = ScxCrate::new(&built.name, Some(&built.version)).map_err(Error::Usage)?;
            SchedulerChoice::Published {
                krate,
                args: opts.scheduler_args.clone(),
            }
        }
        SchedulerArg::Path(p) => SchedulerChoice::from_path(p, opts.scheduler_args.clone())
            .map_err(|e| Error::Usage(e.to_string()))?,
    };
    // Real schedulers (Rust user-space parts) take tens of seconds to attach under TCG.
    let real = matches!(
        choice,
        SchedulerChoice::Published { .. } | SchedulerChoice::Executable { .. }
    );
    let workload = opts
        .workload
        .clone()
        .unwrap_or_else(|| opts.scheduler.default_workload(opts.cpus));
    let spec = RunSpec::new()
        .scheduler(choice)
        .workload(workload)
        .attach_timeout_s(if real { 300 } else { 120 })
        .bpf_stats(true)
        .command(HookPoint::AfterAttach, GuestCommand::scheduler_log())
        .end(RunEnd::Hold);
    let initrd = lab.initramfs(&spec)?;
    let vmlinuz = opts
        .kernel
        .clone()
        .unwrap_or_else(|| kernel.vmlinuz.clone());
    Ok((spec, initrd, vmlinuz))
}

/// The guest frozen for the late capture.
struct Frozen {
    freeze: freeze::FreezeOutcome,
    outcome: RunOutcome,
    caught: Option<(How, guest_mem::Kva)>,
    timeline: (Vec<dump_schema::EventCounterSample>, u64),
    early: Box<crate::dual::EarlySnapshot>,
    loaded: Box<crate::session::Loaded>,
}

/// Watches the guest; when `--engine auto` chose the native engine and it could not run
/// the kernel to a capture after all, starts over once under QEMU (which always can).
fn watch_with_fallback(
    engine: &mut RunGuest,
    opts: &RunOptions,
    boot: &BootSpec<'_>,
    attach_budget: Duration,
    log: &mut Vec<String>,
) -> Result<Watched, Error> {
    let watched = watch(engine, opts, attach_budget, log)?;
    if let Watched::SetupFailed {
        what,
        engine_fault: true,
    } = &watched
        && opts.engine == EngineChoice::Auto
        && matches!(engine, RunGuest::Kvm(_))
    {
        let msg =
            format!("engine auto: the native KVM engine failed ({what}); falling back to QEMU");
        opts.progress.step(&msg);
        log.push(msg);
        *engine = RunGuest::boot_qemu(boot).map_err(Error::engine("starting QEMU"))?;
        log.push(format!("engine: {}", engine.describe()));
        return watch(engine, opts, attach_budget, log);
    }
    Ok(watched)
}

/// The late capture, then (for an exit caught at the write) the second stop for
/// `exit_info`; then what the scheduler said (after an exit of the scheduler, a process
/// scheduler gets a few seconds to report its status); the guest is torn down after.
fn capture(
    mut engine: RunGuest,
    f: Frozen,
    opts: &RunOptions,
    process: bool,
    log: &mut Vec<String>,
) -> (
    RunOutcome,
    Result<FailureDumpReportAny, Error>,
    Result<Option<PathBuf>, Error>,
) {
    let exit = match f.caught {
        Some((how, _)) => crate::ExitSource {
            source: how.source(),
            trigger_cpu: match how {
                How::Watchpoint { vcpu } => vcpu.map(|v| v as u32),
                How::Poll { .. } => None,
            },
        },
        None => crate::ExitSource::POLL,
    };
    let (mut report, vmcore) = capture_late(
        &engine,
        &f.freeze,
        f.timeline,
        (*f.early, &f.loaded),
        exit,
        opts,
        log,
    );
    if let (Some((how, exit_kind_at)), Ok(r)) = (f.caught, report.as_mut()) {
        second_stop(&mut engine, how, exit_kind_at, r, &f.loaded, log);
    }
    // Thaw before teardown: the guest is not needed any more, but a thaw that fails says
    // the engine broke during the capture, which belongs in the log.
    if engine.is_frozen()
        && let Err(e) = engine.thaw()
    {
        log.push(format!("thaw: {e}"));
    }
    let exited = matches!(
        f.outcome,
        RunOutcome::ErrorExit { .. } | RunOutcome::SchedulerExited { .. }
    );
    let console = if process && exited && !engine.is_frozen() {
        await_process_exit(&engine, EXITED_PROCESS_EXIT_WAIT)
    } else {
        engine.console_log()
    };
    log.extend(SchedulerOutput::from_console(&console).log_lines());
    drop(engine);
    (f.outcome, report, vmcore)
}

/// Starts the guest on the engine `--engine` asks for (see `guest.rs` for the rule).
fn boot_engine(
    opts: &RunOptions,
    boot: &BootSpec<'_>,
    log: &mut Vec<String>,
) -> Result<RunGuest, Error> {
    let progress = &opts.progress;
    let native = match opts.engine {
        EngineChoice::Kvm => true,
        EngineChoice::Qemu => false,
        EngineChoice::Auto => {
            progress.step("probing the native KVM engine (boots the kernel to its banner)");
            let t0 = Instant::now();
            match probe_native(boot.kernel, NATIVE_PROBE_BUDGET) {
                Ok(took) => {
                    log.push(format!(
                        "engine auto: the native KVM engine printed the kernel banner in {took:?}"
                    ));
                    true
                }
                Err(why) => {
                    log.push(format!(
                        "engine auto: native KVM engine not used ({:.1} s probe): {why}",
                        t0.elapsed().as_secs_f64()
                    ));
                    false
                }
            }
        }
    };
    if native {
        progress.step(&format!(
            "booting {} with {} vCPUs, {} MiB on the native KVM engine",
            boot.kernel.display(),
            boot.cpus,
            boot.memory_mib
        ));
        RunGuest::boot_native(boot)
            .map_err(|e| Error::Infrastructure(format!("--engine kvm: {e}; use --engine qemu")))
    } else {
        progress.step(&format!(
            "booting {} with {} vCPUs, {} MiB under QEMU (accelerator: probing KVM, else TCG)",
            boot.kernel.display(),
            boot.cpus,
            boot.memory_mib
        ));
        RunGuest::boot_qemu(boot).map_err(Error::engine("starting QEMU"))
    }
}

fn write_report(
    path: &Path,
    report: &FailureDumpReportAny,
    style: crate::JsonStyle,
) -> Result<(), Error> {
    write_atomic(path, |w| crate::write_report_json(w, report, style))
}
