//! The client side of HTTP/1.1 (sans-IO), for backends reached by URL: parsing the URL a
//! config names, writing requests, and reading responses from bytes as they arrive, the
//! body framed by `Content-Length`, chunked coding or the connection's close, and handed
//! out as it is decoded so an event stream can be consumed while it lasts (the events
//! themselves are [`super::sse`]'s).
//!
//! Nothing here reads a socket or a clock: the runtime appends what it reads to a buffer,
//! calls [`ResponseReader::feed`] and drops the bytes it used, calls
//! [`ResponseReader::finish`] when the peer closes, and writes what [`write_request`] put
//! in its output buffer.

use super::head::{Body, BodyStatus};
use std::fmt;

/// Most headers a response may carry.
const MAX_HEADERS: usize = 64;
/// Largest response head accepted (each interim `1xx` head is bounded on its own).
pub const HEAD_MAX: usize = 16 * 1024;

/// Why a URL, a request or a response cannot be used. Each message says what happened,
/// where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// A backend URL that cannot be used: the URL as written and why.
    Url { url: String, why: String },
    /// A request part (method, path, host, header name or value) that would break the
    /// request's framing: which part, and the offending text (never a header's value,
    /// which may be a secret).
    Request { what: String, value: Option<String> },
    /// The response is not HTTP/1.x, or a header in it is unusable.
    Malformed(String),
    /// The response head passes [`HEAD_MAX`] bytes or 64 headers.
    HeadTooLarge,
    /// A framing the client does not speak (a transfer coding other than chunked, an
    /// upgrade).
    Unsupported(String),
    /// A non-streaming body is longer than the bound the caller gave.
    BodyTooLarge { max: usize },
    /// The chunked framing of the body is broken.
    BadChunk(&'static str),
    /// The server closed the connection before any byte of a response: on a reused
    /// connection, the request can be sent again on a new one.
    ClosedBeforeResponse,
    /// The server closed the connection in the middle of a response.
    Truncated,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url { url, why } => write!(
                f,
                "backend URL {url:?}: {why}; write it as http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]"
            ),
            ClientError::Request { what, value } => {
                write!(f, "cannot send {what}")?;
                if let Some(value) = value {
                    write!(f, " {value:?}")?;
                }
                write!(
                    f,
                    ": it contains a line break or a character HTTP does not allow there; fix it in the backend's config"
                )
            }
            ClientError::Malformed(why) => write!(
                f,
                "the server's response is not valid HTTP/1.1 ({why}); check that the URL points at an MCP HTTP endpoint"
            ),
            ClientError::HeadTooLarge => write!(
                f,
                "the server's response head is over {HEAD_MAX} bytes or {MAX_HEADERS} headers; check that the URL points at an MCP HTTP endpoint"
            ),
            ClientError::Unsupported(why) => write!(
                f,
                "the server answered in a way gangway cannot read ({why}); check the server's HTTP settings"
            ),
            ClientError::BodyTooLarge { max } => write!(
                f,
                "the server's answer is over {max} bytes; raise max_message_bytes in the config if such answers are expected"
            ),
            ClientError::BadChunk(why) => write!(
                f,
                "the server's chunked body is broken ({why}); the connection is closed"
            ),
            ClientError::ClosedBeforeResponse => write!(
                f,
                "the server closed the connection before answering; the request can be sent again on a new connection"
            ),
            ClientError::Truncated => write!(
                f,
                "the server closed the connection in the middle of its answer; the answer is lost"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// Why a URL with userinfo is refused.
const CREDENTIALS: &str = "it carries credentials (user@ or user:password@), which gangway does not send; put them in a header instead, such as \"headers\": {\"Authorization\": \"Bearer ...\"}";

/// A backend URL: `http://` or `https://`, a host, a port and the path (with its query)
/// requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://`: the connection needs TLS.
    pub https: bool,
    /// The host as a name or an address, lowercased, without the brackets of an IPv6
    /// address (what name resolution or `SocketAddr` parsing wants).
    pub host: String,
    /// The port, 80 or 443 when the URL names none.
    pub port: u16,
    /// The path and query sent in the request line, `/` when the URL has none; never a
    /// fragment.
    pub path: String,
}

impl Url {
    /// Parses `text` (surrounding whitespace ignored). Refused, with a message saying
    /// what to write instead: another scheme, credentials in the URL, an empty or invalid
    /// host, a bad port, and characters a request line cannot carry (spaces, control
    /// characters, non-ASCII: percent-encode them).
    pub fn parse(text: &str) -> Result<Url, ClientError> {
        let trimmed = text.trim();
        // The query may carry a credential: errors leave it out.
        let shown = trimmed.split('?').next().unwrap_or("");
        let err = |why: &str| ClientError::Url {
            url: shown.to_string(),
            why: why.to_string(),
        };
        let (https, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, _)) => {
                return Err(err(&format!(
                    "the scheme {scheme:?} is not supported (only http and https are)"
                )))
            }
            None => return Err(err("it does not start with http:// or https://")),
        };
        // The authority ends at the first '/', '?' or '#'.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some((_, host)) = authority.rsplit_once('@') {
            // The URL is shown without its credentials: messages are logged.
            return Err(ClientError::Url {
                url: format!(
                    "{}://***@{host}{tail}",
                    if https { "https" } else { "http" }
                ),
                why: CREDENTIALS.to_string(),
            });
        }
        let (host, port) = split_host_port(authority).map_err(|why| err(&why))?;
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => p,
        };
        // A fragment is never sent.
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        if let Some(c) = path.chars().find(|&c| !c.is_ascii_graphic()) {
            return Err(err(&format!(
                "its path has the character {c:?}, which a request cannot carry; percent-encode it (a space is %20)"
            )));
        }
        Ok(Url {
            https,
            host,
            port,
            path,
        })
    }

    /// The value of the `Host` header: the host, bracketed if it is an IPv6 address, and
    /// the port unless it is the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The URL as messages and logs show it: without its query, which may carry a credential
