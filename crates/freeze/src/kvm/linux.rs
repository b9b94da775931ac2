//! Loading a Linux kernel (bzImage, or ELF vmlinux with the 64-bit or the PVH entry), its
//! initramfs and command line, and writing the boot structures (zero page with the e820
//! map, or PVH start info), with linux-loader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{BzImage, Cmdline, Elf, KernelLoader, KernelLoaderResult, load_cmdline};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::error;
use super::layout::*;
use super::x86::{CpuMode, PageTables};
use super::{acpi, mptable};
use crate::{CpuRegs, EngineError};

/// Kernel image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelFormat {
    /// Decide from the file's magic numbers (ELF header, or `HdrS` at 0x202); an ELF kernel
    /// with a PVH entry note boots through PVH, one without through its 64-bit entry.
    #[default]
    Auto,
    /// bzImage, entered at its 64-bit entry point (load address + 0x200).
    BzImage,
    /// ELF vmlinux entered at its ELF entry point in 64-bit mode (64-bit boot protocol).
    Elf64,
    /// ELF vmlinux entered at its PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`) in 32-bit mode.
    ElfPvh,
}

/// What to boot.
#[derive(Debug, Clone, Default)]
pub struct LinuxBoot {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub format: KernelFormat,
}

/// Where and how vCPU 0 enters the kernel.
pub(crate) struct Entry {
    pub mode: CpuMode,
    pub regs: CpuRegs,
}

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT: u32 = 0x100_0000;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Default highest initramfs address for boot protocols that do not say (< 2.03).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
/// Largest kernel image or initramfs accepted (bounds the reads).
const MAX_IMAGE_BYTES: u64 = 2 << 30;

/// Guesses the format from the first bytes of the image.
pub(crate) fn detect_format(file: &mut File) -> Result<KernelFormat, EngineError> {
    let mut head = [0u8; 0x208];
    file.seek(SeekFrom::Start(0))
        .map_err(|e| error::io("read kernel image header", e))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(error::io("read kernel image header", e)),
        }
    }
    if n >= 4 && head[..4] == *b"\x7fELF" {
        return Ok(KernelFormat::Elf64);
    }
    if n >= 0x206 && head[0x202..0x206] == *b"HdrS" {
        return Ok(KernelFormat::BzImage);
    }
    Err(error::failed(
        "detect kernel image format",
        "neither an ELF file nor a bzImage (no HdrS signature at 0x202)",
    ))
}

