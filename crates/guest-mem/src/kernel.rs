//! `Kernel`: a guest kernel's address space and symbols over guest-physical memory.
//!
//! Built from memory alone: VMCOREINFO (given, from a vmcore note, or found by
//! scanning RAM) gives `phys_base`, the KASLR offset, the paging depth and the
//! kallsyms tables' addresses; kallsyms decoded from the kernel image gives every
//! symbol; `page_offset_base` read from the guest gives the direct map.
//!
//! Translation order: the direct map (`page_offset_base`, linear), the kernel image
//! (`__START_KERNEL_map` + `phys_base`, linear), then a page-table walk from the
//! root (CR3) with a small per-`Kernel` cache of 4 KiB translations.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use crate::kallsyms::{KallsymsError, KallsymsIndex, KallsymsLayout};
use crate::phys::{PhysMem, StableBytes};
use crate::read::KvaReadExt;
use crate::symbols::{NearestSymbol, Symbol, SymbolTable};
use crate::vmcoreinfo::{VmcoreInfo, VmcoreInfoScan};
use crate::x86::layout::{KERNEL_IMAGE_SIZE, START_KERNEL_MAP, default_page_offset, max_physmem};
use crate::x86::paging::{PTE_ADDR_MASK, PagingMode, PresentPages, present_pages, walk};
use crate::{CpuRegs, Gpa, Kva, KvaRead, MemError, PhysRead};

/// Most VMCOREINFO candidates from a RAM scan that are tried.
const MAX_CANDIDATES: usize = 8;

/// Most CPUs the project accepts from a guest (`NR_CPUS` of distribution kernels): the
/// per-CPU offsets read here, scx-walk's `nr_cpu_ids`, the engines' register dumps.
pub const MAX_CPUS: usize = 8192;

/// What is known about the guest before looking at its memory. Everything is
/// optional: with nothing given, VMCOREINFO is found by scanning RAM, symbols are
/// decoded from kallsyms and page tables start at `init_top_pgt`.
#[derive(Debug, Clone, Default)]
pub struct KernelOptions {
    /// VMCOREINFO, when already known (a vmcore's note).
    pub vmcoreinfo: Option<VmcoreInfo>,
    /// Page-table root to walk (a CR3 value). Default: `init_top_pgt`, which maps
    /// every kernel address; a vCPU's CR3 may be a user page table under PTI.
    pub cr3: Option<Gpa>,
    /// Registers of each vCPU (engines' freeze, vmcore notes). Used for the paging
    /// depth (`CR4.LA57`) and as the last-resort page-table root.
    pub cpus: Vec<CpuRegs>,
    /// A System.map (link-time addresses; shifted by KERNELOFFSET here) used
    /// instead of decoding kallsyms.
    pub system_map: Option<SymbolTable>,
    /// Force the paging depth instead of taking it from VMCOREINFO/CR4.
    pub paging: Option<PagingMode>,
    /// The symbols of another view of this same running kernel
    /// ([`Kernel::symbol_source`]): its kallsyms index is reused instead of built again
    /// (symbols do not move while a kernel runs). A view of another boot must not be
    /// given: its addresses would be wrong (read as garbage, never a crash).
    pub symbols: Option<SymbolSource>,
}

/// The symbols of a [`Kernel`] view, for another view of the same running kernel
/// ([`KernelOptions::symbols`]). Cheap to clone.
#[derive(Clone)]
pub struct SymbolSource(Symbols);

impl std::fmt::Debug for SymbolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Symbols::Table(_) => "SymbolSource(System.map)",
            Symbols::Kallsyms { .. } => "SymbolSource(kallsyms)",
        })
    }
}

