//! Reading one ELF file the way the dynamic loader sees it: the file header, the program
//! headers (`PT_INTERP`, `PT_DYNAMIC`, `PT_LOAD`) and the dynamic section's strings
//! (`DT_NEEDED`, `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH`, `DT_FLAGS_1`). Section headers
//! are ignored, as the loader ignores them. Every count, offset and string is checked
//! against the file and the limits below; nothing here trusts the file.

use super::ElfError;
use elf::ElfBytes;
use elf::abi;
use elf::endian::AnyEndian;
use elf::file::Class;
use std::io::Read;
use std::path::Path;

/// Files larger than this are refused (a scheduler binary is tens of MiB).
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 30;
/// Program headers looked at (the format allows up to 2^32 with `PN_XNUM`).
const MAX_PHDRS: usize = 4096;
/// Dynamic entries read before a `DT_NULL` must have appeared.
const MAX_DYN_ENTRIES: usize = 16384;
/// `DT_NEEDED` entries of one object.
pub(crate) const MAX_NEEDED: usize = 1024;
/// Longest string (library name, search path, interpreter) read from a file.
const MAX_STRING: usize = 4096;

const DT_SONAME: i64 = 14;
const DT_FLAGS_1: i64 = 0x6fff_fffb;
/// `DF_1_NODEFLIB`: do not search the cache or the default directories.
const DF_1_NODEFLIB: u64 = 0x800;
const DYN_ENTRY: usize = 16;

/// What kind of ELF a file is, from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// An x86-64 executable (`ET_EXEC`, or `ET_DYN`: PIE or static-pie).
    Executable,
    /// A BPF object (`EM_BPF`, relocatable), e.g. a `.bpf.o`.
    BpfObject,
    /// Any other ELF: another machine or class, a core file, ...
    Other {
        class64: bool,
        machine: u16,
        e_type: u16,
    },
}

/// The first 20 bytes of an ELF header: class, byte order, type, machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ident {
    pub class64: bool,
    pub little_endian: bool,
    pub e_type: u16,
    pub machine: u16,
}

impl Ident {
    /// What this loader can map: ELF64, little-endian, x86-64.
    pub fn is_x86_64(&self) -> bool {
        self.class64 && self.little_endian && self.machine == abi::EM_X86_64
    }

    pub fn kind(&self) -> ElfKind {
        if self.machine == abi::EM_BPF && self.e_type == abi::ET_REL {
            ElfKind::BpfObject
        } else if self.is_x86_64() && matches!(self.e_type, abi::ET_EXEC | abi::ET_DYN) {
            ElfKind::Executable
        } else {
            ElfKind::Other {
                class64: self.class64,
                machine: self.machine,
                e_type: self.e_type,
            }
        }
    }
}

/// Parse the identification part of an ELF header (`None`: not ELF or too short).
pub(crate) fn ident(head: &[u8]) -> Option<Ident> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let little_endian = head[5] == abi::ELFDATA2LSB;
    let u16_at = |o: usize| {
        let b = [head[o], head[o + 1]];
        if little_endian {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    Some(Ident {
        class64: head[4] == abi::ELFCLASS64,
        little_endian,
        e_type: u16_at(16),
        machine: u16_at(18),
    })
}

/// The first 64 bytes of `path` (for [`ident`]).
pub(crate) fn read_head(path: &Path) -> Result<Vec<u8>, ElfError> {
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|source| ElfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(head)
}

/// The whole file, refused beyond [`MAX_FILE_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, ElfError> {
    let io = |source| ElfError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut data = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(ElfError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(data)
}

/// What the loader reads from one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DynamicInfo {
    /// `PT_INTERP`, the program interpreter's path.
    pub interpreter: Option<String>,
    /// Whether there is a `PT_DYNAMIC` segment at all.
    pub dynamic: bool,
    pub needed: Vec<String>,
    pub soname: Option<String>,
    pub rpath: Option<String>,
    pub runpath: Option<String>,
    pub nodeflib: bool,
}

