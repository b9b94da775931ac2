//! Parsing QEMU's `info registers -a` (HMP) into [`CpuRegs`].
//!
//! The text is meant for people, so the parser is deliberately tolerant: it scans for
//! `NAME=HEX` pairs (`R8 =` has a space before `=`), treats segment lines
//! (`FS =sel base limit flags`) specially to get the bases, ignores what it does not
//! know (FPU, vector and debug registers), and insists only on what a dump needs:
//! RIP, RSP and CR3 for every CPU.

use std::sync::OnceLock;

use guest_mem::{CpuRegs, MAX_CPUS};
use regex::Regex;

/// Why the register text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegsParseError {
    #[error("no `CPU#n` block in the register dump")]
    NoCpu,
    #[error("CPU#{cpu}: register {name} missing")]
    Missing { cpu: usize, name: &'static str },
    #[error("CPU#{cpu}: register {name} has a bad value {value:?}")]
    BadValue {
        cpu: usize,
        name: String,
        value: String,
    },
    #[error("CPU#{cpu} appears twice or out of range")]
    BadIndex { cpu: usize },
}

fn pair_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:^|[\s\[])([A-Z][A-Z0-9]*)\s*=\s*([0-9a-fA-F]+)\b").expect("static regex")
    })
}

fn segment_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(ES|CS|SS|DS|FS|GS)\s*=\s*([0-9a-fA-F]+)\s+([0-9a-fA-F]+)\b")
            .expect("static regex")
    })
}

fn cpu_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^CPU#(\d+)").expect("static regex"))
}

/// Parses the output of `info registers -a`: one entry per `CPU#n` block, index = n.
/// CPUs absent from the text are `None`.
pub fn parse_info_registers(text: &str) -> Result<Vec<Option<CpuRegs>>, RegsParseError> {
    let mut out: Vec<Option<CpuRegs>> = Vec::new();
    let mut current: Option<(usize, Fields)> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r').trim();
        if let Some(c) = cpu_re().captures(line) {
            if let Some((idx, f)) = current.take() {
                store(&mut out, idx, f.finish(idx)?)?;
            }
            let idx: usize = c[1]
                .parse()
                .map_err(|_| RegsParseError::BadIndex { cpu: 0 })?;
            if idx >= MAX_CPUS {
                return Err(RegsParseError::BadIndex { cpu: idx });
            }
            current = Some((idx, Fields::default()));
            continue;
        }
        let Some((idx, fields)) = current.as_mut() else {
            continue;
        };
        if let Some(c) = segment_re().captures(line) {
            let sel = hex(*idx, &c[1], &c[2])?;
            let base = hex(*idx, &c[1], &c[3])?;
            fields.set_segment(&c[1], sel, base);
            continue;
        }
        for c in pair_re().captures_iter(line) {
            // Only registers we keep are parsed: others (XMM as 32 hex digits, ...)
            // may not fit a u64 and are none of our business.
            if let Some(kept) = Fields::kept(&c[1]) {
                let v = hex(*idx, &c[1], &c[2])?;
                fields.set(kept, v);
            }
        }
    }
    if let Some((idx, f)) = current.take() {
        store(&mut out, idx, f.finish(idx)?)?;
    }
    if out.is_empty() {
        return Err(RegsParseError::NoCpu);
    }
    Ok(out)
}

fn store(out: &mut Vec<Option<CpuRegs>>, idx: usize, regs: CpuRegs) -> Result<(), RegsParseError> {
    if out.len() <= idx {
        out.resize(idx + 1, None);
    }
    if out[idx].is_some() {
        return Err(RegsParseError::BadIndex { cpu: idx });
    }
    out[idx] = Some(regs);
    Ok(())
}

fn hex(cpu: usize, name: &str, value: &str) -> Result<u64, RegsParseError> {
    u64::from_str_radix(value, 16).map_err(|_| RegsParseError::BadValue {
        cpu,
        name: name.to_string(),
        value: value.chars().take(40).collect(),
    })
}

/// Where a register goes in [`CpuRegs`].
type Slot = fn(&mut CpuRegs) -> &mut u64;

