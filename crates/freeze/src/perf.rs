//! Host perf counters on vCPU threads: what each vCPU's host thread did up to the freeze
//! (`vcpu_perf_at_freeze` of the report).
//!
//! One counter group per vCPU thread ([`CounterGroup`]): cycles (the leader),
//! instructions, cache misses and branch misses (hardware events), plus task-clock
//! (software). Counting starts when the engine opens them (QEMU: after launch or attach;
//! native KVM: when the vCPU threads run) and the group is read at the freeze, when the
//! threads no longer run guest code. Values are raw counts; when the kernel multiplexed
//! the group, `time_running_ns < time_enabled_ns` and a consumer scales by
//! `enabled / running` ([`GroupReading::scaled`]).
//!
//! Where the host has no hardware PMU (virtual machines, containers) opening the leader
//! fails: then nothing is sampled and [`VcpuPerf::Absent`] carries the precise reason
//! (`perf_event_open(cycles) on vCPU thread <tid>: <errno text>`), which the capture log
//! repeats. Nothing is half-sampled: either every vCPU thread has its group or none.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use perf_event_open_sys as sys;

/// One event a group can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Cycles,
    Instructions,
    CacheMisses,
    BranchMisses,
    TaskClock,
    ContextSwitches,
    CpuClock,
}

impl Counter {
    /// perf's own name of the event.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Cycles => "cycles",
            Counter::Instructions => "instructions",
            Counter::CacheMisses => "cache-misses",
            Counter::BranchMisses => "branch-misses",
            Counter::TaskClock => "task-clock",
            Counter::ContextSwitches => "context-switches",
            Counter::CpuClock => "cpu-clock",
        }
    }

    fn type_config(self) -> (u32, u64) {
        let hw = |c: u32| (sys::bindings::PERF_TYPE_HARDWARE, u64::from(c));
        let sw = |c: u32| (sys::bindings::PERF_TYPE_SOFTWARE, u64::from(c));
        match self {
            Counter::Cycles => hw(sys::bindings::PERF_COUNT_HW_CPU_CYCLES),
            Counter::Instructions => hw(sys::bindings::PERF_COUNT_HW_INSTRUCTIONS),
            Counter::CacheMisses => hw(sys::bindings::PERF_COUNT_HW_CACHE_MISSES),
            Counter::BranchMisses => hw(sys::bindings::PERF_COUNT_HW_BRANCH_MISSES),
            Counter::TaskClock => sw(sys::bindings::PERF_COUNT_SW_TASK_CLOCK),
            Counter::ContextSwitches => sw(sys::bindings::PERF_COUNT_SW_CONTEXT_SWITCHES),
            Counter::CpuClock => sw(sys::bindings::PERF_COUNT_SW_CPU_CLOCK),
        }
    }
}

/// The events of a vCPU group, leader first.
pub const VCPU_COUNTERS: [Counter; 5] = [
    Counter::Cycles,
    Counter::Instructions,
    Counter::CacheMisses,
    Counter::BranchMisses,
    Counter::TaskClock,
];

/// Why a counter could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfError {
    #[error("perf_event_open({}) on thread {tid}: {source}", .counter.name())]
    Open {
        counter: Counter,
        tid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("enabling the counters of thread {tid}: {source}")]
    Enable {
        tid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the counters of thread {tid}: {detail}")]
    Read { tid: i32, detail: String },
    #[error("a counter group needs 1 to 16 events, not {0}")]
    GroupSize(usize),
}

/// A group of counters on one thread, read together (one `read`, one time base).
#[derive(Debug)]
pub struct CounterGroup {
    tid: i32,
    counters: Vec<Counter>,
    leader: File,
    _members: Vec<OwnedFd>,
}

/// One read of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReading {
    pub time_enabled_ns: u64,
    pub time_running_ns: u64,
    /// Raw counts, in the group's order.
    pub values: Vec<(Counter, u64)>,
}

impl GroupReading {
    /// The raw count of `c`.
    pub fn get(&self, c: Counter) -> Option<u64> {
        self.values.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
    }

    /// The count of `c` scaled to the whole enabled time (multiplexing); `None` when
    /// `c` is not in the group or the group never ran.
    pub fn scaled(&self, c: Counter) -> Option<u64> {
        let v = self.get(c)?;
        if self.time_running_ns == 0 {
            return None;
        }
        let s = u128::from(v) * u128::from(self.time_enabled_ns) / u128::from(self.time_running_ns);
        Some(u64::try_from(s).unwrap_or(u64::MAX))
    }
}