/// Parse an x86-64 ELF64 object (the caller checked [`Ident::is_x86_64`]).
pub(crate) fn parse(data: &[u8], path: &Path) -> Result<DynamicInfo, ElfError> {
    let malformed = |detail: String| ElfError::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    let elf = ElfBytes::<AnyEndian>::minimal_parse(data).map_err(|e| malformed(e.to_string()))?;
    if elf.ehdr.class != Class::ELF64 {
        return Err(malformed("not ELF64".into()));
    }
    let mut info = DynamicInfo::default();
    let Some(phdrs) = elf.segments() else {
        // No program headers: nothing to load, nothing needed (the kernel would refuse
        // to run it, which the guest reports).
        return Ok(info);
    };
    if phdrs.len() > MAX_PHDRS {
        return Err(ElfError::Limit {
            path: path.to_path_buf(),
            what: "program headers",
            limit: MAX_PHDRS,
        });
    }
    let mut loads = Vec::new();
    let mut dynamic = None;
    for ph in phdrs.iter() {
        let range = file_range(ph.p_offset, ph.p_filesz, data.len());
        match ph.p_type {
            abi::PT_INTERP if info.interpreter.is_none() => {
                let bytes = range
                    .and_then(|(s, e)| data.get(s..e))
                    .ok_or_else(|| malformed("PT_INTERP outside the file".into()))?;
                info.interpreter = Some(c_string(bytes, 0, path, "the interpreter")?);
            }
            abi::PT_DYNAMIC if dynamic.is_none() => {
                dynamic =
                    Some(range.ok_or_else(|| malformed("PT_DYNAMIC outside the file".into()))?);
            }
            abi::PT_LOAD => {
                if let Some((s, e)) = range {
                    loads.push((ph.p_vaddr, s, e));
                }
            }
            _ => {}
        }
    }
    let Some((start, end)) = dynamic else {
        return Ok(info);
    };
    info.dynamic = true;
    let table = &data[start..end];
    let mut strtab = None;
    let mut strsz = None;
    let (mut needed, mut soname, mut rpath, mut runpath) = (Vec::new(), None, None, None);
    let mut terminated = false;
    for entry in table.chunks_exact(DYN_ENTRY).take(MAX_DYN_ENTRIES) {
        let tag = i64::from_le_bytes(entry[..8].try_into().unwrap_or([0; 8]));
        let val = u64::from_le_bytes(entry[8..].try_into().unwrap_or([0; 8]));
        match tag {
            abi::DT_NULL => {
                terminated = true;
                break;
            }
            abi::DT_NEEDED => {
                if needed.len() >= MAX_NEEDED {
                    return Err(ElfError::Limit {
                        path: path.to_path_buf(),
                        what: "DT_NEEDED entries",
                        limit: MAX_NEEDED,
                    });
                }
                needed.push(val);
            }
            DT_SONAME => soname = Some(val),
            abi::DT_RPATH => rpath = Some(val),
            abi::DT_RUNPATH => runpath = Some(val),
            abi::DT_STRTAB => strtab = Some(val),
            abi::DT_STRSZ => strsz = Some(val),
            DT_FLAGS_1 => info.nodeflib = val & DF_1_NODEFLIB != 0,
            _ => {}
        }
    }
    if !terminated && table.len() / DYN_ENTRY > MAX_DYN_ENTRIES {
        return Err(ElfError::Limit {
            path: path.to_path_buf(),
            what: "dynamic entries without DT_NULL",
            limit: MAX_DYN_ENTRIES,
        });
    }
    let strings_needed =
        !needed.is_empty() || soname.is_some() || rpath.is_some() || runpath.is_some();
    if !strings_needed {
        return Ok(info);
    }
    let strtab = strtab.ok_or_else(|| malformed("dynamic strings used but no DT_STRTAB".into()))?;
    // DT_STRTAB is a virtual address: the PT_LOAD that maps it gives its file offset.
    let (seg_vaddr, seg_start, seg_end) = loads
        .iter()
        .copied()
        .find(|&(vaddr, s, e)| strtab >= vaddr && strtab - vaddr < (e - s) as u64)
        .ok_or_else(|| malformed(format!("DT_STRTAB {strtab:#x} is in no PT_LOAD segment")))?;
    let table_start = seg_start + (strtab - seg_vaddr) as usize;
    let table_end = match strsz {
        Some(sz) => table_start
            .checked_add(usize::try_from(sz).unwrap_or(usize::MAX))
            .map_or(seg_end, |e| e.min(seg_end)),
        None => seg_end,
    };
    let strings = &data[table_start..table_end];
    let get = |off: u64, what: &str| {
        let off = usize::try_from(off).unwrap_or(usize::MAX);
        c_string(strings, off, path, what)
    };
    for off in needed {
        info.needed.push(get(off, "a DT_NEEDED name")?);
    }
    info.soname = soname.map(|o| get(o, "DT_SONAME")).transpose()?;
    info.rpath = rpath.map(|o| get(o, "DT_RPATH")).transpose()?;
    info.runpath = runpath.map(|o| get(o, "DT_RUNPATH")).transpose()?;
    Ok(info)
}