/// The `NAME=HEX` registers kept, by QEMU's name (`RFL` is RFLAGS). At most 32: a
/// [`Fields`] records which it saw in a `u32`.
const KEPT: [(&str, Slot); 22] = [
    ("RAX", |r| &mut r.rax),
    ("RBX", |r| &mut r.rbx),
    ("RCX", |r| &mut r.rcx),
    ("RDX", |r| &mut r.rdx),
    ("RSI", |r| &mut r.rsi),
    ("RDI", |r| &mut r.rdi),
    ("RBP", |r| &mut r.rbp),
    ("RSP", |r| &mut r.rsp),
    ("R8", |r| &mut r.r8),
    ("R9", |r| &mut r.r9),
    ("R10", |r| &mut r.r10),
    ("R11", |r| &mut r.r11),
    ("R12", |r| &mut r.r12),
    ("R13", |r| &mut r.r13),
    ("R14", |r| &mut r.r14),
    ("R15", |r| &mut r.r15),
    ("RIP", |r| &mut r.rip),
    ("RFL", |r| &mut r.rflags),
    ("CR0", |r| &mut r.cr0),
    ("CR3", |r| &mut r.cr3),
    ("CR4", |r| &mut r.cr4),
    ("EFER", |r| &mut r.efer),
];

const _: () = assert!(KEPT.len() <= 32, "Fields::seen is a u32");

/// What a dump cannot do without: a CPU missing one of these is an error.
const REQUIRED: [&str; 3] = ["RIP", "RSP", "CR3"];

/// Segment registers: where the selector goes, and the base for the two a kernel uses
/// as bases (FS, GS).
const SEGMENTS: [(&str, Slot, Option<Slot>); 6] = [
    ("CS", |r| &mut r.cs, None),
    ("SS", |r| &mut r.ss, None),
    ("DS", |r| &mut r.ds, None),
    ("ES", |r| &mut r.es, None),
    ("FS", |r| &mut r.fs, Some(|r| &mut r.fs_base)),
    ("GS", |r| &mut r.gs, Some(|r| &mut r.gs_base)),
];

/// One CPU's registers as they are read, and which of [`KEPT`] were seen (bit = index).
#[derive(Default)]
struct Fields {
    regs: CpuRegs,
    seen: u32,
}

impl Fields {
    /// The index of `name` in [`KEPT`], if it is a register we keep.
    fn kept(name: &str) -> Option<usize> {
        KEPT.iter().position(|(n, _)| *n == name)
    }

    fn set(&mut self, kept: usize, v: u64) {
        *(KEPT[kept].1)(&mut self.regs) = v;
        self.seen |= 1 << kept;
    }

    fn set_segment(&mut self, name: &str, selector: u64, base: u64) {
        if let Some((_, sel, base_slot)) = SEGMENTS.iter().find(|(n, _, _)| *n == name) {
            *sel(&mut self.regs) = selector;
            if let Some(b) = base_slot {
                *b(&mut self.regs) = base;
            }
        }
    }

