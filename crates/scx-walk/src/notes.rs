//! `capture_notes`: every part of a capture that was dropped, capped or doubtful, in
//! words with counts (`user DSQs: 4 of 6 unreadable (reading rhash_head.next: …)`).
//!
//! A walker that loses something says so here as well as in its own section's reason
//! (sections with a reason field keep it: consumers of ktstr 0.50 read those), so that a
//! reader of the JSON never has to guess whether an empty list is empty or lost. The
//! notes are bounded ([`MAX_NOTES`]) like everything read from the guest: a damaged
//! guest can make every object fail, and the notes then count rather than list.

/// Most notes a report carries; the rest are counted in a last note.
pub const MAX_NOTES: usize = 256;
/// Longest note, in bytes (an error chain from a damaged guest can be long).
pub const MAX_NOTE_LEN: usize = 512;

/// The notes of one capture, in the order they were found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    lines: Vec<String>,
    dropped: usize,
}

impl Notes {
    /// Adds `line` (cut to [`MAX_NOTE_LEN`]); an exact repeat is not added twice.
    pub fn push(&mut self, line: impl Into<String>) {
        let mut line = line.into();
        if line.len() > MAX_NOTE_LEN {
            let mut end = MAX_NOTE_LEN;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        if self.lines.contains(&line) {
            return;
        }
        if self.lines.len() >= MAX_NOTES {
            self.dropped += 1;
            return;
        }
        self.lines.push(line);
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The notes for the report, with a last line counting those over the cap.
    pub fn into_lines(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines.push(format!(
                "capture_notes: {} more notes not listed (cap {MAX_NOTES})",
                self.dropped
            ));
        }
        self.lines
    }
}

/// Failures among objects of one kind, with the first reason: a single note however
/// many objects failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    what: String,
    total: usize,
    failed: usize,
    first: Option<String>,
}

impl Tally {
    pub fn new(what: impl Into<String>) -> Tally {
        Tally {
            what: what.into(),
            total: 0,
            failed: 0,
            first: None,
        }
    }

    /// One object read.
    pub fn ok(&mut self) {
        self.total += 1;
    }

    /// One object that could not be read, and why.
    pub fn failed(&mut self, why: impl std::fmt::Display) {
        self.total += 1;
        self.failed += 1;
        if self.first.is_none() {
            self.first = Some(why.to_string());
        }
    }

    pub fn failures(&self) -> usize {
        self.failed
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// `{what}: {failed} of {total} unreadable ({first reason})`, when any failed.
    pub fn note(&self) -> Option<String> {
        let first = self.first.as_deref()?;
        Some(format!(
            "{}: {} of {} unreadable ({first})",
            self.what, self.failed, self.total
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded_deduplicated_and_counted() {
        let mut n = Notes::default();
        n.push("a");
        n.push("a");
        for i in 0..MAX_NOTES + 5 {
            n.push(format!("n{i}"));
        }
        n.push("x".repeat(MAX_NOTE_LEN * 2));
        let lines = n.into_lines();
        assert_eq!(lines.len(), MAX_NOTES + 1);
        assert_eq!(lines[0], "a");
        assert_eq!(
            lines.last().unwrap(),
            "capture_notes: 7 more notes not listed (cap 256)"
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let mut n = Notes::default();
        n.push("é".repeat(MAX_NOTE_LEN));
        assert!(n.lines()[0].len() <= MAX_NOTE_LEN + '…'.len_utf8());
    }

    #[test]
    fn a_tally_names_the_first_reason_and_the_counts() {
        let mut t = Tally::new("user DSQs");
        t.ok();
        assert_eq!(t.note(), None);
        t.failed("reading rhash_head.next: not canonical");
        t.failed("other");
        assert_eq!(
            t.note().unwrap(),
            "user DSQs: 2 of 3 unreadable (reading rhash_head.next: not canonical)"
        );
    }
}