/// Why a [`Kernel`] could not be set up, or a kernel-level lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    #[error("no VMCOREINFO: not given, and none found in guest memory")]
    NoVmcoreinfo,
    #[error("VMCOREINFO lacks {0}")]
    MissingKey(&'static str),
    #[error("VMCOREINFO lists no kallsyms tables and no System.map was given")]
    NoKallsyms,
    #[error("decoding kallsyms: {0}")]
    Kallsyms(#[from] KallsymsError),
    #[error("symbol {0} not found")]
    MissingSymbol(String),
    #[error("CPU {cpu} does not exist (nr_cpu_ids {nr})")]
    NoSuchCpu { cpu: usize, nr: usize },
    #[error("reading {what}: {source}")]
    Mem {
        what: String,
        #[source]
        source: MemError,
    },
}

const TLB_BITS: u32 = 9;
const TLB_SIZE: usize = 1 << TLB_BITS;
const EMPTY: u64 = u64::MAX;

/// Direct-mapped cache of 4 KiB translations: virtual page number → physical page.
struct Tlb {
    tags: Box<[Cell<u64>]>,
    pages: Box<[Cell<u64>]>,
}

impl Tlb {
    fn new() -> Tlb {
        Tlb {
            tags: (0..TLB_SIZE).map(|_| Cell::new(EMPTY)).collect(),
            pages: (0..TLB_SIZE).map(|_| Cell::new(0)).collect(),
        }
    }

    /// Slot of a page: hashed, because kernel objects sit at power-of-two strides
    /// (per-CPU areas 2 MiB apart, say) that would all collide on the low bits.
    #[inline]
    fn slot(vpn: u64) -> usize {
        (vpn.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - TLB_BITS)) as usize
    }

    #[inline]
    fn get(&self, vpn: u64) -> Option<u64> {
        let i = Self::slot(vpn);
        (self.tags[i].get() == vpn).then(|| self.pages[i].get())
    }

    #[inline]
    fn put(&self, vpn: u64, page: u64) {
        let i = Self::slot(vpn);
        self.tags[i].set(vpn);
        self.pages[i].set(page);
    }

    fn flush(&self) {
        for t in self.tags.iter() {
            t.set(EMPTY);
        }
    }
}

/// Where symbols come from.
#[derive(Clone)]
enum Symbols {
    /// A System.map (already shifted by KASLR).
    Table(Arc<SymbolTable>),
    /// kallsyms in guest memory, decoded on demand; `full` is the whole table,
    /// decoded only when [`Kernel::symbols`] asks for it.
    Kallsyms {
        index: Arc<KallsymsIndex>,
        full: Arc<OnceLock<SymbolTable>>,
    },
}

/// A guest kernel's view of memory: translation, symbols, per-CPU data.
///
/// Implements [`KvaRead`] (and so every [`KvaReadExt`] helper) and [`PhysRead`].
/// Cheap to clone (memory and symbols are shared); each clone has its own
/// translation cache, so give each thread its own clone (`Kernel` is `Send`, not
/// `Sync`).
///
/// On live memory the cache can go stale when the guest changes its page tables:
/// call [`Kernel::flush_translation_cache`] after every thaw, or disable the cache
/// with [`Kernel::set_translation_cache`]. Direct-map and kernel-image addresses
/// never use the cache.
pub struct Kernel {
    mem: PhysMem,
    info: Arc<VmcoreInfo>,
    symbols: Symbols,
    cpus: Arc<[CpuRegs]>,
    per_cpu: Arc<[u64]>,
    mode: PagingMode,
    root: Option<Gpa>,
    phys_base: u64,
    kaslr: u64,
    page_offset: u64,
    direct_len: u64,
    image_len: u64,
    tlb: Tlb,
    cache: Cell<bool>,
    caveats: Arc<[String]>,
}

impl Clone for Kernel {
    fn clone(&self) -> Kernel {
        Kernel {
            mem: self.mem.clone(),
            info: self.info.clone(),
            symbols: self.symbols.clone(),
            cpus: self.cpus.clone(),
            per_cpu: self.per_cpu.clone(),
            mode: self.mode,
            root: self.root,
            phys_base: self.phys_base,
            kaslr: self.kaslr,
            page_offset: self.page_offset,
            direct_len: self.direct_len,
            image_len: self.image_len,
            tlb: Tlb::new(),
            cache: Cell::new(self.cache.get()),
            caveats: self.caveats.clone(),
        }
    }
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("osrelease", &self.osrelease())
            .field("mode", &self.mode)
            .field("root", &self.root)
            .field("phys_base", &format_args!("{:#x}", self.phys_base))
            .field("kaslr", &format_args!("{:#x}", self.kaslr))
            .field("page_offset", &format_args!("{:#x}", self.page_offset))
            .field("symbols", &self.symbol_count())
            .field("cpus", &self.per_cpu.len())
            .finish()
    }
}

