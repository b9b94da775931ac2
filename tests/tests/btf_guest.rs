//! btf-walk on a real frozen guest: the sched_ext kernel under QEMU with the lab's `ok`
//! scheduler attached, on both kernel lines (7.3, and the 6.12 LTS: `guest_btf_612_*`).
//!
//! - The kernel's BTF read from guest memory (`__start_BTF..__stop_BTF` through the
//!   guest's own kallsyms) equals the BTF of the kernel image on disk.
//! - The scheduler's `sched_ext_ops` rendered through BTF (7.3: `*scx_root`, a
//!   `struct scx_sched`; 6.12: the global `scx_ops`) names the scheduler the guest's
//!   sysfs names.
//! - The scheduler's `.data`, `.rodata` and `.bss` maps, found through `map_idr`, rendered
//!   with the BPF object's own BTF (`bpf_map.btf`, loaded from guest memory and cached per
//!   address), agree with what the guest's `bpftool -j map dump` printed before the freeze.

use std::time::Duration;

use btf_walk::{Btf, GuestBtfCache, RenderOptions, Renderer};
use dump_schema::RenderedValue as V;
use e2e_tests::guest::{GuestLab, KernelLine};
use freeze::Engine;
use freeze::qemu::LineMark;
use guest_lab::{
    ConsoleLog, GuestCommand, HookPoint, RunEnd, RunSpec, SchedulerChoice, TestScheduler,
};
use guest_mem::{Kernel, KernelOptions, Kva, KvaReadExt, PhysMem};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(300);

/// For every map named `*.data`, `*.rodata` or `*.bss`: one JSON line with its id, name
/// and `bpftool -j map dump`.
const MAP_DUMP: &str = "bpftool map show | awk '$3==\"name\"{print $1, $4}' | tr -d : \
    | while read id name; do case \"$name\" in *.data|*.rodata|*.bss) \
    echo \"{\\\"id\\\":$id,\\\"name\\\":\\\"$name\\\",\\\"dump\\\":$(bpftool -j map dump id $id)}\";; \
    esac; done";

/// Every entry of an xarray (bounded; the walk is a test helper, not product code).
fn xa_entries(k: &Kernel, btf: &Btf, head: u64, out: &mut Vec<u64>) {
    let shift_off = btf.offset_of("xa_node.shift").unwrap();
    let slots = btf.field_by_path("xa_node.slots").unwrap();
    let (_, nslots) = btf.array_of(slots.ty).unwrap();
    let mut stack = vec![(head, 0u32)];
    while let Some((entry, depth)) = stack.pop() {
        assert!(
            depth < 8 && out.len() < 100_000,
            "xarray walk out of bounds"
        );
        if entry == 0 {
            continue;
        }
        if entry & 3 == 2 && entry > 4096 {
            let node = entry - 2;
            let _shift = k.read_u8(Kva(node + shift_off)).unwrap();
            for i in 0..nslots as u64 {
                let e = k.read_u64(Kva(node + slots.offset() + 8 * i)).unwrap();
                stack.push((e, depth + 1));
            }
        } else if entry & 3 == 0 {
            out.push(entry);
        }
    }
}

/// A member by name, looking through anonymous members (named "").
fn member<'a>(members: &'a [dump_schema::RenderedMember], name: &str) -> Option<&'a V> {
    for m in members {
        if m.name == name {
            return Some(&m.value);
        }
        if m.name.is_empty()
            && let V::Struct { members: inner, .. } = &m.value
            && let Some(v) = member(inner, name)
        {
            return Some(v);
        }
    }
    None
}

fn chars_to_string(elements: &[V]) -> String {
    elements
        .iter()
        .map_while(|e| match e {
            V::Char { value } if *value != 0 => Some(*value as char),
            _ => None,
        })
        .collect()
}

