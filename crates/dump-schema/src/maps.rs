//! BPF map captures: [`FailureDumpMap`] and what it holds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RenderedValue;
use crate::wire::is_default;

/// One captured BPF map. Which of `value`, `entries`, `array_entries`, `percpu_entries`,
/// `percpu_hash_entries`, `arena`, `ringbuf`, `stack_trace`, `fd_array` is filled depends on
/// `map_type`; `error` says why the capture is partial or missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpMap {
    pub name: String,
    /// Kernel address of the `struct bpf_map`; 0 when unknown.
    #[serde(default, skip_serializing_if = "is_default")]
    pub map_kva: u64,
    /// Raw kernel `enum bpf_map_type` value (see [`crate::map_type`]).
    pub map_type: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Single-entry ARRAY (`.bss`, `.data`, `.rodata`) and STRUCT_OPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<RenderedValue>,
    /// HASH, LRU_HASH, *_STORAGE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<FailureDumpEntry>,
    /// ARRAY with more than one entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub array_entries: Vec<FailureDumpArrayEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_entries: Vec<FailureDumpPercpuEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_hash_entries: Vec<FailureDumpPercpuHashEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arena: Option<ArenaSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringbuf: Option<FailureDumpRingbuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<FailureDumpStackTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd_array: Option<FailureDumpFdArray>,
    /// Why the value is partial or missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One hash-like map entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RenderedValue>,
    /// The key bytes (see [`crate::hex`]).
    pub key_hex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<RenderedValue>,
    pub value_hex: String,
    /// The decoded arena allocation the value points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<RenderedValue>,
}

/// One element of a multi-entry ARRAY map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpArrayEntry {
    pub key: u32,
    /// Absent when the element was unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<RenderedValue>,
}

/// One key of a PERCPU_ARRAY map; `per_cpu[cpu]` is `None` where unreadable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpPercpuEntry {
    pub key: u32,
    pub per_cpu: Vec<Option<RenderedValue>>,
}

/// One key of a PERCPU_HASH / LRU_PERCPU_HASH map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpPercpuHashEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RenderedValue>,
    pub key_hex: String,
    pub per_cpu: Vec<Option<RenderedValue>>,
}

/// Positions of a BPF ring buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpRingbuf {
    pub capacity: u64,
    pub consumer_pos: u64,
    pub producer_pos: u64,
    pub pending_pos: u64,
    pub pending_bytes: u64,
}

/// A STACK_TRACE map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpStackTrace {
    pub n_buckets: u32,
    pub entries: Vec<FailureDumpStackTraceEntry>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub buckets_unreadable: u32,
}

/// One stack of a STACK_TRACE map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpStackTraceEntry {
    pub bucket_id: u32,
    pub nr: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcs: Vec<u64>,
    pub data_hex: String,
}

/// A PROG_ARRAY / *_OF_MAPS / other fd array: which slots are populated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FailureDumpFdArray {
    pub populated: u32,
    pub scanned: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indices: Vec<u32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub indices_truncated: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub unreadable: u32,
}

/// An ARENA map's captured pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArenaSnapshot {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<ArenaPage>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub truncated: bool,
    pub declared_pages: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub span_capped: bool,
    pub kern_vm_start: u64,
    pub user_vm_start: u64,
}

/// One arena page: its user address and bytes (a JSON array of numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArenaPage {
    pub user_addr: u64,
    pub bytes: Vec<u8>,
}

/// Raw `enum bpf_map_type` values and their names.
pub mod map_type {
    pub const UNSPEC: u32 = 0;
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const STACK_TRACE: u32 = 7;
    pub const CGROUP_ARRAY: u32 = 8;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const SOCKMAP: u32 = 15;
    pub const CPUMAP: u32 = 16;
    pub const XSKMAP: u32 = 17;
    pub const SOCKHASH: u32 = 18;
    pub const CGROUP_STORAGE: u32 = 19;
    pub const REUSEPORT_SOCKARRAY: u32 = 20;
    pub const PERCPU_CGROUP_STORAGE: u32 = 21;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const SK_STORAGE: u32 = 24;
    pub const DEVMAP_HASH: u32 = 25;
    pub const STRUCT_OPS: u32 = 26;
    pub const RINGBUF: u32 = 27;
    pub const INODE_STORAGE: u32 = 28;
    pub const TASK_STORAGE: u32 = 29;
    pub const BLOOM_FILTER: u32 = 30;
    pub const USER_RINGBUF: u32 = 31;
    pub const CGRP_STORAGE: u32 = 32;
    pub const ARENA: u32 = 33;

    const NAMES: &[&str] = &[
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    ];

    /// The kernel's name of a map type, lower case without `BPF_MAP_TYPE_`; `None` for a number
    /// this crate does not know.
    pub fn name(map_type: u32) -> Option<&'static str> {
        NAMES.get(map_type as usize).copied()
    }
}
