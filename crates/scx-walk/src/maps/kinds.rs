//! Contents of each map type (see the module docs of [`super`]).

use dump_schema::map_type as mt;
use dump_schema::{
    FailureDumpArrayEntry, FailureDumpEntry, FailureDumpFdArray, FailureDumpMap,
    FailureDumpPercpuEntry, FailureDumpPercpuHashEntry, FailureDumpRingbuf, FailureDumpStackTrace,
    FailureDumpStackTraceEntry, RenderedValue,
};
use guest_mem::Kva;

use super::{MapCtx, MapInfo};
use crate::error::{Result, WalkError};
use crate::kernel::{Visited, hex};
use crate::lists::{hlist_nodes, hlist_nulls_nodes};

/// `BPF_F_STACK_BUILD_ID`: stack entries are build ids, not PCs.
const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
/// Arena guard: the kernel maps the arena at `kern_vm->addr + GUARD_SZ / 2`, with
/// `GUARD_SZ` = 64 KiB (the reach of a 16-bit instruction offset, page rounded).
const ARENA_GUARD_HALF: u64 = 1 << 15;

fn round_up8(v: u64) -> u64 {
    v.div_ceil(8) * 8
}

/// Fills `out` with the contents of the map; `notes` collects partial-capture reasons.
pub fn fill(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
) -> Result<()> {
    let btf = Some(info.btf);
    match info.map_type {
        mt::ARRAY => array(cx, info, out, notes, btf),
        mt::PERCPU_ARRAY => percpu_array(cx, info, out, notes, btf),
        mt::HASH | mt::LRU_HASH => hash(cx, info, out, notes, false),
        mt::PERCPU_HASH | mt::LRU_PERCPU_HASH => hash(cx, info, out, notes, true),
        mt::TASK_STORAGE | mt::CGRP_STORAGE | mt::INODE_STORAGE | mt::SK_STORAGE => {
            storage(cx, info, out, notes)
        }
        mt::ARENA => super::arena::arena(cx, info, out, notes),
        mt::RINGBUF | mt::USER_RINGBUF => ringbuf(cx, info, out),
        mt::STACK_TRACE => stack_trace(cx, info, out, notes),
        mt::PROG_ARRAY | mt::PERF_EVENT_ARRAY | mt::CGROUP_ARRAY | mt::ARRAY_OF_MAPS => {
            fd_array(cx, info, out)
        }
        mt::STRUCT_OPS => struct_ops(cx, info, out, notes),
        t => {
            notes.push(format!(
                "contents of {} maps are not walked",
                mt::name(t).unwrap_or("unknown")
            ));
            Ok(())
        }
    }
}

fn need<T: Copy>(o: Option<T>, group: &'static str) -> Result<T> {
    o.ok_or(WalkError::MissingOffsets {
        group,
        members: vec![format!("{group} (see logs)")],
    })
}

fn value_len(cx: &MapCtx<'_>, info: &MapInfo, notes: &mut Vec<String>) -> usize {
    let v = info.value_size as usize;
    if v > cx.caps.value_bytes {
        notes.push(format!("values truncated to {} bytes", cx.caps.value_bytes));
        cx.caps.value_bytes
    } else {
        v
    }
}

fn array(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
    btf: Option<Kva>,
) -> Result<()> {
    let a = need(cx.o.array, "bpf_array")?;
    let elem = u64::from(cx.k.u32(info.kva.checked_offset(a.elem_size)?, "bpf_array.elem_size")?);
    let vlen = value_len(cx, info, notes);
    if elem < info.value_size as u64 {
        return Err(WalkError::Implausible {
            what: "bpf_array.elem_size",
            value: elem,
        });
    }
    let base = info.kva.checked_offset(a.value)?;
    let mut fallback = None;
    if info.max_entries == 1 {
        let bytes = cx.k.bytes(base, vlen, "array value")?;
        let (v, why) = cx.render(btf, info.value_type_id, &bytes);
        out.value = Some(v);
        fallback = why;
    } else {
        let n = (info.max_entries as usize).min(cx.caps.keys);
        if n < info.max_entries as usize {
            notes.push(format!("array truncated at {n} entries"));
        }
        let mut unread = Unread::default();
        for i in 0..n {
            let at = base.checked_offset(elem * i as u64)?;
            let value = match cx.k.bytes(at, vlen, "array element") {
                Ok(bytes) => {
                    let (v, why) = cx.render(btf, info.value_type_id, &bytes);
                    fallback = fallback.or(why);
                    Some(v)
                }
                Err(e) => {
                    unread.add(e);
                    None
                }
            };
            out.array_entries.push(FailureDumpArrayEntry {
                key: i as u32,
                value,
            });
        }
        unread.note(notes, "array elements", n);
    }
    note_hex_fallback(notes, fallback);
    Ok(())
}

