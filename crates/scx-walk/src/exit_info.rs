//! `scx_sched->exit_info` (the global `scx_exit_info` on kernels without `scx_sched`):
//! why the scheduler exited, as the kernel recorded it — kind,
//! exit code, reason, message, backtrace and the kernel's debug dump (`scx_dump_state`,
//! with the BPF scheduler's own `ops.dump*` lines) — turned into the report's
//! [`ExitInfo`] extension.
//!
//! When it is complete: `scx_vexit()` writes kind, code, backtrace, message and reason
//! right after it claims the exit; the error irq work then writes the dump; the disable
//! worker begins its teardown only after that (see [`crate::exit_kind`]). A capture at the
//! claim itself (a watchpoint's first stop) therefore finds these fields empty: the
//! session stops again at the disable worker's write and reads them there. Whatever is
//! not there yet is said in [`ExitInfo::unavailable`].
//!
//! Nothing read here is trusted: string lengths are bounded by the kernel's own buffer
//! sizes (from BTF enumerators, with the kernel's defaults as fallback) and by hard caps,
//! a string without its NUL is cut at the cap and marked, `bt_len` beyond the array is
//! clamped and said, frames are symbolized only when a symbol covers them.

use dump_schema::{BacktraceFrame, ExitInfo, ExitTrigger};
use guest_mem::Kva;

use crate::error::{Result, WalkError};
use crate::exit_kind;
use crate::kernel::{KernelTypes, KernelView};
use crate::root::{GlobalSyms, Layout, Loc};
use btf_walk::OffsetGroup;

/// `SCX_EXIT_MSG_LEN` when the kernel's BTF does not say.
const DEFAULT_MSG_LEN: u64 = 1024;
/// `SCX_EXIT_BT_LEN` when the kernel's BTF does not say.
const DEFAULT_BT_LEN: u64 = 64;
/// `SCX_EXIT_DUMP_DFL_LEN`: the dump buffer when `ops.exit_dump_len` is 0.
const DEFAULT_DUMP_LEN: u64 = 32 * 1024;
/// Never read more of a dump than this, whatever `exit_dump_len` says.
pub const MAX_DUMP_LEN: u64 = 1 << 20;
/// Never read more of a message than this.
const MAX_MSG_LEN: u64 = 64 * 1024;
/// Never read more backtrace entries than this.
const MAX_BT_LEN: u64 = 1024;
/// `reason` is a string constant of the kernel; bounded anyway.
const MAX_REASON_LEN: usize = 256;

/// Offsets of `struct scx_exit_info` and where the scheduler keeps the pointer to it
/// (group `scx_exit_info`): `scx_sched.exit_info`, or the global `scx_exit_info` of
/// kernels without `struct scx_sched` ([`crate::root`]).
#[derive(Debug, Clone, Copy)]
pub struct ExitInfoOffsets {
    /// The `struct scx_exit_info *`.
    pub sched_exit_info: Loc,
    /// What that pointer is called, for messages (`scx_sched.exit_info`, `scx_exit_info`).
    pub pointer_name: &'static str,
    pub kind: u64,
    pub exit_code: u64,
    pub reason: u64,
    pub bt: u64,
    pub bt_len: u64,
    pub msg: u64,
    pub dump: u64,
    /// `sched_ext_ops.exit_dump_len` of the scheduler, when this kernel has it.
    pub exit_dump_len: Option<Loc>,
    pub msg_len: u64,
    pub bt_cap: u64,
}

