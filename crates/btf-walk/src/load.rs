//! Loading BTF: raw BTF, the `.BTF` section of an ELF, a compressed kernel image (bzImage),
//! compressed files, guest memory, and split BTF on top of a base.

use std::io::Read;
use std::path::Path;

use guest_mem::{Kva, KvaRead};

use crate::btf::Btf;
use crate::error::{BtfError, Result};
use crate::table::{Strings, Types};

/// Largest BTF accepted (vmlinux BTF is about 5–6 MB; a BPF object's far less).
pub const MAX_BTF_BYTES: u64 = 256 << 20;
/// Largest decompressed kernel image accepted (a 7.x vmlinux ELF is about 62 MB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 1 << 30;
/// Largest input file read whole.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

const BTF_MAGIC_LE: [u8; 2] = [0x9f, 0xeb];
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What a byte buffer holds, judged by its magic numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// Raw BTF (`/sys/kernel/btf/vmlinux`, `bpftool btf dump … format raw` input).
    RawBtf,
    /// An ELF file (vmlinux) with a `.BTF` section.
    Elf,
    /// An x86 boot image (bzImage) with a compressed payload.
    BzImage,
    Gzip,
    Xz,
    Zstd,
}

impl InputFormat {
    /// Detects the format of `bytes`, or `None` when it is none of the supported ones.
    pub fn detect(bytes: &[u8]) -> Option<InputFormat> {
        if bytes.starts_with(&BTF_MAGIC_LE) {
            Some(InputFormat::RawBtf)
        } else if bytes.starts_with(&ELF_MAGIC) {
            Some(InputFormat::Elf)
        } else if bytes.get(0x202..0x206) == Some(b"HdrS") {
            Some(InputFormat::BzImage)
        } else if bytes.starts_with(&GZIP_MAGIC) {
            Some(InputFormat::Gzip)
        } else if bytes.starts_with(&XZ_MAGIC) {
            Some(InputFormat::Xz)
        } else if bytes.starts_with(&ZSTD_MAGIC) {
            Some(InputFormat::Zstd)
        } else {
            None
        }
    }
}

impl Btf {
    /// Parses raw BTF (a base: vmlinux, or a standalone BPF object's BTF).
    pub fn from_raw(bytes: &[u8]) -> Result<Btf> {
        check_raw(bytes)?;
        Btf::parse_base(bytes)
    }

    /// Parses raw split BTF whose ids and strings continue those of `self` (a module's
    /// BTF, or a BPF object's BTF loaded with vmlinux as its base).
    ///
    /// `self` must be a base, not itself split.
    pub fn split_from_raw(&self, bytes: &[u8]) -> Result<Btf> {
        check_raw(bytes)?;
        if self.inner.base.is_some() {
            return Err(BtfError::Format {
                what: "split BTF",
                detail: "the base is itself split; nesting is not supported".into(),
            });
        }
        self.parse_split(bytes)
    }

    /// Loads BTF from any supported container, detected by magic number: raw BTF, an ELF
    /// with `.BTF`, a bzImage, or a gzip/xz/zstd-compressed one of these.
    pub fn from_bytes(bytes: &[u8]) -> Result<Btf> {
        Btf::from_bytes_depth(bytes, 0)
    }

    fn from_bytes_depth(bytes: &[u8], depth: u32) -> Result<Btf> {
        // A kernel image is at most: compressed file → bzImage → compressed payload → ELF.
        if depth > 3 {
            return Err(BtfError::NotFound {
                what: "input",
                detail: "containers nested too deeply".into(),
            });
        }
        match InputFormat::detect(bytes) {
            Some(InputFormat::RawBtf) => Btf::from_raw(bytes),
            Some(InputFormat::Elf) => Btf::from_raw(elf_btf_section(bytes)?),
            Some(InputFormat::BzImage) => {
                Btf::from_bytes_depth(&decompress(bzimage_payload(bytes)?)?, depth + 1)
            }
            Some(InputFormat::Gzip | InputFormat::Xz | InputFormat::Zstd) => {
                Btf::from_bytes_depth(&decompress(bytes)?, depth + 1)
            }
            None => Err(BtfError::Format {
                what: "input",
                detail: format!(
                    "not raw BTF, ELF, bzImage, gzip, xz or zstd (starts with {})",
                    hex_prefix(bytes)
                ),
            }),
        }
    }

