//! Guest RAM shared with a running QEMU through a file (`memory-backend-file,share=on`),
//! mapped read-only as a `vm_memory::GuestMemoryMmap`.
//!
//! QEMU's pc and q35 machines put the first part of RAM at GPA 0 and the rest at
//! 4 GiB; the file holds RAM in that order. The mapping is `PROT_READ`/`MAP_SHARED`,
//! so the host sees the guest's writes as they happen and can never write back.
//! Writing through the returned `GuestMemoryMmap` faults: use it for reads only.

use std::fs::File;
use std::path::Path;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::Gpa;

/// A piece of a RAM file that appears at a guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamPart {
    /// Where the piece appears in the guest.
    pub gpa: Gpa,
    /// Where it starts in the file (page aligned).
    pub file_offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// QEMU x86 machine types, which split RAM around the PCI hole differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuMachine {
    /// `-machine pc` (i440fx), gigabyte-aligned split as in current machine versions.
    Pc,
    /// `-machine q35`.
    Q35,
}

impl QemuMachine {
    /// How much RAM QEMU puts below 4 GiB for `ram_size` bytes of RAM (no
    /// `max-ram-below-4g` override).
    pub fn below_4g(self, ram_size: u64) -> u64 {
        let lowmem = match self {
            QemuMachine::Pc => {
                if ram_size >= 0xe000_0000 {
                    0xc000_0000
                } else {
                    0xe000_0000
                }
            }
            QemuMachine::Q35 => {
                if ram_size >= 0xb000_0000 {
                    0x8000_0000
                } else {
                    0xb000_0000
                }
            }
        };
        ram_size.min(lowmem)
    }

    /// The layout of a RAM file of `ram_size` bytes on this machine.
    pub fn layout(self, ram_size: u64) -> Vec<RamPart> {
        split_layout(ram_size, self.below_4g(ram_size))
    }
}

/// RAM split at `below_4g`: `[0, below_4g)` at GPA 0, the rest at GPA 4 GiB.
pub fn split_layout(ram_size: u64, below_4g: u64) -> Vec<RamPart> {
    let low = ram_size.min(below_4g);
    let mut parts = vec![RamPart {
        gpa: Gpa(0),
        file_offset: 0,
        len: low,
    }];
    if ram_size > low {
        parts.push(RamPart {
            gpa: Gpa(1 << 32),
            file_offset: low,
            len: ram_size - low,
        });
    }
    parts.retain(|p| p.len > 0);
    parts
}

/// Why a RAM file could not be mapped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RamFileError {
    #[error("opening {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {file_len} bytes, the layout needs {needed}")]
    TooSmall {
        path: String,
        file_len: u64,
        needed: u64,
    },
    #[error("RAM part at {gpa} (file offset {file_offset:#x}) is not page aligned")]
    Unaligned { gpa: Gpa, file_offset: u64 },
    #[error("mapping {path}: {detail}")]
    Map { path: String, detail: String },
}

/// Maps `path` read-only and shared as guest RAM laid out by `parts`.
pub fn map_ram_file(path: &Path, parts: &[RamPart]) -> Result<GuestMemoryMmap, RamFileError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| RamFileError::Open {
        path: p.clone(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| RamFileError::Open {
            path: p.clone(),
            source,
        })?
        .len();
    let needed = parts
        .iter()
        .map(|r| r.file_offset.saturating_add(r.len))
        .max()
        .unwrap_or(0);
    if needed > file_len {
        return Err(RamFileError::TooSmall {
            path: p,
            file_len,
            needed,
        });
    }
    let mut regions = Vec::new();
    for part in parts.iter().filter(|r| r.len > 0) {
        if part.file_offset % 4096 != 0 || part.gpa.0 % 4096 != 0 {
            return Err(RamFileError::Unaligned {
                gpa: part.gpa,
                file_offset: part.file_offset,
            });
        }
        let f = file.try_clone().map_err(|source| RamFileError::Open {
            path: p.clone(),
            source,
        })?;
        let map = MmapRegion::<()>::build(
            Some(FileOffset::new(f, part.file_offset)),
            part.len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_NORESERVE,
        )
        .map_err(|e| RamFileError::Map {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        let region = GuestRegionMmap::new(map, GuestAddress(part.gpa.0)).ok_or_else(|| {
            RamFileError::Map {
                path: p.clone(),
                detail: format!("{} overflows", part.gpa),
            }
        })?;
        regions.push(region);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| RamFileError::Map {
        path: p,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PhysMem, PhysRead};
    use std::io::Write;

    #[test]
    fn q35_and_pc_splits() {
        assert_eq!(QemuMachine::Q35.below_4g(1 << 30), 1 << 30);
        assert_eq!(QemuMachine::Q35.below_4g(4 << 30), 0x8000_0000);
        assert_eq!(QemuMachine::Pc.below_4g(4 << 30), 0xc000_0000);
        let l = QemuMachine::Q35.layout(4 << 30);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].gpa, Gpa(1 << 32));
        assert_eq!(l[1].file_offset, 0x8000_0000);
        assert_eq!(l[1].len, (4 << 30) - 0x8000_0000);
    }

    #[test]
    fn maps_a_file_read_only_and_sees_later_writes() {
        let dir = std::env::temp_dir().join(format!("guestmem-ramfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ram");
        let mut f = File::create(&path).unwrap();
        let mut data = vec![0u8; 3 * 4096];
        data[4096 * 2 + 8] = 0xab;
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        let gm = map_ram_file(&path, &split_layout(3 * 4096, 2 * 4096)).unwrap();
        let m = PhysMem::from_guest_memory(&gm).unwrap();
        let mut b = [0u8; 1];
        m.read_phys(Gpa((1 << 32) + 8), &mut b).unwrap();
        assert_eq!(b[0], 0xab);
        assert!(m.read_phys(Gpa(2 * 4096), &mut b).is_err());
        // Another writer (QEMU in real use) changes the file: the mapping sees it.
        use std::os::unix::fs::FileExt;
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.write_all_at(&[0xcd], 4096 * 2 + 8).unwrap();
        m.read_phys(Gpa((1 << 32) + 8), &mut b).unwrap();
        assert_eq!(b[0], 0xcd);
        let e = map_ram_file(&path, &split_layout(8 * 4096, 2 * 4096)).unwrap_err();
        assert!(matches!(e, RamFileError::TooSmall { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
