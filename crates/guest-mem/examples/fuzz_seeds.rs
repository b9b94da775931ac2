//! Writes seed inputs for the fuzz targets (`crates/guest-mem/fuzz`) into a directory:
//! small vmcores from our writer (with and without notes) and page-table images.
//!
//! `cargo run -p guest-mem --example fuzz_seeds -- DIR`

use std::path::PathBuf;

use guest_mem::synth::{PageSize, SynthGuest};
use guest_mem::vmcore::writer::{VmcoreContents, write_vmcore};
use guest_mem::{CpuRegs, Gpa, Kva, PagingMode, PhysMem, VmcoreInfo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: fuzz_seeds DIR")?);
    std::fs::create_dir_all(dir.join("vmcore"))?;
    std::fs::create_dir_all(dir.join("page_walk"))?;
    let info = VmcoreInfo::parse(
        b"OSRELEASE=7.3.0\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff82a0e000\n\
          NUMBER(phys_base)=-16777216\nNUMBER(pgtable_l5_enabled)=1\nKERNELOFFSET=1000000\n\
          SYMBOL(kallsyms_names)=ffffffff82000100\nSYMBOL(kallsyms_num_syms)=ffffffff82000000\n\
          SYMBOL(kallsyms_token_table)=ffffffff82000400\nSYMBOL(kallsyms_token_index)=ffffffff82000800\n\
          SYMBOL(kallsyms_offsets)=ffffffff82000a00\n",
    )?;
    for (i, mode) in [PagingMode::Level4, PagingMode::Level5]
        .into_iter()
        .enumerate()
    {
        let mut g = SynthGuest::new(mode, 0x10000, 0x1000, 0xc000);
        g.map(Kva(0xffff_8880_0000_0000), Gpa(0), PageSize::Size4K);
        g.map(Kva(0xffff_ffff_8000_0000), Gpa(0), PageSize::Size2M);
        let mem = PhysMem::from_buffers(vec![(Gpa(0), g.ram.clone())])?;
        let cpus = [CpuRegs {
            cr3: g.root,
            cr4: if mode == PagingMode::Level5 {
                1 << 12
            } else {
                0
            },
            rip: 0xffff_ffff_8100_0000,
            ..Default::default()
        }];
        for (j, with) in [true, false].into_iter().enumerate() {
            let mut out = Vec::new();
            write_vmcore(
                &mut out,
                &mem,
                &VmcoreContents {
                    vmcoreinfo: with.then_some(&info),
                    cpus: &cpus,
                    page_offset: None,
                },
            )?;
            std::fs::write(dir.join(format!("vmcore/seed-{i}-{j}")), &out)?;
        }
        // page_walk input: root, kva, base, then RAM.
        let mut pw = Vec::new();
        pw.extend_from_slice(&g.root.to_le_bytes());
        pw.extend_from_slice(&0xffff_8880_0000_0123u64.to_le_bytes());
        pw.extend_from_slice(&0u64.to_le_bytes());
        pw.extend_from_slice(&g.ram);
        std::fs::write(dir.join(format!("page_walk/seed-{i}")), &pw)?;
    }
    Ok(())
}
