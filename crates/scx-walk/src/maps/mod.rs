//! BPF maps: every map in `map_idr`, its metadata and its contents, rendered with the
//! map's own BTF (split over the kernel's) and hex when that is not possible.
//!
//! What each map type yields:
//! - ARRAY with one entry (`.bss`, `.data`, `.rodata`, …) → `value`; more entries →
//!   `array_entries`; PERCPU_ARRAY → `percpu_entries`.
//! - HASH, LRU_HASH → `entries` (buckets walked through their nulls-terminated lists);
//!   PERCPU_HASH, LRU_PERCPU_HASH → `percpu_hash_entries`.
//! - TASK/CGRP/INODE/SK_STORAGE → `entries`, keyed by the owner's kernel address
//!   (`key_hex` is the 8-byte little-endian owner pointer; `key` is absent).
//! - ARENA → `arena`; RINGBUF → `ringbuf`; STACK_TRACE → `stack_trace`;
//!   PROG_ARRAY and the other fd arrays → `fd_array`; STRUCT_OPS → `value` (the kernel's
//!   `bpf_struct_ops_<name>` value, rendered with the kernel's BTF).
//! - Other types: metadata only, `error` says the contents are not walked.
//!
//! Caps (wire format): hash/array keys 4096, per-CPU keys 256, array elements rendered
//! 4096; each cap hit is named in `error`. Arena pages: every mapped page of the arena's
//! 4 GiB kernel window is found by walking its page tables, and the first
//! [`MapCaps::arena_pages`] are captured; `error` counts the rest (`arena: 39 of 295
//! pages not captured (cap 256 pages, 1 MiB)`).

mod arena;
mod kinds;
pub use kinds::{arena_bounds, struct_ops_progs};
pub mod offsets;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dump_schema::{FailureDumpMap, RenderedValue, map_type};
use guest_mem::Kva;

use crate::capture::SecondThread;
use crate::error::Result;
use crate::kernel::{KernelView, PerCpu, ValueRenderer, hex};
use crate::lists::{CoreOffsets, xarray_entries};
pub use offsets::MapOffsets;

/// Limits on what one map capture reads.
#[derive(Debug, Clone, Copy)]
pub struct MapCaps {
    /// Maps enumerated from `map_idr`.
    pub maps: usize,
    /// Entries of HASH/LRU_HASH/storage maps and elements of ARRAY maps.
    pub keys: usize,
    /// Keys of per-CPU maps.
    pub percpu_keys: usize,
    /// Arena pages captured (the others are counted in the map's `error`).
    pub arena_pages: usize,
    /// Arena page slots probed when the reader cannot walk page tables (the span; a
    /// larger arena then sets `span_capped`).
    pub arena_span_pages: u64,
    /// Bytes of one map value read (larger values are truncated).
    pub value_bytes: usize,
}

impl Default for MapCaps {
    fn default() -> Self {
        MapCaps {
            maps: 4096,
            keys: 4096,
            percpu_keys: 256,
            arena_pages: 256,
            arena_span_pages: 1 << 16,
            value_bytes: 1 << 20,
        }
    }
}

/// Everything a map capture reads through.
pub struct MapCtx<'a> {
    pub k: KernelView<'a>,
    pub c: &'a CoreOffsets,
    pub o: &'a MapOffsets,
    pub pc: &'a PerCpu,
    pub renderer: Option<&'a dyn ValueRenderer>,
    pub caps: MapCaps,
}

/// Metadata of one map, read from `struct bpf_map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapInfo {
    pub kva: Kva,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub name: String,
    pub btf: Kva,
    pub key_type_id: u32,
    pub value_type_id: u32,
    pub vmlinux_value_type_id: u32,
}

/// Addresses of every map in `map_idr`, in id order, and whether the cap cut the list.
pub fn map_kvas(k: &KernelView<'_>, c: &CoreOffsets, cap: usize) -> Result<(Vec<Kva>, bool)> {
    let idr = k.sym("map_idr")?;
    let (e, truncated) = xarray_entries(k, c, Kva(idr.0.wrapping_add(c.idr_rt)), cap)?;
    Ok((e.into_iter().map(|(_, p)| p).collect(), truncated))
}

