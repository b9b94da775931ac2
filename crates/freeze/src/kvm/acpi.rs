//! Minimal ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) so Linux finds every vCPU and the
//! I/O APIC. Kernels built without `CONFIG_X86_MPPARSE` (the Debian cloud kernel the guest
//! lab uses) ignore the MP table and boot with one CPU unless a MADT lists the others.
//!
//! The FADT declares hardware-reduced ACPI (no PM timer, SCI or legacy PIC: the kernel
//! uses the local APIC timer), and the DSDT is empty. The tables live at
//! [`ACPI_START`]..[`ACPI_END`], reserved in the e820 map; the RSDP is where a BIOS leaves
//! it (Linux scans 0xe0000..0x100000), and its address is also passed in the zero page and
//! the PVH start info.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error;
use super::layout::{APIC_START, IOAPIC_START};
use crate::EngineError;

/// Start of the ACPI area (the RSDP is first).
pub const ACPI_START: u64 = 0xe_0000;
/// End of the ACPI area.
pub const ACPI_END: u64 = 0xf_0000;

const OEM_ID: &[u8; 6] = b"KTSTR ";
const OEM_TABLE_ID: &[u8; 8] = b"KTSTRKVM";
const CREATOR_ID: &[u8; 4] = b"KTSR";
const FADT_LEN: usize = 276;
const FADT_FLAG_HW_REDUCED_ACPI: u32 = 1 << 20;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A system description table: the standard 36-byte header, then `body`; checksummed.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

fn madt(vcpus: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(APIC_START as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes()); // flags: no dual 8259
    for id in 0..vcpus as u8 {
        // Processor local APIC: type 0, length 8, UID, APIC ID, enabled.
        body.extend_from_slice(&[0, 8, id, id]);
        body.extend_from_slice(&1u32.to_le_bytes());
    }
    // I/O APIC: type 1, length 12, id, reserved, address, GSI base 0.
    body.extend_from_slice(&[1, 12, vcpus as u8, 0]);
    body.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    sdt(b"APIC", 4, &body)
}

fn fadt(dsdt: u64) -> Vec<u8> {
    let mut body = vec![0u8; FADT_LEN - 36];
    // Offsets below are from the start of the table; the body starts at 36.
    let mut put =
        |off: usize, bytes: &[u8]| body[off - 36..off - 36 + bytes.len()].copy_from_slice(bytes);
    put(40, &(dsdt as u32).to_le_bytes()); // DSDT
    put(112, &FADT_FLAG_HW_REDUCED_ACPI.to_le_bytes()); // Flags
    put(131, &[5]); // FADT minor version (ACPI 6.5)
    put(140, &dsdt.to_le_bytes()); // X_DSDT
    put(268, b"KVMKVMKV"); // hypervisor vendor identity
    sdt(b"FACP", 6, &body)
}

/// The RSDP and the tables it leads to, laid out from `base`.
pub fn build(vcpus: usize, base: u64) -> Result<Vec<u8>, EngineError> {
    if vcpus == 0 || vcpus > 254 {
        return Err(error::failed(
            "write ACPI tables",
            format!("{vcpus} vCPUs do not fit 8-bit APIC IDs"),
        ));
    }
    // RSDP (36 bytes, padded to 64), then DSDT, FADT, MADT, XSDT, each 16-byte aligned.
    let mut area = vec![0u8; 64];
    let place = |area: &mut Vec<u8>, table: Vec<u8>| {
        let at = area.len() as u64;
        area.extend_from_slice(&table);
        area.resize(area.len().next_multiple_of(16), 0);
        base + at
    };
    let dsdt = place(&mut area, sdt(b"DSDT", 2, &[]));
    let fadt = place(&mut area, fadt(dsdt));
    let madt = place(&mut area, madt(vcpus));
    let mut xsdt_body = Vec::new();
    xsdt_body.extend_from_slice(&fadt.to_le_bytes());
    xsdt_body.extend_from_slice(&madt.to_le_bytes());
    let xsdt = place(&mut area, sdt(b"XSDT", 1, &xsdt_body));

    let rsdp = &mut area[..36];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(OEM_ID);
    rsdp[15] = 2; // revision: ACPI 2.0+, XSDT
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&xsdt.to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(rsdp);
    if base + area.len() as u64 > ACPI_END {
        return Err(error::failed(
            "write ACPI tables",
            format!("{vcpus} vCPUs make the tables overflow the ACPI area"),
        ));
    }
    Ok(area)
}

/// Writes the tables at [`ACPI_START`]; returns the RSDP address.
pub fn write(mem: &GuestMemoryMmap, vcpus: usize) -> Result<u64, EngineError> {
    let area = build(vcpus, ACPI_START)?;
    mem.write_slice(&area, GuestAddress(ACPI_START))
        .map_err(|e| error::failed("write ACPI tables", e))?;
    Ok(ACPI_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn table_at(area: &[u8], addr: u64) -> &[u8] {
        let off = (addr - ACPI_START) as usize;
        let len = u32::from_le_bytes(area[off + 4..off + 8].try_into().unwrap()) as usize;
        &area[off..off + len]
    }

    #[test]
    fn tables_chain_and_checksum() {
        for vcpus in [1usize, 2, 8, 64] {
            let area = build(vcpus, ACPI_START).unwrap();
            assert_eq!(&area[..8], b"RSD PTR ");
            assert_eq!(sum(&area[..20]), 0);
            assert_eq!(sum(&area[..36]), 0);
            let xsdt_addr = u64::from_le_bytes(area[24..32].try_into().unwrap());
            let xsdt = table_at(&area, xsdt_addr);
            assert_eq!(&xsdt[..4], b"XSDT");
            assert_eq!(sum(xsdt), 0);
            let entries: Vec<u64> = xsdt[36..]
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let fadt = table_at(&area, entries[0]);
            assert_eq!(
                (&fadt[..4], fadt.len(), sum(fadt)),
                (&b"FACP"[..], FADT_LEN, 0)
            );
            let dsdt_addr = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
            let dsdt = table_at(&area, dsdt_addr);
            assert_eq!((&dsdt[..4], sum(dsdt)), (&b"DSDT"[..], 0));
            let madt = table_at(&area, entries[1]);
            assert_eq!((&madt[..4], sum(madt)), (&b"APIC"[..], 0));
            let lapics = madt[44..].chunks(8).take_while(|e| e[0] == 0).count();
            assert_eq!(lapics, vcpus);
        }
        assert!(build(255, ACPI_START).is_err());
    }
}
