//! Kernel-stack scan of a task, and the lock slow path it shows
//! (`TaskEnrichment::lock_slowpath_match`).
//!
//! # What is scanned
//! - A task that is not running on a CPU at the freeze: its saved kernel stack, from
//!   `task->thread.sp` (where `__switch_to_asm` left it) up to the top of the stack
//!   (`task->stack + THREAD_SIZE`).
//! - A task running on a CPU (the CPU's `rq->curr`) whose vCPU registers are known: the
//!   vCPU's RIP first, then its stack from RSP up to the top, when RSP lies inside the
//!   task's stack. A vCPU in user mode, or on an interrupt stack, contributes only its
//!   RIP.
//!
//! `THREAD_SIZE` is `__end_init_stack - init_stack` when the kernel has both symbols
//! (a power of two up to 64 KiB), otherwise 16 KiB (x86-64 without KASAN).
//!
//! # Frames
//! There is no unwinder here: every 8-byte word of the scanned range that could be a
//! return address is a frame. A word qualifies when it points into kernel text
//! (`_stext..._etext`) and the bytes before it encode a call (`E8 rel32`, or `FF /2`
//! with a register, disp8 or disp32/RIP-relative operand). Like the kernel's own
//! "unreliable" stack dumps this can include a stale return address left in a local
//! variable, but never a mere function pointer.
//!
//! # Lock slow paths
//! `lock_slowpath_match` is the innermost frame whose function, with compiler suffixes
//! (`.constprop.0`, `.isra.0`, `.part.0`, `.cold`, `.llvm.<n>`) removed, is one of
//! [`LOCK_SLOWPATHS`]; the match is that list's name. Empty when no frame matches, when
//! the task's stack cannot be read, or when a running task's vCPU registers are unknown
//! and its saved stack is therefore stale (then nothing is claimed).
//!
//! Nothing read is trusted: the range is clamped to the stack, its length capped at
//! `THREAD_SIZE` ≤ 64 KiB, and unreadable memory ends the scan with what was found.

use std::collections::HashMap;
use std::ops::ControlFlow;

use guest_mem::{CpuRegs, Kva};

use crate::error::{Result, WalkError};
use crate::kernel::KernelView;
use crate::offsets::resolve_group;

/// Lock slow-path functions, by their source names: a task with one of them on its
/// stack is waiting for (or spinning on) a contended lock.
pub const LOCK_SLOWPATHS: &[&str] = &[
    // qspinlock / qrwlock
    "native_queued_spin_lock_slowpath",
    "queued_spin_lock_slowpath",
    "__pv_queued_spin_lock_slowpath",
    "queued_read_lock_slowpath",
    "queued_write_lock_slowpath",
    // mutex and ww_mutex
    "__mutex_lock",
    "__mutex_lock_slowpath",
    "__mutex_lock_killable_slowpath",
    "__mutex_lock_interruptible_slowpath",
    "mutex_spin_on_owner",
    "__ww_mutex_lock",
    "__ww_mutex_lock_slowpath",
    "__ww_mutex_lock_interruptible_slowpath",
    // rw_semaphore
    "rwsem_down_read_slowpath",
    "rwsem_down_write_slowpath",
    "rwsem_optimistic_spin",
    "rwsem_spin_on_owner",
    // rt_mutex (PI futexes, PREEMPT_RT sleeping locks)
    "__rt_mutex_slowlock",
    "__rt_mutex_slowlock_locked",
    "rt_mutex_slowlock",
    "rt_mutex_slowlock_block",
    "rtlock_slowlock_locked",
    // percpu_rw_semaphore
    "percpu_rwsem_wait",
    "__percpu_down_read",
    "percpu_down_write",
    // semaphore
    "__down",
    "__down_common",
    "__down_interruptible",
    "__down_killable",
    "__down_timeout",
];

