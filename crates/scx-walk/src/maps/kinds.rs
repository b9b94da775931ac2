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
use crate::lists::{BucketHeads, Links};

/// `BPF_F_STACK_BUILD_ID`: stack entries are build ids, not PCs.
const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
/// Arena guard: the kernel maps the arena at `kern_vm->addr + GUARD_SZ / 2`, with
/// `GUARD_SZ` = 64 KiB (the reach of a 16-bit instruction offset, page rounded).
const ARENA_GUARD_HALF: u64 = 1 << 15;

fn round_up8(v: u64) -> u64 {
    v.div_ceil(8) * 8
}

/// One map being filled: the walk context, the map, the dump entry it fills, the
/// partial-capture notes, and the first reason a value was rendered as hex.
pub(super) struct Fill<'f> {
    pub(super) cx: &'f MapCtx<'f>,
    pub(super) info: &'f MapInfo,
    pub(super) out: &'f mut FailureDumpMap,
    pub(super) notes: &'f mut Vec<String>,
    fallback: Option<String>,
}

/// Fills `out` with the contents of the map; `notes` collects partial-capture reasons.
pub fn fill(
    cx: &MapCtx<'_>,
    info: &MapInfo,
    out: &mut FailureDumpMap,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut f = Fill {
        cx,
        info,
        out,
        notes,
        fallback: None,
    };
    let btf = Some(info.btf);
    let filled = match info.map_type {
        mt::ARRAY => f.array(btf),
        mt::PERCPU_ARRAY => f.percpu_array(btf),
        mt::HASH | mt::LRU_HASH => f.hash(false),
        mt::PERCPU_HASH | mt::LRU_PERCPU_HASH => f.hash(true),
        mt::TASK_STORAGE | mt::CGRP_STORAGE | mt::INODE_STORAGE | mt::SK_STORAGE => f.storage(),
        mt::ARENA => super::arena::arena(&mut f),
        mt::RINGBUF | mt::USER_RINGBUF => ringbuf(cx, info, f.out),
        mt::STACK_TRACE => stack_trace(cx, info, f.out, f.notes),
        mt::PROG_ARRAY | mt::PERF_EVENT_ARRAY | mt::CGROUP_ARRAY | mt::ARRAY_OF_MAPS => {
            fd_array(cx, info, f.out)
        }
        mt::STRUCT_OPS => f.struct_ops(),
        t => {
            f.notes.push(format!(
                "contents of {} maps are not walked",
                mt::name(t).unwrap_or("unknown")
            ));
            Ok(())
        }
    };
    // Says in the map's notes why values were rendered as hex (the first reason met).
    if let (Ok(()), Some(why)) = (&filled, f.fallback) {
        f.notes.push(format!("rendered as hex: {why}"));
    }
    filled
}

