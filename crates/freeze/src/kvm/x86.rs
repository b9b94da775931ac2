//! x86_64 vCPU set-up: GDT, identity page tables, segment and control registers for real,
//! 32-bit protected (PVH) and 64-bit long mode; CPUID, boot MSRs, FPU and local APIC.

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs,
};
use kvm_ioctls::{Kvm, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error;
use super::layout::{GDT_START, IDT_START, PAGE_TABLES_END, PDE_START, PDPTE_START, PML4_START};
use crate::{CpuRegs, EngineError};

/// Selector of the flat 64-bit code segment (the Linux boot protocol's `__BOOT_CS`).
pub const CODE64_SELECTOR: u16 = 0x10;
/// Selector of the flat data segment (`__BOOT_DS`).
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the flat 32-bit code segment (PVH entry).
pub const CODE32_SELECTOR: u16 = 0x20;

const GDT: [u64; 5] = [
    0,
    0,
    gdt_entry(0xa09b, 0, 0xfffff), // code, 64-bit (L), 4 KiB granularity
    gdt_entry(0xc093, 0, 0xfffff), // data, read/write, 32-bit, 4 KiB granularity
    gdt_entry(0xc09b, 0, 0xfffff), // code, 32-bit (D), 4 KiB granularity
];

const X86_CR0_PE: u64 = 1;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// How page tables are provided for a long-mode start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageTables {
    /// The VMM writes an identity map of the first 4 GiB (2 MiB pages) at
    /// [`PML4_START`]..[`PAGE_TABLES_END`] and loads it.
    Identity4G,
    /// The caller built its own tables; this is the guest-physical address of the PML4.
    Cr3(u64),
}

/// The CPU mode a vCPU starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// 16-bit real mode with `CS.base = cs_selector * 16` (all other segments base 0).
    Real { cs_selector: u16 },
    /// 32-bit protected mode, paging off, flat segments (the PVH entry state).
    Protected32,
    /// 64-bit long mode with flat segments and the given page tables.
    Long(PageTables),
}

/// Encodes one GDT descriptor from its flags (access byte in bits 0..8, flags nibble in
/// bits 12..16), base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The `kvm_segment` KVM expects for a GDT descriptor loaded with `selector`.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let limit_raw = ((entry & 0x0000_ffff) | ((entry >> 32) & 0x000f_0000)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (limit_raw << 12) | 0xfff
        } else {
            limit_raw
        },
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        padding: 0,
        unusable: 0,
    }
}

/// Writes the GDT and an empty IDT to low memory.
pub fn write_gdt_idt(mem: &GuestMemoryMmap) -> Result<(), EngineError> {
    for (i, entry) in GDT.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_START + 8 * i as u64))
            .map_err(|e| error::failed("write GDT", e))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
        .map_err(|e| error::failed("write IDT", e))
}

/// Writes the identity map of the first 4 GiB (2 MiB pages); returns the PML4 address.
pub fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<u64, EngineError> {
    let w = |val: u64, addr: u64| {
        mem.write_obj(val, GuestAddress(addr))
            .map_err(|e| error::failed("write identity page tables", e))
    };
    w(PDPTE_START | 0x3, PML4_START)?;
    for gib in 0..4u64 {
        let pd = PDE_START + gib * 0x1000;
        debug_assert!(pd + 0x1000 <= PAGE_TABLES_END);
        w(pd | 0x3, PDPTE_START + 8 * gib)?;
        for i in 0..512u64 {
            // Present, writable, 2 MiB page.
            w(((gib << 30) | (i << 21)) | 0x83, pd + 8 * i)?;
        }
    }
    Ok(PML4_START)
}

