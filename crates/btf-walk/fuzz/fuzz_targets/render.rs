//! BTF bytes + guest memory bytes → load, resolve offsets, render.
//!
//! Input: byte 0 picks the mode. Mode 0: `[len: u16][raw BTF][memory]` — arbitrary raw BTF.
//! Otherwise the first part is a small program for `BtfBuilder`, so that most inputs are
//! valid BTF with odd graphs (loops, absurd sizes, deep nesting, bad ids) and reach the
//! renderer. The rest is guest memory at a fixed address, also reachable via pointers.
//! Every rendered value must serialize to JSON that reads back equal.

#![no_main]

use btf_walk::synth::{BtfBuilder, RegionMem};
use btf_walk::{Btf, OffsetGroup, RenderOptions, Renderer, TypeId};
use guest_mem::Kva;
use libfuzzer_sys::fuzz_target;

const BASE: u64 = 0xffff_8880_0000_0000;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

const NAMES: &[&str] = &["", "a", "b", "cpumask", "cpumask_t", "char", "_Bool", "next", "x", "dup"];

/// Builds BTF from an op list: each op is one byte of kind plus a few argument bytes.
fn build(prog: &[u8]) -> Vec<u8> {
    let mut inp = Input(prog);
    let mut b = BtfBuilder::new();
    let mut n = 0u32;
    while !inp.0.is_empty() && n < 64 {
        n += 1;
        let op = inp.u8();
        let name = NAMES[(inp.u8() as usize) % NAMES.len()];
        // Type references mostly point at existing ids, sometimes anywhere.
        let r = |inp: &mut Input| {
            let v = inp.u8() as u32;
            if v >= 250 { inp.u32() } else { v % (n + 1) }
        };
        match op % 14 {
            0 => {
                let size = [1, 2, 4, 8, 16, 3][inp.u8() as usize % 6];
                let enc = (inp.u8() % 8) as u32;
                b.int(name, size, enc);
            }
            1 => {
                let t = r(&mut inp);
                b.ptr(t);
            }
            2 => {
                let e = r(&mut inp);
                let len = if inp.u8() & 1 == 0 { inp.u8() as u32 } else { inp.u32() };
                b.array(e, 1, len);
            }
            3 | 4 => {
                let size = inp.u8() as u32 * 4;
                let count = (inp.u8() % 6) as usize;
                let mut members = Vec::new();
                for _ in 0..count {
                    let mname = NAMES[(inp.u8() as usize) % NAMES.len()];
                    let t = r(&mut inp);
                    let off = inp.u8() as u32 * 8 + (inp.u8() % 8) as u32;
                    let bits = (inp.u8() % 70) as u32;
                    let bits = if bits > 64 { 0 } else { bits };
                    members.push((mname, t, off, bits));
                }
                if op % 14 == 3 {
                    b.struct_(name, size, &members);
                } else {
                    b.union_(name, size, &members);
                }
            }
            5 => {
                let size = [1, 2, 4, 8][inp.u8() as usize % 4];
                let vals: Vec<(&str, i64)> = (0..inp.u8() % 4)
                    .map(|i| (NAMES[i as usize + 1], inp.u32() as i32 as i64))
                    .collect();
                b.enum_(name, size, inp.u8() & 1 == 1, &vals);
            }
            6 => {
                let vals: Vec<(&str, u64)> = (0..inp.u8() % 3)
                    .map(|i| (NAMES[i as usize + 1], (inp.u32() as u64) << 20))
                    .collect();
                b.enum64(name, 8, false, &vals);
            }
            7 => {
                let t = r(&mut inp);
                b.typedef(name, t);
            }
            8 => {
                let t = r(&mut inp);
                b.const_(t);
            }
            9 => {
                let t = r(&mut inp);
                b.volatile(t);
            }
            10 => {
                b.fwd(name, inp.u8() & 1 == 1);
            }
            11 => {
                let t = r(&mut inp);
                b.var(name, t);
            }
            12 => {
                let v = r(&mut inp);
                let off = inp.u8() as u32;
                let sz = inp.u8() as u32;
                b.datasec(".bss", inp.u8() as u32 * 4, &[(v, off, sz)]);
            }
            _ => {
                let size = [4, 8, 16][inp.u8() as usize % 3];
                b.float(name, size);
            }
        }
    }
    b.build()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (btf_bytes, mem_bytes) = if mode == 0 {
        if rest.len() < 2 {
            return;
        }
        let len = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        (rest[2..2 + len].to_vec(), &rest[2 + len..])
    } else {
        let len = (mode as usize).min(rest.len());
        (build(&rest[..len]), &rest[len..])
    };
    let Ok(btf) = Btf::from_raw(&btf_bytes) else {
        return;
    };
    let mut mem = RegionMem::new();
    mem.add(BASE, mem_bytes.to_vec());
    let opts = RenderOptions {
        max_deref_depth: 4,
        // Bounded work per input keeps executions fast; the bound itself is tested.
        max_values: 5_000,
        ..RenderOptions::default()
    };
    let mut r = Renderer::new(&btf, &mem, opts);
    for id in 0..btf.type_count().min(80) {
        let ty = TypeId(id);
        let _ = btf.size_of(ty);
        let _ = btf.display_name(ty);
        let v = r.render_bytes(ty, mem_bytes);
        let json = serde_json::to_string(&v).expect("rendered values serialize");
        let back: dump_schema::RenderedValue =
            serde_json::from_str(&json).expect("serialized values read back");
        // NaN floats do not compare equal; compare the JSON instead.
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let _ = r.render_at(ty, Kva(BASE));
        if let Ok(members) = btf.members(ty) {
            let names: Vec<String> = members.iter().map(|m| m.name.to_string()).collect();
            for n in &names {
                if let Ok(f) = btf.field(ty, n) {
                    let _ = f.extract(mem_bytes);
                    let _ = f.read_u64(&mem, Kva(BASE));
                }
                let _ = btf.field(ty, &format!("{n}[3].a"));
            }
            if let Ok(name) = btf.name(ty) {
                let mut g = OffsetGroup::new(&btf, "fuzz");
                g.require_struct(name);
                for n in &names {
                    let _ = g.field(name, n);
                    let _ = g.off(name, n);
                }
                let _ = g.finish(());
            }
        }
        r.reset();
    }
    let _ = btf.split_from_raw(mem_bytes);
});
