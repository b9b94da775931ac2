//! drgn (PyPI `drgn`, a debugger nobody here wrote) as an independent reader of the
//! vmcores the project writes. CI installs it (`pip install drgn`); where python3 cannot
//! import it, [`available`] says why and the caller skips that check.

use std::process::{Command, Stdio};

use guest_lab::testing::stdout_of;

/// `Ok` when `python3 -c 'import drgn'` works, else why not (for the skip message).
pub fn available() -> Result<(), String> {
    let ok = Command::new("python3")
        .args(["-c", "import drgn"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err("python3 cannot import drgn (CI installs it with pip install drgn)".into())
    }
}

/// Runs a Python `script` (which imports drgn itself) and returns its stdout; panics
/// with its stderr when it fails.
pub fn run(script: &str) -> String {
    let what = format!("drgn script\n--- script ---\n{script}\n---");
    let out = stdout_of(Command::new("python3").args(["-c", script]), &what);
    String::from_utf8_lossy(&out).into_owned()
}

/// A script prologue: `p`, a drgn Program over the core dump at `core`.
pub fn program_on(core: &std::path::Path) -> String {
    format!(
        "import drgn\np = drgn.Program()\np.set_core_dump({:?})\n",
        core.display().to_string()
    )
}
