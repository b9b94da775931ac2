//! Reading the caller's files: only regular files where a file is expected (a FIFO would
//! block, a device never ends), and every read bounded by a documented limit, checked
//! from the file's size before anything is read.

use std::io::Read;
use std::path::Path;

use crate::Error;

/// Largest JSON report `render`/`validate` read (a real scheduler's dual dump is tens of
/// MB; this leaves a wide margin and keeps a mistaken input from exhausting memory).
pub const MAX_REPORT_BYTES: u64 = 1 << 30;
/// Largest System.map read (a kernel's is a few MB).
pub const MAX_SYSTEM_MAP_BYTES: u64 = 256 << 20;
/// Largest BTF source (raw BTF, an ELF vmlinux with debug info, or a bzImage).
pub const MAX_BTF_FILE_BYTES: u64 = 4 << 30;

/// Checks that `path` is a regular file (following links) and returns its size.
pub fn regular_file(path: &Path) -> Result<u64, Error> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            kind: guest_mem::vmcore::file_kind(&meta),
        });
    }
    Ok(meta.len())
}

/// Checks `path` with [`regular_file`] and that it holds at most `limit` bytes.
pub fn check_size(path: &Path, limit: u64) -> Result<u64, Error> {
    let len = regular_file(path)?;
    if len > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            len,
            limit,
        });
    }
    Ok(len)
}

/// Reads a regular file of at most `limit` bytes (and never more, should it grow while
/// being read).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let len = check_size(path, limit)?;
    let err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut out = Vec::with_capacity(len as usize);
    f.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(err)?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            len: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

/// Reads a JSON document: [`read_bounded`] at [`MAX_REPORT_BYTES`], and a UTF-8
/// byte-order mark named as such (JSON has none) instead of a syntax error at 1:1.
pub fn read_json(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = read_bounded(path, MAX_REPORT_BYTES)?;
    if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        return Err(Error::Usage(format!(
            "{}: starts with a UTF-8 byte-order mark (EF BB BF), which JSON does not allow; remove it",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads a failure dump of any kind ([`read_json`], then parsed).
pub fn read_report(path: &Path) -> Result<dump_schema::FailureDumpReportAny, Error> {
    let bytes = read_json(path)?;
    dump_schema::FailureDumpReportAny::from_slice(&bytes).map_err(|source| Error::NotADump {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_and_sizes() {
        let e = regular_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = regular_file(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = dir.path().join("f");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Refused without opening: a FIFO with no writer would block forever.
        let e = read_json(&fifo).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b' '; 100]).unwrap();
        let e = read_bounded(&big, 99).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooLarge {
                    len: 100,
                    limit: 99,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(read_bounded(&big, 100).unwrap().len(), 100);
        let bom = dir.path().join("bom.json");
        std::fs::write(&bom, b"\xef\xbb\xbf{}").unwrap();
        let e = read_json(&bom).unwrap_err();
        assert!(e.to_string().contains("byte-order mark"), "{e}");
        assert!(matches!(e.class(), crate::ErrorClass::Input));
    }
}