/// Sets segment and control registers for `mode` (the GDT must be written for the
/// protected and long modes; identity page tables are written here when asked for).
pub fn setup_sregs(mem: &GuestMemoryMmap, vcpu: &VcpuFd, mode: CpuMode) -> Result<(), EngineError> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| error::io("KVM_GET_SREGS (initial state)", e))?;
    match mode {
        CpuMode::Real { cs_selector } => {
            sregs.cs.selector = cs_selector;
            sregs.cs.base = u64::from(cs_selector) << 4;
            for seg in [
                &mut sregs.ds,
                &mut sregs.es,
                &mut sregs.fs,
                &mut sregs.gs,
                &mut sregs.ss,
            ] {
                seg.selector = 0;
                seg.base = 0;
            }
        }
        CpuMode::Protected32 => {
            load_flat_segments(&mut sregs, CODE32_SELECTOR);
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        CpuMode::Long(tables) => {
            load_flat_segments(&mut sregs, CODE64_SELECTOR);
            sregs.cr3 = match tables {
                PageTables::Identity4G => write_identity_page_tables(mem)?,
                PageTables::Cr3(cr3) => cr3,
            };
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
    }
    vcpu.set_sregs(&sregs)
        .map_err(|e| error::io("KVM_SET_SREGS (initial state)", e))
}

fn load_flat_segments(sregs: &mut kvm_sregs, code_selector: u16) {
    let code = segment_from_gdt(GDT[usize::from(code_selector) / 8], code_selector);
    let data = segment_from_gdt(GDT[usize::from(DATA_SELECTOR) / 8], DATA_SELECTOR);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&GDT) - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 0;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
}

/// Sets the general-purpose registers from `regs` (RIP, RSP and the others; RFLAGS bit 1 is
/// forced on as the architecture requires).
pub fn setup_regs(vcpu: &VcpuFd, regs: &CpuRegs) -> Result<(), EngineError> {
    let r = kvm_regs {
        rax: regs.rax,
        rbx: regs.rbx,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        rsp: regs.rsp,
        rbp: regs.rbp,
        r8: regs.r8,
        r9: regs.r9,
        r10: regs.r10,
        r11: regs.r11,
        r12: regs.r12,
        r13: regs.r13,
        r14: regs.r14,
        r15: regs.r15,
        rip: regs.rip,
        rflags: regs.rflags | 0x2,
    };
    vcpu.set_regs(&r)
        .map_err(|e| error::io("KVM_SET_REGS (initial state)", e))
}

/// Captures a vCPU's registers into the shared register type.
pub fn capture_regs(vcpu: &VcpuFd) -> Result<CpuRegs, EngineError> {
    let r = vcpu.get_regs().map_err(|e| error::io("KVM_GET_REGS", e))?;
    let s = vcpu
        .get_sregs()
        .map_err(|e| error::io("KVM_GET_SREGS", e))?;
    Ok(cpu_regs_from(&r, &s))
}

/// Converts KVM's register structures into [`CpuRegs`].
pub fn cpu_regs_from(r: &kvm_regs, s: &kvm_sregs) -> CpuRegs {
    CpuRegs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        rsp: r.rsp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rflags: r.rflags,
        cs: u64::from(s.cs.selector),
        ss: u64::from(s.ss.selector),
        ds: u64::from(s.ds.selector),
        es: u64::from(s.es.selector),
        fs: u64::from(s.fs.selector),
        gs: u64::from(s.gs.selector),
        fs_base: s.fs.base,
        gs_base: s.gs.base,
        cr0: s.cr0,
        cr3: s.cr3,
        cr4: s.cr4,
        efer: s.efer,
    }
}

/// The CPUID table for vCPU `apic_id`: what KVM supports, with the vCPU's APIC ID and the
/// hypervisor bit set so the guest finds the KVM paravirtual leaves (kvmclock).
pub fn cpuid_for(kvm: &Kvm, apic_id: u8) -> Result<CpuId, EngineError> {
    let mut cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| error::io("KVM_GET_SUPPORTED_CPUID", e))?;
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            1 => {
                entry.ebx = (entry.ebx & 0x00ff_ffff) | (u32::from(apic_id) << 24);
                entry.ecx |= 1 << 31;
            }
            0xb | 0x1f => entry.edx = u32::from(apic_id),
            _ => {}
        }
    }
    Ok(cpuid)
}

