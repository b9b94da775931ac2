//! Just enough Rust reading for the guest-test rule ([`crate::guest_tests`]): the functions
//! of a source file (name, `impl` type, body, whether `#[test]`), and calls in a body.
//!
//! Not a parser: comments, string and char literals are blanked first, then braces are
//! matched. Good for this workspace's own code, which it reads as a whole on every run of
//! the test that uses it (a construct it misreads shows there).

/// One `fn` item with a body.
#[derive(Debug, Clone)]
pub struct Func {
    pub name: String,
    /// The `impl` block's type for a method, `None` for a free function.
    pub owner: Option<String>,
    /// Preceded by `#[test]`.
    pub is_test: bool,
    /// 1-based line of the `fn`.
    pub line: usize,
    /// The body, blanked (no comments, strings or char literals).
    pub body: String,
}

/// `src` with comments, string literals (plain, byte, raw) and char literals replaced by
/// spaces; newlines and length stay, so lines and offsets stay.
pub fn blank(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let wipe = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let ident_before = i > 0 && is_ident(b[i - 1]);
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(b.len(), |n| i + n);
                wipe(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (0usize, i);
                while j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                wipe(&mut out, i, j);
                i = j;
            }
            b'r' | b'b' if !ident_before && raw_string_start(&b[i..]).is_some() => {
                let (hashes, open) = raw_string_start(&b[i..]).unwrap_or((0, 0));
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let from = i + open;
                let end = find(b, from, &close).map_or(b.len(), |n| n + close.len());
                wipe(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                wipe(&mut out, i, j + 1);
                i = j + 1;
            }
            b'\'' => {
                i = char_literal_end(src, i)
                    .inspect(|&end| wipe(&mut out, i, end))
                    .unwrap_or(i + 1)
            }
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|n| from + n)
}

/// `r"`, `r#"`, `br##"`, ...: the number of `#` and the length of the opening.
fn raw_string_start(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = usize::from(b.first() == Some(&b'b'));
    if b.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    (b.get(i + hashes) == Some(&b'"')).then_some((hashes, i + hashes + 1))
}

/// The end (exclusive) of the char literal starting at `i`, or `None` for a lifetime or
/// label (`'a`).
fn char_literal_end(src: &str, i: usize) -> Option<usize> {
    let rest = &src[i + 1..];
    if let Some(esc) = rest.strip_prefix('\\') {
        // '\n', '\'', '\u{1F600}': up to the next quote after the escaped character.
        let skip = esc.chars().next()?.len_utf8();
        return esc[skip..].find('\'').map(|n| i + 2 + skip + n + 1);
    }
    let c = rest.chars().next()?;
    rest[c.len_utf8()..]
        .starts_with('\'')
        .then(|| i + 1 + c.len_utf8() + 1)
}

enum Block {
    Impl(String),
    Fn(usize),
    Other,
}

/// Every function with a body in `src` (nested ones too), in source order of their end.
pub fn functions(src: &str) -> Vec<Func> {
    let text = blank(src);
    let b = text.as_bytes();
    let mut stack: Vec<Block> = Vec::new();
    let mut funcs: Vec<(Func, usize)> = Vec::new();
    let mut done = Vec::new();
    let mut header_start = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b';' => header_start = i + 1,
            b'{' => {
                let header = &text[header_start..i];
                let block = if let Some(ty) = impl_type(header) {
                    Block::Impl(ty)
                } else if let Some(name) = fn_name(header) {
                    let owner = match stack.last() {
                        Some(Block::Impl(t)) => Some(t.clone()),
                        _ => None,
                    };
                    let line = 1
                        + text[..header_start].matches('\n').count()
                        + header[..header.rfind("fn").unwrap_or(0)]
                            .matches('\n')
                            .count();
                    funcs.push((
                        Func {
                            name,
                            owner,
                            is_test: header.contains("#[test]"),
                            line,
                            body: String::new(),
                        },
                        i + 1,
                    ));
                    Block::Fn(funcs.len() - 1)
                } else {
                    Block::Other
                };
                stack.push(block);
                header_start = i + 1;
            }
            b'}' => {
                if let Some(Block::Fn(k)) = stack.pop() {
                    let start = funcs[k].1;
                    funcs[k].0.body = text[start..i].to_string();
                    done.push(k);
                }
                header_start = i + 1;
            }
            _ => {}
        }
    }
    done.into_iter().map(|k| funcs[k].0.clone()).collect()
}

