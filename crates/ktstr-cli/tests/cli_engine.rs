//! `ktstr run --engine kvm`: the native KVM engine boots the lab kernel with the run's
//! initramfs.
//!
//! Where this host's KVM cannot run the kernel (the project's machines: a nested
//! `kvm_pvm` whose instruction emulator fails in the kernel's decompressor, see
//! `shared/guest-lab.md`), the run must end with exit code 3, a one-line error on stderr,
//! and a placeholder report with `guest_setup_failure` filled (the engine's reason, the
//! stage, the console tail); the real-dump half is then skipped, which is accepted (also
//! under CI) only for that emulation failure (`guest_lab::testing::skip_kvm_cannot_run_linux`).
//! Where KVM boots Linux, the same run must produce the stall's real dual dump (exit 1).
//!
//! Needs a usable `/dev/kvm` (else it skips: `guest_lab::testing::skip`) and the guest lab.

mod support;

use dump_schema::FailureDumpReportAny;
use guest_lab::testing;
use support::{ktstr, the_dump};

#[test]
fn guest_run_engine_kvm_placeholder_or_real_dump() {
    if let Err(e) = freeze::kvm::probe() {
        return testing::skip(format!("no usable KVM on this host: {e}"));
    }
    // The run boots the lab's kernel: provisioned here first, so that a provisioning
    // failure is not taken for the engine's.
    testing::open_lab()
        .kernel()
        .expect("provisioning the guest-lab kernel");
    let d = tempfile::tempdir().unwrap();
    let o = ktstr(&["run", "--engine", "kvm", "--out", "out"], d.path());
    let stderr = String::from_utf8_lossy(&o.stderr);
    let (_, json) = the_dump(&d.path().join("out"));
    let report = FailureDumpReportAny::from_json(&json).unwrap();
    match o.status.code() {
        Some(3) => {
            // The engine could not run the guest: a placeholder with the context.
            let FailureDumpReportAny::Single(r) = &report else {
                panic!("a placeholder is a single report: {}", report.schema())
            };
            assert!(r.is_placeholder);
            let ctx = r
                .guest_setup_failure
                .as_ref()
                .expect("guest_setup_failure filled");
            assert!(!ctx.init_stage.is_empty());
            assert!(!ctx.scheduler_attach_outcome.is_empty());
            let reason = r
                .scx_walker_unavailable
                .as_deref()
                .expect("the placeholder's reason");
            assert!(
                reason.starts_with("guest setup failed: the guest exited"),
                "{reason}"
            );
            // The engine's own words (e.g. `KVM internal error ... emulation failure`).
            assert!(reason.contains("vCPU "), "{reason}");
            let line = stderr
                .lines()
                .find(|l| l.starts_with("ktstr: error: the engine could not run the guest"))
                .unwrap_or_else(|| panic!("no error line on stderr"));
            assert!(line.contains("wrote a placeholder report with guest_setup_failure"));
            assert!(line.contains("use --engine qemu"));
            // The rendering on stdout says so too.
            let stdout = String::from_utf8_lossy(&o.stdout);
            assert!(stdout.contains("guest setup failure:"), "{stdout}");
            assert!(stdout.contains("capture unavailable:"), "{stdout}");
            // Right only when the engine failed as this host's KVM does; the real-dump
            // half cannot run then.
            testing::skip_kvm_cannot_run_linux(&format!("the real-dump half: {reason}"));
        }
        Some(1) => {
            // KVM boots Linux here: the stall's real dual dump.
            let FailureDumpReportAny::Dual(dual) = &report else {
                panic!("expected a dual report, got {}", report.schema())
            };
            assert!(!dual.late.is_placeholder, "{stderr}");
            assert_eq!(
                dual.late.scx_sched_state.as_ref().map(|s| s.exit_kind),
                Some(1026),
                "SCX_EXIT_ERROR_STALL"
            );
            assert!(
                dual.late
                    .task_enrichments
                    .iter()
                    .any(|t| t.comm == "ktstr-victim")
            );
            assert!(dual.early.is_some(), "{:?}", dual.early_skipped_reason);
        }
        other => panic!("unexpected exit code {other:?}"),
    }
}