/// `THREAD_SIZE` when the kernel does not tell (x86-64 without KASAN).
pub const DEFAULT_THREAD_SIZE: u64 = 16 * 1024;
/// Largest `THREAD_SIZE` believed from the guest.
const MAX_THREAD_SIZE: u64 = 64 * 1024;

/// Offsets the scan needs (group `task_stack`).
#[derive(Debug, Clone, Copy)]
pub struct StackOffsets {
    pub stack: u64,
    pub thread_sp: u64,
}

impl StackOffsets {
    pub fn resolve(t: &dyn crate::kernel::KernelTypes) -> Result<StackOffsets> {
        resolve_group(t, "task_stack", |r| StackOffsets {
            stack: r.off("task_struct", "stack"),
            thread_sp: r.off("task_struct", "thread.sp"),
        })
    }
}

/// Where the scanned words came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackSource {
    /// The stack saved when the task was switched out.
    Saved,
    /// A running task: the vCPU's RIP and stack at the freeze.
    Running { cpu: u32 },
}

/// One probable return address found on the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFrame {
    /// Where the word was (0 for a running task's RIP).
    pub slot: u64,
    pub pc: u64,
    /// The function containing `pc` (kallsyms name) and the offset into it.
    pub symbol: String,
    pub offset: u64,
}

/// What one scan found, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedStack {
    pub source: StackSource,
    /// Words examined.
    pub words: usize,
    pub frames: Vec<StackFrame>,
}

impl ScannedStack {
    /// The frames' function names, innermost first.
    pub fn symbols(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.symbol.as_str()).collect()
    }

    /// The innermost lock slow path on the stack (see the module docs).
    pub fn lock_slowpath(&self) -> Option<&'static str> {
        self.frames.iter().find_map(|f| slowpath_name(&f.symbol))
    }
}

/// The [`LOCK_SLOWPATHS`] entry `symbol` is (compiler suffixes ignored).
pub fn slowpath_name(symbol: &str) -> Option<&'static str> {
    let base = symbol.split('.').next().unwrap_or(symbol);
    LOCK_SLOWPATHS.iter().copied().find(|s| *s == base)
}

/// Scans tasks' kernel stacks of one frozen guest.
pub struct StackScanner<'a> {
    k: KernelView<'a>,
    o: StackOffsets,
    text: (u64, u64),
    thread_size: u64,
    /// Running tasks: task address → (cpu, registers).
    running: HashMap<u64, (u32, CpuRegs)>,
    /// Tasks on a CPU whose registers are unknown: their saved stack is stale.
    running_unknown: Vec<u64>,
    /// `[start, end)` of every [`LOCK_SLOWPATHS`] function (with suffixes), sorted, when
    /// the symbols can list them: then only stack words inside one are looked up.
    slow: Option<Vec<(u64, u64)>>,
}

