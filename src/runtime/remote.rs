//! Backends reached by URL: the runtime's side of a remote backend, in place of a
//! process's pipes. Two transports:
//!
//! - Streamable HTTP (2025-03-26 and later): each line the gateway writes is one POST on
//!   a kept-alive connection (a few in parallel); a JSON answer, or each event of an
//!   event-stream answer, comes back to the gateway as a line, exactly as a stdio
//!   backend's output would. After the handshake a GET opens the server's own stream
//!   (its requests and notifications that belong to no POST); a server without one
//!   answers 405 and is used without it. The `Mcp-Session-Id` and the negotiated
//!   `MCP-Protocol-Version` are sent with every request. When the server ends the session
//!   (404), the handshake is replayed and the request sent again, once. An answer's
//!   stream cut before the answer is resumed with `Last-Event-ID` where the server gave
//!   event ids; otherwise that request alone gets an error.
//! - HTTP+SSE (2024-11-05): a GET opens the event stream, whose `endpoint` event names
//!   where to POST; every message from the server comes on that stream. Its end ends the
//!   session (the backend stops; the next request connects again). A Streamable HTTP
//!   backend whose `initialize` POST gets 400, 404 or 405 is tried this way, once, as the
//!   specification's backwards-compatibility section asks of clients.
//!
//! What the lines mean stays the gateway's: this reads only what the transport needs
//! (the `initialize` request and its answer, the `initialized` notification, a request's
//! id to know whether its answer came).
//!
//! An `https` URL's connections carry TLS ([`super::tls`]); certificates are checked
//! against the platform's roots and the backend's `ca_file`, and a failed handshake
//! fails the backend with a sentence saying what to do.
//!
//! Name resolution uses the system resolver and blocks; it happens once per backend
//! start (a loopback or `/etc/hosts` name answers at once; a slow DNS server holds the
//! loop for its time, bounded by the resolver's `timeout`/`attempts` in
//! `/etc/resolv.conf`, 5 s x 2 by default).

use super::tls::{self, Stream};
use crate::http::client::{write_request, ClientError, ReadStatus, ResponseReader, Url};
use crate::http::sse::SseParser;
use crate::wire::message::{write_error, Kind, Message, INTERNAL_ERROR};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// POST connections opened to one server at most; more requests wait for one.
pub const MAX_CONNS: usize = 4;
/// Connection slots per backend: the POSTs, the server's own event stream (GET) and the
/// DELETE that ends a session.
pub const SLOTS: usize = MAX_CONNS + 2;
/// The slot of the server's event stream.
const LISTEN: usize = MAX_CONNS;
/// The slot of the DELETE that ends the session of a stopped backend (apart, so a new
/// start of the same backend never shares its token).
pub const FAREWELL: usize = MAX_CONNS + 1;
/// The DELETE that ends a session is given this long, then dropped (the server ends the
/// session itself when it expires).
const FAREWELL_WAIT: Duration = Duration::from_secs(2);
/// Tokens of remote connections: `REMOTE_BASE + SLOTS * backend + slot`.
pub const REMOTE_BASE: usize = 1 << 36;
/// At most this many reads (of up to 64 KiB) per connection per loop turn.
const READS_PER_TURN: usize = 16;
/// Lines taken from the gateway that wait for a connection, at most.
pub const QUEUE_MAX: usize = 64;
/// A connection must be made (over TLS, its handshake done) and its request written
/// within this time.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A POST that carries no request (a notification or an answer to the server) must get
/// the head of its answer (202) within this time, else its connection is closed.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// An answer's stream is resumed at most this many times.
const MAX_RESUMES: u32 = 5;
/// The longest wait before resuming an answer's stream, whatever `retry:` says.
const RESUME_WAIT_MAX: Duration = Duration::from_secs(5);
/// Waits before opening the server's stream again after it ended: the shortest, the
/// first, and the longest (doubling while it ends with nothing on it).
const LISTEN_WAIT_MIN: Duration = Duration::from_millis(250);
const LISTEN_WAIT_FIRST: Duration = Duration::from_secs(1);
const LISTEN_WAIT_MAX: Duration = Duration::from_secs(30);

/// Which HTTP transport a remote backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP (2025-03-26 and later).
    Streamable,
    /// HTTP+SSE (2024-11-05): a GET event stream and POSTs to the endpoint it names.
    Sse,
}

/// What happened on a remote backend, for the runtime to tell the gateway.
#[derive(Debug)]
pub enum RemoteEvent {
    /// A message from the server (an answer, a notification or a request).
    Line(Vec<u8>),
    /// The backend is gone, with why (connection refused, TLS, an HTTP error...).
    Failed(String),
}

/// A line the gateway wrote, on its way to the server.
#[derive(Debug, Clone)]
struct Outgoing {
    line: Vec<u8>,
    /// The request's id as written (raw JSON); `None` for notifications and answers.
    id: Option<Box<str>>,
    /// An `initialize` request.
    initialize: bool,
    /// gangway's own replay of `initialize` after the server ended the session: its
    /// answer is not the gateway's.
    replay: bool,
    /// Sent once already: it gets no other try.
    retried: bool,
    /// For `notifications/cancelled`: the id of the request it cancels (raw JSON).
    cancels: Option<Box<str>>,
}

impl Outgoing {
    fn new(line: &[u8]) -> Outgoing {
        let (mut id, mut initialize, mut cancels) = (None, false, None);
        match Message::parse(line) {
            Ok(m) if m.kind == Kind::Request => {
                id = m.id.map(|id| Box::from(id.get()));
                initialize = m.method == Some("initialize");
            }
            Ok(m) if m.method == Some("notifications/cancelled") => {
                #[derive(serde::Deserialize)]
                struct Cancelled<'a> {
                    #[serde(rename = "requestId", borrow)]
                    request_id: Option<&'a serde_json::value::RawValue>,
                }
                cancels = m
                    .params
                    .and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok())
                    .and_then(|c| c.request_id)
                    .map(|r| Box::from(r.get()));
            }
            _ => {}
        }
        Outgoing {
            line: line.to_vec(),
            id,
            initialize,
            replay: false,
            retried: false,
            cancels,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A POST of a line.
    Post,
    /// A GET resuming the cut event stream of a POST's answer (`Last-Event-ID`).
    Resume,
    /// The GET of the server's own event stream.
    Listen,
    /// The DELETE that ends the session of a stopped backend.
    Farewell,
}