impl ExitInfoOffsets {
    pub fn resolve(k: &KernelView<'_>) -> Result<ExitInfoOffsets> {
        let t = k.types;
        let mut r = OffsetGroup::new(t, "scx_exit_info");
        let enum_len = |name: &str, default: u64| {
            t.enum_value(name)
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let dump_len_in_ops = r.opt("sched_ext_ops", "exit_dump_len");
        let globals = crate::root::layout(k) == Some(Layout::Globals);
        let mut g = GlobalSyms::new(k);
        let (sched_exit_info, pointer_name, ops) = if globals {
            (
                Loc::Global(g.req("scx_exit_info")),
                "scx_exit_info",
                Some(Loc::Global(g.req("scx_ops"))),
            )
        } else {
            (
                Loc::Member(r.off("scx_sched", "exit_info")),
                "scx_sched.exit_info",
                r.opt("scx_sched", "ops").map(Loc::Member),
            )
        };
        let o = ExitInfoOffsets {
            sched_exit_info,
            pointer_name,
            kind: r.off("scx_exit_info", "kind"),
            exit_code: r.off("scx_exit_info", "exit_code"),
            reason: r.off("scx_exit_info", "reason"),
            bt: r.off("scx_exit_info", "bt"),
            bt_len: r.off("scx_exit_info", "bt_len"),
            msg: r.off("scx_exit_info", "msg"),
            dump: r.off("scx_exit_info", "dump"),
            exit_dump_len: ops.zip(dump_len_in_ops).map(|(l, off)| l.plus(off)),
            msg_len: enum_len("SCX_EXIT_MSG_LEN", DEFAULT_MSG_LEN),
            bt_cap: enum_len("SCX_EXIT_BT_LEN", DEFAULT_BT_LEN),
        };
        let o = r.finish(o)?;
        g.finish("scx_exit_info", o)
    }
}

/// Resolves a kernel text address to `(symbol, offset, size)`; BPF programs as the
/// kernel names them (`bpf_prog_<tag>_<name>`). Sizes are optional.
pub trait Symbolizer {
    fn symbolize(&self, addr: Kva) -> Option<(String, u64, Option<u64>)>;
}

/// Symbols from the kernel's kallsyms only (no BPF programs).
pub struct KallsymsOnly<'a, 'k>(pub &'a KernelView<'k>);

impl Symbolizer for KallsymsOnly<'_, '_> {
    fn symbolize(&self, addr: Kva) -> Option<(String, u64, Option<u64>)> {
        self.0.syms.nearest(addr).map(|(n, off)| (n, off, None))
    }
}

/// Kernel symbols, then BPF programs' JIT images (`bpf_prog_aux.ksym`: start, end, name).
pub struct WithBpfProgs<'a, 'k> {
    pub kernel: &'a KernelView<'k>,
    /// `(start, end, name)` of each program image.
    pub progs: Vec<(Kva, Kva, String)>,
}

impl Symbolizer for WithBpfProgs<'_, '_> {
    fn symbolize(&self, addr: Kva) -> Option<(String, u64, Option<u64>)> {
        // A JIT image lies outside the kernel image, where kallsyms' nearest symbol would be
        // a wrong, far-away name: the program ranges win.
        if let Some((s, e, n)) = self.progs.iter().find(|(s, e, _)| *s <= addr && addr < *e) {
            return Some((n.clone(), addr.0 - s.0, Some(e.0 - s.0)));
        }
        self.kernel
            .syms
            .nearest(addr)
            .map(|(n, off)| (n, off, None))
    }
}

/// Offsets of `bpf_prog_aux.ksym` (group `bpf_ksym`).
#[derive(Debug, Clone, Copy)]
pub struct KsymOffsets {
    pub aux: u64,
    pub start: u64,
    pub end: u64,
    pub name: u64,
    pub name_len: u64,
}

impl KsymOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<KsymOffsets> {
        let mut r = OffsetGroup::new(t, "bpf_ksym");
        let ksym = r.off("bpf_prog_aux", "ksym");
        let o = KsymOffsets {
            aux: r.off("bpf_prog", "aux"),
            start: ksym + r.off("bpf_ksym", "start"),
            end: ksym + r.off("bpf_ksym", "end"),
            name: ksym + r.off("bpf_ksym", "name"),
            name_len: t
                .enum_value("KSYM_NAME_LEN")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(512)
                .min(512),
        };
        Ok(r.finish(o)?)
    }

