//! Damage to a real vmcore: where its parts are in the file (ELF and program headers,
//! notes, VMCOREINFO values, page tables, the kernel's BTF, kallsyms, the scheduler's
//! `scx_sched`, runqueues, tasks, maps), and the named cases that damage each of them,
//! plus seeded random pages. Used by the `cli_hostile` test (against the `ktstr`
//! binary) and by the `capture` fuzz target of `crates/ktstr-cli/fuzz` (which picks
//! among the same regions).
#![allow(dead_code)]

use std::path::Path;

use dump_schema::FailureDumpReport;
use guest_mem::vmcore::VmcoreLayout;
use guest_mem::{Gpa, Kernel, KernelOptions, Kva, PhysRead, Vmcore};

/// One damaged variant of the vmcore: byte edits at file offsets, or the file cut short.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub edits: Vec<(u64, Vec<u8>)>,
    /// Keep only the first this many bytes (a truncated copy instead of edits).
    pub truncate: Option<u64>,
}

impl Case {
    fn edit(name: impl Into<String>, edits: Vec<(u64, Vec<u8>)>) -> Case {
        Case {
            name: name.into(),
            edits,
            truncate: None,
        }
    }
}

/// Where the parts of a vmcore are, as file offsets.
pub struct Map {
    pub len: u64,
    pub layout: VmcoreLayout,
    parts: Vec<(Gpa, u64, u64)>,
    pub kernel: Kernel,
    /// The VMCOREINFO note's descriptor: (file offset, bytes).
    pub vmcoreinfo: Option<(u64, Vec<u8>)>,
}

/// A small deterministic generator (xorshift64*): cases are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

impl Map {
    /// Reads the pristine vmcore at `path` (its kernel must be found).
    pub fn new(path: &Path) -> Map {
        let core = Vmcore::open(path).expect("the lab vmcore opens");
        let kernel = core
            .kernel(KernelOptions::default())
            .expect("the lab vmcore has a kernel");
        let layout = core.layout().clone();
        let vmcoreinfo = layout
            .notes
            .iter()
            .find(|n| n.name == "VMCOREINFO")
            .and_then(|n| {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(path).ok()?;
                f.seek(SeekFrom::Start(n.desc_offset)).ok()?;
                let mut b = vec![0u8; n.desc_len.min(1 << 20) as usize];
                f.read_exact(&mut b).ok()?;
                Some((n.desc_offset, b))
            });
        Map {
            len: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            parts: layout.memory_parts(),
            layout,
            kernel,
            vmcoreinfo,
        }
    }

    /// File offset of guest-physical `gpa`.
    pub fn gpa_off(&self, gpa: Gpa) -> Option<u64> {
        self.parts
            .iter()
            .find(|(g, _, len)| gpa.0 >= g.0 && gpa.0 < g.0 + len)
            .map(|(g, off, _)| off + (gpa.0 - g.0))
    }

    /// File offset of kernel address `kva`.
    pub fn kva_off(&self, kva: Kva) -> Option<u64> {
        self.gpa_off(self.kernel.translate(kva).ok()?)
    }

    /// File offset of the 4 KiB page holding `kva`.
    pub fn page_off(&self, kva: Kva) -> Option<u64> {
        self.kva_off(Kva(kva.0 & !0xfff))
    }

    pub fn sym(&self, name: &str) -> Option<Kva> {
        self.kernel.symbol(name)
    }

    /// The page-table pages (file offsets, top level first) on the way to `kva`.
    pub fn table_pages(&self, kva: Kva) -> Vec<u64> {
        let mut out = Vec::new();
        let Some(mut table) = self.kernel.page_table_root() else {
            return out;
        };
        let mut level = self.kernel.paging_mode().levels();
        while level >= 1 {
            if let Some(off) = self.gpa_off(table) {
                out.push(off);
            }
            let shift = 12 + 9 * (u32::from(level) - 1);
            let index = (kva.0 >> shift) & 0x1ff;
            let Ok(entry) = self.kernel.phys().read_phys_u64(Gpa(table.0 + index * 8)) else {
                break;
            };
            if entry & 1 == 0 || level == 1 || entry & 0x80 != 0 {
                break;
            }
            table = Gpa(entry & 0x000f_ffff_ffff_f000);
            level -= 1;
        }
        out
    }

