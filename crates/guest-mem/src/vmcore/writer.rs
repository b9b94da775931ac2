//! Writing guest memory as an ELF vmcore that this crate, drgn and crash read.
//!
//! Layout: ELF header, one `PT_NOTE` then one `PT_LOAD` per RAM range
//! (`p_paddr` = the range's GPA, `p_vaddr` = its direct-map address when known,
//! else 0 as in QEMU's `paging=false` dumps); notes `NT_PRSTATUS` ("CORE") per vCPU,
//! QEMU's per-CPU state note ("QEMU", carrying CR3) per vCPU, then `VMCOREINFO`;
//! memory starts page aligned.

use std::io::{self, Write};

use super::notes::{NT_PRSTATUS, encode_prstatus, encode_qemu_cpu_state};
use crate::phys::PhysMem;
use crate::vmcoreinfo::VmcoreInfo;
use crate::{CpuRegs, PhysRead};

/// What to put in a vmcore besides memory.
#[derive(Debug, Clone, Default)]
pub struct VmcoreContents<'a> {
    /// The guest's VMCOREINFO (what lets drgn and crash find the kernel).
    pub vmcoreinfo: Option<&'a VmcoreInfo>,
    /// Registers per vCPU (index = vCPU id).
    pub cpus: &'a [CpuRegs],
    /// The direct-map base, to fill `p_vaddr`; `None` writes 0.
    pub page_offset: Option<u64>,
}

fn note(out: &mut Vec<u8>, name: &str, ntype: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ntype.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Writes `mem` as an ELF64 x86_64 core file to `out`; returns the bytes written.
pub fn write_vmcore<W: Write + ?Sized>(
    out: &mut W,
    mem: &PhysMem,
    contents: &VmcoreContents<'_>,
) -> io::Result<u64> {
    let ranges = mem.ranges();
    let mut notes = Vec::new();
    for (i, c) in contents.cpus.iter().enumerate() {
        note(
            &mut notes,
            "CORE",
            NT_PRSTATUS,
            &encode_prstatus(c, i as u32 + 1),
        );
    }
    for c in contents.cpus {
        note(&mut notes, "QEMU", 0, &encode_qemu_cpu_state(c));
    }
    if let Some(info) = contents.vmcoreinfo {
        note(&mut notes, "VMCOREINFO", 0, info.text().as_bytes());
    }
    let phnum = 1 + ranges.len();
    if phnum >= 0xffff {
        return Err(io::Error::other(
            "too many memory ranges for one ELF header",
        ));
    }
    let notes_off = 64 + 56 * phnum as u64;
    let data_off = (notes_off + notes.len() as u64).next_multiple_of(4096);

    let mut head = Vec::with_capacity(data_off as usize);
    head.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    head.extend_from_slice(&[0u8; 8]);
    head.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    head.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    head.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    head.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    head.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    head.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    head.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    head.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    head.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    head.extend_from_slice(&(phnum as u16).to_le_bytes());
    head.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    head.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    head.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    let mut phdr =
        |ptype: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, len: u64, align: u64| {
            head.extend_from_slice(&ptype.to_le_bytes());
            head.extend_from_slice(&flags.to_le_bytes());
            for v in [off, vaddr, paddr, len, len, align] {
                head.extend_from_slice(&v.to_le_bytes());
            }
        };
    phdr(4, 0, notes_off, 0, 0, notes.len() as u64, 4);
    let mut off = data_off;
    for r in &ranges {
        let vaddr = contents
            .page_offset
            .map_or(0, |po| po.wrapping_add(r.start.0));
        phdr(1, 7, off, vaddr, r.start.0, r.len, 4096);
        off += r.len;
    }
    head.extend_from_slice(&notes);
    head.resize(data_off as usize, 0);
    out.write_all(&head)?;

    let mut buf = vec![0u8; 1 << 20];
    for r in &ranges {
        let mut done = 0u64;
        while done < r.len {
            let n = (r.len - done).min(buf.len() as u64) as usize;
            mem.read_phys(crate::Gpa(r.start.0 + done), &mut buf[..n])
                .map_err(io::Error::other)?;
            out.write_all(&buf[..n])?;
            done += n as u64;
        }
    }
    Ok(off)
}
