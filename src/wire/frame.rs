//! Newline framing: [`LineFramer`] turns a byte stream, arriving in pieces of
//! any size, into complete lines, with a hard bound on the memory one line
//! may take.
//!
//! # The three cursors
//!
//! Each source owns one `Vec<u8>` split by three cursors, always
//! `pos <= tail <= end <= buf.len()`:
//!
//! ```text
//! 0            pos                tail             end          buf.len()
//! | handed out | whole lines,     | partial line,  |    free    |
//! |            | not yet taken    | no '\n' in it  |            |
//! ```
//!
//! * `pos`: the first byte not yet handed out by `next_frame`. The bytes
//!   before it belong to frames the caller may still be looking at, so they
//!   are reclaimed only at the start of the next `read_from`/`push` (the
//!   "roll", a `copy_within` of `pos..end` to the front). That is what lets a
//!   frame be a plain `Range` instead of a borrow: the caller can hold the
//!   framer as one field of a struct and still borrow another field mutably
//!   while it handles the line.
//! * `tail`: one past the last `'\n'` received. `pos..tail` is zero or more
//!   whole lines, each ending in `'\n'`; `tail..end` is the beginning of a
//!   line whose newline has not arrived yet.
//! * `end`: one past the last byte received (and kept).
//!
//! Newly arrived bytes are searched once, backwards from the new `end`, to
//! move `tail`. Bytes of the partial line are never searched again as more of
//! it trickles in, so a long line delivered a few bytes per read costs linear
//! time, not quadratic. `next_frame` then walks `pos..tail` forwards, which
//! only ever holds whole lines.
//!
//! # Long lines
//!
//! The partial line `tail..end` is never allowed to exceed `max_line` bytes.
//! When it would, the framer forgets the bytes it holds and enters
//! *discarding* mode: later bytes of that line are counted and dropped as
//! they arrive. When its newline finally comes, that newline is kept at the
//! spot where the line would have started (so the line reads as empty) and
//! `oversize` records its position and true length, so that `next_frame`
//! reports [`Frame::Oversize`] in stream order, after the lines that came
//! before it. A line that arrives complete within one read may exceed the
//! limit without being dropped early; `next_frame` reports it as oversize all
//! the same, so which path a long line took is invisible to the caller.
//!
//! The limit counts every byte before the `'\n'`, including the `'\r'` of a
//! CRLF ending: the framer has to hold those bytes before it can know
//! whether a `'\n'` follows, and a one-byte difference at the limit is not
//! worth a second rule.
//!
//! # Memory
//!
//! Reads are at most one chunk (64 KiB), and the buffer grows by doubling
//! up to `max_line + READ_CHUNK`. If the caller takes frames (`next_frame`
//! until `None`) between reads, that cap is never exceeded whatever the
//! input. Whole lines the caller has not taken yet are never dropped: if they
//! alone fill the buffer, it keeps doubling, because losing a message
//! silently would be worse than the memory.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::Range;

use memchr::{memchr, memrchr};

/// The most one `read_from` reads, and the largest piece `push` copies in at
/// a time. 64 KiB is the default Linux pipe capacity, so one read usually
/// drains whatever the peer has written so far.
const READ_CHUNK: usize = 64 * 1024;

/// The first allocation. A gateway keeps one framer per backend, and most
/// backends are idle or send small messages, so start small and let long
/// lines pay for the growth.
const INITIAL_CAPACITY: usize = 8 * 1024;

/// What one call to `next_frame` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line at this range of `buffer()`, without its `\n` (and
    /// without a trailing `\r` if present, CRLF tolerated).
    Line(Range<usize>),
    /// A line longer than the limit was dropped; `len` is its full length in
    /// bytes (counted while discarding, excluding the newline). Reported once
    /// the newline ending it has been seen (or at EOF).
    Oversize {
        /// Bytes before the `'\n'`, a trailing `'\r'` included.
        len: usize,
    },
}

