//! The HTTP front of `gangway serve` (sans-IO): turns HTTP/1.1 requests on connections
//! into gateway sessions and lines, and a session's output into HTTP answers and SSE
//! events, by MCP's Streamable HTTP transport (2025-03-26 to 2025-11-25) on `/mcp` and the
//! HTTP+SSE transport of 2024-11-05 on `/sse` + `/messages`.
//!
//! The runtime owns the sockets: it appends what it reads to [`HttpFront::input`], calls
//! [`HttpFront::on_input`], writes [`HttpFront::output`] and closes what
//! [`HttpFront::should_close`] says. The front reads no clock (time is passed in) and
//! interprets MCP only as far as the transport needs: which request a line answers or
//! reports progress on, so it goes to the stream of that request.
//!
//! Stream choice, per session: an answer goes to the POST that carried its request;
//! progress to the POST whose request named the token; every other message (log
//! messages, list changes, resource updates, a backend's requests to the client) to the
//! session's GET stream, or, while no GET stream is open, to its newest open POST stream
//! when the message is a request (a client that opens no GET stream still gets asked),
//! else it waits for the GET stream within the replay bound.

pub mod admin;
pub mod client;
pub mod head;
pub mod sse;

use crate::gateway::outbox::OutBuf;
use crate::gateway::{Gateway, SessionId};
use crate::wire::message::{self, Kind, Message, Raw};
use head::{Body, BodyStatus, Head, HeadError};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The protocol revisions whose HTTP transport gangway serves (`MCP-Protocol-Version`).
pub const VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Largest request head accepted (status 431 beyond).
const HEAD_MAX: usize = 16 * 1024;
/// A request must arrive whole within this long of its first byte (slow clients are cut).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// A kept-alive connection with no request is closed after this long.
const IDLE_CONNECTION: Duration = Duration::from_secs(120);
/// An SSE stream with nothing to say gets a comment this often, so proxies keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The largest request-body buffer a connection keeps for its next request.
const KEEP_BODY_CAPACITY: usize = 2 * 1024 * 1024;
/// A connection whose unread output passes this is a slow reader and is cut (its session
/// stays, and its stream can be resumed).
const SLOW_READER_MAX: usize = 8 * 1024 * 1024;
/// Events a stream keeps after sending them, for resumption with `Last-Event-ID`.
const REPLAY_EVENTS: usize = 64;
/// Bytes a stream keeps for resumption and for a stream with no connection.
const REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// The `retry:` advice sent on every SSE stream, in milliseconds.
const RETRY_MS: u32 = 1000;
/// A POST stream whose connection is gone is kept this long after its last event, for
/// resumption, then dropped.
const RESUME_WINDOW: Duration = Duration::from_secs(120);
/// At most this many POST streams without a connection are kept per session; beyond, the
/// oldest is dropped.
const DETACHED_MAX: usize = 64;
/// The first revision without JSON-RPC batches.
const NO_BATCHES_FROM: &str = "2025-06-18";

/// The settings of the HTTP front (the config's `"http"` object and `serve`'s flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bearer tokens accepted; empty means no authentication.
    pub tokens: Vec<String>,
    /// Origins allowed besides loopback ones (`"*"` allows every origin).
    pub allowed_origins: Vec<String>,
    /// A session with no request and no open stream for this long ends.
    pub session_timeout: Duration,
    /// Most connections open at once; more get 503.
    pub max_connections: usize,
    /// Most sessions open at once; an `initialize` beyond gets 503.
    pub max_sessions: usize,
    /// Largest request body (the config's `max_message_bytes`).
    pub max_body: usize,
    /// The config's `rate_limit`, per token (per session without tokens).
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
}

impl Settings {
    /// The settings `config` gives (its `"http"` object, `max_message_bytes` and
    /// `rate_limit`), with the defaults for what it leaves out: sessions expire after 30
    /// minutes, at most 1024 connections and 1000 sessions.
    pub fn from_config(config: &crate::config::Config) -> Settings {
        let http = &config.http;
        Settings {
            tokens: http.tokens.clone(),
            allowed_origins: http.allowed_origins.clone(),
            session_timeout: http.session_timeout.unwrap_or(Duration::from_secs(1800)),
            max_connections: http.max_connections.unwrap_or(1024),
            max_sessions: http.max_sessions.unwrap_or(1000),
            max_body: config.max_message_bytes,
            rate_limit: config.rate_limit,
        }
    }
}

/// What the front's connection `c` is doing.
#[derive(Debug)]
enum State {
    /// Reading a request head (`since`: the first byte of it, if any arrived).
    Head { since: Option<Instant> },
    /// Reading the body of `head`.
    Body {
        head: Box<Head>,
        body: Body,
        since: Instant,
    },
    /// A POST whose answer has not begun: the first message for its stream decides
    /// between a JSON answer and an event stream.
    Waiting { session: String, stream: u64 },
    /// Sending an event stream.
    Streaming { session: String, stream: u64 },
    /// Everything is written, then the connection closes.
    Closing,
}

#[derive(Debug)]
struct Conn {
    input: Vec<u8>,
    /// The buffer of the last request body, kept for the next one (up to
    /// [`KEEP_BODY_CAPACITY`]), so a run of large requests does not map and fault in a new
    /// buffer for each.
    spare_body: Vec<u8>,
    out: OutBuf,
    state: State,
    /// The last request ended or the last byte was queued: for the idle and keep-alive
    /// deadlines.
    last: Instant,
    /// The client asked to close after the current answer.
    close_after: bool,
    /// The peer closed its side; no further request will come.
    eof: bool,
    /// The request being answered is a HEAD: the answer has no body.
    head_only: bool,
}

/// One stream of a session: the GET stream (number 0) or the answer stream of a POST.
#[derive(Debug, Default)]
struct Stream {
    /// The connection it is written to, if one is attached.
    conn: Option<usize>,
    /// Events kept (sent for replay, then unsent), as (sequence, SSE event bytes).
    events: VecDeque<(u64, Vec<u8>)>,
    /// Bytes held in `events`.
    bytes: usize,
    /// The last sequence number written to a connection.
    sent: u64,
    /// Requests of its POST still waiting for their answers (more than one for a batch).
    open: usize,
    /// Every request of its POST was answered: the stream ends after its last event.
    done: bool,
    /// When the stream was last written to or detached, for dropping unclaimed POST
    /// streams.
    last: Option<Instant>,
}

#[derive(Debug)]
struct Session {
    gw: SessionId,
    /// Serves the HTTP+SSE transport of 2024-11-05: everything goes on stream 0, and the
    /// session ends with that stream.
    legacy: bool,
    streams: HashMap<u64, Stream>,
    next_stream: u64,
    next_event: u64,
    /// Request ids (raw JSON) in flight, and the stream of each.
    requests: HashMap<Vec<u8>, u64>,
    /// Progress tokens (raw JSON) of requests in flight, and their stream.
    tokens: HashMap<Vec<u8>, u64>,
    /// The last request, or the last moment a stream was open.
    last: Instant,
    /// Events dropped for want of a reader, reported once per run of drops.
    dropped: u64,
    /// Serves one request of a revision 2026-07-28 client: no session id is given out,
    /// and the session ends with the request's answer, or with its connection (which
    /// cancels the request).
    modern: bool,
    /// A modern session answered with an `InputRequiredResult`: its call stays in flight
    /// at the backend for the client's retry (in another request), so the session stays
    /// until the gateway no longer waits for it (`Gateway::waits_for_retry`); it has no
    /// client, and what the gateway writes for it is dropped.
    held: bool,
}

