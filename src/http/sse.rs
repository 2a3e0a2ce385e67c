//! A parser for `text/event-stream` bodies as the client side reads them (sans-IO), by the
//! WHATWG HTML standard's event-stream interpretation: fed body bytes in pieces of any
//! size, it gives the events whose data is complete, keeps the last event id for
//! resumption (`Last-Event-ID`) and the server's `retry:` advice.

use std::fmt;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, `None` when absent or empty (the standard's `"message"`).
    pub name: Option<String>,
    /// The last event id at dispatch (set by this event's `id:` or an earlier one), `None`
    /// when no id was given or the last one was empty.
    pub id: Option<String>,
    /// The `data:` lines joined with `\n` (no trailing newline), as raw bytes.
    pub data: Vec<u8>,
}

/// Why a stream cannot be parsed further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// One event (its data and the line being read) passes the bound.
    EventTooLarge { max: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { max } => write!(
                f,
                "an event from the server's event stream is over {max} bytes; the stream is closed (raise max_message_bytes in the config if such messages are expected)"
            ),
        }
    }
}

impl std::error::Error for SseError {}

/// An event-stream parser: feed it body bytes with [`SseParser::feed`].
///
/// Lines end with `\n`, `\r\n` or `\r`, split anywhere between feeds. A leading byte-order
/// mark is skipped. `data:` lines are joined with `\n`; `event:` names the event; `id:`
/// sets the last event id (a value with NUL is ignored); `retry:` with only digits sets
/// [`SseParser::retry`]; lines starting with `:` are comments; other fields are ignored.
/// A blank line dispatches the event when it has data (an event with no `data:` line
/// only updates the last event id). Field values lose one leading space. A pending event
/// at the end of the stream is not an event.
#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    /// The line being read, without its end.
    line: Vec<u8>,
    /// The last byte seen was a `\r`: a `\n` right after it ends nothing.
    after_cr: bool,
    /// Bytes of a leading byte-order mark matched so far (3 when the check is over).
    bom: usize,
    data: Vec<u8>,
    /// A `data:` line was seen (the data may still be empty: `data:` alone).
    has_data: bool,
    name: Option<String>,
    /// The id the event being read sets (the standard's last event ID buffer), which
    /// becomes `last_event_id` when the event ends.
    id_buffer: Option<String>,
    last_event_id: Option<String>,
    retry: Option<u64>,
    /// An event passed the bound: every further feed fails.
    failed: bool,
}

