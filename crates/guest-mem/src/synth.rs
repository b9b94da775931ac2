//! Synthetic x86_64 guests for tests, fuzzing and benchmarks.
//!
//! [`SynthGuest`] builds guest RAM with page tables of either depth and any page
//! size; [`SynthKernel`] lays out a small kernel on top of it the way Linux does
//! (image at `__START_KERNEL_map` + KASLR with `phys_base`, a direct map, per-CPU
//! areas in vmalloc space, `init_top_pgt`, kallsyms tables in any of the three
//! address forms, a VMCOREINFO note in RAM), so the decoders in this crate — and
//! walkers in other crates — can be exercised against inputs whose every byte the
//! test controls. These builders panic on misuse; they are not for guest data.

use crate::kallsyms::KallsymsAddrs;
use crate::phys::PhysMem;
use crate::x86::layout::START_KERNEL_MAP;
use crate::x86::paging::{PTE_ADDR_MASK, PagingMode};
use crate::{Gpa, Kva};

/// Page sizes a mapping can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }

    /// The level of the entry that maps it (1 = PTE, 2 = PDE, 3 = PDPTE).
    pub fn level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }
}

/// Present | writable.
const TABLE_FLAGS: u64 = 0x3;
/// Page-size bit.
const PS: u64 = 1 << 7;

/// Guest RAM at GPA 0 with page tables built by [`SynthGuest::map`].
#[derive(Debug, Clone)]
pub struct SynthGuest {
    /// Paging depth of the tables.
    pub mode: PagingMode,
    /// Guest RAM, GPA 0..len.
    pub ram: Vec<u8>,
    /// GPA of the top-level table.
    pub root: u64,
    next_table: u64,
    table_end: u64,
}

impl SynthGuest {
    /// `ram_size` bytes of zeroed RAM; page tables are allocated from
    /// `[tables_at, tables_at + tables_len)` (page aligned), the root first.
    pub fn new(mode: PagingMode, ram_size: usize, tables_at: u64, tables_len: u64) -> SynthGuest {
        assert!(tables_at.is_multiple_of(4096) && tables_at + tables_len <= ram_size as u64);
        let mut g = SynthGuest {
            mode,
            ram: vec![0; ram_size],
            root: 0,
            next_table: tables_at,
            table_end: tables_at + tables_len,
        };
        g.root = g.alloc_table();
        g
    }

    /// A zeroed page for a table.
    pub fn alloc_table(&mut self) -> u64 {
        assert!(self.next_table + 4096 <= self.table_end, "table area full");
        let t = self.next_table;
        self.next_table += 4096;
        t
    }

    /// Writes bytes at a GPA.
    pub fn write(&mut self, gpa: u64, bytes: &[u8]) {
        self.ram[gpa as usize..gpa as usize + bytes.len()].copy_from_slice(bytes);
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, gpa: u64, v: u64) {
        self.write(gpa, &v.to_le_bytes());
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, gpa: u64) -> u64 {
        u64::from_le_bytes(self.ram[gpa as usize..gpa as usize + 8].try_into().unwrap())
    }

    fn index(kva: u64, level: u8) -> u64 {
        (kva >> (12 + 9 * (u32::from(level) - 1))) & 0x1ff
    }

    /// GPA of the entry at `level` (top = 4 or 5 .. 1) on the way to `kva`, when
    /// the tables above it exist. Lets tests corrupt a specific entry.
    pub fn entry_gpa(&self, kva: Kva, level: u8) -> Option<u64> {
        let mut table = self.root;
        let mut l = self.mode.levels();
        loop {
            let e = table + Self::index(kva.0, l) * 8;
            if l == level {
                return Some(e);
            }
            let v = self.read_u64(e);
            if v & 1 == 0 || v & PS != 0 {
                return None;
            }
            table = v & PTE_ADDR_MASK;
            l -= 1;
        }
    }

    /// Rewrites the entry at `level` on the way to `kva` as `f(old)` (the tables above
    /// it must exist); returns the old entry.
    pub fn edit_entry(&mut self, kva: Kva, level: u8, f: impl FnOnce(u64) -> u64) -> u64 {
        let e = self
            .entry_gpa(kva, level)
            .unwrap_or_else(|| panic!("no level-{level} entry on the way to {kva:?}"));
        let old = self.read_u64(e);
        self.write_u64(e, f(old));
        old
    }