/// (`?api_key=...`).
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        let path = self.path.split('?').next().unwrap_or("");
        write!(f, "{scheme}://{}{path}", self.host_header())
    }
}

/// Splits an authority (no userinfo) into a validated, lowercased host and an optional
/// port; the error is the reason, for [`ClientError::Url`].
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("its IPv6 address has no closing ']'".to_string());
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "[{addr}] is not an IPv6 address (zone ids such as %eth0 are not supported)"
            ));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{after:?} follows the IPv6 address; expected :PORT"))?,
            ),
        };
        (addr.to_ascii_lowercase(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("it has no host".to_string());
        }
        if let Some(c) = host
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(format!(
                "its host {host:?} has the character {c:?}; a host is letters, digits, '-', '.' and '_' (write an internationalized name in its xn-- form, an IPv6 address in brackets)"
            ));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        // An empty port ("host:") means the default, as RFC 3986 allows.
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("its port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

/// Whether `s` is an HTTP token (a method or a header name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `s` can be a header value: no CR, LF, NUL or other control characters
/// (tabs allowed), so a value from a config cannot start a header or a request of its own.
fn is_header_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Headers gangway sets itself and a caller may not: they frame the request.
const RESERVED: &[&str] = &["host", "content-length", "transfer-encoding", "connection"];

/// Appends an HTTP/1.1 request to `out`: the request line, `Host: host`, the caller's
/// `headers` in order, `Content-Length` when `body` is not empty or the method is `POST`,
/// `PUT` or `PATCH`, `Connection: keep-alive`, then `body`. Nothing is written when a part would break the framing: a
/// method or header name that is not a token, a path or host with spaces or control
/// characters, a header value with CR, LF or another control character (a header
/// injection guard: values come from user config), or a header that gangway sets itself
/// (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`).
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    path_and_query: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), ClientError> {
    let refuse = |what: &str, value: &str| ClientError::Request {
        what: what.to_string(),
        value: Some(value.to_string()),
    };
    if !is_token(method) {
        return Err(refuse("the method", method));
    }
    if path_and_query.is_empty() || !path_and_query.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse("the path", path_and_query));
    }
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse("the host", host));
    }
    for (name, value) in headers {
        if !is_token(name) {
            return Err(refuse("the header name", name));
        }
        if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            return Err(ClientError::Request {
                what: format!(
                    "the header {name} from the config (gangway sets it itself; remove it)"
                ),
                value: None,
            });
        }
        if !is_header_value(value) {
            return Err(ClientError::Request {
                what: format!("the value of header {name}"),
                value: None,
            });
        }
    }
    out.reserve(128 + path_and_query.len() + body.len());
    for part in [
        method,
        " ",
        path_and_query,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        for part in [name, ": ", value.trim(), "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    // RFC 9110 8.6: a POST says its length even when it is 0 (some servers answer 411
    // Length Required otherwise).
    let has_content = ["POST", "PUT", "PATCH"].contains(&method);
    if !body.is_empty() || has_content {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: keep-alive\r\n\r\n");
    out.extend_from_slice(body);
    Ok(())
}

/// What a response's head says, copied out of the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code (never `1xx`: interim responses are skipped).
    pub status: u16,
    /// The reason phrase, as sent (may be empty).
    pub reason: String,
    /// The response is HTTP/1.0.
    pub http10: bool,
    /// `Content-Type`, lowercased, without parameters (`application/json`).
    pub content_type: Option<String>,
    /// `Mcp-Session-Id` (only visible ASCII is accepted).
    pub session_id: Option<String>,
    /// `Retry-After`, as sent (seconds or an HTTP date); see
    /// [`ResponseHead::retry_after_seconds`].
    pub retry_after: Option<String>,
    /// `WWW-Authenticate`, as sent (every such header, joined with `, `).
    pub www_authenticate: Option<String>,
    /// The server will close the connection after this response (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl ResponseHead {
    /// Whether the body is an event stream (`text/event-stream`).
    pub fn is_event_stream(&self) -> bool {
        self.content_type.as_deref() == Some("text/event-stream")
    }

    /// `Retry-After` in seconds, when it is given as a number of seconds (an HTTP date
    /// gives `None`).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        let v = self.retry_after.as_deref()?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(v.parse().unwrap_or(u64::MAX))
    }
}

