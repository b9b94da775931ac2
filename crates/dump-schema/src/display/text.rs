//! Writers the rendering goes through: every piece of the output is written once, straight to
//! the caller's [`fmt::Write`], and errors propagate.

use std::fmt::{self, Write};

/// The writer every rendering starts with: text is buffered (a rendering makes many small
/// writes; the caller's writer sees chunks of [`Out::CHUNK`] bytes), and [`Out::finish`] drops
/// the trailing newlines (the reports' `Display` has no trailing newline).
pub(crate) struct Out<W> {
    out: W,
    buf: String,
}

impl<W: Write> Out<W> {
    const CHUNK: usize = 16 << 10;

    pub(crate) fn new(out: W) -> Self {
        Self {
            out,
            buf: String::new(),
        }
    }

    /// Writes what is left, without its trailing newlines.
    pub(crate) fn finish(mut self) -> fmt::Result {
        self.out.write_str(self.buf.trim_end_matches('\n'))
    }
}

impl<W: Write> Write for Out<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= Self::CHUNK {
            // Newlines at the end stay buffered: they are written only if more text follows.
            let body = self.buf.trim_end_matches('\n').len();
            self.out.write_str(&self.buf[..body])?;
            self.buf.drain(..body);
        }
        Ok(())
    }
}

/// Sections separated by one blank line: [`Sections::next`] starts a section, and the
/// separator is written only once the section writes something (empty sections vanish).
pub(crate) struct Sections<'w> {
    out: &'w mut dyn Write,
    wrote: bool,
    separate: bool,
}

impl<'w> Sections<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Self {
        Self {
            out,
            wrote: false,
            separate: false,
        }
    }

    /// Starts the next section.
    pub(crate) fn next(&mut self) -> &mut Self {
        self.separate = self.wrote;
        self
    }

    /// Whether any section wrote something.
    pub(crate) fn wrote(&self) -> bool {
        self.wrote
    }
}

impl Write for Sections<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.is_empty() {
            return Ok(());
        }
        if self.separate {
            self.separate = false;
            self.out.write_char('\n')?;
        }
        self.wrote = true;
        self.out.write_str(s)
    }
}

/// Indents every non-empty line by `n` spaces and ends every line, the last one included, in
/// `\n` (a line's `\r\n` ending becomes `\n`, as [`str::lines`] reads it).
pub(crate) struct Indent<'w> {
    out: &'w mut dyn Write,
    n: usize,
    line: String,
}

impl<'w> Indent<'w> {
    pub(crate) fn new(out: &'w mut dyn Write, n: usize) -> Self {
        Self {
            out,
            n,
            line: String::new(),
        }
    }

    /// Writes the last line if it had no `\n`.
    pub(crate) fn finish(mut self) -> fmt::Result {
        if self.line.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.line);
        self.emit(&line)
    }

    fn emit(&mut self, line: &str) -> fmt::Result {
        if !line.is_empty() {
            spaces(self.out, self.n)?;
            self.out.write_str(line)?;
        }
        self.out.write_char('\n')
    }
}

impl Write for Indent<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(nl) = rest.find('\n') {
            self.line.push_str(&rest[..nl]);
            let mut line = std::mem::take(&mut self.line);
            if line.ends_with('\r') {
                line.pop();
            }
            self.emit(&line)?;
            // Keep the allocation for the next line.
            line.clear();
            self.line = line;
            rest = &rest[nl + 1..];
        }
        self.line.push_str(rest);
        Ok(())
    }
}

/// Passes the first `lines` lines through and counts the rest (a last line without `\n`
/// counts too): the default view's cap on a long part, which then says how much it left out
/// and which filter shows it.
pub(crate) struct Capped<'w> {
    out: &'w mut dyn Write,
    left: usize,
    hidden: usize,
    open: bool,
}

impl<'w> Capped<'w> {
    /// `usize::MAX` lines: nothing is held back.
    pub(crate) fn new(out: &'w mut dyn Write, lines: usize) -> Self {
        Self {
            out,
            left: lines,
            hidden: 0,
            open: false,
        }
    }

    /// Lines held back.
    pub(crate) fn hidden(&self) -> usize {
        self.hidden + usize::from(self.left == 0 && self.open)
    }

    /// The writer under the cap, for the line that says what was held back.
    pub(crate) fn inner(&mut self) -> &mut dyn Write {
        self.out
    }
}

