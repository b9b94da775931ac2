//! Kernel symbol tables: lookup by name and nearest symbol by address.
//!
//! Filled from kallsyms decoded out of guest memory ([`crate::kallsyms`]) or from a
//! System.map. Names live in one string arena; two index vectors (by address, by
//! name) make both lookups a binary search without a hash map of 200k `String`s.

use crate::Kva;

/// Most symbols a table accepts (real kernels have about 200k).
pub const MAX_SYMBOLS: usize = 4_000_000;
/// Longest symbol name accepted (the kernel's `KSYM_NAME_LEN`).
pub const MAX_NAME_LEN: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    name_start: u32,
    name_len: u16,
    kind: u8,
}

/// A symbol as returned by lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The name.
    pub name: &'a str,
    /// Its address.
    pub addr: Kva,
    /// Its kallsyms/System.map type letter (`T`, `t`, `D`, `b`, ...).
    pub kind: char,
}

/// A symbol containing an address, with the offset into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearestSymbol<'a> {
    pub symbol: Symbol<'a>,
    /// `addr - symbol.addr`.
    pub offset: u64,
}

/// Why a symbol table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    #[error("more than {MAX_SYMBOLS} symbols")]
    TooMany,
    #[error("symbol name of {0} bytes is longer than {MAX_NAME_LEN}")]
    NameTooLong(usize),
    #[error("System.map line {line}: {why}")]
    BadLine { line: usize, why: &'static str },
    #[error("name arena exceeds 4 GiB")]
    ArenaFull,
}

/// An immutable table of kernel symbols.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    names: String,
    by_addr: Vec<Entry>,
    /// Indices into `by_addr`, sorted by (name, addr).
    by_name: Vec<u32>,
}

/// Collects symbols, then [`SymbolTableBuilder::build`] sorts them.
#[derive(Debug, Default)]
pub struct SymbolTableBuilder {
    names: String,
    entries: Vec<Entry>,
}

impl SymbolTableBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one symbol.
    pub fn push(&mut self, name: &str, addr: Kva, kind: char) -> Result<(), SymbolError> {
        if self.entries.len() >= MAX_SYMBOLS {
            return Err(SymbolError::TooMany);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(SymbolError::NameTooLong(name.len()));
        }
        let name_start = u32::try_from(self.names.len()).map_err(|_| SymbolError::ArenaFull)?;
        self.names.push_str(name);
        self.entries.push(Entry {
            addr: addr.0,
            name_start,
            name_len: name.len() as u16,
            kind: if kind.is_ascii() { kind as u8 } else { b'?' },
        });
        Ok(())
    }

    /// Number of symbols so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts and indexes the symbols.
    pub fn build(self) -> SymbolTable {
        let SymbolTableBuilder { names, mut entries } = self;
        // Stable: symbols at the same address keep their input order.
        entries.sort_by_key(|e| e.addr);
        let mut by_name: Vec<u32> = (0..entries.len() as u32).collect();
        let name = |e: &Entry| &names[e.name_start as usize..][..e.name_len as usize];
        by_name.sort_by(|&a, &b| {
            let (ea, eb) = (&entries[a as usize], &entries[b as usize]);
            name(ea).cmp(name(eb)).then(ea.addr.cmp(&eb.addr))
        });
        SymbolTable {
            names,
            by_addr: entries,
            by_name,
        }
    }
}

impl SymbolTable {
    fn name_of(&self, e: &Entry) -> &str {
        &self.names[e.name_start as usize..][..e.name_len as usize]
    }

    fn sym(&self, e: &Entry) -> Symbol<'_> {
        Symbol {
            name: self.name_of(e),
            addr: Kva(e.addr),
            kind: e.kind as char,
        }
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// The address of `name`. When several symbols share the name (static
    /// functions in different files), the lowest address wins; see [`Self::all`].
    pub fn lookup(&self, name: &str) -> Option<Kva> {
        self.get(name).map(|s| s.addr)
    }