    /// Maps `kva` → `gpa` with one page of `size` (both aligned to it), creating
    /// intermediate tables.
    pub fn map(&mut self, kva: Kva, gpa: Gpa, size: PageSize) {
        let bytes = size.bytes();
        assert!(
            kva.0.is_multiple_of(bytes) && gpa.0.is_multiple_of(bytes),
            "unaligned mapping"
        );
        let mut table = self.root;
        let mut l = self.mode.levels();
        while l > size.level() {
            let e = table + Self::index(kva.0, l) * 8;
            let v = self.read_u64(e);
            table = if v & 1 != 0 {
                assert!(v & PS == 0, "mapping under a large page");
                v & PTE_ADDR_MASK
            } else {
                let t = self.alloc_table();
                self.write_u64(e, t | TABLE_FLAGS);
                t
            };
            l -= 1;
        }
        let e = table + Self::index(kva.0, l) * 8;
        let flags = if size == PageSize::Size4K {
            0x3
        } else {
            0x3 | PS
        };
        self.write_u64(e, gpa.0 | flags);
    }

    /// Maps `len` bytes with pages of `size`.
    pub fn map_range(&mut self, kva: Kva, gpa: Gpa, len: u64, size: PageSize) {
        let mut off = 0;
        while off < len {
            self.map(Kva(kva.0 + off), Gpa(gpa.0 + off), size);
            off += size.bytes();
        }
    }

    /// The RAM as [`PhysMem`] (a copy), optionally with holes cut out.
    pub fn phys(&self, holes: &[(u64, u64)]) -> PhysMem {
        let mut parts = Vec::new();
        let mut at = 0u64;
        let mut holes = holes.to_vec();
        holes.sort();
        for (start, len) in holes {
            if start > at {
                parts.push((Gpa(at), self.ram[at as usize..start as usize].to_vec()));
            }
            at = start + len;
        }
        if (at as usize) < self.ram.len() {
            parts.push((Gpa(at), self.ram[at as usize..].to_vec()));
        }
        PhysMem::from_buffers(parts).expect("synthetic ranges are valid")
    }
}

/// Which kallsyms address form a synthetic kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KallsymsForm {
    Absolute,
    RelativeBase,
    /// Relative base with `KALLSYMS_ABSOLUTE_PERCPU` (zero-based per-CPU symbols
    /// stored as non-negative absolute offsets).
    RelativeBaseAbsolutePercpu,
    PcRelative,
}

/// Parameters of a [`SynthKernel`].
#[derive(Debug, Clone)]
pub struct SynthKernelSpec {
    pub mode: PagingMode,
    /// KASLR shift of the image (multiple of 2 MiB).
    pub kaslr: u64,
    /// Direct-map base (1 GiB aligned).
    pub page_offset: u64,
    pub form: KallsymsForm,
    pub nr_cpus: u32,
    /// Extra symbols `(name, type)` placed after the built-in ones.
    pub extra_symbols: Vec<(String, char)>,
    /// Put the VMCOREINFO note in RAM (for scanning).
    pub note_in_ram: bool,
}

impl Default for SynthKernelSpec {
    fn default() -> Self {
        SynthKernelSpec {
            mode: PagingMode::Level4,
            kaslr: 0x2a00_0000,
            page_offset: 0xffff_9c00_0000_0000,
            form: KallsymsForm::PcRelative,
            nr_cpus: 4,
            extra_symbols: Vec::new(),
            note_in_ram: true,
        }
    }
}