/// The HTTP front: connections and the sessions they serve.
#[derive(Debug)]
pub struct HttpFront {
    settings: Settings,
    /// Revision 2026-07-28 sessions whose request was answered: ended after the pump
    /// (or held, while a call of theirs waits for its retry).
    ending: Vec<String>,
    /// Revision 2026-07-28 sessions held for a retry (see `Session::held`). They do not
    /// count toward `max_sessions` (a client that never retries must not lock others
    /// out); each holds an ask, which the gateway bounds.
    held: Vec<String>,
    conns: Vec<Option<Conn>>,
    open_conns: usize,
    sessions: HashMap<String, Session>,
    /// Counters for `/metrics`.
    stats: admin::FrontStats,
    /// What `/readyz` reports.
    ready: Readiness,
    /// Rate-limit buckets: `t<index>` per token, `s<session id>` per session.
    buckets: HashMap<String, crate::ratelimit::TokenBucket>,
}

/// What `/readyz` knows: whether a backend needs the Docker daemon, and whether the last
/// check reached it.
#[derive(Debug, Default)]
struct Readiness {
    docker_needed: bool,
    /// The last check's result (`Err` says why it failed) and when it ended.
    docker: Option<(Result<(), String>, Instant)>,
    /// A check is under way.
    probing: bool,
    /// `/readyz` asked for a new check.
    probe_wanted: bool,
    /// gangway is shutting down: not ready for new clients.
    stopping: bool,
}

/// A Docker check older than this is refreshed when `/readyz` is asked.
const DOCKER_CHECK_AGE: Duration = Duration::from_secs(10);

/// A progress token (raw JSON) as the front keys its streams by it.
fn token_key(token: Option<Raw<'_>>) -> Option<Vec<u8>> {
    token.map(|t| t.get().as_bytes().to_vec())
}

