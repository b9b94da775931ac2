//! The degraded report for a freeze that timed out before every vCPU parked.
//!
//! Engines know nothing of reports: any engine's [`FreezeOutcome`] converts here.

use dump_schema::reasons::{RENDEZVOUS_TIMED_OUT, degraded_reason as schema_reason};
use dump_schema::{DegradedFailureDumpReport, VcpuRegSnapshot};

use freeze::{CpuRegs, FreezeOutcome};

/// Stable prefix of the degraded report's reason (wire format, "stable reasons").
pub const DEGRADED_TIMEOUT_REASON: &str = RENDEZVOUS_TIMED_OUT;

/// `vCPU rendezvous timed out before parked acknowledgement: {ms}ms; {parked}/{total} vCPUs
/// parked`, where `ms` is the time the rendezvous waited (the outcome's `elapsed`).
pub fn degraded_reason(outcome: &FreezeOutcome) -> String {
    schema_reason(
        RENDEZVOUS_TIMED_OUT,
        outcome.elapsed.as_millis() as u64,
        outcome.parked(),
        outcome.vcpus.len(),
    )
}

/// The registers the wire format keeps for a vCPU.
pub fn reg_snapshot(regs: &CpuRegs) -> VcpuRegSnapshot {
    VcpuRegSnapshot {
        instruction_pointer: regs.rip,
        stack_pointer: regs.rsp,
        page_table_root: regs.cr3,
        ..Default::default()
    }
}

/// The degraded report of a freeze where not every vCPU parked: the stable reason, per vCPU
/// its registers or `null` (never parked), and the elapsed time. `watchpoint_hit`,
/// `bss_latch_state` and `exit_kind` are left at their defaults (`false`, `not_resolved`,
/// absent) for the caller, which knows about triggers, to fill in.
pub fn degraded_report(outcome: &FreezeOutcome) -> DegradedFailureDumpReport {
    DegradedFailureDumpReport {
        reason: degraded_reason(outcome),
        vcpu_regs: outcome
            .vcpus
            .iter()
            .map(|r| r.as_ref().map(reg_snapshot))
            .collect(),
        elapsed_ms: outcome.elapsed.as_millis() as u64,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn report_lists_parked_and_missing_vcpus() {
        let regs = CpuRegs {
            rip: 0x1000,
            rsp: 0x2000,
            cr3: 0x9000,
            ..Default::default()
        };
        let outcome = FreezeOutcome {
            vcpus: vec![Some(regs), None, Some(regs)],
            elapsed: Duration::from_millis(250),
            vcpu_perf: Default::default(),
        };
        let r = degraded_report(&outcome);
        assert_eq!(r.schema, "degraded");
        assert_eq!(
            r.reason,
            "vCPU rendezvous timed out before parked acknowledgement: 250ms; 2/3 vCPUs parked"
        );
        assert_eq!(r.elapsed_ms, 250);
        assert_eq!(r.vcpu_regs.len(), 3);
        assert!(r.vcpu_regs[1].is_none());
        let s = r.vcpu_regs[0].as_ref().unwrap();
        assert_eq!(
            (s.instruction_pointer, s.stack_pointer, s.page_table_root),
            (0x1000, 0x2000, 0x9000)
        );
        // On the wire: `null` for the vCPU that never parked; it reads back as degraded.
        let json = serde_json::to_string(&r).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value["vcpu_regs"][1].is_null(), "{json}");
        match dump_schema::FailureDumpReportAny::from_json(&json).expect("valid degraded report") {
            dump_schema::FailureDumpReportAny::Degraded(back) => assert_eq!(back, r),
            other => panic!("read back as {other:?}"),
        }
    }
}
