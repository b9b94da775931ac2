//! The degraded report for a freeze that timed out before every vCPU parked.

use std::time::Duration;

use crate::FreezeOutcome;

/// Stable prefix of the degraded report's reason (wire format, "stable reasons").
pub const DEGRADED_TIMEOUT_REASON: &str = "vCPU rendezvous timed out before parked acknowledgement";

/// The full reason string: `{prefix}: {ms}ms; {parked}/{total} vCPUs parked`, where `ms` is
/// the rendezvous timeout the freeze waited for.
pub fn degraded_reason(outcome: &FreezeOutcome, timeout: Duration) -> String {
    format!(
        "{DEGRADED_TIMEOUT_REASON}: {}ms; {}/{} vCPUs parked",
        timeout.as_millis(),
        outcome.parked(),
        outcome.vcpus.len()
    )
}