    /// `(start, end, name)` of `prog`'s JIT image; `None` when unreadable or implausible.
    pub fn image(&self, k: &KernelView<'_>, prog: Kva) -> Option<(Kva, Kva, String)> {
        let aux = k
            .ptr(prog.checked_offset(self.aux).ok()?, "bpf_prog.aux")
            .ok()?;
        let start = k
            .u64(aux.checked_offset(self.start).ok()?, "ksym.start")
            .ok()?;
        let end = k.u64(aux.checked_offset(self.end).ok()?, "ksym.end").ok()?;
        // A program image is at most a few MiB; anything else is garbage.
        if start == 0 || end <= start || end - start > (64 << 20) {
            return None;
        }
        let name = k
            .cstr(
                aux.checked_offset(self.name).ok()?,
                self.name_len as usize,
                "ksym.name",
            )
            .ok()?;
        Some((Kva(start), Kva(end), name))
    }
}

/// What [`read`] needs beyond the kernel view.
pub struct ReadOptions<'a> {
    /// Where the report says the exit info came from (`watchpoint`, `poll`, `vmcore`).
    pub source: &'a str,
    /// The vCPU that wrote the exit kind, when known (a watchpoint's hit).
    pub trigger_cpu: Option<u32>,
    pub symbols: &'a dyn Symbolizer,
}

/// Reads `sch->exit_info` into the report's extension. Always returns an [`ExitInfo`]
/// (kind from `scx_sched.exit_kind` when `exit_info` itself is unreadable); every part
/// that could not be read is named in `unavailable`.
pub fn read(k: &KernelView<'_>, o: &ExitInfoOffsets, sch: Kva, opts: &ReadOptions<'_>) -> ExitInfo {
    let mut missing: Vec<String> = Vec::new();
    let mut out = ExitInfo {
        source: opts.source.to_string(),
        trigger: opts.trigger_cpu.map(|cpu| ExitTrigger {
            cpu,
            ..Default::default()
        }),
        ..Default::default()
    };
    let ei = match o
        .sched_exit_info
        .at(sch)
        .and_then(|a| k.ptr(a, "exit_info pointer"))
    {
        Ok(p) if p.0 != 0 => p,
        Ok(_) => {
            out.unavailable = Some(format!("{} is NULL", o.pointer_name));
            return finish_kind(out);
        }
        Err(e) => {
            out.unavailable = Some(format!("{}: {e}", o.pointer_name));
            return finish_kind(out);
        }
    };
    let field = |off: u64| ei.checked_offset(off).map_err(WalkError::from);
    match field(o.kind).and_then(|a| k.u32(a, "exit_info.kind")) {
        Ok(v) => out.kind = v,
        Err(e) => missing.push(format!("kind: {e}")),
    }
    match field(o.exit_code).and_then(|a| k.i64(a, "exit_info.exit_code")) {
        Ok(v) => out.exit_code = Some(v),
        Err(e) => missing.push(format!("exit_code: {e}")),
    }
    out.reason = pointed_string(
        k,
        field(o.reason),
        MAX_REASON_LEN as u64,
        "reason",
        &mut missing,
    )
    .map(|(s, _)| s);
    out.msg = pointed_string(
        k,
        field(o.msg),
        o.msg_len.min(MAX_MSG_LEN),
        "msg",
        &mut missing,
    )
    .map(|(s, _)| s);
    let dump_cap = o
        .exit_dump_len
        .and_then(|l| l.at(sch).ok())
        .and_then(|a| k.u32(a, "ops.exit_dump_len").ok())
        .map(|v| {
            if v == 0 {
                DEFAULT_DUMP_LEN
            } else {
                u64::from(v)
            }
        })
        .unwrap_or(DEFAULT_DUMP_LEN);
    if dump_cap > MAX_DUMP_LEN {
        missing.push(format!(
            "dump: exit_dump_len {dump_cap} beyond the {MAX_DUMP_LEN}-byte cap; read {MAX_DUMP_LEN}"
        ));
    }
    if let Some((dump, cut)) = pointed_string(
        k,
        field(o.dump),
        dump_cap.min(MAX_DUMP_LEN),
        "dump",
        &mut missing,
    ) {
        out.kernel_dump_truncated = cut;
        if let Some(t) = trigger_from_dump(&dump) {
            let cpu = out.trigger.as_ref().map(|t| t.cpu);
            out.trigger = Some(ExitTrigger {
                cpu: cpu.unwrap_or(t.cpu),
                ..t
            });
        }
        out.kernel_dump = Some(dump);
    }
    out.backtrace = backtrace(k, o, ei, opts.symbols, &mut missing);
    if !missing.is_empty() {
        out.unavailable = Some(missing.join("; "));
    }
    finish_kind(out)
}

