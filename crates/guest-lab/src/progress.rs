//! Where provisioning reports what it is doing.

/// A sink for progress messages (one line each). Implementations must be cheap and must
/// not fail: progress is informative only.
pub trait Progress: Send + Sync {
    /// A step starts, finishes, or a long step is still running.
    fn step(&self, message: &str);
}

/// Progress on stderr, prefixed with `ktstr-lab:`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrProgress;

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        eprintln!("ktstr-lab: {message}");
    }
}

/// Progress dropped on the floor.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietProgress;

impl Progress for QuietProgress {
    fn step(&self, _message: &str) {}
}
