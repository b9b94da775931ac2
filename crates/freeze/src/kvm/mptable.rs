//! The Intel MultiProcessor table (spec 1.4), so Linux finds every vCPU and the I/O APIC
//! without ACPI. Written in the EBDA (reserved in the e820 map).

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error;
use super::layout::{APIC_START, EBDA_END, EBDA_START, IOAPIC_START};
use crate::EngineError;

const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const PROCESSOR_LEN: usize = 20;
const SMALL_ENTRY_LEN: usize = 8;
/// ISA IRQs routed through the I/O APIC (identity: IRQ n → pin n, as KVM's default routing).
const ISA_IRQS: u8 = 16;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The table bytes for `vcpus` processors, to be placed at `base`.
pub fn build(vcpus: usize, base: u64) -> Result<Vec<u8>, EngineError> {
    if vcpus == 0 || vcpus > 254 {
        return Err(error::failed(
            "write MP table",
            format!("{vcpus} vCPUs do not fit 8-bit APIC IDs"),
        ));
    }
    let ioapic_id = vcpus as u8;
    let mut entries = Vec::new();
    let mut count: u16 = 0;
    for id in 0..vcpus as u8 {
        let mut e = [0u8; PROCESSOR_LEN];
        e[0] = 0; // processor
        e[1] = id; // local APIC id
        e[2] = 0x14; // local APIC version
        e[3] = 0x1 | if id == 0 { 0x2 } else { 0 }; // enabled, bootstrap processor
        e[4..8].copy_from_slice(&0x600u32.to_le_bytes()); // CPU signature: family 6
        e[8..12].copy_from_slice(&0x201u32.to_le_bytes()); // features: FPU, APIC
        entries.extend_from_slice(&e);
        count += 1;
    }
    // Bus 0: ISA.
    entries.extend_from_slice(&[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
    count += 1;
    // The I/O APIC: version 0x11, enabled.
    let mut ioapic = [2u8, ioapic_id, 0x11, 1, 0, 0, 0, 0];
    ioapic[4..8].copy_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    entries.extend_from_slice(&ioapic);
    count += 1;
    for irq in 0..ISA_IRQS {
        // I/O interrupt assignment: INT, default polarity and trigger, ISA bus.
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // Local interrupts of every local APIC (0xff): LINT0 ExtINT, LINT1 NMI.
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;
    debug_assert_eq!(
        entries.len(),
        vcpus * PROCESSOR_LEN + (4 + usize::from(ISA_IRQS)) * SMALL_ENTRY_LEN
    );

    let table_len = HEADER_LEN + entries.len();
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(b"PCMP");
    header[4..6].copy_from_slice(&(table_len as u16).to_le_bytes());
    header[6] = 4; // spec revision 1.4
    header[8..16].copy_from_slice(b"KTSTRDMP");
    header[16..28].copy_from_slice(b"KVM ENGINE  ");
    header[34..36].copy_from_slice(&count.to_le_bytes());
    header[36..40].copy_from_slice(&(APIC_START as u32).to_le_bytes());
    let mut table = Vec::with_capacity(FLOATING_LEN + table_len);
    // Floating pointer first, the configuration table right after it.
    let mut floating = [0u8; FLOATING_LEN];
    floating[0..4].copy_from_slice(b"_MP_");
    floating[4..8].copy_from_slice(&((base + FLOATING_LEN as u64) as u32).to_le_bytes());
    floating[8] = 1; // length in 16-byte units
    floating[9] = 4; // spec revision 1.4
    floating[10] = checksum(&floating);
    table.extend_from_slice(&floating);
    let mut config = header.to_vec();
    config.extend_from_slice(&entries);
    config[7] = checksum(&config);
    table.extend_from_slice(&config);
    if base + table.len() as u64 > EBDA_END {
        return Err(error::failed(
            "write MP table",
            format!("{vcpus} vCPUs make the table overflow the EBDA"),
        ));
    }
    Ok(table)
}

/// Writes the MP table at the start of the EBDA.
pub fn write(mem: &GuestMemoryMmap, vcpus: usize) -> Result<(), EngineError> {
    let table = build(vcpus, EBDA_START)?;
    mem.write_slice(&table, GuestAddress(EBDA_START))
        .map_err(|e| error::failed("write MP table", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_checksums_and_counts() {
        for vcpus in [1usize, 2, 4, 8, 32] {
            let t = build(vcpus, EBDA_START).unwrap();
            assert_eq!(&t[0..4], b"_MP_");
            assert_eq!(t[..16].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let cfg = &t[16..];
            assert_eq!(&cfg[0..4], b"PCMP");
            let len = u16::from_le_bytes([cfg[4], cfg[5]]) as usize;
            assert_eq!(len, cfg.len());
            assert_eq!(cfg.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
            let count = u16::from_le_bytes([cfg[34], cfg[35]]) as usize;
            assert_eq!(count, vcpus + 2 + 16 + 2);
            // Exactly one bootstrap processor, APIC ids 0..n.
            let procs: Vec<_> = (0..vcpus)
                .map(|i| &cfg[HEADER_LEN + i * PROCESSOR_LEN..][..PROCESSOR_LEN])
                .collect();
            assert!(
                procs
                    .iter()
                    .enumerate()
                    .all(|(i, p)| p[0] == 0 && p[1] == i as u8)
            );
            assert_eq!(procs.iter().filter(|p| p[3] & 2 != 0).count(), 1);
        }
        assert!(build(255, EBDA_START).is_err());
    }
}
