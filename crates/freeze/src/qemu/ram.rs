//! Mapping the guest RAM file QEMU shares with us (`memory-backend-file,share=on`).
//!
//! The backend file holds guest RAM contiguously; the `pc` machine places its first
//! part below 4 GiB at GPA 0 and the rest at 4 GiB. The split rule is QEMU's (pc_piix,
//! machine types since 2.x with gigabyte alignment): RAM of less than 3.5 GiB lies
//! entirely below 4 GiB; otherwise 3 GiB lie below and the rest starts at 4 GiB.

use std::fs::{File, OpenOptions};
use std::path::Path;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestRegionMmap};

use crate::{EngineError, GuestRam};

/// `pc`: RAM at or above this size is split at [`PC_LOWMEM_SPLIT`].
const PC_LOWMEM_LIMIT: u64 = 0xe000_0000;
/// `pc`: RAM below 4 GiB when split.
const PC_LOWMEM_SPLIT: u64 = 0xc000_0000;
const FOUR_GIB: u64 = 1 << 32;

/// One piece of guest RAM: `len` bytes at `gpa`, `file_offset` into the backend file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamRange {
    pub gpa: u64,
    pub file_offset: u64,
    pub len: u64,
}

/// Where `ram_size` bytes of a `pc` machine's RAM appear in guest-physical space.
pub fn pc_layout(ram_size: u64) -> Vec<RamRange> {
    if ram_size < PC_LOWMEM_LIMIT {
        return vec![RamRange {
            gpa: 0,
            file_offset: 0,
            len: ram_size,
        }];
    }
    vec![
        RamRange {
            gpa: 0,
            file_offset: 0,
            len: PC_LOWMEM_SPLIT,
        },
        RamRange {
            gpa: FOUR_GIB,
            file_offset: PC_LOWMEM_SPLIT,
            len: ram_size - PC_LOWMEM_SPLIT,
        },
    ]
}

/// Maps `path` (a RAM backend file of `ram_size` bytes) shared, laid out per `ranges`.
///
/// The mapping is `MAP_SHARED`, readable and writable: the host sees the guest's stores
/// as they happen (what the trigger watch needs), and a stray host write through the
/// `GuestMemory` API lands in guest RAM instead of faulting.
pub fn map_ram_file(path: &Path, ram_size: u64, ranges: &[RamRange]) -> Result<GuestRam, EngineError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| EngineError::Io {
            step: "open the guest RAM file",
            source,
        })?;
    let actual = file
        .metadata()
        .map_err(|source| EngineError::Io {
            step: "stat the guest RAM file",
            source,
        })?
        .len();
    if actual < ram_size {
        return Err(EngineError::Failed {
            step: "map guest RAM",
            detail: format!(
                "{} is {actual} bytes, the guest has {ram_size}",
                path.display()
            ),
        });
    }
    map_file(&file, ranges)
}

fn map_file(file: &File, ranges: &[RamRange]) -> Result<GuestRam, EngineError> {
    let mut regions = Vec::with_capacity(ranges.len());
    for r in ranges {
        let len = usize::try_from(r.len).map_err(|_| EngineError::Failed {
            step: "map guest RAM",
            detail: format!("range of {} bytes does not fit usize", r.len),
        })?;
        let fd = file.try_clone().map_err(|source| EngineError::Io {
            step: "dup the guest RAM file",
            source,
        })?;
        let mapping = MmapRegionBuilder::new(len)
            .with_file_offset(FileOffset::new(fd, r.file_offset))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| EngineError::Failed {
                step: "mmap guest RAM",
                detail: format!("{len} bytes at file offset {:#x}: {e}", r.file_offset),
            })?;
        let region =
            GuestRegionMmap::new(mapping, GuestAddress(r.gpa)).ok_or_else(|| EngineError::Failed {
                step: "map guest RAM",
                detail: format!("range at {:#x} overflows", r.gpa),
            })?;
        regions.push(region);
    }
    GuestRam::from_regions(regions).map_err(|e| EngineError::Failed {
        step: "map guest RAM",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vm_memory::{Bytes, GuestMemoryBackend};

    #[test]
    fn pc_split_rule() {
        assert_eq!(pc_layout(1 << 30).len(), 1);
        assert_eq!(pc_layout(0xdfff_f000).len(), 1);
        let two = pc_layout(4 << 30);
        assert_eq!(
            two,
            vec![
                RamRange {
                    gpa: 0,
                    file_offset: 0,
                    len: 0xc000_0000
                },
                RamRange {
                    gpa: 1 << 32,
                    file_offset: 0xc000_0000,
                    len: (4 << 30) - 0xc000_0000
                },
            ]
        );
    }

    #[test]
    fn maps_a_file_and_sees_later_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ram");
        let mut f = File::create(&path).unwrap();
        f.set_len(3 * 4096).unwrap();
        let ranges = [
            RamRange {
                gpa: 0,
                file_offset: 0,
                len: 4096,
            },
            RamRange {
                gpa: 0x10000,
                file_offset: 4096,
                len: 8192,
            },
        ];
        let ram = map_ram_file(&path, 3 * 4096, &ranges).unwrap();
        assert_eq!(ram.num_regions(), 2);
        // A write through the file after mapping is visible: the mapping is shared.
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(4096 + 8)).unwrap();
        f.write_all(&0x1122_3344_5566_7788u64.to_le_bytes()).unwrap();
        f.flush().unwrap();
        let v: u64 = ram.read_obj(GuestAddress(0x10008)).unwrap();
        assert_eq!(v, 0x1122_3344_5566_7788);
        // The hole between the ranges is not backed.
        assert!(ram.read_obj::<u64>(GuestAddress(0x2000)).is_err());
        // A file shorter than the guest is refused.
        assert!(map_ram_file(&path, 4 * 4096, &ranges).is_err());
    }
}