struct Conn {
    stream: Stream,
    role: Role,
    /// Request bytes not yet written.
    out: Vec<u8>,
    written: usize,
    reader: Option<ResponseReader>,
    sse: Option<SseParser>,
    /// The line it carries (a POST) or whose answer it resumes.
    sent: Option<Outgoing>,
    /// The answer to `sent` came.
    answered: bool,
    /// The session generation the request was sent in.
    generation: u64,
    /// Times the answer's stream was resumed before this connection.
    resumes: u32,
    /// The event id this connection resumed after (kept when no newer one comes).
    resumed_from: Option<String>,
    /// Until when the connection must be made and the request written.
    deadline: Option<Instant>,
    /// Until when the head of the answer to a notification must come.
    head_by: Option<Instant>,
    /// An answer came on this connection before (so a close here may be the server
    /// ending an idle keep-alive, not a failure).
    reused: bool,
    readable: bool,
    writable: bool,
    busy: bool,
}

/// A cut answer's stream, to resume at `at`.
struct Resume {
    at: Instant,
    sent: Outgoing,
    last_event_id: String,
    resumes: u32,
    generation: u64,
}

/// The state of the server's own event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// Not wanted yet (before the handshake).
    Off,
    /// To open as soon as possible.
    Wanted,
    /// Open (or opening).
    Open,
    /// The server has none (405).
    Unsupported,
    /// To open again at this time.
    At(Instant),
}

/// One remote backend: its URL and headers, the session the server gave, and its
/// connections.
pub struct Remote {
    url: Url,
    transport: Transport,
    headers: Vec<(String, String)>,
    /// The server's address, resolved at the first connection.
    addr: Option<SocketAddr>,
    /// Where POSTs go: the URL's path, or over HTTP+SSE the endpoint the server named
    /// (`None` until it did).
    post_path: Option<String>,
    session: Option<String>,
    /// Incremented each time the session is replaced, so a late 404 for an old one does
    /// not start another.
    generation: u64,
    /// The revision the server agreed to in its `initialize` answer.
    protocol_version: Option<String>,
    /// The gateway's `initialize` request and `initialized` notification, replayed when
    /// the server ends the session.
    init_line: Option<Vec<u8>>,
    initialized_line: Option<Vec<u8>>,
    /// The id of an `initialize` in flight: nothing else is sent before its answer.
    init_pending: Option<Box<str>>,
    /// The id of gangway's replayed `initialize`, whose answer is not passed on.
    replay_id: Option<Box<str>>,
    listen: Listen,
    /// The status that refused Streamable HTTP's `initialize` when the backend fell back
    /// to HTTP+SSE.
    fell_back: Option<u16>,
    /// The wait before the server's stream is opened again.
    listen_wait: Duration,
    /// The last event id on the server's stream (sent when it is opened again).
    listen_last_id: Option<String>,
    /// Lines the gateway wrote that no connection has taken yet.
    queue: VecDeque<Outgoing>,
    resumes: Vec<Resume>,
    conns: Vec<Option<Conn>>,
    max_body: usize,
    /// Events for the gateway.
    pub events: Vec<RemoteEvent>,
    /// The backend failed: nothing more is sent.
    failed: bool,
    /// For an `https` URL: the TLS client config (its trusted CAs).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Remote {
    /// A remote backend for `url` speaking `transport`, with `headers`, accepting
    /// messages of `max_body` bytes; an `https` URL's certificate is checked against the
    /// platform's roots and the CA certificates of `ca_file` (a PEM file).
    ///
    /// # Errors
    ///
    /// When the URL cannot be used or `ca_file` cannot be read (both were checked when
    /// the config was read).
    pub fn new(
        url: &str,
        transport: Transport,
        headers: &[(String, String)],
        max_body: usize,
        ca_file: Option<&Path>,
    ) -> Result<Remote, String> {
        let url = Url::parse(url).map_err(|e| e.to_string())?;
        let tls = if url.https {
            let extra = match ca_file {
                Some(path) => tls::read_ca_file(path).map_err(|e| format!("\"ca_file\": {e}"))?,
                None => Vec::new(),
            };
            Some(tls::client_config(&extra)?)
        } else {
            None
        };
        let (post_path, listen) = match transport {
            Transport::Streamable => (Some(url.path.clone()), Listen::Off),
            Transport::Sse => (None, Listen::Wanted),
        };
        Ok(Remote {
            url,
            transport,
            headers: headers.to_vec(),
            addr: None,
            post_path,
            session: None,
            generation: 0,
            protocol_version: None,
            init_line: None,
            initialized_line: None,
            init_pending: None,
            replay_id: None,
            listen,
            fell_back: None,
            listen_wait: LISTEN_WAIT_FIRST,
            listen_last_id: None,
            queue: VecDeque::new(),
            resumes: Vec::new(),
            conns: (0..SLOTS).map(|_| None).collect(),
            max_body,
            events: Vec::new(),
            failed: false,
            tls,
        })
    }

    /// Takes complete lines of `pending` (what the gateway wrote), while fewer than
    /// [`QUEUE_MAX`] wait for a connection, and returns how many bytes it used. What it
    /// leaves stays in the gateway's queue, whose bound holds the client back as a full
    /// pipe does for a stdio backend.
    pub fn take_lines(&mut self, pending: &[u8]) -> usize {
        let mut used = 0;
        while self.queue.len() < QUEUE_MAX {
            let Some(n) = memchr::memchr(b'\n', &pending[used..]) else {
                break;
            };
            let line = &pending[used..used + n];
            used += n + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let out = Outgoing::new(line);
            if out.initialize {
                self.init_line = Some(out.line.clone());
            } else if out.id.is_none()
                && memchr::memmem::find(line, b"\"notifications/initialized\"").is_some()
            {
                self.initialized_line = Some(out.line.clone());
            }
            self.queue.push_back(out);
        }
        used
    }

    /// Notes readiness of connection slot `i`.
    pub fn mark(&mut self, i: usize, readable: bool, writable: bool) {
        if let Some(Some(c)) = self.conns.get_mut(i) {
            c.readable |= readable;
            c.writable |= writable;
        }
    }

