//! A small BTF encoder for tests, fuzzing and benchmarks: builds raw BTF bytes type by
//! type, including deliberately odd graphs (loops, absurd sizes) that real kernels never
//! contain. Not meant for production use.

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_ENUM64: u32 = 19;

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`.
pub const INT_SIGNED: u32 = 1;
pub const INT_CHAR: u32 = 2;
pub const INT_BOOL: u32 = 4;

/// A struct member for [`BtfBuilder::struct_`]: name, type id, bit offset, bitfield width
/// (0 for none).
pub type M<'a> = (&'a str, u32, u32, u32);

/// Builds raw little-endian BTF. Type ids are handed out in call order starting at 1 (or
/// after the base for split BTF); a type may name ids that are created later.
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    str_base: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BtfBuilder {
    pub fn new() -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            str_base: 0,
        }
    }

    /// A split BTF on top of a base with `base_types` ids (void included) and a string
    /// section of `base_str_len` bytes.
    pub fn split(base_types: u32, base_str_len: u32) -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: base_types,
            str_base: base_str_len,
        }
    }

    /// The id the next type will get.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    fn s(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32 + self.str_base;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn u32(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }

    fn head(&mut self, name: &str, kind: u32, vlen: u32, kflag: bool, size_or_type: u32) -> u32 {
        let n = self.s(name);
        self.u32(n);
        self.u32((vlen & 0xffff) | (kind << 24) | ((kflag as u32) << 31));
        self.u32(size_or_type);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let id = self.head(name, KIND_INT, 0, false, size);
        self.u32((encoding << 24) | (size * 8).min(128));
        id
    }

    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.head(name, KIND_FLOAT, 0, false, size)
    }

    pub fn ptr(&mut self, target: u32) -> u32 {
        self.head("", KIND_PTR, 0, false, target)
    }

    pub fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
        let id = self.head("", KIND_ARRAY, 0, false, 0);
        self.u32(elem);
        self.u32(index);
        self.u32(len);
        id
    }

    fn aggregate(&mut self, kind: u32, name: &str, size: u32, members: &[M<'_>]) -> u32 {
        let kflag = members.iter().any(|m| m.3 != 0);
        let id = self.head(name, kind, members.len() as u32, kflag, size);
        for &(mname, ty, off, bits) in members {
            let n = self.s(mname);
            self.u32(n);
            self.u32(ty);
            self.u32(if kflag {
                (bits << 24) | (off & 0xff_ffff)
            } else {
                off
            });
        }
        id
    }

    pub fn struct_(&mut self, name: &str, size: u32, members: &[M<'_>]) -> u32 {
        self.aggregate(KIND_STRUCT, name, size, members)
    }

    pub fn union_(&mut self, name: &str, size: u32, members: &[M<'_>]) -> u32 {
        self.aggregate(KIND_UNION, name, size, members)
    }

    pub fn enum_(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, i64)]) -> u32 {
        let values: Vec<(&str, u64)> = values.iter().map(|&(n, v)| (n, v as u64)).collect();
        self.enumeration(KIND_ENUM, name, size, signed, &values)
    }

    pub fn enum64(&mut self, name: &str, size: u32, signed: bool, values: &[(&str, u64)]) -> u32 {
        self.enumeration(KIND_ENUM64, name, size, signed, values)
    }

    /// An enum (32-bit values) or enum64 (`kind`) and its enumerators.
    fn enumeration(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        signed: bool,
        values: &[(&str, u64)],
    ) -> u32 {
        let id = self.head(name, kind, values.len() as u32, signed, size);
        for &(vname, v) in values {
            let n = self.s(vname);
            self.u32(n);
            self.u32(v as u32);
            if kind == KIND_ENUM64 {
                self.u32((v >> 32) as u32);
            }
        }
        id
    }

    pub fn fwd(&mut self, name: &str, is_union: bool) -> u32 {
        self.head(name, KIND_FWD, 0, is_union, 0)
    }

    pub fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.head(name, KIND_TYPEDEF, 0, false, target)
    }

    pub fn const_(&mut self, target: u32) -> u32 {
        self.head("", KIND_CONST, 0, false, target)
    }

    pub fn volatile(&mut self, target: u32) -> u32 {
        self.head("", KIND_VOLATILE, 0, false, target)
    }

    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.head("", KIND_FUNC_PROTO, params.len() as u32, false, ret);
        for &(pname, ty) in params {
            let n = self.s(pname);
            self.u32(n);
            self.u32(ty);
        }
        id
    }

    pub fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.head(name, KIND_FUNC, 1, false, proto)
    }

    pub fn var(&mut self, name: &str, ty: u32) -> u32 {
        let id = self.head(name, KIND_VAR, 0, false, ty);
        self.u32(1);
        id
    }

    pub fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let id = self.head(name, KIND_DATASEC, vars.len() as u32, false, size);
        for &(v, off, sz) in vars {
            self.u32(v);
            self.u32(off);
            self.u32(sz);
        }
        id
    }

    /// Length of the string section built so far (for a split BTF on top of this one).
    pub fn str_len(&self) -> u32 {
        self.strings.len() as u32
    }

    /// The raw BTF bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        out.extend_from_slice(&0xeb9fu16.to_le_bytes());
        out.push(1);
        out.push(0);
        for v in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// Guest memory made of a few byte regions at kernel virtual addresses, for tests, fuzzing
/// and benchmarks. Reads outside every region fail like unmapped guest memory does.
#[derive(Default, Clone, Debug)]
pub struct RegionMem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl RegionMem {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` at `kva` (regions must not overlap; the first match wins).
    pub fn add(&mut self, kva: u64, bytes: Vec<u8>) -> &mut Self {
        self.regions.push((kva, bytes));
        self
    }
}

impl guest_mem::KvaRead for RegionMem {
    fn read_kva(&self, kva: guest_mem::Kva, buf: &mut [u8]) -> Result<(), guest_mem::MemError> {
        for (start, bytes) in &self.regions {
            let Some(off) = kva.0.checked_sub(*start) else {
                continue;
            };
            let Ok(off) = usize::try_from(off) else {
                continue;
            };
            if let Some(src) = off
                .checked_add(buf.len())
                .and_then(|end| bytes.get(off..end))
            {
                buf.copy_from_slice(src);
                return Ok(());
            }
        }
        Err(guest_mem::MemError::Untranslatable {
            kva,
            why: "outside the test regions",
        })
    }
}