/// Layout constants of a [`SynthKernel`] (offsets into the image).
pub mod image {
    /// GPA where the image is loaded.
    pub const PHYS: u64 = 0x100_0000;
    /// Image size (mapped with 2 MiB pages).
    pub const SIZE: u64 = 0x80_0000;
    pub const DATA: u64 = 0x20_0000;
    pub const INIT_TASK: u64 = DATA;
    /// Offset of `comm` in the synthetic `init_task`.
    pub const COMM: u64 = 0xd50;
    pub const PAGE_OFFSET_BASE: u64 = DATA + 0x4000;
    pub const NR_CPU_IDS: u64 = DATA + 0x4008;
    pub const PER_CPU_OFFSET: u64 = DATA + 0x5000;
    /// Start of the per-CPU template section (`__per_cpu_start`).
    pub const PERCPU_START: u64 = DATA + 0x10000;
    /// `runqueues` inside the per-CPU section.
    pub const RUNQUEUES: u64 = PERCPU_START + 0x800;
    pub const KALLSYMS: u64 = 0x30_0000;
    pub const TABLES: u64 = 0x60_0000;
    pub const TABLES_LEN: u64 = 0x20_0000;
    /// Guest RAM size.
    pub const RAM: usize = 0x300_0000;
    /// GPA of the VMCOREINFO note page.
    pub const NOTE_GPA: u64 = 0x9_0000;
    /// Per-CPU areas: GPAs (descending, one 64 KiB block per CPU below this).
    pub const PERCPU_PHYS_TOP: u64 = 0x2f0_0000;
    /// Per-CPU area size.
    pub const PERCPU_AREA: u64 = 0x1_0000;
}

/// A synthetic kernel: a [`SynthGuest`] with a Linux-like image inside.
#[derive(Debug, Clone)]
pub struct SynthKernel {
    pub spec: SynthKernelSpec,
    pub guest: SynthGuest,
    /// `_text`.
    pub text: Kva,
    /// `NUMBER(phys_base)`.
    pub phys_base: i64,
    /// Every symbol `(name, address, type)` in address order.
    pub symbols: Vec<(String, u64, char)>,
    /// `__per_cpu_offset[cpu]`.
    pub per_cpu_offsets: Vec<u64>,
    /// Base of the vmalloc area holding per-CPU areas.
    pub vmalloc_base: u64,
    /// The VMCOREINFO text.
    pub vmcoreinfo: String,
}

impl SynthKernel {
    /// Builds the kernel described by `spec`.
    pub fn build(spec: SynthKernelSpec) -> SynthKernel {
        use image::*;
        let mode = spec.mode;
        let text = START_KERNEL_MAP + 0x100_0000 + spec.kaslr;
        let phys_base = PHYS as i64 - (text - START_KERNEL_MAP) as i64;
        let mut g = SynthGuest::new(mode, RAM, PHYS + TABLES, TABLES_LEN);
        // The root table must be init_top_pgt, inside the image: it is (TABLES).
        g.map_range(Kva(text), Gpa(PHYS), SIZE, PageSize::Size2M);
        g.map(Kva(spec.page_offset), Gpa(0), PageSize::Size1G);
        let vmalloc_base = match mode {
            PagingMode::Level4 => 0xffff_c900_0000_0000,
            PagingMode::Level5 => 0xffa0_0000_0000_0000,
        };
        let va = |off: u64| text + off;
        let mut per_cpu_offsets = Vec::new();
        for cpu in 0..u64::from(spec.nr_cpus) {
            let area_va = vmalloc_base + cpu * 0x20_0000;
            let area_pa = PERCPU_PHYS_TOP - (cpu + 1) * PERCPU_AREA;
            // Map the 16 pages in reverse so the area is not physically linear.
            for p in 0..PERCPU_AREA / 4096 {
                g.map(
                    Kva(area_va + p * 4096),
                    Gpa(area_pa + PERCPU_AREA - 4096 - p * 4096),
                    PageSize::Size4K,
                );
            }
            per_cpu_offsets.push(area_va.wrapping_sub(va(PERCPU_START)));
        }
        // Data the readers look at.
        let w = |g: &mut SynthGuest, off: u64, b: &[u8]| g.write(PHYS + off, b);
        w(&mut g, INIT_TASK + COMM, b"swapper/0\0\0\0\0\0\0\0");
        w(&mut g, PAGE_OFFSET_BASE, &spec.page_offset.to_le_bytes());
        w(&mut g, NR_CPU_IDS, &spec.nr_cpus.to_le_bytes());
        for (i, o) in per_cpu_offsets.iter().enumerate() {
            w(&mut g, PER_CPU_OFFSET + 8 * i as u64, &o.to_le_bytes());
        }

        let symbols = synth_symbols(&spec, text);
        let tables = encode_kallsyms(&symbols, spec.form, va(KALLSYMS));
        w(&mut g, KALLSYMS, &tables.bytes);
        let vmcoreinfo = synth_vmcoreinfo(&spec, text, phys_base, &tables);
        if spec.note_in_ram {
            g.write(NOTE_GPA, &vmcoreinfo_note(&vmcoreinfo));
        }
        SynthKernel {
            spec,
            guest: g,
            text: Kva(text),
            phys_base,
            symbols,
            per_cpu_offsets,
            vmalloc_base,
            vmcoreinfo,
        }
    }

