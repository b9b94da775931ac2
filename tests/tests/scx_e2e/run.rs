//! One run of a failing test scheduler: boot, watch for the error exit while scanning
//! runnable ages (dual capture), capture, thaw, and the kernel's own dump.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dump_schema::FailureDumpReport;
use e2e_tests::guest::{GuestLab, KernelLine, view};
use freeze::Engine;
use guest_lab::{
    ConsoleLog, GuestCommand, HookPoint, RunSpec, SchedulerChoice, TestScheduler,
    TestSchedulerParams,
};
use scx_walk::{CaptureOptions, CaptureOutput, DualTracker, RunnableScanner};

pub struct ErrorRun {
    pub log: ConsoleLog,
    pub late: CaptureOutput,
    /// Task address → pid in the frozen guest of the late capture.
    pub pid_of: BTreeMap<u64, i32>,
    pub exit_kind: u32,
    pub since_view: Duration,
    pub dual: dump_schema::DualFailureDumpReport,
    /// Task address → pid at the early snapshot, when one was taken.
    pub early_pid_of: Option<BTreeMap<u64, i32>>,
    /// The late capture's frozen guest captured again past its deadline.
    pub truncated: FailureDumpReport,
}

impl ErrorRun {
    /// What every error run asserts of its late dump: the scheduler was walked (under
    /// `ops`, with `exit_kind`), and the dump agrees with the guest's own view (maps,
    /// programs, `.bss`, tasks, CPU times, sysfs) and with the kernel's own dump; the
    /// event timeline is monotone. Returns the summary line of what was checked.
    pub fn assert_agrees_with_guest_and_kernel(&self, ops: &str, exit_kind: u32) -> String {
        let r = &self.late.report;
        assert_eq!(self.exit_kind, exit_kind, "the exit kind that triggered");
        assert_eq!(r.scx_sched_state.as_ref().unwrap().exit_kind, exit_kind);
        assert_eq!(r.scx_walker_unavailable, None);
        let maps = view::assert_maps_agree(&self.log, r);
        let progs = view::assert_progs_agree(&self.log, r);
        let bss = view::assert_bss_agrees(&self.log, r, &view::test_sched_bss);
        let tasks = view::assert_tasks_agree(&self.log, r, &[]);
        view::assert_cputime_agrees(&self.log, r, self.since_view);
        view::assert_sysfs_agrees(&self.log, r, ops);
        let dumped = view::assert_scx_dump_agrees(&self.log, r, &self.pid_of);
        view::assert_timeline_monotone(r);
        format!(
            "checked {maps} maps, {progs} progs, {bss} .bss members, {tasks} tasks, {dumped} kernel-dump facts"
        )
    }
}

/// The file the guest creates once it has printed its view (gates the stall's victim).
pub const VIEW_DONE: &str = "/tmp/ktstr-view-done";

/// Boots with a failing scheduler, waits for the guest's view, then watches for the
/// error exit; meanwhile scans runnable ages and takes the early snapshot of a dual
/// capture when the oldest passes half the watchdog timeout. After the late capture the
/// guest is thawed so the kernel prints its own dump.
pub fn error_run(which: TestScheduler, workload: &str, after_ms: u32) -> Option<ErrorRun> {
    error_run_on(KernelLine::Current, which, workload, after_ms)
}

