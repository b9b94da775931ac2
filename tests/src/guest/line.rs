//! The kernel lines the guest suites run on, and what each line's dump must say about
//! itself: the same suites assert the same things on both, and where a line lacks
//! something the dump must say so (a capture note), never stay silent.

use dump_schema::FailureDumpReport;
use scx_walk::reasons::{ABORTING_NOT_IN_KERNEL, EVENTS_NOT_IN_KERNEL};

/// A kernel line of the guest lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelLine {
    /// The lab's default kernel (7.3, or `KTSTR_KERNEL_VERSION`): `struct scx_sched`
    /// behind `scx_root`, event counters.
    Current,
    /// The 6.12 LTS the lab builds from Debian's `linux-source-6.12`: no `struct
    /// scx_sched`, the scheduler's state is kernel globals (`scx_ops`, `scx_exit_kind`,
    /// ...), no event counters, no `aborting` flag.
    Lts612,
}

impl KernelLine {
    /// The lab's kernel version for this line (`None`: the lab's default).
    pub fn version(self) -> Option<&'static str> {
        match self {
            KernelLine::Current => None,
            KernelLine::Lts612 => Some("6.12"),
        }
    }

    /// `name` made unique per line (a vmcore's file name): unchanged on the default
    /// line, `<name>-6.12` on the LTS.
    pub fn label(self, name: &str) -> String {
        match self.version() {
            None => name.to_string(),
            Some(v) => format!("{name}-{v}"),
        }
    }

    /// What the dump of an attached scheduler says about the line's layout. Both lines:
    /// the global DSQs were walked. The current line: an event-counter sample taken at
    /// the freeze, and no note of a missing counter or flag. The 6.12 LTS: no event
    /// samples and no `aborting` flag, each said in `capture_notes` with its reason.
    #[track_caller]
    pub fn assert_layout(self, r: &FailureDumpReport) {
        let notes = &r.capture_notes;
        let noted = |reason: &str| notes.iter().any(|n| n == reason);
        assert!(
            r.dsq_states.iter().any(|d| d.origin.starts_with("global")),
            "no global DSQ walked: {:?}",
            r.dsq_states.iter().map(|d| &d.origin).collect::<Vec<_>>()
        );
        match self {
            KernelLine::Current => {
                for reason in [EVENTS_NOT_IN_KERNEL, ABORTING_NOT_IN_KERNEL] {
                    assert!(!noted(reason), "{reason} noted on {self:?}: {notes:#?}");
                }
                assert!(
                    !r.event_counter_timeline.is_empty(),
                    "no event-counter sample at the freeze: {notes:#?}"
                );
            }
            KernelLine::Lts612 => {
                for reason in [EVENTS_NOT_IN_KERNEL, ABORTING_NOT_IN_KERNEL] {
                    assert!(noted(reason), "{reason} not in {notes:#?}");
                }
                assert!(r.event_counter_timeline.is_empty());
            }
        }
    }
}