/// `offset..offset+size` when it lies inside a file of `len` bytes.
fn file_range(offset: u64, size: u64, len: usize) -> Option<(usize, usize)> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    (end <= len).then_some((start, end))
}

/// The NUL-terminated string at `off` of `bytes` (at most [`MAX_STRING`] bytes, UTF-8).
fn c_string(bytes: &[u8], off: usize, path: &Path, what: &str) -> Result<String, ElfError> {
    let malformed = |detail: String| ElfError::Malformed {
        path: path.to_path_buf(),
        detail,
    };
    let rest = bytes
        .get(off..)
        .ok_or_else(|| malformed(format!("{what} at {off:#x} is outside its string table")))?;
    let window = &rest[..rest.len().min(MAX_STRING + 1)];
    let len = window.iter().position(|&b| b == 0).ok_or_else(|| {
        malformed(format!(
            "{what} at {off:#x} is not NUL-terminated within {MAX_STRING} bytes"
        ))
    })?;
    let s = std::str::from_utf8(&window[..len])
        .map_err(|_| malformed(format!("{what} at {off:#x} is not UTF-8")))?;
    if s.is_empty() {
        return Err(malformed(format!("{what} at {off:#x} is empty")));
    }
    Ok(s.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 file: header, `phdrs` program headers, then `tail` bytes
    /// (the segments point into the tail). Offsets in `phdrs` are relative to the tail.
    pub(crate) fn synth(e_type: u16, phdrs: &[(u32, u64, u64, u64)], tail: &[u8]) -> Vec<u8> {
        let phoff = 64u64;
        let tail_off = phoff + 56 * phdrs.len() as u64;
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&e_type.to_le_bytes());
        f.extend_from_slice(&abi::EM_X86_64.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes()); // e_version
        f.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        f.extend_from_slice(&phoff.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        f.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
        f.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        for &(p_type, off, vaddr, size) in phdrs {
            f.extend_from_slice(&p_type.to_le_bytes());
            f.extend_from_slice(&4u32.to_le_bytes()); // flags
            f.extend_from_slice(&(tail_off + off).to_le_bytes());
            f.extend_from_slice(&vaddr.to_le_bytes());
            f.extend_from_slice(&vaddr.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&8u64.to_le_bytes());
        }
        f.extend_from_slice(tail);
        f
    }

    /// A dynamic table from (tag, value) pairs, without a terminator.
    pub(crate) fn dyn_table(entries: &[(i64, u64)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (tag, val) in entries {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&val.to_le_bytes());
        }
        t
    }

    /// A dynamic object: strings at tail offset 0 (mapped at vaddr 0x1000), the dynamic
    /// table after them.
    pub(crate) fn dynamic_elf(
        strings: &[u8],
        entries: &[(i64, u64)],
        interp: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut tail = strings.to_vec();
        let dyn_off = tail.len() as u64;
        let mut table = vec![
            (abi::DT_STRTAB, 0x1000),
            (abi::DT_STRSZ, strings.len() as u64),
        ];
        table.extend_from_slice(entries);
        table.push((abi::DT_NULL, 0));
        tail.extend_from_slice(&dyn_table(&table));
        let dyn_len = tail.len() as u64 - dyn_off;
        let mut phdrs = vec![
            (abi::PT_LOAD, 0, 0x1000, tail.len() as u64),
            (abi::PT_DYNAMIC, dyn_off, 0x1000 + dyn_off, dyn_len),
        ];
        if let Some(i) = interp {
            let off = tail.len() as u64;
            tail.extend_from_slice(i);
            phdrs.push((abi::PT_INTERP, off, 0, i.len() as u64));
        }
        synth(abi::ET_DYN, &phdrs, &tail)
    }

    fn p() -> &'static Path {
        Path::new("/test/obj")
    }

    #[test]
    fn reads_interp_needed_and_paths() {
        let strings = b"\0libz.so.1\0libfoo.so\0$ORIGIN/../lib\0libself.so.2\0";
        let data = dynamic_elf(
            strings,
            &[
                (abi::DT_NEEDED, 1),
                (abi::DT_NEEDED, 11),
                (abi::DT_RUNPATH, 21),
                (DT_SONAME, 36),
                (DT_FLAGS_1, DF_1_NODEFLIB),
            ],
            Some(b"/lib64/ld-linux-x86-64.so.2\0"),
        );
        let id = ident(&data).unwrap();
        assert!(id.is_x86_64());
        assert_eq!(id.kind(), ElfKind::Executable);
        let info = parse(&data, p()).unwrap();
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(info.needed, ["libz.so.1", "libfoo.so"]);
        assert_eq!(info.runpath.as_deref(), Some("$ORIGIN/../lib"));
        assert_eq!(info.soname.as_deref(), Some("libself.so.2"));
        assert_eq!(info.rpath, None);
        assert!(info.nodeflib && info.dynamic);
    }

    #[test]
    fn static_without_program_interpreter_or_dynamic() {
        let data = synth(
            abi::ET_EXEC,
            &[(abi::PT_LOAD, 0, 0x400000, 4)],
            b"\x90\x90\x90\x90",
        );
        let info = parse(&data, p()).unwrap();
        assert_eq!(info, DynamicInfo::default());
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert_eq!(ident(b"\x7fEL"), None);
        assert_eq!(ident(b"#!/bin/sh\necho hi\n\n\n\n\n\n"), None);
        let good = dynamic_elf(b"\0libz.so.1\0", &[(abi::DT_NEEDED, 1)], Some(b"/x\0"));
        // Every truncation either parses (the cut fell after what is read) or errs.
        for cut in 0..good.len() {
            let _ = parse(&good[..cut], p());
        }
        assert!(parse(&good[..40], p()).is_err());
        // Flip every byte in turn: never a panic.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = parse(&bad, p());
        }
    }

    #[test]
    fn hostile_offsets_and_counts_are_refused() {
        // A string offset far outside the table.
        let data = dynamic_elf(b"\0libz.so.1\0", &[(abi::DT_NEEDED, 1 << 40)], None);
        let err = parse(&data, p()).unwrap_err().to_string();
        assert!(err.contains("outside its string table"), "{err}");
        // A string without a terminator.
        let data = dynamic_elf(b"\0libz", &[(abi::DT_NEEDED, 1)], None);
        let err = parse(&data, p()).unwrap_err().to_string();
        assert!(err.contains("not NUL-terminated"), "{err}");
        // DT_STRTAB pointing nowhere.
        let mut entries = vec![(abi::DT_NEEDED, 1)];
        entries.insert(0, (abi::DT_STRTAB, 0xdead_0000));
        let data = dynamic_elf(b"\0libz.so.1\0", &entries, None);
        // The first DT_STRTAB (valid) is overridden by the later bogus one.
        let err = parse(&data, p()).unwrap_err().to_string();
        assert!(err.contains("in no PT_LOAD"), "{err}");
        // Too many DT_NEEDED.
        let many: Vec<(i64, u64)> = (0..=MAX_NEEDED).map(|_| (abi::DT_NEEDED, 1)).collect();
        let data = dynamic_elf(b"\0libz.so.1\0", &many, None);
        let err = parse(&data, p()).unwrap_err();
        assert!(matches!(err, ElfError::Limit { .. }), "{err}");
        // PT_INTERP past the end of the file.
        let data = synth(abi::ET_EXEC, &[(abi::PT_INTERP, 0, 0, 1 << 20)], b"/x\0");
        assert!(
            parse(&data, p())
                .unwrap_err()
                .to_string()
                .contains("PT_INTERP")
        );
        // A huge program header count claims more table than the file has.
        let mut data = synth(abi::ET_EXEC, &[], b"");
        data[56..58].copy_from_slice(&0xfffeu16.to_le_bytes());
        data[32..40].copy_from_slice(&64u64.to_le_bytes());
        assert!(parse(&data, p()).is_err());
    }

    #[test]
    fn kinds() {
        let mut bpf = synth(abi::ET_REL, &[], b"");
        bpf[18..20].copy_from_slice(&abi::EM_BPF.to_le_bytes());
        assert_eq!(ident(&bpf).unwrap().kind(), ElfKind::BpfObject);
        let mut arm = synth(abi::ET_EXEC, &[], b"");
        arm[18..20].copy_from_slice(&abi::EM_AARCH64.to_le_bytes());
        assert!(matches!(ident(&arm).unwrap().kind(), ElfKind::Other { .. }));
        let core = synth(abi::ET_CORE, &[], b"");
        assert!(matches!(
            ident(&core).unwrap().kind(),
            ElfKind::Other { .. }
        ));
    }
}