impl<'a> StackScanner<'a> {
    /// Needs `_stext`, `_etext` and the `task_stack` offsets.
    pub fn new(k: &KernelView<'a>) -> Result<StackScanner<'a>> {
        let o = StackOffsets::resolve(k.types)?;
        let (start, end) = (k.sym("_stext")?, k.sym("_etext")?);
        if end.0 <= start.0 {
            return Err(WalkError::Implausible {
                what: "_etext - _stext",
                value: end.0.wrapping_sub(start.0),
            });
        }
        let thread_size = match (
            k.syms.symbol("init_stack"),
            k.syms.symbol("__end_init_stack"),
        ) {
            (Some(a), Some(b)) => b
                .offset_from(a)
                .filter(|s| s.is_power_of_two() && (4096..=MAX_THREAD_SIZE).contains(s))
                .unwrap_or(DEFAULT_THREAD_SIZE),
            _ => DEFAULT_THREAD_SIZE,
        };
        Ok(StackScanner {
            k: *k,
            o,
            text: (start.0, end.0),
            thread_size,
            running: HashMap::new(),
            running_unknown: Vec::new(),
            slow: k.syms.ranges_of(LOCK_SLOWPATHS).map(|mut v| {
                v.sort_unstable();
                v
            }),
        })
    }

    /// Whether `pc` may be inside a lock slow path: in one of their ranges, or anywhere
    /// when the ranges are unknown.
    fn maybe_slowpath(&self, pc: u64) -> bool {
        let Some(r) = &self.slow else {
            return true;
        };
        // Ranges are disjoint or equal (aliases): the last one starting at or below `pc`.
        let i = r.partition_point(|&(start, _)| start <= pc);
        i > 0 && pc < r[i - 1].1
    }

    /// The `THREAD_SIZE` in use.
    pub fn thread_size(&self) -> u64 {
        self.thread_size
    }

    /// Declares `task` running on `cpu`, with that vCPU's registers when known.
    pub fn set_running(&mut self, task: Kva, cpu: u32, regs: Option<CpuRegs>) {
        match regs {
            Some(r) => {
                self.running.insert(task.0, (cpu, r));
            }
            None => self.running_unknown.push(task.0),
        }
    }

    fn in_text(&self, pc: u64) -> bool {
        (self.text.0..self.text.1).contains(&pc)
    }

    /// Whether the bytes before `pc` encode a call instruction.
    fn after_call(&self, pc: u64) -> bool {
        let mut b = [0u8; 7];
        if self
            .k
            .read(Kva(pc.wrapping_sub(7)), &mut b, "text")
            .is_err()
        {
            return false;
        }
        // b[7 - n] is the byte n before pc.
        let modrm_call = |m: u8, md: u8| (m >> 3) & 7 == 2 && m >> 6 == md;
        b[2] == 0xe8 // call rel32
            || (b[5] == 0xff && modrm_call(b[6], 3)) // call *%reg
            || (b[4] == 0xff && modrm_call(b[5], 1) && b[5] & 7 != 4) // call *d8(%reg)
            || (b[3] == 0xff && b[4] & 7 == 4 && modrm_call(b[4], 1)) // call *d8(sib)
            || (b[1] == 0xff && (modrm_call(b[2], 2) || (b[2] >> 6 == 0 && b[2] & 7 == 5 && (b[2] >> 3) & 7 == 2))) // d32 / rip
    }

    fn frame(&self, slot: u64, pc: u64) -> Option<StackFrame> {
        let (symbol, offset) = self.k.syms.nearest(Kva(pc))?;
        Some(StackFrame {
            slot,
            pc,
            symbol,
            offset,
        })
    }

    /// Calls `each(slot, pc)` for the running task's RIP (slot 0) and for every stack
    /// word of `task` inside kernel text, innermost first, until it returns `Break`.
    /// Returns the source and the number of stack words examined; `Ok(None)` for a task
    /// on a CPU whose registers are unknown.
    fn text_words(
        &self,
        task: Kva,
        mut each: impl FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<Option<(StackSource, usize)>> {
        if self.running_unknown.contains(&task.0) {
            return Ok(None);
        }
        let stack = self
            .k
            .ptr(task.checked_offset(self.o.stack)?, "task_struct.stack")?;
        let top = stack
            .0
            .checked_add(self.thread_size)
            .ok_or(WalkError::Implausible {
                what: "task_struct.stack",
                value: stack.0,
            })?;
        let in_stack = |sp: u64| stack.0 != 0 && (stack.0..top).contains(&sp);
        let (source, sp) = if let Some((cpu, regs)) = self.running.get(&task.0) {
            let source = StackSource::Running { cpu: *cpu };
            if self.in_text(regs.rip) && each(0, regs.rip).is_break() {
                return Ok(Some((source, 0)));
            }
            if !in_stack(regs.rsp) {
                return Ok(Some((source, 0)));
            }
            (source, regs.rsp)
        } else {
            let sp = self
                .k
                .u64(task.checked_offset(self.o.thread_sp)?, "thread.sp")?;
            if !in_stack(sp) {
                return Err(WalkError::Implausible {
                    what: "task_struct.thread.sp outside the task's stack",
                    value: sp,
                });
            }
            (StackSource::Saved, sp)
        };
        // Read page by page: a hole ends the scan, keeping what was found.
        let mut at = sp & !7;
        let mut words = 0;
        let mut buf = [0u8; 4096];
        while at < top {
            let len = ((top - at).min(4096 - (at & 0xfff))) as usize;
            if self.k.read(Kva(at), &mut buf[..len], "task stack").is_err() {
                break;
            }
            for (i, w) in buf[..len].chunks_exact(8).enumerate() {
                words += 1;
                let pc = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
                if self.in_text(pc) && each(at + 8 * i as u64, pc).is_break() {
                    return Ok(Some((source, words)));
                }
            }
            at += len as u64;
        }
        Ok(Some((source, words)))
    }

    /// Scans `task`'s stack (see the module docs). `Ok(None)` for a task on a CPU
    /// whose registers are unknown.
    pub fn scan(&self, task: Kva) -> Result<Option<ScannedStack>> {
        let mut frames = Vec::new();
        let got = self.text_words(task, |slot, pc| {
            // A running task's RIP is where it is, call or not.
            if (slot == 0 || self.after_call(pc))
                && let Some(f) = self.frame(slot, pc)
            {
                frames.push(f);
            }
            ControlFlow::Continue(())
        })?;
        Ok(got.map(|(source, words)| ScannedStack {
            source,
            words,
            frames,
        }))
    }

    /// `lock_slowpath_match` of `task`: empty when nothing matches or the stack cannot
    /// be scanned. The same frames as [`Self::scan`], checked in the cheaper order
    /// (name first, the call before it only for a slow path) and stopping at the first.
    pub fn lock_slowpath_match(&self, task: Kva) -> String {
        let mut found = None;
        let _ = self.text_words(task, |slot, pc| {
            // Most words are in no slow path: known without a symbol lookup. A word that
            // is in one's range is still looked up (an alias may be the kernel's name).
            if !self.maybe_slowpath(pc) {
                return ControlFlow::Continue(());
            }
            let Some((name, _)) = self.k.syms.nearest(Kva(pc)) else {
                return ControlFlow::Continue(());
            };
            match slowpath_name(&name) {
                Some(m) if slot == 0 || self.after_call(pc) => {
                    found = Some(m);
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        });
        found.unwrap_or_default().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const TEXT: u64 = 0xffff_ffff_8100_0000;
    const TASK: u64 = 0xffff_8880_0100_0000;
    const STACK: u64 = 0xffff_c900_0000_0000;

    fn setup() -> (FakeMem, FakeSyms, FakeTypes) {
        let t = FakeTypes::default()
            .member("task_struct", "stack", 0x20)
            .member("task_struct", "thread.sp", 0x100);
        let s = FakeSyms::default()
            .with("_stext", TEXT)
            .with("do_nanosleep", TEXT + 0x100)
            .with("__mutex_lock.constprop.0", TEXT + 0x200)
            .with("schedule", TEXT + 0x300)
            .with("_etext", TEXT + 0x1000);
        let mut m = FakeMem::default();
        // Text: a `call rel32` before each return address used below.
        m.write(TEXT, &[0x90; 0x1000]);
        for ret in [TEXT + 0x120, TEXT + 0x240, TEXT + 0x310] {
            m.write(ret - 5, &[0xe8, 0, 0, 0, 0]);
        }
        // `call *%rax` (ff d0) before TEXT + 0x150.
        m.write(TEXT + 0x14e, &[0xff, 0xd0]);
        m.w64(TASK + 0x20, STACK);
        m.write(STACK, &[0u8; 16384]);
        (m, s, t)
    }

    fn scanner<'a>(m: &'a FakeMem, s: &'a FakeSyms, t: &'a FakeTypes) -> StackScanner<'a> {
        StackScanner::new(&KernelView {
            mem: m,
            syms: s,
            types: t,
        })
        .unwrap()
    }

    #[test]
    fn saved_stack_frames_and_match() {
        let (mut m, s, t) = setup();
        let sp = STACK + 0x3f00;
        m.w64(TASK + 0x100, sp);
        m.w64(sp, TEXT + 0x310); // schedule+0x10
        m.w64(sp + 8, TEXT + 0x100); // a function pointer: no call before it
        m.w64(sp + 16, TEXT + 0x240); // __mutex_lock.constprop.0+0x40
        m.w64(sp + 24, 0xdead_beef); // not text
        m.w64(sp + 32, TEXT + 0x150); // after `call *%rax`: do_nanosleep+0x50
        m.w64(sp - 8, TEXT + 0x120); // below sp: not scanned
        let sc = scanner(&m, &s, &t);
        assert_eq!(sc.thread_size(), DEFAULT_THREAD_SIZE);
        let st = sc.scan(Kva(TASK)).unwrap().unwrap();
        assert_eq!(st.source, StackSource::Saved);
        assert_eq!(
            st.symbols(),
            ["schedule", "__mutex_lock.constprop.0", "do_nanosleep"]
        );
        assert_eq!(st.words, 0x100 / 8);
        assert_eq!(st.frames[1].offset, 0x40);
        assert_eq!(st.lock_slowpath(), Some("__mutex_lock"));
        assert_eq!(sc.lock_slowpath_match(Kva(TASK)), "__mutex_lock");
        // A pointer to a slow path that is not a return address does not match.
        m.w64(sp + 16, TEXT + 0x200);
        let sc = scanner(&m, &s, &t);
        assert_eq!(sc.lock_slowpath_match(Kva(TASK)), "");
        assert_eq!(sc.scan(Kva(TASK)).unwrap().unwrap().lock_slowpath(), None);
    }

    #[test]
    fn slow_path_ranges_give_what_lookups_give() {
        // Every stack word at every place of the text, with and without the ranges.
        let (mut m, s, t) = setup();
        let s = s
            .with("__mutex_lock", TEXT + 0x200) // an alias of the .constprop.0 copy
            .with("__mutex_lock_slowpath_x", TEXT + 0x280) // another base: no match
            .with("rwsem_down_write_slowpath", TEXT + 0x400);
        let sp = STACK + 0x3f00;
        m.w64(TASK + 0x100, sp);
        let plain = FakeSyms {
            no_ranges: true,
            ..FakeSyms::default()
        };
        let plain = FakeSyms {
            by_name: s.by_name.clone(),
            ..plain
        };
        for ret in (0..0x500).step_by(0x10) {
            let pc = TEXT + ret;
            m.write(pc - 5, &[0xe8, 0, 0, 0, 0]);
            m.w64(sp, pc);
            let fast = scanner(&m, &s, &t);
            assert!(fast.slow.is_some());
            let slow = scanner(&m, &plain, &t);
            assert!(slow.slow.is_none());
            let got = fast.lock_slowpath_match(Kva(TASK));
            assert_eq!(got, slow.lock_slowpath_match(Kva(TASK)), "pc {pc:#x}");
            let want = match ret {
                0x200..0x280 => "__mutex_lock",
                0x400..0x1000 => "rwsem_down_write_slowpath",
                _ => "",
            };
            assert_eq!(got, want, "pc {pc:#x}");
        }
    }

    #[test]
    fn running_task_uses_vcpu_registers() {
        let (mut m, s, t) = setup();
        // The saved sp is stale and points at a slow path; the live stack does not.
        let saved = STACK + 0x3f00;
        m.w64(TASK + 0x100, saved);
        m.w64(saved, TEXT + 0x240);
        let rsp = STACK + 0x3fe0;
        m.w64(rsp, TEXT + 0x120);
        let mut sc = scanner(&m, &s, &t);
        let regs = CpuRegs {
            rip: TEXT + 0x205,
            rsp,
            ..Default::default()
        };
        sc.set_running(Kva(TASK), 1, Some(regs));
        let st = sc.scan(Kva(TASK)).unwrap().unwrap();
        assert_eq!(st.source, StackSource::Running { cpu: 1 });
        // RIP inside the slow path counts even without a call before it.
        assert_eq!(st.symbols(), ["__mutex_lock.constprop.0", "do_nanosleep"]);
        assert_eq!(st.frames[0].slot, 0);
        // In user mode (RIP outside text, RSP elsewhere): nothing.
        let mut sc = scanner(&m, &s, &t);
        let user = CpuRegs {
            rip: 0x40_1000,
            rsp: 0x7ffe_0000,
            ..Default::default()
        };
        sc.set_running(Kva(TASK), 0, Some(user));
        assert!(sc.scan(Kva(TASK)).unwrap().unwrap().frames.is_empty());
        // On a CPU without registers: no claim from the stale saved stack.
        let mut sc = scanner(&m, &s, &t);
        sc.set_running(Kva(TASK), 0, None);
        assert_eq!(sc.scan(Kva(TASK)).unwrap(), None);
        assert_eq!(sc.lock_slowpath_match(Kva(TASK)), "");
    }

    #[test]
    fn hostile_stacks_are_bounded() {
        let (mut m, s, t) = setup();
        // sp outside the stack: an error, not a read of arbitrary memory.
        m.w64(TASK + 0x100, STACK + 0x10_0000);
        let sc2 = scanner(&m, &s, &t);
        assert!(sc2.scan(Kva(TASK)).is_err());
        assert_eq!(sc2.lock_slowpath_match(Kva(TASK)), "");
        // A stack pointer at the very top of the address space.
        m.w64(TASK + 0x20, u64::MAX - 0x100);
        let sc3 = scanner(&m, &s, &t);
        assert!(sc3.scan(Kva(TASK)).is_err());
        // Unreadable stack pages end the scan with what was found.
        let (mut m, s, t) = setup();
        let hole = 0xffff_c900_1000_0000;
        m.w64(TASK + 0x20, hole);
        m.w64(TASK + 0x100, hole + 0x3000);
        let st = scanner(&m, &s, &t).scan(Kva(TASK)).unwrap().unwrap();
        assert_eq!((st.words, st.frames.len()), (0, 0));
        // An unreadable task.
        assert!(scanner(&m, &s, &t).scan(Kva(0x1000)).is_err());
    }

    #[test]
    fn thread_size_from_init_stack_when_plausible() {
        let (m, s, t) = setup();
        let s = s
            .with("init_stack", 0xffff_ffff_8200_0000)
            .with("__end_init_stack", 0xffff_ffff_8200_8000);
        assert_eq!(scanner(&m, &s, &t).thread_size(), 0x8000);
        let (m, s, t) = setup();
        let s = s
            .with("init_stack", 0xffff_ffff_8200_0000)
            .with("__end_init_stack", 0xffff_ffff_8300_0000);
        assert_eq!(scanner(&m, &s, &t).thread_size(), DEFAULT_THREAD_SIZE);
    }

    #[test]
    fn slowpath_names() {
        assert_eq!(
            slowpath_name("native_queued_spin_lock_slowpath"),
            Some("native_queued_spin_lock_slowpath")
        );
        assert_eq!(
            slowpath_name("rwsem_down_write_slowpath.isra.0"),
            Some("rwsem_down_write_slowpath")
        );
        assert_eq!(slowpath_name("__down_read"), None);
        assert_eq!(slowpath_name("mutex_lock"), None);
        assert_eq!(slowpath_name(""), None);
    }
}
