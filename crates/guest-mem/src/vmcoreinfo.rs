//! VMCOREINFO: the `KEY=VALUE` lines the kernel publishes for dump tools.
//!
//! Found in a vmcore's `VMCOREINFO` note, or — for live RAM or a vmcore written
//! without QEMU's vmcoreinfo device — by scanning guest-physical page starts for the
//! kernel's note buffer (`vmcoreinfo_note`, a page-aligned ELF note) or its text
//! buffer (`vmcoreinfo_data`, a page starting with `OSRELEASE=`).

use std::collections::BTreeMap;

use crate::phys::PhysMem;
use crate::{Gpa, PhysRead};

/// Longest VMCOREINFO text accepted (the kernel's buffer is one page; allow slack).
pub const MAX_VMCOREINFO_LEN: usize = 64 * 1024;
/// Most `KEY=VALUE` lines kept.
const MAX_ENTRIES: usize = 8192;

/// Parsed VMCOREINFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    entries: BTreeMap<String, String>,
    text: String,
}

/// Why VMCOREINFO text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VmcoreInfoError {
    #[error("VMCOREINFO is {0} bytes, more than the {MAX_VMCOREINFO_LEN} accepted")]
    TooLong(usize),
    #[error("VMCOREINFO has no OSRELEASE line (not VMCOREINFO text)")]
    NoOsRelease,
    #[error("VMCOREINFO is not text")]
    NotText,
}

fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let mag = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        v.parse::<u64>().ok()?
    };
    if neg {
        0i64.checked_sub_unsigned(mag)
    } else {
        Some(mag as i64)
    }
}

fn parse_hex(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v
        .strip_prefix("0x")
        .or_else(|| v.strip_prefix("0X"))
        .unwrap_or(v);
    u64::from_str_radix(v, 16).ok()
}

impl VmcoreInfo {
    /// Parses VMCOREINFO text (stops at the first NUL). Lines without `=` are
    /// ignored; a later duplicate key replaces an earlier one (the kernel appends
    /// `CRASHTIME` and friends at crash time).
    pub fn parse(bytes: &[u8]) -> Result<VmcoreInfo, VmcoreInfoError> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let bytes = &bytes[..end];
        if bytes.len() > MAX_VMCOREINFO_LEN {
            return Err(VmcoreInfoError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| VmcoreInfoError::NotText)?;
        let mut entries = BTreeMap::new();
        for line in text.lines().take(MAX_ENTRIES) {
            if let Some((k, v)) = line.split_once('=') {
                entries.insert(k.to_string(), v.to_string());
            }
        }
        if !entries.contains_key("OSRELEASE") {
            return Err(VmcoreInfoError::NoOsRelease);
        }
        Ok(VmcoreInfo {
            entries,
            text: text.to_string(),
        })
    }

    /// The raw text (what a vmcore writer puts back in its note).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of `key` as written (e.g. `get("SYMBOL(init_task)")`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `OSRELEASE`, e.g. `7.3.4+deb13-cloud-amd64`.
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `PAGESIZE` in bytes.
    pub fn page_size(&self) -> Option<u64> {
        self.get("PAGESIZE")
            .and_then(parse_int)
            .and_then(|v| u64::try_from(v).ok())
    }

    /// `KERNELOFFSET`: the KASLR shift of the kernel image (hex, no prefix).
    pub fn kernel_offset(&self) -> Option<u64> {
        self.get("KERNELOFFSET").and_then(parse_hex)
    }

    /// `NUMBER(phys_base)`; negative when the kernel runs below its link address.
    pub fn phys_base(&self) -> Option<i64> {
        self.number("phys_base")
    }

    /// `NUMBER(pgtable_l5_enabled)` as a bool.
    pub fn pgtable_l5_enabled(&self) -> Option<bool> {
        self.number("pgtable_l5_enabled").map(|v| v != 0)
    }

    /// `SYMBOL(name)`: a kernel virtual address (hex).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.get(&format!("SYMBOL({name})")).and_then(parse_hex)
    }

    /// `NUMBER(name)`: decimal, or hex with `0x`.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.get(&format!("NUMBER({name})")).and_then(parse_int)
    }

    /// `OFFSET(struct.member)`.
    pub fn offset(&self, struct_member: &str) -> Option<u64> {
        self.get(&format!("OFFSET({struct_member})"))
            .and_then(parse_int)
            .and_then(|v| u64::try_from(v).ok())
    }

    /// `SIZE(name)`.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.get(&format!("SIZE({name})"))
            .and_then(parse_int)
            .and_then(|v| u64::try_from(v).ok())
    }

    /// `LENGTH(name)`.
    pub fn length(&self, name: &str) -> Option<u64> {
        self.get(&format!("LENGTH({name})"))
            .and_then(parse_int)
            .and_then(|v| u64::try_from(v).ok())
    }
}

