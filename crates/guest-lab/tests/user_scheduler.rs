//! The user's own scheduler build in the initramfs, without booting: the executable, its
//! interpreter and its libraries at the paths the guest's loader looks at (files under
//! `/tmp`, which the guest mounts over, moved under `/ktstr/host`), a launcher with the
//! library path, and the arguments quoted in the run script. Uses the lab's cache
//! (`$KTSTR_CACHE`): the kernel and the base archive must be provisioned.

use guest_lab::testing::{CCode, ScratchDir};
use guest_lab::{RunSpec, SchedulerChoice, TestScheduler, testing};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file of every concatenated newc archive in `bytes`: name → (mode, data); later
/// archives replace earlier files, as the kernel unpacks them.
fn newc_files(bytes: &[u8]) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut off = 0;
    let field = |b: &[u8], at: usize, i: usize| {
        let s = std::str::from_utf8(&b[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
        u32::from_str_radix(s, 16).unwrap() as usize
    };
    while off + 110 <= bytes.len() {
        if &bytes[off..off + 6] != b"070701" {
            // Padding between archives.
            off += 4;
            continue;
        }
        let (mode, size, namesize) = (
            field(bytes, off, 1),
            field(bytes, off, 6),
            field(bytes, off, 11),
        );
        let name = std::str::from_utf8(&bytes[off + 110..off + 110 + namesize - 1])
            .unwrap()
            .to_string();
        let data_at = (off + 110 + namesize).div_ceil(4) * 4;
        let data = bytes[data_at..data_at + size].to_vec();
        if name != "TRAILER!!!" {
            files.insert(name, (mode as u32, data));
        }
        off = (data_at + size).div_ceil(4) * 4;
    }
    files
}

/// A program in `/tmp/...` linked against libz and a library of its own found through
/// `$ORIGIN/../lib`.
fn build_demo() -> (ScratchDir, PathBuf) {
    let scratch = ScratchDir::under(Path::new("/tmp"), "user");
    let main = CCode {
        source: "#include <stdio.h>\nconst char *ktstr_demo(void);\n\
         int main(void) { printf(\"%s\\n\", ktstr_demo()); return 0; }\n",
        flags: &[],
    };
    let lib = CCode {
        source: "#include <zlib.h>\nconst char *ktstr_demo(void) { return zlibVersion(); }\n",
        flags: &["-lz"],
    };
    let exe = scratch.app_with_own_library("my sched", main, "ktstrdemo", lib);
    (scratch, exe)
}

#[test]
fn guest_the_users_executable_goes_in_with_what_it_needs() {
    let lab = testing::open_lab();
    let (scratch, exe) = build_demo();
    let choice = SchedulerChoice::from_path(
        &exe,
        vec!["--slice-us".into(), "20000".into(), "it's; rm -rf /".into()],
    )
    .unwrap();
    assert!(matches!(choice, SchedulerChoice::Executable { .. }));
    let spec = RunSpec::new().scheduler(choice);
    let script = spec.script();
    assert!(
        script.contains(
            "ktstr_sched_daemon 'my_sched' 120 /ktstr/user/launch '--slice-us' '20000' 'it'\\''s; rm -rf /'\n"
        ),
        "{script}"
    );
    let initrd = lab.initramfs(&spec).expect("initramfs");
    let files = newc_files(&std::fs::read(initrd.path()).unwrap());
    let dir = scratch
        .path()
        .strip_prefix("/")
        .unwrap()
        .display()
        .to_string();
    let guest_exe = format!("ktstr/host/{dir}/app/bin/my sched");
    let guest_lib = format!("ktstr/host/{dir}/app/lib/libktstrdemo.so");
    for want in [
        guest_exe.as_str(),
        guest_lib.as_str(),
        "lib/x86_64-linux-gnu/libz.so.1",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib64/ld-linux-x86-64.so.2",
        "ktstr/user/launch",
        "ktstr/run.sh",
    ] {
        assert!(
            files.contains_key(want),
            "{want} missing: {:?}",
            files.keys()
        );
    }
    assert_eq!(files[&guest_exe].1, std::fs::read(&exe).unwrap());
    assert_eq!(files[&guest_exe].0 & 0o777, 0o755);
    // The libraries' contents are the files the links point to on the host.
    assert_eq!(
        files["lib/x86_64-linux-gnu/libz.so.1"].1,
        std::fs::read("/lib/x86_64-linux-gnu/libz.so.1").unwrap()
    );
    let launch = String::from_utf8(files["ktstr/user/launch"].1.clone()).unwrap();
    assert!(
        launch.contains(&format!(
            "export LD_LIBRARY_PATH='/ktstr/host/{dir}/app/lib'\n"
        )),
        "{launch}"
    );
    assert!(
        launch.ends_with(&format!("exec '/{guest_exe}' \"$@\"\n")),
        "{launch}"
    );
}

#[test]
fn guest_a_path_is_an_executable_or_an_object_and_nothing_else() {
    let lab = testing::open_lab();
    let object = lab
        .scheduler(TestScheduler::Ok)
        .expect("test scheduler")
        .object;
    assert_eq!(
        SchedulerChoice::from_path(&object, vec![]).unwrap(),
        SchedulerChoice::Object {
            path: object.clone()
        }
    );
    let err = SchedulerChoice::from_path(&object, vec!["-v".into()]).unwrap_err();
    assert!(err.to_string().contains("takes no arguments"), "{err}");
    let static_busybox = SchedulerChoice::from_path("/bin/busybox", vec![]).unwrap();
    assert!(matches!(static_busybox, SchedulerChoice::Executable { .. }));
    let err = SchedulerChoice::from_path("/etc/passwd", vec![]).unwrap_err();
    assert!(err.to_string().contains("not an ELF file"), "{err}");
    // A shared library is ELF but not a scheduler to start.
    let err = SchedulerChoice::from_path("/lib/x86_64-linux-gnu/libz.so.1", vec![])
        .map(|c| RunSpec::new().scheduler(c))
        .and_then(|spec| lab.initramfs(&spec).map(|_| ()))
        .unwrap_err();
    assert!(err.to_string().contains("no program interpreter"), "{err}");
}
