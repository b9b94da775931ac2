//! sched_ext exit kinds (`enum scx_exit_kind`) and the rules that read them: the one
//! home of these values in the workspace (engines watch a `u32` without knowing what it
//! means; the capture session asks this module).
//!
//! The kernel's exit path (kernel/sched/ext.c, 6.12–7.3): `scx_claim_exit()` moves
//! `exit_kind` from `SCX_EXIT_NONE` to the kind with a cmpxchg (the write a watchpoint
//! catches), `scx_vexit()` fills `exit_info` (kind, code, message, backtrace), the error
//! irq work writes the debug dump, and the disable worker then replaces `exit_kind` with
//! `SCX_EXIT_DONE` before tearing the scheduler down. So a reading of `SCX_EXIT_DONE` is
//! not "no error": the kind the scheduler exited with is then in `exit_info->kind`
//! ([`effective_kind`]).

/// `SCX_EXIT_NONE`: a scheduler that has not exited (a new `scx_sched` starts here).
pub const SCX_EXIT_NONE: u32 = 0;
/// `SCX_EXIT_DONE`: what the disable worker leaves in `exit_kind` once it has taken over.
pub const SCX_EXIT_DONE: u32 = 1;
/// `SCX_EXIT_UNREG`: user space unregistered the scheduler (its loader exited or
/// detached it).
pub const SCX_EXIT_UNREG: u32 = 64;
/// `SCX_EXIT_UNREG_BPF`: the BPF scheduler asked to be unregistered (`scx_bpf_exit()`).
pub const SCX_EXIT_UNREG_BPF: u32 = 65;
/// `SCX_EXIT_UNREG_KERN`: the kernel unregistered it (e.g. a CPU hotplug it cannot take).
pub const SCX_EXIT_UNREG_KERN: u32 = 66;
/// `SCX_EXIT_SYSRQ`: the `S` sysrq ended it.
pub const SCX_EXIT_SYSRQ: u32 = 67;
/// `SCX_EXIT_ERROR`: exit kinds at or above it are errors.
pub const SCX_EXIT_ERROR: u32 = 1024;
/// `SCX_EXIT_ERROR_BPF`: the scheduler called `scx_bpf_error()`.
pub const SCX_EXIT_ERROR_BPF: u32 = 1025;
/// `SCX_EXIT_ERROR_STALL`: the watchdog found a runnable task starved.
pub const SCX_EXIT_ERROR_STALL: u32 = 1026;

/// Every kind this module knows, with its kernel name.
pub const KNOWN: [(u32, &str); 9] = [
    (SCX_EXIT_NONE, "SCX_EXIT_NONE"),
    (SCX_EXIT_DONE, "SCX_EXIT_DONE"),
    (SCX_EXIT_UNREG, "SCX_EXIT_UNREG"),
    (SCX_EXIT_UNREG_BPF, "SCX_EXIT_UNREG_BPF"),
    (SCX_EXIT_UNREG_KERN, "SCX_EXIT_UNREG_KERN"),
    (SCX_EXIT_SYSRQ, "SCX_EXIT_SYSRQ"),
    (SCX_EXIT_ERROR, "SCX_EXIT_ERROR"),
    (SCX_EXIT_ERROR_BPF, "SCX_EXIT_ERROR_BPF"),
    (SCX_EXIT_ERROR_STALL, "SCX_EXIT_ERROR_STALL"),
];

/// The kernel's name of `kind`, when it is one of [`KNOWN`].
pub fn name(kind: u32) -> Option<&'static str> {
    KNOWN.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
}

/// True for the error kinds (`>= SCX_EXIT_ERROR`).
pub fn is_error(kind: u32) -> bool {
    kind >= SCX_EXIT_ERROR
}

/// True for an exit the scheduler did not die of: unregistered by user space, by
/// itself, by the kernel, or by sysrq.
pub fn is_unregistration(kind: u32) -> bool {
    (SCX_EXIT_UNREG..SCX_EXIT_ERROR).contains(&kind)
}

/// The kind a scheduler exited with, given what `exit_kind` reads now and a way to read
/// `exit_info->kind`: `exit_kind` itself, except when it reads `SCX_EXIT_DONE` and
/// `exit_info->kind` holds a real exit kind (the disable worker had taken over). The
/// `bool` is true when the kind came from `exit_info` (the freeze was late).
pub fn effective_kind(exit_kind: u32, info_kind: impl FnOnce() -> Option<u32>) -> (u32, bool) {
    if exit_kind == SCX_EXIT_DONE
        && let Some(kind) = info_kind()
        && kind > SCX_EXIT_DONE
    {
        return (kind, true);
    }
    (exit_kind, false)
}

/// What a reading of `exit_kind` asks the capture to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitVerdict {
    /// Nothing to capture (still running, or an exit the caller does not capture).
    Ignore,
    /// An exit to capture: the kind (by [`effective_kind`]) and whether it was late.
    Capture { kind: u32, late: bool },
}

/// The capture rule: an error exit always captures; an unregistration captures when
/// `unregistrations` is set (a real scheduler whose user-space part exited).
pub fn verdict(
    exit_kind: u32,
    info_kind: impl FnOnce() -> Option<u32>,
    unregistrations: bool,
) -> ExitVerdict {
    let (kind, late) = effective_kind(exit_kind, info_kind);
    if is_error(kind) || (unregistrations && is_unregistration(kind)) {
        ExitVerdict::Capture { kind, late }
    } else {
        ExitVerdict::Ignore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_classes() {
        assert_eq!(name(1026), Some("SCX_EXIT_ERROR_STALL"));
        assert_eq!(name(2), None);
        assert!(is_error(1024) && is_error(1025) && !is_error(67));
        assert!(is_unregistration(64) && is_unregistration(67));
        assert!(!is_unregistration(1) && !is_unregistration(1024));
    }

    #[test]
    fn done_defers_to_exit_info() {
        assert_eq!(effective_kind(1025, || panic!("not read")), (1025, false));
        assert_eq!(effective_kind(1, || Some(1026)), (1026, true));
        assert_eq!(effective_kind(1, || Some(0)), (1, false));
        assert_eq!(effective_kind(1, || None), (1, false));
        assert_eq!(effective_kind(0, || Some(1026)), (0, false));
    }

    #[test]
    fn the_capture_rule() {
        assert_eq!(
            verdict(1026, || None, false),
            ExitVerdict::Capture {
                kind: 1026,
                late: false
            }
        );
        assert_eq!(verdict(64, || None, false), ExitVerdict::Ignore);
        assert_eq!(
            verdict(1, || Some(64), true),
            ExitVerdict::Capture {
                kind: 64,
                late: true
            }
        );
        assert_eq!(verdict(0, || None, true), ExitVerdict::Ignore);
        assert_eq!(verdict(1, || Some(1), true), ExitVerdict::Ignore);
    }
}
