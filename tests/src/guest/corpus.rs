//! Real schedulers of the sched_ext project, end to end: one run under the mixed
//! workload, captured at a timeout while the workload still runs, and every check of the
//! dump against the guest's own view taken just before.
//!
//! [`spec`] is the run (scheduler, [`MixedWorkload`], [`view::with_real_scheduler_view`]);
//! [`run`] boots it, waits for the view, lets the scheduler run [`AFTER_VIEW`] more, freezes,
//! captures (the schema check is in [`LoadedKernel::capture`]), reads what the wire format
//! has no field for (map ids and key sizes at the dump's `map_kva`), keeps a vmcore when
//! `SCX_E2E_VMCORE_DIR` is set, and thaws; [`RealRun::assert_agrees`] is every comparison,
//! and [`RealRun::metrics`] the figures the capture-speed work starts from.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use freeze::qemu::{LineMark, QemuConfig};
use guest_lab::{ConsoleLog, GuestCommand, HookPoint, MixedWorkload, RunSpec, SchedulerChoice};
use scx_walk::CaptureOutput;

use super::view::{self, BssRule, MapInMemory};
use super::{Guest, GuestLab, LoadedKernel};

/// How long the mixed workload runs: longer than boot, attach (tens of seconds for a
/// Rust scheduler under TCG), the view and the capture together, so that the capture
/// finds it running; the guest is torn down after the test, not at its end.
pub const WORKLOAD_SECS: u32 = 900;
/// From the workload's start to the guest's view.
pub const SETTLE_MS: u32 = 3000;
/// How long the scheduler runs on after the guest printed its view, before the freeze.
pub const AFTER_VIEW: Duration = Duration::from_secs(3);
/// Bound on boot + attach + view (TCG on a loaded 2-core host).
pub const VIEW_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the guest waits for a real scheduler to attach.
pub const ATTACH_TIMEOUT_S: u32 = 420;

/// The corpus run of `choice`: the mixed workload and the real scheduler's view.
pub fn spec(choice: SchedulerChoice) -> RunSpec {
    view::with_real_scheduler_view(
        RunSpec::new()
            .scheduler(choice)
            .attach_timeout_s(ATTACH_TIMEOUT_S)
            .mixed_workload(MixedWorkload::new(WORKLOAD_SECS))
            .settle_ms(SETTLE_MS),
    )
}

/// A file the guest writes before the scheduler starts (e.g. a scheduler's config):
/// `contents` at `path`, as a [`HookPoint::BeforeScheduler`] command.
pub fn with_file(spec: RunSpec, path: &str, contents: &str) -> RunSpec {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    spec.command(
        HookPoint::BeforeScheduler,
        GuestCommand::new(
            "write-file",
            format!("printf '%s' {} > {}", quote(contents), quote(path)),
        ),
    )
}

/// One captured run of a real scheduler; the guest is thawed and still running.
pub struct RealRun {
    pub guest: Guest,
    /// What the guest printed up to the capture (the view included).
    pub log: ConsoleLog,
    pub out: CaptureOutput,
    /// From the end of the guest's view to the freeze.
    pub since_view: Duration,
    /// What the frozen kernel held at each map address of the dump.
    pub maps_in_memory: BTreeMap<u64, MapInMemory>,
    /// Where the vmcore went, when one was asked for.
    pub vmcore: Option<std::path::PathBuf>,
}

/// Boots `spec` (QEMU's configuration `adjust`ed: memory, extra devices), waits for the
/// guest's view, lets the scheduler run [`AFTER_VIEW`], then freezes and captures.
/// `label` names the vmcore (`$SCX_E2E_VMCORE_DIR/<label>.vmcore`).
pub fn run(
    lab: &GuestLab,
    spec: &RunSpec,
    label: &str,
    adjust: impl FnOnce(&mut QemuConfig),
) -> RealRun {
    let mut guest = lab.boot_with(spec, adjust);
    // A scheduler that fails to attach fails here, with its output on the console tail.
    guest.wait_phase(LineMark::START, "scheduler-attached", VIEW_TIMEOUT);
    guest.wait_console(view::VIEW_END, VIEW_TIMEOUT);
    let view_at = Instant::now();
    std::thread::sleep(AFTER_VIEW);
    let f = guest.freeze_now();
    assert!(f.all_parked(), "not every vCPU parked: {:?}", f.vcpus);
    let since_view = view_at.elapsed();
    let fk = guest.frozen_kernel(&f);
    let out = fk.capture(&Default::default());
    let maps_in_memory = maps_in_memory(&fk, &out);
    drop(fk);
    let vmcore = std::env::var_os("SCX_E2E_VMCORE_DIR").map(|dir| {
        let path = std::path::Path::new(&dir).join(format!("{label}.vmcore"));
        guest.dump_vmcore(&path).expect("dump-guest-memory");
        eprintln!("vmcore written to {}", path.display());
        path
    });
    guest.thaw_now();
    let log = guest.console_log();
    RealRun {
        guest,
        log,
        out,
        since_view,
        maps_in_memory,
        vmcore,
    }
}