/// Values of a map that could not be read, with the first reason.
#[derive(Default)]
struct Unread {
    n: usize,
    first: Option<String>,
}

impl Unread {
    fn add(&mut self, e: impl std::fmt::Display) {
        self.n += 1;
        if self.first.is_none() {
            self.first = Some(e.to_string());
        }
    }

    /// `{n} of {total} {what} unreadable ({first})` in the map's notes, when any.
    fn note(&self, notes: &mut Vec<String>, what: &str, total: usize) {
        if let Some(first) = &self.first {
            notes.push(format!("{} of {total} {what} unreadable ({first})", self.n));
        }
    }
}

/// Says in the map's notes why values were rendered as hex (the first reason met).
fn note_hex_fallback(notes: &mut Vec<String>, fallback: Option<String>) {
    if let Some(why) = fallback {
        notes.push(format!("rendered as hex: {why}"));
    }
}

/// Per-CPU copies of the value at the per-CPU pointer `pptr`.
fn per_cpu_values(
    cx: &MapCtx<'_>,
    pptr: Kva,
    vlen: usize,
    type_id: u32,
    btf: Option<Kva>,
    fallback: &mut Option<String>,
    unread: &mut Unread,
) -> Vec<Option<RenderedValue>> {
    (0..cx.pc.nr_cpus())
        .map(|cpu| {
            let at = cx.pc.addr(pptr, cpu)?;
            let bytes =
                cx.k.bytes(at, vlen, "per-CPU value")
                    .inspect_err(|e| unread.add(e))
                    .ok()?;
            let (v, why) = cx.render(btf, type_id, &bytes);
            if fallback.is_none() {
                *fallback = why;
            }
            Some(v)
        })
        .collect()
}

fn percpu_array(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
    btf: Option<Kva>,
) -> Result<()> {
    let a = need(cx.o.array, "bpf_array")?;
    let vlen = value_len(cx, info, notes);
    let n = (info.max_entries as usize).min(cx.caps.percpu_keys);
    if n < info.max_entries as usize {
        notes.push(format!("per-CPU array truncated at {n} keys"));
    }
    let pptrs = info.kva.checked_offset(a.ptrs)?;
    let mut fallback = None;
    let mut unread = Unread::default();
    for i in 0..n {
        let pptr =
            cx.k.ptr(pptrs.checked_offset(i as u64 * 8)?, "bpf_array.pptrs[]")?;
        let per_cpu = per_cpu_values(
            cx,
            pptr,
            vlen,
            info.value_type_id,
            btf,
            &mut fallback,
            &mut unread,
        );
        out.percpu_entries.push(FailureDumpPercpuEntry {
            key: i as u32,
            per_cpu,
        });
    }
    unread.note(notes, "per-CPU values", n * cx.pc.nr_cpus());
    note_hex_fallback(notes, fallback);
    Ok(())
}

