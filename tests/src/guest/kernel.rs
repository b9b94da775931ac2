//! Guest RAM read as a kernel with its BTF, and the capture on it.

use std::collections::{BTreeMap, BTreeSet};

use btf_walk::Btf;
use dump_schema::FailureDumpReport;
use freeze::{CpuRegs, GuestRam};
use guest_mem::{Kernel as GuestKernel, KernelOptions, Kva, KvaReadExt, PhysMem};
use scx_walk::render::BtfRenderer;
use scx_walk::{CaptureOptions, CaptureOutput, KernelView, Target, TriggerLocation};

/// A guest's RAM (live or frozen) as a kernel, its BTF (read from the guest's own
/// `__start_BTF..__stop_BTF`), and the vCPU registers of the freeze it was taken at
/// (empty for a live view).
pub struct LoadedKernel {
    pub k: GuestKernel,
    pub btf: Btf,
    pub vcpus: Vec<Option<CpuRegs>>,
}

impl LoadedKernel {
    /// Finds the kernel in `ram` (VMCOREINFO by scan) and loads its BTF. `vcpus` (from a
    /// freeze) give the page-table roots and per-CPU registers; pass `&[]` for a running
    /// guest.
    pub fn new(ram: &GuestRam, vcpus: &[Option<CpuRegs>]) -> LoadedKernel {
        let phys = PhysMem::from_guest_memory(ram).expect("mapping guest RAM");
        let opts = KernelOptions {
            cpus: vcpus.iter().flatten().copied().collect(),
            ..Default::default()
        };
        let k = GuestKernel::new(phys, opts).expect("finding the kernel in guest RAM");
        let start = k.require_symbol("__start_BTF").expect("__start_BTF");
        let stop = k.require_symbol("__stop_BTF").expect("__stop_BTF");
        let btf = Btf::from_guest(&k, start, stop).expect("loading BTF from guest memory");
        LoadedKernel {
            k,
            btf,
            vcpus: vcpus.to_vec(),
        }
    }

    /// The scx-walk view of this kernel.
    pub fn view(&self) -> KernelView<'_> {
        KernelView {
            mem: &self.k,
            syms: &self.k,
            types: &self.btf,
        }
    }

    /// `scx_walk::capture` with the real adapters (BTF renderer, this view's registers).
    /// Prints the phase times and the capture log, and checks that the report's JSON
    /// validates against `schema/any.json`.
    pub fn capture(&self, opts: &CaptureOptions) -> CaptureOutput {
        let renderer = BtfRenderer::new(&self.btf);
        let target = Target {
            kernel: self.view(),
            renderer: Some(&renderer),
            vcpu_regs: self.vcpus.clone(),
            second_thread: Some(scx_walk::SecondThread {
                kernel: &self.k,
                types: &self.btf,
                renderer: Some(&renderer),
            }),
        };
        let out = scx_walk::capture(&target, opts);
        if opts.deadline.is_none() {
            // The maps phase runs on two threads; one thread must read the same maps.
            let one = Target {
                second_thread: None,
                vcpu_regs: self.vcpus.clone(),
                ..target
            };
            let single = scx_walk::capture(&one, opts);
            assert_eq!(
                out.report.maps, single.report.maps,
                "maps captured on two threads differ from one thread's"
            );
        }
        let phases: Vec<String> = out
            .phases
            .iter()
            .map(|p| format!("{} {:.2} ms", p.name, p.elapsed.as_secs_f64() * 1e3))
            .collect();
        eprintln!("capture phases: {}", phases.join(", "));
        for l in &out.log {
            eprintln!("capture log: {l}");
        }
        let json = out.report.to_json().expect("serializing the report");
        dump_schema::validate::validate_report_json(&json)
            .expect("the dump validates against the schema");
        out
    }

    /// Where the scheduler's exit kind lives, resolved through symbols and BTF.
    pub fn trigger_location(&self) -> TriggerLocation {
        TriggerLocation::resolve(&self.view()).expect("resolving the trigger location")
    }

    /// Where the watch for an error exit polls (`scx_root->exit_kind`); scx-walk's
    /// capture rule decides ([`crate::guest::Guest::watch_error_exit`]).
    pub fn error_exit_trigger(&self) -> TriggerLocation {
        self.trigger_location()
    }

    /// The current exit kind (for failure messages): `Ok(None)` with no scheduler.
    pub fn error_exit_kind_now(&self) -> Result<Option<u32>, String> {
        self.trigger_location()
            .read_exit_kind(&self.view())
            .map_err(|e| e.to_string())
    }

    /// `offsetof` a BTF member path (`task_struct.pid`).
    pub fn offset(&self, path: &str) -> u64 {
        self.btf
            .offset_of(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The `u32` member `path` of the object at `base`.
    pub fn u32_at(&self, base: u64, path: &str) -> u32 {
        self.k
            .read_u32(Kva(base + self.offset(path)))
            .unwrap_or_else(|e| panic!("reading {path} at {base:#x}: {e}"))
    }

    /// The `u64` member `path` of the object at `base`.
    pub fn u64_at(&self, base: u64, path: &str) -> u64 {
        self.k
            .read_u64(Kva(base + self.offset(path)))
            .unwrap_or_else(|e| panic!("reading {path} at {base:#x}: {e}"))
    }

    /// The pid of every task a report names by address (runqueues' runnable lists and
    /// DSQs), read from this frozen guest: dumps name tasks by `task_struct` address.
    /// Addresses that do not read are left out.
    pub fn pids_of_report_tasks(&self, r: &FailureDumpReport) -> BTreeMap<u64, i32> {
        let pid_off = self.offset("task_struct.pid");
        let mut kvas: BTreeSet<u64> = BTreeSet::new();
        for rq in &r.rq_scx_states {
            kvas.extend(&rq.runnable_task_kvas);
        }
        for d in &r.dsq_states {
            kvas.extend(&d.task_kvas);
        }
        kvas.into_iter()
            .filter_map(|t| {
                let v = self.k.read_u32(Kva(t.checked_add(pid_off)?)).ok()?;
                Some((t, v as i32))
            })
            .collect()
    }
}