impl Kernel {
    /// Finds the kernel in `mem`. See [`KernelOptions`] for what can be given.
    ///
    /// Without a given VMCOREINFO, RAM is scanned (by address, lazily) and each
    /// candidate found is tried until one yields a kernel whose symbols decode; the
    /// first candidate's error is returned when none does.
    pub fn new(mem: PhysMem, mut opts: KernelOptions) -> Result<Kernel, KernelError> {
        if let Some(info) = opts.vmcoreinfo.take() {
            return Self::with_info(mem, info, opts);
        }
        let mut first_err = None;
        let mut tried: Vec<VmcoreInfo> = Vec::new();
        // Lazily: the scan stops at the first candidate that works.
        for found in VmcoreInfoScan::new(&mem) {
            if tried.len() >= MAX_CANDIDATES {
                break;
            }
            if tried.contains(&found.info) {
                continue;
            }
            tried.push(found.info.clone());
            match Self::with_info(mem.clone(), found.info, opts.clone()) {
                Ok(k) => return Ok(k),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(KernelError::NoVmcoreinfo))
    }

    fn with_info(
        mem: PhysMem,
        info: VmcoreInfo,
        opts: KernelOptions,
    ) -> Result<Kernel, KernelError> {
        let mode = opts.paging.unwrap_or_else(|| {
            match info.pgtable_l5_enabled() {
                Some(true) => PagingMode::Level5,
                Some(false) => PagingMode::Level4,
                // CR4.LA57 is bit 12.
                None if opts.cpus.first().is_some_and(|c| c.cr4 & (1 << 12) != 0) => {
                    PagingMode::Level5
                }
                None => PagingMode::Level4,
            }
        });
        let phys_base = info
            .phys_base()
            .ok_or(KernelError::MissingKey("NUMBER(phys_base)"))? as u64;
        let kaslr = info.kernel_offset().unwrap_or(0);
        let mut k = Kernel {
            mem,
            info: Arc::new(info),
            symbols: Symbols::Table(Arc::new(SymbolTable::default())),
            cpus: opts.cpus.into(),
            per_cpu: Arc::new([]),
            mode,
            root: None,
            phys_base,
            kaslr,
            page_offset: 0,
            direct_len: 0,
            image_len: KERNEL_IMAGE_SIZE,
            tlb: Tlb::new(),
            cache: Cell::new(true),
            caveats: Arc::new([]),
        };
        // The image mapping works now (phys_base); use it to find the page tables.
        k.root = match opts.cr3 {
            Some(cr3) => Some(Gpa(cr3.0 & PTE_ADDR_MASK)),
            None => k
                .info
                .symbol("init_top_pgt")
                .or_else(|| k.info.symbol("swapper_pg_dir"))
                .and_then(|s| k.translate(Kva(s)).ok())
                .or_else(|| k.cpus.first().map(|c| Gpa(c.cr3 & PTE_ADDR_MASK))),
        };
        k.symbols = match (opts.symbols, opts.system_map) {
            (Some(SymbolSource(s)), _) => s,
            (None, Some(map)) => Symbols::Table(Arc::new(map.shifted(kaslr))),
            (None, None) => {
                let layout =
                    KallsymsLayout::from_vmcoreinfo(&k.info).ok_or(KernelError::NoKallsyms)?;
                Symbols::Kallsyms {
                    index: Arc::new(KallsymsIndex::build(&k, &layout)?),
                    full: Arc::new(OnceLock::new()),
                }
            }
        };
        if let Some(end) = k.symbol("_end")
            && end.0 > START_KERNEL_MAP
        {
            // Only the image is mapped there; round up to the 2 MiB pages it uses.
            k.image_len = (end.0 - START_KERNEL_MAP)
                .div_ceil(2 << 20)
                .saturating_mul(2 << 20)
                .min(KERNEL_IMAGE_SIZE);
        }
        k.page_offset = match k.symbol("page_offset_base") {
            Some(sym) => {
                let v = k.read_u64(sym).map_err(|source| KernelError::Mem {
                    what: "page_offset_base".into(),
                    source,
                })?;
                // The direct map base is PUD (1 GiB) aligned and in the upper half.
                if v & ((1 << 30) - 1) != 0 || !mode.is_canonical(Kva(v)) || (v as i64) >= 0 {
                    return Err(KernelError::Mem {
                        what: "page_offset_base".into(),
                        source: MemError::Untranslatable {
                            kva: Kva(v),
                            why: "implausible page_offset_base",
                        },
                    });
                }
                v
            }
            None => default_page_offset(mode),
        };
        // The direct map covers RAM only; with RANDOMIZE_MEMORY vmalloc may start
        // soon after it, so bound the linear shortcut by the end of guest RAM
        // rather than by the architectural maximum.
        let ram_end = k.mem.ranges().last().map_or(0, |r| r.end());
        k.direct_len = ram_end.min(max_physmem(mode));
        let mut caveats = Vec::new();
        if opts.cr3.is_none() {
            k.check_root(&mut caveats);
        }
        k.per_cpu = Arc::from(k.read_per_cpu_offsets(&mut caveats));
        k.caveats = caveats.into();
        Ok(k)
    }

    /// Checks that the page-table root maps the kernel image where the image mapping
    /// says it is; when it does not (a damaged `SYMBOL(init_top_pgt)`, a user CR3), takes
    /// the first root that does — kallsyms' `init_top_pgt`, then each vCPU's CR3 — and
    /// says so in `caveats`. A root that maps nothing would make every vmalloc, per-CPU
    /// and module read fail with a reason far from the cause.
    fn check_root(&mut self, caveats: &mut Vec<String>) {
        let Some(probe) = ["_text", "_stext", "init_task"]
            .iter()
            .find_map(|n| self.symbol(n))
        else {
            return;
        };
        let image = probe.0.wrapping_sub(START_KERNEL_MAP);
        if image >= self.image_len {
            return;
        }
        let expect = Gpa(image.wrapping_add(self.phys_base));
        let maps_image =
            |root: Gpa| walk(&self.mem, root, self.mode, probe).is_ok_and(|t| t.gpa == expect);
        if self.root.is_some_and(maps_image) {
            return;
        }
        let was = match self.root {
            Some(r) => format!("root {:#x}", r.0),
            None => "no root".to_string(),
        };
        let mut candidates: Vec<(String, Gpa)> = Vec::new();
        for name in ["init_top_pgt", "swapper_pg_dir"] {
            if let Some(sym) = self.symbol(name) {
                let off = sym.0.wrapping_sub(START_KERNEL_MAP);
                if off < self.image_len {
                    candidates.push((
                        format!("kallsyms' {name}"),
                        Gpa(off.wrapping_add(self.phys_base) & PTE_ADDR_MASK),
                    ));
                }
            }
        }
        for (i, c) in self.cpus.iter().enumerate() {
            candidates.push((format!("CPU {i}'s CR3"), Gpa(c.cr3 & PTE_ADDR_MASK)));
        }
        match candidates.into_iter().find(|(_, r)| maps_image(*r)) {
            Some((from, root)) => {
                caveats.push(format!(
                    "page tables: the VMCOREINFO {was} does not map the kernel image; walking from {from} ({:#x})",
                    root.0
                ));
                self.root = Some(root);
                self.tlb.flush();
            }
            None => caveats.push(format!(
                "page tables: no root maps the kernel image ({was}, kallsyms' init_top_pgt and the vCPUs' CR3 tried); reads outside the direct map and the image fail"
            )),
        }
    }

    /// `nr_cpu_ids` entries of `__per_cpu_offset` (empty when either symbol is
    /// missing or unreadable: a uniprocessor kernel, or garbage; said in `caveats`).
    fn read_per_cpu_offsets(&self, caveats: &mut Vec<String>) -> Vec<u64> {
        let (Some(nr), Some(arr)) = (self.symbol("nr_cpu_ids"), self.symbol("__per_cpu_offset"))
        else {
            return Vec::new();
        };
        let read = self
            .read_u32(nr)
            .and_then(|n| self.read_array::<u64>(arr, u64::from(n), MAX_CPUS));
        match read {
            Ok(v) => v,
            Err(e) => {
                caveats.push(format!("per-CPU offsets: unreadable ({e})"));
                Vec::new()
            }
        }
    }

    /// What was doubtful or replaced while finding the kernel (a page-table root that
    /// did not map the image, per-CPU offsets unreadable, VMCOREINFO taken from RAM
    /// rather than the vmcore's note), in words, for the report's `capture_notes`.
    pub fn caveats(&self) -> &[String] {
        &self.caveats
    }

    /// This kernel with `line` added to its [`Kernel::caveats`].
    pub fn with_caveat(mut self, line: String) -> Kernel {
        let mut v = self.caveats.to_vec();
        v.push(line);
        self.caveats = v.into();
        self
    }

    /// The guest-physical memory underneath.
    pub fn phys(&self) -> &PhysMem {
        &self.mem
    }

    /// The VMCOREINFO in use.
    pub fn vmcoreinfo(&self) -> &VmcoreInfo {
        &self.info
    }

    /// `OSRELEASE`.
    pub fn osrelease(&self) -> &str {
        self.info.osrelease().unwrap_or("")
    }

    /// Where this view's symbols come from, for another view of the same running kernel
    /// ([`KernelOptions::symbols`]).
    pub fn symbol_source(&self) -> SymbolSource {
        SymbolSource(self.symbols.clone())
    }

    /// The whole symbol table.
    ///
    /// With kallsyms this decodes every name on first call (tens of milliseconds and
    /// megabytes for a real kernel; the result is shared by clones). Single lookups
    /// ([`Kernel::symbol`], [`Kernel::nearest_symbol`], [`Kernel::symbol_info`]) never
    /// need it. Empty when guest memory no longer decodes as it did at setup.
    pub fn symbols(&self) -> &SymbolTable {
        match &self.symbols {
            Symbols::Table(t) => t,
            Symbols::Kallsyms { index, full } => {
                full.get_or_init(|| index.to_table(self).unwrap_or_default())
            }
        }
    }

    /// Number of symbols (without decoding them).
    pub fn symbol_count(&self) -> usize {
        match &self.symbols {
            Symbols::Table(t) => t.len(),
            Symbols::Kallsyms { index, .. } => index.len(),
        }
    }

    /// The symbol `name` with its type letter (lowest address among duplicates).
    pub fn symbol_info(&self, name: &str) -> Option<Symbol<'_>> {
        match &self.symbols {
            Symbols::Table(t) => t.get(name),
            Symbols::Kallsyms { index, .. } => index.get(self, name),
        }
    }