/// A per-source read buffer that splits newline-delimited input into frames.
///
/// Feed it with [`read_from`](Self::read_from) (or [`push`](Self::push)),
/// then call [`next_frame`](Self::next_frame) until it returns `None`; at EOF
/// call [`finish`](Self::finish) until it returns `None`. Lines end at `'\n'`;
/// one `'\r'` before it is stripped. A line longer than `max_line` bytes
/// (counting a trailing `'\r'`) is not kept: it comes out as
/// [`Frame::Oversize`] and framing resumes with the next line. See the module
/// docs for the buffer layout and the memory bound.
pub struct LineFramer {
    /// Received bytes; only `..end` is meaningful, the rest is free space.
    buf: Vec<u8>,
    /// First byte not yet handed out.
    pos: usize,
    /// One past the last `'\n'` received: start of the partial line.
    tail: usize,
    /// One past the last byte kept.
    end: usize,
    /// Longest line accepted, in bytes before the `'\n'`.
    max_line: usize,
    /// Size the buffer grows to while frames are being taken.
    cap: usize,
    /// In discarding mode, the bytes of the current long line seen so far.
    /// While set, `tail == end`: none of that line is held.
    discarding: Option<usize>,
    /// `(position of its '\n', full length)` of each dropped line whose end
    /// has arrived but which `next_frame` has not reported yet, in stream
    /// order. Usually empty or one entry; longer only if the caller lets
    /// several long lines pass without taking frames.
    oversize: VecDeque<(usize, usize)>,
    /// Whether the last `read_from` got some bytes but fewer than it asked for.
    short: bool,
    /// Where the first `'\n'` at or after `pos` is, when a commit found it: then taking a
    /// long line does not search it for its end a second time.
    first_nl: Option<usize>,
}