/// Compares our rendering with bpftool's formatted JSON. `monotonic` allows our unsigned
/// values to be larger (counters that moved between the guest's print and the freeze).
fn compare(
    path: &str,
    ours: &V,
    theirs: &Value,
    monotonic: bool,
    bad: &mut Vec<String>,
    n: &mut usize,
) {
    macro_rules! mismatch {
        ($($t:tt)*) => { bad.push(format!("{path}: {}", format!($($t)*))) };
    }
    match (ours, theirs) {
        (V::Struct { type_name, members }, Value::Object(o)) => {
            // A data section: bpftool prints {".data": [{"var": value}, ...]}; any other
            // struct as an object of its members.
            let section = type_name.as_deref().filter(|t| t.starts_with('.'));
            let vars = section.map(|sec| {
                o.get(sec)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            });
            if let Some(vars) = &vars
                && vars.len() != members.len()
            {
                mismatch!("{} variables, bpftool {}", members.len(), vars.len());
            }
            for (i, m) in members.iter().enumerate() {
                let (tv, missing) = match &vars {
                    Some(vars) => {
                        let Some(v) = vars.get(i) else { break };
                        let why = format!("our variable {} is not bpftool's {v}", m.name);
                        (v.get(&m.name), why)
                    }
                    None => {
                        let why = format!("member {} missing in bpftool's output", m.name);
                        (o.get(&m.name), why)
                    }
                };
                match tv {
                    Some(tv) => {
                        let at = format!("{path}.{}", m.name);
                        compare(&at, &m.value, tv, monotonic, bad, n);
                    }
                    None => mismatch!("{missing}"),
                }
            }
        }
        (V::Array { elements, .. }, Value::String(s)) => {
            *n += 1;
            if &chars_to_string(elements) != s {
                mismatch!("chars {:?} vs {s:?}", chars_to_string(elements));
            }
        }
        (V::Array { elements, .. }, Value::Array(a)) => {
            for (i, (e, t)) in elements.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), e, t, monotonic, bad, n);
            }
        }
        (V::Uint { value, .. }, Value::Number(t)) => {
            *n += 1;
            let t = t.as_u64().unwrap_or(u64::MAX);
            if !(*value == t || monotonic && *value > t) {
                mismatch!("{value} vs {t}");
            }
        }
        (V::Int { value, .. }, Value::Number(t)) => {
            *n += 1;
            if Some(*value) != t.as_i64() {
                mismatch!("{value} vs {t}");
            }
        }
        (V::Bool { value }, Value::Bool(t)) => {
            *n += 1;
            if value != t {
                mismatch!("{value} vs {t}");
            }
        }
        (
            V::Enum {
                variant: Some(v), ..
            },
            Value::String(t),
        ) => {
            *n += 1;
            if v != t {
                mismatch!("{v} vs {t}");
            }
        }
        (o, t) => mismatch!("ours {o:?} vs bpftool {t}"),
    }
}

#[test]
fn guest_btf_scx_root_and_map_values() {
    btf_scheduler_and_map_values(KernelLine::Current);
}

#[test]
fn guest_btf_612_scx_ops_and_map_values() {
    btf_scheduler_and_map_values(KernelLine::Lts612);
}

/// Offsets by name that must agree between the BTF from guest memory and the image's:
/// the walkers' common paths, and what only this line's layout has.
fn offset_paths(line: KernelLine) -> Vec<&'static str> {
    let mut paths = vec![
        "rq.scx.runnable_list",
        "task_struct.scx.dsq_list",
        "bpf_map.name",
        "bpf_array.value",
        "sched_ext_ops.name",
    ];
    paths.extend_from_slice(match line {
        KernelLine::Current => &["scx_sched.exit_kind", "scx_rq.clock"],
        KernelLine::Lts612 => &["scx_rq.pnt_seq"],
    });
    paths
}

/// The attached scheduler's `sched_ext_ops`, rendered through BTF from where the line
/// keeps it: 7.3 `*scx_root` (a `struct scx_sched`, whose `ops` sits in an anonymous
/// union: found as C finds it); 6.12 the global `scx_ops` itself. Returns the ops'
/// members and the size of the rendering's JSON (which must round-trip).
fn rendered_ops(
    line: KernelLine,
    k: &Kernel,
    btf: &Btf,
) -> (Vec<dump_schema::RenderedMember>, usize) {
    let opts = RenderOptions {
        max_deref_depth: 1,
        nr_cpus: Some(k.nr_cpu_ids() as u32),
        ..RenderOptions::default()
    };
    let (ty, at) = match line {
        KernelLine::Current => {
            let root = k.read_u64(k.require_symbol("scx_root").unwrap()).unwrap();
            assert_ne!(root, 0, "scx_root is NULL with the ok scheduler attached");
            ("scx_sched", Kva(root))
        }
        KernelLine::Lts612 => ("sched_ext_ops", k.require_symbol("scx_ops").unwrap()),
    };
    let v = Renderer::new(btf, k, opts).render_at(btf.struct_by_name(ty).unwrap(), at);
    let json = serde_json::to_string(&v).unwrap();
    let back: V = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let V::Struct { type_name, members } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(type_name.as_deref(), Some(ty));
    let ops = match line {
        KernelLine::Current => match member(members, "ops").expect("scx_sched.ops") {
            V::Struct { members, .. } => members.clone(),
            ops => panic!("{ops:?}"),
        },
        KernelLine::Lts612 => members.clone(),
    };
    (ops, json.len())
}