/// Parses one response head at the start of `buf`: `Ok(None)` when more bytes are needed.
fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    // Only one byte past the bound is looked at, so a head that is too large is refused
    // as such however its bytes arrive (a bad byte further on would otherwise make it
    // "malformed" when it arrives whole and "too large" when it trickles in).
    let window = &buf[..buf.len().min(HEAD_MAX + 1)];
    let len = match res.parse(window) {
        Ok(httparse::Status::Complete(n)) if n > HEAD_MAX => return Err(ClientError::HeadTooLarge),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() > HEAD_MAX => {
            return Err(ClientError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::HeadTooLarge),
        Err(e) => return Err(ClientError::Malformed(e.to_string())),
    };
    let http10 = res.version == Some(0);
    let mut head = ResponseHead {
        status: res.code.unwrap_or(0),
        reason: res.reason.unwrap_or("").to_string(),
        http10,
        close: http10,
        ..ResponseHead::default()
    };
    let mut codings = Vec::new();
    for h in res.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n = value
                    .parse::<u64>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        ClientError::Malformed(format!("Content-Length {value:?} is not a number"))
                    })?;
                if head.content_length.is_some_and(|m| m != n) {
                    return Err(ClientError::Malformed(
                        "two different Content-Length headers".to_string(),
                    ));
                }
                head.content_length = Some(n);
            }
            "transfer-encoding" => codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            ),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        head.close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                        head.close = false;
                    }
                }
            }
            "content-type" => {
                let media = value.split(';').next().unwrap_or("").trim();
                head.content_type = Some(media.to_ascii_lowercase());
            }
            "mcp-session-id" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ClientError::Malformed(format!(
                        "Mcp-Session-Id {value:?} is not visible ASCII"
                    )));
                }
                head.session_id = Some(value.to_string());
            }
            "retry-after" => head.retry_after = Some(value.to_string()),
            "www-authenticate" => {
                let joined = match head.www_authenticate.take() {
                    Some(before) => format!("{before}, {value}"),
                    None => value.to_string(),
                };
                head.www_authenticate = Some(joined);
            }
            _ => {}
        }
    }
    if let Some((last, before)) = codings.split_last() {
        // Only chunked is spoken (no Accept-Encoding is sent, so nothing else is due).
        if last != "chunked" || before.iter().any(|c| c != "identity") {
            return Err(ClientError::Unsupported(format!(
                "Transfer-Encoding {:?}; only chunked is supported",
                codings.join(", ")
            )));
        }
        head.chunked = true;
        if head.content_length.is_some() {
            // RFC 9112 6.3: chunked wins, and the connection must not be reused.
            head.close = true;
        }
    }
    Ok(Some((head, len)))
}

/// Where a [`ResponseReader`] stands after [`ResponseReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// More bytes are needed: everything usable was taken (what is left is an incomplete
    /// head or framing element, which the caller keeps and feeds again with what follows).
    More,
    /// The final head was just parsed (see [`ResponseReader::head`]); feed the rest.
    Head,
    /// The response is complete; [`ResponseReader::reusable`] says whether the connection
    /// can carry another request.
    Done,
}

/// How the body is being read.
#[derive(Debug)]
enum Framing {
    /// By `Content-Length` or chunked coding, with head.rs's decoder.
    Framed(Body),
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug)]
enum State {
    Head,
    Body(Framing),
    Done,
    /// An error ended the response; it is given again to any further call.
    Failed(ClientError),
}

/// Reads one response from bytes as they arrive: skips interim `1xx` heads, parses the
/// final head, and decodes the body into [`ResponseReader::data`] incrementally.
///
/// A body without `Content-Length` or chunked coding lasts until the server closes (the
/// caller reports that with [`ResponseReader::finish`]). `204`, `304` and responses to
/// `HEAD` have no body. Bodies other than `text/event-stream` are bounded by the
/// `max_body` given to [`ResponseReader::new`]; an event stream is bounded by its
/// consumer (the SSE parser's per-event bound), as long as the caller takes the data.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    head: Option<ResponseHead>,
    /// Body bytes decoded and not yet taken by the caller.
    pub data: Vec<u8>,
    /// Body bytes decoded so far, taken or not.
    total: u64,
    /// The bound on `total`, unless the body is an event stream.
    max_body: usize,
    /// The request was a `HEAD`: its response has no body.
    head_request: bool,
    /// Any byte of a response arrived (for telling a closed kept-alive connection from a
    /// response cut short).
    started: bool,
}

impl ResponseReader {
    /// A reader for the response to one request, with bodies other than event streams
    /// bounded by `max_body` bytes (the config's `max_message_bytes`).
    pub fn new(max_body: usize) -> ResponseReader {
        ResponseReader {
            state: State::Head,
            head: None,
            data: Vec::new(),
            total: 0,
            max_body,
            head_request: false,
            started: false,
        }
    }

    /// A reader for the response to a `HEAD` request, which has no body whatever its
    /// head says.
    pub fn for_head_request(max_body: usize) -> ResponseReader {
        ResponseReader {
            head_request: true,
            ..ResponseReader::new(max_body)
        }
    }

