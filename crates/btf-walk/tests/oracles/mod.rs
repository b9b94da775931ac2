//! Tools nobody here wrote that read BTF too, each compared with our parser on the same
//! input: bpftool (libbpf's parser: every type) and pahole (dwarves: offsets and sizes).

use std::path::Path;

use btf_walk::Btf;

pub mod bpftool;
pub mod pahole;

/// A tool our parser is checked against: its name, where it comes from, and the
/// comparison (`check(label, our BTF, the file the tool reads)`).
pub struct Oracle {
    pub tool: &'static str,
    pub package: &'static str,
    pub check: fn(&str, &Btf, &Path),
}

pub const ORACLES: [Oracle; 2] = [
    Oracle {
        tool: "bpftool",
        package: "bookworm-backports package bpftool",
        check: bpftool::check,
    },
    Oracle {
        tool: "pahole",
        package: "Debian package dwarves",
        check: pahole::check,
    },
];

/// Compares `btf` (the tools read it from `file`) with every oracle installed here; the
/// others are skipped.
pub fn against_every_oracle(label: &str, btf: &Btf, file: &Path) {
    for o in &ORACLES {
        if crate::common::need_tool(o.tool, o.package).is_some() {
            (o.check)(label, btf, file);
        }
    }
}
