//! The whole vmcore → report pipeline (`ktstr_cli::capture_core`: VMCOREINFO, kallsyms,
//! page tables, the kernel's BTF, every walker, exit info, the verdict and the JSON) on
//! a real lab vmcore that each input damages: up to 8 edits, each in one of the regions
//! the hostile suite knows (headers and notes, VMCOREINFO, BTF, kallsyms, the page-table
//! root, the pages the walkers read) or anywhere in the file. The vmcore is mapped
//! copy-on-write per input (the file is never written).
#![no_main]

#[path = "../../tests/hostile/mod.rs"]
mod hostile;

use std::path::PathBuf;
use std::sync::OnceLock;

use dump_schema::FailureDumpReportAny;
use guest_mem::Vmcore;
use libfuzzer_sys::fuzz_target;

struct Base {
    path: PathBuf,
    len: u64,
    regions: Vec<(u64, u64)>,
}

fn vmcore_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KTSTR_FUZZ_VMCORE") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("KTSTR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ktstr")))
        .unwrap_or_else(|| PathBuf::from(".cache/ktstr"));
    cache.join("bench/stall.vmcore")
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = vmcore_path();
        assert!(
            path.is_file(),
            "no lab vmcore at {} (set KTSTR_FUZZ_VMCORE; see the README)",
            path.display()
        );
        let core = Vmcore::open(&path).expect("the lab vmcore opens");
        let out = ktstr_cli::capture_core(&core, &path, &Default::default(), &Default::default())
            .expect("the undamaged lab vmcore captures");
        let map = hostile::Map::new(&path);
        Base {
            len: map.len,
            regions: map.regions(&out.report),
            path,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let b = base();
    // Records: [region u8][offset u32 le][len u8][len bytes]; region 255 = anywhere.
    let mut edits: Vec<(u64, &[u8])> = Vec::new();
    let mut d = data;
    while edits.len() < 8 && d.len() >= 6 {
        let sel = d[0];
        let off = u64::from(u32::from_le_bytes([d[1], d[2], d[3], d[4]]));
        let n = (d[5] as usize).min(d.len() - 6);
        let bytes = &d[6..6 + n];
        d = &d[6 + n..];
        let at = if sel == 255 || b.regions.is_empty() {
            (off << 12 | off & 0xfff) % b.len.max(1)
        } else {
            let (start, len) = b.regions[sel as usize % b.regions.len()];
            start + off % len
        };
        edits.push((at, bytes));
    }
    let Ok(core) = Vmcore::open_with_edits(&b.path, &edits) else {
        return;
    };
    let Ok(out) = ktstr_cli::capture_core(&core, &b.path, &Default::default(), &Default::default())
    else {
        return;
    };
    let any = FailureDumpReportAny::Single(out.report);
    let _ = ktstr_cli::report_has_error_exit(&any);
    let _ = ktstr_cli::report_core_unread(&any);
    // The human rendering must not panic either, and the JSON reads back.
    let _ = any.to_string();
    let json = any.to_json().expect("the dump serializes");
    assert!(
        FailureDumpReportAny::from_slice(json.as_bytes()).is_ok(),
        "the dump reads back"
    );
});