/// MSRs the Linux boot protocol expects in a defined state.
pub fn setup_boot_msrs(vcpu: &VcpuFd) -> Result<(), EngineError> {
    const MSR_IA32_SYSENTER_CS: u32 = 0x174;
    const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
    const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
    const MSR_STAR: u32 = 0xc000_0081;
    const MSR_LSTAR: u32 = 0xc000_0082;
    const MSR_CSTAR: u32 = 0xc000_0083;
    const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
    const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
    const MSR_IA32_TSC: u32 = 0x10;
    const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
    const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
    let entry = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    let entries = [
        entry(MSR_IA32_SYSENTER_CS, 0),
        entry(MSR_IA32_SYSENTER_ESP, 0),
        entry(MSR_IA32_SYSENTER_EIP, 0),
        entry(MSR_STAR, 0),
        entry(MSR_CSTAR, 0),
        entry(MSR_KERNEL_GS_BASE, 0),
        entry(MSR_SYSCALL_MASK, 0),
        entry(MSR_LSTAR, 0),
        entry(MSR_IA32_TSC, 0),
        // Fast strings.
        entry(MSR_IA32_MISC_ENABLE, 1),
        // MTRRs enabled, default type write-back: without it Linux maps RAM uncached.
        entry(MSR_MTRR_DEF_TYPE, (1 << 11) | 6),
    ];
    let msrs = Msrs::from_entries(&entries).map_err(|e| error::failed("build boot MSRs", e))?;
    let set = vcpu
        .set_msrs(&msrs)
        .map_err(|e| error::io("KVM_SET_MSRS", e))?;
    if set != entries.len() {
        return Err(error::failed(
            "KVM_SET_MSRS",
            format!(
                "KVM accepted {set} of {} boot MSRs (MSR {:#x} refused)",
                entries.len(),
                entries[set].index
            ),
        ));
    }
    Ok(())
}

/// x87 and SSE control words in their reset state.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<(), EngineError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(|e| error::io("KVM_SET_FPU", e))
}

/// Local APIC: LINT0 as ExtINT (the legacy PIC) and LINT1 as NMI, as a BIOS leaves them.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), EngineError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const APIC_MODE_EXTINT: u32 = 0x7;
    const APIC_MODE_NMI: u32 = 0x4;
    let mut lapic = vcpu
        .get_lapic()
        .map_err(|e| error::io("KVM_GET_LAPIC", e))?;
    for (offset, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let mut bytes = [0u8; 4];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = lapic.regs[offset + i] as u8;
        }
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (i, b) in value.to_le_bytes().iter().enumerate() {
            lapic.regs[offset + i] = *b as std::os::raw::c_char;
        }
    }
    vcpu.set_lapic(&lapic)
        .map_err(|e| error::io("KVM_SET_LAPIC", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_flat_segments() {
        let code = segment_from_gdt(GDT[2], CODE64_SELECTOR);
        assert_eq!((code.base, code.limit), (0, 0xffff_ffff));
        assert_eq!(
            (code.l, code.db, code.g, code.present, code.s),
            (1, 0, 1, 1, 1)
        );
        assert_eq!(code.type_, 0xb);
        let data = segment_from_gdt(GDT[3], DATA_SELECTOR);
        assert_eq!((data.l, data.db, data.type_), (0, 1, 0x3));
        let code32 = segment_from_gdt(GDT[4], CODE32_SELECTOR);
        assert_eq!((code32.l, code32.db, code32.type_), (0, 1, 0xb));
        // A non-flat descriptor round-trips base and limit.
        let e = gdt_entry(0x4093, 0x1234_5678, 0xabcde);
        let s = segment_from_gdt(e, 8);
        assert_eq!((s.base, s.limit, s.g, s.db), (0x1234_5678, 0xabcde, 0, 1));
    }
}
