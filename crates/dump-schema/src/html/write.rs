//! The page's writer: every piece of text goes through one HTML escaping, guest strings
//! through the text rendering's escaping first.

use std::fmt::{self, Write};

use crate::display::for_html::esc;

/// The page being built. Markup is written with [`Page::raw`]; everything else through the
/// escaping methods.
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) buf: String,
}

impl Page {
    /// Markup (never data).
    pub(crate) fn raw(&mut self, s: &str) -> &mut Self {
        self.buf.push_str(s);
        self
    }

    /// Text of ours or already escaped for a terminal, HTML-escaped.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        push_escaped(&mut self.buf, s);
        self
    }

    /// A string from the guest or the document: the text rendering's escaping (`\n`,
    /// `\x1b`, `\u{202e}` made visible), then HTML-escaped.
    pub(crate) fn guest(&mut self, s: &str) -> &mut Self {
        let mut w = Escaping::new(&mut self.buf, usize::MAX);
        // Writing into a String cannot fail, and the limit is never reached.
        let _ = esc(s).write_to(&mut w);
        self
    }

    /// Formatted markup: our own tags and words with numbers in them, never data (which
    /// goes through [`Page::text`] or [`Page::guest`]).
    pub(crate) fn fmt(&mut self, args: fmt::Arguments<'_>) -> &mut Self {
        let _ = self.buf.write_fmt(args);
        self
    }

    /// A sink for the text rendering: what is written to it lands HTML-escaped, up to
    /// `limit` bytes of text (see [`Escaping`]).
    pub(crate) fn sink(&mut self, limit: usize) -> Escaping<'_> {
        Escaping::new(&mut self.buf, limit)
    }

    /// The `comm[pid]` of a task, escaped.
    pub(crate) fn task(&mut self, comm: &str, pid: i32) -> &mut Self {
        self.guest(comm).fmt(format_args!("[{pid}]"))
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

/// A `fmt::Write` that HTML-escapes what it is given and refuses to take more than `limit`
/// bytes of (unescaped) text: the write that would cross it fails with `fmt::Error`, so a
/// rendering stops there, and [`Escaping::cut`] says so.
pub(crate) struct Escaping<'b> {
    buf: &'b mut String,
    left: usize,
    cut: bool,
}

impl<'b> Escaping<'b> {
    fn new(buf: &'b mut String, limit: usize) -> Self {
        Self {
            buf,
            left: limit,
            cut: false,
        }
    }

    /// Whether the limit stopped the text.
    pub(crate) fn cut(&self) -> bool {
        self.cut
    }
}

impl Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() > self.left {
            // Keep what fits, to a character boundary, then stop the rendering.
            let mut end = self.left;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            push_escaped(self.buf, &s[..end]);
            self.left = 0;
            self.cut = true;
            return Err(fmt::Error);
        }
        self.left -= s.len();
        push_escaped(self.buf, s);
        Ok(())
    }
}

/// `s` made safe as HTML text and in a quoted attribute: `&`, `<`, `>`, `"`, `'` as
/// entities; any control character other than `\n` and `\t` (the text rendering leaves
/// none, this is the last line of defence) as a visible `\xNN` / `\u{N}`.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let rep: &str = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            '\n' | '\t' => continue,
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&s[start..i]);
                let _ = write!(out, "\\x{:02x}", c as u32);
                start = i + c.len_utf8();
                continue;
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&s[start..i]);
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
                start = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(rep);
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_escaped(&mut out, s);
        out
    }

    #[test]
    fn markup_and_controls_are_neutralized() {
        assert_eq!(
            escaped("<script>alert('x')</script>&\"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;q&quot;"
        );
        assert_eq!(escaped("a\x1b[31mb\x07\u{85}"), "a\\x1b[31mb\\x07\\u{85}");
        assert_eq!(escaped("two\nlines\tok é"), "two\nlines\tok é");
    }

    #[test]
    fn strings_from_the_guest_are_escaped_twice() {
        let mut p = Page::default();
        p.guest("<b>\n\x1b\u{202e}\"");
        // The terminal escaping first (\n, \x1b and the bidi override made visible), then
        // HTML.
        assert_eq!(p.buf, "&lt;b&gt;\\n\\x1b\\u{202e}&quot;");
    }

    #[test]
    fn the_sink_stops_at_its_limit() {
        let mut p = Page::default();
        let mut w = p.sink(5);
        assert!(w.write_str("ab<").is_ok());
        assert!(w.write_str("déf").is_err());
        assert!(w.cut());
        // 5 bytes of text kept: "ab<" and "d" ("é" would cross the limit).
        assert_eq!(p.buf, "ab&lt;d");
    }
}