/// Fills `kind_name` from `kind`.
fn finish_kind(mut out: ExitInfo) -> ExitInfo {
    out.kind_name = match exit_kind::name(out.kind) {
        Some(n) => n.to_string(),
        None => format!("unknown ({})", out.kind),
    };
    out
}

/// A string behind a `char *` member, read up to `cap` bytes: `(text, cut)` where `cut`
/// says no NUL came within `cap`. `None` (with the reason in `missing`) when the pointer
/// or the text is unreadable; an empty string is `None` too, without a reason (the
/// kernel has not written it yet).
fn pointed_string(
    k: &KernelView<'_>,
    member: Result<Kva>,
    cap: u64,
    what: &str,
    missing: &mut Vec<String>,
) -> Option<(String, bool)> {
    let p = match member.and_then(|a| k.ptr(a, "exit_info string pointer")) {
        Ok(p) if p.0 == 0 => {
            missing.push(format!("{what}: NULL"));
            return None;
        }
        Ok(p) => p,
        Err(e) => {
            missing.push(format!("{what}: {e}"));
            return None;
        }
    };
    match bounded_cstr(k, p, cap) {
        Ok((s, _)) if s.is_empty() => None,
        Ok((s, cut)) => {
            if cut {
                missing.push(format!("{what}: no NUL within {cap} bytes; cut there"));
            }
            Some((s, cut))
        }
        Err(e) => {
            missing.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Reads a NUL-terminated string of at most `cap` bytes, page by page (a dump buffer is
/// vmalloc'd: its pages need not be contiguous, and an unmapped page ends the read).
/// Returns the text (invalid UTF-8 replaced) and whether the cap cut it.
fn bounded_cstr(k: &KernelView<'_>, at: Kva, cap: u64) -> Result<(String, bool)> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut pos = at;
    while (bytes.len() as u64) < cap {
        let to_page_end = 4096 - (pos.0 & 4095);
        let n = to_page_end.min(cap - bytes.len() as u64) as usize;
        let chunk = match k.bytes(pos, n, "exit_info string") {
            Ok(c) => c,
            // The first page must read; a later unreadable page ends the string there.
            Err(e) if bytes.is_empty() => return Err(e),
            Err(_) => return Ok((String::from_utf8_lossy(&bytes).into_owned(), true)),
        };
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Ok((String::from_utf8_lossy(&bytes).into_owned(), false));
        }
        bytes.extend_from_slice(&chunk);
        pos = pos.checked_offset(n as u64).map_err(WalkError::from)?;
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), true))
}

/// `exit_info->bt[0..bt_len]`, symbolized; `bt_len` beyond the array is clamped (and said).
fn backtrace(
    k: &KernelView<'_>,
    o: &ExitInfoOffsets,
    ei: Kva,
    symbols: &dyn Symbolizer,
    missing: &mut Vec<String>,
) -> Vec<BacktraceFrame> {
    let len = match ei
        .checked_offset(o.bt_len)
        .map_err(WalkError::from)
        .and_then(|a| k.u32(a, "exit_info.bt_len"))
    {
        Ok(n) => u64::from(n),
        Err(e) => {
            missing.push(format!("bt_len: {e}"));
            return Vec::new();
        }
    };
    let cap = o.bt_cap.min(MAX_BT_LEN);
    if len > cap {
        missing.push(format!(
            "bt_len {len} beyond the {cap}-entry array; read {cap}"
        ));
    }
    let n = len.min(cap);
    if n == 0 {
        return Vec::new();
    }
    let bt = match ei
        .checked_offset(o.bt)
        .map_err(WalkError::from)
        .and_then(|a| k.ptr(a, "exit_info.bt"))
    {
        Ok(p) if p.0 != 0 => p,
        Ok(_) => {
            missing.push("bt: NULL".into());
            return Vec::new();
        }
        Err(e) => {
            missing.push(format!("bt: {e}"));
            return Vec::new();
        }
    };
    let raw = match k.bytes(bt, (n * 8) as usize, "exit_info.bt") {
        Ok(r) => r,
        Err(e) => {
            missing.push(format!("bt: {e}"));
            return Vec::new();
        }
    };
    raw.chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            let addr = u64::from_le_bytes(a);
            match symbols.symbolize(Kva(addr)) {
                Some((name, offset, size)) => BacktraceFrame {
                    addr,
                    symbol: Some(name),
                    offset: Some(offset),
                    size,
                },
                None => BacktraceFrame {
                    addr,
                    ..Default::default()
                },
            }
        })
        .collect()
}