    /// When something must happen without an event (a connection not made in time, a
    /// stream to resume or open again).
    pub fn next_deadline(&self) -> Option<Instant> {
        let listen = match self.listen {
            Listen::At(t) => Some(t),
            _ => None,
        };
        self.conns
            .iter()
            .flatten()
            .flat_map(|c| c.deadline.into_iter().chain(c.head_by))
            .chain(self.resumes.iter().map(|r| r.at))
            .chain(listen)
            .min()
    }

    /// Whether POSTs may start: the endpoint is known and no `initialize` is unanswered.
    fn may_post(&self) -> bool {
        !self.failed && self.post_path.is_some() && self.init_pending.is_none()
    }

    fn listen_due(&self, now: Instant) -> bool {
        !self.failed
            && self.conns[LISTEN].is_none()
            && match self.listen {
                Listen::Wanted => self.transport == Transport::Sse || self.init_pending.is_none(),
                Listen::At(t) => t <= now,
                _ => false,
            }
    }

    /// Starts requests for queued lines on free connections (opening new ones), opens
    /// the server's stream when it is due, resumes cut answers, writes and reads what
    /// the sockets take, and acts on deadlines that passed. `b` is the backend, for
    /// tokens.
    pub fn drive(&mut self, registry: &Registry, b: usize, now: Instant) {
        if self.failed {
            self.queue.clear();
            return;
        }
        self.expire(registry, now);
        // Cancellations act at once, not when a connection is free to send them.
        let cancelled: Vec<Box<str>> = self
            .queue
            .iter_mut()
            .filter_map(|o| o.cancels.take())
            .collect();
        for id in cancelled {
            self.drop_cancelled(registry, &id);
        }
        if self.listen_due(now) {
            self.open_listen(registry, b, now);
        }
        self.start_resumes(registry, b, now);
        self.start_posts(registry, b, now);
        for i in 0..SLOTS {
            self.write_conn(registry, i, now);
            self.read_conn(registry, i, now);
        }
        // An answer just read may open the way (the handshake's, the endpoint).
        self.start_posts(registry, b, now);
        for i in 0..MAX_CONNS {
            self.write_conn(registry, i, now);
        }
        if self.failed {
            self.queue.clear();
        }
    }

    /// Connections whose request was not written in time, or whose notification (or
    /// session-ending DELETE) got no answer in time.
    fn expire(&mut self, registry: &Registry, now: Instant) {
        for i in 0..SLOTS {
            let Some(Some(c)) = self.conns.get(i) else {
                continue;
            };
            let unanswered = c.head_by.is_some_and(|d| d <= now);
            if !unanswered && !c.deadline.is_some_and(|d| d <= now) {
                continue;
            }
            let role = c.role;
            self.close(registry, i);
            if role == Role::Farewell {
                log::debug!(
                    "{}: no answer to the DELETE that ends the session",
                    self.url
                );
            } else if unanswered {
                log::warn!(
                    "{}: no answer to a notification within {} s; its connection is closed",
                    self.url,
                    ACCEPT_TIMEOUT.as_secs()
                );
            } else {
                let text = format!(
                    "no connection to {} within {} s: is the host reachable, and is the backend's \"url\" right?",
                    self.url,
                    CONNECT_TIMEOUT.as_secs()
                );
                if role == Role::Listen && self.transport == Transport::Streamable {
                    log::debug!("{text} (the server's event stream)");
                    self.listen_ended(now, false, None);
                } else {
                    return self.fail(text);
                }
            }
        }
    }

    fn start_posts(&mut self, registry: &Registry, b: usize, now: Instant) {
        while self.may_post() && !self.queue.is_empty() {
            let Some(i) = self.free_conn(registry, b, now) else {
                return;
            };
            let Some(mut out) = self.queue.pop_front() else {
                return;
            };
            let path = self.post_path.clone().unwrap_or_default();
            let Some(bytes) = self.request("POST", &path, None, &out.line) else {
                return;
            };
            if out.initialize {
                self.init_pending.clone_from(&out.id);
                if out.replay {
                    self.replay_id.clone_from(&out.id);
                }
            } else if out.id.is_none()
                && self.transport == Transport::Streamable
                && self.listen == Listen::Off
                && self.initialized_line.as_deref() == Some(out.line.as_slice())
            {
                self.listen = Listen::Wanted;
            }
            if self.transport == Transport::Sse {
                // Answers come on the event stream, not on the POST.
                out.id = None;
            }
            let head_by = out.id.is_none().then(|| now + ACCEPT_TIMEOUT);
            let (generation, max_body) = (self.generation, self.max_body);
            if let Some(Some(c)) = self.conns.get_mut(i) {
                c.start(Role::Post, bytes, Some(out), max_body);
                c.head_by = head_by;
                c.generation = generation;
            }
        }
    }

    /// The client gave up on request `id` (raw JSON): it is not sent if it still waits,
    /// not resumed, and the connection waiting for its answer is closed (freeing it for
    /// other requests; the server hears of it by the cancellation itself).
    fn drop_cancelled(&mut self, registry: &Registry, id: &str) {
        self.queue.retain(|o| o.id.as_deref() != Some(id));
        self.resumes.retain(|r| r.sent.id.as_deref() != Some(id));
        let waiting = self.conns[..MAX_CONNS].iter().position(|c| {
            c.as_ref().is_some_and(|c| {
                c.busy && !c.answered && c.sent.as_ref().and_then(|s| s.id.as_deref()) == Some(id)
            })
        });
        if let Some(i) = waiting {
            self.close(registry, i);
        }
    }

    fn start_resumes(&mut self, registry: &Registry, b: usize, now: Instant) {
        while let Some(k) = self.resumes.iter().position(|r| r.at <= now) {
            if self.failed {
                return;
            }
            let Some(i) = self.free_conn(registry, b, now) else {
                return;
            };
            let r = self.resumes.swap_remove(k);
            let path = self.url.path.clone();
            let Some(bytes) = self.request("GET", &path, Some(&r.last_event_id), b"") else {
                return;
            };
            log::debug!(
                "{}: resuming the answer's stream after event {:?}",
                self.url,
                r.last_event_id
            );
            let max_body = self.max_body;
            if let Some(Some(c)) = self.conns.get_mut(i) {
                c.start(Role::Resume, bytes, Some(r.sent), max_body);
                c.generation = r.generation;
                c.resumes = r.resumes;
                c.resumed_from = Some(r.last_event_id);
            }
        }
    }