/// A fresh session id: 128 random bits, hex.
fn mint_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Whether `origin` names a loopback host (`http://localhost:3000`, `https://127.0.0.1`,
/// `http://[::1]:8080`).
fn loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

/// One SSE event carrying `data` (one JSON line), with id `stream.seq`.
fn sse_event(stream: u64, seq: u64, name: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(data.len() + 48);
    e.extend_from_slice(format!("id: {stream}.{seq}\n").as_bytes());
    if let Some(name) = name {
        e.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    e.extend_from_slice(b"data: ");
    e.extend_from_slice(data);
    e.extend_from_slice(b"\n\n");
    e
}

/// Appends one chunk of chunked transfer coding.
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A JSON-RPC error body with a null id.
fn error_body(code: i64, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    message::write_error(&mut b, b"null", code, text);
    if b.last() == Some(&b'\n') {
        b.pop();
    }
    b
}

impl HttpFront {
    /// A front with `settings` and no connection.
    pub fn new(settings: Settings) -> HttpFront {
        HttpFront {
            ending: Vec::new(),
            held: Vec::new(),
            settings,
            conns: Vec::new(),
            open_conns: 0,
            sessions: HashMap::new(),
            stats: admin::FrontStats::default(),
            ready: Readiness::default(),
            buckets: HashMap::new(),
        }
    }

    /// Applies new settings (a config reload): tokens, origins, limits and timeouts take
    /// effect for the next request; rate-limit buckets start over.
    pub fn update_settings(&mut self, settings: Settings) {
        if settings.rate_limit != self.settings.rate_limit {
            self.buckets.clear();
        }
        self.settings = settings;
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A new connection: returns its number (slots are reused). Over `max_connections`
    /// it is answered 503 and closes.
    pub fn accept(&mut self, now: Instant) -> usize {
        let conn = Conn {
            input: Vec::new(),
            spare_body: Vec::new(),
            out: OutBuf::default(),
            state: State::Head { since: None },
            last: now,
            close_after: false,
            eof: false,
            head_only: false,
        };
        let c = match self.conns.iter().position(Option::is_none) {
            Some(c) => {
                self.conns[c] = Some(conn);
                c
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        self.open_conns += 1;
        self.stats.connections_total += 1;
        if self.open_conns > self.settings.max_connections {
            log::warn!(
                "HTTP: {} connections open, more than max_connections ({}); answering 503",
                self.open_conns,
                self.settings.max_connections
            );
            self.fail(c, 503, "too many connections; try again later", &[]);
        }
        c
    }

    /// Whether connection `c` takes more input now (it is between requests or reading
    /// one, and its buffer is within bounds).
    pub fn wants_input(&self, c: usize) -> bool {
        let Some(Some(conn)) = self.conns.get(c) else {
            return false;
        };
        match conn.state {
            State::Head { .. } => conn.input.len() <= HEAD_MAX,
            State::Body { .. } => true,
            // A request behind one in progress waits in the socket (pipelining is rare
            // and needs no reading ahead); a stream's connection is read for its EOF.
            State::Waiting { .. } | State::Streaming { .. } => conn.input.len() < 4096,
            State::Closing => false,
        }
    }

    /// The buffer the runtime appends what it read from `c` to.
    pub fn input(&mut self, c: usize) -> Option<&mut Vec<u8>> {
        Some(&mut self.conns.get_mut(c)?.as_mut()?.input)
    }

    /// What waits to be written to `c`.
    pub fn output(&mut self, c: usize) -> Option<&mut OutBuf> {
        Some(&mut self.conns.get_mut(c)?.as_mut()?.out)
    }

    /// Whether `c` is finished: everything written and nothing more to come.
    pub fn should_close(&self, c: usize) -> bool {
        match self.conns.get(c) {
            Some(Some(conn)) => {
                conn.out.is_empty()
                    && (matches!(conn.state, State::Closing)
                        || (conn.eof && matches!(conn.state, State::Head { .. })))
            }
            _ => true,
        }
    }

    /// The connections there are (for the runtime to find output to write).
    pub fn conn_ids(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.conns.len()).filter(|&c| self.conns[c].is_some())
    }

    /// The peer closed its sending side of `c`.
    pub fn on_eof(&mut self, now: Instant, c: usize, gw: &mut Gateway) {
        // A 2026-07-28 request is cancelled by closing its stream: its session ends now.
        let modern = match self.conns.get(c) {
            Some(Some(Conn {
                state: State::Waiting { session, .. } | State::Streaming { session, .. },
                ..
            })) => self
                .sessions
                .get(session)
                .is_some_and(|s| s.modern)
                .then(|| session.clone()),
            _ => None,
        };
        if let Some(sid) = modern {
            self.end_session(now, &sid, gw);
            if let Some(Some(conn)) = self.conns.get_mut(c) {
                conn.state = State::Closing;
            }
            return;
        }
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.eof = true;
        }
        self.on_input(now, c, gw);
    }

    /// Connection `c` is gone (closed by either side or failed): its stream, if any, is
    /// detached and kept for resumption; a legacy SSE session ends with it.
    pub fn on_closed(&mut self, now: Instant, c: usize, gw: &mut Gateway) {
        let Some(conn) = self.conns.get_mut(c).and_then(Option::take) else {
            return;
        };
        self.open_conns -= 1;
        if let State::Waiting { session, stream } | State::Streaming { session, stream } =
            conn.state
        {
            let legacy = match self.sessions.get_mut(&session) {
                Some(s) => {
                    s.last = now;
                    // A stream resumed elsewhere has moved on from this connection.
                    if let Some(st) = s.streams.get_mut(&stream).filter(|st| st.conn == Some(c)) {
                        st.conn = None;
                        st.last = Some(now);
                    }
                    // A 2026-07-28 request is cancelled by closing its stream.
                    s.legacy || s.modern
                }
                None => false,
            };
            if legacy {
                self.end_session(now, &session, gw);
            }
        }
    }

    /// Handles what arrived on `c`: parses requests and serves them, as far as the input
    /// goes.
    pub fn on_input(&mut self, now: Instant, c: usize, gw: &mut Gateway) {
        // Each round serves one request; a connection holds at most a few in its bounded
        // buffer, so the rounds are bounded by the buffer.
        for _ in 0..64 {
            let Some(Some(conn)) = self.conns.get_mut(c) else {
                return;
            };
            match &mut conn.state {
                State::Head { since } => {
                    if conn.input.is_empty() {
                        return;
                    }
                    since.get_or_insert(now);
                    match head::parse_head(&conn.input) {
                        Ok(None) if conn.input.len() > HEAD_MAX => {
                            self.fail(c, 431, &HeadError::TooLarge.message(), &[]);
                            return;
                        }
                        Ok(None) => {
                            if conn.eof {
                                conn.state = State::Closing;
                            }
                            return;
                        }
                        Err(e) => {
                            self.fail(c, e.status(), &e.message(), &[]);
                            return;
                        }
                        Ok(Some((head, len))) => {
                            conn.input.drain(..len);
                            conn.close_after = head.close;
                            let mut body = Body::new(&head, self.settings.max_body);
                            if body.declared_too_large() {
                                let text = format!(
                                    "request body of {} bytes is over the limit of {} (max_message_bytes)",
                                    head.content_length.unwrap_or(0),
                                    self.settings.max_body
                                );
                                self.fail(c, 413, &text, &[]);
                                return;
                            }
                            if head.expect_continue {
                                let line = b"HTTP/1.1 100 Continue\r\n\r\n";
                                conn.out.buf().extend_from_slice(line);
                            }
                            body.data = std::mem::take(&mut conn.spare_body);
                            // The declared length, within the bound checked above.
                            let declared = head.content_length.unwrap_or(0);
                            body.data.reserve(
                                usize::try_from(declared)
                                    .unwrap_or(0)
                                    .min(self.settings.max_body),
                            );
                            let since = since.unwrap_or(now);
                            conn.state = State::Body {
                                head: Box::new(head),
                                body,
                                since,
                            };
                        }
                    }
                }
                State::Body { body, .. } => {
                    let (used, status) = body.feed(&conn.input);
                    conn.input.drain(..used);
                    match status {
                        BodyStatus::More => {
                            if conn.eof {
                                conn.state = State::Closing;
                            }
                            return;
                        }
                        BodyStatus::TooLarge => {
                            let text = format!(
                                "request body is over the limit of {} bytes (max_message_bytes)",
                                self.settings.max_body
                            );
                            self.fail(c, 413, &text, &[]);
                            return;
                        }
                        BodyStatus::Malformed(why) => {
                            self.fail(c, 400, &format!("malformed chunked body: {why}"), &[]);
                            return;
                        }
                        BodyStatus::Done => {
                            let State::Body { head, body, .. } =
                                std::mem::replace(&mut conn.state, State::Head { since: None })
                            else {
                                return;
                            };
                            conn.last = now;
                            self.serve(now, c, &head, &body.data, gw);
                            let mut spare = body.data;
                            spare.clear();
                            if spare.capacity() <= KEEP_BODY_CAPACITY {
                                if let Some(Some(conn)) = self.conns.get_mut(c) {
                                    conn.spare_body = spare;
                                }
                            }
                        }
                    }
                }
                State::Waiting { .. } | State::Streaming { .. } | State::Closing => return,
            }
        }
    }

    /// Queues a complete answer on `c`; with `close`, the connection closes after it.
    fn respond(
        &mut self,
        c: usize,
        status: u16,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &[u8],
    ) {
        let Some(Some(conn)) = self.conns.get_mut(c) else {
            return;
        };
        let close = conn.close_after || matches!(conn.state, State::Closing);
        *self.stats.responses.entry(status).or_default() += 1;
        let out = conn.out.buf();
        out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
        for (k, v) in headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if !content_type.is_empty() {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !std::mem::take(&mut conn.head_only) {
            conn.out.buf().extend_from_slice(body);
        }
        if close {
            conn.state = State::Closing;
        }
    }

    /// Answers `c` with an error status and a JSON-RPC error body saying `text`.
    fn reject(&mut self, c: usize, status: u16, text: &str, headers: &[(&str, &str)]) {
        let code = if status == 400 { -32600 } else { -32000 };
        log::debug!("HTTP: {status} {text}");
        self.respond(
            c,
            status,
            headers,
            "application/json",
            &error_body(code, text),
        );
    }

    /// Answers `c` with an error and closes it (the request could not be framed).
    fn fail(&mut self, c: usize, status: u16, text: &str, headers: &[(&str, &str)]) {
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.state = State::Closing;
            conn.input.clear();
        }
        self.reject(c, status, text, headers);
    }

    /// Checks what every request must pass: its origin and its token.
    fn admit(&mut self, c: usize, head: &Head) -> bool {
        if let Some(origin) = head.origin.as_deref() {
            let allowed = loopback_origin(origin)
                || self
                    .settings
                    .allowed_origins
                    .iter()
                    .any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
            if !allowed {
                let text = format!("origin {origin:?} is not allowed; add it to http.allowed_origins in gangway's config");
                self.reject(c, 403, &text, &[]);
                return false;
            }
        }
        if self.settings.tokens.is_empty() {
            return true;
        }
        let given = head
            .authorization
            .as_deref()
            .and_then(credential)
            .unwrap_or_default();
        let mut ok = subtle::Choice::from(0);
        for t in &self.settings.tokens {
            ok |= subtle::ConstantTimeEq::ct_eq(t.as_bytes(), given.as_bytes());
        }
        if bool::from(ok) {
            return true;
        }
        let text = if head.authorization.is_some() {
            "the bearer token is not one of http.tokens"
        } else {
            "authentication required: send Authorization: Bearer <token> with a token from http.tokens"
        };
        // A person's browser asks for the token (as the password) when told Basic.
        let page = matches!(head.path.as_str(), "/" | "/status.json");
        let challenge = if page {
            "Basic realm=\"gangway\", charset=\"UTF-8\""
        } else {
            "Bearer"
        };
        self.reject(c, 401, text, &[("WWW-Authenticate", challenge)]);
        false
    }

    /// Serves one complete request.
    fn serve(&mut self, now: Instant, c: usize, head: &Head, body: &[u8], gw: &mut Gateway) {
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.head_only = head.method == "HEAD";
        }
        // Probes need no credentials, and these answers reveal nothing.
        match (head.path.as_str(), head.method.as_str()) {
            ("/healthz", "GET" | "HEAD") => {
                return self.respond(c, 200, &[], "text/plain; charset=utf-8", b"ok\n");
            }
            ("/readyz", "GET" | "HEAD") => return self.readyz(now, c),
            _ => {}
        }
        if !self.admit(c, head) {
            return;
        }
        if let Some(rest) = head.path.strip_prefix("/backends/") {
            return self.control(now, c, head, rest, gw);
        }
        match (head.path.as_str(), head.method.as_str()) {
            ("/metrics", "GET") => {
                let text = admin::metrics(&gw.status(now), &self.front_stats(now, gw));
                let kind = "text/plain; version=0.0.4; charset=utf-8";
                return self.respond(c, 200, &[], kind, text.as_bytes());
            }
            ("/status.json", "GET") => {
                let text = admin::status_json(&gw.status(now), &self.front_stats(now, gw));
                let no_cache = [("Cache-Control", "no-store")];
                return self.respond(c, 200, &no_cache, "application/json", text.as_bytes());
            }
            ("/", "GET") => {
                let page = admin::status_page(&gw.status(now), &self.front_stats(now, gw));
                let headers = [("Cache-Control", "no-store"), ("X-Frame-Options", "DENY")];
                return self.respond(
                    c,
                    200,
                    &headers,
                    "text/html; charset=utf-8",
                    page.as_bytes(),
                );
            }
            _ => {}
        }
        match (head.path.as_str(), head.method.as_str()) {
            ("/mcp", "POST") => self.post(now, c, head, body, gw),
            ("/mcp", "GET") => self.get(now, c, head),
            ("/mcp", "DELETE") => self.delete(now, c, head, gw),
            ("/sse", "GET") => self.legacy_open(now, c, head, gw),
            ("/messages" | "/message", "POST") => self.legacy_post(now, c, head, body, gw),
            ("/mcp", _) => self.reject(
                c,
                405,
                "use POST, GET or DELETE on /mcp",
                &[("Allow", "GET, POST, DELETE")],
            ),
            ("/sse", _) => self.reject(c, 405, "use GET on /sse", &[("Allow", "GET")]),
            ("/messages" | "/message", _) => {
                self.reject(c, 405, "use POST on /messages", &[("Allow", "POST")]);
            }
            (path, _) => {
                let text = format!("no such endpoint {path:?}: MCP is served on /mcp (Streamable HTTP) and /sse (HTTP+SSE); the status page is /, metrics /metrics");
                self.reject(c, 404, &text, &[]);
            }
        }
    }

    /// `/readyz`: 200 once serving, when the Docker daemon answered (if a backend needs
    /// it); 503 with the reason otherwise. A check older than [`DOCKER_CHECK_AGE`] is
    /// asked for again (the answer is the last one known).
    fn readyz(&mut self, now: Instant, c: usize) {
        let r = &mut self.ready;
        let stale = !r
            .docker
            .as_ref()
            .is_some_and(|(_, at)| now < *at + DOCKER_CHECK_AGE);
        if r.docker_needed && stale && !r.probing {
            r.probe_wanted = true;
        }
        let not_ready = if r.stopping {
            Some("not ready: gangway is shutting down".to_string())
        } else if !r.docker_needed {
            None
        } else {
            match &r.docker {
                None => {
                    Some("not ready: checking the Docker daemon, which a backend needs".to_string())
                }
                Some((Err(why), _)) => Some(format!(
                    "not ready: the Docker daemon, which a backend needs, is not reachable: {why}"
                )),
                Some((Ok(()), _)) => None,
            }
        };
        let plain = "text/plain; charset=utf-8";
        match not_ready {
            None => self.respond(c, 200, &[], plain, b"ready\n"),
            Some(text) => self.respond(
                c,
                503,
                &[("Retry-After", "5")],
                plain,
                format!("{text}\n").as_bytes(),
            ),
        }
    }

    /// POST `/backends/NAME/start|stop|restart`: the status page's buttons.
    fn control(&mut self, now: Instant, c: usize, head: &Head, rest: &str, gw: &mut Gateway) {
        let Some((name, action)) = rest.rsplit_once('/') else {
            let text = "use POST /backends/NAME/start, /stop or /restart";
            return self.reject(c, 404, text, &[]);
        };
        if head.method != "POST" {
            return self.reject(c, 405, "use POST", &[("Allow", "POST")]);
        }
        let name = percent_decode(name);
        let done = match action {
            "start" => gw.start_backend(now, &name),
            "stop" => gw.stop_backend(now, &name),
            "restart" => gw.restart_backend(now, &name),
            _ => {
                let text = format!("unknown action {action:?}: use start, stop or restart");
                return self.reject(c, 404, &text, &[]);
            }
        };
        match done {
            Ok(()) => self.respond(c, 200, &[], "application/json", b"{\"ok\":true}"),
            Err(why) if why.starts_with("no backend") => self.reject(c, 404, &why, &[]),
            Err(why) => self.reject(c, 409, &why, &[]),
        }
    }

    /// Which of `http.tokens` the request's credential is, if any.
    fn token_index(&self, head: &Head) -> Option<usize> {
        let given = head.authorization.as_deref().and_then(credential)?;
        self.settings.tokens.iter().position(|t| *t == given)
    }

    /// Takes one request from the rate-limit bucket of the request's token (of session
    /// `sid` without tokens); answers 429 with `Retry-After` and returns false when it is
    /// empty.
    fn within_rate(&mut self, now: Instant, c: usize, head: &Head, sid: &str) -> bool {
        let Some(limit) = self.settings.rate_limit else {
            return true;
        };
        let key = match self.token_index(head) {
            Some(i) => format!("t{i}"),
            None => format!("s{sid}"),
        };
        let bucket = self
            .buckets
            .entry(key)
            .or_insert_with(|| crate::ratelimit::TokenBucket::new(limit, now));
        let Err(wait) = bucket.take(now) else {
            return true;
        };
        let retry =
            wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0 && wait.as_secs() > 0);
        let text = limit.refusal(wait);
        let body = {
            let mut b = Vec::new();
            message::write_error(&mut b, b"null", message::RATE_LIMITED, &text);
            b
        };
        let retry = retry.to_string();
        self.respond(
            c,
            429,
            &[("Retry-After", &retry)],
            "application/json",
            body.trim_ascii_end(),
        );
        false
    }

    /// The front's counters and sessions at `now`.
    fn front_stats(&self, now: Instant, gw: &Gateway) -> admin::FrontStats {
        let mut session_rows: Vec<admin::SessionRow> = self
            .sessions
            .iter()
            .map(|(id, s)| {
                let (client, version) = gw.session_client(s.gw);
                admin::SessionRow {
                    id: short(id).to_string(),
                    transport: if s.legacy { "sse" } else { "streamable-http" },
                    client: client.map(str::to_string),
                    version,
                    idle: now.saturating_duration_since(s.last),
                    streams: s.streams.values().filter(|st| st.conn.is_some()).count(),
                }
            })
            .collect();
        session_rows.sort_by_key(|r| r.idle);
        admin::FrontStats {
            connections: self.open_conns,
            queued: self.conns.iter().flatten().map(|c| c.out.len()).sum(),
            sessions: self.sessions.len(),
            session_rows,
            ..self.stats.clone()
        }
    }

    /// Counts bytes the runtime read from and wrote to connections.
    pub fn note_io(&mut self, read: usize, written: usize) {
        self.stats.bytes_in += read as u64;
        self.stats.bytes_out += written as u64;
    }

    /// Whether a backend runs `docker run`, so readiness depends on the daemon.
    pub fn set_docker_needed(&mut self, needed: bool) {
        self.ready.docker_needed = needed;
    }

    /// The runtime checked the Docker daemon at `now` (`Err` says why it failed).
    pub fn set_docker(&mut self, now: Instant, result: Result<(), String>) {
        self.ready.docker = Some((result, now));
        self.ready.probing = false;
    }

    /// Whether `/readyz` asked for a Docker check (once); the runtime then runs one and
    /// reports it with [`HttpFront::set_docker`].
    pub fn take_probe_request(&mut self) -> bool {
        let wanted = std::mem::take(&mut self.ready.probe_wanted);
        self.ready.probing |= wanted;
        wanted
    }

    /// gangway is shutting down: `/readyz` says so, so load balancers stop sending clients,
    /// and new requests get 503 while those in flight finish.
    pub fn set_stopping(&mut self) {
        self.ready.stopping = true;
    }

    /// gangway exits: every event stream ends properly (its last chunk), and every
    /// connection closes once its output is written.
    pub fn end_all(&mut self) {
        for conn in self.conns.iter_mut().flatten() {
            if matches!(conn.state, State::Streaming { .. }) {
                chunk_end(&mut conn.out);
            }
            conn.state = State::Closing;
        }
    }

    /// Whether any connection still has output to write.
    pub fn has_output(&self) -> bool {
        self.conns.iter().flatten().any(|c| !c.out.is_empty())
    }

    /// The session a request names, answering 400 or 404 when it names none or an
    /// unknown one; also checks `MCP-Protocol-Version`.
    fn session_of(&mut self, now: Instant, c: usize, head: &Head) -> Option<String> {
        if let Some(v) = head.protocol_version.as_deref() {
            if !VERSIONS.contains(&v) {
                let text = format!(
                    "unsupported MCP-Protocol-Version {v:?}; gangway serves {}",
                    VERSIONS.join(", ")
                );
                self.reject(c, 400, &text, &[]);
                return None;
            }
        }
        let Some(id) = head.session_id.as_deref() else {
            self.reject(
                c,
                400,
                "Mcp-Session-Id header is required (send initialize first to get one)",
                &[],
            );
            return None;
        };
        match self.sessions.get_mut(id) {
            Some(s) if !s.legacy => {
                s.last = now;
                Some(id.to_string())
            }
            _ => {
                self.reject(
                    c,
                    404,
                    "session not found (it ended or expired); initialize a new one",
                    &[],
                );
                None
            }
        }
    }

    fn post(&mut self, now: Instant, c: usize, head: &Head, body: &[u8], gw: &mut Gateway) {
        if !(head.accepts("application/json") && head.accepts("text/event-stream")) {
            self.reject(
                c,
                406,
                "Accept must list both application/json and text/event-stream",
                &[],
            );
            return;
        }
        if !head.content_type.starts_with("application/json") {
            self.reject(c, 415, "Content-Type must be application/json", &[]);
            return;
        }
        if body.trim_ascii_start().starts_with(b"[") {
            return self.post_batch(now, c, head, body, gw);
        }
        let line = one_line(body);
        self.post_line(now, c, head, &line, gw);
    }

    /// A JSON-RPC batch: allowed by revision 2025-03-26 only (the version a request
    /// without `MCP-Protocol-Version` speaks). Its requests share one event stream, which
    /// ends when all are answered; a batch of notifications and answers gets 202.
    fn post_batch(&mut self, now: Instant, c: usize, head: &Head, body: &[u8], gw: &mut Gateway) {
        if head
            .protocol_version
            .as_deref()
            .is_some_and(|v| v >= NO_BATCHES_FROM)
        {
            let text = "JSON-RPC batches (arrays) are not part of MCP since 2025-06-18; send one message per request";
            self.reject(c, 400, text, &[]);
            return;
        }
        let items: Vec<&RawValue> = match serde_json::from_slice(body) {
            Ok(items) => items,
            Err(e) => {
                self.reject(
                    c,
                    400,
                    &format!("the batch is not a JSON array of messages: {e}"),
                    &[],
                );
                return;
            }
        };
        let lines: Vec<Cow<'_, [u8]>> =
            items.iter().map(|i| one_line(i.get().as_bytes())).collect();
        let mut requests = Vec::new();
        for line in &lines {
            match Message::parse(line) {
                Ok(m) if m.method == Some("initialize") => {
                    self.reject(c, 400, "initialize cannot be part of a batch", &[]);
                    return;
                }
                Ok(m) if m.kind == Kind::Request => {
                    requests.push((
                        m.id.map(|i| i.get().as_bytes().to_vec()),
                        token_key(m.progress_token()),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    self.reject(
                        c,
                        400,
                        &format!("a batch member is invalid: {}", e.reason),
                        &[],
                    );
                    return;
                }
            }
        }
        if lines.is_empty() {
            self.reject(c, 400, "an empty batch", &[]);
            return;
        }
        let Some(sid) = self.session_of(now, c, head) else {
            return;
        };
        for _ in 0..requests.len() {
            if !self.within_rate(now, c, head, &sid) {
                return;
            }
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let gs = s.gw;
        if !requests.is_empty() {
            let stream = s.next_stream;
            s.next_stream += 1;
            for (id, token) in requests.iter().cloned() {
                s.requests.extend(id.map(|id| (id, stream)));
                s.tokens.extend(token.map(|t| (t, stream)));
            }
            s.streams.insert(
                stream,
                Stream {
                    conn: Some(c),
                    open: requests.len(),
                    ..Stream::default()
                },
            );
            // Several answers cannot be one JSON body here: the batch gets an event stream.
            self.start_stream(c, &sid, stream);
        }
        for line in &lines {
            gw.on_client_line(now, gs, line);
        }
        if requests.is_empty() {
            self.respond(c, 202, &[("Mcp-Session-Id", &sid)], "", b"");
        }
    }

    fn post_line(&mut self, now: Instant, c: usize, head: &Head, line: &[u8], gw: &mut Gateway) {
        let msg = match Message::parse(line) {
            Ok(m) => m,
            Err(e) => {
                self.reject(c, 400, &e.reason, &[]);
                return;
            }
        };
        let modern_header = head
            .protocol_version
            .as_deref()
            .is_some_and(|v| !VERSIONS.contains(&v));
        let enveloped = head.session_id.is_none()
            && msg
                .call_params()
                .and_then(|p| p.meta)
                .is_some_and(|m| m.contains("\"io.modelcontextprotocol/protocolVersion\""));
        if self.ready.stopping && msg.kind == Kind::Request {
            let text = "gangway is shutting down; try again (a load balancer sends you to another instance)";
            self.reject(c, 503, text, &[("Retry-After", "1")]);
            return;
        }
        if head.session_id.is_none() && (modern_header || enveloped) {
            return self.post_modern(now, c, head, &msg, gw);
        }
        let initialize = msg.kind == Kind::Request && msg.method == Some("initialize");
        let sid = if initialize && head.session_id.is_none() {
            match self.open_session(now, c, gw, false, false) {
                Some(id) => id,
                None => return,
            }
        } else {
            match self.session_of(now, c, head) {
                Some(id) => id,
                None => return,
            }
        };
        if msg.kind == Kind::Request && !self.within_rate(now, c, head, &sid) {
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if msg.kind == Kind::Request {
            self.serve_request(now, c, &sid, &msg, gw);
        } else {
            gw.on_client_message(now, s.gw, &msg);
            self.respond(c, 202, &[("Mcp-Session-Id", &sid)], "", b"");
        }
    }

    /// A request of a revision 2026-07-28 client: its headers checked against its body,
    /// then served in a session of its own that ends with its answer.
    fn post_modern(
        &mut self,
        now: Instant,
        c: usize,
        head: &Head,
        msg: &Message<'_>,
        gw: &mut Gateway,
    ) {
        if msg.kind != Kind::Request {
            // Notifications carry nothing gangway acts on without a session.
            self.respond(c, 202, &[], "", b"");
            return;
        }
        let method = msg.method.unwrap_or("");
        let name = match method {
            "tools/call" | "prompts/get" => Some("name"),
            "resources/read" => Some("uri"),
            _ => None,
        };
        // The name from the pass that read the line (the URI by one more scan of params),
        // not from a tree of params, whose arguments can be megabytes.
        let body_name = name.and_then(|key| {
            let raw = if key == "name" {
                msg.call_params()?.name?
            } else {
                let [uri] = crate::wire::scan::members(msg.params?.get(), &[b"uri"])?;
                uri?
            };
            serde_json::from_str::<String>(raw).ok()
        });
        let body_version = msg
            .call_params()
            .and_then(|p| p.meta)
            .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
            .and_then(|m| {
                m.get("io.modelcontextprotocol/protocolVersion")?
                    .as_str()
                    .map(str::to_string)
            });
        let id = msg.id.map_or("null", |i| i.get());
        if body_version.is_none() {
            let text = "params._meta must be an object carrying the required 'io.modelcontextprotocol/protocolVersion' and 'io.modelcontextprotocol/clientCapabilities' envelope keys";
            let body = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":-32602,\"message\":{}}}}}",
                serde_json::Value::from(text)
            );
            self.respond(c, 400, &[], "application/json", body.as_bytes());
            return;
        }
        let mismatch = if head.protocol_version != body_version {
            Some("mcp-protocol-version header does not match the request envelope's protocol version")
        } else if head.mcp_method.as_deref() != Some(method) {
            Some("mcp-method header does not match the request body's method")
        } else if name.is_some() && head.mcp_name != body_name {
            Some("mcp-name header does not match the request body's name")
        } else {
            None
        };
        if let Some(text) = mismatch {
            let body = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{{\"code\":-32020,\"message\":{}}}}}",
                serde_json::Value::from(text)
            );
            self.respond(c, 400, &[], "application/json", body.as_bytes());
            return;
        }
        let Some(sid) = self.open_session(now, c, gw, false, true) else {
            return;
        };
        // What one credential's requests may hold while they wait for retries is bounded.
        if let Some(s) = self.sessions.get(&sid) {
            gw.set_principal(s.gw, self.token_index(head));
        }
        if !self.within_rate(now, c, head, &sid) {
            self.end_session(now, &sid, gw);
            return;
        }
        self.serve_request(now, c, &sid, msg, gw);
    }

    /// Request `msg` of session `sid`, which arrived on `c`: a stream of its own waits
    /// for its answer there, and the gateway takes it.
    fn serve_request(
        &mut self,
        now: Instant,
        c: usize,
        sid: &str,
        msg: &Message<'_>,
        gw: &mut Gateway,
    ) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let stream = s.next_stream;
        s.next_stream += 1;
        s.streams.insert(
            stream,
            Stream {
                conn: Some(c),
                open: 1,
                ..Stream::default()
            },
        );
        if let Some(id) = msg.id {
            s.requests.insert(id.get().as_bytes().to_vec(), stream);
        }
        if let Some(t) = token_key(msg.progress_token()) {
            s.tokens.insert(t, stream);
        }
        if let Some(Some(conn)) = self.conns.get_mut(c) {
            conn.state = State::Waiting {
                session: sid.to_string(),
                stream,
            };
        }
        gw.on_client_message(now, s.gw, msg);
    }

    /// Whether `head` is a 2026-07-28 client's (its `MCP-Protocol-Version` is not a
    /// handshake revision), which only POSTs: a GET or DELETE of one gets 405.
    fn modern_only_posts(&mut self, c: usize, head: &Head) -> bool {
        let modern = head.session_id.is_none()
            && head
                .protocol_version
                .as_deref()
                .is_some_and(|v| !VERSIONS.contains(&v));
        if modern {
            let text = "revision 2026-07-28 has no GET stream and no sessions to DELETE: send each request as a POST (list changes come through subscriptions/listen)";
            self.reject(c, 405, text, &[("Allow", "POST")]);
        }
        modern
    }

    fn get(&mut self, now: Instant, c: usize, head: &Head) {
        if self.modern_only_posts(c, head) {
            return;
        }
        if !head.accepts("text/event-stream") {
            self.reject(c, 406, "Accept must list text/event-stream", &[]);
            return;
        }
        let Some(sid) = self.session_of(now, c, head) else {
            return;
        };
        let (stream, after) = match head.last_event_id.as_deref().and_then(parse_event_id) {
            Some((stream, seq)) => (stream, Some(seq)),
            None => (0, None),
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if stream != 0 && !s.streams.contains_key(&stream) {
            self.reject(
                c,
                404,
                "that stream is gone: its events are no longer kept",
                &[],
            );
            return;
        }
        let st = s.streams.entry(stream).or_default();
        if let Some(old) = st.conn {
            if old != c && stream == 0 && after.is_none() {
                self.reject(c, 409, "this session's GET stream is already open", &[]);
                return;
            }
        }
        let old = st.conn.replace(c);
        if let Some(after) = after {
            st.sent = after;
        }
        if let Some(old) = old.filter(|&o| o != c) {
            // The resumed stream moves to the new connection; the old one ends (a POST
            // whose answer had not begun just closes).
            if let Some(Some(conn)) = self.conns.get_mut(old) {
                if matches!(conn.state, State::Streaming { .. }) {
                    chunk_end(&mut conn.out);
                }
                conn.state = State::Closing;
            }
        }
        self.start_stream(c, &sid, stream);
        self.flush_stream(now, &sid, stream);
    }

    fn delete(&mut self, now: Instant, c: usize, head: &Head, gw: &mut Gateway) {
        if self.modern_only_posts(c, head) {
            return;
        }
        let Some(sid) = self.session_of(now, c, head) else {
            return;
        };
        self.end_session(now, &sid, gw);
        self.respond(c, 200, &[], "", b"");
    }

    /// Opens a session (a `legacy` HTTP+SSE one, a `modern` one for one 2026-07-28
    /// request, or a Streamable HTTP one) with a fresh id; answers 503 on `c` and returns
    /// `None` when `max_sessions` are open.
    fn open_session(
        &mut self,
        now: Instant,
        c: usize,
        gw: &mut Gateway,
        legacy: bool,
        modern: bool,
    ) -> Option<String> {
        // Held sessions have no client; the gateway bounds them (its asks).
        let open = self.sessions.len().saturating_sub(self.held.len());
        if open >= self.settings.max_sessions {
            let text = format!("{open} sessions are open (http.max_sessions); try again later");
            self.reject(c, 503, &text, &[]);
            return None;
        }
        let Some(id) = mint_id() else {
            self.reject(c, 503, "no randomness for a session id; try again", &[]);
            return None;
        };
        let gs = gw.open_session();
        // The front limits its clients per token itself.
        gw.exempt_from_rate_limit(gs);
        let mut session = Session::new(gs, legacy, now);
        session.modern = modern;
        self.sessions.insert(id.clone(), session);
        if legacy {
            log::info!("HTTP: legacy SSE session {} opened", short(&id));
        } else if modern {
            // One per request: logged at debug level only.
            log::debug!("HTTP: 2026-07-28 request session {} opened", short(&id));
        } else {
            log::info!("HTTP: session {} opened", short(&id));
        }
        Some(id)
    }

    fn legacy_open(&mut self, now: Instant, c: usize, head: &Head, gw: &mut Gateway) {
        if !head.accepts("text/event-stream") {
            self.reject(c, 406, "Accept must list text/event-stream", &[]);
            return;
        }
        let Some(id) = self.open_session(now, c, gw, true, false) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&id) {
            let stream = Stream {
                conn: Some(c),
                ..Stream::default()
            };
            s.streams.insert(0, stream);
        }
        self.start_stream(c, &id, 0);
        let endpoint = format!("/messages?sessionId={id}");
        self.push(now, &id, 0, Some("endpoint"), endpoint.as_bytes());
    }

    fn legacy_post(&mut self, now: Instant, c: usize, head: &Head, body: &[u8], gw: &mut Gateway) {
        let sid = head
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("sessionId="))
            .unwrap_or("")
            .to_string();
        let gs = match self.sessions.get_mut(&sid) {
            Some(s) if s.legacy => {
                s.last = now;
                s.gw
            }
            _ => {
                self.reject(
                    c,
                    404,
                    "session not found: open GET /sse first and post to the endpoint it names",
                    &[],
                );
                return;
            }
        };
        let line = one_line(body);
        match Message::parse(&line) {
            Err(e) => return self.reject(c, 400, &e.reason, &[]),
            Ok(m) if m.kind == Kind::Request && !self.within_rate(now, c, head, &sid) => return,
            Ok(_) => {}
        }
        gw.on_client_line(now, gs, &line);
        self.respond(c, 202, &[], "text/plain", b"Accepted");
    }

    /// Writes the head of an event stream on `c`.
    fn start_stream(&mut self, c: usize, sid: &str, stream: u64) {
        let Some(Some(conn)) = self.conns.get_mut(c) else {
            return;
        };
        *self.stats.responses.entry(200).or_default() += 1;
        conn.state = State::Streaming {
            session: sid.to_string(),
            stream,
        };
        let modern = self.sessions.get(sid).is_some_and(|s| s.modern);
        let session_header = if modern {
            String::new()
        } else {
            format!("Mcp-Session-Id: {sid}\r\n")
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n{session_header}Transfer-Encoding: chunked\r\n\r\n"
        );
        let out = conn.out.buf();
        out.extend_from_slice(head.as_bytes());
        chunk(out, format!("retry: {RETRY_MS}\n\n").as_bytes());
    }

    /// Ends session `sid` as DELETE does.
    fn end_session(&mut self, now: Instant, sid: &str, gw: &mut Gateway) {
        let Some(s) = self.sessions.remove(sid) else {
            return;
        };
        if s.held {
            self.held.retain(|h| h != sid);
        }
        self.buckets.remove(&format!("s{sid}"));
        gw.close_session(now, s.gw);
        for st in s.streams.values() {
            if let Some(Some(conn)) = st.conn.and_then(|c| self.conns.get_mut(c)) {
                if matches!(conn.state, State::Streaming { .. }) {
                    chunk_end(&mut conn.out);
                }
                conn.state = State::Closing;
            }
        }
        if s.modern {
            log::debug!("HTTP: 2026-07-28 request session {} ended", short(sid));
        } else {
            log::info!("HTTP: session {} ended", short(sid));
        }
    }

    /// Takes every complete line the gateway wrote for the front's sessions and routes
    /// it to its stream.
    pub fn pump(&mut self, now: Instant, gw: &mut Gateway) {
        let ids: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| gw.session_backlog(s.gw) > 0)
            .map(|(id, _)| id.clone())
            .collect();
        for sid in ids {
            let Some((gs, held)) = self.sessions.get(&sid).map(|s| (s.gw, s.held)) else {
                continue;
            };
            let Some(out) = gw.session_out(gs) else {
                continue;
            };
            if held {
                // No client reads it: its call's progress, before the retry takes it.
                out.clear();
                continue;
            }
            let pending = out.pending();
            let Some(end) = memchr::memrchr(b'\n', pending) else {
                continue;
            };
            // Routed from the gateway's queue itself: a line is copied once, into the
            // connection's output. Lines are found with memchr, not byte by byte.
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &pending[..=end]) {
                let line = &pending[start..nl];
                start = nl + 1;
                if !line.is_empty() {
                    self.route(now, &sid, line);
                }
            }
            out.consume(end + 1);
        }
        for sid in std::mem::take(&mut self.ending) {
            let gs = self.sessions.get(&sid).map(|s| s.gw);
            if gs.is_some_and(|gs| gw.waits_for_retry(gs)) {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.held = true;
                    self.held.push(sid);
                }
                continue;
            }
            self.end_session(now, &sid, gw);
        }
        // A held session ends once its call was retried (in another session) or its ask
        // expired.
        let mut i = 0;
        while i < self.held.len() {
            let gs = self.sessions.get(&self.held[i]).map(|s| s.gw);
            if gs.is_some_and(|gs| gw.waits_for_retry(gs)) {
                i += 1;
                continue;
            }
            let sid = self.held.swap_remove(i);
            self.end_session(now, &sid, gw);
        }
    }

    /// Sends one line of session `sid` to the stream it belongs to.
    fn route(&mut self, now: Instant, sid: &str, line: &[u8]) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        if s.legacy {
            self.push(now, sid, 0, Some("message"), line);
            return;
        }
        let (stream, answer) = match Message::parse(line) {
            Ok(m) if m.kind == Kind::Response => {
                let key =
                    m.id.map(|i| i.get().as_bytes().to_vec())
                        .unwrap_or_default();
                match s.requests.remove(&key) {
                    Some(st) => (st, true),
                    None => (0, false),
                }
            }
            // A 2026-07-28 request's session has one stream, its answer's: what comes
            // before the answer goes there (progress, whatever its token; a listen's
            // notifications).
            Ok(_) if s.modern => (s.newest_open_post().unwrap_or(0), false),
            Ok(m) if m.method == Some("notifications/progress") => {
                let st = token_key(message::notification_progress_token(m.params))
                    .and_then(|t| s.tokens.get(&t).copied());
                (st.unwrap_or(0), false)
            }
            Ok(m) if m.kind == Kind::Request && !s.has_reader(0) => {
                (s.newest_open_post().unwrap_or(0), false)
            }
            _ => (0, false),
        };
        // The last answer of a stream ends it, and its progress tokens with it.
        let last = answer
            && s.streams.get_mut(&stream).is_some_and(|st| {
                st.open = st.open.saturating_sub(1);
                st.open == 0
            });
        if last {
            s.tokens.retain(|_, v| *v != stream);
        }
        // A one-message answer to a POST still waiting goes as plain JSON.
        if last {
            if let Some(c) = s.streams.get(&stream).and_then(|st| st.conn) {
                let waiting = matches!(
                    self.conns.get(c),
                    Some(Some(Conn {
                        state: State::Waiting { .. },
                        ..
                    }))
                );
                if waiting {
                    s.streams.remove(&stream);
                    if let Some(Some(conn)) = self.conns.get_mut(c) {
                        conn.state = State::Head { since: None };
                        conn.last = now;
                    }
                    let sid = sid.to_string();
                    if s.modern {
                        // The revision's statuses for errors; the session ends with it.
                        let status = modern_status(line);
                        self.ending.push(sid);
                        self.respond(c, status, &[], "application/json", line);
                        return;
                    }
                    self.respond(
                        c,
                        200,
                        &[("Mcp-Session-Id", &sid)],
                        "application/json",
                        line,
                    );
                    return;
                }
            }
        }
        if let Some(c) = s.streams.get(&stream).and_then(|st| st.conn) {
            if matches!(
                self.conns.get(c),
                Some(Some(Conn {
                    state: State::Waiting { .. },
                    ..
                }))
            ) {
                self.start_stream(c, sid, stream);
            }
        }
        self.push(now, sid, stream, None, line);
        if last {
            if let Some(s) = self.sessions.get_mut(sid) {
                if let Some(st) = s.streams.get_mut(&stream) {
                    st.done = true;
                    st.last = Some(now);
                }
                s.drop_unclaimed(now);
                if s.modern {
                    self.ending.push(sid.to_string());
                }
            }
            self.flush_stream(now, sid, stream);
        }
    }

    /// Appends an event to a stream and writes what its connection can take.
    fn push(&mut self, now: Instant, sid: &str, stream: u64, name: Option<&str>, data: &[u8]) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        s.next_event += 1;
        let seq = s.next_event;
        let event = sse_event(stream, seq, name, data);
        let st = s.streams.entry(stream).or_default();
        st.bytes += event.len();
        st.events.push_back((seq, event));
        // Keep within the replay bound: sent events go first; unsent ones only when a
        // stream with no reader overflows (then the client has lost them, and hears so in
        // the log).
        let mut dropped = 0;
        while st.events.len() > 1
            && (st.bytes > REPLAY_BYTES || st.events.len() > REPLAY_EVENTS + 1024)
        {
            let Some((seq0, e)) = st.events.pop_front() else {
                break;
            };
            st.bytes -= e.len();
            if seq0 > st.sent {
                dropped += 1;
            }
        }
        if dropped > 0 {
            if s.dropped == 0 {
                log::warn!(
                    "HTTP: session {}: no one reads stream {stream}; dropping its oldest messages to stay within {} bytes",
                    short(sid),
                    REPLAY_BYTES
                );
            }
            s.dropped += dropped;
        }
        self.flush_stream(now, sid, stream);
    }

    /// Writes a stream's unsent events to its connection, ends the response when its
    /// request is answered, and cuts a connection that does not read.
    fn flush_stream(&mut self, now: Instant, sid: &str, stream: u64) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(st) = s.streams.get_mut(&stream) else {
            return;
        };
        let Some(c) = st.conn else {
            return;
        };
        let Some(Some(conn)) = self.conns.get_mut(c) else {
            st.conn = None;
            return;
        };
        if !matches!(conn.state, State::Streaming { .. }) {
            return;
        }
        let from = st.sent;
        for (seq, e) in st.events.iter().filter(|(seq, _)| *seq > from) {
            chunk(conn.out.buf(), e);
            st.sent = *seq;
        }
        conn.last = now;
        // Sent events beyond the replay window are let go.
        while st.events.len() > REPLAY_EVENTS
            && st.events.front().is_some_and(|(seq, _)| *seq <= st.sent)
        {
            if let Some((_, e)) = st.events.pop_front() {
                st.bytes -= e.len();
            }
        }
        if st.done {
            chunk_end(&mut conn.out);
            conn.state = if conn.close_after {
                State::Closing
            } else {
                State::Head { since: None }
            };
            st.conn = None;
            st.last = Some(now);
        } else if conn.out.len() > SLOW_READER_MAX {
            log::warn!(
                "HTTP: session {}: a client is not reading its event stream ({} bytes waiting); closing that connection, the session stays and can resume",
                short(sid),
                conn.out.len()
            );
            conn.state = State::Closing;
            conn.out.clear();
            st.conn = None;
            // What it did not read is sent again on resumption.
            st.sent = st.events.front().map_or(st.sent, |(seq, _)| seq - 1);
            st.last = Some(now);
        }
    }

    /// The next instant something is due (a slow request, an idle connection, a
    /// keep-alive comment, a session's expiry).
    pub fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten().filter_map(|c| match c.state {
            State::Head { since: Some(t) } | State::Body { since: t, .. } => {
                Some(t + REQUEST_DEADLINE)
            }
            State::Head { since: None } => Some(c.last + IDLE_CONNECTION),
            State::Streaming { .. } => Some(c.last + KEEP_ALIVE),
            _ => None,
        });
        let sessions = self
            .sessions
            .values()
            // A held session waits for the gateway instead (its ask's expiry).
            .filter(|s| !s.held && !s.streams.values().any(|st| st.conn.is_some()))
            .map(|s| s.last + self.settings.session_timeout);
        let unclaimed = self
            .sessions
            .values()
            .flat_map(|s| s.streams.iter())
            .filter(|(&n, st)| n != 0 && st.conn.is_none() && st.done)
            .filter_map(|(_, st)| st.last.map(|t| t + RESUME_WINDOW));
        conns.chain(sessions).chain(unclaimed).min()
    }

    /// Does what is due at `now`.
    pub fn on_timer(&mut self, now: Instant, gw: &mut Gateway) {
        for c in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(c) else {
                continue;
            };
            match conn.state {
                State::Head { since: Some(t) } | State::Body { since: t, .. }
                    if now >= t + REQUEST_DEADLINE =>
                {
                    self.fail(c, 408, "the request did not arrive in time", &[]);
                }
                State::Head { since: None } if now >= conn.last + IDLE_CONNECTION => {
                    conn.state = State::Closing;
                }
                State::Streaming { .. } if now >= conn.last + KEEP_ALIVE => {
                    chunk(conn.out.buf(), b": keep-alive\n\n");
                    conn.last = now;
                }
                _ => {}
            }
        }
        for s in self.sessions.values_mut() {
            s.drop_unclaimed(now);
        }
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                !s.held
                    && !s.streams.values().any(|st| st.conn.is_some())
                    && now >= s.last + self.settings.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        for sid in expired {
            log::info!("HTTP: session {} expired", short(&sid));
            self.end_session(now, &sid, gw);
        }
    }
}