/// The e820 map for this RAM size.
fn memory_map(mem: &GuestMemoryMmap) -> Vec<(u64, u64, u32)> {
    let mut map = vec![
        (0, EBDA_START, E820_RAM),
        (EBDA_START, EBDA_END - EBDA_START, E820_RESERVED),
        (
            acpi::ACPI_START,
            acpi::ACPI_END - acpi::ACPI_START,
            E820_RESERVED,
        ),
    ];
    for region in mem.iter() {
        use vm_memory::GuestMemoryRegion;
        let start = region.start_addr().0.max(HIGH_MEMORY_START);
        let end = region.start_addr().0 + region.len();
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

fn open(path: &std::path::Path, step: &'static str) -> Result<(File, u64), EngineError> {
    let file =
        File::open(path).map_err(|e| error::failed(step, format!("{}: {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| error::failed(step, format!("{}: {e}", path.display())))?
        .len();
    if len == 0 || len > MAX_IMAGE_BYTES {
        return Err(error::failed(
            step,
            format!("{}: size {len} bytes is out of range", path.display()),
        ));
    }
    Ok((file, len))
}

/// Loads everything into guest memory; returns vCPU 0's entry state.
pub(crate) fn load(
    mem: &GuestMemoryMmap,
    boot: &LinuxBoot,
    vcpus: usize,
) -> Result<Entry, EngineError> {
    let (mut kernel, _) = open(&boot.kernel, "open kernel image")?;
    let format = match boot.format {
        KernelFormat::Auto => detect_format(&mut kernel)?,
        f => f,
    };
    kernel
        .seek(SeekFrom::Start(0))
        .map_err(|e| error::io("rewind kernel image", e))?;
    let high = Some(GuestAddress(HIGH_MEMORY_START));
    let loaded: KernelLoaderResult = match format {
        KernelFormat::BzImage => BzImage::load(mem, None, &mut kernel, high)
            .map_err(|e| error::failed("load bzImage kernel", e))?,
        _ => Elf::load(mem, None, &mut kernel, high)
            .map_err(|e| error::failed("load ELF kernel", e))?,
    };

    // Command line, bounded by what the kernel says it accepts.
    let header_limit = loaded
        .setup_header
        .map(|h| h.cmdline_size as usize)
        .filter(|&n| n > 0)
        .unwrap_or(2048);
    let capacity = header_limit.min(CMDLINE_MAX_SIZE) + 1;
    let mut cmdline =
        Cmdline::new(capacity).map_err(|e| error::failed("build kernel command line", e))?;
    if !boot.cmdline.is_empty() {
        cmdline
            .insert_str(&boot.cmdline)
            .map_err(|e| error::failed("build kernel command line", e))?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline)
        .map_err(|e| error::failed("write kernel command line", e))?;
    let cmdline_len = cmdline
        .as_cstring()
        .map_err(|e| error::failed("build kernel command line", e))?
        .as_bytes()
        .len();

    // Initramfs: as high as allowed in low memory, page aligned, above the kernel.
    let initrd_max = loaded
        .setup_header
        .filter(|h| h.version >= 0x203)
        .map(|h| u64::from(h.initrd_addr_max))
        .unwrap_or(DEFAULT_INITRD_ADDR_MAX);
    let initrd = match &boot.initramfs {
        Some(path) => Some(load_initramfs(mem, path, initrd_max, loaded.kernel_end)?),
        None => None,
    };

    mptable::write(mem, vcpus)?;
    let rsdp = acpi::write(mem, vcpus)?;

    let pvh_entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => Some(addr.0),
        _ => None,
    };
    // An ELF kernel boots through PVH when it has the entry note, unless the 64-bit entry
    // was asked for explicitly.
    let pvh = match (boot.format, format, pvh_entry) {
        (KernelFormat::ElfPvh, _, None) => {
            return Err(error::failed(
                "boot with PVH",
                "the ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
            ));
        }
        (KernelFormat::ElfPvh | KernelFormat::Auto, KernelFormat::Elf64, Some(entry)) => {
            Some(entry)
        }
        (KernelFormat::ElfPvh, _, Some(entry)) => Some(entry),
        _ => None,
    };
    match pvh {
        Some(entry) => {
            write_pvh_info(mem, initrd, rsdp)?;
            Ok(Entry {
                mode: CpuMode::Protected32,
                regs: CpuRegs {
                    rip: entry,
                    rbx: PVH_INFO_START,
                    rflags: 2,
                    ..Default::default()
                },
            })
        }
        None => {
            write_zero_page(mem, &loaded, cmdline_len, initrd, rsdp)?;
            let rip = match format {
                // The 64-bit entry of a bzImage is 0x200 past the protected-mode code start.
                KernelFormat::BzImage => loaded.kernel_load.0 + 0x200,
                _ => loaded.kernel_load.0,
            };
            Ok(Entry {
                mode: CpuMode::Long(PageTables::Identity4G),
                regs: CpuRegs {
                    rip,
                    rsi: ZERO_PAGE_START,
                    rsp: BOOT_STACK_POINTER,
                    rbp: BOOT_STACK_POINTER,
                    rflags: 2,
                    ..Default::default()
                },
            })
        }
    }
}

fn load_initramfs(
    mem: &GuestMemoryMmap,
    path: &std::path::Path,
    initrd_max: u64,
    kernel_end: u64,
) -> Result<(u64, u64), EngineError> {
    let (mut file, len) = open(path, "open initramfs")?;
    let low_end = mem
        .iter()
        .map(|r| {
            use vm_memory::GuestMemoryRegion;
            r.start_addr().0 + r.len()
        })
        .filter(|&end| end <= MMIO_GAP_START)
        .max()
        .unwrap_or(0);
    let top = low_end.min(initrd_max.saturating_add(1));
    let addr = top.checked_sub(len).map(|a| a & !0xfff);
    let addr = match addr {
        Some(a) if a >= kernel_end.max(HIGH_MEMORY_START) => a,
        _ => {
            return Err(error::failed(
                "place initramfs",
                format!(
                    "{} ({len} bytes) does not fit between the kernel end {kernel_end:#x} and {top:#x}; give the VM more memory",
                    path.display()
                ),
            ));
        }
    };
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len as usize)
        .map_err(|e| error::failed("load initramfs", format!("{}: {e}", path.display())))?;
    Ok((addr, len))
}

fn write_zero_page(
    mem: &GuestMemoryMmap,
    loaded: &KernelLoaderResult,
    cmdline_len: usize,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), EngineError> {
    let mut params = boot_params {
        acpi_rsdp_addr: rsdp,
        ..Default::default()
    };
    if let Some(hdr) = loaded.setup_header {
        params.hdr = hdr;
    } else {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some((addr, len)) = initrd {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = len as u32;
    }
    let map = memory_map(mem);
    if map.len() > params.e820_table.len() {
        return Err(error::failed("write e820 map", "too many memory ranges"));
    }
    for (i, (addr, size, kind)) in map.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: *kind,
        };
    }
    params.e820_entries = map.len() as u8;
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )
    .map_err(|e| error::failed("write zero page", e))
}

fn write_pvh_info(
    mem: &GuestMemoryMmap,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), EngineError> {
    let map: Vec<hvm_memmap_table_entry> = memory_map(mem)
        .into_iter()
        .map(|(addr, size, kind)| hvm_memmap_table_entry {
            addr,
            size,
            type_: kind,
            reserved: 0,
        })
        .collect();
    let modules: Vec<hvm_modlist_entry> = initrd
        .into_iter()
        .map(|(paddr, size)| hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        })
        .collect();
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: rsdp,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: map.len() as u32,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            PVH_MODLIST_START
        },
        ..Default::default()
    };
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    params.set_sections(&map, GuestAddress(PVH_MEMMAP_START));
    if !modules.is_empty() {
        params.set_modules(&modules, GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| error::failed("write PVH start info", e))?;
    // The memory map must not run into the zero-page area.
    let end = PVH_MEMMAP_START + (map.len() * std::mem::size_of::<hvm_memmap_table_entry>()) as u64;
    if end > ZERO_PAGE_START {
        return Err(error::failed(
            "write PVH start info",
            "memory map too large",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_map_reserves_the_ebda_and_skips_the_hole() {
        let mem = super::super::layout::create_guest_ram(64 << 20).unwrap();
        let map = memory_map(&mem);
        assert_eq!(map[0], (0, EBDA_START, E820_RAM));
        assert_eq!(map[1].2, E820_RESERVED);
        assert_eq!(
            map[3],
            (HIGH_MEMORY_START, (64 << 20) - HIGH_MEMORY_START, E820_RAM)
        );
    }
}
