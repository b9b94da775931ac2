//! A writer for the `newc` cpio format, the one the kernel unpacks as an initramfs.
//!
//! The format is 110 ASCII bytes of header, the NUL-terminated name and the data, each
//! padded to 4 bytes; small enough that a crate would add more than it saves. Archives may
//! be concatenated (the kernel unpacks them in order, later files replacing earlier ones),
//! which is how a cached base is combined with a small per-run archive.

use std::collections::BTreeSet;
use std::io::{self, Write};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes one archive. Parent directories are created automatically, before their
/// contents (the kernel does not create missing parents).
pub(crate) struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

fn normalize(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, to: u64) -> io::Result<()> {
        let rem = self.written % to;
        if rem != 0 {
            let zeros = vec![0u8; (to - rem) as usize];
            self.raw(&zeros)?;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file over 4 GiB"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed so identical inputs give identical archives
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.raw(header.as_bytes())?;
        self.raw(name.as_bytes())?;
        self.raw(&[0])?;
        self.pad(4)?;
        self.raw(data)?;
        self.pad(4)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut prefix = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for comp in &comps[..comps.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            if self.dirs.insert(prefix.clone()) {
                let p = prefix.clone();
                self.entry(&p, S_IFDIR | 0o755, (0, 0), &[])?;
            }
        }
        Ok(())
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let path = normalize(path);
        self.parents(&path)?;
        if self.dirs.insert(path.clone()) {
            self.entry(&path, S_IFDIR | 0o755, (0, 0), &[])?;
        }
        Ok(())
    }

    /// A regular file with permission bits `perm` (e.g. 0o755).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let path = normalize(path);
        self.parents(&path)?;
        self.entry(&path, S_IFREG | (perm & 0o7777), (0, 0), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = normalize(path);
        self.parents(&path)?;
        self.entry(&path, S_IFLNK | 0o777, (0, 0), target.as_bytes())
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = normalize(path);
        self.parents(&path)?;
        self.entry(&path, S_IFCHR | (perm & 0o7777), (major, minor), &[])
    }

    /// Write the trailer, pad to 512 bytes (so another archive can follow) and return the
    /// output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.pad(512)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_newc_and_aligned() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/a/b/c.txt", 0o644, b"hello").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 512, 0);
        let text = String::from_utf8_lossy(&out);
        // Parents first, in order.
        let a = text.find("a\0").unwrap();
        let ab = text.find("a/b\0").unwrap();
        let abc = text.find("a/b/c.txt\0").unwrap();
        assert!(a < ab && ab < abc);
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        // Every header starts on a 4-byte boundary with the newc magic.
        let mut off = 0;
        let mut names = Vec::new();
        while off + 110 <= out.len() && &out[off..off + 6] == b"070701" {
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&out[off + 6 + i * 8..off + 14 + i * 8]).unwrap(),
                    16,
                )
                .unwrap() as usize
            };
            let (size, namesize) = (field(6), field(11));
            let name = std::str::from_utf8(&out[off + 110..off + 110 + namesize - 1]).unwrap();
            names.push(name.to_string());
            if name == "dev/console" {
                assert_eq!((field(9), field(10)), (5, 1));
            }
            let data = (off + 110 + namesize).div_ceil(4) * 4;
            off = (data + size).div_ceil(4) * 4;
        }
        assert_eq!(
            names,
            [
                "a",
                "a/b",
                "a/b/c.txt",
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "TRAILER!!!"
            ]
        );
    }
}