    /// The address of a symbol of this kernel.
    pub fn symbol(&self, name: &str) -> Kva {
        Kva(self
            .symbols
            .iter()
            .find(|s| s.0 == name)
            .expect("known symbol")
            .1)
    }
}

/// VMCOREINFO text as the kernel's ELF note (what `vmcoreinfo_note` holds).
pub fn vmcoreinfo_note(text: &str) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&11u32.to_le_bytes());
    v.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(b"VMCOREINFO\0\0");
    v.extend_from_slice(text.as_bytes());
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// The symbols of a synthetic kernel whose `_text` is at `text`, in address order.
fn synth_symbols(spec: &SynthKernelSpec, text: u64) -> Vec<(String, u64, char)> {
    use image::*;
    let va = |off: u64| text + off;
    let mut symbols: Vec<(String, u64, char)> = vec![
        ("_text".into(), va(0), 'T'),
        ("_stext".into(), va(0), 'T'),
        ("startup_64".into(), va(0), 'T'),
        ("schedule".into(), va(0x1000), 'T'),
        ("do_idle".into(), va(0x1800), 't'),
        ("pick_next_task_scx".into(), va(0x2000), 't'),
        ("ext_sched_class".into(), va(0x10_0000), 'D'),
        ("init_task".into(), va(INIT_TASK), 'D'),
        ("page_offset_base".into(), va(PAGE_OFFSET_BASE), 'D'),
        ("nr_cpu_ids".into(), va(NR_CPU_IDS), 'D'),
        ("__per_cpu_offset".into(), va(PER_CPU_OFFSET), 'D'),
        ("__per_cpu_start".into(), va(PERCPU_START), 'D'),
        ("runqueues".into(), va(RUNQUEUES), 'd'),
        ("init_top_pgt".into(), va(TABLES), 'D'),
        ("_end".into(), va(SIZE), 'B'),
    ];
    if spec.form == KallsymsForm::RelativeBaseAbsolutePercpu {
        // Old kernels' zero-based per-CPU symbols.
        symbols.push(("fixed_percpu_data".into(), 0, 'A'));
    }
    for (i, (name, kind)) in spec.extra_symbols.iter().enumerate() {
        symbols.push((name.clone(), va(0x3000 + 0x10 * i as u64), *kind));
    }
    symbols.sort_by_key(|s| s.1);
    symbols
}