    /// The symbol `name` (lowest address among duplicates).
    pub fn get(&self, name: &str) -> Option<Symbol<'_>> {
        let i = self
            .by_name
            .partition_point(|&i| self.name_of(&self.by_addr[i as usize]) < name);
        let e = &self.by_addr[*self.by_name.get(i)? as usize];
        (self.name_of(e) == name).then(|| self.sym(e))
    }

    /// Every symbol called `name`, by address.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Symbol<'a>> + 'a {
        let i = self
            .by_name
            .partition_point(|&i| self.name_of(&self.by_addr[i as usize]) < name);
        self.by_name[i..]
            .iter()
            .map(|&i| &self.by_addr[i as usize])
            .take_while(move |e| self.name_of(e) == name)
            .map(|e| self.sym(e))
    }

    /// Every symbol whose name starts with `prefix`, in name order; `None` when there are
    /// more than `max`.
    pub fn with_prefix(&self, prefix: &str, max: usize) -> Option<Vec<Symbol<'_>>> {
        let i = self
            .by_name
            .partition_point(|&i| self.name_of(&self.by_addr[i as usize]) < prefix);
        let v: Vec<Symbol<'_>> = self.by_name[i..]
            .iter()
            .map(|&i| &self.by_addr[i as usize])
            .take_while(|e| self.name_of(e).starts_with(prefix))
            .take(max.saturating_add(1))
            .map(|e| self.sym(e))
            .collect();
        (v.len() <= max).then_some(v)
    }

    /// The lowest symbol address above `addr`.
    pub fn next_address(&self, addr: Kva) -> Option<Kva> {
        let i = self.by_addr.partition_point(|e| e.addr <= addr.0);
        self.by_addr.get(i).map(|e| Kva(e.addr))
    }

    /// The symbol at or below `addr`, if `addr` is before the next higher symbol.
    /// Among symbols at the same address (aliases) the first pushed one is returned:
    /// for kallsyms, the name the kernel's own lookup gives, since the kernel lists a
    /// function before a linker-script marker at its address (`__schedule` before
    /// `__sched_text_start`). Addresses after the last symbol give `None` unless they
    /// are within 1 MiB of it.
    pub fn nearest(&self, addr: Kva) -> Option<NearestSymbol<'_>> {
        let i = self.by_addr.partition_point(|e| e.addr <= addr.0);
        let last = self.by_addr.get(i.checked_sub(1)?)?;
        if i == self.by_addr.len() && addr.0 - last.addr >= 1 << 20 {
            return None;
        }
        let e = &self.by_addr[self.by_addr.partition_point(|e| e.addr < last.addr)];
        Some(NearestSymbol {
            symbol: self.sym(e),
            offset: addr.0 - e.addr,
        })
    }

    /// The symbol exactly at `addr`, if any.
    pub fn at(&self, addr: Kva) -> Option<Symbol<'_>> {
        self.nearest(addr)
            .filter(|n| n.offset == 0)
            .map(|n| n.symbol)
    }

    /// All symbols by address.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'_>> {
        self.by_addr.iter().map(|e| self.sym(e))
    }

    /// A copy with every address moved by `delta` (wrapping), e.g. a System.map's
    /// link-time addresses shifted by VMCOREINFO's `KERNELOFFSET`.
    pub fn shifted(&self, delta: u64) -> SymbolTable {
        let mut t = self.clone();
        for e in &mut t.by_addr {
            e.addr = e.addr.wrapping_add(delta);
        }
        // Wrapping can reorder; rebuild the address order.
        let mut b = SymbolTableBuilder {
            names: t.names,
            entries: t.by_addr,
        };
        b.entries.shrink_to_fit();
        b.build()
    }

    /// Parses a System.map (`<hex addr> <type> <name>` per line). Addresses are
    /// link-time: shift by KERNELOFFSET for a KASLR guest ([`Self::shifted`]).
    pub fn from_system_map(text: &str) -> Result<SymbolTable, SymbolError> {
        let mut b = SymbolTableBuilder::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut it = line.split_ascii_whitespace();
            let (Some(a), Some(k), Some(name)) = (it.next(), it.next(), it.next()) else {
                return Err(SymbolError::BadLine {
                    line: n + 1,
                    why: "expected `<address> <type> <name>`",
                });
            };
            let addr = u64::from_str_radix(a, 16).map_err(|_| SymbolError::BadLine {
                line: n + 1,
                why: "address is not hex",
            })?;
            let kind = k.chars().next().unwrap_or('?');
            b.push(name, Kva(addr), kind)?;
        }
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_name_and_address() {
        let t = SymbolTable::from_system_map(
            "ffffffff81000000 T _text\nffffffff81000100 t dup\nffffffff81000200 T foo\n\
             ffffffff81000050 t dup\nffffffff82000000 D init_task\n",
        )
        .unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t.lookup("foo"), Some(Kva(0xffffffff81000200)));
        assert_eq!(t.lookup("dup"), Some(Kva(0xffffffff81000050)));
        assert_eq!(t.all("dup").count(), 2);
        assert_eq!(t.lookup("nope"), None);
        assert_eq!(t.lookup("zzz"), None);
        let n = t.nearest(Kva(0xffffffff81000210)).unwrap();
        assert_eq!((n.symbol.name, n.offset), ("foo", 0x10));
        assert_eq!(t.nearest(Kva(0xffffffff80ffffff)), None);
        assert_eq!(t.nearest(Kva(0xffffffff82000008)).unwrap().symbol.kind, 'D');
        assert_eq!(t.nearest(Kva(0xffffffff83000000)), None);
        assert_eq!(t.at(Kva(0xffffffff81000200)).unwrap().name, "foo");
        // Aliases: the first listed wins, wherever `addr` falls after them.
        let a = SymbolTable::from_system_map(
            "ffffffff81000000 T _text\nffffffff81000100 t __schedule\n\
             ffffffff81000100 T __sched_text_start\nffffffff81000200 T schedule\n",
        )
        .unwrap();
        for (addr, offset) in [(0xffffffff81000100, 0), (0xffffffff810001ff, 0xff)] {
            let n = a.nearest(Kva(addr)).unwrap();
            assert_eq!((n.symbol.name, n.offset), ("__schedule", offset));
        }
        let s = t.shifted(0x1000);
        assert_eq!(s.lookup("foo"), Some(Kva(0xffffffff81001200)));
    }

    #[test]
    fn bad_system_map_lines_are_errors() {
        assert!(matches!(
            SymbolTable::from_system_map("zzz T x\n"),
            Err(SymbolError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            SymbolTable::from_system_map("ffff T\n"),
            Err(SymbolError::BadLine { .. })
        ));
        let long = format!("ffff T {}\n", "a".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(
            SymbolTable::from_system_map(&long),
            Err(SymbolError::NameTooLong(_))
        ));
    }
}
