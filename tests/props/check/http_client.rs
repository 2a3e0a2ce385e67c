//! The HTTP client's response reader and SSE parser (`gangway::http::client`,
//! `gangway::http::sse`) on arbitrary server bytes, fed whole, split at fuzzer-chosen
//! points, and (for short inputs) byte by byte: no panic; the same head, body, events,
//! errors, last event id and retry advice whatever the split; a non-streaming body within
//! its bound, every event's data within its bound, and no more than `HEAD_MAX` bytes left
//! waiting in the caller's buffer between feeds.
//!
//! Input: `max_body` (a byte, times 16), `max_event` (a byte, times 4), `k` (a byte,
//! modulo 8) split points as little-endian `u16`s (modulo the length, sorted), then the
//! server's bytes, and then the server closes.
use gangway::http::client::{ClientError, ReadStatus, ResponseHead, ResponseReader, HEAD_MAX};
use gangway::http::sse::{Event, SseParser};

/// Everything a caller could observe.
#[derive(Debug, PartialEq)]
struct Outcome {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    error: Option<String>,
    reusable: bool,
    /// Bytes after a complete response (not the response's).
    rest: Vec<u8>,
    events: Vec<Event>,
    sse_error: Option<String>,
    last_event_id: Option<String>,
    retry: Option<u64>,
}

/// Hands body bytes to the caller: kept, and parsed as an event stream.
fn take(data: Vec<u8>, out: &mut Outcome, sse: &mut SseParser) {
    if out.sse_error.is_none() {
        if let Err(e) = sse.feed(&data, &mut out.events) {
            out.sse_error = Some(e.to_string());
        }
    }
    out.body.extend(data);
}

fn drive(wire: &[u8], cuts: &[usize], max_body: usize, max_event: usize) -> Outcome {
    let mut reader = ResponseReader::new(max_body);
    let mut sse = SseParser::new(max_event);
    let mut out = Outcome {
        head: None,
        body: Vec::new(),
        error: None,
        reusable: false,
        rest: Vec::new(),
        events: Vec::new(),
        sse_error: None,
        last_event_id: None,
        retry: None,
    };
    let mut buf = Vec::new();
    let mut done = false;
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        buf.extend_from_slice(&wire[from..cut]);
        from = cut;
        while !done && out.error.is_none() {
            match reader.feed(&buf) {
                Ok((n, status)) => {
                    assert!(n <= buf.len());
                    buf.drain(..n);
                    take(reader.take_data(), &mut out, &mut sse);
                    match status {
                        ReadStatus::More => {
                            assert!(buf.len() <= HEAD_MAX, "{} bytes left waiting", buf.len());
                            break;
                        }
                        ReadStatus::Head => assert!(out.head.is_none(), "a second final head"),
                        ReadStatus::Done => done = true,
                    }
                    out.head = reader.head().cloned();
                }
                Err(e) => {
                    // What was decoded before a broken element is the same however the
                    // bytes arrived; how far past its bound a body got is not.
                    if matches!(e, ClientError::BodyTooLarge { .. }) {
                        reader.data.clear();
                        out.body.clear();
                        out.events.clear();
                        sse = SseParser::new(max_event);
                        out.sse_error = None;
                    }
                    take(reader.take_data(), &mut out, &mut sse);
                    out.error = Some(e.to_string());
                }
            }
        }
    }
    if !done && out.error.is_none() {
        match reader.finish() {
            Ok(status) => assert_eq!(status, ReadStatus::Done),
            Err(e) => out.error = Some(e.to_string()),
        }
        take(reader.take_data(), &mut out, &mut sse);
    }
    out.reusable = reader.reusable();
    if done {
        out.rest = buf;
    }
    out.last_event_id = sse.last_event_id().map(str::to_string);
    out.retry = sse.retry();
    let streaming = out.head.as_ref().is_some_and(ResponseHead::is_event_stream);
    if !streaming && out.error.is_none() {
        assert!(out.body.len() <= max_body, "body over its bound");
    }
    for e in &out.events {
        assert!(e.data.len() <= max_event, "event over its bound");
    }
    if out.reusable {
        assert!(out.error.is_none() && done);
    }
    out
}

/// Runs one fuzz input (see the module docs for its layout); panics when an invariant
/// breaks.
pub fn run(data: &[u8]) {
    let [b, e, k, rest @ ..] = data else {
        return;
    };
    let max_body = usize::from(*b) * 16;
    let max_event = usize::from(*e) * 4;
    let k = usize::from(*k % 8);
    if rest.len() < 2 * k {
        return;
    }
    let (points, wire) = rest.split_at(2 * k);
    let mut cuts: Vec<usize> = points
        .chunks(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (wire.len() + 1))
        .collect();
    cuts.sort_unstable();
    let whole = drive(wire, &[], max_body, max_event);
    assert_eq!(
        drive(wire, &cuts, max_body, max_event),
        whole,
        "cuts {cuts:?}"
    );
    if wire.len() <= 512 {
        let every: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(drive(wire, &every, max_body, max_event), whole, "bytewise");
    }
}