/// The VMCOREINFO text of a synthetic kernel: image facts plus where `tables` put the
/// kallsyms symbols of the spec's form.
fn synth_vmcoreinfo(
    spec: &SynthKernelSpec,
    text: u64,
    phys_base: i64,
    tables: &KallsymsTables,
) -> String {
    use image::*;
    let va = |off: u64| text + off;
    let mode = spec.mode;
    let sym = |n: &str| {
        format!(
            "{:x}",
            tables.symbol_addrs.iter().find(|s| s.0 == n).unwrap().1
        )
    };
    let mut vmcoreinfo = format!(
        "OSRELEASE=7.3.0-synthetic\nPAGESIZE=4096\nSYMBOL(init_uts_ns)={:x}\n\
         SYMBOL(_stext)={:x}\nSYMBOL(init_top_pgt)={:x}\nSYMBOL(swapper_pg_dir)={:x}\n\
         NUMBER(phys_base)={}\nNUMBER(pgtable_l5_enabled)={}\nKERNELOFFSET={:x}\n",
        va(DATA + 0x8000),
        va(0),
        va(TABLES),
        va(TABLES),
        phys_base,
        u8::from(mode == PagingMode::Level5),
        spec.kaslr,
    );
    for n in [
        "kallsyms_names",
        "kallsyms_num_syms",
        "kallsyms_token_table",
        "kallsyms_token_index",
    ] {
        vmcoreinfo.push_str(&format!("SYMBOL({n})={}\n", sym(n)));
    }
    match spec.form {
        KallsymsForm::Absolute => {
            vmcoreinfo.push_str(&format!(
                "SYMBOL(kallsyms_addresses)={}\n",
                sym("kallsyms_addresses")
            ));
        }
        KallsymsForm::RelativeBase | KallsymsForm::RelativeBaseAbsolutePercpu => {
            vmcoreinfo.push_str(&format!(
                "SYMBOL(kallsyms_offsets)={}\n",
                sym("kallsyms_offsets")
            ));
            vmcoreinfo.push_str(&format!(
                "SYMBOL(kallsyms_relative_base)={}\n",
                sym("kallsyms_relative_base")
            ));
        }
        KallsymsForm::PcRelative => {
            vmcoreinfo.push_str(&format!(
                "SYMBOL(kallsyms_offsets)={}\n",
                sym("kallsyms_offsets")
            ));
        }
    }
    vmcoreinfo
}