/// Where a scan found VMCOREINFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVmcoreInfo {
    /// Guest-physical address of the text.
    pub gpa: Gpa,
    /// Whether it was the kernel's ELF note (`true`) or its bare text buffer.
    pub from_note: bool,
    /// The parsed content.
    pub info: VmcoreInfo,
}

const NOTE_NAME: &[u8; 12] = b"VMCOREINFO\0\0";

/// The first VMCOREINFO in `mem` (lowest address): the kernel's ELF note or its
/// bare text buffer. Cost: one small read per 4 KiB page up to the hit, plus a page
/// for each candidate looked at.
pub fn scan_vmcoreinfo(mem: &PhysMem) -> Option<FoundVmcoreInfo> {
    VmcoreInfoScan::new(mem).next()
}

/// Up to `max` distinct VMCOREINFO candidates, by address. RAM can hold stale copies
/// (freed pages of an earlier kernel, a kexec'd one): callers try them in order until
/// one describes a kernel that decodes. Scans all of RAM unless `max` are found first.
pub fn scan_vmcoreinfo_all(mem: &PhysMem, max: usize) -> Vec<FoundVmcoreInfo> {
    let mut out: Vec<FoundVmcoreInfo> = Vec::new();
    for f in VmcoreInfoScan::new(mem) {
        if out.len() >= max {
            break;
        }
        if !out.iter().any(|o| o.info == f.info) {
            out.push(f);
        }
    }
    out
}

/// A lazy scan of page starts for VMCOREINFO (the kernel's note, or its text buffer),
/// in address order: stops as soon as the caller has what it needs.
pub struct VmcoreInfoScan<'a> {
    mem: &'a PhysMem,
    ranges: Vec<crate::phys::PhysRange>,
    range: usize,
    page: Option<u64>,
}

impl<'a> VmcoreInfoScan<'a> {
    /// A scan over all of `mem`.
    pub fn new(mem: &'a PhysMem) -> Self {
        let ranges = mem.ranges();
        let page = ranges
            .first()
            .and_then(|r| r.start.0.checked_next_multiple_of(4096));
        VmcoreInfoScan {
            mem,
            ranges,
            range: 0,
            page,
        }
    }
}

impl Iterator for VmcoreInfoScan<'_> {
    type Item = FoundVmcoreInfo;

    fn next(&mut self) -> Option<FoundVmcoreInfo> {
        // Ranges may sit anywhere in the 64-bit space (a vmcore says where): every
        // step is checked so a range at the very top ends the scan instead of wrapping.
        while let Some(r) = self.ranges.get(self.range).copied() {
            let Some(page) = self
                .page
                .filter(|p| p.checked_add(24).is_some_and(|e| e <= r.end()))
            else {
                self.range += 1;
                self.page = self
                    .ranges
                    .get(self.range)
                    .and_then(|r| r.start.0.checked_next_multiple_of(4096));
                continue;
            };
            self.page = page.checked_add(4096);
            let mut head = [0u8; 24];
            if self.mem.read_phys(Gpa(page), &mut head).is_err() {
                continue;
            }
            if let Some(found) = note_at(self.mem, page, &head) {
                return Some(found);
            }
            if head.starts_with(b"OSRELEASE=")
                && let Some(info) = text_at(self.mem, page, 4096)
            {
                return Some(FoundVmcoreInfo {
                    gpa: Gpa(page),
                    from_note: false,
                    info,
                });
            }
        }
        None
    }
}

fn note_at(mem: &PhysMem, page: u64, head: &[u8; 24]) -> Option<FoundVmcoreInfo> {
    let namesz = u32::from_le_bytes(head[0..4].try_into().ok()?);
    let descsz = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let ntype = u32::from_le_bytes(head[8..12].try_into().ok()?);
    if namesz != 11 || ntype != 0 || &head[12..24] != NOTE_NAME {
        return None;
    }
    if descsz == 0 || descsz > MAX_VMCOREINFO_LEN {
        return None;
    }
    let info = text_at(mem, page.checked_add(24)?, descsz)?;
    Some(FoundVmcoreInfo {
        gpa: Gpa(page + 24),
        from_note: true,
        info,
    })
}

