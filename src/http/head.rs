//! HTTP/1.1 request heads and bodies, parsed from bytes already read (sans-IO): the
//! request line and the headers the MCP transports need, and the body by
//! `Content-Length` or chunked transfer coding, each with a bound.

/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;

/// A parsed request head: what the transports look at, copied out of the buffer so the
/// buffer can be reused for the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`, `DELETE`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query (after `?`), possibly empty.
    pub query: String,
    /// HTTP/1.0 (then the connection closes after the answer unless kept alive).
    pub http10: bool,
    /// The `Content-Length`, if given.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The client asked to close (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// `Accept`, lowercased.
    pub accept: String,
    /// `Content-Type`, lowercased.
    pub content_type: String,
    /// `Origin`, as sent.
    pub origin: Option<String>,
    /// `Authorization`, as sent (never logged).
    pub authorization: Option<String>,
    /// `Mcp-Session-Id`.
    pub session_id: Option<String>,
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<String>,
    /// `Mcp-Method` (revision 2026-07-28: the body's method).
    pub mcp_method: Option<String>,
    /// `Mcp-Name` (revision 2026-07-28: the body's tool or prompt name, or resource URI).
    pub mcp_name: Option<String>,
    /// `Last-Event-ID`.
    pub last_event_id: Option<String>,
}

/// Why a request head cannot be served; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Not HTTP/1.x or not parseable: 400.
    Malformed(String),
    /// More than 64 headers, or a head over the size bound: 431.
    TooLarge,
    /// A transfer coding other than chunked, or both a length and chunked: 501 / 400.
    Unsupported(String),
}

impl HeadError {
    /// The status code and reason phrase that answer this error.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::Malformed(_) => 400,
            HeadError::TooLarge => 431,
            HeadError::Unsupported(_) => 501,
        }
    }

    /// A sentence for the response body.
    pub fn message(&self) -> String {
        match self {
            HeadError::Malformed(why) => format!("malformed HTTP request: {why}"),
            HeadError::TooLarge => {
                "request head too large: at most 64 headers and 16 KiB".to_string()
            }
            HeadError::Unsupported(why) => why.clone(),
        }
    }
}

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are needed (the
/// caller bounds how many); `Ok(Some((head, len)))` gives the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http10 = req.version == Some(0);
    let mut head = Head {
        method: req.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        http10,
        close: http10,
        ..Head::default()
    };
    let mut encodings = 0;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Malformed(format!("header {} is not UTF-8", h.name)))?
            .trim();
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n = value.parse::<u64>().map_err(|_| {
                    HeadError::Malformed(format!("Content-Length {value:?} is not a number"))
                })?;
                if head.content_length.is_some_and(|m| m != n) {
                    return Err(HeadError::Malformed(
                        "two different Content-Length headers".to_string(),
                    ));
                }
                head.content_length = Some(n);
            }
            "transfer-encoding" => {
                for coding in value.split(',').map(str::trim) {
                    encodings += 1;
                    if coding.eq_ignore_ascii_case("chunked") {
                        head.chunked = true;
                    } else if !coding.eq_ignore_ascii_case("identity") {
                        return Err(HeadError::Unsupported(format!(
                            "transfer coding {coding:?} is not supported; send the body plain or chunked"
                        )));
                    }
                }
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        head.close = false;
                    }
                }
            }
            "accept" => append(&mut head.accept, &value.to_ascii_lowercase()),
            "content-type" => head.content_type = value.to_ascii_lowercase(),
            "origin" => head.origin = Some(value.to_string()),
            "authorization" => head.authorization = Some(value.to_string()),
            "mcp-session-id" => head.session_id = Some(value.to_string()),
            "mcp-protocol-version" => head.protocol_version = Some(value.to_string()),
            "mcp-method" => head.mcp_method = Some(value.to_string()),
            "mcp-name" => head.mcp_name = Some(value.to_string()),
            "last-event-id" => head.last_event_id = Some(value.to_string()),
            _ => {}
        }
    }
    if head.chunked && head.content_length.is_some() {
        // A request smuggling shape: refuse rather than guess which one frames the body.
        return Err(HeadError::Malformed(
            "both Content-Length and Transfer-Encoding: chunked".to_string(),
        ));
    }
    if encodings > 0 && !head.chunked {
        return Err(HeadError::Unsupported(
            "a Transfer-Encoding without chunked cannot be framed".to_string(),
        ));
    }
    Ok(Some((head, len)))
}