    fn open_listen(&mut self, registry: &Registry, b: usize, now: Instant) {
        let path = self.url.path.clone();
        let last = self.listen_last_id.clone();
        let Some(bytes) = self.request("GET", &path, last.as_deref(), b"") else {
            return;
        };
        let stream = match self.connect(registry, b, LISTEN) {
            Ok(s) => s,
            // Not a reason to stop the backend: the POSTs may still work.
            Err(why) if self.transport == Transport::Streamable => {
                return self.listen_ended(now, false, Some(why));
            }
            Err(why) => return self.fail(why),
        };
        self.listen = Listen::Open;
        let mut c = Conn::new(stream, now);
        c.start(Role::Listen, bytes, None, self.max_body);
        c.generation = self.generation;
        self.conns[LISTEN] = Some(c);
    }

    /// The bytes of a request to the server (a POST of a message, a GET of an event
    /// stream with `last_event_id` when it resumes, the DELETE that ends the session), or
    /// `None` when they cannot be written (the backend then fails).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        last_event_id: Option<&str>,
        body: &[u8],
    ) -> Option<Vec<u8>> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(6 + self.headers.len());
        match method {
            "POST" => {
                headers.push(("Content-Type", "application/json"));
                headers.push(("Accept", "application/json, text/event-stream"));
            }
            "GET" => headers.push(("Accept", "text/event-stream")),
            _ => {}
        }
        if let Some(s) = self.session.as_deref() {
            headers.push(("Mcp-Session-Id", s));
        }
        if let Some(v) = self.protocol_version.as_deref() {
            if self.transport == Transport::Streamable {
                headers.push(("MCP-Protocol-Version", v));
            }
        }
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        for (k, v) in &self.headers {
            headers.push((k, v));
        }
        let mut out = Vec::with_capacity(body.len() + 256);
        let host = self.url.host_header();
        match write_request(&mut out, method, path, &host, &headers, body) {
            Ok(()) => Some(out),
            Err(e) => {
                self.fail(format!("cannot send a request to {}: {e}", self.url));
                None
            }
        }
    }

    /// An idle POST connection, opening one if there is room; `None` when all are busy
    /// (or the connection failed: then the backend has failed too).
    fn free_conn(&mut self, registry: &Registry, b: usize, now: Instant) -> Option<usize> {
        if let Some(i) = self.conns[..MAX_CONNS]
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| !c.busy))
        {
            return Some(i);
        }
        let i = self.conns[..MAX_CONNS].iter().position(Option::is_none)?;
        let stream = match self.connect(registry, b, i) {
            Ok(s) => s,
            Err(why) => {
                self.fail(why);
                return None;
            }
        };
        self.conns[i] = Some(Conn::new(stream, now));
        Some(i)
    }

    /// A new connection to the server, watched as slot `i`, or why there is none.
    fn connect(&mut self, registry: &Registry, b: usize, i: usize) -> Result<Stream, String> {
        let addr = match self.addr {
            Some(a) => a,
            None => {
                let found = (self.url.host.as_str(), self.url.port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        format!(
                            "cannot resolve {}: {e}; is the host name in the backend's \"url\" right?",
                            self.url.host
                        )
                    })?
                    .next();
                let a = found.ok_or_else(|| format!("{} resolves to no address", self.url.host))?;
                self.addr = Some(a);
                a
            }
        };
        let sock = TcpStream::connect(addr).map_err(|e| self.io_error("cannot connect to", &e))?;
        let _ = sock.set_nodelay(true);
        let mut stream = match &self.tls {
            None => Stream::Plain(sock),
            // A request is a line of at most `max_body` bytes plus its head: the TLS
            // session takes any request whole, even before its handshake ends.
            Some(config) => {
                let headers = self.headers.iter().map(|(k, v)| k.len() + v.len() + 4);
                let head = headers.sum::<usize>() + self.url.path.len() + self.url.host.len();
                let max_write = self.max_body.saturating_add(head);
                Stream::tls(sock, Arc::clone(config), &self.url.host, max_write)?
            }
        };
        let token = Token(REMOTE_BASE + SLOTS * b + i);
        registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("cannot watch the connection to {}: {e}", self.url))?;
        Ok(stream)
    }

    fn write_conn(&mut self, registry: &Registry, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        // TLS records the socket did not take yet go out too.
        while c.writable && (c.written < c.out.len() || c.stream.has_pending_output()) {
            let wrote = if c.written < c.out.len() {
                c.stream.write(&c.out[c.written..])
            } else {
                c.stream.flush_pending().map(|()| 0)
            };
            match wrote {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => c.writable = false,
                Err(e) => {
                    self.broken(registry, i, &e, now);
                    return;
                }
            }
        }
        // Made (and, over TLS, the handshake done) and the request sent.
        if c.written == c.out.len() && !c.stream.has_pending_output() && !c.stream.is_handshaking()
        {
            c.deadline = None;
        }
    }

    fn read_conn(&mut self, registry: &Registry, i: usize, now: Instant) {
        let mut buf = [0u8; 64 * 1024];
        for _ in 0..READS_PER_TURN {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return;
            };
            if !c.readable {
                return;
            }
            let n = match c.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.broken(registry, i, &e, now);
                    return;
                }
            };
            if n == 0 {
                return self.closed_by_server(registry, i, now);
            }
            if let Err(e) = self.feed(registry, i, &buf[..n], now) {
                let text = format!("{}: {e}", self.url);
                self.close(registry, i);
                self.fail(text);
                return;
            }
        }
    }

    /// Connection `i` failed with `e` while writing or reading.
    fn broken(&mut self, registry: &Registry, i: usize, e: &io::Error, now: Instant) {
        let text = self.io_error("the connection failed:", e);
        if !self.resend(registry, i, e) {
            self.ended(registry, i, now, Some(text));
        }
    }

    /// The server closed connection `i`.
    fn closed_by_server(&mut self, registry: &Registry, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let outcome = c.reader.as_mut().map(ResponseReader::finish);
        if let Some(Err(ClientError::ClosedBeforeResponse)) = outcome {
            let closed = io::Error::from(io::ErrorKind::ConnectionReset);
            if self.resend(registry, i, &closed) {
                return;
            }
        }
        if let Some(Ok(ReadStatus::Done)) = outcome {
            // A body that lasts until the connection closes.
            self.response_data(i, true);
        }
        self.ended(registry, i, now, None);
    }

    /// Connection `i` ended, broken (`error`, said as a sentence) or closed by the server
    /// (`None`): an idle one is only closed; the server's stream is opened again (or, over
    /// HTTP+SSE, the backend stops); an answer that had begun is resumed or fails alone; a
    /// request with no answer begun fails the backend when the connection broke (it was
    /// refused, say), and alone when the server closed it.
    fn ended(&mut self, registry: &Registry, i: usize, now: Instant, error: Option<String>) {
        let Some(Some(c)) = self.conns.get(i) else {
            return;
        };
        let (role, busy) = (c.role, c.busy);
        let head = c.reader.as_ref().is_some_and(|r| r.head().is_some());
        match role {
            _ if !busy || role == Role::Farewell => self.close(registry, i),
            Role::Listen => {
                self.close(registry, i);
                self.listen_closed(now, error);
            }
            Role::Post | Role::Resume if head => self.answer_cut(registry, i, now),
            _ => match error {
                Some(text) => {
                    self.close(registry, i);
                    self.fail(text);
                }
                None => self.abandon(
                    registry,
                    i,
                    "the server closed the connection before answering",
                ),
            },
        }
    }

    /// Feeds response bytes of connection `i`.
    fn feed(
        &mut self,
        registry: &Registry,
        i: usize,
        mut input: &[u8],
        now: Instant,
    ) -> Result<(), ClientError> {
        loop {
            let Some(Some(c)) = self.conns.get_mut(i) else {
                return Ok(());
            };
            let Some(reader) = c.reader.as_mut() else {
                return Ok(());
            };
            let (used, status) = reader.feed(input)?;
            input = &input[used..];
            if matches!(status, ReadStatus::Head) && !self.response_head(registry, i, now) {
                return Ok(());
            }
            let done = matches!(status, ReadStatus::Done);
            self.response_data(i, done);
            if done {
                self.response_done(registry, i, now);
                return Ok(());
            }
            // After a head, once more even with nothing left: an empty body is complete.
            if !matches!(status, ReadStatus::Head) && (used == 0 || input.is_empty()) {
                return Ok(());
            }
        }
    }

    /// The head of connection `i`'s answer arrived. Returns whether to go on reading it
    /// (false: the connection was closed, and what follows is handled).
    fn response_head(&mut self, registry: &Registry, i: usize, now: Instant) -> bool {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return false;
        };
        let Some(head) = c.reader.as_ref().and_then(ResponseReader::head) else {
            return true;
        };
        let status = head.status;
        let stream = head.is_event_stream();
        c.head_by = None;
        if c.role == Role::Farewell {
            log::debug!("{}: the session's DELETE was answered {status}", self.url);
            self.close(registry, i);
            return false;
        }
        let session_id = head.session_id.clone();
        let (role, generation) = (c.role, c.generation);
        let initialize = c.sent.as_ref().is_some_and(|s| s.initialize);
        if stream {
            c.sse = Some(SseParser::new(self.max_body));
        }
        if initialize && status < 400 {
            if let Some(id) = session_id {
                self.session = Some(id);
            }
        }
        if status < 400 && (role != Role::Listen || stream) {
            if role == Role::Listen {
                log::debug!("{}: its event stream is open", self.url);
            }
            return true;
        }
        match role {
            Role::Post
                if status == 404
                    && self.transport == Transport::Streamable
                    && self.session.is_some()
                    && !initialize =>
            {
                self.session_lost(registry, i, generation);
            }
            Role::Post
                if initialize
                    && matches!(status, 400 | 404 | 405)
                    && self.transport == Transport::Streamable
                    && self.fell_back.is_none() =>
            {
                self.fall_back(registry, i, status);
            }
            Role::Listen if self.transport == Transport::Streamable => {
                self.close(registry, i);
                if status == 405 || status < 400 {
                    log::debug!(
                        "{}: no event stream of its own (HTTP {status}); used without it",
                        self.url
                    );
                    self.listen = Listen::Unsupported;
                } else {
                    self.listen_ended(now, false, Some(format!("HTTP {status}")));
                }
            }
            Role::Listen if !matches!(status, 401 | 403) => {
                self.close(registry, i);
                let answered = if status < 400 {
                    "answered without an event stream".to_string()
                } else {
                    format!("answered HTTP {status} to the GET that opens the event stream")
                };
                let why = match self.fell_back {
                    Some(first) => format!(
                        "{} answered HTTP {first} to initialize (Streamable HTTP) and {answered} (HTTP+SSE): is the path in the backend's \"url\" right (often /mcp, or /sse)?",
                        self.url
                    ),
                    None => format!(
                        "{} {answered}: is it an HTTP+SSE endpoint (often ending in /sse)? For a Streamable HTTP server set \"type\": \"http\" (or leave \"type\" out)",
                        self.url
                    ),
                };
                self.fail(why);
            }
            Role::Resume => {
                let why =
                    format!("the server could not resume the answer's stream (HTTP {status})");
                self.abandon(registry, i, &why);
            }
            _ => {
                self.close(registry, i);
                let why = self.status_error(status);
                self.fail(why);
            }
        }
        false
    }

    /// Why a request got `status` (400 and above), as the client of gangway is told.
    fn status_error(&self, status: u16) -> String {
        match status {
            401 | 403 => format!(
                "{} answered {status}: set the credentials it expects in the backend's \"headers\" (for example \"Authorization\": \"Bearer ${{TOKEN}}\")",
                self.url
            ),
            404 if self.session.is_some() => format!(
                "{} answered 404 again after a new session: the server keeps ending gangway's session",
                self.url
            ),
            404 => format!(
                "{} answered 404: is the path in the backend's \"url\" right (often /mcp, or /sse with \"type\": \"sse\")?",
                self.url
            ),
            _ => format!("{} answered HTTP {status}", self.url),
        }
    }

    /// The server refused the `initialize` POST on connection `i` with `status` (400, 404
    /// or 405): as the specification asks of clients, it is tried as an HTTP+SSE server
    /// of 2024-11-05 (a GET event stream at the same URL), once.
    fn fall_back(&mut self, registry: &Registry, i: usize, status: u16) {
        let sent = self.close_taking(registry, i);
        log::info!(
            "{}: no Streamable HTTP endpoint there (HTTP {status} to initialize); trying the HTTP+SSE transport of 2024-11-05",
            self.url
        );
        self.fell_back = Some(status);
        self.transport = Transport::Sse;
        self.post_path = None;
        self.init_pending = None;
        self.close(registry, LISTEN);
        self.listen = Listen::Wanted;
        if let Some(sent) = sent {
            self.queue.push_front(sent);
        }
    }

    /// The server ended the session (404 to a POST on connection `i`, sent in
    /// `generation`): a new session is started with the gateway's handshake, and the
    /// request is sent again in it, once.
    fn session_lost(&mut self, registry: &Registry, i: usize, generation: u64) {
        let sent = self.close_taking(registry, i);
        let Some(mut sent) = sent else {
            return;
        };
        if sent.retried {
            let why = self.status_error(404);
            self.fail(why);
            return;
        }
        sent.retried = true;
        self.queue.push_front(sent);
        if generation != self.generation {
            // Another request's 404 has started the new session already.
            return;
        }
        let Some(init) = self.init_line.clone() else {
            let why = self.status_error(404);
            self.fail(why);
            return;
        };
        log::info!(
            "{}: the server ended gangway's session (404); starting a new one and sending again what it refused",
            self.url
        );
        self.generation += 1;
        self.session = None;
        self.protocol_version = None;
        self.close(registry, LISTEN);
        self.listen = Listen::Off;
        self.listen_last_id = None;
        self.resumes.clear();
        if let Some(line) = self.initialized_line.clone() {
            self.queue.push_front(Outgoing::new(&line));
        }
        let mut init = Outgoing::new(&init);
        init.replay = true;
        self.queue.push_front(init);
    }

    /// Hands the decoded body of connection `i` to the gateway: a JSON answer once
    /// complete (`done`), an event stream event by event.
    fn response_data(&mut self, i: usize, done: bool) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let Some(reader) = c.reader.as_mut() else {
            return;
        };
        let status = reader.head().map_or(0, |h| h.status);
        let role = c.role;
        let mut lines = Vec::new();
        let mut endpoint = None;
        if let Some(sse) = c.sse.as_mut() {
            let data = reader.take_data();
            let mut events = Vec::new();
            if let Err(e) = sse.feed(&data, &mut events) {
                let text = format!("{}: {e}", self.url);
                self.fail(text);
                return;
            }
            for e in events {
                if role == Role::Listen && self.transport == Transport::Sse {
                    match e.name.as_deref() {
                        Some("endpoint") => {
                            endpoint = Some(e.data);
                            continue;
                        }
                        None | Some("message") => {}
                        Some(_) => continue,
                    }
                }
                if !e.data.is_empty() {
                    lines.push(e.data);
                }
            }
            if let Some(id) = sse.last_event_id() {
                if role == Role::Listen {
                    self.listen_last_id = Some(id.to_string());
                }
            }
        } else if status == 200 && done && !(role == Role::Post && self.transport == Transport::Sse)
        {
            let body = reader.take_data();
            let body = body.trim_ascii();
            if !body.is_empty() {
                lines.push(body.to_vec());
            }
        } else if done {
            reader.take_data();
        }
        if let Some(data) = endpoint {
            self.endpoint(&data);
        }
        for line in lines {
            self.deliver(i, line);
        }
    }

    /// A message from the server, read on connection `i`, for the gateway (unless it
    /// answers gangway's own replay of `initialize`).
    fn deliver(&mut self, i: usize, line: Vec<u8>) {
        // Read here only while an answer is awaited (the gateway reads every line anyway).
        let awaited =
            self.init_pending.is_some()
                || self.replay_id.is_some()
                || self.conns.get(i).and_then(Option::as_ref).is_some_and(|c| {
                    !c.answered && c.sent.as_ref().is_some_and(|s| s.id.is_some())
                });
        if let Some(m) = awaited.then(|| Message::parse(&line).ok()).flatten() {
            if m.kind == Kind::Response {
                let id = m.id.map(|id| id.get());
                if id.is_some() && self.init_pending.as_deref() == id {
                    self.init_pending = None;
                    self.protocol_version = m.result.and_then(|r| {
                        #[derive(serde::Deserialize)]
                        struct Init {
                            #[serde(rename = "protocolVersion")]
                            protocol_version: Option<String>,
                        }
                        serde_json::from_str::<Init>(r.get())
                            .ok()
                            .and_then(|i| i.protocol_version)
                            .filter(|v| v.len() <= 64)
                    });
                    if let Some(e) = m.error {
                        if self.replay_id.is_some() {
                            let text = format!(
                                "{}: starting a new session failed: {}",
                                self.url,
                                crate::wire::message::excerpt(e.get().as_bytes())
                            );
                            self.fail(text);
                            return;
                        }
                    }
                }
                if id.is_some() && self.replay_id.as_deref() == id {
                    self.replay_id = None;
                    return;
                }
                if let Some(Some(c)) = self.conns.get_mut(i) {
                    if c.sent.as_ref().and_then(|s| s.id.as_deref()) == id {
                        c.answered = true;
                    }
                }
            }
        }
        self.events.push(RemoteEvent::Line(line));
    }

    /// The `endpoint` event of an HTTP+SSE stream: where to POST.
    fn endpoint(&mut self, data: &[u8]) {
        let text = String::from_utf8_lossy(data).trim().to_string();
        let path = if text.starts_with('/') {
            Ok(text)
        } else if text.contains("://") {
            match Url::parse(&text) {
                Ok(u) if u.host == self.url.host && u.port == self.url.port && u.https == self.url.https => {
                    Ok(u.path)
                }
                _ => Err("is on another server; gangway posts only to the server of the backend's \"url\""),
            }
        } else if text.is_empty() {
            Err("is empty")
        } else {
            // Relative to the stream's path.
            let base = self.url.path.split('?').next().unwrap_or("/");
            let dir = base.rsplit_once('/').map_or("", |(d, _)| d);
            Ok(format!("{dir}/{text}"))
        };
        match path {
            Ok(p) if p.bytes().all(|b| b.is_ascii_graphic()) => {
                log::debug!("{}: messages go to the endpoint it named", self.url);
                self.post_path = Some(p);
            }
            Ok(_) => self.fail(format!(
                "{}: the endpoint its event stream named has characters a request cannot carry",
                self.url
            )),
            Err(why) => self.fail(format!(
                "{}: the endpoint its event stream named {why}",
                self.url
            )),
        }
    }

    /// The answer on connection `i` is complete.
    fn response_done(&mut self, registry: &Registry, i: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return;
        };
        let unanswered = c.sent.as_ref().is_some_and(|s| s.id.is_some()) && !c.answered;
        match c.role {
            Role::Listen => {
                self.close(registry, i);
                self.listen_closed(now, None);
            }
            Role::Post | Role::Resume if unanswered => self.answer_cut(registry, i, now),
            _ => {
                let reusable = c.reader.as_ref().is_some_and(ResponseReader::reusable);
                if reusable && c.role == Role::Post {
                    c.reader = None;
                    c.sse = None;
                    c.sent = None;
                    c.busy = false;
                    c.reused = true;
                } else {
                    self.close(registry, i);
                }
            }
        }
    }

    /// The stream of the answer on connection `i` ended (or broke) before the answer:
    /// resumed after its last event id when it has one, else that request alone gets an
    /// error.
    fn answer_cut(&mut self, registry: &Registry, i: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let last = c
            .sse
            .as_ref()
            .and_then(|s| s.last_event_id().map(str::to_string))
            .or_else(|| c.resumed_from.clone());
        let retry = c.sse.as_ref().and_then(SseParser::retry);
        let unanswered = c.sent.as_ref().is_some_and(|s| s.id.is_some()) && !c.answered;
        if !unanswered {
            self.close(registry, i);
            return;
        }
        match last {
            Some(last_event_id)
                if c.resumes < MAX_RESUMES && self.transport == Transport::Streamable =>
            {
                let wait = Duration::from_millis(retry.unwrap_or(0)).min(RESUME_WAIT_MAX);
                if let Some(sent) = c.sent.take() {
                    self.resumes.push(Resume {
                        at: now + wait,
                        sent,
                        last_event_id,
                        resumes: c.resumes + 1,
                        generation: c.generation,
                    });
                }
                self.close(registry, i);
            }
            last => {
                let why = if last.is_some() {
                    format!("the answer's stream was cut {MAX_RESUMES} times")
                } else {
                    "the server closed the answer's stream before the answer, with no event id to resume from".to_string()
                };
                self.abandon(registry, i, &why);
            }
        }
    }

    /// The request on connection `i` gets an error answer saying `why`; the connection
    /// closes and the backend goes on.
    fn abandon(&mut self, registry: &Registry, i: usize, why: &str) {
        let id = self.close_taking(registry, i).and_then(|s| s.id);
        if let Some(id) = id {
            log::warn!("{}: {why}", self.url);
            let mut line = Vec::new();
            write_error(
                &mut line,
                id.as_bytes(),
                INTERNAL_ERROR,
                &format!("{}: {why}", self.url),
            );
            line.pop();
            self.deliver(i, line);
        }
    }

    /// The server's event stream ended (`why` when it broke).
    fn listen_closed(&mut self, now: Instant, why: Option<String>) {
        if self.transport == Transport::Sse {
            let why = why.map_or_else(String::new, |w| format!(" ({w})"));
            self.fail(format!(
                "{} closed its event stream{why}, which ends the session (HTTP+SSE transport); the next request connects again",
                self.url
            ));
        } else {
            self.listen_ended(now, true, why);
        }
    }

    /// The server's stream (Streamable HTTP) ended; it is opened again after a wait,
    /// longer each time it ends without a message.
    fn listen_ended(&mut self, now: Instant, opened: bool, why: Option<String>) {
        if self.listen == Listen::Unsupported || self.failed {
            return;
        }
        let wait = self.listen_wait;
        self.listen_wait = (wait * 2).min(LISTEN_WAIT_MAX);
        if opened {
            self.listen_wait = self.listen_wait.max(LISTEN_WAIT_MIN);
        }
        log::debug!(
            "{}: its event stream ended{}; opening it again in {} ms",
            self.url,
            why.map_or_else(String::new, |w| format!(" ({w})")),
            wait.as_millis()
        );
        self.listen = Listen::At(now + wait);
    }

    /// Connection `i`, kept alive from an earlier answer, was closed by the server (`e`)
    /// before any byte of the answer to its request: the request goes again, once, on a
    /// new connection. Returns whether it was queued again.
    fn resend(&mut self, registry: &Registry, i: usize, e: &io::Error) -> bool {
        let Some(Some(c)) = self.conns.get_mut(i) else {
            return false;
        };
        let closed = matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        );
        let nothing_back = !c.reader.as_ref().is_some_and(|r| r.head().is_some());
        let retried = c.sent.as_ref().map_or(true, |s| s.retried);
        if !(c.busy && c.role == Role::Post && c.reused && !retried && closed && nothing_back) {
            return false;
        }
        let Some(mut sent) = c.sent.take() else {
            return false;
        };
        sent.retried = true;
        if sent.initialize {
            // Sent again, so its answer is awaited again.
            self.init_pending = None;
        }
        self.close(registry, i);
        self.queue.push_front(sent);
        true
    }

    /// A sentence for an I/O error on a connection to the server: a refused connection
    /// says what to check.
    fn io_error(&self, what: &str, e: &io::Error) -> String {
        if let Some(text) = tls::explained(e) {
            text.to_string()
        } else if e.kind() == io::ErrorKind::ConnectionRefused {
            format!(
                "cannot connect to {}: {e}; is the server running there, and is the backend's \"url\" right?",
                self.url
            )
        } else {
            format!("{what} {}: {e}", self.url)
        }
    }

    /// Closes connection `i`, returning the line it carried.
    fn close_taking(&mut self, registry: &Registry, i: usize) -> Option<Outgoing> {
        let sent = self
            .conns
            .get_mut(i)
            .and_then(Option::as_mut)
            .and_then(|c| c.sent.take());
        self.close(registry, i);
        sent
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    fn fail(&mut self, why: String) {
        if !self.failed {
            self.failed = true;
            self.events.push(RemoteEvent::Failed(why));
        }
    }

    /// Closes every connection: the backend stops.
    pub fn shut(&mut self, registry: &Registry) {
        for i in 0..self.conns.len() {
            self.close(registry, i);
        }
        self.queue.clear();
        self.resumes.clear();
        self.failed = true;
    }

    /// Closes every connection (the backend stops) and, when the server gave a session,
    /// starts the DELETE that ends it on slot [`FAREWELL`] (`b` is the backend, for its
    /// token). Returns whether that DELETE is under way: then [`Remote::drive_farewell`]
    /// carries it, for at most 2 s; nothing waits for it.
    pub fn farewell(&mut self, registry: &Registry, b: usize, now: Instant) -> bool {
        self.shut(registry);
        if self.transport != Transport::Streamable {
            return false;
        }
        if self.session.is_none() {
            return false;
        }
        let path = self.url.path.clone();
        let Some(out) = self.request("DELETE", &path, None, b"") else {
            return false;
        };
        let Ok(stream) = self.connect(registry, b, FAREWELL) else {
            return false;
        };
        let mut c = Conn::new(stream, now);
        c.start(Role::Farewell, out, None, self.max_body);
        c.deadline = Some(now + FAREWELL_WAIT);
        c.head_by = Some(now + FAREWELL_WAIT);
        self.conns[FAREWELL] = Some(c);
        true
    }

    /// Carries the DELETE [`Remote::farewell`] started; returns whether it is still under
    /// way.
    pub fn drive_farewell(&mut self, registry: &Registry, now: Instant) -> bool {
        self.expire(registry, now);
        self.write_conn(registry, FAREWELL, now);
        self.read_conn(registry, FAREWELL, now);
        self.conns[FAREWELL].is_some()
    }

    /// Whether something can be done without waiting (readiness not acted on, or queued
    /// lines and a free connection).
    pub fn has_ready_work(&self) -> bool {
        self.conns.iter().flatten().any(|c| {
            c.readable || (c.writable && (c.written < c.out.len() || c.stream.has_pending_output()))
        }) || (!self.queue.is_empty()
            && self.may_post()
            && self.conns[..MAX_CONNS]
                .iter()
                .any(|c| c.as_ref().map_or(true, |c| !c.busy)))
    }
}