fn open_one(counter: Counter, tid: i32, group_fd: i32) -> Result<OwnedFd, PerfError> {
    let (type_, config) = counter.type_config();
    let mut attr = sys::bindings::perf_event_attr {
        type_,
        size: std::mem::size_of::<sys::bindings::perf_event_attr>() as u32,
        config,
        read_format: u64::from(
            sys::bindings::PERF_FORMAT_GROUP
                | sys::bindings::PERF_FORMAT_TOTAL_TIME_ENABLED
                | sys::bindings::PERF_FORMAT_TOTAL_TIME_RUNNING,
        ),
        ..Default::default()
    };
    // The leader starts disabled so that the whole group starts at once.
    attr.set_disabled(u64::from(group_fd < 0));
    attr.set_exclude_hv(1);
    // SAFETY: `attr` is a valid, fully initialized perf_event_attr whose `size` is its
    // own size; the other arguments are plain integers. The kernel does not keep the
    // pointer.
    let fd = unsafe {
        sys::perf_event_open(
            &mut attr,
            tid,
            -1,
            group_fd,
            libc::c_ulong::from(sys::bindings::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(PerfError::Open {
            counter,
            tid,
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` is a new file descriptor this function owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl CounterGroup {
    /// Opens `counters` (the first is the leader) on thread `tid` of any process
    /// (needs the right to trace it) and starts them together.
    pub fn open(tid: i32, counters: &[Counter]) -> Result<CounterGroup, PerfError> {
        if counters.is_empty() || counters.len() > 16 {
            return Err(PerfError::GroupSize(counters.len()));
        }
        let leader = open_one(counters[0], tid, -1)?;
        let mut members = Vec::with_capacity(counters.len() - 1);
        for &c in &counters[1..] {
            members.push(open_one(c, tid, leader.as_raw_fd())?);
        }
        // SAFETY: an ioctl on a perf fd this group owns, with an integer argument.
        let rc =
            unsafe { sys::ioctls::ENABLE(leader.as_raw_fd(), sys::bindings::PERF_IOC_FLAG_GROUP) };
        if rc < 0 {
            return Err(PerfError::Enable {
                tid,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(CounterGroup {
            tid,
            counters: counters.to_vec(),
            leader: File::from(leader),
            _members: members,
        })
    }

    /// The thread counted.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Reads every counter of the group at once.
    pub fn read(&self) -> Result<GroupReading, PerfError> {
        // { nr, time_enabled, time_running, value[nr] }
        let n = self.counters.len();
        let mut buf = vec![0u8; 8 * (3 + n)];
        let got = (&self.leader).read(&mut buf).map_err(|e| PerfError::Read {
            tid: self.tid,
            detail: e.to_string(),
        })?;
        let words: Vec<u64> = buf[..got]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        if words.len() != 3 + n || words[0] != n as u64 {
            return Err(PerfError::Read {
                tid: self.tid,
                detail: format!("expected {n} values, got {got} bytes ({words:?})"),
            });
        }
        Ok(GroupReading {
            time_enabled_ns: words[1],
            time_running_ns: words[2],
            values: self
                .counters
                .iter()
                .copied()
                .zip(words[3..].iter().copied())
                .collect(),
        })
    }
}

/// One vCPU thread's counters at a freeze (raw counts; see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfSample {
    pub cycles: u64,
    pub instructions: u64,
    pub cache_misses: u64,
    pub branch_misses: u64,
    /// How long the group was enabled and running (for scaling multiplexed counts).
    pub time_enabled_ns: u64,
    pub time_running_ns: u64,
    /// The thread's on-CPU time, when the software clock could be read.
    pub task_clock_ns: Option<u64>,
}

/// What the engine says of its vCPU threads' counters at a freeze.
#[derive(Debug, Clone, PartialEq)]
pub enum VcpuPerf {
    /// Per vCPU (index = vCPU id): its sample, `None` when its group could not be read.
    Sampled(Vec<Option<PerfSample>>),
    /// Not sampled, and why (one line, for the capture log).
    Absent(String),
}

impl Default for VcpuPerf {
    fn default() -> Self {
        VcpuPerf::Absent(NOT_SAMPLED.into())
    }
}

/// The reason of an engine that does not count.
pub const NOT_SAMPLED: &str = "this engine does not count its vCPU threads";

impl VcpuPerf {
    /// The samples, when there are any.
    pub fn samples(&self) -> Option<&[Option<PerfSample>]> {
        match self {
            VcpuPerf::Sampled(s) => Some(s),
            VcpuPerf::Absent(_) => None,
        }
    }
}

/// A sample from a vCPU group's reading (raw counts; see the module docs).
pub fn sample_of(r: &GroupReading) -> PerfSample {
    let g = |c| r.get(c).unwrap_or(0);
    PerfSample {
        cycles: g(Counter::Cycles),
        instructions: g(Counter::Instructions),
        cache_misses: g(Counter::CacheMisses),
        branch_misses: g(Counter::BranchMisses),
        time_enabled_ns: r.time_enabled_ns,
        time_running_ns: r.time_running_ns,
        task_clock_ns: r.get(Counter::TaskClock),
    }
}

/// The counter groups of every vCPU thread, or why there are none.
#[derive(Debug)]
pub enum VcpuCounters {
    Counting(Vec<CounterGroup>),
    Unavailable(String),
}

impl VcpuCounters {
    /// Opens a [`VCPU_COUNTERS`] group on each thread of `tids` (index = vCPU id). The
    /// first failure makes the whole set unavailable, with that failure as the reason.
    pub fn open(tids: &[i32]) -> VcpuCounters {
        Self::open_with(tids, &VCPU_COUNTERS)
    }

    /// [`Self::open`] with other events (the first is each group's leader).
    pub fn open_with(tids: &[i32], counters: &[Counter]) -> VcpuCounters {
        if tids.is_empty() {
            return VcpuCounters::Unavailable("no vCPU thread ids".into());
        }
        let mut groups = Vec::with_capacity(tids.len());
        for &tid in tids {
            match CounterGroup::open(tid, counters) {
                Ok(g) => groups.push(g),
                Err(e) => {
                    return VcpuCounters::Unavailable(format!("vCPU thread counters: {e}"));
                }
            }
        }
        VcpuCounters::Counting(groups)
    }

    /// Reads every group (at the freeze).
    pub fn read(&self) -> VcpuPerf {
        match self {
            VcpuCounters::Counting(groups) => VcpuPerf::Sampled(
                groups
                    .iter()
                    .map(|g| g.read().ok().map(|r| sample_of(&r)))
                    .collect(),
            ),
            VcpuCounters::Unavailable(why) => VcpuPerf::Absent(why.clone()),
        }
    }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The calling thread's CPU time (the kernel's own clock, independent of perf).
    fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec out-pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// Burns `d` of this thread's CPU time (not wall time: the host may be loaded).
    fn burn(d: Duration) -> u64 {
        let end = thread_cpu_ns() + d.as_nanos() as u64;
        let mut x = 0u64;
        while thread_cpu_ns() < end {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        x
    }

    /// A real thread whose work the test controls: `go` runs `burn(ms)` then sleeps
    /// `sleeps` times 1 ms, and answers with the CPU time that took.
    fn worker() -> (i32, mpsc::Sender<(u64, u32)>, mpsc::Receiver<u64>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<(u64, u32)>();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            tid_tx.send(gettid()).unwrap();
            while let Ok((ms, sleeps)) = go_rx.recv() {
                let t0 = thread_cpu_ns();
                burn(Duration::from_millis(ms));
                for _ in 0..sleeps {
                    std::thread::sleep(Duration::from_millis(1));
                }
                done_tx.send(thread_cpu_ns() - t0).unwrap();
            }
        });
        (tid_rx.recv().unwrap(), go_tx, done_rx)
    }

    #[test]
    fn software_group_counts_a_real_thread() {
        let (tid, go, done) = worker();
        let g = CounterGroup::open(
            tid,
            &[
                Counter::TaskClock,
                Counter::ContextSwitches,
                Counter::CpuClock,
            ],
        )
        .expect("software counters open everywhere");
        assert_eq!(g.tid(), tid);
        let r0 = g.read().unwrap();
        go.send((60, 20)).unwrap();
        let cpu = done.recv().unwrap();
        let r1 = g.read().unwrap();
        let tc = r1.get(Counter::TaskClock).unwrap() - r0.get(Counter::TaskClock).unwrap();
        // The task clock counts what the thread's own CPU clock saw: at least the
        // 60 ms burnt, and not more than the thread's CPU time (plus the little it
        // ran before and after the measured span).
        assert!(cpu >= 60_000_000, "burnt {cpu} ns");
        assert!(
            tc >= cpu * 95 / 100,
            "task clock {tc} ns < thread CPU time {cpu} ns"
        );
        assert!(
            tc <= cpu + 20_000_000,
            "task clock {tc} ns >> thread CPU time {cpu} ns"
        );
        let cs =
            r1.get(Counter::ContextSwitches).unwrap() - r0.get(Counter::ContextSwitches).unwrap();
        assert!(cs >= 20, "20 sleeps, {cs} context switches");
        assert!(r1.time_enabled_ns >= r1.time_running_ns);
        assert!(r1.time_enabled_ns > r0.time_enabled_ns);
        // Software events are never multiplexed: scaling is the identity.
        assert_eq!(r1.scaled(Counter::TaskClock), r1.get(Counter::TaskClock));
        assert_eq!(r1.get(Counter::Cycles), None);
        // A thread doing nothing: task clock stands still.
        let r2 = g.read().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let r3 = g.read().unwrap();
        let idle = r3.get(Counter::TaskClock).unwrap() - r2.get(Counter::TaskClock).unwrap();
        assert!(idle < 5_000_000, "idle thread ran {idle} ns");
    }

    #[test]
    fn vcpu_counters_sample_every_thread_or_say_why() {
        let (t1, go1, d1) = worker();
        let (t2, go2, d2) = worker();
        // Software-only groups: the reading and sampling path on real threads.
        let sw = VcpuCounters::open_with(&[t1, t2], &[Counter::TaskClock, Counter::CpuClock]);
        go1.send((40, 0)).unwrap();
        d1.recv().unwrap();
        go2.send((1, 0)).unwrap();
        d2.recv().unwrap();
        let s = sw.read();
        let s = s.samples().expect("software counters sampled");
        assert_eq!(s.len(), 2);
        let (a, b) = (s[0].unwrap(), s[1].unwrap());
        assert!(a.task_clock_ns.unwrap() > b.task_clock_ns.unwrap());
        assert!(a.task_clock_ns.unwrap() >= 38_000_000);
        assert_eq!((a.cycles, a.instructions), (0, 0));
        // The real vCPU set: hardware events. On a host without a PMU (this project's
        // VMs) they fail with the event and errno named; with one, they count.
        match VcpuCounters::open(&[t1, t2]) {
            VcpuCounters::Counting(groups) => {
                go1.send((20, 0)).unwrap();
                d1.recv().unwrap();
                let r = groups[0].read().unwrap();
                eprintln!("hardware counters: {r:?}");
                assert!(r.scaled(Counter::Cycles).unwrap() > 0);
                assert!(r.scaled(Counter::Instructions).unwrap() > 0);
            }
            VcpuCounters::Unavailable(why) => {
                eprintln!("hardware counters unavailable: {why}");
                assert!(
                    why.starts_with(&format!(
                        "vCPU thread counters: perf_event_open(cycles) on thread {t1}: "
                    )),
                    "{why}"
                );
                assert!(why.contains("os error"), "{why}");
                let p = VcpuCounters::Unavailable(why.clone()).read();
                assert_eq!(p, VcpuPerf::Absent(why));
            }
        }
    }

    #[test]
    fn errors_name_the_event_and_thread() {
        // No such thread.
        let e = CounterGroup::open(i32::MAX, &[Counter::TaskClock]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(&format!(
                "perf_event_open(task-clock) on thread {}: ",
                i32::MAX
            )),
            "{s}"
        );
        assert!(matches!(
            e,
            PerfError::Open {
                counter: Counter::TaskClock,
                ..
            }
        ));
        assert!(matches!(
            CounterGroup::open(gettid(), &[]),
            Err(PerfError::GroupSize(0))
        ));
        assert!(matches!(
            VcpuCounters::open(&[]),
            VcpuCounters::Unavailable(_)
        ));
        assert_eq!(VcpuPerf::default(), VcpuPerf::Absent(NOT_SAMPLED.into()));
    }

    #[test]
    fn scaling_of_a_multiplexed_group() {
        let r = GroupReading {
            time_enabled_ns: 300,
            time_running_ns: 100,
            values: vec![(Counter::Cycles, 1000), (Counter::Instructions, u64::MAX)],
        };
        assert_eq!(r.scaled(Counter::Cycles), Some(3000));
        assert_eq!(r.scaled(Counter::Instructions), Some(u64::MAX));
        assert_eq!(r.scaled(Counter::TaskClock), None);
        let never = GroupReading {
            time_running_ns: 0,
            ..r.clone()
        };
        assert_eq!(never.scaled(Counter::Cycles), None);
        let s = sample_of(&r);
        assert_eq!(
            (s.cycles, s.time_enabled_ns, s.task_clock_ns),
            (1000, 300, None)
        );
    }
}
