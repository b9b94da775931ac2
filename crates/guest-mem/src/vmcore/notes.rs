//! ELF notes of x86_64 vmcores: `NT_PRSTATUS` and QEMU's per-CPU `QEMU` note.
//!
//! Layouts (facts): `struct elf_prstatus` on x86_64 is 336 bytes with `pr_pid` at
//! 32 and `pr_reg` (27 × u64, `struct user_regs_struct` order) at 112. QEMU's
//! `QEMUCPUState` (target/i386/arch_dump.c) is `version, size` (u32 each), 18
//! general registers (note: `rsp` before `rbp`), 10 segments of 24 bytes
//! (`selector, limit, flags, pad` u32 + `base` u64: cs ds es fs gs ss ldt tr gdt
//! idt), `cr[5]`, then optionally `kernel_gs_base`.

use crate::CpuRegs;

/// `NT_PRSTATUS`.
pub const NT_PRSTATUS: u32 = 1;
/// Size of x86_64 `struct elf_prstatus`.
pub const PRSTATUS_SIZE: usize = 336;
const PR_PID: usize = 32;
const PR_REG: usize = 112;
/// Size of QEMU's `QEMUCPUState` with `kernel_gs_base`.
pub const QEMU_CPU_STATE_SIZE: usize = 440;

fn get(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn put(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// `user_regs_struct` order, as indices into `CpuRegs` fields via accessors.
const PR_ORDER: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
    "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs",
    "gs",
];

fn field<'a>(r: &'a mut CpuRegs, name: &str) -> Option<&'a mut u64> {
    Some(match name {
        "rax" => &mut r.rax,
        "rbx" => &mut r.rbx,
        "rcx" => &mut r.rcx,
        "rdx" => &mut r.rdx,
        "rsi" => &mut r.rsi,
        "rdi" => &mut r.rdi,
        "rbp" => &mut r.rbp,
        "rsp" => &mut r.rsp,
        "r8" => &mut r.r8,
        "r9" => &mut r.r9,
        "r10" => &mut r.r10,
        "r11" => &mut r.r11,
        "r12" => &mut r.r12,
        "r13" => &mut r.r13,
        "r14" => &mut r.r14,
        "r15" => &mut r.r15,
        "rip" => &mut r.rip,
        "rflags" => &mut r.rflags,
        "cs" => &mut r.cs,
        "ss" => &mut r.ss,
        "ds" => &mut r.ds,
        "es" => &mut r.es,
        "fs" => &mut r.fs,
        "gs" => &mut r.gs,
        "fs_base" => &mut r.fs_base,
        "gs_base" => &mut r.gs_base,
        _ => return None,
    })
}

/// Registers and pid from an `NT_PRSTATUS` descriptor (`None` when too short).
pub fn parse_prstatus(desc: &[u8]) -> Option<(CpuRegs, u32)> {
    if desc.len() < PR_REG + 27 * 8 {
        return None;
    }
    let pid = u32::from_le_bytes(desc[PR_PID..PR_PID + 4].try_into().ok()?);
    let mut r = CpuRegs::default();
    for (i, name) in PR_ORDER.iter().enumerate() {
        let v = get(desc, PR_REG + i * 8)?;
        if let Some(f) = field(&mut r, name) {
            *f = v;
        }
    }
    Some((r, pid))
}

/// An `NT_PRSTATUS` descriptor for `r` with `pr_pid = pid`.
pub fn encode_prstatus(r: &CpuRegs, pid: u32) -> Vec<u8> {
    let mut b = vec![0u8; PRSTATUS_SIZE];
    b[PR_PID..PR_PID + 4].copy_from_slice(&pid.to_le_bytes());
    let mut r = *r;
    for (i, name) in PR_ORDER.iter().enumerate() {
        let v = field(&mut r, name).map(|f| *f).unwrap_or(0);
        put(&mut b, PR_REG + i * 8, v);
    }
    b
}

const Q_GPR: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "rflags",
];
const Q_SEGS: usize = 152;
const Q_SEG_NAMES: [&str; 6] = ["cs", "ds", "es", "fs", "gs", "ss"];
const Q_CR: usize = Q_SEGS + 10 * 24;