/// `bpf_map.id` and `bpf_map.key_size` at every map address of the dump.
fn maps_in_memory(fk: &LoadedKernel, out: &CaptureOutput) -> BTreeMap<u64, MapInMemory> {
    out.report
        .maps
        .iter()
        .filter(|m| m.map_kva != 0)
        .map(|m| {
            let facts = MapInMemory {
                id: fk.u32_at(m.map_kva, "bpf_map.id"),
                key_size: fk.u32_at(m.map_kva, "bpf_map.key_size"),
            };
            (m.map_kva, facts)
        })
        .collect()
}

/// The figures of one capture the capture-speed work starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub maps: usize,
    /// The largest `.bss` / `.rodata` map value (bytes), 0 when there is none.
    pub largest_bss: u32,
    pub largest_rodata: u32,
    pub tasks: usize,
    /// The report as compact JSON.
    pub dump_bytes: usize,
    /// The sum of the capture's phases.
    pub capture: Duration,
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maps {}, largest .bss {} B, largest .rodata {} B, tasks {}, dump {} B compact, \
             capture {:.1} ms",
            self.maps,
            self.largest_bss,
            self.largest_rodata,
            self.tasks,
            self.dump_bytes,
            self.capture.as_secs_f64() * 1e3
        )
    }
}

impl RealRun {
    /// Every comparison of the dump with the guest's view: the scheduler `ops` name
    /// starts with `ops_prefix` and is walked without an error exit; maps (name, type,
    /// value size, max_entries; id and key size in memory), `.rodata`/`.data` scalars
    /// (`data_rule` says how a `.data` variable may move; `.rodata` is equal), programs,
    /// tasks (pid, comm, parent, group, session, class), per-CPU times, sysfs; the mixed
    /// workload runs on sched_ext. Returns the summary line.
    pub fn assert_agrees(&self, ops_prefix: &str, data_rule: &dyn Fn(&str) -> BssRule) -> String {
        let (log, r) = (&self.log, &self.out.report);
        let ops = view::attached_ops(log);
        assert!(ops.starts_with(ops_prefix), "ops {ops}");
        assert_eq!(r.scx_walker_unavailable, None);
        let st = r.scx_sched_state.as_ref().expect("scx_sched_state");
        assert!(
            !scx_walk::exit_kind::is_error(st.exit_kind),
            "no error exit: {st:?}"
        );
        assert!(r.active_obj_name.is_some(), "the struct_ops map found");
        let maps = view::assert_maps_agree(log, r);
        let in_memory = view::assert_maps_in_memory(log, r, &self.maps_in_memory);
        assert_eq!(maps, in_memory);
        let rule = |map: &str, var: &str| {
            if map.ends_with(".rodata") || map.contains(".rodata.") {
                BssRule::Equal
            } else {
                data_rule(var)
            }
        };
        let globals = view::assert_globals_agree(log, r, &rule);
        let progs = view::assert_progs_agree(log, r);
        let tasks = view::assert_tasks_agree(log, r, &MixedWorkload::COMMS);
        let (classes, on_ext) = view::assert_task_classes_agree(log, r);
        view::assert_cputime_agrees(log, r, self.since_view);
        view::assert_sysfs_agrees(log, r, &ops);
        for comm in MixedWorkload::COMMS {
            let seen: Vec<(i32, &str)> = (r.task_enrichments.iter())
                .filter(|t| t.comm == comm)
                .map(|t| (t.pid, t.sched_class.as_str()))
                .collect();
            assert!(
                seen.iter().any(|(_, class)| *class == "ext"),
                "no {comm} on sched_ext in the dump; its tasks (pid, class): {seen:?}"
            );
        }
        format!(
            "{ops}: checked {maps} maps, {globals} .rodata/.data scalars, {progs} programs, \
             {tasks} tasks, {classes} classes ({on_ext} on sched_ext)"
        )
    }

    /// This capture's [`Metrics`].
    pub fn metrics(&self) -> Metrics {
        let r = &self.out.report;
        let largest = |suffix: &str| {
            r.maps
                .iter()
                .filter(|m| m.name.ends_with(suffix))
                .map(|m| m.value_size)
                .max()
                .unwrap_or(0)
        };
        Metrics {
            maps: r.maps.len(),
            largest_bss: largest(".bss"),
            largest_rodata: largest(".rodata"),
            tasks: r.task_enrichments.len(),
            dump_bytes: r.to_json().expect("serializing the report").len(),
            capture: self.out.phases.iter().map(|p| p.elapsed).sum(),
        }
    }
}
