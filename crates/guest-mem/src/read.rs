//! Typed reads on top of any [`KvaRead`], including `&dyn KvaRead`.

use zerocopy::{FromBytes, IntoBytes};

use crate::{Kva, KvaRead, MemError};

/// Typed helpers for every [`KvaRead`]. Each read names the address on failure;
/// counts and lengths that come from the guest are checked against a caller's cap
/// before anything is allocated.
pub trait KvaReadExt: KvaRead {
    /// Reads a `T` (any plain-old-data type) at `kva`.
    fn read_obj<T: FromBytes + IntoBytes>(&self, kva: Kva) -> Result<T, MemError> {
        let mut v = T::new_zeroed();
        self.read_kva(kva, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, kva: Kva) -> Result<u64, MemError> {
        self.read_obj(kva).map(u64::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, kva: Kva) -> Result<u32, MemError> {
        self.read_obj(kva).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u16`.
    fn read_u16(&self, kva: Kva) -> Result<u16, MemError> {
        self.read_obj(kva).map(u16::from_le_bytes)
    }

    /// Reads one byte.
    fn read_u8(&self, kva: Kva) -> Result<u8, MemError> {
        self.read_obj(kva)
    }

    /// Reads a pointer.
    fn read_ptr(&self, kva: Kva) -> Result<Kva, MemError> {
        self.read_u64(kva).map(Kva)
    }

    /// Reads a fixed-size C char array of `size` bytes (like `task_struct.comm`)
    /// and returns the text before the first NUL, invalid UTF-8 replaced.
    fn read_cstr(&self, kva: Kva, size: usize) -> Result<String, MemError> {
        let mut b = vec![0u8; size];
        self.read_kva(kva, &mut b)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }

    /// Reads `len` bytes; [`MemError::TooLarge`] when `len > cap`.
    fn read_bytes(&self, kva: Kva, len: u64, cap: usize) -> Result<Vec<u8>, MemError> {
        if len > cap as u64 {
            return Err(MemError::TooLarge {
                kva,
                count: len,
                cap,
            });
        }
        let mut b = vec![0u8; len as usize];
        self.read_kva(kva, &mut b)?;
        Ok(b)
    }

    /// Reads `count` consecutive `T`s; [`MemError::TooLarge`] when `count > cap`.
    fn read_array<T: FromBytes + IntoBytes + Clone>(
        &self,
        kva: Kva,
        count: u64,
        cap: usize,
    ) -> Result<Vec<T>, MemError> {
        if count > cap as u64 {
            return Err(MemError::TooLarge { kva, count, cap });
        }
        let mut v = vec![T::new_zeroed(); count as usize];
        self.read_kva(kva, v.as_mut_slice().as_mut_bytes())?;
        Ok(v)
    }
}

impl<R: KvaRead + ?Sized> KvaReadExt for R {}