    /// File offset and length of `KEY=value` in the VMCOREINFO note (the value part).
    pub fn vmcoreinfo_value(&self, key: &str) -> Option<(u64, usize)> {
        let (off, text) = self.vmcoreinfo.as_ref()?;
        let needle = format!("{key}=");
        let mut at = 0usize;
        for line in text.split(|&b| b == b'\n') {
            if line.starts_with(needle.as_bytes()) {
                return Some((*off + (at + needle.len()) as u64, line.len() - needle.len()));
            }
            at += line.len() + 1;
        }
        None
    }

    /// The kernel's BTF: file offset of its header.
    pub fn btf_off(&self) -> Option<u64> {
        self.kva_off(self.sym("__start_BTF")?)
    }

    /// Pages the walkers read for the dump (from the baseline report and the symbols):
    /// where damage changes the report rather than being ignored.
    pub fn hot_pages(&self, base: &FailureDumpReport) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = Vec::new();
        let mut add = |what: String, kva: Kva| {
            if let Some(off) = self.page_off(kva)
                && !v.iter().any(|(_, o)| *o == off)
            {
                v.push((what, off));
            }
        };
        if let Some(s) = &base.scx_sched_state {
            add("scx_sched".into(), Kva(s.sched_kva));
        }
        for sym in [
            "scx_root",
            "scx_tasks",
            "init_task",
            "map_idr",
            "prog_idr",
            "nr_cpu_ids",
            "__per_cpu_offset",
            "cgrp_dfl_root",
            "node_data",
        ] {
            if let Some(a) = self.sym(sym) {
                add(sym.into(), a);
            }
        }
        for cpu in 0..self.kernel.nr_cpu_ids() {
            if let Ok(rq) = self.kernel.per_cpu_symbol("runqueues", cpu) {
                add(format!("runqueues[{cpu}]"), rq);
            }
        }
        for t in &base.task_enrichments {
            add(format!("task {} {}", t.pid, t.comm), Kva(t.task_kva));
        }
        for m in &base.maps {
            add(format!("map {}", m.name), Kva(m.map_kva));
        }
        for d in &base.dsq_states {
            for &t in &d.task_kvas {
                add(format!("task on DSQ {}", d.origin), Kva(t));
            }
        }
        v
    }

    /// Regions worth damaging, as (file offset, length): the headers and notes, the
    /// VMCOREINFO note, the BTF header and first types, the kallsyms tables, the
    /// page-table root, and the hot pages of `base`. The fuzz target picks among them.
    pub fn regions(&self, base: &FailureDumpReport) -> Vec<(u64, u64)> {
        let mut v = vec![(0u64, 0x2000u64.min(self.len))];
        if let Some((off, t)) = &self.vmcoreinfo {
            v.push((*off, t.len() as u64));
        }
        if let Some(b) = self.btf_off() {
            v.push((b, 0x1_0000));
        }
        for name in [
            "kallsyms_num_syms",
            "kallsyms_names",
            "kallsyms_token_table",
            "kallsyms_offsets",
        ] {
            if let Some(off) = self
                .kernel
                .vmcoreinfo()
                .symbol(name)
                .and_then(|a| self.kva_off(Kva(a)))
            {
                v.push((off, 0x1000));
            }
        }
        if let Some(off) = self.kernel.page_table_root().and_then(|r| self.gpa_off(r)) {
            v.push((off, 0x1000));
        }
        v.extend(
            self.hot_pages(base)
                .into_iter()
                .map(|(_, off)| (off, 0x1000)),
        );
        v.retain(|(off, len)| *len > 0 && off + len <= self.len);
        v
    }

    /// Every damage case, named, in a fixed order.
    pub fn cases(&self, base: &FailureDumpReport) -> Vec<Case> {
        let mut c = Vec::new();
        self.elf_cases(&mut c);
        self.note_cases(&mut c);
        self.vmcoreinfo_cases(&mut c);
        self.page_table_cases(&mut c, base);
        self.btf_cases(&mut c);
        self.kallsyms_cases(&mut c);
        self.scx_cases(&mut c, base);
        self.random_cases(&mut c, base, 48);
        for n in [0u64, 63, 4096, 1 << 20, 16 << 20] {
            c.push(Case {
                name: format!("truncated to {n} bytes"),
                edits: Vec::new(),
                truncate: Some(n),
            });
        }
        c
    }

    fn elf_cases(&self, c: &mut Vec<Case>) {
        let e = |name: &str, off: u64, b: &[u8]| {
            Case::edit(format!("elf: {name}"), vec![(off, b.to_vec())])
        };
        c.push(e("magic", 0, b"\x7fELG"));
        c.push(e("ELFCLASS32", 4, &[1]));
        c.push(e("big endian", 5, &[2]));
        c.push(e("e_machine aarch64", 0x12, &183u16.to_le_bytes()));
        c.push(e("e_phoff past the end", 0x20, &u64::MAX.to_le_bytes()));
        c.push(e(
            "e_phoff inside the data",
            0x20,
            &0x10_0000u64.to_le_bytes(),
        ));
        c.push(e("e_phentsize 32", 0x36, &32u16.to_le_bytes()));
        c.push(e("e_phnum 0", 0x38, &0u16.to_le_bytes()));
        c.push(e("e_phnum 60000", 0x38, &60000u16.to_le_bytes()));
        c.push(Case::edit(
            "elf: PN_XNUM with e_shoff past the end",
            vec![
                (0x38, 0xffffu16.to_le_bytes().to_vec()),
                (0x28, u64::MAX.to_le_bytes().to_vec()),
            ],
        ));
        let phoff = 64u64;
        let nph = (self.layout.segments.len() + 1).min(4) as u64;
        for i in 0..nph {
            let ph = phoff + i * 56;
            let p = |f: &str, o: u64, b: Vec<u8>| {
                Case::edit(format!("phdr {i}: {f}"), vec![(ph + o, b)])
            };
            c.push(p("p_type 0", 0, 0u32.to_le_bytes().to_vec()));
            c.push(p(
                "p_offset past the end",
                8,
                (u64::MAX - 4096).to_le_bytes().to_vec(),
            ));
            c.push(p("p_offset 0", 8, 0u64.to_le_bytes().to_vec()));
            c.push(p(
                "p_paddr overflows",
                24,
                (u64::MAX - 4096).to_le_bytes().to_vec(),
            ));
            c.push(p("p_paddr 1 TiB", 24, (1u64 << 40).to_le_bytes().to_vec()));
            c.push(p(
                "p_filesz past the end",
                32,
                (self.len * 2).to_le_bytes().to_vec(),
            ));
            c.push(p("p_filesz 4096", 32, 4096u64.to_le_bytes().to_vec()));
            c.push(p("p_memsz huge", 40, (1u64 << 50).to_le_bytes().to_vec()));
        }
    }

    fn note_cases(&self, c: &mut Vec<Case>) {
        for (i, n) in self.layout.notes.iter().enumerate() {
            let namesz = (n.name.len() + 1) as u64;
            let head = n.desc_offset - namesz.div_ceil(4) * 4 - 12;
            let label = format!("note {i} {}", n.name);
            let e =
                |f: &str, off: u64, b: Vec<u8>| Case::edit(format!("{label}: {f}"), vec![(off, b)]);
            c.push(e("namesz huge", head, u32::MAX.to_le_bytes().to_vec()));
            c.push(e("descsz huge", head + 4, u32::MAX.to_le_bytes().to_vec()));
            c.push(e("descsz 8", head + 4, 8u32.to_le_bytes().to_vec()));
            c.push(e("name damaged", head + 12, b"X".to_vec()));
            c.push(e("type 0", head + 8, 0u32.to_le_bytes().to_vec()));
            c.push(e(
                "descriptor zeroed",
                n.desc_offset,
                vec![0u8; n.desc_len.min(4096) as usize],
            ));
        }
        let cpu_notes: Vec<_> = self
            .layout
            .notes
            .iter()
            .filter(|n| n.name == "CORE" || n.name == "QEMU")
            .map(|n| {
                (
                    n.desc_offset - (n.name.len() as u64 + 1).div_ceil(4) * 4,
                    b"X".to_vec(),
                )
            })
            .collect();
        c.push(Case::edit(
            "notes: every CPU note's name damaged",
            cpu_notes,
        ));
    }

    fn vmcoreinfo_cases(&self, c: &mut Vec<Case>) {
        let mut v = |key: &str, what: &str, f: &dyn Fn(usize) -> Vec<u8>| {
            if let Some((off, len)) = self.vmcoreinfo_value(key) {
                c.push(Case::edit(
                    format!("VMCOREINFO {key}: {what}"),
                    vec![(off, f(len))],
                ));
            }
        };
        fn hex(s: &'static str) -> impl Fn(usize) -> Vec<u8> {
            move |len| format!("{s:0>len$}").into_bytes()[..len].to_vec()
        }
        // A wrong page-table root: another page of the kernel image.
        v("SYMBOL(init_top_pgt)", "wrong page-table root", &|len| {
            let mut b = vec![b'0'; len];
            b[..8].copy_from_slice(b"ffffffff");
            b[8] = b'8';
            b[9] = b'c';
            b
        });
        v("SYMBOL(swapper_pg_dir)", "wrong", &hex("ffffffff8c000000"));
        v("NUMBER(phys_base)", "garbage", &|len| vec![b'9'; len]);
        v("NUMBER(phys_base)", "0", &|len| {
            let mut b = vec![b' '; len];
            b[0] = b'0';
            b
        });
        v("KERNELOFFSET", "garbage", &|len| vec![b'f'; len]);
        v("KERNELOFFSET", "0", &|len| vec![b'0'; len]);
        v("NUMBER(pgtable_l5_enabled)", "flipped", &|_| b"0".to_vec());
        v("OSRELEASE", "garbage", &|len| vec![b'\xff'; len]);
        v("PAGESIZE", "garbage", &|len| vec![b'x'; len]);
        for k in [
            "SYMBOL(kallsyms_names)",
            "SYMBOL(kallsyms_num_syms)",
            "SYMBOL(kallsyms_token_table)",
            "SYMBOL(kallsyms_token_index)",
            "SYMBOL(kallsyms_offsets)",
            "SYMBOL(_stext)",
        ] {
            v(k, "off by a page", &|len| {
                let mut b = vec![b'0'; len];
                b[..8].copy_from_slice(b"ffffffff");
                b[8] = b'9';
                b
            });
        }
        if let Some((off, text)) = &self.vmcoreinfo {
            c.push(Case::edit(
                "VMCOREINFO: note text zeroed",
                vec![(*off, vec![0u8; text.len()])],
            ));
            c.push(Case::edit(
                "VMCOREINFO: newlines removed",
                vec![(
                    *off,
                    text.iter()
                        .map(|&b| if b == b'\n' { b' ' } else { b })
                        .collect(),
                )],
            ));
        }
    }

    fn page_table_cases(&self, c: &mut Vec<Case>, base: &FailureDumpReport) {
        let mut probes: Vec<(String, Kva)> = Vec::new();
        if let Some(r) = base.vcpu_regs.first().and_then(|r| r.as_ref()) {
            probes.push(("CPU 0's stack".into(), Kva(r.stack_pointer)));
        }
        for m in &base.maps {
            if let Some(a) = &m.arena {
                probes.push(("the arena".into(), Kva(a.kern_vm_start)));
            }
        }
        if let Ok(pc) = self.kernel.per_cpu_symbol("runqueues", 0) {
            probes.push(("runqueues[0]".into(), pc));
        }
        let mut seen = Vec::new();
        for (what, kva) in probes {
            for (lvl, off) in self.table_pages(kva).into_iter().enumerate() {
                if seen.contains(&off) {
                    continue;
                }
                seen.push(off);
                let name = if lvl == 0 {
                    "page tables: the root table".to_string()
                } else {
                    format!("page tables: level-{lvl} table below the root toward {what}")
                };
                c.push(Case::edit(
                    format!("{name} zeroed"),
                    vec![(off, vec![0u8; 4096])],
                ));
                c.push(Case::edit(
                    format!("{name} 0xff"),
                    vec![(off, vec![0xffu8; 4096])],
                ));
            }
        }
        // The kernel half of the root (entries 256..512): what every process shares.
        if let Some(off) = self.kernel.page_table_root().and_then(|r| self.gpa_off(r)) {
            c.push(Case::edit(
                "page tables: the root's kernel half zeroed",
                vec![(off + 2048, vec![0u8; 2048])],
            ));
        }
    }

    fn btf_cases(&self, c: &mut Vec<Case>) {
        let Some(b) = self.btf_off() else { return };
        let e =
            |f: &str, o: u64, v: Vec<u8>| Case::edit(format!("BTF header: {f}"), vec![(b + o, v)]);
        c.push(e("type_len 0", 12, 0u32.to_le_bytes().to_vec()));
        c.push(e("magic", 0, vec![0, 0]));
        c.push(e("version 2", 2, vec![2]));
        c.push(e("hdr_len huge", 4, u32::MAX.to_le_bytes().to_vec()));
        c.push(e(
            "type_off huge",
            8,
            (u32::MAX - 64).to_le_bytes().to_vec(),
        ));
        c.push(e("type_len odd", 12, 4097u32.to_le_bytes().to_vec()));
        c.push(e("str_off 0", 16, 0u32.to_le_bytes().to_vec()));
        c.push(e("str_len huge", 20, u32::MAX.to_le_bytes().to_vec()));
        c.push(e("str_len 0", 20, 0u32.to_le_bytes().to_vec()));
        c.push(e("header zeroed", 0, vec![0u8; 24]));
        c.push(Case::edit(
            "BTF types: the first 4 KiB 0xff",
            vec![(b + 24, vec![0xffu8; 4096])],
        ));
        c.push(Case::edit(
            "BTF types: 64 KiB in the middle zeroed",
            vec![(b + (1 << 20), vec![0u8; 1 << 16])],
        ));
    }

    fn kallsyms_cases(&self, c: &mut Vec<Case>) {
        let info = self.kernel.vmcoreinfo();
        for (name, len) in [
            ("kallsyms_num_syms", 4usize),
            ("kallsyms_names", 4096),
            ("kallsyms_token_table", 1024),
            ("kallsyms_token_index", 512),
            ("kallsyms_offsets", 4096),
        ] {
            let Some(off) = info.symbol(name).and_then(|a| self.kva_off(Kva(a))) else {
                continue;
            };
            c.push(Case::edit(
                format!("kallsyms: {name} 0xff"),
                vec![(off, vec![0xff; len])],
            ));
            c.push(Case::edit(
                format!("kallsyms: {name} zeroed"),
                vec![(off, vec![0; len])],
            ));
        }
    }

    fn scx_cases(&self, c: &mut Vec<Case>, base: &FailureDumpReport) {
        if let Some(s) = &base.scx_sched_state
            && let Some(off) = self.page_off(Kva(s.sched_kva))
        {
            c.push(Case::edit(
                "scx_sched page 0xff",
                vec![(off, vec![0xff; 4096])],
            ));
            c.push(Case::edit(
                "scx_sched page zeroed",
                vec![(off, vec![0; 4096])],
            ));
            c.push(Case::edit(
                "scx_sched page random",
                vec![(off, Rng::new(7).bytes(4096))],
            ));
        }
        if let Some(off) = self.sym("scx_root").and_then(|a| self.kva_off(a)) {
            for (what, v) in [
                ("non-canonical", 0xdead_beef_0000_0000u64),
                ("NULL", 0),
                ("unmapped", 0xffff_c900_dead_0000),
                ("odd", 0xffff_8880_0000_0001),
            ] {
                c.push(Case::edit(
                    format!("scx_root {what}"),
                    vec![(off, v.to_le_bytes().to_vec())],
                ));
            }
        }
        for (sym, v) in [
            ("nr_cpu_ids", u32::MAX.to_le_bytes().to_vec()),
            ("nr_cpu_ids", 0u32.to_le_bytes().to_vec()),
            ("__per_cpu_offset", vec![0xff; 64]),
            ("scx_tasks", 0xdead_0000_0000_0000u64.to_le_bytes().to_vec()),
            ("init_task", vec![0xff; 4096]),
            ("map_idr", vec![0xff; 64]),
            ("prog_idr", vec![0xff; 64]),
            ("cgrp_dfl_root", vec![0xff; 4096]),
            ("nr_threads", u32::MAX.to_le_bytes().to_vec()),
        ] {
            if let Some(off) = self.sym(sym).and_then(|a| self.kva_off(a)) {
                c.push(Case::edit(
                    format!("{sym} damaged ({} bytes)", v.len()),
                    vec![(off, v)],
                ));
            }
        }
        for cpu in 0..self.kernel.nr_cpu_ids().min(4) {
            if let Some(off) = self
                .kernel
                .per_cpu_symbol("runqueues", cpu)
                .ok()
                .and_then(|a| self.page_off(a))
            {
                c.push(Case::edit(
                    format!("runqueues[{cpu}] page 0xff"),
                    vec![(off, vec![0xff; 4096])],
                ));
            }
        }
        for m in &base.maps {
            if let Some(off) = self.page_off(Kva(m.map_kva)) {
                c.push(Case::edit(
                    format!("map {} page 0xff", m.name),
                    vec![(off, vec![0xff; 4096])],
                ));
            }
        }
        let queued: Vec<u64> = base
            .dsq_states
            .iter()
            .filter(|d| d.origin == "user")
            .flat_map(|d| d.task_kvas.iter().copied())
            .collect();
        let offs: Vec<(u64, Vec<u8>)> = queued
            .iter()
            .filter_map(|&t| self.page_off(Kva(t)))
            .map(|o| (o, vec![0xff; 4096]))
            .collect();
        if !offs.is_empty() {
            c.push(Case::edit("tasks on user DSQs: their pages 0xff", offs));
        }
        // Tasks in the middle of the task lists.
        let tasks = &base.task_enrichments;
        for i in [tasks.len() / 3, tasks.len() / 2] {
            if let Some(t) = tasks.get(i)
                && let Some(off) = self.page_off(Kva(t.task_kva))
            {
                c.push(Case::edit(
                    format!("task {} ({}) page 0xff", t.pid, t.comm),
                    vec![(off, vec![0xff; 4096])],
                ));
            }
        }
    }

    /// `n` cases of seeded random damage: four hot pages (see [`Map::hot_pages`]) and
    /// four pages anywhere, random bytes each.
    fn random_cases(&self, c: &mut Vec<Case>, base: &FailureDumpReport, n: u64) {
        let hot = self.hot_pages(base);
        let pages = self.len / 4096;
        for seed in 1..=n {
            let mut r = Rng::new(seed);
            let mut edits = Vec::new();
            let mut what = Vec::new();
            for _ in 0..4 {
                if hot.is_empty() {
                    break;
                }
                let (w, off) = &hot[r.below(hot.len() as u64) as usize];
                let at = r.below(4096 - 64);
                let len = 1 + r.below(64) as usize;
                edits.push((off + at, r.bytes(len)));
                what.push(w.clone());
            }
            for _ in 0..4 {
                let off = r.below(pages) * 4096;
                edits.push((off, r.bytes(4096)));
            }
            c.push(Case::edit(
                format!("random seed {seed} ({})", what.join(", ")),
                edits,
            ));
        }
    }
}