    /// Loads BTF from a file of any format [`Btf::from_bytes`] accepts, e.g.
    /// `/sys/kernel/btf/vmlinux`, a `vmlinux` ELF or a `vmlinuz`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Btf> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Btf::from_bytes(&bytes).map_err(|e| match e {
            BtfError::Format { what, detail } => BtfError::Format {
                what,
                detail: format!("{}: {detail}", path.display()),
            },
            BtfError::NotFound { what, detail } => BtfError::NotFound {
                what,
                detail: format!("{}: {detail}", path.display()),
            },
            e => e,
        })
    }

    /// Loads the kernel's BTF from guest memory: the bytes between the symbols
    /// `__start_BTF` and `__stop_BTF` (found through guest-mem's symbol table).
    pub fn from_guest(mem: &dyn KvaRead, start: Kva, stop: Kva) -> Result<Btf> {
        let len = stop
            .0
            .checked_sub(start.0)
            .ok_or_else(|| BtfError::Format {
                what: "guest BTF range",
                detail: format!("__stop_BTF {stop} is below __start_BTF {start}"),
            })?;
        // The sections are taken separately: the string section is kept as read or
        // borrowed (no copy of 2.5 MB) and the type section is dropped after parsing.
        let what = "kernel BTF (__start_BTF)";
        at_most(what, len, MAX_BTF_BYTES)?;
        let hdr = read_guest(mem, start, len.min(24), what)?;
        let s = check_header(&hdr, len)?;
        // A kernel's BTF describes thousands of types; an empty type section is a
        // damaged header, and every walker would then fail on "missing offsets".
        if s.type_len == 0 {
            return Err(BtfError::Format {
                what: "kernel BTF header",
                detail: "type section length 0: no types (damaged?)".into(),
            });
        }
        let at = |off: u64| {
            start
                .checked_offset(s.hdr_len + off)
                .map_err(|_| BtfError::Format {
                    what: "guest BTF range",
                    detail: format!("section at {start} + {} overflows", s.hdr_len + off),
                })
        };
        let (types_at, strings_at) = (at(s.type_off)?, at(s.str_off)?);
        // From a vmcore, both sections are borrowed from its mapping (no copy of 5 MB
        // into fresh pages); from a live guest, or when not contiguous, they are read.
        let read_types;
        let types = match mem.stable_bytes(types_at, s.type_len) {
            Some(b) => Types::Guest(b),
            None => {
                read_types = read_guest(mem, types_at, s.type_len, what)?;
                Types::Slice(&read_types)
            }
        };
        let strings = match mem.stable_bytes(strings_at, s.str_len) {
            Some(b) => Strings::Guest(b),
            None => Strings::Owned(read_guest(mem, strings_at, s.str_len, what)?.into()),
        };
        if strings.bytes().last().is_some_and(|&b| b != 0) {
            return Err(BtfError::Format {
                what: "BTF header",
                detail: "string section does not end with NUL".into(),
            });
        }
        Btf::base_from_sections(types, strings)
    }
}

/// Reads `len` bytes of guest memory at `kva` into a new buffer, refusing more than
/// [`MAX_BTF_BYTES`]. Reads page by page so that an error names the failing page.
pub(crate) fn read_guest(
    mem: &dyn KvaRead,
    kva: Kva,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    at_most(what, len, MAX_BTF_BYTES)?;
    let mut buf = vec![0u8; len as usize];
    const CHUNK: usize = 1 << 16;
    let mut off = 0usize;
    while off < buf.len() {
        let n = CHUNK.min(buf.len() - off);
        let at = kva.checked_offset(off as u64).map_err(|e| BtfError::Mem {
            what,
            kva,
            source: e.into(),
        })?;
        mem.read_kva(at, &mut buf[off..off + n])
            .map_err(|source| BtfError::Mem {
                what,
                kva: at,
                source,
            })?;
        off += n;
    }
    Ok(buf)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io = |source| BtfError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // `/sys/kernel/btf/vmlinux` reports a size but `take` protects against devices and
    // huge files either way.
    f.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    at_most("input file", bytes.len() as u64, MAX_INPUT_BYTES)?;
    Ok(bytes)
}

/// Where a BTF blob's sections are, from its checked header.
struct Sections {
    hdr_len: u64,
    type_off: u64,
    type_len: u64,
    str_off: u64,
    str_len: u64,
}

/// Checks the BTF header before the types are parsed, so that errors are specific and no
/// section offset points outside the buffer.
fn check_raw(bytes: &[u8]) -> Result<()> {
    let s = check_header(bytes, bytes.len() as u64)?;
    if s.str_len > 0 && bytes[(s.hdr_len + s.str_off + s.str_len - 1) as usize] != 0 {
        return Err(BtfError::Format {
            what: "BTF header",
            detail: "string section does not end with NUL".into(),
        });
    }
    Ok(())
}