/// The name of the function a block header declares (`... fn name<..>(..) -> .. where ..`).
fn fn_name(header: &str) -> Option<String> {
    let mut found = None;
    for (at, _) in header.match_indices("fn") {
        let before_ok = at == 0 || !is_ident(header.as_bytes()[at - 1]);
        let after = &header[at + 2..];
        if !before_ok || !after.starts_with(char::is_whitespace) {
            continue;
        }
        let name: String = after
            .trim_start()
            .chars()
            .take_while(|&c| c.is_alphanumeric() || c == '_')
            .collect();
        if !name.is_empty() {
            found = Some(name);
        }
    }
    found
}

/// The type an `impl` block header is for (`impl<T> Foo<T>`, `impl Trait for Foo`).
fn impl_type(header: &str) -> Option<String> {
    let mut h = header.trim();
    // Attributes before the item.
    while let Some(rest) = h.strip_prefix("#[") {
        h = rest.split_once(']').map_or("", |(_, r)| r).trim_start();
    }
    h = h.strip_prefix("unsafe").map_or(h, str::trim_start);
    let rest = h.strip_prefix("impl")?;
    if !rest.starts_with([' ', '<', '\n', '\t']) {
        return None;
    }
    let rest = skip_generics(rest.trim_start());
    let rest = rest.split(" where").next().unwrap_or(rest);
    let ty = match rest.split_once(" for ") {
        Some((_, ty)) => ty,
        None => rest,
    };
    let ty = ty.trim().trim_start_matches('&').trim();
    let path = ty.split('<').next().unwrap_or(ty).trim();
    let last = path.rsplit("::").next().unwrap_or(path).trim();
    (!last.is_empty()).then(|| last.to_string())
}

fn skip_generics(s: &str) -> &str {
    if !s.starts_with('<') {
        return s;
    }
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return &s[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// Whether blanked `body` calls `path` (`name` or `Type::name`): `path(` or `path::<..>(`,
/// not as a method (`.name(`) and not inside a longer identifier.
pub fn calls(body: &str, path: &str) -> bool {
    let b = body.as_bytes();
    body.match_indices(path).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| b[i]);
        if before.is_some_and(|c| is_ident(c) || c == b'.') {
            return false;
        }
        let after = body[at + path.len()..].trim_start();
        after.starts_with('(') || after.starts_with("::<")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_strings_and_chars_are_blanked_lifetimes_stay() {
        let src = "fn a<'x>(s: &'x str) { let c = '{'; let d = '\\''; f(\"}{\", r#\"\"}\"#); } // }\n/* { */";
        let t = blank(src);
        assert_eq!(t.len(), src.len());
        assert_eq!(t.matches('{').count(), 1, "{t}");
        assert_eq!(t.matches('}').count(), 1, "{t}");
        assert!(t.contains("<'x>") && t.contains("&'x str"), "{t}");
    }

    #[test]
    fn functions_methods_tests_and_their_bodies() {
        let src = r#"
impl<'a> Deref for Guest<'a> {
    fn deref(&self) -> &Self { boot() }
}
mod tests {
    #[test]
    #[ignore = "a { in a string"]
    fn a_test() {
        let v = Vec::<u8>::new();
        if true { helper(1) } else { x.helper(2) }
    }
}
fn helper(x: u8) -> impl Fn() -> u8 where u8: Copy { move || x }
"#;
        let f = functions(src);
        let names: Vec<(&str, Option<&str>, bool)> = f
            .iter()
            .map(|f| (f.name.as_str(), f.owner.as_deref(), f.is_test))
            .collect();
        assert_eq!(
            names,
            [
                ("deref", Some("Guest"), false),
                ("a_test", None, true),
                ("helper", None, false)
            ]
        );
        assert_eq!(f[1].line, 8);
        assert!(calls(&f[0].body, "boot"));
        assert!(calls(&f[1].body, "helper"));
        assert!(calls("guest_lab::Lab::open()", "Lab::open"));
        assert!(!calls("GuestLab::open()", "Lab::open"), "another type");
        assert!(
            !calls("x.helper(2)", "helper"),
            "a method call is not the free fn"
        );
        assert!(!calls("my_helper(2)", "helper"));
        assert!(calls("a::helper::<u8>(2)", "helper"));
    }
}
