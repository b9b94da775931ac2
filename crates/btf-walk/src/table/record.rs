//! Decoding while a table is parsed: one type record's fixed header, and the string
//! offsets its names are resolved from.

use super::{HashMap, Kind, NameRef, Qualifier, Span, Table, TypeId, until_nul};
use crate::error::{BtfError, Result};

/// The fixed 12-byte header of one type record, and where its trailing data starts.
pub(super) struct Record {
    pub(super) id: u32,
    pub(super) pos: usize,
    pub(super) name_off: u32,
    pub(super) kind_id: u32,
    pub(super) kflag: bool,
    pub(super) vlen: usize,
    pub(super) size_or_type: u32,
    pub(super) body: usize,
}

impl Record {
    pub(super) fn at(sec: &[u8], pos: usize, id: u32) -> Result<Record> {
        let mut r = Record {
            id,
            pos,
            name_off: 0,
            kind_id: 0,
            kflag: false,
            vlen: 0,
            size_or_type: 0,
            body: pos + 12,
        };
        // The header's three words at once (one bounds check).
        let h: &[u8; 12] = (pos.checked_add(12))
            .and_then(|end| sec.get(pos..end))
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| r.past_end())?;
        let word = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let info = word(4);
        r.name_off = word(0);
        r.size_or_type = word(8);
        r.vlen = (info & 0xffff) as usize;
        r.kind_id = (info >> 24) & 0x1f;
        r.kflag = info >> 31 == 1;
        Ok(r)
    }

    pub(super) fn bad(&self, detail: String) -> BtfError {
        BtfError::Format {
            what: "type section",
            detail: format!("type id {}: {detail}", self.id),
        }
    }

    pub(super) fn past_end(&self) -> BtfError {
        self.bad(format!(
            "record at byte {} runs past the end of the section",
            self.pos
        ))
    }

    /// The `u32` at byte `o` of the record.
    pub(super) fn word(&self, sec: &[u8], o: usize) -> Result<u32> {
        self.pos
            .checked_add(o)
            .and_then(|at| read_u32(sec, at))
            .ok_or_else(|| self.past_end())
    }

    /// Bytes of `vlen` trailing entries of `step` bytes, checked against the section.
    pub(super) fn entries(&self, sec: &[u8], step: usize) -> Result<usize> {
        match self
            .vlen
            .checked_mul(step)
            .and_then(|n| self.body.checked_add(n))
        {
            Some(end) if end <= sec.len() => Ok(self.vlen * step),
            _ => Err(self.bad(format!(
                "{} entries run past the end of the section",
                self.vlen
            ))),
        }
    }

    pub(super) fn span(&self, start: u32) -> Span {
        // `vlen` is the low 16 bits of the record's info word.
        Span::new(start, self.vlen as u16)
    }
}

pub(super) fn qualifier(target: TypeId, which: Qualifier) -> Kind {
    Kind::Qualifier { target, which }
}

pub(super) fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// A word of an entry whose bounds were checked for the whole entry list.
pub(super) fn word_at(b: &[u8], at: usize) -> u32 {
    read_u32(b, at).unwrap_or(0)
}

/// Resolves string offsets while a table is parsed: this part's own section or, for
/// split BTF, the base's; names copied into the table's `names` as they are resolved.
pub(super) struct Names<'a> {
    /// This part's own string section, checked to be UTF-8.
    pub(super) own: &'a [u8],
    pub(super) base: Option<&'a Table>,
    pub(super) str_base: u32,
    /// The table's `names` so far.
    pub(super) copied: Vec<u8>,
    /// Base names already copied, by offset.
    pub(super) base_names: HashMap<u32, NameRef>,
}

impl Names<'_> {
    /// The string at offset `off`: copied into the names (always for a base's string),
    /// or, unless `copy`, left in place ([`NameRef::RAW`]).
    pub(super) fn resolve(&mut self, off: u32, copy: bool) -> std::result::Result<NameRef, String> {
        if off == 0 {
            return Ok(NameRef::NONE);
        }
        if off >= self.str_base {
            let o = (off - self.str_base) as usize;
            return match self.own.len().checked_sub(o) {
                // The end of the section: an empty name.
                Some(0) => Ok(NameRef::NONE),
                Some(_) if !is_char_start(self.own[o]) => {
                    Err(format!("name offset {off} outside the string section"))
                }
                Some(_) if !copy => Ok(NameRef {
                    off: o as u32,
                    len: NameRef::RAW,
                }),
                Some(_) => self.copy(until_nul(&self.own[o..])),
                None => Err(format!("name offset {off} outside the string section")),
            };
        }
        if let Some(r) = self.base_names.get(&off) {
            return Ok(*r);
        }
        let base = self
            .base
            .ok_or_else(|| format!("name offset {off} outside the string section"))?;
        let r = self.copy(base.string_at(off)?.as_bytes())?;
        self.base_names.insert(off, r);
        Ok(r)
    }

    /// Appends `name` to the copied names.
    pub(super) fn copy(&mut self, name: &[u8]) -> std::result::Result<NameRef, String> {
        let r = NameRef {
            off: u32::try_from(self.copied.len())
                .ok()
                .filter(|o| o.checked_add(name.len() as u32).is_some())
                .ok_or_else(|| "string space exceeds 4 GiB".to_string())?,
            len: name.len() as u32,
        };
        self.copied.extend_from_slice(name);
        Ok(r)
    }

    /// A copied name's bytes.
    pub(super) fn get(&self, r: NameRef) -> &[u8] {
        let off = r.off as usize;
        self.copied.get(off..off + r.len as usize).unwrap_or(&[])
    }

    /// Checks that a name at `off` can be read later: inside this part's strings, on a
    /// character boundary (they end with NUL, so a name ends), or a base's name.
    pub(super) fn check(&self, off: u32) -> std::result::Result<(), String> {
        let outside = || format!("name offset {off} outside the string section");
        if off == 0 {
            return Ok(());
        }
        if off >= self.str_base {
            let o = (off - self.str_base) as usize;
            return match o < self.own.len() && is_char_start(self.own[o]) {
                true => Ok(()),
                false => Err(outside()),
            };
        }
        match self.base {
            Some(b) => b.string_at(off).map(|_| ()),
            None => Err(outside()),
        }
    }

    /// Checks that [`Names::resolve`] would take `off` (an enumerator's name, made
    /// later): like [`Names::check`], the end of this part's section included (an
    /// empty name).
    pub(super) fn check_name(&self, off: u32) -> std::result::Result<(), String> {
        if off >= self.str_base && (off - self.str_base) as usize == self.own.len() {
            return Ok(());
        }
        self.check(off)
    }
}

/// Whether byte `b` of UTF-8 text starts a character (is not a continuation byte).
pub(super) fn is_char_start(b: u8) -> bool {
    (b as i8) >= -0x40
}
