//! The library copying, proven in a guest: a dynamically linked program of our own
//! (built with gcc at test time, linked against libz, libm and a library of its own in
//! `/tmp/...` found through `$ORIGIN`) is passed as the user's executable
//! (`SchedulerChoice::Executable`). It is not a scheduler: it prints what it computed
//! with each library and every object the loader mapped (`dl_iterate_phdr`), and exits;
//! the guest reports it as a scheduler that exited before attaching, with its output.
//! The guest must have loaded every library the host resolved (`elf_deps`), the
//! relocated one from under `/ktstr/host`, and printed what the same program prints on
//! the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::guest::GuestLab;
use guest_lab::testing::{CCode, ScratchDir};
use guest_lab::{RunEnd, RunSpec, SchedulerChoice};

/// The line prefix of each loaded object the program prints.
const LOADED: &str = "KTSTR-LOADED ";

const MAIN_C: &str = r#"#define _GNU_SOURCE
#include <link.h>
#include <math.h>
#include <stdio.h>
#include <zlib.h>

const char *ktstr_probe(void);

static int show(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	if (info->dlpi_name && info->dlpi_name[0])
		printf("KTSTR-LOADED %s\n", info->dlpi_name);
	return 0;
}

int main(int argc, char **argv)
{
	volatile double x = argc + 0.5;

	(void)argv;
	printf("ktstr-libs: zlib %s cos %.6f probe %s\n", zlibVersion(), cos(x), ktstr_probe());
	dl_iterate_phdr(show, NULL);
	return 0;
}
"#;

const PROBE_C: &str = "const char *ktstr_probe(void) { return \"own-library\"; }\n";

/// `/tmp/ktstr-dyn-*/app/bin/ktstr-libs` and its `../lib/libktstrprobe.so`.
fn build() -> (ScratchDir, PathBuf) {
    let dir = ScratchDir::under(Path::new("/tmp"), "dyn");
    let main = CCode {
        source: MAIN_C,
        flags: &["-O1", "-lz", "-lm", "-Wl,--no-as-needed"],
    };
    let lib = CCode {
        source: PROBE_C,
        flags: &[],
    };
    let exe = dir.app_with_own_library("ktstr-libs", main, "ktstrprobe", lib);
    (dir, exe)
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn guest_a_dynamically_linked_program_loads_what_the_host_resolved() {
    let Some(lab) = GuestLab::open() else { return };
    let (_scratch, exe) = build();
    let host_run = Command::new(&exe).output().expect("running it on the host");
    assert!(host_run.status.success());
    let host_out = String::from_utf8_lossy(&host_run.stdout).into_owned();
    let host_line = host_out
        .lines()
        .find(|l| l.starts_with("ktstr-libs:"))
        .expect("the program's line on the host")
        .to_string();

    let deps = guest_lab::elf_deps::runtime_deps(&exe).expect("resolving its libraries");
    let resolved: BTreeSet<String> = deps
        .libraries
        .iter()
        .map(|l| file_name(&l.path.to_string_lossy()))
        .collect();
    for want in ["libz.so.1", "libm.so.6", "libc.so.6", "libktstrprobe.so"] {
        assert!(resolved.contains(want), "{want} not resolved: {resolved:?}");
    }
    let interp = deps.interpreter.as_ref().expect("a dynamic executable");

    let choice = SchedulerChoice::from_path(&exe, vec![]).expect("an executable");
    assert!(matches!(choice, SchedulerChoice::Executable { .. }));
    let spec = RunSpec::new()
        .scheduler(choice)
        .attach_timeout_s(60)
        .end(RunEnd::Hold);
    let guest = lab.boot(&spec);
    guest.wait_console("KTSTR-END sched-tail", Duration::from_secs(300));
    // The process's tail is printed when it exits; the init notices the exit on its own
    // poll (every 50 ms in the guest) and prints the phase after it.
    guest.wait_console("KTSTR-PHASE: scheduler-failed", Duration::from_secs(60));
    let log = guest.console_log();
    // Not a scheduler: it ended before anything attached, cleanly.
    assert_eq!(
        log.phase_field("scheduler-failed", "reason"),
        Some("exited")
    );
    let exit = log
        .scheduler_process_exit()
        .expect("the process exit reported");
    assert_eq!(exit.rc, 0, "{:#?}", exit.tail);
    let line = exit
        .tail
        .iter()
        .find(|l| l.starts_with("ktstr-libs:"))
        .unwrap_or_else(|| panic!("no ktstr-libs line: {:#?}", exit.tail));
    assert_eq!(*line, host_line, "the guest computed what the host did");

    let loaded: Vec<&str> = exit
        .tail
        .iter()
        .filter_map(|l| l.strip_prefix(LOADED))
        .collect();
    let loaded_names: BTreeSet<String> = loaded.iter().map(|p| file_name(p)).collect();
    for lib in &resolved {
        assert!(
            loaded_names.contains(lib),
            "{lib} resolved on the host but not loaded in the guest: {loaded:?}"
        );
    }
    assert!(
        loaded_names.contains(&file_name(&interp.to_string_lossy())),
        "the interpreter {} not among {loaded:?}",
        interp.display()
    );
    // Nothing the host did not resolve (but the kernel's vDSO).
    for name in &loaded_names {
        assert!(
            resolved.contains(name)
                || *name == file_name(&interp.to_string_lossy())
                || name.starts_with("linux-vdso"),
            "{name} loaded in the guest, not resolved on the host"
        );
    }
    // The library of its own lives under /tmp on the host, which the guest mounts over:
    // it was moved under /ktstr/host and found there.
    let probe = loaded
        .iter()
        .find(|p| p.ends_with("/libktstrprobe.so"))
        .expect("libktstrprobe.so loaded");
    assert!(probe.starts_with("/ktstr/host/tmp/"), "{probe}");
    eprintln!(
        "the guest loaded {} objects: {loaded:?}",
        loaded_names.len()
    );
}
