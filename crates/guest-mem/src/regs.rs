//! x86_64 vCPU register state, as engines capture it and vmcores record it.

/// Registers of one x86_64 vCPU at the freeze (or in a vmcore's notes).
///
/// General-purpose registers follow the kernel's `struct pt_regs` naming so that an
/// `NT_PRSTATUS` note can be written from and read into this one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cs: u64,
    pub ss: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}