/// Encoded kallsyms tables, laid out contiguously from some base address.
#[derive(Debug, Clone)]
pub struct KallsymsTables {
    /// All tables, to be written at the base address.
    pub bytes: Vec<u8>,
    /// Where each table (by its kernel symbol name) ended up.
    pub symbol_addrs: Vec<(&'static str, u64)>,
    /// The address form, with absolute addresses filled in.
    pub addrs: KallsymsAddrs,
}

/// Multi-character tokens (the kernel learns its own; any set works).
const TOKENS: &[&str] = &[
    "sched_",
    "init",
    "_task",
    "per_cpu",
    "page_",
    "offset",
    "run",
    "queues",
    "_ext",
    "kallsyms_",
    "start",
    "_t",
    "ext",
    "pick_",
    "next_",
    "do_",
    "idle",
    "nr_",
    "cpu",
    "_ids",
    "base",
    "_s",
];

fn token_table() -> Vec<Vec<u8>> {
    let mut t: Vec<Vec<u8>> = (0..256u32)
        .map(|i| {
            if (0x20..0x7f).contains(&i) {
                vec![i as u8]
            } else {
                b"~".to_vec()
            }
        })
        .collect();
    for (i, tok) in TOKENS.iter().enumerate() {
        t[0x80 + i] = tok.as_bytes().to_vec();
    }
    t
}

/// `kallsyms_names` of `symbols`: each name (type letter first) as the longest tokens of
/// `tokens` that match, after its length.
fn encode_names(symbols: &[(String, u64, char)], tokens: &[Vec<u8>]) -> Vec<u8> {
    let mut names = Vec::new();
    for (name, _, kind) in symbols {
        let full = format!("{kind}{name}");
        let mut b = full.as_bytes();
        let mut enc = Vec::new();
        while !b.is_empty() {
            let (t, len) = tokens
                .iter()
                .enumerate()
                .filter(|(_, tok)| b.starts_with(tok))
                .map(|(i, tok)| (i, tok.len()))
                .max_by_key(|&(_, l)| l)
                .expect("printable ASCII names");
            enc.push(t as u8);
            b = &b[len..];
        }
        if enc.len() > 0x7f {
            names.push(0x80 | (enc.len() & 0x7f) as u8);
            names.push((enc.len() >> 7) as u8);
        } else {
            names.push(enc.len() as u8);
        }
        names.extend_from_slice(&enc);
    }
    names
}

/// Encodes `symbols` (address order) as kallsyms tables placed at `base`.
pub fn encode_kallsyms(
    symbols: &[(String, u64, char)],
    form: KallsymsForm,
    base: u64,
) -> KallsymsTables {
    let tokens = token_table();
    let names = encode_names(symbols, &tokens);
    let mut token_table_bytes = Vec::new();
    let mut token_index = Vec::new();
    for t in &tokens {
        token_index.extend_from_slice(&(token_table_bytes.len() as u16).to_le_bytes());
        token_table_bytes.extend_from_slice(t);
        token_table_bytes.push(0);
    }

    let mut out = Vec::new();
    let place = |out: &mut Vec<u8>, data: &[u8]| -> u64 {
        out.resize(out.len().next_multiple_of(8), 0);
        let at = base + out.len() as u64;
        out.extend_from_slice(data);
        at
    };
    let n = symbols.len();
    let num_at = place(&mut out, &(n as u32).to_le_bytes());
    let names_at = place(&mut out, &names);
    let tt_at = place(&mut out, &token_table_bytes);
    let ti_at = place(&mut out, &token_index);
    let mut symbol_addrs = vec![
        ("kallsyms_num_syms", num_at),
        ("kallsyms_names", names_at),
        ("kallsyms_token_table", tt_at),
        ("kallsyms_token_index", ti_at),
    ];
    let addrs = match form {
        KallsymsForm::Absolute => {
            let b: Vec<u8> = symbols.iter().flat_map(|s| s.1.to_le_bytes()).collect();
            let a = place(&mut out, &b);
            symbol_addrs.push(("kallsyms_addresses", a));
            KallsymsAddrs::Absolute { addresses: Kva(a) }
        }
        KallsymsForm::RelativeBase | KallsymsForm::RelativeBaseAbsolutePercpu => {
            let rb = symbols
                .iter()
                .map(|s| s.1)
                .filter(|&a| a >= 0x8000_0000)
                .min()
                .unwrap_or(0);
            let absolute = form == KallsymsForm::RelativeBaseAbsolutePercpu;
            let b: Vec<u8> = symbols
                .iter()
                .flat_map(|s| {
                    let v = if absolute && s.1 < 0x8000_0000 {
                        // Zero-based per-CPU symbol: stored as itself.
                        s.1 as i32
                    } else if absolute {
                        (rb as i64 - 1 - s.1 as i64) as i32
                    } else {
                        (s.1 - rb) as u32 as i32
                    };
                    v.to_le_bytes()
                })
                .collect();
            let o = place(&mut out, &b);
            let r = place(&mut out, &rb.to_le_bytes());
            symbol_addrs.push(("kallsyms_offsets", o));
            symbol_addrs.push(("kallsyms_relative_base", r));
            KallsymsAddrs::RelativeBase {
                offsets: Kva(o),
                relative_base: Kva(r),
            }
        }
        KallsymsForm::PcRelative => {
            out.resize(out.len().next_multiple_of(8), 0);
            let o = base + out.len() as u64;
            let b: Vec<u8> = symbols
                .iter()
                .enumerate()
                .flat_map(|(i, s)| {
                    let d = s.1.wrapping_sub(o + 4 * i as u64) as i64;
                    i32::try_from(d).expect("symbol within 2 GiB").to_le_bytes()
                })
                .collect();
            place(&mut out, &b);
            symbol_addrs.push(("kallsyms_offsets", o));
            KallsymsAddrs::PcRelative { offsets: Kva(o) }
        }
    };
    // `kallsyms_seqs_of_names` (Linux ≥ 6.4 places it after the address tables): the
    // symbol indices sorted by name, then address, then index; 3 bytes big-endian each.
    let mut seqs: Vec<usize> = (0..n).collect();
    seqs.sort_by(|&a, &b| {
        let (sa, sb) = (&symbols[a], &symbols[b]);
        (sa.0.as_bytes(), sa.1, a).cmp(&(sb.0.as_bytes(), sb.1, b))
    });
    let b: Vec<u8> = seqs
        .iter()
        .flat_map(|&i| [(i >> 16) as u8, (i >> 8) as u8, i as u8])
        .collect();
    let at = place(&mut out, &b);
    symbol_addrs.push(("kallsyms_seqs_of_names", at));
    KallsymsTables {
        bytes: out,
        symbol_addrs,
        addrs,
    }
}