impl Conn {
    /// Starts `request` (`role`, carrying `sent`) on this connection, with a fresh
    /// reader of answers up to `max_body` bytes; the per-request fields start anew.
    fn start(&mut self, role: Role, request: Vec<u8>, sent: Option<Outgoing>, max_body: usize) {
        self.role = role;
        self.out = request;
        self.written = 0;
        self.reader = Some(ResponseReader::new(max_body));
        self.sse = None;
        self.sent = sent;
        self.answered = false;
        self.head_by = None;
        self.resumes = 0;
        self.resumed_from = None;
        self.busy = true;
    }

    /// A new idle connection, to be made by `now + CONNECT_TIMEOUT`.
    fn new(stream: Stream, now: Instant) -> Conn {
        Conn {
            stream,
            role: Role::Post,
            out: Vec::new(),
            written: 0,
            reader: None,
            sse: None,
            sent: None,
            answered: false,
            generation: 0,
            resumes: 0,
            resumed_from: None,
            deadline: Some(now + CONNECT_TIMEOUT),
            head_by: None,
            reused: false,
            readable: false,
            writable: false,
            busy: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str, transport: Transport) -> Remote {
        match Remote::new(url, transport, &[], 1 << 20, None) {
            Ok(r) => r,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn lines_are_taken_while_few_wait() {
        let mut r = remote("http://127.0.0.1:9/mcp", Transport::Streamable);
        let mut pending = Vec::new();
        for i in 0..QUEUE_MAX + 6 {
            pending.extend_from_slice(
                format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\r\n").as_bytes(),
            );
        }
        pending.extend_from_slice(b"{\"partial\":");
        let used = r.take_lines(&pending);
        assert_eq!(r.queue.len(), QUEUE_MAX);
        let rest = String::from_utf8_lossy(&pending[used..]);
        assert!(
            rest.starts_with(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{QUEUE_MAX},")),
            "{rest}"
        );
        assert_eq!(
            r.queue[0].line,
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}"
        );
        // With room again, the rest is taken, but never a line without its end.
        r.queue.clear();
        let more = r.take_lines(&pending[used..]);
        assert_eq!(r.queue.len(), 6);
        assert_eq!(&pending[used + more..], b"{\"partial\":");
    }

    #[test]
    fn the_handshake_and_cancellations_are_recognised() {
        let mut r = remote("http://127.0.0.1:9/mcp", Transport::Streamable);
        let lines = concat!(
            "{\"id\":\"i-1\",\"method\":\"initialize\",\"jsonrpc\":\"2.0\",\"params\":{}}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":7}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n",
        );
        r.take_lines(lines.as_bytes());
        let q: Vec<&Outgoing> = r.queue.iter().collect();
        assert!(q[0].initialize && q[0].id.as_deref() == Some("\"i-1\""));
        assert!(r.init_line.is_some() && r.initialized_line.is_some());
        assert_eq!(q[1].id, None);
        assert_eq!(q[2].cancels.as_deref(), Some("7"));
        assert_eq!(
            (q[3].id.as_deref(), q[3].cancels.as_deref()),
            (None, None),
            "an answer"
        );
    }

    #[test]
    fn an_sse_endpoint_is_resolved_on_the_streams_server_only() {
        let cases = [
            ("/message?sessionId=a1", Some("/message?sessionId=a1")),
            ("http://127.0.0.1:9/messages?s=1", Some("/messages?s=1")),
            ("messages?s=2", Some("/base/messages?s=2")),
            ("http://elsewhere:9/messages", None),
            ("https://127.0.0.1:9/messages", None),
            ("", None),
            ("/with space", None),
        ];
        for (data, expected) in cases {
            let mut r = remote("http://127.0.0.1:9/base/sse", Transport::Sse);
            r.endpoint(data.as_bytes());
            assert_eq!(r.post_path.as_deref(), expected, "{data:?}");
            assert_eq!(r.failed, expected.is_none(), "{data:?}");
            if let Some(RemoteEvent::Failed(why)) = r.events.first() {
                assert!(why.contains("endpoint"), "{why}");
            }
        }
    }
}