    /// The address of symbol `name` (lowest address among duplicates).
    pub fn symbol(&self, name: &str) -> Option<Kva> {
        self.symbol_info(name).map(|s| s.addr)
    }

    /// The address of symbol `name`, or [`KernelError::MissingSymbol`].
    pub fn require_symbol(&self, name: &str) -> Result<Kva, KernelError> {
        self.symbol(name)
            .ok_or_else(|| KernelError::MissingSymbol(name.to_string()))
    }

    /// The symbol containing `kva` and the offset into it.
    pub fn nearest_symbol(&self, kva: Kva) -> Option<NearestSymbol<'_>> {
        match &self.symbols {
            Symbols::Table(t) => t.nearest(kva),
            Symbols::Kallsyms { index, .. } => index.nearest(self, kva),
        }
    }

    /// Every symbol whose name starts with `prefix` (at most `max`, in name order), each
    /// with where it ends (the next symbol's address). `None` when the list may not be
    /// complete: kallsyms without its name-sorted table (before Linux 6.2) or showing it
    /// unsorted, more than `max`, names that do not read.
    pub fn symbols_with_prefix(
        &self,
        prefix: &str,
        max: usize,
    ) -> Option<Vec<(Symbol<'_>, Option<Kva>)>> {
        match &self.symbols {
            Symbols::Table(t) => Some(
                t.with_prefix(prefix, max)?
                    .into_iter()
                    .map(|s| (s, t.next_address(s.addr)))
                    .collect(),
            ),
            Symbols::Kallsyms { index, .. } => Some(
                index
                    .with_prefix(self, prefix, max)?
                    .into_iter()
                    .map(|s| (s, index.next_address(s.addr)))
                    .collect(),
            ),
        }
    }

    /// Registers of each vCPU, as given.
    pub fn cpus(&self) -> &[CpuRegs] {
        &self.cpus
    }

    /// Paging depth.
    pub fn paging_mode(&self) -> PagingMode {
        self.mode
    }

    /// The page-table root walks start from.
    pub fn page_table_root(&self) -> Option<Gpa> {
        self.root
    }

    /// `phys_base` (as two's complement when negative).
    pub fn phys_base(&self) -> u64 {
        self.phys_base
    }

    /// KASLR offset of the kernel image (`KERNELOFFSET`).
    pub fn kaslr_offset(&self) -> u64 {
        self.kaslr
    }

    /// Base of the direct map.
    pub fn page_offset_base(&self) -> u64 {
        self.page_offset
    }

    /// `nr_cpu_ids` (0 when the kernel's per-CPU offsets could not be read).
    pub fn nr_cpu_ids(&self) -> usize {
        self.per_cpu.len()
    }

    /// `__per_cpu_offset[cpu]`.
    pub fn per_cpu_offset(&self, cpu: usize) -> Result<u64, KernelError> {
        self.per_cpu
            .get(cpu)
            .copied()
            .ok_or(KernelError::NoSuchCpu {
                cpu,
                nr: self.per_cpu.len(),
            })
    }

    /// The address of per-CPU variable `sym` (its symbol address) on `cpu`.
    pub fn per_cpu_addr(&self, sym: Kva, cpu: usize) -> Result<Kva, KernelError> {
        Ok(Kva(sym.0.wrapping_add(self.per_cpu_offset(cpu)?)))
    }

    /// The address of the per-CPU variable named `name` on `cpu`.
    pub fn per_cpu_symbol(&self, name: &str, cpu: usize) -> Result<Kva, KernelError> {
        self.per_cpu_addr(self.require_symbol(name)?, cpu)
    }

    /// The same kernel with other vCPU registers (the next freeze of the same boot):
    /// no rescan, no kallsyms pass — this costs a clone. The translation cache starts empty.
    pub fn with_cpus(&self, cpus: Vec<CpuRegs>) -> Kernel {
        let mut k = self.clone();
        k.cpus = cpus.into();
        k
    }

    /// The same kernel walking page tables from another root (e.g. a task's
    /// `mm->pgd` translated to a GPA).
    pub fn with_page_table_root(&self, cr3: Gpa) -> Kernel {
        let mut k = self.clone();
        k.root = Some(Gpa(cr3.0 & PTE_ADDR_MASK));
        k
    }

    /// Enables or disables the page-walk cache (disable for live memory whose page
    /// tables may change between reads).
    pub fn set_translation_cache(&self, enabled: bool) {
        self.cache.set(enabled);
        self.tlb.flush();
    }

    /// Forgets cached page walks (after a thaw).
    pub fn flush_translation_cache(&self) {
        self.tlb.flush();
    }

    /// Translates `kva` to a guest-physical address.
    #[inline]
    pub fn translate(&self, kva: Kva) -> Result<Gpa, MemError> {
        self.translate_span(kva).map(|(g, _)| g)
    }

    /// Translates `kva` and says how many bytes from it are physically contiguous.
    #[inline]
    fn translate_span(&self, kva: Kva) -> Result<(Gpa, u64), MemError> {
        let a = kva.0;
        let d = a.wrapping_sub(self.page_offset);
        if d < self.direct_len {
            return Ok((Gpa(d), self.direct_len - d));
        }
        let i = a.wrapping_sub(START_KERNEL_MAP);
        if i < self.image_len {
            return Ok((Gpa(i.wrapping_add(self.phys_base)), self.image_len - i));
        }
        let vpn = a >> 12;
        let in_page = a & 0xfff;
        if self.cache.get()
            && let Some(page) = self.tlb.get(vpn)
        {
            return Ok((Gpa(page | in_page), 4096 - in_page));
        }
        let root = self.root.ok_or(MemError::Untranslatable {
            kva,
            why: "no page-table root known",
        })?;
        let t = walk(&self.mem, root, self.mode, kva).map_err(|e| at(kva, e))?;
        if self.cache.get() {
            self.tlb.put(vpn, t.gpa.0 & !0xfff);
        }
        Ok((t.gpa, 4096 - in_page))
    }

    /// Reads `buf.len()` bytes of whole pages or any range (bulk copy; crosses
    /// pages and translations as needed). Same as [`KvaRead::read_kva`].
    pub fn read_pages(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError> {
        self.read_kva(kva, buf)
    }

    /// Translation without a page walk: direct map, image, or a cached walk.
    /// `None` when a walk would be needed or fewer than `len` bytes are contiguous.
    #[inline(always)]
    fn translate_fast(&self, kva: Kva, len: u64) -> Option<Gpa> {
        let a = kva.0;
        let d = a.wrapping_sub(self.page_offset);
        if d < self.direct_len {
            return (self.direct_len - d >= len).then_some(Gpa(d));
        }
        let i = a.wrapping_sub(START_KERNEL_MAP);
        if i < self.image_len {
            return (self.image_len - i >= len).then_some(Gpa(i.wrapping_add(self.phys_base)));
        }
        let in_page = a & 0xfff;
        if self.cache.get() && 4096 - in_page >= len {
            return self.tlb.get(a >> 12).map(|p| Gpa(p | in_page));
        }
        None
    }

    /// One aligned `u64` read with a single load (untorn on live memory).
    ///
    /// The common case (direct map, image, cached walk; RAM in one piece) is
    /// inlined into the caller; everything else goes through the general path.
    #[inline]
    pub fn read_u64(&self, kva: Kva) -> Result<u64, MemError> {
        if let Some(gpa) = self.translate_fast(kva, 8)
            && let Some(v) = self.mem.try_read_u64(gpa)
        {
            return Ok(v);
        }
        self.read_u64_slow(kva)
    }

    #[inline(never)]
    fn read_u64_slow(&self, kva: Kva) -> Result<u64, MemError> {
        let (gpa, span) = self.translate_span(kva)?;
        if span >= 8 {
            self.mem.read_u64(gpa).map_err(|e| at(kva, e))
        } else {
            <Self as KvaReadExt>::read_u64(self, kva)
        }
    }
}