fn hash(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
    percpu: bool,
) -> Result<()> {
    let h = need(cx.o.htab, "bpf_htab")?;
    let k = &cx.k;
    let btf = Some(info.btf);
    let n_buckets = k.u32(info.kva.checked_offset(h.n_buckets)?, "bpf_htab.n_buckets")?;
    if n_buckets == 0 || n_buckets > (1 << 26) {
        return Err(WalkError::Implausible {
            what: "bpf_htab.n_buckets",
            value: u64::from(n_buckets),
        });
    }
    let buckets = k.ptr(info.kva.checked_offset(h.buckets)?, "bpf_htab.buckets")?;
    let key_len = info.key_size as usize;
    let vlen = value_len(cx, info, notes);
    let value_off = h.elem_key + round_up8(u64::from(info.key_size));
    let cap = if percpu {
        cx.caps.percpu_keys
    } else {
        cx.caps.keys
    };
    let mut count = 0usize;
    let mut unreadable = 0u32;
    let mut fallback = None;
    let mut unread = Unread::default();
    'buckets: for b in 0..u64::from(n_buckets) {
        let head = buckets.checked_offset(b * h.bucket_size + h.bucket_head)?;
        let nodes = match hlist_nulls_nodes(k, cx.c, head, cap + 1, "htab bucket") {
            Ok(w) => w.nodes,
            Err(_) => {
                unreadable += 1;
                continue;
            }
        };
        // htab_elem starts with its hash_node.
        for elem in nodes {
            if count >= cap {
                notes.push(dump_schema::reasons::hash_map_truncated(cap));
                break 'buckets;
            }
            count += 1;
            let Ok(key_bytes) = k.bytes(elem.checked_offset(h.elem_key)?, key_len, "htab key")
            else {
                unreadable += 1;
                continue;
            };
            let (key, why) = cx.render(btf, info.key_type_id, &key_bytes);
            fallback = fallback.or(why);
            let key_hex = hex(&key_bytes);
            let vaddr = elem.checked_offset(value_off)?;
            if percpu {
                let pptr = k.ptr(vaddr, "htab per-CPU pointer")?;
                let per_cpu = per_cpu_values(
                    cx,
                    pptr,
                    vlen,
                    info.value_type_id,
                    btf,
                    &mut fallback,
                    &mut unread,
                );
                out.percpu_hash_entries.push(FailureDumpPercpuHashEntry {
                    key: Some(key),
                    key_hex,
                    per_cpu,
                });
            } else {
                let value_bytes = k
                    .bytes(vaddr, vlen, "htab value")
                    .inspect_err(|e| unread.add(e))
                    .unwrap_or_default();
                let (value, why) = cx.render(btf, info.value_type_id, &value_bytes);
                fallback = fallback.or(why);
                out.entries.push(FailureDumpEntry {
                    key: Some(key),
                    key_hex,
                    value: Some(value),
                    value_hex: hex(&value_bytes),
                    payload: None,
                });
            }
        }
    }
    if unreadable > 0 {
        notes.push(format!("{unreadable} buckets or entries unreadable"));
    }
    unread.note(notes, "values", count);
    note_hex_fallback(notes, fallback);
    Ok(())
}

fn storage(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
) -> Result<()> {
    let s = need(cx.o.storage, "bpf_local_storage")?;
    let k = &cx.k;
    let log = k.u32(info.kva.checked_offset(s.bucket_log)?, "bucket_log")?;
    if log > 20 {
        return Err(WalkError::Implausible {
            what: "bpf_local_storage_map.bucket_log",
            value: u64::from(log),
        });
    }
    let buckets = k.ptr(info.kva.checked_offset(s.buckets)?, "storage buckets")?;
    let vlen = value_len(cx, info, notes);
    let btf = Some(info.btf);
    let mut fallback = None;
    let mut count = 0;
    let mut buckets_unread = Unread::default();
    let mut values_unread = Unread::default();
    'b: for b in 0..(1u64 << log) {
        let head = buckets.checked_offset(b * s.bucket_size + s.bucket_list)?;
        let w = match hlist_nodes(k, cx.c, head, cx.caps.keys + 1, "storage bucket") {
            Ok(w) => w,
            Err(e) => {
                buckets_unread.add(e);
                continue;
            }
        };
        for node in w.nodes {
            if count >= cx.caps.keys {
                notes.push(dump_schema::reasons::hash_map_truncated(cx.caps.keys));
                break 'b;
            }
            count += 1;
            let elem = Kva(node.0.wrapping_sub(s.elem_map_node));
            let ls = k.ptr(
                elem.checked_offset(s.elem_local_storage)?,
                "selem.local_storage",
            )?;
            let owner = if ls.0 != 0 {
                k.u64(ls.checked_offset(s.owner)?, "local_storage.owner")
                    .unwrap_or(0)
            } else {
                0
            };
            let value_bytes = k
                .bytes(elem.checked_offset(s.elem_data)?, vlen, "storage value")
                .inspect_err(|e| values_unread.add(e))
                .unwrap_or_default();
            let (value, why) = cx.render(btf, info.value_type_id, &value_bytes);
            fallback = fallback.or(why);
            out.entries.push(FailureDumpEntry {
                key: None,
                key_hex: hex(&owner.to_le_bytes()),
                value: Some(value),
                value_hex: hex(&value_bytes),
                payload: None,
            });
        }
    }
    buckets_unread.note(notes, "buckets", 1usize << log);
    values_unread.note(notes, "values", count);
    note_hex_fallback(notes, fallback);
    Ok(())
}

