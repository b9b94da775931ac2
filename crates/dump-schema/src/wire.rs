//! Small helpers of the wire format shared by the types.

/// `skip_serializing_if` for fields dropped at their default value (`0`, `false`, empty).
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Bytes as the wire format's hex strings (`*_hex`, `data_hex`, `Bytes.hex`): lowercase, two
/// digits per byte, bytes separated by one space.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses a wire hex string back into bytes; `None` when it is not in the wire form.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(' ')
        .map(|b| {
            let ok = b.len() == 2 && b.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
            if ok {
                u8::from_str_radix(b, 16).ok()
            } else {
                None
            }
        })
        .collect()
}
