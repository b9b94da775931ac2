//! Our BTF parser against tools nobody here wrote ([`oracles`]), on the host's
//! `/sys/kernel/btf/vmlinux` and on the 7.3 sched_ext guest kernel's BTF:
//! - bpftool (`bpftool btf dump … format raw`, libbpf's parser): every type's id, kind,
//!   name and size, struct/union members (type, bit offset, bitfield width), enumerators,
//!   array lengths and reference targets;
//! - pahole (dwarves): the absolute offsets, sizes and bitfield widths of the members of
//!   the structs the walkers read, resolved through anonymous members as C does.

mod common;
mod oracles;

use btf_walk::Btf;

#[test]
fn host_btf_matches_bpftool_and_pahole() {
    let Some(path) = common::need_host_btf() else {
        return;
    };
    oracles::against_every_oracle("host", &Btf::from_file(&path).unwrap(), &path);
}

#[test]
fn guest_btf_matches_bpftool_and_pahole() {
    let Some(g) = common::guest_vmlinux() else {
        return;
    };
    // We load from the compressed image; the tools read the ELF's .BTF themselves.
    let btf = Btf::from_file(&g.vmlinuz).unwrap();
    assert!(
        btf.struct_by_name("scx_sched").is_ok(),
        "guest kernel BTF has sched_ext"
    );
    oracles::against_every_oracle("guest 7.3", &btf, &g.elf);
}