/// Registers from QEMU's `QEMUCPUState` note (`None` when too short).
pub fn parse_qemu_cpu_state(desc: &[u8]) -> Option<CpuRegs> {
    if desc.len() < Q_CR + 5 * 8 {
        return None;
    }
    let mut r = CpuRegs::default();
    for (i, name) in Q_GPR.iter().enumerate() {
        if let Some(f) = field(&mut r, name) {
            *f = get(desc, 8 + i * 8)?;
        }
    }
    for (i, name) in Q_SEG_NAMES.iter().enumerate() {
        let seg = Q_SEGS + i * 24;
        let sel = u32::from_le_bytes(desc[seg..seg + 4].try_into().ok()?);
        if let Some(f) = field(&mut r, name) {
            *f = u64::from(sel);
        }
    }
    r.fs_base = get(desc, Q_SEGS + 3 * 24 + 16)?;
    r.gs_base = get(desc, Q_SEGS + 4 * 24 + 16)?;
    r.cr0 = get(desc, Q_CR)?;
    r.cr3 = get(desc, Q_CR + 3 * 8)?;
    r.cr4 = get(desc, Q_CR + 4 * 8)?;
    Some(r)
}

/// A `QEMUCPUState` descriptor (version 1) for `r`; segment limits and flags are 0.
pub fn encode_qemu_cpu_state(r: &CpuRegs) -> Vec<u8> {
    let mut b = vec![0u8; QEMU_CPU_STATE_SIZE];
    b[0..4].copy_from_slice(&1u32.to_le_bytes());
    b[4..8].copy_from_slice(&(QEMU_CPU_STATE_SIZE as u32).to_le_bytes());
    let mut r = *r;
    for (i, name) in Q_GPR.iter().enumerate() {
        let v = field(&mut r, name).map(|f| *f).unwrap_or(0);
        put(&mut b, 8 + i * 8, v);
    }
    for (i, name) in Q_SEG_NAMES.iter().enumerate() {
        let seg = Q_SEGS + i * 24;
        let v = field(&mut r, name).map(|f| *f).unwrap_or(0) as u32;
        b[seg..seg + 4].copy_from_slice(&v.to_le_bytes());
    }
    put(&mut b, Q_SEGS + 3 * 24 + 16, r.fs_base);
    put(&mut b, Q_SEGS + 4 * 24 + 16, r.gs_base);
    put(&mut b, Q_CR, r.cr0);
    put(&mut b, Q_CR + 3 * 8, r.cr3);
    put(&mut b, Q_CR + 4 * 8, r.cr4);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CpuRegs {
        let mut r = CpuRegs::default();
        let mut v = 0x1000u64;
        for name in PR_ORDER.iter().chain(Q_GPR.iter()) {
            if let Some(f) = field(&mut r, name) {
                *f = v;
                v += 0x11;
            }
        }
        r.cs = 0x10;
        r.ss = 0x18;
        r.ds = 0;
        r.es = 0;
        r.fs = 0;
        r.gs = 0;
        r
    }

    #[test]
    fn prstatus_round_trip_and_layout() {
        let r = sample();
        let b = encode_prstatus(&r, 42);
        assert_eq!(b.len(), PRSTATUS_SIZE);
        // pr_reg[16] is rip, pr_reg[19] is rsp.
        assert_eq!(get(&b, 112 + 16 * 8), Some(r.rip));
        assert_eq!(get(&b, 112 + 19 * 8), Some(r.rsp));
        let (back, pid) = parse_prstatus(&b).unwrap();
        assert_eq!(pid, 42);
        assert_eq!(back, r);
        assert_eq!(parse_prstatus(&b[..300]), None);
    }

    #[test]
    fn qemu_state_round_trip_and_layout() {
        let mut r = sample();
        r.cr0 = 0x80050033;
        r.cr3 = 0x1234000;
        r.cr4 = 0x3506f0;
        let b = encode_qemu_cpu_state(&r);
        assert_eq!(get(&b, 416), Some(0x1234000), "cr3 at 416");
        assert_eq!(get(&b, 56), Some(r.rsp), "rsp before rbp");
        let back = parse_qemu_cpu_state(&b).unwrap();
        assert_eq!(back.cr3, r.cr3);
        assert_eq!(back.rip, r.rip);
        assert_eq!(back.fs_base, r.fs_base);
        assert_eq!(back.gs_base, r.gs_base);
        assert_eq!(back.cs, r.cs);
        assert_eq!(parse_qemu_cpu_state(&b[..400]), None);
    }
}