fn append(to: &mut String, value: &str) {
    if !to.is_empty() {
        to.push(',');
    }
    to.push_str(value);
}

impl Head {
    /// Whether `Accept` lists `media` (or a wildcard covering it).
    pub fn accepts(&self, media: &str) -> bool {
        let kind = media.split('/').next().unwrap_or("");
        self.accept.split(',').any(|item| {
            let m = item.split(';').next().unwrap_or("").trim();
            m == media || m == "*/*" || m.strip_suffix("/*") == Some(kind)
        })
    }
}

/// How far a chunked body has been decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk with this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last (zero) chunk: trailers until an empty line.
    Trailers,
}

/// A request body being received, with a size bound.
#[derive(Debug)]
pub struct Body {
    /// The decoded body so far.
    pub data: Vec<u8>,
    max: usize,
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
}

/// What feeding bytes to a [`Body`] led to.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyStatus {
    /// More bytes are needed.
    More,
    /// The body is complete.
    Done,
    /// The body exceeds the bound: 413.
    TooLarge,
    /// The chunked framing is broken: 400.
    Malformed(&'static str),
}

impl Body {
    /// A body for `head`, at most `max` bytes decoded. A head with neither a length nor
    /// chunked coding has an empty body.
    pub fn new(head: &Head, max: usize) -> Body {
        if head.chunked {
            Body::chunked(max)
        } else {
            Body::with_length(head.content_length.unwrap_or(0), max)
        }
    }

    /// A body of exactly `len` bytes, at most `max` of them accepted (the HTTP client's
    /// responses use this and [`Body::chunked`]).
    pub fn with_length(len: u64, max: usize) -> Body {
        Body {
            data: Vec::new(),
            max,
            framing: Framing::Length(len),
        }
    }

    /// A body in chunked transfer coding, at most `max` bytes decoded.
    pub fn chunked(max: usize) -> Body {
        Body {
            data: Vec::new(),
            max,
            framing: Framing::Chunked(Chunk::Size),
        }
    }

    /// Whether the declared length alone is over the bound (answer 413 before reading).
    pub fn declared_too_large(&self) -> bool {
        matches!(self.framing, Framing::Length(n) if n > self.max as u64)
    }