/// [`error_run`] on the kernel of `line`.
pub fn error_run_on(
    line: KernelLine,
    which: TestScheduler,
    workload: &str,
    after_ms: u32,
) -> Option<ErrorRun> {
    let lab = GuestLab::open_line(line)?;
    let params = TestSchedulerParams {
        after_ms: Some(after_ms),
        ..Default::default()
    };
    let spec = view::with_guest_view(
        RunSpec::new()
            .scheduler(SchedulerChoice::Test { which, params })
            .workload(workload)
            .settle_ms(1000),
    )
    .command(
        HookPoint::WorkloadRunning,
        GuestCommand::new("view-done", format!("touch {VIEW_DONE}")),
    );
    let mut guest = lab.boot(&spec);
    // Symbols and BTF are ready well before the failure: the watch must not miss it.
    guest.wait_console("KTSTR-PHASE: scheduler-attached", Duration::from_secs(240));

    let live = guest.live_kernel();
    let lk = live.view();
    let trig = live.trigger_location();
    let trigger = live.error_exit_trigger();
    let mut tracker = DualTracker::new();
    let scanner = RunnableScanner::new(&lk)
        .inspect_err(|e| tracker.prerequisites_unavailable(e))
        .ok();
    // Event counters sampled while the guest runs (about once a second), on kernels
    // that have them (not 6.12).
    let has_counters = lk
        .types
        .offset_of("scx_event_stats", "SCX_EV_SELECT_CPU_FALLBACK")
        .is_some();
    let sampler = has_counters.then(|| scx_walk::EventSampler::new(&lk).expect("event sampler"));
    let run_start = Instant::now();
    let mut timeline = Vec::new();
    let mut last_sample: Option<Instant> = None;
    let mut early_pid_of = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last_scan = String::new();
    let mut view_at: Option<Instant> = None;
    let triggered = loop {
        if view_at.is_none() && guest.has_line(view::VIEW_END) {
            view_at = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            panic!(
                "no error exit within 300 s; exit_kind now {:?}; last scan {last_scan}\n--- console tail ---\n{}",
                trig.read_exit_kind(&lk),
                guest.console_tail()
            );
        }
        // Scan runnable ages every 50 ms between polls of the trigger.
        if let Some(t) = guest.watch_error_exit(&live, trigger, Duration::from_millis(50)) {
            break t;
        }
        if last_sample.is_none_or(|l| l.elapsed() >= Duration::from_secs(1)) {
            last_sample = Some(Instant::now());
            // A torn read of a running guest is retried at the next second.
            if let Some(Ok(Some(s))) = sampler
                .as_ref()
                .map(|sm| sm.sample(&lk, run_start.elapsed().as_millis() as u64))
            {
                timeline.push(s);
            }
        }
        if let Some(sc) = &scanner {
            let scan = sc.scan(&lk);
            last_scan = format!("{scan:?}");
            if let Ok(scan) = scan
                && tracker.observe(&scan)
            {
                let f = guest.freeze_now();
                let fk = guest.frozen_kernel(&f);
                let early = fk.capture(&CaptureOptions::default());
                let pids = fk.pids_of_report_tasks(&early.report);
                guest.thaw_now();
                eprintln!(
                    "early snapshot: oldest runnable pid {:?} age {}j threshold {}j",
                    scan.oldest.map(|o| o.pid),
                    scan.max_age_jiffies(),
                    scan.threshold_jiffies
                );
                tracker.set_early(early.report, &scan);
                early_pid_of = Some(pids);
            }
        }
    };
    // The guest's view must be complete before the freeze (the console stops with it).
    let view_at = view_at.or_else(|| guest.has_line(view::VIEW_END).then(Instant::now));
    let view_at = view_at.unwrap_or_else(|| {
        panic!(
            "the failure came before the guest printed its view; raise after_ms\n--- console tail ---\n{}",
            guest.console_tail()
        )
    });
    eprintln!(
        "trigger: exit_kind {} flip→frozen {:?} ({} polls, {:.0} Hz)",
        triggered.fire.value,
        triggered.flip_to_frozen,
        triggered.stats.polls,
        triggered.stats.rate_hz()
    );
    let late_opts = CaptureOptions {
        timeline: timeline.clone(),
        elapsed_ms: run_start.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let fk = guest.frozen_kernel(&triggered.freeze);
    let late = fk.capture(&late_opts);
    let pid_of = fk.pids_of_report_tasks(&late.report);
    let since_view = view_at.elapsed();
    // The same frozen guest captured with a deadline that has already passed: the heavy
    // phases stop and the report says where.
    let truncated = fk
        .capture(&CaptureOptions {
            deadline: Some(Duration::ZERO),
            ..Default::default()
        })
        .report;
    drop(fk);
    // For the whole-process benchmark (crates/scx-walk/examples/vmcore_dump.rs): keep a
    // vmcore of this frozen guest when asked.
    if let Ok(dir) = std::env::var("SCX_E2E_VMCORE_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{}.vmcore", which.name()));
        guest.dump_vmcore(&path).expect("dump-guest-memory");
        eprintln!("vmcore written to {}", path.display());
    }
    guest.thaw_now();
    guest.wait_console("KTSTR-END scx-dump", Duration::from_secs(60));
    let log = guest.console_log();
    let dual = tracker.finish(late.report.clone());
    let json = serde_json::to_string(&dual).unwrap();
    dump_schema::validate::validate_report_json(&json).expect("the dual dump validates");
    Some(ErrorRun {
        log,
        late,
        pid_of,
        exit_kind: triggered.fire.value,
        since_view,
        dual,
        early_pid_of,
        truncated,
    })
}
