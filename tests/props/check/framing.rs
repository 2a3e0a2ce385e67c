//! `LineFramer` against a naive oracle: the frames of a stream, pushed in pieces of any
//! size, equal a plain split of the whole stream on `'\n'`, and the framer's memory stays
//! within its documented bound.

use gangway::wire::frame::{Frame, LineFramer};

/// The framer's read chunk (64 KiB, private in `frame.rs`): the documented memory bound is
/// `max_line` + one chunk when pieces are at most this large and frames are taken between
/// them.
pub const READ_CHUNK: usize = 64 * 1024;
/// The framer's first allocation (private in `frame.rs`): the cap is never below it.
pub const INITIAL_CAPACITY: usize = 8 * 1024;

/// A frame as the caller sees it, copied out of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// A line without its `'\n'` and without one trailing `'\r'`.
    Line(Vec<u8>),
    /// A line over the limit: its length before the `'\n'`, a `'\r'` included.
    Oversize(usize),
}

/// What the framer must produce for `stream`: split on `'\n'`; a line longer than
/// `max_line` (counting a trailing `'\r'`) is `Oversize` with its length, any other loses
/// one trailing `'\r'`; an unterminated tail is a last frame unless it is empty.
pub fn oracle(max_line: usize, stream: &[u8]) -> Vec<Owned> {
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    // `split` yields at least one (possibly empty) part: the bytes after the last '\n'.
    let tail = parts.pop().unwrap_or_default();
    if !tail.is_empty() {
        parts.push(tail);
    }
    parts
        .into_iter()
        .map(|line| {
            if line.len() > max_line {
                Owned::Oversize(line.len())
            } else {
                Owned::Line(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
            }
        })
        .collect()
}

/// One run: a limit, a stream, the sizes of the pieces it is pushed in (used in turn,
/// cycling), and whether the caller takes frames lazily (a few at a time, sometimes none)
/// instead of draining after every piece.
#[derive(Debug, Clone)]
pub struct Case {
    /// The framer's `max_line`.
    pub max_line: usize,
    /// The whole input.
    pub stream: Vec<u8>,
    /// Piece sizes, cycled; a 0 counts as 1.
    pub pieces: Vec<usize>,
    /// Take at most one frame after most pieces, instead of all of them.
    pub lazy: bool,
}

/// Limits worth reaching from a byte: mostly tiny (every line straddles them), some past
/// the first allocation and past one read chunk.
const LARGE_LIMITS: [usize; 8] = [
    100,
    1_000,
    INITIAL_CAPACITY - 1,
    INITIAL_CAPACITY + 1,
    20_000,
    READ_CHUNK,
    READ_CHUNK + 5,
    200_000,
];

/// The longest stream `case_from_bytes` builds: room for a few lines over the largest limit.
pub const MAX_STREAM: usize = 512 * 1024;

/// Decodes a fuzz input: byte 0 picks the limit, byte 1 the piece policy and laziness,
/// bytes 2..4 seed the piece sizes, the rest is the stream, in which `0xFE c n` stands for
/// the byte `c` (not a newline) repeated `(n + 1) * 256` times, so that a short input can hold lines far
/// longer than any limit. Pieces are at least 1/20 000 of the stream. The stream is cut at `MAX_STREAM` bytes so that one input cannot
/// run for long.
pub fn case_from_bytes(data: &[u8]) -> Case {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let max_line = match at(0) {
        b @ 0..=0xEF => usize::from(b % 48),
        b => LARGE_LIMITS[usize::from(b) % LARGE_LIMITS.len()],
    };
    let policy = at(1);
    let lazy = policy & 1 == 1;
    let largest = [1, 2, 3, 7, 64, 1_000, READ_CHUNK, 3 * READ_CHUNK][usize::from(policy >> 5)];
    let mut seed = u64::from(at(2)) << 8 | u64::from(at(3)) | 0x9E37_79B9_0000_0000;
    let pieces: Vec<usize> = (0..16)
        .map(|_| {
            // xorshift64: deterministic piece sizes from two input bytes.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1 + (seed % largest as u64) as usize
        })
        .collect();
    let mut stream = Vec::new();
    let mut rest = data.get(4..).unwrap_or_default();
    while let Some((&b, tail)) = rest.split_first().filter(|_| stream.len() < MAX_STREAM) {
        match tail {
            // A run of newlines is only many empty lines: not worth the time.
            [c, n, after @ ..] if b == 0xFE && *c != b'\n' => {
                stream.resize(stream.len() + (usize::from(*n) + 1) * 256, *c);
                rest = after;
            }
            _ => {
                stream.push(b);
                rest = tail;
            }
        }
    }
    stream.truncate(MAX_STREAM);
    // At most about 20 000 pieces: byte-sized pieces matter for short streams, and a long
    // one pushed a byte at a time would only make the run slow.
    let floor = stream.len() / 20_000;
    let pieces = pieces.into_iter().map(|p| p.max(floor)).collect();
    Case {
        max_line,
        stream,
        pieces,
        lazy,
    }
}

/// Reads the heap's live bytes and high-water mark, for a caller that counts allocations
/// (the fuzz target installs a counting global allocator; the tests do not, since other
/// tests allocate on other threads).
pub struct Heap {
    /// Bytes allocated and not yet freed.
    pub live: fn() -> usize,
    /// Makes the high-water mark equal to the live bytes.
    pub reset_peak: fn(),
    /// The most bytes live at once since the last reset.
    pub peak: fn() -> usize,
}

/// Pushes `case.stream` through a framer piece by piece and checks, as it goes, that every
/// frame is the next one the oracle expects, that no more frames come than it expects, and
/// (when frames are taken after every piece of at most one read chunk) that the framer
/// holds at most `max_line` unread bytes and buffers at most `max_line` + one piece. With
/// `heap`, also that the framer's own allocations never exceed its documented cap (plus a
/// little for the queue of oversize reports). Panics with the details otherwise.
pub fn check(case: &Case, heap: Option<&Heap>) {
    let max = case.max_line;
    let want = oracle(max, &case.stream);
    let mut want = want.iter().enumerate();
    let bounded = !case.lazy && case.pieces.iter().all(|&n| n <= READ_CHUNK);
    let cap = max.saturating_add(READ_CHUNK).max(INITIAL_CAPACITY);
    let base = heap.map(|h| {
        (h.reset_peak)();
        (h.live)()
    });
    let pieces: &[usize] = if case.pieces.is_empty() {
        &[1]
    } else {
        &case.pieces
    };
    let mut f = LineFramer::new(max);
    let mut rest = &case.stream[..];
    let mut step = 0;
    while !rest.is_empty() {
        let n = pieces[step % pieces.len()].clamp(1, rest.len());
        step += 1;
        f.push(&rest[..n]);
        rest = &rest[n..];
        let limit = if case.lazy && step % 4 != 0 {
            step % 2
        } else {
            usize::MAX
        };
        for _ in 0..limit {
            let Some(frame) = f.next_frame() else { break };
            expect(&f, frame, want.next(), max);
        }
        if bounded {
            assert!(
                f.pending() <= max,
                "after taking every frame, {} bytes are held with max_line {max}: {f:?}",
                f.pending()
            );
            assert!(
                f.buffer().len() <= max + n,
                "buffer of {} bytes after a piece of {n} with max_line {max}: {f:?}",
                f.buffer().len()
            );
            if let (Some(h), Some(base)) = (heap, base) {
                let used = (h.peak)().saturating_sub(base);
                assert!(
                    used <= cap + 4096,
                    "the framer allocated {used} bytes; its cap is {cap} (max_line {max}): {f:?}"
                );
            }
        }
    }
    while let Some(frame) = f.finish() {
        expect(&f, frame, want.next(), max);
    }
    if let Some((i, extra)) = want.next() {
        panic!("the framer ended before frame {i}, {extra:?} (max_line {max})");
    }
    assert_eq!(f.pending(), 0, "finish left bytes behind: {f:?}");
}

/// Compares one frame with the oracle's next, without copying it (so a counting allocator
/// sees only the framer).
fn expect(f: &LineFramer, got: Frame, want: Option<(usize, &Owned)>, max: usize) {
    let Some((i, want)) = want else {
        panic!(
            "the framer gave more frames than the stream has lines: extra {got:?} (max_line {max})"
        );
    };
    let same = match (&got, want) {
        (Frame::Line(r), Owned::Line(w)) => f.buffer().get(r.clone()) == Some(&w[..]),
        (Frame::Oversize { len }, Owned::Oversize(w)) => len == w,
        _ => false,
    };
    if !same {
        let shown = match &got {
            Frame::Line(r) => format!(
                "Line({:?})",
                String::from_utf8_lossy(f.buffer().get(r.clone()).unwrap_or(b"<out of range>"))
            ),
            Frame::Oversize { len } => format!("Oversize({len})"),
        };
        let expected = match want {
            Owned::Line(w) => format!("Line({:?})", String::from_utf8_lossy(w)),
            Owned::Oversize(n) => format!("Oversize({n})"),
        };
        panic!("frame {i}: got {shown}, want {expected} (max_line {max})");
    }
}