    /// Takes bytes of the body from the front of `input`: returns how many it used (the
    /// caller keeps the rest, which is an incomplete framing element or the next request)
    /// and where the body stands.
    pub fn feed(&mut self, input: &[u8]) -> (usize, BodyStatus) {
        let framing = match &mut self.framing {
            Framing::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                if self.data.len() + take > self.max {
                    return (0, BodyStatus::TooLarge);
                }
                self.data.extend_from_slice(&input[..take]);
                *left -= take as u64;
                let status = if *left == 0 {
                    BodyStatus::Done
                } else {
                    BodyStatus::More
                };
                return (take, status);
            }
            Framing::Chunked(state) => state,
        };
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match *framing {
                Chunk::Size => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > 1024 {
                            return (at, BodyStatus::Malformed("chunk size line too long"));
                        }
                        return (at, BodyStatus::More);
                    };
                    if nl > 1024 {
                        // As when it arrives in pieces, so the split makes no difference.
                        return (at, BodyStatus::Malformed("chunk size line too long"));
                    }
                    let line = &rest[..nl];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let hex = line.split(|&c| c == b';').next().unwrap_or(b"");
                    let Some(size) = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                    else {
                        return (at, BodyStatus::Malformed("bad chunk size"));
                    };
                    if (self.data.len() as u64).saturating_add(size) > self.max as u64 {
                        return (at, BodyStatus::TooLarge);
                    }
                    at += nl + 1;
                    *framing = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if rest.is_empty() {
                        return (at, BodyStatus::More);
                    }
                    let take = left.min(rest.len() as u64) as usize;
                    self.data.extend_from_slice(&rest[..take]);
                    at += take;
                    *framing = if left == take as u64 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - take as u64)
                    };
                }
                Chunk::DataEnd => {
                    if rest.starts_with(b"\r\n") {
                        at += 2;
                    } else if rest.starts_with(b"\n") {
                        at += 1;
                    } else if rest.is_empty() || rest == b"\r" {
                        return (at, BodyStatus::More);
                    } else {
                        return (at, BodyStatus::Malformed("chunk data longer than its size"));
                    }
                    *framing = Chunk::Size;
                }
                Chunk::Trailers => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > 8192 {
                            return (at, BodyStatus::Malformed("trailers too long"));
                        }
                        return (at, BodyStatus::More);
                    };
                    if nl > 8192 {
                        return (at, BodyStatus::Malformed("trailers too long"));
                    }
                    let line = &rest[..nl];
                    at += nl + 1;
                    if line == b"\r" || line.is_empty() {
                        return (at, BodyStatus::Done);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes()) {
            Ok(Some((h, n))) => {
                assert_eq!(n, text.len());
                h
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_post_head_gives_what_the_transport_needs() {
        let h = head("POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\nmcp-protocol-version: 2025-06-18\r\nOrigin: http://localhost:3000\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_str()),
            ("POST", "/mcp", "x=1")
        );
        assert!(h.accepts("application/json") && h.accepts("text/event-stream"));
        assert_eq!(h.session_id.as_deref(), Some("abc"));
        assert_eq!(h.protocol_version.as_deref(), Some("2025-06-18"));
        assert_eq!(h.origin.as_deref(), Some("http://localhost:3000"));
        assert_eq!(h.content_length, Some(12));
        assert!(!h.close);
    }

    #[test]
    fn a_partial_head_waits_and_bad_ones_are_refused() {
        assert_eq!(parse_head(b"POST /mcp HTTP/1.1\r\nHost"), Ok(None));
        assert!(matches!(
            parse_head(b"\x01\x02 nonsense\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let both = "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_head(both.as_bytes()),
            Err(HeadError::Malformed(_))
        ));
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(
            parse_head(gzip.as_bytes()).map_err(|e| e.status()),
            Err(501)
        );
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        let big = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse_head(big.as_bytes()), Err(HeadError::TooLarge));
    }

    #[test]
    fn accept_wildcards_count_and_others_do_not() {
        let h = head("GET / HTTP/1.1\r\nAccept: text/*;q=0.5\r\n\r\n");
        assert!(h.accepts("text/event-stream"));
        assert!(!h.accepts("application/json"));
        let h = head("GET / HTTP/1.1\r\n\r\n");
        assert!(!h.accepts("text/event-stream"));
    }

    #[test]
    fn a_length_body_is_taken_up_to_its_length() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n");
        let mut b = Body::new(&h, 100);
        assert_eq!(b.feed(b"ab"), (2, BodyStatus::More));
        assert_eq!(b.feed(b"cdeGET"), (3, BodyStatus::Done));
        assert_eq!(b.data, b"abcde");
        assert!(Body::new(&h, 4).declared_too_large());
    }

    #[test]
    fn a_chunked_body_decodes_across_any_split() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let wire = b"3\r\nabc\r\na;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() - 4 {
            let mut b = Body::new(&h, 100);
            let mut pending = wire[..split].to_vec();
            let (n, s) = b.feed(&pending);
            pending.drain(..n);
            assert_ne!(s, BodyStatus::Done, "split {split}");
            pending.extend_from_slice(&wire[split..]);
            let (n, s) = b.feed(&pending);
            assert_eq!(s, BodyStatus::Done, "split {split}");
            assert_eq!(&pending[n..], b"NEXT", "split {split}");
            assert_eq!(b.data, b"abc0123456789");
        }
    }

    #[test]
    fn a_chunked_body_over_the_bound_or_broken_is_refused() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            Body::new(&h, 4).feed(b"5\r\nabcde\r\n").1,
            BodyStatus::TooLarge
        );
        assert!(matches!(
            Body::new(&h, 4).feed(b"zz\r\n").1,
            BodyStatus::Malformed(_)
        ));
        assert!(matches!(
            Body::new(&h, 9).feed(b"1\r\nabc").1,
            BodyStatus::Malformed(_)
        ));
    }
}
