//! An interrupted write leaves nothing behind: SIGINT, SIGTERM or SIGHUP while a dump is
//! being written removes its temporary file before the process exits (128 + signal).
//! The writer is this test binary itself, re-run as a helper that writes slowly.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The slow writer: installs the signal cleanup, writes 1 MiB, then waits inside the
/// write until a signal ends the process. Run only by `signals_remove_the_temp_file`.
#[test]
#[ignore = "helper process of signals_remove_the_temp_file"]
fn slow_writer_helper() {
    let Ok(dir) = std::env::var("KTSTR_SIGNAL_TEST_DIR") else {
        return;
    };
    ktstr_cli::install_signal_cleanup(None).unwrap();
    ktstr_cli::write_atomic(&Path::new(&dir).join("dump.json"), |w| {
        w.write_all(&vec![b' '; 1 << 20])?;
        w.flush()?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    })
    .unwrap();
    panic!("the write was not interrupted");
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn signals_remove_the_temp_file() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "slow_writer_helper", "--nocapture"])
            .env("KTSTR_SIGNAL_TEST_DIR", dir.path())
            .spawn()
            .unwrap();
        // Wait until the temporary file holds the first MiB: the write is under way.
        let start = Instant::now();
        loop {
            let tmp = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
            if tmp.is_some_and(|e| e.metadata().unwrap().len() >= 1 << 20) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the helper never started writing"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig), "signal {sig}: {status}");
        assert!(
            names(dir.path()).is_empty(),
            "signal {sig} left {:?}",
            names(dir.path())
        );
    }
}