/// Attaches the virtual address to a physical failure.
fn at(kva: Kva, e: MemError) -> MemError {
    match e {
        MemError::Unmapped { .. } | MemError::Overflow { .. } => MemError::At {
            kva,
            source: Box::new(e),
        },
        other => other,
    }
}

impl KvaRead for Kernel {
    #[inline]
    fn read_kva(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError> {
        if let Some(gpa) = self.translate_fast(kva, buf.len() as u64)
            && self.mem.try_read(gpa, buf)
        {
            return Ok(());
        }
        self.read_kva_slow(kva, buf)
    }

    /// Walks the page tables from the root (the direct map and the kernel image are
    /// linear and never asked for: this is for vmalloc-space ranges such as an arena).
    fn present_pages(
        &self,
        start: Kva,
        len: u64,
        cap: usize,
    ) -> Option<Result<PresentPages, MemError>> {
        let root = self.root?;
        let end = Kva(start.0.checked_add(len)?);
        Some(present_pages(&self.mem, root, self.mode, start, end, cap))
    }

    fn release_resident(&self) {
        self.mem.release_resident();
    }

    /// Where a translation needs no page walk (the direct map, the kernel image).
    fn stable_bytes(&self, kva: Kva, len: u64) -> Option<StableBytes> {
        let gpa = self.translate_fast(kva, len)?;
        self.mem.stable_bytes(gpa, usize::try_from(len).ok()?)
    }
}

impl Kernel {
    #[inline(never)]
    fn read_kva_slow(&self, kva: Kva, buf: &mut [u8]) -> Result<(), MemError> {
        let len = buf.len();
        let mut done = 0usize;
        while done < len {
            let here = kva
                .checked_offset(done as u64)
                .map_err(|_| MemError::Overflow { addr: kva.0, len })?;
            let (gpa, span) = self.translate_span(here)?;
            let n = (len - done).min(usize::try_from(span).unwrap_or(usize::MAX));
            self.mem
                .read_phys(gpa, &mut buf[done..done + n])
                .map_err(|e| at(here, e))?;
            done += n;
        }
        Ok(())
    }
}

impl PhysRead for Kernel {
    fn read_phys(&self, gpa: Gpa, buf: &mut [u8]) -> Result<(), MemError> {
        self.mem.read_phys(gpa, buf)
    }
}
