//! Rate limiting of repeated log lines: a backend that writes the same line over and over
//! (to stderr, or garbage to stdout) gets it logged once, then a count at growing
//! milestones and when the run ends, so a flood cannot fill the disk with gangway's log.

use crate::hash::fnv1a64;

/// The first summary of a run of repeats comes after this many suppressed copies; each
/// later one after ten times as many (10, 100, 1000, …), so a flood of N identical lines
/// costs about log10(N) log lines.
pub const FIRST_MILESTONE: u64 = 10;

/// What to do with one line, as decided by [`Repeats::see`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// A run of repeats ended (or reached a milestone): log the previous line's excerpt
    /// with this many suppressed copies first.
    pub summary: Option<(String, u64)>,
    /// Log this line (it differs from the one before it).
    pub show: bool,
}

/// The last line seen on one log source and how often it has been repeated since it was
/// last shown. Holds a hash and a short excerpt, never the whole line.
#[derive(Debug, Default)]
pub struct Repeats {
    last: Option<u64>,
    excerpt: String,
    /// Copies of `last` suppressed and not yet reported.
    pending: u64,
    /// Copies of `last` suppressed in this run, reported or not.
    total: u64,
    /// At this value of `total` the next summary is due.
    next_milestone: u64,
}

impl Repeats {
    /// Notes `line` (whose printable excerpt is `excerpt`) and says what to log.
    pub fn see(&mut self, line: &[u8], excerpt: impl FnOnce() -> String) -> Seen {
        let hash = fnv1a64(line);
        if self.last == Some(hash) {
            self.pending += 1;
            self.total += 1;
            if self.total >= self.next_milestone {
                self.next_milestone = self.next_milestone.saturating_mul(10);
                let n = std::mem::take(&mut self.pending);
                return Seen {
                    summary: Some((self.excerpt.clone(), n)),
                    show: false,
                };
            }
            return Seen {
                summary: None,
                show: false,
            };
        }
        let summary = self.finish();
        self.last = Some(hash);
        self.excerpt = excerpt();
        self.total = 0;
        self.next_milestone = FIRST_MILESTONE;
        Seen {
            summary,
            show: true,
        }
    }

    /// Ends the current run (the source closed): the suppressed copies not yet reported.
    pub fn finish(&mut self) -> Option<(String, u64)> {
        let n = std::mem::take(&mut self.pending);
        let summary = (n > 0).then(|| (self.excerpt.clone(), n));
        self.last = None;
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Repeats, line: &str) -> Seen {
        r.see(line.as_bytes(), || line.to_string())
    }

    #[test]
    fn a_flood_is_shown_once_then_counted_at_milestones_and_at_its_end() {
        let mut r = Repeats::default();
        assert!(feed(&mut r, "same").show);
        let mut summaries = Vec::new();
        for _ in 0..12_345 {
            let s = feed(&mut r, "same");
            assert!(!s.show);
            summaries.extend(s.summary);
        }
        let end = feed(&mut r, "other");
        assert!(end.show);
        summaries.extend(end.summary);
        let counts: Vec<u64> = summaries.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [10, 90, 900, 9000, 2345]);
        assert_eq!(
            counts.iter().sum::<u64>(),
            12_345,
            "every copy is counted once"
        );
        assert!(summaries.iter().all(|(e, _)| e == "same"));
    }

    #[test]
    fn alternating_lines_are_all_shown_and_a_closed_source_reports_its_tail() {
        let mut r = Repeats::default();
        for line in ["a", "b", "a", "b"] {
            assert_eq!(
                feed(&mut r, line),
                Seen {
                    summary: None,
                    show: true
                }
            );
        }
        feed(&mut r, "b");
        feed(&mut r, "b");
        assert_eq!(r.finish(), Some(("b".to_string(), 2)));
        assert_eq!(r.finish(), None);
        assert!(
            feed(&mut r, "b").show,
            "after the end of a run the line is new"
        );
    }
}