impl Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while !rest.is_empty() {
            if self.left == 0 {
                let newlines = rest.bytes().filter(|&b| b == b'\n').count();
                self.hidden += newlines;
                self.open = !rest.ends_with('\n') || (self.open && newlines == 0);
                return Ok(());
            }
            let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
            self.out.write_str(&rest[..end])?;
            self.open = !rest[..end].ends_with('\n');
            if !self.open {
                self.left -= 1;
            }
            rest = &rest[end..];
        }
        Ok(())
    }
}

/// Lines of guest text (a console or log tail, `str::lines` of it: a line ending in `\r\n`
/// counts as ending in `\n`): each escaped, each non-empty one indented by `n`, each ending in
/// `\n`.
pub(crate) fn guest_lines<'a>(
    out: &mut dyn Write,
    lines: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> fmt::Result {
    for line in lines {
        if !line.is_empty() {
            spaces(out, n)?;
            write!(out, "{}", esc(line))?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// `n` spaces.
pub(crate) fn spaces(out: &mut dyn Write, n: usize) -> fmt::Result {
    const SPACES: &str = "                                ";
    let mut left = n;
    while left > 0 {
        let k = left.min(SPACES.len());
        out.write_str(&SPACES[..k])?;
        left -= k;
    }
    Ok(())
}

/// A fmt sink that refuses to grow past `limit` bytes: rendering into it fails (with
/// [`fmt::Error`]) exactly when the whole text would be longer than `limit`. Used to try the
/// one-line form of a value before falling back to the block form.
pub(crate) struct Bounded<'b> {
    buf: &'b mut String,
    limit: usize,
}

impl<'b> Bounded<'b> {
    /// Clears `buf` and bounds it to `limit` bytes.
    pub(crate) fn new(buf: &'b mut String, limit: usize) -> Self {
        buf.clear();
        Self { buf, limit }
    }
}

impl Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.len() + s.len() > self.limit {
            return Err(fmt::Error);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// Guest text made safe for a terminal and unambiguous: the one escaping of the rendering,
/// used for every string that comes from the guest or from the document (names, comms,
/// reasons, `char[]` contents).
///
/// `\n`, `\t`, `\r` and `\\` are written as such, every other ASCII control character (and
/// DEL) as `\xNN` (always two hex digits), bytes that are not UTF-8 as `\xNN`, and the Unicode
/// controls and invisible format characters (C1, bidirectional overrides, zero-width
/// characters) as `\u{N}`. Printable text, Unicode included, is written as is. Quoted, the
/// text is wrapped in `"` and a `"` inside is written `\"`.
pub(crate) struct Escaped<'a> {
    bytes: &'a [u8],
    quoted: bool,
}

/// `s`, escaped.
pub(crate) fn esc(s: &str) -> Escaped<'_> {
    Escaped {
        bytes: s.as_bytes(),
        quoted: false,
    }
}

/// `bytes` escaped between double quotes.
pub(crate) fn quoted(bytes: &[u8]) -> Escaped<'_> {
    Escaped {
        bytes,
        quoted: true,
    }
}

impl Escaped<'_> {
    /// The text itself when nothing in it needs escaping (printable ASCII only, the common
    /// case).
    fn plain(&self) -> Option<&str> {
        let plain = self
            .bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\' && !(self.quoted && b == b'"'));
        plain
            .then(|| std::str::from_utf8(self.bytes).ok())
            .flatten()
    }

    /// Writes the escaped text (without going through `fmt::Arguments` when it is plain).
    pub(crate) fn write_to(&self, out: &mut dyn Write) -> fmt::Result {
        match self.plain() {
            Some(s) if !self.quoted => out.write_str(s),
            _ => write!(out, "{self}"),
        }
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            f.write_char('"')?;
        }
        if let Some(s) = self.plain() {
            f.write_str(s)?;
        } else {
            for chunk in self.bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    escape_char(f, c, self.quoted)?;
                }
                for b in chunk.invalid() {
                    write!(f, "\\x{b:02x}")?;
                }
            }
        }
        if self.quoted {
            f.write_char('"')?;
        }
        Ok(())
    }
}

/// Text that is already escaped (a value as the rendering writes it), made safe for a
/// terminal all the same: as is when it holds no control or invisible format character,
/// else escaped (a document read from elsewhere may hold anything).
pub(crate) fn safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        esc(s).to_string().into()
    } else {
        s.into()
    }
}

fn escape_char(f: &mut fmt::Formatter<'_>, c: char, quoted: bool) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\n"),
        '\t' => f.write_str("\\t"),
        '\r' => f.write_str("\\r"),
        '\\' => f.write_str("\\\\"),
        '"' if quoted => f.write_str("\\\""),
        c if c.is_ascii_control() => write!(f, "\\x{:02x}", c as u32),
        c if c.is_control() || is_invisible_format(c) => write!(f, "\\u{{{:x}}}", c as u32),
        c => f.write_char(c),
    }
}