impl MapCtx<'_> {
    /// Reads `struct bpf_map` at `map`.
    pub fn info(&self, map: Kva) -> Result<MapInfo> {
        let (k, o) = (&self.k, self.o);
        let f = |off| map.checked_offset(off);
        Ok(MapInfo {
            kva: map,
            map_type: k.u32(f(o.map_type)?, "bpf_map.map_type")?,
            key_size: k.u32(f(o.key_size)?, "bpf_map.key_size")?,
            value_size: k.u32(f(o.value_size)?, "bpf_map.value_size")?,
            max_entries: k.u32(f(o.max_entries)?, "bpf_map.max_entries")?,
            flags: k.u32(f(o.map_flags)?, "bpf_map.map_flags")?,
            name: k.cstr(f(o.name)?, 16, "bpf_map.name")?,
            btf: k.ptr(f(o.btf)?, "bpf_map.btf")?,
            key_type_id: k.u32(f(o.btf_key_type_id)?, "bpf_map.btf_key_type_id")?,
            value_type_id: k.u32(f(o.btf_value_type_id)?, "bpf_map.btf_value_type_id")?,
            vmlinux_value_type_id: k.u32(
                f(o.btf_vmlinux_value_type_id)?,
                "bpf_map.btf_vmlinux_value_type_id",
            )?,
        })
    }

    /// Renders `bytes` as `type_id` of the map's BTF (or the kernel's when `btf` is
    /// `None`); falls back to hex. Returns the value and, on fallback, why.
    pub fn render(
        &self,
        btf: Option<Kva>,
        type_id: u32,
        bytes: &[u8],
    ) -> (RenderedValue, Option<String>) {
        let fallback = |why: String| (RenderedValue::Bytes { hex: hex(bytes) }, Some(why));
        let Some(r) = self.renderer else {
            return fallback("no BTF renderer".into());
        };
        if type_id == 0 {
            return fallback("map has no BTF type".into());
        }
        if btf == Some(Kva(0)) {
            return fallback("map has no BTF".into());
        }
        match r.render(btf, type_id, bytes, self.k.mem) {
            Ok(v) => (v, None),
            Err(e) => fallback(e),
        }
    }

    /// Captures one map: metadata, then the contents for its type. Never fails: what
    /// could not be read is said in `error`.
    pub fn capture(&self, map: Kva) -> FailureDumpMap {
        let info = match self.info(map) {
            Ok(i) => i,
            Err(e) => {
                return FailureDumpMap {
                    name: String::new(),
                    map_kva: map.0,
                    error: Some(format!("map header unreadable: {e}")),
                    ..Default::default()
                };
            }
        };
        let mut out = FailureDumpMap {
            name: info.name.clone(),
            map_kva: map.0,
            map_type: info.map_type,
            value_size: info.value_size,
            max_entries: info.max_entries,
            ..Default::default()
        };
        let mut notes = Vec::new();
        if let Err(e) = kinds::fill(self, &info, &mut out, &mut notes) {
            notes.push(e.to_string());
        }
        if !notes.is_empty() {
            notes.dedup();
            out.error = Some(notes.join("; "));
        }
        out
    }
}

/// Captures `maps` in order on this thread and, with `second`, on a second thread too:
/// each takes the next map not yet taken, so that one slow map does not hold the other
/// maps back. No map is started once `deadline` has passed. Returns the maps captured, a
/// prefix of `maps` in their order; a map whose thread failed (a bug) is in it with an
/// `error` saying so.
pub fn capture_all(
    cx: &MapCtx<'_>,
    second: Option<SecondThread<'_>>,
    maps: &[Kva],
    deadline: Option<Instant>,
) -> Vec<FailureDumpMap> {
    capture_all_after(cx, second, maps, deadline, || ()).0
}

/// [`capture_all`], with `first` run on this thread before it takes maps (the second
/// thread, if any, captures maps meanwhile); also returns what `first` returned.
pub fn capture_all_after<T>(
    cx: &MapCtx<'_>,
    second: Option<SecondThread<'_>>,
    maps: &[Kva],
    deadline: Option<Instant>,
    first: impl FnOnce() -> T,
) -> (Vec<FailureDumpMap>, T) {
    let order = take_order(cx, maps, deadline.is_some() || second.is_none());
    let next = AtomicUsize::new(0);
    let take = || {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        order.get(i).copied()
    };
    let run = |cx: &MapCtx<'_>| {
        let mut got = Vec::new();
        while let Some(i) = take() {
            got.push((i, cx.capture(maps[i])));
            cx.k.mem.release_resident();
        }
        got
    };
    let (mine, theirs, got) = match second {
        Some(t) if maps.len() > 1 => {
            let (run, c, o, pc, caps) = (&run, cx.c, cx.o, cx.pc, cx.caps);
            let kernel = t.kernel.clone();
            std::thread::scope(|s| {
                let worker = s.spawn(move || {
                    let cx = MapCtx {
                        k: KernelView {
                            mem: &kernel,
                            syms: &kernel,
                            types: t.types,
                        },
                        c,
                        o,
                        pc,
                        renderer: t.renderer.map(|r| r as &dyn ValueRenderer),
                        caps,
                    };
                    run(&cx)
                });
                let got = first();
                let mine = run(cx);
                (mine, worker.join().unwrap_or_default(), got)
            })
        }
        _ => {
            let got = first();
            (run(cx), Vec::new(), got)
        }
    };
    // Taken maps: a prefix of `order`, which is `map_idr` order whenever some may be
    // left (a deadline).
    let taken = next.load(Ordering::Relaxed).min(maps.len());
    let mut slots: Vec<Option<Option<FailureDumpMap>>> = (0..maps.len()).map(|_| None).collect();
    for &i in &order[..taken] {
        slots[i] = Some(None);
    }
    for (i, m) in mine.into_iter().chain(theirs) {
        slots[i] = Some(Some(m));
    }
    let captured = (slots.into_iter().zip(maps))
        .filter_map(|(m, &kva)| {
            Some(m?.unwrap_or_else(|| FailureDumpMap {
                map_kva: kva.0,
                error: Some("not captured: its capture thread failed".into()),
                ..Default::default()
            }))
        })
        .collect();
    (captured, got)
}

/// Indices of `maps` in the order they are taken. `map_idr` order when `in_order` (with a
/// deadline, so that the maps captured before it stay a prefix of the list; or on one
/// thread, where order changes nothing); otherwise the arrays first, biggest first — every
/// entry of an array is rendered, so its size is its cost, and a real scheduler's largest
/// map can take as long as all its others — then the other maps in `map_idr` order, so
/// that one thread's long map overlaps the other's many short ones.
fn take_order(cx: &MapCtx<'_>, maps: &[Kva], in_order: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..maps.len()).collect();
    if in_order {
        return order;
    }
    let cost = |i: &usize| match cx.info(maps[*i]) {
        Ok(m) if matches!(m.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY) => {
            u64::from(m.value_size) * u64::from(m.max_entries)
        }
        _ => 0,
    };
    let costs: Vec<u64> = order.iter().map(cost).collect();
    // Stable: equal costs (all the non-arrays) keep their order.
    order.sort_by_key(|&i| std::cmp::Reverse(costs[i]));
    order
}