/// The token an `Authorization` value carries: `Bearer TOKEN`, or `Basic` with the token
/// as the password (what a browser sends for the status page).
fn credential(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    Some(
        text.split_once(':')
            .map_or(text.clone(), |(_, pass)| pass.to_string()),
    )
}

/// Standard base64 (padding optional); `None` on any other byte.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text.trim_end_matches('=').as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `%XX` escapes in a path segment decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of a revision 2026-07-28 answer: 404 for an unknown method, 400 for the
/// errors of a request that could not be served as sent, else 200.
fn modern_status(line: &[u8]) -> u16 {
    #[derive(serde::Deserialize)]
    struct E {
        code: i64,
    }
    #[derive(serde::Deserialize)]
    struct A {
        error: Option<E>,
    }
    match serde_json::from_slice::<A>(line).ok().and_then(|a| a.error) {
        Some(E { code: -32601 }) => 404,
        Some(E {
            code: -32700 | -32600 | -32602 | -32020 | -32021 | -32022,
        }) => 400,
        _ => 200,
    }
}

/// A request body as the one line the gateway frames: JSON needs no newline outside
/// strings and can have none inside one, so a pretty-printed body loses only whitespace.
fn one_line(body: &[u8]) -> Cow<'_, [u8]> {
    let body = body.trim_ascii();
    if memchr::memchr2(b'\n', b'\r', body).is_none() {
        // The usual body, already one line: borrowed, not copied byte by byte.
        return Cow::Borrowed(body);
    }
    Cow::Owned(
        body.iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect(),
    )
}