/// The arena's kernel mapping start, `user_vm_start` and page size, for the arena walk
/// and the sdt pass.
pub fn arena_bounds(cx: &MapCtx<'_>, map: Kva) -> Result<(u64, u64)> {
    let a = need(cx.o.arena, "bpf_arena")?;
    let user = cx.k.u64(
        map.checked_offset(a.user_vm_start)?,
        "bpf_arena.user_vm_start",
    )?;
    let vm =
        cx.k.ptr(map.checked_offset(a.kern_vm)?, "bpf_arena.kern_vm")?;
    if vm.0 == 0 {
        return Err(WalkError::Implausible {
            what: "bpf_arena.kern_vm",
            value: 0,
        });
    }
    let addr = cx.k.u64(vm.checked_offset(a.vm_addr)?, "vm_struct.addr")?;
    Ok((addr.wrapping_add(ARENA_GUARD_HALF), user))
}

fn ringbuf(cx: &MapCtx<'_>, info: &MapInfo, out: &mut FailureDumpMap) -> Result<()> {
    let r = need(cx.o.ringbuf, "bpf_ringbuf")?;
    let k = &cx.k;
    let rb = k.ptr(info.kva.checked_offset(r.rb)?, "bpf_ringbuf_map.rb")?;
    let mask = k.u64(rb.checked_offset(r.mask)?, "bpf_ringbuf.mask")?;
    let consumer_pos = k.u64(rb.checked_offset(r.consumer_pos)?, "consumer_pos")?;
    let producer_pos = k.u64(rb.checked_offset(r.producer_pos)?, "producer_pos")?;
    let pending_pos = k.u64(rb.checked_offset(r.pending_pos)?, "pending_pos")?;
    out.ringbuf = Some(FailureDumpRingbuf {
        capacity: mask.wrapping_add(1),
        consumer_pos,
        producer_pos,
        pending_pos,
        // Bytes the producer has committed or reserved that the consumer has not read.
        pending_bytes: producer_pos.saturating_sub(consumer_pos),
    });
    Ok(())
}

fn stack_trace(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
) -> Result<()> {
    let s = need(cx.o.stack, "bpf_stack_map")?;
    let k = &cx.k;
    let n = k.u32(
        info.kva.checked_offset(s.n_buckets)?,
        "bpf_stack_map.n_buckets",
    )?;
    if n > (1 << 24) {
        return Err(WalkError::Implausible {
            what: "bpf_stack_map.n_buckets",
            value: u64::from(n),
        });
    }
    let build_id = info.flags & BPF_F_STACK_BUILD_ID != 0;
    let mut st = FailureDumpStackTrace {
        n_buckets: n,
        ..Default::default()
    };
    let base = info.kva.checked_offset(s.buckets)?;
    let max_bytes = info.value_size.min(64 * 1024) as usize;
    for i in 0..u64::from(n) {
        let Ok(b) = k.ptr(base.checked_offset(i * 8)?, "stack bucket") else {
            st.buckets_unreadable += 1;
            continue;
        };
        if b.0 == 0 {
            continue;
        }
        if st.entries.len() >= cx.caps.keys {
            st.truncated = true;
            break;
        }
        let Ok(nr) = k.u32(b.checked_offset(s.nr)?, "stack_map_bucket.nr") else {
            st.buckets_unreadable += 1;
            continue;
        };
        let elem = if build_id { 32 } else { 8 };
        let len = (nr as usize).saturating_mul(elem).min(max_bytes);
        let Ok(data) = k.bytes(b.checked_offset(s.data)?, len, "stack data") else {
            st.buckets_unreadable += 1;
            continue;
        };
        let pcs = if build_id {
            Vec::new()
        } else {
            data.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        };
        st.entries.push(FailureDumpStackTraceEntry {
            bucket_id: i as u32,
            nr,
            pcs,
            data_hex: hex(&data),
        });
    }
    if st.buckets_unreadable > 0 {
        notes.push(format!(
            "{} of {n} stack buckets unreadable",
            st.buckets_unreadable
        ));
    }
    out.stack_trace = Some(st);
    Ok(())
}