fn need<T: Copy>(o: Option<T>, group: &'static str) -> Result<T> {
    o.ok_or(WalkError::MissingOffsets {
        group,
        members: vec![format!("{group} (see logs)")],
    })
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

impl Fill<'_> {
    /// Renders `bytes` as `type_id` ([`MapCtx::render`]), keeping the first reason for
    /// a hex fallback.
    fn render(&mut self, btf: Option<Kva>, type_id: u32, bytes: &[u8]) -> RenderedValue {
        let (v, why) = self.cx.render(btf, type_id, bytes);
        if self.fallback.is_none() {
            self.fallback = why;
        }
        v
    }

    /// Bytes of each value to read: the value size, capped.
    fn value_len(&mut self) -> usize {
        let (v, cap) = (self.info.value_size as usize, self.cx.caps.value_bytes);
        if v > cap {
            self.notes.push(format!("values truncated to {cap} bytes"));
            cap
        } else {
            v
        }
    }

    fn array(&mut self, btf: Option<Kva>) -> Result<()> {
        let (cx, info) = (self.cx, self.info);
        let a = need(cx.o.array, "bpf_array")?;
        let elem =
            u64::from(cx.k.u32(info.kva.checked_offset(a.elem_size)?, "bpf_array.elem_size")?);
        let vlen = self.value_len();
        if elem < info.value_size as u64 {
            return Err(WalkError::Implausible {
                what: "bpf_array.elem_size",
                value: elem,
            });
        }
        let base = info.kva.checked_offset(a.value)?;
        if info.max_entries == 1 {
            let bytes = cx.k.bytes(base, vlen, "array value")?;
            self.out.value = Some(self.render(btf, info.value_type_id, &bytes));
            return Ok(());
        }
        let n = (info.max_entries as usize).min(cx.caps.keys);
        if n < info.max_entries as usize {
            self.notes.push(format!("array truncated at {n} entries"));
        }
        let mut unread = Unread::default();
        for i in 0..n {
            let at = base.checked_offset(elem * i as u64)?;
            let value = match cx.k.bytes(at, vlen, "array element") {
                Ok(bytes) => Some(self.render(btf, info.value_type_id, &bytes)),
                Err(e) => {
                    unread.add(e);
                    None
                }
            };
            self.out.array_entries.push(FailureDumpArrayEntry {
                key: i as u32,
                value,
            });
        }
        unread.note(self.notes, "array elements", n);
        Ok(())
    }

    /// Per-CPU copies of the value at the per-CPU pointer `pptr`.
    fn per_cpu_values(
        &mut self,
        pptr: Kva,
        vlen: usize,
        btf: Option<Kva>,
        unread: &mut Unread,
    ) -> Vec<Option<RenderedValue>> {
        let (cx, type_id) = (self.cx, self.info.value_type_id);
        (0..cx.pc.nr_cpus())
            .map(|cpu| {
                let at = cx.pc.addr(pptr, cpu)?;
                let bytes =
                    cx.k.bytes(at, vlen, "per-CPU value")
                        .inspect_err(|e| unread.add(e))
                        .ok()?;
                Some(self.render(btf, type_id, &bytes))
            })
            .collect()
    }

    fn percpu_array(&mut self, btf: Option<Kva>) -> Result<()> {
        let (cx, info) = (self.cx, self.info);
        let a = need(cx.o.array, "bpf_array")?;
        let vlen = self.value_len();
        let n = (info.max_entries as usize).min(cx.caps.percpu_keys);
        if n < info.max_entries as usize {
            self.notes
                .push(format!("per-CPU array truncated at {n} keys"));
        }
        let pptrs = info.kva.checked_offset(a.ptrs)?;
        let mut unread = Unread::default();
        for i in 0..n {
            let pptr =
                cx.k.ptr(pptrs.checked_offset(i as u64 * 8)?, "bpf_array.pptrs[]")?;
            let per_cpu = self.per_cpu_values(pptr, vlen, btf, &mut unread);
            self.out.percpu_entries.push(FailureDumpPercpuEntry {
                key: i as u32,
                per_cpu,
            });
        }
        unread.note(self.notes, "per-CPU values", n * cx.pc.nr_cpus());
        Ok(())
    }

    fn hash(&mut self, percpu: bool) -> Result<()> {
        let (cx, info) = (self.cx, self.info);
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
        let vlen = self.value_len();
        let value_off = h.elem_key + round_up8(u64::from(info.key_size));
        let cap = if percpu {
            cx.caps.percpu_keys
        } else {
            cx.caps.keys
        };
        let mut count = 0usize;
        let mut unreadable = 0u32;
        let mut unread = Unread::default();
        let heads = BucketHeads::new(
            k,
            cx.c,
            Links::HlistNulls,
            buckets.checked_offset(h.bucket_head)?,
            h.bucket_size,
            u64::from(n_buckets),
        );
        'buckets: for head in heads {
            let head = head?;
            let nodes = match Links::HlistNulls
                .walk(k, cx.c, head, cap + 1, "htab bucket")
                .strict()
            {
                Ok(w) => w.nodes,
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            // htab_elem starts with its hash_node.
            for elem in nodes {
                if count >= cap {
                    self.notes
                        .push(dump_schema::reasons::hash_map_truncated(cap));
                    break 'buckets;
                }
                count += 1;
                let Ok(key_bytes) = k.bytes(elem.checked_offset(h.elem_key)?, key_len, "htab key")
                else {
                    unreadable += 1;
                    continue;
                };
                let key = Some(self.render(btf, info.key_type_id, &key_bytes));
                let key_hex = hex(&key_bytes);
                let vaddr = elem.checked_offset(value_off)?;
                if percpu {
                    let pptr = k.ptr(vaddr, "htab per-CPU pointer")?;
                    let per_cpu = self.per_cpu_values(pptr, vlen, btf, &mut unread);
                    self.out
                        .percpu_hash_entries
                        .push(FailureDumpPercpuHashEntry {
                            key,
                            key_hex,
                            per_cpu,
                        });
                } else {
                    let value_bytes = k
                        .bytes(vaddr, vlen, "htab value")
                        .inspect_err(|e| unread.add(e))
                        .unwrap_or_default();
                    self.push_entry(key, key_hex, &value_bytes);
                }
            }
        }
        if unreadable > 0 {
            self.notes
                .push(format!("{unreadable} buckets or entries unreadable"));
        }
        unread.note(self.notes, "values", count);
        Ok(())
    }

    /// An entry of a hash or storage map, its value rendered from `value_bytes`.
    fn push_entry(&mut self, key: Option<RenderedValue>, key_hex: String, value_bytes: &[u8]) {
        let value = self.render(Some(self.info.btf), self.info.value_type_id, value_bytes);
        self.out.entries.push(FailureDumpEntry {
            key,
            key_hex,
            value: Some(value),
            value_hex: hex(value_bytes),
            payload: None,
        });
    }

    fn storage(&mut self) -> Result<()> {
        let (cx, info) = (self.cx, self.info);
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
        let vlen = self.value_len();
        let mut count = 0;
        let mut buckets_unread = Unread::default();
        let mut values_unread = Unread::default();
        let heads = BucketHeads::new(
            k,
            cx.c,
            Links::Hlist,
            buckets.checked_offset(s.bucket_list)?,
            s.bucket_size,
            1u64 << log,
        );
        'b: for head in heads {
            let head = head?;
            let w = match Links::Hlist
                .walk(k, cx.c, head, cx.caps.keys + 1, "storage bucket")
                .strict()
            {
                Ok(w) => w,
                Err(e) => {
                    buckets_unread.add(e);
                    continue;
                }
            };
            for node in w.nodes {
                if count >= cx.caps.keys {
                    self.notes
                        .push(dump_schema::reasons::hash_map_truncated(cx.caps.keys));
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
                self.push_entry(None, hex(&owner.to_le_bytes()), &value_bytes);
            }
        }
        buckets_unread.note(self.notes, "buckets", 1usize << log);
        values_unread.note(self.notes, "values", count);
        Ok(())
    }

    fn struct_ops(&mut self) -> Result<()> {
        let (cx, info) = (self.cx, self.info);
        let s = need(cx.o.struct_ops, "bpf_struct_ops_map")?;
        let vlen = self.value_len();
        let bytes = cx.k.bytes(
            info.kva.checked_offset(s.kvalue)?,
            vlen,
            "struct_ops kvalue",
        )?;
        // The value type (`bpf_struct_ops_<ops>`) is a kernel type.
        self.out.value = Some(self.render(None, info.vmlinux_value_type_id, &bytes));
        Ok(())
    }
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
