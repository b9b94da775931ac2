//! `run`: provision, boot a sched_ext guest under QEMU, attach a scheduler, run a
//! workload, watch for the scheduler's error exit, and capture when it comes (or at the
//! timeout, at the end of the workload, or on interrupt).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dump_schema::{FailureDumpReport, FailureDumpReportAny, GuestSetupFailureContext};
use freeze::lab::{
    ConsoleLog, DEFAULT_APPEND, GuestCommand, HookPoint, Lab, Progress, RunEnd, RunSpec,
    SchedulerChoice, TestScheduler, TestSchedulerParams,
};

/// When `stall` and `error` start failing after they attached.
const FAILURE_AFTER_MS: u32 = 10_000;

/// The guest's command line: the lab's, plus `no_timer_check`, which skips the boot-time
/// check of the timer interrupt that a starved TCG vCPU can fail ("IO-APIC + timer doesn't
/// work" panics were seen on a loaded 2-core host).
fn guest_cmdline() -> String {
    format!("{DEFAULT_APPEND} no_timer_check")
}
use dump_schema::EventCounterSample;
use freeze::qemu::{AccelChoice, QemuConfig, QemuEngine};
use freeze::watch::{
    ExitInfoOffsets, ExitKindTrigger, WatchOptions, WatchOutcome, watch_exit_kind,
};
use freeze::{Engine, FreezeOutcome};
use guest_mem::{CpuRegs, KernelOptions, PhysMem};
use scx_walk::{CaptureOptions, EventSampler, Kernel, TriggerLocation};

use crate::frozen::{capture_frozen, export_vmcore, guest_btf, guest_kernel};
use crate::{Error, write_atomic};

/// The scheduler to attach in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerArg {
    /// One of the project's test schedulers (`ok`, `stall`, `error`).
    Test(TestScheduler),
    /// `scx_bpfland` from crates.io.
    Bpfland,
    /// A caller's `SEC(".struct_ops.link")` BPF object.
    Object(PathBuf),
}

impl FromStr for SchedulerArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ok" => SchedulerArg::Test(TestScheduler::Ok),
            "stall" => SchedulerArg::Test(TestScheduler::Stall),
            "error" => SchedulerArg::Test(TestScheduler::Error),
            "bpfland" => SchedulerArg::Bpfland,
            p if p.ends_with(".bpf.o") => SchedulerArg::Object(PathBuf::from(p)),
            other => {
                return Err(format!(
                    "unknown scheduler {other:?}: expected ok, stall, error, bpfland or a PATH.bpf.o"
                ));
            }
        })
    }
}

