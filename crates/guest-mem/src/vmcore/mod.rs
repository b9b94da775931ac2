//! ELF vmcores: QEMU `dump-guest-memory` (ELF), kdump / `makedumpfile -E`,
//! cloud-hypervisor coredumps — read by mapping the file; and writing one.
//!
//! `PT_LOAD` segments become [`PhysMem`] ranges pointing into the mapped file (no
//! copy). Bytes a segment declares in `p_memsz` beyond `p_filesz` are not in the
//! file (makedumpfile's excluded pages) and read as unmapped, not as zeros.
//! Segments that overlap physically (kdump's kernel-text segment duplicates part of
//! a RAM segment) are trimmed so the first, lowest one wins.

pub mod notes;
pub mod writer;

use std::path::Path;
use std::sync::Arc;

use vm_memory::{FileOffset, MmapRegion};

use crate::kernel::{Kernel, KernelError, KernelOptions};
use crate::phys::{PhysMem, PhysMemError, Volatility};
use crate::vmcoreinfo::VmcoreInfo;
use crate::{CpuRegs, Gpa};

/// Most program headers accepted.
pub const MAX_PHDRS: usize = 1 << 20;
/// Most notes accepted in all `PT_NOTE` segments together.
pub const MAX_NOTES: usize = 1 << 16;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u16 = 0xffff;

/// A `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    pub paddr: u64,
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// One ELF note (name and type; the descriptor is in the file at `desc_offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteInfo {
    pub name: String,
    pub ntype: u32,
    pub desc_offset: u64,
    pub desc_len: u64,
}

/// Why a vmcore could not be read.
/// `e_machine` of x86_64.
const EM_X86_64: u16 = 62;