/// Checks the header at the start of `bytes` of a BTF blob of `total` bytes: size cap,
/// magic, version, and every section inside the blob.
fn check_header(bytes: &[u8], total: u64) -> Result<Sections> {
    let bad = |detail: String| BtfError::Format {
        what: "BTF header",
        detail,
    };
    at_most("BTF", total, MAX_BTF_BYTES)?;
    if total < 24 || bytes.len() < 24 {
        return Err(bad(format!(
            "{total} bytes, shorter than the 24-byte header"
        )));
    }
    if bytes[..2] != BTF_MAGIC_LE {
        return Err(bad(format!(
            "magic {:02x}{:02x} is not little-endian BTF (eb9f)",
            bytes[1], bytes[0]
        )));
    }
    if bytes[2] != 1 {
        return Err(bad(format!("version {} (only 1 is defined)", bytes[2])));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as u64;
    let s = Sections {
        hdr_len: u32_at(4),
        type_off: u32_at(8),
        type_len: u32_at(12),
        str_off: u32_at(16),
        str_len: u32_at(20),
    };
    if s.hdr_len < 24 || s.hdr_len > total {
        return Err(bad(format!("header length {}", s.hdr_len)));
    }
    if s.hdr_len + s.type_off + s.type_len > total {
        return Err(bad(format!(
            "type section {}+{} runs past the end ({total} bytes): truncated?",
            s.type_off, s.type_len
        )));
    }
    if s.hdr_len + s.str_off + s.str_len > total {
        return Err(bad(format!(
            "string section {}+{} runs past the end ({total} bytes): truncated?",
            s.str_off, s.str_len
        )));
    }
    if !s.type_len.is_multiple_of(4) {
        return Err(bad(format!(
            "type section length {} is not a multiple of 4",
            s.type_len
        )));
    }
    Ok(s)
}

/// The contents of the `.BTF` section of an ELF file.
pub fn elf_btf_section(bytes: &[u8]) -> Result<&[u8]> {
    use elf::ElfBytes;
    use elf::endian::AnyEndian;
    let bad = |e: elf::ParseError| BtfError::Format {
        what: "ELF",
        detail: e.to_string(),
    };
    let file = ElfBytes::<AnyEndian>::minimal_parse(bytes).map_err(bad)?;
    let shdr = file
        .section_header_by_name(".BTF")
        .map_err(bad)?
        .ok_or_else(|| BtfError::NotFound {
            what: "ELF",
            detail: "no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF?)".into(),
        })?;
    let (data, compression) = file.section_data(&shdr).map_err(bad)?;
    if compression.is_some() {
        return Err(BtfError::Format {
            what: "ELF",
            detail: ".BTF section is compressed (SHF_COMPRESSED), not supported".into(),
        });
    }
    Ok(data)
}

/// The compressed payload of an x86 bzImage (boot protocol ≥ 2.08).
pub fn bzimage_payload(bytes: &[u8]) -> Result<&[u8]> {
    let bad = |detail: String| BtfError::Format {
        what: "bzImage",
        detail,
    };
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
    };
    if bytes.get(0x202..0x206) != Some(b"HdrS") {
        return Err(bad("no HdrS boot header signature".into()));
    }
    let version = u16_at(0x206).ok_or_else(|| bad("header truncated".into()))?;
    if version < 0x208 {
        return Err(bad(format!(
            "boot protocol {version:#x} has no payload fields (< 2.08)"
        )));
    }
    let setup_sects = match bytes[0x1f1] {
        0 => 4,
        n => n as u64,
    };
    let payload_offset = u32_at(0x248).ok_or_else(|| bad("header truncated".into()))?;
    let payload_length = u32_at(0x24c).ok_or_else(|| bad("header truncated".into()))?;
    let start = (setup_sects + 1) * 512 + payload_offset;
    let end = start + payload_length;
    bytes.get(start as usize..end as usize).ok_or_else(|| {
        bad(format!(
            "payload {start}..{end} outside the {}-byte image",
            bytes.len()
        ))
    })
}

/// Decompresses a gzip, xz or zstd buffer (one stream/frame; data after it is ignored, as
/// the kernel's payload ends with its size), capped at [`MAX_DECOMPRESSED_BYTES`].
pub fn decompress(bytes: &[u8]) -> Result<Vec<u8>> {
    let fmt = InputFormat::detect(bytes);
    let err = |what: &'static str, e: String| BtfError::Format { what, detail: e };
    let mut out = Vec::new();
    let res = match fmt {
        Some(InputFormat::Gzip) => flate2::read::GzDecoder::new(bytes)
            .take(MAX_DECOMPRESSED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| err("gzip", e.to_string())),
        Some(InputFormat::Xz) => {
            // 256 MiB of decoder memory: the kernel's xz uses a dictionary of at most 32 MiB.
            lzma_rust2::XzReader::new_mem_limit(bytes, false, 256 * 1024)
                .take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| err("xz", e.to_string()))
        }
        Some(InputFormat::Zstd) => {
            let dec = ruzstd::decoding::StreamingDecoder::new(bytes)
                .map_err(|e| err("zstd", e.to_string()))?;
            dec.take(MAX_DECOMPRESSED_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| err("zstd", e.to_string()))
        }
        _ => {
            return Err(BtfError::Format {
                what: "compressed payload",
                detail: format!(
                    "not gzip, xz or zstd (starts with {}); lzma, bzip2, lz4 and lzo kernels are not supported",
                    hex_prefix(bytes)
                ),
            });
        }
    };
    res?;
    at_most(
        "decompressed image",
        out.len() as u64,
        MAX_DECOMPRESSED_BYTES,
    )?;
    Ok(out)
}

fn hex_prefix(bytes: &[u8]) -> String {
    let mut s: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if s.is_empty() {
        s.push("nothing: empty input".into());
    }
    s.join(" ")
}

/// `value` (a size in bytes of `what`) within `limit`, else [`BtfError::TooLarge`].
fn at_most(what: &'static str, value: u64, limit: u64) -> Result<()> {
    if value > limit {
        return Err(BtfError::TooLarge { what, value, limit });
    }
    Ok(())
}