    /// The final response head, once [`ReadStatus::Head`] was returned.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Takes the body bytes decoded so far (leaving [`ResponseReader::data`] empty).
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Whether the response is complete and the connection may carry another request:
    /// false before [`ReadStatus::Done`], after an error, for a body that lasted until
    /// close, and when the server said it will close.
    pub fn reusable(&self) -> bool {
        let until_close = |h: &ResponseHead| {
            has_body(h, self.head_request) && h.content_length.is_none() && !h.chunked
        };
        matches!(self.state, State::Done)
            && self
                .head
                .as_ref()
                .is_some_and(|h| !h.close && !until_close(h))
    }

    /// Takes bytes of the response from the front of `input`: returns how many it used
    /// and where the response stands. Body bytes are appended to
    /// [`ResponseReader::data`]. Call again with the rest after [`ReadStatus::Head`];
    /// after [`ReadStatus::Done`] the rest is not this response's (nothing is taken). An
    /// error is final: the connection must be closed.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, ReadStatus), ClientError> {
        let result = self.step(input);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self, input: &[u8]) -> Result<(usize, ReadStatus), ClientError> {
        if !input.is_empty() {
            self.started = true;
        }
        match &mut self.state {
            State::Failed(e) => Err(e.clone()),
            State::Done => Ok((0, ReadStatus::Done)),
            State::Head => {
                let mut at = 0;
                loop {
                    let Some((head, len)) = parse_response_head(&input[at..])? else {
                        return Ok((at, ReadStatus::More));
                    };
                    at += len;
                    match head.status {
                        101 => {
                            return Err(ClientError::Unsupported(
                                "101 Switching Protocols, which was not asked for".to_string(),
                            ))
                        }
                        100..=199 => continue,
                        _ => {}
                    }
                    self.state = if !has_body(&head, self.head_request) {
                        State::Done
                    } else if head.chunked {
                        State::Body(Framing::Framed(Body::chunked(usize::MAX)))
                    } else if let Some(n) = head.content_length {
                        if !head.is_event_stream() && n > self.max_body as u64 {
                            return Err(ClientError::BodyTooLarge { max: self.max_body });
                        }
                        if n == 0 {
                            State::Done
                        } else {
                            State::Body(Framing::Framed(Body::with_length(n, usize::MAX)))
                        }
                    } else {
                        State::Body(Framing::UntilClose)
                    };
                    self.head = Some(head);
                    return Ok((at, ReadStatus::Head));
                }
            }
            State::Body(framing) => {
                let before = self.data.len();
                let (used, status) = match framing {
                    Framing::UntilClose => {
                        self.data.extend_from_slice(input);
                        (input.len(), BodyStatus::More)
                    }
                    Framing::Framed(body) => {
                        let (used, status) = body.feed(input);
                        // Taken at once, so head.rs's decoder holds nothing between feeds.
                        self.data.append(&mut body.data);
                        (used, status)
                    }
                };
                let streaming = self
                    .head
                    .as_ref()
                    .is_some_and(ResponseHead::is_event_stream);
                self.total += (self.data.len() - before) as u64;
                // The bound first: bytes decoded before a broken element count, as they
                // would have if they had arrived in an earlier piece.
                if !streaming && self.total > self.max_body as u64 {
                    return Err(ClientError::BodyTooLarge { max: self.max_body });
                }
                match status {
                    BodyStatus::More => Ok((used, ReadStatus::More)),
                    BodyStatus::Done => {
                        self.state = State::Done;
                        Ok((used, ReadStatus::Done))
                    }
                    BodyStatus::Malformed(why) => Err(ClientError::BadChunk(why)),
                    // Not reached: the decoder is given no bound of its own.
                    BodyStatus::TooLarge => Err(ClientError::BodyTooLarge { max: self.max_body }),
                }
            }
        }
    }

    /// The server closed the connection (no more bytes will come): completes a body that
    /// lasts until close ([`ReadStatus::Done`]); anything else unfinished is an error,
    /// [`ClientError::ClosedBeforeResponse`] when no byte of a response had arrived.
    pub fn finish(&mut self) -> Result<ReadStatus, ClientError> {
        let result = match &self.state {
            State::Done => Ok(ReadStatus::Done),
            State::Body(Framing::UntilClose) => {
                self.state = State::Done;
                Ok(ReadStatus::Done)
            }
            State::Failed(e) => Err(e.clone()),
            State::Head if !self.started => Err(ClientError::ClosedBeforeResponse),
            _ => Err(ClientError::Truncated),
        };
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }
}