    fn finish(self, cpu: usize) -> Result<CpuRegs, RegsParseError> {
        for name in REQUIRED {
            let seen = Fields::kept(name).is_some_and(|i| self.seen & (1 << i) != 0);
            if !seen {
                return Err(RegsParseError::Missing { cpu, name });
            }
        }
        Ok(self.regs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two CPUs as QEMU 10.0.2 printed them (CRLF line ends, vector registers cut).
    const SAMPLE: &str = "\r\nCPU#0\r\n\
RAX=0000000000000001 RBX=00007ffdd0e93580 RCX=0000000000000061 RDX=0000000000000000\r\n\
RSI=0000000000000061 RDI=00007ffdd0e93580 RBP=00007ffdd0e93580 RSP=00007ffdd0e93320\r\n\
R8 =0000000000000000 R9 =0000000000000001 R10=0000000000000010 R11=0000000022b91718\r\n\
R12=0000000000000017 R13=0000000000000010 R14=00007ffdd0e93498 R15=0000000000000001\r\n\
RIP=000000000046809c RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0\r\n\
ES =0000 0000000000000000 00000000 00000000\r\n\
CS =0033 0000000000000000 ffffffff 00a0fb00 DPL=3 CS64 [-RA]\r\n\
SS =002b 0000000000000000 ffffffff 00c0f300 DPL=3 DS   [-WA]\r\n\
DS =0000 0000000000000000 00000000 00000000\r\n\
FS =0000 0000000022b903c0 00000000 00000000\r\n\
GS =0000 0000000000000000 00000000 00000000\r\n\
LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\r\n\
TR =0040 fffffe4e39196000 00004087 00008900 DPL=0 TSS64-avl\r\n\
GDT=     fffffe4e39194000 0000007f\r\n\
IDT=     fffffe0000000000 00000fff\r\n\
CR0=80050033 CR2=0000000022baa208 CR3=0000000002b14000 CR4=00751ef0\r\n\
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r\n\
DR6=00000000ffff0ff0 DR7=0000000000000400\r\n\
EFER=0000000000000d01\r\n\
FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\r\n\
FPR0=0000000000000000 0000 FPR1=0000000000000000 0000\r\n\
YMM00=0000000000000000 0000000000000000 0000000000000000 0000001000000010\r\n\
XMM00=0000000000000000000000000000000a XMM01=00000000000000000000000000000000\r\n\
\r\nCPU#1\r\n\
RAX=0000000000000001 RBX=0000000000000000 RCX=0000000000000020 RDX=0000000000000000\r\n\
RSI=0000000000000001 RDI=0000000000042e94 RBP=ff302cc8c13da340 RSP=ff73a0ee000b3eb8\r\n\
R8 =ff302cc8feb21968 R9 =ff302cc8feb21968 R10=000000000000000a R11=ff302cc8feb1d000\r\n\
R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=0000000000000000\r\n\
RIP=ffffffffaf153c9f RFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\
CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\r\n\
GS =0000 ff302cc94de3c000 00000000 00000000\r\n\
CR0=80050033 CR2=000000000fdc9478 CR3=0000000002b0f000 CR4=00751ef0\r\n\
EFER=0000000000000d01\r\n";

    #[test]
    fn parses_real_output() {
        let cpus = parse_info_registers(SAMPLE).unwrap();
        assert_eq!(cpus.len(), 2);
        let c0 = cpus[0].unwrap();
        assert_eq!(c0.rip, 0x46809c);
        assert_eq!(c0.rsp, 0x7ffdd0e93320);
        assert_eq!(c0.cr3, 0x2b14000);
        assert_eq!(c0.r8, 0);
        assert_eq!(c0.r9, 1);
        assert_eq!(c0.rflags, 0x246);
        assert_eq!(c0.cs, 0x33);
        assert_eq!(c0.ss, 0x2b);
        assert_eq!(c0.fs_base, 0x22b903c0);
        assert_eq!(c0.efer, 0xd01);
        assert_eq!(c0.cr4, 0x751ef0);
        let c1 = cpus[1].unwrap();
        assert_eq!(c1.rip, 0xffffffffaf153c9f);
        assert_eq!(c1.r11, 0xff302cc8feb1d000);
        assert_eq!(c1.gs_base, 0xff302cc94de3c000);
        assert_eq!(c1.cr3, 0x2b0f000);
    }

    #[test]
    fn rejects_what_a_dump_cannot_use() {
        assert_eq!(parse_info_registers(""), Err(RegsParseError::NoCpu));
        assert_eq!(
            parse_info_registers("garbage\nRIP=1\n"),
            Err(RegsParseError::NoCpu)
        );
        assert_eq!(
            parse_info_registers("CPU#0\nRIP=1 RSP=2\n"),
            Err(RegsParseError::Missing {
                cpu: 0,
                name: "CR3"
            })
        );
        assert!(matches!(
            parse_info_registers("CPU#0\nRIP=11111111111111111111 RSP=2 CR3=3\n"),
            Err(RegsParseError::BadValue { .. })
        ));
        assert!(matches!(
            parse_info_registers("CPU#0\nRIP=1 RSP=2 CR3=3\nCPU#0\nRIP=1 RSP=2 CR3=3\n"),
            Err(RegsParseError::BadIndex { cpu: 0 })
        ));
        assert!(matches!(
            parse_info_registers("CPU#99999999\nRIP=1 RSP=2 CR3=3\n"),
            Err(RegsParseError::BadIndex { .. })
        ));
        // A missing CPU in the middle is None, not an error.
        let v = parse_info_registers("CPU#1\nRIP=1 RSP=2 CR3=3\n").unwrap();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_none());
        assert_eq!(v[1].unwrap().cr3, 3);
    }
}