/// Bytes a line may have beyond the event's data bound: room for a field name and its
/// separator, so that `data: ` and a message of exactly the bound fit.
const LINE_SLACK: usize = 64;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser whose events carry at most `max_event` bytes of data (the caller's
    /// `max_message_bytes`); any one line may be 64 bytes longer than what would take the
    /// event there (for its field name), so no buffer grows past `max_event` + 64.
    pub fn new(max_event: usize) -> SseParser {
        SseParser {
            max_event,
            line: Vec::new(),
            after_cr: false,
            bom: 0,
            data: Vec::new(),
            has_data: false,
            name: None,
            id_buffer: None,
            last_event_id: None,
            retry: None,
            failed: false,
        }
    }

    /// The last event id of the stream (what a reconnection sends as `Last-Event-ID`): set
    /// by `id:` once its event ends with a blank line, so an event cut short does not
    /// count; `None` if none was set or it was set empty.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The reconnection delay in milliseconds the server last advised with `retry:`.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Parses `input`, appending each event completed to `out`. On error, the events
    /// completed before it are in `out`, and every further feed fails the same way.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if self.failed {
            return Err(SseError::EventTooLarge {
                max: self.max_event,
            });
        }
        let result = self.parse(input, out);
        self.failed = result.is_err();
        result
    }

    fn parse(&mut self, mut input: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        while self.bom < BOM.len() {
            let Some(&b) = input.first() else {
                return Ok(());
            };
            if b == BOM[self.bom] {
                self.bom += 1;
                input = &input[1..];
            } else {
                // Not a byte-order mark: what matched of it is ordinary text.
                self.line.extend_from_slice(&BOM[..self.bom]);
                self.bom = BOM.len();
            }
        }
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', input) {
                None => {
                    self.line.extend_from_slice(input);
                    self.check()?;
                    return Ok(());
                }
                Some(i) => {
                    self.line.extend_from_slice(&input[..i]);
                    self.check()?;
                    self.after_cr = input[i] == b'\r';
                    input = &input[i + 1..];
                    self.end_line(out);
                    self.check()?;
                }
            }
        }
        Ok(())
    }

    /// The bound: an event's data at most `max_event` bytes, and the line being read at
    /// most what would take it there plus [`LINE_SLACK`]. Checked after every byte added
    /// to the line, in effect (the line only grows until its end, where it is checked
    /// whole), so whether it fails does not depend on how the stream was split.
    fn check(&self) -> Result<(), SseError> {
        if self.data.len() > self.max_event
            || self.data.len() + self.line.len() > self.max_event.saturating_add(LINE_SLACK)
        {
            return Err(SseError::EventTooLarge {
                max: self.max_event,
            });
        }
        Ok(())
    }

    /// Interprets the line just read and clears it.
    fn end_line(&mut self, out: &mut Vec<Event>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
        } else if line[0] != b':' {
            let (field, value) = match memchr::memchr(b':', &line) {
                Some(c) => {
                    let v = &line[c + 1..];
                    (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                b"event" => {
                    self.name =
                        Some(String::from_utf8_lossy(value).into_owned()).filter(|n| !n.is_empty())
                }
                b"id" if !value.contains(&0) => {
                    self.id_buffer = Some(String::from_utf8_lossy(value).into_owned());
                }
                b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                    // Digits only, so parsing fails only by overflow: the largest delay.
                    self.retry = Some(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(u64::MAX),
                    );
                }
                _ => {}
            }
        }
        // The allocation is kept for the next line.
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let name = self.name.take();
        if let Some(id) = &self.id_buffer {
            self.last_event_id = Some(id.clone()).filter(|i| !i.is_empty());
        }
        if !self.has_data {
            self.data.clear();
            return;
        }
        self.has_data = false;
        out.push(Event {
            name,
            id: self.last_event_id.clone(),
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `pieces` in order with a bound of `max`: the events, and the error if any.
    fn parse(pieces: &[&[u8]], max: usize) -> (Vec<Event>, Option<SseError>, SseParser) {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for piece in pieces {
            if let Err(e) = p.feed(piece, &mut out) {
                return (out, Some(e), p);
            }
        }
        (out, None, p)
    }

    /// The outcome whole, split at every position, and byte by byte, checked equal: the
    /// events, the error, the last event id and the retry advice.
    type Outcome = (Vec<Event>, Option<SseError>, Option<String>, Option<u64>);

    fn parse_every_way(stream: &[u8], max: usize) -> Outcome {
        let outcome = |(events, err, p): (Vec<Event>, Option<SseError>, SseParser)| {
            let id = p.last_event_id().map(str::to_string);
            (events, err, id, p.retry())
        };
        let whole = outcome(parse(&[stream], max));
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(outcome(parse(&[a, b], max)), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(outcome(parse(&bytes, max)), whole, "bytewise");
        whole
    }

    fn event(name: Option<&str>, id: Option<&str>, data: &str) -> Event {
        Event {
            name: name.map(str::to_string),
            id: id.map(str::to_string),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_standards_examples() {
        let (events, ..) = parse_every_way(b"data: YHOO\ndata: +2\ndata: 10\n\n", 100);
        assert_eq!(events, [event(None, None, "YHOO\n+2\n10")]);
        let stream =
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n";
        let (events, err, id, _) = parse_every_way(stream, 100);
        assert_eq!(
            events,
            [
                event(None, Some("1"), "first event"),
                event(None, None, "second event"),
            ]
        );
        assert!(err.is_none() && id.is_none());
        let (events, ..) = parse_every_way(b"data\n\ndata\ndata\n\ndata:", 100);
        assert_eq!(events, [event(None, None, ""), event(None, None, "\n")]);
        let (events, ..) = parse_every_way(b"data:test\n\ndata: test\n\n", 100);
        assert_eq!(
            events,
            [event(None, None, "test"), event(None, None, "test")]
        );
    }

    #[test]
    fn every_line_end_works_split_anywhere() {
        let stream = b"event: message\r\nid: 0.1\r\ndata: {\"a\":1}\r\n\r\nevent:endpoint\rdata: /messages?s=1\r\rdata: x\n\r\n";
        let (events, err, id, _) = parse_every_way(stream, 100);
        assert_eq!(
            events,
            [
                event(Some("message"), Some("0.1"), "{\"a\":1}"),
                event(Some("endpoint"), Some("0.1"), "/messages?s=1"),
                event(None, Some("0.1"), "x"),
            ]
        );
        assert!(err.is_none());
        assert_eq!(id.as_deref(), Some("0.1"));
        // "\r\r" is two line ends, "\r\n" one.
        let (events, ..) = parse_every_way(b"data: a\r\rdata: b\r\n\r\n", 100);
        assert_eq!(events, [event(None, None, "a"), event(None, None, "b")]);
    }

    #[test]
    fn fields_ids_retry_and_comments() {
        let stream = b"retry: 3000\nretry: 10a\nretry:\nid: 7\n: a comment\nfoo: bar\nevent\ndata\n\nid: a\0b\ndata: z\n\nid: 8\n\n";
        let (events, err, id, retry) = parse_every_way(stream, 100);
        assert_eq!(
            events,
            [event(None, Some("7"), ""), event(None, Some("7"), "z")]
        );
        assert!(err.is_none());
        // An id alone (no data) still sets the last event id.
        assert_eq!(id.as_deref(), Some("8"));
        assert_eq!(retry, Some(3000));
        let (.., retry) = parse_every_way(b"retry: 99999999999999999999999\n", 100);
        assert_eq!(retry, Some(u64::MAX));
        // Only one leading space is dropped; a value may hold colons.
        let (events, ..) = parse_every_way(b"data:  a: b\n\n", 100);
        assert_eq!(events, [event(None, None, " a: b")]);
        // An empty event name is the default.
        let (events, ..) = parse_every_way(b"event:\ndata: x\n\nevent: e\n\ndata: y\n\n", 100);
        assert_eq!(events, [event(None, None, "x"), event(None, None, "y")]);
    }

    #[test]
    fn an_event_cut_short_sets_no_id() {
        let (events, _, id, _) = parse_every_way(b"id: 1\ndata: a\n\nid: 2\ndata: b\n", 100);
        assert_eq!(events, [event(None, Some("1"), "a")]);
        assert_eq!(
            id.as_deref(),
            Some("1"),
            "resumption asks from the last whole event"
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped_once() {
        let (events, ..) = parse_every_way(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n", 100);
        assert_eq!(events, [event(None, None, "a")]);
        // A partial mark is text: the line is a field named "\xEF\xBBdata", ignored.
        let (events, ..) = parse_every_way(b"\xEF\xBBdata: a\n\ndata: b\n\n", 100);
        assert_eq!(events, [event(None, None, "b")]);
        let (events, ..) = parse_every_way(b"\xEF\n\ndata: c\n\n", 100);
        assert_eq!(events, [event(None, None, "c")]);
    }

    #[test]
    fn an_event_over_the_bound_is_an_error_wherever_it_splits() {
        // Exactly at the bound: "abc\nde" is 6 bytes.
        let (events, err, ..) = parse_every_way(b"data: abc\ndata: de\n\n", 6);
        assert_eq!((events.len(), err), (1, None));
        let (events, err, ..) =
            parse_every_way(b"data: x\n\ndata: abc\ndata: def\n\ndata: y\n\n", 6);
        assert_eq!(events, [event(None, None, "x")]);
        let err = err.expect("an oversize event is an error");
        assert_eq!(err, SseError::EventTooLarge { max: 6 });
        assert!(err.to_string().contains("max_message_bytes"));
        // A long line of any kind counts, so nothing grows without bound.
        let long = [b": ".as_slice(), &[b'c'; 68], b"\n"].concat();
        let (_, err, ..) = parse_every_way(&long, 6);
        assert!(err.is_none(), "70 bytes is within 6 + 64");
        let long = [b": ".as_slice(), &[b'c'; 69], b"\n"].concat();
        let (_, err, ..) = parse_every_way(&long, 6);
        assert!(err.is_some());
        let long = [b"data: abcdef\nevent: ".as_slice(), &[b'e'; 58], b"\n"].concat();
        let (_, err, ..) = parse_every_way(&long, 6);
        assert!(err.is_some(), "the data so far counts against a line");
        // Many small events are fine.
        let many = b"data: 123456\n\n".repeat(100);
        let (events, err, ..) = parse(&[&many], 6);
        assert_eq!((events.len(), err), (100, None));
        // After an error, nothing more is parsed.
        let (_, _, mut p) = parse(&[b"data: 1234567"], 6);
        let mut out = Vec::new();
        assert!(p.feed(b"\ndata: a\n\n", &mut out).is_err());
        assert!(out.is_empty());
    }

    /// A tiny deterministic generator (xorshift), so the round trip needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn line_end(&mut self) -> &'static [u8] {
            [&b"\n"[..], b"\r\n", b"\r"][self.next(3) as usize]
        }
    }

    #[test]
    fn written_events_read_back_whatever_the_line_ends_and_splits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            let mut id: Option<String> = None;
            for _ in 0..rng.next(5) {
                let name = (rng.next(2) == 0).then(|| format!("e{}", rng.next(9)));
                if rng.next(2) == 0 {
                    id = Some(format!("{}.{}", rng.next(9), rng.next(99)));
                    stream.extend_from_slice(
                        format!("id: {}", id.as_deref().unwrap_or("")).as_bytes(),
                    );
                    stream.extend_from_slice(rng.line_end());
                }
                if let Some(n) = &name {
                    stream.extend_from_slice(format!("event: {n}").as_bytes());
                    stream.extend_from_slice(rng.line_end());
                }
                let lines: Vec<String> = (0..=rng.next(3))
                    .map(|i| format!("{{\"n\":{i}}}: x"))
                    .collect();
                for l in &lines {
                    stream.extend_from_slice(format!("data: {l}").as_bytes());
                    stream.extend_from_slice(rng.line_end());
                    if rng.next(4) == 0 {
                        stream.extend_from_slice(b":keep-alive");
                        stream.extend_from_slice(rng.line_end());
                    }
                }
                // A blank line's "\n" right after a "\r" would end nothing ("\r\n").
                let end = rng.line_end();
                if stream.ends_with(b"\r") && end == b"\n" {
                    stream.extend_from_slice(b"\r\n");
                } else {
                    stream.extend_from_slice(end);
                }
                want.push(Event {
                    name,
                    id: id.clone(),
                    data: lines.join("\n").into_bytes(),
                });
            }
            let mut pieces = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let n = 1 + rng.next(rest.len() as u64) as usize;
                let (a, b) = rest.split_at(n);
                pieces.push(a);
                rest = b;
            }
            let (events, err, p) = parse(&pieces, 1000);
            assert_eq!(err, None);
            assert_eq!(events, want, "{:?}", String::from_utf8_lossy(&stream));
            assert_eq!(p.last_event_id(), id.as_deref());
        }
    }
}
