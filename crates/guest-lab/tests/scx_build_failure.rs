//! A published scheduler whose build fails: the error carries the tail of cargo's output
//! and no cache entry is left. `cargo` is replaced by a script on `PATH` (this file holds
//! one test so that changing the process environment races with nothing).

use guest_lab::testing::ScratchDir;
use guest_lab::{Lab, LabError, QuietProgress, ScxCrate};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

const FAKE_CARGO: &str = r#"#!/bin/sh
case "$1" in
info) printf 'scx_fake\nversion: 1.0.0\ndependencies:\n +anyhow@1\n +scx_utils@1.1.4\n' ;;
install)
    echo "   Compiling scx_fake v1.0.0"
    echo "error[E0425]: cannot find value \`ktstr_marker\` in this scope" >&2
    exit 101 ;;
*) exit 2 ;;
esac
"#;

#[test]
fn a_build_failure_reports_the_tail_of_cargo_output_and_leaves_no_entry() {
    let scratch = ScratchDir::new("scx-fail");
    let root = scratch.path();
    let bin = root.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, FAKE_CARGO).unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::set_var("PATH", path) };

    let cache = root.join("cache");
    let lab = Lab::at(&cache)
        .unwrap()
        .with_progress(Arc::new(QuietProgress));
    let krate: ScxCrate = "scx_fake@1.0.0".parse().unwrap();
    let err = lab.scx_crate(&krate).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LabError::Tool { .. }), "{err:?}");
    assert!(msg.starts_with("building scx_fake 1.0.0"), "{msg}");
    assert!(msg.contains("cannot find value `ktstr_marker`"), "{msg}");
    assert!(msg.contains("exit status: 101"), "{msg}");
    assert!(!cache.join("scx/scx_fake/1.0.0").exists());
    assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
}