fn text_at(mem: &PhysMem, gpa: u64, max: usize) -> Option<VmcoreInfo> {
    let mut buf = vec![0u8; max];
    // Near the end of RAM the full window may not exist; take what does.
    let mut len = max;
    while mem.read_phys(Gpa(gpa), &mut buf[..len]).is_err() {
        len /= 2;
        if len < 16 {
            return None;
        }
    }
    let info = VmcoreInfo::parse(&buf[..len]).ok()?;
    info.kernel_offset().or(info.symbol("init_top_pgt"))?;
    Some(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes VMCOREINFO text as the kernel's ELF note (header, padded name, text).
    pub(crate) fn encode_note(text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&11u32.to_le_bytes());
        v.extend_from_slice(&(text.len() as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(NOTE_NAME);
        v.extend_from_slice(text.as_bytes());
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    const SAMPLE: &str = "OSRELEASE=7.3.4+deb13-cloud-amd64\nBUILD-ID=abc\nPAGESIZE=4096\n\
SYMBOL(init_uts_ns)=ffffffffa5a1b6e0\nSYMBOL(_stext)=ffffffffa3a00000\nOFFSET(list_head.next)=0\n\
SIZE(list_head)=16\nLENGTH(node_data)=1024\nNUMBER(phys_base)=-299892736\n\
SYMBOL(init_top_pgt)=ffffffffa5c0e000\nNUMBER(pgtable_l5_enabled)=1\nNUMBER(KERNELPACMASK)=0xff00\n\
KERNELOFFSET=22800000\nCRASHTIME=1700000000\n";

    #[test]
    fn parses_every_kind_of_key() {
        let i = VmcoreInfo::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(i.osrelease(), Some("7.3.4+deb13-cloud-amd64"));
        assert_eq!(i.page_size(), Some(4096));
        assert_eq!(i.phys_base(), Some(-299892736));
        assert_eq!(i.pgtable_l5_enabled(), Some(true));
        assert_eq!(i.kernel_offset(), Some(0x22800000));
        assert_eq!(i.symbol("_stext"), Some(0xffffffffa3a00000));
        assert_eq!(i.offset("list_head.next"), Some(0));
        assert_eq!(i.size("list_head"), Some(16));
        assert_eq!(i.length("node_data"), Some(1024));
        assert_eq!(i.number("KERNELPACMASK"), Some(0xff00));
        assert_eq!(i.symbol("nope"), None);
        assert_eq!(i.text(), SAMPLE);
    }

    #[test]
    fn rejects_non_vmcoreinfo() {
        assert_eq!(
            VmcoreInfo::parse(b"hello=1\n"),
            Err(VmcoreInfoError::NoOsRelease)
        );
        assert_eq!(
            VmcoreInfo::parse(&[0xff, 0xfe, b'=']),
            Err(VmcoreInfoError::NotText)
        );
        assert!(VmcoreInfo::parse(&vec![b'a'; MAX_VMCOREINFO_LEN + 1]).is_err());
        // Text after a NUL is not part of it.
        let mut b = SAMPLE.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(b"EVIL=1\n");
        assert_eq!(VmcoreInfo::parse(&b).unwrap().get("EVIL"), None);
    }

    #[test]
    fn scan_finds_notes_and_texts_in_address_order() {
        let mut ram = vec![0u8; 64 * 4096];
        // A decoy string inside a page (not at a page start) is ignored.
        ram[100..100 + 10].copy_from_slice(b"VMCOREINFO");
        let text = SAMPLE.replace("7.3.4", "9.9.9");
        ram[5 * 4096..5 * 4096 + text.len()].copy_from_slice(text.as_bytes());
        let note = encode_note(SAMPLE);
        ram[40 * 4096..40 * 4096 + note.len()].copy_from_slice(&note);
        let mem = PhysMem::from_buffers(vec![(Gpa(0x100000), ram.clone())]).unwrap();
        let all = scan_vmcoreinfo_all(&mem, 8);
        assert_eq!(all.len(), 2);
        assert!(!all[0].from_note);
        assert_eq!(all[0].info.osrelease(), Some("9.9.9+deb13-cloud-amd64"));
        let f = &all[1];
        assert!(f.from_note);
        assert_eq!(f.gpa, Gpa(0x100000 + 40 * 4096 + 24));
        assert_eq!(f.info.osrelease(), Some("7.3.4+deb13-cloud-amd64"));
        assert_eq!(scan_vmcoreinfo(&mem).unwrap(), all[0]);
        assert_eq!(scan_vmcoreinfo_all(&mem, 1).len(), 1);

        ram[40 * 4096..40 * 4096 + note.len()].fill(0);
        let mem = PhysMem::from_buffers(vec![(Gpa(0), ram)]).unwrap();
        let f = scan_vmcoreinfo(&mem).unwrap();
        assert!(!f.from_note);
        assert_eq!(f.info.osrelease(), Some("9.9.9+deb13-cloud-amd64"));

        let empty = PhysMem::from_buffers(vec![(Gpa(0), vec![0u8; 8192])]).unwrap();
        assert_eq!(scan_vmcoreinfo(&empty), None);
    }
}
