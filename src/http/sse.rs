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

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser whose events (data plus the line being read) are at most `max_event`
    /// bytes.
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

    fn check(&self) -> Result<(), SseError> {
        if self.data.len() + self.line.len() > self.max_event {
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