impl LineFramer {
    /// Creates an empty framer. `max_line` is the longest line accepted
    /// (bytes, excluding the newline; a `'\r'` before it counts). Allocates
    /// 8 KiB up front; the buffer never grows past `max_line + 64 KiB` as
    /// long as frames are taken between reads.
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        LineFramer {
            buf: vec![0; INITIAL_CAPACITY],
            pos: 0,
            tail: 0,
            end: 0,
            max_line,
            cap: max_line.saturating_add(READ_CHUNK).max(INITIAL_CAPACITY),
            discarding: None,
            oversize: VecDeque::new(),
            short: false,
            first_nl: None,
        }
    }

    /// Reads once (at most 64 KiB) from `src` into free space, growing the
    /// buffer by doubling as needed, up to `max_line` + 64 KiB. Before
    /// reading, reclaims the space of frames already handed out, which
    /// invalidates the ranges they carried.
    ///
    /// Returns the number of bytes taken from `src`, including bytes dropped
    /// because they belong to an oversize line; `Ok(0)` means EOF (then call
    /// [`finish`](Self::finish)). Retries `Interrupted`.
    ///
    /// # Errors
    ///
    /// Any error from `src` other than `Interrupted`, unchanged: `WouldBlock`
    /// included, so a non-blocking caller can read until `WouldBlock`. No
    /// input is lost or added on error; the framer stays usable.
    pub fn read_from<R: io::Read>(&mut self, src: &mut R) -> io::Result<usize> {
        self.roll();
        self.make_room();
        let start = self.end;
        let stop = self.buf.len().min(start.saturating_add(READ_CHUNK));
        let n = loop {
            match src.read(&mut self.buf[start..stop]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        // A reader claiming more than the slice it was given is broken;
        // believing it would mean indexing past the buffer.
        let n = n.min(stop - start);
        self.short = n > 0 && n < stop - start;
        if n > 0 {
            self.commit(n);
        }
        Ok(n)
    }

    /// Whether the last [`read_from`](Self::read_from) took some bytes but fewer than it
    /// asked for. From a pipe or a stream socket that means it took everything the source
    /// held at that moment, so a caller with edge-triggered readiness may wait for the
    /// next edge instead of reading again to hear `WouldBlock`; not at a file, nor after
    /// the writer closed (no edge reports the end then; read until `Ok(0)`).
    #[must_use]
    pub fn read_was_short(&self) -> bool {
        self.short
    }

    /// Appends `bytes` as if they had been read, for tests, fuzzing and
    /// sources that are not `Read`. Like `read_from`, first reclaims the
    /// space of frames already handed out, invalidating their ranges. Takes
    /// all of `bytes` however large; bytes of an oversize line are counted,
    /// not stored.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.roll();
        while !bytes.is_empty() {
            if let Some(dropped) = self.discarding {
                // Skip the rest of a long line without copying it in; its
                // newline still goes through `commit`, which closes the line.
                match memchr(b'\n', bytes) {
                    None => {
                        self.discarding = Some(dropped.saturating_add(bytes.len()));
                        return;
                    }
                    Some(i) => {
                        self.discarding = Some(dropped.saturating_add(i));
                        bytes = &bytes[i..];
                    }
                }
            }
            self.make_room();
            // Pieces of at most one read chunk, as in `read_from`: the partial
            // line is checked against the limit after every piece, so no more
            // than `max_line` + one chunk of a line is ever held, even when
            // untaken frames have grown the buffer past the cap.
            let n = (self.buf.len() - self.end).min(READ_CHUNK).min(bytes.len());
            let (piece, rest) = bytes.split_at(n);
            self.buf[self.end..self.end + n].copy_from_slice(piece);
            self.commit(n);
            bytes = rest;
        }
    }

    /// The next complete frame, or `None` when more input is needed.
    ///
    /// A range returned stays valid until the next call to
    /// `read_from`/`push`/`finish`, not just until the next `next_frame`:
    /// several frames may be taken and then used. Empty lines (`"\n"` or
    /// `"\r\n"`) come out as empty ranges; skipping them is the caller's
    /// choice.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.pos >= self.tail {
            return None;
        }
        let start = self.pos;
        // `pos..tail` holds whole lines, so there is a newline; `?` only
        // spares a panic should that invariant ever break.
        let nl = match self.first_nl.take() {
            Some(nl) if (start..self.tail).contains(&nl) && self.buf[nl] == b'\n' => nl,
            _ => start + memchr(b'\n', &self.buf[start..self.tail])?,
        };
        self.pos = nl + 1;
        if let Some(&(at, len)) = self.oversize.front() {
            if at == nl {
                self.oversize.pop_front();
                return Some(Frame::Oversize { len });
            }
        }
        Some(self.classify(start, nl))
    }

    /// At EOF: the unterminated tail, if any, as a final frame (`Line`, with
    /// a trailing `'\r'` stripped, or `Oversize`); `None` if nothing is left.
    /// An empty tail gives `None`.
    ///
    /// If whole lines are still waiting, they come first, so calling
    /// `finish` until `None` drains everything. Afterwards the framer is
    /// empty and can take a new stream.
    pub fn finish(&mut self) -> Option<Frame> {
        if let Some(frame) = self.next_frame() {
            return Some(frame);
        }
        if let Some(len) = self.discarding.take() {
            return Some(Frame::Oversize { len });
        }
        if self.tail >= self.end {
            return None;
        }
        let frame = self.classify(self.tail, self.end);
        self.tail = self.end;
        self.pos = self.end;
        self.first_nl = None;
        Some(frame)
    }

    /// The buffer that [`Frame::Line`] ranges index into.
    #[must_use]
    pub fn buffer(&self) -> &[u8] {
        &self.buf[..self.end]
    }

    /// Bytes buffered and not yet handed out: whole lines not taken plus the
    /// partial line. Bytes dropped from an oversize line are not counted.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.end - self.pos
    }

    /// Moves everything not yet handed out to the front, so free space is one
    /// contiguous run after `end` and the handed-out bytes are reused.
    fn roll(&mut self) {
        let shift = self.pos;
        if shift == 0 {
            // Nothing to reclaim; skipping the copy means a long partial line
            // is moved once per line, not once per read.
            return;
        }
        self.buf.copy_within(shift..self.end, 0);
        self.pos = 0;
        self.tail -= shift;
        self.first_nl = self.first_nl.map(|nl| nl.saturating_sub(shift));
        self.end -= shift;
        for mark in &mut self.oversize {
            mark.0 = mark.0.saturating_sub(shift);
        }
    }

    /// Ensures there is at least one free byte after `end`.
    fn make_room(&mut self) {
        let len = self.buf.len();
        let mut target = len;
        // Grow once the held bytes pass half the buffer: a quiet source keeps
        // a small buffer, and a long line costs a logarithmic number of
        // reallocations.
        while target < self.cap && target - self.end < target / 2 {
            target = target.saturating_mul(2).min(self.cap);
        }
        if target <= self.end {
            // Full at the cap. The partial line alone cannot do that (it is at
            // most `max_line`, and the cap leaves a read chunk more), so these
            // are whole lines the caller has not taken; they are its to
            // drop, not ours.
            target = self.end.saturating_mul(2).max(INITIAL_CAPACITY);
        }
        if target > len {
            // `resize` alone may round capacity up to double, which would
            // break the bound at the cap.
            self.buf.reserve_exact(target - len);
            self.buf.resize(target, 0);
        }
    }

    /// Takes in `n` new bytes that were just written at `buf[end..end + n]`.
    fn commit(&mut self, mut n: usize) {
        if let Some(dropped) = self.discarding {
            let start = self.end;
            match memchr(b'\n', &self.buf[start..start + n]) {
                None => {
                    self.discarding = Some(dropped.saturating_add(n));
                    return;
                }
                Some(i) => {
                    // The long line ends here. Its newline and what follows
                    // slide down onto `end`, where the line would have begun,
                    // so it reads as an empty line and the note says what it
                    // really was.
                    self.buf.copy_within(start + i..start + n, start);
                    self.oversize.push_back((start, dropped.saturating_add(i)));
                    self.discarding = None;
                    n -= i;
                }
            }
        }
        let new_end = self.end + n;
        if let Some(i) = memrchr(b'\n', &self.buf[self.end..new_end]) {
            if self.pos == self.tail {
                // No whole line was waiting, and `tail..end` has no newline: the first one
                // after `pos` is among these bytes.
                self.first_nl = memchr(b'\n', &self.buf[self.end..new_end]).map(|j| self.end + j);
            }
            self.tail = self.end + i + 1;
        }
        self.end = new_end;
        let partial = self.end - self.tail;
        if partial > self.max_line {
            self.discarding = Some(partial);
            self.end = self.tail;
        }
    }

    /// The frame for the line `buf[start..stop]` (newline excluded).
    fn classify(&self, start: usize, stop: usize) -> Frame {
        let len = stop - start;
        if len > self.max_line {
            return Frame::Oversize { len };
        }
        let stop = if len > 0 && self.buf[stop - 1] == b'\r' {
            stop - 1
        } else {
            stop
        };
        Frame::Line(start..stop)
    }
}