/// Whether a response with `head` has a body at all.
fn has_body(head: &ResponseHead, head_request: bool) -> bool {
    !(head_request || head.status == 204 || head.status == 304 || head.status < 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        match Url::parse(text) {
            Ok(u) => u,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn url_error(text: &str) -> String {
        match Url::parse(text) {
            Ok(u) => panic!("{text} parsed as {u:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn urls_give_scheme_host_port_and_path_with_defaults() {
        let u = url("http://example.com");
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (false, "example.com", 80, "/")
        );
        let u = url("  HTTPS://MCP.Example.com/v1/mcp?key=a%20b#frag \n");
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "mcp.example.com", 443, "/v1/mcp?key=a%20b")
        );
        let u = url("http://127.0.0.1:8080/mcp");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = url("http://[::1]:3000?x=1");
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 3000, "/?x=1")
        );
        assert_eq!(u.host_header(), "[::1]:3000");
        let u = url("https://[2001:DB8::1]/");
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 443));
        assert_eq!(u.host_header(), "[2001:db8::1]");
        assert_eq!(url("http://h:/x").port, 80);
        assert_eq!(url("https://h:443/").host_header(), "h");
    }

    #[test]
    fn a_url_written_back_parses_to_the_same_url() {
        for text in [
            "http://a",
            "https://a.b-c_d:1/p",
            "http://[::1]:65535/x/y",
            "https://[fe80::1:2]",
            "http://h:80/",
            "https://h:80/",
        ] {
            let u = url(text);
            assert_eq!(url(&u.to_string()), u, "{text} -> {u}");
        }
    }

    #[test]
    fn a_query_is_sent_but_never_shown() {
        let u = url("http://h/mcp?api_key=s3cret");
        assert_eq!(u.path, "/mcp?api_key=s3cret", "the request carries it");
        assert_eq!(u.to_string(), "http://h/mcp");
        assert!(!url_error("ftp://h/mcp?api_key=s3cret").contains("s3cret"));
    }

    #[test]
    fn bad_urls_are_refused_saying_what_to_do() {
        let e = url_error("https://alice:s3cret@example.com/mcp");
        assert!(
            e.contains("credentials") && e.contains("Authorization"),
            "{e}"
        );
        assert!(!e.contains("s3cret") && !e.contains("alice"), "{e}");
        assert!(e.contains("\"https://***@example.com/mcp\""), "{e}");
        assert!(url_error("ftp://h/").contains("\"ftp\" is not supported"));
        assert!(url_error("example.com/mcp").contains("does not start with http://"));
        assert!(url_error("http:///mcp").contains("no host"));
        assert!(url_error("http://:80/").contains("no host"));
        for port in ["0", "65536", "8a", "+80", "-1"] {
            let e = url_error(&format!("http://h:{port}/"));
            assert!(e.contains("not a number from 1 to 65535"), "{port}: {e}");
        }
        assert!(url_error("http://h/a b").contains("%20"));
        assert!(url_error("http://h/\u{e9}").contains("percent-encode"));
        assert!(url_error("http://ex ample/").contains("has the character ' '"));
        assert!(url_error("http://b\u{fc}cher.de/").contains("xn--"));
        assert!(url_error("http://[::1/").contains("no closing ']'"));
        assert!(url_error("http://[nope]/").contains("not an IPv6 address"));
        assert!(url_error("http://[::1]x/").contains("expected :PORT"));
        assert!(url_error("http://a:1:2/").contains("not a number"));
        let e = url_error("gopher://h");
        assert!(e.starts_with("backend URL \"gopher://h\": "), "{e}");
        assert!(e.contains("write it as http://HOST"), "{e}");
    }

    fn request(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let mut out = b"before".to_vec();
        let r = write_request(&mut out, method, path, "h:8080", headers, body);
        if r.is_err() {
            assert_eq!(out, b"before", "nothing is written on error");
        }
        r.map(|()| out.split_off(6))
    }

    #[test]
    fn requests_are_written_with_host_length_and_keep_alive() {
        let get = request("GET", "/mcp", &[("Accept", "text/event-stream")], b"").unwrap();
        assert_eq!(
            String::from_utf8(get).unwrap(),
            "GET /mcp HTTP/1.1\r\nHost: h:8080\r\nAccept: text/event-stream\r\nConnection: keep-alive\r\n\r\n"
        );
        let post = request(
            "POST",
            "/mcp?x=1",
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", "s1"),
            ],
            b"{}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(post).unwrap(),
            "POST /mcp?x=1 HTTP/1.1\r\nHost: h:8080\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"
        );
    }

    #[test]
    fn an_empty_post_says_its_length_and_a_delete_does_not() {
        let post = request("POST", "/", &[], b"").unwrap();
        assert!(String::from_utf8(post)
            .unwrap()
            .contains("\r\nContent-Length: 0\r\n"));
        let delete = request("DELETE", "/", &[("Mcp-Session-Id", "s")], b"").unwrap();
        assert!(!String::from_utf8(delete)
            .unwrap()
            .contains("Content-Length"));
    }

    #[test]
    fn a_written_request_reads_back_as_the_same_request() {
        let bodies: [&[u8]; 3] = [b"", b"x", &[b'{'; 1000]];
        for body in bodies {
            let headers = [
                ("Authorization", "Bearer a b\tc"),
                ("Mcp-Session-Id", "abc"),
                ("Last-Event-ID", "0.7"),
            ];
            let wire = request("POST", "/a/b?c=d", &headers, body).unwrap();
            let (head, n) = crate::http::head::parse_head(&wire).unwrap().unwrap();
            assert_eq!((head.method.as_str(), head.path.as_str()), ("POST", "/a/b"));
            assert_eq!(head.query, "c=d");
            assert_eq!(head.authorization.as_deref(), Some("Bearer a b\tc"));
            assert_eq!(head.session_id.as_deref(), Some("abc"));
            assert_eq!(head.last_event_id.as_deref(), Some("0.7"));
            assert!(!head.close);
            let mut b = Body::new(&head, body.len());
            assert_eq!(b.feed(&wire[n..]), (body.len(), BodyStatus::Done));
            assert_eq!(b.data, body);
        }
    }

    #[test]
    fn line_breaks_and_framing_headers_are_never_written() {
        for value in ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b", "a\u{7f}"] {
            let e = request("GET", "/", &[("X-Key", value)], b"").unwrap_err();
            assert!(
                e.to_string().contains("header X-Key") && e.to_string().contains("line break"),
                "{e}"
            );
            assert!(
                !e.to_string().contains("a\\"),
                "a value is never shown: {e}"
            );
        }
        for name in ["Host", "content-length", "Transfer-Encoding", "CONNECTION"] {
            let e = request("GET", "/", &[(name, "1")], b"").unwrap_err();
            assert!(e.to_string().contains("gangway sets it itself"), "{e}");
        }
        for name in ["", "X Key", "X:Key", "X\r\nY"] {
            assert!(
                request("GET", "/", &[(name, "1")], b"").is_err(),
                "{name:?}"
            );
        }
        assert!(request("GET /x", "/", &[], b"").is_err());
        assert!(request("GET", "/a b", &[], b"").is_err());
        assert!(request("GET", "/a\r\nX: y", &[], b"").is_err());
        assert!(request("GET", "", &[], b"").is_err());
        let mut out = Vec::new();
        assert!(write_request(&mut out, "GET", "/", "h\r\nX: y", &[], b"").is_err());
        assert!(out.is_empty());
    }

    /// What reading one response gave: the final head, the body, whether the connection
    /// is reusable, and the bytes after the response.
    #[derive(Debug, PartialEq)]
    struct Read {
        head: ResponseHead,
        body: Vec<u8>,
        reusable: bool,
        rest: Vec<u8>,
    }

    /// Feeds `pieces` as a runtime would (a buffer appended to, the used bytes dropped),
    /// then reports the close when `eof`.
    fn drive(mut reader: ResponseReader, pieces: &[&[u8]], eof: bool) -> Result<Read, ClientError> {
        let mut buf = Vec::new();
        let mut body = Vec::new();
        let mut done = false;
        let mut heads = 0;
        for piece in pieces {
            buf.extend_from_slice(piece);
            while !done {
                let (n, status) = reader.feed(&buf)?;
                buf.drain(..n);
                body.extend(reader.take_data());
                match status {
                    ReadStatus::More => break,
                    ReadStatus::Head => heads += 1,
                    ReadStatus::Done => done = true,
                }
            }
        }
        if eof && !done {
            assert_eq!(reader.finish()?, ReadStatus::Done);
        }
        assert!(heads <= 1, "one final head");
        let head = reader.head().cloned().ok_or(ClientError::Truncated)?;
        Ok(Read {
            head,
            body,
            reusable: reader.reusable(),
            rest: buf,
        })
    }

    /// The same response read whole, split at every byte position, and byte by byte.
    fn read_every_way(wire: &[u8], max: usize, eof: bool) -> Result<Read, ClientError> {
        let whole = drive(ResponseReader::new(max), &[wire], eof);
        for split in 0..=wire.len() {
            let (a, b) = wire.split_at(split);
            assert_eq!(
                drive(ResponseReader::new(max), &[a, b], eof),
                whole,
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            drive(ResponseReader::new(max), &bytes, eof),
            whole,
            "bytewise"
        );
        whole
    }

    #[test]
    fn a_json_answer_is_read_across_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset=utf-8\r\nMcp-Session-Id: 1868a90c\r\nContent-Length: 13\r\n\r\n{\"result\":1}\nNEXT";
        let r = read_every_way(wire, 100, false).unwrap();
        assert_eq!(r.head.status, 200);
        assert_eq!(r.head.reason, "OK");
        assert_eq!(r.head.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.head.session_id.as_deref(), Some("1868a90c"));
        assert!(!r.head.is_event_stream());
        assert_eq!(r.body, b"{\"result\":1}\n");
        assert!(r.reusable);
        assert_eq!(r.rest, b"NEXT");
    }

    #[test]
    fn a_chunked_event_stream_is_read_across_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nid: 1\ndata: {}\n\n\r\n3;x=y\r\nabc\r\n0\r\nTrailer: t\r\n\r\n";
        let r = read_every_way(wire, 4, false).unwrap();
        assert!(r.head.is_event_stream() && r.head.chunked);
        assert_eq!(r.body, b"id: 1\ndata: {}\n\nabc");
        assert!(r.reusable);
        assert!(r.rest.is_empty());
    }

    #[test]
    fn interim_responses_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let r = read_every_way(wire, 10, false).unwrap();
        assert_eq!(r.head.status, 202);
        assert!(r.body.is_empty() && r.reusable);
        let e = drive(
            ResponseReader::new(10),
            &[b"HTTP/1.1 101 Switching Protocols\r\n\r\n"],
            false,
        );
        assert!(matches!(e, Err(ClientError::Unsupported(_))));
    }

    #[test]
    fn a_body_until_close_ends_with_the_connection() {
        let wire = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n";
        let r = read_every_way(wire, 4, true).unwrap();
        assert!(r.head.http10 && r.head.close);
        assert_eq!(r.body, b"data: 1\n\n");
        assert!(!r.reusable);
        // HTTP/1.1 with neither length nor chunked: the same.
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}";
        let r = read_every_way(wire, 4, true).unwrap();
        assert_eq!(r.body, b"{}");
        assert!(!r.reusable);
        // ... but bounded when it is not an event stream.
        let e = drive(ResponseReader::new(1), &[wire], true).unwrap_err();
        assert_eq!(e, ClientError::BodyTooLarge { max: 1 });
    }

    #[test]
    fn no_body_for_204_304_and_head_requests() {
        for wire in [
            &b"HTTP/1.1 204 No Content\r\n\r\nNEXT"[..],
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\nNEXT",
        ] {
            let r = read_every_way(wire, 0, false).unwrap();
            assert!(r.body.is_empty() && r.reusable);
            assert_eq!(r.rest, b"NEXT");
        }
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nNEXT";
        let r = drive(ResponseReader::for_head_request(0), &[wire], false).unwrap();
        assert!(r.body.is_empty() && r.reusable);
        assert_eq!(r.rest, b"NEXT");
    }

    #[test]
    fn reuse_follows_connection_and_version() {
        let read = |wire: &[u8]| drive(ResponseReader::new(9), &[wire], false).unwrap();
        let r = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx");
        assert!(r.head.close && !r.reusable);
        let r = read(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx");
        assert!(r.reusable);
        let r =
            read(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n");
        assert!(!r.reusable);
        // Both framings: chunked decides and the connection is not reused (RFC 9112 6.3).
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        );
        assert_eq!(r.body, b"x");
        assert!(!r.reusable);
    }

    #[test]
    fn what_an_answer_says_about_auth_retry_and_session() {
        let wire = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"mcp\"\r\nwww-authenticate: Basic\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n";
        let r = drive(ResponseReader::new(0), &[wire], false).unwrap();
        assert_eq!(r.head.status, 401);
        assert_eq!(
            r.head.www_authenticate.as_deref(),
            Some("Bearer realm=\"mcp\", Basic")
        );
        assert_eq!(r.head.retry_after_seconds(), Some(120));
        let wire = b"HTTP/1.1 503 Busy\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n";
        let r = drive(ResponseReader::new(0), &[wire], false).unwrap();
        assert_eq!(
            r.head.retry_after.as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(r.head.retry_after_seconds(), None);
        let r = drive(
            ResponseReader::new(0),
            &[b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"],
            false,
        )
        .unwrap();
        assert_eq!((r.head.status, r.head.reason.as_str()), (404, ""));
    }

    #[test]
    fn malformed_responses_are_refused() {
        let bad = |wire: &[u8]| drive(ResponseReader::new(100), &[wire], false).unwrap_err();
        for wire in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"<html>hello</html>\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nMcp-Session-Id: a\x01b\r\n\r\n",
        ] {
            let e = bad(wire);
            assert!(matches!(e, ClientError::Malformed(_)), "{wire:?}: {e:?}");
            assert!(e.to_string().contains("MCP HTTP endpoint"));
        }
        for wire in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ] {
            assert!(matches!(bad(wire), ClientError::Unsupported(_)), "{wire:?}");
        }
        let e = bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(e, ClientError::BadChunk("bad chunk size"));
        let e = bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc");
        assert!(matches!(e, ClientError::BadChunk(_)));
        // A chunk-size line or a trailer too long is refused whole or in pieces alike.
        let long_size = format!("{}5\r\nabcde\r\n0\r\n\r\n", "0".repeat(1100));
        let long_trailer = format!("0\r\nX-T: {}\r\n\r\n", "t".repeat(9000));
        for (body, why) in [
            (long_size, "chunk size line too long"),
            (long_trailer, "trailers too long"),
        ] {
            let wire = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
            for split in (0..wire.len()).step_by(97) {
                let (a, b) = wire.as_bytes().split_at(split);
                let e = drive(ResponseReader::new(100), &[a, b], false).unwrap_err();
                assert_eq!(e, ClientError::BadChunk(why), "split {split}");
            }
        }
    }

    #[test]
    fn an_error_is_final() {
        let mut r = ResponseReader::new(10);
        let e = r.feed(b"nonsense\r\n\r\n").unwrap_err();
        assert_eq!(r.feed(b"HTTP/1.1 200 OK\r\n\r\n"), Err(e.clone()));
        assert_eq!(r.finish(), Err(e));
        assert!(!r.reusable());
    }

    #[test]
    fn oversize_heads_and_bodies_are_refused_however_they_arrive() {
        let long = format!(
            "HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n",
            "a".repeat(HEAD_MAX)
        );
        for split in [0, 10, HEAD_MAX, long.len() - 1] {
            let (a, b) = long.as_bytes().split_at(split);
            let e = drive(ResponseReader::new(10), &[a, b], false).unwrap_err();
            assert_eq!(e, ClientError::HeadTooLarge, "split {split}");
        }
        let bad_after = format!(
            "HTTP/1.1 200 OK\r\nX-Long: {}\x01\r\n\r\n",
            "a".repeat(HEAD_MAX)
        );
        for split in [0, 10, HEAD_MAX, bad_after.len()] {
            let (a, b) = bad_after.as_bytes().split_at(split);
            let e = drive(ResponseReader::new(10), &[a, b], false).unwrap_err();
            assert_eq!(e, ClientError::HeadTooLarge, "split {split}");
        }
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        let wire = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        let e = drive(ResponseReader::new(10), &[wire.as_bytes()], false).unwrap_err();
        assert_eq!(e, ClientError::HeadTooLarge);
        assert!(e.to_string().contains("64 headers"));
        // A declared length over the bound is refused before the body arrives.
        let mut r = ResponseReader::new(3);
        let e = r
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
            .unwrap_err();
        assert_eq!(e, ClientError::BodyTooLarge { max: 3 });
        assert!(e.to_string().contains("max_message_bytes"));
        // A chunked one when its bytes pass it, whatever the split.
        let wire =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n";
        assert_eq!(read_every_way(wire, 4, false).unwrap().body, b"abcd");
        for split in 0..=wire.len() {
            let (a, b) = wire.split_at(split);
            let e = drive(ResponseReader::new(3), &[a, b], false).unwrap_err();
            assert_eq!(e, ClientError::BodyTooLarge { max: 3 }, "split {split}");
        }
        // Past the bound, then broken: too large, whether or not the break came in the
        // same piece (found by the http_client fuzz target).
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n";
        for split in 0..=wire.len() {
            let (a, b) = wire.split_at(split);
            let e = drive(ResponseReader::new(3), &[a, b], false).unwrap_err();
            assert_eq!(e, ClientError::BodyTooLarge { max: 3 }, "split {split}");
        }
        // A chunk size that overflows a counter is no panic, only too large.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\nbcd";
        let e = drive(ResponseReader::new(3), &[wire], false).unwrap_err();
        assert_eq!(e, ClientError::BodyTooLarge { max: 3 });
        // An event stream is not bounded here (its events are, by the SSE parser).
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 9\r\n\r\ndata: 1\n\n";
        assert_eq!(read_every_way(wire, 1, false).unwrap().body.len(), 9);
    }

    #[test]
    fn a_close_says_whether_anything_was_lost() {
        let mut r = ResponseReader::new(10);
        assert_eq!(r.finish(), Err(ClientError::ClosedBeforeResponse));
        assert!(r
            .finish()
            .unwrap_err()
            .to_string()
            .contains("new connection"));
        for cut in [
            &b"HTTP/1.1 200"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        ] {
            let e = drive(ResponseReader::new(10), &[cut], true).unwrap_err();
            assert_eq!(e, ClientError::Truncated, "{cut:?}");
        }
    }

    /// An event stream as `gangway serve` writes it (its event and chunk writers), read
    /// by the response reader and the SSE parser together, fed in two pieces split at
    /// every position: the same messages, ids and stream end.
    #[test]
    fn gangway_serves_event_stream_reads_back_across_any_split() {
        use crate::http::sse::{Event, SseParser};
        let messages: [&[u8]; 3] = [
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
            br#"{"jsonrpc":"2.0","id":"a\nb","result":{}}"#,
            b"{}",
        ];
        let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut body = Vec::new();
        crate::http::chunk(&mut body, b": keep-alive\n\n");
        for (seq, m) in messages.iter().enumerate() {
            let name = (seq == 2).then_some("message");
            crate::http::chunk(
                &mut body,
                &crate::http::sse_event(3, seq as u64 + 1, name, m),
            );
        }
        body.extend_from_slice(b"0\r\n\r\n");
        wire.extend_from_slice(&body);
        for split in 0..=wire.len() {
            let mut reader = ResponseReader::new(0);
            let mut sse = SseParser::new(100);
            let mut events = Vec::new();
            let mut buf = Vec::new();
            let mut done = false;
            for piece in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(piece);
                while !done {
                    let (n, status) = reader.feed(&buf).unwrap();
                    buf.drain(..n);
                    sse.feed(&reader.take_data(), &mut events).unwrap();
                    match status {
                        ReadStatus::More => break,
                        ReadStatus::Head => assert!(reader.head().unwrap().is_event_stream()),
                        ReadStatus::Done => done = true,
                    }
                }
            }
            assert!(done && reader.reusable(), "split {split}");
            let want: Vec<Event> = messages
                .iter()
                .enumerate()
                .map(|(seq, m)| Event {
                    name: (seq == 2).then(|| "message".to_string()),
                    id: Some(format!("3.{}", seq + 1)),
                    data: m.to_vec(),
                })
                .collect();
            assert_eq!(events, want, "split {split}");
            assert_eq!(sse.last_event_id(), Some("3.3"));
        }
    }
}