fn fd_array(cx: &MapCtx<'_>, info: &MapInfo, out: &mut FailureDumpMap) -> Result<()> {
    let a = need(cx.o.array, "bpf_array")?;
    // Scan at most 16 keys-caps of slots; record up to a keys-cap of indices.
    let scan_cap = cx.caps.keys.saturating_mul(16) as u64;
    let scanned = u64::from(info.max_entries).min(scan_cap);
    let mut fa = FailureDumpFdArray {
        scanned: scanned as u32,
        truncated: scanned < u64::from(info.max_entries),
        ..Default::default()
    };
    let base = info.kva.checked_offset(a.ptrs)?;
    let mut i = 0u64;
    while i < scanned {
        let n = (scanned - i).min(512);
        match cx.k.bytes(
            base.checked_offset(i * 8)?,
            (n * 8) as usize,
            "fd array slots",
        ) {
            Ok(raw) => {
                for (j, c) in raw.chunks_exact(8).enumerate() {
                    if u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) != 0 {
                        fa.populated += 1;
                        if fa.indices.len() < cx.caps.keys {
                            fa.indices.push((i + j as u64) as u32);
                        } else {
                            fa.indices_truncated = true;
                        }
                    }
                }
            }
            Err(_) => fa.unreadable += n as u32,
        }
        i += n;
    }
    out.fd_array = Some(fa);
    Ok(())
}

fn struct_ops(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
) -> Result<()> {
    let s = need(cx.o.struct_ops, "bpf_struct_ops_map")?;
    let vlen = value_len(cx, info, notes);
    let bytes = cx.k.bytes(
        info.kva.checked_offset(s.kvalue)?,
        vlen,
        "struct_ops kvalue",
    )?;
    // The value type (`bpf_struct_ops_<ops>`) is a kernel type.
    let (v, why) = cx.render(None, info.vmlinux_value_type_id, &bytes);
    out.value = Some(v);
    note_hex_fallback(notes, why);
    Ok(())
}

/// Programs a struct_ops map links (`links[i]->prog`), for `active_map_kvas`.
pub fn struct_ops_progs(cx: &MapCtx<'_>, map: Kva) -> Result<Vec<Kva>> {
    let s = need(cx.o.struct_ops, "bpf_struct_ops_map")?;
    let k = &cx.k;
    let n = k
        .u32(map.checked_offset(s.funcs_cnt)?, "funcs_cnt")?
        .min(256);
    let links = k.ptr(map.checked_offset(s.links)?, "links")?;
    let mut out = Vec::new();
    let mut seen = Visited::new(256);
    if links.0 == 0 {
        return Ok(out);
    }
    for i in 0..u64::from(n) {
        let l = k.ptr(links.checked_offset(i * 8)?, "links[i]")?;
        if l.0 == 0 {
            continue;
        }
        let p = k.ptr(l.checked_offset(s.link_prog)?, "link.prog")?;
        if p.0 != 0 && seen.visit(p, "struct_ops progs").unwrap_or(false) {
            out.push(p);
        }
    }
    Ok(out)
}