/// Ends a chunked response.
fn chunk_end(out: &mut OutBuf) {
    out.buf().extend_from_slice(b"0\r\n\r\n");
}

/// `stream.seq` from an SSE event id.
fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (a, b) = id.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The first characters of a session id, enough to tell sessions apart in the log without
/// printing the whole credential.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Session {
    fn new(gw: SessionId, legacy: bool, now: Instant) -> Session {
        Session {
            gw,
            legacy,
            streams: HashMap::new(),
            next_stream: 1,
            next_event: 0,
            requests: HashMap::new(),
            tokens: HashMap::new(),
            last: now,
            dropped: 0,
            modern: false,
            held: false,
        }
    }

    /// Whether stream `n` has a connection.
    fn has_reader(&self, n: u64) -> bool {
        self.streams.get(&n).is_some_and(|st| st.conn.is_some())
    }

    /// Drops the POST streams no connection claimed: ended ones after [`RESUME_WINDOW`],
    /// and the oldest ended ones beyond [`DETACHED_MAX`].
    fn drop_unclaimed(&mut self, now: Instant) {
        self.streams.retain(|&n, st| {
            n == 0
                || st.conn.is_some()
                || !st.done
                || st.last.is_some_and(|t| now < t + RESUME_WINDOW)
        });
        let mut ended: Vec<(Option<Instant>, u64)> = self
            .streams
            .iter()
            .filter(|(&n, st)| n != 0 && st.conn.is_none() && st.done)
            .map(|(&n, st)| (st.last, n))
            .collect();
        if ended.len() > DETACHED_MAX {
            ended.sort_unstable();
            for (_, n) in &ended[..ended.len() - DETACHED_MAX] {
                self.streams.remove(n);
            }
        }
    }

    /// The newest POST stream with a connection, still waiting for its answer.
    fn newest_open_post(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|(&n, st)| n != 0 && st.conn.is_some() && !st.done)
            .map(|(&n, _)| n)
            .max()
    }
}

#[cfg(test)]
mod tests;