impl SchedulerArg {
    /// A short name for file names.
    pub fn name(&self) -> String {
        match self {
            SchedulerArg::Test(t) => t.name().to_string(),
            SchedulerArg::Bpfland => "bpfland".into(),
            SchedulerArg::Object(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".bpf.o").to_string())
                .unwrap_or_else(|| "object".into()),
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

/// Which VM engine runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// QEMU, with KVM when a probe shows KVM boots the kernel, TCG otherwise.
    #[default]
    Auto,
    /// The native KVM engine (only where KVM can boot Linux).
    Kvm,
    /// QEMU (accelerator probed as for `Auto`).
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

/// `90s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 90s, 2m, 500ms"))?;
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
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 512M or 2G"))?;
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
    pub cpus: u32,
    pub memory_mib: u64,
    pub engine: EngineChoice,
    /// A kernel image to boot instead of the lab's (it must match the lab's modules'
    /// release for `qemu_fw_cfg`; the dump itself does not need them).
    pub kernel: Option<PathBuf>,
    pub workload: Option<String>,
    /// Capture after this long even without an error exit.
    pub timeout: Option<Duration>,
    pub out_dir: PathBuf,
    pub vmcore_out: Option<PathBuf>,
    /// Set from a signal handler: capture now.
    pub interrupt: Arc<AtomicBool>,
    pub progress: Arc<dyn Progress>,
}

impl RunOptions {
    pub fn new(scheduler: SchedulerArg) -> Self {
        RunOptions {
            scheduler,
            cpus: 2,
            memory_mib: 512,
            engine: EngineChoice::Auto,
            kernel: None,
            workload: None,
            timeout: None,
            out_dir: PathBuf::from("ktstr-out"),
            vmcore_out: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(freeze::lab::StderrProgress),
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
    /// The workload finished without an error exit.
    WorkloadDone,
    /// Interrupted (Ctrl-C): captured on demand.
    Interrupted,
    /// The guest failed before a capture was possible; the report is a placeholder.
    GuestSetupFailed { what: String },
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::ErrorExit { exit_kind } => {
                let name = match exit_kind {
                    1024 => " (SCX_EXIT_ERROR)",
                    1025 => " (SCX_EXIT_ERROR_BPF)",
                    1026 => " (SCX_EXIT_ERROR_STALL)",
                    _ => "",
                };
                write!(f, "scheduler error exit {exit_kind}{name}")
            }
            RunOutcome::TimedOut => f.write_str("timeout reached without an error exit"),
            RunOutcome::WorkloadDone => f.write_str("workload finished without an error exit"),
            RunOutcome::Interrupted => f.write_str("interrupted: captured on demand"),
            RunOutcome::GuestSetupFailed { what } => write!(f, "guest setup failed: {what}"),
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
    /// True when a failure was captured (exit code 1).
    pub fn failure(&self) -> bool {
        matches!(
            self.outcome,
            RunOutcome::ErrorExit { .. } | RunOutcome::GuestSetupFailed { .. }
        ) || crate::report_has_error_exit(&self.report)
    }
}

/// Phases as the guest printed them so far.
fn console_log(engine: &QemuEngine) -> ConsoleLog {
    let (lines, _) = engine.console().lines_since(Default::default());
    ConsoleLog::parse(&lines.join("\n"))
}

fn tail(s: &str, max: usize) -> String {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

/// A placeholder report for a guest that failed before anything could be captured.
fn setup_failure_report(engine: &mut QemuEngine, what: &str) -> FailureDumpReport {
    let log = console_log(engine);
    let exit_code = engine
        .try_exit_status()
        .ok()
        .flatten()
        .and_then(|s| s.code())
        .unwrap_or(0);
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
        scheduler_log_tail: tail(&log.output("sched-log").unwrap_or_default(), 4 << 10),
    };
    let mut r = FailureDumpReport::placeholder(format!("guest setup failed: {what}"));
    r.guest_setup_failure = Some(ctx);
    r
}

/// Provisions, boots, watches and captures; writes `<out_dir>/<name>.failure-dump.json`.
pub fn run(opts: &RunOptions) -> Result<RunResult, Error> {
    if let SchedulerArg::Object(p) = &opts.scheduler
        && !p.is_file()
    {
        return Err(Error::Usage(format!("{}: no such BPF object", p.display())));
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
    let mut log = Vec::new();
    let progress = &opts.progress;
    let lab = Lab::open()?.with_progress(progress.clone());
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
        SchedulerArg::Bpfland => {
            lab.bpfland()?;
            SchedulerChoice::bpfland()
        }
        SchedulerArg::Object(p) => SchedulerChoice::Object { path: p.clone() },
    };
    let workload = opts
        .workload
        .clone()
        .unwrap_or_else(|| opts.scheduler.default_workload(opts.cpus));
    let spec = RunSpec::new()
        .scheduler(choice)
        .workload(workload)
        .attach_timeout_s(if opts.scheduler == SchedulerArg::Bpfland {
            300
        } else {
            120
        })
        .bpf_stats(true)
        .command(HookPoint::AfterAttach, GuestCommand::scheduler_log())
        .end(RunEnd::Hold);
    let initrd = lab.initramfs(&spec)?;
    let vmlinuz = opts
        .kernel
        .clone()
        .unwrap_or_else(|| kernel.vmlinuz.clone());
    if opts.engine == EngineChoice::Kvm {
        // The native engine needs a KVM that runs Linux; probe it the same way QEMU's
        // accelerator choice does before promising anything.
        let why = match freeze::qemu::accel::probe_kvm(
            Path::new("qemu-system-x86_64"),
            &vmlinuz,
            freeze::qemu::accel::PROBE_BUDGET,
        ) {
            Err(why) => why,
            Ok(_) => {
                "booting Linux on the native KVM engine is not wired into `ktstr run` yet".into()
            }
        };
        return Err(Error::Infrastructure(format!(
            "--engine kvm: {why}; use --engine qemu (or auto)"
        )));
    }
    let mut cfg = QemuConfig::new(
        &vmlinuz,
        Some(initrd.path().to_path_buf()),
        &guest_cmdline(),
    );
    cfg.vcpus = opts.cpus;
    cfg.memory_mib = opts.memory_mib;
    cfg.accel = AccelChoice::Auto;
    progress.step(&format!(
        "booting {} with {} vCPUs, {} MiB (accelerator: probing KVM, else TCG)",
        vmlinuz.display(),
        opts.cpus,
        opts.memory_mib
    ));
    let started = Instant::now();
    let mut engine = QemuEngine::launch(&cfg).map_err(Error::engine("starting QEMU"))?;
    log.push(format!(
        "engine: qemu, accelerator {} ({})",
        engine.accel().accel,
        engine.accel().reason
    ));
    progress.step(&format!(
        "QEMU running ({}), waiting for the scheduler to attach",
        engine.accel().accel
    ));

    let stem = format!("{}-{}", opts.scheduler.name(), crate::time::utc_stamp());
    let json_path = opts.out_dir.join(format!("{stem}.failure-dump.json"));
    let attach_budget = Duration::from_secs(u64::from(spec.attach_timeout_s) + 180);
    let watched = watch(&mut engine, opts, attach_budget, &mut log)?;
    let (freeze, outcome, timeline) = match watched {
        Watched::Frozen {
            freeze,
            outcome,
            timeline,
            elapsed_ms,
        } => (freeze, outcome, (timeline, elapsed_ms)),
        Watched::SetupFailed(what) => {
            let report = FailureDumpReportAny::Single(setup_failure_report(&mut engine, &what));
            write_report(&json_path, &report)?;
            return Ok(RunResult {
                report,
                json_path,
                outcome: RunOutcome::GuestSetupFailed { what },
                vmcore: None,
                log,
            });
        }
    };
    log.push(format!(
        "run: {:.1} s from launch to freeze",
        started.elapsed().as_secs_f64()
    ));
    progress.step(&format!("frozen: {outcome}; capturing"));
    let (report, vmcore) = capture_after_freeze(&engine, &freeze, timeline, opts, &mut log);
    // Thaw before teardown: the guest is not needed any more, but a thaw that fails says
    // the engine broke during the capture, which belongs in the log.
    if let Err(e) = engine.thaw() {
        log.push(format!("thaw: {e}"));
    }
    drop(engine);
    let report = report?;
    write_report(&json_path, &report)?;
    Ok(RunResult {
        report,
        json_path,
        outcome,
        vmcore: vmcore?,
        log,
    })
}

fn write_report(path: &Path, report: &FailureDumpReportAny) -> Result<(), Error> {
    let json = report.to_json_pretty()?;
    write_atomic(path, |w| {
        w.write_all(json.as_bytes())?;
        w.write_all(b"\n")
    })
}

enum Watched {
    Frozen {
        freeze: FreezeOutcome,
        outcome: RunOutcome,
        timeline: Vec<EventCounterSample>,
        elapsed_ms: u64,
    },
    SetupFailed(String),
}

/// Why the watcher thread stopped the watch.
enum StopReason {
    Outcome(RunOutcome),
    SetupFailed(String),
}

/// Watches the live guest from before the scheduler attaches until its error exit
/// (frozen by the watch itself, within one continuous poll so that a fast
/// error → disable → free sequence cannot slip between polls), or until a side thread
/// stops the watch: interrupt, `--timeout`, end of the workload (frozen here), or a guest
/// that fails first (not frozen: nothing to capture).
fn watch(
    engine: &mut QemuEngine,
    opts: &RunOptions,
    attach_budget: Duration,
    log: &mut Vec<String>,
) -> Result<Watched, Error> {
    let started = Instant::now();
    // Symbols and BTF exist once the guest's userspace runs: set the watch up then, as
    // early as possible, so it is armed before the scheduler can attach and fail (a
    // debug build on a loaded TCG host takes seconds to decode kallsyms and BTF).
    loop {
        let cl = console_log(engine);
        // The guest's /init prints its first phase once the kernel is fully up.
        if !cl.phases.is_empty() {
            break;
        }
        if let Ok(Some(st)) = engine.try_exit_status() {
            return Ok(Watched::SetupFailed(format!(
                "the guest exited during boot ({st})"
            )));
        }
        if started.elapsed() > attach_budget {
            return Ok(Watched::SetupFailed(format!(
                "the guest did not reach its scheduler start within {} s",
                attach_budget.as_secs()
            )));
        }
        if opts.interrupt.load(Ordering::Relaxed) {
            return Err(Error::Interrupted("before the guest started its scheduler"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    let live = guest_kernel(phys, KernelOptions::default())?;
    // The guest runs: cached translations could go stale.
    live.set_translation_cache(false);
    let btf = guest_btf(&live)?;
    let lk = Kernel {
        mem: &live,
        syms: &live,
        types: &btf,
    };
    let trig = TriggerLocation::resolve(&lk).map_err(|e| Error::Kernel {
        what: "locating scx_root.exit_kind".into(),
        detail: e.to_string(),
    })?;
    let trigger = ExitKindTrigger {
        root_ptr: trig.scx_root,
        exit_kind_offset: trig.exit_kind_offset,
        threshold: scx_walk::sched::SCX_EXIT_ERROR,
        exit_info: trig
            .exit_info
            .map(|(exit_info, kind)| ExitInfoOffsets { exit_info, kind }),
    };
    log.push(format!(
        "watch armed {:.1} s after launch",
        started.elapsed().as_secs_f64()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let reason: std::sync::Mutex<Option<StopReason>> = std::sync::Mutex::new(None);
    let console = engine.console().clone();
    let exited = engine.exited_flag();
    let freeze_timeout = Duration::from_secs(10);
    let wopts = WatchOptions {
        freeze_timeout,
        stop: Some(stop.clone()),
        ..Default::default()
    };
    let attached_log = std::sync::Mutex::new(None::<(String, Instant)>);
    let ram = engine.guest_ram();
    let btf_ref = &btf;
    let (reason_ref, attached_ref, stop_ref) = (&reason, &attached_log, &stop);
    let result = std::thread::scope(|s| {
        let watcher = s.spawn(move || {
            let mut attached: Option<Instant> = None;
            // The event-counter timeline: sampled from this thread with its own kernel
            // view (a `guest_mem::Kernel` is not shared between threads), built once the
            // scheduler is attached.
            let mut sampler: Option<Result<(guest_mem::Kernel, EventSampler), String>> = None;
            let mut timeline: Vec<EventCounterSample> = Vec::new();
            let mut last_sample: Option<Instant> = None;
            let set = |r: StopReason| {
                *reason_ref.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                stop_ref.store(true, Ordering::Relaxed);
            };
            while !stop_ref.load(Ordering::Relaxed) {
                let (lines, _) = console.lines_since(Default::default());
                let cl = ConsoleLog::parse(&lines.join("\n"));
                if attached.is_none()
                    && let Some(p) = cl.phase("scheduler-attached")
                {
                    attached = Some(Instant::now());
                    let msg = format!(
                        "scheduler attached (ops={}) {:.1} s after launch",
                        p.field("ops").unwrap_or("?"),
                        started.elapsed().as_secs_f64()
                    );
                    opts.progress
                        .step(&format!("{msg}; watching for an error exit"));
                    *attached_ref.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((msg, Instant::now()));
                }
                if let Some(a) = attached
                    && last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY)
                {
                    last_sample = Some(Instant::now());
                    let st = sampler.get_or_insert_with(|| event_sampler(&ram, btf_ref));
                    if let Ok((k, es)) = st {
                        let kk = Kernel {
                            mem: &*k,
                            syms: &*k,
                            types: btf_ref,
                        };
                        if let Ok(Some(sample)) = es.sample(&kk, a.elapsed().as_millis() as u64) {
                            if timeline.len() == MAX_SAMPLES {
                                timeline.remove(0);
                            }
                            timeline.push(sample);
                        }
                    }
                }
                if opts.interrupt.load(Ordering::Relaxed) {
                    set(match attached {
                        Some(_) => StopReason::Outcome(RunOutcome::Interrupted),
                        None => StopReason::SetupFailed(
                            "interrupted before the scheduler attached".into(),
                        ),
                    });
                } else if let Some(p) = cl.phase("scheduler-failed") {
                    set(StopReason::SetupFailed(format!(
                        "the scheduler did not attach ({})",
                        p.field("reason").unwrap_or("no reason given")
                    )));
                } else if exited.load(Ordering::Relaxed) {
                    set(StopReason::SetupFailed(
                        "the guest exited before a capture".into(),
                    ));
                } else if attached.is_none() && started.elapsed() > attach_budget {
                    set(StopReason::SetupFailed(format!(
                        "no scheduler attached within {} s",
                        attach_budget.as_secs()
                    )));
                } else if let (Some(t), Some(a)) = (opts.timeout, attached)
                    && a.elapsed() >= t
                {
                    set(StopReason::Outcome(RunOutcome::TimedOut));
                } else if cl.phase("workload-done").is_some() {
                    set(StopReason::Outcome(RunOutcome::WorkloadDone));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (timeline, sampler.and_then(|s| s.err()))
        });
        let r = watch_exit_kind(engine, trigger, |kva| live.translate(kva), &wopts);
        // Ends the watcher thread when the watch ended by itself.
        stop.store(true, Ordering::Relaxed);
        let (timeline, sampler_err) = watcher.join().unwrap_or_default();
        (r, timeline, sampler_err)
    });
    let (result, timeline, sampler_err) = result;
    if let Some(e) = sampler_err {
        log.push(format!("event sampler unavailable: {e}"));
    }
    log.push(format!(
        "event counter samples while running: {}",
        timeline.len()
    ));
    let attached_at = attached_log
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .map(|(l, at)| {
            log.push(l);
            at
        });
    // The freeze-time event sample's time, on the same clock as the running samples.
    let elapsed_ms = attached_at.map_or(0, |at| at.elapsed().as_millis() as u64);
    // The kernel's own sched_ext messages, for -v.
    let cl = console_log(engine);
    log.extend(
        cl.other
            .iter()
            .filter(|l| l.contains("sched_ext"))
            .take(20)
            .map(|l| format!("guest: {}", l.trim())),
    );
    let outcome = match result {
        Ok(WatchOutcome::Triggered(t)) => {
            log.push(format!(
                "trigger: exit_kind {} (late={}, root_cleared={}), flip to frozen {:?}, {} polls at {:.0} Hz, realtime={}",
                t.exit_kind,
                t.late,
                t.root_cleared,
                t.flip_to_frozen,
                t.stats.polls,
                t.stats.rate_hz(),
                t.realtime
            ));
            return Ok(Watched::Frozen {
                freeze: t.freeze,
                outcome: RunOutcome::ErrorExit {
                    exit_kind: t.exit_kind,
                },
                timeline,
                elapsed_ms,
            });
        }
        Ok(WatchOutcome::Stopped(st) | WatchOutcome::TimedOut(st)) => {
            log.push(format!(
                "watch stopped: {} polls, {} read errors, longest gap {:?}",
                st.polls, st.read_errors, st.max_gap
            ));
            reason.into_inner().unwrap_or_else(|e| e.into_inner())
        }
        Err(e) => {
            if engine.exited_flag().load(Ordering::Relaxed) {
                Some(StopReason::SetupFailed(format!(
                    "the guest exited before a capture ({e})"
                )))
            } else {
                return Err(Error::Infrastructure(format!("watching the guest: {e}")));
            }
        }
    };
    match outcome {
        Some(StopReason::Outcome(outcome)) => {
            let freeze = engine
                .freeze(freeze_timeout)
                .map_err(Error::engine("freeze"))?;
            Ok(Watched::Frozen {
                freeze,
                outcome,
                timeline,
                elapsed_ms,
            })
        }
        Some(StopReason::SetupFailed(what)) => Ok(Watched::SetupFailed(what)),
        None => Err(Error::Infrastructure(
            "the watch stopped without a reason".into(),
        )),
    }
}

/// How often the event counters are sampled while the guest runs.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most samples kept (the oldest are dropped): a bounded timeline.
const MAX_SAMPLES: usize = 600;

/// A second live kernel view and the event sampler over it, for the watcher thread.
fn event_sampler(
    ram: &freeze::GuestRam,
    btf: &btf_walk::Btf,
) -> Result<(guest_mem::Kernel, EventSampler), String> {
    let phys = PhysMem::from_guest_memory(ram).map_err(|e| e.to_string())?;
    let k = guest_kernel(phys, KernelOptions::default()).map_err(|e| e.to_string())?;
    k.set_translation_cache(false);
    let es = EventSampler::new(&Kernel {
        mem: &k,
        syms: &k,
        types: btf,
    })
    .map_err(|e| e.to_string())?;
    Ok((k, es))
}

/// A kernel view of the frozen guest, with the vCPUs' registers.
fn frozen_kernel(
    engine: &QemuEngine,
    vcpus: &[Option<CpuRegs>],
) -> Result<guest_mem::Kernel, Error> {
    let phys = PhysMem::from_guest_memory(&engine.guest_ram()).map_err(|e| Error::Kernel {
        what: "mapping guest RAM".into(),
        detail: e.to_string(),
    })?;
    guest_kernel(
        phys,
        KernelOptions {
            cpus: vcpus.iter().flatten().copied().collect(),
            ..Default::default()
        },
    )
}

type Captured = (
    Result<FailureDumpReportAny, Error>,
    Result<Option<PathBuf>, Error>,
);

/// Walks the frozen guest (or writes a degraded report when not every vCPU parked) and
/// exports the vmcore when asked.
fn capture_after_freeze(
    engine: &QemuEngine,
    freeze: &FreezeOutcome,
    (timeline, elapsed_ms): (Vec<EventCounterSample>, u64),
    opts: &RunOptions,
    log: &mut Vec<String>,
) -> Captured {
    if !freeze.all_parked() {
        let d = freeze::kvm::degraded_report(freeze);
        return (Ok(FailureDumpReportAny::Degraded(d)), Ok(None));
    }
    let k = match frozen_kernel(engine, &freeze.vcpus) {
        Ok(k) => k,
        Err(e) => return (Err(e), Ok(None)),
    };
    let btf = match guest_btf(&k) {
        Ok(b) => b,
        Err(e) => return (Err(e), Ok(None)),
    };
    let copts = CaptureOptions {
        deadline: Some(Duration::from_secs(60)),
        timeline,
        elapsed_ms,
        ..Default::default()
    };
    let out = capture_frozen(&k, &btf, freeze.vcpus.clone(), &copts);
    for p in &out.phases {
        log.push(format!(
            "capture phase {:<16} {:>8.2} ms",
            p.name,
            p.elapsed.as_secs_f64() * 1e3
        ));
    }
    log.extend(out.log.iter().map(|l| format!("capture: {l}")));
    let vmcore = match &opts.vmcore_out {
        Some(p) => {
            let cpus: Vec<CpuRegs> = freeze.vcpus.iter().flatten().copied().collect();
            export_vmcore(&k, &cpus, p).map(|n| {
                log.push(format!("vmcore: {} bytes to {}", n, p.display()));
                Some(p.clone())
            })
        }
        None => Ok(None),
    };
    (Ok(FailureDumpReportAny::Single(out.report)), vmcore)
}