/// What kind of non-regular file `meta` describes, for error messages.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VmcoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not an ELF file")]
    NotElf,
    #[error("unsupported ELF: {0}")]
    Unsupported(&'static str),
    /// `e_machine` is not x86_64 (62): another architecture's dump.
    #[error("e_machine {0} is not x86_64 (62): only x86_64 guests are supported")]
    Machine(u16),
    /// The path is a FIFO, a directory, a device…: a vmcore is read at random offsets.
    #[error("{path}: not a regular file ({kind}); a vmcore must be a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("truncated or corrupt: {what} at file offset {offset:#x}")]
    Corrupt { what: &'static str, offset: u64 },
    #[error("no PT_LOAD segment with file data")]
    NoMemory,
    #[error("mapping the file: {0}")]
    Map(String),
    #[error("memory layout: {0}")]
    Layout(#[from] PhysMemError),
}

/// What the headers and notes of a vmcore say (parsed from bytes, no mapping).
#[derive(Debug, Clone, Default)]
pub struct VmcoreLayout {
    pub segments: Vec<LoadSegment>,
    pub notes: Vec<NoteInfo>,
    /// From the `VMCOREINFO` note, when present and valid.
    pub vmcoreinfo: Option<VmcoreInfo>,
    /// Per CPU, in note order: `NT_PRSTATUS` registers merged with QEMU's per-CPU
    /// note (which adds CR0/CR3/CR4 and segment bases).
    pub cpus: Vec<CpuRegs>,
    /// `pr_pid` of each `NT_PRSTATUS` (kdump: the task running on that CPU).
    pub pids: Vec<u32>,
    /// What was dropped or doubtful ([`Vmcore::caveats`]).
    pub caveats: Vec<String>,
}

fn u16_at(b: &[u8], off: u64) -> Option<u16> {
    let o = usize::try_from(off).ok()?;
    Some(u16::from_le_bytes(
        b.get(o..o.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], off: u64) -> Option<u32> {
    let o = usize::try_from(off).ok()?;
    Some(u32::from_le_bytes(
        b.get(o..o.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: u64) -> Option<u64> {
    let o = usize::try_from(off).ok()?;
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn corrupt(what: &'static str, offset: u64) -> VmcoreError {
    VmcoreError::Corrupt { what, offset }
}

impl VmcoreLayout {
    /// Parses the ELF header, program headers and notes of `file`.
    pub fn parse(file: &[u8]) -> Result<VmcoreLayout, VmcoreError> {
        if file.len() < 64 || &file[0..4] != b"\x7fELF" {
            return Err(VmcoreError::NotElf);
        }
        if file[4] != 2 {
            return Err(VmcoreError::Unsupported("not ELF64"));
        }
        if file[5] != 1 {
            return Err(VmcoreError::Unsupported("not little-endian"));
        }
        // e_machine: this reader translates x86_64 page tables only.
        match u16_at(file, 0x12) {
            Some(EM_X86_64) => {}
            Some(m) => return Err(VmcoreError::Machine(m)),
            None => return Err(corrupt("e_machine", 0x12)),
        }
        let phoff = u64_at(file, 0x20).ok_or(corrupt("e_phoff", 0x20))?;
        let shoff = u64_at(file, 0x28).ok_or(corrupt("e_shoff", 0x28))?;
        let phentsize = u16_at(file, 0x36).ok_or(corrupt("e_phentsize", 0x36))?;
        let mut phnum = u64::from(u16_at(file, 0x38).ok_or(corrupt("e_phnum", 0x38))?);
        if phentsize != 56 {
            return Err(VmcoreError::Unsupported("e_phentsize is not 56"));
        }
        if phnum == u64::from(PN_XNUM) {
            // Too many segments for e_phnum: the count is in section 0's sh_info.
            phnum = u64::from(
                u32_at(file, shoff.saturating_add(0x2c)).ok_or(corrupt("sh_info", shoff))?,
            );
        }
        if phnum as usize > MAX_PHDRS {
            return Err(corrupt("e_phnum too large", 0x38));
        }
        let mut out = VmcoreLayout::default();
        let mut note_segs = Vec::new();
        for i in 0..phnum {
            let ph = phoff
                .checked_add(i * 56)
                .ok_or(corrupt("program header", phoff))?;
            let get = |o: u64| {
                ph.checked_add(o)
                    .and_then(|at| u64_at(file, at))
                    .ok_or(corrupt("program header", ph))
            };
            let ptype = u32_at(file, ph).ok_or(corrupt("program header", ph))?;
            let offset = get(8)?;
            let vaddr = get(16)?;
            let paddr = get(24)?;
            let filesz = get(32)?;
            let memsz = get(40)?;
            let end = offset
                .checked_add(filesz)
                .filter(|&e| e <= file.len() as u64);
            match ptype {
                PT_LOAD => {
                    if end.is_none() {
                        return Err(corrupt("PT_LOAD beyond end of file", ph));
                    }
                    if paddr.checked_add(memsz.max(filesz)).is_none() {
                        return Err(corrupt("PT_LOAD address overflows", ph));
                    }
                    out.segments.push(LoadSegment {
                        paddr,
                        vaddr,
                        offset,
                        filesz,
                        memsz,
                    });
                }
                PT_NOTE => {
                    if end.is_none() {
                        return Err(corrupt("PT_NOTE beyond end of file", ph));
                    }
                    note_segs.push((offset, filesz));
                }
                _ => {}
            }
        }
        let excluded: u64 = out
            .segments
            .iter()
            .map(|s| s.memsz.saturating_sub(s.filesz))
            .fold(0, u64::saturating_add);
        if excluded > 0 {
            out.caveats.push(format!(
                "memory: {excluded} bytes that PT_LOAD segments declare are not in the file (excluded pages read as holes)"
            ));
        }
        for (off, len) in note_segs {
            out.parse_notes(file, off, len);
        }
        out.note_unrecognized();
        out.parse_cpus(file);
        Ok(out)
    }

    /// Parses one `PT_NOTE` segment. A note that does not fit its segment ends the
    /// segment (the notes before it are kept) and is said in `caveats`: the memory of a
    /// vmcore is still worth reading when a note is damaged.
    fn parse_notes(&mut self, file: &[u8], off: u64, len: u64) {
        let before = self.notes.len();
        if let Err(e) = self.parse_note_segment(file, off, len) {
            self.caveats.push(format!(
                "notes: the segment at file offset {off:#x} is damaged after {} notes ({e}); the rest of it ignored (vcpu_regs or VMCOREINFO there lost)",
                self.notes.len() - before
            ));
        }
    }

    /// One caveat for the notes whose names this reader does not know (a damaged name
    /// hides a CPU's registers): how many, and the first few names.
    fn note_unrecognized(&mut self) {
        let odd: Vec<&NoteInfo> = self
            .notes
            .iter()
            .filter(|n| !matches!(n.name.as_str(), "CORE" | "QEMU" | "VMCOREINFO" | "LINUX"))
            .collect();
        if odd.is_empty() {
            return;
        }
        let names: Vec<String> = odd
            .iter()
            .take(4)
            .map(|n| format!("{:?}", n.name.chars().take(32).collect::<String>()))
            .collect();
        self.caveats.push(format!(
            "notes: {} of {} notes not recognized ({}{})",
            odd.len(),
            self.notes.len(),
            names.join(", "),
            if odd.len() > 4 { ", …" } else { "" }
        ));
    }

    fn parse_note_segment(&mut self, file: &[u8], off: u64, len: u64) -> Result<(), VmcoreError> {
        let end = off + len;
        let mut p = off;
        while p + 12 <= end {
            if self.notes.len() >= MAX_NOTES {
                return Err(corrupt("too many notes", p));
            }
            let namesz = u64::from(u32_at(file, p).ok_or(corrupt("note", p))?);
            let descsz = u64::from(u32_at(file, p + 4).ok_or(corrupt("note", p))?);
            let ntype = u32_at(file, p + 8).ok_or(corrupt("note", p))?;
            if namesz == 0 && descsz == 0 && ntype == 0 {
                // Padding at the end of a note segment (kdump's final_note).
                break;
            }
            let name_off = p + 12;
            let desc_off = name_off + namesz.div_ceil(4) * 4;
            let next = desc_off + descsz.div_ceil(4) * 4;
            if desc_off + descsz > end {
                return Err(corrupt("note runs past its segment", p));
            }
            let raw = &file[name_off as usize..(name_off + namesz) as usize];
            let name =
                String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
            if name == "VMCOREINFO" && self.vmcoreinfo.is_none() {
                match VmcoreInfo::parse(&file[desc_off as usize..(desc_off + descsz) as usize]) {
                    Ok(v) => self.vmcoreinfo = Some(v),
                    Err(e) => self.caveats.push(format!(
                        "VMCOREINFO note: unreadable ({e}); VMCOREINFO looked for in guest RAM"
                    )),
                }
            }
            self.notes.push(NoteInfo {
                name,
                ntype,
                desc_offset: desc_off,
                desc_len: descsz,
            });
            p = next;
        }
        Ok(())
    }

    fn parse_cpus(&mut self, file: &[u8]) {
        let desc =
            |n: &NoteInfo| &file[n.desc_offset as usize..(n.desc_offset + n.desc_len) as usize];
        let mut qemu = Vec::new();
        let (mut prstatus, mut bad_prstatus, mut qemu_notes, mut bad_qemu) = (0, 0, 0, 0);
        for n in &self.notes {
            if n.ntype == notes::NT_PRSTATUS && n.name == "CORE" {
                prstatus += 1;
                if let Some((r, pid)) = notes::parse_prstatus(desc(n)) {
                    self.cpus.push(r);
                    self.pids.push(pid);
                } else {
                    bad_prstatus += 1;
                }
            } else if n.name == "QEMU" {
                qemu_notes += 1;
                match notes::parse_qemu_cpu_state(desc(n)) {
                    Some(r) => qemu.push(r),
                    None => bad_qemu += 1,
                }
            }
        }
        if bad_prstatus > 0 {
            self.caveats.push(format!(
                "vcpu_regs: {bad_prstatus} of {prstatus} CPU notes (NT_PRSTATUS) unreadable"
            ));
        }
        if bad_qemu > 0 {
            self.caveats.push(format!(
                "vcpu_regs: {bad_qemu} of {qemu_notes} QEMU CPU notes unreadable (CR3/CR4 of those CPUs unknown)"
            ));
        }
        if prstatus == 0 && qemu_notes == 0 {
            self.caveats
                .push("vcpu_regs: the vmcore has no CPU notes (NT_PRSTATUS or QEMU)".into());
        }
        if self.cpus.is_empty() {
            self.cpus = qemu;
            return;
        }
        if !qemu.is_empty() && qemu.len() != self.cpus.len() {
            self.caveats.push(format!(
                "vcpu_regs: {} NT_PRSTATUS notes but {} QEMU CPU notes; registers paired in order",
                self.cpus.len(),
                qemu.len()
            ));
        }
        for (c, q) in self.cpus.iter_mut().zip(qemu) {
            c.cr0 = q.cr0;
            c.cr3 = q.cr3;
            c.cr4 = q.cr4;
            c.efer = q.efer;
            if c.fs_base == 0 {
                c.fs_base = q.fs_base;
            }
            if c.gs_base == 0 {
                c.gs_base = q.gs_base;
            }
        }
    }

    /// `(gpa, file offset, len)` of the file-backed memory, overlaps trimmed.
    pub fn memory_parts(&self) -> Vec<(Gpa, u64, u64)> {
        let mut segs: Vec<_> = self
            .segments
            .iter()
            .filter(|s| s.filesz > 0)
            .map(|s| (s.paddr, s.offset, s.filesz))
            .collect();
        segs.sort_by_key(|&(p, _, len)| (p, std::cmp::Reverse(len)));
        let mut out = Vec::new();
        let mut covered = 0u64;
        for (p, off, len) in segs {
            let end = p + len;
            if !out.is_empty() && end <= covered {
                continue;
            }
            let skip = if out.is_empty() {
                0
            } else {
                covered.saturating_sub(p)
            };
            out.push((Gpa(p + skip), off + skip, len - skip));
            covered = end;
        }
        out
    }
}

/// An opened vmcore: its layout and its memory.
#[derive(Debug, Clone)]
pub struct Vmcore {
    layout: VmcoreLayout,
    mem: PhysMem,
}

impl Vmcore {
    /// Maps `path` read-only. The file must not be truncated while the `Vmcore` or
    /// memory taken from it lives (reads would fault).
    pub fn open(path: &Path) -> Result<Vmcore, VmcoreError> {
        let io = |source| VmcoreError::Io {
            path: path.display().to_string(),
            source,
        };
        // Checked before opening: opening a FIFO would wait for a writer.
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(VmcoreError::NotRegular {
                path: path.display().to_string(),
                kind: file_kind(&meta),
            });
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 64 {
            return Err(VmcoreError::NotElf);
        }
        let len = usize::try_from(len).map_err(|_| VmcoreError::Unsupported("file too large"))?;
        let map = MmapRegion::<()>::build(
            Some(FileOffset::new(file, 0)),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| VmcoreError::Map(e.to_string()))?;
        // A capture reads a few thousand scattered pages of a file of guest RAM: no
        // readahead, so that only what is read is paged in (and counted in the RSS).
        // SAFETY: advice on our own mapping of `len` bytes; it changes no contents.
        unsafe { libc::madvise(map.as_ptr().cast(), len, libc::MADV_RANDOM) };
        let map = Arc::new(map);
        // SAFETY: the mapping is `len` readable bytes, lives as long as `map` (kept
        // by the PhysMem as its owner), and is private and read-only: nothing in
        // this process writes it (the file must not be truncated, see above).
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr() as *const u8, len) };
        let mut core = Self::from_backing(bytes, map)?;
        core.mem = core.mem.with_releasable(bytes.as_ptr(), len);
        Ok(core)
    }

    /// Maps `path` privately with `edits` (file offset, bytes) written into the mapping
    /// (copy-on-write: the file is untouched), for fuzzing the whole pipeline on a
    /// damaged copy of a real vmcore without copying it. Edits past the end are cut.
    #[cfg(any(test, feature = "test-util"))]
    pub fn open_with_edits(path: &Path, edits: &[(u64, &[u8])]) -> Result<Vmcore, VmcoreError> {
        let io = |source| VmcoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 64 {
            return Err(VmcoreError::NotElf);
        }
        let len = usize::try_from(len).map_err(|_| VmcoreError::Unsupported("file too large"))?;
        let map = MmapRegion::<()>::build(
            Some(FileOffset::new(file, 0)),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| VmcoreError::Map(e.to_string()))?;
        for (off, bytes) in edits {
            let Ok(off) = usize::try_from(*off) else {
                continue;
            };
            if off >= len {
                continue;
            }
            let n = bytes.len().min(len - off);
            // SAFETY: `off + n <= len` bytes of a private writable mapping we own; no
            // reference into it exists yet.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_ptr().add(off), n) };
        }
        let map = Arc::new(map);
        // SAFETY: as in `open`: `len` bytes mapped for as long as `map` lives (the
        // PhysMem keeps it); nothing writes the mapping after this point.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr() as *const u8, len) };
        Self::from_backing(bytes, map)
    }

    /// Reads a vmcore held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Vmcore, VmcoreError> {
        let owner = Arc::new(bytes);
        // The Vec's heap buffer does not move when the Arc is cloned; the clone
        // keeps it alive for as long as the PhysMem lives.
        Self::from_backing(&owner, owner.clone())
    }

    fn from_backing(
        bytes: &[u8],
        owner: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Result<Vmcore, VmcoreError> {
        let layout = VmcoreLayout::parse(bytes)?;
        let parts = layout.memory_parts();
        if parts.is_empty() {
            return Err(VmcoreError::NoMemory);
        }
        let mem = PhysMem::from_backing(bytes, &parts, Volatility::Stable, owner)?;
        Ok(Vmcore { layout, mem })
    }

    /// Headers and notes.
    pub fn layout(&self) -> &VmcoreLayout {
        &self.layout
    }

    /// The guest-physical memory.
    pub fn phys(&self) -> &PhysMem {
        &self.mem
    }

    /// The `VMCOREINFO` note, if the vmcore has one.
    pub fn vmcoreinfo(&self) -> Option<&VmcoreInfo> {
        self.layout.vmcoreinfo.as_ref()
    }

    /// Per-CPU registers from the notes.
    pub fn cpus(&self) -> &[CpuRegs] {
        &self.layout.cpus
    }

    /// The kernel in this vmcore: VMCOREINFO from the note (or a scan of its RAM when
    /// absent, or when the note's does not decode), CPUs from the notes; `opts` may
    /// add or override (e.g. a System.map).
    pub fn kernel(&self, mut opts: KernelOptions) -> Result<Kernel, KernelError> {
        if opts.cpus.is_empty() {
            opts.cpus = self.layout.cpus.clone();
        }
        if opts.vmcoreinfo.is_some() {
            return Kernel::new(self.mem.clone(), opts);
        }
        let Some(note) = self.layout.vmcoreinfo.clone() else {
            return Kernel::new(self.mem.clone(), opts);
        };
        let scan_opts = opts.clone();
        opts.vmcoreinfo = Some(note);
        Kernel::new(self.mem.clone(), opts).or_else(|e| {
            Kernel::new(self.mem.clone(), scan_opts)
                .map(|k| {
                    k.with_caveat(format!(
                        "VMCOREINFO: the vmcore's note does not lead to the kernel ({e}); the VMCOREINFO found in guest RAM used"
                    ))
                })
                .map_err(|_| e)
        })
    }

    /// What was dropped or doubtful in the vmcore's headers and notes (CPU notes that do
    /// not parse, a VMCOREINFO note that does not, memory excluded from the file), in
    /// words with counts, for the report's `capture_notes`.
    pub fn caveats(&self) -> &[String] {
        &self.layout.caveats
    }
}
