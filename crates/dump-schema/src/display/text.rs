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

/// `text`'s lines, each non-empty one indented by `n`, each ending in `\n`.
pub(crate) fn indented_lines(out: &mut dyn Write, text: &str, n: usize) -> fmt::Result {
    let mut w = Indent::new(out, n);
    w.write_str(text)?;
    w.finish()
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
    fn bounded_fails_past_the_limit_only() {
        let mut buf = String::new();
        let mut w = Bounded::new(&mut buf, 4);
        assert!(w.write_str("ab").is_ok());
        assert!(w.write_str("cd").is_ok());
        assert!(w.write_str("e").is_err());
        assert_eq!(buf, "abcd");
    }
}