/// Most programs looked at to name BPF frames.
const MAX_PROGS: usize = 4096;

/// The exit info of the attached scheduler ([`crate::root`]), when it has exited (or is
/// exiting): `Ok(None)` with no scheduler or one still running (`exit_kind` and
/// `exit_info->kind` both `SCX_EXIT_NONE`). BPF program frames are named from the loaded
/// programs' JIT images when `prog_idr` can be walked, else from kallsyms alone.
pub fn capture(
    k: &KernelView<'_>,
    source: &str,
    trigger_cpu: Option<u32>,
) -> Result<Option<ExitInfo>> {
    let so = crate::sched::TriggerLocation::resolve(k)?;
    let Some(sch) = so
        .anchor
        .locate(k.mem)
        .map_err(WalkError::mem(so.anchor.what()))?
    else {
        return Ok(None);
    };
    let o = ExitInfoOffsets::resolve(k)?;
    let progs = bpf_images(k).unwrap_or_default();
    let symbols = WithBpfProgs { kernel: k, progs };
    let mut info = read(
        k,
        &o,
        sch,
        &ReadOptions {
            source,
            trigger_cpu,
            symbols: &symbols,
        },
    );
    if info.kind != exit_kind::SCX_EXIT_NONE {
        return Ok(Some(info));
    }
    // `exit_info->kind` is written after the claim: at the claim itself only
    // `scx_sched.exit_kind` has the kind.
    let claimed = so
        .exit_kind
        .at(sch)
        .ok()
        .and_then(|a| k.u32(a, "exit_kind").ok())
        .filter(|v| *v != exit_kind::SCX_EXIT_NONE);
    let Some(kind) = claimed else {
        return Ok(None);
    };
    info.kind = kind;
    info = finish_kind(info);
    let note = "exit_info not written yet (captured at the exit's claim)";
    info.unavailable = Some(match info.unavailable.take() {
        Some(more) => format!("{note}; {more}"),
        None => note.to_string(),
    });
    Ok(Some(info))
}

/// `(start, end, name)` of every loaded program's JIT image.
fn bpf_images(k: &KernelView<'_>) -> Result<Vec<(Kva, Kva, String)>> {
    let core = crate::lists::CoreOffsets::resolve(k.types)?;
    let ks = KsymOffsets::resolve(k.types)?;
    let progs = crate::progs::prog_kvas(k, &core, MAX_PROGS)?;
    Ok(progs.into_iter().filter_map(|p| ks.image(k, p)).collect())
}

