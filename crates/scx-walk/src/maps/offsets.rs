//! Offsets of `struct bpf_map` and of each map implementation (group `bpf_map`; the
//! per-kind groups are optional so one missing kind degrades only those maps).

use crate::error::Result;
use crate::kernel::KernelTypes;
use crate::offsets::resolve_group;
use btf_walk::OffsetGroup;

/// `struct bpf_map` members every map needs.
#[derive(Debug, Clone, Copy)]
pub struct MapOffsets {
    pub map_type: u64,
    pub key_size: u64,
    pub value_size: u64,
    pub max_entries: u64,
    pub map_flags: u64,
    pub name: u64,
    pub btf: u64,
    pub btf_key_type_id: u64,
    pub btf_value_type_id: u64,
    pub btf_vmlinux_value_type_id: u64,
    pub array: Option<ArrayOffsets>,
    pub htab: Option<HtabOffsets>,
    pub arena: Option<ArenaOffsets>,
    pub ringbuf: Option<RingbufOffsets>,
    pub stack: Option<StackOffsets>,
    pub struct_ops: Option<StructOpsOffsets>,
    pub storage: Option<StorageOffsets>,
}

#[derive(Debug, Clone, Copy)]
pub struct ArrayOffsets {
    pub elem_size: u64,
    pub value: u64,
    pub ptrs: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct HtabOffsets {
    pub buckets: u64,
    pub n_buckets: u64,
    pub bucket_size: u64,
    pub bucket_head: u64,
    pub elem_key: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ArenaOffsets {
    pub user_vm_start: u64,
    pub kern_vm: u64,
    pub vm_addr: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RingbufOffsets {
    pub rb: u64,
    pub mask: u64,
    pub consumer_pos: u64,
    pub producer_pos: u64,
    pub pending_pos: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct StackOffsets {
    pub n_buckets: u64,
    pub buckets: u64,
    pub nr: u64,
    pub data: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct StructOpsOffsets {
    pub kvalue: u64,
    pub links: u64,
    pub funcs_cnt: u64,
    pub link_prog: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct StorageOffsets {
    pub buckets: u64,
    pub bucket_log: u64,
    pub bucket_size: u64,
    pub bucket_list: u64,
    pub elem_map_node: u64,
    pub elem_local_storage: u64,
    pub elem_data: u64,
    pub owner: u64,
}

/// Resolves a sub-group; `None` when any of its members is missing.
fn sub<T>(
    t: &dyn KernelTypes,
    name: &'static str,
    f: impl FnOnce(&mut OffsetGroup<'_, dyn KernelTypes>) -> T,
) -> Option<T> {
    resolve_group(t, name, f).ok()
}

impl MapOffsets {
    pub fn resolve(t: &dyn KernelTypes) -> Result<MapOffsets> {
        resolve_group(t, "bpf_map", |r| {
            let m = |r: &mut OffsetGroup<'_, dyn KernelTypes>, p| r.off("bpf_map", p);
            MapOffsets {
                map_type: m(r, "map_type"),
                key_size: m(r, "key_size"),
                value_size: m(r, "value_size"),
                max_entries: m(r, "max_entries"),
                map_flags: m(r, "map_flags"),
                name: m(r, "name"),
                btf: m(r, "btf"),
                btf_key_type_id: m(r, "btf_key_type_id"),
                btf_value_type_id: m(r, "btf_value_type_id"),
                btf_vmlinux_value_type_id: m(r, "btf_vmlinux_value_type_id"),
                array: sub(t, "bpf_array", |r| ArrayOffsets {
                    elem_size: r.off("bpf_array", "elem_size"),
                    value: r.off("bpf_array", "value"),
                    ptrs: r.off("bpf_array", "ptrs"),
                }),
                htab: sub(t, "bpf_htab", |r| HtabOffsets {
                    buckets: r.off("bpf_htab", "buckets"),
                    n_buckets: r.off("bpf_htab", "n_buckets"),
                    bucket_size: r.size("bucket"),
                    bucket_head: r.off("bucket", "head"),
                    elem_key: r.off("htab_elem", "key"),
                }),
                arena: sub(t, "bpf_arena", |r| ArenaOffsets {
                    user_vm_start: r.off("bpf_arena", "user_vm_start"),
                    kern_vm: r.off("bpf_arena", "kern_vm"),
                    vm_addr: r.off("vm_struct", "addr"),
                }),
                ringbuf: sub(t, "bpf_ringbuf", |r| RingbufOffsets {
                    rb: r.off("bpf_ringbuf_map", "rb"),
                    mask: r.off("bpf_ringbuf", "mask"),
                    consumer_pos: r.off("bpf_ringbuf", "consumer_pos"),
                    producer_pos: r.off("bpf_ringbuf", "producer_pos"),
                    pending_pos: r.off("bpf_ringbuf", "pending_pos"),
                }),
                stack: sub(t, "bpf_stack_map", |r| StackOffsets {
                    n_buckets: r.off("bpf_stack_map", "n_buckets"),
                    buckets: r.off("bpf_stack_map", "buckets"),
                    nr: r.off("stack_map_bucket", "nr"),
                    data: r.off("stack_map_bucket", "data"),
                }),
                struct_ops: sub(t, "bpf_struct_ops_map", |r| StructOpsOffsets {
                    kvalue: r.off("bpf_struct_ops_map", "kvalue"),
                    links: r.off("bpf_struct_ops_map", "links"),
                    funcs_cnt: r.off("bpf_struct_ops_map", "funcs_cnt"),
                    link_prog: r.off("bpf_link", "prog"),
                }),
                storage: sub(t, "bpf_local_storage", |r| StorageOffsets {
                    buckets: r.off("bpf_local_storage_map", "buckets"),
                    bucket_log: r.off("bpf_local_storage_map", "bucket_log"),
                    bucket_size: r.size("bpf_local_storage_map_bucket"),
                    bucket_list: r.off("bpf_local_storage_map_bucket", "list"),
                    elem_map_node: r.off("bpf_local_storage_elem", "map_node"),
                    elem_local_storage: r.off("bpf_local_storage_elem", "local_storage"),
                    elem_data: r.off("bpf_local_storage_elem", "sdata.data"),
                    owner: r.off("bpf_local_storage", "owner"),
                }),
            }
        })
    }
}