/// Shows the cursors, not the bytes: the buffer can hold megabytes.
impl fmt::Debug for LineFramer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineFramer")
            .field("pos", &self.pos)
            .field("tail", &self.tail)
            .field("end", &self.end)
            .field("buf_len", &self.buf.len())
            .field("max_line", &self.max_line)
            .field("cap", &self.cap)
            .field("discarding", &self.discarding)
            .field("oversize", &self.oversize)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A frame copied out of the buffer, so results outlive the framer state.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Line(Vec<u8>),
        Oversize(usize),
    }

    fn own(f: &LineFramer, frame: Frame) -> Owned {
        match frame {
            Frame::Line(r) => Owned::Line(f.buffer()[r].to_vec()),
            Frame::Oversize { len } => Owned::Oversize(len),
        }
    }

    fn drain(f: &mut LineFramer, out: &mut Vec<Owned>) {
        drain_some(f, out, usize::MAX);
    }

    /// Takes at most `limit` frames, as a caller that stops early would.
    fn drain_some(f: &mut LineFramer, out: &mut Vec<Owned>, limit: usize) {
        for _ in 0..limit {
            let Some(frame) = f.next_frame() else { break };
            let o = own(f, frame);
            out.push(o);
        }
    }

    fn finish_all(f: &mut LineFramer, out: &mut Vec<Owned>) {
        while let Some(frame) = f.finish() {
            let o = own(f, frame);
            out.push(o);
        }
    }

    fn line(s: &str) -> Owned {
        Owned::Line(s.as_bytes().to_vec())
    }

    /// Everything through push in one piece, then EOF.
    fn frames_of(max: usize, input: &[u8]) -> Vec<Owned> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        f.push(input);
        drain(&mut f, &mut out);
        finish_all(&mut f, &mut out);
        out
    }

    /// Byte by byte, taking frames after every byte, then EOF.
    fn frames_bytewise(max: usize, input: &[u8]) -> Vec<Owned> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for b in input {
            f.push(std::slice::from_ref(b));
            drain(&mut f, &mut out);
        }
        finish_all(&mut f, &mut out);
        out
    }

    /// The specification, written the obvious way over the whole input.
    fn oracle(max: usize, input: &[u8]) -> Vec<Owned> {
        let classify = |seg: &[u8]| {
            if seg.len() > max {
                Owned::Oversize(seg.len())
            } else {
                Owned::Line(seg.strip_suffix(b"\r").unwrap_or(seg).to_vec())
            }
        };
        let mut segs: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = segs.pop().unwrap();
        let mut out: Vec<Owned> = segs.into_iter().map(classify).collect();
        if !last.is_empty() {
            out.push(classify(last));
        }
        out
    }

    #[test]
    fn line_split_across_reads_byte_by_byte() {
        let input = b"hello\nworld\n{\"id\":1}\n";
        let want = vec![line("hello"), line("world"), line("{\"id\":1}")];
        assert_eq!(frames_bytewise(64, input), want);
    }

    #[test]
    fn many_lines_in_one_read_taken_then_used() {
        let mut f = LineFramer::new(64);
        f.push(b"a\nbb\n\nccc\nrest");
        // Take every frame first, then use the ranges: they must all still
        // point at the right bytes.
        let mut frames = Vec::new();
        while let Some(frame) = f.next_frame() {
            frames.push(frame);
        }
        let texts: Vec<&[u8]> = frames
            .into_iter()
            .map(|fr| match fr {
                Frame::Line(r) => &f.buffer()[r],
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(texts, vec![&b"a"[..], b"bb", b"", b"ccc"]);
        assert_eq!(f.pending(), 4);
        assert_eq!(f.finish().map(|fr| own(&f, fr)), Some(line("rest")));
        assert_eq!(f.finish(), None);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn crlf_is_tolerated() {
        let input = b"a\r\nb\r\n\r\nx\ry\nc\r";
        let want = vec![line("a"), line("b"), line(""), line("x\ry"), line("c")];
        assert_eq!(frames_of(64, input), want);
        assert_eq!(frames_bytewise(64, input), want);
    }

    #[test]
    fn empty_lines_are_empty_ranges() {
        let mut f = LineFramer::new(8);
        f.push(b"\n\r\n\n");
        for _ in 0..3 {
            match f.next_frame() {
                Some(Frame::Line(r)) => assert!(r.is_empty(), "{r:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn eof_with_and_without_trailing_newline() {
        assert_eq!(frames_of(8, b"abc\n"), vec![line("abc")]);
        assert_eq!(frames_of(8, b"abc"), vec![line("abc")]);
        assert_eq!(frames_of(8, b"abc\ndef"), vec![line("abc"), line("def")]);
        assert_eq!(frames_of(8, b""), vec![]);

        let mut f = LineFramer::new(8);
        f.push(b"abc");
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.pending(), 3);
        // finish on its own also yields lines still waiting, then the tail.
        let mut g = LineFramer::new(8);
        g.push(b"x\ny");
        let mut out = Vec::new();
        finish_all(&mut g, &mut out);
        assert_eq!(out, vec![line("x"), line("y")]);
    }

    #[test]
    fn framer_is_reusable_after_finish() {
        let mut f = LineFramer::new(8);
        let mut out = Vec::new();
        f.push(b"one");
        finish_all(&mut f, &mut out);
        f.push(b"two\n");
        drain(&mut f, &mut out);
        assert_eq!(out, vec![line("one"), line("two")]);
    }

    #[test]
    fn exactly_max_line_accepted_one_more_rejected() {
        for feed in [frames_of as fn(usize, &[u8]) -> Vec<Owned>, frames_bytewise] {
            assert_eq!(feed(5, b"12345\n"), vec![line("12345")]);
            assert_eq!(feed(5, b"123456\n"), vec![Owned::Oversize(6)]);
            assert_eq!(feed(5, b"12345"), vec![line("12345")]);
            assert_eq!(feed(5, b"123456"), vec![Owned::Oversize(6)]);
            // The '\r' of CRLF counts toward the limit.
            assert_eq!(feed(5, b"1234\r\n"), vec![line("1234")]);
            assert_eq!(feed(5, b"12345\r\n"), vec![Owned::Oversize(6)]);
        }
    }

    #[test]
    fn max_line_zero_accepts_only_empty_lines() {
        let want = vec![line(""), line(""), Owned::Oversize(1), line("")];
        assert_eq!(frames_of(0, b"\n\nx\n\n"), want);
        assert_eq!(frames_bytewise(0, b"\n\nx\n\n"), want);
    }

    #[test]
    fn oversize_line_followed_by_normal_line() {
        let input = b"aaaaaaaaaa\nok\n";
        let want = vec![Owned::Oversize(10), line("ok")];
        assert_eq!(frames_of(4, input), want);
        assert_eq!(frames_bytewise(4, input), want);

        // Split so the limit is crossed in one piece and the newline arrives
        // in another, together with the next line.
        let mut f = LineFramer::new(4);
        let mut out = Vec::new();
        f.push(b"first\nbbb");
        drain(&mut f, &mut out);
        f.push(b"bbbbb");
        drain(&mut f, &mut out);
        assert_eq!(f.pending(), 0, "the long line must not be held");
        f.push(b"bb\nok\n");
        drain(&mut f, &mut out);
        assert_eq!(
            out,
            vec![Owned::Oversize(5), Owned::Oversize(10), line("ok")]
        );
    }

    #[test]
    fn several_oversize_lines_pending_keep_order() {
        // Frames are not taken between pushes, so dropped lines pile up.
        let mut f = LineFramer::new(3);
        for piece in [&b"ab\naaaaa"[..], b"aa\n", b"bbbbb", b"b\nc\ndddd", b"d"] {
            f.push(piece);
        }
        let mut out = Vec::new();
        finish_all(&mut f, &mut out);
        assert_eq!(
            out,
            vec![
                line("ab"),
                Owned::Oversize(7),
                Owned::Oversize(6),
                line("c"),
                Owned::Oversize(5)
            ]
        );
    }

    #[test]
    fn pending_oversize_survives_roll() {
        // Some frames taken, a dropped line's report still waiting: the next
        // push rolls the buffer and the report must move with its newline.
        let mut f = LineFramer::new(3);
        let mut out = Vec::new();
        f.push(b"a\nb\naaaaaa\nc\n");
        f.push(b"x\nzzzz");
        drain_some(&mut f, &mut out, 1);
        f.push(b"zz\ny\n");
        drain_some(&mut f, &mut out, 2);
        f.push(b"w\n");
        finish_all(&mut f, &mut out);
        assert_eq!(
            out,
            vec![
                line("a"),
                line("b"),
                Owned::Oversize(6),
                line("c"),
                line("x"),
                Owned::Oversize(6),
                line("y"),
                line("w")
            ]
        );
    }

    #[test]
    fn untaken_frames_are_kept_past_the_cap() {
        let max = 10;
        let mut f = LineFramer::new(max);
        let mut input = Vec::new();
        for i in 0..40_000 {
            input.extend_from_slice(format!("{:05}\n", i % 100_000).as_bytes());
        }
        // One push of 240 KB of short lines, nothing taken in between.
        f.push(&input);
        assert!(f.buf.len() > max + READ_CHUNK, "{f:?}");
        let mut out = Vec::new();
        finish_all(&mut f, &mut out);
        assert_eq!(out, oracle(max, &input));
    }

    #[test]
    fn oversize_line_at_eof() {
        let mut f = LineFramer::new(4);
        f.push(b"ok\naaaaaaaaa");
        assert_eq!(f.next_frame().map(|fr| own(&f, fr)), Some(line("ok")));
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.finish(), Some(Frame::Oversize { len: 9 }));
        assert_eq!(f.finish(), None);
        assert_eq!(frames_bytewise(4, b"aaaaa\r"), vec![Owned::Oversize(6)]);
    }

    /// Produces `len` bytes of `b'a'`, then `then`, then EOF, without ever
    /// holding the long line.
    struct LongLine {
        left: usize,
        then: &'static [u8],
    }

    impl Read for LongLine {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left > 0 {
                let n = self.left.min(buf.len());
                buf[..n].fill(b'a');
                self.left -= n;
                return Ok(n);
            }
            let n = self.then.len().min(buf.len());
            buf[..n].copy_from_slice(&self.then[..n]);
            self.then = &self.then[n..];
            Ok(n)
        }
    }

    const MIB: usize = 1024 * 1024;

    #[test]
    fn huge_line_does_not_grow_memory_read_from() {
        let max = MIB;
        let mut f = LineFramer::new(max);
        let mut src = LongLine {
            left: 100 * MIB,
            then: b"\nok\n",
        };
        let mut out = Vec::new();
        loop {
            let n = f.read_from(&mut src).unwrap();
            assert!(f.buf.capacity() <= max + READ_CHUNK, "{f:?}");
            assert!(f.pending() <= max, "{f:?}");
            if n == 0 {
                break;
            }
            drain(&mut f, &mut out);
        }
        finish_all(&mut f, &mut out);
        assert_eq!(out, vec![Owned::Oversize(100 * MIB), line("ok")]);
    }

    #[test]
    fn huge_line_does_not_grow_memory_push() {
        let max = MIB;
        let mut f = LineFramer::new(max);
        let piece = vec![b'a'; MIB];
        for _ in 0..100 {
            f.push(&piece);
            assert!(f.buf.capacity() <= max + READ_CHUNK, "{f:?}");
            assert_eq!(f.next_frame(), None);
        }
        f.push(b"\r\nok\n");
        let mut out = Vec::new();
        drain(&mut f, &mut out);
        assert_eq!(out, vec![Owned::Oversize(100 * MIB + 1), line("ok")]);
        assert!(f.buf.capacity() <= max + READ_CHUNK, "{f:?}");
    }

    #[test]
    fn buffer_starts_small_and_doubles() {
        let mut f = LineFramer::new(MIB);
        assert_eq!(f.buf.capacity(), INITIAL_CAPACITY);
        let mut src = LongLine {
            left: 300 * 1024,
            then: b"\n",
        };
        let mut out = Vec::new();
        while f.read_from(&mut src).unwrap() > 0 {
            assert!(f.buf.len().is_power_of_two(), "{f:?}");
            drain(&mut f, &mut out);
        }
        assert_eq!(out, vec![Owned::Line(vec![b'a'; 300 * 1024])]);
        assert!(f.buf.capacity() <= 1024 * 1024, "{f:?}");
    }

    enum Step {
        Data(&'static [u8]),
        Fail(io::ErrorKind),
    }

    /// Plays a fixed script of reads; EOF after it.
    struct Scripted(std::vec::IntoIter<Step>);

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.next() {
                None => Ok(0),
                Some(Step::Fail(kind)) => Err(kind.into()),
                Some(Step::Data(d)) => {
                    assert!(d.len() <= buf.len());
                    buf[..d.len()].copy_from_slice(d);
                    Ok(d.len())
                }
            }
        }
    }

    #[test]
    fn read_from_retries_interrupted_and_passes_would_block() {
        use io::ErrorKind::{BrokenPipe, Interrupted, WouldBlock};
        let mut src = Scripted(
            vec![
                Step::Fail(Interrupted),
                Step::Fail(Interrupted),
                Step::Data(b"ab"),
                Step::Fail(WouldBlock),
                Step::Data(b"c\r\nd"),
                Step::Fail(BrokenPipe),
            ]
            .into_iter(),
        );
        let mut f = LineFramer::new(16);
        assert_eq!(f.read_from(&mut src).unwrap(), 2);
        assert_eq!(f.next_frame(), None);
        assert_eq!(f.read_from(&mut src).unwrap_err().kind(), WouldBlock);
        assert_eq!(f.pending(), 2, "a failed read must not disturb the buffer");
        assert_eq!(f.read_from(&mut src).unwrap(), 4);
        assert_eq!(f.next_frame().map(|fr| own(&f, fr)), Some(line("abc")));
        assert_eq!(f.read_from(&mut src).unwrap_err().kind(), BrokenPipe);
        assert_eq!(f.read_from(&mut src).unwrap(), 0);
        assert_eq!(f.finish().map(|fr| own(&f, fr)), Some(line("d")));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn lying_reader_does_not_panic() {
        struct Liar;
        impl Read for Liar {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                Ok(buf.len() + 100)
            }
        }
        let mut f = LineFramer::new(16);
        let n = f.read_from(&mut Liar).unwrap();
        assert!(n <= f.buf.len());
        assert!(f.pending() <= 16);
    }

    /// Small deterministic PRNG (xorshift64), so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// Uniform-ish in `0..n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// One random test case: a limit, a stream, and a chunking policy.
    struct Case {
        max: usize,
        input: Vec<u8>,
        max_chunk: usize,
    }

    fn gen_case(rng: &mut XorShift) -> Case {
        // Mostly small limits so many lines straddle them; some large ones so
        // the buffer has to grow past its initial size and reads hit the cap.
        let max = if rng.below(8) == 0 {
            rng.pick(&[9_000, 20_000, 70_000])
        } else {
            rng.below(40)
        };
        let mut input = Vec::new();
        if rng.below(2) == 0 {
            // Lines with lengths chosen around the limit.
            let lines = 1 + rng.below(if max > 1000 { 12 } else { 60 });
            for _ in 0..lines {
                let len = match rng.below(8) {
                    0 => 0,
                    1 => max.saturating_sub(1),
                    2 => max,
                    3 => max + 1,
                    4 => max + 2,
                    5 => max * 2 + rng.below(5),
                    6 => rng.below(3 * max + 3),
                    _ => rng.below(max + 1),
                };
                for _ in 0..len {
                    let b = match rng.below(16) {
                        0 => b'\r',
                        1 => rng.next() as u8,
                        _ => b'a' + rng.below(26) as u8,
                    };
                    // Lengths are exact: no stray newlines inside a line.
                    input.push(if b == b'\n' { b'n' } else { b });
                }
                match rng.below(4) {
                    0 => input.extend_from_slice(b"\r\n"),
                    _ => input.push(b'\n'),
                }
            }
            if rng.below(3) == 0 {
                input.pop();
            }
        } else {
            // Raw bytes with a random newline density.
            let len = rng.below(if max > 1000 { 300_000 } else { 2_000 });
            let density = rng.pick(&[2, 5, 20, 100, 1_000, 100_000]);
            for _ in 0..len {
                input.push(match rng.below(density) {
                    0 => b'\n',
                    1 => b'\r',
                    _ => rng.next() as u8,
                });
            }
        }
        let max_chunk = rng.pick(&[1, 2, 3, 7, 64, 1_000, 70_000, 200_000]);
        Case {
            max,
            input,
            max_chunk,
        }
    }

    #[test]
    fn random_streams_through_push_match_oracle() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for case_no in 0..400 {
            let case = gen_case(&mut rng);
            let want = oracle(case.max, &case.input);
            // Sometimes take only a few frames between pushes: order and
            // content must not depend on when the caller drains.
            let lazy = rng.below(3) == 0;
            let mut f = LineFramer::new(case.max);
            let mut got = Vec::new();
            let mut rest = &case.input[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(case.max_chunk)).min(rest.len());
                f.push(&rest[..n]);
                rest = &rest[n..];
                if lazy {
                    if rng.below(4) == 0 {
                        drain_some(&mut f, &mut got, rng.below(4));
                    }
                } else {
                    drain(&mut f, &mut got);
                    if case.max_chunk <= READ_CHUNK {
                        assert!(f.buf.capacity() <= f.cap, "case {case_no}: {f:?}");
                        assert!(f.pending() <= case.max, "case {case_no}: {f:?}");
                    }
                }
            }
            finish_all(&mut f, &mut got);
            assert_eq!(got, want, "case {case_no}: max {}", case.max);
        }
    }

    /// Hands out its data in random-sized pieces, with spurious
    /// `WouldBlock` and `Interrupted` errors sprinkled in.
    struct Chunky<'a> {
        data: &'a [u8],
        rng: XorShift,
        max_chunk: usize,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.rng.below(10) {
                0 => return Err(io::ErrorKind::WouldBlock.into()),
                1 => return Err(io::ErrorKind::Interrupted.into()),
                _ => {}
            }
            let n = (1 + self.rng.below(self.max_chunk))
                .min(buf.len())
                .min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn random_streams_through_read_from_match_oracle() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for case_no in 0..400 {
            let case = gen_case(&mut rng);
            let want = oracle(case.max, &case.input);
            let lazy = rng.below(3) == 0;
            let mut src = Chunky {
                data: &case.input,
                rng: XorShift(rng.next() | 1),
                max_chunk: case.max_chunk,
            };
            let mut f = LineFramer::new(case.max);
            let mut got = Vec::new();
            loop {
                match f.read_from(&mut src) {
                    Ok(0) => break,
                    Ok(n) => assert!(n <= READ_CHUNK, "case {case_no}: read {n}"),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("case {case_no}: unexpected error {e}"),
                }
                if lazy {
                    drain_some(&mut f, &mut got, rng.below(4));
                    continue;
                }
                drain(&mut f, &mut got);
                if !lazy {
                    assert!(f.buf.capacity() <= f.cap, "case {case_no}: {f:?}");
                    assert!(f.pending() <= case.max, "case {case_no}: {f:?}");
                }
            }
            finish_all(&mut f, &mut got);
            assert_eq!(got, want, "case {case_no}: max {}", case.max);
        }
    }
}