/// The dump's first line, `<comm>[<pid>] triggered exit kind <n>:`, as a trigger (CPU
/// unknown: 0 until a watchpoint says which).
pub fn trigger_from_dump(dump: &str) -> Option<ExitTrigger> {
    let line = dump
        .lines()
        .find(|l| l.contains("] triggered exit kind "))?;
    let head = &line[..line.find("] triggered exit kind ")?];
    let open = head.rfind('[')?;
    let pid: i32 = head[open + 1..].parse().ok()?;
    Some(ExitTrigger {
        cpu: 0,
        pid: Some(pid),
        comm: Some(head[..open].trim().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{FakeMem, FakeSyms, FakeTypes};

    const SCH: u64 = 0xffff_8880_0010_0000;
    const EI: u64 = 0xffff_8880_0020_0000;
    const BT: u64 = 0xffff_8880_0030_0000;
    const MSG: u64 = 0xffff_8880_0040_0000;
    const DUMP: u64 = 0xffff_c900_0000_0000;
    const REASON: u64 = 0xffff_ffff_8200_0000;
    const TEXT: u64 = 0xffff_ffff_8100_0000;

    fn types() -> FakeTypes {
        FakeTypes::default()
            .member("scx_sched", "exit_info", 0x10)
            .member("scx_sched", "ops", 0x20)
            .member("sched_ext_ops", "exit_dump_len", 0)
            .member("scx_exit_info", "kind", 0)
            .member("scx_exit_info", "exit_code", 8)
            .member("scx_exit_info", "reason", 16)
            .member("scx_exit_info", "bt", 24)
            .member("scx_exit_info", "bt_len", 32)
            .member("scx_exit_info", "msg", 40)
            .member("scx_exit_info", "dump", 48)
    }

    /// A complete exit_info: stall, two frames, a message and a dump of `dump` bytes.
    fn guest(dump: &[u8], dump_len: u32) -> FakeMem {
        let mut m = FakeMem::default();
        m.w64(SCH + 0x10, EI);
        m.w32(SCH + 0x20, dump_len);
        m.w32(EI, 1026);
        m.w64(EI + 8, 0);
        m.w64(EI + 16, REASON);
        m.write(REASON, b"runnable task stall\0");
        m.w64(EI + 24, BT);
        m.w32(EI + 32, 2);
        m.w64(BT, TEXT + 0x143);
        m.w64(BT + 8, 0xffff_ffff_a000_1234);
        m.w64(EI + 40, MSG);
        m.write(MSG, b"ktstr-victim[131] failed to run for 5.02s\0");
        m.w64(EI + 48, DUMP);
        m.write(DUMP, dump);
        m
    }

    fn read_with(mem: &FakeMem, syms: &FakeSyms) -> ExitInfo {
        let t = types();
        let k = KernelView {
            mem,
            syms,
            types: &t,
        };
        let o = ExitInfoOffsets::resolve(&k).unwrap();
        read(
            &k,
            &o,
            Kva(SCH),
            &ReadOptions {
                source: "watchpoint",
                trigger_cpu: Some(1),
                symbols: &KallsymsOnly(&k),
            },
        )
    }

    #[test]
    fn a_complete_exit_info() {
        let m = guest(b"kworker/1:2[57] triggered exit kind 1026:\n  x\n\0", 0);
        let syms = FakeSyms::default().with("scx_watchdog_workfn", TEXT);
        let e = read_with(&m, &syms);
        assert_eq!(
            (e.kind, e.kind_name.as_str()),
            (1026, "SCX_EXIT_ERROR_STALL")
        );
        assert_eq!(e.source, "watchpoint");
        assert_eq!(e.reason.as_deref(), Some("runnable task stall"));
        assert_eq!(
            e.msg.as_deref(),
            Some("ktstr-victim[131] failed to run for 5.02s")
        );
        let t = e.trigger.unwrap();
        assert_eq!(
            (t.cpu, t.pid, t.comm.as_deref()),
            (1, Some(57), Some("kworker/1:2"))
        );
        assert_eq!(e.backtrace.len(), 2);
        assert_eq!(
            e.backtrace[0].symbol.as_deref(),
            Some("scx_watchdog_workfn")
        );
        assert_eq!(e.backtrace[0].offset, Some(0x143));
        assert!(e.kernel_dump.unwrap().starts_with("kworker/1:2[57]"));
        assert!(!e.kernel_dump_truncated);
        assert_eq!(e.unavailable, None);
    }

    #[test]
    fn strings_without_nul_are_cut_at_their_buffer_and_said() {
        // A dump that fills its 64-byte buffer with no NUL, then unreadable memory.
        let m = guest(&[b'x'; 64], 64);
        let e = read_with(&m, &FakeSyms::default());
        assert_eq!(e.kernel_dump.as_deref().map(str::len), Some(64));
        assert!(e.kernel_dump_truncated);
        assert!(
            e.unavailable
                .as_deref()
                .unwrap()
                .contains("dump: no NUL within 64 bytes"),
            "{:?}",
            e.unavailable
        );
        // A message without NUL: cut at SCX_EXIT_MSG_LEN (1024), never beyond.
        let mut m = guest(b"d\0", 0);
        m.write(MSG, &[b'm'; 3000]);
        let e = read_with(&m, &FakeSyms::default());
        assert_eq!(e.msg.as_deref().map(str::len), Some(1024));
    }

    #[test]
    fn garbage_lengths_and_pointers_are_bounded_and_marked() {
        let mut m = guest(b"\0", u32::MAX);
        m.w32(EI + 32, u32::MAX); // bt_len far beyond the 64-entry array
        m.w64(EI + 40, 0x1234); // msg: an unmapped pointer
        let e = read_with(&m, &FakeSyms::default());
        let why = e.unavailable.unwrap();
        assert!(
            why.contains("bt_len 4294967295 beyond the 64-entry array"),
            "{why}"
        );
        assert!(why.contains("exit_dump_len 4294967295 beyond"), "{why}");
        assert!(why.contains("msg:"), "{why}");
        // Clamped to the array: 64 frames read (the page holds zeros after the two real
        // ones), none invented beyond it.
        assert_eq!(e.backtrace.len(), 64);
        assert_eq!(e.backtrace[0].addr, TEXT + 0x143);
        assert!(e.backtrace[2..].iter().all(|f| f.addr == 0));
        // An empty dump is "not written yet", not an error.
        assert_eq!(e.kernel_dump, None);
        // exit_info NULL: the kind stays unknown and the reason says why.
        let mut m = FakeMem::default();
        m.w64(SCH + 0x10, 0);
        let e = read_with(&m, &FakeSyms::default());
        assert_eq!(
            e.unavailable.as_deref(),
            Some("scx_sched.exit_info is NULL")
        );
        assert_eq!(e.kind_name, "SCX_EXIT_NONE");
    }

    #[test]
    fn trigger_line_of_the_kernel_dump() {
        let t = trigger_from_dump(
            "kworker/u16:4[173] triggered exit kind 1026:\n  runnable task stall (x)\n",
        )
        .unwrap();
        assert_eq!(t.pid, Some(173));
        assert_eq!(t.comm.as_deref(), Some("kworker/u16:4"));
        // A comm with brackets of its own.
        let t = trigger_from_dump("a[b] c[9] triggered exit kind 1025:").unwrap();
        assert_eq!((t.comm.as_deref(), t.pid), (Some("a[b] c"), Some(9)));
        assert!(trigger_from_dump("no header here").is_none());
        assert!(trigger_from_dump("x[notanumber] triggered exit kind 1:").is_none());
    }
}