/// Format characters that change how the text around them shows (direction overrides,
/// zero-width characters), so that a guest string cannot disguise itself.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_drops_only_trailing_newlines() {
        for parts in [
            vec!["a\n", "\n", "", "b\n\n", "\n"],
            // Past a chunk: the newlines held back at the flush are written when text follows.
            vec!["x\n"; Out::<String>::CHUNK],
            vec![&"y".repeat(Out::<String>::CHUNK), "\n\n", "z\n"],
        ] {
            let mut s = String::new();
            let mut w = Out::new(&mut s);
            for part in &parts {
                w.write_str(part).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(s, parts.concat().trim_end_matches('\n'));
        }
    }

    #[test]
    fn sections_separate_only_non_empty_sections() {
        let mut s = String::new();
        let mut w = Sections::new(&mut s);
        w.next().write_str("one\n").unwrap();
        w.next();
        w.next().write_str("").unwrap();
        w.next().write_str("two\n").unwrap();
        assert!(w.wrote());
        assert_eq!(s, "one\n\ntwo\n");
    }

    #[test]
    fn indent_reads_lines_as_str_lines_does() {
        for text in ["a\nb", "a\r\nb\n", "\n\nx\n\n", "", "lone\rcr"] {
            let mut got = String::new();
            let mut w = Indent::new(&mut got, 3);
            // Split the text at every byte boundary, to cross chunk edges.
            for (i, c) in text.char_indices() {
                w.write_str(&text[i..i + c.len_utf8()]).unwrap();
            }
            w.finish().unwrap();
            let mut want = String::new();
            for line in text.lines() {
                if !line.is_empty() {
                    want.push_str("   ");
                    want.push_str(line);
                }
                want.push('\n');
            }
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn escaping_keeps_text_and_escapes_controls() {
        let cases: [(&str, &str); 8] = [
            ("kworker/0:1", "kworker/0:1"),
            ("victim\n", "victim\\n"),
            ("a\tb\rc", "a\\tb\\rc"),
            ("\x1b[31mred\x07", "\\x1b[31mred\\x07"),
            ("back\\slash \"q\"", "back\\\\slash \"q\""),
            ("nul\0del\x7f", "nul\\x00del\\x7f"),
            ("caf\u{e9} \u{202e}evil", "caf\u{e9} \\u{202e}evil"),
            ("c1\u{85}", "c1\\u{85}"),
        ];
        for (raw, want) in cases {
            assert_eq!(esc(raw).to_string(), want, "{raw:?}");
        }
    }

    #[test]
    fn quoting_escapes_quotes_and_bytes_that_are_not_utf8() {
        assert_eq!(quoted(b"say \"hi\"\n").to_string(), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(quoted(b"\xff\xc3(ok").to_string(), "\"\\xff\\xc3(ok\"");
        assert_eq!(quoted(b"").to_string(), "\"\"");
        // Every byte value: no control character survives.
        let all: Vec<u8> = (0..=255).collect();
        let text = quoted(&all).to_string();
        assert!(!text.chars().any(|c| c.is_control()), "{text}");
    }

    #[test]
    fn capped_passes_the_first_lines_and_counts_the_rest() {
        for (parts, cap, shown, hidden) in [
            (vec!["a\nb\nc\n"], 2, "a\nb\n", 1),
            (vec!["a", "b\nc", "d\n", "e"], 1, "ab\n", 2),
            (vec!["a\n", "b\n"], 5, "a\nb\n", 0),
            (vec!["a\n", "b", "c", "\n"], 1, "a\n", 1),
            (vec!["x"], 0, "", 1),
            (vec![""], 0, "", 0),
        ] {
            let mut s = String::new();
            let mut w = Capped::new(&mut s, cap);
            for p in &parts {
                w.write_str(p).unwrap();
            }
            let got = w.hidden();
            assert_eq!((s.as_str(), got), (shown, hidden), "{parts:?} cap {cap}");
        }
    }

    #[test]
    fn bounded_fails_past_the_limit_only() {
        let mut buf = String::new();
        let mut w = Bounded::new(&mut buf, 4);
        assert!(w.write_str("ab").is_ok());
        assert!(w.write_str("cd").is_ok());
        assert!(w.write_str("e").is_err());
        assert_eq!(buf, "abcd");
    }
}