/// The BTF from guest memory, the scheduler's ops rendered through it, and the
/// scheduler's data maps rendered through their own BTF, on the kernel of `line`.
fn btf_scheduler_and_map_values(line: KernelLine) {
    let Some(lab) = GuestLab::open_line(line) else {
        return;
    };
    lab.lab.ensure_host_packages().expect("host packages");
    let kernel = &lab.kernel;
    let spec = RunSpec::new()
        .scheduler(SchedulerChoice::test(TestScheduler::Ok))
        .command(
            HookPoint::AfterAttach,
            GuestCommand::new("btf-map-dump", MAP_DUMP),
        )
        .end(RunEnd::Hold);
    let mut guest = lab.boot_with(&spec, |cfg| {
        cfg.memory_mib = 1024;
        // `bpftool -j map dump` lines are longer than the console's 4 KiB line window:
        // they are read from the byte tail.
        cfg.console_tail_bytes = 1 << 20;
    });
    let (attached, m) = guest.wait_phase(LineMark::START, "scheduler-attached", TIMEOUT);
    guest.wait_phase(m, "end", TIMEOUT);
    let out = guest.freeze_now();
    assert!(out.all_parked());

    let log = ConsoleLog::parse(&guest.console_tail());
    let dumps: Vec<Value> = log
        .output("btf-map-dump")
        .expect("the guest's map dump")
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(dumps.len() >= 3, "guest printed {} map dumps", dumps.len());

    let phys = PhysMem::from_guest_memory(&guest.guest_ram()).expect("guest RAM");
    let k = Kernel::new(phys, KernelOptions::default()).expect("kernel in guest RAM");

    // 1. BTF from guest memory equals the image's.
    let from_file = Btf::from_file(&kernel.vmlinuz).unwrap();
    let btf = Btf::from_guest_symbols(&k, k.symbols()).expect("BTF from guest memory");
    assert_eq!(btf.type_count(), from_file.type_count());
    for p in offset_paths(line) {
        assert_eq!(
            btf.offset_of(p).unwrap(),
            from_file.offset_of(p).unwrap(),
            "{p}"
        );
    }

    // 2. The scheduler's ops rendered through BTF name the scheduler sysfs names.
    let (ops, json_len) = rendered_ops(line, &k, &btf);
    let Some(V::Array { elements, .. }) = member(&ops, "name") else {
        panic!("no ops.name")
    };
    let sysfs_ops = attached
        .split("ops=")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    assert_eq!(chars_to_string(elements), sysfs_ops);
    assert_eq!(sysfs_ops, TestScheduler::Ok.ops_name());
    println!("scheduler rendered: {json_len} bytes of JSON");

    // 3. Map values through the object's own BTF.
    let map_idr = k.require_symbol("map_idr").unwrap();
    let head = k
        .read_u64(Kva(map_idr.0 + btf.offset_of("idr.idr_rt.xa_head").unwrap()))
        .unwrap();
    let mut maps = Vec::new();
    xa_entries(&k, &btf, head, &mut maps);
    let name_off = btf.offset_of("bpf_map.name").unwrap();
    let btf_off = btf.offset_of("bpf_map.btf").unwrap();
    let vtid_off = btf.offset_of("bpf_map.btf_value_type_id").unwrap();
    let vsize_off = btf.offset_of("bpf_map.value_size").unwrap();
    let value_off = btf.offset_of("bpf_array.value").unwrap();
    let mut cache = GuestBtfCache::new(btf.clone()).unwrap();
    let mut checked = 0;
    let mut values = 0;
    for d in &dumps {
        let name = d["name"].as_str().unwrap();
        let map = maps
            .iter()
            .copied()
            .find(|&m| k.read_cstr(Kva(m + name_off), 16).unwrap() == name)
            .unwrap_or_else(|| panic!("map {name} not in map_idr ({} maps)", maps.len()));
        let obj_btf = cache
            .get(&k, Kva(k.read_u64(Kva(map + btf_off)).unwrap()))
            .expect("map BTF from guest memory");
        let vtid = btf_walk::TypeId(k.read_u32(Kva(map + vtid_off)).unwrap());
        let vsize = k.read_u32(Kva(map + vsize_off)).unwrap();
        let mut bytes = vec![0u8; vsize as usize];
        guest_mem::KvaRead::read_kva(&k, Kva(map + value_off), &mut bytes).unwrap();
        let ours = Renderer::new(&obj_btf, &k, RenderOptions::default()).render_bytes(vtid, &bytes);
        let theirs = &d["dump"][0]["formatted"]["value"];
        assert!(
            !theirs.is_null(),
            "bpftool printed no formatted value for {name}: {d}"
        );
        let mut bad = Vec::new();
        compare(
            name,
            &ours,
            theirs,
            name.ends_with(".bss"),
            &mut bad,
            &mut values,
        );
        assert!(
            bad.is_empty(),
            "{name} disagrees with bpftool:\n{}",
            bad.join("\n")
        );
        checked += 1;
    }
    println!("{checked} maps, {values} values agree with the guest's bpftool");
    assert!(checked >= 3 && values >= 10);
    guest.thaw_now();
}
