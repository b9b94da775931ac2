//! Provisioning: a cold cache is built once even by concurrent callers, a warm cache is
//! reused without any work, a failed build says what failed and leaves no entry, and
//! the assets are what they claim to be.

use guest_lab::testing::{ScratchDir, lab_at, open_lab};
use guest_lab::{Progress, RunSpec, SchedulerChoice, TestScheduler};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Records progress messages (and echoes them for the test log).
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn step(&self, message: &str) {
        eprintln!("progress: {message}");
        self.0.lock().unwrap().push(message.to_string());
    }
}

impl Recorder {
    fn count(&self, needle: &str) -> usize {
        self.count_where(|m| m.contains(needle))
    }
    fn count_prefix(&self, prefix: &str) -> usize {
        self.count_where(|m| m.starts_with(prefix))
    }
    fn count_where(&self, keep: impl Fn(&str) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|m| keep(m)).count()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `cpio -t` of the archive starting at `offset` of `file` (GNU cpio stops at the first
/// trailer, so each concatenated archive is listed on its own).
fn cpio_list(file: &Path, offset: u64) -> Vec<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let mut child = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cpio (a host package the lab installs)");
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes[offset as usize..].to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "cpio -t failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn guest_cold_cache_is_built_once_by_concurrent_callers_then_reused() {
    open_lab().ensure_host_packages().expect("host packages");
    let cache = ScratchDir::new("cold");
    let rec = Arc::new(Recorder::default());
    let lab = lab_at(cache.path()).with_progress(rec.clone());
    // Four callers race for the same assets on an empty cache.
    let handles: Vec<_> = TestScheduler::ALL
        .into_iter()
        .chain([TestScheduler::Stall])
        .map(|which| {
            let lab = lab.clone();
            std::thread::spawn(move || lab.scheduler(which))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &results {
        let s = r.as_ref().expect("scheduler");
        assert!(s.object.is_file(), "{}", s.object.display());
    }
    assert_eq!(
        rec.count_prefix("preparing kernel"),
        1,
        "the kernel was built once"
    );
    assert_eq!(rec.count_prefix("preparing test schedulers"), 1);
    assert_eq!(rec.count_prefix("downloading linux-binary"), 1);
    assert!(
        rec.count("waiting for another process") >= 1,
        "the others waited"
    );

    // The kernel assets are what they claim to be.
    let k = lab.kernel().unwrap();
    let head = |p: &Path, n: usize| {
        let mut b = vec![0u8; n];
        std::fs::File::open(p).unwrap().read_exact(&mut b).unwrap();
        b
    };
    assert_eq!(&head(&k.vmlinux_elf, 4), b"\x7fELF");
    assert_eq!(
        &head(
            k.fw_cfg_module
                .as_ref()
                .expect("a packaged kernel has the module"),
            4
        ),
        b"\x7fELF"
    );
    assert_eq!(head(&k.btf, 2), [0x9f, 0xeb], "BTF magic 0xeB9F");
    assert_eq!(&head(&k.vmlinuz, 0x206)[0x202..0x206], b"HdrS");
    assert_eq!(
        k.config_value("SCHED_CLASS_EXT").unwrap().as_deref(),
        Some("y")
    );
    let header = std::fs::read_to_string(&k.vmlinux_h).unwrap();
    assert!(header.contains("struct sched_ext_ops {"));
    assert!(header.contains("struct scx_dispatch_q {"));
    assert!(k.release.starts_with("7."), "{}", k.release);

    // An initramfs: base + run layer, each a valid archive with the expected files.
    let spec = RunSpec::new().scheduler(SchedulerChoice::test(TestScheduler::Ok));
    let initrd = lab.initramfs(&spec).unwrap();
    let base_dir = cache.path().join("initramfs");
    let base = entries(&base_dir)
        .into_iter()
        .find(|e| e.starts_with(&k.release))
        .map(|e| base_dir.join(e).join("base.cpio"))
        .expect("base entry");
    let base_len = std::fs::metadata(&base).unwrap().len();
    let listed = cpio_list(initrd.path(), 0);
    for want in [
        "init",
        "bin/busybox",
        "bin/bpftool",
        "bin/ktstr-loader",
        "dev/console",
        "etc/ktstr-helpers.sh",
        "etc/ktstr-sched.sh",
        "lib/modules/qemu_fw_cfg.ko",
        "sched/ok.bpf.o",
        "sched/stall.bpf.o",
        "sched/error.bpf.o",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libbpf.so.1",
        "lib/x86_64-linux-gnu/libelf.so.1",
    ] {
        assert!(
            listed.iter().any(|l| l == want),
            "{want} not in the base: {listed:?}"
        );
    }
    assert!(listed.contains(&format!("boot/config-{}", k.release)));
    let run = cpio_list(initrd.path(), base_len);
    assert!(run.iter().any(|l| l == "ktstr/run.sh"), "{run:?}");
    let path = initrd.path().to_path_buf();
    drop(initrd);
    assert!(!path.exists(), "the run initramfs is removed on drop");

    // Nothing half-built is left; a second pass does no work at all.
    assert!(
        entries(&cache.path().join("tmp")).is_empty(),
        "tmp is empty"
    );
    rec.clear();
    for which in TestScheduler::ALL {
        lab.scheduler(which).unwrap();
    }
    let t = std::time::Instant::now();
    let again = lab.initramfs(&spec).unwrap();
    eprintln!(
        "warm initramfs for a run: {:.1} ms ({} bytes)",
        t.elapsed().as_secs_f64() * 1e3,
        std::fs::metadata(again.path()).unwrap().len()
    );
    assert!(again.path().is_file());
    assert_eq!(
        rec.count("preparing"),
        0,
        "warm cache: {:?}",
        rec.0.lock().unwrap()
    );
    assert_eq!(rec.count("apt-get"), 0);
    drop(again);

    // Entries of older sources are pruned; the current ones and the kernel stay.
    let stale = [
        cache.path().join("loader/0000000000000000"),
        cache
            .path()
            .join(format!("initramfs/{}-0000000000000000", k.release)),
        cache
            .path()
            .join(format!("sched/{}/0000000000000000", k.release)),
    ];
    for d in &stale {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("x"), b"old").unwrap();
    }
    let removed = lab.prune().expect("prune");
    assert_eq!(removed.len(), 3, "{removed:?}");
    for d in &stale {
        assert!(!d.exists(), "{} pruned", d.display());
    }
    assert!(base.is_file(), "the current base stays");
    assert!(k.vmlinuz.is_file(), "the kernel stays");
    rec.clear();
    lab.initramfs(&spec).unwrap();
    assert_eq!(rec.count("preparing"), 0, "nothing current was pruned");
}

#[test]
fn guest_host_packages_are_present_and_a_second_ensure_is_a_no_op() {
    let rec = Arc::new(Recorder::default());
    let lab = open_lab().with_progress(rec.clone());
    lab.ensure_host_packages().expect("host packages");
    assert!(lab.missing_host_packages().is_empty());
    rec.clear();
    lab.ensure_host_packages().unwrap();
    assert_eq!(rec.count("installing"), 0);
    assert_eq!(rec.count("apt-get"), 0);
    assert_eq!(rec.count("all present"), 1);
    for tool in [
        "qemu-system-x86_64",
        "clang-19",
        "bpftool",
        "pahole",
        "busybox",
        "cpio",
        "zstd",
        "chromium",
    ] {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{tool} on PATH");
    }
}

#[test]
fn guest_the_private_host_apt_setup_resolves_backports() {
    let lab = open_lab();
    // QEMU 10 comes from backports: the plan for a package that is not installed yet
    // shows the private sources work, with the backports suite as the target release.
    let plan = lab
        .plan_host_install(&["hello", "qemu-system-x86"])
        .expect("simulated install");
    assert!(plan.iter().any(|(p, _)| p == "hello"), "{plan:?}");
    // Everything the lab needs is installed here, so none of it is planned again.
    for p in guest_lab::REQUIRED_PACKAGES {
        assert!(
            !plan.iter().any(|(n, _)| n == p.name),
            "{} planned: {plan:?}",
            p.name
        );
    }
    // The machine's own apt lists were not used or touched: ours are in the cache.
    assert!(lab.root().join("apt/host/lists").is_dir());
    let sources = std::fs::read_to_string(lab.root().join("apt/host/sources.list")).unwrap();
    assert!(sources.contains("-backports main"), "{sources}");
}

#[test]
fn guest_a_failed_kernel_build_says_why_and_leaves_no_entry() {
    let cache = ScratchDir::new("fail");
    let lab = lab_at(cache.path());
    // A version the archive does not have: fails before downloading anything.
    let err = lab
        .clone()
        .with_kernel_version("7.0.0+deb99")
        .kernel()
        .expect_err("no such kernel");
    let msg = err.to_string();
    assert!(
        msg.contains("choosing a kernel") && msg.contains("7.0.0+deb99"),
        "{msg}"
    );

    // The real kernel, downloaded and unpacked, then rejected mid-build by a config
    // requirement it cannot meet.
    let err = lab
        .clone()
        .with_required_config("KTSTR_NO_SUCH_OPTION", "y")
        .kernel()
        .expect_err("an unmet config requirement");
    let msg = err.to_string();
    assert!(msg.contains("checking the kernel config"), "{msg}");
    assert!(msg.contains("CONFIG_KTSTR_NO_SUCH_OPTION=y"), "{msg}");
    assert!(
        entries(&cache.path().join("kernel")).is_empty(),
        "no kernel entry"
    );
    assert!(
        entries(&cache.path().join("tmp")).is_empty(),
        "no build leftovers"
    );
}
